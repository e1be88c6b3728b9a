/*
 * daemon/svc_job.c — the job resources: submission (validate the spec and
 * every task it names, then commit it as queued and wake a worker), views,
 * cancel, removal, metrics and checkpoint listings.
 *
 * A job's view is the stored row plus, while it runs, live figures from its
 * running[] slot (step, progress, eta_seconds), which the runner updates
 * with atomics every step: the store is written at most four times a second.
 * Cancelling a running job sets the slot's flag and waits (at most one
 * second) for the runner to record `cancelled`, so the reply normally shows
 * the final state.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_meta.h"
#include "daemon/svc_log.h"
#include "engine/weighting.h"

/* How long svc_job_cancel waits for a running job to stop. */
#define CANCEL_WAIT_S 1.0

static int is_terminal(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled");
}

json_t *svc__job_json(const store_job *j)
{
    json_t *o = json_object();
    json_t *spec = json_loads(j->spec ? j->spec : "{}", 0, NULL);
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "name", json_string(j->name ? j->name : ""));
    json_t *alg = json_object_get(spec, "algorithm");
    json_object_set_new(o, "algorithm", json_string(json_is_string(alg) ? json_string_value(alg) : ""));
    json_object_set_new(o, "state", json_string(j->state));
    json_object_set_new(o, "priority", json_integer(j->priority));
    json_object_set_new(o, "progress", json_real(j->progress));
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "steps", json_integer(j->steps));
    json_object_set_new(o, "created_at", j->created_at ? json_string(j->created_at) : json_null());
    json_object_set_new(o, "started_at", j->started_at ? json_string(j->started_at) : json_null());
    json_object_set_new(o, "finished_at",
                        j->finished_at ? json_string(j->finished_at) : json_null());
    if (j->error_code)
        json_object_set_new(o, "error",
                            json_pack("{s:s,s:s}", "code", j->error_code, "message",
                                      j->error_message ? j->error_message : ""));
    if (j->results) {
        json_t *r = json_loads(j->results, 0, NULL);
        if (r)
            json_object_set_new(o, "results", r);
    }
    if (spec)
        json_object_set_new(o, "spec", spec);
    return o;
}

int svc__live_figures(svc *s, int64_t id, json_t *o, double *eta)
{
    long long step = -1, total = 0, step0 = 0;
    double t0 = 0;
    int have_eta = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < SVC__MAX_RUNNING; i++)
        if (s->running[i].job_id == id) {
            step = atomic_load(&s->running[i].step);
            total = atomic_load(&s->running[i].total);
            step0 = atomic_load(&s->running[i].step0);
            t0 = s->running[i].t0;
        }
    pthread_mutex_unlock(&s->mu);
    if (step >= 0 && total > 0) {
        double elapsed = svc__now() - t0;
        json_object_set_new(o, "step", json_integer(step));
        json_object_set_new(o, "steps", json_integer(total));
        json_object_set_new(o, "progress", json_real((double)step / (double)total));
        if (step > step0 && elapsed > 0) {
            *eta = elapsed / (double)(step - step0) * (double)(total - step);
            have_eta = 1;
        }
    }
    return have_eta;
}

/* Adds the live figures of a running job (step, progress, eta_seconds) to
 * its view; eta_seconds is null when the job is not running or too new to
 * estimate (no step done since it started or resumed). */
static void add_live(svc *s, json_t *o, const store_job *j)
{
    double eta;
    int known = !strcmp(j->state, "running") && svc__live_figures(s, j->id, o, &eta);
    json_object_set_new(o, "eta_seconds", known ? json_real(eta) : json_null());
}

int svc__find_job(svc *s, const char *key, store_job *out, svc_error *e)
{
    char *end = NULL;
    long long id = strtoll(key, &end, 10);
    if (!key[0] || *end || id <= 0)
        return svc__fail(e, SVC_ENOTFOUND, NULL, "no job '%s': job ids are positive integers",
                         key);
    int rc = store_job_get(s->db, id, out);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "job", key);
    return SVC_OK;
}

int svc_job_submit(svc *s, json_t *spec, json_t **out, svc_error *e)
{
    svc__spec sp;
    int64_t task_ids[ENG_MAX_TASKS];
    int64_t dataset_id = -1;
    int rc = svc__spec_parse(spec, &sp, e);
    if (rc != SVC_OK)
        return rc;
    if (svc__is_meta(sp.algorithm) && (rc = svc__meta_submit_check(s, &sp, spec, e)) != SVC_OK)
        return rc;
    for (int i = 0; i < sp.n_tasks; i++) {
        store_task t = {0};
        char field[32];
        snprintf(field, sizeof field, "tasks[%d]", i);
        rc = store_task_find(s->db, sp.tasks[i].task, &t);
        if (rc == STORE_ENOTFOUND)
            return svc__fail(e, SVC_EINVAL, field, "no task '%s'", sp.tasks[i].task);
        if (rc != STORE_OK)
            return svc__store_fail(e, rc, "task", sp.tasks[i].task);
        task_ids[i] = t.id;
        int64_t ds = t.dataset_id;
        if (i == sp.es_task) {
            /* the metric must be one this task's kind records */
            json_t *def = json_loads(t.def ? t.def : "", 0, NULL);
            rc = svc__spec_es_fits_kind(&sp, json_string_value(json_object_get(def, "kind")), e);
            json_decref(def);
            if (rc != SVC_OK) {
                store_task_clear(&t);
                return rc;
            }
        }
        store_task_clear(&t);
        if (ds == 0 && !svc__is_meta(sp.algorithm)) {
            return svc__fail(e, SVC_EINVAL, field,
                             "task '%s' is a generator task: generator tasks serve the "
                             "meta-learning algorithms (maml, fomaml, reptile, anil, metasgd)",
                             sp.tasks[i].task);
        }
        if (dataset_id >= 0 && ds != dataset_id) {
            /* Tasks on several datasets: a step trains one task on its own
             * dataset's batch ("sampling"), so what needs every task on one
             * batch cannot apply. */
            if (svc__is_meta(sp.algorithm))
                return svc__fail(e, SVC_EUNSUPPORTED, field,
                                 "the tasks of a meta-learning job must share one dataset "
                                 "(task '%s' uses another)", sp.tasks[i].task);
            if (sp.weighting == ENG_WT_GRADNORM || sp.weighting == ENG_WT_PCGRAD)
                return svc__fail(e, SVC_EUNSUPPORTED, "weighting",
                                 "weighting '%s' needs every task on one batch; task '%s' uses "
                                 "another dataset (use static, uncertainty or dwa)",
                                 svc__weighting_name(sp.weighting), sp.tasks[i].task);
            if (sp.baselines)
                return svc__fail(e, SVC_EUNSUPPORTED, "baselines",
                                 "baselines are not available for tasks on several datasets "
                                 "(task '%s' uses another)", sp.tasks[i].task);
        }
        dataset_id = ds;
        for (int j = 0; j < i; j++)
            if (task_ids[j] == task_ids[i])
                return svc__fail(e, SVC_EINVAL, field, "task '%s' is listed twice",
                                 sp.tasks[i].task);
    }
    if (sp.from_job[0]) {
        store_job src = {0};
        store_checkpoint c = {0};
        int64_t src_id = strtoll(sp.from_job, NULL, 10);
        rc = store_job_get(s->db, src_id, &src);
        store_job_clear(&src);
        if (rc == STORE_ENOTFOUND)
            return svc__fail(e, SVC_EINVAL, "from_checkpoint", "'from_checkpoint': no job %s",
                             sp.from_job);
        if (rc != STORE_OK)
            return svc__store_fail(e, rc, "job", sp.from_job);
        rc = store_checkpoint_latest(s->db, src_id, &c);
        store_checkpoint_clear(&c);
        if (rc == STORE_ENOTFOUND)
            return svc__fail(e, SVC_EINVAL, "from_checkpoint",
                             "'from_checkpoint': job %s has no checkpoint", sp.from_job);
        if (rc != STORE_OK)
            return svc__store_fail(e, rc, "checkpoint of job", sp.from_job);
    }
    if (sp.from_import[0]) {
        char path[4096];
        if ((rc = svc__import_path(s, sp.from_import, path, sizeof path, e)) != SVC_OK)
            return rc;
    }
    if (s->max_queued > 0) {
        svc_counts c;
        if (svc_job_counts(s, &c) == SVC_OK && c.queued >= s->max_queued)
            return svc__fail(e, SVC_EFULL, NULL, "the queue holds %d jobs already (--max-queued)",
                             c.queued);
    }
    char *text = json_dumps(spec, JSON_COMPACT);
    if (!text)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    int64_t id = 0;
    rc = store_job_create(s->db, sp.name, text, sp.priority, 0, task_ids, (size_t)sp.n_tasks, &id);
    free(text);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "job", sp.name);
    SVC_LOG(SVC_LOG_INFO, "job_submitted", "job=%lld priority=%d", (long long)id, sp.priority);
    svc__wake(s);
    *out = json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "queued");
    return SVC_OK;
}

int svc_job_list(svc *s, const char *state, json_t **out, svc_error *e)
{
    static const char *const states[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    if (state) {
        int ok = 0;
        for (int i = 0; i < 5; i++)
            ok |= strcmp(state, states[i]) == 0;
        if (!ok)
            return svc__fail(e, SVC_EINVAL, "state",
                             "'state' must be one of queued, running, succeeded, failed, cancelled");
    }
    store_job *jobs = NULL;
    size_t n = 0;
    int rc = store_job_list(s->db, state, &jobs, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "job", "");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = svc__job_json(&jobs[i]);
        json_object_del(j, "spec");
        add_live(s, j, &jobs[i]);
        json_array_append_new(arr, j);
    }
    store_job_list_free(jobs, n);
    *out = json_pack("{s:o,s:I}", "jobs", arr, "total", (json_int_t)n);
    return SVC_OK;
}

int svc_job_get(svc *s, const char *key, json_t **out, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    *out = svc__job_json(&j);
    add_live(s, *out, &j);
    store_job_clear(&j);
    return SVC_OK;
}

/* Called with svc.mu held. */
static int is_running_here(svc *s, int64_t id)
{
    for (int i = 0; i < SVC__MAX_RUNNING; i++)
        if (s->running[i].job_id == id)
            return 1;
    return 0;
}

int svc_job_cancel(svc *s, const char *key, json_t **out, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    int64_t id = j.id;
    int stopping = 0;
    store_job_clear(&j);
    /* Under svc.mu no worker can claim the job between our read and write. */
    pthread_mutex_lock(&s->mu);
    rc = store_job_get(s->db, id, &j);
    if (rc == STORE_OK) {
        if (!strcmp(j.state, "queued")) {
            rc = store_job_set_state(s->db, id, "cancelled", NULL, NULL);
            if (rc == STORE_OK) {
                svc__changed(s);
                SVC_LOG(SVC_LOG_INFO, "job_cancelled", "job=%lld was=queued", (long long)id);
            }
        } else if (!strcmp(j.state, "running")) {
            for (int i = 0; i < SVC__MAX_RUNNING; i++)
                if (s->running[i].job_id == id)
                    atomic_store(&s->running[i].cancel, 1);
            /* The runner checks the flag between steps (and inside evaluation):
             * wait for it to finish so the reply shows the end state. */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += (time_t)CANCEL_WAIT_S;
            while (is_running_here(s, id))
                if (pthread_cond_timedwait(&s->slot_freed, &s->mu, &dl) == ETIMEDOUT)
                    break;
            stopping = is_running_here(s, id);
        } else {
            rc = 1; /* already finished */
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 1) {
        rc = svc__fail(e, SVC_ECONFLICT, NULL, "job %s has already finished (%s)", key, j.state);
        store_job_clear(&j);
        return rc;
    }
    store_job_clear(&j);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "job", key);
    /* The job as it is now: cancelled, or still stopping (a long step, its
     * final checkpoint), or finished on its own in the meantime. */
    rc = svc_job_get(s, key, out, e);
    if (rc == SVC_OK && stopping) {
        json_t *st = json_object_get(*out, "state");
        if (json_is_string(st) && !strcmp(json_string_value(st), "running"))
            json_object_set_new(*out, "cancel_requested", json_true());
    }
    return rc;
}

int svc_job_delete(svc *s, const char *key, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    if (!is_terminal(j.state)) {
        rc = svc__fail(e, SVC_ECONFLICT, NULL, "job %s is %s: cancel it first", key, j.state);
        store_job_clear(&j);
        return rc;
    }
    store_checkpoint *cs = NULL;
    size_t n = 0;
    if (store_checkpoint_list(s->db, j.id, &cs, &n) == STORE_OK) {
        for (size_t i = 0; i < n; i++)
            unlink(cs[i].path);
        store_checkpoint_list_free(cs, n);
    }
    rc = store_job_delete(s->db, j.id);
    if (rc == STORE_OK)
        SVC_LOG(SVC_LOG_INFO, "job_deleted", "job=%lld checkpoints=%zu", (long long)j.id, n);
    store_job_clear(&j);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "job", key);
    return SVC_OK;
}

int svc_job_metrics(svc *s, const char *key, int64_t since, json_t **out, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    store_metric *m = NULL;
    size_t n = 0;
    rc = store_metric_list(s->db, j.id, since, &m, &n);
    store_job_clear(&j);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "metrics of job", key);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:s,s:o}", "step", (json_int_t)m[i].step,
                                             "task", m[i].task, "split", m[i].split, "name",
                                             m[i].name,
                                             "value", isfinite(m[i].value) ? json_real(m[i].value)
                                                                           : json_null()));
    store_metric_list_free(m, n);
    *out = json_pack("{s:o}", "metrics", arr);
    return SVC_OK;
}

/* The index in cs (oldest first) of the job's best checkpoint, -1 if none:
 * the newest record at the step the latest checkpoint names as best_step
 * (the runner writes a checkpoint whenever the held-out loss improves). */
static long best_index(const store_checkpoint *cs, size_t n)
{
    if (n == 0)
        return -1;
    json_t *meta = svc__safetensors_metadata(cs[n - 1].path);
    const char *bs = json_string_value(json_object_get(meta, "best_step"));
    long best = -1;
    if (bs) {
        long long step = strtoll(bs, NULL, 10);
        for (size_t i = 0; i < n; i++)
            if (cs[i].step == step)
                best = (long)i;
    }
    json_decref(meta);
    return best;
}

int svc_job_checkpoints(svc *s, const char *key, json_t **out, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    store_checkpoint *cs = NULL;
    size_t n = 0;
    rc = store_checkpoint_list(s->db, j.id, &cs, &n);
    store_job_clear(&j);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "checkpoints of job", key);
    long best = best_index(cs, n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:I,s:I,s:s,s:b,s:b}", "id",
                                             (json_int_t)cs[i].id, "step", (json_int_t)cs[i].step,
                                             "bytes", (json_int_t)cs[i].bytes, "created_at",
                                             cs[i].created_at ? cs[i].created_at : "", "latest",
                                             i + 1 == n, "best", (long)i == best));
    store_checkpoint_list_free(cs, n);
    *out = json_pack("{s:o}", "checkpoints", arr);
    return SVC_OK;
}

int svc_job_checkpoint_file_which(svc *s, const char *key, const char *which, char *path,
                                  size_t pathlen, int64_t *bytes, svc_error *e)
{
    store_job j = {0};
    int rc = svc__find_job(s, key, &j, e);
    if (rc != SVC_OK)
        return rc;
    store_checkpoint *cs = NULL;
    size_t n = 0;
    rc = store_checkpoint_list(s->db, j.id, &cs, &n);
    char state[16];
    snprintf(state, sizeof state, "%s", j.state ? j.state : "");
    store_job_clear(&j);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "checkpoints of job", key);
    long pick = -1;
    if (!strcmp(which, "latest")) {
        pick = (long)n - 1;
    } else if (!strcmp(which, "best")) {
        pick = best_index(cs, n);
    } else {
        char *end = NULL;
        long long cid = strtoll(which, &end, 10);
        if (!which[0] || *end || cid <= 0) {
            store_checkpoint_list_free(cs, n);
            return svc__fail(e, SVC_ENOTFOUND, NULL,
                             "no checkpoint '%s': use latest, best or a checkpoint id", which);
        }
        for (size_t i = 0; i < n; i++)
            if (cs[i].id == cid)
                pick = (long)i;
        if (pick < 0) {
            store_checkpoint_list_free(cs, n);
            return svc__fail(e, SVC_ENOTFOUND, NULL, "job %s has no checkpoint %s", key, which);
        }
    }
    if (pick < 0) {
        store_checkpoint_list_free(cs, n);
        /* "yet" only while one may still come */
        if (!strcmp(state, "queued") || !strcmp(state, "running"))
            return svc__fail(e, SVC_EGONE, NULL, "job %s has no %s checkpoint yet", key, which);
        return svc__fail(e, SVC_EGONE, NULL, "job %s has no %s checkpoint (the job ended %s without writing one)",
                         key, which, state);
    }
    snprintf(path, pathlen, "%s", cs[pick].path);
    *bytes = cs[pick].bytes;
    store_checkpoint_list_free(cs, n);
    return SVC_OK;
}

int svc_job_checkpoint_file(svc *s, const char *key, char *path, size_t pathlen, int64_t *bytes,
                            svc_error *e)
{
    return svc_job_checkpoint_file_which(s, key, "latest", path, pathlen, bytes, e);
}
