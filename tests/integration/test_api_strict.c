/*
 * tests/integration/test_api_strict.c — the API's strictness at the edges
 * (issue 6): what a request says twice or says loosely is refused with the
 * JSON error shape naming it, before anything is looked up.
 */
#define _GNU_SOURCE /* strcasestr */
#include <check.h>
#include <stdio.h>
#include <string.h>

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

Suite *api_strict_suite(void);
Suite *api_strict_suite(void)
{
    Suite *s = suite_create("api_strict");
    TCase *tc = tcase_create("api_strict");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, duplicate_content_length_is_400);
    suite_add_tcase(s, tc);
    return s;
}
