/*
 * daemon/svc_predict.c — predictions from a job's checkpoint
 * (POST /v1/jobs/{id}/predict).
 *
 * A checkpoint is self-contained: its __metadata__ holds the job spec, the
 * input names ("col" for a number column, "col=level" for each one-hot
 * level of a category column, in the order the trunk reads them), the
 * inputs' standardisation (mean, std) and, per task, its kind and label
 * texts or target mean/std. So a prediction needs neither the dataset nor
 * the tasks any more: rows of raw column values are one-hot encoded and
 * standardised exactly as the runner did for training (the same engine
 * function), run through eng_mtl_forward, and mapped back to label texts
 * (argmax of the logits, softmax probabilities) or to the target's units.
 *
 * The model is rebuilt from the spec and the tensor shapes are checked
 * against the file, so a checkpoint this build cannot rebuild exactly is
 * refused rather than mispredicted. Loaded models are cached (CACHE_MAX,
 * least recently used out) keyed by checkpoint file, size and mtime; an
 * engine model is not thread-safe, so each entry has a mutex and requests
 * on one model take turns (the forward pass of a few thousand rows takes
 * milliseconds). Entries are reference-counted so eviction never frees a
 * model in use.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_meta.h"
#include "daemon/svc_rows.h"
#include "engine/prep.h"

#define CACHE_MAX 8
#define BATCH 256

typedef struct {
    char name[65];
    int classification;
    int n_out;
    char **labels;    /* [n_out] (classification) */
    double mean, std; /* regression */
} ptask;

typedef struct pentry {
    char key[4200];
    int64_t step;
    pthread_mutex_t mu; /* guards model (forward pass workspace) */
    int refs;           /* under the cache lock */
    unsigned long used;
    eng_mtl *model;
    int n_in;
    double *mean, *std;
    svc__inputs in;     /* the raw columns the inputs come from */
    int n_tasks;
    ptask task[ENG_MAX_TASKS];
    struct pentry *next;
} pentry;

struct svc__pcache {
    pthread_mutex_t mu; /* guards the list, refs and used */
    pentry *head;
    int n;
    unsigned long clock;
};

static void entry_free(pentry *p)
{
    if (!p)
        return;
    eng_mtl_free(p->model);
    free(p->mean);
    free(p->std);
    svc__inputs_clear(&p->in);
    for (int t = 0; t < p->n_tasks; t++) {
        if (p->task[t].labels)
            for (int l = 0; l < p->task[t].n_out; l++)
                free(p->task[t].labels[l]);
        free(p->task[t].labels);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static struct svc__pcache *cache(svc *s)
{
    struct svc__pcache *c = atomic_load(&s->pcache);
    if (c)
        return c;
    struct svc__pcache *mine = calloc(1, sizeof *mine);
    if (!mine)
        return NULL;
    pthread_mutex_init(&mine->mu, NULL);
    struct svc__pcache *expected = NULL;
    if (atomic_compare_exchange_strong(&s->pcache, &expected, mine))
        return mine;
    pthread_mutex_destroy(&mine->mu);
    free(mine);
    return expected;
}

void svc__pcache_free(svc *s)
{
    struct svc__pcache *c = atomic_exchange(&s->pcache, NULL);
    if (!c)
        return;
    while (c->head) {
        pentry *p = c->head;
        c->head = p->next;
        entry_free(p);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void release(struct svc__pcache *c, pentry *p)
{
    pthread_mutex_lock(&c->mu);
    int gone = --p->refs == 0;
    int listed = 0;
    for (pentry *q = c->head; q; q = q->next)
        listed |= q == p;
    pthread_mutex_unlock(&c->mu);
    if (gone && !listed)
        entry_free(p);
}

/* ---- loading ------------------------------------------------------------ */

static json_t *meta_json(json_t *meta, const char *key)
{
    const char *t = json_string_value(json_object_get(meta, key));
    return t ? json_loads(t, 0, NULL) : NULL;
}

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

static int load_tasks(pentry *p, json_t *tasks)
{
    p->n_tasks = (int)json_array_size(tasks);
    if (p->n_tasks < 1 || p->n_tasks > ENG_MAX_TASKS)
        return -1;
    for (int t = 0; t < p->n_tasks; t++) {
        json_t *o = json_array_get(tasks, (size_t)t);
        ptask *pt = &p->task[t];
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (!name || !kind)
            return -1;
        snprintf(pt->name, sizeof pt->name, "%s", name);
        pt->classification = !strcmp(kind, "classification");
        if (pt->classification) {
            json_t *lv = json_object_get(o, "labels");
            pt->n_out = (int)json_array_size(lv);
            if (pt->n_out < 2)
                return -1;
            pt->labels = calloc((size_t)pt->n_out, sizeof *pt->labels);
            if (!pt->labels)
                return -1;
            for (int l = 0; l < pt->n_out; l++)
                if (!(pt->labels[l] = dupstr(json_string_value(json_array_get(lv, (size_t)l)))))
                    return -1;
        } else {
            pt->n_out = 1;
            pt->mean = json_number_value(json_object_get(o, "mean"));
            pt->std = json_number_value(json_object_get(o, "std"));
        }
    }
    return 0;
}

/* Builds the entry for a checkpoint file; errors as svc codes. */
static int load_entry(const char *path, const char *key, pentry **out, svc_error *e)
{
    svc__safetensors st = {0};
    char err[300];
    json_t *spec = NULL, *features = NULL, *stdz = NULL, *tasks = NULL;
    pentry *p = calloc(1, sizeof *p);
    int rc = SVC_OK;
    if (!p)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->key, sizeof p->key, "%s", key);
    if (svc__safetensors_read(path, &st, err, sizeof err) != 0) {
        rc = svc__fail(e, SVC_EGONE, NULL, "the checkpoint cannot be read: %s", err);
        goto done;
    }
    json_t *meta = json_object_get(st.header, "__metadata__");
    spec = meta_json(meta, "spec");
    features = meta_json(meta, "features");
    stdz = meta_json(meta, "standardization");
    tasks = meta_json(meta, "tasks");
    p->step = strtoll(json_string_value(json_object_get(meta, "step")) ?
                          json_string_value(json_object_get(meta, "step")) : "0",
                      NULL, 10);
    svc__spec sp;
    svc_error se = {0};
    if (!spec || !json_is_array(features) || !json_is_object(stdz) || !json_is_array(tasks) ||
        svc__spec_parse(spec, &sp, &se) != SVC_OK) {
        rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                       "the checkpoint's metadata lacks what prediction needs "
                       "(spec, features, standardization, tasks)");
        goto done;
    }
    p->n_in = (int)json_array_size(features);
    json_t *mean = json_object_get(stdz, "mean"), *sd = json_object_get(stdz, "std");
    p->mean = calloc((size_t)(p->n_in ? p->n_in : 1), sizeof *p->mean);
    p->std = calloc((size_t)(p->n_in ? p->n_in : 1), sizeof *p->std);
    if (!p->mean || !p->std) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if (p->n_in < 1 || (int)json_array_size(mean) != p->n_in ||
        (int)json_array_size(sd) != p->n_in || svc__inputs_build(&p->in, features) != 0 ||
        p->in.n_in != p->n_in ||
        load_tasks(p, tasks) != 0) {
        rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                       "the checkpoint's metadata is inconsistent (features, standardization "
                       "or tasks)");
        goto done;
    }
    for (int i = 0; i < p->n_in; i++) {
        p->mean[i] = json_number_value(json_array_get(mean, (size_t)i));
        p->std[i] = json_number_value(json_array_get(sd, (size_t)i));
    }
    /* The same model the runner builds from the spec (svc_runner.c). */
    eng_mtl_spec ms;
    memset(&ms, 0, sizeof ms);
    ms.n_in = p->n_in;
    svc__model_arch(&sp, &ms); /* layer norm's tensors and a mixture's included */
    ms.n_tasks = p->n_tasks;
    for (int t = 0; t < p->n_tasks; t++) {
        ms.task[t].kind = p->task[t].classification ? ENG_HEAD_CLASSIFICATION
                                                    : ENG_HEAD_REGRESSION;
        ms.task[t].n_out = p->task[t].n_out;
    }
    if (eng_mtl_new(&ms, BATCH, &p->model) != ENG_OK) {
        rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                       "cannot rebuild the checkpoint's model for prediction");
        goto done;
    }
    /* Every tensor of the rebuilt model must be in the file with its shape. */
    float *params = eng_mtl_params(p->model);
    for (int i = 0; i < eng_mtl_ntensors(p->model); i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(p->model, i, &ti);
        json_t *shape = json_object_get(json_object_get(st.header, ti.name), "shape");
        int ok = (int)json_array_size(shape) == ti.rank;
        for (int r = 0; ok && r < ti.rank; r++)
            ok = json_integer_value(json_array_get(shape, (size_t)r)) == ti.shape[r];
        if (!ok || svc__safetensors_get(&st, ti.name, params + ti.offset, ti.count) != 0) {
            rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                           "the checkpoint's tensor '%s' does not match the model its spec "
                           "describes; this build cannot predict from it",
                           ti.name);
            goto done;
        }
    }
    *out = p;
    p = NULL;
done:
    entry_free(p);
    svc__safetensors_clear(&st);
    json_decref(spec);
    json_decref(features);
    json_decref(stdz);
    json_decref(tasks);
    return rc;
}

/* The cached entry for path (loading it if needed), with a reference. */
static int acquire(svc *s, const char *path, pentry **out, svc_error *e)
{
    struct svc__pcache *c = cache(s);
    struct stat stt;
    char key[4200];
    if (!c)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    if (stat(path, &stt) != 0)
        return svc__fail(e, SVC_EGONE, NULL, "the checkpoint file is gone");
    snprintf(key, sizeof key, "%s|%lld|%lld.%09ld", path, (long long)stt.st_size,
             (long long)stt.st_mtim.tv_sec, (long)stt.st_mtim.tv_nsec);
    pthread_mutex_lock(&c->mu);
    for (pentry *p = c->head; p; p = p->next)
        if (!strcmp(p->key, key)) {
            p->refs++;
            p->used = ++c->clock;
            pthread_mutex_unlock(&c->mu);
            *out = p;
            return SVC_OK;
        }
    pthread_mutex_unlock(&c->mu);
    /* Load outside the lock: two first requests may both load; one wins. */
    pentry *p = NULL;
    int rc = load_entry(path, key, &p, e);
    if (rc != SVC_OK)
        return rc;
    pentry *evict = NULL;
    pthread_mutex_lock(&c->mu);
    for (pentry *q = c->head; q; q = q->next)
        if (!strcmp(q->key, key)) { /* lost the race: use the one in the cache */
            q->refs++;
            q->used = ++c->clock;
            pthread_mutex_unlock(&c->mu);
            entry_free(p);
            *out = q;
            return SVC_OK;
        }
    if (c->n >= CACHE_MAX) {
        pentry **victim = NULL;
        for (pentry **pq = &c->head; *pq; pq = &(*pq)->next)
            if (!victim || (*pq)->used < (*victim)->used)
                victim = pq;
        evict = *victim;
        *victim = evict->next;
        c->n--;
        if (evict->refs > 0)
            evict = NULL; /* its last user frees it (release sees it unlisted) */
    }
    p->refs = 1;
    p->used = ++c->clock;
    p->next = c->head;
    c->head = p;
    c->n++;
    pthread_mutex_unlock(&c->mu);
    entry_free(evict);
    *out = p;
    return SVC_OK;
}

/* ---- rows --------------------------------------------------------------- */

/* ---- the request -------------------------------------------------------- */

static int checkpoint_which(json_t *req, char *which, size_t n, svc_error *e)
{
    json_t *ck = json_object_get(req, "checkpoint");
    if (!ck || json_is_null(ck)) {
        snprintf(which, n, "latest");
        return SVC_OK;
    }
    if (json_is_integer(ck) && json_integer_value(ck) > 0) {
        snprintf(which, n, "%lld", (long long)json_integer_value(ck));
        return SVC_OK;
    }
    const char *t = json_string_value(ck);
    if (t && t[0] && strlen(t) < n) {
        snprintf(which, n, "%s", t);
        return SVC_OK;
    }
    return svc__fail(e, SVC_EINVAL, "checkpoint",
                     "'checkpoint' must be \"latest\", \"best\" or a checkpoint id");
}

/* A meta-learning job's checkpoint is an initialisation to adapt to a task,
 * not a model to predict with (predict used to load it and fail with "the
 * checkpoint's metadata lacks what prediction needs"): say where to go
 * instead, whether or not a checkpoint exists yet. A key that names no job
 * is left to the lookup after, which words that error. */
static int refuse_meta(svc *s, const char *key, svc_error *e)
{
    store_job j = {0};
    svc_error ignored;
    if (svc__find_job(s, key, &j, &ignored) != SVC_OK)
        return SVC_OK;
    json_t *spec = j.spec ? json_loads(j.spec, 0, NULL) : NULL;
    store_job_clear(&j);
    const char *alg = json_string_value(json_object_get(spec, "algorithm"));
    svc__algorithm a;
    int rc = SVC_OK;
    if (svc__algorithm_from_name(alg, &a) && svc__is_meta(a))
        rc = svc__fail(e, SVC_EINVAL, NULL,
                       "job %s is a meta-learning job (%s): its model is adapted to a task "
                       "before it predicts; send a support set with labels and the query rows "
                       "to POST /v1/jobs/%s/adapt",
                       key, alg, key);
    json_decref(spec);
    return rc;
}

int svc_job_predict(svc *s, const char *key, json_t *req, size_t max_rows, json_t **out,
                    svc_error *e)
{
    char which[64], path[4096];
    int64_t bytes = 0;
    pentry *p = NULL;
    float *x = NULL;
    json_t *res = NULL;
    int rc;
    if ((rc = refuse_meta(s, key, e)) != SVC_OK)
        return rc;
    if (!json_is_object(req))
        return svc__fail(e, SVC_EINVAL, NULL,
                         "the body must be an object {\"task\", \"rows\": [...]}");
    const char *k;
    json_t *v;
    json_object_foreach(req, k, v)
    {
        if (strcmp(k, "task") && strcmp(k, "rows") && strcmp(k, "checkpoint"))
            return svc__fail(e, SVC_EINVAL, k,
                             "unknown key '%.60s' (expected task, rows, checkpoint)", k);
    }
    json_t *task = json_object_get(req, "task");
    json_t *rows = json_object_get(req, "rows");
    if (task && !json_is_string(task))
        return svc__fail(e, SVC_EINVAL, "task", "'task' must be the name of one of the job's tasks");
    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return svc__fail(e, SVC_EINVAL, "rows", "'rows' must be a non-empty array of rows");
    if (json_array_size(rows) > max_rows)
        return svc__fail(e, SVC_ELIMIT, "rows",
                         "%zu rows is more than the limit of %zu per request (predict_rows)",
                         json_array_size(rows), max_rows);
    if ((rc = checkpoint_which(req, which, sizeof which, e)) != SVC_OK)
        return rc;
    rc = svc_job_checkpoint_file_which(s, key, which, path, sizeof path, &bytes, e);
    if (rc != SVC_OK)
        return rc;
    if ((rc = acquire(s, path, &p, e)) != SVC_OK)
        return rc;

    int only = -1;
    if (task) {
        for (int t = 0; t < p->n_tasks; t++)
            if (!strcmp(p->task[t].name, json_string_value(task)))
                only = t;
        if (only < 0) {
            rc = svc__fail(e, SVC_EINVAL, "task", "job %s has no task '%.64s'", key,
                           json_string_value(task));
            goto done;
        }
    }
    size_t n = json_array_size(rows);
    x = malloc(n * (size_t)p->n_in * sizeof *x);
    if (!x) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < n; r++)
        if ((rc = svc__inputs_encode(&p->in, json_array_get(rows, r), "rows", r,
                                     x + r * (size_t)p->n_in, e)) !=
            SVC_OK)
            goto done;
    eng_standardize_apply(x, n, (size_t)p->n_in, p->mean, p->std);

    json_t *preds[ENG_MAX_TASKS] = {0};
    for (int t = 0; t < p->n_tasks; t++)
        if (only < 0 || only == t)
            preds[t] = json_array();
    pthread_mutex_lock(&p->mu);
    for (size_t b = 0; b < n && rc == SVC_OK; b += BATCH) {
        int nb = (int)(n - b < BATCH ? n - b : BATCH);
        if (eng_mtl_forward(p->model, x + b * (size_t)p->n_in, nb) != ENG_OK) {
            rc = svc__fail(e, SVC_EIO, NULL, "the forward pass failed");
            break;
        }
        for (int t = 0; t < p->n_tasks; t++) {
            if (!preds[t])
                continue;
            const float *o = eng_mtl_output(p->model, t);
            const ptask *pt = &p->task[t];
            for (int i = 0; i < nb; i++) {
                json_t *one;
                if (pt->classification) {
                    const float *z = o + (size_t)i * (size_t)pt->n_out;
                    int best = 0;
                    for (int c = 1; c < pt->n_out; c++)
                        if (z[c] > z[best])
                            best = c;
                    double mx = z[best], se = 0;
                    for (int c = 0; c < pt->n_out; c++)
                        se += exp((double)z[c] - mx);
                    json_t *pr = json_array();
                    for (int c = 0; c < pt->n_out; c++)
                        json_array_append_new(pr, json_real(exp((double)z[c] - mx) / se));
                    one = json_pack("{s:s,s:o}", "label", pt->labels[best], "probabilities", pr);
                } else {
                    double val = (double)o[i] * pt->std + pt->mean;
                    one = json_pack("{s:o}", "value", isfinite(val) ? json_real(val) : json_null());
                }
                json_array_append_new(preds[t], one);
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == SVC_OK) {
        json_t *cols = json_array();
        for (int i = 0; i < p->in.n_cols; i++)
            json_array_append_new(cols, json_string(p->in.cols[i].name));
        res = json_pack("{s:I,s:s,s:I,s:o}", "job", (json_int_t)strtoll(key, NULL, 10),
                        "checkpoint", which, "step", (json_int_t)p->step, "columns", cols);
        json_t *tasks = json_object();
        for (int t = 0; t < p->n_tasks; t++) {
            if (!preds[t])
                continue;
            const ptask *pt = &p->task[t];
            json_t *o = json_pack("{s:s}", "kind",
                                  pt->classification ? "classification" : "regression");
            if (pt->classification) {
                json_t *lv = json_array();
                for (int c = 0; c < pt->n_out; c++)
                    json_array_append_new(lv, json_string(pt->labels[c]));
                json_object_set_new(o, "labels", lv);
            }
            json_object_set(o, "predictions", preds[t]);
            if (only >= 0) {
                json_object_set_new(res, "task", json_string(pt->name));
                json_object_update(res, o);
                json_decref(o);
            } else {
                json_object_set_new(tasks, pt->name, o);
            }
        }
        if (only < 0)
            json_object_set_new(res, "tasks", tasks);
        else
            json_decref(tasks);
        if (!res)
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    for (int t = 0; t < p->n_tasks; t++)
        json_decref(preds[t]);
done:
    free(x);
    if (p)
        release(cache(s), p);
    if (rc == SVC_OK)
        *out = res;
    else
        json_decref(res);
    return rc;
}
