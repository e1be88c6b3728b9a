/*
 * api/api_metrics.c — GET /metrics in the Prometheus text format (0.0.4),
 * and the HTTP counters behind it.
 *
 * Every finished request is counted by route (its pattern, so ids do not
 * explode the label set: "/v1/jobs/{id}") and status, and its latency from
 * headers to completion lands in a fixed-bucket histogram per route (event
 * streams are counted but kept out of the histogram: their "latency" is the
 * job's lifetime). One mutex guards the counters: a request takes it once,
 * for a few additions. The service's figures (jobs by state, queue depth,
 * per-running-job rates, stored bytes) are read at scrape time.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

static const double bounds[API__LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

int api__stats_init(struct api_server *a)
{
    pthread_mutex_init(&a->stats.mu, NULL);
    a->stats.route = calloc(api__n_routes + 1, sizeof *a->stats.route);
    return a->stats.route ? 0 : -1;
}

void api__stats_free(struct api_server *a)
{
    if (!a->stats.route)
        return;
    free(a->stats.route);
    a->stats.route = NULL;
    pthread_mutex_destroy(&a->stats.mu);
}

void api__stats_record(struct api_server *a, const api__route *route, unsigned status,
                       double seconds)
{
    if (!a->stats.route)
        return;
    size_t ri = route ? (size_t)(route - api__routes) : api__n_routes;
    if (ri > api__n_routes)
        return;
    pthread_mutex_lock(&a->stats.mu);
    api__route_stats *rs = &a->stats.route[ri];
    int k = 0;
    while (k < API__MAX_STATUSES && rs->by_status[k].status && rs->by_status[k].status != status)
        k++;
    if (k < API__MAX_STATUSES) {
        rs->by_status[k].status = status;
        rs->by_status[k].count++;
    }
    if (!route || !(route->flags & API__STREAM)) {
        int b = 0;
        while (b < API__LAT_BUCKETS && seconds > bounds[b])
            b++;
        rs->lat[b]++;
        rs->lat_sum += seconds;
        rs->lat_count++;
    }
    pthread_mutex_unlock(&a->stats.mu);
}

/* ---- text building ------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) {
            t->oom = 1;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
}

static void family(text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *route_label(size_t ri)
{
    return ri < api__n_routes ? api__routes[ri].pattern : "unmatched";
}

static const char *route_method(size_t ri)
{
    return ri < api__n_routes ? api__routes[ri].method : "";
}

enum MHD_Result api__h_metrics(struct MHD_Connection *c, api__req *r)
{
    struct api_server *a = r->srv;
    svc_stats st;
    svc_error e = {0};
    if (svc_stats_get(a->svc, &st, &e) != SVC_OK)
        return api__reply_svc_error(c, &e);
    text t = {0};
    t.cap = 8192;
    t.buf = malloc(t.cap);
    if (!t.buf)
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    t.buf[0] = 0;

    family(&t, "mtld_build_info", "gauge", "Build of the running mtld (value is always 1).");
    add(&t, "mtld_build_info{version=\"%s\"} 1\n", MTLD_VERSION);

    family(&t, "mtld_jobs", "gauge", "Jobs by state.");
    const struct {
        const char *state;
        int n;
    } states[] = {{"queued", st.jobs.queued},
                  {"running", st.jobs.running},
                  {"succeeded", st.jobs.succeeded},
                  {"failed", st.jobs.failed},
                  {"cancelled", st.jobs.cancelled}};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        add(&t, "mtld_jobs{state=\"%s\"} %d\n", states[i].state, states[i].n);
    family(&t, "mtld_queue_depth", "gauge", "Jobs waiting for a worker.");
    add(&t, "mtld_queue_depth %d\n", st.jobs.queued);

    family(&t, "mtld_job_step", "gauge", "Training steps done by each running job.");
    for (size_t i = 0; i < st.n_running; i++)
        add(&t, "mtld_job_step{job=\"%lld\"} %lld\n", (long long)st.running[i].job_id,
            (long long)st.running[i].step);
    family(&t, "mtld_job_steps_per_second", "gauge",
           "Recent training steps per second of each running job.");
    for (size_t i = 0; i < st.n_running; i++)
        add(&t, "mtld_job_steps_per_second{job=\"%lld\"} %.6g\n",
            (long long)st.running[i].job_id, st.running[i].steps_per_s);
    family(&t, "mtld_job_samples_per_second", "gauge",
           "Recent training samples (rows) per second of each running job.");
    for (size_t i = 0; i < st.n_running; i++)
        add(&t, "mtld_job_samples_per_second{job=\"%lld\"} %.6g\n",
            (long long)st.running[i].job_id, st.running[i].samples_per_s);

    family(&t, "mtld_datasets", "gauge", "Datasets stored.");
    add(&t, "mtld_datasets %lld\n", (long long)st.datasets);
    family(&t, "mtld_dataset_bytes", "gauge", "Bytes of dataset rows stored.");
    add(&t, "mtld_dataset_bytes %lld\n", (long long)st.dataset_bytes);
    family(&t, "mtld_tasks", "gauge", "Tasks defined.");
    add(&t, "mtld_tasks %lld\n", (long long)st.tasks);

    family(&t, "mtld_http_requests_total", "counter", "HTTP requests by route and status.");
    pthread_mutex_lock(&a->stats.mu);
    for (size_t ri = 0; ri <= api__n_routes; ri++)
        for (int k = 0; k < API__MAX_STATUSES && a->stats.route[ri].by_status[k].status; k++)
            add(&t, "mtld_http_requests_total{method=\"%s\",route=\"%s\",status=\"%u\"} %llu\n",
                route_method(ri), route_label(ri), a->stats.route[ri].by_status[k].status,
                (unsigned long long)a->stats.route[ri].by_status[k].count);
    family(&t, "mtld_http_request_duration_seconds", "histogram",
           "HTTP request latency from headers to completion (event streams excluded).");
    for (size_t ri = 0; ri <= api__n_routes; ri++) {
        api__route_stats *rs = &a->stats.route[ri];
        if (rs->lat_count == 0)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b < API__LAT_BUCKETS; b++) {
            cum += rs->lat[b];
            add(&t,
                "mtld_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                "le=\"%g\"} %llu\n",
                route_method(ri), route_label(ri), bounds[b], (unsigned long long)cum);
        }
        cum += rs->lat[API__LAT_BUCKETS];
        add(&t,
            "mtld_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} "
            "%llu\n",
            route_method(ri), route_label(ri), (unsigned long long)cum);
        add(&t, "mtld_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.9g\n",
            route_method(ri), route_label(ri), rs->lat_sum);
        add(&t, "mtld_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
            route_method(ri), route_label(ri), (unsigned long long)rs->lat_count);
    }
    pthread_mutex_unlock(&a->stats.mu);
    if (t.oom) {
        free(t.buf);
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    }
    return api__reply_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t.buf);
}
