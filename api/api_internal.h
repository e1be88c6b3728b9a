/*
 * api/api_internal.h — shared by the api_*.c files only.
 */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "api/api.h"
#include "api/csv_table.h"

#define API__MAX_PARAMS 2

/* BODY_BINARY: raw bytes (application/octet-stream) gathered up to max_import. */
typedef enum { BODY_NONE = 0, BODY_JSON = 1, BODY_CSV = 2, BODY_BINARY = 3 } api__body_kind;

struct api_server;

/* One request in flight (libmicrohttpd's per-connection context). */
typedef struct {
    struct api_server *srv;
    const struct api__route *route;
    char params[API__MAX_PARAMS][160];
    /* body */
    char *body;
    size_t len, cap;
    size_t received;
    csv_table_builder *csv;
    struct api__upload *up;   /* POST /v1/datasets: the streaming upload (api_upload.c) */
    /* an error found while the body was arriving, answered at its end */
    int err_status;
    char err_code[40], err_field[64], err_msg[384];
    /* what was answered (api_reply.c records it), for /metrics */
    unsigned status;
    double t_start;           /* CLOCK_MONOTONIC seconds at the headers */
    int recorded;             /* counted in the /metrics figures already */
    /* Idempotency-Key of a creating POST: the reply is captured to record it */
    char idem_key[256];
    char *reply_body, reply_ctype[64];
    size_t reply_len;
    int close_after;          /* add "Connection: close" to the reply */
    int retry_after;          /* add "Retry-After: N" (seconds) to the reply */
    char allow[96];           /* a 405: the Allow header */
    /* the request line's target as sent (on_uri in api_server.c): its length,
     * and the &-separated pieces of its query when over API__MAX_QUERY_PIECES */
    int uri_seen;             /* on_uri ran: uri_len is the raw length */
    size_t uri_len;
    size_t query_pieces;
    int begun;                /* phase 1 (begin) has run */
} api__req;

/* The most &-separated pieces a query may have. Every route takes a few
 * parameters; libmicrohttpd keeps a record per piece in its per-connection
 * memory pool, and thousands of them (an 8 KB "a&a&...") exhaust it before we
 * are called, leaving the client unanswered. */
#define API__MAX_QUERY_PIECES 64

/* The request the current thread is answering (set around every call into
 * the handlers, so the reply functions can record what they sent). */
extern _Thread_local api__req *api__cur;

typedef enum MHD_Result (*api__handler)(struct MHD_Connection *c, api__req *r);

/* Route flags. */
enum {
    API__CREATES = 1,   /* a creating POST: honours Idempotency-Key */
    API__STREAM = 2,    /* a long-lived stream: not in the latency histogram */
    API__CSV_TOO = 4,   /* a JSON route that also takes a text/csv body (buffered) */
    API__BY_NAME = 8,   /* its {id} may also be a name (datasets, tasks) */
};

typedef struct api__route {
    const char *method;
    const char *pattern;     /* "/v1/jobs/{id}/metrics": {name} matches one segment */
    api__body_kind body;
    api__handler fn;
    unsigned flags;
    const char *query;       /* the query parameters it takes: "limit offset" (NULL: none) */
} api__route;

#define API__SHA256_LEN 32

/* Request counters and latency histogram for GET /metrics (api_metrics.c). */
#define API__LAT_BUCKETS 12
#define API__MAX_STATUSES 24
typedef struct {
    struct {
        unsigned status;
        uint64_t count;
    } by_status[API__MAX_STATUSES];
    uint64_t lat[API__LAT_BUCKETS + 1]; /* per bucket (summed when rendered); +Inf last */
    double lat_sum;
    uint64_t lat_count;
} api__route_stats;

typedef struct {
    pthread_mutex_t mu;        /* guards route[] */
    api__route_stats *route;   /* [api__n_routes + 1]: the last is "no route" */
} api__stats;

/* One SSE stream (api_sse.c). */
typedef struct api__sse api__sse;

/* Connections per client address (api_server.c). */
typedef struct {
    uint32_t ip;
    unsigned count;
} api__ip_count;

struct api_server {
    struct MHD_Daemon *mhd;
    svc *svc;
    api_config cfg;
    char base_url[128];
    unsigned char (*tokens)[API__SHA256_LEN]; /* SHA-256 of each accepted token */
    size_t n_tokens;
    api__stats stats;
    /* event streams */
    pthread_mutex_t sse_mu;   /* guards sse list, each stream's suspended flag, sse_stopping */
    api__sse *sse;
    int sse_stopping;
    pthread_t ticker;
    int ticker_started;
    pthread_cond_t ticker_cv; /* wakes the ticker to stop (with sse_mu) */
    /* connection counts, in total and per address */
    pthread_mutex_t ip_mu;    /* guards n_conns, ips */
    unsigned n_conns;
    api__ip_count *ips;
    size_t n_ips, cap_ips;
};

extern const api__route api__routes[];
extern const size_t api__n_routes;

/* ---- replies (api_reply.c): the one way out ---------------------------- */

/* Sends body (stolen) as JSON with status. */
enum MHD_Result api__reply_json(struct MHD_Connection *c, unsigned status, json_t *body);
enum MHD_Result api__reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                 const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Maps an svc error to its status and sends it. */
enum MHD_Result api__reply_svc_error(struct MHD_Connection *c, const svc_error *e);
enum MHD_Result api__reply_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                char *text /* stolen, malloc'd */);
enum MHD_Result api__reply_empty(struct MHD_Connection *c, unsigned status);
unsigned api__svc_status(int code);
/* Records the status of a reply queued without the functions above. */
void api__note_status(unsigned status);

/* ---- auth (api_auth.c) -------------------------------------------------- */
int api__load_tokens(struct api_server *a, const char *path, char *err, size_t errlen);
void api__free_tokens(struct api_server *a);
/* 1 if the request carries a valid bearer token (or no tokens are set). */
int api__authorized(struct api_server *a, struct MHD_Connection *c);

void api__sha256(const void *data, size_t len, unsigned char out[API__SHA256_LEN]);

/* ---- handlers in other files ------------------------------------------- */
enum MHD_Result api__h_metrics(struct MHD_Connection *c, api__req *r);   /* api_metrics.c */
enum MHD_Result api__h_job_events(struct MHD_Connection *c, api__req *r); /* api_sse.c */
int api__stats_init(struct api_server *a);
void api__stats_free(struct api_server *a);
/* Counts a finished request (route NULL = no route matched). */
void api__stats_record(struct api_server *a, const api__route *route, unsigned status,
                       double seconds);
/* Starts / stops the SSE ticker; api__sse_stop ends every stream (before
 * MHD_stop_daemon, which must find no connection suspended). */
int api__sse_start(struct api_server *a);
void api__sse_stop(struct api_server *a);
/* Runs the route's handler, wrapped in Idempotency-Key handling for creating
 * routes (api_idem.c). */
enum MHD_Result api__run_handler(struct MHD_Connection *c, api__req *r);
/* At the headers of a creating CSV upload: reserves its Idempotency-Key, or
 * answers (replay, conflict): *done = 1 then. */
enum MHD_Result api__idem_early(struct MHD_Connection *c, api__req *r, int *done);
/* At completion: forgets a key whose request never produced a reply. */
void api__idem_unfinished(api__req *r);

/* ---- CSV uploads (api_upload.c) ----------------------------------------- */
/* Headers known: options, limits, Content-Encoding; body errors via err_*. */
void api__upload_begin(struct api_server *a, struct MHD_Connection *c, api__req *r);
/* One chunk of body (raw bytes as received). */
void api__upload_chunk(struct api_server *a, api__req *r, const char *data, size_t n);
/* At the headers, after Idempotency-Key: answers 409 (*done = 1) when the
 * dataset's name is already taken. */
enum MHD_Result api__upload_name_free(struct MHD_Connection *c, api__req *r, int *done);
/* End of body (the handler of POST /v1/datasets): commit and reply. */
enum MHD_Result api__upload_finish(struct MHD_Connection *c, api__req *r);
/* Request over: discards an upload that was not committed. NULL is fine. */
void api__upload_free(api__req *r);

/* ---- what a request may say (api_check.c) ------------------------------- */
/* At the headers, once the route is known: its path ids must be canonical
 * (404 naming the segment) and its query parameters on the route's list,
 * each once (400 naming the parameter). *done = 1 when it replied. */
enum MHD_Result api__check_ids(struct MHD_Connection *c, api__req *r, int *done);
enum MHD_Result api__check_query(struct MHD_Connection *c, api__req *r, int *done);

/* ---- query helpers ------------------------------------------------------ */
/* Parses an optional non-negative integer query argument; -1 on a bad value. */
int api__query_int(struct MHD_Connection *c, const char *key, long long dflt, long long max,
                   long long *out);

#endif
