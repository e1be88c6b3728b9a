/*
 * daemon/svc_rows.h — rows of raw column values from a client, turned into
 * a model's input vector. A checkpoint names its inputs in order ("col" for
 * a number column, "col=level" for each one-hot level of a category
 * column); svc__inputs groups those names back into raw columns so a
 * request can send a row as an array (in column order) or as an object of
 * column: value. Used by predictions (svc_predict.c) and few-shot
 * adaptation (svc_adapt.c).
 */
#ifndef SVC_ROWS_H
#define SVC_ROWS_H

#include "daemon/svc_internal.h"

typedef struct {
    char name[256];
    int first;        /* index of its first model input */
    int n_levels;     /* 0 = number column; else one-hot over levels */
    char **levels;
} svc__incol;

typedef struct {
    int n_in;         /* model inputs */
    int n_cols;       /* raw columns */
    svc__incol *cols;
} svc__inputs;

/* Builds the columns from the input names (a JSON array of strings).
 * 0, or -1 (malformed names, out of memory): clear it either way. */
int svc__inputs_build(svc__inputs *in, json_t *features);
void svc__inputs_clear(svc__inputs *in);

/* Encodes row number r of the array at key path `where` (e.g. "rows",
 * "support.rows") into x[n_in]: a number column takes a finite number, a
 * category column one of its training levels (text, or a number written
 * as such). SVC_EINVAL naming "where[r][i]" or "where[r].col". */
int svc__inputs_encode(const svc__inputs *in, json_t *row, const char *where, size_t r,
                       float *x, svc_error *e);

#endif
