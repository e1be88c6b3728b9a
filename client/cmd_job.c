/*
 * client/cmd_job.c — `mtlctl job submit|list|show|cancel|rm|metrics|
 * checkpoints|checkpoint` (watching lives in job_watch.c).
 *
 * submit sends the spec file's bytes verbatim; it only checks locally that
 * they parse as JSON, so a typo is reported with line and column before any
 * network round trip. checkpoint downloads into FILE.tmp (with a progress
 * bar on a terminal), fsyncs it, renames it over FILE and fsyncs the
 * directory: FILE is either the old file or the whole new checkpoint, never
 * a torn one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/job_view.h"
#include "client/out.h"
#include "client/progress.h"

#define MAX_SPEC_BYTES (16u << 20)

const cli_opt cli_job_submit_opts[] = {
    {"watch", 0, NULL, "then follow the job like 'job watch' (and exit like it)"},
    {NULL, 0, NULL, NULL},
};
const cli_opt cli_job_list_opts[] = {
    {"state", 0, "S", "only jobs in state S: queued, running, succeeded, failed, cancelled"},
    {"limit", 0, "N", "at most N jobs, 1-1000 (default: the server's, 100)"},
    {"offset", 0, "N", "skip the N newest (page with offset += limit)"},
    {NULL, 0, NULL, NULL},
};
const cli_opt cli_job_metrics_opts[] = {
    {"csv", 0, NULL, "ask the server for CSV and print it as received"},
    {"since", 0, "N", "only metrics since step N (the server's ?since=)"},
    {NULL, 0, NULL, NULL},
};
const cli_opt cli_job_checkpoint_opts[] = {
    {"output", 'o', "FILE", "where to write the checkpoint (required)"},
    {"checkpoint", 0, "C", "latest (default), best, or a checkpoint id"},
    {NULL, 0, NULL, NULL},
};

/* Reads a whole (small) file, or stdin for "-", into b. */
static int read_spec(const char *path, cli_buf *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[8192];
    size_t n;
    int rc = 0;
    if (!f) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > MAX_SPEC_BYTES) {
            cli_err("%s: a job spec larger than %u bytes is not plausible", path, MAX_SPEC_BYTES);
            rc = -1;
            break;
        }
        if (cli_buf_append(b, chunk, n)) {
            cli_err("out of memory");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        cli_err("cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

int cli_cmd_job_submit(cli_ctx *ctx, const cli_args *args)
{
    const char *path = args->pos[0];
    cli_buf spec = {0};
    cli_resp r = {0};
    json_error_t jerr;
    json_t *parsed;
    int watch = cli_args_get(args, "watch") != NULL;
    int rc = CLI_EXIT_USAGE;

    if (read_spec(path, &spec))
        goto out;
    if (!(parsed = json_loadb(spec.data ? spec.data : "", spec.len, 0, &jerr))) {
        char msg[200];
        cli_out_clean(msg, sizeof msg, jerr.text);
        cli_err("%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, msg);
        goto out;
    }
    json_decref(parsed);

    cli_req req = {.method = "POST",
                   .path = "/v1/jobs",
                   .content_type = "application/json",
                   .body = spec.data,
                   .body_len = spec.len,
                   .want_json = 1};
    rc = cli_http(ctx, &req, &r);
    if (rc != CLI_EXIT_OK)
        goto out;
    char id[64];
    cli_json_id(r.json, id, sizeof id);
    if (!json_object_get(r.json, "id")) {
        cli_err("the server accepted the job but sent no id");
        rc = CLI_EXIT_SERVER;
        goto out;
    }
    /* Just the id, in every mode but --json: `id=$(mtlctl job submit s.json)`. */
    if (!ctx->json)
        printf("%s\n", id);
    else if (!watch)
        cli_out_raw(&r.body);
    if (watch) {
        fflush(stdout);
        rc = cli_job_watch(ctx, id);
    }
out:
    cli_buf_free(&spec);
    cli_resp_free(&r);
    return rc;
}

static void job_row(cli_table *t, const json_t *job)
{
    char pct[32];
    const char *st = cli_job_state(job);
    cli_table_cell_json(t, 0, json_object_get(job, "id"));
    cli_table_cell_json(t, 1, json_object_get(job, "name"));
    cli_table_cell_json(t, 2, json_object_get(job, "algorithm"));
    cli_table_cell_color(t, 3, st, cli_state_color(st));
    snprintf(pct, sizeof pct, "%.0f%%", 100.0 * cli_job_progress(job));
    cli_table_cell(t, 4, pct);
    cli_table_cell_json(t, 5, json_object_get(job, "created_at"));
}

int cli_cmd_job_list(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"ID",    "NAME",     "ALGORITHM",
                                        "STATE", "PROGRESS", "CREATED"};
    static const cli_list_view view = {"jobs", 6, heads, 1u << 0 | 1u << 4, 1, job_row};
    return cli_list_show(ctx, args, "/v1/jobs", "state", cli_args_get(args, "state"), &view);
}

int cli_cmd_job_show(cli_ctx *ctx, const cli_args *args)
{
    cli_resp r;
    int rc = cli_http_id(ctx, "GET", "jobs", args->pos[0], NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body)) {
        if (ctx->quiet) {
            char st[64];
            printf("%s\n", cli_json_text(json_object_get(r.json, "state"), st, sizeof st));
        } else {
            rc = cli_job_print(ctx, r.json);
        }
    }
    cli_resp_free(&r);
    return rc;
}

int cli_cmd_job_cancel(cli_ctx *ctx, const cli_args *args)
{
    cli_resp r;
    char *path = cli_http_id_path(ctx, "jobs", args->pos[0], "/cancel");
    if (!path) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    int rc = cli_http_json(ctx, "POST", path, NULL, NULL, &r);
    free(path);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body)) {
        char id[64], st[64];
        const char *state = cli_job_state(r.json);
        cli_json_text(json_object_get(r.json, "state"), st, sizeof st);
        if (ctx->quiet)
            printf("%s\n", st);
        else
            printf("job %s %s%s%s\n", cli_json_id(r.json, id, sizeof id),
                   cli_color_on(ctx, cli_state_color(state)), st,
                   cli_color_off(ctx, cli_state_color(state)));
    }
    cli_resp_free(&r);
    return rc;
}

int cli_cmd_job_rm(cli_ctx *ctx, const cli_args *args)
{
    return cli_delete(ctx, "jobs", "job", args->pos[0]);
}

int cli_cmd_job_metrics(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"STEP", "TASK", "SPLIT", "NAME", "VALUE"};
    const char *since = cli_args_get(args, "since");
    int csv = cli_args_get(args, "csv") != NULL;
    cli_buf q = {0};
    cli_resp r = {0};
    char *path = NULL;
    long long n;
    int rc = CLI_EXIT_USAGE;

    if (since && cli_parse_count(since, &n)) {
        cli_err("job metrics: --since needs a step number >= 0 (got '%s')", since);
        return CLI_EXIT_USAGE;
    }
    if ((since && cli_query_add(ctx, &q, "since", since)) ||
        (csv && cli_query_add(ctx, &q, "format", "csv")) ||
        !(path = cli_http_id_path(ctx, "jobs", args->pos[0], "/metrics"))) {
        cli_err("out of memory");
        goto out;
    }
    cli_req req = {.path = path, .query = q.data, .accept = csv ? "text/csv" : NULL,
                   .want_json = !csv};
    rc = cli_http(ctx, &req, &r);
    if (rc != CLI_EXIT_OK)
        goto out;
    if (csv) {
        if (r.body.len)
            fwrite(r.body.data, 1, r.body.len, stdout);
        goto out;
    }
    if (cli_out_json_mode(ctx, &r.body))
        goto out;

    cli_table *t = cli_table_new(5, heads);
    const json_t *m;
    size_t i;
    cli_table_right(t, 0);
    cli_table_right(t, 4);
    json_array_foreach(json_object_get(r.json, "metrics"), i, m)
    {
        cli_table_row(t);
        cli_table_cell_json(t, 0, json_object_get(m, "step"));
        cli_table_cell_json(t, 1, json_object_get(m, "task"));
        cli_table_cell_json(t, 2, json_object_get(m, "split"));
        cli_table_cell_json(t, 3, json_object_get(m, "name"));
        cli_table_cell_json(t, 4, json_object_get(m, "value"));
    }
    rc = cli_table_print(ctx, t);
    cli_table_free(t);
out:
    free(path);
    cli_buf_free(&q);
    cli_resp_free(&r);
    return rc;
}

static void job_checkpoint_row(cli_table *t, const json_t *c)
{
    const int latest = json_is_true(json_object_get(c, "latest"));
    const int best = json_is_true(json_object_get(c, "best"));
    cli_table_cell_json(t, 0, json_object_get(c, "id"));
    cli_table_cell_json(t, 1, json_object_get(c, "step"));
    cli_table_cell_json(t, 2, json_object_get(c, "bytes"));
    cli_table_cell_json(t, 3, json_object_get(c, "created_at"));
    /* what --checkpoint latest / best would fetch */
    cli_table_cell(t, 4, latest && best ? "latest,best" : latest ? "latest" : best ? "best" : "");
}

int cli_cmd_job_checkpoints(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"ID", "STEP", "BYTES", "CREATED", "MARK"};
    static const cli_list_view view = {"checkpoints", 5, heads, 1u << 0 | 1u << 1 | 1u << 2, 0,
                                       job_checkpoint_row};
    cli_resp r;
    int rc = cli_http_id(ctx, "GET", "jobs", args->pos[0], "/checkpoints", NULL, &r);
    if (rc == CLI_EXIT_OK)
        rc = cli_list_print(ctx, &r, &view);
    cli_resp_free(&r);
    return rc;
}

static void download_progress(void *ud, long long down, long long down_total, long long up,
                              long long up_total)
{
    (void)up;
    (void)up_total;
    cli_progress_update(ud, down, down_total);
}

/* fsync the directory holding path, so a rename in it is durable. */
static int sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cli_cmd_job_checkpoint(cli_ctx *ctx, const cli_args *args)
{
    const char *out = cli_args_get(args, "output");
    char *tmp = NULL, *path = NULL;
    FILE *f = NULL;
    cli_resp r = {0};
    cli_progress bar;
    int rc = CLI_EXIT_USAGE, fd, created = 0;

    if (!out || !*out) {
        cli_err("job checkpoint: -o FILE is required");
        fprintf(stderr, "Try 'mtlctl job checkpoint --help'.\n");
        return CLI_EXIT_USAGE;
    }
    const char *which = cli_args_get(args, "checkpoint");
    if (!which || !*which)
        which = "latest";
    char suffix[64];
    if (strlen(which) > 24 || strchr(which, '/') || strchr(which, '?')) {
        cli_err("job checkpoint: --checkpoint takes latest, best or a checkpoint id, not '%s'",
                which);
        return CLI_EXIT_USAGE;
    }
    snprintf(suffix, sizeof suffix, "/checkpoints/%s", which);
    size_t n = strlen(out) + sizeof ".tmp";
    if (!(tmp = malloc(n)) || !(path = cli_http_id_path(ctx, "jobs", args->pos[0], suffix))) {
        cli_err("out of memory");
        goto out;
    }
    snprintf(tmp, n, "%s.tmp", out);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    created = fd >= 0;
    if (fd < 0 || !(f = fdopen(fd, "wb"))) {
        cli_err("cannot create %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    cli_req req = {.path = path,
                   .accept = "application/octet-stream",
                   .sink = f,
                   .on_progress = download_progress,
                   .progress_ud = &bar};
    cli_progress_start(&bar, ctx, "checkpoint", 0);
    rc = cli_http(ctx, &req, &r);
    cli_progress_end(&bar);
    if (rc != CLI_EXIT_OK)
        goto out;
    rc = CLI_EXIT_USAGE;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        cli_err("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        cli_err("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, out) != 0) {
        cli_err("cannot rename %s to %s: %s", tmp, out, strerror(errno));
        goto out;
    }
    created = 0; /* renamed: nothing left to clean up */
    if (sync_dir_of(out) != 0) {
        cli_err("cannot sync the directory of %s: %s", out, strerror(errno));
        goto out;
    }
    rc = CLI_EXIT_OK;
    if (!ctx->json && !ctx->quiet)
        printf("wrote %s (%lld bytes)\n", out, r.sunk);
out:
    if (f)
        fclose(f);
    if (created)
        unlink(tmp);
    free(tmp);
    free(path);
    cli_resp_free(&r);
    return rc;
}
