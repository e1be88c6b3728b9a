/*
 * store/idempotency.c — Idempotency-Key records: which creating request a
 * key named (a fingerprint the service layer computes), and once it
 * succeeded, the reply it got, so a retry gets the same reply instead of a
 * second resource.
 *
 * A key is reserved (status 0) before the resource is created and completed
 * with the reply after; the reservation is one INSERT, so of two requests
 * racing with one key exactly one wins (the other finds the row). Records
 * older than a day are removed whenever a key is reserved. `owner` names the
 * daemon process that reserved the key, so a reservation a crash left
 * behind can be told from one still in progress.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

void store_idem_clear(store_idem *r)
{
    if (!r)
        return;
    free(r->fingerprint);
    free(r->owner);
    free(r->content_type);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int idem_get_tx(store *s, const char *key, store_idem *out)
{
    sqlite3_stmt *st = NULL;
    store_idem r = {0};
    int rc = store__prepare(s,
                            "SELECT fingerprint, owner, status, content_type, body"
                            " FROM idempotency WHERE key = ?1",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, key);
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 0, &r.fingerprint);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 1, &r.owner);
    if (rc == STORE_OK) {
        r.status = sqlite3_column_int(st, 2);
        rc = store__col_strdup(st, 3, &r.content_type);
    }
    if (rc == STORE_OK && sqlite3_column_type(st, 4) != SQLITE_NULL) {
        int n = sqlite3_column_bytes(st, 4);
        const void *b = sqlite3_column_blob(st, 4);
        r.body = malloc((size_t)n + 1);
        if (!r.body)
            rc = STORE_ENOMEM;
        else {
            if (n > 0)
                memcpy(r.body, b, (size_t)n);
            r.body[n] = 0;
            r.body_len = (size_t)n;
        }
    }
    sqlite3_finalize(st);
    if (rc == STORE_OK)
        *out = r;
    else
        store_idem_clear(&r);
    return rc;
}

static int idem_begin_tx(store *s, const char *key, const char *fingerprint, const char *owner,
                         store_idem *existing, int *reserved)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "DELETE FROM idempotency WHERE created_at <"
                            " strftime('%Y-%m-%dT%H:%M:%fZ','now','-1 day')",
                            &st);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != STORE_OK)
        return rc;
    rc = idem_get_tx(s, key, existing);
    if (rc == STORE_OK) {
        *reserved = 0;
        return STORE_OK;
    }
    if (rc != STORE_ENOTFOUND)
        return rc;
    rc = store__prepare(s,
                        "INSERT INTO idempotency(key, fingerprint, owner, status)"
                        " VALUES (?1, ?2, ?3, 0)",
                        &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, key);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 2, fingerprint);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 3, owner);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    if (rc == STORE_OK)
        *reserved = 1;
    return rc;
}

int store_idem_begin(store *s, const char *key, const char *fingerprint, const char *owner,
                     store_idem *existing, int *reserved)
{
    int rc = STORE_EINVAL;
    int res = 0;
    store_idem r = {0};
    if (!s || !key || !*key || !fingerprint || !owner || !existing || !reserved)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, idem_begin_tx(s, key, fingerprint, owner, &r, &res));
    store__unlock(s);
    if (rc == STORE_OK) {
        *reserved = res;
        *existing = r;
    } else {
        store_idem_clear(&r);
    }
fail:
    return rc;
}

static int idem_finish_tx(store *s, const char *key, int status, const char *ctype,
                          const char *body, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "UPDATE idempotency SET status = ?2, content_type = ?3, body = ?4"
                            " WHERE key = ?1",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, key);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int(st, 2, status));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 3, ctype);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_blob(st, 4, body ? body : "", (int)len, SQLITE_TRANSIENT));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = STORE_ENOTFOUND;
    sqlite3_finalize(st);
    return rc;
}

int store_idem_finish(store *s, const char *key, int status, const char *content_type,
                      const char *body, size_t len)
{
    int rc = STORE_EINVAL;
    if (!s || !key || status <= 0 || len > (size_t)1 << 30)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, idem_finish_tx(s, key, status, content_type, body, len));
    store__unlock(s);
fail:
    return rc;
}

static int idem_delete_tx(store *s, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "DELETE FROM idempotency WHERE key = ?1 AND status = 0", &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, key);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    return rc;
}

int store_idem_abort(store *s, const char *key)
{
    int rc = STORE_EINVAL;
    if (!s || !key)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, idem_delete_tx(s, key));
    store__unlock(s);
fail:
    return rc;
}
