/*
 * client/progress.h — progress bars on a terminal: the transfer bar of
 * `dataset upload` and `job checkpoint` (bytes, rate, ETA) and the pieces
 * the job-watch view draws with (terminal width, the "[###...]" bar).
 *
 * A bar is drawn only when ctx->bars is set: stdout is a terminal, NO_COLOR
 * is unset, TERM is not dumb, and neither --json nor --quiet was given.
 * Otherwise every function here is a no-op, so callers never branch on it.
 * Drawing is throttled to ten redraws a second. Not thread-safe.
 */
#ifndef CLI_PROGRESS_H
#define CLI_PROGRESS_H

#include <stddef.h>

#include "client/cli.h"

/* Columns of the terminal on stdout (80 if unknown), clamped to 20..400. */
int cli_term_cols(void);

/* "[####......]" of `width` cells in total (brackets included, >= 3) into
 * dst (n > width), frac clamped to [0, 1]. */
void cli_bar(char *dst, size_t n, int width, double frac);

/* "12.3 MiB" (binary units, B for < 1 KiB) into dst. */
void cli_fmt_bytes(char *dst, size_t n, double bytes);

/* A one-line transfer bar. */
typedef struct cli_progress {
    int on;
    char label[64];
    double t0, last_draw;
    long long done, total; /* total <= 0: unknown */
    long long drawn;       /* done at the last redraw */
    size_t shown;          /* characters of the line now on screen */
} cli_progress;

/* Starts a bar labelled e.g. "upload so.csv" (drawn on the first update)
 * for a transfer of `total` bytes (<= 0: not known yet). */
void cli_progress_start(cli_progress *p, const cli_ctx *ctx, const char *label,
                        long long total);
/* Bytes moved so far and the total (<= 0: unknown; a known total is kept). */
void cli_progress_update(cli_progress *p, long long done, long long total);
/* Erases the bar, leaving the cursor at the start of an empty line. */
void cli_progress_end(cli_progress *p);

#endif
