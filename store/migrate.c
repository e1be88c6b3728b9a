/*
 * store/migrate.c — the schema, as an ordered table of migration steps.
 *
 * PRAGMA user_version records how many steps a database has had. Opening
 * runs the missing ones, and sets user_version, inside one BEGIN IMMEDIATE
 * transaction: two daemons starting at once cannot both migrate, and a
 * crash mid-migration leaves the previous version intact. A database whose
 * user_version is beyond the table was written by a newer build; it is
 * refused (STORE_EVERSION) rather than guessed at.
 *
 * Steps are append-only: never edit a released step, add a new one.
 * After the steps, the same transaction removes uploads that a crash cut
 * off (datasets with complete = 0: see step 2 and store/upload.c).
 * (netdata's sqlite_db_migration.c is the model.)
 */
#include <stdio.h>

#include "store/store_internal.h"

static const struct {
    int version;
    const char *sql;
} migrations[] = {
    {1,
     /* Ids are AUTOINCREMENT so an id, once handed out (and used in URLs and
      * checkpoint file names), is never reused after a delete. */
     "CREATE TABLE datasets("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " name TEXT NOT NULL UNIQUE,"
     " n_rows INTEGER NOT NULL CHECK (n_rows >= 0),"
     " n_cols INTEGER NOT NULL CHECK (n_cols > 0),"
     " meta TEXT,"
     " bytes INTEGER NOT NULL,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "));"
     /* Rows as little-endian float32 [n_rows][n_cols], STORE_CHUNK_ROWS rows
      * per chunk (fewer in the last); chunk seq holds rows from
      * seq*STORE_CHUNK_ROWS. A rowid table: big BLOBs belong off the key. */
     "CREATE TABLE dataset_chunks("
     " dataset_id INTEGER NOT NULL REFERENCES datasets(id),"
     " seq INTEGER NOT NULL,"
     " n_rows INTEGER NOT NULL,"
     " data BLOB NOT NULL,"
     " UNIQUE (dataset_id, seq));"
     "CREATE TABLE tasks("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " name TEXT NOT NULL UNIQUE,"
     " dataset_id INTEGER REFERENCES datasets(id)," /* NULL for generator tasks */
     " def TEXT,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "));"
     "CREATE INDEX tasks_dataset ON tasks(dataset_id);"
     "CREATE TABLE jobs("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " name TEXT,"
     " state TEXT NOT NULL CHECK (state IN " STORE__STATES "),"
     " spec TEXT NOT NULL,"
     " priority INTEGER NOT NULL DEFAULT 0,"
     " step INTEGER NOT NULL DEFAULT 0,"
     " steps INTEGER NOT NULL DEFAULT 0,"
     " progress REAL NOT NULL DEFAULT 0,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "),"
     " started_at TEXT,"
     " finished_at TEXT,"
     " error_code TEXT,"
     " error_message TEXT,"
     " results TEXT);"
     "CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);"
     "CREATE TABLE job_tasks("
     " job_id INTEGER NOT NULL REFERENCES jobs(id),"
     " task_id INTEGER NOT NULL REFERENCES tasks(id),"
     " PRIMARY KEY (job_id, task_id)) WITHOUT ROWID;"
     "CREATE INDEX job_tasks_task ON job_tasks(task_id);"
     /* value NULL stands for NaN/Inf (SQLite has no NaN). */
     "CREATE TABLE metrics("
     " id INTEGER PRIMARY KEY,"
     " job_id INTEGER NOT NULL REFERENCES jobs(id),"
     " step INTEGER NOT NULL,"
     " task TEXT NOT NULL,"
     " split TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " value REAL);"
     "CREATE INDEX metrics_job_step ON metrics(job_id, step);"
     "CREATE TABLE checkpoints("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " job_id INTEGER NOT NULL REFERENCES jobs(id),"
     " step INTEGER NOT NULL,"
     " path TEXT NOT NULL,"
     " bytes INTEGER NOT NULL,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "));"
     "CREATE INDEX checkpoints_job ON checkpoints(job_id, step);"},
    {2,
     /* Streaming uploads: a dataset row is inserted when an upload starts
      * (reserving its name) and its chunks are committed as they are parsed,
      * with complete = 0 so no reader sees them; the last commit of the
      * upload sets complete = 1. Rows left at 0 by a crash are swept when
      * the database is next opened (store__migrate, below). */
     "ALTER TABLE datasets ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;"},
    {3,
     /* Idempotency-Key records (store/idempotency.c): status 0 = reserved,
      * else the reply's status, content type and body, replayed to a retry. */
     "CREATE TABLE idempotency("
     " key TEXT PRIMARY KEY,"
     " fingerprint TEXT NOT NULL,"
     " owner TEXT NOT NULL,"
     " status INTEGER NOT NULL DEFAULT 0,"
     " content_type TEXT,"
     " body BLOB,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "));"
     "CREATE INDEX idempotency_created ON idempotency(created_at);"},
    {4,
     /* Imported models (POST /v1/checkpoints, store/imports.c): a
      * safetensors file validated and written by the service layer, that
      * any job may start from. */
     "CREATE TABLE imports("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " name TEXT UNIQUE,"
     " path TEXT NOT NULL,"
     " bytes INTEGER NOT NULL,"
     " meta TEXT,"
     " created_at TEXT NOT NULL DEFAULT (" STORE__NOW "));"},
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

int store__schema_version(void)
{
    return migrations[N_MIGRATIONS - 1].version;
}

static int user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        goto fail;
    *out = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
fail:
    sqlite3_finalize(st);
    return rc;
}

int store__migrate(sqlite3 *db, char *errbuf, size_t errlen)
{
    char sql[64];
    int current = 0, latest = store__schema_version();
    int rc = STORE_OK, src;
    size_t i;

    src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        goto fail_sqlite;
    src = user_version(db, &current);
    if (src != SQLITE_OK)
        goto fail_sqlite;
    if (current > latest || current < 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen,
                     "database schema version %d is newer than this build knows (%d); "
                     "upgrade mtld or use another --data-dir",
                     current, latest);
        rc = STORE_EVERSION;
        goto fail;
    }
    for (i = 0; i < N_MIGRATIONS; i++) {
        if (migrations[i].version <= current)
            continue;
        src = sqlite3_exec(db, migrations[i].sql, NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "migrating the database to version %d: %s",
                         migrations[i].version, sqlite3_errmsg(db));
            rc = store__err(src);
            goto fail;
        }
    }
    /* Uploads a crash cut off (complete = 0, never visible) are removed
     * here, before anyone can read the database. Constant SQL, no input. */
    src = sqlite3_exec(db,
                       "DELETE FROM dataset_chunks WHERE dataset_id IN"
                       " (SELECT id FROM datasets WHERE complete = 0);"
                       "DELETE FROM datasets WHERE complete = 0;",
                       NULL, NULL, NULL);
    if (src != SQLITE_OK)
        goto fail_sqlite;
    if (current < latest) {
        /* PRAGMA takes no parameters; the number is this build's constant. */
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest);
        src = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (src != SQLITE_OK)
            goto fail_sqlite;
    }
    src = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        goto fail_sqlite;
    return STORE_OK;
fail_sqlite:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "migrating the database: %s", sqlite3_errmsg(db));
    rc = store__err(src);
fail:
    if (!sqlite3_get_autocommit(db))
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
