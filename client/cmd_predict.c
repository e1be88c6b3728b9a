/*
 * client/cmd_predict.c — `mtlctl predict JOB [--task T] FILE.csv`: the
 * job's predictions for the rows of a CSV file, printed as CSV.
 *
 * The file goes to POST /v1/jobs/{id}/predict as CSV bodies of at most
 * --batch rows (and about 256 KiB), each with the file's header row, so a
 * file of any length fits the server's per-request limits and never sits
 * whole in memory; the answers are printed in order under one header
 * (pred_csv.h). With --json each answer is printed as received, one per
 * line. A server error about a row names its line within the batch, so
 * the batch's first line in the file is printed next to it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/csv_rec.h"
#include "client/http.h"
#include "client/out.h"
#include "client/pred_csv.h"

#define BATCH_BYTES (256u << 10)
#define DEFAULT_BATCH 1000

const cli_opt cli_predict_opts[] = {
    {"task", 0, "T", "only this task of the job (default: every task)"},
    {"checkpoint", 0, "C", "latest (default), best, or a checkpoint id"},
    {"batch", 0, "N", "rows per request (default 1000; the server allows --predict-rows)"},
    {NULL, 0, NULL, NULL},
};

int cli_cmd_predict(cli_ctx *ctx, const cli_args *args)
{
    const char *job = args->pos[0], *file = args->pos[1];
    const char *task = cli_args_get(args, "task");
    const char *ckpt = cli_args_get(args, "checkpoint");
    const char *batch_s = cli_args_get(args, "batch");
    long long batch = DEFAULT_BATCH;
    cli_csv_reader rd;
    cli_buf q = {0}, body = {0};
    char *path = NULL;
    FILE *f;
    int rc = CLI_EXIT_USAGE, first = 1, more;

    if (batch_s && (cli_parse_count(batch_s, &batch) || batch < 1 || batch > 1000000)) {
        cli_err("predict: --batch needs a row count from 1 to 1000000 (got '%s')", batch_s);
        return CLI_EXIT_USAGE;
    }
    if (!(f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb"))) {
        cli_err("cannot open %s: %s", file, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    cli_csv_init(&rd, f);
    if ((task && cli_query_add(ctx, &q, "task", task)) ||
        (ckpt && cli_query_add(ctx, &q, "checkpoint", ckpt)) ||
        !(path = cli_http_id_path(ctx, "jobs", job, "/predict"))) {
        cli_err("out of memory");
        goto out;
    }
    more = cli_csv_next(&rd, file);
    if (more <= 0) {
        if (more == 0)
            cli_err("%s is empty: it needs a header row naming the columns", file);
        goto out;
    }
    size_t header_len = rd.rec.len;
    if (cli_buf_append(&body, rd.rec.data, rd.rec.len)) {
        cli_err("out of memory");
        goto out;
    }
    more = cli_csv_next(&rd, file);
    if (more == 0)
        cli_err("%s has a header row but no rows to predict", file);
    while (more > 0) {
        long start = rd.line, rows = 0;
        body.len = header_len;
        while (more > 0 && rows < batch && (rows == 0 || body.len + rd.rec.len <= BATCH_BYTES)) {
            if (cli_buf_append(&body, rd.rec.data, rd.rec.len)) {
                cli_err("out of memory");
                goto out;
            }
            rows++;
            more = cli_csv_next(&rd, file);
        }
        if (more < 0)
            goto out;
        cli_req req = {.method = "POST",
                       .path = path,
                       .query = q.data,
                       .content_type = "text/csv",
                       .body = body.data,
                       .body_len = body.len,
                       .want_json = !ctx->json};
        cli_resp r;
        rc = cli_http(ctx, &req, &r);
        if (rc == CLI_EXIT_REFUSED && start > 2)
            cli_err("(the rows sent began at line %ld of %s)", start, file);
        if (rc == CLI_EXIT_OK) {
            if (ctx->json)
                cli_out_raw(&r.body);
            else if (cli_pred_csv(r.json, first) < 0)
                rc = CLI_EXIT_SERVER;
        }
        cli_resp_free(&r);
        first = 0;
        if (rc != CLI_EXIT_OK)
            goto out;
    }
    if (more == 0 && !first)
        rc = CLI_EXIT_OK;
out:
    if (f != stdin)
        fclose(f);
    cli_csv_free(&rd);
    cli_buf_free(&q);
    cli_buf_free(&body);
    free(path);
    return rc;
}
