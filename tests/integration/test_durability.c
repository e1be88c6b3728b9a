/*
 * tests/integration/test_durability.c — nothing acknowledged is lost.
 *  - a dataset acknowledged with 201 survives kill -9 the next instant;
 *  - a job interrupted by SIGTERM or kill -9 resumes from its checkpoint and
 *    ends with exactly the results of an uninterrupted run of the same spec,
 *    with no duplicated or missing metric step;
 *  - a job stopped after its last step, while its baselines train, is
 *    evaluated on the test split again on restart: the series still holds
 *    the test figures once, and equals an uninterrupted run's.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/integration/harness.h"

static char DIR_[256];

static const char *SPEC =
    "{\"name\":\"long\",\"algorithm\":\"multitask\","
    "\"tasks\":[\"salary\",\"remote\"],\"model\":{\"trunk\":[256,128]},"
    "\"epochs\":40,\"batch_size\":32,\"seed\":11,\"checkpoint_every\":150}";

/* Every row of a dataset, read through the preview in pages of 1000. */
static json_t *all_rows(mtld_proc *p, const char *name, long long n)
{
    json_t *all = json_array();
    for (long long off = 0; off < n; off += 1000) {
        char path[128];
        snprintf(path, sizeof path, "/v1/datasets/%s/rows?offset=%lld&limit=1000", name, off);
        json_t *page = h_get_json(p, path, 200);
        ck_assert_int_eq(json_integer_value(json_object_get(page, "total")), n);
        json_array_extend(all, json_object_get(page, "rows"));
        json_decref(page);
    }
    ck_assert_int_eq((long long)json_array_size(all), n);
    return all;
}

START_TEST(upload_survives_kill_9)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    json_t *d = h_upload(&p, "letters", h_src("data/letters/letters.csv"), 201);
    json_decref(d);
    json_t *before = all_rows(&p, "letters", 20000);
    ck_assert_int_eq(h_stop(&p, SIGKILL), 128 + SIGKILL);
    /* Upload again and kill the next instant: the 201 is sent only after
     * the commit. */
    h_start(&p, DIR_, NULL);
    json_decref(h_upload(&p, "letters2", h_src("data/letters/letters.csv"), 201));
    h_stop(&p, SIGKILL);
    h_start(&p, DIR_, NULL);
    /* Both there, every row the same as read before the kills (values
     * compared exactly: floats go out with 17 digits). */
    json_t *after = all_rows(&p, "letters", 20000);
    ck_assert_msg(json_equal(before, after), "rows changed across kill -9");
    json_t *after2 = all_rows(&p, "letters2", 20000);
    ck_assert_msg(json_equal(before, after2), "the upload acknowledged before kill -9 changed");
    json_decref(before);
    json_decref(after);
    json_decref(after2);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

/* Reads or writes the big-endian u32 at offset off of file path. */
static unsigned long file_u32(const char *path, long off, const unsigned long *set)
{
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    unsigned char b[4];
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    ck_assert_int_eq(fread(b, 1, 4, f), 4);
    unsigned long v = (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 |
                      (unsigned long)b[2] << 8 | b[3];
    if (set) {
        b[0] = (unsigned char)(*set >> 24), b[1] = (unsigned char)(*set >> 16);
        b[2] = (unsigned char)(*set >> 8), b[3] = (unsigned char)*set;
        ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
        ck_assert_int_eq(fwrite(b, 1, 4, f), 4);
    }
    ck_assert_int_eq(fclose(f), 0);
    return v;
}

/* A database written by a newer mtld (a higher PRAGMA user_version, which
 * SQLite keeps at byte 60 of the file) is refused with a message, and the
 * refusal changes nothing: with the version put back, everything is there. */
START_TEST(newer_database_is_refused)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    json_decref(h_upload(&p, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    char db[400], wal[420], log[400], cmd[1200];
    snprintf(db, sizeof db, "%s/mtld.db", p.data_dir);
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(log, sizeof log, "%s/refused.log", DIR_);
    /* a clean stop leaves everything in the main file */
    size_t wl = 0;
    char *w = h_read_file(wal, &wl);
    ck_assert_msg(!w || wl == 0, "a write-ahead log of %zu bytes was left", wl);
    free(w);
    const unsigned long newer = 999;
    unsigned long ours = file_u32(db, 60, &newer);
    ck_assert_uint_gt(ours, 0);
    ck_assert_uint_lt(ours, newer);
    /* (timeout: a daemon that wrongly started would otherwise never return;
     * it would end with 124, not mtld's 1 for a refused start) */
    snprintf(cmd, sizeof cmd, "timeout 120 %s --listen 127.0.0.1:0 --data-dir %s 2>%s", MTLD_BIN,
             p.data_dir, log);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "mtld on a newer database: status %d",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    size_t len = 0;
    char *text = h_read_file(log, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "version 999 is newer than this build knows"), "log: %s", text);
    free(text);
    ck_assert_uint_eq(file_u32(db, 60, NULL), newer); /* not touched */
    file_u32(db, 60, &ours);
    h_start(&p, DIR_, NULL);
    json_t *d = h_get_json(&p, "/v1/datasets/so", 200);
    ck_assert_int_gt(json_integer_value(json_object_get(d, "rows")), 5000);
    json_decref(d);
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

/* The latest checkpoint of job id: its tensor table (the header without
 * __metadata__, which names the job) and its tensor bytes. */
static void latest_tensors(mtld_proc *p, long long id, json_t **table, h_resp *raw, size_t *off)
{
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", id);
    *raw = h_req(p, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(raw->status, 200);
    ck_assert_uint_ge(raw->len, 8);
    unsigned long long n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | (unsigned char)raw->body[i];
    ck_assert_uint_le(n, raw->len - 8);
    *table = json_loadb(raw->body + 8, (size_t)n, 0, NULL);
    ck_assert_ptr_nonnull(*table);
    json_object_del(*table, "__metadata__");
    ck_assert_int_gt((long)json_object_size(*table), 0);
    *off = 8 + (size_t)n;
}

/* Weights, optimiser moments and every other tensor of the two jobs' final
 * checkpoints are the same, bit for bit. */
static void same_weights(mtld_proc *p, long long a, long long b)
{
    json_t *ta, *tb;
    h_resp ra, rb;
    size_t oa, ob;
    latest_tensors(p, a, &ta, &ra, &oa);
    latest_tensors(p, b, &tb, &rb, &ob);
    ck_assert_msg(json_equal(ta, tb), "the checkpoints hold different tensors");
    ck_assert_uint_eq(ra.len - oa, rb.len - ob);
    ck_assert_msg(memcmp(ra.body + oa, rb.body + ob, ra.len - oa) == 0,
                  "resumed weights differ from the uninterrupted run's");
    json_decref(ta);
    json_decref(tb);
    h_resp_free(&ra);
    h_resp_free(&rb);
}

static int log_has(const char *path, const char *needle)
{
    size_t len = 0;
    char *t = h_read_file(path, &len);
    int found = t && strstr(t, needle) != NULL;
    free(t);
    return found;
}

static void check_resume(int sig)
{
    mtld_proc p;
    h_start_so(&p, DIR_, sizeof DIR_);
    long long a = submit(&p);
    h_wait_running_past(&p, a, 160);
    int st = h_stop(&p, sig);
    char log[400];
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    if (sig == SIGTERM) {
        /* a clean stop: exit 0, the job checkpointed and marked queued */
        ck_assert_int_eq(st, 0);
        ck_assert_msg(log_has(log, "event=job_requeued"), "SIGTERM did not re-queue the job");
    }
    h_start(&p, DIR_, NULL);
    /* on start, only a job the daemon was killed under is found running */
    if (sig == SIGTERM)
        ck_assert_msg(!log_has(log, "event=jobs_requeued"), "the job was left running at SIGTERM");
    else
        ck_assert_msg(log_has(log, "event=jobs_requeued"), "the killed job was not re-queued");
    json_t *ja = h_wait_job(&p, a, 300);
    ck_assert_str_eq(json_string_value(json_object_get(ja, "state")), "succeeded");
    long long b = submit(&p); /* the same spec, never interrupted */
    json_t *jb = h_wait_job(&p, b, 300);
    ck_assert_str_eq(json_string_value(json_object_get(jb, "state")), "succeeded");
    h_expect_same_results(ja, jb);

    h_expect_same_metrics(&p, a, b);
    same_weights(&p, a, b);
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

START_TEST(job_stopped_in_its_baselines_records_test_once)
{
    static const char *spec =
        "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"model\":{\"trunk\":[256,128]},\"epochs\":4,\"batch_size\":32,\"seed\":9,"
        "\"baselines\":true}";
    mtld_proc p;
    h_start_so(&p, DIR_, sizeof DIR_);
    long long a = h_submit(&p, spec);
    /* the multi-task training is done (step == steps) and the job still
     * runs: it is training the baselines, its test figures recorded */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", a);
    int caught = 0;
    for (double end = h_now() + 300; h_now() < end && !caught;) {
        json_t *j = h_get_json(&p, path, 200);
        long long step = json_integer_value(json_object_get(j, "step"));
        long long steps = json_integer_value(json_object_get(j, "steps"));
        const char *st = json_string_value(json_object_get(j, "state"));
        ck_assert_msg(!strcmp(st, "running") || !strcmp(st, "queued"),
                      "job %lld ended (%s) before its baselines could be interrupted", a, st);
        caught = !strcmp(st, "running") && steps > 0 && step == steps;
        json_decref(j);
        if (!caught)
            h_sleep_ms(2);
    }
    ck_assert(caught);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    h_start(&p, DIR_, NULL);
    json_t *ja = h_wait_job(&p, a, 300);
    ck_assert_str_eq(json_string_value(json_object_get(ja, "state")), "succeeded");
    long long b = h_submit(&p, spec);
    json_t *jb = h_wait_job(&p, b, 300);
    ck_assert_str_eq(json_string_value(json_object_get(jb, "state")), "succeeded");
    h_expect_same_results(ja, jb);
    h_expect_same_metrics(&p, a, b);
    json_decref(ja);
    json_decref(jb);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *durability_suite(void);
Suite *durability_suite(void)
{
    Suite *s = suite_create("durability");
    TCase *tc = tcase_create("durability");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, upload_survives_kill_9);
    tcase_add_test(tc, newer_database_is_refused);
    tcase_add_test(tc, job_resumes_after_sigterm);
    tcase_add_test(tc, job_resumes_after_kill_9);
    tcase_add_test(tc, job_stopped_in_its_baselines_records_test_once);
    suite_add_tcase(s, tc);
    return s;
}
