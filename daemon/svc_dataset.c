/*
 * daemon/svc_dataset.c — datasets: streaming uploads (a thin, validating
 * layer over store_upload_*), per-column statistics (computed by the parser
 * as rows stream and kept in the dataset's metadata, so describing a dataset
 * never rescans its rows), the JSON views, previews and removal.
 *
 * Metadata (opaque to the store) is JSON:
 *   {"columns":[{"name","type":"number"|"category","levels":[..],
 *                "missing","filled",
 *                "stats":{"min","max","mean","std" (numbers) | "counts":[..],
 *                         "missing","filled"}}],
 *    "dropped": n}
 *
 * An upload's chunks are written by a writer thread of its own while the
 * HTTP thread parses the next ones (parse and SQLite writes overlap: see
 * bench/RESULTS.md): two chunk buffers, handed back and forth under the
 * upload's mutex, so memory stays at two chunks.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_log.h"

/* JSON numbers must be finite; statistics of float data always are. */
static json_t *real(double v)
{
    return json_real(isfinite(v) ? v : 0.0);
}

static json_t *column_stats(const svc_column *col)
{
    json_t *st = json_object();
    if (!st)
        return NULL;
    if (col->is_category) {
        json_t *arr = json_array();
        for (size_t l = 0; arr && l < col->n_levels; l++)
            json_array_append_new(arr, json_integer(col->counts ? (json_int_t)col->counts[l] : 0));
        json_object_set_new(st, "counts", arr);
    } else {
        json_object_set_new(st, "min", real(col->min));
        json_object_set_new(st, "max", real(col->max));
        json_object_set_new(st, "mean", real(col->mean));
        json_object_set_new(st, "std", real(col->std));
    }
    json_object_set_new(st, "missing", json_integer((json_int_t)col->n_missing));
    json_object_set_new(st, "filled", json_integer((json_int_t)col->n_filled));
    return st;
}

static json_t *build_meta(const svc_table *t)
{
    json_t *meta = json_object(), *cols = json_array();
    if (!meta || !cols)
        goto fail;
    for (size_t c = 0; c < t->n_cols; c++) {
        const svc_column *col = &t->cols[c];
        json_t *o = json_object();
        json_t *st = column_stats(col);
        if (!o || !st) {
            json_decref(o);
            json_decref(st);
            goto fail;
        }
        json_object_set_new(o, "name", json_string(col->name));
        json_object_set_new(o, "type", json_string(col->is_category ? "category" : "number"));
        if (col->is_category) {
            json_t *lv = json_array();
            for (size_t l = 0; lv && l < col->n_levels; l++)
                json_array_append_new(lv, json_string(col->levels[l]));
            json_object_set_new(o, "levels", lv);
        }
        json_object_set_new(o, "missing", json_integer((json_int_t)col->n_missing));
        json_object_set_new(o, "filled", json_integer((json_int_t)col->n_filled));
        json_object_set_new(o, "stats", st);
        if (json_array_append_new(cols, o) != 0)
            goto fail;
    }
    json_object_set_new(meta, "columns", cols);
    json_object_set_new(meta, "dropped", json_integer((json_int_t)t->n_dropped));
    return meta;
fail:
    json_decref(cols);
    json_decref(meta);
    return NULL;
}

json_t *svc__dataset_json(const store_dataset *d, int with_stats)
{
    json_t *o = json_object();
    json_t *meta = json_loads(d->meta ? d->meta : "{}", 0, NULL);
    json_object_set_new(o, "id", json_integer(d->id));
    json_object_set_new(o, "name", json_string(d->name));
    json_object_set_new(o, "rows", json_integer(d->rows));
    json_t *cols = meta ? json_object_get(meta, "columns") : NULL;
    json_t *out_cols = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        json_t *copy = json_deep_copy(c);
        if (!with_stats)
            json_object_del(copy, "stats");
        json_array_append_new(out_cols, copy);
    }
    json_object_set_new(o, "columns", out_cols);
    if (meta && json_object_get(meta, "dropped"))
        json_object_set(o, "dropped_rows", json_object_get(meta, "dropped"));
    json_object_set_new(o, "bytes", json_integer(d->bytes));
    json_object_set_new(o, "created_at", json_string(d->created_at ? d->created_at : ""));
    json_decref(meta);
    return o;
}

/* ---- streaming uploads -------------------------------------------------- */

struct svc_upload {
    svc *s;
    store_upload *su;
    char name[65];
    /* The writer thread and its hand-off. mu guards everything below it;
     * lock order: mu is a leaf (store calls are made without holding it). */
    pthread_t writer;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    float *buf[2];          /* [STORE_CHUNK_ROWS][cols] each */
    size_t buf_rows[2];     /* rows in a buffer waiting to be written; 0 = free */
    size_t cols;
    int next_fill;          /* buffer the parser fills next */
    int stop;               /* no more chunks: the writer exits when idle */
    int rc;                 /* first store error (sticky) */
};

/* The writer: takes full buffers in order and appends them to the store. */
static void *writer_main(void *arg)
{
    svc_upload *u = arg;
    int k = 0;
    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->buf_rows[k] && !u->stop)
            pthread_cond_wait(&u->cv, &u->mu);
        if (!u->buf_rows[k])
            break; /* stopping and idle */
        size_t n = u->buf_rows[k];
        int failed = u->rc != STORE_OK;
        pthread_mutex_unlock(&u->mu);
        int rc = failed ? STORE_OK
                        : store_upload_append(u->su, u->buf[k], (int64_t)n, (int)u->cols);
        pthread_mutex_lock(&u->mu);
        if (rc != STORE_OK && u->rc == STORE_OK)
            u->rc = rc;
        u->buf_rows[k] = 0;
        pthread_cond_broadcast(&u->cv);
        k ^= 1;
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Waits until the writer has written everything handed to it, stops it and
 * joins it. Returns the first store error. */
static int writer_finish(svc_upload *u)
{
    int rc;
    if (!u->started)
        return u->rc;
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->writer, NULL);
    u->started = 0;
    rc = u->rc;
    return rc;
}

static int upload_fail(svc_upload *u, int rc, svc_error *e)
{
    return svc__store_fail(e, rc, "dataset", u->name);
}

static int bad_name(svc_error *e)
{
    return svc__fail(e, SVC_EINVAL, "name",
                     "dataset name must be 1-64 characters of letters, digits, '_', '-' or "
                     "'.', starting with a letter");
}

int svc_dataset_name_check(svc *s, const char *name, svc_error *e)
{
    if (!svc__valid_name(name))
        return bad_name(e);
    store_dataset d = {0};
    int rc = store_dataset_find(s->db, name, &d);
    store_dataset_clear(&d);
    if (rc == STORE_OK)
        return svc__fail(e, SVC_EEXISTS, "name", "a dataset named '%s' already exists", name);
    if (rc != STORE_ENOTFOUND)
        return svc__store_fail(e, rc, "dataset", name);
    return SVC_OK;
}

int svc_upload_begin(svc *s, const char *name, svc_upload **out, svc_error *e)
{
    if (!svc__valid_name(name))
        return bad_name(e);
    svc_upload *u = calloc(1, sizeof *u);
    if (!u)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    u->s = s;
    snprintf(u->name, sizeof u->name, "%s", name);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    int rc = store_upload_begin(s->db, name, &u->su);
    if (rc != STORE_OK) {
        rc = upload_fail(u, rc, e);
        svc_upload_close(u);
        return rc;
    }
    *out = u;
    return SVC_OK;
}

int svc_upload_append(svc_upload *u, const float *rows, size_t n_rows, size_t n_cols,
                      svc_error *e)
{
    if (!u->buf[0]) {
        for (int k = 0; k < 2; k++) {
            u->buf[k] = malloc((size_t)STORE_CHUNK_ROWS * n_cols * sizeof(float));
            if (!u->buf[k])
                return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        }
        u->cols = n_cols;
        if (pthread_create(&u->writer, NULL, writer_main, u) != 0)
            return svc__fail(e, SVC_ENOMEM, NULL, "cannot start the upload's writer thread");
        u->started = 1;
    }
    if (n_cols != u->cols || n_rows == 0 || n_rows > STORE_CHUNK_ROWS)
        return svc__fail(e, SVC_EINVAL, NULL, "a chunk of %zu rows x %zu columns does not fit",
                         n_rows, n_cols);
    pthread_mutex_lock(&u->mu);
    int k = u->next_fill;
    while (u->buf_rows[k] && u->rc == STORE_OK)
        pthread_cond_wait(&u->cv, &u->mu); /* the writer is still on it */
    int rc = u->rc;
    if (rc == STORE_OK) {
        memcpy(u->buf[k], rows, n_rows * n_cols * sizeof *rows);
        u->buf_rows[k] = n_rows;
        u->next_fill = k ^ 1;
        pthread_cond_broadcast(&u->cv);
    }
    pthread_mutex_unlock(&u->mu);
    return rc == STORE_OK ? SVC_OK : upload_fail(u, rc, e);
}

typedef struct {
    svc_chunk_fix_fn fix;
    void *ctx;
} fix_ctx;

static int fix_chunk(void *ctx, int64_t seq, float *rows, int64_t n_rows, int cols)
{
    fix_ctx *f = ctx;
    (void)cols;
    f->fix(f->ctx, (size_t)seq, rows, (size_t)n_rows);
    return 0;
}

int svc_upload_commit(svc_upload *u, const svc_table *t, svc_chunk_stale_fn stale,
                      svc_chunk_fix_fn fix, void *ctx, json_t **out, svc_error *e)
{
    int rc = writer_finish(u);
    if (rc != STORE_OK)
        return upload_fail(u, rc, e);
    if ((int64_t)t->n_rows != store_upload_rows(u->su))
        return svc__fail(e, SVC_EIO, NULL, "dataset '%s': %zu rows described, %lld stored",
                         u->name, t->n_rows, (long long)store_upload_rows(u->su));
    if (stale && fix) {
        fix_ctx f = {fix, ctx};
        for (size_t seq = 0; (int64_t)(seq * STORE_CHUNK_ROWS) < store_upload_rows(u->su);
             seq++) {
            if (!stale(ctx, seq))
                continue;
            rc = store_upload_rewrite(u->su, (int64_t)seq, fix_chunk, &f);
            if (rc != STORE_OK)
                return upload_fail(u, rc, e);
        }
    }
    json_t *meta = build_meta(t);
    char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    if (!text)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    int64_t id = 0;
    rc = store_upload_commit(u->su, (int)t->n_cols, text, &id);
    free(text);
    if (rc != STORE_OK)
        return upload_fail(u, rc, e);
    svc_log(SVC_LOG_INFO, "dataset_stored", "dataset=%lld name=%s rows=%zu cols=%zu dropped=%zu",
            (long long)id, u->name, t->n_rows, t->n_cols, t->n_dropped);
    store_dataset d = {0};
    rc = store_dataset_get(u->s->db, id, &d);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", u->name);
    *out = svc__dataset_json(&d, 0);
    store_dataset_clear(&d);
    return SVC_OK;
}

void svc_upload_close(svc_upload *u)
{
    if (!u)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->mu);
        if (u->rc == STORE_OK)
            u->rc = STORE_EINVAL; /* nothing more is worth writing */
        pthread_mutex_unlock(&u->mu);
        writer_finish(u);
    }
    store_upload_close(u->su); /* discards unless committed */
    free(u->buf[0]);
    free(u->buf[1]);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

int svc_dataset_list(svc *s, json_t **out, svc_error *e)
{
    store_dataset *ds = NULL;
    size_t n = 0;
    int rc = store_dataset_list(s->db, &ds, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", "");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, svc__dataset_json(&ds[i], 0));
    store_dataset_list_free(ds, n);
    *out = json_pack("{s:o,s:I}", "datasets", arr, "total", (json_int_t)n);
    return SVC_OK;
}

int svc_dataset_get(svc *s, const char *key, json_t **out, svc_error *e)
{
    store_dataset d = {0};
    int rc = store_dataset_find(s->db, key, &d);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", key);
    *out = svc__dataset_json(&d, 1);
    store_dataset_clear(&d);
    return SVC_OK;
}

int svc_dataset_rows(svc *s, const char *key, int64_t offset, int64_t limit, json_t **out,
                     svc_error *e)
{
    store_dataset d = {0};
    int rc = store_dataset_find(s->db, key, &d);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", key);
    json_t *meta = json_loads(d.meta ? d.meta : "{}", 0, NULL);
    json_t *cols = json_object_get(meta, "columns");
    float *buf = malloc((size_t)(limit > 0 ? limit : 1) * (size_t)(d.cols > 0 ? d.cols : 1) *
                        sizeof *buf);
    int64_t got = 0;
    if (!buf) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    rc = store_dataset_read(s->db, d.id, offset, limit, buf, &got);
    if (rc != STORE_OK) {
        rc = svc__store_fail(e, rc, "dataset", key);
        goto done;
    }
    json_t *rows = json_array();
    for (int64_t r = 0; r < got; r++) {
        json_t *row = json_array();
        for (int c = 0; c < d.cols; c++) {
            float v = buf[r * d.cols + c];
            json_t *levels = json_object_get(json_array_get(cols, (size_t)c), "levels");
            if (isnan(v)) /* a missing cell kept by ?missing=keep */
                json_array_append_new(row, json_null());
            else if (levels)
                json_array_append(row, json_array_get(levels, (size_t)v));
            else
                json_array_append_new(row, json_real(v));
        }
        json_array_append_new(rows, row);
    }
    *out = json_pack("{s:o,s:I,s:I}", "rows", rows, "offset", (json_int_t)offset, "total",
                     (json_int_t)d.rows);
    rc = SVC_OK;
done:
    free(buf);
    json_decref(meta);
    store_dataset_clear(&d);
    return rc;
}

int svc_dataset_delete(svc *s, const char *key, svc_error *e)
{
    store_dataset d = {0};
    int rc = store_dataset_find(s->db, key, &d);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", key);
    int64_t tasks = 0, jobs = 0;
    rc = store_dataset_usage(s->db, d.id, &tasks, &jobs);
    if (rc == STORE_OK && jobs > 0)
        rc = STORE_EINUSE;
    else if (rc == STORE_OK)
        rc = store_dataset_delete(s->db, d.id);
    if (rc == STORE_EINUSE && jobs > 0)
        rc = svc__fail(e, SVC_ECONFLICT, NULL,
                       "dataset '%s' is used by %lld queued or running job%s: wait for them or "
                       "cancel them first",
                       d.name, (long long)jobs, jobs == 1 ? "" : "s");
    else if (rc == STORE_EINUSE)
        rc = svc__fail(e, SVC_ECONFLICT, NULL,
                       "dataset '%s' is used by %lld task%s: delete them first", d.name,
                       (long long)(tasks > 0 ? tasks : 1), tasks == 1 ? "" : "s");
    else if (rc != STORE_OK)
        rc = svc__store_fail(e, rc, "dataset", key);
    store_dataset_clear(&d);
    return rc;
}
