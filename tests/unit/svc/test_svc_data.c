/*
 * tests/unit/svc/test_svc_data.c — the service layer's datasets, in process:
 * streaming uploads through the writer thread (many chunks, stale chunks
 * rewritten, an upload closed before its commit leaves nothing, a taken or
 * bad name is refused at begin), and the shared dataset cache of job data
 * (two jobs — or many threads at once — get the same rows, loaded once;
 * the last to let go frees them).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/svc_jobdata.h"

static svc *S;
static char DIR_[256];

static void setup(void)
{
    char err[256] = "";
    snprintf(DIR_, sizeof DIR_, "%s/svc-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(DIR_));
    svc_config cfg = {DIR_, 1, 100, 0, 0};
    ck_assert_msg(svc_open(&cfg, &S, err, sizeof err) == SVC_OK, "svc_open: %s", err);
}

static void teardown(void)
{
    char cmd[400];
    svc_close(S);
    S = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
    ck_assert_int_eq(system(cmd), 0);
}

#define ROWS (3 * 4096 + 100)
#define COLS 3

/* Rows: x = r, z = r % 7, y = r % 2 (a category with levels "a", "b"). */
static void make_rows(float *d, size_t first, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t r = first + i;
        d[i * COLS] = (float)r;
        d[i * COLS + 1] = (float)(r % 7);
        d[i * COLS + 2] = (float)(r % 2);
    }
}

static char *LEVELS[] = {"a", "b"};

static svc_table table(svc_column *cols)
{
    memset(cols, 0, 3 * sizeof *cols);
    cols[0].name = "x";
    cols[1].name = "z";
    cols[2].name = "y";
    cols[2].is_category = 1;
    cols[2].n_levels = 2;
    cols[2].levels = LEVELS;
    svc_table t = {ROWS, COLS, cols, 0};
    return t;
}

/* Marks every chunk stale; the fix adds 1000 to column z of chunk 0 only. */
static int all_stale(void *ctx, size_t seq)
{
    (void)seq;
    ++*(int *)ctx;
    return 1;
}

static void fix_z(void *ctx, size_t seq, float *rows, size_t n)
{
    (void)ctx;
    if (seq == 0)
        for (size_t r = 0; r < n; r++)
            rows[r * COLS + 1] += 1000;
}

static void upload(const char *name)
{
    svc_upload *u = NULL;
    svc_error e = {0};
    float *chunk = malloc(4096 * COLS * sizeof *chunk);
    svc_column cols[3];
    json_t *out = NULL;
    int calls = 0;

    ck_assert_int_eq(svc_upload_begin(S, name, &u, &e), SVC_OK);
    for (size_t first = 0; first < ROWS; first += 4096) {
        size_t n = ROWS - first < 4096 ? ROWS - first : 4096;
        make_rows(chunk, first, n);
        ck_assert_int_eq(svc_upload_append(u, chunk, n, COLS, &e), SVC_OK);
    }
    svc_table t = table(cols);
    ck_assert_msg(svc_upload_commit(u, &t, all_stale, fix_z, &calls, &out, &e) == SVC_OK, "%s",
                  e.message);
    ck_assert_int_eq(calls, 4);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "rows")), ROWS);
    json_decref(out);
    svc_upload_close(u);
    free(chunk);
}

START_TEST(upload_many_chunks_and_read_back)
{
    json_t *rows = NULL;
    svc_error e = {0};

    upload("d");
    ck_assert_int_eq(svc_dataset_rows(S, "d", 4095, 2, &rows, &e), SVC_OK);
    json_t *r0 = json_array_get(json_object_get(rows, "rows"), 0);
    json_t *r1 = json_array_get(json_object_get(rows, "rows"), 1);
    ck_assert(json_real_value(json_array_get(r0, 0)) == 4095);
    ck_assert(json_real_value(json_array_get(r0, 1)) == 1000 + 4095 % 7); /* fixed */
    ck_assert(json_real_value(json_array_get(r1, 1)) == 4096 % 7);        /* not */
    ck_assert_str_eq(json_string_value(json_array_get(r1, 2)), "a");
    json_decref(rows);
}
END_TEST

START_TEST(upload_refusals_and_discards)
{
    svc_upload *u = NULL;
    svc_error e = {0};
    json_t *list = NULL;
    float row[COLS] = {1, 2, 0};

    ck_assert_int_eq(svc_upload_begin(S, "9lives", &u, &e), SVC_EINVAL);
    ck_assert_str_eq(e.field, "name");
    upload("taken");
    ck_assert_int_eq(svc_upload_begin(S, "taken", &u, &e), SVC_EEXISTS);
    /* begun, appended, never committed: nothing stays */
    ck_assert_int_eq(svc_upload_begin(S, "cut", &u, &e), SVC_OK);
    ck_assert_int_eq(svc_upload_append(u, row, 1, COLS, &e), SVC_OK);
    ck_assert_int_eq(svc_upload_append(u, row, 1, COLS + 1, &e), SVC_EINVAL);
    svc_upload_close(u);
    svc_upload_close(NULL);
    ck_assert_int_eq(svc_dataset_list(S, &list, &e), SVC_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(list, "total")), 1);
    json_decref(list);
    /* the name is free again */
    ck_assert_int_eq(svc_upload_begin(S, "cut", &u, &e), SVC_OK);
    svc_upload_close(u);
}
END_TEST

static void define_task(const char *name)
{
    char def[256];
    json_t *out = NULL, *j;
    svc_error e = {0};
    snprintf(def, sizeof def,
             "{\"name\":\"%s\",\"dataset\":\"d\",\"target\":\"y\",\"kind\":\"classification\"}",
             name);
    j = json_loads(def, 0, NULL);
    ck_assert_msg(svc_task_create(S, j, &out, &e) == SVC_OK, "%s", e.message);
    json_decref(j);
    json_decref(out);
}

static svc__spec spec(void)
{
    svc__spec sp;
    svc_error e = {0};
    json_t *j = json_loads("{\"algorithm\":\"multitask\",\"tasks\":[\"t\"]}", 0, NULL);
    ck_assert_msg(svc__spec_parse(j, &sp, &e) == SVC_OK, "%s", e.message);
    json_decref(j);
    return sp;
}

START_TEST(jobs_share_one_copy)
{
    svc__jobdata a, b;
    svc_error e = {0};

    upload("d");
    define_task("t");
    svc__spec sp = spec();
    ck_assert_msg(svc__jobdata_load(S, &sp, &a, &e) == SVC_OK, "%s", e.message);
    ck_assert_int_eq(svc__jobdata_load(S, &sp, &b, &e), SVC_OK);
    ck_assert_ptr_nonnull(a.ds[0]);
    ck_assert_ptr_eq(a.ds[0], b.ds[0]); /* one copy of the rows */
    ck_assert_uint_eq(svc__dataset_cache_count(S), 1);
    ck_assert_uint_eq(a.n_rows, ROWS);
    ck_assert(a.x != b.x); /* what each job derives is its own */
    svc__jobdata_clear(&a);
    ck_assert_uint_eq(svc__dataset_cache_count(S), 1); /* b still uses it */
    svc__jobdata_clear(&b);
    ck_assert_uint_eq(svc__dataset_cache_count(S), 0); /* the last one freed it */
    svc__jobdata_clear(NULL);
}
END_TEST

#define N_THREADS 6
static svc__spec SP;
static pthread_barrier_t BAR;

static void *loader(void *arg)
{
    svc__jobdata *jd = arg;
    svc_error e = {0};
    pthread_barrier_wait(&BAR);
    if (svc__jobdata_load(S, &SP, jd, &e) != SVC_OK)
        jd->ds[0] = NULL;
    return NULL;
}

START_TEST(concurrent_loads_load_once)
{
    pthread_t th[N_THREADS];
    svc__jobdata jd[N_THREADS];

    upload("d");
    define_task("t");
    SP = spec();
    pthread_barrier_init(&BAR, NULL, N_THREADS);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, loader, &jd[i]), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&BAR);
    for (int i = 0; i < N_THREADS; i++) {
        ck_assert_ptr_nonnull(jd[i].ds[0]);
        ck_assert_ptr_eq(jd[i].ds[0], jd[0].ds[0]);
    }
    ck_assert_uint_eq(svc__dataset_cache_count(S), 1);
    for (int i = 0; i < N_THREADS; i++)
        svc__jobdata_clear(&jd[i]);
    ck_assert_uint_eq(svc__dataset_cache_count(S), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svc_data");
    TCase *tc = tcase_create("data");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, upload_many_chunks_and_read_back);
    tcase_add_test(tc, upload_refusals_and_discards);
    tcase_add_test(tc, jobs_share_one_copy);
    tcase_add_test(tc, concurrent_loads_load_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
