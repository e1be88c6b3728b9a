/*
 * client/cmd_checkpoint.c — `mtlctl checkpoint import|list`: models trained
 * elsewhere (safetensors in mtld's MLP layout, docs/api.md) that jobs start
 * from with "from_checkpoint". import streams the file from disk with a
 * progress bar on a terminal, like a dataset upload; the server checks
 * every tensor and names the one at fault.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/out.h"
#include "client/progress.h"

const cli_opt cli_checkpoint_import_opts[] = {
    {"name", 0, "N", "a unique name to refer to it by (optional)"},
    {NULL, 0, NULL, NULL},
};

static void upload_progress(void *ud, long long down, long long down_total, long long up,
                            long long up_total)
{
    (void)down;
    (void)down_total;
    cli_progress_update(ud, up, up_total);
}

int cli_cmd_checkpoint_import(cli_ctx *ctx, const cli_args *args)
{
    const char *path = args->pos[0], *name = cli_args_get(args, "name");
    cli_buf q = {0};
    cli_resp r = {0};
    cli_progress bar;
    struct stat st;
    int rc = CLI_EXIT_USAGE;
    FILE *f = fopen(path, "rb");

    if (!f) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        cli_err("cannot import %s: not a regular file", path);
        goto out;
    }
    if (name && cli_query_add(ctx, &q, "name", name)) {
        cli_err("out of memory");
        goto out;
    }
    cli_req req = {.method = "POST",
                   .path = "/v1/checkpoints",
                   .query = q.data,
                   .content_type = "application/octet-stream",
                   .upload = f,
                   .upload_size = (long long)st.st_size,
                   .want_json = 1,
                   .on_progress = upload_progress,
                   .progress_ud = &bar};
    cli_progress_start(&bar, ctx, "import", (long long)st.st_size);
    rc = cli_http(ctx, &req, &r);
    cli_progress_end(&bar);
    if (rc != CLI_EXIT_OK || cli_out_json_mode(ctx, &r.body))
        goto out;
    char id[64], nm[128];
    cli_json_id(r.json, id, sizeof id);
    if (ctx->quiet) {
        printf("%s\n", id);
    } else {
        static const char *const first[] = {"id", "name", "bytes", NULL};
        cli_table *t = cli_table_new(2, NULL);
        cli_table_kv_ordered(t, r.json, first, NULL);
        printf("imported checkpoint %s %s\n\n", id,
               cli_json_text(json_object_get(r.json, "name"), nm, sizeof nm));
        rc = cli_table_print(ctx, t);
        cli_table_free(t);
    }
out:
    fclose(f);
    cli_buf_free(&q);
    cli_resp_free(&r);
    return rc;
}

static void checkpoint_row(cli_table *t, const json_t *c)
{
    char n[32], head[64] = "-";
    const json_t *h = json_object_get(c, "head");
    cli_table_cell_json(t, 0, json_object_get(c, "id"));
    cli_table_cell_json(t, 1, json_object_get(c, "name"));
    cli_table_cell_json(t, 2, json_object_get(c, "bytes"));
    snprintf(n, sizeof n, "%zu", json_array_size(json_object_get(c, "trunk")));
    cli_table_cell(t, 3, n);
    if (json_is_object(h))
        snprintf(head, sizeof head, "%" JSON_INTEGER_FORMAT "->%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(h, "in")),
                 json_integer_value(json_object_get(h, "out")));
    cli_table_cell(t, 4, head);
    cli_table_cell_json(t, 5, json_object_get(c, "created_at"));
}

int cli_cmd_checkpoint_list(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"ID", "NAME", "BYTES", "LAYERS", "HEAD", "CREATED"};
    static const cli_list_view view = {"checkpoints", 6, heads, 1u << 0 | 1u << 2 | 1u << 3, 1,
                                       checkpoint_row};
    return cli_list_show(ctx, args, "/v1/checkpoints", NULL, NULL, &view);
}
