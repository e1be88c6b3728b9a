/*
 * store/store_internal.h — names shared by the files of store/ only (store__).
 *
 * The handle is one SQLite connection plus the mutex that serialises every
 * public call on it. Each public function follows the same shape:
 *
 *     lock → BEGIN (IMMEDIATE for writes) → body → store__end → unlock
 *
 * where the body is a static function with a single `goto fail` exit that
 * only finalises its own statements, and store__end commits on success or
 * rolls back on any error, so a failed call changes nothing.
 */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

struct store {
    sqlite3 *db;        /* the one connection; used only while mu is held */
    pthread_mutex_t mu; /* guards db. A leaf lock: the store takes no other
                           lock while holding it, so callers may hold theirs */
    /* version.c: commits counted by a commit hook (set on first use), read
     * without the lock */
    atomic_llong commits;
    atomic_int commits_hooked;
};

/* SQL expression for "now" as RFC 3339 UTC with milliseconds. */
#define STORE__NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

/* The job states, and those of them that are terminal. */
#define STORE__STATES "('queued','running','succeeded','failed','cancelled')"
#define STORE__TERMINAL "('succeeded','failed','cancelled')"

/* ---- db.c: connection, lock, transactions, error mapping --------------- */
void store__lock(store *s);
void store__unlock(store *s);
int store__err(int sqlite_rc); /* SQLite (extended) result code → STORE_E* */
int store__begin_write(store *s); /* BEGIN IMMEDIATE */
int store__begin_read(store *s);  /* BEGIN (deferred): one snapshot for all reads */
/* Ends the transaction begun by store__begin_*: COMMIT when rc is STORE_OK
 * (a failed COMMIT turns into an error), ROLLBACK otherwise. Returns the
 * final code. */
int store__end(store *s, int rc);

/* ---- stmt.c: statements, columns, keys ---------------------------------- */
int store__prepare(store *s, const char *sql, sqlite3_stmt **out);
/* Steps a statement that returns no rows: STORE_OK on SQLITE_DONE. */
int store__step_done(sqlite3_stmt *st);
/* Steps a statement expected to return one row: STORE_OK on SQLITE_ROW,
 * STORE_ENOTFOUND on SQLITE_DONE. */
int store__step_row(sqlite3_stmt *st);
/* Binds text, or NULL when str is NULL. */
int store__bind_text(sqlite3_stmt *st, int idx, const char *str);
/* *out = malloc'd copy of a text column, NULL when the column is NULL. */
int store__col_strdup(sqlite3_stmt *st, int col, char **out);
/* 1 when key is a non-empty string of decimal digits (an id), with the value
 * in *id (0 when it does not fit: no row has it); 0 otherwise. */
int store__key_is_id(const char *key, int64_t *id);
/* Runs `sql` (one bound int64 parameter) and sets *found when it returns a row. */
int store__exists(store *s, const char *sql, int64_t id, int *found);
/* Runs `sql` (one bound int64 parameter, no result rows); *changes (may be
 * NULL) receives the number of rows it changed. */
int store__exec_id(store *s, const char *sql, int64_t id, int *changes);
/* Converts the current row of a list query into *item (an element of the
 * list being built). On failure it leaves nothing allocated in *item. */
typedef int (*store__row_fn)(sqlite3_stmt *st, void *item);
/* Frees what one list item owns (the type's store_*_clear). */
typedef void (*store__clear_fn)(void *item);
/* Steps a prepared and bound list query to its end, converting each row with
 * from_row into a malloc'd array of elem-sized items. On success *out and
 * *n_out receive the array (the caller's) and its length; on any error what
 * was built is freed (store__list_free with clear) and *out, *n_out are
 * untouched. Does not finalise st. */
int store__collect(sqlite3_stmt *st, size_t elem, store__row_fn from_row, store__clear_fn clear,
                   void **out, size_t *n_out);
/* Clears each of the n elem-sized items, then frees the array (NULL: nothing). */
void store__list_free(void *items, size_t n, size_t elem, store__clear_fn clear);

/* ---- jobs.c --------------------------------------------------------------- */
/* STORE_OK when job job_id exists, STORE_ENOTFOUND when not: for the tables
 * that hang off a job (checkpoints, metrics). */
int store__job_exists(store *s, int64_t job_id);

/* ---- migrate.c ------------------------------------------------------------ */
/* Brings the schema to the newest version in one BEGIN IMMEDIATE transaction;
 * STORE_EVERSION when the file is newer than this build. */
int store__migrate(sqlite3 *db, char *errbuf, size_t errlen);
int store__schema_version(void); /* the newest version this build knows */

#endif
