/*
 * client/cli.h — what every part of mtlctl shares: the exit codes, the
 * per-run context (resolved global options and the one libcurl handle), and
 * the command handlers that main.c's dispatch table points at.
 *
 * mtlctl speaks HTTP only (libcurl + jansson); it never links the engine,
 * the store or the daemon. Every handler returns one of the CLI_EXIT_*
 * codes; anything it wants a person to read about a failure it has already
 * printed to stderr as one "mtlctl: ..." line.
 */
#ifndef CLI_H
#define CLI_H

#include <curl/curl.h>
#include <jansson.h>

#include "client/args.h"

/* Exit codes (the contract of mtlctl(1)). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_REFUSED = 1, /* the server said no: a 4xx answer */
    CLI_EXIT_USAGE = 2,   /* bad invocation, or a local file/memory problem */
    CLI_EXIT_CONNECT = 3, /* could not connect to the server */
    CLI_EXIT_SERVER = 4,  /* a 5xx answer, or an answer that makes no sense */
    CLI_EXIT_JOB = 5      /* job watch: the job failed or was cancelled */
};

#define CLI_DEFAULT_URL "http://127.0.0.1:8470"

/* One run of mtlctl. Built by main.c from the global options; handlers read
 * it and use curl only through client/http.h. Not thread-safe (none of
 * mtlctl is: it is a single-threaded program). */
typedef struct cli_ctx {
    char *url;       /* base URL without a trailing '/', owned */
    char *token;     /* bearer token or NULL, owned */
    double wait_s;   /* --wait: retry refused connections this long */
    int json;        /* --json: print the server's body as received */
    int quiet;       /* --quiet: ids and essentials only */
    int tty_out;     /* stdout is a terminal */
    int color;       /* colour allowed on stdout (tty and no NO_COLOR) */
    int bars;        /* progress bars: colour allowed and neither --json nor --quiet */
    CURL *curl;      /* reused for every request (keeps the connection) */
} cli_ctx;

/* Command handlers: args holds the command's options and positionals
 * (already checked against the command's table and counts). */
int cli_cmd_health(cli_ctx *ctx, const cli_args *args);
int cli_cmd_version(cli_ctx *ctx, const cli_args *args);

int cli_cmd_dataset_upload(cli_ctx *ctx, const cli_args *args);
int cli_cmd_dataset_list(cli_ctx *ctx, const cli_args *args);
int cli_cmd_dataset_show(cli_ctx *ctx, const cli_args *args);
int cli_cmd_dataset_rm(cli_ctx *ctx, const cli_args *args);
int cli_cmd_dataset_rows(cli_ctx *ctx, const cli_args *args);

int cli_cmd_task_create(cli_ctx *ctx, const cli_args *args);
int cli_cmd_task_list(cli_ctx *ctx, const cli_args *args);
int cli_cmd_task_show(cli_ctx *ctx, const cli_args *args);
int cli_cmd_task_rm(cli_ctx *ctx, const cli_args *args);

int cli_cmd_job_submit(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_list(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_show(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_cancel(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_rm(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_watch(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_metrics(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_checkpoint(cli_ctx *ctx, const cli_args *args);
int cli_cmd_job_checkpoints(cli_ctx *ctx, const cli_args *args);

int cli_cmd_predict(cli_ctx *ctx, const cli_args *args);
int cli_cmd_checkpoint_import(cli_ctx *ctx, const cli_args *args);
int cli_cmd_checkpoint_list(cli_ctx *ctx, const cli_args *args);
int cli_cmd_server_metrics(cli_ctx *ctx, const cli_args *args);
int cli_cmd_adapt(cli_ctx *ctx, const cli_args *args);

/* Option tables of the commands that take options (NULL-name terminated). */
extern const cli_opt cli_dataset_upload_opts[];
extern const cli_opt cli_dataset_rows_opts[];
extern const cli_opt cli_checkpoint_import_opts[];
extern const cli_opt cli_task_create_opts[];
extern const cli_opt cli_job_submit_opts[];
extern const cli_opt cli_job_list_opts[];
extern const cli_opt cli_job_metrics_opts[];
extern const cli_opt cli_job_checkpoint_opts[];
extern const cli_opt cli_predict_opts[];
extern const cli_opt cli_adapt_opts[];

/* The --limit/--offset options of every list (cmd_misc.c). */
extern const cli_opt cli_list_opts[];
struct cli_resp;
/* GET path?limit=&offset=(&key=val when val) for a list command whose
 * table has --limit and --offset. Returns an exit code; r is always set. */
int cli_list_get(cli_ctx *ctx, const cli_args *args, const char *path, const char *key,
                 const char *val, struct cli_resp *r);
/* "(101-200 of 250; more with --offset 200)" when the list is a page. */
void cli_list_footer(const cli_ctx *ctx, const json_t *reply, const json_t *list);

struct cli_table;
/* How a list command shows the array of a reply as a table. */
typedef struct cli_list_view {
    const char *member;              /* the reply's array: "datasets" */
    size_t ncols;                    /* columns of the table */
    const char *const *heads;        /* ncols headers */
    unsigned right;                  /* bit i set: column i is right-aligned */
    int paged;                       /* a ?limit=&offset= page: cli_list_footer after */
    void (*row)(struct cli_table *t, const json_t *item); /* fills the row just begun */
} cli_list_view;
/* Prints a list reply: the body as received with --json, one id a line with
 * --quiet, otherwise the table v describes (then the footer when v->paged).
 * Returns an exit code. */
int cli_list_print(cli_ctx *ctx, const struct cli_resp *r, const cli_list_view *v);
/* cli_list_get (no extra query when val is NULL), then cli_list_print. */
int cli_list_show(cli_ctx *ctx, const cli_args *args, const char *path, const char *key,
                  const char *val, const cli_list_view *v);
/* GET /v1/<collection>/<id> and print it: the body as received with
 * --json, the id with --quiet, otherwise print(ctx, object). */
int cli_show(cli_ctx *ctx, const char *collection, const char *id,
             int (*print)(const cli_ctx *ctx, const json_t *obj));

/* DELETE /v1/<collection>/<id>; prints "deleted <noun> <id>" (cmd_misc.c). */
int cli_delete(cli_ctx *ctx, const char *collection, const char *noun, const char *id);

/* Polls job `id` until it ends (job_watch.c); shared by `job watch` and
 * `job submit --watch`. Returns CLI_EXIT_OK if it succeeded, CLI_EXIT_JOB if
 * it failed or was cancelled, or the exit code of a failed request. */
int cli_job_watch(cli_ctx *ctx, const char *id);

#endif
