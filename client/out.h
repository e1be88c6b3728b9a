/*
 * client/out.h — everything mtlctl prints for people: error lines, aligned
 * tables, "key: value" blocks, numbers, colour; and the raw --json body.
 *
 * Text that came from the server is cleaned (control characters become '?')
 * before it reaches a terminal. Colour is used only when ctx->color is set
 * (stdout is a terminal and NO_COLOR is not set).
 */
#ifndef CLI_OUT_H
#define CLI_OUT_H

#include <jansson.h>
#include <stdio.h>

#include "client/cli.h"

struct cli_buf;

/* "mtlctl: <formatted>\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Tells cli_err that stdout holds an unfinished line (a progress bar), so
 * it ends that line before printing. */
void cli_out_partial_line(int on);
/* 1 while that line is still open (cli_err has not ended it). */
int cli_out_line_open(void);

/* Copies src into dst (size n > 0), replacing control characters with '?'
 * and cutting at a UTF-8 character boundary with "..." if it does not fit. */
void cli_out_clean(char *dst, size_t n, const char *src);

/* Writes a body as received to stdout (plus a newline if it lacks one). */
void cli_out_raw(const struct cli_buf *body);

/* A metric value: "%.4f", or "%.4e" below 1e-4 or from 1e9 in magnitude. */
void cli_fmt_num(char *dst, size_t n, double v);

/* A JSON value for a person: strings as they are, numbers (integers in
 * full, reals by cli_fmt_num), true/false, "-" for null or NULL, arrays of
 * scalars joined with ",", anything else as compact JSON. Cleaned and cut
 * to fit n. Returns dst. */
const char *cli_json_text(const json_t *v, char *dst, size_t n);

/* ANSI colours for cells and lines (ignored when colour is off). */
typedef enum cli_color { CLI_PLAIN = 0, CLI_BOLD, CLI_RED, CLI_GREEN, CLI_YELLOW, CLI_CYAN } cli_color;
const char *cli_color_on(const cli_ctx *ctx, cli_color c);
const char *cli_color_off(const cli_ctx *ctx, cli_color c);
/* The colour that goes with a job state ("failed" → red, ...). */
cli_color cli_state_color(const char *state);

/* An aligned plain-text table. Building never fails visibly: an allocation
 * failure is remembered and reported by cli_table_print (which then returns
 * CLI_EXIT_USAGE). Cells are copied (cleaned); NULL or "" prints as "-". */
typedef struct cli_table cli_table;
/* headers: ncols strings; NULL headers → no header line. */
cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_right(cli_table *t, size_t col); /* right-align a column */
void cli_table_row(cli_table *t);               /* start a new row */
void cli_table_cell(cli_table *t, size_t col, const char *text);
void cli_table_cell_color(cli_table *t, size_t col, const char *text, cli_color c);
void cli_table_cell_json(cli_table *t, size_t col, const json_t *v);
size_t cli_table_rows(const cli_table *t);
/* Prints to stdout (header bold when colour is on). Returns an exit code. */
int cli_table_print(const cli_ctx *ctx, cli_table *t);
void cli_table_free(cli_table *t);

/* Adds "key:" / value rows for every member of obj (nested objects
 * flattened as "a.b", keys prefixed "prefix." when prefix is set), skipping
 * the members of obj named in skip (NULL-terminated, may be NULL), to a
 * two-column table made with NULL headers. */
void cli_table_kv(cli_table *t, const char *prefix, const json_t *obj, const char *const *skip);
/* Like cli_table_kv(t, NULL, obj, skip), but the members named in first
 * (NULL-terminated) come first, in that order. */
void cli_table_kv_ordered(cli_table *t, const json_t *obj, const char *const *first,
                          const char *const *skip);
/* Adds one "key:" / text row. */
void cli_table_kv_text(cli_table *t, const char *key, const char *text, cli_color c);

/* The "id" of an object as text ("-" if missing). Returns dst. */
const char *cli_json_id(const json_t *obj, char *dst, size_t n);

/* For commands that only print what the server said: with --json the raw
 * body, otherwise nothing. Returns 1 if it printed (the caller is done). */
int cli_out_json_mode(const cli_ctx *ctx, const struct cli_buf *body);

#endif
