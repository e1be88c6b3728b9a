/*
 * tests/unit/store/test_upload.c — streaming uploads (store/upload.c) and
 * the schema step they need: a dataset stays invisible until commit, then
 * round-trips bit for bit; its name is reserved from the start; rewrites
 * change chunks in place; closing without commit — or a crash, simulated by
 * a complete = 0 row found at open — leaves nothing behind; other writers
 * are not blocked while an upload is open; the WAL stays bounded after big
 * uploads; an older database (schema 1, made by hand) is upgraded in one
 * transaction and a failing upgrade changes nothing; usage counts tasks and
 * active jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store_internal.h" /* store__schema_version */
#include "tests/unit/store/fixture.h"

static float *seqdata(int64_t rows, int cols, float base)
{
    float *d = malloc((size_t)(rows * cols) * sizeof *d);
    int64_t i;
    ck_assert_ptr_nonnull(d);
    for (i = 0; i < rows * cols; i++)
        d[i] = base + (float)i;
    return d;
}

/* Appends rows in chunks of STORE_CHUNK_ROWS. */
static void append_all(store_upload *u, const float *d, int64_t rows, int cols)
{
    int64_t off;
    for (off = 0; off < rows; off += STORE_CHUNK_ROWS) {
        int64_t n = rows - off < STORE_CHUNK_ROWS ? rows - off : STORE_CHUNK_ROWS;
        ck_assert_int_eq(store_upload_append(u, d + off * cols, n, cols), STORE_OK);
    }
}

START_TEST(invisible_until_commit_then_exact)
{
    const int64_t rows = 3 * STORE_CHUNK_ROWS + 17;
    const int cols = 3;
    float *d = seqdata(rows, cols, 0.5f), *back = malloc((size_t)(rows * cols) * sizeof *back);
    store_upload *u = NULL;
    store_dataset ds = {0}, *list = NULL;
    size_t n = 9;
    int64_t id = 0, got = 0;

    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(store_upload_begin(fx_store, "big", &u), STORE_OK);
    append_all(u, d, rows, cols);
    ck_assert_int_eq(store_upload_rows(u), rows);
    /* committed chunks, but nobody sees them */
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 4);
    ck_assert_int_eq(store_dataset_find(fx_store, "big", &ds), STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 0);
    store_dataset_list_free(list, n);
    /* the name is taken from the start */
    ck_assert_int_eq(store_dataset_create(fx_store, "big", NULL, 1, 1, d, &id), STORE_EEXISTS);

    ck_assert_int_eq(store_upload_commit(u, cols, "{\"m\":1}", &id), STORE_OK);
    ck_assert_int_gt(id, 0);
    store_upload_close(u);
    ck_assert_int_eq(store_dataset_get(fx_store, id, &ds), STORE_OK);
    ck_assert_int_eq(ds.rows, rows);
    ck_assert_int_eq(ds.cols, cols);
    ck_assert_int_eq(ds.bytes, rows * cols * 4);
    ck_assert_str_eq(ds.meta, "{\"m\":1}");
    store_dataset_clear(&ds);
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, rows, back, &got), STORE_OK);
    ck_assert_int_eq(got, rows);
    ck_assert(memcmp(d, back, (size_t)(rows * cols) * sizeof *d) == 0);
    free(d);
    free(back);
}
END_TEST

START_TEST(close_without_commit_leaves_nothing)
{
    float *d = seqdata(2 * STORE_CHUNK_ROWS, 4, 0);
    store_upload *u = NULL;
    int64_t id = 0;

    ck_assert_int_eq(store_upload_begin(fx_store, "half", &u), STORE_OK);
    append_all(u, d, 2 * STORE_CHUNK_ROWS, 4);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 1);
    store_upload_close(u);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 0);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 0);
    /* and the name is free again */
    ck_assert_int_eq(store_upload_begin(fx_store, "half", &u), STORE_OK);
    append_all(u, d, 5, 4);
    ck_assert_int_eq(store_upload_commit(u, 4, NULL, &id), STORE_OK);
    store_upload_close(u);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 1);
    store_upload_close(NULL);
    free(d);
}
END_TEST

START_TEST(crash_leftovers_are_swept_on_open)
{
    fx_dataset("kept", 10, 2);
    /* what a process killed mid-upload leaves: a complete = 0 row, chunks */
    fx_exec("INSERT INTO datasets(name, n_rows, n_cols, bytes, complete)"
            " VALUES ('cut', 0, 2, 0, 0)");
    fx_exec("INSERT INTO dataset_chunks(dataset_id, seq, n_rows, data)"
            " SELECT id, 0, 1, x'0000000000000000' FROM datasets WHERE name = 'cut'");
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 2);
    fx_reopen();
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets WHERE name = 'kept'"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 1);
}
END_TEST

static int negate_col1(void *ctx, int64_t seq, float *rows, int64_t n_rows, int cols)
{
    int64_t r;
    int *calls = ctx;
    (*calls)++;
    ck_assert_int_eq(cols, 2);
    ck_assert(rows[0] == (float)(seq * STORE_CHUNK_ROWS * 2)); /* the right chunk */
    for (r = 0; r < n_rows; r++)
        rows[r * cols + 1] = -rows[r * cols + 1];
    return 0;
}

static int refuse(void *ctx, int64_t seq, float *rows, int64_t n_rows, int cols)
{
    (void)ctx, (void)seq, (void)n_rows, (void)cols;
    rows[0] = 12345; /* must not reach the database */
    return -1;
}

START_TEST(rewrite_changes_chunks_in_place)
{
    const int64_t rows = STORE_CHUNK_ROWS + 10;
    float *d = seqdata(rows, 2, 0), *back = malloc((size_t)(rows * 2) * sizeof *back);
    store_upload *u = NULL;
    int64_t id = 0, got = 0, r;
    int calls = 0;

    ck_assert_int_eq(store_upload_begin(fx_store, "rw", &u), STORE_OK);
    append_all(u, d, rows, 2);
    ck_assert_int_eq(store_upload_rewrite(u, 1, negate_col1, &calls), STORE_OK);
    ck_assert_int_eq(store_upload_rewrite(u, 0, negate_col1, &calls), STORE_OK);
    ck_assert_int_eq(calls, 2);
    ck_assert_int_eq(store_upload_rewrite(u, 2, negate_col1, &calls), STORE_EINVAL);
    ck_assert_int_eq(store_upload_rewrite(u, -1, negate_col1, &calls), STORE_EINVAL);
    ck_assert_int_eq(store_upload_rewrite(u, 0, refuse, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_upload_commit(u, 2, NULL, &id), STORE_OK);
    store_upload_close(u);
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, rows, back, &got), STORE_OK);
    for (r = 0; r < rows; r++) {
        ck_assert(back[r * 2] == d[r * 2]);
        ck_assert(back[r * 2 + 1] == -d[r * 2 + 1]);
    }
    free(d);
    free(back);
}
END_TEST

START_TEST(bad_calls)
{
    float one[4] = {1, 2, 3, 4};
    store_upload *u = (store_upload *)1;
    int64_t id = 0;

    ck_assert_int_eq(store_upload_begin(fx_store, "123", &u), STORE_EINVAL);
    ck_assert_int_eq(store_upload_begin(fx_store, "", &u), STORE_EINVAL);
    ck_assert_int_eq(store_upload_begin(NULL, "x", &u), STORE_EINVAL);
    ck_assert_ptr_eq(u, (store_upload *)1);
    fx_dataset("taken", 1, 1);
    ck_assert_int_eq(store_upload_begin(fx_store, "taken", &u), STORE_EEXISTS);
    ck_assert_ptr_eq(u, (store_upload *)1);

    ck_assert_int_eq(store_upload_begin(fx_store, "x", &u), STORE_OK);
    ck_assert_int_eq(store_upload_append(u, one, 0, 2), STORE_EINVAL);
    ck_assert_int_eq(store_upload_append(u, one, STORE_CHUNK_ROWS + 1, 1), STORE_EINVAL);
    ck_assert_int_eq(store_upload_append(u, one, 2, 2), STORE_OK);
    /* a short chunk must be the last; widths must agree */
    ck_assert_int_eq(store_upload_append(u, one, 2, 2), STORE_EINVAL);
    ck_assert_int_eq(store_upload_commit(u, 3, NULL, &id), STORE_EINVAL);
    ck_assert_int_eq(store_upload_commit(u, 2, NULL, &id), STORE_OK);
    ck_assert_int_eq(store_upload_commit(u, 2, NULL, &id), STORE_EINVAL);
    store_upload_close(u);
    ck_assert_int_eq(fx_int("SELECT n_rows FROM datasets WHERE name = 'x'"), 2);
}
END_TEST

START_TEST(other_writers_are_not_blocked)
{
    float *d = seqdata(STORE_CHUNK_ROWS, 2, 0);
    store_upload *u = NULL;
    int64_t ds = fx_dataset("base", 3, 1), id = 0;

    ck_assert_int_eq(store_upload_begin(fx_store, "slow", &u), STORE_OK);
    ck_assert_int_eq(store_upload_append(u, d, STORE_CHUNK_ROWS, 2), STORE_OK);
    /* the upload waits for its client here: the store writes on */
    fx_task("t1", ds);
    fx_dataset("other", 5, 1);
    ck_assert_int_eq(store_upload_append(u, d, 7, 2), STORE_OK);
    ck_assert_int_eq(store_upload_commit(u, 2, NULL, &id), STORE_OK);
    store_upload_close(u);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 3);
    free(d);
}
END_TEST

static long long wal_bytes(void)
{
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s-wal", fx_path);
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

START_TEST(wal_stays_bounded)
{
    const int64_t rows = 40 * STORE_CHUNK_ROWS; /* 40 chunks of 64 KiB * 4 = 10 MiB */
    float *d = seqdata(rows, 16, 0);
    int k;

    for (k = 0; k < 4; k++) {
        store_upload *u = NULL;
        char name[16];
        int64_t id;
        snprintf(name, sizeof name, "w%d", k);
        ck_assert_int_eq(store_upload_begin(fx_store, name, &u), STORE_OK);
        append_all(u, d, rows, 16);
        ck_assert_int_eq(store_upload_commit(u, 16, NULL, &id), STORE_OK);
        store_upload_close(u);
        /* 10 MiB went through the WAL; a checkpoint emptied it */
        ck_assert_msg(wal_bytes() < (4 << 20), "WAL is %lld bytes after upload %d", wal_bytes(),
                      k);
    }
    free(d);
}
END_TEST

START_TEST(usage_counts_tasks_and_active_jobs)
{
    int64_t ds = fx_dataset("d", 4, 1), t1, t2, j, tasks = -1, jobs = -1;

    ck_assert_int_eq(store_dataset_usage(fx_store, ds, &tasks, &jobs), STORE_OK);
    ck_assert_int_eq(tasks, 0);
    ck_assert_int_eq(jobs, 0);
    t1 = fx_task("a", ds);
    t2 = fx_task("b", ds);
    {
        int64_t both[2] = {t1, t2};
        j = fx_job("j", 0, both, 2);
    }
    ck_assert_int_eq(store_dataset_usage(fx_store, ds, &tasks, &jobs), STORE_OK);
    ck_assert_int_eq(tasks, 2);
    ck_assert_int_eq(jobs, 1);
    ck_assert_int_eq(store_job_set_state(fx_store, j, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_dataset_usage(fx_store, ds, &tasks, &jobs), STORE_OK);
    ck_assert_int_eq(jobs, 1);
    ck_assert_int_eq(store_job_set_state(fx_store, j, "succeeded", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_dataset_usage(fx_store, ds, &tasks, &jobs), STORE_OK);
    ck_assert_int_eq(jobs, 0);
    ck_assert_int_eq(store_dataset_usage(fx_store, ds + 100, &tasks, &jobs), STORE_ENOTFOUND);
}
END_TEST

/* The schema a version-1 build wrote (store/migrate.c step 1, verbatim). */
static const char *const V1 =
    "CREATE TABLE datasets(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " n_rows INTEGER NOT NULL CHECK (n_rows >= 0), n_cols INTEGER NOT NULL CHECK (n_cols > 0),"
    " meta TEXT, bytes INTEGER NOT NULL,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE TABLE dataset_chunks(dataset_id INTEGER NOT NULL REFERENCES datasets(id),"
    " seq INTEGER NOT NULL, n_rows INTEGER NOT NULL, data BLOB NOT NULL,"
    " UNIQUE (dataset_id, seq));"
    "CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " dataset_id INTEGER REFERENCES datasets(id), def TEXT,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE INDEX tasks_dataset ON tasks(dataset_id);"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT,"
    " state TEXT NOT NULL CHECK (state IN ('queued','running','succeeded','failed','cancelled')),"
    " spec TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0,"
    " steps INTEGER NOT NULL DEFAULT 0, progress REAL NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
    " started_at TEXT, finished_at TEXT, error_code TEXT, error_message TEXT, results TEXT);"
    "CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);"
    "CREATE TABLE job_tasks(job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " task_id INTEGER NOT NULL REFERENCES tasks(id), PRIMARY KEY (job_id, task_id)) WITHOUT ROWID;"
    "CREATE INDEX job_tasks_task ON job_tasks(task_id);"
    "CREATE TABLE metrics(id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " step INTEGER NOT NULL, task TEXT NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL,"
    " value REAL);"
    "CREATE INDEX metrics_job_step ON metrics(job_id, step);"
    "CREATE TABLE checkpoints(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job_id INTEGER NOT NULL REFERENCES jobs(id), step INTEGER NOT NULL, path TEXT NOT NULL,"
    " bytes INTEGER NOT NULL,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE INDEX checkpoints_job ON checkpoints(job_id, step);"
    "INSERT INTO datasets(name, n_rows, n_cols, bytes) VALUES ('old', 1, 2, 8);"
    "INSERT INTO dataset_chunks VALUES (1, 0, 1, x'0000803f00000040');" /* 1.0f, 2.0f */
    "PRAGMA user_version = 1;";

/* Replaces the fixture's database by a version-1 one made by hand, plus
 * extra SQL. */
static void make_version_1(const char *extra)
{
    char path[4200];
    sqlite3 *db = NULL;

    store_close(fx_store);
    fx_store = NULL;
    unlink(fx_path);
    snprintf(path, sizeof path, "%s-wal", fx_path);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", fx_path);
    unlink(path);
    ck_assert_int_eq(sqlite3_open_v2(fx_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     NULL),
                     SQLITE_OK);
    ck_assert_msg(sqlite3_exec(db, V1, NULL, NULL, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    if (extra)
        ck_assert_msg(sqlite3_exec(db, extra, NULL, NULL, NULL) == SQLITE_OK, "%s",
                      sqlite3_errmsg(db));
    sqlite3_close(db);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), 1);
}

START_TEST(older_database_is_upgraded)
{
    store_dataset d = {0};
    char err[256] = "";
    float v[2] = {0, 0};
    int64_t n = 0;

    make_version_1(NULL);
    ck_assert_msg(store_open(fx_path, &fx_store, err, sizeof err) == STORE_OK, "%s", err);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), store__schema_version());
    ck_assert_int_eq(fx_int("SELECT count(*) FROM pragma_table_info('datasets')"
                            " WHERE name = 'complete'"),
                     1);
    /* the old dataset is still there, complete, its rows intact */
    ck_assert_int_eq(store_dataset_find(fx_store, "old", &d), STORE_OK);
    ck_assert_int_eq(d.rows, 1);
    ck_assert_int_eq(store_dataset_read(fx_store, d.id, 0, 1, v, &n), STORE_OK);
    ck_assert(v[0] == 1.0f && v[1] == 2.0f);
    store_dataset_clear(&d);
    /* and the new kind of upload works on it */
    {
        store_upload *u = NULL;
        int64_t id = 0;
        ck_assert_int_eq(store_upload_begin(fx_store, "new", &u), STORE_OK);
        ck_assert_int_eq(store_upload_append(u, v, 1, 2), STORE_OK);
        ck_assert_int_eq(store_upload_commit(u, 2, NULL, &id), STORE_OK);
        store_upload_close(u);
    }
}
END_TEST

/* Every step runs in one transaction: when a later step fails, the earlier
 * ones are rolled back with it and the file stays at version 1. */
START_TEST(failed_upgrade_changes_nothing)
{
    char err[256] = "";
    store *s = (store *)1;
    /* The last step creates a table (step 3: idempotency); one already there
     * makes it fail after step 2 has altered datasets. */
    const char *clash = store__schema_version() >= 3 ? "CREATE TABLE idempotency(x);"
                                                     : "ALTER TABLE datasets ADD COLUMN complete;";

    make_version_1(clash);
    ck_assert_int_ne(store_open(fx_path, &s, err, sizeof err), STORE_OK);
    ck_assert_ptr_eq(s, (store *)1);
    ck_assert_msg(strstr(err, "migrating the database to version") != NULL, "message: %s", err);
    ck_assert_int_eq(fx_int("PRAGMA user_version"), 1);
    if (store__schema_version() >= 3) /* step 2's column was rolled back */
        ck_assert_int_eq(fx_int("SELECT count(*) FROM pragma_table_info('datasets')"
                                " WHERE name = 'complete'"),
                         0);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 1);
    /* a fresh store for the fixture's teardown */
    make_version_1(NULL);
    ck_assert_int_eq(store_open(fx_path, &fx_store, err, sizeof err), STORE_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_upload");
    TCase *tc = fx_tcase("upload");
    tcase_add_test(tc, invisible_until_commit_then_exact);
    tcase_add_test(tc, close_without_commit_leaves_nothing);
    tcase_add_test(tc, crash_leftovers_are_swept_on_open);
    tcase_add_test(tc, rewrite_changes_chunks_in_place);
    tcase_add_test(tc, bad_calls);
    tcase_add_test(tc, other_writers_are_not_blocked);
    tcase_add_test(tc, wal_stays_bounded);
    tcase_add_test(tc, usage_counts_tasks_and_active_jobs);
    tcase_add_test(tc, older_database_is_upgraded);
    tcase_add_test(tc, failed_upgrade_changes_nothing);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
