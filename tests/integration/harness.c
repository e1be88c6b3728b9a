/* tests/integration/harness.c — see harness.h. */
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* What this test process made: its temporary directories and the daemons
 * it started and has not stopped. At exit (a test's forked process ends,
 * passed or failed) a daemon still running is killed, so none outlives its
 * test; the directories are removed when every daemon had been stopped by
 * the test itself (a test that failed midway keeps its directory, and its
 * mtld.log, to be read), or kept whenever MTLD_TEST_KEEP is set. */
#define MAX_TRACKED 32
static char tracked_dirs[MAX_TRACKED][256];
static int n_dirs;
static pid_t tracked_pids[MAX_TRACKED];

/* rm -r, best effort; never follows a symbolic link. */
static void rm_tree(const char *path, int depth)
{
    struct stat st;
    if (depth > 8 || lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_tree(sub, depth + 1);
        }
        if (d)
            closedir(d);
    }
    remove(path);
}

static void cleanup_at_exit(void)
{
    int stray = 0;
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] > 0) {
            kill(tracked_pids[i], SIGKILL);
            waitpid(tracked_pids[i], NULL, 0);
            tracked_pids[i] = 0;
            stray = 1;
        }
    const char *keep = getenv("MTLD_TEST_KEEP");
    if (stray || (keep && keep[0]))
        return;
    for (int i = 0; i < n_dirs; i++)
        rm_tree(tracked_dirs[i], 0);
    n_dirs = 0;
}

static void track_pid(pid_t pid, int add)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (add ? tracked_pids[i] == 0 : tracked_pids[i] == pid) {
            tracked_pids[i] = add ? pid : 0;
            return;
        }
}

void h_tmpdir(char *out, size_t n)
{
    static int registered;
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/mtld-test-XXXXXX", base && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(out));
    if (!registered) {
        atexit(cleanup_at_exit);
        registered = 1;
    }
    if (n_dirs < MAX_TRACKED)
        snprintf(tracked_dirs[n_dirs++], sizeof tracked_dirs[0], "%s", out);
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

double h_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define sleep_ms h_sleep_ms

void h_start(mtld_proc *p, const char *dir, const char *const *extra)
{
    h_start_rlimit(p, dir, extra, 0);
}

void h_start_rlimit(mtld_proc *p, const char *dir, const char *const *extra,
                    unsigned long long as_bytes)
{
    char ready[300];
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->data_dir, sizeof p->data_dir, "%s/data", dir);
    snprintf(ready, sizeof ready, "%s/ready", dir);
    unlink(ready);
    const char *argv[32] = {MTLD_BIN, "--listen", "127.0.0.1:0", "--data-dir", p->data_dir,
                            "--ready-file", ready, "--workers", "2"};
    int argc = 9;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    char logpath[320];
    snprintf(logpath, sizeof logpath, "%s/mtld.log", dir);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid > 0)
        track_pid(p->pid, 1);
    if (p->pid == 0) {
        FILE *log = freopen(logpath, "a", stderr);
        (void)log;
        if (as_bytes) {
            struct rlimit rl = {(rlim_t)as_bytes, (rlim_t)as_bytes};
            if (setrlimit(RLIMIT_AS, &rl) != 0)
                _exit(126);
        }
        execv(MTLD_BIN, (char *const *)argv);
        _exit(127);
    }
    /* A deadline, not a count of polls: the machine may be loaded (a
     * sanitizer build opening and migrating the store is slow). */
    for (double end = h_now() + 60; h_now() < end;) {
        FILE *f = fopen(ready, "r");
        if (f) {
            if (fgets(p->url, sizeof p->url, f)) {
                p->url[strcspn(p->url, "\n")] = 0;
                fclose(f);
                if (p->url[0])
                    return;
            } else {
                fclose(f);
            }
        }
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid)
            ck_abort_msg("mtld exited before listening (see %s)", logpath);
        sleep_ms(50);
    }
    ck_abort_msg("mtld did not write its ready file within 60 s");
}

int h_stop(mtld_proc *p, int sig)
{
    int st = 0;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    for (double end = h_now() + 60; h_now() < end;) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            track_pid(p->pid, 0);
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(50);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    track_pid(p->pid, 0);
    p->pid = 0;
    ck_abort_msg("mtld did not exit within 60 s of signal %d", sig);
    return -1;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

/* One request; the body is either in memory (body, len) or produced by
 * read (chunked transfer encoding). */
static h_resp request(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                      const void *body, size_t len, h_read_fn read, void *ud,
                      const char *const *headers)
{
    h_resp r;
    memset(&r, 0, sizeof r);
    char url[2048];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    sink s = {0};
    struct curl_slist *hl = NULL;
    char cth[160];
    if (ctype) {
        snprintf(cth, sizeof cth, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, cth);
    }
    hl = curl_slist_append(hl, "Expect:");
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    if (read) {
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read);
        curl_easy_setopt(c, CURLOPT_READDATA, ud);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    /* A server may answer a body it refuses (413) before the client has
     * sent all of it, and close: libcurl then reports the failed send. The
     * answer is what counts; a send error with no answer still fails. */
    ck_assert_msg(rc == CURLE_OK || (rc == CURLE_SEND_ERROR && r.status >= 400), "%s %s: %s",
                  method, path, curl_easy_strerror(rc));
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r.ctype, sizeof r.ctype, "%s", ct);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = s.buf ? s.buf : calloc(1, 1);
    r.len = s.len;
    return r;
}

h_resp h_req_headers(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                     const void *body, size_t len, const char *const *headers)
{
    return request(p, method, path, ctype, body, len, NULL, NULL, headers);
}

h_resp h_req_chunked(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                     h_read_fn read, void *ud, const char *const *headers)
{
    return request(p, method, path, ctype, NULL, 0, read, ud, headers);
}

typedef struct {
    const char *data;
    size_t len, off, piece;
} pieces;

static size_t read_pieces(char *buf, size_t size, size_t nmemb, void *ud)
{
    pieces *pc = ud;
    size_t n = size * nmemb, left = pc->len - pc->off;
    if (n > pc->piece)
        n = pc->piece;
    if (n > left)
        n = left;
    memcpy(buf, pc->data + pc->off, n);
    pc->off += n;
    return n;
}

h_resp h_req_pieces(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, size_t piece, const char *const *headers)
{
    pieces pc = {body, len, 0, piece ? piece : 1};
    return request(p, method, path, ctype, NULL, 0, read_pieces, &pc, headers);
}

h_resp h_req(const mtld_proc *p, const char *method, const char *path, const char *ctype,
             const void *body, size_t len)
{
    return h_req_headers(p, method, path, ctype, body, len, NULL);
}

void h_resp_free(h_resp *r)
{
    free(r->body);
    r->body = NULL;
}

json_t *h_json(const h_resp *r)
{
    return json_loadb(r->body, r->len, 0, NULL);
}

static json_t *expect(h_resp r, long want, const char *what)
{
    ck_assert_msg(r.status == want, "%s: status %ld, expected %ld: %s", what, r.status, want,
                  r.body);
    json_t *j = h_json(&r);
    ck_assert_msg(j != NULL, "%s: body is not JSON: %s", what, r.body);
    h_resp_free(&r);
    return j;
}

json_t *h_post_json(const mtld_proc *p, const char *path, const char *json, long want)
{
    return expect(h_req(p, "POST", path, "application/json", json, strlen(json)), want, path);
}

json_t *h_get_json(const mtld_proc *p, const char *path, long want)
{
    return expect(h_req(p, "GET", path, NULL, NULL, 0), want, path);
}

json_t *h_upload(const mtld_proc *p, const char *name, const char *file, long want)
{
    size_t len = 0;
    char *data = h_read_file(file, &len);
    ck_assert_msg(data != NULL, "cannot read %s", file);
    char path[256];
    snprintf(path, sizeof path, "/v1/datasets?name=%s", name);
    json_t *j = expect(h_req(p, "POST", path, "text/csv", data, len), want, path);
    free(data);
    return j;
}

json_t *h_wait_job(const mtld_proc *p, long long id, double timeout)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    for (double t = 0; t < timeout; t += 0.05) {
        json_t *j = h_get_json(p, path, 200);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled")))
            return j;
        json_decref(j);
        sleep_ms(50);
    }
    ck_abort_msg("job %lld did not finish within %.0f s", id, timeout);
    return NULL;
}

long long h_submit(const mtld_proc *p, const char *spec)
{
    json_t *s = h_post_json(p, "/v1/jobs", spec, 202);
    long long id = json_integer_value(json_object_get(s, "id"));
    json_decref(s);
    return id;
}

h_resumed h_run_resumed(mtld_proc *p, const char *dir, const char *spec, long long past)
{
    h_resumed r;
    r.a = h_submit(p, spec);
    h_wait_running_past(p, r.a, past);
    ck_assert_int_eq(h_stop(p, SIGTERM), 0);
    h_start(p, dir, NULL);
    r.ja = h_wait_job(p, r.a, 300);
    r.b = h_submit(p, spec);
    r.jb = h_wait_job(p, r.b, 300);
    return r;
}

void h_expect_same_results(json_t *ja, json_t *jb)
{
    /* results.memory measures the process (resident bytes), not the training */
    json_object_del(json_object_get(ja, "results"), "memory");
    json_object_del(json_object_get(jb, "results"), "memory");
    char *ra = json_dumps(json_object_get(ja, "results"), JSON_SORT_KEYS);
    char *rb = json_dumps(json_object_get(jb, "results"), JSON_SORT_KEYS);
    ck_assert_msg(!strcmp(ra, rb), "resumed %s\n  differs from uninterrupted %s", ra, rb);
    free(ra);
    free(rb);
}

/* Each (step, task, split, name) of a metrics series appears once. */
static void no_duplicate_metrics(json_t *m)
{
    json_t *seen = json_object(), *e;
    size_t i;
    json_array_foreach(json_object_get(m, "metrics"), i, e)
    {
        char key[256];
        snprintf(key, sizeof key, "%lld/%s/%s/%s",
                 (long long)json_integer_value(json_object_get(e, "step")),
                 json_string_value(json_object_get(e, "task")),
                 json_string_value(json_object_get(e, "split")),
                 json_string_value(json_object_get(e, "name")));
        ck_assert_msg(!json_object_get(seen, key), "metric %s recorded twice", key);
        json_object_set_new(seen, key, json_true());
    }
    ck_assert_int_gt((long)json_object_size(seen), 0);
    json_decref(seen);
}

void h_expect_same_metrics(const mtld_proc *p, long long a, long long b)
{
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "/v1/jobs/%lld/metrics", a);
    snprintf(pb, sizeof pb, "/v1/jobs/%lld/metrics", b);
    json_t *ma = h_get_json(p, pa, 200), *mb = h_get_json(p, pb, 200);
    no_duplicate_metrics(ma);
    /* the same series, values to the last bit (reals go out with 17 digits):
     * no step missing either */
    ck_assert_msg(json_equal(ma, mb), "metric series of job %lld (resumed) and %lld differ", a, b);
    json_decref(ma);
    json_decref(mb);
}

char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

const char *h_src(const char *rel)
{
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 1024, "%s/%s", MTLD_SOURCE_DIR, rel);
    return b;
}

void h_expect_error(const h_resp *r, long status, const char *code, const char *needle,
                    const char *field)
{
    ck_assert_msg(r->status == status, "status %ld, expected %ld: %s", r->status, status, r->body);
    ck_assert_msg(strncmp(r->ctype, "application/json", 16) == 0, "content type '%s'", r->ctype);
    json_t *j = h_json(r);
    ck_assert_msg(j != NULL, "error body is not JSON: %s", r->body);
    json_t *e = json_object_get(j, "error");
    ck_assert_msg(json_is_object(e), "no error object: %s", r->body);
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    ck_assert_msg(c && m && m[0], "error needs code and message: %s", r->body);
    if (code)
        ck_assert_msg(!strcmp(c, code), "code '%s', expected '%s': %s", c, code, r->body);
    if (needle)
        ck_assert_msg(strstr(m, needle) != NULL, "message '%s' lacks '%s'", m, needle);
    if (field) {
        const char *f = json_string_value(json_object_get(e, "field"));
        ck_assert_msg(f && !strcmp(f, field), "field '%s', expected '%s': %s", f ? f : "(none)",
                      field, r->body);
    }
    json_decref(j);
}

void h_wait_running_past(const mtld_proc *p, long long id, long long step)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    for (double end = h_now() + 300; h_now() < end;) {
        json_t *j = h_get_json(p, path, 200);
        long long s = json_integer_value(json_object_get(j, "step"));
        const char *st = json_string_value(json_object_get(j, "state"));
        int done = strcmp(st, "running") && strcmp(st, "queued");
        json_decref(j);
        ck_assert_msg(!done, "job %lld finished before it could be interrupted", id);
        if (s > step)
            return;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("job %lld never got past step %lld", id, step);
}

void h_define_so(const mtld_proc *p)
{
    json_decref(h_upload(p, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    json_decref(h_post_json(p, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
}

void h_expect_bad_so_job(const mtld_proc *p, const char *extra, const char *field,
                         const char *needle)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],%s}", extra);
    h_resp r = h_req(p, "POST", "/v1/jobs", "application/json", body, strlen(body));
    h_expect_error(&r, 422, NULL, needle, field);
    h_resp_free(&r);
}

void h_start_so(mtld_proc *p, char *dir, size_t n)
{
    h_tmpdir(dir, n);
    h_start(p, dir, NULL);
    h_define_so(p);
}

void h_stop_healthy(mtld_proc *p)
{
    json_decref(h_get_json(p, "/v1/health", 200));
    ck_assert_int_eq(h_stop(p, SIGTERM), 0);
}
