/*
 * tests/unit/store/test_db.c — the handle: opening sets the pragmas and
 * migrates (user_version), a newer database is refused, everything survives
 * close + reopen, bad files fail cleanly, concurrent callers are serialised,
 * and SQLite running out of memory at any allocation fails the call cleanly
 * without changing anything or wedging the handle.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "tests/unit/store/fixture.h"

static int64_t pragma_int(const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;
    ck_assert_int_eq(sqlite3_prepare_v2(fx_store->db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

START_TEST(open_configures_and_migrates)
{
    char mode[16];
    ck_assert_int_ge(store__schema_version(), 1);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), store__schema_version());
    fx_text("PRAGMA journal_mode", mode, sizeof mode);
    ck_assert_str_eq(mode, "wal");
    ck_assert_int_eq(pragma_int("PRAGMA synchronous"), 2); /* FULL */
    ck_assert_int_eq(pragma_int("PRAGMA foreign_keys"), 1);
    ck_assert_int_eq(pragma_int("PRAGMA busy_timeout"), 5000);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN"
                            " ('datasets','dataset_chunks','tasks','jobs','job_tasks','metrics',"
                            "'checkpoints')"),
                     7);
    /* Opening again is a no-op for the schema. */
    fx_reopen();
    ck_assert_int_eq(fx_int("PRAGMA user_version"), store__schema_version());
}
END_TEST

START_TEST(newer_database_is_refused)
{
    char err[256] = "", sql[64];
    store *s = (store *)1;

    fx_dataset("keep", 2, 2);
    store_close(fx_store);
    fx_store = NULL;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store__schema_version() + 1);
    fx_exec(sql);
    ck_assert_int_eq(store_open(fx_path, &s, err, sizeof err), STORE_EVERSION);
    ck_assert_ptr_eq(s, (store *)1);
    ck_assert_msg(strstr(err, "newer") != NULL, "message: %s", err);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), store__schema_version() + 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 1);
    /* Also with no errbuf at all. */
    ck_assert_int_eq(store_open(fx_path, &s, NULL, 0), STORE_EVERSION);
}
END_TEST

START_TEST(bad_files)
{
    char err[256] = "", path[4200];
    store *s = (store *)1;
    FILE *f;

    ck_assert_int_eq(store_open("/nonexistent-dir/mtld.db", &s, err, sizeof err), STORE_EIO);
    ck_assert_msg(err[0] != '\0', "no message");
    snprintf(path, sizeof path, "%s.txt", fx_path);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an SQLite database, not even a little bit; it is plain text.\n", f);
    fclose(f);
    err[0] = '\0';
    ck_assert_int_eq(store_open(path, &s, err, sizeof err), STORE_EIO);
    ck_assert_msg(err[0] != '\0', "no message");
    ck_assert_int_eq(store_open(NULL, &s, err, sizeof err), STORE_EINVAL);
    ck_assert_int_eq(store_open(fx_path, NULL, err, sizeof err), STORE_EINVAL);
    ck_assert_ptr_eq(s, (store *)1);
    store_close(NULL);
}
END_TEST

START_TEST(reopen_keeps_everything)
{
    const float data[] = {1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f};
    const store_metric m[] = {
        {.step = 7, .task = "t", .split = "train", .name = "loss", .value = 0.5},
        {.step = 8, .task = "t", .split = "train", .name = "loss", .value = NAN},
    };
    int64_t ds = 0, task, job, ck = 0, n64 = 0;
    float out[6];
    store_dataset d = {0};
    store_task t = {0};
    store_job j = {0};
    store_metric *ml = NULL;
    store_checkpoint c = {0};
    size_t n = 0;

    ck_assert_int_eq(store_dataset_create(fx_store, "ds", "{\"m\":1}", 3, 2, data, &ds), STORE_OK);
    task = fx_task("t", ds);
    job = fx_job("j", 4, &task, 1);
    ck_assert_int_eq(store_job_set_state(fx_store, job, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_set_progress(fx_store, job, 8, 100, 0.08), STORE_OK);
    ck_assert_int_eq(store_job_set_results(fx_store, job, "{\"r\":2}"), STORE_OK);
    ck_assert_int_eq(store_metric_add(fx_store, job, m, 2), STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 8, "/c/8.st", 42, &ck), STORE_OK);

    fx_reopen();

    ck_assert_int_eq(store_dataset_find(fx_store, "ds", &d), STORE_OK);
    ck_assert_int_eq(d.id, ds);
    ck_assert_str_eq(d.meta, "{\"m\":1}");
    store_dataset_clear(&d);
    ck_assert_int_eq(store_dataset_read(fx_store, ds, 0, 3, out, &n64), STORE_OK);
    ck_assert_int_eq(n64, 3);
    ck_assert_int_eq(memcmp(out, data, sizeof data), 0);
    ck_assert_int_eq(store_task_find(fx_store, "t", &t), STORE_OK);
    ck_assert_int_eq(t.dataset_id, ds);
    store_task_clear(&t);
    ck_assert_int_eq(store_job_get(fx_store, job, &j), STORE_OK);
    ck_assert_str_eq(j.state, "running");
    ck_assert_int_eq(j.priority, 4);
    ck_assert_int_eq(j.step, 8);
    ck_assert(j.progress == 0.08);
    ck_assert_str_eq(j.results, "{\"r\":2}");
    fx_assert_timestamp(j.started_at);
    store_job_clear(&j);
    ck_assert_int_eq(store_task_delete(fx_store, task), STORE_EINUSE); /* links survived */
    ck_assert_int_eq(store_metric_list(fx_store, job, 0, &ml, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(ml[0].value == 0.5);
    ck_assert(isnan(ml[1].value));
    store_metric_list_free(ml, n);
    ck_assert_int_eq(store_checkpoint_latest(fx_store, job, &c), STORE_OK);
    ck_assert_int_eq(c.id, ck);
    ck_assert_str_eq(c.path, "/c/8.st");
    ck_assert_int_eq(c.bytes, 42);
    store_checkpoint_clear(&c);
}
END_TEST

START_TEST(strerror_names_every_code)
{
    int code;
    for (code = STORE_OK; code >= STORE_EINVAL; code--) {
        ck_assert_ptr_nonnull(store_strerror(code));
        ck_assert_str_ne(store_strerror(code), "unknown error");
    }
    ck_assert_str_eq(store_strerror(-100), "unknown error");
    ck_assert_str_eq(store_strerror(3), "unknown error");
}
END_TEST

/* ---- concurrent callers ------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 40

static int64_t shared_job;

static void *writer(void *arg)
{
    store_metric m = {.task = "t", .split = "train", .name = "loss", .value = 1.0};
    store_job j;
    intptr_t fails = 0;
    int i;
    for (i = 0; i < PER_THREAD; i++) {
        m.step = (int64_t)(intptr_t)arg * 1000 + i;
        fails += store_metric_add(fx_store, shared_job, &m, 1) != STORE_OK;
        fails += store_job_get(fx_store, shared_job, &j) != STORE_OK;
        store_job_clear(&j);
    }
    return (void *)fails;
}

START_TEST(concurrent_callers)
{
    pthread_t th[THREADS];
    void *fails;
    intptr_t i;

    shared_job = fx_job("j", 0, NULL, 0);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer, (void *)i), 0);
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], &fails), 0);
        ck_assert_int_eq((intptr_t)fails, 0);
    }
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics"), THREADS * PER_THREAD);
}
END_TEST

/* ---- SQLite out of memory ------------------------------------------------- */

/* From the countdown-th allocation on, every SQLite allocation fails (-1:
 * none does): the worst case, where even ROLLBACK cannot allocate. */
static sqlite3_mem_methods real_mem;
static long countdown = -1;

static int should_fail(void)
{
    if (countdown == 0)
        return 1;
    if (countdown > 0)
        countdown--;
    return 0;
}

static void *fail_malloc(int n)
{
    return should_fail() ? NULL : real_mem.xMalloc(n);
}

static void *fail_realloc(void *p, int n)
{
    return should_fail() ? NULL : real_mem.xRealloc(p, n);
}

static void install_failing_malloc(void)
{
    sqlite3_mem_methods m;
    ck_assert_int_eq(sqlite3_shutdown(), SQLITE_OK);
    ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem), SQLITE_OK);
    m = real_mem;
    m.xMalloc = fail_malloc;
    m.xRealloc = fail_realloc;
    ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
    ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
}

static void remove_failing_malloc(void)
{
    ck_assert_int_eq(sqlite3_shutdown(), SQLITE_OK);
    ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_MALLOC, &real_mem), SQLITE_OK);
    ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
}

START_TEST(out_of_memory_fails_cleanly)
{
    static float data[5000 * 2];
    char err[256];
    store *s = NULL;
    store_dataset d = {0};
    int64_t id = 0;
    long k;
    int rc = -1, opens = 0, creates = 0;

    store_close(fx_store); /* sqlite3_shutdown needs every connection closed */
    fx_store = NULL;
    unlink(fx_path);
    install_failing_malloc();

    /* Opening (and migrating a fresh file) at every failure point up to 512,
     * then at every fourth (keeps the run short under valgrind). */
    for (k = 0; k < 100000; k += k < 512 ? 1 : 4) {
        countdown = k;
        rc = store_open(fx_path, &s, err, sizeof err);
        countdown = -1;
        if (rc == STORE_OK)
            break;
        ck_assert_msg(rc == STORE_ENOMEM || rc == STORE_EIO, "open at %ld: %d", k, rc);
        ck_assert_msg(err[0] != '\0', "open at %ld: no message", k);
        opens++;
    }
    ck_assert_int_eq(rc, STORE_OK);
    ck_assert_int_gt(opens, 0);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), store__schema_version());

    /* Creating a two-chunk dataset at every failure point: nothing or all. */
    for (k = 0; k < 100000; k++) {
        countdown = k;
        rc = store_dataset_create(s, "d", NULL, 5000, 2, data, &id);
        countdown = -1;
        if (rc == STORE_OK)
            break;
        ck_assert_msg(rc == STORE_ENOMEM || rc == STORE_EIO, "create at %ld: %d", k, rc);
        ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 0);
        ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 0);
        creates++;
    }
    ck_assert_int_eq(rc, STORE_OK);
    ck_assert_int_gt(creates, 0);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 2);

    /* Reading at every failure point: errors, or the right answer. */
    for (k = 0; k < 100000; k++) {
        countdown = k;
        rc = store_dataset_find(s, "d", &d);
        countdown = -1;
        if (rc == STORE_OK)
            break;
        ck_assert_msg(rc == STORE_ENOMEM || rc == STORE_EIO, "find at %ld: %d", k, rc);
        ck_assert_ptr_null(d.name);
    }
    ck_assert_int_eq(rc, STORE_OK);
    ck_assert_int_eq(d.rows, 5000);
    store_dataset_clear(&d);

    store_close(s);
    remove_failing_malloc();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_db");
    TCase *tc = fx_tcase("db");
    tcase_add_test(tc, open_configures_and_migrates);
    tcase_add_test(tc, newer_database_is_refused);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, reopen_keeps_everything);
    tcase_add_test(tc, strerror_names_every_code);
    tcase_add_test(tc, concurrent_callers);
    tcase_add_test(tc, out_of_memory_fails_cleanly);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
