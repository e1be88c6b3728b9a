/*
 * daemon/main.c — mtld: wiring only. Reads the configuration, opens the
 * service (store + workers), starts the HTTP API, tells systemd it is ready,
 * and waits for a signal. Signals are blocked in every thread and taken
 * synchronously here with sigwait, so no work happens in a signal handler.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting connections, let running jobs
 * checkpoint and return to queued, exit 0. A second signal during that
 * exits at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "daemon/config.h"
#include "daemon/svc.h"
#include "engine/blas_threads.h"

#ifdef MTLD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
static int sd_notify(int unset, const char *state)
{
    (void)unset;
    (void)state;
    return 0;
}
#endif

static void log_line(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_line(const char *level, const char *fmt, ...)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ts=%s level=%s ", ts, level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

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

static void exit_now(int sig)
{
    (void)sig;
    _exit(1);
}

int main(int argc, char **argv)
{
    mtld_config cfg;
    char err[512] = "";
    int rc = mtld_config_load(argc, argv, &cfg, err, sizeof err);
    if (rc == CONFIG_EXIT)
        return 0;
    if (rc != CONFIG_OK) {
        fprintf(stderr, "mtld: %s\n", err);
        return 2;
    }

    /* Signals are taken by sigwait below; every thread inherits this mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* One BLAS thread per worker: mtld parallelises across jobs. */
    eng_blas_set_threads(1);

    svc_config sc = {cfg.data_dir, (int)cfg.workers, (int)cfg.max_queued};
    svc *s = NULL;
    if (svc_open(&sc, &s, err, sizeof err) != SVC_OK) {
        log_line("error", "event=start_failed reason=\"%s\"", err);
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
        .max_connections = (unsigned)cfg.max_connections,
        .connection_timeout = (unsigned)cfg.connection_timeout,
    };
    api_server *api = api_start(&ac, s, err, sizeof err);
    if (!api) {
        log_line("error", "event=start_failed reason=\"%s\"", err);
        svc_close(s);
        return 1;
    }
    const char *url = api_base_url(api);
    if (cfg.ready_file[0] && write_ready_file(cfg.ready_file, url) != 0) {
        log_line("error", "event=start_failed reason=\"cannot write ready file %s\"",
                 cfg.ready_file);
        api_stop(api);
        svc_close(s);
        return 1;
    }
    log_line("info", "event=listening url=%s data_dir=%s workers=%ld version=%s", url,
             cfg.data_dir, cfg.workers, MTLD_VERSION);
    sd_notify(0, "READY=1");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_line("info", "event=sighup");
            continue;
        }
        log_line("info", "event=stopping signal=%d", sig);
        break;
    }
    /* A second SIGTERM/SIGINT ends the process at once. */
    signal(SIGTERM, exit_now);
    signal(SIGINT, exit_now);
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

    sd_notify(0, "STOPPING=1");
    api_stop(api);
    svc_close(s);
    log_line("info", "event=stopped");
    return 0;
}
