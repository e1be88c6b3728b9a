/* tests/integration/cli_run.c — see cli_run.h. */
#include "tests/integration/cli_run.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void child_exec(const char *const *env, const char *const *argv)
{
    const char *args[64] = {MTLCTL_BIN};
    int n = 1;
    unsetenv("MTLD_URL");
    unsetenv("MTLD_TOKEN");
    unsetenv("NO_COLOR");
    setenv("TERM", "xterm", 1);
    for (int i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq) {
            unsetenv(env[i]);
        } else {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        }
    }
    for (int i = 0; argv[i] && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execv(MTLCTL_BIN, (char *const *)args);
    _exit(127);
}

/* Waits for pid (killing it after the deadline); fills status and rss. */
static void reap(pid_t pid, double deadline, c_result *r)
{
    int st = 0;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &st, WNOHANG, &ru);
        if (w == pid)
            break;
        ck_assert_int_eq(w, 0);
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            wait4(pid, &st, 0, &ru);
            ck_abort_msg("mtlctl did not finish in time");
        }
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->maxrss_kb = ru.ru_maxrss;
}

c_result c_run(const char *const *env, const char *stdin_path, double timeout_s,
               const char *const *argv)
{
    char dir[256], out_path[300], err_path[300];
    c_result r;
    memset(&r, 0, sizeof r);
    /* not h_tmpdir: this one is removed right here, and the harness's list
     * of directories to clean up is kept for the daemons' */
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mtlctl-run-XXXXXX", base && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        child_exec(env, argv);
    }
    reap(pid, now_s() + timeout_s, &r);
    size_t elen = 0;
    r.out = h_read_file(out_path, &r.out_len);
    r.err = h_read_file(err_path, &elen);
    ck_assert_ptr_nonnull(r.out);
    ck_assert_ptr_nonnull(r.err);
    unlink(out_path);
    unlink(err_path);
    rmdir(dir);
    return r;
}

c_result c_run_pty(const char *const *env, double timeout_s, const char *const *argv)
{
    struct winsize ws = {.ws_row = 30, .ws_col = 100};
    c_result r;
    int master = -1;
    size_t cap = 1 << 16;
    memset(&r, 0, sizeof r);
    r.out = malloc(cap);
    r.err = strdup("");
    ck_assert_ptr_nonnull(r.out);

    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        child_exec(env, argv);

    double deadline = now_s() + timeout_s;
    for (;;) {
        struct pollfd pfd = {master, POLLIN, 0};
        int k = poll(&pfd, 1, 100);
        if (k < 0 && errno == EINTR)
            continue;
        if (k > 0) {
            if (r.out_len + 4096 + 1 > cap) {
                cap *= 2;
                r.out = realloc(r.out, cap);
                ck_assert_ptr_nonnull(r.out);
            }
            ssize_t n = read(master, r.out + r.out_len, 4096);
            if (n <= 0)
                break; /* EIO: the child closed its side */
            r.out_len += (size_t)n;
        }
        if (now_s() > deadline)
            break;
    }
    r.out[r.out_len] = '\0';
    close(master);
    reap(pid, deadline + 5, &r);
    return r;
}

void c_result_free(c_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

c_result c_mtlctl(const char *url, const char *const *argv)
{
    const char *args[64] = {"--url", url};
    int n = 2;
    for (int i = 0; argv[i] && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    return c_run(NULL, NULL, 120, args);
}

int c_has_byte(const char *s, size_t n, char c)
{
    return memchr(s, c, n) != NULL;
}
