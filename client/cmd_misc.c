/*
 * client/cmd_misc.c — `mtlctl health` and `mtlctl metrics`, and what the
 * dataset, task, job and checkpoint commands share: fetching and printing a
 * list page or one resource, and deleting one. (`version` lives with the
 * global --version in main.c.)
 */
#include <string.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/out.h"

int cli_cmd_health(cli_ctx *ctx, const cli_args *args)
{
    cli_resp r;
    (void)args;
    int rc = cli_http_json(ctx, "GET", "/v1/health", NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body)) {
        char status[64], version[64];
        cli_json_text(json_object_get(r.json, "status"), status, sizeof status);
        cli_json_text(json_object_get(r.json, "version"), version, sizeof version);
        if (ctx->quiet) {
            printf("%s\n", status);
        } else {
            cli_color c = strcmp(status, "ok") == 0 ? CLI_GREEN : CLI_YELLOW;
            printf("%s%s%s (mtld %s at %s)\n", cli_color_on(ctx, c), status,
                   cli_color_off(ctx, c), version, ctx->url);
        }
    }
    cli_resp_free(&r);
    return rc;
}

/* GET /metrics: Prometheus text, printed as received (every mode). */
int cli_cmd_server_metrics(cli_ctx *ctx, const cli_args *args)
{
    cli_req req = {.path = "/metrics", .accept = "text/plain"};
    cli_resp r;
    (void)args;
    int rc = cli_http(ctx, &req, &r);
    if (rc == CLI_EXIT_OK)
        cli_out_raw(&r.body);
    cli_resp_free(&r);
    return rc;
}

const cli_opt cli_list_opts[] = {
    {"limit", 0, "N", "at most N items, 1-1000 (default: the server's, 100)"},
    {"offset", 0, "N", "skip the first N items (page with offset += limit)"},
    {NULL, 0, NULL, NULL},
};

int cli_list_get(cli_ctx *ctx, const cli_args *args, const char *path, const char *key,
                 const char *val, cli_resp *r)
{
    const char *limit = cli_args_get(args, "limit"), *offset = cli_args_get(args, "offset");
    cli_buf q = {0};
    long long n;
    memset(r, 0, sizeof *r);
    if ((limit && cli_parse_count(limit, &n)) || (offset && cli_parse_count(offset, &n))) {
        cli_err("--limit and --offset need whole numbers >= 0");
        return CLI_EXIT_USAGE;
    }
    if ((limit && cli_query_add(ctx, &q, "limit", limit)) ||
        (offset && cli_query_add(ctx, &q, "offset", offset)) ||
        (val && cli_query_add(ctx, &q, key, val))) {
        cli_buf_free(&q);
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    int rc = cli_http_json(ctx, "GET", path, q.data, NULL, r);
    cli_buf_free(&q);
    return rc;
}

void cli_list_footer(const cli_ctx *ctx, const json_t *reply, const json_t *list)
{
    json_int_t total = json_integer_value(json_object_get(reply, "total"));
    json_int_t offset = json_integer_value(json_object_get(reply, "offset"));
    size_t n = json_array_size(list);
    if (ctx->quiet || total <= (json_int_t)n)
        return;
    json_int_t last = offset + (json_int_t)n;
    if (n && last < total)
        printf("(%" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
               "; more with --offset %" JSON_INTEGER_FORMAT ")\n",
               offset + 1, last, total, last);
    else if (n)
        printf("(%" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
               ")\n",
               offset + 1, last, total);
    else
        printf("(none at offset %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT ")\n", offset,
               total);
}

int cli_list_print(cli_ctx *ctx, const cli_resp *r, const cli_list_view *v)
{
    const json_t *list = json_object_get(r->json, v->member), *item;
    size_t i;
    int rc = CLI_EXIT_OK;

    if (cli_out_json_mode(ctx, &r->body))
        return rc;
    if (ctx->quiet) {
        char id[64];
        json_array_foreach(list, i, item) printf("%s\n", cli_json_id(item, id, sizeof id));
        return rc;
    }
    cli_table *t = cli_table_new(v->ncols, v->heads);
    for (size_t k = 0; k < v->ncols; k++)
        if (v->right & (1u << k))
            cli_table_right(t, k);
    json_array_foreach(list, i, item)
    {
        cli_table_row(t);
        v->row(t, item);
    }
    rc = cli_table_print(ctx, t);
    cli_table_free(t);
    if (rc == CLI_EXIT_OK && v->paged)
        cli_list_footer(ctx, r->json, list);
    return rc;
}

int cli_list_show(cli_ctx *ctx, const cli_args *args, const char *path, const char *key,
                  const char *val, const cli_list_view *v)
{
    cli_resp r;
    int rc = cli_list_get(ctx, args, path, key, val, &r);
    if (rc == CLI_EXIT_OK)
        rc = cli_list_print(ctx, &r, v);
    cli_resp_free(&r);
    return rc;
}

int cli_show(cli_ctx *ctx, const char *collection, const char *id,
             int (*print)(const cli_ctx *ctx, const json_t *obj))
{
    cli_resp r;
    int rc = cli_http_id(ctx, "GET", collection, id, NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body)) {
        if (ctx->quiet) {
            char buf[64];
            printf("%s\n", cli_json_id(r.json, buf, sizeof buf));
        } else {
            rc = print(ctx, r.json);
        }
    }
    cli_resp_free(&r);
    return rc;
}

int cli_delete(cli_ctx *ctx, const char *collection, const char *noun, const char *id)
{
    cli_resp r;
    int rc = cli_http_id(ctx, "DELETE", collection, id, NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !cli_out_json_mode(ctx, &r.body) && !ctx->quiet) {
        char clean[256];
        cli_out_clean(clean, sizeof clean, id);
        printf("deleted %s %s\n", noun, clean);
    }
    cli_resp_free(&r);
    return rc;
}
