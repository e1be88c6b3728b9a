/*
 * client/http.h — the only door from mtlctl to libcurl.
 *
 * cli_http() performs one request against ctx->url and owns the error path:
 * when it returns anything but CLI_EXIT_OK, it has already printed one
 * "mtlctl: <message> (field: <field>)" line to stderr (and, with --json, the
 * server's error body to stdout) and the return value is the exit code:
 * CLI_EXIT_REFUSED for 4xx, CLI_EXIT_SERVER for 5xx or a nonsensical answer,
 * CLI_EXIT_CONNECT when the server cannot be reached, CLI_EXIT_USAGE for a
 * local failure (unreadable upload, unwritable sink, out of memory).
 * A refused connection is retried with backoff for up to ctx->wait_s.
 */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <jansson.h>
#include <stdio.h>

#include "client/cli.h"

/* A growable byte buffer, always NUL-terminated when data != NULL. */
typedef struct cli_buf {
    char *data;
    size_t len;
    size_t cap;
} cli_buf;

/* Appends n bytes. 0 on success, -1 when out of memory (b unchanged). */
int cli_buf_append(cli_buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
int cli_buf_puts(cli_buf *b, const char *s);
void cli_buf_free(cli_buf *b);

typedef struct cli_req {
    const char *method;       /* "GET" (default when NULL), "POST", "DELETE" */
    const char *path;         /* "/v1/jobs/3", already escaped */
    const char *query;        /* "state=running", already escaped; NULL: none */
    const char *accept;       /* Accept header; NULL: application/json */
    const char *content_type; /* of the body */
    const char *body;         /* in-memory body (borrowed), or NULL */
    size_t body_len;
    FILE *upload;             /* streamed body (borrowed), or NULL */
    long long upload_size;    /* its size in bytes, or -1: unknown (chunked) */
    FILE *sink;               /* if set, a 2xx body is written here, not kept */
    int want_json;            /* parse a 2xx body into resp->json */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    /* If set, a 2xx body is handed to on_data as it arrives (event streams)
     * instead of being kept; returning nonzero ends the transfer early,
     * which cli_http then treats as success. */
    int (*on_data)(void *ud, const char *p, size_t n);
    void *data_ud;
    /* If set, called as bytes move (curl's transfer-info callback, about
     * once a second and on every chunk): now/total of the download and the
     * upload (total 0 or -1: unknown). Draws progress bars; never fails. */
    void (*on_progress)(void *ud, long long down, long long down_total, long long up,
                        long long up_total);
    void *progress_ud;
    long low_speed_s;         /* >0: give up when fewer than 1 byte/s arrive this long */
    int no_retry;             /* do not retry a refused connection even with --wait */
} cli_req;

typedef struct cli_resp {
    long status;     /* HTTP status, 0 if none arrived */
    cli_buf body;    /* the body as received (not for a 2xx sent to sink) */
    long long sunk;  /* bytes written to req->sink or given to req->on_data */
    json_t *json;    /* new reference, when want_json and the body was JSON */
} cli_resp;

/* Performs req. resp is written in every case; release it with
 * cli_resp_free(). See the header comment for the return value. */
int cli_http(cli_ctx *ctx, const cli_req *req, cli_resp *resp);
void cli_resp_free(cli_resp *resp);

/* Shorthand: method+path(+query) with an optional JSON body, expecting a
 * JSON answer. body is borrowed. */
int cli_http_json(cli_ctx *ctx, const char *method, const char *path, const char *query,
                  const json_t *body, cli_resp *resp);

/* "/v1/<collection>/<escaped id><suffix>" as a new string (free()), or NULL
 * when out of memory. suffix may be NULL. */
char *cli_http_id_path(cli_ctx *ctx, const char *collection, const char *id,
                       const char *suffix);

/* Shorthand for a request on one resource: method on
 * "/v1/<collection>/<id><suffix>[?query]", JSON answer expected. */
int cli_http_id(cli_ctx *ctx, const char *method, const char *collection, const char *id,
                const char *suffix, const char *query, cli_resp *resp);

/* Appends "key=value" (value URL-encoded, '&' between pairs) to a query. */
int cli_query_add(cli_ctx *ctx, cli_buf *q, const char *key, const char *value);

#endif
