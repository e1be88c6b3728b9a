/*
 * api/api.h — the HTTP surface of mtld (libmicrohttpd + jansson).
 *
 * api turns untrusted bytes into validated requests for the service layer
 * and the service layer's answers into HTTP responses. Every error body is
 * {"error":{"code","message","field"?}} and goes through one function
 * (api__reply_error); service codes map to statuses through one table.
 */
#ifndef API_H
#define API_H

#include <stddef.h>

#include "daemon/svc.h"

typedef struct {
    const char *listen;        /* "HOST:PORT" (port 0 = any free port) */
    int listen_fd;             /* an already-listening socket (systemd), or -1 */
    const char *token_file;    /* NULL = no auth */
    int insecure;              /* allow non-loopback without tokens */
    int threads;               /* HTTP threads */
    size_t max_json_body;      /* bytes */
    size_t max_upload;         /* bytes of CSV (compressed and decompressed) */
    size_t csv_max_rows;       /* CSV limits; 0 = the parser's default */
    size_t csv_max_cols, csv_max_levels, csv_max_field, csv_max_line;
    unsigned max_connections;
    unsigned connection_timeout; /* seconds */
    unsigned max_connections_per_ip; /* 0 = no limit; beyond it 429 and the connection closes */
    size_t max_predict_rows;   /* rows in one POST /v1/jobs/{id}/predict (0 = 10000) */
    unsigned max_watchers;     /* GET /v1/jobs/{id}/events streams per job (0 = 16) */
    unsigned max_json_depth;   /* nesting of arrays/objects in a JSON body (0 = 32) */
    size_t max_header_bytes;   /* request header lines, summed (0 = 16 KiB): beyond, 431 */
    size_t max_uri;            /* path and query of a request (0 = 8 KiB): beyond, 414 */
    unsigned sse_heartbeat;    /* seconds between ": heartbeat" comments on a quiet stream (0 = 15) */
    size_t max_import;         /* bytes of a POST /v1/checkpoints body (0 = 256 MiB) */
} api_config;

typedef struct api_server api_server;

/* Starts listening. On failure returns NULL with the reason in err. */
api_server *api_start(const api_config *cfg, svc *s, char *err, size_t errlen);
/* 0 if listen is a HOST:PORT api_start can bind (an IPv4 address or
 * "localhost", port 0..65535); else -1 with the reason, naming --listen, in
 * err. For checking the setting when it is read, before anything starts. */
int api_listen_check(const char *listen, char *err, size_t errlen);
/* Stops accepting connections and waits for handlers to finish. */
void api_stop(api_server *a); /* NULL is fine */
/* "http://127.0.0.1:40123" — valid until api_stop. */
const char *api_base_url(const api_server *a);

/* The route table, for docs and tests: route i's method and path pattern
 * ("/v1/jobs/{id}/metrics": {name} matches one path segment). i < count. */
size_t api_route_count(void);
void api_route_get(size_t i, const char **method, const char **pattern);
/* The query parameters route i takes, space-separated ("limit offset");
 * "" for none. Any other, or one given twice, is a 400. i < count. */
const char *api_route_query(size_t i);

#endif
