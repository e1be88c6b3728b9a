/*
 * daemon/svc_jobdata.c — assembles a job's training data (see svc_jobdata.h).
 *
 * Why the inputs are the union of the tasks' features minus all targets: in
 * hard parameter sharing every task reads the same trunk input, and a target
 * of one task must never leak into the input of another (predicting salary
 * from remote while predicting remote from salary would be cheating).
 *
 * The split is made once per job, stratified on the first classification
 * task so an imbalanced class keeps its share in the test split, and is a
 * function of the seed only: the same spec gives the same split.
 *
 * A dataset's rows are read from SQLite once and shared, read-only, by every
 * job that uses them at the same time: a reference-counted cache of
 * entries in svc.ds_cache. The first job to ask reads the rows (without the
 * cache lock: others asking for the same dataset wait for it on ds_cv, jobs
 * on other datasets do not wait); the last job to let go frees them. What a
 * job derives (its input matrix: chosen columns, one-hot, standardised with
 * its own split's statistics) is its own. Deleting a dataset is refused while
 * a queued or running job uses it, and ids are never reused, so an entry
 * can never be stale.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_jobdata.h"
#include "daemon/svc_log.h"
#include "engine/prep.h"

#define MAX_CLASSES 1000

/* ---- the shared dataset cache ------------------------------------------ */

struct svc__dsentry {
    svc *s;
    int64_t id;
    size_t rows;
    int cols;
    float *data;              /* [rows][cols], read-only once loaded */
    int refs;
    int loading;              /* its first user is reading the rows */
    int failed;               /* ... and could not */
    struct svc__dsentry *next;
};

/* Guards every svc's ds_cache list and each entry's refs, loading, failed.
 * A leaf lock: no store call and no other lock while it is held. */
static pthread_mutex_t ds_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ds_cv = PTHREAD_COND_INITIALIZER; /* an entry finished loading */

static void ds_unlink_free(struct svc__dsentry *en)
{
    struct svc__dsentry **pp = &en->s->ds_cache;
    while (*pp && *pp != en)
        pp = &(*pp)->next;
    if (*pp)
        *pp = en->next;
    free(en->data);
    free(en);
}

static void ds_release(struct svc__dsentry *en)
{
    if (!en)
        return;
    pthread_mutex_lock(&ds_mu);
    if (--en->refs == 0)
        ds_unlink_free(en);
    pthread_mutex_unlock(&ds_mu);
}

size_t svc__dataset_cache_count(svc *s)
{
    size_t n = 0;
    pthread_mutex_lock(&ds_mu);
    for (const struct svc__dsentry *en = s->ds_cache; en; en = en->next)
        n++;
    pthread_mutex_unlock(&ds_mu);
    return n;
}

/* A reference to dataset d's rows, loading them if no job holds them. */
static int ds_acquire(svc *s, const store_dataset *d, struct svc__dsentry **out, svc_error *e)
{
    struct svc__dsentry *en;
    int rc = SVC_OK;

    pthread_mutex_lock(&ds_mu);
    for (en = s->ds_cache; en && en->id != d->id; en = en->next)
        ;
    if (en) {
        en->refs++;
        while (en->loading)
            pthread_cond_wait(&ds_cv, &ds_mu);
        if (en->failed) {
            if (--en->refs == 0)
                ds_unlink_free(en);
            pthread_mutex_unlock(&ds_mu);
            return svc__fail(e, SVC_EIO, NULL, "dataset '%s' could not be read", d->name);
        }
        int refs = en->refs;
        pthread_mutex_unlock(&ds_mu);
        svc_log(SVC_LOG_DEBUG, "dataset_shared", "dataset=%lld users=%d", (long long)d->id, refs);
        *out = en;
        return SVC_OK;
    }
    en = calloc(1, sizeof *en);
    if (!en) {
        pthread_mutex_unlock(&ds_mu);
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    en->s = s;
    en->id = d->id;
    en->rows = (size_t)d->rows;
    en->cols = d->cols;
    en->refs = 1;
    en->loading = 1;
    en->next = s->ds_cache;
    s->ds_cache = en;
    pthread_mutex_unlock(&ds_mu);

    /* Read outside the lock: the entry is ours until loading is cleared. */
    int64_t got = 0;
    en->data = malloc(en->rows * (size_t)en->cols * sizeof *en->data);
    if (!en->data)
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory loading dataset '%s'", d->name);
    else {
        int src = store_dataset_read(s->db, d->id, 0, d->rows, en->data, &got);
        if (src != STORE_OK || got != d->rows)
            rc = svc__store_fail(e, src != STORE_OK ? src : STORE_EIO, "dataset", d->name);
    }

    pthread_mutex_lock(&ds_mu);
    en->loading = 0;
    en->failed = rc != SVC_OK;
    pthread_cond_broadcast(&ds_cv);
    if (rc != SVC_OK && --en->refs == 0)
        ds_unlink_free(en);
    pthread_mutex_unlock(&ds_mu);
    if (rc == SVC_OK) {
        svc_log(SVC_LOG_INFO, "dataset_loaded", "dataset=%lld rows=%lld cols=%d bytes=%lld",
                (long long)d->id, (long long)d->rows, d->cols,
                (long long)d->rows * d->cols * (long long)sizeof(float));
        *out = en;
    }
    return rc;
}

/* ---- assembling a job's data -------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int col_index(json_t *cols, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return (int)i;
    }
    return -1;
}

/* Classification targets from a number column: classes are the distinct
 * values in ascending order; labels are their shortest exact text. */
static int numeric_classes(const float *data, size_t rows, int cols, int c, svc__jd_task *t,
                           svc_error *e)
{
    float *v = malloc(rows * sizeof *v);
    if (!v)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    size_t nv = 0;
    for (size_t r = 0; r < rows; r++)
        if (!isnan(data[r * (size_t)cols + (size_t)c]))
            v[nv++] = data[r * (size_t)cols + (size_t)c];
    qsort(v, nv, sizeof *v, cmp_float);
    size_t k = 0;
    for (size_t r = 0; r < nv; r++)
        if (r == 0 || v[r] != v[k - 1])
            v[k++] = v[r];
    if (k > MAX_CLASSES) {
        free(v);
        return svc__fail(e, SVC_EINVAL, "tasks",
                         "task '%s': target has %zu distinct values, more than %d classes", t->name,
                         k, MAX_CLASSES);
    }
    t->n_classes = (int)k;
    t->labels = calloc(k, sizeof *t->labels);
    if (!t->labels) {
        free(v);
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", (double)v[i]);
        t->labels[i] = strdup(buf);
    }
    for (size_t r = 0; r < rows; r++) {
        float x = data[r * (size_t)cols + (size_t)c];
        float *hit = isnan(x) ? NULL : bsearch(&x, v, k, sizeof *v, cmp_float);
        t->y[r] = hit ? (float)(hit - v) : NAN; /* NaN: missing, masked out */
    }
    free(v);
    return SVC_OK;
}

int svc__jobdata_load(svc *s, const svc__spec *sp, svc__jobdata *jd, svc_error *e)
{
    memset(jd, 0, sizeof *jd);
    store_task st[ENG_MAX_TASKS];
    json_t *defs[ENG_MAX_TASKS] = {0};
    store_dataset d = {0};
    json_t *meta = NULL;
    const float *data = NULL; /* the shared rows (jd->ds) */
    int *strata = NULL;
    int *target_col = NULL, *use_col = NULL;
    int rc = SVC_OK;
    memset(st, 0, sizeof st);

    for (int i = 0; i < sp->n_tasks; i++) {
        int src = store_task_find(s->db, sp->tasks[i].task, &st[i]);
        if (src != STORE_OK) {
            rc = svc__store_fail(e, src, "task", sp->tasks[i].task);
            goto done;
        }
        defs[i] = json_loads(st[i].def, 0, NULL);
        if (!defs[i]) {
            rc = svc__fail(e, SVC_EIO, NULL, "task '%s' has an unreadable definition", st[i].name);
            goto done;
        }
    }
    int src = store_dataset_get(s->db, st[0].dataset_id, &d);
    if (src != STORE_OK) {
        rc = svc__store_fail(e, src, "dataset of task", st[0].name);
        goto done;
    }
    meta = json_loads(d.meta, 0, NULL);
    json_t *cols = json_object_get(meta, "columns");
    size_t rows = (size_t)d.rows;
    int ncols = d.cols;
    if (!cols || (int)json_array_size(cols) != ncols || rows == 0) {
        rc = svc__fail(e, SVC_EIO, NULL, "dataset '%s' has unreadable metadata", d.name);
        goto done;
    }
    target_col = calloc((size_t)ncols, sizeof *target_col);
    use_col = calloc((size_t)ncols, sizeof *use_col);
    if (!target_col || !use_col) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory loading dataset '%s'", d.name);
        goto done;
    }
    if ((rc = ds_acquire(s, &d, &jd->ds, e)) != SVC_OK)
        goto done;
    data = jd->ds->data;

    /* Targets, and which columns feed the input. */
    jd->n_tasks = sp->n_tasks;
    jd->n_rows = rows;
    for (int i = 0; i < sp->n_tasks; i++) {
        int c = col_index(cols, json_string_value(json_object_get(defs[i], "target")));
        if (c < 0) {
            rc = svc__fail(e, SVC_EIO, NULL, "task '%s': target column is gone", st[i].name);
            goto done;
        }
        target_col[c] = 1;
        size_t fi;
        json_t *f;
        json_array_foreach(json_object_get(defs[i], "features"), fi, f)
        {
            int fc = col_index(cols, json_string_value(f));
            if (fc >= 0)
                use_col[fc] = 1;
        }
        svc__jd_task *t = &jd->task[i];
        snprintf(t->name, sizeof t->name, "%s", st[i].name);
        t->lambda = sp->tasks[i].weight;
        t->classification =
            strcmp(json_string_value(json_object_get(defs[i], "kind")), "classification") == 0;
        t->y = malloc(rows * sizeof *t->y);
        if (!t->y) {
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
            goto done;
        }
        json_t *levels = json_object_get(json_array_get(cols, (size_t)c), "levels");
        if (t->classification && levels) {
            t->n_classes = (int)json_array_size(levels);
            t->labels = calloc((size_t)t->n_classes, sizeof *t->labels);
            if (!t->labels) {
                rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
                goto done;
            }
            for (int l = 0; l < t->n_classes; l++)
                t->labels[l] = strdup(json_string_value(json_array_get(levels, (size_t)l)));
            for (size_t r = 0; r < rows; r++)
                t->y[r] = data[r * (size_t)ncols + (size_t)c];
        } else if (t->classification) {
            if ((rc = numeric_classes(data, rows, ncols, c, t, e)) != SVC_OK)
                goto done;
        } else {
            for (size_t r = 0; r < rows; r++)
                t->y[r] = data[r * (size_t)ncols + (size_t)c];
        }
        for (size_t r = 0; r < rows; r++)
            t->n_missing += isnan(t->y[r]);
        if (t->classification && t->n_classes < 2) {
            rc = svc__fail(e, SVC_EINVAL, "tasks", "task '%s': the target has only one class",
                           t->name);
            goto done;
        }
    }

    /* Inputs: used columns minus targets, one-hot for categories. */
    jd->input_names = json_array();
    int n_in = 0;
    for (int c = 0; c < ncols; c++) {
        if (!use_col[c] || target_col[c])
            continue;
        json_t *col = json_array_get(cols, (size_t)c);
        json_t *levels = json_object_get(col, "levels");
        const char *cn = json_string_value(json_object_get(col, "name"));
        if (levels) {
            for (size_t l = 0; l < json_array_size(levels); l++) {
                char buf[300];
                snprintf(buf, sizeof buf, "%s=%s", cn,
                         json_string_value(json_array_get(levels, l)));
                json_array_append_new(jd->input_names, json_string(buf));
            }
            n_in += (int)json_array_size(levels);
        } else {
            json_array_append_new(jd->input_names, json_string(cn));
            n_in++;
        }
    }
    if (n_in == 0) {
        rc = svc__fail(e, SVC_EINVAL, "tasks",
                       "no input columns left once every target of the job is removed");
        goto done;
    }
    jd->n_in = n_in;
    jd->x = calloc(rows * (size_t)n_in, sizeof *jd->x);
    jd->x_mean = calloc((size_t)n_in, sizeof *jd->x_mean);
    jd->x_std = calloc((size_t)n_in, sizeof *jd->x_std);
    jd->train = malloc(rows * sizeof *jd->train);
    jd->test = malloc(rows * sizeof *jd->test);
    strata = malloc(rows * sizeof *strata);
    if (!jd->x || !jd->x_mean || !jd->x_std || !jd->train || !jd->test || !strata) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory building inputs");
        goto done;
    }
    for (size_t r = 0; r < rows; r++) {
        float *dst = jd->x + r * (size_t)n_in;
        const float *srcrow = data + r * (size_t)ncols;
        int k = 0;
        for (int c = 0; c < ncols; c++) {
            if (!use_col[c] || target_col[c])
                continue;
            json_t *levels = json_object_get(json_array_get(cols, (size_t)c), "levels");
            if (levels) {
                size_t nl = json_array_size(levels);
                /* a missing category (NaN) is all zeros before standardising */
                size_t li = isnan(srcrow[c]) ? nl : (size_t)srcrow[c];
                if (li < nl)
                    dst[k + (int)li] = 1.0f;
                k += (int)nl;
            } else {
                dst[k++] = srcrow[c];
            }
        }
    }

    /* Split, stratified on the first classification task. */
    int strat_task = -1;
    for (int i = 0; i < jd->n_tasks && strat_task < 0; i++)
        if (jd->task[i].classification)
            strat_task = i;
    if (strat_task >= 0) /* rows missing that target make a stratum of their own */
        for (size_t r = 0; r < rows; r++)
            strata[r] = isnan(jd->task[strat_task].y[r]) ? jd->task[strat_task].n_classes
                                                           : (int)jd->task[strat_task].y[r];
    eng_rng rng;
    eng_rng_seed(&rng, sp->seed ^ 0x5eed5917ULL);
    if (eng_split(strat_task >= 0 ? strata : NULL,
                  strat_task >= 0 ? jd->task[strat_task].n_classes +
                                        (jd->task[strat_task].n_missing > 0)
                                  : 1,
                  rows,
                  sp->test_fraction,
                  &rng, jd->train, &jd->n_train, jd->test, &jd->n_test) != ENG_OK ||
        jd->n_train == 0 || jd->n_test == 0) {
        rc = svc__fail(e, SVC_EINVAL, "test_fraction",
                       "cannot split %zu rows into train and test with test_fraction %g", rows,
                       sp->test_fraction);
        goto done;
    }

    /* A missing number input (NaN, ?missing=keep) takes its column's mean
     * over the training rows that have it, so it standardises to 0. */
    for (int c = 0; c < n_in; c++) {
        double sum = 0;
        size_t cnt = 0;
        for (size_t k = 0; k < jd->n_train; k++) {
            float v = jd->x[(size_t)jd->train[k] * (size_t)n_in + (size_t)c];
            if (!isnan(v)) {
                sum += v;
                cnt++;
            }
        }
        for (size_t r = 0; r < rows; r++)
            if (isnan(jd->x[r * (size_t)n_in + (size_t)c])) {
                jd->x[r * (size_t)n_in + (size_t)c] = cnt ? (float)(sum / (double)cnt) : 0.0f;
            }
    }

    /* Standardise inputs and regression targets with training statistics. */
    eng_standardize_fit(jd->x, (size_t)n_in, jd->train, jd->n_train, jd->x_mean, jd->x_std);
    eng_standardize_apply(jd->x, rows, (size_t)n_in, jd->x_mean, jd->x_std);
    for (int i = 0; i < jd->n_tasks; i++) {
        svc__jd_task *t = &jd->task[i];
        if (t->classification) {
            size_t *count = calloc((size_t)t->n_classes, sizeof *count);
            if (!count) {
                rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
                goto done;
            }
            size_t labelled = 0;
            for (size_t k = 0; k < jd->n_train; k++)
                if (!isnan(t->y[jd->train[k]])) {
                    count[(int)t->y[jd->train[k]]]++;
                    labelled++;
                }
            if (labelled == 0) {
                free(count);
                rc = svc__fail(e, SVC_EINVAL, "tasks",
                               "task '%s': no training row has its target (all missing)",
                               t->name);
                goto done;
            }
            if (json_object_get(defs[i], "class_weight")) {
                t->class_weight = malloc((size_t)t->n_classes * sizeof *t->class_weight);
                if (!t->class_weight) {
                    free(count);
                    rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
                    goto done;
                }
                /* "balanced" as in scikit-learn: n / (k * n_c). */
                for (int c = 0; c < t->n_classes; c++)
                    t->class_weight[c] =
                        count[c] ? (float)((double)labelled / ((double)t->n_classes * (double)count[c]))
                                 : 0.0f;
            }
            free(count);
        } else {
            double sum = 0, sq = 0;
            size_t labelled = 0;
            for (size_t k = 0; k < jd->n_train; k++)
                if (!isnan(t->y[jd->train[k]])) {
                    sum += t->y[jd->train[k]];
                    labelled++;
                }
            if (labelled == 0) {
                rc = svc__fail(e, SVC_EINVAL, "tasks",
                               "task '%s': no training row has its target (all missing)",
                               t->name);
                goto done;
            }
            t->y_mean = sum / (double)labelled;
            for (size_t k = 0; k < jd->n_train; k++) {
                if (isnan(t->y[jd->train[k]]))
                    continue;
                double dv = t->y[jd->train[k]] - t->y_mean;
                sq += dv * dv;
            }
            t->y_std = sqrt(sq / (double)labelled);
            if (t->y_std < 1e-12)
                t->y_std = 1;
            for (size_t r = 0; r < rows; r++)
                t->y[r] = (float)((t->y[r] - t->y_mean) / t->y_std);
        }
    }
done:
    for (int i = 0; i < sp->n_tasks; i++) {
        store_task_clear(&st[i]);
        json_decref(defs[i]);
    }
    store_dataset_clear(&d);
    json_decref(meta);
    free(strata);
    free(target_col);
    free(use_col);
    if (rc != SVC_OK)
        svc__jobdata_clear(jd);
    return rc;
}

void svc__jobdata_clear(svc__jobdata *jd)
{
    if (!jd)
        return;
    for (int i = 0; i < jd->n_tasks; i++) {
        svc__jd_task *t = &jd->task[i];
        if (t->labels)
            for (int l = 0; l < t->n_classes; l++)
                free(t->labels[l]);
        free(t->labels);
        free(t->y);
        free(t->class_weight);
    }
    free(jd->x);
    free(jd->x_mean);
    free(jd->x_std);
    free(jd->train);
    free(jd->test);
    json_decref(jd->input_names);
    ds_release(jd->ds);
    memset(jd, 0, sizeof *jd);
}
