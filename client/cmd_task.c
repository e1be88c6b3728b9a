/*
 * client/cmd_task.c — `mtlctl task create|list|show|rm`.
 *
 * create builds the JSON body from flags: either a task on a dataset column
 * (--dataset, --target and optional --kind/--features/--exclude/
 * --class-weight) or a generated family (--generator). Which combinations
 * make sense is checked here; whether the names exist is the server's call.
 */
#include <string.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/out.h"

const cli_opt cli_task_create_opts[] = {
    {"name", 0, "N", "task name (required)"},
    {"dataset", 0, "D", "dataset id or name"},
    {"target", 0, "COL", "the column to predict"},
    {"kind", 0, "KIND", "classification or regression (default: the server decides)"},
    {"features", 0, "a,b", "input columns (default: all but the target and --exclude)"},
    {"exclude", 0, "a,b", "columns to leave out of the inputs"},
    {"class-weight", 0, "balanced", "weight classes inversely to their frequency"},
    {"generator", 0, "NAME", "a built-in task family instead of a dataset: sinusoid"},
    {NULL, 0, NULL, NULL},
};

/* "a, b,c" → ["a","b","c"] (new reference), or NULL after printing why. */
static json_t *split_list(const char *flag, const char *s)
{
    json_t *arr = json_array();
    if (!arr)
        goto oom;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (!len) {
            cli_err("task create: --%s has an empty name in '%s'", flag, s);
            json_decref(arr);
            return NULL;
        }
        json_t *item = json_stringn(p, len);
        if (!item) {
            cli_err("task create: --%s is not valid UTF-8", flag);
            json_decref(arr);
            return NULL;
        }
        if (json_array_append_new(arr, item))
            goto oom;
        if (!comma)
            break;
        p = comma + 1;
    }
    return arr;
oom:
    json_decref(arr);
    cli_err("out of memory");
    return NULL;
}

static int set_str(json_t *body, const char *key, const char *value);

/* A dataset given as digits is sent as an integer id, anything else as a
 * name: the contract accepts either. */
static int set_ref(json_t *body, const char *key, const char *value)
{
    long long id;
    if (value && cli_parse_count(value, &id) == 0) {
        if (json_object_set_new(body, key, json_integer((json_int_t)id))) {
            cli_err("out of memory");
            return -1;
        }
        return 0;
    }
    return set_str(body, key, value);
}

/* body[key] = value when value is given; -1 after printing why. */
static int set_str(json_t *body, const char *key, const char *value)
{
    if (!value)
        return 0;
    json_t *s = json_string(value);
    if (!s) {
        cli_err("task create: the %s '%s' is not valid UTF-8", key, value);
        return -1;
    }
    if (json_object_set_new(body, key, s)) {
        cli_err("out of memory");
        return -1;
    }
    return 0;
}

int cli_cmd_task_create(cli_ctx *ctx, const cli_args *args)
{
    const char *name = cli_args_get(args, "name");
    const char *dataset = cli_args_get(args, "dataset");
    const char *target = cli_args_get(args, "target");
    const char *kind = cli_args_get(args, "kind");
    const char *features = cli_args_get(args, "features");
    const char *exclude = cli_args_get(args, "exclude");
    const char *cw = cli_args_get(args, "class-weight");
    const char *generator = cli_args_get(args, "generator");
    json_t *body = NULL, *list;
    cli_resp r = {0};
    int rc = CLI_EXIT_USAGE;

    if (!name) {
        cli_err("task create: --name is required");
        return rc;
    }
    if (generator && (dataset || target || kind || features || exclude || cw)) {
        cli_err("task create: --generator excludes --dataset, --target, --kind, --features, "
                "--exclude and --class-weight");
        return rc;
    }
    if (!generator && (!dataset || !target)) {
        cli_err("task create: give --dataset and --target, or --generator");
        return rc;
    }
    if (!(body = json_object()))
        goto oom;
    if (set_str(body, "name", name) || set_str(body, "generator", generator) ||
        set_ref(body, "dataset", dataset) || set_str(body, "target", target) ||
        set_str(body, "kind", kind))
        goto out;
    if (features) {
        if (!(list = split_list("features", features)))
            goto out;
        if (json_object_set_new(body, "features", list))
            goto oom;
    }
    if (exclude) {
        if (!(list = split_list("exclude", exclude)))
            goto out;
        if (json_object_set_new(body, "exclude", list))
            goto oom;
    }
    if (set_str(body, "class_weight", cw))
        goto out;

    rc = cli_http_json(ctx, "POST", "/v1/tasks", NULL, body, &r);
    if (rc != CLI_EXIT_OK || cli_out_json_mode(ctx, &r.body))
        goto out;
    char id[64];
    cli_json_id(r.json, id, sizeof id);
    if (ctx->quiet) {
        printf("%s\n", id);
    } else {
        char nm[256], kd[64];
        cli_json_text(json_object_get(r.json, "name"), nm, sizeof nm);
        cli_json_text(json_object_get(r.json, "kind"), kd, sizeof kd);
        printf("task %s %s (%s)\n", id, nm, kd);
    }
    goto out;
oom:
    cli_err("out of memory");
    rc = CLI_EXIT_USAGE;
out:
    json_decref(body);
    cli_resp_free(&r);
    return rc;
}

static void task_row(cli_table *t, const json_t *tk)
{
    const json_t *gen = json_object_get(tk, "generator");
    const json_t *feats = json_object_get(tk, "features");
    char buf[300], g[256];
    cli_table_cell_json(t, 0, json_object_get(tk, "id"));
    cli_table_cell_json(t, 1, json_object_get(tk, "name"));
    cli_table_cell_json(t, 2, json_object_get(tk, "kind"));
    if (gen && !json_is_null(gen)) {
        snprintf(buf, sizeof buf, "generator:%s", cli_json_text(gen, g, sizeof g));
        cli_table_cell(t, 3, buf);
    } else {
        cli_table_cell_json(t, 3, json_object_get(tk, "dataset"));
    }
    cli_table_cell_json(t, 4, json_object_get(tk, "target"));
    if (json_is_array(feats)) {
        snprintf(buf, sizeof buf, "%zu", json_array_size(feats));
        cli_table_cell(t, 5, buf);
    }
    cli_table_cell_json(t, 6, json_object_get(tk, "created_at"));
}

int cli_cmd_task_list(cli_ctx *ctx, const cli_args *args)
{
    static const char *const heads[] = {"ID",     "NAME",     "KIND",   "DATASET",
                                        "TARGET", "FEATURES", "CREATED"};
    static const cli_list_view view = {"tasks", 7, heads, 1u << 0 | 1u << 5, 1, task_row};
    return cli_list_show(ctx, args, "/v1/tasks", NULL, NULL, &view);
}

static int print_task(const cli_ctx *ctx, const json_t *tk)
{
    static const char *const first[] = {"id", "name", "kind", "dataset", "target", NULL};
    cli_table *kv = cli_table_new(2, NULL);
    cli_table_kv_ordered(kv, tk, first, NULL);
    int rc = cli_table_print(ctx, kv);
    cli_table_free(kv);
    return rc;
}

int cli_cmd_task_show(cli_ctx *ctx, const cli_args *args)
{
    return cli_show(ctx, "tasks", args->pos[0], print_task);
}

int cli_cmd_task_rm(cli_ctx *ctx, const cli_args *args)
{
    return cli_delete(ctx, "tasks", "task", args->pos[0]);
}
