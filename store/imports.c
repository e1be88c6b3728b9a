/*
 * store/imports.c — records of imported models (POST /v1/checkpoints):
 * where the validated safetensors file is, its size, an optional unique
 * name and the service layer's description of it. Like checkpoints, the
 * file is the service layer's: written and fsynced before the record is
 * added.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define IMPORT_COLS "id, name, path, bytes, meta, created_at"

void store_import_clear(store_import *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->path);
    free(m->meta);
    free(m->created_at);
    memset(m, 0, sizeof *m);
}

/* store_import_clear for store__collect and store__list_free. */
static void import_clear(void *item)
{
    store_import_clear(item);
}

void store_import_list_free(store_import *m, size_t n)
{
    store__list_free(m, n, sizeof *m, import_clear);
}

static int import_from_row(sqlite3_stmt *st, void *item)
{
    store_import *out = item;
    store_import m = {0};
    m.id = sqlite3_column_int64(st, 0);
    m.bytes = sqlite3_column_int64(st, 3);
    int rc = store__col_strdup(st, 1, &m.name);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 2, &m.path);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 4, &m.meta);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 5, &m.created_at);
    if (rc == STORE_OK)
        *out = m;
    else
        store_import_clear(&m);
    return rc;
}

static int import_add_tx(store *s, const char *name, const char *path, int64_t bytes,
                         const char *meta, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "INSERT INTO imports(name, path, bytes, meta) VALUES (?1, ?2, ?3, ?4)",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, name);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 2, path);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 3, bytes));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 4, meta);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        *id_out = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_import_add(store *s, const char *name, const char *path, int64_t bytes,
                     const char *meta, int64_t *id_out)
{
    int64_t id = 0, dummy;
    int rc = STORE_EINVAL;
    if (!s || !path || !*path || bytes < 0 || !id_out ||
        (name && (!*name || store__key_is_id(name, &dummy))))
        return rc;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, import_add_tx(s, name, path, bytes, meta, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
    return rc;
}

static int import_get_tx(store *s, int64_t id, const char *name, store_import *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            name ? "SELECT " IMPORT_COLS " FROM imports WHERE name = ?1"
                                 : "SELECT " IMPORT_COLS " FROM imports WHERE id = ?1",
                            &st);
    if (rc == STORE_OK)
        rc = name ? store__bind_text(st, 1, name) : store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = import_from_row(st, out);
    sqlite3_finalize(st);
    return rc;
}

int store_import_find(store *s, const char *key, store_import *out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (!s || !key || !out)
        return rc;
    int by_id = store__key_is_id(key, &id);
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, import_get_tx(s, id, by_id ? NULL : key, out));
    store__unlock(s);
    return rc;
}

static int import_list_tx(store *s, store_import **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "SELECT " IMPORT_COLS " FROM imports ORDER BY id", &st);
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, import_from_row, import_clear, (void **)out,
                            n_out);
    sqlite3_finalize(st);
    return rc;
}

int store_import_list(store *s, store_import **out, size_t *n)
{
    if (!s || !out || !n)
        return STORE_EINVAL;
    *out = NULL;
    *n = 0;
    store__lock(s);
    int rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, import_list_tx(s, out, n));
    store__unlock(s);
    return rc;
}
