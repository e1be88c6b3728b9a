/*
 * tests/integration/test_jobs.c — the job lifecycle against a real mtld:
 * priorities, the queue bound (429), two jobs at once on two workers,
 * eta_seconds, cancel (queued at once, running within one second, its
 * checkpoints kept), DELETE (409 while running, files gone after),
 * divergence, a model over --max-model-bytes, the best checkpoint,
 * from_checkpoint, and resume past a torn newest checkpoint.
 *
 * A "blocking" job is a [256,256] trunk over 2000 epochs: many minutes of
 * work, always cancelled by the test once it has served. Its steps and its
 * checkpoints (1.3 MB every 50 steps) are small, so a cancel arriving at any
 * moment is seen within the second even on a loaded machine.
 *
 * No test sleeps a fixed time or counts polls: each polls for a state
 * against a generous deadline (other builds and tests share the machine).
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static char DIR_[256];

static const char *BLOCKING =
    "{\"name\":\"blocking\",\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
    "\"model\":{\"trunk\":[256,256]},\"epochs\":2000,\"checkpoint_every\":50}";

static const char *SMALL =
    "{\"name\":\"small\",\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
    "\"model\":{\"trunk\":[32]},\"epochs\":3,\"seed\":3,\"priority\":%d}";

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void start(mtld_proc *p, const char *const *extra)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(p, DIR_, extra);
    h_define_so(p);
}

static long long submit(mtld_proc *p, const char *spec)
{
    json_t *s = h_post_json(p, "/v1/jobs", spec, 202);
    long long id = json_integer_value(json_object_get(s, "id"));
    ck_assert_str_eq(json_string_value(json_object_get(s, "state")), "queued");
    json_decref(s);
    return id;
}

static long long submit_small(mtld_proc *p, int priority)
{
    char spec[512];
    snprintf(spec, sizeof spec, SMALL, priority);
    return submit(p, spec);
}

static json_t *get_job(mtld_proc *p, long long id)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    return h_get_json(p, path, 200);
}

static const char *state_of(json_t *j)
{
    return json_string_value(json_object_get(j, "state"));
}

/* Polls until the job is running with at least min_step steps done. The
 * deadline is generous: other builds and tests may be loading the machine. */
static void wait_running(mtld_proc *p, long long id, long long min_step)
{
    for (double end = h_now() + 300; h_now() < end;) {
        json_t *j = get_job(p, id);
        int ok = !strcmp(state_of(j), "running") &&
                 json_integer_value(json_object_get(j, "step")) >= min_step;
        int over = strcmp(state_of(j), "running") && strcmp(state_of(j), "queued");
        json_decref(j);
        ck_assert_msg(!over, "job %lld ended before the test could use it", id);
        if (ok)
            return;
        sleep_ms(10);
    }
    ck_abort_msg("job %lld never reached step %lld", id, min_step);
}

/* POST cancel: the reply shows the state it ended in (mtld waits up to 1 s). */
static void cancel(mtld_proc *p, long long id, const char *expect_state)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", id);
    json_t *j = h_post_json(p, path, "", 200);
    ck_assert_str_eq(state_of(j), expect_state);
    json_decref(j);
}

/* Checkpoint files of job id in the data directory. */
static int count_files(mtld_proc *p, long long id, const char *suffix)
{
    char dir[400], prefix[64];
    snprintf(dir, sizeof dir, "%s/checkpoints", p->data_dir);
    snprintf(prefix, sizeof prefix, "job-%lld-", id);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if ((id == 0 || !strncmp(de->d_name, prefix, strlen(prefix))) && l > sl &&
            !strcmp(de->d_name + l - sl, suffix))
            n++;
    }
    closedir(d);
    return n;
}

START_TEST(priority_then_age)
{
    mtld_proc p;
    const char *one[] = {"--workers", "1", NULL};
    start(&p, one);
    long long blk = submit(&p, BLOCKING);
    wait_running(&p, blk, 60); /* past its first checkpoint */
    long long low = submit_small(&p, -5);
    long long mid = submit_small(&p, 0);
    long long high = submit_small(&p, 5);
    cancel(&p, blk, "cancelled");
    json_t *jl = h_wait_job(&p, low, 120), *jm = h_wait_job(&p, mid, 120),
           *jh = h_wait_job(&p, high, 120);
    ck_assert_str_eq(state_of(jl), "succeeded");
    ck_assert_str_eq(state_of(jm), "succeeded");
    ck_assert_str_eq(state_of(jh), "succeeded");
    /* One worker: each started after the one before it finished. */
    const char *h_end = json_string_value(json_object_get(jh, "finished_at"));
    const char *m_start = json_string_value(json_object_get(jm, "started_at"));
    const char *m_end = json_string_value(json_object_get(jm, "finished_at"));
    const char *l_start = json_string_value(json_object_get(jl, "started_at"));
    ck_assert_msg(strcmp(h_end, m_start) <= 0, "priority 5 ended %s after priority 0 began %s",
                  h_end, m_start);
    ck_assert_msg(strcmp(m_end, l_start) <= 0, "priority 0 ended %s after priority -5 began %s",
                  m_end, l_start);
    /* The cancelled job's last checkpoint stays downloadable. */
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints/latest", blk);
    h_resp r = h_req(&p, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_gt((long)r.len, 1000);
    h_resp_free(&r);
    json_decref(jl);
    json_decref(jm);
    json_decref(jh);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

START_TEST(queue_bound_and_cancel_queued)
{
    mtld_proc p;
    const char *args[] = {"--workers", "1", "--max-queued", "2", NULL};
    start(&p, args);
    long long blk = submit(&p, BLOCKING);
    wait_running(&p, blk, 1);
    long long a = submit_small(&p, 0);
    submit_small(&p, 0);
    h_resp r = h_req(&p, "POST", "/v1/jobs", "application/json", BLOCKING, strlen(BLOCKING));
    h_expect_error(&r, 429, "queue_full", "max-queued", NULL);
    h_resp_free(&r);
    /* Cancelling a queued job is immediate and frees a place. */
    cancel(&p, a, "cancelled");
    json_t *ja = get_job(&p, a);
    ck_assert_str_eq(state_of(ja), "cancelled");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(ja, "finished_at")));
    json_decref(ja);
    submit_small(&p, 0);
    /* A finished job cannot be cancelled again. */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", a);
    r = h_req(&p, "POST", path, "application/json", "", 0);
    h_expect_error(&r, 409, "conflict", "finished", NULL);
    h_resp_free(&r);
    cancel(&p, blk, "cancelled");
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

START_TEST(two_jobs_in_parallel_with_eta)
{
    mtld_proc p;
    const char *two[] = {"--workers", "2", NULL};
    start(&p, two);
    long long a = submit(&p, BLOCKING), b = submit(&p, BLOCKING);
    int both = 0;
    for (double end = h_now() + 300; h_now() < end && !both;) {
        json_t *l = h_get_json(&p, "/v1/jobs?state=running", 200);
        both = json_integer_value(json_object_get(l, "total")) == 2;
        json_decref(l);
        if (!both)
            sleep_ms(10);
    }
    ck_assert_msg(both, "two workers never ran two jobs at once");
    wait_running(&p, a, 5);
    wait_running(&p, b, 5);
    json_t *ja = get_job(&p, a);
    json_t *eta = json_object_get(ja, "eta_seconds");
    ck_assert_msg(json_is_number(eta) && json_number_value(eta) > 0,
                  "a running job has no positive eta_seconds");
    long long steps = json_integer_value(json_object_get(ja, "steps"));
    ck_assert_msg(steps >= 2000 && steps % 2000 == 0, "steps %lld for 2000 epochs", steps);
    json_decref(ja);
    /* Running: the reply of cancel shows it stopped within the second. */
    cancel(&p, a, "cancelled");
    cancel(&p, b, "cancelled");
    ja = get_job(&p, a);
    ck_assert(json_is_null(json_object_get(ja, "eta_seconds")));
    json_decref(ja);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

/* Threads of the running daemon named `name` and their nice values (field
 * 19 of /proc/PID/task/TID/stat; the comm before it has no spaces here). */
static int thread_nices(const mtld_proc *p, const char *name, int *nice, int max)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/task", (int)p->pid);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot list %s", path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.')
            continue;
        char f[320], buf[512];
        snprintf(f, sizeof f, "/proc/%d/task/%s/stat", (int)p->pid, e->d_name);
        FILE *fp = fopen(f, "r");
        if (!fp)
            continue; /* the thread ended meanwhile */
        size_t len = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        char comm[64];
        int ni = 0;
        if (sscanf(buf, "%*d (%63[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d",
                   comm, &ni) == 2 && !strcmp(comm, name))
            nice[n++] = ni;
    }
    closedir(d);
    return n;
}

/* Training threads lower their own priority to --worker-nice (default 19)
 * so HTTP requests are answered before training steps (issue 6's latency);
 * the HTTP threads and the main thread stay at the daemon's priority. */
START_TEST(workers_train_below_http_priority)
{
    int nice[64];
    mtld_proc p;
    const char *seven[] = {"--workers", "2", "--worker-nice", "7", NULL};
    start(&p, seven);
    long long a = submit(&p, BLOCKING);
    wait_running(&p, a, 1);
    int n = thread_nices(&p, "mtld-worker", nice, 64);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(nice[0], 7);
    ck_assert_int_eq(nice[1], 7);
    n = thread_nices(&p, "MHD-worker", nice, 64);
    ck_assert_msg(n >= 1, "no libmicrohttpd thread found");
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(nice[i], 0);
    n = thread_nices(&p, "mtld", nice, 64);
    ck_assert_msg(n >= 1, "no main thread named mtld (re-executed under another name?)");
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(nice[i], 0);
    cancel(&p, a, "cancelled");
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);

    const char *dflt[] = {"--workers", "1", NULL};
    start(&p, dflt);
    n = thread_nices(&p, "mtld-worker", nice, 64);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(nice[0], 19);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

/* Each job owns its model, RNG and buffers: two jobs of one spec training
 * at the same time on two workers end exactly like one that ran alone
 * (results and every metric, to the last bit). */
START_TEST(parallel_jobs_share_nothing)
{
    static const char *spec =
        "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"model\":{\"trunk\":[64,32],\"dropout\":0.1},\"epochs\":4,\"seed\":9}";
    mtld_proc p;
    const char *one[] = {"--workers", "1", NULL};
    start(&p, one);
    long long alone = submit(&p, spec);
    json_t *ja = h_wait_job(&p, alone, 300);
    ck_assert_str_eq(state_of(ja), "succeeded");
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    const char *two[] = {"--workers", "2", NULL};
    h_start(&p, DIR_, two);
    long long a = submit(&p, spec), b = submit(&p, spec);
    /* two idle workers take them at once (that two jobs do run together is
     * two_jobs_in_parallel_with_eta's to show) */
    json_t *jx = h_wait_job(&p, a, 300), *jy = h_wait_job(&p, b, 300);
    ck_assert_str_eq(state_of(jx), "succeeded");
    ck_assert_str_eq(state_of(jy), "succeeded");
    /* the daemon's memory figures are a measurement, not a result */
    json_object_del(json_object_get(ja, "results"), "memory");
    json_object_del(json_object_get(jx, "results"), "memory");
    json_object_del(json_object_get(jy, "results"), "memory");
    char *r0 = json_dumps(json_object_get(ja, "results"), JSON_SORT_KEYS);
    for (int k = 0; k < 2; k++) {
        json_t *j = k ? jy : jx;
        char *r = json_dumps(json_object_get(j, "results"), JSON_SORT_KEYS);
        ck_assert_msg(!strcmp(r, r0), "a parallel run %s\n  differs from the lone run %s", r, r0);
        free(r);
        char path[64], p0[64];
        snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", k ? b : a);
        snprintf(p0, sizeof p0, "/v1/jobs/%lld/metrics", alone);
        json_t *m = h_get_json(&p, path, 200), *m0 = h_get_json(&p, p0, 200);
        ck_assert_msg(json_equal(m, m0), "the metrics of a parallel run differ");
        json_decref(m);
        json_decref(m0);
    }
    free(r0);
    json_decref(ja);
    json_decref(jx);
    json_decref(jy);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

START_TEST(delete_removes_files_409_while_running)
{
    mtld_proc p;
    start(&p, NULL);
    long long blk = submit(&p, BLOCKING);
    wait_running(&p, blk, 1);
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld", blk);
    h_resp r = h_req(&p, "DELETE", path, NULL, NULL, 0);
    h_expect_error(&r, 409, "conflict", "running", NULL);
    h_resp_free(&r);
    cancel(&p, blk, "cancelled");

    long long id = submit_small(&p, 0);
    json_t *j = h_wait_job(&p, id, 120);
    ck_assert_str_eq(state_of(j), "succeeded");
    json_decref(j);
    ck_assert_int_gt(count_files(&p, id, ".safetensors"), 0);
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    r = h_req(&p, "DELETE", path, NULL, NULL, 0);
    ck_assert_msg(r.status == 200 || r.status == 204, "DELETE answered %ld", r.status);
    h_resp_free(&r);
    ck_assert_int_eq(count_files(&p, id, ".safetensors"), 0);
    r = h_req(&p, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    r = h_req(&p, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

START_TEST(divergence_and_model_too_large_fail_the_job_only)
{
    mtld_proc p;
    const char *args[] = {"--max-model-bytes", "16000000", NULL};
    start(&p, args);
    /* Adam at lr 10 through eight layers: the loss overflows float at step 2. */
    long long d = submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                             "\"optimizer\":{\"lr\":10},\"epochs\":3,"
                             "\"model\":{\"trunk\":[256,256,256,256,256,256,256,256]}}");
    json_t *jd = h_wait_job(&p, d, 120);
    ck_assert_str_eq(state_of(jd), "failed");
    json_t *err = json_object_get(jd, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "diverged");
    const char *msg = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(strstr(msg, "'salary'") && strstr(msg, "at step "), "message: %s", msg);
    /* the job keeps the steps it did, those before the one named */
    long long at = atoll(strstr(msg, "at step ") + 8);
    ck_assert_msg(at >= 2, "message: %s", msg);
    ck_assert_int_eq(json_integer_value(json_object_get(jd, "step")), at - 1);
    json_decref(jd);
    /* it wrote no checkpoint and never will: no "yet" */
    char cp[96];
    snprintf(cp, sizeof cp, "/v1/jobs/%lld/checkpoints/latest", d);
    h_resp c = h_req(&p, "GET", cp, NULL, NULL, 0);
    h_expect_error(&c, 404, "not_available", "ended failed", NULL);
    ck_assert_msg(strstr(c.body, "yet") == NULL, "%s", c.body);
    h_resp_free(&c);

    long long big = submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                               "\"model\":{\"trunk\":[4096,4096]}}");
    json_t *jb = h_wait_job(&p, big, 120);
    ck_assert_str_eq(state_of(jb), "failed");
    err = json_object_get(jb, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "model_too_large");
    msg = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(strstr(msg, "--max-model-bytes"), "message: %s", msg);
    json_decref(jb);

    /* The daemon is unharmed: the next job trains. */
    long long ok = submit_small(&p, 0);
    json_t *jo = h_wait_job(&p, ok, 120);
    ck_assert_str_eq(state_of(jo), "succeeded");
    json_decref(jo);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

/* A real allocation failure, not a configured limit: the daemon's address
 * space is capped at 1.5 GiB and a job asks for a model of about 1.9 GB
 * (eight layers of 4096: 470 MB of parameters, as much again for gradients
 * and each Adam moment) with --max-model-bytes out of the way. The job
 * fails with out_of_memory; the daemon serves on and trains the next job.
 * (Not under AddressSanitizer, whose shadow memory needs an unlimited
 * address space.) */
START_TEST(out_of_memory_fails_the_job_only)
{
#ifdef MTLD_TEST_SANITIZE
    return;
#else
    mtld_proc p;
    const char *args[] = {"--max-model-bytes", "1099511627776", "--workers", "1", NULL};
    h_tmpdir(DIR_, sizeof DIR_);
    h_start_rlimit(&p, DIR_, args, 3ULL << 29);
    h_define_so(&p);
    long long big = submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                               "\"model\":{\"trunk\":[4096,4096,4096,4096,4096,4096,4096,"
                               "4096]},\"epochs\":1}");
    json_t *jb = h_wait_job(&p, big, 300);
    ck_assert_str_eq(state_of(jb), "failed");
    json_t *err = json_object_get(jb, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "out_of_memory");
    json_decref(jb);
    json_decref(h_get_json(&p, "/v1/health", 200));
    long long ok = submit_small(&p, 0);
    json_t *jo = h_wait_job(&p, ok, 300);
    ck_assert_str_eq(state_of(jo), "succeeded");
    json_decref(jo);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
#endif
}
END_TEST

START_TEST(best_checkpoint_is_kept)
{
    mtld_proc p;
    start(&p, NULL);
    /* Trains well past its best epoch; keeps one regular checkpoint. */
    long long id = submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                              "\"model\":{\"trunk\":[256,128]},\"epochs\":12,\"seed\":11,"
                              "\"checkpoint_every\":100,\"keep_checkpoints\":1}");
    json_t *j = h_wait_job(&p, id, 120);
    ck_assert_str_eq(state_of(j), "succeeded");
    json_t *best = json_object_get(json_object_get(j, "results"), "best");
    ck_assert_ptr_nonnull(best);
    long long best_step = json_integer_value(json_object_get(best, "step"));
    ck_assert(json_number_value(json_object_get(best, "validation_loss")) > 0);
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld/checkpoints", id);
    json_t *l = h_get_json(&p, path, 200);
    json_t *cs = json_object_get(l, "checkpoints");
    size_t n = json_array_size(cs), i;
    int n_best = 0, n_latest = 0;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        if (json_is_true(json_object_get(c, "best"))) {
            n_best++;
            ck_assert_int_eq(json_integer_value(json_object_get(c, "step")), best_step);
        }
        if (json_is_true(json_object_get(c, "latest"))) {
            n_latest++;
            ck_assert_int_eq(json_integer_value(json_object_get(c, "step")),
                             json_integer_value(json_object_get(j, "steps")));
        }
    }
    ck_assert_int_eq(n_best, 1);
    ck_assert_int_eq(n_latest, 1);
    ck_assert_int_eq((long)n, best_step == json_integer_value(json_object_get(j, "steps")) ? 1 : 2);
    ck_assert_int_eq(count_files(&p, id, ".safetensors"), (int)n);
    json_decref(l);
    json_decref(j);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

static int array_has(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!strcmp(json_string_value(v), s)) return 1;
    return 0;
}

START_TEST(from_checkpoint_copies_matching_tensors)
{
    mtld_proc p;
    start(&p, NULL);
    long long src = submit(&p, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                               "\"model\":{\"trunk\":[64,32]},\"epochs\":2}");
    json_t *js = h_wait_job(&p, src, 120);
    ck_assert_str_eq(state_of(js), "succeeded");
    json_decref(js);
    /* One task of the two: salary becomes an input, so the first layer's
     * shape differs: it is copied column by column for the 23 inputs both
     * jobs read (salary's column starts fresh), with a note; the rest is
     * copied, the remote head from the source's second task. */
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"model\":{\"trunk\":[64,32]},"
             "\"epochs\":1,\"from_checkpoint\":{\"job\":%lld}}", src);
    long long ft = submit(&p, spec);
    json_t *jf = h_wait_job(&p, ft, 120);
    ck_assert_str_eq(state_of(jf), "succeeded");
    json_t *note = json_object_get(json_object_get(jf, "results"), "from_checkpoint");
    ck_assert_int_eq(json_integer_value(json_object_get(note, "job")), src);
    json_t *copied = json_object_get(note, "copied"), *reinit = json_object_get(note, "reinitialised");
    ck_assert(array_has(copied, "trunk.1.weight"));
    ck_assert(array_has(copied, "tasks.0.head.weight"));
    ck_assert(array_has(copied, "trunk.0.weight"));
    ck_assert(!array_has(reinit, "trunk.0.weight"));
    json_t *notes = json_object_get(note, "notes");
    ck_assert_msg(json_array_size(notes) == 1 &&
                      strstr(json_string_value(json_array_get(notes, 0)),
                             "23 of the job's 24 inputs matched"),
                  "first-layer note missing");
    json_decref(jf);
    /* A plain id works too. */
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"model\":{\"trunk\":[8]},"
             "\"epochs\":1,\"from_checkpoint\":%lld}", src);
    jf = h_wait_job(&p, submit(&p, spec), 120);
    ck_assert_str_eq(state_of(jf), "succeeded");
    note = json_object_get(json_object_get(jf, "results"), "from_checkpoint");
    ck_assert(array_has(json_object_get(note, "reinitialised"), "trunk.1.weight") ||
              array_has(json_object_get(note, "reinitialised"), "tasks.0.head.weight"));
    json_decref(jf);

    /* Strict validation: unknown job, a job without a checkpoint, bad shapes. */
    const char *base = "{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"from_checkpoint\":";
    struct {
        const char *tail, *needle, *field;
    } bad[] = {
        {"9999}", "no job 9999", "from_checkpoint"},
        {"{\"job\":\"x\"}}", "job id", "from_checkpoint.job"},
        {"{\"jobs\":1}}", "unknown key", "from_checkpoint"},
        {"{}}", "required", "from_checkpoint.job"},
        {"true}", "job id", "from_checkpoint"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "%s%s", base, bad[i].tail);
        h_resp r = h_req(&p, "POST", "/v1/jobs", "application/json", body, strlen(body));
        h_expect_error(&r, 422, NULL, bad[i].needle, bad[i].field);
        h_resp_free(&r);
    }
    /* A job cancelled while queued has no checkpoint. */
    const char *one_blocking = BLOCKING;
    long long blk = submit(&p, one_blocking), blk2 = submit(&p, one_blocking),
              q = submit(&p, one_blocking);
    cancel(&p, q, "cancelled");
    char body[256];
    snprintf(body, sizeof body, "%s%lld}", base, q);
    h_resp r = h_req(&p, "POST", "/v1/jobs", "application/json", body, strlen(body));
    h_expect_error(&r, 422, NULL, "has no checkpoint", "from_checkpoint");
    h_resp_free(&r);
    cancel(&p, blk, "cancelled");
    cancel(&p, blk2, "cancelled");
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

/* kill -9 as a checkpoint was being written, simulated exactly: the newest
 * recorded checkpoint torn (half its bytes) and a stray .tmp beside it. The
 * job resumes from the checkpoint before and ends as if never interrupted. */
START_TEST(torn_checkpoint_falls_back)
{
    static const char *spec =
        "{\"name\":\"torn\",\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
        "\"model\":{\"trunk\":[512,256]},\"epochs\":6,\"batch_size\":32,\"seed\":5,"
        "\"checkpoint_every\":40,\"keep_checkpoints\":3}";
    mtld_proc p;
    start(&p, NULL);
    long long a = submit(&p, spec);
    wait_running(&p, a, 130);
    ck_assert_int_eq(h_stop(&p, SIGKILL), 128 + SIGKILL);

    /* Tear the newest checkpoint file, leave a .tmp. */
    char dir[400], newest[700] = "";
    long best = -1;
    snprintf(dir, sizeof dir, "%s/checkpoints", p.data_dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long step;
        if (sscanf(de->d_name, "job-%*d-step-%ld.safetensors", &step) == 1 &&
            !strstr(de->d_name, ".tmp") && step > best) {
            best = step;
            snprintf(newest, sizeof newest, "%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    ck_assert_msg(best >= 80, "expected at least two checkpoints, newest step %ld", best);
    struct stat st;
    ck_assert_int_eq(stat(newest, &st), 0);
    ck_assert_int_eq(truncate(newest, st.st_size / 2), 0);
    char tmp[800];
    snprintf(tmp, sizeof tmp, "%s/job-%lld-step-%ld.safetensors.tmp", dir, a, best + 40);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\x10\0\0\0\0\0\0\0{\"trunk", 15), 15);
    close(fd);

    h_start(&p, DIR_, NULL);
    /* The stray .tmp is gone. The resumed job may already be writing .tmp
     * files of its own (even under that name, once it reaches that step):
     * only the planted 15 bytes are looked for. */
    struct stat tst;
    ck_assert_msg(stat(tmp, &tst) != 0 || tst.st_size != 15, "the stray %s is still there", tmp);
    json_t *ja = h_wait_job(&p, a, 300);
    ck_assert_str_eq(state_of(ja), "succeeded");
    long long b = submit(&p, spec);
    json_t *jb = h_wait_job(&p, b, 300);
    ck_assert_str_eq(state_of(jb), "succeeded");
    h_expect_same_results(ja, jb);
    h_expect_same_metrics(&p, a, b);
    json_decref(ja);
    json_decref(jb);
    char log[400];
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    size_t len = 0;
    char *text = h_read_file(log, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "event=checkpoint_unusable"), "no warning about the torn file");
    ck_assert_msg(strstr(text, "event=stray_checkpoint_removed"), "no note of the .tmp");
    free(text);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *jobs_suite(void);
Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, priority_then_age);
    tcase_add_test(tc, queue_bound_and_cancel_queued);
    tcase_add_test(tc, two_jobs_in_parallel_with_eta);
    tcase_add_test(tc, workers_train_below_http_priority);
    tcase_add_test(tc, parallel_jobs_share_nothing);
    tcase_add_test(tc, delete_removes_files_409_while_running);
    tcase_add_test(tc, divergence_and_model_too_large_fail_the_job_only);
    tcase_add_test(tc, out_of_memory_fails_the_job_only);
    tcase_add_test(tc, best_checkpoint_is_kept);
    tcase_add_test(tc, from_checkpoint_copies_matching_tensors);
    tcase_add_test(tc, torn_checkpoint_falls_back);
    suite_add_tcase(s, tc);
    return s;
}
