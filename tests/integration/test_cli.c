/*
 * tests/integration/test_cli.c — the built mtlctl against a real mtld:
 * every command of issue 9 once, --json output byte for byte the server's
 * body, --quiet, the exit code of each kind of failure (usage 2, refused 1,
 * cannot connect 3, job failed or cancelled 5), --wait retrying until a
 * daemon starts, tokens from the flag, the environment and a file, a
 * downloaded checkpoint equal to the server's bytes, predictions equal to
 * the server's.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/cli_run.h"
#include "tests/integration/harness.h"
#include "tests/integration/test_api.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&P, DIR_, NULL);
}

static void teardown(void)
{
    ck_assert_int_eq(h_stop(&P, SIGTERM), 0);
}

#define RUN(...) c_mtlctl(P.url, (const char *const[]){__VA_ARGS__, NULL})

static void expect_rc(const c_result *r, int rc, const char *what)
{
    ck_assert_msg(r->status == rc, "%s: exit %d, wanted %d; stdout: %s; stderr: %s", what,
                  r->status, rc, r->out, r->err);
}

/* --json output is the server's body for the same GET (plus a newline if
 * the body has none). */
static void expect_json_is_body(const char *path, const char *const *argv)
{
    const char *args[16] = {"--url", P.url, "--json"};
    int n = 3;
    for (int i = 0; argv[i]; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    c_result r = c_run(NULL, NULL, 60, args);
    expect_rc(&r, 0, path);
    h_resp s = h_req(&P, "GET", path, NULL, NULL, 0);
    ck_assert_int_eq(s.status, 200);
    size_t nl = s.len && s.body[s.len - 1] == '\n' ? 0 : 1; /* one newline is added */
    ck_assert_msg(r.out_len == s.len + nl && memcmp(r.out, s.body, s.len) == 0 &&
                      (!nl || r.out[s.len] == '\n'),
                  "--json for %s is not the server's body:\n%s\nvs\n%s", path, r.out, s.body);
    json_t *j = json_loads(r.out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    h_resp_free(&s);
    c_result_free(&r);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void define_so(void)
{
    c_result r = RUN("dataset", "upload", h_src("data/stackoverflow/stackoverflow.csv"),
                     "--name", "so", "--quiet");
    expect_rc(&r, 0, "dataset upload");
    ck_assert_str_eq(r.out, "1\n");
    c_result_free(&r);
    r = RUN("task", "create", "--name", "salary", "--dataset", "so", "--target", "salary",
            "--kind", "regression");
    expect_rc(&r, 0, "task create salary");
    c_result_free(&r);
    r = RUN("task", "create", "--name", "remote", "--dataset", "so", "--target", "remote",
            "--kind", "classification", "--class-weight", "balanced");
    expect_rc(&r, 0, "task create remote");
    c_result_free(&r);
}

static const char *write_spec(const char *name, const char *json)
{
    static char path[4][320];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", DIR_, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    return p;
}

START_TEST(help_version_and_usage_errors)
{
    c_result r = RUN("--version");
    expect_rc(&r, 0, "--version");
    ck_assert_str_eq(r.out, "mtlctl " MTLD_VERSION "\n");
    c_result_free(&r);

    static const char *const helps[][4] = {
        {"--help"}, {"dataset", "--help"}, {"job", "watch", "--help"}, {"help", "predict"},
        {"predict", "-h"}, {"adapt", "--help"}, {"task", "create", "--help"}, {"help"}};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        const char *a[8] = {"--url", P.url};
        for (int k = 0; k < 4 && helps[i][k]; k++)
            a[2 + k] = helps[i][k];
        r = c_run(NULL, NULL, 30, a);
        expect_rc(&r, 0, helps[i][0]);
        ck_assert_msg(strstr(r.out, "Usage: mtlctl") != NULL, "no usage for %s", helps[i][0]);
        c_result_free(&r);
    }
    r = RUN("--help");
    for (const char *const *w = (const char *const[]){"dataset upload", "task create",
                                                      "job watch", "job metrics",
                                                      "job checkpoint", "predict", "adapt",
                                                      "--json", "--quiet", "--wait", NULL};
         *w; w++)
        ck_assert_msg(strstr(r.out, *w) != NULL, "--help does not mention %s", *w);
    c_result_free(&r);

    r = RUN("frobnicate");
    expect_rc(&r, 2, "unknown command");
    ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
    c_result_free(&r);
    r = RUN("job", "show");
    expect_rc(&r, 2, "missing argument");
    c_result_free(&r);
    r = RUN("job", "list", "--colour");
    expect_rc(&r, 2, "unknown option");
    c_result_free(&r);
    r = RUN("dataset", "upload", "/nonexistent/x.csv");
    expect_rc(&r, 2, "unreadable file");
    ck_assert_ptr_nonnull(strstr(r.err, "cannot open /nonexistent/x.csv"));
    c_result_free(&r);
    r = c_run(NULL, NULL, 30, (const char *const[]){"--url", "ftp://x", "health", NULL});
    expect_rc(&r, 2, "bad url");
    c_result_free(&r);
    r = RUN("job", "submit", write_spec("bad.json", "{\"algorithm\": \"multitask\",\n  oops}"));
    expect_rc(&r, 2, "spec that is not JSON");
    ck_assert_msg(strstr(r.err, "bad.json:2:") != NULL, "no line number: %s", r.err);
    c_result_free(&r);
}
END_TEST

START_TEST(connect_refused_and_wait)
{
    char url[64];
    int port = free_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    c_result r = c_run(NULL, NULL, 30, (const char *const[]){"--url", url, "health", NULL});
    expect_rc(&r, 3, "nobody listening");
    ck_assert_ptr_nonnull(strstr(r.err, "cannot connect"));
    c_result_free(&r);

    /* --wait: mtlctl starts first and keeps retrying until a daemon listens. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        c_result w = c_run(NULL, NULL, 120,
                           (const char *const[]){"--url", url, "--wait", "60", "health", NULL});
        _exit(w.status == 0 && strstr(w.out, "ok") ? 0 : 10 + w.status);
    }
    char dir[256], listen[64];
    mtld_proc late;
    h_tmpdir(dir, sizeof dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    usleep(300000); /* not needed for correctness: lets mtlctl meet a refusal first */
    h_start(&late, dir, (const char *const[]){"--listen", listen, NULL});
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mtlctl --wait ended with %d",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    ck_assert_int_eq(h_stop(&late, SIGTERM), 0);
}
END_TEST

START_TEST(url_and_token_from_flags_environment_and_file)
{
    char dir[256], tokfile[320], url_env[200];
    mtld_proc sec;
    h_tmpdir(dir, sizeof dir);
    snprintf(tokfile, sizeof tokfile, "%s/tokens", dir);
    FILE *f = fopen(tokfile, "w");
    ck_assert_ptr_nonnull(f);
    fputs("s3cret-token\n", f);
    fclose(f);
    h_start(&sec, dir, (const char *const[]){"--token-file", tokfile, NULL});
    snprintf(url_env, sizeof url_env, "MTLD_URL=%s", sec.url);

    c_result r = c_run(NULL, NULL, 30, (const char *const[]){"--url", sec.url, "health", NULL});
    expect_rc(&r, 0, "health needs no token");
    c_result_free(&r);
    r = c_run(NULL, NULL, 30, (const char *const[]){"--url", sec.url, "job", "list", NULL});
    expect_rc(&r, 1, "no token");
    ck_assert_msg(strlen(r.err) > 9, "no message for 401");
    c_result_free(&r);
    r = c_run(NULL, NULL, 30,
              (const char *const[]){"--url", sec.url, "--token", "wrong", "job", "list", NULL});
    expect_rc(&r, 1, "wrong token");
    c_result_free(&r);
    r = c_run(NULL, NULL, 30,
              (const char *const[]){"job", "list", "--url", sec.url, "--token", "s3cret-token",
                                    NULL});
    expect_rc(&r, 0, "--token after the command");
    ck_assert_ptr_nonnull(strstr(r.out, "ID"));
    c_result_free(&r);
    r = c_run((const char *const[]){url_env, "MTLD_TOKEN=s3cret-token", NULL}, NULL, 30,
              (const char *const[]){"job", "list", "--json", NULL});
    expect_rc(&r, 0, "MTLD_URL and MTLD_TOKEN");
    ck_assert_ptr_nonnull(strstr(r.out, "\"jobs\""));
    c_result_free(&r);
    r = c_run((const char *const[]){url_env, NULL}, NULL, 30,
              (const char *const[]){"--token-file", tokfile, "task", "list", NULL});
    expect_rc(&r, 0, "--token-file");
    c_result_free(&r);
    r = c_run((const char *const[]){url_env, NULL}, NULL, 30,
              (const char *const[]){"--token-file", tokfile, "--token", "x", "task", "list",
                                    NULL});
    expect_rc(&r, 2, "--token with --token-file");
    c_result_free(&r);
    ck_assert_int_eq(h_stop(&sec, SIGTERM), 0);
}
END_TEST

static const char *SPEC = "{\"name\":\"so-mtl\",\"algorithm\":\"multitask\","
                          "\"tasks\":[\"salary\",\"remote\"],\"model\":{\"trunk\":[32,16]},"
                          "\"epochs\":4,\"batch_size\":64,\"seed\":7,\"checkpoint_every\":100}";

START_TEST(every_command_against_a_real_daemon)
{
    define_so();
    c_result r = RUN("health");
    expect_rc(&r, 0, "health");
    ck_assert_ptr_nonnull(strstr(r.out, "ok (mtld "));
    c_result_free(&r);
    expect_json_is_body("/v1/health", (const char *const[]){"health", NULL});

    /* datasets */
    r = RUN("dataset", "list");
    expect_rc(&r, 0, "dataset list");
    ck_assert_ptr_nonnull(strstr(r.out, "so"));
    ck_assert_ptr_nonnull(strstr(r.out, "5594"));
    c_result_free(&r);
    r = RUN("dataset", "show", "so");
    expect_rc(&r, 0, "dataset show");
    ck_assert_ptr_nonnull(strstr(r.out, "years_coded_job"));
    ck_assert_ptr_nonnull(strstr(r.out, "MEAN"));
    c_result_free(&r);
    expect_json_is_body("/v1/datasets", (const char *const[]){"dataset", "list", NULL});
    expect_json_is_body("/v1/datasets/1", (const char *const[]){"dataset", "show", "1", NULL});
    r = RUN("dataset", "list", "--quiet");
    ck_assert_str_eq(r.out, "1\n");
    c_result_free(&r);

    /* tasks */
    r = RUN("task", "list");
    expect_rc(&r, 0, "task list");
    ck_assert_ptr_nonnull(strstr(r.out, "salary"));
    ck_assert_ptr_nonnull(strstr(r.out, "remote"));
    c_result_free(&r);
    r = RUN("task", "show", "remote");
    expect_rc(&r, 0, "task show");
    ck_assert_ptr_nonnull(strstr(r.out, "classification"));
    c_result_free(&r);
    expect_json_is_body("/v1/tasks", (const char *const[]){"task", "list", NULL});
    /* pages */
    r = RUN("task", "list", "--limit", "1");
    expect_rc(&r, 0, "task list --limit");
    ck_assert_msg(strstr(r.out, "\n(1-1 of 2; more with --offset 1)\n") != NULL, "%s", r.out);
    c_result_free(&r);
    r = RUN("task", "list", "--limit", "1", "--offset", "1");
    ck_assert_msg(strstr(r.out, "\n(2-2 of 2)\n") != NULL, "%s", r.out);
    c_result_free(&r);
    expect_json_is_body("/v1/tasks?limit=1&offset=1",
                        (const char *const[]){"task", "list", "--limit", "1", "--offset", "1",
                                              NULL});
    r = RUN("task", "list", "--limit", "x");
    expect_rc(&r, 2, "a limit that is not a number");
    c_result_free(&r);
    r = RUN("task", "create", "--name", "sine", "--generator", "sinusoid", "--quiet");
    expect_rc(&r, 0, "task create --generator");
    ck_assert_str_eq(r.out, "3\n");
    c_result_free(&r);
    r = RUN("task", "create", "--name", "bad", "--dataset", "so", "--target", "nope");
    expect_rc(&r, 1, "task on a missing column");
    ck_assert_msg(strstr(r.err, "nope") != NULL, "message does not name the column: %s", r.err);
    c_result_free(&r);

    /* a job, watched to its end (not a terminal: plain lines only) */
    r = RUN("job", "submit", write_spec("spec.json", SPEC), "--watch");
    expect_rc(&r, 0, "job submit --watch");
    ck_assert_msg(strncmp(r.out, "1\n", 2) == 0, "submit prints the id first: %s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "job 1 so-mtl succeeded"));
    ck_assert_ptr_nonnull(strstr(r.out, "ACCURACY"));
    ck_assert(!c_has_byte(r.out, r.out_len, '\r') && !c_has_byte(r.out, r.out_len, '\033'));
    c_result_free(&r);
    r = RUN("job", "watch", "1", "--quiet");
    expect_rc(&r, 0, "job watch of a finished job");
    ck_assert_str_eq(r.out, "succeeded\n");
    c_result_free(&r);
    expect_json_is_body("/v1/jobs/1", (const char *const[]){"job", "watch", "1", NULL});
    expect_json_is_body("/v1/jobs/1", (const char *const[]){"job", "show", "1", NULL});
    expect_json_is_body("/v1/jobs", (const char *const[]){"job", "list", NULL});
    r = RUN("job", "list", "--state", "succeeded", "--quiet");
    ck_assert_str_eq(r.out, "1\n");
    c_result_free(&r);
    r = RUN("job", "list", "--state", "running", "--quiet");
    expect_rc(&r, 0, "job list --state running");
    ck_assert_str_eq(r.out, "");
    c_result_free(&r);
    r = RUN("job", "show", "1");
    expect_rc(&r, 0, "job show");
    ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
    ck_assert_ptr_nonnull(strstr(r.out, "salary"));
    c_result_free(&r);

    /* metrics: CSV exactly the server's; the table has every row */
    r = RUN("job", "metrics", "1", "--csv");
    expect_rc(&r, 0, "job metrics --csv");
    h_resp s = h_req(&P, "GET", "/v1/jobs/1/metrics?format=csv", NULL, NULL, 0);
    ck_assert_int_eq(s.status, 200);
    ck_assert_uint_eq(r.out_len, s.len);
    ck_assert(memcmp(r.out, s.body, s.len) == 0);
    size_t csv_lines = 0;
    for (size_t i = 0; i < s.len; i++)
        csv_lines += s.body[i] == '\n';
    h_resp_free(&s);
    c_result_free(&r);
    r = RUN("job", "metrics", "1");
    expect_rc(&r, 0, "job metrics");
    size_t table_lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        table_lines += r.out[i] == '\n';
    ck_assert_uint_eq(table_lines, csv_lines); /* header + one line per metric, both */
    c_result_free(&r);
    expect_json_is_body("/v1/jobs/1/metrics",
                        (const char *const[]){"job", "metrics", "1", NULL});

    /* checkpoint: atomic download equal to the server's bytes */
    char out[320], tmp[330];
    snprintf(out, sizeof out, "%s/model.safetensors", DIR_);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    r = RUN("job", "checkpoint", "1", "-o", out);
    expect_rc(&r, 0, "job checkpoint");
    ck_assert_ptr_nonnull(strstr(r.out, "wrote "));
    c_result_free(&r);
    s = h_req(&P, "GET", "/v1/jobs/1/checkpoints/latest", NULL, NULL, 0);
    ck_assert_int_eq(s.status, 200);
    size_t got_len = 0;
    char *got = h_read_file(out, &got_len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_gt(s.len, 8);
    ck_assert_uint_eq(got_len, s.len);
    ck_assert(memcmp(got, s.body, s.len) == 0);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    free(got);
    h_resp_free(&s);
    r = RUN("job", "checkpoint", "99", "-o", out);
    expect_rc(&r, 1, "checkpoint of a missing job");
    got = h_read_file(out, &got_len); /* the old file is untouched */
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_gt(got_len, 8);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    free(got);
    c_result_free(&r);
    r = RUN("job", "checkpoints", "1");
    expect_rc(&r, 0, "job checkpoints");
    ck_assert_ptr_nonnull(strstr(r.out, "STEP"));
    ck_assert_ptr_nonnull(strstr(r.out, "MARK"));
    ck_assert_ptr_nonnull(strstr(r.out, "latest"));
    ck_assert_ptr_nonnull(strstr(r.out, "best"));
    c_result_free(&r);
    /* --checkpoint best: the server's best checkpoint, byte for byte */
    r = RUN("job", "checkpoint", "1", "-o", out, "--checkpoint", "best");
    expect_rc(&r, 0, "job checkpoint --checkpoint best");
    c_result_free(&r);
    s = h_req(&P, "GET", "/v1/jobs/1/checkpoints/best", NULL, NULL, 0);
    ck_assert_int_eq(s.status, 200);
    got = h_read_file(out, &got_len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got_len, s.len);
    ck_assert(memcmp(got, s.body, s.len) == 0);
    free(got);
    h_resp_free(&s);
    r = RUN("job", "checkpoint", "1", "-o", out, "--checkpoint", "../x");
    expect_rc(&r, 2, "job checkpoint --checkpoint ../x");
    c_result_free(&r);

    /* predict: the first 30 rows, in batches of 7, equal the server's answer */
    char csv[320];
    snprintf(csv, sizeof csv, "%s/head.csv", DIR_);
    size_t so_len = 0;
    char *so = h_read_file(h_src("data/stackoverflow/stackoverflow.csv"), &so_len);
    ck_assert_ptr_nonnull(so);
    size_t cut = 0;
    for (int lines = 0; cut < so_len && lines < 31; cut++)
        lines += so[cut] == '\n';
    FILE *f = fopen(csv, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(so, 1, cut, f);
    fclose(f);
    r = RUN("predict", "1", "--task", "remote", "--batch", "7", csv);
    expect_rc(&r, 0, "predict");
    s = h_req(&P, "POST", "/v1/jobs/1/predict?task=remote", "text/csv", so, cut);
    ck_assert_int_eq(s.status, 200);
    json_t *pj = h_json(&s), *labels = json_object_get(pj, "labels");
    ck_assert_int_eq(json_array_size(labels), 2);
    char want[256];
    snprintf(want, sizeof want, "remote,remote_p_%s,remote_p_%s\n",
             json_string_value(json_array_get(labels, 0)),
             json_string_value(json_array_get(labels, 1)));
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "header: %s", r.out);
    const char *line = r.out + strlen(want);
    size_t i;
    json_t *pred;
    json_array_foreach(json_object_get(pj, "predictions"), i, pred)
    {
        char lab[64];
        double p0, p1;
        ck_assert_msg(sscanf(line, "%63[^,],%lf,%lf", lab, &p0, &p1) == 3, "row %zu: %s", i,
                      line);
        ck_assert_str_eq(lab, json_string_value(json_object_get(pred, "label")));
        const json_t *pr = json_object_get(pred, "probabilities");
        /* float32 arithmetic: a batch of 7 and one of 30 may round a sum
         * differently in the last bit (about 6e-8 relative) */
        ck_assert_double_eq_tol(p0, json_number_value(json_array_get(pr, 0)), 1e-6);
        ck_assert_double_eq_tol(p1, json_number_value(json_array_get(pr, 1)), 1e-6);
        line = strchr(line, '\n') + 1;
    }
    ck_assert_uint_eq(i, 30);
    ck_assert_str_eq(line, "");
    json_decref(pj);
    h_resp_free(&s);
    c_result_free(&r);
    free(so);
    r = RUN("predict", "1", "--task", "salary", csv);
    expect_rc(&r, 0, "predict regression");
    ck_assert_msg(strncmp(r.out, "salary\n", 7) == 0, "header: %s", r.out);
    c_result_free(&r);
    r = RUN("predict", "1", "--task", "nope", csv);
    expect_rc(&r, 1, "predict an unknown task");
    ck_assert_msg(strstr(r.err, "nope") && strstr(r.err, "(field: task)"),
                  "the server's message and field: %s", r.err);
    c_result_free(&r);

    /* removal, and what the server refuses */
    r = RUN("dataset", "rm", "so");
    expect_rc(&r, 1, "dataset rm while tasks use it");
    ck_assert_msg(strlen(r.err) > 9, "no message");
    c_result_free(&r);
    r = RUN("job", "rm", "1");
    expect_rc(&r, 0, "job rm");
    ck_assert_str_eq(r.out, "deleted job 1\n");
    c_result_free(&r);
    r = RUN("job", "show", "1");
    expect_rc(&r, 1, "job show of a deleted job");
    c_result_free(&r);
    r = RUN("--json", "job", "show", "1");
    expect_rc(&r, 1, "--json error");
    json_t *ej = json_loads(r.out, 0, NULL);
    ck_assert_msg(json_is_object(json_object_get(ej, "error")), "--json error body: %s", r.out);
    json_decref(ej);
    c_result_free(&r);
    for (const char *const *t = (const char *const[]){"salary", "remote", "sine", NULL}; *t;
         t++) {
        r = RUN("task", "rm", *t, "--quiet");
        expect_rc(&r, 0, "task rm");
        ck_assert_str_eq(r.out, "");
        c_result_free(&r);
    }
    r = RUN("dataset", "rm", "so");
    expect_rc(&r, 0, "dataset rm");
    c_result_free(&r);
}
END_TEST

START_TEST(watch_exits_with_the_jobs_outcome)
{
    define_so();
    /* failed: a learning rate that makes the gradient non-finite */
    c_result r = RUN("job", "submit", "--watch",
                     write_spec("diverge.json",
                                "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                                "\"optimizer\":{\"name\":\"sgd\",\"lr\":10},\"epochs\":3}"));
    expect_rc(&r, 5, "a job that fails");
    ck_assert_ptr_nonnull(strstr(r.out, "failed"));
    /* the reason: a loss or gradient that "became" non-finite, infinite or NaN */
    ck_assert_msg(strstr(r.err, " became ") != NULL, "no reason: %s", r.err);
    c_result_free(&r);

    /* cancelled: a long job, cancelled at once */
    r = RUN("job", "submit", "--quiet",
            write_spec("long.json", "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                                    "\"epochs\":5000}"));
    expect_rc(&r, 0, "submit a long job");
    char id[32];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    c_result_free(&r);
    r = RUN("job", "cancel", id);
    expect_rc(&r, 0, "job cancel");
    c_result_free(&r);
    r = RUN("job", "watch", id);
    expect_rc(&r, 5, "watching a cancelled job");
    ck_assert_ptr_nonnull(strstr(r.out, "cancelled"));
    c_result_free(&r);
    r = RUN("job", "watch", "999");
    expect_rc(&r, 1, "watching a job that does not exist");
    c_result_free(&r);
}
END_TEST

/* adapt: a protonet meta-trained on letters A-T meets five held-out letters
 * in CSV files (5 labelled support rows each; 4 query rows each, without
 * the label column); its predictions must beat chance by far. */
START_TEST(adapt_a_protonet_to_held_out_letters)
{
    c_result r = RUN("dataset", "upload", h_src("data/letters/letters.csv"), "-q");
    expect_rc(&r, 0, "upload letters");
    c_result_free(&r);
    r = RUN("task", "create", "--name", "lettr", "--dataset", "letters", "--target", "lettr",
            "--kind", "classification", "-q");
    expect_rc(&r, 0, "task lettr");
    c_result_free(&r);
    r = RUN("job", "submit", "--watch", "-q",
            write_spec("pn.json",
                       "{\"algorithm\":\"protonet\",\"tasks\":[\"lettr\"],"
                       "\"model\":{\"trunk\":[32]},\"episodes\":{\"ways\":5,\"shots\":1,"
                       "\"queries\":5,\"test_classes\":[\"U\",\"V\",\"W\",\"X\",\"Y\",\"Z\"]},"
                       "\"meta_batch\":4,\"steps\":100,\"eval\":{\"episodes\":20}}"));
    expect_rc(&r, 0, "protonet job");
    c_result_free(&r);

    /* the files, from the real data */
    char sp[320], qp[320];
    size_t len = 0;
    char *all = h_read_file(h_src("data/letters/letters.csv"), &len);
    ck_assert_ptr_nonnull(all);
    snprintf(sp, sizeof sp, "%s/support.csv", DIR_);
    snprintf(qp, sizeof qp, "%s/query.csv", DIR_);
    FILE *fs = fopen(sp, "w"), *fq = fopen(qp, "w");
    ck_assert(fs && fq);
    char *save = NULL, *line = strtok_r(all, "\n", &save);
    fprintf(fs, "%s\n", line);
    fprintf(fq, "%s\n", strchr(line, ',') + 1);
    int seen[5] = {0}, nq = 0, nfirst = 0;
    char truth[20], first[6] = "";
    while ((line = strtok_r(NULL, "\n", &save)))
        if (line[0] >= 'U' && line[0] <= 'Y') {
            int k = line[0] - 'U';
            if (seen[k] < 5) {
                fprintf(fs, "%s\n", line);
                if (!seen[k])
                    first[nfirst++] = line[0]; /* labels are numbered as they first appear */
            } else if (seen[k] < 9) {
                fprintf(fq, "%s\n", strchr(line, ',') + 1);
                truth[nq++] = line[0];
            }
            seen[k]++;
        }
    ck_assert_int_eq(nq, 20);
    ck_assert_int_eq(nfirst, 5);
    fclose(fs);
    fclose(fq);
    free(all);

    r = RUN("adapt", "1", "--support", sp, "--query", qp);
    expect_rc(&r, 0, "adapt");
    char want[160];
    snprintf(want, sizeof want,
             "prediction,prediction_p_%c,prediction_p_%c,prediction_p_%c,prediction_p_%c,"
             "prediction_p_%c\n",
             first[0], first[1], first[2], first[3], first[4]);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "header: %s", r.out);
    int rows = 0, right = 0;
    for (const char *l = r.out + strlen(want); *l && rows < 20; l = strchr(l, '\n') + 1, rows++)
        right += l[0] == truth[rows] && l[1] == ',';
    ck_assert_int_eq(rows, 20);
    ck_assert_msg(right > 8, "adapted 5-way 5-shot: %d of 20 right (chance 4)", right);
    c_result_free(&r);

    r = RUN("adapt", "1", "--support", sp, "--query", qp, "--json");
    expect_rc(&r, 0, "adapt --json");
    json_t *j = json_loads(r.out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "predictions")), 20);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "support_rows")), 25);
    json_decref(j);
    c_result_free(&r);

    r = RUN("adapt", "1", "--support", sp);
    expect_rc(&r, 2, "adapt without --query");
    c_result_free(&r);
    r = RUN("adapt", "1", "--support", sp, "--query", sp);
    expect_rc(&r, 2, "no column tells the labels");
    ck_assert_ptr_nonnull(strstr(r.err, "--label"));
    c_result_free(&r);
    r = RUN("adapt", "1", "--support", sp, "--query", sp, "--label", "lettr", "--steps", "1");
    expect_rc(&r, 1, "protonet takes no steps");
    ck_assert_ptr_nonnull(strstr(r.err, "steps"));
    c_result_free(&r);
}
END_TEST

/* Exit 4 for a 5xx: a daemon allowed one connection at a time answers a
 * second one 503 (max_connections). The first is held open after a
 * complete request, so the daemon has surely counted it. */
START_TEST(server_error_is_exit_4)
{
    char dir[256];
    mtld_proc one;
    h_tmpdir(dir, sizeof dir);
    h_start(&one, dir, (const char *const[]){"--max-connections", "1", NULL});
    int fd = t_connect(&one);
    ck_assert_int_ge(fd, 0);
    const char *req = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[512];
    ck_assert_int_gt(read(fd, buf, sizeof buf), 0); /* answered: counted, kept alive */
    c_result r = c_run(NULL, NULL, 60, (const char *const[]){"--url", one.url, "health", NULL});
    expect_rc(&r, 4, "a 503 from the daemon");
    ck_assert_msg(strstr(r.err, "max_connections") != NULL, "not the server's message: %s",
                  r.err);
    c_result_free(&r);
    close(fd);
    ck_assert_int_eq(h_stop(&one, SIGTERM), 0);
}
END_TEST

/* The rest of the API: a dataset's rows, a gzip-compressed upload, an
 * imported model (a safetensors file written here: one trunk layer 3 -> 2),
 * the daemon's Prometheus metrics. */
START_TEST(rows_gzip_import_and_server_metrics)
{
    char gz[320], cmd[800];
    snprintf(gz, sizeof gz, "%s/so.csv.gz", DIR_);
    snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", h_src("data/stackoverflow/stackoverflow.csv"),
             gz);
    ck_assert_int_eq(system(cmd), 0);
    c_result r = RUN("dataset", "upload", gz);
    expect_rc(&r, 0, "gzip upload");
    ck_assert_msg(strstr(r.out, "dataset 1 so: 5594 rows, 25 columns") != NULL, "%s", r.out);
    c_result_free(&r);

    r = RUN("dataset", "rows", "so", "--offset", "1", "--limit", "2");
    expect_rc(&r, 0, "dataset rows");
    ck_assert_msg(strncmp(r.out, "years_coded_job", 15) == 0, "no header: %s", r.out);
    int lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        lines += r.out[i] == '\n';
    ck_assert_int_eq(lines, 4); /* header, 2 rows, "(rows 1-2 of 5594)" */
    ck_assert_ptr_nonnull(strstr(r.out, "(rows 1-2 of 5594)"));
    c_result_free(&r);
    expect_json_is_body("/v1/datasets/1/rows?offset=1&limit=2",
                        (const char *const[]){"dataset", "rows", "1", "--offset", "1", "--limit",
                                              "2", NULL});

    /* a model from elsewhere */
    const char *hdr = "{\"trunk.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                      "\"data_offsets\":[0,24]},\"trunk.0.bias\":{\"dtype\":\"F32\","
                      "\"shape\":[2],\"data_offsets\":[24,32]}}";
    unsigned char len8[8] = {0};
    size_t hl = strlen(hdr);
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((unsigned long long)hl >> (8 * k));
    float w[8] = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, 0.01f, 0.02f};
    char st[320];
    snprintf(st, sizeof st, "%s/pre.safetensors", DIR_);
    FILE *f = fopen(st, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hl, f);
    fwrite(w, sizeof w[0], 8, f); /* little-endian on every machine we build for */
    fclose(f);
    r = RUN("checkpoint", "import", st, "--name", "pre", "-q");
    expect_rc(&r, 0, "checkpoint import");
    ck_assert_str_eq(r.out, "1\n");
    c_result_free(&r);
    r = RUN("checkpoint", "list");
    expect_rc(&r, 0, "checkpoint list");
    ck_assert_ptr_nonnull(strstr(r.out, "pre"));
    c_result_free(&r);
    expect_json_is_body("/v1/checkpoints", (const char *const[]){"checkpoint", "list", NULL});
    r = RUN("checkpoint", "import", st, "--name", "pre");
    expect_rc(&r, 1, "a name taken");
    c_result_free(&r);
    r = RUN("checkpoint", "import", gz);
    expect_rc(&r, 1, "not a safetensors file");
    ck_assert_msg(strstr(r.err, "(field: ") != NULL, "no field: %s", r.err);
    c_result_free(&r);

    r = RUN("metrics");
    expect_rc(&r, 0, "metrics");
    ck_assert_ptr_nonnull(strstr(r.out, "mtld_build_info{version=\"" MTLD_VERSION "\"} 1"));
    c_result_free(&r);
}
END_TEST

/* The bash completion script, run by bash, asks the binary for candidates. */
static char *complete_with_bash(const char *words, int cword)
{
    char cmd[1024], path[320];
    snprintf(path, sizeof path, "%s/complete.out", DIR_);
    snprintf(cmd, sizeof cmd,
             "bash -c 'source %s; COMP_WORDS=(%s %s); COMP_CWORD=%d; _mtlctl; "
             "printf \"%%s\\n\" \"${COMPREPLY[@]}\"' > %s",
             h_src("client/mtlctl.bash"), MTLCTL_BIN, words, cword, path);
    ck_assert_int_eq(system(cmd), 0);
    size_t n;
    char *out = h_read_file(path, &n);
    ck_assert_ptr_nonnull(out);
    return out;
}

START_TEST(bash_completion_from_the_command_table)
{
    char *o = complete_with_bash("job w", 2);
    ck_assert_str_eq(o, "watch\n");
    free(o);
    o = complete_with_bash("\"\"", 1);
    for (const char *const *w = (const char *const[]){"health\n", "dataset\n", "task\n", "job\n",
                                                      "predict\n", "adapt\n", NULL};
         *w; w++)
        ck_assert_msg(strstr(o, *w) != NULL, "top level lacks %s: %s", *w, o);
    free(o);
    o = complete_with_bash("dataset upload x.csv --missing \"\"", 5);
    ck_assert_str_eq(o, "error\ndrop\nfill\nkeep\n");
    free(o);
    o = complete_with_bash("job list --st", 3);
    ck_assert_str_eq(o, "--state\n");
    free(o);
    o = complete_with_bash("--json task create --gen", 4);
    ck_assert_str_eq(o, "--generator\n");
    free(o);
    /* a file name where a file is wanted: this test's own source file */
    char words[600];
    snprintf(words, sizeof words, "dataset upload %s", h_src("tests/integration/test_cli."));
    o = complete_with_bash(words, 3);
    ck_assert_msg(strstr(o, "test_cli.c\n") != NULL, "no file names: %s", o);
    free(o);
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("mtlctl");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, help_version_and_usage_errors);
    tcase_add_test(tc, connect_refused_and_wait);
    tcase_add_test(tc, server_error_is_exit_4);
    tcase_add_test(tc, url_and_token_from_flags_environment_and_file);
    tcase_add_test(tc, every_command_against_a_real_daemon);
    tcase_add_test(tc, watch_exits_with_the_jobs_outcome);
    tcase_add_test(tc, adapt_a_protonet_to_held_out_letters);
    tcase_add_test(tc, bash_completion_from_the_command_table);
    tcase_add_test(tc, rows_gzip_import_and_server_metrics);
    suite_add_tcase(s, tc);
    return s;
}
