/*
 * tests/integration/test_weighting.c — task weighting in multi-task jobs,
 * against a real mtld on the Stack Overflow table (data/stackoverflow):
 * bad "weighting" values are 422s naming the key path; every method trains
 * and reports each task's effective weight and the gradient cosine per
 * epoch; DWA's weights match the ones computed here from the job's own
 * training-loss metrics; a task of weight 0 leaves its head untouched; a
 * gradnorm job stopped with SIGTERM resumes to the same results.
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

static void setup(void)
{
    h_start_so(&P, DIR_, sizeof DIR_);
}

static void teardown(void)
{
    h_stop_healthy(&P);
}

static void bad(const char *extra, const char *field, const char *needle)
{
    h_expect_bad_so_job(&P, extra, field, needle);
}

START_TEST(bad_weighting_names_the_key_path)
{
    bad("\"weighting\":\"softmax\"", "weighting", "pcgrad");
    bad("\"weighting\":7", "weighting", "method name");
    bad("\"weighting\":{\"alpha\":1}", "weighting.name", "required");
    bad("\"weighting\":{\"name\":\"dwa\",\"alpha\":1}", "weighting.alpha", "does not apply");
    bad("\"weighting\":{\"name\":\"gradnorm\",\"alpha\":-1}", "weighting.alpha", "from 0");
    bad("\"weighting\":{\"name\":\"dwa\",\"temperature\":0}", "weighting.temperature", NULL);
    bad("\"weighting\":{\"name\":\"static\",\"lr\":0.1}", "weighting.lr", "does not apply");
    bad("\"weighting\":{\"name\":\"pcgrad\",\"beta\":1}", "weighting.beta", "unknown key");
    bad("\"sampling\":\"random\"", "sampling", "proportional");
    bad("\"baselines\":1", "baselines", "true or false");
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_array_size(json_object_get(l, "jobs")), 0); /* nothing queued */
    json_decref(l);
}
END_TEST

/* A small two-task job with the given "weighting" value and task weights. */
static long long small_job(const char *weighting, double w_salary, double w_remote, int epochs)
{
    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\",\"weight\":%g},"
             "{\"task\":\"remote\",\"weight\":%g}],\"weighting\":%s,"
             "\"model\":{\"trunk\":[16]},\"optimizer\":{\"lr\":0.01},\"epochs\":%d,"
             "\"batch_size\":256,\"seed\":3,\"checkpoint_every\":1000}",
             w_salary, w_remote, weighting, epochs);
    return h_submit(&P, spec);
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

static json_t *metrics_of(long long id)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    return h_get_json(&P, path, 200);
}

/* The steps at which the job evaluated, ascending (≤ 16). */
static int eval_steps(json_t *ms, long long *steps)
{
    int n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ms, "metrics"), i, m)
    {
        long long s = json_integer_value(json_object_get(m, "step"));
        if (n < 16 && (n == 0 || steps[n - 1] < s))
            steps[n++] = s;
    }
    return n;
}

START_TEST(every_method_trains_and_reports_weights)
{
    static const char *const methods[] = {"\"static\"", "\"uncertainty\"", "\"gradnorm\"",
                                          "\"dwa\"", "\"pcgrad\""};
    long long ids[5];
    for (int k = 0; k < 5; k++)
        ids[k] = small_job(methods[k], 1, 1, 3);
    for (int k = 0; k < 5; k++) {
        json_t *j = h_wait_job(&P, ids[k], 300);
        ck_assert_msg(!strcmp(json_string_value(json_object_get(j, "state")), "succeeded"),
                      "%s: %s", methods[k], json_dumps(j, 0));
        json_t *res = json_object_get(j, "results");
        json_t *wt = json_object_get(res, "weighting");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)strlen(methods[k]) - 2, methods[k] + 1);
        ck_assert_str_eq(json_string_value(json_object_get(wt, "method")), name);
        ck_assert(json_is_number(json_object_get(json_object_get(res, "salary"), "mse")));
        json_t *ms = metrics_of(ids[k]);
        long long steps[16];
        ck_assert_int_eq(eval_steps(ms, steps), 3);
        for (int e = 0; e < 3; e++) {
            double ws = metric(ms, steps[e], "salary", "train", "weight");
            double wr = metric(ms, steps[e], "remote", "train", "weight");
            double c = metric(ms, steps[e], "salary", "train", "grad_cosine.remote");
            ck_assert_msg(isfinite(ws) && isfinite(wr) && ws > 0 && wr > 0, "%s: weights %g %g",
                          name, ws, wr);
            ck_assert_msg(c >= -1 && c <= 1, "%s: cosine %g", name, c);
            if (k == 0)
                ck_assert(ws == 1 && wr == 1);
            if (k == 2) /* gradnorm: renormalised to sum T */
                ck_assert_double_eq_tol(ws + wr, 2.0, 1e-9);
            if (k == 1 && e == 2) /* uncertainty has learned: no longer ½ and 1 */
                ck_assert(ws != 0.5 && wr != 1.0);
        }
        json_decref(ms);
        json_decref(j);
    }
}
END_TEST

START_TEST(dwa_weights_follow_the_training_losses)
{
    /* After epoch 1 DWA still uses the static weights; after epoch 2 the
     * weights are 2·softmax(r/τ) with r = L(2)/L(1) from the job's own
     * "train loss" metrics, τ = 0.5. */
    long long id = small_job("{\"name\":\"dwa\",\"temperature\":0.5}", 1, 1, 3);
    json_t *j = h_wait_job(&P, id, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_t *ms = metrics_of(id);
    long long s[16];
    ck_assert_int_eq(eval_steps(ms, s), 3);
    ck_assert(metric(ms, s[0], "salary", "train", "weight") == 1);
    ck_assert(metric(ms, s[0], "remote", "train", "weight") == 1);
    double rs = metric(ms, s[1], "salary", "train", "loss") / metric(ms, s[0], "salary", "train", "loss");
    double rr = metric(ms, s[1], "remote", "train", "loss") / metric(ms, s[0], "remote", "train", "loss");
    double es = exp(rs / 0.5), er = exp(rr / 0.5);
    ck_assert_double_eq_tol(metric(ms, s[1], "salary", "train", "weight"), 2 * es / (es + er), 1e-9);
    ck_assert_double_eq_tol(metric(ms, s[1], "remote", "train", "weight"), 2 * er / (es + er), 1e-9);
    ck_assert(metric(ms, s[1], "salary", "train", "weight") != 1);
    json_decref(ms);
    json_decref(j);
}
END_TEST

/* The float tensor `name` of a checkpoint (malloc'd), its element count in *n. */
static float *ckpt_tensor(long long id, const char *name, size_t *n)
{
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp ck = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(ck.status, 200);
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--)
        hlen = (hlen << 8) | (unsigned char)ck.body[b];
    json_t *hdr = json_loadb(ck.body + 8, hlen, 0, NULL);
    json_t *t = json_object_get(hdr, name);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    json_t *off = json_object_get(t, "data_offsets");
    size_t a = (size_t)json_integer_value(json_array_get(off, 0));
    size_t e = (size_t)json_integer_value(json_array_get(off, 1));
    float *v = malloc(e - a);
    memcpy(v, ck.body + 8 + hlen + a, e - a);
    *n = (e - a) / sizeof(float);
    json_decref(hdr);
    h_resp_free(&ck);
    return v;
}

START_TEST(weight_zero_means_zero)
{
    /* remote at weight 0 under static and under gradnorm: its head never
     * moves (the same after 1 and 2 epochs, while the trunk does), its
     * effective weight is reported as 0, and salary still learns. */
    static const char *const methods[] = {"\"static\"", "\"gradnorm\""};
    for (int k = 0; k < 2; k++) {
        long long a = small_job(methods[k], 1, 0, 1), b = small_job(methods[k], 1, 0, 2);
        json_t *ja = h_wait_job(&P, a, 300), *jb = h_wait_job(&P, b, 300);
        ck_assert_str_eq(json_string_value(json_object_get(jb, "state")), "succeeded");
        size_t na, nb;
        float *ha = ckpt_tensor(a, "tasks.1.head.weight", &na);
        float *hb = ckpt_tensor(b, "tasks.1.head.weight", &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(memcmp(ha, hb, na * sizeof *ha) == 0);
        free(ha);
        free(hb);
        float *ta = ckpt_tensor(a, "trunk.0.weight", &na);
        float *tb = ckpt_tensor(b, "trunk.0.weight", &nb);
        ck_assert(memcmp(ta, tb, na * sizeof *ta) != 0);
        free(ta);
        free(tb);
        json_t *res = json_object_get(jb, "results");
        ck_assert(json_real_value(json_object_get(
                      json_object_get(json_object_get(res, "weighting"), "weights"), "remote")) == 0);
        json_t *sal = json_object_get(res, "salary");
        ck_assert(json_number_value(json_object_get(sal, "mse")) <
                  json_number_value(json_object_get(json_object_get(sal, "baseline"), "mse")));
        json_t *ms = metrics_of(b);
        long long s[16];
        ck_assert_int_eq(eval_steps(ms, s), 2);
        ck_assert(metric(ms, s[1], "remote", "train", "weight") == 0);
        json_decref(ms);
        json_decref(ja);
        json_decref(jb);
    }
}
END_TEST

/* The Stack Overflow table with salary blanked in every third data row
 * and remote kept only in the first 200 data rows (so most batches have no
 * remote label at all); *n_sal and *n_rem get the blanked counts. */
static char *csv_with_missing(size_t *len, int *n_sal, int *n_rem)
{
    size_t n = 0;
    char *src = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &n);
    ck_assert(src != NULL);
    char *out = malloc(n + 1), *o = out;
    const char *line = src;
    int row = -1; /* -1: the header */
    *n_sal = *n_rem = 0;
    while (line < src + n) {
        const char *end = memchr(line, '\n', (size_t)(src + n - line));
        size_t l = end ? (size_t)(end - line) : (size_t)(src + n - line);
        if (row < 0 || l == 0) {
            memcpy(o, line, l);
            o += l;
        } else {
            /* the last two fields are salary, remote */
            const char *c2 = line + l, *c1;
            while (c2[-1] != ',')
                c2--;
            c1 = c2 - 1;
            while (c1[-1] != ',')
                c1--;
            memcpy(o, line, (size_t)(c1 - line));
            o += c1 - line;
            if (row % 3 == 0)
                (*n_sal)++;
            else {
                memcpy(o, c1, (size_t)(c2 - 1 - c1));
                o += c2 - 1 - c1;
            }
            *o++ = ',';
            if (row >= 200)
                (*n_rem)++;
            else {
                memcpy(o, c2, (size_t)(line + l - c2));
                o += line + l - c2;
            }
        }
        *o++ = '\n';
        row++;
        line = end ? end + 1 : src + n;
    }
    free(src);
    *len = (size_t)(o - out);
    return out;
}

START_TEST(missing_targets_are_masked_per_task)
{
    size_t len;
    int n_sal, n_rem;
    char *csv = csv_with_missing(&len, &n_sal, &n_rem);
    /* missing=error (the default) refuses it; missing=keep stores NaN */
    h_resp r = h_req(&P, "POST", "/v1/datasets?name=holes", "text/csv", csv, len);
    ck_assert_int_eq(r.status, 422);
    h_resp_free(&r);
    r = h_req(&P, "POST", "/v1/datasets?name=holes&missing=keep", "text/csv", csv, len);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    json_t *d = h_json(&r);
    h_resp_free(&r);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(d, "columns"), i, c)
    {
        const char *nm = json_string_value(json_object_get(c, "name"));
        long long miss = json_integer_value(json_object_get(c, "missing"));
        if (!strcmp(nm, "salary"))
            ck_assert_int_eq(miss, n_sal);
        else if (!strcmp(nm, "remote"))
            ck_assert_int_eq(miss, n_rem);
        else
            ck_assert_int_eq(miss, 0);
    }
    json_decref(d);
    json_t *rows = h_get_json(&P, "/v1/datasets/holes/rows?offset=0&limit=2", 200);
    json_t *r0 = json_array_get(json_object_get(rows, "rows"), 0);
    ck_assert(json_is_null(json_array_get(r0, json_array_size(r0) - 2))); /* salary of row 0 */
    ck_assert(json_is_number(json_array_get(r0, json_array_size(r0) - 1)));
    json_decref(rows);
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"hs\",\"dataset\":\"holes\",\"target\":\"salary\"}", 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"hr\",\"dataset\":\"holes\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
    /* static and pcgrad (one pass per present task: the absent one is
     * skipped): every loss, weight and figure finite, never NaN */
    static const char *const methods[] = {"static", "pcgrad"};
    for (int k = 0; k < 2; k++) {
        char spec[512];
        snprintf(spec, sizeof spec,
                 "{\"algorithm\":\"multitask\",\"tasks\":[\"hs\",\"hr\"],\"weighting\":\"%s\","
                 "\"model\":{\"trunk\":[16]},\"epochs\":2,\"batch_size\":64,\"baselines\":true}",
                 methods[k]);
        long long id = h_submit(&P, spec);
        json_t *j = h_wait_job(&P, id, 300);
        ck_assert_msg(!strcmp(json_string_value(json_object_get(j, "state")), "succeeded"), "%s",
                      json_dumps(j, 0));
        json_t *res = json_object_get(j, "results");
        long long test_rows = json_integer_value(json_object_get(json_object_get(res, "rows"), "test"));
        long long ls = json_integer_value(json_object_get(json_object_get(res, "hs"), "labelled"));
        long long lr = json_integer_value(json_object_get(json_object_get(res, "hr"), "labelled"));
        /* the figures cover only rows with the target: about 2/3 for salary,
         * about 200/5594 for remote (the split is stratified on remote, the
         * missing rows forming a stratum of their own) */
        ck_assert_msg(ls > 0 && ls < test_rows && lr > 0 && lr < test_rows / 10, "%lld %lld of %lld",
                      ls, lr, test_rows);
        ck_assert(isfinite(json_number_value(json_object_get(json_object_get(res, "hs"), "mse"))));
        ck_assert(isfinite(json_number_value(json_object_get(json_object_get(res, "hr"), "loss"))));
        ck_assert(json_is_number(json_object_get(res, "delta_mtl")));
        json_t *ms = metrics_of(id);
        json_t *m;
        size_t q;
        json_array_foreach(json_object_get(ms, "metrics"), q, m)
        {
            const char *nm = json_string_value(json_object_get(m, "name"));
            if (!strcmp(nm, "loss") || !strcmp(nm, "weight"))
                ck_assert_msg(json_is_number(json_object_get(m, "value")) &&
                                  isfinite(json_number_value(json_object_get(m, "value"))),
                              "%s: %s", methods[k], json_dumps(m, 0));
        }
        json_decref(ms);
        json_decref(j);
    }
    free(csv);
}
END_TEST

START_TEST(baselines_report_delta_mtl)
{
    /* "baselines": true trains each task alone with the same budget; the
     * per-task delta is the sign-aware relative gain of the main metric in
     * percent, and delta_mtl their mean (computed here from the results). */
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
             "\"model\":{\"trunk\":[16]},\"epochs\":2,\"batch_size\":128,\"baselines\":true}");
    long long id = h_submit(&P, spec);
    json_t *j = h_wait_job(&P, id, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_t *res = json_object_get(j, "results"), *bl = json_object_get(res, "baselines");
    double ms = json_number_value(json_object_get(json_object_get(res, "salary"), "mse"));
    double mr = json_number_value(json_object_get(json_object_get(res, "remote"), "accuracy"));
    json_t *bs = json_object_get(bl, "salary"), *br = json_object_get(bl, "remote");
    ck_assert_str_eq(json_string_value(json_object_get(bs, "metric")), "mse");
    ck_assert_str_eq(json_string_value(json_object_get(br, "metric")), "accuracy");
    double bms = json_number_value(json_object_get(bs, "mse"));
    double bmr = json_number_value(json_object_get(br, "accuracy"));
    ck_assert(bms > 0 && bmr > 0 && bms != ms);
    double ds = 100 * (bms - ms) / bms, dr = 100 * (mr - bmr) / bmr;
    /* results carry 10 significant digits */
    ck_assert_double_eq_tol(json_number_value(json_object_get(bs, "delta")), ds, 1e-6 * fmax(1, fabs(ds)));
    ck_assert_double_eq_tol(json_number_value(json_object_get(br, "delta")), dr, 1e-6 * fmax(1, fabs(dr)));
    ck_assert_double_eq_tol(json_number_value(json_object_get(res, "delta_mtl")), (ds + dr) / 2,
                            1e-6 * fmax(1, fabs(ds + dr)));
    json_decref(j);
}
END_TEST

START_TEST(gradnorm_resumes_bit_identically)
{
    /* The learned weights, their Adam moments and L(0) live in the
     * checkpoint: a job stopped mid-way ends where an uninterrupted one does
     * (results and every metric, weights included). */
    mtld_proc p;
    char dir[256];
    static const char *spec =
        "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"weighting\":{\"name\":\"gradnorm\",\"alpha\":1.0,\"lr\":0.05},"
        "\"model\":{\"trunk\":[32,16]},\"epochs\":12,\"batch_size\":64,\"seed\":5,"
        "\"checkpoint_every\":25}";
    h_tmpdir(dir, sizeof dir);
    h_start(&p, dir, NULL);
    h_define_so(&p);
    h_resumed run = h_run_resumed(&p, dir, spec, 100);
    ck_assert_str_eq(json_string_value(json_object_get(run.ja, "state")), "succeeded");
    h_expect_same_results(run.ja, run.jb);
    h_expect_same_metrics(&p, run.a, run.b);
    json_decref(run.ja);
    json_decref(run.jb);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *weighting_suite(void);
Suite *weighting_suite(void)
{
    Suite *s = suite_create("weighting");
    TCase *tc = tcase_create("weighting");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_weighting_names_the_key_path);
    tcase_add_test(tc, every_method_trains_and_reports_weights);
    tcase_add_test(tc, dwa_weights_follow_the_training_losses);
    tcase_add_test(tc, weight_zero_means_zero);
    tcase_add_test(tc, baselines_report_delta_mtl);
    tcase_add_test(tc, missing_targets_are_masked_per_task);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("resume");
    tcase_set_timeout(tr, 600);
    tcase_add_test(tr, gradnorm_resumes_bit_identically);
    suite_add_tcase(s, tr);
    return s;
}
