/*
 * tests/integration/harness.h — runs a real mtld on 127.0.0.1 (port 0, a
 * temporary data directory) and speaks real HTTP to it with libcurl, as the
 * libmicrohttpd testcurl suite does. No mocks anywhere.
 */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <signal.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[256];      /* temporary directory holding data/ and the ready file */
    char data_dir[300];
    char url[128];
} mtld_proc;

/* A fresh temporary directory (mkdtemp). */
void h_tmpdir(char *out, size_t n);
/* Starts mtld with data dir dir/data and extra args (NULL-terminated, may be
 * NULL); waits until it is listening. Aborts the test on failure. */
void h_start(mtld_proc *p, const char *dir, const char *const *extra);
/* The same, with the daemon's address space limited to as_bytes
 * (RLIMIT_AS; 0 = no limit), so a big allocation really fails. */
void h_start_rlimit(mtld_proc *p, const char *dir, const char *const *extra,
                    unsigned long long as_bytes);
/* Sends sig and waits for exit; returns the exit status (or 128+signal). */
int h_stop(mtld_proc *p, int sig);

typedef struct {
    long status;
    char *body;         /* NUL-terminated, malloc'd */
    size_t len;
    char ctype[128];
} h_resp;

/* One request. body may be NULL. path is appended to p->url. */
h_resp h_req(const mtld_proc *p, const char *method, const char *path, const char *ctype,
             const void *body, size_t len);
/* Same, with extra header lines (NULL-terminated list of "Name: value"). */
h_resp h_req_headers(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                     const void *body, size_t len, const char *const *headers);
/* A body sent with Transfer-Encoding: chunked, produced by read (libcurl's
 * read callback contract: fill up to size*nmemb bytes of buf, return how
 * many, 0 at the end). */
typedef size_t (*h_read_fn)(char *buf, size_t size, size_t nmemb, void *ud);
h_resp h_req_chunked(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                     h_read_fn read, void *ud, const char *const *headers);
/* The same with a body in memory, handed over at most piece bytes a time. */
h_resp h_req_pieces(const mtld_proc *p, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, size_t piece, const char *const *headers);
void h_resp_free(h_resp *r);
/* Parses r->body as JSON (new ref, NULL if it does not parse). */
json_t *h_json(const h_resp *r);

/* JSON request helpers: send text as application/json, expect status, return
 * the parsed body (new ref). Fail the test with the body if the status
 * differs. */
json_t *h_post_json(const mtld_proc *p, const char *path, const char *json, long expect);
json_t *h_get_json(const mtld_proc *p, const char *path, long expect);
/* Uploads a file as text/csv. */
json_t *h_upload(const mtld_proc *p, const char *name, const char *file, long expect);
/* Polls GET /v1/jobs/{id} until a final state (or timeout seconds). */
json_t *h_wait_job(const mtld_proc *p, long long id, double timeout);

/* POSTs spec to /v1/jobs, expects 202 and returns the job's id. */
long long h_submit(const mtld_proc *p, const char *spec);
/* The resume scenario, on a daemon p started on dir with its data defined:
 * job a (spec) is stopped by SIGTERM once running past step `past`, the
 * daemon is restarted on dir and a runs to its end; then b, the same spec,
 * runs uninterrupted. ja and jb are their final views (new references). */
typedef struct {
    long long a, b;
    json_t *ja, *jb;
} h_resumed;
h_resumed h_run_resumed(mtld_proc *p, const char *dir, const char *spec, long long past);
/* For resume tests, jobs ja (resumed) and jb (uninterrupted, same spec) as
 * GET /v1/jobs/{id} returned them: asserts equal results but for
 * results.memory (the process's resident bytes), which it deletes from both. */
void h_expect_same_results(json_t *ja, json_t *jb);
/* Asserts that jobs a and b have equal metric series (GET .../metrics), every
 * value to the last bit, and that a's records each (step, task, split,
 * name) once (a resume that re-recorded a step would show twice). */
void h_expect_same_metrics(const mtld_proc *p, long long a, long long b);

/* Uploads data/stackoverflow/stackoverflow.csv as dataset "so" and defines
 * the tasks most suites train: "salary" (regression) and "remote"
 * (classification), each answered 201. */
void h_define_so(const mtld_proc *p);
/* POSTs {"algorithm":"multitask","tasks":["salary","remote"], <extra>} to
 * /v1/jobs and expects a 422 whose field is `field` and whose message holds
 * needle (NULL: any). */
void h_expect_bad_so_job(const mtld_proc *p, const char *extra, const char *field,
                         const char *needle);
/* A suite's setup: a fresh data dir (h_tmpdir into dir, n bytes), mtld
 * started on it with no extra flags, and h_define_so. */
void h_start_so(mtld_proc *p, char *dir, size_t n);
/* A suite's teardown: the daemon still answers GET /v1/health with 200 after
 * all the test did, and then exits 0 on SIGTERM. */
void h_stop_healthy(mtld_proc *p);
/* Seconds on the monotonic clock, for deadlines (never for timing claims). */
double h_now(void);
/* Waits (a 300 s deadline) until job id is running past step; fails the test
 * if the job ends first — for tests that interrupt a job mid-way. */
void h_wait_running_past(const mtld_proc *p, long long id, long long step);
/* Sleeps ms milliseconds. */
void h_sleep_ms(long ms);

/* Reads a whole file (malloc'd); NULL if unreadable. */
char *h_read_file(const char *path, size_t *len);
/* Path of a file under the source tree (static buffer rotation of 4). */
const char *h_src(const char *rel);

/* Asserts that r is an error with this status, the JSON error shape and, if
 * given, a message containing needle and a field equal to field. */
void h_expect_error(const h_resp *r, long status, const char *code, const char *needle,
                    const char *field);

#endif
