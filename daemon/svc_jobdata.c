/*
 * daemon/svc_jobdata.c — assembles a job's training data (see svc_jobdata.h).
 *
 * Why the inputs are the union of the tasks' features minus all targets: in
 * hard parameter sharing every task reads the same trunk input, and a target
 * of one task must never leak into the input of another (predicting salary
 * from remote while predicting remote from salary would be cheating).
 *
 * The split (train, validation, test) is made once per job, stratified on
 * the first classification task so an imbalanced class keeps its share in
 * each held-out split, and is a function of the spec only (seed and
 * fractions): the same spec gives the same split, so a resumed job
 * recomputes exactly the rows it had.
 *
 * Tasks from several datasets: each dataset's rows are stacked one after
 * the other, the inputs are the union of the columns by name (a column a
 * dataset lacks is missing there, so it takes the training mean and
 * standardises to 0), a task's target is missing on the other datasets'
 * rows (masked out of its loss and metrics), and each dataset is split on
 * its own. One dataset builds exactly what it always did.
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
#include "daemon/svc_meta.h"
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

/* One dataset of a job (a group of tasks): its rows and where they go. */
typedef struct {
    store_dataset d;
    json_t *meta, *cols;    /* cols borrowed from meta */
    const float *data;
    int *slot;              /* [ncols]: -1 not an input; a number's input index; a
                               category's offset into lv */
    int *lv;                /* [all levels]: the input index of each level */
} jd_group;

/* Index of name in arr (an array of strings), -1 if absent. */
static int name_index(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0)
            return (int)i;
    }
    return -1;
}

/* Adds input name to arr unless there. A category's levels ("col=level",
 * cn the length of "col") stay consecutive, as predict reads them back as
 * one column: a level another dataset adds goes after the column's last. */
static void union_add(json_t *arr, const char *name, size_t cn)
{
    if (name_index(arr, name) >= 0)
        return;
    size_t i, at = 0;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *o = json_string_value(v);
        if (cn && strncmp(o, name, cn + 1) == 0)
            at = i + 1;
    }
    if (at)
        json_array_insert_new(arr, at, json_string(name));
    else
        json_array_append_new(arr, json_string(name));
}

/* Is name the target of one of the job's tasks? */
static int is_target(json_t *const *defs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(json_string_value(json_object_get(defs[i], "target")), name) == 0)
            return 1;
    return 0;
}

int svc__jobdata_load(svc *s, const svc__spec *sp, svc__jobdata *jd, svc_error *e)
{
    memset(jd, 0, sizeof *jd);
    store_task st[ENG_MAX_TASKS];
    json_t *defs[ENG_MAX_TASKS] = {0};
    jd_group g[ENG_MAX_TASKS];
    int ng = 0;
    int *strata = NULL, *vstrata = NULL;
    uint32_t *vkeep = NULL, *vpos = NULL; /* the validation carve's scratch */
    int rc = SVC_OK;
    memset(st, 0, sizeof st);
    memset(g, 0, sizeof g);

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
    /* The job's datasets in the order their first task is listed. */
    for (int i = 0; i < sp->n_tasks; i++) {
        int k = 0;
        while (k < ng && g[k].d.id != st[i].dataset_id)
            k++;
        jd->task[i].group = k;
        if (k < ng)
            continue;
        jd->n_groups = ++ng; /* jd->ds[k] is released by clear from now on */
        int src = store_dataset_get(s->db, st[i].dataset_id, &g[k].d);
        if (src != STORE_OK) {
            rc = svc__store_fail(e, src, "dataset of task", st[i].name);
            goto done;
        }
        g[k].meta = json_loads(g[k].d.meta, 0, NULL);
        g[k].cols = json_object_get(g[k].meta, "columns");
        if (!g[k].cols || (int)json_array_size(g[k].cols) != g[k].d.cols || g[k].d.rows == 0) {
            rc = svc__fail(e, SVC_EIO, NULL, "dataset '%s' has unreadable metadata", g[k].d.name);
            goto done;
        }
        size_t nlv = 0;
        for (int c = 0; c < g[k].d.cols; c++)
            nlv += json_array_size(json_object_get(json_array_get(g[k].cols, (size_t)c), "levels"));
        g[k].slot = malloc((size_t)g[k].d.cols * sizeof *g[k].slot);
        g[k].lv = malloc((nlv + 1) * sizeof *g[k].lv);
        if (!g[k].slot || !g[k].lv) {
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory loading dataset '%s'", g[k].d.name);
            goto done;
        }
        if ((rc = ds_acquire(s, &g[k].d, &jd->ds[k], e)) != SVC_OK)
            goto done;
        g[k].data = jd->ds[k]->data;
        jd->g_row0[k] = jd->n_rows;
        jd->g_rows[k] = (size_t)g[k].d.rows;
        jd->n_rows += (size_t)g[k].d.rows;
    }
    jd->n_groups = ng;
    size_t rows = jd->n_rows;

    /* Targets: a task's rows are its dataset's; elsewhere its target is
     * missing (NaN), so it is masked out of that task's loss and metrics. */
    jd->n_tasks = sp->n_tasks;
    for (int i = 0; i < sp->n_tasks; i++) {
        svc__jd_task *t = &jd->task[i];
        const jd_group *gr = &g[t->group];
        const int ncols = gr->d.cols;
        const size_t r0 = jd->g_row0[t->group], gn = jd->g_rows[t->group];
        int c = col_index(gr->cols, json_string_value(json_object_get(defs[i], "target")));
        if (c < 0) {
            rc = svc__fail(e, SVC_EIO, NULL, "task '%s': target column is gone", st[i].name);
            goto done;
        }
        snprintf(t->name, sizeof t->name, "%s", st[i].name);
        t->lambda = sp->tasks[i].weight;
        t->classification =
            strcmp(json_string_value(json_object_get(defs[i], "kind")), "classification") == 0;
        t->y = malloc(rows * sizeof *t->y);
        if (!t->y) {
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
            goto done;
        }
        for (size_t r = 0; r < rows; r++)
            t->y[r] = NAN;
        float *ty = t->y + r0;
        json_t *levels = json_object_get(json_array_get(gr->cols, (size_t)c), "levels");
        if (t->classification && levels) {
            t->n_classes = (int)json_array_size(levels);
            t->labels = calloc((size_t)t->n_classes, sizeof *t->labels);
            if (!t->labels) {
                rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
                goto done;
            }
            for (int l = 0; l < t->n_classes; l++)
                t->labels[l] = strdup(json_string_value(json_array_get(levels, (size_t)l)));
            for (size_t r = 0; r < gn; r++)
                ty[r] = gr->data[r * (size_t)ncols + (size_t)c];
        } else if (t->classification) {
            float *y_all = t->y;
            t->y = ty; /* numeric_classes fills [0, gn) */
            rc = numeric_classes(gr->data, gn, ncols, c, t, e);
            t->y = y_all;
            if (rc != SVC_OK)
                goto done;
        } else {
            for (size_t r = 0; r < gn; r++)
                ty[r] = gr->data[r * (size_t)ncols + (size_t)c];
        }
        for (size_t r = 0; r < rows; r++)
            t->n_missing += isnan(t->y[r]);
        if (t->classification && t->n_classes < 2) {
            rc = svc__fail(e, SVC_EINVAL, "tasks", "task '%s': the target has only one class",
                           t->name);
            goto done;
        }
    }

    /* Inputs: the union by name over the datasets of every column a task
     * uses, minus every target of the job, one-hot for categories. */
    jd->input_names = json_array();
    if (!jd->input_names) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) { /* 0: the names; 1: where each column goes */
        for (int k = 0; k < ng; k++) {
            int off = 0;
            for (int c = 0; c < g[k].d.cols; c++) {
                json_t *col = json_array_get(g[k].cols, (size_t)c);
                const char *cn = json_string_value(json_object_get(col, "name"));
                int used = 0;
                g[k].slot[c] = -1;
                for (int i = 0; i < sp->n_tasks && !used; i++) {
                    if (jd->task[i].group != k)
                        continue;
                    size_t fi;
                    json_t *f;
                    json_array_foreach(json_object_get(defs[i], "features"), fi, f)
                    {
                        if (strcmp(json_string_value(f), cn) == 0)
                            used = 1;
                    }
                }
                if (!used || is_target(defs, sp->n_tasks, cn))
                    continue;
                json_t *levels = json_object_get(col, "levels");
                if (levels) {
                    g[k].slot[c] = off;
                    for (size_t l = 0; l < json_array_size(levels); l++) {
                        char buf[300];
                        snprintf(buf, sizeof buf, "%s=%s", cn,
                                 json_string_value(json_array_get(levels, l)));
                        if (pass == 0)
                            union_add(jd->input_names, buf, strlen(cn));
                        else
                            g[k].lv[off] = name_index(jd->input_names, buf);
                        off++;
                    }
                } else if (pass == 0) {
                    union_add(jd->input_names, cn, 0);
                } else {
                    g[k].slot[c] = name_index(jd->input_names, cn);
                }
            }
        }
    }
    int n_in = (int)json_array_size(jd->input_names);
    if (n_in == 0) {
        rc = svc__fail(e, SVC_EINVAL, "tasks",
                       "no input columns left once every target of the job is removed");
        goto done;
    }
    jd->n_in = n_in;
    jd->x = malloc(rows * (size_t)n_in * sizeof *jd->x);
    jd->x_mean = calloc((size_t)n_in, sizeof *jd->x_mean);
    jd->x_std = calloc((size_t)n_in, sizeof *jd->x_std);
    jd->train = malloc(rows * sizeof *jd->train);
    jd->test = malloc(rows * sizeof *jd->test);
    jd->validation = malloc(rows * sizeof *jd->validation);
    strata = malloc(rows * sizeof *strata);
    vstrata = malloc(rows * sizeof *vstrata);
    vkeep = malloc(rows * sizeof *vkeep);
    vpos = malloc(rows * sizeof *vpos);
    if (!jd->x || !jd->x_mean || !jd->x_std || !jd->train || !jd->test || !jd->validation ||
        !strata || !vstrata || !vkeep || !vpos) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory building inputs");
        goto done;
    }
    /* A column a dataset lacks is missing (NaN): imputed below. */
    for (size_t i = 0; i < rows * (size_t)n_in; i++)
        jd->x[i] = NAN;
    for (int k = 0; k < ng; k++) {
        const int ncols = g[k].d.cols;
        for (size_t r = 0; r < jd->g_rows[k]; r++) {
            float *dst = jd->x + (jd->g_row0[k] + r) * (size_t)n_in;
            const float *srcrow = g[k].data + r * (size_t)ncols;
            for (int c = 0; c < ncols; c++) {
                if (g[k].slot[c] < 0)
                    continue;
                json_t *levels = json_object_get(json_array_get(g[k].cols, (size_t)c), "levels");
                if (levels) {
                    /* one-hot; a missing category (NaN) is all zeros before standardising */
                    size_t nl = json_array_size(levels);
                    size_t li = isnan(srcrow[c]) ? nl : (size_t)srcrow[c];
                    for (size_t l = 0; l < nl; l++)
                        dst[g[k].lv[g[k].slot[c] + (int)l]] = l == li ? 1.0f : 0.0f;
                } else {
                    dst[g[k].slot[c]] = srcrow[c];
                }
            }
        }
    }

    /* Split each dataset, stratified on its first classification task: the
     * test rows first (from their own generator, so they do not depend on
     * validation_fraction), then the validation rows out of the training
     * part, stratified the same way, from a second generator. Meta-learning
     * draws its own episodes: no validation rows there. */
    eng_rng rng, vrng;
    eng_rng_seed(&rng, sp->seed ^ 0x5eed5917ULL);
    eng_rng_seed(&vrng, sp->seed ^ 0x7a11da7e5eedULL);
    const double vf = svc__is_meta(sp->algorithm) ? 0 : sp->validation_fraction;
    for (int k = 0; k < ng; k++) {
        const size_t r0 = jd->g_row0[k], gn = jd->g_rows[k];
        int strat_task = -1;
        for (int i = 0; i < jd->n_tasks && strat_task < 0; i++)
            if (jd->task[i].group == k && jd->task[i].classification)
                strat_task = i;
        int n_strata = 1;
        if (strat_task >= 0) { /* rows missing that target make a stratum of their own */
            const svc__jd_task *t = &jd->task[strat_task];
            size_t miss = 0;
            for (size_t r = 0; r < gn; r++) {
                strata[r] = isnan(t->y[r0 + r]) ? t->n_classes : (int)t->y[r0 + r];
                miss += isnan(t->y[r0 + r]);
            }
            n_strata = t->n_classes + (miss > 0);
        }
        size_t ntr = 0, nte = 0, nva = 0;
        uint32_t *tr = jd->train + jd->n_train, *te = jd->test + jd->n_test;
        uint32_t *va = jd->validation + jd->n_validation;
        if (eng_split(strat_task >= 0 ? strata : NULL, n_strata, gn, sp->test_fraction, &rng, tr,
                      &ntr, te, &nte) != ENG_OK ||
            ntr == 0 || nte == 0) {
            rc = svc__fail(e, SVC_EINVAL, "test_fraction",
                           "cannot split the %zu rows of dataset '%s' into train and test with "
                           "test_fraction %g",
                           gn, g[k].d.name, sp->test_fraction);
            goto done;
        }
        if (vf > 0) {
            /* positions into tr[]; validation_fraction is of all the rows */
            size_t nkeep = 0;
            for (size_t i = 0; i < ntr; i++)
                vstrata[i] = strat_task >= 0 ? strata[tr[i]] : 0;
            if (eng_split(strat_task >= 0 ? vstrata : NULL, n_strata, ntr,
                          vf / (1 - sp->test_fraction), &vrng, vkeep, &nkeep, vpos,
                          &nva) != ENG_OK ||
                nkeep == 0 || nva == 0) {
                rc = svc__fail(e, SVC_EINVAL, "validation_fraction",
                               "cannot split the %zu training rows of dataset '%s' into train "
                               "and validation with validation_fraction %g",
                               ntr, g[k].d.name, vf);
                goto done;
            }
            for (size_t i = 0; i < nva; i++)
                va[i] = tr[vpos[i]];
            for (size_t i = 0; i < nkeep; i++) /* vkeep ascends and vkeep[i] >= i */
                tr[i] = tr[vkeep[i]];
            ntr = nkeep;
        }
        for (size_t i = 0; i < ntr; i++)
            tr[i] += (uint32_t)r0;
        for (size_t i = 0; i < nva; i++)
            va[i] += (uint32_t)r0;
        for (size_t i = 0; i < nte; i++)
            te[i] += (uint32_t)r0;
        jd->g_train0[k] = jd->n_train;
        jd->g_ntrain[k] = ntr;
        jd->n_train += ntr;
        jd->n_validation += nva;
        jd->n_test += nte;
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
    for (int k = 0; k < ENG_MAX_TASKS; k++) {
        store_dataset_clear(&g[k].d);
        json_decref(g[k].meta);
        free(g[k].slot);
        free(g[k].lv);
    }
    free(strata);
    free(vstrata);
    free(vkeep);
    free(vpos);
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
    free(jd->validation);
    json_decref(jd->input_names);
    for (int k = 0; k < jd->n_groups; k++)
        ds_release(jd->ds[k]);
    memset(jd, 0, sizeof *jd);
}
