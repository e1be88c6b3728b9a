/*
 * store/datasets.c — datasets: a row of metadata plus the values as float32
 * chunks of STORE_CHUNK_ROWS rows in BLOBs.
 *
 * Chunks keep any one BLOB small enough to write and read without holding
 * the whole dataset twice in memory, and let store_dataset_read touch only
 * the chunks that overlap the requested rows; within a chunk it reads just
 * the needed bytes with incremental BLOB I/O straight into the caller's
 * buffer. The dataset row and all its chunks are written in one
 * transaction: a dataset is either wholly there or not at all.
 *
 * A dataset whose upload is still streaming (store/upload.c) has complete
 * = 0: every query here asks for complete rows only, so it is invisible.
 *
 * On disk the floats are little-endian, so a database file moves between
 * machines; on little-endian hosts (all we ship for) that is a plain copy.
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

#define DATASET_COLS "id, name, n_rows, n_cols, meta, bytes, created_at"

/* Swaps the bytes of n floats in place (big-endian hosts only). */
static void swap_f32(void *p, size_t n)
{
    unsigned char *b = p, t;
    size_t i;
    for (i = 0; i < n; i++, b += 4) {
        t = b[0], b[0] = b[3], b[3] = t;
        t = b[1], b[1] = b[2], b[2] = t;
    }
}

void store_dataset_clear(store_dataset *d)
{
    if (!d)
        return;
    free(d->name);
    free(d->meta);
    free(d->created_at);
    memset(d, 0, sizeof *d);
}

/* store_dataset_clear for store__collect and store__list_free. */
static void dataset_clear(void *item)
{
    store_dataset_clear(item);
}

void store_dataset_list_free(store_dataset *d, size_t n)
{
    store__list_free(d, n, sizeof *d, dataset_clear);
}

/* Fills *out from a row selected as DATASET_COLS. */
static int dataset_from_row(sqlite3_stmt *st, void *item)
{
    store_dataset *out = item;
    store_dataset d = {0};
    int rc;

    d.id = sqlite3_column_int64(st, 0);
    d.rows = sqlite3_column_int64(st, 2);
    d.cols = sqlite3_column_int(st, 3);
    d.bytes = sqlite3_column_int64(st, 5);
    rc = store__col_strdup(st, 1, &d.name);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 4, &d.meta);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 6, &d.created_at);
    if (rc == STORE_OK)
        *out = d;
    else
        store_dataset_clear(&d);
    return rc;
}

/* ---- create ---------------------------------------------------------------- */

static int insert_chunks(store *s, int64_t id, int64_t rows, int cols, const float *data)
{
    sqlite3_stmt *st = NULL;
    unsigned char *buf = NULL;
    const size_t row_bytes = (size_t)cols * sizeof(float);
    int64_t seq, first, n;
    int rc;

    if (STORE__BIG_ENDIAN) {
        buf = malloc(row_bytes * STORE_CHUNK_ROWS);
        if (!buf) {
            rc = STORE_ENOMEM;
            goto fail;
        }
    }
    rc = store__prepare(s,
                        "INSERT INTO dataset_chunks(dataset_id, seq, n_rows, data)"
                        " VALUES (?1, ?2, ?3, ?4)",
                        &st);
    if (rc != STORE_OK)
        goto fail;
    for (seq = 0; seq * STORE_CHUNK_ROWS < rows; seq++) {
        const void *bytes;
        first = seq * STORE_CHUNK_ROWS;
        n = rows - first < STORE_CHUNK_ROWS ? rows - first : STORE_CHUNK_ROWS;
        bytes = data + first * cols;
        if (buf) {
            memcpy(buf, bytes, (size_t)n * row_bytes);
            swap_f32(buf, (size_t)n * (size_t)cols);
            bytes = buf;
        }
        rc = store__err(sqlite3_bind_int64(st, 1, id));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 2, seq));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 3, n));
        if (rc == STORE_OK)
            rc = store__err(
                sqlite3_bind_blob(st, 4, bytes, (int)((size_t)n * row_bytes), SQLITE_STATIC));
        if (rc == STORE_OK)
            rc = store__step_done(st);
        if (rc != STORE_OK)
            goto fail;
        sqlite3_reset(st);
    }
fail:
    sqlite3_finalize(st);
    free(buf);
    return rc;
}

static int dataset_create_tx(store *s, const char *name, const char *meta, int64_t rows, int cols,
                             const float *data, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int rc = store__prepare(s,
                            "INSERT INTO datasets(name, n_rows, n_cols, meta, bytes)"
                            " VALUES (?1, ?2, ?3, ?4, ?5)",
                            &st);
    if (rc != STORE_OK)
        goto fail;
    rc = store__bind_text(st, 1, name);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, rows));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int(st, 3, cols));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 4, meta);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 5, rows * cols * (int64_t)sizeof(float)));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc != STORE_OK)
        goto fail;
    id = sqlite3_last_insert_rowid(s->db);
    rc = insert_chunks(s, id, rows, cols, data);
    if (rc != STORE_OK)
        goto fail;
    *id_out = id;
fail:
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_create(store *s, const char *name, const char *meta, int64_t rows, int cols,
                         const float *data, int64_t *id_out)
{
    int64_t dummy, id = 0;
    int rc = STORE_EINVAL;

    /* All-digit names are refused: store_dataset_find reads them as ids. A
     * chunk must fit one BLOB; the total byte count must fit int64. */
    if (!s || !name || !*name || store__key_is_id(name, &dummy) || rows < 0 || cols <= 0 ||
        (rows > 0 && !data) || (int64_t)cols > INT_MAX / STORE_CHUNK_ROWS / (int)sizeof(float) ||
        rows > INT64_MAX / cols / (int64_t)sizeof(float) || !id_out)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_create_tx(s, name, meta, rows, cols, data, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
fail:
    return rc;
}

/* ---- get / find / list ------------------------------------------------------ */

static int dataset_get_tx(store *s, const char *sql, int64_t id, const char *name,
                          store_dataset *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, sql, &st);
    if (rc != STORE_OK)
        goto fail;
    rc = name ? store__bind_text(st, 1, name) : store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = dataset_from_row(st, out);
fail:
    sqlite3_finalize(st);
    return rc;
}

static int dataset_get(store *s, int64_t id, const char *name, store_dataset *out)
{
    const char *sql = name ? "SELECT " DATASET_COLS " FROM datasets WHERE name = ?1 AND complete"
                           : "SELECT " DATASET_COLS " FROM datasets WHERE id = ?1 AND complete";
    store_dataset d = {0};
    int rc = STORE_EINVAL;
    if (!s || !out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_get_tx(s, sql, id, name, &d));
    store__unlock(s);
    if (rc == STORE_OK)
        *out = d;
    else
        store_dataset_clear(&d);
fail:
    return rc;
}

int store_dataset_get(store *s, int64_t id, store_dataset *out)
{
    return dataset_get(s, id, NULL, out);
}

int store_dataset_find(store *s, const char *key, store_dataset *out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (key)
        rc = store__key_is_id(key, &id) ? dataset_get(s, id, NULL, out)
                                        : dataset_get(s, 0, key, out);
    return rc;
}

static int dataset_list_tx(store *s, store_dataset **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "SELECT " DATASET_COLS " FROM datasets WHERE complete ORDER BY id", &st);
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, dataset_from_row, dataset_clear, (void **)out,
                            n_out);
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_list(store *s, store_dataset **out, size_t *n)
{
    store_dataset *items = NULL;
    size_t count = 0;
    int rc = STORE_EINVAL;
    if (!s || !out || !n)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_list_tx(s, &items, &count));
    store__unlock(s);
    if (rc == STORE_OK) {
        *out = items;
        *n = count;
    } else {
        store_dataset_list_free(items, count);
    }
fail:
    return rc;
}

/* ---- read ------------------------------------------------------------------- */

/* Copies rows [first, end) of chunk (rowid, seq) into out, which receives
 * row `first` at its start. */
static int read_chunk(store *s, sqlite3_int64 rowid, int64_t seq, int64_t n_rows, int cols,
                      int64_t first, int64_t end, float *out)
{
    sqlite3_blob *blob = NULL;
    const int64_t row_bytes = (int64_t)cols * (int64_t)sizeof(float);
    const int64_t base = seq * STORE_CHUNK_ROWS;
    int rc = store__err(
        sqlite3_blob_open(s->db, "main", "dataset_chunks", "data", rowid, 0, &blob));
    if (rc != STORE_OK)
        goto fail;
    if (sqlite3_blob_bytes(blob) != n_rows * row_bytes) {
        rc = STORE_EIO; /* a chunk that does not match its row count: corrupt */
        goto fail;
    }
    rc = store__err(sqlite3_blob_read(blob, out, (int)((end - first) * row_bytes),
                                      (int)((first - base) * row_bytes)));
    if (rc == STORE_OK && STORE__BIG_ENDIAN)
        swap_f32(out, (size_t)((end - first) * cols));
fail:
    sqlite3_blob_close(blob);
    return rc;
}

static int dataset_read_tx(store *s, int64_t id, int64_t offset, int64_t limit, float *out,
                           int64_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int64_t rows, end, seq, want, n_rows, lo, hi;
    int cols, rc = store__prepare(s, "SELECT n_rows, n_cols FROM datasets WHERE id = ?1 AND complete", &st);

    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc != STORE_OK)
        goto fail;
    rows = sqlite3_column_int64(st, 0);
    cols = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;

    end = offset >= rows ? offset : (limit > rows - offset ? rows : offset + limit);
    if (end > offset) {
        rc = store__prepare(s,
                            "SELECT rowid, seq, n_rows FROM dataset_chunks"
                            " WHERE dataset_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
                            &st);
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 1, id));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 2, offset / STORE_CHUNK_ROWS));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 3, (end - 1) / STORE_CHUNK_ROWS));
        if (rc != STORE_OK)
            goto fail;
        for (want = offset / STORE_CHUNK_ROWS; want <= (end - 1) / STORE_CHUNK_ROWS; want++) {
            rc = store__step_row(st);
            if (rc == STORE_ENOTFOUND)
                rc = STORE_EIO; /* a missing chunk */
            if (rc != STORE_OK)
                goto fail;
            /* Chunks are contiguous and full but for the last: anything else
             * is corruption. */
            seq = sqlite3_column_int64(st, 1);
            n_rows = sqlite3_column_int64(st, 2);
            lo = want * STORE_CHUNK_ROWS;
            hi = rows - lo < STORE_CHUNK_ROWS ? rows : lo + STORE_CHUNK_ROWS;
            if (seq != want || n_rows != hi - lo) {
                rc = STORE_EIO;
                goto fail;
            }
            if (lo < offset)
                lo = offset;
            if (hi > end)
                hi = end;
            rc = read_chunk(s, sqlite3_column_int64(st, 0), seq, n_rows, cols, lo, hi,
                            out + (lo - offset) * cols);
            if (rc != STORE_OK)
                goto fail;
        }
    }
    *n_out = end - offset;
fail:
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_read(store *s, int64_t id, int64_t offset, int64_t limit, float *out,
                       int64_t *n_out)
{
    int64_t n = 0;
    int rc = STORE_EINVAL;
    if (!s || offset < 0 || limit < 0 || (limit > 0 && !out) || !n_out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_read_tx(s, id, offset, limit, out, &n));
    store__unlock(s);
    if (rc == STORE_OK)
        *n_out = n;
fail:
    return rc;
}

/* ---- delete ----------------------------------------------------------------- */

static int dataset_delete_tx(store *s, int64_t id)
{
    static const char *const sql[] = {
        "DELETE FROM dataset_chunks WHERE dataset_id = ?1",
        "DELETE FROM datasets WHERE id = ?1",
    };
    int found = 0, rc;
    size_t i;

    rc = store__exists(s, "SELECT 1 FROM datasets WHERE id = ?1 AND complete", id, &found);
    if (rc == STORE_OK && !found)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK)
        rc = store__exists(s, "SELECT 1 FROM tasks WHERE dataset_id = ?1 LIMIT 1", id, &found);
    if (rc == STORE_OK && found)
        rc = STORE_EINUSE;
    for (i = 0; rc == STORE_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = store__exec_id(s, sql[i], id, NULL);
    return rc;
}

int store_dataset_delete(store *s, int64_t id)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_delete_tx(s, id));
    store__unlock(s);
fail:
    return rc;
}

/* ---- usage ------------------------------------------------------------------ */

static int dataset_usage_tx(store *s, int64_t id, int64_t *tasks, int64_t *jobs)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "SELECT (SELECT count(*) FROM tasks WHERE dataset_id = ?1),"
                            " (SELECT count(DISTINCT j.id) FROM jobs j"
                            "  JOIN job_tasks jt ON jt.job_id = j.id"
                            "  JOIN tasks t ON t.id = jt.task_id"
                            "  WHERE t.dataset_id = ?1 AND j.state IN ('queued','running'))"
                            " FROM datasets WHERE id = ?1 AND complete",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK) {
        *tasks = sqlite3_column_int64(st, 0);
        *jobs = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_dataset_usage(store *s, int64_t id, int64_t *tasks, int64_t *active_jobs)
{
    int64_t t = 0, j = 0;
    int rc = STORE_EINVAL;
    if (!s || !tasks || !active_jobs)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, dataset_usage_tx(s, id, &t, &j));
    store__unlock(s);
    if (rc == STORE_OK) {
        *tasks = t;
        *active_jobs = j;
    }
fail:
    return rc;
}
