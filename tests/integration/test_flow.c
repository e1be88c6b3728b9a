/*
 * tests/integration/test_flow.c — the walking skeleton end to end against a
 * real mtld: upload the real Stack Overflow table, define a regression and a
 * classification task, train a multi-task job, and check the results beat
 * the trivial predictors, the metrics series, and the checkpoint's format.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&P, DIR_, NULL);
}

static void teardown(void)
{
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
}

static void define_so(void)
{
    json_t *d = h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "rows")), 5594);
    ck_assert_int_eq(json_array_size(json_object_get(d, "columns")), 25);
    json_decref(d);
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\","
                            "\"kind\":\"regression\"}",
                            201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\",\"class_weight\":\"balanced\"}",
                            201));
}

static const char *SPEC =
    "{\"name\":\"so-mtl\",\"algorithm\":\"multitask\","
    "\"tasks\":[{\"task\":\"salary\",\"weight\":1.0},{\"task\":\"remote\",\"weight\":1.0}],"
    "\"model\":{\"trunk\":[64,32]},\"optimizer\":{\"name\":\"adam\",\"lr\":0.001},"
    "\"epochs\":10,\"batch_size\":64,\"seed\":7,\"checkpoint_every\":200}";

START_TEST(health)
{
    json_t *h = h_get_json(&P, "/v1/health", 200);
    ck_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(h, "version")));
    json_decref(h);
}
END_TEST

START_TEST(multitask_job_beats_trivial_predictors)
{
    define_so();
    json_t *sub = h_post_json(&P, "/v1/jobs", SPEC, 202);
    ck_assert_str_eq(json_string_value(json_object_get(sub, "state")), "queued");
    long long id = json_integer_value(json_object_get(sub, "id"));
    json_decref(sub);

    json_t *job = h_wait_job(&P, id, 120);
    ck_assert_msg(!strcmp(json_string_value(json_object_get(job, "state")), "succeeded"),
                  "job ended %s", json_dumps(job, 0));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(job, "started_at")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(job, "finished_at")));
    ck_assert_double_eq_tol(json_number_value(json_object_get(job, "progress")), 1.0, 1e-9);
    json_t *res = json_object_get(job, "results");
    json_t *sal = json_object_get(res, "salary"), *rem = json_object_get(res, "remote");
    double r2 = json_number_value(json_object_get(sal, "r2"));
    double base_r2 = json_number_value(json_object_get(json_object_get(sal, "baseline"), "r2"));
    double f1 = json_number_value(json_object_get(rem, "macro_f1"));
    double base_f1 =
        json_number_value(json_object_get(json_object_get(rem, "baseline"), "macro_f1"));
    /* The mean predictor has R^2 ~ 0; ridge regression reaches 0.666 here. */
    ck_assert_msg(r2 > 0.5 && r2 > base_r2 + 0.4, "salary r2 %g (baseline %g)", r2, base_r2);
    /* Always "not remote" gives macro-F1 ~0.47 on this 10%-positive task. */
    ck_assert_msg(base_f1 > 0.45 && base_f1 < 0.49, "baseline macro-F1 %g", base_f1);
    ck_assert_msg(f1 > base_f1, "remote macro-F1 %g does not beat the majority class %g", f1,
                  base_f1);
    ck_assert(json_number_value(json_object_get(sal, "mae")) > 0);
    ck_assert(json_number_value(json_object_get(rem, "accuracy")) > 0.5);

    /* Metrics: one validation evaluation per epoch, every step ascending;
     * the test split once, at the last step, with the results' figures. */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    json_t *arr = json_object_get(m, "metrics");
    ck_assert_int_gt(json_array_size(arr), 10);
    long long last = 0, steps = json_integer_value(json_object_get(job, "steps"));
    int r2_val = 0, r2_test = 0;
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row)
    {
        long long step = json_integer_value(json_object_get(row, "step"));
        const char *split = json_string_value(json_object_get(row, "split"));
        ck_assert_int_ge(step, last);
        last = step;
        if (!strcmp(split, "test")) {
            ck_assert_int_eq(step, steps);
            const char *task = json_string_value(json_object_get(row, "task"));
            const char *name = json_string_value(json_object_get(row, "name"));
            json_t *want = json_object_get(json_object_get(res, task), name);
            if (want)
                ck_assert_double_eq_tol(json_number_value(json_object_get(row, "value")),
                                        json_number_value(want), 1e-6);
        } else {
            ck_assert_msg(!strcmp(split, "train") || !strcmp(split, "validation"), "split %s",
                          split);
        }
        if (!strcmp(json_string_value(json_object_get(row, "name")), "r2"))
            *(!strcmp(split, "test") ? &r2_test : &r2_val) += 1;
    }
    ck_assert_int_eq(r2_val, 10);
    ck_assert_int_eq(r2_test, 1);
    json_decref(m);
    /* every row in one split: train + validation + test = the dataset */
    json_t *rows = json_object_get(res, "rows");
    long long n_tr = json_integer_value(json_object_get(rows, "train")),
              n_va = json_integer_value(json_object_get(rows, "validation")),
              n_te = json_integer_value(json_object_get(rows, "test"));
    ck_assert_int_eq(n_tr + n_va + n_te, 5594);
    /* the default fractions: 0.1 validation and 0.2 test, stratified per class */
    ck_assert_msg(n_va > 5594 / 10 - 5 && n_va < 5594 / 10 + 5, "validation rows %lld", n_va);
    ck_assert_msg(n_te > 5594 / 5 - 5 && n_te < 5594 / 5 + 5, "test rows %lld", n_te);
    json_decref(job);

    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics?format=csv", id);
    h_resp csv = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(csv.status, 200);
    ck_assert(strncmp(csv.body, "step,task,split,name,value\n", 27) == 0);
    h_resp_free(&csv);

    /* The checkpoint is a safetensors file any reader can parse. */
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp ck = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(ck.status, 200);
    ck_assert_int_gt(ck.len, 8);
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--)
        hlen = (hlen << 8) | (unsigned char)ck.body[b];
    ck_assert(hlen > 2 && 8 + hlen <= ck.len);
    json_t *hdr = json_loadb(ck.body + 8, hlen, 0, NULL);
    ck_assert_msg(json_is_object(hdr), "checkpoint header does not parse");
    json_t *w = json_object_get(hdr, "trunk.0.weight");
    ck_assert_str_eq(json_string_value(json_object_get(w, "dtype")), "F32");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(w, "shape"), 0)), 64);
    ck_assert_ptr_nonnull(json_object_get(hdr, "adam.m.trunk.0.weight"));
    json_t *meta = json_object_get(hdr, "__metadata__");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(meta, "spec")));
    char step_text[32];
    snprintf(step_text, sizeof step_text, "%lld", steps);
    ck_assert_str_eq(json_string_value(json_object_get(meta, "step")), step_text);
    /* every tensor's bytes lie inside the file, and the last one ends it */
    const char *k;
    json_t *t;
    uint64_t end = 0;
    json_object_foreach(hdr, k, t)
    {
        if (!strcmp(k, "__metadata__"))
            continue;
        uint64_t e = (uint64_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 1));
        end = e > end ? e : end;
    }
    ck_assert_uint_eq(8 + hlen + end, ck.len);
    json_decref(hdr);
    h_resp_free(&ck);

    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints", id);
    json_t *cl = h_get_json(&P, path, 200);
    ck_assert_int_eq(json_array_size(json_object_get(cl, "checkpoints")), 3); /* keep 3 */
    json_decref(cl);
}
END_TEST

START_TEST(target_never_leaks_into_inputs)
{
    define_so();
    json_t *sub = h_post_json(&P, "/v1/jobs", SPEC, 202);
    long long id = json_integer_value(json_object_get(sub, "id"));
    json_decref(sub);
    json_decref(h_wait_job(&P, id, 120));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp ck = h_req(&P, "GET", path, NULL, NULL, 0);
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--)
        hlen = (hlen << 8) | (unsigned char)ck.body[b];
    json_t *hdr = json_loadb(ck.body + 8, hlen, 0, NULL);
    json_t *meta = json_object_get(hdr, "__metadata__");
    json_t *features = json_loads(json_string_value(json_object_get(meta, "features")), 0, NULL);
    ck_assert_int_eq(json_array_size(features), 23); /* 25 columns minus the 2 targets */
    size_t i;
    json_t *f;
    json_array_foreach(features, i, f)
    {
        ck_assert_str_ne(json_string_value(f), "salary");
        ck_assert_str_ne(json_string_value(f), "remote");
    }
    /* the input layer is 23 wide */
    json_t *w = json_object_get(hdr, "trunk.0.weight");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(w, "shape"), 1)), 23);
    json_decref(features);
    json_decref(hdr);
    h_resp_free(&ck);
}
END_TEST

START_TEST(same_spec_same_results)
{
    define_so();
    double r2[2];
    for (int k = 0; k < 2; k++) {
        json_t *sub = h_post_json(&P, "/v1/jobs", SPEC, 202);
        long long id = json_integer_value(json_object_get(sub, "id"));
        json_decref(sub);
        json_t *job = h_wait_job(&P, id, 120);
        r2[k] = json_number_value(
            json_object_get(json_object_get(json_object_get(job, "results"), "salary"), "r2"));
        json_decref(job);
    }
    ck_assert_msg(r2[0] == r2[1], "two runs of one spec differ: %.17g vs %.17g", r2[0], r2[1]);
}
END_TEST

START_TEST(dataset_listing_and_preview)
{
    json_t *d = h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201);
    json_t *c0 = json_array_get(json_object_get(d, "columns"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c0, "name")), "lettr");
    ck_assert_str_eq(json_string_value(json_object_get(c0, "type")), "category");
    ck_assert_int_eq(json_array_size(json_object_get(c0, "levels")), 26);
    json_decref(d);
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
    json_t *rows = h_get_json(&P, "/v1/datasets/letters/rows?offset=0&limit=2", 200);
    json_t *r0 = json_array_get(json_object_get(rows, "rows"), 0);
    /* first data line of letters.csv: T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,8 */
    ck_assert_str_eq(json_string_value(json_array_get(r0, 0)), "T");
    ck_assert_double_eq(json_number_value(json_array_get(r0, 1)), 2);
    ck_assert_double_eq(json_number_value(json_array_get(r0, 7)), 13);
    json_decref(rows);
    json_t *desc = h_get_json(&P, "/v1/datasets/1", 200);
    json_t *st = json_object_get(json_array_get(json_object_get(desc, "columns"), 1), "stats");
    ck_assert(json_number_value(json_object_get(st, "max")) <= 15);
    ck_assert(json_number_value(json_object_get(st, "min")) >= 0);
    json_decref(desc);
}
END_TEST

Suite *flow_suite(void);
Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("flow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, health);
    tcase_add_test(tc, multitask_job_beats_trivial_predictors);
    tcase_add_test(tc, target_never_leaks_into_inputs);
    tcase_add_test(tc, same_spec_same_results);
    tcase_add_test(tc, dataset_listing_and_preview);
    suite_add_tcase(s, tc);
    return s;
}
