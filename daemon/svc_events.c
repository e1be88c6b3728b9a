/*
 * daemon/svc_events.c — live job events (progress, metric, state) for
 * GET /v1/jobs/{id}/events.
 *
 * Design: one in-memory ring of the last RING events per job ("channel"),
 * behind one hub mutex. The training thread publishes by formatting the
 * event's JSON text before taking the lock, then, under it, moves the text
 * into the next slot and calls each watcher's notify hook (which only flags
 * the watcher to be resumed). It never waits for a reader: a reader that
 * falls more than RING events behind loses the oldest ones rather than
 * holding the writer up. Readers copy one event out under the lock and do
 * their network writes outside it, so a thousand slow watchers cost the
 * trainer one pointer walk per event.
 *
 * Event ids are 1, 2, 3 ... per job within this daemon's life. A
 * Last-Event-ID the ring has no longer (or never had, after a restart)
 * resumes from the oldest event held. The stream of a job that ended without
 * an event reaching its ring (a queued job cancelled, a restart) still ends:
 * a reader with nothing to read checks the job's stored state at most every
 * POLL_S seconds and synthesises the final state event.
 *
 * Channels are created on first publish or watch and kept for at most
 * MAX_CHANNELS jobs; the oldest channel without watchers is dropped first.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"

#define RING 512
#define MAX_CHANNELS 64
#define POLL_S 2.0

typedef struct {
    int64_t id;
    char type[16];
    char *data;
    int final;
} slot;

typedef struct channel {
    int64_t job_id;
    int64_t next_id;        /* id the next event gets; the first is 1 */
    slot ring[RING];        /* event k lives in ring[k % RING] */
    int watchers;
    struct svc_watch *wl;   /* watchers of this job (for notify) */
    double touched;         /* last publish or watch */
    /* rate estimate from progress events */
    double rate_t;
    int64_t rate_step;
    double steps_per_s;
    int batch;
    double run_t0;          /* first progress of this run (for eta) */
    int64_t run_step0;
    int running;
    struct channel *next;
} channel;

struct svc__events {
    pthread_mutex_t mu;     /* guards every channel and watcher link */
    channel *head;
    int n;
};

struct svc_watch {
    svc *s;
    struct svc__events *h;
    channel *c;             /* kept alive by c->watchers > 0 */
    int64_t job_id;
    int64_t last_id;        /* last ring event handed out */
    svc_event snap[2];      /* snapshot events still to hand out */
    int n_snap, i_snap;
    int ended;              /* a final event was handed out */
    double last_poll;
    void (*notify)(void *);
    void *ctx;
    struct svc_watch *next;
};

static struct svc__events *hub(svc *s)
{
    struct svc__events *h = atomic_load(&s->events);
    if (h)
        return h;
    struct svc__events *mine = calloc(1, sizeof *mine);
    if (!mine)
        return NULL;
    pthread_mutex_init(&mine->mu, NULL);
    struct svc__events *expected = NULL;
    if (atomic_compare_exchange_strong(&s->events, &expected, mine))
        return mine;
    pthread_mutex_destroy(&mine->mu);
    free(mine);
    return expected;
}

static void channel_free(channel *c)
{
    for (int i = 0; i < RING; i++)
        free(c->ring[i].data);
    free(c);
}

/* Called with h->mu held. NULL on out of memory. */
static channel *channel_get(struct svc__events *h, int64_t job_id)
{
    for (channel *c = h->head; c; c = c->next)
        if (c->job_id == job_id) {
            c->touched = svc__now();
            return c;
        }
    if (h->n >= MAX_CHANNELS) {
        channel **victim = NULL;
        for (channel **pc = &h->head; *pc; pc = &(*pc)->next)
            if ((*pc)->watchers == 0 && (!victim || (*pc)->touched < (*victim)->touched))
                victim = pc;
        if (victim) {
            channel *v = *victim;
            *victim = v->next;
            channel_free(v);
            h->n--;
        }
    }
    channel *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->job_id = job_id;
    c->next_id = 1;
    c->touched = svc__now();
    c->next = h->head;
    h->head = c;
    h->n++;
    return c;
}

/* Appends n events of one type (taking ownership of each data, malloc'd
 * JSON text; NULLs are skipped) and wakes each watcher once for all of
 * them: an evaluation's dozen metrics cost a watcher one wake-up, not a
 * dozen (with 16 watchers on a job that evaluates 90 times a second, the
 * wake-ups were most of what the streams cost). */
static void publish_n(svc *s, int64_t job_id, const char *type, char **data, size_t n, int final)
{
    struct svc__events *h = hub(s);
    channel *c = NULL;
    if (h) {
        pthread_mutex_lock(&h->mu);
        c = channel_get(h, job_id);
    }
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c || !data[i]) {
            free(data[i]);
            continue;
        }
        slot *sl = &c->ring[c->next_id % RING];
        free(sl->data);
        sl->id = c->next_id++;
        snprintf(sl->type, sizeof sl->type, "%s", type);
        sl->data = data[i];
        sl->final = final;
        added++;
    }
    if (c && added > 0)
        for (struct svc_watch *w = c->wl; w; w = w->next)
            if (w->notify)
                w->notify(w->ctx);
    if (h)
        pthread_mutex_unlock(&h->mu);
}

/* Takes ownership of data (malloc'd JSON text). */
static void publish(svc *s, int64_t job_id, const char *type, char *data, int final)
{
    publish_n(s, job_id, type, &data, 1, final);
}

static char *dump(json_t *o)
{
    char *t = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    return t;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

void svc__events_progress(svc *s, int64_t job_id, int64_t step, int64_t steps, int batch)
{
    struct svc__events *h = hub(s);
    if (!h)
        return;
    double now = svc__now(), eta = NAN;
    pthread_mutex_lock(&h->mu);
    channel *c = channel_get(h, job_id);
    if (c) {
        if (!c->running || step < c->run_step0) {
            c->running = 1;
            c->run_t0 = now;
            c->run_step0 = step;
            c->rate_t = now;
            c->rate_step = step;
            c->steps_per_s = 0;
        } else if (now - c->rate_t >= 0.2 && step > c->rate_step) {
            double inst = (double)(step - c->rate_step) / (now - c->rate_t);
            c->steps_per_s = c->steps_per_s > 0 ? 0.7 * c->steps_per_s + 0.3 * inst : inst;
            c->rate_t = now;
            c->rate_step = step;
        }
        c->batch = batch;
        if (step >= steps)
            eta = 0;
        else if (step > c->run_step0 && now > c->run_t0)
            eta = (now - c->run_t0) / (double)(step - c->run_step0) * (double)(steps - step);
    }
    pthread_mutex_unlock(&h->mu);
    /* "eta" is design.md's name for it, "eta_seconds" the job view's: both,
     * the same value, so a client reads one name from either (docs/api.md). */
    json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:o}", "step", (json_int_t)step, "steps",
                          (json_int_t)steps, "progress",
                          num_or_null(steps > 0 ? (double)step / (double)steps : 0.0), "eta",
                          num_or_null(eta), "eta_seconds", num_or_null(eta));
    publish(s, job_id, "progress", dump(o), 0);
}

void svc__events_metrics(svc *s, int64_t job_id, const store_metric *m, size_t n)
{
    enum { CHUNK = 64 };
    char *data[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t k = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t j = 0; j < k; j++) {
            const store_metric *mi = &m[i0 + j];
            json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:o}", "step", (json_int_t)mi->step, "task",
                                  mi->task ? mi->task : "", "split", mi->split ? mi->split : "",
                                  "name", mi->name ? mi->name : "", "value",
                                  num_or_null(mi->value));
            data[j] = dump(o);
        }
        publish_n(s, job_id, "metric", data, k, 0);
    }
}

static int is_final(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") ||
           !strcmp(state, "cancelled");
}

static json_t *state_json(const char *state, const char *code, const char *msg)
{
    json_t *o = json_pack("{s:s}", "state", state);
    if (o && code)
        json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", code, "message",
                                                  msg ? msg : ""));
    return o;
}

void svc__events_state(svc *s, int64_t job_id, const char *state, const char *err_code,
                       const char *err_msg)
{
    struct svc__events *h = hub(s);
    if (h && strcmp(state, "running") != 0) {
        pthread_mutex_lock(&h->mu);
        for (channel *c = h->head; c; c = c->next)
            if (c->job_id == job_id) {
                c->running = 0;
                c->steps_per_s = 0;
            }
        pthread_mutex_unlock(&h->mu);
    }
    publish(s, job_id, "state", dump(state_json(state, err_code, err_msg)), is_final(state));
}

void svc__events_rate(svc *s, int64_t job_id, double *steps_per_s, double *samples_per_s)
{
    struct svc__events *h = atomic_load(&s->events);
    *steps_per_s = 0;
    *samples_per_s = 0;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    for (channel *c = h->head; c; c = c->next)
        if (c->job_id == job_id && c->running) {
            *steps_per_s = c->steps_per_s;
            *samples_per_s = c->steps_per_s * (double)c->batch;
        }
    pthread_mutex_unlock(&h->mu);
}

/* ---- watchers ----------------------------------------------------------- */

static int parse_job_id(const char *key, int64_t *id)
{
    char *end = NULL;
    long long v = strtoll(key, &end, 10);
    if (!key[0] || *end || v <= 0)
        return -1;
    *id = v;
    return 0;
}

static void set_event(svc_event *ev, int64_t id, const char *type, char *data, int final)
{
    ev->id = id;
    snprintf(ev->type, sizeof ev->type, "%s", type);
    ev->data = data;
    ev->final = final;
}

/* The state (and progress) of a stored job as snapshot events; a running
 * job's progress figures are the live ones GET /v1/jobs/{id} shows
 * (svc__live_figures), so a stream starts where the job view stands, its
 * eta included. */
static int snapshot(svc *s, svc_watch *w, const store_job *j)
{
    int final = is_final(j->state);
    json_t *st = state_json(j->state, j->error_code, j->error_message);
    if (st) {
        json_object_set_new(st, "step", json_integer(j->step));
        json_object_set_new(st, "steps", json_integer(j->steps));
    }
    set_event(&w->snap[w->n_snap++], 0, "state", dump(st), final);
    if (!final) {
        json_t *p = json_pack("{s:I,s:I,s:f}", "step", (json_int_t)j->step, "steps",
                              (json_int_t)j->steps, "progress", j->progress);
        double eta = NAN;
        if (p && !strcmp(j->state, "running") && !svc__live_figures(s, j->id, p, &eta))
            eta = NAN;
        if (p) {
            json_object_set_new(p, "eta", num_or_null(eta));
            json_object_set_new(p, "eta_seconds", num_or_null(eta));
        }
        set_event(&w->snap[w->n_snap++], 0, "progress", dump(p), 0);
    }
    return w->snap[0].data ? 0 : -1;
}

int svc_events_watch(svc *s, const char *key, int64_t last_id, int max_watchers,
                     void (*notify)(void *ctx), void *ctx, svc_watch **out, svc_error *e)
{
    int64_t id = 0;
    store_job j = {0};
    struct svc__events *h = hub(s);
    svc_watch *w = NULL;
    int rc = SVC_OK;
    if (parse_job_id(key, &id) != 0)
        return svc__fail(e, SVC_ENOTFOUND, NULL, "no job '%s': job ids are positive integers",
                         key);
    if (!h)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    int src = store_job_get(s->db, id, &j);
    if (src != STORE_OK)
        return svc__store_fail(e, src, "job", key);
    w = calloc(1, sizeof *w);
    if (!w) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    w->s = s;
    w->h = h;
    w->job_id = id;
    w->notify = notify;
    w->ctx = ctx;
    w->last_poll = svc__now();
    pthread_mutex_lock(&h->mu);
    channel *c = channel_get(h, id);
    if (!c) {
        pthread_mutex_unlock(&h->mu);
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if (max_watchers > 0 && c->watchers >= max_watchers) {
        pthread_mutex_unlock(&h->mu);
        rc = svc__fail(e, SVC_EFULL, NULL,
                       "job %s already has %d event watchers (the limit, sse_watchers)", key,
                       c->watchers);
        goto done;
    }
    int with_snapshot = last_id < 0 || last_id >= c->next_id;
    w->last_id = with_snapshot ? c->next_id - 1 : last_id;
    w->c = c;
    c->watchers++;
    w->next = c->wl;
    c->wl = w;
    pthread_mutex_unlock(&h->mu);
    /* The snapshot is read after joining the ring, so nothing published in
     * between is missed (at worst it is seen twice: as snapshot and event). */
    if (with_snapshot) {
        store_job_clear(&j);
        if (store_job_get(s->db, id, &j) != STORE_OK || snapshot(s, w, &j) != 0) {
            svc_events_unwatch(w);
            w = NULL;
            rc = svc__fail(e, SVC_ENOMEM, NULL, "cannot read job %s", key);
            goto done;
        }
    }
    *out = w;
    w = NULL;
done:
    free(w);
    store_job_clear(&j);
    return rc;
}

int svc_events_next(svc_watch *w, svc_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (w->ended)
        return 2;
    if (w->i_snap < w->n_snap) {
        *ev = w->snap[w->i_snap];
        memset(&w->snap[w->i_snap], 0, sizeof w->snap[0]);
        w->i_snap++;
        w->ended = ev->final;
        return 1;
    }
    int got = 0;
    pthread_mutex_lock(&w->h->mu);
    channel *c = w->c;
    if (w->last_id < c->next_id - 1) {
        int64_t oldest = c->next_id > RING ? c->next_id - RING : 1;
        if (w->last_id + 1 < oldest)
            w->last_id = oldest - 1; /* fell behind: the oldest events are gone */
        slot *sl = &c->ring[(w->last_id + 1) % RING];
        char *copy = sl->data ? strdup(sl->data) : NULL;
        if (copy) {
            set_event(ev, sl->id, sl->type, copy, sl->final);
            got = 1;
        }
        w->last_id++;
    }
    pthread_mutex_unlock(&w->h->mu);
    if (got) {
        w->ended = ev->final;
        return 1;
    }
    /* Nothing published: has the job ended without telling the ring? */
    double now = svc__now();
    if (now - w->last_poll < POLL_S)
        return 0;
    w->last_poll = now;
    store_job j = {0};
    int rc = store_job_get(w->s->db, w->job_id, &j);
    if (rc == STORE_ENOTFOUND) {
        w->ended = 1;
        return 2;
    }
    if (rc != STORE_OK)
        return 0;
    int r = 0;
    if (is_final(j.state)) {
        json_t *st = state_json(j.state, j.error_code, j.error_message);
        if (st) {
            json_object_set_new(st, "step", json_integer(j.step));
            json_object_set_new(st, "steps", json_integer(j.steps));
        }
        char *text = dump(st);
        if (text) {
            set_event(ev, 0, "state", text, 1);
            w->ended = 1;
            r = 1;
        }
    }
    store_job_clear(&j);
    return r;
}

void svc_event_clear(svc_event *ev)
{
    if (!ev)
        return;
    free(ev->data);
    memset(ev, 0, sizeof *ev);
}

void svc_events_unwatch(svc_watch *w)
{
    if (!w)
        return;
    if (w->c) {
        pthread_mutex_lock(&w->h->mu);
        for (svc_watch **p = &w->c->wl; *p; p = &(*p)->next)
            if (*p == w) {
                *p = w->next;
                break;
            }
        w->c->watchers--;
        w->c->touched = svc__now();
        pthread_mutex_unlock(&w->h->mu);
    }
    for (int i = 0; i < 2; i++)
        svc_event_clear(&w->snap[i]);
    free(w);
}

void svc__events_free(svc *s)
{
    struct svc__events *h = atomic_exchange(&s->events, NULL);
    if (!h)
        return;
    while (h->head) {
        channel *c = h->head;
        h->head = c->next;
        channel_free(c);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void svc__extras_free(svc *s)
{
    if (!s)
        return;
    svc__events_free(s);
    svc__pcache_free(s);
    svc__vcache_free(s);
}
