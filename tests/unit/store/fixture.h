/*
 * tests/unit/store/fixture.h — a store on a real file in a fresh temporary
 * directory for every test, plus a second, independent SQLite connection to
 * check what actually reached the database.
 */
#ifndef STORE_TEST_FIXTURE_H
#define STORE_TEST_FIXTURE_H

#include <check.h>
#include <stdint.h>

#include "store/store.h"

extern store *fx_store;     /* open during each test (checked fixture) */
extern char fx_path[4096];  /* the database file */

void fx_setup(void);    /* mkdtemp + store_open */
void fx_teardown(void); /* store_close + remove the directory */
void fx_reopen(void);   /* store_close + store_open on the same file */

/* Runs sql (no parameters) on a separate connection; returns column 0 of the
 * first row as an integer (-1 when there is no row). */
int64_t fx_int(const char *sql);
/* Same, for a text result copied into buf. */
void fx_text(const char *sql, char *buf, size_t len);
/* Runs sql on a separate connection; asserts it succeeded. */
void fx_exec(const char *sql);

/* Asserts ts looks like "2026-12-03T19:31:21.123Z". */
void fx_assert_timestamp(const char *ts);

/* Small builders used across the suites. */
int64_t fx_dataset(const char *name, int64_t rows, int cols);
int64_t fx_task(const char *name, int64_t dataset_id);
int64_t fx_job(const char *name, int priority, const int64_t *tasks, size_t n);

/* Runs a suite with one test case using the fixture; the exit status. */
int fx_run(Suite *s);
TCase *fx_tcase(const char *name);

#endif
