/*
 * tests/integration/test_activation.c — socket activation without PID-1
 * systemd. The test plays systemd's part: it opens the listening socket
 * itself, puts it at descriptor 3 of a forked child, sets LISTEN_FDS=1 and
 * LISTEN_PID to the child's pid (and NOTIFY_SOCKET to a datagram socket of
 * its own), and execs the real mtld. Checked:
 *  - mtld serves on the socket it was given, not on --listen: the ready file
 *    names the test's port, and a request sent before mtld even started
 *    (waiting in the socket's backlog, as under systemd) is answered; READY=1
 *    arrives on the notify socket;
 *  - the socket outlives the daemon: after a stop, a request queued on it is
 *    answered by the next mtld given the same socket (a restart drops no
 *    connection);
 *  - LISTEN_PID naming another process: the sockets are not for mtld, which
 *    binds --listen itself;
 *  - two sockets, a socket that is not listening, a UDP socket, and a
 *    non-loopback socket without tokens are refused at start (exit 1) with a
 *    message saying why;
 *  - an IPv6 socket ([::1]) works and is named so in the URL (skipped where
 *    the machine has no IPv6 loopback);
 *  - LimitNOFILE: mtld raises its soft open-file limit to fit
 *    max-connections when the hard limit allows, and warns when it does not.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
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

/* 1 when file path contains needle. */
static int file_has(const char *path, const char *needle)
{
    size_t len = 0;
    char *t = h_read_file(path, &len);
    int found = t && strstr(t, needle) != NULL;
    free(t);
    return found;
}

/* A listening TCP socket on addr (family AF_INET or AF_INET6), port 0;
 * its port in *port. -1 when the address is not available here. */
static int tcp_listener(int family, const char *addr, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1);
        sl = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
        sl = sizeof *in6;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    sl = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    *port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                              : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Connects to 127.0.0.1:port and sends a GET /v1/health (HTTP/1.0: the
 * server closes after answering). The connection completes in the kernel's
 * backlog even when nobody accepts yet. */
static int early_request(unsigned port)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((uint16_t)port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&in, sizeof in), 0);
    const char req[] = "GET /v1/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    ck_assert_int_eq(send(c, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    struct timeval tv = {60, 0}; /* generous: only a hang fails */
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
}

/* Reads the whole answer (until the server closes). */
static void read_answer(int c, char *buf, size_t n)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(c, buf + got, n - 1 - got, 0);
        if (r <= 0 || got + (size_t)r >= n - 1) {
            if (r > 0)
                got += (size_t)r;
            break;
        }
        got += (size_t)r;
    }
    buf[got] = 0;
    close(c);
}

typedef struct {
    const int *fds;       /* handed over as 3, 4, ... */
    int nfds;
    int other_pid;        /* LISTEN_PID names the parent, not mtld */
    const char *notify;   /* NOTIFY_SOCKET, or NULL */
    const char *const *extra;
    rlim_t nofile_soft, nofile_hard; /* RLIMIT_NOFILE for mtld (0 = as is) */
} spawn_opts;

/* Forks and execs mtld as systemd would for a socket unit. */
static pid_t spawn(const char *dir, const spawn_opts *o)
{
    char ready[300], data[300], logpath[300];
    snprintf(ready, sizeof ready, "%s/ready", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(logpath, sizeof logpath, "%s/mtld.log", dir);
    unlink(ready);
    const char *argv[32] = {MTLD_BIN, "--listen", "127.0.0.1:0", "--data-dir", data,
                            "--ready-file", ready, "--workers", "1"};
    int argc = 9;
    for (int i = 0; o->extra && o->extra[i] && argc < 31; i++)
        argv[argc++] = o->extra[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(logpath, "a", stderr))
            _exit(126);
        /* Move the sockets out of the way first: a source may sit where
         * another one has to go. dup2 clears close-on-exec. */
        int high[8];
        for (int i = 0; i < o->nfds && i < 8; i++)
            high[i] = fcntl(o->fds[i], F_DUPFD_CLOEXEC, 100);
        for (int i = 0; i < o->nfds && i < 8; i++)
            if (high[i] < 0 || dup2(high[i], 3 + i) != 3 + i)
                _exit(126);
        char v[32];
        if (o->nfds > 0) {
            snprintf(v, sizeof v, "%d", o->nfds);
            setenv("LISTEN_FDS", v, 1);
            snprintf(v, sizeof v, "%ld", (long)(o->other_pid ? parent : getpid()));
            setenv("LISTEN_PID", v, 1);
        }
        if (o->notify)
            setenv("NOTIFY_SOCKET", o->notify, 1);
        if (o->nofile_soft) {
            struct rlimit rl = {o->nofile_soft, o->nofile_hard};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                _exit(126);
        }
        execv(MTLD_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits for the ready file and fills p (for h_req/h_stop). */
static void wait_ready(mtld_proc *p, pid_t pid, const char *dir)
{
    char ready[300];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->data_dir, sizeof p->data_dir, "%s/data", dir);
    snprintf(ready, sizeof ready, "%s/ready", dir);
    for (int i = 0; i < 1200; i++) {
        FILE *f = fopen(ready, "r");
        if (f) {
            int ok = fgets(p->url, sizeof p->url, f) != NULL;
            fclose(f);
            p->url[strcspn(p->url, "\n")] = 0;
            if (ok && p->url[0])
                return;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            ck_abort_msg("mtld exited before listening (see %s/mtld.log)", dir);
        sleep_ms(50);
    }
    ck_abort_msg("mtld did not write its ready file within 60 s");
}

/* Waits for mtld to exit by itself; returns its exit status. */
static int wait_exit(pid_t pid)
{
    int st = 0;
    for (int i = 0; i < 1200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    ck_abort_msg("mtld did not exit within 60 s");
    return -1;
}

START_TEST(serves_the_socket_it_is_given)
{
    h_tmpdir(DIR_, sizeof DIR_);
    unsigned port = 0;
    int lfd = tcp_listener(AF_INET, "127.0.0.1", &port);
    ck_assert_int_ge(lfd, 0);

    /* The notify socket, read after READY=1 must have been sent. */
    char sock[300];
    snprintf(sock, sizeof sock, "%s/notify.sock", DIR_);
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(sock), sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {60, 0};
    setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    int early = early_request(port); /* before mtld exists */
    spawn_opts o = {&lfd, 1, 0, sock, NULL};
    mtld_proc p;
    wait_ready(&p, spawn(DIR_, &o), DIR_);
    char want[64], buf[4096], log[300];
    snprintf(want, sizeof want, "http://127.0.0.1:%u", port);
    ck_assert_str_eq(p.url, want); /* not the port 0 of --listen */
    char msg[128];
    ssize_t r = recv(nfd, msg, sizeof msg - 1, 0);
    ck_assert_int_gt(r, 0);
    msg[r] = 0;
    ck_assert_str_eq(msg, "READY=1");

    read_answer(early, buf, sizeof buf);
    ck_assert_msg(!strncmp(buf, "HTTP/1.", 7) && strstr(buf, " 200 ") &&
                      strstr(buf, "\"status\""),
                  "early request got '%s'", buf);
    h_resp hr = h_req(&p, "GET", "/v1/health", NULL, NULL, 0);
    ck_assert_int_eq(hr.status, 200);
    h_resp_free(&hr);
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    ck_assert_msg(file_has(log, "socket=systemd"), "no socket=systemd in the listening line");
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);

    /* The socket is still ours (as systemd keeps it): a request made while
     * no mtld runs is answered by the next one. */
    early = early_request(port);
    wait_ready(&p, spawn(DIR_, &o), DIR_);
    ck_assert_str_eq(p.url, want);
    read_answer(early, buf, sizeof buf);
    ck_assert_msg(strstr(buf, " 200 ") != NULL, "request across the restart got '%s'", buf);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    close(lfd);
    close(nfd);
    unlink(sock);
}
END_TEST

START_TEST(sockets_for_another_process_are_ignored)
{
    h_tmpdir(DIR_, sizeof DIR_);
    unsigned port = 0;
    int lfd = tcp_listener(AF_INET, "127.0.0.1", &port);
    ck_assert_int_ge(lfd, 0);
    spawn_opts o = {&lfd, 1, 1, NULL, NULL};
    mtld_proc p;
    wait_ready(&p, spawn(DIR_, &o), DIR_);
    char theirs[64];
    snprintf(theirs, sizeof theirs, "http://127.0.0.1:%u", port);
    ck_assert_msg(strcmp(p.url, theirs) != 0, "mtld took a socket meant for another process");
    h_resp hr = h_req(&p, "GET", "/v1/health", NULL, NULL, 0);
    ck_assert_int_eq(hr.status, 200);
    h_resp_free(&hr);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    close(lfd);
}
END_TEST

/* Starts mtld with these sockets; expects exit 1 and needle in its log. */
static void expect_refusal(const int *fds, int n, const char *const *extra, const char *needle)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof dir);
    spawn_opts o = {fds, n, 0, NULL, extra};
    int st = wait_exit(spawn(dir, &o));
    snprintf(log, sizeof log, "%s/mtld.log", dir);
    size_t len = 0;
    char *t = h_read_file(log, &len);
    ck_assert_msg(st == 1, "exit status %d, log: %s", st, t ? t : "");
    ck_assert_msg(t && strstr(t, "event=start_failed") && strstr(t, needle),
                  "log lacks '%s': %s", needle, t ? t : "");
    free(t);
}

START_TEST(unusable_sockets_are_refused)
{
    unsigned p1 = 0, p2 = 0, p3 = 0;
    int a = tcp_listener(AF_INET, "127.0.0.1", &p1);
    int b = tcp_listener(AF_INET, "127.0.0.1", &p2);
    ck_assert(a >= 0 && b >= 0);
    int two[2] = {a, b};
    expect_refusal(two, 2, NULL, "systemd passed 2 sockets");

    int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* never listen()ed */
    expect_refusal(&idle, 1, NULL, "not a listening TCP socket");
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    expect_refusal(&udp, 1, NULL, "not a listening TCP socket");
    int ux[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ux), 0);
    expect_refusal(ux, 1, NULL, "not a listening TCP socket");

    /* The token rule applies to a socket from systemd as to --listen. */
    int any = tcp_listener(AF_INET, "0.0.0.0", &p3);
    ck_assert_int_ge(any, 0);
    expect_refusal(&any, 1, NULL, "without --token-file");
    close(a);
    close(b);
    close(idle);
    close(udp);
    close(ux[0]);
    close(ux[1]);
    close(any);
}
END_TEST

START_TEST(ipv6_socket)
{
    unsigned port = 0;
    int lfd = tcp_listener(AF_INET6, "::1", &port);
    if (lfd < 0)
        return; /* no IPv6 loopback on this machine */
    h_tmpdir(DIR_, sizeof DIR_);
    spawn_opts o = {&lfd, 1, 0, NULL, NULL};
    mtld_proc p;
    wait_ready(&p, spawn(DIR_, &o), DIR_);
    char want[64];
    snprintf(want, sizeof want, "http://[::1]:%u", port);
    ck_assert_str_eq(p.url, want);
    h_resp hr = h_req(&p, "GET", "/v1/health", NULL, NULL, 0);
    ck_assert_int_eq(hr.status, 200);
    h_resp_free(&hr);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    close(lfd);
}
END_TEST

/* The soft open-file limit of process pid (from /proc), or -1. */
static long soft_nofile(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%ld/limits", (long)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Max open files", 14))
            v = strtol(line + 14, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

START_TEST(open_file_limit_fits_max_connections)
{
    /* Room under the hard limit: the soft one is raised, nothing is said. */
    const char *conns[] = {"--max-connections", "1000", NULL};
    h_tmpdir(DIR_, sizeof DIR_);
    spawn_opts o = {NULL, 0, 0, NULL, conns, 128, 4096};
    mtld_proc p;
    char log[300];
    wait_ready(&p, spawn(DIR_, &o), DIR_);
    long soft = soft_nofile(p.pid);
    ck_assert_msg(soft >= 1000 && soft <= 4096, "soft limit %ld", soft);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    ck_assert(!file_has(log, "open_file_limit"));

    /* A hard limit below what max-connections needs: a warning naming both. */
    h_tmpdir(DIR_, sizeof DIR_);
    spawn_opts tight = {NULL, 0, 0, NULL, conns, 128, 512};
    wait_ready(&p, spawn(DIR_, &tight), DIR_);
    ck_assert_int_eq(soft_nofile(p.pid), 512);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
    snprintf(log, sizeof log, "%s/mtld.log", DIR_);
    ck_assert(file_has(log, "level=warn event=open_file_limit"));
    ck_assert(file_has(log, "limit=512"));
    ck_assert(file_has(log, "LimitNOFILE"));
}
END_TEST

Suite *activation_suite(void);
Suite *activation_suite(void)
{
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("activation");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, serves_the_socket_it_is_given);
    tcase_add_test(tc, sockets_for_another_process_are_ignored);
    tcase_add_test(tc, unusable_sockets_are_refused);
    tcase_add_test(tc, ipv6_socket);
    tcase_add_test(tc, open_file_limit_fits_max_connections);
    suite_add_tcase(s, tc);
    return s;
}
