/*
 * store/stmt.c — small helpers over prepared statements shared by the
 * entity files: preparing, stepping with result mapping, binding optional
 * text, copying text columns out, telling an id key from a name, and
 * collecting the rows of a list query into an array.
 *
 * Every SQL string in the store is a constant; values always travel as
 * bound parameters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

int store__prepare(store *s, const char *sql, sqlite3_stmt **out)
{
    return store__err(sqlite3_prepare_v2(s->db, sql, -1, out, NULL));
}

int store__step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? STORE_OK : store__err(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
}

int store__step_row(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    return rc == SQLITE_DONE ? STORE_ENOTFOUND : store__err(rc);
}

int store__bind_text(sqlite3_stmt *st, int idx, const char *str)
{
    int rc = str ? sqlite3_bind_text(st, idx, str, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
    return store__err(rc);
}

int store__col_strdup(sqlite3_stmt *st, int col, char **out)
{
    const unsigned char *txt;
    char *copy = NULL;
    size_t len;
    int rc = STORE_OK;

    if (sqlite3_column_type(st, col) != SQLITE_NULL) {
        txt = sqlite3_column_text(st, col);
        if (!txt) { /* a NULL pointer for a non-NULL value means no memory */
            rc = STORE_ENOMEM;
            goto fail;
        }
        len = (size_t)sqlite3_column_bytes(st, col);
        copy = malloc(len + 1);
        if (!copy) {
            rc = STORE_ENOMEM;
            goto fail;
        }
        memcpy(copy, txt, len);
        copy[len] = '\0';
    }
    *out = copy;
fail:
    return rc;
}

int store__key_is_id(const char *key, int64_t *id)
{
    int64_t v = 0;
    const char *p;

    if (!key || !*key)
        return 0;
    for (p = key; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    for (p = key; *p; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10) {
            v = 0; /* too large to be an id: matches nothing */
            break;
        }
        v = v * 10 + (*p - '0');
    }
    *id = v;
    return 1;
}

int store__exists(store *s, const char *sql, int64_t id, int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, sql, &st);
    if (rc != STORE_OK)
        goto fail;
    rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc != STORE_OK)
        goto fail;
    rc = store__step_row(st);
    if (rc == STORE_OK || rc == STORE_ENOTFOUND) {
        *found = rc == STORE_OK;
        rc = STORE_OK;
    }
fail:
    sqlite3_finalize(st);
    return rc;
}

int store__exec_id(store *s, const char *sql, int64_t id, int *changes)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, sql, &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK && changes)
        *changes = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* Grows a list array of elem-sized items so that it holds at least n+1. */
static int grow(void **items, size_t *cap, size_t n, size_t elem)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return STORE_OK;
    ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / elem)
        return STORE_ENOMEM;
    p = realloc(*items, ncap * elem);
    if (!p)
        return STORE_ENOMEM;
    *items = p;
    *cap = ncap;
    return STORE_OK;
}

void store__list_free(void *items, size_t n, size_t elem, store__clear_fn clear)
{
    size_t i;
    if (!items)
        return;
    for (i = 0; i < n; i++)
        clear((char *)items + i * elem);
    free(items);
}

int store__collect(sqlite3_stmt *st, size_t elem, store__row_fn from_row, store__clear_fn clear,
                   void **out, size_t *n_out)
{
    void *items = NULL;
    size_t n = 0, cap = 0;
    int rc;

    while ((rc = store__step_row(st)) == STORE_OK) {
        rc = grow(&items, &cap, n, elem);
        if (rc == STORE_OK)
            rc = from_row(st, (char *)items + n * elem);
        if (rc != STORE_OK)
            goto fail;
        n++; /* only converted items are counted: a failed one holds nothing */
    }
    if (rc != STORE_ENOTFOUND)
        goto fail;
    rc = STORE_OK;
    *out = items;
    *n_out = n;
    items = NULL;
    n = 0;
fail:
    store__list_free(items, n, elem, clear); /* frees the array even when n is 0 */
    return rc;
}
