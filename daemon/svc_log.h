/*
 * daemon/svc_log.h — mtld's log: one line per event, key=value, to stderr
 * (journald keeps it) or to a --log-file that SIGHUP reopens (logrotate).
 *
 * A line is `ts=... level=... event=NAME k=v ...`. Callers pass the event
 * name and the rest as a printf format; values holding spaces are quoted by
 * the caller (`reason="%s"`, passing the text through svc_log_quote when it
 * comes from outside). Newlines and other control characters are replaced
 * so one event is always one line.
 *
 * Levels: error < warn < info < debug; a line above the configured level
 * costs one comparison (use SVC_LOG so the arguments are not even
 * evaluated). The logger is process-wide, like syslog: it is opened once
 * by main() before any thread starts, and every function is thread-safe
 * (one mutex guards the file descriptor; each line goes out in one write).
 * Before svc_log_open, lines go to stderr at level info.
 */
#ifndef SVC_LOG_H
#define SVC_LOG_H

#include <stddef.h>

typedef enum { SVC_LOG_ERROR = 0, SVC_LOG_WARN, SVC_LOG_INFO, SVC_LOG_DEBUG } svc_log_level;

/* "error", "warn", "info", "debug" → *out; -1 for anything else. */
int svc_log_parse_level(const char *name, svc_log_level *out);
/* path NULL or "" = stderr. Opens the file for appending (created 0640).
 * Returns 0, or -1 with err filled. */
int svc_log_open(const char *path, svc_log_level level, char *err, size_t errlen);
/* Reopens the log file (after logrotate moved it); a no-op on stderr.
 * Returns 0, or -1 (the old file stays in use) with err filled. */
int svc_log_reopen(char *err, size_t errlen);
/* 1 when lines at this level are written. */
int svc_log_enabled(svc_log_level level);
/* Writes one line if level is enabled. fmt (may be NULL) formats the
 * key=value pairs after event=NAME. */
void svc_log(svc_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies s into buf (size n) with '"' and '\\' escaped and control
 * characters replaced, for use inside a quoted value; returns buf. */
const char *svc_log_quote(char *buf, size_t n, const char *s);
/* Closes a log file (stderr stays). */
void svc_log_close(void);

#define SVC_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if (svc_log_enabled(level))                                                                \
            svc_log(level, __VA_ARGS__);                                                           \
    } while (0)

#endif
