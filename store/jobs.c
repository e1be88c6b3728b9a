/*
 * store/jobs.c — training jobs: state machine timestamps, progress, results,
 * the queue order, and the job_tasks links that keep a queued or running
 * job's tasks from being deleted under it.
 *
 * The store records states; the service layer decides transitions. What the
 * store guarantees is the bookkeeping: entering "running" stamps started_at
 * once (a requeued job keeps its first start), entering a terminal state
 * stamps finished_at, and going back to queued/running clears it. The queue
 * order is priority (higher first) then age (lower id first; ids only grow).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define JOB_COLS                                                                               \
    "id, name, state, spec, priority, step, steps, progress, created_at, started_at,"        \
    " finished_at, error_code, error_message, results"

static int valid_state(const char *state)
{
    static const char *const states[] = {"queued", "running", "succeeded", "failed",
                                         "cancelled"};
    size_t i;
    for (i = 0; state && i < sizeof states / sizeof states[0]; i++)
        if (strcmp(state, states[i]) == 0)
            return 1;
    return 0;
}

void store_job_clear(store_job *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->state);
    free(j->spec);
    free(j->created_at);
    free(j->started_at);
    free(j->finished_at);
    free(j->error_code);
    free(j->error_message);
    free(j->results);
    memset(j, 0, sizeof *j);
}

/* store_job_clear for store__collect and store__list_free. */
static void job_clear(void *item)
{
    store_job_clear(item);
}

void store_job_list_free(store_job *j, size_t n)
{
    store__list_free(j, n, sizeof *j, job_clear);
}

static int job_from_row(sqlite3_stmt *st, void *item)
{
    store_job *out = item;
    store_job j = {0};
    /* column index of each string field, in JOB_COLS order */
    char **const str[] = {&j.name,       &j.state,       &j.spec,       &j.created_at,
                          &j.started_at, &j.finished_at, &j.error_code, &j.error_message,
                          &j.results};
    static const int col[] = {1, 2, 3, 8, 9, 10, 11, 12, 13};
    size_t i;
    int rc = STORE_OK;

    j.id = sqlite3_column_int64(st, 0);
    j.priority = sqlite3_column_int(st, 4);
    j.step = sqlite3_column_int64(st, 5);
    j.steps = sqlite3_column_int64(st, 6);
    j.progress = sqlite3_column_double(st, 7);
    for (i = 0; rc == STORE_OK && i < sizeof col / sizeof col[0]; i++)
        rc = store__col_strdup(st, col[i], str[i]);
    if (rc == STORE_OK)
        *out = j;
    else
        store_job_clear(&j);
    return rc;
}

int store__job_exists(store *s, int64_t job_id)
{
    int found = 0;
    int rc = store__exists(s, "SELECT 1 FROM jobs WHERE id = ?1", job_id, &found);
    return rc == STORE_OK && !found ? STORE_ENOTFOUND : rc;
}

/* ---- create ---------------------------------------------------------------- */

static int job_create_tx(store *s, const char *name, const char *spec, int priority,
                         int64_t steps, const int64_t *task_ids, size_t n_tasks, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    size_t i;
    int found = 0;
    int rc = store__prepare(s,
                            "INSERT INTO jobs(name, state, spec, priority, steps)"
                            " VALUES (?1, 'queued', ?2, ?3, ?4)",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, name);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 2, spec);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int(st, 3, priority));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 4, steps));
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc != STORE_OK)
        goto fail;
    id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    st = NULL;

    rc = store__prepare(s, "INSERT OR IGNORE INTO job_tasks(job_id, task_id) VALUES (?1, ?2)",
                        &st);
    for (i = 0; rc == STORE_OK && i < n_tasks; i++) {
        rc = store__exists(s, "SELECT 1 FROM tasks WHERE id = ?1", task_ids[i], &found);
        if (rc == STORE_OK && !found)
            rc = STORE_ENOTFOUND;
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 1, id));
        if (rc == STORE_OK)
            rc = store__err(sqlite3_bind_int64(st, 2, task_ids[i]));
        if (rc == STORE_OK)
            rc = store__step_done(st);
        sqlite3_reset(st);
    }
    if (rc == STORE_OK)
        *id_out = id;
fail:
    sqlite3_finalize(st);
    return rc;
}

/* STORE_ENOTFOUND when a task id names no task. */
int store_job_create(store *s, const char *name, const char *spec, int priority, int64_t steps,
                     const int64_t *task_ids, size_t n_tasks, int64_t *id_out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (!s || !spec || steps < 0 || (n_tasks && !task_ids) || !id_out)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_create_tx(s, name, spec, priority, steps, task_ids, n_tasks, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
fail:
    return rc;
}

/* ---- get / list ------------------------------------------------------------- */

static int job_get_tx(store *s, int64_t id, store_job *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        rc = job_from_row(st, out);
    sqlite3_finalize(st);
    return rc;
}

int store_job_get(store *s, int64_t id, store_job *out)
{
    store_job j = {0};
    int rc = STORE_EINVAL;
    if (!s || !out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_get_tx(s, id, &j));
    store__unlock(s);
    if (rc == STORE_OK)
        *out = j;
    else
        store_job_clear(&j);
fail:
    return rc;
}

static int job_list_tx(store *s, const char *state, store_job **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "SELECT " JOB_COLS " FROM jobs"
                            " WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC",
                            &st);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 1, state);
    if (rc == STORE_OK)
        rc = store__collect(st, sizeof **out, job_from_row, job_clear, (void **)out,
                            n_out);
    sqlite3_finalize(st);
    return rc;
}

/* STORE_EINVAL for a state that is not one of the five. */
int store_job_list(store *s, const char *state, store_job **out, size_t *n)
{
    store_job *items = NULL;
    size_t count = 0;
    int rc = STORE_EINVAL;
    if (!s || (state && !valid_state(state)) || !out || !n)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_list_tx(s, state, &items, &count));
    store__unlock(s);
    if (rc == STORE_OK) {
        *out = items;
        *n = count;
    } else {
        store_job_list_free(items, count);
    }
fail:
    return rc;
}

/* ---- updates ---------------------------------------------------------------- */

/* Steps a prepared UPDATE/DELETE of one job: STORE_ENOTFOUND when it touched
 * no row. Finalises st. */
static int step_one(store *s, sqlite3_stmt *st, int rc)
{
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK && sqlite3_changes(s->db) == 0)
        rc = STORE_ENOTFOUND;
    sqlite3_finalize(st);
    return rc;
}

static int job_set_state_tx(store *s, int64_t id, const char *state, const char *err_code,
                            const char *err_msg)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(
        s,
        "UPDATE jobs SET state = ?2, error_code = ?3, error_message = ?4,"
        " started_at = CASE WHEN ?2 = 'running' THEN coalesce(started_at, " STORE__NOW ")"
        "              ELSE started_at END,"
        " finished_at = CASE WHEN ?2 IN " STORE__TERMINAL " THEN " STORE__NOW " ELSE NULL END"
        " WHERE id = ?1",
        &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 2, state);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 3, err_code);
    if (rc == STORE_OK)
        rc = store__bind_text(st, 4, err_msg);
    return step_one(s, st, rc);
}

/* STORE_EINVAL for a state that is not one of the five. */
int store_job_set_state(store *s, int64_t id, const char *state, const char *err_code,
                        const char *err_msg)
{
    int rc = STORE_EINVAL;
    if (!s || !valid_state(state))
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_set_state_tx(s, id, state, err_code, err_msg));
    store__unlock(s);
fail:
    return rc;
}

static int job_set_progress_tx(store *s, int64_t id, int64_t step, int64_t steps,
                               double progress)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "UPDATE jobs SET step = ?2, steps = ?3, progress = ?4 WHERE id = ?1",
                            &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 2, step));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 3, steps));
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_double(st, 4, progress));
    return step_one(s, st, rc);
}

/* STORE_EINVAL unless 0 <= progress <= 1 and step, steps >= 0. */
int store_job_set_progress(store *s, int64_t id, int64_t step, int64_t steps, double progress)
{
    int rc = STORE_EINVAL;
    if (!s || step < 0 || steps < 0 || !(progress >= 0.0 && progress <= 1.0))
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_set_progress_tx(s, id, step, steps, progress));
    store__unlock(s);
fail:
    return rc;
}

static int job_set_results_tx(store *s, int64_t id, const char *results)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s, "UPDATE jobs SET results = ?2 WHERE id = ?1", &st);
    if (rc == STORE_OK)
        rc = store__err(sqlite3_bind_int64(st, 1, id));
    if (rc == STORE_OK)
        rc = store__bind_text(st, 2, results);
    return step_one(s, st, rc);
}

/* results NULL clears them. */
int store_job_set_results(store *s, int64_t id, const char *results)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_set_results_tx(s, id, results));
    store__unlock(s);
fail:
    return rc;
}

/* ---- queue ------------------------------------------------------------------ */

static int job_next_queued_tx(store *s, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "SELECT id FROM jobs WHERE state = 'queued'"
                            " ORDER BY priority DESC, id ASC LIMIT 1",
                            &st);
    if (rc == STORE_OK)
        rc = store__step_row(st);
    if (rc == STORE_OK)
        *id_out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int store_job_next_queued(store *s, int64_t *id_out)
{
    int64_t id = 0;
    int rc = STORE_EINVAL;
    if (!s || !id_out)
        goto fail;
    store__lock(s);
    rc = store__begin_read(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_next_queued_tx(s, &id));
    store__unlock(s);
    if (rc == STORE_OK)
        *id_out = id;
fail:
    return rc;
}

static int job_requeue_running_tx(store *s, int *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prepare(s,
                            "UPDATE jobs SET state = 'queued', finished_at = NULL"
                            " WHERE state = 'running'",
                            &st);
    if (rc == STORE_OK)
        rc = store__step_done(st);
    if (rc == STORE_OK)
        *n_out = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* started_at is kept: a resumed job started when it first ran. */
int store_job_requeue_running(store *s, int *n_out)
{
    int rc = STORE_EINVAL, n = 0;
    if (!s || !n_out)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_requeue_running_tx(s, &n));
    store__unlock(s);
    if (rc == STORE_OK)
        *n_out = n;
fail:
    return rc;
}

/* ---- delete ----------------------------------------------------------------- */

static int job_delete_tx(store *s, int64_t id)
{
    static const char *const sql[] = {
        "DELETE FROM metrics WHERE job_id = ?1",
        "DELETE FROM checkpoints WHERE job_id = ?1",
        "DELETE FROM job_tasks WHERE job_id = ?1",
        "DELETE FROM jobs WHERE id = ?1",
    };
    size_t i;
    int changes = 0, rc = STORE_OK;

    for (i = 0; rc == STORE_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = store__exec_id(s, sql[i], id, &changes);
    if (rc == STORE_OK && changes == 0) /* the job row itself was not there */
        rc = STORE_ENOTFOUND;
    return rc;
}

/* Removes the job whatever its state: the service layer refuses to delete
 * a job that is not finished. Checkpoint files are the caller's to unlink. */
int store_job_delete(store *s, int64_t id)
{
    int rc = STORE_EINVAL;
    if (!s)
        goto fail;
    store__lock(s);
    rc = store__begin_write(s);
    if (rc == STORE_OK)
        rc = store__end(s, job_delete_tx(s, id));
    store__unlock(s);
fail:
    return rc;
}
