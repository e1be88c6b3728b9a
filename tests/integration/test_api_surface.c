/*
 * tests/integration/test_api_surface.c — the HTTP contract around the
 * resources, against a real mtld: the auth matrix over every route of the
 * server's own route table (plain and sha256: tokens), pagination, every
 * error status with the JSON error shape, limits (JSON depth, body size,
 * per-address connections, header size), Idempotency-Key retries (also
 * across a restart), GET /metrics in the Prometheus text format, and
 * docs/openapi.yaml naming every route the server serves.
 */
#define _GNU_SOURCE /* strcasestr */
#include <check.h>
#include <nettle/sha2.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "tests/integration/test_api.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
}

static void teardown(void)
{
    if (P.pid > 0) {
        /* still serving after everything the test threw at it */
        h_resp r = h_req(&P, "GET", "/v1/health", NULL, NULL, 0);
        ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
        ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    }
}

static void expect(h_resp r, long status, const char *code, const char *needle, const char *field)
{
    h_expect_error(&r, status, code, needle, field);
    h_resp_free(&r);
}

static h_resp post(const char *path, const char *ctype, const char *body, const char *const *hdr)
{
    return h_req_headers(&P, "POST", path, ctype, body, strlen(body), hdr);
}

/* A concrete path for a route pattern: {id} → 1, {which} → latest. */
static void concrete(const char *pattern, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = pattern; *p && k + 8 < n;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *val = !strncmp(p, "{which}", 7) ? "latest" : "1";
            k += (size_t)snprintf(out + k, n - k, "%s", val);
            p = close ? close + 1 : p + strlen(p);
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
}

static void sha256_hex(const char *s, char out[65])
{
    struct sha256_ctx ctx;
    unsigned char d[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(s), (const uint8_t *)s);
    sha256_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(auth_matrix_over_every_route)
{
    char tokens[320], text[512], hex[65];
    snprintf(tokens, sizeof tokens, "%s/tokens", DIR_);
    sha256_hex("hashed-secret-456", hex);
    snprintf(text, sizeof text, "# operators\nplain-secret-123\n\nsha256:%s\n", hex);
    write_file(tokens, text);
    const char *extra[] = {"--token-file", tokens, NULL};
    h_start(&P, DIR_, extra);

    const char *none[] = {NULL};
    const char *wrong[] = {"Authorization: Bearer plain-secret-12", NULL};
    char digest_as_token[120];
    snprintf(digest_as_token, sizeof digest_as_token, "Authorization: Bearer sha256:%s", hex);
    const char *digest[] = {digest_as_token, NULL};
    const char *basic[] = {"Authorization: Basic cGxhaW4tc2VjcmV0LTEyMw==", NULL};
    const char *right1[] = {"Authorization: Bearer plain-secret-123", NULL};
    const char *right2[] = {"Authorization: Bearer hashed-secret-456", NULL};
    const char *const *bad[] = {none, wrong, digest, basic};
    char hdrs_[4096];
    size_t n = api_route_count();
    ck_assert_int_gt(n, 15);
    for (size_t i = 0; i < n; i++) {
        const char *method, *pattern;
        char path[256], hdrs[4096];
        api_route_get(i, &method, &pattern);
        concrete(pattern, path, sizeof path);
        int open_route = !strcmp(pattern, "/v1/health");
        const char *ctype = !strcmp(method, "POST") ? "application/json" : NULL;
        const char *body = !strcmp(method, "POST") ? "{}" : NULL;
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            h_resp r = t_req(&P, method, path, ctype, body, body ? 2 : 0, bad[b], hdrs,
                             sizeof hdrs);
            if (open_route) {
                ck_assert_msg(r.status == 200, "%s %s: %ld", method, path, r.status);
            } else {
                ck_assert_msg(r.status == 401, "%s %s with bad auth %zu: %ld %s", method, path, b,
                              r.status, r.body);
                ck_assert_msg(strstr(hdrs, "WWW-Authenticate: Bearer") != NULL,
                              "%s %s: no WWW-Authenticate: %s", method, path, hdrs);
                h_expect_error(&r, 401, "unauthorized", "Bearer", NULL);
            }
            h_resp_free(&r);
        }
        const char *const *good[] = {right1, right2};
        for (size_t g = 0; g < 2; g++) {
            /* A route with a stream would wait for its job: job 1 does not exist. */
            h_resp r = t_req(&P, method, path, ctype, body, body ? 2 : 0, good[g], hdrs,
                             sizeof hdrs);
            ck_assert_msg(r.status != 401 && r.status >= 200 && r.status < 500,
                          "%s %s with token %zu: %ld %s", method, path, g, r.status, r.body);
            h_resp_free(&r);
        }
    }
    {
        /* an unknown path without the token is 401, not 404: the route table
         * is not told to a client that may not use it; with it, 404 */
        h_resp r = t_req(&P, "GET", "/v1/nonexistent", NULL, NULL, 0, none, hdrs_, sizeof hdrs_);
        h_expect_error(&r, 401, "unauthorized", "Bearer", NULL);
        h_resp_free(&r);
        r = t_req(&P, "GET", "/v1/nonexistent", NULL, NULL, 0, right1, hdrs_, sizeof hdrs_);
        h_expect_error(&r, 404, "not_found", NULL, NULL);
        h_resp_free(&r);
        /* RFC 7235: the scheme name is case-insensitive */
        const char *lower[] = {"Authorization: bearer plain-secret-123", NULL};
        r = t_req(&P, "GET", "/v1/jobs", NULL, NULL, 0, lower, hdrs_, sizeof hdrs_);
        ck_assert_msg(r.status == 200, "lower-case scheme: %ld %s", r.status, r.body);
        h_resp_free(&r);
    }
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    /* tokens never reach the log */
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/mtld.log", DIR_);
    size_t len = 0;
    char *log = h_read_file(logpath, &len);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_null(strstr(log, "plain-secret"));
    ck_assert_ptr_null(strstr(log, "hashed-secret"));
    free(log);
    /* a malformed sha256: line stops the daemon at start, naming the line only */
    write_file(tokens, "plain-secret-123\nsha256:abc\n");
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/start.err", DIR_);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *e = freopen(errpath, "w", stderr);
        (void)e;
        char data[300];
        snprintf(data, sizeof data, "%s/data2", DIR_);
        execl(MTLD_BIN, MTLD_BIN, "--listen", "127.0.0.1:0", "--data-dir", data, "--token-file",
              tokens, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char *err = h_read_file(errpath, &len);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "line 2") != NULL, "start error: %s", err);
    ck_assert_ptr_null(strstr(err, "plain-secret"));
    free(err);
}
END_TEST

static void define_tasks(int n)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    for (int i = 0; i < n; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"name\":\"t%d\",\"dataset\":\"so\",\"target\":\"salary\","
                 "\"kind\":\"regression\"}",
                 i);
        json_decref(h_post_json(&P, "/v1/tasks", body, 201));
    }
}

START_TEST(lists_are_paginated)
{
    h_start(&P, DIR_, NULL);
    define_tasks(5);
    json_t *all = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(all, "total")), 5);
    ck_assert_int_eq(json_array_size(json_object_get(all, "tasks")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(all, "limit")), 100);
    json_t *pg = h_get_json(&P, "/v1/tasks?limit=2&offset=1", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(pg, "total")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(pg, "offset")), 1);
    json_t *items = json_object_get(pg, "tasks");
    ck_assert_int_eq(json_array_size(items), 2);
    for (size_t i = 0; i < 2; i++)
        ck_assert_str_eq(
            json_string_value(json_object_get(json_array_get(items, i), "name")),
            json_string_value(json_object_get(json_array_get(json_object_get(all, "tasks"), i + 1),
                                              "name")));
    json_decref(pg);
    json_decref(all);
    pg = h_get_json(&P, "/v1/tasks?offset=7", 200);
    ck_assert_int_eq(json_array_size(json_object_get(pg, "tasks")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(pg, "total")), 5);
    json_decref(pg);
    pg = h_get_json(&P, "/v1/datasets?limit=1", 200);
    ck_assert_int_eq(json_array_size(json_object_get(pg, "datasets")), 1);
    json_decref(pg);
    expect(h_req(&P, "GET", "/v1/tasks?limit=0", NULL, NULL, 0), 422, "invalid", NULL, "limit");
    expect(h_req(&P, "GET", "/v1/tasks?limit=1001", NULL, NULL, 0), 422, "invalid", NULL, "limit");
    expect(h_req(&P, "GET", "/v1/jobs?offset=-3", NULL, NULL, 0), 422, "invalid", NULL, "offset");
    /* jobs: the state filter with pagination; a long job keeps the queue */
    const char *spec = "{\"algorithm\":\"multitask\",\"tasks\":[\"t0\"],\"epochs\":100000,"
                       "\"priority\":%d}";
    for (int i = 0; i < 4; i++) {
        char body[200];
        snprintf(body, sizeof body, spec, i);
        json_decref(h_post_json(&P, "/v1/jobs", body, 202));
    }
    json_t *q = h_get_json(&P, "/v1/jobs?state=queued&limit=1", 200);
    ck_assert_int_eq(json_array_size(json_object_get(q, "jobs")), 1);
    long long total = json_integer_value(json_object_get(q, "total"));
    ck_assert(total >= 2 && total <= 4); /* two workers may have claimed jobs */
    json_decref(q);
    for (int id = 1; id <= 4; id++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%d/cancel", id);
        h_resp r = h_req(&P, "POST", path, NULL, NULL, 0);
        ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
    }
}
END_TEST

START_TEST(idempotent_retries_return_the_same_resource)
{
    h_start(&P, DIR_, NULL);
    const char *k1[] = {"Idempotency-Key: ds-1", NULL};
    size_t len = 0;
    char *csv = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(csv);
    h_resp a = h_req_headers(&P, "POST", "/v1/datasets?name=so", "text/csv", csv, len, k1);
    h_resp b = h_req_headers(&P, "POST", "/v1/datasets?name=so", "text/csv", csv, len, k1);
    ck_assert_msg(a.status == 201, "upload: %ld %s", a.status, a.body);
    ck_assert_msg(b.status == 201, "retried upload: %ld %s", b.status, b.body);
    ck_assert_str_eq(a.body, b.body);
    h_resp_free(&a);
    h_resp_free(&b);
    free(csv);
    /* without a key the same upload is a conflict: the first one did create */
    expect(h_req(&P, "POST", "/v1/datasets?name=so", "text/csv", "x\n1\n", 4), 409,
           "already_exists", NULL, NULL);

    const char *task = "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}";
    const char *k2[] = {"Idempotency-Key: task-1", NULL};
    a = post("/v1/tasks", "application/json", task, k2);
    b = post("/v1/tasks", "application/json", task, k2);
    ck_assert_int_eq(a.status, 201);
    ck_assert_int_eq(b.status, 201);
    ck_assert_str_eq(a.body, b.body);
    h_resp_free(&a);
    h_resp_free(&b);
    /* the same key for another request */
    expect(post("/v1/tasks", "application/json",
                "{\"name\":\"other\",\"dataset\":\"so\",\"target\":\"salary\"}", k2),
           422, "invalid", "different request", "Idempotency-Key");
    const char *badkey[] = {"Idempotency-Key: has space", NULL};
    expect(post("/v1/tasks", "application/json", task, badkey), 400, "invalid", NULL,
           "Idempotency-Key");
    /* a failed request is not recorded: the key may be used again */
    const char *k3[] = {"Idempotency-Key: job-1", NULL};
    expect(post("/v1/jobs", "application/json", "{\"algorithm\":\"multitask\",\"tasks\":[\"nope\"]}",
                k3),
           422, "invalid", NULL, "tasks[0]");
    const char *spec = "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"epochs\":1}";
    a = post("/v1/jobs", "application/json", spec, k3);
    b = post("/v1/jobs", "application/json", spec, k3);
    ck_assert_int_eq(a.status, 202);
    ck_assert_msg(b.status == 202, "retry: %ld %s", b.status, b.body);
    ck_assert_str_eq(a.body, b.body);
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
    l = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);

    /* the records are durable: a retry after a restart gets the same reply */
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    h_start(&P, DIR_, NULL);
    h_resp c = post("/v1/jobs", "application/json", spec, k3);
    ck_assert_int_eq(c.status, 202);
    ck_assert_str_eq(c.body, a.body);
    h_resp_free(&c);
    h_resp_free(&a);
    h_resp_free(&b);
    l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
}
END_TEST

START_TEST(every_error_status_has_the_json_shape)
{
    const char *extra[] = {"--max-json-depth", "8", "--max-json-body", "4096", NULL};
    h_start(&P, DIR_, extra);
    const char *J = "application/json";
    /* 400: does not parse; nests too deep */
    expect(post("/v1/tasks", J, "{\"name\":", NULL), 400, "invalid_json", "line 1", NULL);
    expect(post("/v1/tasks", J, "{\"a\":[[[[[[[[[1]]]]]]]]]}", NULL), 400, "too_deep",
           "deeper than 8", NULL);
    /* the same depth inside a string is only text */
    expect(post("/v1/tasks", J, "{\"name\":\"[[[[[[[[[[[[\",\"dataset\":\"x\",\"target\":\"y\"}",
                NULL),
           422, "invalid", NULL, "name");
    /* 404: route, resource; 405: method */
    expect(h_req(&P, "GET", "/v2/health", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/99/events", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "POST", "/v1/jobs/99/predict", J, "{\"rows\":[[1]]}", 14), 404, "not_found",
           NULL, NULL);
    expect(h_req(&P, "POST", "/metrics", NULL, NULL, 0), 405, "method_not_allowed", NULL, NULL);
    expect(h_req(&P, "PATCH", "/v1/jobs/1", NULL, NULL, 0), 405, "method_not_allowed", NULL, NULL);
    /* 413: body over max-json-body */
    char big[6000];
    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    big[sizeof big - 1] = 0;
    expect(post("/v1/tasks", J, big, NULL), 413, "too_large", "4096", NULL);
    /* 415: wrong Content-Type, also on predict (JSON or CSV) */
    expect(post("/v1/tasks", "text/plain", "{}", NULL), 415, "unsupported_media_type", NULL, NULL);
    expect(post("/v1/jobs/1/predict", "text/plain", "{}", NULL), 415, "unsupported_media_type",
           "text/csv", NULL);
    /* 422 on a query value; 400 on a bad Last-Event-ID */
    expect(h_req(&P, "GET", "/v1/jobs?state=done", NULL, NULL, 0), 422, "invalid", NULL, "state");
    const char *lei[] = {"Last-Event-ID: abc", NULL};
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    json_t *j = h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"epochs\":1}", 202);
    json_decref(j);
    expect(h_req_headers(&P, "GET", "/v1/jobs/1/events", NULL, NULL, 0, lei), 400, "invalid",
           NULL, "Last-Event-ID");
    /* 409: a name taken */
    expect(post("/v1/tasks", J, "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}",
                NULL),
           409, "already_exists", NULL, NULL);
    /* checkpoints by id are looked up, never used as paths */
    expect(h_req(&P, "GET", "/v1/jobs/1/checkpoints/..%2F..%2Fmtld.db", NULL, NULL, 0), 404, NULL,
           NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/1/checkpoints/..", NULL, NULL, 0), 404, NULL, NULL, NULL);
}
END_TEST

/* A connection that has had one 200 (so the daemon surely counts it), kept
 * open. A connection the client closed is counted out only when the
 * daemon's cleanup of it runs, a moment later (more under load): one that
 * is refused 429 / 503 for such a leftover is closed and tried again, up to
 * a deadline. */
static int held_connection(void)
{
    char buf[512];
    for (double end = h_now() + 60;;) {
        int fd = t_connect(&P);
        ck_assert(fd >= 0);
        static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n";
        ck_assert(send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1));
        size_t got = 0;
        while (got < 12) { /* the status line, however the bytes come */
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            ck_assert_msg(n > 0, "no reply to a held connection");
            got += (size_t)n;
        }
        buf[got] = 0;
        if (!strncmp(buf, "HTTP/1.1 200", 12))
            return fd;
        close(fd);
        ck_assert_msg((!strncmp(buf, "HTTP/1.1 429", 12) || !strncmp(buf, "HTTP/1.1 503", 12)) &&
                          h_now() < end,
                      "%s", buf);
        usleep(50 * 1000);
    }
}

/* GET path until it is answered 200 (connections closed before are counted
 * out a moment after their close), up to a generous deadline. */
static void wait_until_served(const char *path)
{
    h_resp ok = h_req(&P, "GET", path, NULL, NULL, 0);
    for (double end = h_now() + 60; ok.status != 200 && h_now() < end;) {
        h_resp_free(&ok);
        usleep(50 * 1000);
        ok = h_req(&P, "GET", path, NULL, NULL, 0);
    }
    ck_assert_msg(ok.status == 200, "%ld %s", ok.status, ok.body);
    h_resp_free(&ok);
}

/* Status and the JSON error's code of a raw reply. */
static void expect_raw(const char *reply, int status, const char *code, const char *field)
{
    char want[64];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    ck_assert_msg(!strncmp(reply, want, strlen(want)), "want %d, got:\n%s", status, reply);
    ck_assert_msg(strcasestr(reply, "\r\nContent-Type: application/json") != NULL,
                  "not JSON:\n%s", reply);
    const char *body = strstr(reply, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    json_error_t je;
    json_t *j = json_loads(body + 4, 0, &je);
    ck_assert_msg(j != NULL, "body does not parse: %s", body + 4);
    json_t *e = json_object_get(j, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    ck_assert(json_is_string(json_object_get(e, "message")));
    if (field)
        ck_assert_str_eq(json_string_value(json_object_get(e, "field")), field);
    json_decref(j);
}

START_TEST(limits_per_address_and_header_size)
{
    const char *extra[] = {"--max-connections-per-ip", "2", NULL};
    h_start(&P, DIR_, extra);
    int a = held_connection(), b = held_connection();
    expect(h_req(&P, "GET", "/v1/jobs", NULL, NULL, 0), 429, "too_many_connections",
           "max_connections_per_ip", NULL);
    close(a);
    close(b);
    /* the daemon counts a closed connection out when its cleanup runs, a
     * moment after the client closed: poll */
    wait_until_served("/v1/jobs");
    /* with 2 per address, the teardown's own request could race the cleanup
     * of the ones above: stop here */
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    P.pid = 0;

    /* headers and URIs over our limits (well inside libmicrohttpd's) are
     * answered by us, in the JSON error shape, not by its HTML pages */
    h_start(&P, DIR_, NULL);
    size_t n = 100000;
    char *hdr = malloc(n + 16);
    memcpy(hdr, "X-Big: ", 7);
    memset(hdr + 7, 'a', n);
    hdr[7 + n] = 0;
    const char *hs[] = {hdr, NULL};
    expect(h_req_headers(&P, "GET", "/v1/jobs", NULL, NULL, 0, hs), 431, "headers_too_large",
           "max_header_bytes", NULL);
    char *path = malloc(n + 32);
    memcpy(path, "/v1/jobs?x=", 11);
    memset(path + 11, 'b', n);
    path[11 + n] = 0;
    size_t rl = n + 128;
    char *req = malloc(rl), reply[4096];
    snprintf(req, rl, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
    expect_raw(reply, 414, "uri_too_long", NULL);
    snprintf(req, rl, "GET /v1/%s HTTP/1.1\r\nHost: t\r\n\r\n", path + 11);
    t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
    expect_raw(reply, 414, "uri_too_long", NULL);
    free(req);
    free(path);
    free(hdr);
}
END_TEST

/* Over --max-connections a connection is answered 503 with the JSON shape
 * and Retry-After (libmicrohttpd itself would close it unanswered). */
START_TEST(connection_limit_is_answered)
{
    const char *extra[] = {"--max-connections", "2", "--max-connections-per-ip", "0", NULL};
    h_start(&P, DIR_, extra);
    int a = held_connection(), b = held_connection();
    char hdrs[2048];
    h_resp r = t_req(&P, "GET", "/v1/jobs", NULL, NULL, 0, NULL, hdrs, sizeof hdrs);
    ck_assert_msg(strcasestr(hdrs, "\r\nRetry-After: ") != NULL, "no Retry-After:\n%s", hdrs);
    expect(r, 503, "too_many_connections", "max_connections", NULL);
    close(a);
    close(b);
    wait_until_served("/v1/jobs");
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0); /* as above: no racing teardown request */
}
END_TEST

/* A body's Content-Type is required and must be one: a request without it,
 * or with two that disagree, is 415 on every route that takes a body, and
 * nothing is created. */
START_TEST(content_type_missing_or_conflicting_is_415)
{
    h_start(&P, DIR_, NULL);
    static const char csv[] = "a,b\n1,2\n3,4\n";
    /* "Content-Type:" makes libcurl send none at all */
    const char *none[] = {"Content-Type:", NULL};
    expect(h_req_headers(&P, "POST", "/v1/datasets?name=x", NULL, csv, sizeof csv - 1, none), 415,
           "unsupported_media_type", "no Content-Type", NULL);
    static const char task[] = "{\"name\":\"t\",\"dataset\":\"x\",\"target\":\"b\"}";
    expect(h_req_headers(&P, "POST", "/v1/tasks", NULL, task, sizeof task - 1, none), 415,
           "unsupported_media_type", "no Content-Type", NULL);
    expect(h_req_headers(&P, "POST", "/v1/jobs/1/predict", NULL, "{}", 2, none), 415,
           "unsupported_media_type", "no Content-Type", NULL);
    /* two that disagree, in either order; raw, so both are surely sent */
    static const char *const pairs[][3] = {
        {"/v1/datasets?name=x", "text/csv", "application/json"},
        {"/v1/datasets?name=x", "application/json", "text/csv"},
        {"/v1/tasks", "application/json", "text/plain"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *body = strchr(pairs[i][0], '?') ? csv : task;
        char req[512], reply[4096];
        snprintf(req, sizeof req,
                 "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 pairs[i][0], pairs[i][1], pairs[i][2], strlen(body), body);
        t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
        expect_raw(reply, 415, "unsupported_media_type", NULL);
        ck_assert_msg(strstr(reply, "disagree") != NULL, "%s", reply);
    }
    /* the same type twice is still that type */
    char req[512], reply[4096];
    snprintf(req, sizeof req,
             "POST /v1/datasets?name=x HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
             "Content-Type: Text/CSV; charset=utf-8\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             sizeof csv - 1, csv);
    t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
    ck_assert_msg(!strncmp(reply, "HTTP/1.1 201 ", 13), "%s", reply);
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
    l = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

/* An upload whose query or headers are wrong is refused at its headers:
 * the reply comes although the announced 100 MB body is never sent. */
START_TEST(uploads_are_refused_before_their_body)
{
    h_start(&P, DIR_, NULL);
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    static const struct {
        const char *query, *extra;
        int status;
        const char *code, *field;
    } cases[] = {
        {"name=1bad", "", 422, "invalid", "name"},
        {"name=a%2Fb", "", 422, "invalid", "name"},
        {"", "", 422, "invalid", "name"},
        {"name=so", "", 409, "already_exists", "name"},
        {"name=fresh&delimiter=x", "", 422, "invalid", "delimiter"},
        {"name=fresh&header=maybe", "", 422, "invalid", "header"},
        {"name=fresh&missing=guess", "", 422, "invalid", "missing"},
        {"name=fresh", "Content-Encoding: br\r\n", 415, "unsupported_media_type", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512], reply[4096];
        snprintf(req, sizeof req,
                 "POST /v1/datasets?%s HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                 "Content-Length: 100000000\r\n%s\r\n",
                 cases[i].query, cases[i].extra);
        t_raw(&P, req, strlen(req), reply, sizeof reply, 60);
        expect_raw(reply, cases[i].status, cases[i].code, cases[i].field);
        ck_assert_msg(strcasestr(reply, "\r\nConnection: close") != NULL, "%s", reply);
    }
    /* a body announced over its limit: an upload over --max-upload (1 GiB),
     * a JSON body over --max-json-body (1 MiB) */
    static const char *const big[] = {
        "POST /v1/datasets?name=fresh HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
        "Content-Length: 2000000000\r\n\r\n",
        "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000000\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        char reply[4096];
        t_raw(&P, big[i], strlen(big[i]), reply, sizeof reply, 60);
        expect_raw(reply, 413, "too_large", NULL);
        ck_assert_msg(strstr(reply, i ? "max_json_body" : "max_upload") != NULL, "%s", reply);
    }
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 1);
    json_decref(l);
}
END_TEST

/* 405 says what is allowed; HEAD works wherever GET does (but streams). */
START_TEST(allow_header_and_head)
{
    h_start(&P, DIR_, NULL);
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"PUT", "/v1/jobs/1", "GET, HEAD, DELETE"},
        {"POST", "/metrics", "GET, HEAD"},
        {"DELETE", "/v1/jobs", "POST, GET, HEAD"},
        {"HEAD", "/v1/jobs/1/events", "GET"},
        {"GET", "/v1/jobs/1/cancel", "POST"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256], reply[4096], want[128];
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                 cases[i].method, cases[i].path);
        t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
        snprintf(want, sizeof want, "\r\nAllow: %s\r\n", cases[i].allow);
        ck_assert_msg(strstr(reply, want) != NULL, "%s %s: want '%s' in:\n%s", cases[i].method,
                      cases[i].path, cases[i].allow, reply);
        if (strcmp(cases[i].method, "HEAD") != 0)
            expect_raw(reply, 405, "method_not_allowed", NULL);
        else
            ck_assert_msg(!strncmp(reply, "HTTP/1.1 405 ", 13), "%s", reply);
    }
    /* HEAD: GET's status and headers, no body */
    h_resp g = h_req(&P, "GET", "/v1/health", NULL, NULL, 0);
    ck_assert_int_eq(g.status, 200);
    const char *heads[] = {"/v1/health", "/v1/jobs", "/metrics"};
    for (size_t i = 0; i < 3; i++) {
        char req[256], reply[4096];
        snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                 heads[i]);
        size_t got = t_raw(&P, req, strlen(req), reply, sizeof reply, 30);
        ck_assert_msg(!strncmp(reply, "HTTP/1.1 200 ", 13), "HEAD %s:\n%s", heads[i], reply);
        const char *end = strstr(reply, "\r\n\r\n");
        ck_assert_ptr_nonnull(end);
        ck_assert_msg((size_t)(end + 4 - reply) == got, "HEAD %s has a body:\n%s", heads[i],
                      reply);
        if (i == 0) {
            char cl[64];
            snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", g.len);
            ck_assert_msg(strstr(reply, cl) != NULL, "want '%s' in:\n%s", cl, reply);
            ck_assert(strstr(reply, "\r\nContent-Type: application/json\r\n") != NULL);
        }
    }
    h_resp_free(&g);
}
END_TEST

/* The upload limit (413 naming it, nothing stored), the idle timeout (the
 * daemon closes a silent connection), and what libmicrohttpd refuses before
 * a request exists still gets a status. */
START_TEST(upload_limit_idle_timeout_and_garbage)
{
    const char *extra[] = {"--max-upload", "2048", "--connection-timeout", "1", NULL};
    h_start(&P, DIR_, extra);
    size_t len = 0;
    char *csv = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &len);
    ck_assert_ptr_nonnull(csv);
    expect(h_req(&P, "POST", "/v1/datasets?name=so", "text/csv", csv, len), 413, "too_large",
           "max_upload", NULL);
    free(csv);
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
    /* a connection that sends nothing is closed by the daemon (recv sees
     * the end of the stream, long before the 30 s this test allows) */
    int fd = t_connect(&P);
    ck_assert(fd >= 0);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b[64];
    ck_assert_int_eq(recv(fd, b, sizeof b, 0), 0);
    close(fd);
    /* not HTTP: libmicrohttpd's own 400, still a status */
    static const char *const bad[] = {
        "GET /v1/health HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char reply[4096];
        t_raw(&P, bad[i], strlen(bad[i]), reply, sizeof reply, 30);
        ck_assert_msg(!strncmp(reply, "HTTP/1.1 400 ", 13), "request %zu:\n%s", i, reply);
    }
    /* libmicrohttpd's complaints about them are mtld log events too: every
     * line of the log is `ts=... level=... event=...` */
    h_resp r = h_req(&P, "GET", "/v1/health", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/mtld.log", DIR_);
    size_t loglen = 0;
    char *log = h_read_file(logpath, &loglen);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, "event=http_library") != NULL, "no http_library event:\n%s", log);
    for (char *line = log, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "the log's last line is unterminated: %s", line);
        *nl = 0;
        ck_assert_msg(!strncmp(line, "ts=", 3) && strstr(line, " event="),
                      "not a key=value event line: %s", line);
    }
    free(log);
}
END_TEST

/* Runs mtld with args to its exit (it must not start serving); returns the
 * exit status and its stderr in err. */
static int run_to_exit(const char *const *args, char *err, size_t n)
{
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/start.err", DIR_);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {MTLD_BIN};
        int k = 1;
        for (int i = 0; args[i] && k < 15; i++)
            argv[k++] = args[i];
        argv[k] = NULL;
        if (!freopen(errpath, "w", stderr))
            _exit(127);
        execv(MTLD_BIN, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    size_t len = 0;
    char *text = h_read_file(errpath, &len);
    snprintf(err, n, "%s", text ? text : "");
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A non-loopback address without tokens is refused at start (before it
 * listens), naming --insecure. */
START_TEST(non_loopback_without_tokens_is_refused)
{
    char data[300], err[4096];
    snprintf(data, sizeof data, "%s/data", DIR_);
    const char *args[] = {"--listen", "0.0.0.0:0", "--data-dir", data, NULL};
    int rc = run_to_exit(args, err, sizeof err);
    ck_assert_msg(rc != 0, "mtld started on 0.0.0.0 without tokens");
    ck_assert_msg(strstr(err, "--insecure") != NULL && strstr(err, "token") != NULL,
                  "stderr: %s", err);
}
END_TEST

/* A --listen that cannot be bound is a bad flag like the others: exit 2 with
 * the reason, before anything is created. */
START_TEST(bad_listen_is_a_usage_error)
{
    char data[300], err[4096];
    snprintf(data, sizeof data, "%s/never", DIR_);
    static const char *const bad[][2] = {
        {"garbage", "HOST:PORT"},
        {"127.0.0.1:99999", "0..65535"},
        {"127.0.0.1:", "0..65535"},
        {"no.such.host:80", "IPv4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"--listen", bad[i][0], "--data-dir", data, NULL};
        int rc = run_to_exit(args, err, sizeof err);
        ck_assert_msg(rc == 2, "--listen %s: exit %d, stderr: %s", bad[i][0], rc, err);
        ck_assert_msg(strstr(err, "--listen") && strstr(err, bad[i][1]), "stderr: %s", err);
        ck_assert_msg(access(data, F_OK) != 0, "--listen %s: the data dir was created",
                      bad[i][0]);
    }
    /* the same check holds for the config file */
    char conf[300];
    snprintf(conf, sizeof conf, "%s/mtld.conf", DIR_);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = nowhere\n");
    fclose(f);
    const char *args[] = {"--config", conf, "--data-dir", data, NULL};
    ck_assert_int_eq(run_to_exit(args, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "--listen must be HOST:PORT"), "stderr: %s", err);
}
END_TEST

/* docs/api.md documents every route of the table (as "`METHOD /path`"). */
START_TEST(api_md_names_every_route)
{
    size_t len = 0;
    char *md = h_read_file(h_src("docs/api.md"), &len);
    ck_assert_msg(md != NULL, "docs/api.md is missing");
    for (size_t i = 0; i < api_route_count(); i++) {
        const char *method, *pattern;
        api_route_get(i, &method, &pattern);
        char key[300];
        int n = snprintf(key, sizeof key, "`%s %s", method, pattern);
        int found = 0;
        for (const char *at = strstr(md, key); at && !found; at = strstr(at + 1, key))
            found = at[n] == '`' || at[n] == '?';
        ck_assert_msg(found, "docs/api.md does not document %s %s", method, pattern);
    }
    free(md);
}
END_TEST

/* Every line is a comment, blank, or `name{labels} value`. */
START_TEST(metrics_is_prometheus_text)
{
    h_start(&P, DIR_, NULL);
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    h_resp miss = h_req(&P, "GET", "/v1/nothing", NULL, NULL, 0);
    h_resp_free(&miss);
    h_resp r = h_req(&P, "GET", "/metrics", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(!strncmp(r.ctype, "text/plain", 10), "content type %s", r.ctype);
    regex_t re;
    ck_assert_int_eq(
        regcomp(&re,
                "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\",?)*\\})? "
                "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|\\+Inf|-Inf)$",
                REG_EXTENDED | REG_NOSUB),
        0);
    char *save = NULL;
    int samples = 0;
    for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == 0)
            continue;
        ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0, "not a sample line: '%s'", line);
        samples++;
    }
    regfree(&re);
    ck_assert_int_gt(samples, 10);
    h_resp_free(&r);
    r = h_req(&P, "GET", "/metrics", NULL, NULL, 0);
    const char *want[] = {
        "mtld_build_info{version=\"",
        "mtld_jobs{state=\"queued\"} 0",
        "mtld_queue_depth 0",
        "mtld_datasets 1",
        "mtld_dataset_bytes 559400", /* 5594 rows x 25 columns x 4 bytes */
        "mtld_http_requests_total{method=\"POST\",route=\"/v1/datasets\",status=\"201\"} 1",
        "mtld_http_requests_total{method=\"\",route=\"unmatched\",status=\"404\"} 1",
        "mtld_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"} 1",
        "mtld_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/datasets\","
        "le=\"+Inf\"} 1",
        "mtld_http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\"} 1",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(r.body, want[i]) != NULL, "missing '%s' in:\n%s", want[i], r.body);
    h_resp_free(&r);
}
END_TEST

/* docs/openapi.yaml names every (method, path) of the route table. The file
 * is read as text in the fixed layout it is written in: paths at two spaces,
 * methods at four. */
START_TEST(openapi_names_every_route)
{
    size_t len = 0;
    char *yaml = h_read_file(h_src("docs/openapi.yaml"), &len);
    ck_assert_msg(yaml != NULL, "docs/openapi.yaml is missing");
    ck_assert_msg(strstr(yaml, "openapi: 3.0") != NULL, "not an OpenAPI 3.0 file");
    size_t n = api_route_count();
    for (size_t i = 0; i < n; i++) {
        const char *method, *pattern;
        api_route_get(i, &method, &pattern);
        char key[300], m[16];
        snprintf(key, sizeof key, "\n  %s:\n", pattern);
        const char *at = strstr(yaml, key);
        ck_assert_msg(at != NULL, "openapi.yaml has no path '%s'", pattern);
        /* the path's block runs to the next path, or the next top-level key */
        const char *body = at + strlen(key) - 1;
        const char *end = strstr(body, "\n  /");
        const char *top = strstr(body, "\ncomponents:");
        if (!end || (top && top < end))
            end = top;
        size_t bl = end ? (size_t)(end - body) : strlen(body);
        size_t k = 0;
        for (; method[k] && k + 1 < sizeof m; k++)
            m[k] = (char)(method[k] >= 'A' && method[k] <= 'Z' ? method[k] + 32 : method[k]);
        m[k] = 0;
        char mk[32];
        snprintf(mk, sizeof mk, "    %s:", m);
        char *block = strndup(body, bl);
        ck_assert_msg(strstr(block, mk) != NULL, "openapi.yaml: path '%s' has no '%s'", pattern,
                      m);
        free(block);
    }
    free(yaml);
}
END_TEST

Suite *api_suite(void);
Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, auth_matrix_over_every_route);
    tcase_add_test(tc, lists_are_paginated);
    tcase_add_test(tc, idempotent_retries_return_the_same_resource);
    tcase_add_test(tc, every_error_status_has_the_json_shape);
    tcase_add_test(tc, limits_per_address_and_header_size);
    tcase_add_test(tc, connection_limit_is_answered);
    tcase_add_test(tc, content_type_missing_or_conflicting_is_415);
    tcase_add_test(tc, uploads_are_refused_before_their_body);
    tcase_add_test(tc, allow_header_and_head);
    tcase_add_test(tc, upload_limit_idle_timeout_and_garbage);
    tcase_add_test(tc, api_md_names_every_route);
    tcase_add_test(tc, non_loopback_without_tokens_is_refused);
    tcase_add_test(tc, bad_listen_is_a_usage_error);
    tcase_add_test(tc, metrics_is_prometheus_text);
    tcase_add_test(tc, openapi_names_every_route);
    suite_add_tcase(s, tc);
    return s;
}
