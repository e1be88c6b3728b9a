/*
 * api/csv_table.h — turns CSV records into a typed, validated table:
 * header row (or c0, c1, ... when header = 0), column typing (number when
 * every non-missing cell is a strict number, else category with levels),
 * missing values (empty, NA, ?, null) handled by policy, limits enforced.
 * Built on csv_reader; a pure function of the bytes fed (fuzzable).
 *
 * Numbers: the whole field must match [+-]?(digits[.digits]|.digits)([eE][+-]?digits)?
 * (so `1,5`, `12abc`, `0x10`, `nan`, `inf`, `1.`, `1e` are text); the value is
 * what strtod gives, rounded to float32. A number beyond float32 range in a
 * number column is an error (CSV_ESYNTAX "number out of range").
 * A column whose cells are all numbers is a number column; as soon as one
 * cell is not a number (and not missing), the column is a category column
 * and every cell (numeric-looking ones included, by their original text:
 * "1.0" stays "1.0") becomes a level. Levels are listed in order of first
 * appearance. A number column with more than max_levels distinct texts
 * cannot turn into a category column (CSV_ELIMIT if a text cell comes).
 * Missing: exactly "", "NA", "N/A", "?", "null", "NULL". missing=fill uses
 * the mean of the column's numbers, or its most frequent level (ties: the
 * first seen); a column with nothing but missing cells is CSV_EMISSING.
 * Errors carry a 1-based physical line (of the offending byte for malformed
 * CSV, else where the record starts) and 1-based column (0 when about a whole
 * row: a ragged row, max_rows).
 */
#ifndef CSV_TABLE_H
#define CSV_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "api/csv_reader.h"

typedef enum { CSV_COL_NUMBER = 0, CSV_COL_CATEGORY = 1 } csv_col_type;
typedef enum { CSV_MISSING_ERROR = 0, CSV_MISSING_DROP = 1, CSV_MISSING_FILL = 2 } csv_missing;

typedef struct {
    char delimiter;     /* ',' default */
    int header;         /* 1 default: first record is the header */
    csv_missing missing;
    size_t max_rows, max_cols, max_levels, max_field;
} csv_options;

/* Defaults: ',', header, missing=error, 10M rows, 1000 cols, 1000 levels,
 * 64 KiB field. */
csv_options csv_options_default(void);

typedef struct {
    char *name;
    csv_col_type type;
    size_t n_levels;
    char **levels;      /* category columns: level texts, index = stored value */
    size_t n_missing;   /* cells that were missing (filled or causing a drop) */
    size_t n_filled;    /* cells filled (missing=fill) */
} csv_column;

typedef struct {
    size_t n_rows, n_cols;
    csv_column *cols;
    float *data;        /* row-major [n_rows][n_cols]; categories as level index */
    size_t n_dropped;   /* rows dropped (missing=drop) */
} csv_table;

typedef struct csv_table_builder csv_table_builder;

csv_table_builder *csv_table_builder_new(const csv_options *opt); /* NULL on OOM */
void csv_table_builder_free(csv_table_builder *b);

/* Error codes of feed/finish: 0 ok; CSV_ESYNTAX / CSV_ELIMIT / CSV_EMISSING /
 * CSV_EEMPTY / CSV_EHEADER with err filled (line, column, message naming the
 * column by name where known); CSV_ENOMEM. */
enum {
    CSV_OK = 0,
    CSV_ESYNTAX = -1,  /* malformed CSV, ragged row, bad UTF-8 */
    CSV_ENOMEM = -2,
    CSV_ELIMIT = -3,   /* a limit of csv_options exceeded: message names it */
    CSV_EMISSING = -4, /* a missing value with missing=error */
    CSV_EEMPTY = -5,   /* no header, or header but no data rows */
    CSV_EHEADER = -6,  /* empty or duplicated column name */
};

int csv_table_builder_feed(csv_table_builder *b, const char *buf, size_t len, csv_error *err);
/* On success *out is a new table (free with csv_table_free). */
int csv_table_builder_finish(csv_table_builder *b, csv_table **out, csv_error *err);
void csv_table_free(csv_table *t);

#endif
