/*
 * daemon/main.c — mtld: wiring only. Reads the configuration, opens the log
 * and the service (store + workers), starts the HTTP API, tells systemd it
 * is ready, and waits for signals. Signals are blocked in every thread and
 * taken synchronously here with sigtimedwait, so no work happens in a
 * signal handler; the same loop's one-second tick sends systemd's STATUS=
 * (every --status-interval seconds, and soon after any job changes state)
 * and WATCHDOG=1 (at half of WATCHDOG_USEC, only while the store answers).
 *
 * Shutdown (SIGTERM/SIGINT): STOPPING=1, stop accepting connections, let
 * running jobs checkpoint and return to queued, exit 0. A second signal
 * during that exits at once. SIGHUP reopens the --log-file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "daemon/config.h"
#include "daemon/svc.h"
#include "daemon/svc_log.h"
#include "engine/blas_threads.h"

#ifdef MTLD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
/* Without libsystemd: the notify protocol is one datagram per message to the
 * AF_UNIX socket named by NOTIFY_SOCKET ('@' = abstract namespace). */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

static int sd_notify(int unset, const char *state)
{
    (void)unset;
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t n = path ? strlen(path) : 0;
    if (n < 2 || n >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
    return w < 0 ? -errno : 1;
}

static int sd_watchdog_enabled(int unset, uint64_t *usec)
{
    (void)unset;
    const char *s = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end = NULL;
    if (!s)
        return 0;
    if (pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || v == 0)
        return 0;
    *usec = v;
    return 1;
}
#endif

/* Writes the base URL atomically so a watcher never reads half a line. */
static int write_ready_file(const char *path, const char *url)
{
    char tmp[2100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", url) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The thread that waits for signals (see main). */
static pid_t main_tid;

/* Runs on a thread that does not block the signal: hands it to main's
 * thread (tgkill is async-signal-safe; errno is kept). */
static void forward_to_main(int sig)
{
    int saved = errno;
    syscall(SYS_tgkill, (pid_t)getpid(), main_tid, sig);
    errno = saved;
}

static void exit_now(int sig)
{
    (void)sig;
    _exit(1);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* systemd's view of the daemon: what STATUS= said last and when the
 * watchdog was last fed. */
typedef struct {
    double status_every;   /* seconds */
    double last_status;
    unsigned long seen_changes;
    double watchdog_every; /* seconds; 0 = no watchdog */
    double last_watchdog;
} notify_state;

static void notify_tick(svc *s, notify_state *ns, int force)
{
    double now = mono_s();
    unsigned long ch = svc_changes(s);
    int want_status = force || ch != ns->seen_changes || now - ns->last_status >= ns->status_every;
    int want_dog = ns->watchdog_every > 0 && now - ns->last_watchdog >= ns->watchdog_every;
    if (!want_status && !want_dog)
        return;
    svc_counts c;
    int healthy = svc_job_counts(s, &c) == SVC_OK; /* the store answers */
    if (want_status && healthy) {
        char msg[160];
        snprintf(msg, sizeof msg, "STATUS=%d queued, %d running, %d succeeded, %d failed",
                 c.queued, c.running, c.succeeded, c.failed);
        sd_notify(0, msg);
        ns->seen_changes = ch;
        ns->last_status = now;
    }
    if (want_dog && healthy) {
        sd_notify(0, "WATCHDOG=1");
        ns->last_watchdog = now;
    } else if (want_dog) {
        SVC_LOG(SVC_LOG_ERROR, "unhealthy", "reason=\"the store does not answer\"");
    }
}

int main(int argc, char **argv)
{
    mtld_config cfg;
    char err[512] = "";
    char q[600];
    int rc = mtld_config_load(argc, argv, &cfg, err, sizeof err);
    if (rc == CONFIG_EXIT)
        return 0;
    if (rc != CONFIG_OK) {
        fprintf(stderr, "mtld: %s\n", err);
        return 2;
    }
    svc_log_level level = SVC_LOG_INFO;
    svc_log_parse_level(cfg.log_level, &level);
    if (svc_log_open(cfg.log_file, level, err, sizeof err) != 0) {
        fprintf(stderr, "mtld: %s\n", err);
        return 2;
    }

    /* Signals are taken by sigtimedwait below; every thread we start
     * inherits this mask. Threads started before main() (OpenBLAS starts
     * its pool when the library loads) do not block them: without a
     * handler, a SIGTERM the kernel hands to one of those while this thread
     * is busy would kill the process outright (status 143, no checkpoint).
     * The handler passes it on to this thread, where it waits, blocked,
     * for sigtimedwait. Blocked here first, so the handler never runs on
     * this thread. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    main_tid = (pid_t)syscall(SYS_gettid);
    struct sigaction fwd;
    memset(&fwd, 0, sizeof fwd);
    fwd.sa_handler = forward_to_main;
    sigfillset(&fwd.sa_mask);
    fwd.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGINT, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* One BLAS thread per worker: mtld parallelises across jobs. */
    eng_blas_set_threads(1);

    svc_config sc = {cfg.data_dir, (int)cfg.workers, (int)cfg.max_queued,
                     (int64_t)cfg.max_model_bytes};
    svc *s = NULL;
    if (svc_open(&sc, &s, err, sizeof err) != SVC_OK) {
        svc_log(SVC_LOG_ERROR, "start_failed", "reason=\"%s\"", svc_log_quote(q, sizeof q, err));
        return 1;
    }
    api_config ac = {
        .listen = cfg.listen,
        .listen_fd = -1,
        .token_file = cfg.token_file[0] ? cfg.token_file : NULL,
        .insecure = cfg.insecure,
        .threads = (int)cfg.http_threads,
        .max_json_body = (size_t)cfg.max_json_body,
        .max_upload = (size_t)cfg.max_upload,
        .csv_max_rows = (size_t)cfg.max_rows,
        .csv_max_cols = (size_t)cfg.max_columns,
        .csv_max_levels = (size_t)cfg.max_levels,
        .csv_max_field = (size_t)cfg.max_field,
        .csv_max_line = (size_t)cfg.max_line,
        .max_connections = (unsigned)cfg.max_connections,
        .connection_timeout = (unsigned)cfg.connection_timeout,
        .max_connections_per_ip = (unsigned)cfg.max_connections_per_ip,
        .max_predict_rows = (size_t)cfg.predict_rows,
        .max_watchers = (unsigned)cfg.sse_watchers,
        .max_json_depth = (unsigned)cfg.max_json_depth,
        .max_header_bytes = (size_t)cfg.max_header_bytes,
        .max_uri = (size_t)cfg.max_uri,
        .max_import = (size_t)cfg.max_import,
    };
    api_server *api = api_start(&ac, s, err, sizeof err);
    if (!api) {
        svc_log(SVC_LOG_ERROR, "start_failed", "reason=\"%s\"", svc_log_quote(q, sizeof q, err));
        svc_close(s);
        return 1;
    }
    const char *url = api_base_url(api);
    if (cfg.ready_file[0] && write_ready_file(cfg.ready_file, url) != 0) {
        svc_log(SVC_LOG_ERROR, "start_failed", "reason=\"cannot write ready file %s\"",
                svc_log_quote(q, sizeof q, cfg.ready_file));
        api_stop(api);
        svc_close(s);
        return 1;
    }
    svc_log(SVC_LOG_INFO, "listening", "url=%s data_dir=\"%s\" workers=%ld version=%s", url,
            svc_log_quote(q, sizeof q, cfg.data_dir), cfg.workers, MTLD_VERSION);

    notify_state ns = {(double)cfg.status_interval, 0, 0, 0, 0};
    uint64_t wd_usec = 0;
    if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0)
        ns.watchdog_every = (double)wd_usec / 2e6;
    sd_notify(0, "READY=1");
    notify_tick(s, &ns, 1);

    for (;;) {
        /* Wake at least once a second (more often for a short watchdog). */
        double tick = 1.0;
        if (ns.watchdog_every > 0 && ns.watchdog_every < 2.0)
            tick = ns.watchdog_every / 2;
        struct timespec to = {(time_t)tick, (long)((tick - (double)(time_t)tick) * 1e9)};
        int sig = sigtimedwait(&sigs, NULL, &to);
        if (sig < 0) {
            notify_tick(s, &ns, 0);
            continue;
        }
        if (sig == SIGHUP) {
            if (svc_log_reopen(err, sizeof err) != 0)
                svc_log(SVC_LOG_ERROR, "log_reopen_failed", "reason=\"%s\"",
                        svc_log_quote(q, sizeof q, err));
            else
                svc_log(SVC_LOG_INFO, "log_reopened", "file=\"%s\"",
                        cfg.log_file[0] ? svc_log_quote(q, sizeof q, cfg.log_file) : "stderr");
            continue;
        }
        svc_log(SVC_LOG_INFO, "stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    /* A second SIGTERM/SIGINT ends the process at once. */
    signal(SIGTERM, exit_now);
    signal(SIGINT, exit_now);
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

    sd_notify(0, "STOPPING=1");
    double t_stop = mono_s();
    api_stop(api);
    svc_close(s);
    svc_log(SVC_LOG_INFO, "stopped", "duration_s=%.3f", mono_s() - t_stop);
    svc_log_close();
    return 0;
}
