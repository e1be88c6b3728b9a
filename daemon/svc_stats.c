/*
 * daemon/svc_stats.c — the service's figures for GET /metrics: jobs by
 * state (the queue depth is the queued count), the running jobs with their
 * recent training rate (from their progress events, svc_events.c), and what
 * the store holds. Read on demand, nothing is kept: a scrape every few
 * seconds costs a few store reads.
 */
#include <string.h>

#include "daemon/svc_internal.h"

int svc_stats_get(svc *s, svc_stats *out, svc_error *e)
{
    memset(out, 0, sizeof *out);
    if (svc_job_counts(s, &out->jobs) != SVC_OK)
        return svc__fail(e, SVC_EIO, NULL, "cannot count jobs");
    store_dataset *ds = NULL;
    size_t n = 0;
    int rc = store_dataset_list(s->db, &ds, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "datasets", "");
    out->datasets = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        out->dataset_bytes += ds[i].bytes;
    store_dataset_list_free(ds, n);
    store_task *ts = NULL;
    rc = store_task_list(s->db, &ts, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "tasks", "");
    out->tasks = (int64_t)n;
    store_task_list_free(ts, n);

    int64_t ids[SVC__MAX_RUNNING];
    int n_ids = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < SVC__MAX_RUNNING; i++)
        if (s->running[i].job_id > 0)
            ids[n_ids++] = s->running[i].job_id;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n_ids && out->n_running < SVC_STATS_MAX_RUNNING; i++) {
        store_job j = {0};
        if (store_job_get(s->db, ids[i], &j) != STORE_OK)
            continue;
        size_t k = out->n_running++;
        out->running[k].job_id = ids[i];
        out->running[k].step = j.step;
        out->running[k].steps = j.steps;
        svc__events_rate(s, ids[i], &out->running[k].steps_per_s,
                         &out->running[k].samples_per_s);
        store_job_clear(&j);
    }
    return SVC_OK;
}
