/*
 * tests/unit/store/fixture.c — see fixture.h.
 */
#include "tests/unit/store/fixture.h"

#include <ctype.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

store *fx_store;
char fx_path[4096];
static char fx_dir[2048];

void fx_setup(void)
{
    char err[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(fx_dir, sizeof fx_dir, "%s/store-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(fx_dir));
    snprintf(fx_path, sizeof fx_path, "%s/mtld.db", fx_dir);
    ck_assert_msg(store_open(fx_path, &fx_store, err, sizeof err) == STORE_OK, "open: %s", err);
}

void fx_teardown(void)
{
    DIR *d;
    struct dirent *e;
    char p[8192];

    store_close(fx_store);
    fx_store = NULL;
    d = opendir(fx_dir);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", fx_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fx_dir);
}

void fx_reopen(void)
{
    char err[256];
    store_close(fx_store);
    fx_store = NULL;
    ck_assert_msg(store_open(fx_path, &fx_store, err, sizeof err) == STORE_OK, "reopen: %s",
                  err);
}

static sqlite3_stmt *fx_query(sqlite3 **db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(fx_path, db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(*db, 5000);
    ck_assert_msg(sqlite3_prepare_v2(*db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(*db));
    return st;
}

int64_t fx_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = fx_query(&db, sql);
    int64_t v = -1;
    int rc = sqlite3_step(st);
    ck_assert(rc == SQLITE_ROW || rc == SQLITE_DONE);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

void fx_text(const char *sql, char *buf, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = fx_query(&db, sql);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

void fx_exec(const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(fx_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    sqlite3_close(db);
}

void fx_assert_timestamp(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    size_t i;
    ck_assert_ptr_nonnull(ts);
    ck_assert_uint_eq(strlen(ts), sizeof shape - 1);
    for (i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            ck_assert_msg(isdigit((unsigned char)ts[i]), "bad timestamp %s", ts);
        else
            ck_assert_msg(ts[i] == shape[i], "bad timestamp %s", ts);
    }
}

int64_t fx_dataset(const char *name, int64_t rows, int cols)
{
    float *data = calloc((size_t)(rows * cols + 1), sizeof *data);
    int64_t id = 0, i;
    ck_assert_ptr_nonnull(data);
    for (i = 0; i < rows * cols; i++)
        data[i] = (float)i;
    ck_assert_int_eq(store_dataset_create(fx_store, name, "{}", rows, cols, data, &id), STORE_OK);
    free(data);
    return id;
}

int64_t fx_task(const char *name, int64_t dataset_id)
{
    int64_t id = 0;
    ck_assert_int_eq(store_task_create(fx_store, name, dataset_id, "{\"kind\":\"x\"}", &id),
                     STORE_OK);
    return id;
}

int64_t fx_job(const char *name, int priority, const int64_t *tasks, size_t n)
{
    int64_t id = 0;
    ck_assert_int_eq(store_job_create(fx_store, name, "{}", priority, 100, tasks, n, &id),
                     STORE_OK);
    return id;
}

TCase *fx_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 60);
    return tc;
}

int fx_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
