/*
 * api/api_internal.h — shared by the api_*.c files only.
 */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <microhttpd.h>

#include "api/api.h"
#include "api/csv_table.h"

#define API__MAX_PARAMS 2

typedef enum { BODY_NONE = 0, BODY_JSON = 1, BODY_CSV = 2 } api__body_kind;

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
} api__req;

typedef enum MHD_Result (*api__handler)(struct MHD_Connection *c, api__req *r);

typedef struct api__route {
    const char *method;
    const char *pattern;     /* "/v1/jobs/{}/metrics": {} matches one segment */
    api__body_kind body;
    api__handler fn;
} api__route;

struct api_server {
    struct MHD_Daemon *mhd;
    svc *svc;
    api_config cfg;
    char base_url[128];
    char **tokens;
    size_t n_tokens;
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

/* ---- auth (api_auth.c) -------------------------------------------------- */
int api__load_tokens(struct api_server *a, const char *path, char *err, size_t errlen);
void api__free_tokens(struct api_server *a);
/* 1 if the request carries a valid bearer token (or no tokens are set). */
int api__authorized(struct api_server *a, struct MHD_Connection *c);

/* ---- CSV uploads (api_upload.c) ----------------------------------------- */
/* Headers known: options, limits, Content-Encoding; body errors via err_*. */
void api__upload_begin(struct api_server *a, struct MHD_Connection *c, api__req *r);
/* One chunk of body (raw bytes as received). */
void api__upload_chunk(struct api_server *a, api__req *r, const char *data, size_t n);
/* End of body (the handler of POST /v1/datasets): commit and reply. */
enum MHD_Result api__upload_finish(struct MHD_Connection *c, api__req *r);
/* Request over: discards an upload that was not committed. NULL is fine. */
void api__upload_free(api__req *r);

/* ---- query helpers ------------------------------------------------------ */
/* Parses an optional non-negative integer query argument; -1 on a bad value. */
int api__query_int(struct MHD_Connection *c, const char *key, long long dflt, long long max,
                   long long *out);

#endif
