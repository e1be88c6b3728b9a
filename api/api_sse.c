/*
 * api/api_sse.c — GET /v1/jobs/{id}/events: Server-Sent Events.
 *
 * Why suspend/resume: the daemon answers on a small thread pool over epoll
 * (fast for the many short requests that dominate). A stream that blocked
 * in its content callback would hold a pool thread for the job's whole life,
 * and four watchers would stall the API. Thread-per-connection would avoid
 * that but costs a thread switch per request and a thread per idle
 * keep-alive connection. So a stream never blocks: its content callback
 * (MHD_create_response_from_callback) hands out what the job's event ring
 * holds, and when there is nothing it suspends its connection
 * (MHD_suspend_connection) and returns 0. The training thread, publishing an
 * event, calls this stream's notify hook, which resumes the connection; a
 * ticker thread resumes every suspended stream once a second, so the
 * heartbeat (--sse-heartbeat, 15 s) is sent and a job that ended without an event (a
 * queued job cancelled) is noticed. The trainer never waits for a reader:
 * it only flips a flag and pokes libmicrohttpd's wake-up pipe.
 *
 * `suspended` is read and written only under sse_mu, and the suspend call
 * itself happens under it, so a resume is only ever issued for a connection
 * that is really suspended (libmicrohttpd forbids nothing else, but this
 * keeps the states obvious). Lock order: the svc event hub's lock (held
 * while notify runs) → sse_mu → libmicrohttpd's internal locks.
 *
 * Shutdown: api__sse_stop sets sse_stopping and resumes every stream, whose
 * callback then ends it; libmicrohttpd refuses to stop with a connection
 * still suspended. A client that went away is noticed at the next write (at
 * the latest the heartbeat), when libmicrohttpd closes the connection and
 * the free callback unwatches the job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"


struct api__sse {
    struct api_server *srv;
    struct MHD_Connection *conn;
    svc_watch *w;
    char *pending;          /* formatted bytes not yet handed to libmicrohttpd */
    size_t plen, poff;
    double last_write;
    int ending;             /* the final event is in pending: end after it */
    int failed;             /* out of memory formatting an event: end with an error */
    int suspended;          /* under srv->sse_mu */
    int notified;           /* an event came while not suspended (under sse_mu) */
    struct api__sse *next;  /* srv->sse list, under srv->sse_mu */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Called by the trainer (under the event hub's lock): resume if waiting. */
static void sse_notify(void *ctx)
{
    api__sse *x = ctx;
    pthread_mutex_lock(&x->srv->sse_mu);
    if (x->suspended) {
        x->suspended = 0;
        MHD_resume_connection(x->conn);
    } else {
        x->notified = 1; /* the reader is busy: it looks again before suspending */
    }
    pthread_mutex_unlock(&x->srv->sse_mu);
}

static int set_pending(api__sse *x, const char *text, size_t n)
{
    char *p = malloc(n);
    if (!p)
        return -1;
    memcpy(p, text, n);
    free(x->pending);
    x->pending = p;
    x->plen = n;
    x->poff = 0;
    return 0;
}

static int format_event(api__sse *x, const svc_event *ev)
{
    size_t dl = strlen(ev->data);
    size_t cap = dl + 96;
    char *p = malloc(cap);
    if (!p)
        return -1;
    int n = ev->id > 0
                ? snprintf(p, cap, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev->id,
                           ev->type, ev->data)
                : snprintf(p, cap, "event: %s\ndata: %s\n\n", ev->type, ev->data);
    if (n < 0 || (size_t)n >= cap) {
        free(p);
        return -1;
    }
    free(x->pending);
    x->pending = p;
    x->plen = (size_t)n;
    x->poff = 0;
    return 0;
}

/* Ends the stream: the watcher slot is released at once, not when
 * libmicrohttpd gets round to freeing the response, so a client that
 * reconnects right away is not refused by the watcher limit. */
static ssize_t end_stream(api__sse *x)
{
    svc_events_unwatch(x->w);
    x->w = NULL;
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* Fills buf with as many events as are waiting (up to max bytes), so a
 * burst of events (an evaluation's metrics) goes out in one write rather
 * than one write, and one wake-up of the reader, per event. Whatever was
 * copied is returned before the stream ends or suspends; the next call
 * finds the same condition again. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    api__sse *x = cls;
    size_t out = 0;
    if (x->failed)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    for (;;) {
        if (x->poff < x->plen) {
            size_t n = x->plen - x->poff < max - out ? x->plen - x->poff : max - out;
            memcpy(buf + out, x->pending + x->poff, n);
            x->poff += n;
            out += n;
            x->last_write = now_s();
            if (out == max)
                return (ssize_t)out;
            continue;
        }
        if (x->ending || !x->w)
            return out ? (ssize_t)out : end_stream(x);
        pthread_mutex_lock(&x->srv->sse_mu);
        int stopping = x->srv->sse_stopping;
        x->notified = 0;
        pthread_mutex_unlock(&x->srv->sse_mu);
        if (stopping)
            return out ? (ssize_t)out : end_stream(x);
        svc_event ev;
        int rc = svc_events_next(x->w, &ev);
        if (rc == 2)
            return out ? (ssize_t)out : end_stream(x);
        if (rc == 1) {
            int bad = format_event(x, &ev);
            x->ending = ev.final;
            svc_event_clear(&ev);
            if (bad) {
                x->failed = 1;
                return out ? (ssize_t)out : MHD_CONTENT_READER_END_WITH_ERROR;
            }
            continue;
        }
        if (out)
            return (ssize_t)out; /* sent something: suspend on the next call */
        if (now_s() - x->last_write >= (double)x->srv->cfg.sse_heartbeat) {
            static const char hb[] = ": heartbeat\n\n";
            if (set_pending(x, hb, sizeof hb - 1) != 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        /* Nothing to say: wait without holding a thread. */
        pthread_mutex_lock(&x->srv->sse_mu);
        if (x->srv->sse_stopping) {
            pthread_mutex_unlock(&x->srv->sse_mu);
            return end_stream(x);
        }
        if (x->notified) {
            x->notified = 0;
            pthread_mutex_unlock(&x->srv->sse_mu);
            continue;
        }
        x->suspended = 1;
        MHD_suspend_connection(x->conn);
        pthread_mutex_unlock(&x->srv->sse_mu);
        return 0;
    }
}

static void sse_free(void *cls)
{
    api__sse *x = cls;
    if (!x)
        return;
    pthread_mutex_lock(&x->srv->sse_mu);
    for (api__sse **p = &x->srv->sse; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    pthread_mutex_unlock(&x->srv->sse_mu);
    /* After this no notify can name x. */
    svc_events_unwatch(x->w);
    free(x->pending);
    free(x);
}

enum MHD_Result api__h_job_events(struct MHD_Connection *c, api__req *r)
{
    struct api_server *a = r->srv;
    int64_t last_id = -1;
    const char *lei = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (lei && lei[0]) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(lei, &end, 10);
        if (*end || errno || v < 0)
            return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", "Last-Event-ID",
                                    "'Last-Event-ID' must be an event id this stream sent "
                                    "(a non-negative integer)");
        last_id = v;
    }
    pthread_mutex_lock(&a->sse_mu);
    int stopping = a->sse_stopping;
    pthread_mutex_unlock(&a->sse_mu);
    if (stopping)
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", NULL,
                                "the daemon is stopping");
    api__sse *x = calloc(1, sizeof *x);
    if (!x)
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    x->srv = a;
    x->conn = c;
    x->last_write = now_s();
    svc_error e = {0};
    int rc = svc_events_watch(a->svc, r->params[0], last_id, (int)a->cfg.max_watchers,
                              sse_notify, x, &x->w, &e);
    if (rc != SVC_OK) {
        free(x);
        if (rc == SVC_EFULL)
            return api__reply_error(c, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_watchers", NULL,
                                    "%s", e.message);
        return api__reply_svc_error(c, &e);
    }
    static const char retry[] = "retry: 2000\n\n";
    if (set_pending(x, retry, sizeof retry - 1) != 0) {
        svc_events_unwatch(x->w);
        free(x);
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, x, sse_free);
    if (!resp) {
        svc_events_unwatch(x->w);
        free(x->pending);
        free(x);
        return MHD_NO;
    }
    pthread_mutex_lock(&a->sse_mu);
    x->next = a->sse;
    a->sse = x;
    pthread_mutex_unlock(&a->sse_mu);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    api__note_status(MHD_HTTP_OK);
    enum MHD_Result mr = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return mr;
}

/* Resumes every suspended stream once a second: heartbeats, and jobs that
 * ended without an event reaching their ring. */
static void *ticker_main(void *arg)
{
    struct api_server *a = arg;
    pthread_mutex_lock(&a->sse_mu);
    while (!a->sse_stopping) {
        for (api__sse *x = a->sse; x; x = x->next)
            if (x->suspended) {
                x->suspended = 0;
                MHD_resume_connection(x->conn);
            }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&a->ticker_cv, &a->sse_mu, &dl);
    }
    pthread_mutex_unlock(&a->sse_mu);
    return NULL;
}

int api__sse_start(struct api_server *a)
{
    if (pthread_create(&a->ticker, NULL, ticker_main, a) != 0)
        return -1;
    a->ticker_started = 1;
    return 0;
}

void api__sse_stop(struct api_server *a)
{
    pthread_mutex_lock(&a->sse_mu);
    a->sse_stopping = 1;
    for (api__sse *x = a->sse; x; x = x->next)
        if (x->suspended) {
            x->suspended = 0;
            MHD_resume_connection(x->conn);
        }
    pthread_cond_broadcast(&a->ticker_cv);
    pthread_mutex_unlock(&a->sse_mu);
    if (a->ticker_started) {
        pthread_join(a->ticker, NULL);
        a->ticker_started = 0;
    }
}
