/*
 * tests/integration/test_notify.c — mtld as a process under a supervisor:
 *  - sd_notify: the test binds a unix datagram socket, points NOTIFY_SOCKET
 *    (and WATCHDOG_USEC) at it, and reads what mtld said, in order:
 *    READY=1 first, STATUS= lines, WATCHDOG=1 pings, STOPPING=1 last;
 *  - a second SIGTERM during a slow shutdown exits at once, and the job
 *    interrupted that way is found again after a restart;
 *  - --log-level filters, --log-file is reopened on SIGHUP, a bad level is
 *    refused.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static char DIR_[256];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 when file path contains needle. */
static int file_has(const char *path, const char *needle)
{
    size_t len = 0;
    char *t = h_read_file(path, &len);
    int found = t && strstr(t, needle) != NULL;
    free(t);
    return found;
}

/* Reads the notify socket as systemd would, so mtld never waits on a full
 * queue (a unix datagram socket holds few unread messages). */
typedef struct {
    int fd;
    pthread_mutex_t mu; /* guards n and msgs (the test polls them) */
    int n;
    char msgs[512][128];
} listener;

/* How many messages so far start with prefix (and contain needle, if given). */
static int count_msgs(listener *l, const char *prefix, const char *needle)
{
    int k = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++)
        if (!strncmp(l->msgs[i], prefix, strlen(prefix)) && (!needle || strstr(l->msgs[i], needle)))
            k++;
    pthread_mutex_unlock(&l->mu);
    return k;
}

static void *listen_main(void *arg)
{
    listener *l = arg;
    char buf[256];
    for (;;) {
        ssize_t r = recv(l->fd, buf, sizeof buf - 1, 0);
        if (r <= 0)
            break;
        buf[r] = 0;
        if (!strcmp(buf, "QUIT"))
            break;
        pthread_mutex_lock(&l->mu);
        if (l->n < 512) {
            buf[sizeof l->msgs[0] - 1] = 0;
            memcpy(l->msgs[l->n++], buf, strlen(buf) + 1);
        }
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

START_TEST(sd_notify_in_order)
{
    h_tmpdir(DIR_, sizeof DIR_);
    char sock[300];
    snprintf(sock, sizeof sock, "%s/notify.sock", DIR_);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(sock), sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static listener l;
    l.fd = fd;
    l.n = 0;
    pthread_mutex_init(&l.mu, NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, listen_main, &l), 0);

    setenv("NOTIFY_SOCKET", sock, 1);
    setenv("WATCHDOG_USEC", "400000", 1); /* ping every 0.2 s */
    mtld_proc p;
    h_start(&p, DIR_, NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    /* State changes: a small job runs to success. */
    json_decref(h_upload(&p, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&p, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    json_t *j = h_post_json(&p, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                            "\"model\":{\"trunk\":[8]},\"epochs\":1}",
                            202);
    json_t *done = h_wait_job(&p, json_integer_value(json_object_get(j, "id")), 60);
    ck_assert_str_eq(json_string_value(json_object_get(done, "state")), "succeeded");
    json_decref(done);
    json_decref(j);
    /* Poll (never a fixed sleep) for a few watchdog pings and the STATUS=
     * that follows the job's end; the deadline only guards a hang. */
    for (double end = now_s() + 120; now_s() < end;) {
        if (count_msgs(&l, "WATCHDOG=1", NULL) >= 3 && count_msgs(&l, "STATUS=", "1 succeeded"))
            break;
        sleep_ms(50);
    }
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);

    /* Everything mtld sent is queued before it exited: end the reader. */
    int q = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_eq(sendto(q, "QUIT", 4, 0, (struct sockaddr *)&sa, sizeof sa), 4);
    close(q);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&l.mu);
    close(fd);
    unlink(sock);
    int n = l.n;
    char (*msgs)[128] = l.msgs;
    ck_assert_int_ge(n, 4);
    ck_assert_msg(!strcmp(msgs[0], "READY=1"), "first message '%s'", msgs[0]);
    ck_assert_msg(!strcmp(msgs[n - 1], "STOPPING=1"), "last message '%s'", msgs[n - 1]);
    int status = 0, dog = 0, done_status = 0;
    for (int i = 1; i < n - 1; i++) {
        if (!strncmp(msgs[i], "STATUS=", 7)) {
            status++;
            ck_assert_msg(strstr(msgs[i], "queued") && strstr(msgs[i], "running"), "'%s'",
                          msgs[i]);
            if (strstr(msgs[i], "1 succeeded"))
                done_status = 1;
        } else if (!strcmp(msgs[i], "WATCHDOG=1")) {
            dog++;
        } else {
            ck_abort_msg("unexpected message '%s'", msgs[i]);
        }
    }
    ck_assert_int_ge(status, 2);
    ck_assert_msg(done_status, "no STATUS= after the job succeeded");
    ck_assert_msg(dog >= 3, "only %d watchdog pings", dog);
}
END_TEST

START_TEST(second_sigterm_exits_at_once)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    json_decref(h_upload(&p, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&p, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    /* Steps of a second or more: a stop has to wait for the step under way
     * (the runner checks between steps), so the second signal surely lands
     * while the first stop is still going on. */
    json_t *j = h_post_json(&p, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                            "\"model\":{\"trunk\":[2048,2048,2048]},\"epochs\":50,"
                            "\"batch_size\":256,\"checkpoint_every\":1000000}",
                            202);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    char path[64], log[400];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    /* Wait for a finished step (not just "running": the model may still be
     * being built, and a stop before the first step has nothing to
     * checkpoint, so it would end before the second signal): the signal
     * then lands inside a later second-long step. */
    int stepping = 0;
    for (double end = now_s() + 300; now_s() < end && !stepping;) {
        json_t *s = h_get_json(&p, path, 200);
        stepping = !strcmp(json_string_value(json_object_get(s, "state")), "running") &&
                   json_integer_value(json_object_get(s, "step")) >= 1;
        json_decref(s);
        if (!stepping)
            sleep_ms(10);
    }
    ck_assert_msg(stepping, "the job never finished a step");
    kill(p.pid, SIGTERM);
    /* The first signal must have been taken before the second is sent
     * (two pending SIGTERMs are one). */
    int seen = 0;
    for (double end = now_s() + 120; now_s() < end && !seen;) {
        seen = file_has(log, "event=stopping");
        if (!seen)
            sleep_ms(2);
    }
    ck_assert(seen);
    double t = now_s();
    int st = h_stop(&p, SIGTERM);
    ck_assert_msg(st == 1, "second SIGTERM: exit status %d, expected 1 (at once)", st);
    ck_assert_msg(!file_has(log, "event=stopped"), "the graceful stop finished first");
    double took = now_s() - t;
    /* "At once" is shown by the status and the missing "stopped" line; the
     * bound only catches a hang (the machine may be loaded). */
    ck_assert_msg(took < 30, "exit took %.2f s", took);

    /* The job is found again: re-queued and running after a restart, and no
     * half-written checkpoint is left behind. */
    h_start(&p, DIR_, NULL);
    json_t *s = h_get_json(&p, path, 200);
    const char *state = json_string_value(json_object_get(s, "state"));
    ck_assert_msg(!strcmp(state, "running") || !strcmp(state, "queued"), "state %s", state);
    json_decref(s);
    ck_assert_msg(file_has(log, "event=jobs_requeued"), "no jobs_requeued line");
    /* (SIGTERM with a running job exiting 0 is test_durability's; here a
     * step lasts long, so end without waiting for it.) */
    ck_assert_int_eq(h_stop(&p, SIGKILL), 128 + SIGKILL);
}
END_TEST

START_TEST(log_level_file_and_sighup)
{
    mtld_proc p;
    char file[400], moved[420], cmd[600];
    h_tmpdir(DIR_, sizeof DIR_);
    snprintf(file, sizeof file, "%s/file.log", DIR_);
    snprintf(moved, sizeof moved, "%s.1", file);

    /* warn: the info lines (listening, stopping) are not written */
    const char *warn[] = {"--log-file", file, "--log-level", "warn", NULL};
    h_start(&p, DIR_, warn);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    ck_assert(!file_has(file, "level=info"));
    ck_assert(!file_has(file, "event=listening"));

    const char *info[] = {"--log-file", file, NULL};
    h_start(&p, DIR_, info);
    ck_assert(file_has(file, "event=listening"));
    ck_assert_int_eq(rename(file, moved), 0);
    kill(p.pid, SIGHUP);
    int ok = 0;
    for (double end = now_s() + 60; now_s() < end && !ok;) {
        ok = file_has(file, "event=log_reopened");
        if (!ok)
            sleep_ms(10);
    }
    ck_assert_msg(ok, "SIGHUP did not reopen %s", file);
    ck_assert(!file_has(moved, "event=log_reopened"));
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    ck_assert(file_has(file, "event=stopped"));
    /* stderr stays quiet when a file is set */
    snprintf(cmd, sizeof cmd, "%s/mtld.log", DIR_);
    ck_assert(!file_has(cmd, "event=listening"));

    snprintf(cmd, sizeof cmd, "%s --log-level loud --data-dir %s/x 2>/dev/null", MTLD_BIN, DIR_);
    int st = system(cmd);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}
END_TEST

/* Runs cmd (a shell line); its stdout+stderr into out; returns the exit code. */
static int run_cmd(const char *cmd, char *out, size_t n)
{
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One settings table: defaults < --config FILE < flags; --help lists the
 * table with defaults; --version; a bad file line is named and refused. */
START_TEST(config_file_below_flags)
{
    mtld_proc p;
    char conf[400], log[400], cmd[1200], out[8192];
    h_tmpdir(DIR_, sizeof DIR_);
    snprintf(conf, sizeof conf, "%s/mtld.conf", DIR_);
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("# settings\nworkers = 3\nlog-level = warn\n\nmax-queued = 5\n", f);
    fclose(f);
    /* the file is read: log-level warn hides the info line */
    const char *file_only[] = {"--config", conf, NULL};
    h_start(&p, DIR_, file_only);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    ck_assert_msg(!file_has(log, "event=listening"), "the config file's log-level was ignored");
    /* flags win over the file: --log-level info and the harness's --workers 2 */
    const char *flags[] = {"--config", conf, "--log-level", "info", NULL};
    h_start(&p, DIR_, flags);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    ck_assert_msg(file_has(log, "event=listening") && file_has(log, "workers=2 "),
                  "flags did not win over the config file");
    /* --workers 0 (the table's default) means one worker per core */
    char dir2[256], log2[300], want[64];
    h_tmpdir(dir2, sizeof dir2);
    snprintf(log2, sizeof log2, "%s/mtld.log", dir2);
    const char *cores[] = {"--workers", "0", NULL};
    h_start(&p, dir2, cores);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    snprintf(want, sizeof want, "workers=%ld ", sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_msg(file_has(log2, want), "--workers 0 did not start one worker per core (%s)",
                  want);
    /* a bad line is named, and mtld refuses to start */
    f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("workers = 2\ncolour = blue\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --config %s --data-dir %s/x 2>&1", MTLD_BIN, conf, DIR_);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "line 2") && strstr(out, "colour"), "'%s'", out);
    f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("workers = many\n", f);
    fclose(f);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "line 1") && strstr(out, "workers"), "'%s'", out);
    /* --help: every setting of the table with its default; --version */
    snprintf(cmd, sizeof cmd, "%s --help 2>&1", MTLD_BIN);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof out), 0);
    const char *flagnames[] = {"--listen", "--data-dir", "--workers", "--max-queued", "--config",
                               "--log-level", "--log-file", "--ready-file", "--max-upload",
                               "--max-rows", "--max-columns", "--max-levels", "--max-field",
                               "--max-line", "--version"};
    for (size_t i = 0; i < sizeof flagnames / sizeof flagnames[0]; i++)
        ck_assert_msg(strstr(out, flagnames[i]), "--help does not list %s", flagnames[i]);
    ck_assert_msg(strstr(out, "[default: 1000]"), "--help shows no defaults");
    snprintf(cmd, sizeof cmd, "%s --version 2>&1", MTLD_BIN);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(!strncmp(out, "mtld ", 5) && out[5] >= '0' && out[5] <= '9', "'%s'", out);
}
END_TEST

/* A mask line of /proc/.../status ("SigBlk:\t0000000000004003"). */
static unsigned long long mask_of(const char *status, const char *key)
{
    const char *l = strstr(status, key);
    ck_assert_msg(l != NULL, "no %s line", key);
    return strtoull(l + strlen(key), NULL, 16);
}

/* Every thread of mtld, also those a library started before main() ran
 * (OpenBLAS's pool), either blocks SIGTERM, SIGINT and SIGHUP or has them
 * caught: none can be killed outright by a stop signal the kernel happens
 * to hand it (the process would die with 143 instead of checkpointing). */
START_TEST(no_thread_dies_of_a_stop_signal)
{
    mtld_proc p;
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, NULL);
    char path[400], *t;
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/status", (int)p.pid);
    t = h_read_file(path, &len);
    ck_assert_ptr_nonnull(t);
    unsigned long long caught = mask_of(t, "SigCgt:");
    free(t);
    const unsigned long long need =
        1ULL << (SIGTERM - 1) | 1ULL << (SIGINT - 1) | 1ULL << (SIGHUP - 1);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)p.pid);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int threads = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/status", dir, de->d_name);
        t = h_read_file(path, &len);
        if (!t)
            continue; /* a thread that just ended */
        unsigned long long blocked = mask_of(t, "SigBlk:");
        free(t);
        threads++;
        ck_assert_msg(((blocked | caught) & need) == need,
                      "thread %s neither blocks nor catches the stop signals (SigBlk %llx, "
                      "SigCgt %llx)",
                      de->d_name, blocked, caught);
    }
    closedir(d);
    ck_assert_int_gt(threads, 1);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *notify_suite(void);
Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sd_notify_in_order);
    tcase_add_test(tc, second_sigterm_exits_at_once);
    tcase_add_test(tc, log_level_file_and_sighup);
    tcase_add_test(tc, no_thread_dies_of_a_stop_signal);
    tcase_add_test(tc, config_file_below_flags);
    suite_add_tcase(s, tc);
    return s;
}
