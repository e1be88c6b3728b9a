/*
 * store/tasks.c — task definitions: a unique name, the dataset it draws
 * from (none for generator tasks, stored as NULL and reported as 0) and an
 * opaque definition the service layer writes and reads.
 *
 * A task may not be deleted while a queued or running job lists it in
 * job_tasks (written by store_job_create); links from finished jobs are
 * dropped with the task, since those jobs no longer need it.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define TASK_COLS "id, name, dataset_id, def, created_at"

void store_task_clear(store_task *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->def);
    free(t->created_at);
    memset(t, 0, sizeof *t);
}

/* store_task_clear for store__collect and store__list_free. */
static void task_clear(void *item)
{
    store_task_clear(item);
}

void store_task_list_free(store_task *t, size_t n)
{
    store__list_free(t, n, sizeof *t, task_clear);
}

static int task_from_row(sqlite3_stmt *st, void *item)
{
    store_task *out = item;
    store_task t = {0};
    int rc;

    t.id = sqlite3_column_int64(st, 0);
    t.dataset_id = sqlite3_column_int64(st, 2); /* NULL reads as 0 */
    rc = store__col_strdup(st, 1, &t.name);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 3, &t.def);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 4, &t.created_at);
    if (rc == STORE_OK)
        *out = t;
    else
        store_task_clear(&t);
    return rc;
}

static int task_create_tx(store *s, const char *name, int64_t dataset_id, const char *def,
                          int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int found = 1;
    int rc = STORE_OK;

    if (dataset_id != 0)
        rc = store__exists(s, "SELECT 1 FROM datasets WHERE id = ?1", dataset_id, &found);
    if (rc == STORE_OK && !found)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK)
        rc = store__prepare(s, "INSERT INTO tasks(name, dataset_id, def) VALUES (?1, ?2, ?3)",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, name);
    if (rc == STORE_OK)
        rc = store__err(dataset_id ? sqlite3_bind_int64(st, 2, dataset_id)
                                   : sqlite3_bind_null(st, 2));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 3, def);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        *id_out = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when dataset_id (non-zero) names no dataset. */
int store_task_create(store *s, const char *name, int64_t dataset_id, const char *def,
                      int64_t *id_out)
{
    int64_t dummy, id = 0;
    int rc = STORE_EINVAL;

    /* All-digit names are refused: store_task_find reads them as ids. */
    if (!s || !name || !*name || store__key_is_id(name, &dummy) || dataset_id < 0 || !id_out)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, task_create_tx(s, name, dataset_id, def, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
fail:
    return rc;
}

static int task_get_tx(store *s, int64_t id, const char *name, store_task *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            name ? "SELECT " TASK_COLS " FROM tasks WHERE name = ?1"
                                 : "SELECT " TASK_COLS " FROM tasks WHERE id = ?1",
                            &st);
    if (rc == STORE_OK)
        rc = name ? store__bind_text(st, 1, name) : store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = task_from_row(st, out);
    sqlite3_finalize(st);
    return rc;
}

static int task_get(store *s, int64_t id, const char *name, store_task *out)
{
    store_task t = {0};
    int rc = STORE_EINVAL;
    if (!s || !out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, task_get_tx(s, id, name, &t));
    store__unlock(s);
    if (rc == STORE_OK)
        *out = t;
    else
        store_task_clear(&t);
fail:
    return rc;
}

int store_task_get(store *s, int64_t id, store_task *out)
{
    return task_get(s, id, NULL, out);
}

int store_task_find(store *s, const char *key, store_task *out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (key)
        rc = store__key_is_id(key, &id) ? task_get(s, id, NULL, out) : task_get(s, 0, key, out);
    return rc;
}

static int task_list_tx(store *s, store_task **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "SELECT " TASK_COLS " FROM tasks ORDER BY id", &st);
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, task_from_row, task_clear, (void **)out,
                            n_out);
    sqlite3_finalize(st);
    return rc;
}

int store_task_list(store *s, store_task **out, size_t *n)
{
    store_task *items = NULL;
    size_t count = 0;
    int rc = STORE_EINVAL;
    if (!s || !out || !n)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, task_list_tx(s, &items, &count));
    store__unlock(s);
    if (rc == STORE_OK) {
        *out = items;
        *n = count;
    } else {
        store_task_list_free(items, count);
    }
fail:
    return rc;
}

static int task_delete_tx(store *s, int64_t id)
{
    static const char *const sql[] = {
        "DELETE FROM job_tasks WHERE task_id = ?1", /* only finished jobs' links remain */
        "DELETE FROM tasks WHERE id = ?1",
    };
    int found = 0, rc;
    size_t i;

    rc = store__exists(s, "SELECT 1 FROM tasks WHERE id = ?1", id, &found);
    if (rc == STORE_OK && !found)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK)
        rc = store__exists(s,
                           "SELECT 1 FROM job_tasks jt JOIN jobs j ON j.id = jt.job_id"
                           " WHERE jt.task_id = ?1 AND j.state IN ('queued','running') LIMIT 1",
                           id, &found);
    if (rc == STORE_OK && found)
        rc = STORE_EINUSE;
    for (i = 0; rc == STORE_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = store__exec_id(s, sql[i], id, NULL);
    return rc;
}

int store_task_delete(store *s, int64_t id)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, task_delete_tx(s, id));
    store__unlock(s);
fail:
    return rc;
}
