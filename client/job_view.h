/*
 * client/job_view.h — how a job looks to a person: its state, its progress,
 * its "key: value" block and its results tables. Shared by `job show`,
 * `job list`, `job watch` and `job submit --watch`.
 */
#ifndef CLI_JOB_VIEW_H
#define CLI_JOB_VIEW_H

#include <jansson.h>

#include "client/cli.h"

/* The job's "state" (borrowed), or NULL. */
const char *cli_job_state(const json_t *job);
/* 1 for succeeded, failed and cancelled; an unknown state is not final. */
int cli_job_state_final(const char *state);
/* Progress in [0, 1]: "progress" if present, else step/steps, else 0. */
double cli_job_progress(const json_t *job);
/* "42.0% (step 420/1000)" into dst. */
const char *cli_job_progress_text(const json_t *job, char *dst, size_t n);

/* The "key: value" block of a job, its error, and (when present) its
 * results. Returns an exit code. */
int cli_job_print(const cli_ctx *ctx, const json_t *job);
/* The per-task metrics table (only members that look like per-task
 * metrics), then a few-shot table and any other members. */
int cli_job_print_results(const cli_ctx *ctx, const json_t *results);

#endif
