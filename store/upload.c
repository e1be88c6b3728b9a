/*
 * store/upload.c — a dataset written while it is parsed, in bounded memory
 * (see store_upload_* in store.h).
 *
 * Why not one transaction for the whole upload: SQLite has one writer at a
 * time. A write transaction held open while a client sends its body (seconds
 * for a big file, minutes for a slow link) would make every other write —
 * job progress, metrics, checkpoint records, new tasks — wait and then fail
 * on the busy timeout; and a WAL cannot be checkpointed past an open
 * transaction, so it would grow by the size of the upload. Instead:
 *
 *  - begin inserts the dataset row with complete = 0 (reserving the name, so
 *    a second upload of the same name is refused at once) and commits;
 *  - each chunk of STORE_CHUNK_ROWS rows is committed in its own short
 *    BEGIN IMMEDIATE transaction as soon as it is full: the write lock is
 *    never held while waiting for the network, and the WAL is checkpointed
 *    as usual while the upload runs;
 *  - chunks whose values changed once the whole file was seen (a column
 *    that turned into a category, missing=fill) are rewritten in place with
 *    incremental BLOB I/O, one short transaction each;
 *  - commit sets the row count, metadata and complete = 1 in one last
 *    transaction with synchronous=FULL: that fsync of the WAL also makes
 *    every earlier chunk durable, so the 201 sent after it survives kill -9
 *    and power loss. Until then no reader sees the dataset (every query of
 *    store/datasets.c asks for complete = 1).
 *  - close without commit (client gone, bad CSV) deletes the row and its
 *    chunks; if the process dies first, store__migrate sweeps complete = 0
 *    rows on the next open. Either way nothing is left behind.
 *
 * Chunk transactions run with synchronous=NORMAL: in WAL mode that skips
 * the fsync at each commit but keeps the ones around checkpoints, so the
 * final FULL commit is what makes the data durable, once.
 *
 * The upload has its own SQLite connection, so the store's mutex (and its
 * one connection) is never held for the upload's duration; WAL lets the
 * store's readers run meanwhile. A store_upload is used by one thread at a
 * time. After a big upload the WAL is checkpointed with TRUNCATE, so it
 * does not stay at the size of the largest upload.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define STORE__BIG_ENDIAN 1
#else
#define STORE__BIG_ENDIAN 0
#endif

#define UPLOAD_BUSY_TIMEOUT_MS 10000
/* Uploads bigger than this are followed by a WAL checkpoint (TRUNCATE). */
#define UPLOAD_CHECKPOINT_BYTES (8 << 20)

struct store_upload {
    sqlite3 *db;          /* this upload's own connection */
    sqlite3_stmt *ins;    /* INSERT of a chunk, prepared once */
    int64_t id;           /* the dataset row (complete = 0 until commit) */
    int cols;             /* 0 until the first chunk */
    int64_t rows, seq;    /* rows and chunks stored so far */
    int64_t *rowids;      /* rowid of each chunk, for rewrites */
    size_t rowids_cap;
    float *buf;           /* one chunk: rewrites (and byte swaps) */
    int committed;
    int failed;           /* sticky error of append/rewrite */
};

static void swap_f32(void *p, size_t n)
{
    unsigned char *b = p, t;
    size_t i;
    for (i = 0; i < n; i++, b += 4) {
        t = b[0], b[0] = b[3], b[3] = t;
        t = b[1], b[1] = b[2], b[2] = t;
    }
}

/* One constant statement without parameters or result rows. */
static int exec_const(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = store__err(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    return rc;
}

/* Ends a transaction: COMMIT when rc is STORE_OK, else ROLLBACK. */
static int end_tx(sqlite3 *db, int rc)
{
    if (rc == STORE_OK)
        rc = exec_const(db, "COMMIT");
    if (rc != STORE_OK && !sqlite3_get_autocommit(db))
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int open_conn(store *s, sqlite3 **out)
{
    sqlite3 *db = NULL;
    const char *path;
    int rc;

    store__lock(s);
    path = sqlite3_db_filename(s->db, "main");
    rc = path && *path ? sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                         NULL)
                       : SQLITE_CANTOPEN;
    store__unlock(s);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(db, 1);
    rc = sqlite3_busy_timeout(db, UPLOAD_BUSY_TIMEOUT_MS);
    /* journal_mode=WAL is a property of the file, set by store_open. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", NULL, NULL,
                          NULL);
    if (rc != SQLITE_OK)
        goto fail;
    *out = db;
    return STORE_OK;
fail:
    sqlite3_close_v2(db);
    return store__err(rc);
}

static int insert_row(store_upload *u, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = exec_const(u->db, "BEGIN IMMEDIATE");
    if (rc != STORE_OK)
        return rc;
    rc = store__err(sqlite3_prepare_v2(u->db,
                                       "INSERT INTO datasets(name, n_rows, n_cols, meta, bytes,"
                                       " complete) VALUES (?1, 0, 1, NULL, 0, 0)",
                                       -1, &st, NULL));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, name);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        u->id = sqlite3_last_insert_rowid(u->db);
    sqlite3_finalize(st);
    return end_tx(u->db, rc);
}

int store_upload_begin(store *s, const char *name, store_upload **out)
{
    store_upload *u = NULL;
    int64_t dummy;
    int rc = STORE_EINVAL;

    /* All-digit names are refused: store_dataset_find reads them as ids. */
    if (!s || !name || !*name || store__key_is_id(name, &dummy) || !out)
        goto fail;
    rc = STORE_ENOMEM;
    u = calloc(1, sizeof *u);
    if (!u)
        goto fail;
    rc = open_conn(s, &u->db);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_prepare_v2(u->db,
                                           "INSERT INTO dataset_chunks(dataset_id, seq, n_rows,"
                                           " data) VALUES (?1, ?2, ?3, ?4)",
                                           -1, &u->ins, NULL));
    if (rc == STORE_OK)
        rc = insert_row(u, name);
    if (rc != STORE_OK)
        goto fail;
    *out = u;
    u = NULL;
fail:
    store_upload_close(u);
    return rc;
}

static int insert_chunk(store_upload *u, const void *bytes, int64_t n_rows, int nbytes)
{
    sqlite3_stmt *st = u->ins;
    int rc = exec_const(u->db, "BEGIN IMMEDIATE");
    if (rc != STORE_OK)
        return rc;
    rc = store__err(sqlite3_bind_int64(st, 1, u->id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, u->seq));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 3, n_rows));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_blob(st, 4, bytes, nbytes, SQLITE_STATIC));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        u->rowids[u->seq] = sqlite3_last_insert_rowid(u->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return end_tx(u->db, rc);
}

int store_upload_append(store_upload *u, const float *rows, int64_t n_rows, int cols)
{
    const void *bytes = rows;
    size_t nbytes;
    int rc = STORE_EINVAL;

    /* Every chunk but the last is full, all have the same width, and a
     * chunk fits one BLOB. */
    if (!u || u->committed || !rows || n_rows <= 0 || n_rows > STORE_CHUNK_ROWS || cols <= 0 ||
        cols > INT_MAX / STORE_CHUNK_ROWS / (int)sizeof(float) || (u->cols && cols != u->cols) ||
        u->rows != u->seq * STORE_CHUNK_ROWS || u->rows > INT64_MAX - n_rows)
        goto fail;
    rc = u->failed;
    if (rc != STORE_OK)
        goto fail;
    nbytes = (size_t)n_rows * (size_t)cols * sizeof(float);
    if ((size_t)u->seq >= u->rowids_cap) {
        size_t cap = u->rowids_cap ? u->rowids_cap * 2 : 64;
        int64_t *p = realloc(u->rowids, cap * sizeof *p);
        rc = STORE_ENOMEM;
        if (!p)
            goto fail;
        u->rowids = p;
        u->rowids_cap = cap;
    }
    if (!u->buf) {
        u->buf = malloc((size_t)STORE_CHUNK_ROWS * (size_t)cols * sizeof(float));
        rc = STORE_ENOMEM;
        if (!u->buf)
            goto fail;
    }
    if (STORE__BIG_ENDIAN) {
        memcpy(u->buf, rows, nbytes);
        swap_f32(u->buf, nbytes / 4);
        bytes = u->buf;
    }
    rc = insert_chunk(u, bytes, n_rows, (int)nbytes);
    if (rc != STORE_OK)
        goto fail;
    u->cols = cols;
    u->rows += n_rows;
    u->seq++;
    return STORE_OK;
fail:
    if (u && rc != STORE_EINVAL)
        u->failed = rc;
    return rc;
}

static int rewrite_tx(store_upload *u, int64_t seq, int64_t n_rows, store_chunk_fn fn, void *ctx)
{
    sqlite3_blob *blob = NULL;
    const int nbytes = (int)(n_rows * u->cols * (int64_t)sizeof(float));
    int rc = store__err(
        sqlite3_blob_open(u->db, "main", "dataset_chunks", "data", u->rowids[seq], 1, &blob));
    if (rc != STORE_OK)
        goto fail;
    if (sqlite3_blob_bytes(blob) != nbytes) {
        rc = STORE_EIO;
        goto fail;
    }
    rc = store__err(sqlite3_blob_read(blob, u->buf, nbytes, 0));
    if (rc != STORE_OK)
        goto fail;
    if (STORE__BIG_ENDIAN)
        swap_f32(u->buf, (size_t)nbytes / 4);
    rc = fn(ctx, seq, u->buf, n_rows, u->cols) == 0 ? STORE_OK : STORE_EINVAL;
    if (rc != STORE_OK)
        goto fail;
    if (STORE__BIG_ENDIAN)
        swap_f32(u->buf, (size_t)nbytes / 4);
    rc = store__err(sqlite3_blob_write(blob, u->buf, nbytes, 0));
fail:
    sqlite3_blob_close(blob);
    return rc;
}

int store_upload_rewrite(store_upload *u, int64_t seq, store_chunk_fn fn, void *ctx)
{
    int64_t n_rows;
    int rc = STORE_EINVAL;

    if (!u || u->committed || !fn || seq < 0 || seq >= u->seq)
        goto fail;
    rc = u->failed;
    if (rc != STORE_OK)
        goto fail;
    n_rows = u->rows - seq * STORE_CHUNK_ROWS;
    if (n_rows > STORE_CHUNK_ROWS)
        n_rows = STORE_CHUNK_ROWS;
    rc = exec_const(u->db, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        rc = end_tx(u->db, rewrite_tx(u, seq, n_rows, fn, ctx));
    if (rc != STORE_OK && rc != STORE_EINVAL)
        u->failed = rc;
fail:
    return rc;
}

int64_t store_upload_rows(const store_upload *u)
{
    return u ? u->rows : 0;
}

static int commit_tx(store_upload *u, int cols, const char *meta)
{
    sqlite3_stmt *st = NULL;
    int rc = store__err(sqlite3_prepare_v2(u->db,
                                           "UPDATE datasets SET n_rows = ?2, n_cols = ?3,"
                                           " meta = ?4, bytes = ?5, complete = 1"
                                           " WHERE id = ?1 AND complete = 0",
                                           -1, &st, NULL));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, u->id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, u->rows));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int(st, 3, cols));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 4, meta);
    if (rc == STORE_OK)
        rc = store__err(
            sqlite3_bind_int64(st, 5, u->rows * (int64_t)cols * (int64_t)sizeof(float)));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK && sqlite3_changes(u->db) != 1)
        rc = STORE_ENOTFOUND; /* swept by a concurrent open: cannot happen in one daemon */
    sqlite3_finalize(st);
    return rc;
}

int store_upload_commit(store_upload *u, int cols, const char *meta, int64_t *id_out)
{
    int rc = STORE_EINVAL;

    if (!u || u->committed || cols <= 0 || (u->cols && cols != u->cols) || !id_out)
        goto fail;
    rc = u->failed;
    if (rc != STORE_OK)
        goto fail;
    /* FULL: the COMMIT fsyncs the WAL, which holds (or has checkpointed,
     * with fsyncs) every chunk committed before. */
    rc = exec_const(u->db, "PRAGMA synchronous=FULL");
    if (rc == STORE_OK)
        rc = exec_const(u->db, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        rc = end_tx(u->db, commit_tx(u, cols, meta));
    if (rc != STORE_OK) {
        u->failed = rc;
        goto fail;
    }
    u->committed = 1;
    *id_out = u->id;
    /* Best effort: a reader holding an old snapshot makes it return BUSY;
     * the automatic checkpoints catch up later. */
    if (u->rows * (int64_t)cols * (int64_t)sizeof(float) >= UPLOAD_CHECKPOINT_BYTES)
        (void)sqlite3_wal_checkpoint_v2(u->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
fail:
    return rc;
}

/* Deletes what an unfinished upload stored. */
static int discard(store_upload *u)
{
    static const char *const sql[] = {
        "DELETE FROM dataset_chunks WHERE dataset_id = ?1",
        "DELETE FROM datasets WHERE id = ?1 AND complete = 0",
    };
    size_t i;
    int rc = exec_const(u->db, "BEGIN IMMEDIATE");
    for (i = 0; rc == STORE_OK && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        rc = store__err(sqlite3_prepare_v2(u->db, sql[i], -1, &st, NULL));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 1, u->id));
        if (rc == STORE_OK)
            rc = store__step_done(st);
        sqlite3_finalize(st);
    }
    return end_tx(u->db, rc);
}

void store_upload_close(store_upload *u)
{
    if (!u)
        return;
    if (u->db && u->id && !u->committed) {
        /* If this fails the row stays complete = 0 (invisible) and is swept
         * when the database is next opened. */
        sqlite3_finalize(u->ins);
        u->ins = NULL;
        (void)discard(u);
    }
    sqlite3_finalize(u->ins);
    sqlite3_close_v2(u->db);
    free(u->rowids);
    free(u->buf);
    free(u);
}
