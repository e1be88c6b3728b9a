/*
 * client/watch_view.h — what `job watch` shows while a job runs: its state,
 * a progress bar (step/steps, percent, ETA) and a table of the latest value
 * of every metric, one row per task and split.
 *
 * With bars on (a terminal, no NO_COLOR, no --json/--quiet; progress.h) the
 * view is a block of lines redrawn in place, at most ten times a second,
 * each cut to the terminal's width so nothing wraps. Otherwise, unless
 * --json or --quiet, it prints plain lines only: one each time progress
 * passes another 10%. Not thread-safe.
 */
#ifndef CLI_WATCH_VIEW_H
#define CLI_WATCH_VIEW_H

#include <jansson.h>

#include "client/cli.h"

typedef struct cli_watch_view cli_watch_view;

/* NULL when out of memory. id is copied (cleaned). */
cli_watch_view *cli_watch_view_new(const cli_ctx *ctx, const char *id);
void cli_watch_view_free(cli_watch_view *v);

/* The job as GET /v1/jobs/{id} gave it before watching: its state and
 * progress, from which on plain lines report (history replayed from the
 * event stream then adds metrics but no stale progress lines). */
void cli_watch_view_start(cli_watch_view *v, const json_t *job);
/* Updates from the event stream's data objects (borrowed). */
void cli_watch_view_state(cli_watch_view *v, const json_t *data);
void cli_watch_view_progress(cli_watch_view *v, const json_t *data);
void cli_watch_view_metric(cli_watch_view *v, const json_t *data);

/* Shows the view as it now is (throttled unless force). */
void cli_watch_view_draw(cli_watch_view *v, int force);
/* Erases the live block from the terminal (no-op when none is shown). */
void cli_watch_view_clear(cli_watch_view *v);
/* Number of (task, split) rows of metrics seen. */
size_t cli_watch_view_rows(const cli_watch_view *v);
/* Prints the latest-metrics table as a plain table (TASK SPLIT STEP and
 * one column per metric name). Returns an exit code. */
int cli_watch_view_print_metrics(cli_watch_view *v);

#endif
