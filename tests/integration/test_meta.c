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
#include <stdint.h>
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

    /* adaptation as a service: 10 points of a new sinusoid; ten inner steps
     * must fit the query far better than the unadapted initialisation */
    double mse[2];
    for (int k = 0; k < 2; k++) {
        char body[4096];
        size_t used = (size_t)snprintf(body, sizeof body, "{\"steps\":%d,\"support\":{\"rows\":[",
                                       k ? 10 : 0);
        for (int j = 0; j < 10; j++)
            used += (size_t)snprintf(body + used, sizeof body - used, "%s[%.3f]", j ? "," : "",
                                     -4.5 + j);
        used += (size_t)snprintf(body + used, sizeof body - used, "],\"labels\":[");
        for (int j = 0; j < 10; j++)
            used += (size_t)snprintf(body + used, sizeof body - used, "%s%.6f", j ? "," : "",
                                     3.0 * sin(-4.5 + j - 0.5));
        used += (size_t)snprintf(body + used, sizeof body - used, "]},\"query\":{\"rows\":[");
        for (int j = 0; j < 50; j++)
            used += (size_t)snprintf(body + used, sizeof body - used, "%s{\"x\":%.3f}",
                                     j ? "," : "", -4.9 + 0.2 * j);
        snprintf(body + used, sizeof body - used, "]}}");
        snprintf(path, sizeof path, "/v1/jobs/%lld/adapt", id);
        json_t *a = h_post_json(&P, path, body, 200);
        json_t *preds = json_object_get(a, "predictions");
        ck_assert_int_eq(json_array_size(preds), 50);
        ck_assert_int_eq(json_integer_value(json_object_get(a, "steps")), k ? 10 : 0);
        double sse = 0;
        for (int j = 0; j < 50; j++) {
            json_t *pj = json_array_get(preds, (size_t)j);
            double yhat = json_number_value(json_object_get(pj, "value"));
            double y = 3.0 * sin(-4.9 + 0.2 * j - 0.5);
            sse += (yhat - y) * (yhat - y);
        }
        mse[k] = sse / 50;
        json_decref(a);
    }
    ck_assert_msg(mse[1] < 0.5 * mse[0], "adapted mse %g, unadapted %g", mse[1], mse[0]);
}
END_TEST

/* rows of data/letters for letter L: the 16 feature values as a JSON array
 * text each (the target is the first column) */
static int letter_rows(char letter, int skip, int n, char *out, size_t cap, size_t *used)
{
    FILE *f = fopen(h_src("data/letters/letters.csv"), "r");
    char line[256];
    int got = 0, seen = 0;
    ck_assert_ptr_nonnull(f);
    while (got < n && fgets(line, sizeof line, f)) {
        if (line[0] != letter || line[1] != ',')
            continue;
        if (seen++ < skip)
            continue;
        line[strcspn(line, "\r\n")] = 0;
        *used += (size_t)snprintf(out + *used, cap - *used, "%s[%s]", *used && out[*used - 1] != '[' ? "," : "",
                                  line + 2);
        got++;
    }
    fclose(f);
    return got;
}

/* POST /v1/jobs/{id}/adapt on a trained 5-way protonet: 5-shot support of
 * five held-out letters, 10 query rows each; predictions are those letters,
 * well above chance; the stored model is untouched; bad requests are 4xx
 * naming the key. */
static void adapt_letters(long long id)
{
    static const char letters[] = "UVWXY";
    size_t cap = 1 << 16, used = 0;
    char *body = malloc(cap);
    char path[64], ck[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/adapt", id);
    snprintf(ck, sizeof ck, "/v1/jobs/%lld/checkpoints/latest", id);
    h_resp before = h_req(&P, "GET", ck, NULL, NULL, 0);
    ck_assert_int_eq(before.status, 200);

    used = (size_t)snprintf(body, cap, "{\"support\":{\"rows\":[");
    for (int c = 0; c < 5; c++)
        ck_assert_int_eq(letter_rows(letters[c], 0, 5, body, cap, &used), 5);
    used += (size_t)snprintf(body + used, cap - used, "],\"labels\":[");
    for (int c = 0; c < 5; c++)
        for (int i = 0; i < 5; i++)
            used += (size_t)snprintf(body + used, cap - used, "%s\"%c\"", c || i ? "," : "",
                                     letters[c]);
    used += (size_t)snprintf(body + used, cap - used, "]},\"query\":{\"rows\":[");
    for (int c = 0; c < 5; c++)
        ck_assert_int_eq(letter_rows(letters[c], 5, 10, body, cap, &used), 10);
    snprintf(body + used, cap - used, "]}}");

    json_t *a = h_post_json(&P, path, body, 200);
    json_t *b = h_post_json(&P, path, body, 200);
    ck_assert_msg(json_equal(a, b), "two identical adapt requests answered differently");
    ck_assert_str_eq(json_string_value(json_object_get(a, "algorithm")), "protonet");
    json_t *labels = json_object_get(a, "labels"), *preds = json_object_get(a, "predictions");
    ck_assert_int_eq(json_array_size(labels), 5);
    ck_assert_int_eq(json_array_size(preds), 50);
    int right = 0;
    for (size_t q = 0; q < 50; q++) {
        json_t *p = json_array_get(preds, q);
        const char *l = json_string_value(json_object_get(p, "label"));
        ck_assert_ptr_nonnull(l);
        right += l[0] == letters[q / 10];
        json_t *pr = json_object_get(p, "probabilities");
        ck_assert_int_eq(json_array_size(pr), 5);
        double sum = 0;
        for (size_t k = 0; k < 5; k++)
            sum += json_number_value(json_array_get(pr, k));
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
    }
    ck_assert_msg(right > 25, "5-way 5-shot adapt: %d of 50 right (chance 10)", right);
    json_decref(a);
    json_decref(b);

    h_resp after = h_req(&P, "GET", ck, NULL, NULL, 0);
    ck_assert_int_eq(after.status, 200);
    ck_assert(after.len == before.len && !memcmp(after.body, before.body, after.len));
    h_resp_free(&before);
    h_resp_free(&after);

    /* strict errors */
    static const struct {
        const char *body, *field, *needle;
        long status;
    } bad[] = {
        {"{\"support\":{\"rows\":[[1]],\"labels\":[\"a\"]},\"query\":{\"rows\":[[1]]},\"x\":1}",
         "x", "unknown", 422},
        {"{\"query\":{\"rows\":[[1]]}}", "support", "required", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\"]},\"query\":{\"rows\":[[1]]}}",
         "support.labels", "one label per", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\",\"a\"]},"
         "\"query\":{\"rows\":[[1]]}}",
         "support.labels", "1 class", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\",\"b\"]},"
         "\"query\":{\"rows\":[[1]]}}",
         "support.rows[0]", "16 columns", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\",\"b\"]},"
         "\"query\":{\"rows\":[[1]]},\"steps\":3}",
         "steps", "protonet", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\",[]]},"
         "\"query\":{\"rows\":[[1]]}}",
         "support.labels[1]", "class label", 422},
        {"{\"support\":{\"rows\":[[1],[2]],\"labels\":[\"a\",\"b\"]},"
         "\"query\":{\"rows\":[[1]]},\"steps\":101}",
         "steps", "0 to 100", 422},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp r = h_req(&P, "POST", path, "application/json", bad[i].body, strlen(bad[i].body));
        h_expect_error(&r, bad[i].status, NULL, bad[i].needle, bad[i].field);
        h_resp_free(&r);
    }
    /* more support rows than the limit: 413 */
    used = (size_t)snprintf(body, cap, "{\"support\":{\"rows\":[");
    for (int i = 0; i < 1001; i++)
        used += (size_t)snprintf(body + used, cap - used, "%s[1]", i ? "," : "");
    snprintf(body + used, cap - used, "],\"labels\":[]},\"query\":{\"rows\":[[1]]}}");
    h_resp r = h_req(&P, "POST", path, "application/json", body, strlen(body));
    h_expect_error(&r, 413, NULL, "limit", "support.rows");
    h_resp_free(&r);
    r = h_req(&P, "POST", "/v1/jobs/999/adapt", "application/json", bad[4].body,
              strlen(bad[4].body));
    h_expect_error(&r, 404, NULL, "999", NULL);
    h_resp_free(&r);
    free(body);
}

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
    adapt_letters(id);
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

/* The first n data rows of data/letters (real rows, a smaller table). */
static void letters_head(const char *path, int n)
{
    FILE *in = fopen(h_src("data/letters/letters.csv"), "r"), *out = fopen(path, "w");
    char line[256];
    ck_assert(in && out);
    for (int i = 0; i <= n && fgets(line, sizeof line, in); i++)
        fputs(line, out);
    fclose(in);
    fclose(out);
}

/* episodes.test_task: meta-train on every class of one task, meta-test on
 * the classes of another (here another dataset with the same columns);
 * submission says when the test task cannot serve. */
START_TEST(test_task_meta_tests_elsewhere)
{
    char head[300], tiny[300];
    snprintf(head, sizeof head, "%s/head.csv", DIR_);
    snprintf(tiny, sizeof tiny, "%s/tiny.csv", DIR_);
    letters_head(head, 2000);
    letters_head(tiny, 300);
    json_decref(h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201));
    json_decref(h_upload(&P, "lhead", head, 201));
    json_decref(h_upload(&P, "ltiny", tiny, 201));
    json_decref(h_upload(&P, "digits", h_src("data/digits/digits.csv"), 201));
    static const char *const tasks[] = {
        "{\"name\":\"lettr\",\"dataset\":\"letters\",\"target\":\"lettr\",\"kind\":\"classification\"}",
        "{\"name\":\"head\",\"dataset\":\"lhead\",\"target\":\"lettr\",\"kind\":\"classification\"}",
        "{\"name\":\"tiny\",\"dataset\":\"ltiny\",\"target\":\"lettr\",\"kind\":\"classification\"}",
        "{\"name\":\"digit\",\"dataset\":\"digits\",\"target\":\"label\",\"kind\":\"classification\"}",
    };
    for (size_t i = 0; i < 4; i++)
        json_decref(h_post_json(&P, "/v1/tasks", tasks[i], 201));
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"shots\":5,\"queries\":15,\"test_task\":\"tiny\"}}",
               "episodes.test_task", "of the 26 classes of test task 'tiny'");
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"test_task\":\"digit\"}}",
               "episodes.test_task", "other inputs");
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"test_task\":\"head\",\"test_fraction\":0.2}}",
               "episodes.test_task", "one of");
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],"
               "\"episodes\":{\"test_task\":\"nope\"}}",
               "episodes.test_task", "no task");
    long long id = submit(
        "{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],\"model\":{\"trunk\":[32,32]},"
        "\"episodes\":{\"ways\":5,\"shots\":1,\"queries\":5,\"test_task\":\"head\"},"
        "\"meta_batch\":5,\"steps\":100,\"optimizer\":{\"lr\":0.003},"
        "\"eval\":{\"episodes\":100}}");
    json_t *job = finished(id, 120);
    json_t *fs = json_object_get(json_object_get(job, "results"), "few_shot");
    ck_assert_str_eq(json_string_value(json_object_get(fs, "test_task")), "head");
    ck_assert_int_eq(json_array_size(json_object_get(fs, "test_classes")), 26);
    double acc = num_at(fs, "accuracy", "0");
    ck_assert_msg(acc > 0.3, "5-way 1-shot accuracy on the test task %g (chance 0.2)", acc);
    json_decref(job);
}
END_TEST

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
    /* meta-learning holds out classes, not rows */
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],\"validation_fraction\":0.1}",
               "validation_fraction", "episodes");
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

/* The bytes of tensor name in a safetensors file held in memory. */
static const unsigned char *tensor_bytes(const h_resp *r, const char *name, size_t *n)
{
    uint64_t hl = 0;
    ck_assert(r->len > 8);
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (unsigned char)r->body[i];
    ck_assert(8 + hl <= r->len);
    json_t *h = json_loadb(r->body + 8, (size_t)hl, 0, NULL);
    ck_assert_ptr_nonnull(h);
    json_t *offs = json_object_get(json_object_get(h, name), "data_offsets");
    ck_assert_msg(json_array_size(offs) == 2, "no tensor %s", name);
    size_t b = (size_t)json_integer_value(json_array_get(offs, 0));
    *n = (size_t)json_integer_value(json_array_get(offs, 1)) - b;
    json_decref(h);
    return (const unsigned char *)r->body + 8 + hl + b;
}

static int in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strstr(json_string_value(v), s))
            return 1;
    }
    return 0;
}

/* Task-level flow: meta-learn an initialisation (5-way MAML on letters),
 * then "finetune" it on the 26-class task with the trunk frozen: the
 * meta-learned layers become the trunk, the 5-way head is re-initialised
 * with a note, and the trunk never moves. */
START_TEST(finetune_from_meta_checkpoint)
{
    json_decref(h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"lettr\",\"dataset\":\"letters\",\"target\":\"lettr\","
                            "\"kind\":\"classification\"}",
                            201));
    long long a = submit("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],\"model\":{\"trunk\":[32,32]},"
                         "\"episodes\":{\"ways\":5,\"shots\":1,\"queries\":5},"
                         "\"inner\":{\"lr\":0.5},\"meta_batch\":5,\"steps\":100,"
                         "\"eval\":{\"episodes\":20}}");
    json_decref(finished(a, 120));
    expect_422("{\"algorithm\":\"finetune\",\"tasks\":[\"lettr\"]}", "from_checkpoint", "required");
    expect_422("{\"algorithm\":\"multitask\",\"tasks\":[\"lettr\"],\"freeze\":\"trunk\"}", "freeze",
               "finetune");
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"finetune\",\"tasks\":[\"lettr\"],\"freeze\":\"bottom\","
             "\"from_checkpoint\":%lld}", a);
    expect_422(spec, "freeze", "trunk");
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"finetune\",\"tasks\":[\"lettr\"],\"model\":{\"trunk\":[32,32]},"
             "\"freeze\":\"trunk\",\"from_checkpoint\":%lld,\"epochs\":1,\"batch_size\":256,"
             "\"optimizer\":{\"lr\":0.01}}", a);
    long long b = submit(spec);
    json_t *job = finished(b, 120);
    json_t *res = json_object_get(job, "results");
    json_t *fc = json_object_get(res, "from_checkpoint");
    ck_assert(in_array(json_object_get(fc, "copied"), "trunk.0.weight"));
    ck_assert(in_array(json_object_get(fc, "copied"), "trunk.1.bias"));
    ck_assert(in_array(json_object_get(fc, "reinitialised"), "tasks.0.head.weight"));
    ck_assert_msg(in_array(json_object_get(fc, "notes"), "26 outputs here and 5 in the checkpoint"),
                  "no note on the head");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "frozen_parameters")),
                     16 * 32 + 32 + 32 * 32 + 32);
    ck_assert_double_gt(num_at(res, "lettr", "accuracy"), 0.2); /* chance: 1/26 */
    json_t *mem = json_object_get(res, "memory");
    ck_assert_int_ge(json_integer_value(json_object_get(mem, "peak_rss_bytes")),
                     json_integer_value(json_object_get(mem, "rss_end_bytes")));
    ck_assert_int_gt(json_integer_value(json_object_get(mem, "rss_start_bytes")), 0);
    json_decref(job);
    /* the frozen trunk is bit for bit the meta-learned layers */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", a);
    h_resp ra = h_req(&P, "GET", path, NULL, NULL, 0);
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", b);
    h_resp rb = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert(ra.status == 200 && rb.status == 200);
    static const char *const pairs[][2] = {{"layers.0.weight", "trunk.0.weight"},
                                           {"layers.1.bias", "trunk.1.bias"}};
    for (int i = 0; i < 2; i++) {
        size_t na, nb;
        const unsigned char *pa = tensor_bytes(&ra, pairs[i][0], &na);
        const unsigned char *pb = tensor_bytes(&rb, pairs[i][1], &nb);
        ck_assert(na == nb && na > 0 && !memcmp(pa, pb, na));
    }
    h_resp_free(&ra);
    h_resp_free(&rb);
}
END_TEST

/* ---- imported models (POST /v1/checkpoints) ------------------------------ */

typedef struct {
    const char *name, *dtype;
    int rank, shape[2];
    const float *data;
} st_tensor;

/* A safetensors file of the tensors (data back to back), plus `extra`
 * trailing bytes; *n its size. malloc'd. */
static unsigned char *make_st(const st_tensor *t, int nt, const char *meta_features, size_t extra,
                              size_t *n)
{
    json_t *h = json_object();
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        size_t cnt = (size_t)t[i].shape[0] * (t[i].rank == 2 ? (size_t)t[i].shape[1] : 1);
        json_t *shape = t[i].rank == 2 ? json_pack("[i,i]", t[i].shape[0], t[i].shape[1])
                                       : json_pack("[i]", t[i].shape[0]);
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", t[i].dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + cnt * 4)));
        off += cnt * 4;
    }
    if (meta_features)
        json_object_set_new(h, "__metadata__", json_pack("{s:s}", "features", meta_features));
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = strlen(text), pad = (8 - hl % 8) % 8;
    *n = 8 + hl + pad + off + extra;
    unsigned char *b = calloc(1, *n);
    uint64_t L = hl + pad;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(L >> (8 * i));
    memcpy(b + 8, text, hl);
    memset(b + 8 + hl, ' ', pad);
    free(text);
    off = 8 + hl + pad;
    for (int i = 0; i < nt; i++) {
        size_t cnt = (size_t)t[i].shape[0] * (t[i].rank == 2 ? (size_t)t[i].shape[1] : 1);
        memcpy(b + off, t[i].data, cnt * 4);
        off += cnt * 4;
    }
    return b;
}

static h_resp post_st(const char *query, const unsigned char *b, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/checkpoints%s", query);
    return h_req(&P, "POST", path, "application/octet-stream", b, n);
}

/* A pretrained MLP (16 → 32 → 32, head 5) made here as PyTorch would save
 * it: imported after strict checks, then used by a finetune job (trunk
 * frozen: the job's trunk is bit for bit the file's) and a meta job. */
START_TEST(import_pretrained_model)
{
    static float w0[32 * 16], b0[32], w1[32 * 32], b1[32], hw[5 * 32], hb[5];
    for (int i = 0; i < 32 * 32; i++) {
        if (i < 32 * 16)
            w0[i] = (float)sin(i * 0.37) * 0.2f;
        w1[i] = (float)cos(i * 0.11) * 0.15f;
        if (i < 32) {
            b0[i] = 0.01f * (float)i;
            b1[i] = -0.01f * (float)i;
        }
        if (i < 5 * 32)
            hw[i] = 0.05f * (float)sin(i);
        if (i < 5)
            hb[i] = 0;
    }
    st_tensor good[] = {{"trunk.0.weight", "F32", 2, {32, 16}, w0},
                        {"trunk.0.bias", "F32", 1, {32, 0}, b0},
                        {"trunk.1.weight", "F32", 2, {32, 32}, w1},
                        {"trunk.1.bias", "F32", 1, {32, 0}, b1},
                        {"head.weight", "F32", 2, {5, 32}, hw},
                        {"head.bias", "F32", 1, {5, 0}, hb}};
    size_t n;
    unsigned char *b = make_st(good, 6, NULL, 0, &n);
    h_resp r = post_st("?name=pre", b, n);
    ck_assert_msg(r.status == 201, "import: %ld %s", r.status, r.body);
    json_t *o = h_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "pre");
    ck_assert_int_eq(json_array_size(json_object_get(o, "trunk")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "head"), "out")), 5);
    json_decref(o);
    h_resp_free(&r);
    r = post_st("?name=pre", b, n); /* the name is taken */
    h_expect_error(&r, 409, NULL, "pre", "name");
    h_resp_free(&r);
    r = h_req(&P, "POST", "/v1/checkpoints", "application/json", b, n);
    ck_assert_int_eq(r.status, 415);
    h_resp_free(&r);

    /* strict validation: each broken file is refused naming what is wrong */
    struct {
        int which;         /* tensor to break */
        const char *what;  /* how */
        const char *field, *needle;
    } bad[] = {
        {0, "dtype", "trunk.0.weight", "F32"},
        {2, "chain", "trunk.1.weight", "reads 31 inputs"},
        {1, "nan", "trunk.0.bias", "element 3 is NaN"},
        {4, "name", "fc.weight", "not in mtld's layout"},
        {3, "drop", "trunk.1.bias", "missing"},
        {0, "trailing", "body", "follow the last tensor"},
        {0, "features", "__metadata__.features", "16 input names"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_tensor t[6];
        memcpy(t, good, sizeof t);
        static float w1b[32 * 31], b0n[32];
        int nt = 6;
        size_t extra = 0;
        const char *feats = NULL;
        if (!strcmp(bad[i].what, "dtype"))
            t[0].dtype = "F16";
        else if (!strcmp(bad[i].what, "chain")) {
            t[2].shape[1] = 31;
            t[2].data = w1b;
        } else if (!strcmp(bad[i].what, "nan")) {
            memcpy(b0n, b0, sizeof b0n);
            b0n[3] = NAN;
            t[1].data = b0n;
        } else if (!strcmp(bad[i].what, "name"))
            t[4].name = "fc.weight";
        else if (!strcmp(bad[i].what, "drop")) {
            t[3] = t[5];
            nt = 5;
            t[3] = good[4];
            t[4] = good[5];
        } else if (!strcmp(bad[i].what, "trailing"))
            extra = 8;
        else if (!strcmp(bad[i].what, "features"))
            feats = "[\"a\",\"b\"]";
        size_t bn;
        unsigned char *bb = make_st(t, nt, feats, extra, &bn);
        h_resp e = post_st("", bb, bn);
        h_expect_error(&e, 422, NULL, bad[i].needle, bad[i].field);
        h_resp_free(&e);
        free(bb);
    }
    /* a torn file: shorter than its header says */
    r = post_st("", b, n - 4);
    ck_assert_int_eq(r.status, 422);
    h_resp_free(&r);
    r = post_st("", (const unsigned char *)"\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
    h_expect_error(&r, 422, NULL, "header length", "body");
    h_resp_free(&r);
    json_t *list = h_get_json(&P, "/v1/checkpoints", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(list, "total")), 1);
    json_decref(list);

    /* jobs start from it */
    json_decref(h_upload(&P, "letters", h_src("data/letters/letters.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"lettr\",\"dataset\":\"letters\",\"target\":\"lettr\","
                            "\"kind\":\"classification\"}",
                            201));
    expect_422("{\"algorithm\":\"finetune\",\"tasks\":[\"lettr\"],"
               "\"from_checkpoint\":{\"checkpoint\":\"nope\"}}",
               "from_checkpoint.checkpoint", "no imported model");
    long long f = submit("{\"algorithm\":\"finetune\",\"tasks\":[\"lettr\"],"
                         "\"model\":{\"trunk\":[32,32]},\"freeze\":\"trunk\","
                         "\"from_checkpoint\":{\"checkpoint\":\"pre\"},\"epochs\":1,"
                         "\"batch_size\":512}");
    json_t *job = finished(f, 120);
    json_t *fc = json_object_get(json_object_get(job, "results"), "from_checkpoint");
    ck_assert_str_eq(json_string_value(json_object_get(fc, "checkpoint")), "pre");
    ck_assert(in_array(json_object_get(fc, "copied"), "trunk.0.weight"));
    ck_assert(in_array(json_object_get(fc, "notes"), "26 outputs here and 5"));
    json_decref(job);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", f);
    r = h_req(&P, "GET", path, NULL, NULL, 0);
    size_t nw;
    const unsigned char *pw = tensor_bytes(&r, "trunk.0.weight", &nw);
    ck_assert(nw == sizeof w0 && !memcmp(pw, w0, nw));
    pw = tensor_bytes(&r, "trunk.1.bias", &nw);
    ck_assert(nw == sizeof b1 && !memcmp(pw, b1, nw));
    h_resp_free(&r);
    /* a meta-learning job: 5-way MAML takes trunk and head */
    long long m = submit("{\"algorithm\":\"maml\",\"tasks\":[\"lettr\"],\"model\":{\"trunk\":[32,32]},"
                         "\"episodes\":{\"ways\":5,\"shots\":1,\"queries\":5},\"meta_batch\":2,"
                         "\"steps\":5,\"eval\":{\"episodes\":10},"
                         "\"from_checkpoint\":{\"checkpoint\":\"pre\"}}");
    job = finished(m, 120);
    fc = json_object_get(json_object_get(job, "results"), "from_checkpoint");
    ck_assert_int_eq(json_array_size(json_object_get(fc, "copied")), 6);
    ck_assert_int_eq(json_array_size(json_object_get(fc, "reinitialised")), 0);
    json_decref(job);
    free(b);
}
END_TEST

/* The first n rows of data/stackoverflow as JSON objects {column: number}
 * (every column of that file is numeric). */
static json_t *so_rows(int skip, int n)
{
    FILE *f = fopen(h_src("data/stackoverflow/stackoverflow.csv"), "r");
    char line[4096], *names[64];
    int nc = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    line[strcspn(line, "\r\n")] = 0;
    for (char *save = NULL, *tok = strtok_r(line, ",", &save); tok && nc < 64;
         tok = strtok_r(NULL, ",", &save))
        names[nc++] = strdup(tok);
    json_t *rows = json_array();
    for (int r = 0; r < skip + n && fgets(line, sizeof line, f); r++) {
        if (r < skip)
            continue;
        json_t *o = json_object();
        char *p = line;
        for (int c = 0; c < nc; c++) {
            json_object_set_new(o, names[c], json_real(strtod(p, &p)));
            if (*p == ',')
                p++;
        }
        json_array_append_new(rows, o);
    }
    fclose(f);
    for (int c = 0; c < nc; c++)
        free(names[c]);
    return rows;
}

/* The job's tasks themselves as the task distribution: MAML over four
 * binary "does this developer have role X" tasks of the Stack Overflow
 * survey; each episode is K support and Q query rows of one task. */
START_TEST(task_level_meta_learning)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    static const char *const roles[] = {"role_devops", "role_web_developer",
                                        "role_mobile_developer", "role_systems_administrator",
                                        "salary", "role_data_scientist"};
    for (int i = 0; i < 6; i++) {
        char def[256];
        snprintf(def, sizeof def,
                 "{\"name\":\"%s\",\"dataset\":\"so\",\"target\":\"%s\",\"kind\":\"%s\"}",
                 roles[i], roles[i], i == 4 ? "regression" : "classification");
        json_decref(h_post_json(&P, "/v1/tasks", def, 201));
    }
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"role_devops\",\"salary\"]}", "tasks[1]",
               "all regression or all classification");
    expect_422("{\"algorithm\":\"protonet\",\"tasks\":[\"role_devops\",\"role_web_developer\"]}",
               "algorithm", "several listed tasks");
    expect_422("{\"algorithm\":\"maml\",\"tasks\":[\"role_devops\",\"role_web_developer\"],"
               "\"episodes\":{\"ways\":2}}",
               "episodes", "only shots and queries");
    long long id = submit(
        "{\"algorithm\":\"maml\",\"tasks\":[\"role_devops\",\"role_web_developer\","
        "\"role_mobile_developer\",\"role_systems_administrator\"],\"model\":{\"trunk\":[32]},"
        "\"inner\":{\"lr\":0.1},\"meta_batch\":4,\"steps\":200,"
        "\"eval\":{\"episodes\":80,\"steps\":[0,5]}}");
    json_t *job = finished(id, 120);
    json_t *res = json_object_get(job, "results"), *fs = json_object_get(res, "few_shot");
    ck_assert_int_eq(json_array_size(json_object_get(fs, "tasks")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(fs, "ways")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(fs, "shots")), 10);
    double a0 = num_at(fs, "accuracy", "0"), a5 = num_at(fs, "accuracy", "5");
    ck_assert_msg(a5 > a0, "accuracy after 5 steps %g, before %g", a5, a0);
    for (int i = 0; i < 4; i++) {
        json_t *t = json_object_get(res, roles[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "episodes")), 20);
        double a = num_at(res, roles[i], "accuracy");
        ck_assert(a >= 0 && a <= 1);
    }
    json_decref(job);

    /* adapt to a task it never saw: role_data_scientist, from 20 labelled rows */
    json_t *sup = so_rows(0, 20), *qry = so_rows(20, 10), *labels = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(sup, i, row)
    {
        json_array_append_new(labels, json_string(
                                          json_number_value(json_object_get(row, "role_data_scientist")) > 0.5
                                              ? "yes" : "no"));
    }
    json_t *body = json_pack("{s:{s:o,s:o},s:{s:o},s:i}", "support", "rows", sup, "labels", labels,
                             "query", "rows", qry, "steps", 5);
    char *text = json_dumps(body, JSON_COMPACT);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/adapt", id);
    h_resp r = h_req(&P, "POST", path, "application/json", text, strlen(text));
    json_t *a = h_json(&r);
    /* (one data scientist among the first 20 rows: two classes) */
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(json_array_size(json_object_get(a, "predictions")), 10);
    ck_assert_int_eq(json_array_size(json_object_get(a, "labels")), 2);
    json_decref(a);
    h_resp_free(&r);
    free(text);
    json_decref(body);

    /* or fine-tune the meta-learned initialisation on the new task: its inputs
     * differ (the four role targets are inputs now, role_data_scientist is
     * not), so the first layer is copied column by column by input name */
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"finetune\",\"tasks\":[\"role_data_scientist\"],"
             "\"model\":{\"trunk\":[32]},\"from_checkpoint\":%lld,\"epochs\":1}", id);
    job = finished(submit(spec), 120);
    json_t *fc = json_object_get(json_object_get(job, "results"), "from_checkpoint");
    ck_assert(in_array(json_object_get(fc, "copied"), "trunk.0.weight"));
    ck_assert(in_array(json_object_get(fc, "copied"), "trunk.0.bias"));
    ck_assert(in_array(json_object_get(fc, "copied"), "tasks.0.head.weight"));
    ck_assert_msg(in_array(json_object_get(fc, "notes"), "20 of the job's 24 inputs matched"),
                  "no note on the first layer");
    json_decref(job);
    /* a meta-learning job starts from it the same way */
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"maml\",\"tasks\":[\"role_data_scientist\",\"role_devops\"],"
             "\"model\":{\"trunk\":[32]},\"from_checkpoint\":%lld,\"steps\":5,"
             "\"meta_batch\":2,\"eval\":{\"episodes\":4}}", id);
    job = finished(submit(spec), 120);
    fc = json_object_get(json_object_get(job, "results"), "from_checkpoint");
    ck_assert_int_eq(json_array_size(json_object_get(fc, "copied")), 4);
    ck_assert_msg(in_array(json_object_get(fc, "notes"), "20 of the job's 23 inputs matched"),
                  "no note on the first layer");
    json_decref(job);
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
    tcase_add_test(tc, test_task_meta_tests_elsewhere);
    tcase_add_test(tc, finetune_from_meta_checkpoint);
    tcase_add_test(tc, import_pretrained_model);
    tcase_add_test(tc, task_level_meta_learning);
    suite_add_tcase(s, tc);
    return s;
}
