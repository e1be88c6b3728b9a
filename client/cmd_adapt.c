/*
 * client/cmd_adapt.c — `mtlctl adapt JOB --support S.csv --query Q.csv`:
 * few-shot adaptation of a meta-learning job's model to a labelled support
 * set, predictions for the query rows, printed as CSV (pred_csv.h).
 *
 * Both files have a header row naming the job's input columns; rows are
 * sent as objects keyed by those names (POST /v1/jobs/{id}/adapt), so the
 * column order is free. The support file also holds the label column:
 * --label COL, or by default the one column of the support file that the
 * query file lacks (else a column named "label"). A field that reads whole
 * as a number is sent as a number, an empty one as null, anything else (or
 * anything quoted) as text: the server checks what each column wants.
 * The files are read whole (the server takes at most 1000 support rows and
 * --predict-rows query rows in one request); a file is capped at
 * MAX_ROWS rows before anything is sent.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/csv_rec.h"
#include "client/http.h"
#include "client/out.h"
#include "client/pred_csv.h"

#define MAX_ROWS 100000

const cli_opt cli_adapt_opts[] = {
    {"support", 0, "FILE", "labelled support rows, CSV with a header (required)"},
    {"query", 0, "FILE", "rows to predict, CSV with a header (required)"},
    {"label", 0, "COL", "the support file's label column (default: the one the query lacks)"},
    {"steps", 0, "N", "inner adaptation steps, 0-100 (default: the job's inner.steps)"},
    {"checkpoint", 0, "C", "latest (default), best, or a checkpoint id"},
    {NULL, 0, NULL, NULL},
};

/* A CSV file read whole: its header and records. */
typedef struct table {
    cli_csv_fields head;
    cli_csv_fields *rows;
    size_t nrows;
} table;

static void table_free(table *t)
{
    cli_csv_fields_free(&t->head);
    for (size_t i = 0; i < t->nrows; i++)
        cli_csv_fields_free(&t->rows[i]);
    free(t->rows);
    memset(t, 0, sizeof *t);
}

static int read_table(const char *path, table *t)
{
    cli_csv_reader rd;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 0;
    int rc = -1, more;
    memset(t, 0, sizeof *t);
    if (!f) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    cli_csv_init(&rd, f);
    if ((more = cli_csv_next(&rd, path)) <= 0) {
        if (more == 0)
            cli_err("%s is empty: it needs a header row naming the columns", path);
        goto out;
    }
    if (cli_csv_split(rd.rec.data, rd.rec.len, ',', &t->head))
        goto oom;
    while ((more = cli_csv_next(&rd, path)) > 0) {
        if (t->nrows == MAX_ROWS) {
            cli_err("%s has more than %d rows", path, MAX_ROWS);
            goto out;
        }
        if (t->nrows == cap) {
            size_t nc = cap ? cap * 2 : 64;
            cli_csv_fields *nr = realloc(t->rows, nc * sizeof *nr);
            if (!nr)
                goto oom;
            t->rows = nr;
            cap = nc;
        }
        if (cli_csv_split(rd.rec.data, rd.rec.len, ',', &t->rows[t->nrows]))
            goto oom;
        if (t->rows[t->nrows++].n != t->head.n) {
            cli_err("%s: line %ld has %d fields, the header %d", path, rd.line,
                    t->rows[t->nrows - 1].n, t->head.n);
            goto out;
        }
    }
    if (more == 0 && t->nrows == 0)
        cli_err("%s has a header row but no rows", path);
    else if (more == 0)
        rc = 0;
    goto out;
oom:
    cli_err("out of memory");
out:
    if (f != stdin)
        fclose(f);
    cli_csv_free(&rd);
    if (rc)
        table_free(t);
    return rc;
}

static int column(const cli_csv_fields *head, const char *name)
{
    for (int k = 0; k < head->n; k++)
        if (strcmp(head->field[k], name) == 0)
            return k;
    return -1;
}

/* A field as JSON: number, null (empty) or string. New reference. */
static json_t *cell(const char *s, int quoted)
{
    char *end = NULL;
    if (!quoted && !*s)
        return json_null();
    if (!quoted) {
        errno = 0;
        long long i = strtoll(s, &end, 10);
        if (!errno && *end == '\0')
            return json_integer(i);
        double d = strtod(s, &end);
        if (*end == '\0' && isfinite(d))
            return json_real(d);
    }
    return json_string(s);
}

/* Rows as objects without column skip (-1: none). New reference. */
static json_t *rows_json(const table *t, int skip)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < t->nrows; i++) {
        json_t *o = json_object();
        if (!o || json_array_append_new(rows, o)) {
            json_decref(rows);
            return NULL;
        }
        for (int k = 0; k < t->head.n; k++)
            if (k != skip && json_object_set_new(o, t->head.field[k],
                                                 cell(t->rows[i].field[k], t->rows[i].quoted[k]))) {
                json_decref(rows);
                return NULL;
            }
    }
    return rows;
}

static int pick_label(const table *s, const table *q, const char *label, const char *spath)
{
    if (label) {
        int k = column(&s->head, label);
        if (k < 0)
            cli_err("adapt: %s has no column '%s' (--label)", spath, label);
        return k;
    }
    int found = -1, n = 0;
    for (int k = 0; k < s->head.n; k++)
        if (column(&q->head, s->head.field[k]) < 0) {
            found = k;
            n++;
        }
    if (n == 1)
        return found;
    if ((found = column(&s->head, "label")) >= 0)
        return found;
    cli_err("adapt: cannot tell which column of %s holds the labels; give --label COL", spath);
    return -1;
}

int cli_cmd_adapt(cli_ctx *ctx, const cli_args *args)
{
    const char *spath = cli_args_get(args, "support"), *qpath = cli_args_get(args, "query");
    const char *steps = cli_args_get(args, "steps"), *ckpt = cli_args_get(args, "checkpoint");
    table s, q;
    json_t *body = NULL, *labels = NULL;
    char *path = NULL;
    cli_resp r = {0};
    long long nsteps = 0;
    int rc = CLI_EXIT_USAGE, lab;

    if (!spath || !qpath) {
        cli_err("adapt: --support FILE and --query FILE are both required");
        fprintf(stderr, "Try 'mtlctl adapt --help'.\n");
        return CLI_EXIT_USAGE;
    }
    if (steps && cli_parse_count(steps, &nsteps)) {
        cli_err("adapt: --steps needs a step count >= 0 (got '%s')", steps);
        return CLI_EXIT_USAGE;
    }
    if (read_table(spath, &s))
        return CLI_EXIT_USAGE;
    if (read_table(qpath, &q)) {
        table_free(&s);
        return CLI_EXIT_USAGE;
    }
    if ((lab = pick_label(&s, &q, cli_args_get(args, "label"), spath)) < 0)
        goto out;
    if (!(labels = json_array()))
        goto oom;
    for (size_t i = 0; i < s.nrows; i++)
        if (json_array_append_new(labels, cell(s.rows[i].field[lab], s.rows[i].quoted[lab])))
            goto oom;
    body = json_pack("{s:{s:o,s:O},s:{s:o}}", "support", "rows", rows_json(&s, lab), "labels",
                     labels, "query", "rows", rows_json(&q, column(&q.head, s.head.field[lab])));
    if (!body || (steps && json_object_set_new(body, "steps", json_integer(nsteps))) ||
        (ckpt && json_object_set_new(body, "checkpoint", json_string(ckpt))) ||
        !(path = cli_http_id_path(ctx, "jobs", args->pos[0], "/adapt")))
        goto oom;
    rc = cli_http_json(ctx, "POST", path, NULL, body, &r);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body) && cli_pred_csv(r.json, 1) < 0)
        rc = CLI_EXIT_SERVER;
    goto out;
oom:
    cli_err("out of memory");
    rc = CLI_EXIT_USAGE;
out:
    json_decref(labels);
    json_decref(body);
    free(path);
    cli_resp_free(&r);
    table_free(&s);
    table_free(&q);
    return rc;
}
