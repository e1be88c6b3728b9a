/*
 * daemon/svc_core.c — the service object and its worker pool.
 *
 * Design (after Redis's bio.c): N worker threads sleep on one condition
 * variable. Submitting a job commits it to SQLite as `queued` and signals
 * the condition; a woken worker asks the store for the next queued job
 * (priority, then age) and claims it by setting it `running` while holding
 * svc.mu, so two workers can never claim the same job. The queue therefore
 * IS the jobs table: nothing acknowledged lives only in memory, and a crash
 * loses no queued work. Running jobs sit in running[] so cancel and
 * shutdown can reach them through atomics the runner reads between steps.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_log.h"

static const struct {
    int code;
    const char *name;
} code_names[] = {
    {SVC_OK, "ok"},
    {SVC_EINVAL, "invalid"},
    {SVC_ENOTFOUND, "not_found"},
    {SVC_EEXISTS, "already_exists"},
    {SVC_ECONFLICT, "conflict"},
    {SVC_EFULL, "queue_full"},
    {SVC_ENOMEM, "out_of_memory"},
    {SVC_EIO, "storage_error"},
    {SVC_EUNSUPPORTED, "unsupported"},
    {SVC_ELIMIT, "too_large"},
    {SVC_EGONE, "not_available"},
};

const char *svc_code_name(int code)
{
    for (size_t i = 0; i < sizeof code_names / sizeof code_names[0]; i++)
        if (code_names[i].code == code)
            return code_names[i].name;
    return "internal";
}

int svc__fail(svc_error *e, int code, const char *field, const char *fmt, ...)
{
    if (e) {
        e->code = code;
        snprintf(e->field, sizeof e->field, "%s", field ? field : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

int svc__store_fail(svc_error *e, int rc, const char *what, const char *key)
{
    switch (rc) {
    case STORE_ENOTFOUND:
        return svc__fail(e, SVC_ENOTFOUND, NULL, "no %s '%s'", what, key ? key : "");
    case STORE_EEXISTS:
        return svc__fail(e, SVC_EEXISTS, "name", "a %s named '%s' already exists", what,
                         key ? key : "");
    case STORE_EINUSE:
        return svc__fail(e, SVC_ECONFLICT, NULL, "%s '%s' is in use", what, key ? key : "");
    case STORE_ENOMEM:
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    case STORE_EINVAL:
        return svc__fail(e, SVC_EINVAL, NULL, "invalid %s '%s'", what, key ? key : "");
    default:
        return svc__fail(e, SVC_EIO, NULL, "storage error on %s: %s", what, store_strerror(rc));
    }
}

int svc__valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return 0;
    if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

double svc__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void svc__changed(svc *s)
{
    atomic_fetch_add(&s->changes, 1);
}

unsigned long svc_changes(svc *s)
{
    return s ? atomic_load(&s->changes) : 0;
}

/* Called with svc.mu held. */
static svc__running *claim_slot(svc *s, int64_t job_id)
{
    for (int i = 0; i < SVC__MAX_RUNNING; i++)
        if (s->running[i].job_id == 0) {
            svc__running *r = &s->running[i];
            r->job_id = job_id;
            atomic_store(&r->cancel, 0);
            atomic_store(&r->step, 0);
            atomic_store(&r->total, 0);
            atomic_store(&r->step0, 0);
            r->t0 = svc__now();
            return r;
        }
    return NULL;
}

/* Logs how a job ended, read back from the store (the runner recorded it). */
static void log_job_end(svc *s, int64_t id, double t_start)
{
    store_job j = {0};
    if (!svc_log_enabled(SVC_LOG_INFO) || store_job_get(s->db, id, &j) != STORE_OK)
        return;
    char msg[400];
    double dur = svc__now() - t_start;
    if (!strcmp(j.state, "failed"))
        svc_log(SVC_LOG_WARN, "job_finished", "job=%lld state=failed code=%s step=%lld "
                "duration_s=%.3f message=\"%s\"", (long long)id,
                j.error_code ? j.error_code : "-", (long long)j.step, dur,
                svc_log_quote(msg, sizeof msg, j.error_message));
    else if (!strcmp(j.state, "queued"))
        svc_log(SVC_LOG_INFO, "job_requeued", "job=%lld step=%lld duration_s=%.3f",
                (long long)id, (long long)j.step, dur);
    else
        svc_log(SVC_LOG_INFO, "job_finished", "job=%lld state=%s step=%lld steps=%lld "
                "duration_s=%.3f", (long long)id, j.state, (long long)j.step,
                (long long)j.steps, dur);
    store_job_clear(&j);
}

/* Training runs below the HTTP threads: a worker is busy for minutes on
 * end and an HTTP request for microseconds, so at equal priority the
 * scheduler's time slices make a request wait behind a training step
 * (issue 6: p99 latency). At nice 19 a worker still gets every cycle nobody
 * else wants. Linux's nice is per thread, so only this thread is changed.
 * Under mtld.service's system-call filter setpriority is allowed for this;
 * where it is refused anyway, training just runs at the daemon's priority. */
static void lower_priority(svc *s)
{
    pthread_setname_np(pthread_self(), "mtld-worker");
    if (s->worker_nice <= 0)
        return;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, s->worker_nice) != 0)
        SVC_LOG(SVC_LOG_WARN, "worker_nice_refused", "nice=%d reason=\"%s\"", s->worker_nice,
                strerror(errno));
}

static void *worker_main(void *arg)
{
    svc *s = arg;
    lower_priority(s);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!atomic_load(&s->stopping) && s->pending == 0)
            pthread_cond_wait(&s->wake, &s->mu);
        if (atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        int64_t id = 0;
        svc__running *slot = NULL;
        if (store_job_next_queued(s->db, &id) == STORE_OK &&
            store_job_set_state(s->db, id, "running", NULL, NULL) == STORE_OK)
            slot = claim_slot(s, id);
        else
            s->pending = 0; /* nothing queued: sleep until the next submit */
        pthread_mutex_unlock(&s->mu);
        if (!slot)
            continue;
        svc__changed(s);
        double t_start = svc__now();
        SVC_LOG(SVC_LOG_INFO, "job_started", "job=%lld", (long long)id);
        svc__run_job(s, id, slot);
        log_job_end(s, id, t_start);
        pthread_mutex_lock(&s->mu);
        slot->job_id = 0;
        pthread_cond_broadcast(&s->slot_freed);
        pthread_mutex_unlock(&s->mu);
        svc__changed(s);
    }
    return NULL;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

/* Removes "*.tmp" files a crash left in the checkpoint directory: a
 * checkpoint is only ever recorded after its rename, so a .tmp file is
 * never referenced by anything. */
static void remove_stray_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
            char path[4600];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (unlink(path) == 0)
                SVC_LOG(SVC_LOG_WARN, "stray_checkpoint_removed", "path=\"%s\"", path);
        }
    }
    closedir(d);
}

int svc_open(const svc_config *cfg, svc **out, char *errbuf, size_t errlen)
{
    svc *s = calloc(1, sizeof *s);
    char path[4096];
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return SVC_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->slot_freed, NULL);
    s->max_model_bytes = cfg->max_model_bytes;
    s->n_workers = cfg->workers > 0 ? cfg->workers : 1;
    s->worker_nice = cfg->worker_nice;
    s->max_queued = cfg->max_queued;
    s->data_dir = strdup(cfg->data_dir);
    snprintf(path, sizeof path, "%s/checkpoints", cfg->data_dir);
    s->ckpt_dir = strdup(path);
    if (!s->data_dir || !s->ckpt_dir) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    if (make_dir(s->data_dir) != 0 || make_dir(s->ckpt_dir) != 0) {
        snprintf(errbuf, errlen, "cannot create data directory %s: %s", s->data_dir,
                 strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/mtld.db", cfg->data_dir);
    if (store_open(path, &s->db, errbuf, errlen) != STORE_OK)
        goto fail;
    int requeued = 0;
    if (store_job_requeue_running(s->db, &requeued) != STORE_OK) {
        snprintf(errbuf, errlen, "cannot re-queue interrupted jobs");
        goto fail;
    }
    if (requeued > 0)
        SVC_LOG(SVC_LOG_WARN, "jobs_requeued", "count=%d reason=\"found running at start\"",
                requeued);
    remove_stray_tmp(s->ckpt_dir);
    s->pending = 1; /* look for queued jobs at start (resumes after a crash) */
    s->threads = calloc((size_t)s->n_workers, sizeof *s->threads);
    if (!s->threads) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
            snprintf(errbuf, errlen, "cannot start worker thread");
            s->n_workers = i;
            goto fail;
        }
        s->started = i + 1;
    }
    *out = s;
    return SVC_OK;
fail:
    svc_close(s);
    return SVC_EIO;
}

void svc__wake(svc *s)
{
    pthread_mutex_lock(&s->mu);
    s->pending++;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    svc__changed(s);
}

void svc_stop(svc *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stopping, 1);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->started; i++)
        pthread_join(s->threads[i], NULL);
    s->started = 0;
}

void svc_close(svc *s)
{
    if (!s)
        return;
    svc_stop(s);
    svc__extras_free(s); /* event rings, predict cache (svc_events.c) */
    store_close(s->db);
    free(s->threads);
    free(s->data_dir);
    free(s->ckpt_dir);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->slot_freed);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int svc_job_counts(svc *s, svc_counts *out)
{
    static const char *states[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    int *dst[] = {&out->queued, &out->running, &out->succeeded, &out->failed, &out->cancelled};
    for (int i = 0; i < 5; i++) {
        store_job *jobs = NULL;
        size_t n = 0;
        if (store_job_list(s->db, states[i], &jobs, &n) != STORE_OK)
            return SVC_EIO;
        *dst[i] = (int)n;
        store_job_list_free(jobs, n);
    }
    return SVC_OK;
}
