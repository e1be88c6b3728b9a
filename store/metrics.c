/*
 * store/metrics.c — the time series a job writes while it trains: one row
 * per (step, task, split, name, value), appended in batches.
 *
 * SQLite has no NaN, so a non-finite value (NaN, ±Inf: a diverged loss) is
 * stored as NULL and read back as NaN — "not a number" is what the client
 * gets to see either way. A job resumed from a checkpoint first truncates
 * the metrics written after that checkpoint, so the series never holds two
 * rows for the same step from different runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* Frees the strings of one metric (a store_metric has no public clear). */
static void metric_clear(void *item)
{
    store_metric *m = item;
    free(m->task);
    free(m->split);
    free(m->name);
}

void store_metric_list_free(store_metric *m, size_t n)
{
    store__list_free(m, n, sizeof *m, metric_clear);
}

/* Fills *item from a row selected as step, task, split, name, value. */
static int metric_from_row(sqlite3_stmt *st, void *item)
{
    store_metric *out = item;
    store_metric m = {0};
    int rc;

    m.step = sqlite3_column_int64(st, 0);
    m.value = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
    rc = store__col_strdup(st, 1, &m.task);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 2, &m.split);
    if (rc == STORE_OK)
        rc = store__col_strdup(st, 3, &m.name);
    if (rc == STORE_OK)
        *out = m;
    else
        metric_clear(&m);
    return rc;
}

static int metric_add_tx(store *s, int64_t job_id, const store_metric *m, size_t n)
{
    sqlite3_stmt *st = NULL;
    size_t i;
    int rc = store__job_exists(s, job_id);
    if (rc == STORE_OK)
        rc = store__prepare(s,
                            "INSERT INTO metrics(job_id, step, task, split, name, value)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            &st);
    for (i = 0; rc == STORE_OK && i < n; i++) {
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 2, m[i].step));
        if (rc == STORE_OK)
            rc = store__bind_text(st, 3, m[i].task ? m[i].task : "");
        if (rc == STORE_OK)
            rc = store__bind_text(st, 4, m[i].split);
        if (rc == STORE_OK)
            rc = store__bind_text(st, 5, m[i].name);
        if (rc == STORE_OK)
            rc = store__err(isfinite(m[i].value) ? sqlite3_bind_double(st, 6, m[i].value)
                                                 : sqlite3_bind_null(st, 6));
        if (rc == STORE_OK)
            rc = store__step_done(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when the job does not exist; STORE_EINVAL when a metric
 * lacks split or name (task NULL is stored as ""). */
int store_metric_add(store *s, int64_t job_id, const store_metric *m, size_t n)
{
    size_t i;
    int rc = STORE_EINVAL;

    if (!s || (n && !m))
        goto fail;
    for (i = 0; i < n; i++)
        if (!m[i].split || !m[i].name)
            goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, metric_add_tx(s, job_id, m, n));
    store__unlock(s);
fail:
    return rc;
}

static int metric_list_tx(store *s, int64_t job_id, int64_t since, store_metric **out,
                          size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__job_exists(s, job_id);

    if (rc == STORE_OK)
        rc = store__prepare(s,
                            "SELECT step, task, split, name, value FROM metrics"
                            " WHERE job_id = ?1 AND step >= ?2 ORDER BY step, id",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, since));
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, metric_from_row, metric_clear, (void **)out,
                            n_out);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when the job does not exist (an existing job with no
 * metrics gives an empty list). */
int store_metric_list(store *s, int64_t job_id, int64_t since, store_metric **out, size_t *n)
{
    store_metric *items = NULL;
    size_t count = 0;
    int rc = STORE_EINVAL;
    if (!s || !out || !n)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, metric_list_tx(s, job_id, since, &items, &count));
    store__unlock(s);
    if (rc == STORE_OK) {
        *out = items;
        *n = count;
    } else {
        store_metric_list_free(items, count);
    }
fail:
    return rc;
}

/* split NULL: every metric after step; else that split's at step and after. */
static int metric_truncate_tx(store *s, int64_t job_id, int64_t step, const char *split)
{
    sqlite3_stmt *st = NULL;
    int rc = store__job_exists(s, job_id);
    if (rc == STORE_OK)
        rc = store__prepare(s,
                            split ? "DELETE FROM metrics WHERE job_id = ?1 AND step >= ?2 AND "
                                    "split = ?3"
                                  : "DELETE FROM metrics WHERE job_id = ?1 AND step > ?2",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, job_id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, step));
    if (rc == STORE_OK && split)
        rc = store__err(sqlite3_bind_text(st, 3, split, -1, SQLITE_TRANSIENT));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    sqlite3_finalize(st);
    return rc;
}

static int metric_truncate(store *s, int64_t job_id, int64_t step, const char *split)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, metric_truncate_tx(s, job_id, step, split));
    store__unlock(s);
fail:
    return rc;
}

/* STORE_ENOTFOUND when the job does not exist. */
int store_metric_truncate(store *s, int64_t job_id, int64_t step)
{
    return metric_truncate(s, job_id, step, NULL);
}

int store_metric_truncate_split(store *s, int64_t job_id, int64_t step, const char *split)
{
    return split ? metric_truncate(s, job_id, step, split) : STORE_EINVAL;
}
