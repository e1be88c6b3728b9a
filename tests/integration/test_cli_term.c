/*
 * tests/integration/test_cli_term.c — what mtlctl shows a person and what
 * it writes for a script. On a pseudo-terminal (forkpty) `dataset upload`
 * and `job checkpoint` draw a transfer bar (bytes, rate, ETA) and `job
 * watch` a live block (bar and latest-metrics table) redrawn in place; with
 * NO_COLOR, --quiet or --json, or when stdout is a file, nothing but plain
 * lines appear: no carriage return (the terminal turns "\n" into "\r\n",
 * so there a '\r' must be followed by '\n') and no escape sequence.
 *
 * cli_upload: a CSV file of more than 100 MB is uploaded from disk with
 * the client's peak memory far below the file's size.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/cli_run.h"
#include "tests/integration/harness.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&P, DIR_, (const char *const[]){"--workers", "1", NULL});
}

static void teardown(void)
{
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
}

/* Plain lines: no escape sequence, and every '\r' is the terminal's "\r\n". */
static void expect_plain(const c_result *r, const char *what)
{
    ck_assert_msg(!c_has_byte(r->out, r->out_len, '\033'), "%s: an escape sequence in %s", what,
                  r->out);
    for (size_t i = 0; i < r->out_len; i++)
        ck_assert_msg(r->out[i] != '\r' || (i + 1 < r->out_len && r->out[i + 1] == '\n'),
                      "%s: a bare carriage return at byte %zu of %s", what, i, r->out);
}

static c_result pty(const char *const *env, const char *const *argv)
{
    const char *a[32] = {"--url", P.url};
    int n = 2;
    for (int i = 0; argv[i]; i++)
        a[n++] = argv[i];
    a[n] = NULL;
    return c_run_pty(env, 120, a);
}

static c_result plain(const char *const *argv)
{
    const char *a[32] = {"--url", P.url};
    int n = 2;
    for (int i = 0; argv[i]; i++)
        a[n++] = argv[i];
    a[n] = NULL;
    return c_run(NULL, NULL, 120, a);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_rc(const c_result *r, int rc, const char *what)
{
    ck_assert_msg(r->status == rc, "%s: exit %d, wanted %d; output: %s %s", what, r->status, rc,
                  r->out, r->err);
}

START_TEST(upload_bar_only_on_a_terminal)
{
    const char *so = h_src("data/stackoverflow/stackoverflow.csv");
    c_result r = pty(NULL, ARGS("dataset", "upload", so, "--name", "so1"));
    expect_rc(&r, 0, "upload on a terminal");
    ck_assert_msg(strstr(r.out, "\rupload so1 [") != NULL, "no bar: %s", r.out);
    ck_assert_msg(strstr(r.out, "329.2 KiB / 329.2 KiB") != NULL, "no byte counts: %s", r.out);
    ck_assert_msg(strstr(r.out, "/s  ETA ") != NULL, "no rate and ETA: %s", r.out);
    ck_assert_msg(strstr(r.out, "dataset 1 so1: 5594 rows") != NULL, "no result: %s", r.out);
    c_result_free(&r);

    r = pty(ARGS("NO_COLOR=1"), ARGS("dataset", "upload", so, "--name", "so2"));
    expect_rc(&r, 0, "upload with NO_COLOR");
    expect_plain(&r, "NO_COLOR");
    ck_assert_ptr_nonnull(strstr(r.out, "dataset 2 so2: 5594 rows"));
    c_result_free(&r);

    r = pty(NULL, ARGS("dataset", "upload", so, "--name", "so3", "--quiet"));
    expect_rc(&r, 0, "upload --quiet");
    expect_plain(&r, "--quiet");
    ck_assert_str_eq(r.out, "3\r\n");
    c_result_free(&r);

    r = pty(NULL, ARGS("dataset", "upload", so, "--name", "so4", "--json"));
    expect_rc(&r, 0, "upload --json");
    expect_plain(&r, "--json");
    c_result_free(&r);

    r = plain(ARGS("dataset", "upload", so, "--name", "so5"));
    expect_rc(&r, 0, "upload to a file");
    expect_plain(&r, "not a terminal");
    ck_assert(!c_has_byte(r.out, r.out_len, '\r'));
    ck_assert_ptr_nonnull(strstr(r.out, "dataset 5 so5: 5594 rows"));
    c_result_free(&r);
}
END_TEST

START_TEST(watch_and_checkpoint_bars_only_on_a_terminal)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\","
                            "\"kind\":\"regression\"}",
                            201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
    /* One worker: job 2 waits behind job 1, so it is surely not over when
     * watching starts (a job that has ended is shown without a stream). */
    json_decref(h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                            "\"model\":{\"trunk\":[64]},\"epochs\":20,\"seed\":3}",
                            202));
    const char *spec = "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                       "\"model\":{\"trunk\":[16]},\"epochs\":3,\"seed\":3}";
    for (int k = 0; k < 3; k++)
        json_decref(h_post_json(&P, "/v1/jobs", spec, 202));

    c_result r = pty(NULL, ARGS("job", "watch", "2"));
    expect_rc(&r, 0, "watch on a terminal");
    ck_assert_msg(strstr(r.out, "\rjob 2 ") != NULL, "no live line: %s", r.out);
    ck_assert_msg(strstr(r.out, "\033[K") != NULL, "no redraw: %s", r.out);
    ck_assert_msg(strstr(r.out, "[#") != NULL, "no bar: %s", r.out);
    ck_assert_msg(strstr(r.out, "TASK") && strstr(r.out, "SPLIT") && strstr(r.out, "STEP"),
                  "no metrics table: %s", r.out);
    ck_assert_msg(strstr(r.out, "succeeded"), "no final state: %s", r.out);
    c_result_free(&r);

    r = pty(ARGS("NO_COLOR=1"), ARGS("job", "watch", "3"));
    expect_rc(&r, 0, "watch with NO_COLOR");
    expect_plain(&r, "watch NO_COLOR");
    ck_assert_ptr_nonnull(strstr(r.out, "job 3 "));
    ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
    c_result_free(&r);

    r = plain(ARGS("job", "watch", "4"));
    expect_rc(&r, 0, "watch to a file");
    ck_assert(!c_has_byte(r.out, r.out_len, '\r') && !c_has_byte(r.out, r.out_len, '\033'));
    ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
    c_result_free(&r);

    char out[320];
    snprintf(out, sizeof out, "%s/m.safetensors", DIR_);
    r = pty(NULL, ARGS("job", "checkpoint", "1", "-o", out));
    expect_rc(&r, 0, "checkpoint on a terminal");
    ck_assert_msg(strstr(r.out, "\rcheckpoint ") != NULL, "no bar: %s", r.out);
    ck_assert_msg(strstr(r.out, "B/s") != NULL, "no rate: %s", r.out);
    c_result_free(&r);
    r = pty(ARGS("NO_COLOR="), ARGS("job", "checkpoint", "1", "-o", out));
    expect_rc(&r, 0, "checkpoint with NO_COLOR set (even empty)");
    expect_plain(&r, "checkpoint NO_COLOR");
    c_result_free(&r);
    r = plain(ARGS("job", "checkpoint", "1", "-o", out));
    expect_rc(&r, 0, "checkpoint to a file");
    ck_assert(!c_has_byte(r.out, r.out_len, '\r') && !c_has_byte(r.out, r.out_len, '\033'));
    c_result_free(&r);
}
END_TEST

Suite *cli_term_suite(void)
{
    Suite *s = suite_create("cli_term");
    TCase *tc = tcase_create("terminal");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, upload_bar_only_on_a_terminal);
    tcase_add_test(tc, watch_and_checkpoint_bars_only_on_a_terminal);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- a large upload ------------------------------------------------------ */

#define BIG_BYTES (105ll << 20)

START_TEST(upload_over_100_mb_with_bounded_memory)
{
    char path[320];
    long long rows = 0, bytes = 0;
    snprintf(path, sizeof path, "%s/big.csv", DIR_);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    bytes += fprintf(f, "id,x,y,label\n");
    while (bytes < BIG_BYTES) {
        int n = fprintf(f, "%lld,%.6f,%.6f,%s\n", rows, (double)(rows % 1000) / 7.0,
                        (double)(rows % 313) * 0.25, rows % 3 ? "yes" : "no");
        ck_assert_int_gt(n, 0);
        bytes += n;
        rows++;
    }
    ck_assert_int_eq(fclose(f), 0);

    c_result r = plain(ARGS("dataset", "upload", path, "--quiet"));
    unlink(path);
    expect_rc(&r, 0, "upload of a 105 MB file");
    ck_assert_str_eq(r.out, "1\n");
    /* streamed: the client's peak memory is a small fraction of the file
     * (not under ASan, whose quarantine keeps up to 256 MiB of freed blocks) */
#ifndef MTLD_TEST_SANITIZE
    ck_assert_msg(r.maxrss_kb > 0 && r.maxrss_kb < 48 * 1024,
                  "mtlctl peaked at %ld KiB for a %lld-byte file", r.maxrss_kb, bytes);
#endif
    c_result_free(&r);
    json_t *d = h_get_json(&P, "/v1/datasets/1", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "rows")), rows);
    ck_assert_int_eq(json_array_size(json_object_get(d, "columns")), 4);
    json_decref(d);
}
END_TEST

Suite *cli_upload_suite(void)
{
    Suite *s = suite_create("cli_upload");
    TCase *tc = tcase_create("large");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, upload_over_100_mb_with_bounded_memory);
    suite_add_tcase(s, tc);
    return s;
}
