/*
 * daemon/svc_dataset.c — datasets: naming, per-column statistics computed
 * once at upload (kept in the dataset's metadata so describing a dataset
 * never rescans its rows), the JSON views, previews and removal.
 *
 * Metadata (opaque to the store) is JSON:
 *   {"columns":[{"name","type":"number"|"category","levels":[..],
 *                "stats":{"min","max","mean","std","missing","filled",
 *                         "counts":[..] (categories)}}],
 *    "dropped": n}
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"

static json_t *column_stats(const svc_table *t, size_t c)
{
    const svc_column *col = &t->cols[c];
    json_t *st = json_object();
    if (col->is_category) {
        size_t *counts = calloc(col->n_levels ? col->n_levels : 1, sizeof *counts);
        json_t *arr = json_array();
        if (!counts || !arr) {
            free(counts);
            json_decref(arr);
            json_decref(st);
            return NULL;
        }
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t li = (size_t)t->data[r * t->n_cols + c];
            if (li < col->n_levels)
                counts[li]++;
        }
        for (size_t l = 0; l < col->n_levels; l++)
            json_array_append_new(arr, json_integer((json_int_t)counts[l]));
        free(counts);
        json_object_set_new(st, "counts", arr);
    } else {
        double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
        for (size_t r = 0; r < t->n_rows; r++) {
            double v = t->data[r * t->n_cols + c];
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            sum += v;
        }
        double mean = t->n_rows ? sum / (double)t->n_rows : 0;
        for (size_t r = 0; r < t->n_rows; r++) {
            double d = t->data[r * t->n_cols + c] - mean;
            sq += d * d;
        }
        json_object_set_new(st, "min", json_real(t->n_rows ? mn : 0));
        json_object_set_new(st, "max", json_real(t->n_rows ? mx : 0));
        json_object_set_new(st, "mean", json_real(mean));
        json_object_set_new(st, "std", json_real(t->n_rows ? sqrt(sq / (double)t->n_rows) : 0));
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
        json_t *st = column_stats(t, c);
        if (!o || !st) {
            json_decref(o);
            json_decref(st);
            goto fail;
        }
        json_object_set_new(o, "name", json_string(col->name));
        json_object_set_new(o, "type", json_string(col->is_category ? "category" : "number"));
        if (col->is_category) {
            json_t *lv = json_array();
            for (size_t l = 0; l < col->n_levels; l++)
                json_array_append_new(lv, json_string(col->levels[l]));
            json_object_set_new(o, "levels", lv);
        }
        json_object_set_new(o, "stats", st);
        json_array_append_new(cols, o);
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

int svc_dataset_create(svc *s, const char *name, const svc_table *t, json_t **out, svc_error *e)
{
    if (!svc__valid_name(name))
        return svc__fail(e, SVC_EINVAL, "name",
                         "dataset name must be 1-64 characters of letters, digits, '_', '-' or "
                         "'.', starting with a letter");
    json_t *meta = build_meta(t);
    if (!meta)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    char *text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!text)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    int64_t id = 0;
    int rc = store_dataset_create(s->db, name, text, (int64_t)t->n_rows, (int)t->n_cols, t->data,
                                  &id);
    free(text);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", name);
    store_dataset d = {0};
    rc = store_dataset_get(s->db, id, &d);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", name);
    *out = svc__dataset_json(&d, 0);
    store_dataset_clear(&d);
    return SVC_OK;
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
            if (levels)
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
    rc = store_dataset_delete(s->db, d.id);
    if (rc == STORE_EINUSE)
        rc = svc__fail(e, SVC_ECONFLICT, NULL,
                       "dataset '%s' is used by a task: delete its tasks first", d.name);
    else if (rc != STORE_OK)
        rc = svc__store_fail(e, rc, "dataset", key);
    store_dataset_clear(&d);
    return rc;
}
