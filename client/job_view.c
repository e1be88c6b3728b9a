/*
 * client/job_view.c — a job for people (see job_view.h).
 *
 * The results object is keyed by task name, but may hold other members
 * (e.g. "few_shot"). A member counts as per-task metrics only if it is an
 * object with at least one known metric key and every known metric key it
 * has is a number or null; everything else is shown after the table, so
 * nothing the server sends is hidden and nothing odd lands in the table.
 */
#include "client/job_view.h"

#include <string.h>

#include "client/out.h"

static const char *const cls_keys[] = {"accuracy", "macro_f1", "loss"};
static const char *const reg_keys[] = {"r2", "mae", "mse"};
static const char *const cls_heads[] = {"ACCURACY", "MACRO_F1", "LOSS"};
static const char *const reg_heads[] = {"R2", "MAE", "MSE"};

const char *cli_job_state(const json_t *job)
{
    return json_string_value(json_object_get(job, "state"));
}

int cli_job_state_final(const char *state)
{
    return state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "cancelled") == 0);
}

double cli_job_progress(const json_t *job)
{
    const json_t *p = json_object_get(job, "progress");
    double v = 0;
    if (json_is_number(p)) {
        v = json_number_value(p);
    } else {
        double step = json_number_value(json_object_get(job, "step"));
        double steps = json_number_value(json_object_get(job, "steps"));
        if (steps > 0)
            v = step / steps;
    }
    return v > 1 ? 1 : v >= 0 ? v : 0; /* also turns NaN into 0 */
}

const char *cli_job_progress_text(const json_t *job, char *dst, size_t n)
{
    const json_t *step = json_object_get(job, "step");
    const json_t *steps = json_object_get(job, "steps");
    double pct = 100.0 * cli_job_progress(job);
    if (json_is_integer(step) && json_is_integer(steps) && json_integer_value(steps) > 0)
        snprintf(dst, n, "%.1f%% (step %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT ")", pct,
                 json_integer_value(step), json_integer_value(steps));
    else
        snprintf(dst, n, "%.1f%%", pct);
    return dst;
}

static int has_key(const json_t *o, const char *const *keys, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (json_object_get(o, keys[k]))
            return 1;
    return 0;
}

static int is_task_metrics(const json_t *v)
{
    if (!json_is_object(v) || !(has_key(v, cls_keys, 3) || has_key(v, reg_keys, 3)))
        return 0;
    for (size_t k = 0; k < 3; k++) {
        const json_t *a = json_object_get(v, cls_keys[k]), *b = json_object_get(v, reg_keys[k]);
        if ((a && !json_is_number(a) && !json_is_null(a)) ||
            (b && !json_is_number(b) && !json_is_null(b)))
            return 0;
    }
    return 1;
}

static int is_regression(const json_t *v)
{
    return json_object_get(v, "mse") != NULL;
}

static void number_cell(cli_table *t, size_t col, const json_t *v)
{
    char buf[64];
    if (json_is_number(v)) {
        cli_fmt_num(buf, sizeof buf, json_number_value(v));
        cli_table_cell(t, col, buf);
    }
}

/* "few_shot": a line of its settings, then STEPS ACCURACY|MSE CI95. */
static int print_few_shot(const cli_ctx *ctx, const json_t *fs)
{
    static const char *const known[] = {"ways", "shots", "queries", "episodes", "steps",
                                        "accuracy", "mse", "ci95", NULL};
    const char *mname = json_object_get(fs, "accuracy") ? "accuracy" : "mse";
    const json_t *m = json_object_get(fs, mname), *ci = json_object_get(fs, "ci95");
    char w[32], s[32], q[32], e[32];
    int rc = CLI_EXIT_OK;

    printf("few-shot: %s-way %s-shot, %s queries, %s episodes\n",
           cli_json_text(json_object_get(fs, "ways"), w, sizeof w),
           cli_json_text(json_object_get(fs, "shots"), s, sizeof s),
           cli_json_text(json_object_get(fs, "queries"), q, sizeof q),
           cli_json_text(json_object_get(fs, "episodes"), e, sizeof e));
    if (json_is_object(m)) {
        const char *heads[] = {"STEPS", strcmp(mname, "mse") == 0 ? "MSE" : "ACCURACY", "CI95"};
        const char *key;
        const json_t *v;
        cli_table *t = cli_table_new(3, heads);
        for (size_t c = 0; c < 3; c++)
            cli_table_right(t, c);
        json_object_foreach((json_t *)m, key, v)
        {
            cli_table_row(t);
            cli_table_cell(t, 0, key);
            number_cell(t, 1, v);
            number_cell(t, 2, json_object_get(ci, key));
        }
        rc = cli_table_print(ctx, t);
        cli_table_free(t);
    }
    cli_table *kv = cli_table_new(2, NULL);
    cli_table_kv(kv, "few_shot", fs, known);
    if (rc == CLI_EXIT_OK && cli_table_rows(kv))
        rc = cli_table_print(ctx, kv);
    cli_table_free(kv);
    return rc;
}

int cli_job_print_results(const cli_ctx *ctx, const json_t *results)
{
    const char *key;
    const json_t *v;
    int any_cls = 0, any_reg = 0, rc = CLI_EXIT_OK;
    size_t ncols = 2;
    const char *heads[8] = {"TASK", "KIND"};

    json_object_foreach((json_t *)results, key, v)
    {
        if (!is_task_metrics(v))
            continue;
        if (is_regression(v))
            any_reg = 1;
        else
            any_cls = 1;
    }
    size_t cls_at = ncols;
    for (size_t k = 0; any_cls && k < 3; k++)
        heads[ncols++] = cls_heads[k];
    size_t reg_at = ncols;
    for (size_t k = 0; any_reg && k < 3; k++)
        heads[ncols++] = reg_heads[k];

    if (any_cls || any_reg) {
        cli_table *t = cli_table_new(ncols, heads);
        for (size_t c = 2; c < ncols; c++)
            cli_table_right(t, c);
        json_object_foreach((json_t *)results, key, v)
        {
            if (!is_task_metrics(v))
                continue;
            int reg = is_regression(v);
            cli_table_row(t);
            cli_table_cell(t, 0, key);
            cli_table_cell(t, 1, reg ? "regression" : "classification");
            for (size_t k = 0; k < 3; k++) {
                if (any_cls)
                    number_cell(t, cls_at + k, json_object_get(v, cls_keys[k]));
                if (any_reg)
                    number_cell(t, reg_at + k, json_object_get(v, reg_keys[k]));
            }
            /* The trivial predictor on the same split, right under the task,
             * so the reader sees at once what the model adds. */
            const json_t *b = json_object_get(v, "baseline");
            if (json_is_object(b)) {
                char label[160];
                snprintf(label, sizeof label, "  %s", "baseline");
                cli_table_row(t);
                cli_table_cell(t, 0, label);
                cli_table_cell(t, 1, reg ? "mean predictor" : "majority class");
                for (size_t k = 0; k < 3; k++) {
                    if (any_cls && !reg)
                        number_cell(t, cls_at + k, json_object_get(b, cls_keys[k]));
                    if (any_reg && reg)
                        number_cell(t, reg_at + k, json_object_get(b, reg_keys[k]));
                }
            }
        }
        rc = cli_table_print(ctx, t);
        cli_table_free(t);
    }

    /* Everything that is not a per-task metrics object. */
    cli_table *kv = cli_table_new(2, NULL);
    json_object_foreach((json_t *)results, key, v)
    {
        if (is_task_metrics(v))
            continue;
        if (strcmp(key, "few_shot") == 0 && json_is_object(v)) {
            if (rc == CLI_EXIT_OK) {
                if (any_cls || any_reg)
                    fputc('\n', stdout);
                rc = print_few_shot(ctx, v);
            }
            continue;
        }
        if (json_is_object(v) && json_object_size(v)) {
            cli_table_kv(kv, key, v, NULL);
        } else {
            char text[512];
            cli_table_kv_text(kv, key, cli_json_text(v, text, sizeof text), CLI_PLAIN);
        }
    }
    if (rc == CLI_EXIT_OK && cli_table_rows(kv)) {
        fputc('\n', stdout);
        rc = cli_table_print(ctx, kv);
    }
    cli_table_free(kv);
    return rc;
}

int cli_job_print(const cli_ctx *ctx, const json_t *job)
{
    static const char *const first[] = {"id", "name", "algorithm", "state", "progress",
                                        "created_at", "started_at", "finished_at", NULL};
    static const char *const skip[] = {"id", "name", "algorithm", "state", "progress",
                                       "created_at", "started_at", "finished_at", "step",
                                       "steps", "error", "results", NULL};
    char text[512];
    cli_table *kv = cli_table_new(2, NULL);

    for (size_t k = 0; first[k]; k++) {
        const json_t *v = json_object_get(job, first[k]);
        if (strcmp(first[k], "progress") == 0) {
            if (v || json_object_get(job, "step"))
                cli_table_kv_text(kv, "progress", cli_job_progress_text(job, text, sizeof text),
                                  CLI_PLAIN);
        } else if (v) {
            cli_table_kv_text(kv, first[k], cli_json_text(v, text, sizeof text),
                              strcmp(first[k], "state") == 0
                                  ? cli_state_color(json_string_value(v))
                                  : CLI_PLAIN);
        }
    }
    cli_table_kv(kv, NULL, job, skip);

    const json_t *err = json_object_get(job, "error");
    if (json_is_object(err)) {
        char msg[400], code[64];
        cli_json_text(json_object_get(err, "message"), msg, sizeof msg);
        cli_json_text(json_object_get(err, "code"), code, sizeof code);
        snprintf(text, sizeof text, "%s (%s)", msg, code);
        cli_table_kv_text(kv, "error", text, CLI_RED);
    } else if (err && !json_is_null(err)) {
        cli_table_kv_text(kv, "error", cli_json_text(err, text, sizeof text), CLI_RED);
    }
    int rc = cli_table_print(ctx, kv);
    cli_table_free(kv);

    const json_t *results = json_object_get(job, "results");
    if (rc == CLI_EXIT_OK && json_is_object(results) && json_object_size(results)) {
        fputc('\n', stdout);
        rc = cli_job_print_results(ctx, results);
    }
    return rc;
}
