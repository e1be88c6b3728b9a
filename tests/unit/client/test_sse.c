/*
 * tests/unit/client/test_sse.c — the SSE parser against the stream format
 * the daemon writes (docs/api.md) and the rules of the format: every way of
 * cutting the same bytes into chunks gives the same events; CR, LF and CRLF
 * line ends (also a CRLF cut between its two bytes); comments; multi-line
 * data; ids that persist; events without data dropped; a stop from the
 * callback; a line over the limit refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sse.h"

typedef struct {
    char log[4096];
    int n;
    int stop_after;
} seen;

static int record(void *ud, const cli_sse_event *ev)
{
    seen *s = ud;
    size_t len = strlen(s->log);
    snprintf(s->log + len, sizeof s->log - len, "[%s|%s|%s]", ev->type, ev->id, ev->data);
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static const char STREAM[] = "retry: 2000\n\n"
                             "event: state\ndata: {\"state\":\"queued\"}\n\n"
                             ": heartbeat\n\n"
                             "id: 1\r\nevent: progress\r\ndata: {\"step\":64}\r\n\r\n"
                             "id: 7\revent: metric\rdata: a\rdata:b\rdata:  c\r\r"
                             "event: ignored-no-data\n\n"
                             "data: plain\n\n";

static const char WANT[] = "[state||{\"state\":\"queued\"}]"
                           "[progress|1|{\"step\":64}]"
                           "[metric|7|a\nb\n c]"
                           "[message|7|plain]";

START_TEST(same_events_for_every_chunking)
{
    size_t len = strlen(STREAM);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        seen s = {{0}, 0, 0};
        cli_sse p;
        cli_sse_init(&p, record, &s);
        for (size_t o = 0; o < len; o += chunk) {
            size_t n = len - o < chunk ? len - o : chunk;
            ck_assert_int_eq(cli_sse_feed(&p, STREAM + o, n), 0);
        }
        ck_assert_msg(strcmp(s.log, WANT) == 0, "chunk %zu: %s", chunk, s.log);
        ck_assert_str_eq(cli_sse_last_id(&p), "7");
        cli_sse_free(&p);
    }
}
END_TEST

START_TEST(callback_stops_the_feed)
{
    seen s = {{0}, 0, 2};
    cli_sse p;
    cli_sse_init(&p, record, &s);
    ck_assert_int_eq(cli_sse_feed(&p, STREAM, strlen(STREAM)), 7);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(cli_sse_last_id(&p), "1");
    cli_sse_free(&p);
}
END_TEST

START_TEST(an_endless_line_is_refused)
{
    seen s = {{0}, 0, 0};
    cli_sse p;
    char *block = malloc(65536);
    ck_assert_ptr_nonnull(block);
    memset(block, 'x', 65536);
    cli_sse_init(&p, record, &s);
    ck_assert_int_eq(cli_sse_feed(&p, "data: ", 6), 0);
    int rc = 0;
    for (size_t sent = 0; rc == 0 && sent <= CLI_SSE_MAX_LINE + 65536; sent += 65536)
        rc = cli_sse_feed(&p, block, 65536);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(s.n, 0);
    cli_sse_free(&p);
    free(block);
}
END_TEST

Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, same_events_for_every_chunking);
    tcase_add_test(tc, callback_stops_the_feed);
    tcase_add_test(tc, an_endless_line_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
