/*
 * daemon/main.c — mtld: wiring only. Reads the configuration, opens the log
 * and the service (store + workers), starts the HTTP API, tells systemd it
 * is ready, and waits for signals. Signals are blocked in every thread and
 * taken synchronously here with sigtimedwait, so no work happens in a
 * signal handler; the same loop's one-second tick sends systemd's STATUS=
 * (every --status-interval seconds, and soon after any job changes state)
 * and WATCHDOG=1 (at half of WATCHDOG_USEC, only while the store answers).
 *
 * Under socket activation (mtld.socket) the listening socket comes from
 * systemd (daemon/sd.c) and --listen is not used; see docs/operations.md.
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "daemon/blas_pick.h"
#include "daemon/config.h"
#include "daemon/sd.h"
#include "daemon/svc.h"
#include "daemon/svc_log.h"
#include "engine/blas_core.h"
#include "engine/blas_threads.h"


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
        mtld_sd_notify(msg);
        ns->seen_changes = ch;
        ns->last_status = now;
    }
    if (want_dog && healthy) {
        mtld_sd_notify("WATCHDOG=1");
        ns->last_watchdog = now;
    } else if (want_dog) {
        SVC_LOG(SVC_LOG_ERROR, "unhealthy", "reason=\"the store does not answer\"");
    }
}

/* Every HTTP connection is a descriptor; on top of max-connections mtld needs
 * room for the database (and its WAL), checkpoint files being written, the
 * log, and libmicrohttpd's own per-thread descriptors. Raise the soft limit
 * toward the hard one (systemd's LimitNOFILE= sets both) when short, and say
 * so when even the hard limit is too small: accept() would fail with EMFILE
 * before max-connections is reached. */
static void fit_open_files(const mtld_config *cfg)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)cfg->max_connections + 64 + 4 * (rlim_t)cfg->http_threads +
                  2 * (rlim_t)cfg->workers;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    rlim_t limit = (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) ? rl.rlim_max : need;
    if (limit > rl.rlim_cur) {
        rl.rlim_cur = limit;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        svc_log(SVC_LOG_WARN, "open_file_limit",
                "need=%llu limit=%llu reason=\"max-connections does not fit the open-file limit; "
                "raise LimitNOFILE= (or ulimit -n) or lower max-connections\"",
                (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    /* Before anything starts: OpenBLAS's kernel set can only be changed by
     * re-executing (daemon/blas_pick.h). */
    mtld_blas_pick(argv);
    mtld_config cfg;
    char err[512] = "";
    char q[600];
    int rc = mtld_config_load(argc, argv, &cfg, err, sizeof err);
    if (rc == CONFIG_EXIT)
        return 0;
    /* A --listen that cannot be bound is a bad flag like any other (exit 2
     * now, not a start_failed once the store is open). */
    if (rc == CONFIG_OK && api_listen_check(cfg.listen, err, sizeof err) != 0)
        rc = CONFIG_ERROR;
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

    /* Socket activation: a listening socket from systemd (mtld.socket) takes
     * the place of --listen. Taken before mtld starts its threads, since it
     * edits the environment. */
    int listen_fd = -1;
    if (mtld_sd_listen_fd(&listen_fd, err, sizeof err) < 0) {
        svc_log(SVC_LOG_ERROR, "start_failed", "reason=\"%s\"", svc_log_quote(q, sizeof q, err));
        return 1;
    }
    fit_open_files(&cfg);

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
                     (int64_t)cfg.max_model_bytes, (int)cfg.worker_nice};
    svc *s = NULL;
    if (svc_open(&sc, &s, err, sizeof err) != SVC_OK) {
        svc_log(SVC_LOG_ERROR, "start_failed", "reason=\"%s\"", svc_log_quote(q, sizeof q, err));
        return 1;
    }
    api_config ac = {
        .listen = cfg.listen,
        .listen_fd = listen_fd,
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
        .sse_heartbeat = (unsigned)cfg.sse_heartbeat,
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
    svc_log(SVC_LOG_INFO, "listening",
            "url=%s socket=%s data_dir=\"%s\" workers=%ld version=%s", url,
            listen_fd >= 0 ? "systemd" : "own", svc_log_quote(q, sizeof q, cfg.data_dir),
            cfg.workers, MTLD_VERSION);
    if (*mtld_blas_replaced())
        svc_log(SVC_LOG_INFO, "blas_core",
                "core=%s replaced=%s reason=\"OpenBLAS did not recognise this CPU and fell back "
                "to older kernels; set OPENBLAS_CORETYPE to choose\"",
                eng_blas_core(), mtld_blas_replaced());
    else
        svc_log(SVC_LOG_INFO, "blas_core", "core=%s", eng_blas_core());

    notify_state ns = {(double)cfg.status_interval, 0, 0, 0, 0};
    uint64_t wd_usec = mtld_sd_watchdog_usec();
    if (wd_usec > 0)
        ns.watchdog_every = (double)wd_usec / 2e6;
    mtld_sd_notify("READY=1");
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

    mtld_sd_notify("STOPPING=1");
    double t_stop = mono_s();
    api_stop(api);
    svc_close(s);
    svc_log(SVC_LOG_INFO, "stopped", "duration_s=%.3f", mono_s() - t_stop);
    svc_log_close();
    return 0;
}
