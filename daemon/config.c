/*
 * daemon/config.c — see config.h. The table below is the only place a
 * setting is declared; --help is generated from it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

typedef enum { T_STR, T_LONG, T_BOOL } ctype;

typedef struct {
    const char *key;
    ctype type;
    size_t off;
    size_t size;       /* strings: buffer size */
    const char *dflt;
    long min, max;
    const char *help;
} setting;

#define S(f) offsetof(mtld_config, f), sizeof(((mtld_config *)0)->f)
#define L(f) offsetof(mtld_config, f), 0

static const setting settings[] = {
    {"listen", T_STR, S(listen), "127.0.0.1:8470", 0, 0,
     "HOST:PORT to listen on (port 0 picks a free port)"},
    {"data-dir", T_STR, S(data_dir), "mtld-data", 0, 0,
     "directory of the SQLite database and checkpoints (created if missing)"},
    {"workers", T_LONG, L(workers), "0", 0, 256, "training threads (0 = number of cores)"},
    {"max-queued", T_LONG, L(max_queued), "1000", 0, 1000000,
     "queued jobs at most; more get 429 (0 = unlimited)"},
    {"token-file", T_STR, S(token_file), "", 0, 0,
     "file of bearer tokens, one per line; when set every route but /v1/health needs one"},
    {"ready-file", T_STR, S(ready_file), "", 0, 0,
     "once listening, write the base URL (http://HOST:PORT) to this file"},
    {"config", T_STR, S(config), "", 0, 0, "read settings from this file (key = value lines)"},
    {"insecure", T_BOOL, L(insecure), "false", 0, 1,
     "allow a non-loopback address without --token-file"},
    {"log-level", T_STR, S(log_level), "info", 0, 0,
     "error, warn, info or debug: lines above this level are not written"},
    {"log-file", T_STR, S(log_file), "", 0, 0,
     "append the log to this file instead of stderr; SIGHUP reopens it"},
    {"max-model-bytes", T_LONG, L(max_model_bytes), "4294967296", 1024, 1L << 40,
     "memory one job's model may take (parameters, gradients, optimiser state, "
     "activations); a bigger model fails its job with model_too_large"},
    {"status-interval", T_LONG, L(status_interval), "5", 1, 3600,
     "seconds between sd_notify STATUS= updates (also sent on every job state change)"},
    {"http-threads", T_LONG, L(http_threads), "4", 1, 64, "threads answering HTTP requests"},
    {"worker-nice", T_LONG, L(worker_nice), "19", 0, 19,
     "nice value of the training threads, so HTTP requests are answered first "
     "(0 = the same priority as the HTTP threads)"},
    {"max-json-body", T_LONG, L(max_json_body), "1048576", 1024, 1L << 30,
     "largest JSON request body in bytes"},
    {"max-upload", T_LONG, L(max_upload), "1073741824", 1024, 1L << 40,
     "largest CSV upload in bytes (also once a gzip body is decompressed)"},
    {"max-rows", T_LONG, L(max_rows), "10000000", 1, 1L << 31,
     "data rows in one uploaded dataset"},
    {"max-columns", T_LONG, L(max_columns), "1000", 1, 100000, "columns of an uploaded dataset"},
    {"max-levels", T_LONG, L(max_levels), "1000", 2, 1000000,
     "distinct values of a category column"},
    {"max-field", T_LONG, L(max_field), "65536", 16, 1L << 24, "bytes of one CSV field"},
    {"max-line", T_LONG, L(max_line), "1048576", 64, 1L << 28,
     "bytes of one CSV record (a line, or several when a quoted field holds line breaks)"},
    {"max-connections", T_LONG, L(max_connections), "256", 1, 65536,
     "simultaneous HTTP connections"},
    {"connection-timeout", T_LONG, L(connection_timeout), "60", 1, 3600,
     "seconds an idle connection is kept"},
    {"max-connections-per-ip", T_LONG, L(max_connections_per_ip), "128", 0, 65536,
     "simultaneous HTTP connections from one address; more get 429 (0 = no limit)"},
    {"max-import", T_LONG, L(max_import), "268435456", 1024, 1L << 34,
     "largest model file imported with POST /v1/checkpoints, in bytes"},
    {"predict-rows", T_LONG, L(predict_rows), "10000", 1, 1000000,
     "rows in one POST /v1/jobs/{id}/predict request"},
    {"sse-watchers", T_LONG, L(sse_watchers), "16", 1, 10000,
     "GET /v1/jobs/{id}/events streams open on one job at once; more get 429"},
    {"max-json-depth", T_LONG, L(max_json_depth), "32", 2, 1000,
     "nesting depth of arrays and objects in a JSON request body"},
    {"max-header-bytes", T_LONG, L(max_header_bytes), "16384", 1024, 262144,
     "bytes of a request's header lines together; more get 431"},
    {"max-uri", T_LONG, L(max_uri), "8192", 256, 262144,
     "bytes of a request's path and query; longer get 414"},
    {"sse-heartbeat", T_LONG, L(sse_heartbeat), "15", 1, 300,
     "seconds of silence on a GET /v1/jobs/{id}/events stream before a ': heartbeat' comment"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

static const setting *find(const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static int set(mtld_config *cfg, const setting *s, const char *val, const char *where, char *err,
               size_t errlen)
{
    char *base = (char *)cfg;
    switch (s->type) {
    case T_STR:
        if (strlen(val) >= s->size) {
            snprintf(err, errlen, "%s: '%s' is too long", where, s->key);
            return -1;
        }
        snprintf(base + s->off, s->size, "%s", val);
        return 0;
    case T_LONG: {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!val[0] || *end || errno || v < s->min || v > s->max) {
            snprintf(err, errlen, "%s: '%s' must be an integer from %ld to %ld, got '%s'", where,
                     s->key, s->min, s->max, val);
            return -1;
        }
        *(long *)(base + s->off) = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
            *(int *)(base + s->off) = 1;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
            *(int *)(base + s->off) = 0;
        else {
            snprintf(err, errlen, "%s: '%s' must be true or false, got '%s'", where, s->key, val);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mtld [OPTIONS]\n\n"
               "mtld is a training daemon for multi-task learning and meta-learning.\n\n"
               "options (each may also be set as 'key = value' in the --config file):\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", s->key, s->type == T_BOOL ? "" : " VALUE");
        fprintf(f, "  %-28s %s", flag, s->help);
        if (s->dflt[0])
            fprintf(f, " [default: %s]", s->dflt);
        fputc('\n', f);
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

static int load_file(mtld_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0;
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (!l[0] || l[0] == '#')
            continue;
        char *eq = strchr(l, '=');
        char where[2200];
        snprintf(where, sizeof where, "%s line %d", path, lineno);
        if (!eq) {
            snprintf(err, errlen, "%s: expected 'key = value'", where);
            fclose(f);
            return -1;
        }
        *eq = 0;
        char *key = trim(l), *val = trim(eq + 1);
        const setting *s = find(key);
        if (!s || !strcmp(key, "config")) {
            snprintf(err, errlen, "%s: unknown setting '%s'", where, key);
            fclose(f);
            return -1;
        }
        if (set(cfg, s, val, where, err, errlen) != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int mtld_config_load(int argc, char **argv, mtld_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_SETTINGS; i++)
        set(cfg, &settings[i], settings[i].dflt, "default", err, errlen);
    /* First pass: --help, --version, --config (the file sits below flags). */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CONFIG_EXIT;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("mtld %s\n", MTLD_VERSION);
            return CONFIG_EXIT;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            if (set(cfg, find("config"), argv[i + 1], "--config", err, errlen) != 0)
                return CONFIG_ERROR;
    }
    if (cfg->config[0] && load_file(cfg, cfg->config, err, errlen) != 0)
        return CONFIG_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        memcpy(key, a + 2, kl);
        key[kl] = 0;
        const setting *s = find(key);
        if (!s) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (s->type == T_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", key);
            return CONFIG_ERROR;
        }
        char where[80];
        snprintf(where, sizeof where, "--%s", key);
        if (set(cfg, s, val, where, err, errlen) != 0)
            return CONFIG_ERROR;
    }
    if (strcmp(cfg->log_level, "error") && strcmp(cfg->log_level, "warn") &&
        strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "debug")) {
        snprintf(err, errlen, "'log-level' must be error, warn, info or debug, got '%s'",
                 cfg->log_level);
        return CONFIG_ERROR;
    }
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? n : 1;
    }
    return CONFIG_OK;
}
