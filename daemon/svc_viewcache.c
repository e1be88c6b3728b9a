/*
 * daemon/svc_viewcache.c — GET /v1/jobs/{id} without a query: the last view
 * svc_job_get built for a job is kept, as JSON text, with the store's data
 * version (store_data_version) at the time; while the version has not
 * moved, no row anywhere was written, so the view is still what svc_job_get
 * would build. Only the live figures of a running job (step, steps,
 * progress, eta_seconds: atomics in its running[] slot, not in the store)
 * are computed again per request (svc__live_figures, as add_live does), and
 * appended to the cached text (so they come last in the object).
 *
 * Why: a dashboard polling a job is the API's hottest path, and every store
 * call is serialised on the one SQLite connection (a prepared statement,
 * BEGIN, a read, COMMIT); training writes progress four times a second per
 * job, so between writes thousands of reads are served from here.
 *
 * The cache is a direct-mapped table of BUCKETS entries behind one mutex;
 * a hit copies the text out under it and formats four numbers outside.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"

#define BUCKETS 256

typedef struct {
    int64_t id;
    int64_t version;
    /* The view as JSON text without its closing brace and without the live
     * keys (step, steps, progress, eta_seconds), which are appended per
     * request: from the running[] slot, or these stored values. */
    char *base;
    size_t blen;
    json_int_t step, steps;
    double progress;
    int running;       /* its state is "running": the slot has the live figures */
} ventry;

struct svc__vcache {
    pthread_mutex_t mu; /* guards e[] */
    ventry e[BUCKETS];
};

static struct svc__vcache *vcache(svc *s)
{
    struct svc__vcache *c = atomic_load(&s->vcache);
    if (c)
        return c;
    struct svc__vcache *mine = calloc(1, sizeof *mine);
    if (!mine)
        return NULL;
    pthread_mutex_init(&mine->mu, NULL);
    struct svc__vcache *expected = NULL;
    if (atomic_compare_exchange_strong(&s->vcache, &expected, mine))
        return mine;
    pthread_mutex_destroy(&mine->mu);
    free(mine);
    return expected;
}

void svc__vcache_free(svc *s)
{
    struct svc__vcache *c = atomic_exchange(&s->vcache, NULL);
    if (!c)
        return;
    for (int i = 0; i < BUCKETS; i++)
        free(c->e[i].base);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The live keys, as svc_job.c's add_live sets them: from the running[]
 * slot of a running job, else the stored step/steps/progress and a null
 * eta. Returns ",\"step\":..}" text (malloc'd) to close the view. */
static char *live_tail(svc *s, int64_t id, const ventry *en, int running)
{
    json_t *o = json_pack("{s:I,s:I,s:f,s:n}", "step", en->step, "steps", en->steps,
                          "progress", en->progress, "eta_seconds");
    if (!o)
        return NULL;
    double eta;
    if (running && svc__live_figures(s, id, o, &eta))
        json_object_set_new(o, "eta_seconds", json_real(eta));
    char *t = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (t)
        t[0] = ','; /* "{...}" becomes ",...}" */
    return t;
}

/* Fills en from a fresh view (which it changes). */
static int fill_entry(ventry *en, json_t *view)
{
    const char *state = json_string_value(json_object_get(view, "state"));
    en->running = state && !strcmp(state, "running");
    en->step = json_integer_value(json_object_get(view, "step"));
    en->steps = json_integer_value(json_object_get(view, "steps"));
    en->progress = json_number_value(json_object_get(view, "progress"));
    json_object_del(view, "step");
    json_object_del(view, "steps");
    json_object_del(view, "progress");
    json_object_del(view, "eta_seconds");
    char *t = json_dumps(view, JSON_COMPACT | JSON_REAL_PRECISION(10));
    size_t n = t ? strlen(t) : 0;
    if (n < 2 || t[n - 1] != '}') {
        free(t);
        return -1;
    }
    t[n - 1] = 0;
    en->base = t;
    en->blen = n - 1;
    return 0;
}

static char *join(const char *base, size_t blen, const char *tail, size_t *len)
{
    size_t tl = strlen(tail);
    int empty = blen == 1; /* "{" alone: no comma before the tail */
    char *out = malloc(blen + tl + 1);
    if (!out)
        return NULL;
    memcpy(out, base, blen);
    memcpy(out + blen, tail + empty, tl - (size_t)empty + 1);
    *len = blen + tl - (size_t)empty;
    return out;
}

int svc_job_get_text(svc *s, const char *key, char **text, size_t *len, svc_error *e)
{
    char *end = NULL;
    long long id = strtoll(key, &end, 10);
    struct svc__vcache *c = vcache(s);
    json_t *fresh = NULL;
    int rc;
    if (!key[0] || *end || id <= 0 || !c) {
        rc = svc_job_get(s, key, &fresh, e); /* it words the error */
        goto dump_fresh;
    }
    int64_t v = store_data_version(s->db);
    ventry *en = &c->e[(uint64_t)id % BUCKETS];
    pthread_mutex_lock(&c->mu);
    if (en->base && en->id == id && en->version == v) {
        ventry copy = *en;
        copy.base = malloc(en->blen + 1);
        if (copy.base)
            memcpy(copy.base, en->base, en->blen + 1);
        pthread_mutex_unlock(&c->mu);
        if (!copy.base)
            return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        char *tail = live_tail(s, id, &copy, copy.running);
        *text = tail ? join(copy.base, copy.blen, tail, len) : NULL;
        free(tail);
        free(copy.base);
        return *text ? SVC_OK : svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    pthread_mutex_unlock(&c->mu);
    rc = svc_job_get(s, key, &fresh, e);
    if (rc == SVC_OK) {
        char *full = json_dumps(fresh, JSON_COMPACT | JSON_REAL_PRECISION(10));
        ventry fill = {0};
        if (fill_entry(&fill, fresh) == 0) {
            pthread_mutex_lock(&c->mu);
            char *old = en->base;
            *en = fill;
            en->id = id;
            en->version = v; /* read before the query: a write since then moves it */
            pthread_mutex_unlock(&c->mu);
            free(old);
        }
        json_decref(fresh);
        *text = full;
        *len = full ? strlen(full) : 0;
        return full ? SVC_OK : svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    return rc;
dump_fresh:
    if (rc != SVC_OK)
        return rc;
    *text = json_dumps(fresh, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(fresh);
    *len = *text ? strlen(*text) : 0;
    return *text ? SVC_OK : svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
}
