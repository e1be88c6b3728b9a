/*
 * store/db.c — the store handle: opening the one SQLite connection with the
 * pragmas durability depends on, the mutex that serialises calls on it,
 * transactions, and the mapping from SQLite result codes to STORE_E*.
 *
 * WAL with synchronous=FULL: a COMMIT that returns has been fsynced, so a
 * 201 sent after it survives kill -9 and power loss; readers of other
 * processes (sqlite3 CLI, backups) never block the writer. Checkpointing is
 * SQLite's automatic one (wal_autocheckpoint, 1000 pages), plus the final one
 * when the connection closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define STORE__BUSY_TIMEOUT_MS 5000

const char *store_strerror(int code)
{
    static const char *const msg[] = {
        [0] = "ok",
        [-STORE_ENOTFOUND] = "not found",
        [-STORE_EEXISTS] = "name already exists",
        [-STORE_EINUSE] = "in use",
        [-STORE_EIO] = "database error",
        [-STORE_ENOMEM] = "out of memory",
        [-STORE_EVERSION] = "database is newer than this build",
        [-STORE_EINVAL] = "invalid argument",
    };
    if (code > 0 || -code >= (int)(sizeof msg / sizeof msg[0]) || !msg[-code])
        return "unknown error";
    return msg[-code];
}

void store__lock(store *s)
{
    pthread_mutex_lock(&s->mu);
}

void store__unlock(store *s)
{
    pthread_mutex_unlock(&s->mu);
}

int store__err(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return STORE_OK;
    case SQLITE_NOMEM:
        return STORE_ENOMEM;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return STORE_EEXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return STORE_EINUSE;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return STORE_EINVAL;
    default:
        return (rc & 0xff) == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EIO;
    }
}

/* Runs one constant statement that takes no parameters. */
static int exec_const(store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, sql, &st);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    return rc;
}

/* A ROLLBACK that itself failed (out of memory, I/O error) can leave a
 * transaction open on the connection; end it before starting the next one,
 * so one bad moment does not wedge the handle for good. */
static int begin(store *s, const char *sql)
{
    int rc = STORE_OK;
    if (!sqlite3_get_autocommit(s->db))
        rc = exec_const(s, "ROLLBACK");
    if (rc == STORE_OK)
        rc = exec_const(s, sql);
    return rc;
}

int store__begin_write(store *s)
{
    return begin(s, "BEGIN IMMEDIATE");
}

int store__begin_read(store *s)
{
    return begin(s, "BEGIN");
}

int store__end(store *s, int rc)
{
    if (rc == STORE_OK)
        rc = exec_const(s, "COMMIT");
    /* After a failed COMMIT SQLite may still hold the transaction open. */
    if (rc != STORE_OK && !sqlite3_get_autocommit(s->db))
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void set_err(char *errbuf, size_t errlen, const char *what, const char *detail)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* Runs a pragma that returns one text row and copies the answer to val. */
static int pragma_text(sqlite3 *db, const char *sql, char *val, size_t vallen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *txt;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        goto fail;
    txt = sqlite3_column_text(st, 0);
    snprintf(val, vallen, "%s", txt ? (const char *)txt : "");
    rc = SQLITE_OK;
fail:
    sqlite3_finalize(st);
    return rc;
}

/* Sets the pragmas every connection needs, checking they took effect. */
static int configure(sqlite3 *db, char *errbuf, size_t errlen)
{
    char val[16];
    int rc;

    sqlite3_extended_result_codes(db, 1);
    rc = sqlite3_busy_timeout(db, STORE__BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK)
        rc = pragma_text(db, "PRAGMA journal_mode=WAL", val, sizeof val);
    if (rc == SQLITE_OK && strcmp(val, "wal") != 0) {
        set_err(errbuf, errlen, "cannot enable write-ahead logging; journal mode is", val);
        return STORE_EIO;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = pragma_text(db, "PRAGMA foreign_keys", val, sizeof val);
    if (rc == SQLITE_OK && strcmp(val, "1") != 0) {
        set_err(errbuf, errlen, "this SQLite cannot enforce foreign keys", NULL);
        return STORE_EIO;
    }
    if (rc != SQLITE_OK)
        set_err(errbuf, errlen, "configuring the database", sqlite3_errmsg(db));
    return store__err(rc);
}

int store_open(const char *path, store **out, char *errbuf, size_t errlen)
{
    store *s = NULL;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!path || !*path || !out) {
        set_err(errbuf, errlen, "store_open: no path", NULL);
        rc = STORE_EINVAL;
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        s = NULL;
        set_err(errbuf, errlen, "opening the database", "out of memory");
        rc = STORE_ENOMEM;
        goto fail;
    }
    /* NOMUTEX: s->mu already serialises every use of the connection. */
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        rc = store__err(rc);
        goto fail;
    }
    rc = configure(s->db, errbuf, errlen);
    if (rc != STORE_OK)
        goto fail;
    rc = store__migrate(s->db, errbuf, errlen);
    if (rc != STORE_OK)
        goto fail;
    *out = s;
    s = NULL;
fail:
    store_close(s);
    return rc;
}

void store_close(store *s)
{
    if (!s)
        return;
    sqlite3_close_v2(s->db); /* NULL is a no-op; the last close checkpoints the WAL */
    pthread_mutex_destroy(&s->mu);
    free(s);
}
