/*
 * daemon/svc_log.c — see svc_log.h. Process-wide state (the descriptor,
 * the path and the level) lives in one static struct guarded by one mutex:
 * a log is a property of the process, as syslog's is. Each line is built
 * in a stack buffer and written with a single write(2), so lines from
 * different threads never interleave, and SIGHUP's reopen swaps the
 * descriptor under the same mutex with dup2 so no line is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_log.h"

static struct {
    pthread_mutex_t mu; /* guards fd and path */
    int fd;             /* -1 = stderr */
    char path[2048];
    atomic_int level;
} L = {PTHREAD_MUTEX_INITIALIZER, -1, "", SVC_LOG_INFO};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int svc_log_parse_level(const char *name, svc_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (svc_log_level)i;
            return 0;
        }
    return -1;
}

static int open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
    return fd;
}

int svc_log_open(const char *path, svc_log_level level, char *err, size_t errlen)
{
    int rc = 0;
    atomic_store(&L.level, (int)level);
    if (!path || !path[0])
        return 0;
    if (strlen(path) >= sizeof L.path) {
        snprintf(err, errlen, "log file path is too long");
        return -1;
    }
    int fd = open_file(path, err, errlen);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&L.mu);
    if (L.fd >= 0)
        close(L.fd);
    L.fd = fd;
    snprintf(L.path, sizeof L.path, "%s", path);
    pthread_mutex_unlock(&L.mu);
    return rc;
}

int svc_log_reopen(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&L.mu);
    if (L.fd >= 0) {
        int fd = open_file(L.path, err, errlen);
        if (fd < 0)
            rc = -1;
        else {
            /* dup2 swaps atomically: a concurrent line goes to one file or the other */
            if (dup2(fd, L.fd) < 0) {
                snprintf(err, errlen, "cannot reopen log file %s: %s", L.path, strerror(errno));
                rc = -1;
            }
            close(fd);
        }
    }
    pthread_mutex_unlock(&L.mu);
    return rc;
}

void svc_log_close(void)
{
    pthread_mutex_lock(&L.mu);
    if (L.fd >= 0)
        close(L.fd);
    L.fd = -1;
    L.path[0] = 0;
    pthread_mutex_unlock(&L.mu);
}

int svc_log_enabled(svc_log_level level)
{
    return (int)level <= atomic_load(&L.level);
}

const char *svc_log_quote(char *buf, size_t n, const char *s)
{
    size_t o = 0;
    if (n == 0)
        return buf;
    for (; s && *s && o + 2 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else {
            buf[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
    }
    buf[o] = 0;
    return buf;
}

void svc_log(svc_log_level level, const char *event, const char *fmt, ...)
{
    char line[2048];
    char ts[40];
    struct timespec now;
    struct tm tm;
    if (!svc_log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000L);
    int k = snprintf(line, sizeof line, "ts=%s level=%s event=%s", ts,
                     level_names[(unsigned)level < 4 ? level : 0], event ? event : "-");
    size_t len = k < 0 ? 0 : (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    if (fmt && fmt[0] && len + 2 < sizeof line) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        k = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        if (k > 0)
            len += (size_t)k < sizeof line - len ? (size_t)k : sizeof line - len - 1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    if (len >= sizeof line - 1)
        len = sizeof line - 2;
    line[len++] = '\n';
    pthread_mutex_lock(&L.mu);
    int fd = L.fd >= 0 ? L.fd : STDERR_FILENO;
    const char *p = line;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    pthread_mutex_unlock(&L.mu);
}
