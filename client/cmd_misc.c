/*
 * client/cmd_misc.c — `mtlctl health` and `mtlctl metrics`, and what the dataset, task and job
 * commands share: deleting a resource. (`version` lives with the global
 * --version in main.c.)
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
