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
 * nan, inf or infinity (any case, signed or not) after numbers in a column
 * that has held only numbers so far is an error (CSV_ESYNTAX): it is what a
 * float export writes for a missing or broken value, not a category; in a
 * text column it is just a level.
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
 *
 * Streaming: rows leave the builder in chunks of CSV_CHUNK_ROWS rows as soon
 * as a chunk is full (csv_table_builder_new_stream), so memory stays at one
 * chunk plus what the columns must remember, whatever the input size. Some
 * values are only known at the end — the level index of a number seen
 * before its column turned into a category, a filled missing value — so
 * after finish the builder says which chunks it handed out are stale and
 * fixes them in place (csv_table_builder_chunk_stale / _fix_chunk). The
 * whole-table API (csv_table_builder_new + finish) is the same machinery
 * with an in-memory sink.
 * Statistics (min/max/mean/std of number columns, per-level counts of
 * category columns, missing and filled counts) are kept as rows stream and
 * describe the values as stored (after fill).
 */
#ifndef CSV_TABLE_H
#define CSV_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "api/csv_reader.h"

typedef enum { CSV_COL_NUMBER = 0, CSV_COL_CATEGORY = 1 } csv_col_type;
/* KEEP stores a missing cell as NaN (a number column's value, a category
 * column's level index): a multi-task job masks a missing target out of
 * that task's loss and imputes a missing input with its training mean. */
typedef enum {
    CSV_MISSING_ERROR = 0,
    CSV_MISSING_DROP = 1,
    CSV_MISSING_FILL = 2,
    CSV_MISSING_KEEP = 3,
} csv_missing;

typedef struct {
    char delimiter;     /* ',' default */
    int header;         /* 1 default: first record is the header */
    csv_missing missing;
    size_t max_rows, max_cols, max_levels, max_field;
    size_t max_line;    /* bytes of one record (its fields plus separators) */
    size_t max_text;    /* bytes of all distinct texts kept (levels) */
} csv_options;

/* Defaults: ',', header, missing=error, 10M rows, 1000 cols, 1000 levels,
 * 64 KiB field, 1 MiB line, 32 MiB of distinct texts. */
csv_options csv_options_default(void);

/* Rows per chunk handed to a streaming sink (the store's chunk size). */
#define CSV_CHUNK_ROWS 4096

typedef struct {
    char *name;
    csv_col_type type;
    size_t n_levels;
    char **levels;      /* category columns: level texts, index = stored value */
    size_t n_missing;   /* cells that were missing (filled or causing a drop) */
    size_t n_filled;    /* cells filled (missing=fill) */
    /* number columns: over the stored values (filled ones included) */
    double min, max, mean, std; /* std: population (divides by n_rows) */
    size_t *counts;     /* category columns: stored cells per level */
} csv_column;

typedef struct {
    size_t n_rows, n_cols;
    csv_column *cols;
    float *data;        /* row-major [n_rows][n_cols]; categories as level index;
                           NULL from a streaming builder */
    size_t n_dropped;   /* rows dropped (missing=drop) */
} csv_table;

/* A streaming sink: chunk seq (0, 1, ...) of n_rows rows, row-major
 * [n_rows][n_cols], valid during the call only. Every chunk but the last has
 * CSV_CHUNK_ROWS rows; the last comes from finish. Non-zero stops: feed or
 * finish then returns CSV_ESINK (the sink keeps its own reason). */
typedef int (*csv_chunk_fn)(void *ctx, size_t seq, const float *rows, size_t n_rows,
                            size_t n_cols);

typedef struct csv_table_builder csv_table_builder;

csv_table_builder *csv_table_builder_new(const csv_options *opt); /* NULL on OOM */
/* A builder that hands rows to fn chunk by chunk instead of keeping them. */
csv_table_builder *csv_table_builder_new_stream(const csv_options *opt, csv_chunk_fn fn,
                                                void *ctx);
void csv_table_builder_free(csv_table_builder *b);

/* Error codes of feed/finish: 0 ok; CSV_ESYNTAX / CSV_ELIMIT / CSV_EMISSING /
 * CSV_EEMPTY / CSV_EHEADER with err filled (line, column, message naming the
 * column by name where known); CSV_ENOMEM. The message does not repeat the
 * line and column: the caller puts them in front ("line 3, column 2: ..."). */
enum {
    CSV_OK = 0,
    CSV_ESYNTAX = -1,  /* malformed CSV, ragged row, bad UTF-8 */
    CSV_ENOMEM = -2,
    CSV_ELIMIT = -3,   /* a limit of csv_options exceeded: message names it */
    CSV_EMISSING = -4, /* a missing value with missing=error */
    CSV_EEMPTY = -5,   /* no header, or header but no data rows */
    CSV_EHEADER = -6,  /* empty or duplicated column name */
    CSV_ESINK = -7,    /* the streaming sink refused a chunk */
};

int csv_table_builder_feed(csv_table_builder *b, const char *buf, size_t len, csv_error *err);
/* On success *out is a new table (free with csv_table_free). A streaming
 * builder hands its last chunk to the sink first and gives a table without
 * data. */
int csv_table_builder_finish(csv_table_builder *b, csv_table **out, csv_error *err);
void csv_table_free(csv_table *t);

/* After a successful finish of a streaming builder: 1 if chunk seq, handed
 * to the sink before the last one, holds values that changed (a column
 * turned into a category after it left, missing=fill), else 0. */
int csv_table_builder_chunk_stale(const csv_table_builder *b, size_t seq);
/* Rewrites such a chunk in place (rows as the sink received them). */
void csv_table_builder_fix_chunk(const csv_table_builder *b, size_t seq, float *rows,
                                 size_t n_rows);
/* Chunks handed to the sink so far. */
size_t csv_table_builder_chunks(const csv_table_builder *b);

#endif
