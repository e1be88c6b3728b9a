/*
 * tests/integration/test_durability.c — nothing acknowledged is lost.
 *  - a dataset acknowledged with 201 survives kill -9 the next instant;
 *  - a job interrupted by SIGTERM or kill -9 resumes from its checkpoint and
 *    ends with exactly the results of an uninterrupted run of the same spec,
 *    with no duplicated or missing metric step.
 */
#include <check.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "tests/integration/harness.h"

static char DIR_[256];

static const char *SPEC =
    "{\"name\":\"long\",\"algorithm\":\"multitask\","
    "\"tasks\":[\"salary\",\"remote\"],\"model\":{\"trunk\":[256,128]},"
    "\"epochs\":40,\"batch_size\":32,\"seed\":11,\"checkpoint_every\":150}";

static void define(mtld_proc *p)
{
    json_decref(h_upload(p, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
}

START_TEST(upload_survives_kill_9)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    json_t *d = h_upload(&p, "letters", h_src("data/letters/letters.csv"), 201);
    json_decref(d);
    json_t *before = h_get_json(&p, "/v1/datasets/letters/rows?offset=19990&limit=10", 200);
    ck_assert_int_eq(h_stop(&p, SIGKILL), 128 + SIGKILL);
    /* Upload again and kill at once: the 201 is sent only after the commit. */
    h_start(&p, DIR_, NULL);
    json_decref(h_upload(&p, "letters2", h_src("data/letters/letters.csv"), 201));
    h_stop(&p, SIGKILL);
    h_start(&p, DIR_, NULL);
    json_t *after = h_get_json(&p, "/v1/datasets/letters/rows?offset=19990&limit=10", 200);
    ck_assert_msg(json_equal(before, after), "rows changed across kill -9");
    json_t *after2 = h_get_json(&p, "/v1/datasets/letters2/rows?offset=19990&limit=10", 200);
    ck_assert_msg(json_equal(json_object_get(before, "rows"), json_object_get(after2, "rows")),
                  "second upload lost or changed");
    json_t *l = h_get_json(&p, "/v1/datasets/letters2", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "rows")), 20000);
    json_decref(l);
    json_decref(before);
    json_decref(after);
    json_decref(after2);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

static long long submit(mtld_proc *p)
{
    json_t *s = h_post_json(p, "/v1/jobs", SPEC, 202);
    long long id = json_integer_value(json_object_get(s, "id"));
    json_decref(s);
    return id;
}

/* Waits until the job has passed its first checkpoint but is not done. */
static void wait_running_past(mtld_proc *p, long long id, long long step)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    for (int i = 0; i < 2000; i++) {
        json_t *j = h_get_json(p, path, 200);
        long long s = json_integer_value(json_object_get(j, "step"));
        const char *st = json_string_value(json_object_get(j, "state"));
        int done = strcmp(st, "running") && strcmp(st, "queued");
        json_decref(j);
        ck_assert_msg(!done, "job finished before it could be interrupted");
        if (s > step)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("job never got past step %lld", step);
}

static void check_resume(int sig)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    define(&p);
    long long a = submit(&p);
    wait_running_past(&p, a, 160);
    int st = h_stop(&p, sig);
    if (sig == SIGTERM)
        ck_assert_int_eq(st, 0);
    h_start(&p, DIR_, NULL);
    json_t *ja = h_wait_job(&p, a, 300);
    ck_assert_str_eq(json_string_value(json_object_get(ja, "state")), "succeeded");
    long long b = submit(&p); /* the same spec, never interrupted */
    json_t *jb = h_wait_job(&p, b, 300);
    ck_assert_str_eq(json_string_value(json_object_get(jb, "state")), "succeeded");
    char *ra = json_dumps(json_object_get(ja, "results"), JSON_SORT_KEYS);
    char *rb = json_dumps(json_object_get(jb, "results"), JSON_SORT_KEYS);
    ck_assert_msg(!strcmp(ra, rb), "resumed %s\n  differs from uninterrupted %s", ra, rb);
    free(ra);
    free(rb);

    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "/v1/jobs/%lld/metrics", a);
    snprintf(pb, sizeof pb, "/v1/jobs/%lld/metrics", b);
    json_t *ma = h_get_json(&p, pa, 200), *mb = h_get_json(&p, pb, 200);
    ck_assert_msg(json_equal(ma, mb), "metric series differ after resume");
    json_decref(ma);
    json_decref(mb);
    json_decref(ja);
    json_decref(jb);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}

START_TEST(job_resumes_after_sigterm)
{
    check_resume(SIGTERM);
}
END_TEST

START_TEST(job_resumes_after_kill_9)
{
    check_resume(SIGKILL);
}
END_TEST

Suite *durability_suite(void);
Suite *durability_suite(void)
{
    Suite *s = suite_create("durability");
    TCase *tc = tcase_create("durability");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, upload_survives_kill_9);
    tcase_add_test(tc, job_resumes_after_sigterm);
    tcase_add_test(tc, job_resumes_after_kill_9);
    suite_add_tcase(s, tc);
    return s;
}
