/*
 * client/cmd_dataset.c — `mtlctl dataset upload|list|show|rows|rm`.
 *
 * upload streams the CSV from disk: the file is handed to the HTTP layer as
 * a FILE* with its size, so a file of any size costs a few kilobytes of
 * memory here. A pipe or stdin ('-') has no size and goes chunked. A file
 * named *.gz is sent compressed, as it is, with Content-Encoding: gzip (the
 * server inflates it as it parses). On a terminal a bar shows bytes sent,
 * rate and ETA (progress.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/out.h"
#include "client/progress.h"

const cli_opt cli_dataset_upload_opts[] = {
    {"name", 0, "N", "dataset name (default: FILE's basename without its extension)"},
    {"missing", 0, "POLICY", "missing cells: error, drop, fill or keep (default: the server's)"},
    {"delimiter", 0, "C", "field separator, one character such as , or ; (or 'tab')"},
    {"no-header", 0, NULL, "the file has no header row: columns are named c0, c1, ..."},
    {NULL, 0, NULL, NULL},
};

const cli_opt cli_dataset_rows_opts[] = {
    {"offset", 0, "N", "first row, counting from 0 (default 0)"},
    {"limit", 0, "N", "rows to show, 1-1000 (default 20)"},
    {NULL, 0, NULL, NULL},
};

/* 1 if path ends in ".gz": sent as it is, with Content-Encoding: gzip. */
static int is_gzip(const char *path)
{
    size_t n = strlen(path);
    return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* "data/so.csv" (or "so.csv.gz") → "so" into dst; "" if nothing is left. */
static void default_name(char *dst, size_t n, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen(base) - (is_gzip(base) ? 3 : 0);
    const char *dot = NULL;
    for (size_t k = blen; k > 1 && !dot; k--)
        if (base[k - 1] == '.')
            dot = base + k - 1;
    size_t len = (dot && dot != base) ? (size_t)(dot - base) : blen;
    if (len >= n)
        len = n - 1;
    memcpy(dst, base, len);
    dst[len] = '\0';
}

static void upload_progress(void *ud, long long down, long long down_total, long long up,
                            long long up_total)
{
    (void)down;
    (void)down_total;
    cli_progress_update(ud, up, up_total);
}

/* Number of UTF-8 characters in s. */
static size_t utf8_chars(const char *s)
{
    size_t k = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            k++;
    return k;
}

/* One table of columns: NAME TYPE LEVELS, plus every statistic any column
 * carries (in order of first appearance) when with_stats. */
static int print_columns(const cli_ctx *ctx, const json_t *columns, int with_stats)
{
    const char *heads[3 + CLI_MAX_OPTS] = {"NAME", "TYPE", "LEVELS"};
    const char *keys[CLI_MAX_OPTS];
    char upper[CLI_MAX_OPTS][32];
    size_t nkeys = 0, i;
    const json_t *col;

    if (with_stats) {
        json_array_foreach(columns, i, col)
        {
            const char *key;
            const json_t *v;
            json_object_foreach(json_object_get(col, "stats"), key, v)
            {
                size_t k = 0;
                if (json_is_object(v) || json_is_array(v))
                    continue; /* per-level counts and the like: see --json */
                while (k < nkeys && strcmp(keys[k], key) != 0)
                    k++;
                if (k == nkeys && nkeys < CLI_MAX_OPTS) {
                    keys[nkeys] = key;
                    size_t c = 0;
                    for (; key[c] && c + 1 < sizeof upper[0]; c++)
                        upper[nkeys][c] = (char)(key[c] >= 'a' && key[c] <= 'z'
                                                     ? key[c] - 'a' + 'A'
                                                     : key[c]);
                    upper[nkeys][c] = '\0';
                    heads[3 + nkeys] = upper[nkeys];
                    nkeys++;
                }
            }
        }
    }
    cli_table *t = cli_table_new(3 + nkeys, heads);
    for (size_t k = 0; k < nkeys; k++)
        cli_table_right(t, 3 + k);
    json_array_foreach(columns, i, col)
    {
        char levels[48];
        const json_t *lv = json_object_get(col, "levels");
        cli_table_row(t);
        cli_table_cell_json(t, 0, json_object_get(col, "name"));
        cli_table_cell_json(t, 1, json_object_get(col, "type"));
        cli_table_cell(t, 2, lv ? cli_json_text(lv, levels, sizeof levels) : NULL);
        for (size_t k = 0; k < nkeys; k++)
            cli_table_cell_json(t, 3 + k, json_object_get(json_object_get(col, "stats"), keys[k]));
    }
    int rc = cli_table_print(ctx, t);
    cli_table_free(t);
    return rc;
}

static int print_dataset(const cli_ctx *ctx, const json_t *ds, int with_stats)
{
    static const char *const first[] = {"id", "name", "rows", NULL};
    static const char *const skip[] = {"columns", NULL};
    const json_t *cols = json_object_get(ds, "columns");
    cli_table *kv = cli_table_new(2, NULL);
    cli_table_kv_ordered(kv, ds, first, skip);
    if (json_is_array(cols)) {
        char n[32];
        snprintf(n, sizeof n, "%zu", json_array_size(cols));
        cli_table_kv_text(kv, "columns", n, CLI_PLAIN);
    }
    int rc = cli_table_print(ctx, kv);
    cli_table_free(kv);
    if (rc == CLI_EXIT_OK && json_array_size(cols)) {
        fputc('\n', stdout);
        rc = print_columns(ctx, cols, with_stats);
    }
    return rc;
}

int cli_cmd_dataset_upload(cli_ctx *ctx, const cli_args *args)
{
    const char *path = args->pos[0];
    const char *name = cli_args_get(args, "name");
    const char *missing = cli_args_get(args, "missing");
    const char *delim = cli_args_get(args, "delimiter");
    const char *no_header = cli_args_get(args, "no-header");
    char defname[256];
    cli_buf q = {0};
    cli_resp r = {0};
    FILE *f = NULL;
    cli_progress bar;
    long long size = -1;
    int rc = CLI_EXIT_USAGE;

    if (!name) {
        if (strcmp(path, "-") == 0) {
            cli_err("dataset upload: reading stdin needs --name");
            return CLI_EXIT_USAGE;
        }
        default_name(defname, sizeof defname, path);
        name = defname;
    }
    if (!*name) {
        cli_err("dataset upload: cannot derive a name from '%s'; give --name", path);
        return CLI_EXIT_USAGE;
    }
    if (delim) {
        if (strcmp(delim, "tab") == 0 || strcmp(delim, "\\t") == 0)
            delim = "\t";
        if (utf8_chars(delim) != 1) {
            cli_err("dataset upload: --delimiter must be one character (got '%s')", delim);
            return CLI_EXIT_USAGE;
        }
    }

    if (strcmp(path, "-") == 0) {
        f = stdin;
    } else {
        struct stat st;
        if (!(f = fopen(path, "rb"))) {
            cli_err("cannot open %s: %s", path, strerror(errno));
            return CLI_EXIT_USAGE;
        }
        if (fstat(fileno(f), &st) != 0) {
            cli_err("cannot upload %s: %s", path, strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            cli_err("cannot upload %s: it is a directory", path);
            goto out;
        }
        if (S_ISREG(st.st_mode))
            size = (long long)st.st_size;
    }

    if (cli_query_add(ctx, &q, "name", name) ||
        (missing && cli_query_add(ctx, &q, "missing", missing)) ||
        (delim && cli_query_add(ctx, &q, "delimiter", delim)) ||
        (no_header && cli_query_add(ctx, &q, "header", "false"))) {
        cli_err("out of memory");
        goto out;
    }
    cli_req req = {.method = "POST",
                   .path = "/v1/datasets",
                   .query = q.data,
                   .content_type = "text/csv",
                   .upload = f,
                   .upload_size = size,
                   .want_json = 1,
                   .on_progress = upload_progress,
                   .progress_ud = &bar};
    const char *gz_hdrs[] = {"Content-Encoding: gzip", NULL};
    if (is_gzip(path))
        req.headers = gz_hdrs;
    char label[80];
    snprintf(label, sizeof label, "upload %.64s", name);
    cli_progress_start(&bar, ctx, label, size);
    rc = cli_http(ctx, &req, &r);
    cli_progress_end(&bar);
    if (rc != CLI_EXIT_OK || cli_out_json_mode(ctx, &r.body))
        goto out;
    char id[64];
    cli_json_id(r.json, id, sizeof id);
    if (ctx->quiet) {
        printf("%s\n", id);
    } else {
        char nm[256], rows[32];
        cli_json_text(json_object_get(r.json, "name"), nm, sizeof nm);
        cli_json_text(json_object_get(r.json, "rows"), rows, sizeof rows);
        json_int_t dropped = json_integer_value(json_object_get(r.json, "dropped_rows"));
        char extra[64] = "";
        if (dropped > 0)
            snprintf(extra, sizeof extra, " (%" JSON_INTEGER_FORMAT " dropped)", dropped);
        printf("dataset %s %s: %s rows%s, %zu columns\n", id, nm, rows, extra,
               json_array_size(json_object_get(r.json, "columns")));
        if (json_array_size(json_object_get(r.json, "columns"))) {
            fputc('\n', stdout);
            rc = print_columns(ctx, json_object_get(r.json, "columns"), 0);
        }
    }
out:
    if (f && f != stdin)
        fclose(f);
    cli_buf_free(&q);
    cli_resp_free(&r);
    return rc;
}

static void dataset_row(cli_table *t, const json_t *ds)
{
    const json_t *cols = json_object_get(ds, "columns");
    char n[32];
    cli_table_cell_json(t, 0, json_object_get(ds, "id"));
    cli_table_cell_json(t, 1, json_object_get(ds, "name"));
    cli_table_cell_json(t, 2, json_object_get(ds, "rows"));
    if (json_is_array(cols)) {
        snprintf(n, sizeof n, "%zu", json_array_size(cols));
        cli_table_cell(t, 3, n);
    } else {
        cli_table_cell_json(t, 3, cols); /* a count, if the server sends one */
    }
    cli_table_cell_json(t, 4, json_object_get(ds, "created_at"));
}

int cli_cmd_dataset_list(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"ID", "NAME", "ROWS", "COLUMNS", "CREATED"};
    static const cli_list_view view = {"datasets", 5, heads, 1u << 0 | 1u << 2 | 1u << 3, 1,
                                       dataset_row};
    return cli_list_show(ctx, args, "/v1/datasets", NULL, NULL, &view);
}

static int print_dataset_full(const cli_ctx *ctx, const json_t *ds)
{
    return print_dataset(ctx, ds, 1);
}

int cli_cmd_dataset_show(cli_ctx *ctx, const cli_args *args)
{
    return cli_show(ctx, "datasets", args->pos[0], print_dataset_full);
}

/* A cell of a preview row: numbers as short as they are exact. */
static void row_cell(cli_table *t, size_t col, const json_t *v)
{
    char buf[64];
    if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.10g", json_real_value(v));
        cli_table_cell(t, col, buf);
    } else {
        cli_table_cell_json(t, col, v);
    }
}

int cli_cmd_dataset_rows(cli_ctx *ctx, const cli_args *args)
{
    const char *offset = cli_args_get(args, "offset"), *limit = cli_args_get(args, "limit");
    cli_buf q = {0};
    cli_resp r = {0}, d = {0};
    long long n;
    int rc = CLI_EXIT_USAGE;

    if ((offset && cli_parse_count(offset, &n)) || (limit && cli_parse_count(limit, &n))) {
        cli_err("dataset rows: --offset and --limit need whole numbers >= 0");
        return CLI_EXIT_USAGE;
    }
    if ((offset && cli_query_add(ctx, &q, "offset", offset)) ||
        (limit && cli_query_add(ctx, &q, "limit", limit))) {
        cli_err("out of memory");
        goto out;
    }
    rc = cli_http_id(ctx, "GET", "datasets", args->pos[0], "/rows", q.data, &r);
    if (rc != CLI_EXIT_OK || cli_out_json_mode(ctx, &r.body))
        goto out;
    /* the column names come with the dataset */
    rc = cli_http_id(ctx, "GET", "datasets", args->pos[0], NULL, NULL, &d);
    if (rc != CLI_EXIT_OK)
        goto out;
    const json_t *cols = json_object_get(d.json, "columns"), *row, *c;
    size_t ncols = json_array_size(cols), i, k;
    if (ncols == 0 || ncols > 4096) {
        cli_err("the server described dataset %s without columns", args->pos[0]);
        rc = CLI_EXIT_SERVER;
        goto out;
    }
    const char **heads = calloc(ncols, sizeof *heads);
    if (!heads) {
        cli_err("out of memory");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    json_array_foreach(cols, k, c) heads[k] = json_string_value(json_object_get(c, "name"));
    cli_table *t = cli_table_new(ncols, heads);
    free(heads);
    json_array_foreach(cols, k, c) if (json_is_string(json_object_get(c, "type")) &&
                                       strcmp(json_string_value(json_object_get(c, "type")),
                                              "number") == 0) cli_table_right(t, k);
    json_array_foreach(json_object_get(r.json, "rows"), i, row)
    {
        cli_table_row(t);
        for (k = 0; k < ncols; k++)
            row_cell(t, k, json_array_get(row, k));
    }
    rc = cli_table_print(ctx, t);
    cli_table_free(t);
    json_int_t total = json_integer_value(json_object_get(r.json, "total"));
    json_int_t first = json_integer_value(json_object_get(r.json, "offset"));
    size_t shown = json_array_size(json_object_get(r.json, "rows"));
    if (rc == CLI_EXIT_OK && !ctx->quiet && total > (json_int_t)shown)
        printf("(rows %" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
               ")\n",
               first, first + (json_int_t)shown - (shown ? 1 : 0), total);
out:
    cli_buf_free(&q);
    cli_resp_free(&r);
    cli_resp_free(&d);
    return rc;
}

int cli_cmd_dataset_rm(cli_ctx *ctx, const cli_args *args)
{
    return cli_delete(ctx, "datasets", "dataset", args->pos[0]);
}
