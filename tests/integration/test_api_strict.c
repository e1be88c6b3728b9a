/*
 * tests/integration/test_api_strict.c — the API's strictness at the edges
 * (issue 6): what a request says twice or says loosely is refused with the
 * JSON error shape naming it, before anything is looked up.
 */
#define _GNU_SOURCE /* strcasestr */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "tests/integration/test_api.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&P, DIR_, NULL);
}

static void teardown(void)
{
    h_stop_healthy(&P); /* still serving after everything the test threw at it */
}

/* The JSON body of a raw reply (after its blank line), parsed. */
static json_t *raw_body(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* A body whose end is said twice, both ways, or in a coding that is not
 * read: libmicrohttpd reads the first Content-Length, so a request
 * announcing 10 bytes and then 2 used to wait for 8 bytes until the idle
 * timeout, and "Transfer-Encoding: gzip" hung the same way. Each is a 400 at
 * the headers, naming the header, and the connection is closed. So are two
 * Idempotency-Key or Last-Event-ID headers (the first was used silently). */
START_TEST(body_framing_said_twice_or_unread_is_400)
{
    static const struct {
        const char *req, *field, *needle;
    } cases[] = {
        {"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
         "Content-Length: 10\r\nContent-Length: 2\r\n\r\n{}",
         "Content-Length"},
        {"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
         "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
         "Content-Length"},
        {"GET /v1/health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\ncontent-length: 5\r\n\r\n",
         "Content-Length"},
        {"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
         "Content-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\n{}",
         "Transfer-Encoding"},
        {"GET /v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         "Transfer-Encoding"},
        {"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
         "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         "Transfer-Encoding"},
        /* libmicrohttpd takes only the bare token as chunked: with a blank
         * (or anything) after it, it waited for the connection to close */
        {"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked \r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         "Transfer-Encoding", "'chunked '"},
        {"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\t\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         "Transfer-Encoding", NULL},
        {"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked;x=1\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         "Transfer-Encoding", NULL},
        {"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
         "2\r\n{}\r\n0\r\n\r\n",
         "Transfer-Encoding", "2 Transfer-Encoding headers"},
        /* headers read once: the first of two was used silently */
        {"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Idempotency-Key: a\r\nidempotency-key: b\r\nContent-Length: 2\r\n\r\n{}",
         "Idempotency-Key", "2 Idempotency-Key headers"},
        {"GET /v1/jobs/1/events HTTP/1.1\r\nHost: x\r\n"
         "Last-Event-ID: 1\r\nLast-Event-ID: 5\r\n\r\n",
         "Last-Event-ID", "2 Last-Event-ID headers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char reply[4096];
        t_raw(&P, cases[i].req, strlen(cases[i].req), reply, sizeof reply, 30);
        ck_assert_msg(!strncmp(reply, "HTTP/1.1 400 ", 13), "request %zu:\n%s", i, reply);
        ck_assert_msg(strcasestr(reply, "\r\nConnection: close\r\n") != NULL, "request %zu:\n%s",
                      i, reply);
        json_t *j = raw_body(reply);
        ck_assert_msg(j != NULL, "request %zu: no JSON body:\n%s", i, reply);
        json_t *e = json_object_get(j, "error");
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "invalid");
        ck_assert_str_eq(json_string_value(json_object_get(e, "field")), cases[i].field);
        const char *msg = json_string_value(json_object_get(e, "message"));
        ck_assert_msg(!cases[i].needle || (msg && strstr(msg, cases[i].needle)),
                      "request %zu: message '%s' does not say '%s'", i, msg ? msg : "",
                      cases[i].needle);
        json_decref(j);
    }
    /* a plain chunked body is read as ever */
    const char *ok = "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: Chunked\r\n\r\n"
                     "26\r\n{\"name\":\"sine\",\"generator\":\"sinusoid\"}\r\n0\r\n\r\n";
    char reply[4096];
    t_raw(&P, ok, strlen(ok), reply, sizeof reply, 30);
    ck_assert_msg(!strncmp(reply, "HTTP/1.1 201 ", 13), "%s", reply);
    /* nothing else was created by the refused POSTs */
    json_t *l = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
}
END_TEST

/* A path for route pattern with {id} -> id and {which} -> which. */
static void fill(const char *pattern, const char *id, const char *which, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = pattern; *p && k + 1 < n;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            k += (size_t)snprintf(out + k, n - k, "%s", !strncmp(p, "{which}", 7) ? which : id);
            p = close ? close + 1 : p + strlen(p);
        } else {
            out[k++] = *p++;
        }
    }
    out[k < n ? k : n - 1] = 0;
}

static h_resp req(const char *method, const char *path)
{
    int post = !strcmp(method, "POST");
    return h_req(&P, method, path, post ? "application/json" : NULL, post ? "{}" : NULL,
                 post ? 2 : 0);
}

/* Dataset 1 "small", task 1 "sine", job 1 (a short MAML job on it). */
static void seed(void)
{
    const char *csv = "a,b\n1,2\n3,4\n5,6\n";
    h_resp r = h_req(&P, "POST", "/v1/datasets?name=small", "text/csv", csv, strlen(csv));
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    json_decref(h_post_json(&P, "/v1/tasks", "{\"name\":\"sine\",\"generator\":\"sinusoid\"}", 201));
    json_t *j = h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"steps\":20,"
                            "\"eval\":{\"episodes\":5}}",
                            202);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 1);
    json_decref(j);
}

/* "+1", "01", " 1", "1e0", twenty digits...: none is id 1, on any route with
 * an id (before, "01" and "+1" were read as 1, so DELETE /v1/datasets/01
 * removed dataset 1). Each is a 404 naming the segment, before any lookup. */
START_TEST(ids_in_urls_are_canonical)
{
    seed();
    static const char *const bad[] = {
        "+1", "01", "%201", "1%20", "1e0", "-1", "0", "0x1", "1.0", "%2B1",
        "00000000000000000001", "9223372036854775808", "99999999999999999999999",
    };
    size_t routes = 0;
    for (size_t i = 0; i < api_route_count(); i++) {
        const char *method, *pattern;
        api_route_get(i, &method, &pattern);
        if (!strstr(pattern, "{id}"))
            continue;
        routes++;
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            char path[256];
            fill(pattern, bad[b], "latest", path, sizeof path);
            h_resp r = req(method, path);
            ck_assert_msg(r.status == 404, "%s %s: %ld %s", method, path, r.status, r.body);
            h_expect_error(&r, 404, "not_found", "without sign or leading zeros", "id");
            h_resp_free(&r);
        }
    }
    ck_assert_uint_gt(routes, 10);
    static const char *const bad_which[] = {"+1", "01", "1e0", "0", "newest", "Latest"};
    for (size_t b = 0; b < sizeof bad_which / sizeof bad_which[0]; b++) {
        char path[256];
        fill("/v1/jobs/1/checkpoints/{which}", "1", bad_which[b], path, sizeof path);
        h_resp r = req("GET", path);
        h_expect_error(&r, 404, "not_found", "latest, best", "which");
        h_resp_free(&r);
    }
    /* the largest id is still an id (found nowhere, so a plain 404) */
    h_resp r = req("GET", "/v1/jobs/9223372036854775807");
    h_expect_error(&r, 404, "not_found", "9223372036854775807", NULL);
    json_t *j = h_json(&r);
    ck_assert_ptr_null(json_object_get(json_object_get(j, "error"), "field"));
    json_decref(j);
    h_resp_free(&r);
    /* nothing was deleted by the DELETEs above; the canonical forms and names
     * are found */
    json_decref(h_get_json(&P, "/v1/datasets/1", 200));
    json_decref(h_get_json(&P, "/v1/datasets/small", 200));
    json_decref(h_get_json(&P, "/v1/tasks/1", 200));
    json_decref(h_get_json(&P, "/v1/tasks/sine", 200));
    json_decref(h_get_json(&P, "/v1/jobs/1", 200));
    /* a name is still a name: an unknown one is the plain 404 */
    r = req("GET", "/v1/datasets/nosuch");
    h_expect_error(&r, 404, "not_found", "nosuch", NULL);
    h_resp_free(&r);
}
END_TEST

/* Every route refuses a query parameter it does not take and one given
 * twice, 400 naming it; what is documented still works. */
START_TEST(query_parameters_are_allow_listed)
{
    seed();
    for (size_t i = 0; i < api_route_count(); i++) {
        const char *method, *pattern, *allowed = api_route_query(i);
        char path[256], q[300];
        api_route_get(i, &method, &pattern);
        fill(pattern, "1", "latest", path, sizeof path);
        snprintf(q, sizeof q, "%s?bogus=1", path);
        h_resp r = req(method, q);
        h_expect_error(&r, 400, "invalid", "'bogus'", "bogus");
        h_resp_free(&r);
        /* each parameter it takes, twice */
        for (const char *p = allowed; *p;) {
            size_t n = strcspn(p, " ");
            snprintf(q, sizeof q, "%s?%.*s=1&%.*s=2", path, (int)n, p, (int)n, p);
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)n, p);
            r = req(method, q);
            h_expect_error(&r, 400, "invalid", "more than once", name);
            h_resp_free(&r);
            /* and without a value ("?limit" was taken as no limit given) */
            snprintf(q, sizeof q, "%s?%s", path, name);
            r = req(method, q);
            h_expect_error(&r, 400, "invalid", "has no value", name);
            h_resp_free(&r);
            p += n;
            p += *p == ' ';
        }
    }
    /* a typo names itself and what the route takes */
    h_resp r = req("GET", "/v1/jobs?limt=5");
    h_expect_error(&r, 400, "invalid", "takes state, limit, offset", "limt");
    h_resp_free(&r);
    /* refused uploads stored nothing */
    const char *csv = "a\n1\n";
    r = h_req(&P, "POST", "/v1/datasets?name=x&nmae=y", "text/csv", csv, strlen(csv));
    h_expect_error(&r, 400, "invalid", NULL, "nmae");
    h_resp_free(&r);
    r = h_req(&P, "POST", "/v1/datasets?name=x&name=y", "text/csv", csv, strlen(csv));
    h_expect_error(&r, 400, "invalid", NULL, "name");
    h_resp_free(&r);
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
    /* the documented parameters, together, still answer */
    static const char *const ok[] = {
        "/v1/jobs?state=queued&limit=5&offset=0", "/v1/jobs?limit=5&", "/v1/datasets?limit=1&offset=0",
        "/v1/tasks?limit=1&offset=0", "/v1/checkpoints?limit=1&offset=0",
        "/v1/datasets/1/rows?offset=1&limit=1", "/v1/jobs/1/metrics?since=0&format=json",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        json_decref(h_get_json(&P, ok[i], 200));
    r = h_req(&P, "GET", "/v1/jobs/1/metrics?since=0&format=csv", NULL, NULL, 0);
    ck_assert_msg(r.status == 200 && !strncmp(r.body, "step,", 5), "%ld %s", r.status, r.body);
    h_resp_free(&r);
    const char *semi = "a;b\n1;\n";
    r = h_req(&P, "POST", "/v1/datasets?name=semi&delimiter=%3B&header=true&missing=keep",
              "text/csv", semi, strlen(semi));
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    /* predict's ?task= and ?checkpoint= reach the service (which judges them) */
    r = h_req(&P, "POST", "/v1/jobs/1/predict?task=nosuch&checkpoint=best", "text/csv", "x\n1\n",
              4);
    ck_assert_msg(r.status != 400 && r.status >= 400 && r.status < 500, "%ld %s", r.status,
                  r.body);
    h_resp_free(&r);
}
END_TEST

/* A section of docs/api.md: from the "### " line naming `METHOD PATTERN` to
 * the next heading (malloc'd), or NULL. */
static char *md_section(const char *md, const char *method, const char *pattern)
{
    char key[300];
    int n = snprintf(key, sizeof key, "`%s %s", method, pattern);
    for (const char *at = strstr(md, key); at; at = strstr(at + 1, key)) {
        if (at[n] != '`' && at[n] != '?')
            continue;
        const char *line = at;
        while (line > md && line[-1] != '\n')
            line--;
        if (strncmp(line, "### ", 4) != 0)
            continue;
        const char *end = strstr(at, "\n#");
        return strndup(line, end ? (size_t)(end - line) : strlen(line));
    }
    return NULL;
}

/* Each route's query parameters are in docs/api.md (its section) and in
 * docs/openapi.yaml (its operation), so the allow-lists refuse nothing
 * documented. */
START_TEST(query_parameters_are_documented)
{
    size_t len = 0;
    char *md = h_read_file(h_src("docs/api.md"), &len);
    char *yaml = h_read_file(h_src("docs/openapi.yaml"), &len);
    ck_assert_ptr_nonnull(md);
    ck_assert_ptr_nonnull(yaml);
    for (size_t i = 0; i < api_route_count(); i++) {
        const char *method, *pattern, *allowed = api_route_query(i);
        api_route_get(i, &method, &pattern);
        if (!*allowed)
            continue;
        char *sec = md_section(md, method, pattern);
        ck_assert_msg(sec != NULL, "docs/api.md has no section for %s %s", method, pattern);
        /* the operation's block in openapi.yaml: path at two spaces, method at four */
        char key[300], m[16], mk[32];
        snprintf(key, sizeof key, "\n  %s:\n", pattern);
        const char *at = strstr(yaml, key);
        ck_assert_msg(at != NULL, "openapi.yaml has no path %s", pattern);
        size_t k = 0;
        for (; method[k] && k + 1 < sizeof m; k++)
            m[k] = (char)(method[k] + 32);
        m[k] = 0;
        snprintf(mk, sizeof mk, "\n    %s:", m);
        const char *op = strstr(at + 1, mk);
        const char *next_path = strstr(at + strlen(key) - 1, "\n  /");
        ck_assert_msg(op && (!next_path || op < next_path), "openapi.yaml: %s has no %s", pattern,
                      m);
        const char *op_end = strstr(op + 1, "\n    ");
        while (op_end && op_end[5] == ' ')
            op_end = strstr(op_end + 1, "\n    ");
        char *block = strndup(op, op_end ? (size_t)(op_end - op) : strlen(op));
        for (const char *p = allowed; *p;) {
            size_t n = strcspn(p, " ");
            char a[40], b[40], c[40], d[48];
            snprintf(a, sizeof a, "%.*s=", (int)n, p);
            snprintf(b, sizeof b, "`%.*s`", (int)n, p);
            ck_assert_msg(strstr(sec, a) || strstr(sec, b),
                          "docs/api.md: %s %s does not document ?%.*s", method, pattern, (int)n, p);
            snprintf(c, sizeof c, "name: %.*s", (int)n, p);
            snprintf(d, sizeof d, "parameters/%.*s\"", (int)n, p);
            ck_assert_msg(strstr(block, c) || strstr(block, d),
                          "openapi.yaml: %s %s does not list the query parameter %.*s", method,
                          pattern, (int)n, p);
            p += n;
            p += *p == ' ';
        }
        free(block);
        free(sec);
    }
    free(md);
    free(yaml);
}
END_TEST

/* Predict on a meta-learning job points to /adapt (its checkpoint is an
 * initialisation, not a model for the task): a 422 saying so, whether or
 * not it has a checkpoint yet, for a JSON or a CSV body; /adapt answers. */
START_TEST(predict_on_a_meta_job_points_to_adapt)
{
    seed(); /* job 1: MAML on the sinusoid generator */
    h_resp r = h_req(&P, "POST", "/v1/jobs/1/predict", "application/json",
                     "{\"rows\":[[1.0]]}", 16);
    h_expect_error(&r, 422, "invalid", "POST /v1/jobs/1/adapt", NULL);
    h_resp_free(&r);
    json_t *j = h_wait_job(&P, 1, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_decref(j);
    static const struct {
        const char *ctype, *body;
    } bodies[] = {
        {"application/json", "{\"rows\":[[1.0]]}"},
        {"application/json", "{\"task\":\"sine\",\"rows\":[{\"x\":1.0}]}"},
        {"text/csv", "x\n1.0\n"},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        r = h_req(&P, "POST", "/v1/jobs/1/predict", bodies[i].ctype, bodies[i].body,
                  strlen(bodies[i].body));
        h_expect_error(&r, 422, "invalid", "meta-learning job (maml)", NULL);
        ck_assert_msg(strstr(r.body, "POST /v1/jobs/1/adapt") != NULL, "%s", r.body);
        h_resp_free(&r);
    }
    /* where it points works */
    json_t *a = h_post_json(&P, "/v1/jobs/1/adapt",
                            "{\"support\":{\"rows\":[[0.5],[1.0],[1.5]],\"labels\":[0.4,0.8,1.0]},"
                            "\"query\":{\"rows\":[[1.0]]},\"steps\":1}",
                            200);
    ck_assert_int_eq(json_array_size(json_object_get(a, "predictions")), 1);
    json_decref(a);
}
END_TEST

/* 1 if a and b are both null or both numbers within a relative 1e-9. */
static int same_eta(const json_t *a, const json_t *b)
{
    if (json_is_null(a) && json_is_null(b))
        return 1;
    if (!json_is_number(a) || !json_is_number(b))
        return 0;
    double x = json_number_value(a), y = json_number_value(b);
    return fabs(x - y) <= 1e-9 * (fabs(x) > 1 ? fabs(x) : 1);
}

/* A progress event carries the time left as "eta" (design.md's name) and as
 * "eta_seconds" (the job view's), the same value; the stream's snapshot has
 * the job view's live figures, so a running job's first progress event
 * already has its eta (it was always null). */
START_TEST(progress_events_name_eta_as_the_job_view_does)
{
    json_decref(h_post_json(&P, "/v1/tasks", "{\"name\":\"sine\",\"generator\":\"sinusoid\"}", 201));
    json_decref(h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"steps\":5000000,"
                            "\"eval\":{\"episodes\":5}}",
                            202));
    h_wait_running_past(&P, 1, 20);
    json_t *view = h_get_json(&P, "/v1/jobs/1", 200);
    ck_assert_msg(json_is_number(json_object_get(view, "eta_seconds")), "no eta_seconds in %s",
                  json_string_value(json_object_get(view, "state")));
    json_decref(view);
    t_event ev[64];
    long status = 0;
    int ended = 0;
    int n = t_events(&P, 1, -1, 2.0, ev, 64, &status, &ended);
    ck_assert_int_eq(status, 200);
    int progress = 0, snapshot = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ev[i].type, "progress") != 0)
            continue;
        json_t *d = json_loads(ev[i].data, 0, NULL);
        ck_assert_msg(d != NULL, "%s", ev[i].data);
        json_t *eta = json_object_get(d, "eta"), *secs = json_object_get(d, "eta_seconds");
        ck_assert_msg(eta && secs && same_eta(eta, secs), "progress event %d: %s", i, ev[i].data);
        if (ev[i].id == 0) { /* the snapshot: the running job's live figures */
            snapshot++;
            ck_assert_msg(json_is_number(secs), "snapshot without an eta: %s", ev[i].data);
            ck_assert_int_gt(json_integer_value(json_object_get(d, "step")), 20);
        }
        progress++;
        json_decref(d);
    }
    ck_assert_int_eq(snapshot, 1);
    ck_assert_int_ge(progress, 1);
    h_resp r = h_req(&P, "POST", "/v1/jobs/1/cancel", NULL, NULL, 0);
    ck_assert_msg(r.status == 200 || r.status == 202, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    json_decref(h_wait_job(&P, 1, 300));
}
END_TEST

/* GET target (path and query) over a raw connection: the status of the
 * reply, its JSON error message into msg (may be ""). */
static int raw_get(const char *target, char *msg, size_t n)
{
    size_t rl = strlen(target) + 64;
    char *req = malloc(rl), reply[4096];
    snprintf(req, rl, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
    free(req);
    int status = 0;
    sscanf(reply, "HTTP/1.1 %d ", &status);
    json_t *j = raw_body(reply);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(msg, n, "%s", m ? m : "");
    json_decref(j);
    return status;
}

/* A query of thousands of pieces, well under --max-uri, exhausted
 * libmicrohttpd's per-connection pool (a record per parameter) and the
 * client got nothing; more than 64 pieces is now a 400 saying so. The
 * target's size is counted as sent: exactly --max-uri bytes pass, one more
 * is 414 (the count used to add 4 bytes per parameter, not 2). */
START_TEST(many_query_pieces_are_answered)
{
    static const char *const pieces[] = {"a=1&", "a&"};
    static const int times[] = {2000, 3000};
    char msg[512];
    for (int k = 0; k < 3; k++) {
        size_t n = 16 + 4 * 3000;
        char *t = malloc(n);
        strcpy(t, k < 2 ? "/v1/jobs?" : "/v1/jobs?limit=1&");
        for (int i = 0; i < (k < 2 ? times[k] : 3000); i++)
            strcat(t, k < 2 ? pieces[k] : "&");
        ck_assert_uint_lt(strlen(t), 8192);
        int st = raw_get(t, msg, sizeof msg);
        ck_assert_msg(st == 400, "case %d: status %d", k, st);
        ck_assert_msg(strstr(msg, "query") && strstr(msg, "at most 64"), "case %d: %s", k, msg);
        free(t);
    }
    /* 64 pieces are read as parameters (unknown ones, named), 65 are not */
    char t[1024] = "/v1/jobs?limit=1";
    for (int i = 1; i < 64; i++)
        snprintf(t + strlen(t), sizeof t - strlen(t), "&p%d=1", i);
    ck_assert_int_eq(raw_get(t, msg, sizeof msg), 400);
    ck_assert_msg(strstr(msg, "unknown query parameter 'p1'"), "%s", msg);
    strcat(t, "&p64=1");
    ck_assert_int_eq(raw_get(t, msg, sizeof msg), 400);
    ck_assert_msg(strstr(msg, "65 '&'-separated"), "%s", msg);
    /* the --max-uri boundary, two parameters */
    char *big = malloc(8300);
    strcpy(big, "/v1/jobs?limit=1&offset=");
    size_t base = strlen(big);
    memset(big + base, '7', 8192 - base);
    big[8192] = 0;
    int st = raw_get(big, msg, sizeof msg);
    ck_assert_msg(st != 414 && st != 0, "8192 bytes: %d %s", st, msg);
    strcat(big, "7");
    ck_assert_int_eq(raw_get(big, msg, sizeof msg), 414);
    free(big);
    /* a plain query is read as ever on the same daemon */
    json_t *l = h_get_json(&P, "/v1/jobs?limit=1&offset=0", 200);
    json_decref(l);
}
END_TEST

Suite *api_strict_suite(void);
Suite *api_strict_suite(void)
{
    Suite *s = suite_create("api_strict");
    TCase *tc = tcase_create("api_strict");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, body_framing_said_twice_or_unread_is_400);
    tcase_add_test(tc, ids_in_urls_are_canonical);
    tcase_add_test(tc, query_parameters_are_allow_listed);
    tcase_add_test(tc, query_parameters_are_documented);
    tcase_add_test(tc, predict_on_a_meta_job_points_to_adapt);
    tcase_add_test(tc, progress_events_name_eta_as_the_job_view_does);
    tcase_add_test(tc, many_query_pieces_are_answered);
    suite_add_tcase(s, tc);
    return s;
}
