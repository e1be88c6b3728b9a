/*
 * tests/integration/test_api_strict.c — the API's strictness at the edges
 * (issue 6): what a request says twice or says loosely is refused with the
 * JSON error shape naming it, before anything is looked up.
 */
#define _GNU_SOURCE /* strcasestr */
#include <check.h>
#include <stdio.h>
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
    /* still serving after everything the test threw at it */
    json_decref(h_get_json(&P, "/v1/health", 200));
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
}

/* The JSON body of a raw reply (after its blank line), parsed. */
static json_t *raw_body(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* Two Content-Length headers: libmicrohttpd reads the first, so a request
 * announcing 10 bytes and then 2 used to wait for 8 bytes until the idle
 * timeout. It is a 400 at the headers now, naming the header, and the
 * connection is closed. */
START_TEST(duplicate_content_length_is_400)
{
    static const char *const reqs[] = {
        "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 10\r\nContent-Length: 2\r\n\r\n{}",
        "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "GET /v1/health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\ncontent-length: 5\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char reply[4096];
        t_raw(&P, reqs[i], strlen(reqs[i]), reply, sizeof reply, 30);
        ck_assert_msg(!strncmp(reply, "HTTP/1.1 400 ", 13), "request %zu:\n%s", i, reply);
        ck_assert_msg(strcasestr(reply, "\r\nConnection: close\r\n") != NULL, "request %zu:\n%s",
                      i, reply);
        json_t *j = raw_body(reply);
        ck_assert_msg(j != NULL, "request %zu: no JSON body:\n%s", i, reply);
        json_t *e = json_object_get(j, "error");
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "invalid");
        ck_assert_str_eq(json_string_value(json_object_get(e, "field")), "Content-Length");
        json_decref(j);
    }
    /* nothing was created by the refused POSTs */
    json_t *l = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
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

Suite *api_strict_suite(void);
Suite *api_strict_suite(void)
{
    Suite *s = suite_create("api_strict");
    TCase *tc = tcase_create("api_strict");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, duplicate_content_length_is_400);
    tcase_add_test(tc, ids_in_urls_are_canonical);
    suite_add_tcase(s, tc);
    return s;
}
