/*
 * daemon/config.h — mtld's configuration: one table drives the defaults,
 * the config file (key = value lines), the command-line flags and --help.
 * Precedence: defaults < --config FILE < flags.
 */
#ifndef MTLD_CONFIG_H
#define MTLD_CONFIG_H

#include <stddef.h>

typedef struct {
    char listen[256];
    char data_dir[2048];
    char token_file[2048];
    char ready_file[2048];
    char config[2048];
    char log_level[16];
    char log_file[2048];
    long workers;
    long max_queued;
    long http_threads;
    long worker_nice;
    long max_json_body;
    long max_upload;
    long max_import;
    long max_rows, max_columns, max_levels, max_field, max_line; /* CSV uploads */
    long max_connections;
    long connection_timeout;
    long max_connections_per_ip;
    long predict_rows;
    long sse_watchers;
    long max_json_depth;
    long max_header_bytes;
    long max_uri;
    long sse_heartbeat;
    long max_model_bytes;
    long status_interval;
    int insecure;
} mtld_config;

enum { CONFIG_OK = 0, CONFIG_EXIT = 1, CONFIG_ERROR = -1 };

/* Fills cfg from defaults, the config file and argv. CONFIG_EXIT after
 * printing --help or --version; CONFIG_ERROR with err filled. */
int mtld_config_load(int argc, char **argv, mtld_config *cfg, char *err, size_t errlen);

#endif
