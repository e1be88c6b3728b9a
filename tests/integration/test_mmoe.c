/*
 * tests/integration/test_mmoe.c — mixture-of-experts models (model.mmoe:
 * MMoE, CGC, PLE) in multi-task jobs against a real mtld on the Stack
 * Overflow table: bad model.mmoe values are 422s naming the key path and
 * queue nothing; an MMoE job trains, reports each task's mean gate weights
 * per epoch (metrics) and at the end (results), writes its experts and
 * gates as named checkpoint tensors and predicts from them; a PLE job
 * (task experts, two levels) does the same; a job stopped with SIGTERM
 * resumes to the results and metrics of an uninterrupted one.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/integration/harness.h"

static mtld_proc P;
static char DIR_[256];
static const char *J = "application/json";

static void setup(void)
{
    h_start_so(&P, DIR_, sizeof DIR_);
}

static void teardown(void)
{
    h_stop_healthy(&P);
}

static void bad(const char *algorithm, const char *model, const char *field, const char *needle)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"algorithm\":\"%s\",\"tasks\":[\"salary\",\"remote\"],\"model\":%s}", algorithm,
             model);
    h_resp r = h_req(&P, "POST", "/v1/jobs", J, body, strlen(body));
    h_expect_error(&r, 422, NULL, needle, field);
    h_resp_free(&r);
}

START_TEST(bad_mmoe_names_the_key_path)
{
    bad("multitask", "{\"mmoe\":{}}", "model.mmoe.experts", "required");
    bad("multitask", "{\"mmoe\":{\"experts\":0}}", "model.mmoe.experts", "from 1");
    bad("multitask", "{\"mmoe\":{\"experts\":2.5}}", "model.mmoe.experts", "integer");
    bad("multitask", "{\"mmoe\":{\"experts\":65}}", "model.mmoe.experts", "64");
    bad("multitask", "{\"mmoe\":{\"experts\":2,\"expert_units\":[]}}", "model.mmoe.expert_units",
        "at least one");
    bad("multitask", "{\"mmoe\":{\"experts\":2,\"expert_units\":[8,0]}}",
        "model.mmoe.expert_units[1]", "1 to 4096");
    bad("multitask", "{\"mmoe\":{\"experts\":2,\"gate_temperature\":0}}",
        "model.mmoe.gate_temperature", NULL);
    bad("multitask", "{\"mmoe\":{\"experts\":2,\"levels\":5}}", "model.mmoe.levels", "from 1");
    bad("multitask", "{\"mmoe\":{\"experts\":40,\"task_experts\":13}}", "model.mmoe.task_experts",
        "at most 64");
    bad("multitask", "{\"mmoe\":{\"experts\":2,\"gates\":3}}", "model.mmoe.gates", "unknown key");
    bad("multitask", "{\"mmoe\":4}", "model.mmoe", "object");
    bad("maml", "{\"mmoe\":{\"experts\":2}}", "model.mmoe", "multitask");
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_array_size(json_object_get(l, "jobs")), 0); /* nothing queued */
    json_decref(l);
}
END_TEST

/* Runs spec to success; returns the job (new ref). */
static json_t *run_job(const char *spec, long long *id)
{
    *id = h_submit(&P, spec);
    json_t *j = h_wait_job(&P, *id, 300);
    ck_assert_msg(!strcmp(json_string_value(json_object_get(j, "state")), "succeeded"), "%s",
                  json_dumps(j, 0));
    return j;
}

/* The gates of results[task]: every named expert present, weights in
 * [0, 1] summing to 1 (over each level). */
static void check_gates(json_t *res, const char *task, const char *const *experts, int n,
                        int levels)
{
    json_t *g = json_object_get(json_object_get(res, task), "gates");
    ck_assert_msg(json_is_object(g), "results.%s has no gates", task);
    ck_assert_int_eq((int)json_object_size(g), n);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        json_t *v = json_object_get(g, experts[i]);
        ck_assert_msg(json_is_number(v), "results.%s.gates has no '%s'", task, experts[i]);
        ck_assert(json_number_value(v) >= 0 && json_number_value(v) <= 1);
        sum += json_number_value(v);
    }
    ck_assert_msg(fabs(sum - levels) < 1e-3, "gate weights of %s sum to %g", task, sum);
}

/* The newest checkpoint's safetensors header mentions every name. */
static void check_tensors(long long id, const char *const *names, int n)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp r = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.len > 8);
    unsigned long long hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (unsigned char)r.body[i];
    ck_assert(hl + 8 <= r.len);
    char *header = strndup(r.body + 8, hl);
    for (int i = 0; i < n; i++) {
        char quoted[96];
        snprintf(quoted, sizeof quoted, "\"%s\"", names[i]);
        ck_assert_msg(strstr(header, quoted), "the checkpoint has no tensor %s", names[i]);
    }
    free(header);
    h_resp_free(&r);
}

/* Predictions for the table's first rows, both tasks: finite, and the
 * same twice. */
static void check_predict(long long id)
{
    size_t len;
    char *csv = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(csv);
    char *end = csv;
    for (int lines = 0; lines < 6 && end; lines++)
        end = strchr(end, '\n') ? strchr(end, '\n') + 1 : NULL;
    ck_assert_ptr_nonnull(end);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict?task=salary", id);
    h_resp a = h_req(&P, "POST", path, "text/csv", csv, (size_t)(end - csv));
    h_resp b = h_req(&P, "POST", path, "text/csv", csv, (size_t)(end - csv));
    ck_assert_msg(a.status == 200, "%s", a.body);
    ck_assert_str_eq(a.body, b.body);
    json_t *j = h_json(&a);
    json_t *ps = json_object_get(j, "predictions");
    ck_assert_int_eq((int)json_array_size(ps), 5);
    for (size_t i = 0; i < 5; i++) {
        double v = json_number_value(json_object_get(json_array_get(ps, i), "value"));
        /* finite only: row 5 earns 6.6k, which a model trained for two
         * epochs may well put below zero */
        ck_assert_msg(isfinite(v), "prediction %zu: %g", i, v);
    }
    json_decref(j);
    h_resp_free(&a);
    h_resp_free(&b);
    free(csv);
}

/* metric value (task, split, name) at step, NAN if absent */
static double metric(json_t *ms, long long step, const char *task, const char *split,
                     const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ms, "metrics"), i, m)
    {
        if (json_integer_value(json_object_get(m, "step")) == step &&
            !strcmp(json_string_value(json_object_get(m, "task")), task) &&
            !strcmp(json_string_value(json_object_get(m, "split")), split) &&
            !strcmp(json_string_value(json_object_get(m, "name")), name))
            return json_number_value(json_object_get(m, "value"));
    }
    return NAN;
}

START_TEST(mmoe_job_trains_reports_gates_and_predicts)
{
    long long id;
    json_t *j = run_job("{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                        "\"model\":{\"mmoe\":{\"experts\":3,\"expert_units\":[16],"
                        "\"gate_temperature\":0.5},\"towers\":[8]},"
                        "\"optimizer\":{\"lr\":0.01},\"epochs\":3,\"batch_size\":256,\"seed\":4}",
                        &id);
    json_t *res = json_object_get(j, "results");
    const char *const experts[] = {"experts.0", "experts.1", "experts.2"};
    check_gates(res, "salary", experts, 3, 1);
    check_gates(res, "remote", experts, 3, 1);
    ck_assert(json_number_value(json_object_get(json_object_get(res, "salary"), "r2")) > 0);
    /* per epoch, on the validation split: every task's weight on every
     * expert, summing to 1 */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *ms = h_get_json(&P, path, 200);
    long long last = json_integer_value(json_object_get(j, "step"));
    int epochs_seen = 0;
    for (long long step = 1; step <= last; step++) {
        double s = 0;
        for (int e = 0; e < 3; e++) {
            char nm[32];
            snprintf(nm, sizeof nm, "gate.experts.%d", e);
            s += metric(ms, step, "remote", "validation", nm);
        }
        if (isnan(s))
            continue;
        ck_assert_msg(fabs(s - 1) < 1e-3, "step %lld: remote's gate weights sum to %g", step, s);
        epochs_seen++;
    }
    ck_assert_int_eq(epochs_seen, 3);
    /* the test split's, once at the last step, are the results' gates */
    ck_assert(fabs(metric(ms, last, "salary", "test", "gate.experts.1") -
                   json_number_value(json_object_get(
                       json_object_get(json_object_get(res, "salary"), "gates"), "experts.1"))) <
              1e-6);
    json_decref(ms);
    const char *const tensors[] = {"experts.0.0.weight", "experts.2.0.bias", "gates.0.weight",
                                   "gates.1.bias", "tasks.1.tower.0.weight",
                                   "adam.m.experts.1.0.weight", "adam.v.gates.1.weight"};
    check_tensors(id, tensors, 7);
    check_predict(id);
    json_decref(j);
}
END_TEST

START_TEST(ple_job_trains_and_predicts)
{
    long long id;
    json_t *j = run_job("{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                        "\"model\":{\"trunk\":[16],\"mmoe\":{\"experts\":2,\"task_experts\":1,"
                        "\"levels\":2,\"expert_units\":[12,8]}},"
                        "\"optimizer\":{\"lr\":0.01},\"epochs\":2,\"batch_size\":256,\"seed\":4}",
                        &id);
    json_t *res = json_object_get(j, "results");
    const char *const ex0[] = {"levels.0.experts.0", "levels.0.experts.1",
                               "levels.0.task_experts.0.0", "levels.1.experts.0",
                               "levels.1.experts.1", "levels.1.task_experts.0.0"};
    const char *const ex1[] = {"levels.0.experts.0", "levels.0.experts.1",
                               "levels.0.task_experts.1.0", "levels.1.experts.0",
                               "levels.1.experts.1", "levels.1.task_experts.1.0"};
    check_gates(res, "salary", ex0, 6, 2);
    check_gates(res, "remote", ex1, 6, 2);
    const char *const tensors[] = {"trunk.0.weight", "levels.0.gates.shared.weight",
                                   "levels.1.task_experts.1.0.1.weight",
                                   "levels.1.experts.0.1.bias", "levels.1.gates.0.weight"};
    check_tensors(id, tensors, 5);
    check_predict(id);
    json_decref(j);
}
END_TEST

START_TEST(mmoe_resumes_bit_identically)
{
    /* experts, gates and their Adam moments are checkpoint tensors like the
     * trunk's: a job stopped mid-way ends where an uninterrupted one does,
     * results (gates included) and every metric */
    mtld_proc p;
    char dir[256];
    static const char *spec =
        "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"model\":{\"mmoe\":{\"experts\":4,\"expert_units\":[32,16],\"task_experts\":1},"
        "\"towers\":[8],\"dropout\":0.1},"
        "\"epochs\":10,\"batch_size\":64,\"seed\":5,\"checkpoint_every\":25}";
    h_tmpdir(dir, sizeof dir);
    h_start(&p, dir, NULL);
    h_define_so(&p);
    h_resumed run = h_run_resumed(&p, dir, spec, 100);
    ck_assert_str_eq(json_string_value(json_object_get(run.ja, "state")), "succeeded");
    h_expect_same_results(run.ja, run.jb);
    char *ra = json_dumps(json_object_get(run.ja, "results"), JSON_SORT_KEYS);
    ck_assert_ptr_nonnull(strstr(ra, "task_experts.1.0"));
    free(ra);
    h_expect_same_metrics(&p, run.a, run.b);
    json_decref(run.ja);
    json_decref(run.jb);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *mmoe_suite(void);
Suite *mmoe_suite(void)
{
    Suite *s = suite_create("mmoe");
    TCase *tc = tcase_create("mmoe");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_mmoe_names_the_key_path);
    tcase_add_test(tc, mmoe_job_trains_reports_gates_and_predicts);
    tcase_add_test(tc, ple_job_trains_and_predicts);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("resume");
    tcase_set_timeout(tr, 600);
    tcase_add_test(tr, mmoe_resumes_bit_identically);
    suite_add_tcase(s, tr);
    return s;
}
