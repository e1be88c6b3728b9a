/*
 * tests/integration/test_sampling.c — a multi-task job whose tasks come
 * from different datasets, against a real mtld: the Stack Overflow table
 * (data/stackoverflow) is cut by rows into two CSV files, one keeping only
 * the salary target (and losing the hobby column), the other only the
 * remote target. Round robin trains both tasks past their held-out
 * baselines, each evaluated on its own dataset's held-out rows; a job
 * stopped with SIGTERM resumes to exactly the results and metrics of an
 * uninterrupted one; proportional sampling trains too; the weightings that
 * need every task on one batch, and baselines, are 422s naming the key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/harness.h"

static const char *J = "application/json";

/* Copies rows [from, to) of the table (1 = the first data row) into path,
 * without the columns named in drop (comma-separated, with commas around). */
static void cut(const char *path, int from, int to, const char *drop)
{
    size_t len;
    char *src = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(src);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    int keep[64], ncol = 0, row = 0;
    for (char *line = strtok(src, "\n"); line; line = strtok(NULL, "\n"), row++) {
        if (row > 0 && (row < from || row >= to))
            continue;
        int c = 0, first = 1;
        for (char *p = line; p; c++) {
            char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (row == 0) {
                char name[80];
                snprintf(name, sizeof name, ",%.*s,", (int)n, p);
                ck_assert_int_lt(c, 64);
                keep[c] = strstr(drop, name) == NULL;
                ncol = c + 1;
            }
            ck_assert_int_lt(c, ncol);
            if (keep[c]) {
                fprintf(f, "%s%.*s", first ? "" : ",", (int)n, p);
                first = 0;
            }
            p = comma ? comma + 1 : NULL;
        }
        fputc('\n', f);
    }
    ck_assert_int_eq(fclose(f), 0);
    free(src);
}

static void define(mtld_proc *p, const char *dir)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/so_salary.csv", dir);
    snprintf(b, sizeof b, "%s/so_remote.csv", dir);
    cut(a, 1, 1201, ",remote,hobby,");
    cut(b, 1201, 2401, ",salary,");
    json_decref(h_upload(p, "a", a, 201));
    json_decref(h_upload(p, "b", b, 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"a\",\"target\":\"salary\"}", 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"b\",\"target\":\"remote\","
                            "\"kind\":\"classification\",\"class_weight\":\"balanced\"}",
                            201));
}

static double num(json_t *res, const char *task, const char *a, const char *b)
{
    json_t *o = json_object_get(json_object_get(res, task), a);
    return json_number_value(b ? json_object_get(o, b) : o);
}

/* Both tasks learn something their baseline (the training mean, the
 * majority class; remote is weighted "balanced") does not, on their own
 * dataset's held-out rows. */
static void check_learned(json_t *job)
{
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "succeeded");
    json_t *res = json_object_get(job, "results");
    double mse = num(res, "salary", "mse", NULL), base_mse = num(res, "salary", "baseline", "mse");
    double f1 = num(res, "remote", "macro_f1", NULL),
           base_f1 = num(res, "remote", "baseline", "macro_f1");
    ck_assert_msg(mse < 0.9 * base_mse, "salary mse %g, baseline %g", mse, base_mse);
    /* always "not remote" gives macro-F1 ~0.47 on this 10%-positive task */
    ck_assert_msg(f1 > base_f1, "remote macro_f1 %g, baseline %g", f1, base_f1);
    /* 1200 rows each, split 70/10/20 by default: every row is in one split */
    json_t *rows = json_object_get(res, "rows");
    ck_assert_int_eq(json_integer_value(json_object_get(rows, "train")) +
                         json_integer_value(json_object_get(rows, "validation")) +
                         json_integer_value(json_object_get(rows, "test")),
                     2400);
    ck_assert_int_gt(json_integer_value(json_object_get(rows, "validation")), 0);
}

START_TEST(round_robin_trains_both_and_resumes_bit_identically)
{
    mtld_proc p;
    char dir[256];
    static const char *spec =
        "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"sampling\":\"round_robin\",\"model\":{\"trunk\":[32]},\"epochs\":40,"
        "\"batch_size\":32,\"seed\":4,\"checkpoint_every\":20}";
    h_tmpdir(dir, sizeof dir);
    h_start(&p, dir, NULL);
    define(&p, dir);
    h_resumed run = h_run_resumed(&p, dir, spec, 70); /* mid-epoch, after a checkpoint */
    check_learned(run.ja);
    check_learned(run.jb);
    h_expect_same_results(run.ja, run.jb);
    h_expect_same_metrics(&p, run.a, run.b);
    json_decref(run.ja);
    json_decref(run.jb);

    /* proportional: the tasks drawn in proportion to their training rows */
    long long c = h_submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                               "\"sampling\":\"proportional\",\"model\":{\"trunk\":[32]},"
                               "\"epochs\":12,\"batch_size\":32,\"seed\":4}");
    json_t *jc = h_wait_job(&p, c, 300);
    check_learned(jc);
    json_decref(jc);

    /* what needs every task on one batch is refused, naming the key */
    static const struct {
        const char *extra, *field, *needle;
    } bad[] = {
        {"\"weighting\":\"gradnorm\"", "weighting", "one batch"},
        {"\"weighting\":\"pcgrad\"", "weighting", "one batch"},
        {"\"baselines\":true", "baselines", "several datasets"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],%s}",
                 bad[i].extra);
        h_resp r = h_req(&p, "POST", "/v1/jobs", J, body, strlen(body));
        h_expect_error(&r, 422, NULL, bad[i].needle, bad[i].field);
        h_resp_free(&r);
    }
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *sampling_suite(void);
Suite *sampling_suite(void)
{
    Suite *s = suite_create("sampling");
    TCase *tc = tcase_create("sampling");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, round_robin_trains_both_and_resumes_bit_identically);
    suite_add_tcase(s, tc);
    return s;
}
