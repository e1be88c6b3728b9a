/*
 * tests/integration/test_api_live.c — the API around training jobs, against
 * a real mtld: Server-Sent Events (every event of a job in order, the
 * stream ends after the final state, Last-Event-ID resumes, the watcher
 * limit, a cancelled job ends its streams), predictions that reproduce the
 * job's own held-out evaluation, CSV predictions, predict errors and its row
 * limit, and the per-job training rates in /metrics.
 *
 * To check predictions against the evaluation the test needs the held-out
 * rows: it rebuilds the job's split with the engine's eng_split exactly as
 * the service does (svc_jobdata.c: stratified on the first classification
 * task's class index, rng seeded with seed ^ 0x5eed5917), and checks the
 * size of its split against results.rows.test before using it.
 */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/prep.h"
#include "engine/rng.h"
#include "tests/integration/test_api.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    const char *extra[] = {"--workers", "1", "--sse-watchers", "1", "--predict-rows", "2000",
                           "--sse-heartbeat", "1", NULL};
    h_start(&P, DIR_, extra);
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\","
                            "\"kind\":\"regression\"}",
                            201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\",\"class_weight\":\"balanced\"}",
                            201));
}

static void teardown(void)
{
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
}

static long long submit(int epochs)
{
    char spec[400];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
             "\"model\":{\"trunk\":[32,16]},\"epochs\":%d,\"batch_size\":64,\"seed\":11,"
             "\"test_fraction\":0.2}",
             epochs);
    json_t *j = h_post_json(&P, "/v1/jobs", spec, 202);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

static const char *state_of(const t_event *e, char *buf, size_t n)
{
    json_t *d = json_loads(e->data, 0, NULL);
    snprintf(buf, n, "%s", json_string_value(json_object_get(d, "state")) ?
                               json_string_value(json_object_get(d, "state")) : "");
    json_decref(d);
    return buf;
}

#define MAX_EV 4096

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static h_resp pj(const char *path, const char *body)
{
    return h_req(&P, "POST", path, "application/json", body, strlen(body));
}

typedef struct {
    char url[256];
} canceller;

/* Cancels a job half a second from now (plain libcurl: no asserts off the
 * test's thread). */
static void *cancel_later(void *arg)
{
    canceller *k = arg;
    usleep(500 * 1000);
    CURL *c = curl_easy_init();
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, k->url);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_perform(c);
        curl_easy_cleanup(c);
    }
    return NULL;
}

START_TEST(events_arrive_in_order_and_the_stream_ends)
{
    /* One worker: job b waits behind job a (until a is cancelled, while b is
     * being watched), so its watcher sees all of it. */
    long long a = submit(100000);
    long long b = submit(3);
    canceller k;
    snprintf(k.url, sizeof k.url, "%s/v1/jobs/%lld/cancel", P.url, a);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, &k), 0);
    t_event *ev = calloc(MAX_EV, sizeof *ev);
    long status = 0;
    int ended = 0;
    int n = t_events(&P, b, -1, 120, ev, MAX_EV, &status, &ended);
    pthread_join(th, NULL);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(ended, "the server did not end the stream");
    ck_assert_int_ge(n, 3);
    char st[32];
    ck_assert_str_eq(ev[0].type, "state"); /* the snapshot comes first */
    ck_assert_msg(!strcmp(state_of(&ev[0], st, sizeof st), "queued"),
                  "job %lld was %s when watched (job %lld should have held the worker)", b, st, a);
    ck_assert_str_eq(ev[n - 1].type, "state");
    ck_assert_str_eq(state_of(&ev[n - 1], st, sizeof st), "succeeded");
    long long last_id = 0, last_metric_step = 0, last_progress = -1;
    int metrics = 0, progress = 0, running = 0;
    for (int i = 0; i < n; i++) {
        json_t *d = json_loads(ev[i].data, 0, NULL);
        ck_assert_msg(d != NULL, "event %d data is not JSON: %s", i, ev[i].data);
        if (ev[i].id) {
            ck_assert_msg(ev[i].id > last_id, "ids not increasing at %d", i);
            last_id = ev[i].id;
        }
        if (!strcmp(ev[i].type, "metric")) {
            long long step = json_integer_value(json_object_get(d, "step"));
            ck_assert_int_ge(step, last_metric_step);
            last_metric_step = step;
            ck_assert_ptr_nonnull(json_string_value(json_object_get(d, "task")));
            ck_assert_ptr_nonnull(json_string_value(json_object_get(d, "name")));
            ck_assert(json_is_number(json_object_get(d, "value")) ||
                      json_is_null(json_object_get(d, "value")));
            metrics++;
        } else if (!strcmp(ev[i].type, "progress")) {
            long long step = json_integer_value(json_object_get(d, "step"));
            ck_assert_int_ge(step, last_progress);
            last_progress = step;
            ck_assert(json_object_get(d, "eta") != NULL);
            /* null only before the first step: a published event past the
             * start (job b starts at 0) has one */
            if (ev[i].id && step > 0)
                ck_assert_msg(json_is_number(json_object_get(d, "eta")),
                              "progress event at step %lld has no eta: %s", step, ev[i].data);
            /* the job view's name for it, the same value */
            ck_assert(json_equal(json_object_get(d, "eta"), json_object_get(d, "eta_seconds")));
            ck_assert(json_is_number(json_object_get(d, "progress")));
            progress++;
        } else if (!strcmp(ev[i].type, "state")) {
            running += !strcmp(json_string_value(json_object_get(d, "state")), "running");
        }
        json_decref(d);
    }
    /* 3 epochs x (salary: 5 metrics + remote: 4, each task's weight, and
     * salary's grad_cosine.remote), then the test split's once (salary: 4,
     * remote: 3) */
    ck_assert_int_eq(metrics, 36 + 7);
    ck_assert_int_ge(progress, 2); /* the snapshot's and the last one */
    ck_assert_int_eq(running, 1);
    char jp[64];
    snprintf(jp, sizeof jp, "/v1/jobs/%lld", b);
    json_t *jb = h_get_json(&P, jp, 200);
    long long n_train = json_integer_value(
        json_object_get(json_object_get(json_object_get(jb, "results"), "rows"), "train"));
    ck_assert_int_gt(n_train, 0);
    ck_assert_int_eq(last_progress, 3 * ((n_train + 63) / 64)); /* batch_size 64 */
    json_decref(jb);

    /* Last-Event-ID resumes after that event */
    long long from = 0;
    for (int i = 0; i < n && !from; i++)
        if (ev[i].id && !strcmp(ev[i].type, "metric"))
            from = ev[i].id;
    ck_assert_int_gt(from, 0);
    t_event *ev2 = calloc(MAX_EV, sizeof *ev2);
    int n2 = t_events(&P, b, from, 30, ev2, MAX_EV, &status, &ended);
    ck_assert_int_eq(status, 200);
    ck_assert(ended);
    ck_assert_int_eq(n2, (int)(last_id - from));
    ck_assert_int_eq(ev2[0].id, from + 1);
    ck_assert_str_eq(state_of(&ev2[n2 - 1], st, sizeof st), "succeeded");
    /* a finished job's stream is its final state, then the end */
    n2 = t_events(&P, a, -1, 30, ev2, MAX_EV, &status, &ended);
    ck_assert(ended);
    ck_assert_int_eq(n2, 1);
    ck_assert_str_eq(state_of(&ev2[0], st, sizeof st), "cancelled");
    free(ev);
    free(ev2);
}
END_TEST

/* Reads the whole dataset through the rows API: values in column order. */
static json_t *all_rows(size_t *n_rows, json_t **columns)
{
    json_t *d = h_get_json(&P, "/v1/datasets/so", 200);
    *columns = json_incref(json_object_get(d, "columns"));
    size_t total = (size_t)json_integer_value(json_object_get(d, "rows"));
    json_decref(d);
    json_t *rows = json_array();
    for (size_t off = 0; off < total; off += 1000) {
        char path[128];
        snprintf(path, sizeof path, "/v1/datasets/so/rows?offset=%zu&limit=1000", off);
        json_t *pg = h_get_json(&P, path, 200);
        json_array_extend(rows, json_object_get(pg, "rows"));
        json_decref(pg);
    }
    *n_rows = total;
    return rows;
}

static int col_of(json_t *columns, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(columns, i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "name")), name))
            return (int)i;
    }
    return -1;
}

START_TEST(predictions_reproduce_the_evaluation)
{
    long long id = submit(4);
    json_t *job = h_wait_job(&P, id, 120);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "succeeded");
    json_t *res = json_object_get(job, "results");
    double acc = json_number_value(json_object_get(json_object_get(res, "remote"), "accuracy"));
    double mse = json_number_value(json_object_get(json_object_get(res, "salary"), "mse"));
    size_t n_test_reported =
        (size_t)json_integer_value(json_object_get(json_object_get(res, "rows"), "test"));

    size_t n = 0;
    json_t *columns = NULL;
    json_t *rows = all_rows(&n, &columns);
    ck_assert_int_eq(n, 5594);
    int c_remote = col_of(columns, "remote"), c_salary = col_of(columns, "salary");
    ck_assert(c_remote >= 0 && c_salary >= 0);
    /* remote is a number column: its classes are its distinct values, sorted */
    int *strata = malloc(n * sizeof *strata);
    for (size_t r = 0; r < n; r++)
        strata[r] = json_number_value(json_array_get(json_array_get(rows, r), (size_t)c_remote)) >
                            0.5
                        ? 1
                        : 0;
    uint32_t *train = malloc(n * sizeof *train), *test = malloc(n * sizeof *test);
    size_t n_train = 0, n_test = 0;
    eng_rng rng;
    eng_rng_seed(&rng, 11ULL ^ 0x5eed5917ULL);
    ck_assert_int_eq(eng_split(strata, 2, n, 0.2, &rng, train, &n_train, test, &n_test), 0);
    ck_assert_int_eq(n_test, n_test_reported);

    /* the held-out rows as objects of every column (the targets are ignored) */
    json_t *req_rows = json_array();
    for (size_t k = 0; k < n_test; k++) {
        json_t *row = json_array_get(rows, test[k]), *o = json_object();
        size_t ci;
        json_t *c;
        json_array_foreach(columns, ci, c)
        {
            json_object_set(o, json_string_value(json_object_get(c, "name")),
                            json_array_get(row, ci));
        }
        json_array_append_new(req_rows, o);
    }
    json_t *req = json_pack("{s:o}", "rows", req_rows);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict", id);
    json_t *out = h_post_json(&P, path, text, 200);
    free(text);
    json_t *rem = json_object_get(json_object_get(out, "tasks"), "remote");
    json_t *sal = json_object_get(json_object_get(out, "tasks"), "salary");
    ck_assert_str_eq(json_string_value(json_object_get(rem, "kind")), "classification");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rem, "labels"), 0)), "0");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rem, "labels"), 1)), "1");
    json_t *pr = json_object_get(rem, "predictions"), *ps = json_object_get(sal, "predictions");
    ck_assert_int_eq(json_array_size(pr), n_test);
    ck_assert_int_eq(json_array_size(ps), n_test);
    size_t correct = 0;
    double se = 0;
    for (size_t k = 0; k < n_test; k++) {
        json_t *row = json_array_get(rows, test[k]);
        json_t *p = json_array_get(pr, k);
        const char *label = json_string_value(json_object_get(p, "label"));
        json_t *probs = json_object_get(p, "probabilities");
        double p0 = json_number_value(json_array_get(probs, 0)),
               p1 = json_number_value(json_array_get(probs, 1));
        ck_assert_msg(fabs(p0 + p1 - 1) < 1e-6, "probabilities sum to %g", p0 + p1);
        ck_assert_str_eq(label, p1 > p0 ? "1" : "0");
        int truth = json_number_value(json_array_get(row, (size_t)c_remote)) > 0.5;
        correct += (size_t)(truth == (label[0] == '1'));
        double y = json_number_value(json_array_get(row, (size_t)c_salary));
        double yp = json_number_value(json_object_get(json_array_get(ps, k), "value"));
        se += (yp - y) * (yp - y);
    }
    double my_acc = (double)correct / (double)n_test, my_mse = se / (double)n_test;
    ck_assert_msg(fabs(my_acc - acc) < 0.5 / (double)n_test,
                  "accuracy from predictions %.6f, the job reported %.6f", my_acc, acc);
    ck_assert_msg(fabs(my_mse - mse) <= 1e-5 * mse,
                  "MSE from predictions %.8g, the job reported %.8g", my_mse, mse);

    /* the first row as an array in the reply's "columns" order: same answer */
    json_t *pcols = json_object_get(out, "columns");
    ck_assert_int_eq(json_array_size(pcols), 23); /* 25 columns minus the two targets */
    json_t *arr = json_array(), *row0 = json_array_get(rows, test[0]);
    size_t ci;
    json_t *cn;
    json_array_foreach(pcols, ci, cn)
    {
        json_array_append(arr, json_array_get(row0, (size_t)col_of(columns, json_string_value(cn))));
    }
    json_t *one = json_pack("{s:s,s:[o]}", "task", "salary", "rows", arr);
    text = json_dumps(one, JSON_COMPACT);
    json_decref(one);
    json_t *o1 = h_post_json(&P, path, text, 200);
    free(text);
    /* (a batch of one row may round differently in BLAS than a batch of many) */
    double v1 = json_number_value(
        json_object_get(json_array_get(json_object_get(o1, "predictions"), 0), "value"));
    double v0 = json_number_value(json_object_get(json_array_get(ps, 0), "value"));
    ck_assert_msg(fabs(v1 - v0) <= 1e-5 * fabs(v0), "array row %.10g, object row %.10g", v1, v0);
    json_decref(o1);
    json_decref(out);
    json_decref(h_post_json(&P, path, "{\"task\":\"salary\",\"rows\":[{}]}", 422));

    /* errors */
    h_resp r = pj(path, "{\"task\":\"nope\",\"rows\":[[1]]}");
    h_expect_error(&r, 422, "invalid", "nope", "task");
    h_resp_free(&r);
    r = pj(path, "{\"rows\":[[1,2]]}");
    h_expect_error(&r, 422, "invalid", "columns", "rows[0]");
    h_resp_free(&r);
    r = pj(path, "{\"rows\":[]}");
    h_expect_error(&r, 422, "invalid", NULL, "rows");
    h_resp_free(&r);
    r = pj(path, "{\"rows\":[[1]],\"colour\":1}");
    h_expect_error(&r, 422, "invalid", "colour", "colour");
    h_resp_free(&r);
    r = pj(path, "{\"rows\":[{\"years_coded_job\":\"many\"}]}");
    h_expect_error(&r, 422, "invalid", "number", "rows[0].years_coded_job");
    h_resp_free(&r);
    /* more rows than --predict-rows 2000 */
    json_t *many = json_array();
    for (int i = 0; i < 2001; i++)
        json_array_append_new(many, json_array());
    json_t *big = json_pack("{s:o}", "rows", many);
    text = json_dumps(big, JSON_COMPACT);
    json_decref(big);
    r = h_req(&P, "POST", path, "application/json", text, strlen(text));
    h_expect_error(&r, 413, "too_large", "2000", "rows");
    h_resp_free(&r);
    free(text);
    /* a job without a checkpoint: queued behind a long job on the one
     * worker and cancelled there, so it never ran (cancelling a job that
     * had started could leave it a checkpoint, and a loaded machine
     * decides which) */
    long long blocker = submit(100000);
    long long q = submit(1000);
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", q);
    json_t *cq = h_post_json(&P, path, "", 200);
    ck_assert_str_eq(json_string_value(json_object_get(cq, "state")), "cancelled");
    ck_assert_int_eq(json_integer_value(json_object_get(cq, "step")), 0);
    json_decref(cq);
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict", q);
    r = pj(path, "{\"rows\":[[1]]}");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", blocker);
    json_decref(h_post_json(&P, path, "", 200));

    free(strata);
    free(train);
    free(test);
    json_decref(rows);
    json_decref(columns);
    json_decref(job);
}
END_TEST

START_TEST(predictions_from_a_csv_body)
{
    long long id = submit(1);
    json_decref(h_wait_job(&P, id, 120));
    /* the first 9 data lines of the file, header included */
    size_t len = 0;
    char *csv = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(csv);
    char *p = csv;
    for (int i = 0; i < 10 && p; i++)
        p = strchr(p + 1, '\n');
    ck_assert_ptr_nonnull(p);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict?task=remote&checkpoint=latest", id);
    h_resp r = h_req(&P, "POST", path, "text/csv", csv, (size_t)(p - csv) + 1);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    json_t *out = h_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(out, "task")), "remote");
    json_t *preds = json_object_get(out, "predictions");
    ck_assert_int_eq(json_array_size(preds), 9);
    for (size_t i = 0; i < 9; i++) {
        const char *l = json_string_value(json_object_get(json_array_get(preds, i), "label"));
        ck_assert(l && (!strcmp(l, "0") || !strcmp(l, "1")));
    }
    json_decref(out);
    h_resp_free(&r);
    /* the best checkpoint serves too */
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict?task=salary&checkpoint=best", id);
    r = h_req(&P, "POST", path, "text/csv", csv, (size_t)(p - csv) + 1);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    /* a CSV missing a column the model reads */
    r = h_req(&P, "POST", path, "text/csv", "salary,remote\n1,0\n", 18);
    h_expect_error(&r, 422, "invalid", "missing", NULL);
    h_resp_free(&r);
    r = h_req(&P, "POST", path, "text/csv", "a,b\n1\n", 6);
    ck_assert_int_eq(r.status, 422);
    h_resp_free(&r);
    /* A JSON value beyond float32 is refused naming its cell (it became inf
     * in the engine and came back as a 200 with a made-up prediction). The
     * row is the file's first, as an object, with one value made 1e39. */
    char *nl1 = strchr(csv, '\n'), *nl2 = strchr(nl1 + 1, '\n');
    *nl1 = *nl2 = 0;
    json_t *row = json_object();
    char *hs = NULL, *vs = NULL;
    char *h = strtok_r(csv, ",", &hs), *v = strtok_r(nl1 + 1, ",", &vs);
    int ncols = 0;
    for (; h && v; h = strtok_r(NULL, ",", &hs), v = strtok_r(NULL, ",", &vs), ncols++)
        json_object_set_new(row, h, json_real(strcmp(h, "years_coded_job") ? atof(v) : 1e39));
    ck_assert_int_gt(ncols, 10);
    json_t *req = json_pack("{s:s,s:[o]}", "task", "salary", "rows", row);
    char *body = json_dumps(req, JSON_COMPACT);
    snprintf(path, sizeof path, "/v1/jobs/%lld/predict", id);
    r = h_req(&P, "POST", path, "application/json", body, strlen(body));
    h_expect_error(&r, 422, "invalid", "float32", "rows[0].years_coded_job");
    h_resp_free(&r);
    /* the same row within range predicts */
    json_object_set_new(row, "years_coded_job", json_real(3));
    free(body);
    body = json_dumps(req, JSON_COMPACT);
    r = h_req(&P, "POST", path, "application/json", body, strlen(body));
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    free(body);
    json_decref(req);
    free(csv);
}
END_TEST

/* Sends a raw GET of the event stream on fd and reads until the headers end. */
static void raw_stream(int fd, long long id, char *buf, size_t n)
{
    char req[256];
    int len = snprintf(req, sizeof req,
                       "GET /v1/jobs/%lld/events HTTP/1.1\r\nHost: x\r\nAccept: "
                       "text/event-stream\r\n\r\n",
                       id);
    ck_assert_int_eq(send(fd, req, (size_t)len, 0), len);
    size_t got = 0;
    while (got + 1 < n && !strstr(buf, "\r\n\r\n")) {
        ssize_t k = recv(fd, buf + got, n - 1 - got, 0);
        ck_assert_int_gt(k, 0);
        got += (size_t)k;
        buf[got] = 0;
    }
}

START_TEST(watcher_limit_and_a_cancelled_job_ends_its_stream)
{
    long long id = submit(100000);
    int fd = t_connect(&P);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536] = "";
    raw_stream(fd, id, buf, sizeof buf);
    ck_assert_msg(!strncmp(buf, "HTTP/1.1 200", 12), "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "text/event-stream"));
    /* --sse-watchers 1: a second watcher of the same job is refused */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/events", id);
    h_resp r = h_req(&P, "GET", path, NULL, NULL, 0);
    h_expect_error(&r, 429, "too_many_watchers", NULL, NULL);
    h_resp_free(&r);
    /* while it trains, /metrics has its rate series */
    json_t *j = NULL;
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%lld", id);
        j = h_get_json(&P, path, 200);
        int running = !strcmp(json_string_value(json_object_get(j, "state")), "running");
        json_decref(j);
        if (running)
            break;
        usleep(50 * 1000);
    }
    r = h_req(&P, "GET", "/metrics", NULL, NULL, 0);
    char series[96];
    snprintf(series, sizeof series, "mtld_job_samples_per_second{job=\"%lld\"}", id);
    ck_assert_msg(strstr(r.body, series) != NULL, "no %s in\n%s", series, r.body);
    snprintf(series, sizeof series, "mtld_jobs{state=\"running\"} 1");
    ck_assert_msg(strstr(r.body, series) != NULL, "no %s in\n%s", series, r.body);
    h_resp_free(&r);
    /* cancelling ends the open stream with the final state */
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", id);
    json_decref(h_post_json(&P, path, "", 200));
    size_t got = strlen(buf);
    for (;;) {
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = 0;
        if (strstr(buf, "\"cancelled\"") && strstr(buf, "0\r\n\r\n"))
            break; /* the final state and the last chunk */
        if (got + 1 >= sizeof buf)
            memmove(buf, buf + got / 2, got - got / 2 + 1), got -= got / 2;
    }
    ck_assert_msg(strstr(buf, "event: state") && strstr(buf, "\"cancelled\""),
                  "stream did not carry the final state: ...%s", buf + (got > 400 ? got - 400 : 0));
    ck_assert_msg(strstr(buf, "0\r\n\r\n") != NULL, "the stream was not ended by the server");
    close(fd);
    /* and the slot is free again */
    snprintf(path, sizeof path, "/v1/jobs/%lld/events", id);
    r = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}
END_TEST

/* R² of a constant target is undefined: null in the results and in the
 * metrics (the metric still listed), an empty cell in CSV; the job
 * succeeds, and the other task's R² is a number. The data: the real
 * stackoverflow rows whose hobby column is 1, with hobby as a target. */
START_TEST(r2_of_a_constant_target_is_null)
{
    size_t len = 0;
    char *csv = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(csv);
    char *sub = malloc(len + 1);
    size_t sl = 0;
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\n", &save); line && rows < 600;
         line = strtok_r(NULL, "\n", &save)) {
        const char *c2 = strchr(line, ',');
        c2 = c2 ? strchr(c2 + 1, ',') : NULL; /* hobby is the third column */
        int header = sl == 0;
        if (!header && !(c2 && !strncmp(c2, ",1,", 3)))
            continue;
        size_t n = strlen(line);
        memcpy(sub + sl, line, n);
        sl += n;
        sub[sl++] = '\n';
        rows += !header;
    }
    free(csv);
    ck_assert_int_eq(rows, 600);
    h_resp up = h_req(&P, "POST", "/v1/datasets?name=hobbyists", "text/csv", sub, sl);
    ck_assert_msg(up.status == 201, "%ld %s", up.status, up.body);
    h_resp_free(&up);
    free(sub);
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"hobby\",\"dataset\":\"hobbyists\",\"target\":\"hobby\","
                            "\"kind\":\"regression\"}",
                            201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"pay\",\"dataset\":\"hobbyists\",\"target\":\"salary\","
                            "\"kind\":\"regression\"}",
                            201));
    json_t *j = h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[\"hobby\",\"pay\"],"
                            "\"model\":{\"trunk\":[8]},\"epochs\":2,\"seed\":3}",
                            202);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    json_t *done = h_wait_job(&P, id, 120);
    ck_assert_str_eq(json_string_value(json_object_get(done, "state")), "succeeded");
    json_t *res = json_object_get(done, "results");
    json_t *hob = json_object_get(res, "hobby"), *pay = json_object_get(res, "pay");
    ck_assert_msg(json_is_object(hob) && json_is_object(pay), "results: %s",
                  json_dumps(res, 0));
    ck_assert_msg(json_is_null(json_object_get(hob, "r2")), "r2 of a constant target");
    ck_assert(json_is_null(json_object_get(json_object_get(hob, "baseline"), "r2")));
    ck_assert(json_is_number(json_object_get(hob, "mse")));
    ck_assert(json_is_number(json_object_get(hob, "mae")));
    ck_assert(json_is_number(json_object_get(pay, "r2")));
    json_decref(done);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    int nulls = 0, numbers = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(m, "metrics"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), "r2") != 0)
            continue;
        json_t *v = json_object_get(e, "value");
        ck_assert(json_object_get(e, "value") != NULL);
        if (!strcmp(json_string_value(json_object_get(e, "task")), "hobby")) {
            ck_assert(json_is_null(v));
            nulls++;
        } else {
            ck_assert(json_is_number(v));
            numbers++;
        }
    }
    ck_assert_int_eq(nulls, 2 + 1); /* one per epoch (validation), one at the end (test) */
    ck_assert_int_eq(numbers, 2 + 1);
    json_decref(m);
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics?format=csv", id);
    h_resp c = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(c.status, 200);
    ck_assert_msg(strstr(c.body, ",hobby,test,r2,\n") != NULL, "%s", c.body);
    ck_assert_msg(strstr(c.body, ",hobby,validation,r2,\n") != NULL, "%s", c.body);
    h_resp_free(&c);
}
END_TEST

/* The cancel reply shows the job as it is: 200 with the stopped state,
 * or 202 "running" + cancel_requested while it stops; a queued job is
 * cancelled at once; a finished one is 409 naming its state. */
START_TEST(cancel_reports_the_state)
{
    long long run = submit(100000), queued = submit(100000); /* one worker */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld", run);
    json_t *j = NULL;
    for (int i = 0; i < 600; i++) { /* until it runs (60 s at most) */
        j = h_get_json(&P, path, 200);
        if (!strcmp(json_string_value(json_object_get(j, "state")), "running"))
            break;
        json_decref(j);
        j = NULL;
        usleep(100 * 1000);
    }
    ck_assert_msg(j != NULL, "the job never ran");
    json_decref(j);
    /* the queued one: at once */
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", queued);
    h_resp q = h_req(&P, "POST", path, NULL, NULL, 0);
    ck_assert_msg(q.status == 200, "%ld %s", q.status, q.body);
    j = h_json(&q);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "cancelled");
    ck_assert(json_is_string(json_object_get(j, "finished_at")));
    json_decref(j);
    h_resp_free(&q);
    /* the running one */
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", run);
    h_resp c = h_req(&P, "POST", path, NULL, NULL, 0);
    j = h_json(&c);
    ck_assert_ptr_nonnull(j);
    const char *st = json_string_value(json_object_get(j, "state"));
    if (c.status == 200) {
        ck_assert_str_eq(st, "cancelled");
        ck_assert(json_is_string(json_object_get(j, "finished_at")));
        ck_assert(json_object_get(j, "cancel_requested") == NULL);
    } else {
        ck_assert_msg(c.status == 202, "%ld %s", c.status, c.body);
        ck_assert_str_eq(st, "running");
        ck_assert(json_is_true(json_object_get(j, "cancel_requested")));
    }
    json_decref(j);
    h_resp_free(&c);
    json_t *done = h_wait_job(&P, run, 120);
    ck_assert_str_eq(json_string_value(json_object_get(done, "state")), "cancelled");
    json_decref(done);
    h_resp again = h_req(&P, "POST", path, NULL, NULL, 0);
    h_expect_error(&again, 409, "conflict", "cancelled", NULL);
    h_resp_free(&again);
}
END_TEST

/* A quiet stream (a queued job behind a running one) gets ": heartbeat"
 * comments after --sse-heartbeat seconds of silence (1 here; 15 by
 * default), and a cancel then ends it with the final state. */
START_TEST(a_quiet_stream_gets_heartbeats)
{
    long long run = submit(100000), queued = submit(100000); /* one worker */
    int fd = t_connect(&P);
    ck_assert(fd >= 0);
    char req[256];
    snprintf(req, sizeof req,
             "GET /v1/jobs/%lld/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
             queued);
    ck_assert(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[8192];
    size_t got = 0;
    time_t t0 = time(NULL);
    while (got + 1 < sizeof buf && time(NULL) - t0 < 60) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "\n: heartbeat\n"))
            break;
    }
    buf[got] = 0;
    ck_assert_msg(!strncmp(buf, "HTTP/1.1 200 ", 13), "%s", buf);
    ck_assert_msg(strstr(buf, "\n: heartbeat\n") != NULL, "no heartbeat in:\n%s", buf);
    close(fd);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", queued);
    h_resp c = h_req(&P, "POST", path, NULL, NULL, 0);
    ck_assert_int_eq(c.status, 200);
    h_resp_free(&c);
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", run);
    c = h_req(&P, "POST", path, NULL, NULL, 0);
    ck_assert(c.status == 200 || c.status == 202);
    h_resp_free(&c);
}
END_TEST

Suite *api_live_suite(void);
Suite *api_live_suite(void)
{
    Suite *s = suite_create("api_live");
    TCase *tc = tcase_create("api_live");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, events_arrive_in_order_and_the_stream_ends);
    tcase_add_test(tc, predictions_reproduce_the_evaluation);
    tcase_add_test(tc, predictions_from_a_csv_body);
    tcase_add_test(tc, watcher_limit_and_a_cancelled_job_ends_its_stream);
    tcase_add_test(tc, r2_of_a_constant_target_is_null);
    tcase_add_test(tc, cancel_reports_the_state);
    tcase_add_test(tc, a_quiet_stream_gets_heartbeats);
    suite_add_tcase(s, tc);
    return s;
}
