/*
 * store/checkpoints.c — records of the checkpoint files a job has written:
 * which step, where, how big. The files themselves are the service layer's
 * (written before the record is added, unlinked after it is deleted), so a
 * record never points at a file that was not complete when it was added.
 *
 * "Latest" is the checkpoint with the highest step, the most recently added
 * one among equal steps: the state a resumed job continues from.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define CHECKPOINT_COLS "id, job_id, step, path, bytes, created_at"

void store_checkpoint_clear(store_checkpoint *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->created_at);
    memset(c, 0, sizeof *c);
}

/* store_checkpoint_clear for store__collect and store__list_free. */
static void checkpoint_clear(void *item)
{
    store_checkpoint_clear(item);
}

void store_checkpoint_list_free(store_checkpoint *c, size_t n)
{
    store__list_free(c, n, sizeof *c, checkpoint_clear);
}

static int checkpoint_from_row(sqlite3_stmt *st, void *item)
{
    store_checkpoint *out = item;
    store_checkpoint c = {0};
    int rc;

    c.id = sqlite3_column_int64(st, 0);
    c.job_id = sqlite3_column_int64(st, 1);
    c.step = sqlite3_column_int64(st, 2);
    c.bytes = sqlite3_column_int64(st, 4);
    rc = store__col_strdup(st, 3, &c.path);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 5, &c.created_at);
    if (rc == STORE_OK)
        *out = c;
    else
        store_checkpoint_clear(&c);
    return rc;
}

static int checkpoint_add_tx(store *s, int64_t job_id, int64_t step, const char *path,
                             int64_t bytes, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__job_exists(s, job_id);
    if (rc == STORE_OK)
        rc = store__prepare(s,
                            "INSERT INTO checkpoints(job_id, step, path, bytes)"
                            " VALUES (?1, ?2, ?3, ?4)",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, step));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 3, path);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 4, bytes));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        *id_out = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when the job does not exist. */
int store_checkpoint_add(store *s, int64_t job_id, int64_t step, const char *path, int64_t bytes,
                         int64_t *id_out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (!s || step < 0 || !path || !*path || bytes < 0 || !id_out)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, checkpoint_add_tx(s, job_id, step, path, bytes, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
fail:
    return rc;
}

static int checkpoint_list_tx(store *s, int64_t job_id, store_checkpoint **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__job_exists(s, job_id);

    if (rc == STORE_OK)
        rc = store__prepare(s,
                            "SELECT " CHECKPOINT_COLS " FROM checkpoints"
                            " WHERE job_id = ?1 ORDER BY id",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, checkpoint_from_row, checkpoint_clear,
                            (void **)out, n_out);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when the job does not exist. */
int store_checkpoint_list(store *s, int64_t job_id, store_checkpoint **out, size_t *n)
{
    store_checkpoint *items = NULL;
    size_t count = 0;
    int rc = STORE_EINVAL;
    if (!s || !out || !n)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, checkpoint_list_tx(s, job_id, &items, &count));
    store__unlock(s);
    if (rc == STORE_OK) {
        *out = items;
        *n = count;
    } else {
        store_checkpoint_list_free(items, count);
    }
fail:
    return rc;
}

static int checkpoint_latest_tx(store *s, int64_t job_id, store_checkpoint *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "SELECT " CHECKPOINT_COLS " FROM checkpoints"
                            " WHERE job_id = ?1 ORDER BY step DESC, id DESC LIMIT 1",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = checkpoint_from_row(st, out);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when the job has no checkpoint (or does not exist). */
int store_checkpoint_latest(store *s, int64_t job_id, store_checkpoint *out)
{
    store_checkpoint c = {0};
    int rc = STORE_EINVAL;
    if (!s || !out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, checkpoint_latest_tx(s, job_id, &c));
    store__unlock(s);
    if (rc == STORE_OK)
        *out = c;
    else
        store_checkpoint_clear(&c);
fail:
    return rc;
}

static int checkpoint_delete_tx(store *s, int64_t id)
{
    int changes = 0;
    int rc = store__exec_id(s, "DELETE FROM checkpoints WHERE id = ?1", id, &changes);
    return rc == STORE_OK && changes == 0 ? STORE_ENOTFOUND : rc;
}

/* Deletes the record only; the file is the caller's to unlink. */
int store_checkpoint_delete(store *s, int64_t id)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, checkpoint_delete_tx(s, id));
    store__unlock(s);
fail:
    return rc;
}
