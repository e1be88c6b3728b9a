/*
 * tests/integration/test_meta.c — meta-learning jobs against a real mtld:
 * MAML on the sinusoid generator (one adaptation step must cut the
 * meta-test MSE), ProtoNets 5-way 1-shot on held-out letters of the real
 * UCI Letter Recognition data (must clearly beat chance, 0.2), a job
 * stopped mid-run by SIGTERM that resumes to exactly the results of an
 * uninterrupted one, and the spec errors that name the key at fault.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int contains(const char *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return 1;
    return 0;
}

static long long submit(const char *spec)
{
    json_t *sub = h_post_json(&P, "/v1/jobs", spec, 202);
    long long id = json_integer_value(json_object_get(sub, "id"));
    json_decref(sub);
    return id;
}

static json_t *finished(long long id, double timeout)
{
    json_t *job = h_wait_job(&P, id, timeout);
    char *text = json_dumps(job, 0);
    ck_assert_msg(!strcmp(json_string_value(json_object_get(job, "state")), "succeeded"),
                  "job ended %s", text);
    free(text);
    return job;
}

static double num_at(json_t *obj, const char *k1, const char *k2)
{
    json_t *v = json_object_get(json_object_get(obj, k1), k2);
    ck_assert_msg(json_is_number(v), "no number at %s.%s", k1, k2);
    return json_number_value(v);
}

static const char *SINE_SPEC =
    "{\"name\":\"sine-maml\",\"algorithm\":\"maml\",\"tasks\":[\"sine\"],"
    "\"model\":{\"trunk\":[40,40],\"activation\":\"relu\"},"
    "\"inner\":{\"lr\":0.01,\"steps\":1},\"meta_batch\":25,\"steps\":%d,"
    "\"optimizer\":{\"lr\":0.001},\"seed\":3,\"checkpoint_every\":%d,"
    "\"eval\":{\"episodes\":200,\"steps\":[0,1,10],\"seed\":1}}";

static void define_sine(void)
{
    json_decref(h_post_json(&P, "/v1/tasks", "{\"name\":\"sine\",\"generator\":\"sinusoid\"}", 201));
}

START_TEST(maml_sinusoid_adapts)
{
    define_sine();
    char spec[1024];
    snprintf(spec, sizeof spec, SINE_SPEC, 2500, 1000);
    long long id = submit(spec);
    json_t *job = finished(id, 120);
    json_t *fs = json_object_get(json_object_get(job, "results"), "few_shot");
    ck_assert_ptr_nonnull(fs);
    ck_assert_int_eq(json_integer_value(json_object_get(fs, "episodes")), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(fs, "shots")), 10);
    ck_assert_int_eq(json_array_size(json_object_get(fs, "steps")), 3);
    double m0 = num_at(fs, "mse", "0"), m1 = num_at(fs, "mse", "1"), m10 = num_at(fs, "mse", "10");
    ck_assert_msg(m1 < 0.5 * m0, "mse after 1 step %g, after 0 %g", m1, m0);
    ck_assert_double_lt(m10, m1);
    double ci1 = num_at(fs, "ci95", "1");
    ck_assert(ci1 > 0 && ci1 < m1);
    json_t *mem = json_object_get(json_object_get(job, "results"), "memory");
    ck_assert_int_gt(json_integer_value(json_object_get(mem, "peak_rss_bytes")), 0);
    json_decref(job);

    /* the training curve and the meta-test figures are in the metrics */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    size_t i, train = 0, test = 0;
    json_t *row;
    json_array_foreach(json_object_get(m, "metrics"), i, row)
    {
        const char *split = json_string_value(json_object_get(row, "split"));
        train += !strcmp(split, "train");
        test += !strcmp(split, "meta_test");
    }
    ck_assert_int_eq(train, 100);
    ck_assert_int_eq(test, 3);
    json_decref(m);
    /* and the meta-parameters are downloadable as safetensors */
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp r = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(contains(r.body, r.len, "\"layers.0.weight\""));
    ck_assert(contains(r.body, r.len, "\"adam.m.layers.2.bias\""));
    h_resp_free(&r);
}
END_TEST

START_TEST(protonet_letters_beats_chance)
{
    json_decref(h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"lettr\",\"dataset\":\"letters\",\"target\":\"lettr\","
                            "\"kind\":\"classification\"}",
                            201));
    long long id = submit(
        "{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],\"model\":{\"trunk\":[64,64]},"
        "\"episodes\":{\"ways\":5,\"shots\":1,\"queries\":10,"
        "\"test_classes\":[\"U\",\"V\",\"W\",\"X\",\"Y\",\"Z\"]},"
        "\"meta_batch\":10,\"steps\":400,\"optimizer\":{\"lr\":0.003},"
        "\"eval\":{\"episodes\":300}}");
    json_t *job = finished(id, 120);
    json_t *fs = json_object_get(json_object_get(job, "results"), "few_shot");
    ck_assert_int_eq(json_integer_value(json_object_get(fs, "ways")), 5);
    double acc = num_at(fs, "accuracy", "0");
    ck_assert_msg(acc > 0.4, "5-way 1-shot accuracy %g (chance 0.2)", acc);
    /* the meta-test classes are exactly the held-out letters */
    json_t *tc = json_object_get(fs, "test_classes");
    ck_assert_int_eq(json_array_size(tc), 6);
    size_t i;
    json_t *c;
    json_array_foreach(tc, i, c)
    {
        const char *l = json_string_value(c);
        ck_assert(l && l[0] >= 'U' && l[0] <= 'Z' && !l[1]);
    }
    json_decref(job);
}
END_TEST

/* SIGTERM mid-run checkpoints; the restarted daemon resumes the job and
 * ends with exactly the figures of an uninterrupted run. */
START_TEST(resume_is_exact)
{
    define_sine();
    char spec[1024];
    snprintf(spec, sizeof spec, SINE_SPEC, 3000, 700);
    long long a = submit(spec);
    json_t *ja = finished(a, 120);
    long long b = submit(spec);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", b);
    for (int tries = 0; tries < 400; tries++) {
        json_t *j = h_get_json(&P, path, 200);
        long long step = json_integer_value(json_object_get(j, "step"));
        json_decref(j);
        if (step >= 800)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    h_start(&P, DIR_, NULL);
    json_t *jb = finished(b, 120);
    json_t *fa = json_object_get(json_object_get(ja, "results"), "few_shot");
    json_t *fb = json_object_get(json_object_get(jb, "results"), "few_shot");
    ck_assert(json_equal(json_object_get(fa, "mse"), json_object_get(fb, "mse")));
    ck_assert(json_equal(json_object_get(fa, "ci95"), json_object_get(fb, "ci95")));
    json_decref(ja);
    json_decref(jb);
}
END_TEST

static void expect_422(const char *spec, const char *field, const char *needle)
{
    h_resp r = h_req(&P, "POST", "/v1/jobs", "application/json", spec, strlen(spec));
    h_expect_error(&r, 422, NULL, needle, field);
    h_resp_free(&r);
}

START_TEST(spec_errors_name_the_key)
{
    define_sine();
    json_decref(h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"lettr\",\"dataset\":\"letters\",\"target\":\"lettr\","
                            "\"kind\":\"classification\"}",
                            201));
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"inner\":{\"lr\":-1}}", "inner.lr",
               NULL);
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"inner\":{\"step\":2}}",
               "inner.step", "unknown");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"meta_batch\":0}", "meta_batch",
               NULL);
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"steps\":\"many\"}", "steps", NULL);
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"eval\":{\"steps\":[0,5,1]}}",
               "eval.steps[2]", "ascending");
    expect_422("{\"algorithm\":\"multitask\",\"tasks\":[\"lettr\"],\"inner\":{\"lr\":0.1}}",
               "inner", "meta-learning");
    expect_422("{\"algorithm\":\"multitask\",\"tasks\":[\"sine\"]}", "tasks[0]", "generator");
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"sine\"]}", "algorithm", "classification");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"episodes\":{\"ways\":5}}",
               "episodes", "generator");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"test_classes\":[\"U\",\"?\"]}}",
               "episodes.test_classes[1]", "no class");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"ways\":10,\"test_classes\":[\"U\",\"V\",\"W\"]}}",
               "episodes", "meta-test");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],\"model\":{\"dropout\":0.5}}",
               "model.dropout", NULL);
    /* nothing was queued */
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

Suite *meta_jobs_suite(void)
{
    Suite *s = suite_create("meta");
    TCase *tc = tcase_create("meta");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, maml_sinusoid_adapts);
    tcase_add_test(tc, protonet_letters_beats_chance);
    tcase_add_test(tc, resume_is_exact);
    tcase_add_test(tc, spec_errors_name_the_key);
    suite_add_tcase(s, tc);
    return s;
}
