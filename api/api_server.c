/*
 * api/api_server.c — the libmicrohttpd daemon: listening, the access
 * handler that every request passes through (route, auth, body limits,
 * streaming of CSV uploads into the parser), and the completion hook that
 * frees a request's state.
 *
 * A request is handled in three phases, as libmicrohttpd calls us:
 *  1. headers known: find the route (404/405), check the token (401) and
 *     the Content-Type (415); set up the body sink;
 *  2. body chunks: JSON is gathered up to max_json_body (413 beyond);
 *     CSV is pushed into the csv_table builder chunk by chunk, never
 *     buffered whole; an error there is remembered and the rest discarded;
 *  3. end of body: the route's handler runs and queues the one response.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "daemon/svc_log.h"


/* libmicrohttpd's own messages (a request it could not parse, a peer that
 * hung up) go through mtld's log as one key=value event at info, so the log
 * stays one line per event and --log-level governs them too. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!svc_log_enabled(SVC_LOG_INFO))
        return;
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = 0;
    svc_log(SVC_LOG_INFO, "http_library", "message=\"%s\"", svc_log_quote(q, sizeof q, msg));
}

static int match(const char *pattern, const char *url, char params[][160])
{
    int np = 0;
    while (*pattern && *url) {
        if (pattern[0] == '{') {
            const char *close = strchr(pattern, '}');
            const char *end = strchr(url, '/');
            size_t n = end ? (size_t)(end - url) : strlen(url);
            if (n == 0 || n >= 160 || np >= API__MAX_PARAMS)
                return 0;
            memcpy(params[np], url, n);
            params[np][n] = 0;
            np++;
            url += n;
            pattern = close ? close + 1 : pattern + strlen(pattern);
            continue;
        }
        if (*pattern != *url)
            return 0;
        pattern++;
        url++;
    }
    return *pattern == 0 && *url == 0;
}

static void set_err(api__req *r, int status, const char *code, const char *field, const char *msg)
{
    if (r->err_status)
        return; /* keep the first error */
    r->err_status = status;
    snprintf(r->err_code, sizeof r->err_code, "%s", code);
    snprintf(r->err_field, sizeof r->err_field, "%s", field ? field : "");
    snprintf(r->err_msg, sizeof r->err_msg, "%s", msg);
}

/* The Content-Type headers of a request, gathered by ct_scan(): the first
 * one's media type, and whether a later one names another (a client that
 * sends "text/csv" and then "application/json" has not said what it sends). */
typedef struct {
    char first[96];
    int count;
    int conflict;
} ct_seen;

/* The media type of a header value: up to ';', without surrounding blanks. */
static size_t media_type(const char *v, const char **start)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strcspn(v, ";");
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *start = v;
    return n;
}

static enum MHD_Result ct_scan(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    ct_seen *s = cls;
    if (!key || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) != 0)
        return MHD_YES;
    const char *v;
    size_t n = media_type(value ? value : "", &v);
    if (n == 0)
        return MHD_YES; /* "Content-Type:" with no value says nothing */
    if (s->count++ == 0) {
        snprintf(s->first, sizeof s->first, "%.*s", (int)n, v);
    } else if (strlen(s->first) != n || strncasecmp(s->first, v, n) != 0) {
        s->conflict = 1;
    }
    return MHD_YES;
}

/* 1 if the request's one media type is want, 0 if it is another, -1 if it
 * has none, -2 if its Content-Type headers disagree. */
static int content_type_is(struct MHD_Connection *c, const char *want)
{
    ct_seen s = {{0}, 0, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, ct_scan, &s);
    if (s.count == 0)
        return -1;
    if (s.conflict)
        return -2;
    return strcasecmp(s.first, want) == 0;
}

/* Per-connection context (libmicrohttpd's socket context): whether this
 * connection is over the per-address or the total limit (begin() answers it
 * 429 / 503 and closes it). */
typedef struct {
    int over_ip;
    int over_total;
    uint32_t ip;
    int counted;
} conn_ctx;

/* Headers a request may carry at most once, counted in one pass over its
 * header lines (case-insensitive names). libmicrohttpd hands over the first
 * of several and ignores the rest:
 *  - Content-Length / Transfer-Encoding say where the body ends:
 *    "Content-Length: 10" then "Content-Length: 2" with a 2-byte body would
 *    wait for 8 bytes that never come (until --connection-timeout); a
 *    Transfer-Encoding other than chunked ("gzip") hangs the same way. A
 *    request that says its length twice, or both ways, or in a coding we do
 *    not read, has not said it (RFC 9112 §6.1, §6.3): it is refused at its
 *    headers and the connection closed. "Chunked" is judged on the value
 *    exactly as libmicrohttpd compares it: it takes only the bare token (any
 *    case), so "chunked " with a trailing blank is not chunked to it and
 *    would hang as "gzip" does; here it is therefore not chunked either, and
 *    nothing is trimmed.
 *  - Idempotency-Key / Last-Event-ID name one thing: "Idempotency-Key: a"
 *    then "Idempotency-Key: b" silently meant a (and a stream resumed after
 *    whichever Last-Event-ID came first).
 * Two of any of them is a 400 naming the header, the connection closed. */
enum { H_CL, H_TE, H_IDEM, H_LAST_EVENT, H_ONCE };
static const struct {
    const char *name;
    const char *hint; /* after "send one" */
} once_headers[H_ONCE] = {
    [H_CL] = {MHD_HTTP_HEADER_CONTENT_LENGTH, ""},
    [H_TE] = {MHD_HTTP_HEADER_TRANSFER_ENCODING, " (Transfer-Encoding: chunked) or none"},
    [H_IDEM] = {"Idempotency-Key", ""},
    [H_LAST_EVENT] = {"Last-Event-ID", ""},
};

typedef struct {
    int n[H_ONCE];     /* header lines of each once_headers name */
    int te_other;      /* a Transfer-Encoding that is not exactly "chunked" */
    char te[48];       /* the first Transfer-Encoding, for the message */
} once_count;

static enum MHD_Result count_once(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    once_count *o = cls;
    for (int i = 0; key && i < H_ONCE; i++) {
        if (strcasecmp(key, once_headers[i].name) != 0)
            continue;
        if (i == H_TE) {
            const char *v = value ? value : "";
            if (o->n[i] == 0)
                snprintf(o->te, sizeof o->te, "%s", v);
            if (strcasecmp(v, "chunked") != 0)
                o->te_other = 1;
        }
        o->n[i]++;
        break;
    }
    return MHD_YES;
}

static enum MHD_Result sum_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    size_t *n = cls;
    *n += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* A query parameter's share of the target: "key=value" and its '&'. */
static enum MHD_Result sum_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    size_t *n = cls;
    *n += (key ? strlen(key) : 0) + (value ? strlen(value) + 1 : 0) + 1;
    return MHD_YES;
}

/* The methods route path `url` answers, "GET, HEAD, DELETE" style, for
 * the Allow header of a 405. HEAD goes with every GET that is not a stream. */
static void allowed_methods(const char *url, char *out, size_t n)
{
    char params[API__MAX_PARAMS][160];
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < api__n_routes; i++) {
        if (!match(api__routes[i].pattern, url, params))
            continue;
        const char *m = api__routes[i].method;
        int head = !strcmp(m, "GET") && !(api__routes[i].flags & API__STREAM);
        int k = snprintf(out + len, n - len, "%s%s%s", len ? ", " : "", m, head ? ", HEAD" : "");
        if (k < 0 || (size_t)k >= n - len)
            break;
        len += (size_t)k;
    }
}

/* Whether route i answers method: its own, or HEAD for a GET that is not a
 * stream (libmicrohttpd sends the headers of the GET reply without its
 * body). */
static int method_ok(const api__route *rt, const char *method)
{
    if (!strcmp(rt->method, method))
        return 1;
    return !strcmp(method, "HEAD") && !strcmp(rt->method, "GET") && !(rt->flags & API__STREAM);
}

/* Phase 1. Returns MHD_YES with *done = 1 if a response was queued.
 * Everything that can be judged from the request line and headers is judged
 * here, so a request that is refused is refused before its body is read
 * (libmicrohttpd then sends no "100 Continue" and closes the connection). */
static enum MHD_Result begin(struct api_server *a, struct MHD_Connection *c, const char *url,
                             const char *method, api__req *r, int *done)
{
    int path_matched = 0;
    *done = 1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const conn_ctx *cc = ci ? ci->socket_context : NULL;
    if (cc && cc->over_ip) {
        r->close_after = 1;
        return api__reply_error(c, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_connections", NULL,
                                "more than %u connections from this address "
                                "(max_connections_per_ip)",
                                a->cfg.max_connections_per_ip);
    }
    if (cc && cc->over_total) {
        r->close_after = 1;
        r->retry_after = 1;
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_connections", NULL,
                                "the server has its limit of %u connections open "
                                "(max_connections): retry later",
                                a->cfg.max_connections);
    }
    /* Sizes libmicrohttpd would accept (its memory pool is far larger) but
     * we do not: answered here so the error has the JSON shape. */
    size_t uri = r->uri_len, hdr = 0;
    if (!r->uri_seen) { /* on_uri could not keep it: rebuild it from the parts */
        uri = strlen(url);
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, sum_arg, &uri);
    }
    if (uri > a->cfg.max_uri) {
        r->close_after = 1;
        return api__reply_error(c, MHD_HTTP_URI_TOO_LONG, "uri_too_long", NULL,
                                "the request's path and query are longer than %zu bytes "
                                "(max_uri)",
                                a->cfg.max_uri);
    }
    if (r->query_pieces > API__MAX_QUERY_PIECES) {
        r->close_after = 1;
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", NULL,
                                "the query has %zu '&'-separated parameters; at most %d are "
                                "read (every route takes a few)",
                                r->query_pieces, API__MAX_QUERY_PIECES);
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, sum_kv, &hdr);
    if (hdr > a->cfg.max_header_bytes) {
        r->close_after = 1;
        return api__reply_error(c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                "headers_too_large", NULL,
                                "the request's header lines are larger than %zu bytes "
                                "(max_header_bytes)",
                                a->cfg.max_header_bytes);
    }
    once_count oc = {{0}, 0, ""};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_once, &oc);
    for (int i = 0; i < H_ONCE; i++)
        if (oc.n[i] > 1) {
            r->close_after = 1; /* refused before its body: read none of it */
            return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", once_headers[i].name,
                                    "the request has %d %s headers; send one%s", oc.n[i],
                                    once_headers[i].name, once_headers[i].hint);
        }
    if (oc.te_other || (oc.n[H_TE] && oc.n[H_CL]))
        r->close_after = 1; /* where this body ends is not known: read no more */
    if (oc.te_other)
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", "Transfer-Encoding",
                                "Transfer-Encoding '%s' is not read here: send the body as it "
                                "is or say exactly 'Transfer-Encoding: chunked' (no other "
                                "coding, no blanks after it; a gzip upload says "
                                "Content-Encoding: gzip)",
                                oc.te);
    if (oc.n[H_TE] && oc.n[H_CL])
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", "Transfer-Encoding",
                                "the request has both Transfer-Encoding and Content-Length; "
                                "send one");
    char params[API__MAX_PARAMS][160] = {{0}};
    for (size_t i = 0; i < api__n_routes; i++) {
        if (!match(api__routes[i].pattern, url, params))
            continue;
        path_matched = 1;
        if (!method_ok(&api__routes[i], method))
            continue;
        r->route = &api__routes[i];
        memcpy(r->params, params, sizeof params);
        break;
    }
    /* Without the token, an unknown path is 401 like a known one: which
     * routes exist is not told to a client that may not use them. */
    if (!r->route && strcmp(url, "/v1/health") != 0 && !api__authorized(a, c))
        return api__reply_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
                                "a valid 'Authorization: Bearer TOKEN' header is required");
    if (!r->route) {
        if (path_matched) {
            allowed_methods(url, r->allow, sizeof r->allow);
            return api__reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
                                    "%s is not allowed on %s (allowed: %s)", method, url,
                                    r->allow);
        }
        return api__reply_error(c, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route %s %s",
                                method, url);
    }
    if (strcmp(r->route->pattern, "/v1/health") != 0 && !api__authorized(a, c))
        return api__reply_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
                                "a valid 'Authorization: Bearer TOKEN' header is required");
    /* Ids and query parameters said loosely are refused before any lookup
     * (after the token: 401 comes before 404). */
    enum MHD_Result crc = api__check_ids(c, r, done);
    if (*done)
        return crc;
    crc = api__check_query(c, r, done);
    if (*done)
        return crc;
    *done = 1;
    if (r->route->body != BODY_NONE) {
        /* One table row per body kind: the types it takes and what to say. */
        const char *want = r->route->body == BODY_CSV      ? "text/csv"
                           : r->route->body == BODY_BINARY ? "application/octet-stream"
                                                           : "application/json";
        const char *also = r->route->flags & API__CSV_TOO ? "text/csv" : NULL;
        const char *says = r->route->body == BODY_CSV ? "the body must be CSV (Content-Type: text/csv)"
                           : r->route->body == BODY_BINARY
                               ? "the body must be the file's bytes "
                                 "(Content-Type: application/octet-stream)"
                           : also ? "the body must be JSON (Content-Type: application/json) "
                                    "or CSV (Content-Type: text/csv)"
                                  : "the body must be JSON (Content-Type: application/json)";
        int ok = content_type_is(c, want);
        if (ok == 0 && also)
            ok = content_type_is(c, also);
        if (ok != 1)
            return api__reply_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                                    NULL, "%s%s", says,
                                    ok == -1   ? ": the request has no Content-Type"
                                    : ok == -2 ? ": the request has Content-Type headers that "
                                                 "disagree"
                                               : "");
    }
    /* A body announced larger than its limit is refused before it is sent. */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && r->route->body != BODY_NONE) {
        char *end = NULL;
        unsigned long long n = strtoull(cl, &end, 10);
        size_t limit = r->route->body == BODY_CSV      ? a->cfg.max_upload
                       : r->route->body == BODY_BINARY ? a->cfg.max_import
                                                       : a->cfg.max_json_body;
        const char *what = r->route->body == BODY_CSV      ? "upload"
                           : r->route->body == BODY_BINARY ? "file"
                                                           : "JSON body";
        const char *key = r->route->body == BODY_CSV      ? "max_upload"
                          : r->route->body == BODY_BINARY ? "max_import"
                                                          : "max_json_body";
        if (end != cl && n > limit) {
            r->close_after = 1;
            return api__reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL,
                                    "the %s is larger than the limit of %zu bytes (%s)", what,
                                    limit, key);
        }
    }
    if (r->route->body == BODY_CSV) {
        /* Query options, Content-Encoding, the dataset's name: all known now,
         * so a bad one is answered before a byte of the upload is read. */
        api__upload_begin(a, c, r);
        if (r->err_status) {
            r->close_after = 1;
            return api__reply_error(c, (unsigned)r->err_status, r->err_code, r->err_field, "%s",
                                    r->err_msg);
        }
    }
    /* An upload is stored as it arrives: its Idempotency-Key is settled now. */
    enum MHD_Result rc = api__idem_early(c, r, done);
    if (*done || r->route->body != BODY_CSV)
        return rc;
    /* A name already taken is refused now too (after the key: a retry of an
     * upload that was stored replays its 201 instead). */
    return api__upload_name_free(c, r, done);
}

/* Phase 2: one chunk of body. */
static void body_chunk(struct api_server *a, api__req *r, const char *data, size_t n)
{
    r->received += n;
    if (r->err_status)
        return;
    if (!r->route || r->route->body == BODY_NONE) {
        if (n)
            set_err(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", NULL,
                    "this route takes no request body");
        return;
    }
    if (r->route->body == BODY_CSV) {
        api__upload_chunk(a, r, data, n); /* inflate, parse, store: api_upload.c */
        return;
    }
    size_t limit = r->route->body == BODY_BINARY ? a->cfg.max_import : a->cfg.max_json_body;
    if (r->len + n > limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "the %s body is larger than the limit of %zu bytes (%s)",
                 r->route->body == BODY_BINARY ? "file" : "JSON", limit,
                 r->route->body == BODY_BINARY ? "max_import" : "max_json_body");
        set_err(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL, msg);
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            set_err(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL, "out of memory");
            return;
        }
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static enum MHD_Result on_request_inner(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **con_cls)
{
    (void)version;
    struct api_server *a = cls;
    api__req *r = *con_cls;
    if (!r || !r->begun) {
        if (!r)
            r = calloc(1, sizeof *r);
        if (!r) {
            /* Still an answer: a fixed body needs no memory. */
            static const char oom[] =
                "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}\n";
            struct MHD_Response *resp = MHD_create_response_from_buffer(
                sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
            if (!resp)
                return MHD_NO;
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
            enum MHD_Result qrc = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
            MHD_destroy_response(resp);
            return qrc;
        }
        r->srv = a;
        r->begun = 1;
        *con_cls = r;
        api__cur = r;
        r->t_start = mono_now();
        int done = 0;
        enum MHD_Result rc = begin(a, c, url, method, r, &done);
        if (done)
            return rc;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        body_chunk(a, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->err_status)
        return api__reply_error(c, (unsigned)r->err_status, r->err_code, r->err_field, "%s",
                                r->err_msg);
    return api__run_handler(c, r);
}

/* Every call into the handlers runs with api__cur set, so replies can note
 * their status (and, for Idempotency-Key requests, their body). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    api__cur = *con_cls;
    enum MHD_Result rc = on_request_inner(cls, c, url, method, version, upload_data,
                                          upload_data_size, con_cls);
    api__cur = NULL;
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct api_server *a = cls;
    api__req *r = *con_cls;
    if (!r)
        return;
    if (!r->begun) { /* on_uri made it, the request ended before its headers */
        free(r);
        *con_cls = NULL;
        return;
    }
    if (!r->recorded) /* never answered: a client that went away mid-request */
        api__stats_record(a, r->route, r->status, mono_now() - r->t_start);
    api__idem_unfinished(r);
    free(r->reply_body);
    free(r->body);
    csv_table_builder_free(r->csv);
    api__upload_free(r); /* an upload cut off mid-way leaves nothing behind */
    free(r);
    *con_cls = NULL;
}

/* libmicrohttpd's URI log callback: the request target exactly as sent,
 * before libmicrohttpd splits its query into parameters (and before the
 * headers). The request's state starts here, with the target's length (the
 * size --max-uri bounds) and, if the query has more pieces than any route
 * takes, their count: begin() answers that 400. Such a query is also cut
 * off here, so that libmicrohttpd does not parse it: it keeps each
 * parameter as a record in the connection's memory pool, and a few thousand
 * ("a&" x 3000, well under --max-uri) exhaust it, after which it drops the
 * connection without a reply. The target is the connection's read buffer,
 * which libmicrohttpd (0.9.x) hands over writable and parses after this
 * call: ending the string after its '?' leaves it an empty query. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    api__req *r = calloc(1, sizeof *r);
    const char *q = strchr(uri, '?');
    size_t pieces = 0;
    if (q && q[1]) {
        pieces = 1;
        for (const char *p = q + 1; *p; p++)
            pieces += *p == '&';
    }
    if (!r)
        return NULL; /* on_request answers out of memory; the query stays */
    r->uri_seen = 1;
    r->uri_len = strlen(uri);
    if (pieces > API__MAX_QUERY_PIECES) {
        r->query_pieces = pieces;
        ((char *)q)[1] = 0;
    }
    return r;
}

/* libmicrohttpd decodes %XX in the path and the query before we see them,
 * and a decoded %00 would silently cut a name or id short ("a%00b" naming
 * "a"). This decoder does what the default does but leaves "%00" as it is,
 * so such a name is simply invalid and such an id simply unknown. */
static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, char *err, size_t errlen)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "--listen must be HOST:PORT, got '%s'", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "--listen port must be 0..65535, got '%s'", colon + 1);
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        snprintf(err, errlen, "--listen host must be an IPv4 address, got '%s'", host);
        return -1;
    }
    return 0;
}

int api_listen_check(const char *listen, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    return parse_listen(listen, &sa, err, errlen);
}


static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct api_server *a = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *cc = calloc(1, sizeof *cc);
        *socket_context = cc;
        if (!cc)
            return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        int by_ip = ci && ci->client_addr && ci->client_addr->sa_family == AF_INET &&
                    a->cfg.max_connections_per_ip > 0;
        pthread_mutex_lock(&a->ip_mu);
        cc->counted = 1;
        cc->over_total = ++a->n_conns > a->cfg.max_connections;
        if (by_ip) {
            cc->ip =
                ((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr.s_addr;
            size_t i = 0;
            while (i < a->n_ips && a->ips[i].ip != cc->ip)
                i++;
            if (i == a->n_ips && a->n_ips == a->cap_ips) {
                size_t cap = a->cap_ips ? 2 * a->cap_ips : 16;
                api__ip_count *g = realloc(a->ips, cap * sizeof *g);
                if (g) {
                    a->ips = g;
                    a->cap_ips = cap;
                }
            }
            if (i < a->cap_ips) {
                if (i == a->n_ips) {
                    a->ips[i].ip = cc->ip;
                    a->ips[i].count = 0;
                    a->n_ips++;
                }
                a->ips[i].count++;
                cc->counted = 2;
                cc->over_ip = a->ips[i].count > a->cfg.max_connections_per_ip;
            }
        }
        pthread_mutex_unlock(&a->ip_mu);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_ctx *cc = *socket_context;
        if (cc && cc->counted) {
            pthread_mutex_lock(&a->ip_mu);
            a->n_conns--;
            for (size_t i = 0; cc->counted == 2 && i < a->n_ips; i++)
                if (a->ips[i].ip == cc->ip) {
                    if (--a->ips[i].count == 0)
                        a->ips[i] = a->ips[--a->n_ips];
                    break;
                }
            pthread_mutex_unlock(&a->ip_mu);
        }
        free(cc);
        *socket_context = NULL;
    }
}

size_t api_route_count(void)
{
    return api__n_routes;
}

void api_route_get(size_t i, const char **method, const char **pattern)
{
    *method = i < api__n_routes ? api__routes[i].method : NULL;
    *pattern = i < api__n_routes ? api__routes[i].pattern : NULL;
}

const char *api_route_query(size_t i)
{
    return i < api__n_routes && api__routes[i].query ? api__routes[i].query : "";
}

/* The address of a socket handed over by the daemon (systemd's socket
 * activation): its URL form for base_url ("127.0.0.1:8470", "[::1]:8470")
 * and whether it is loopback-only. AF_INET and AF_INET6 only. */
static int describe_socket(int fd, char *hostport, size_t n, int *loopback, char *err,
                           size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "the listening socket passed to mtld (fd %d) is not usable", fd);
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        *loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        snprintf(hostport, n, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&ss;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
                    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
        snprintf(hostport, n, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        return 0;
    }
    snprintf(err, errlen, "the listening socket passed to mtld (fd %d) is not a TCP socket", fd);
    return -1;
}

api_server *api_start(const api_config *cfg, svc *s, char *err, size_t errlen)
{
    struct api_server *a = calloc(1, sizeof *a);
    struct sockaddr_in sa;
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->svc = s;
    a->cfg = *cfg;
    if (!a->cfg.max_predict_rows)
        a->cfg.max_predict_rows = 10000;
    if (!a->cfg.max_watchers)
        a->cfg.max_watchers = 16;
    if (!a->cfg.max_json_depth)
        a->cfg.max_json_depth = 32;
    if (!a->cfg.max_import)
        a->cfg.max_import = (size_t)256 << 20;
    if (!a->cfg.max_uri)
        a->cfg.max_uri = 8192;
    if (!a->cfg.sse_heartbeat)
        a->cfg.sse_heartbeat = 15;
    if (!a->cfg.max_header_bytes)
        a->cfg.max_header_bytes = 16384;
    if (!a->cfg.max_connections)
        a->cfg.max_connections = 256;
    if (!a->cfg.connection_timeout)
        a->cfg.connection_timeout = 60;
    /* libmicrohttpd answers some errors itself, with an HTML page: a request
     * head that does not fit its per-connection memory pool (431 / 414), and
     * connections over its limit (closed unanswered). Its limits are set well
     * above ours, so ours are met first and answered with the JSON error
     * shape: the pool at 128 KiB (libmicrohttpd zeroes the pool between
     * requests, so its size is paid on every request: 1 MiB cost two thirds
     * of the throughput of GET /v1/jobs/{id}; 128 KiB holds heads 5x our
     * default limits), the connections at max_connections plus a margin that
     * begin() answers 503. */
    size_t pool = 2 * (a->cfg.max_uri + a->cfg.max_header_bytes) + 32768;
    if (pool < ((size_t)128 << 10))
        pool = (size_t)128 << 10;

    unsigned margin = a->cfg.max_connections / 4 > 16 ? a->cfg.max_connections / 4 : 16;
    pthread_mutex_init(&a->ip_mu, NULL);
    pthread_mutex_init(&a->sse_mu, NULL);
    pthread_cond_init(&a->ticker_cv, NULL);
    if (api__stats_init(a) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->token_file && api__load_tokens(a, cfg->token_file, err, errlen) != 0)
        goto fail;
    /* Where to listen: a socket the daemon was handed (systemd's socket
     * activation), else --listen. The token rule is the same for both. */
    char sockname[INET6_ADDRSTRLEN + 16] = "";
    const char *where = cfg->listen;
    int loopback = 0;
    struct MHD_OptionItem listen_opt[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (cfg->listen_fd >= 0) {
        if (describe_socket(cfg->listen_fd, sockname, sizeof sockname, &loopback, err, errlen) !=
            0)
            goto fail;
        where = sockname;
        listen_opt[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL};
    } else {
        if (parse_listen(cfg->listen, &sa, err, errlen) != 0)
            goto fail;
        loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
        listen_opt[0] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &sa};
    }
    if (!loopback && a->n_tokens == 0 && !cfg->insecure) {
        snprintf(err, errlen,
                 "refusing to listen on %s without --token-file (use --insecure to allow it)",
                 where);
        goto fail;
    }
    /* A thread pool over epoll; event streams suspend their connection while
     * they wait (MHD_ALLOW_SUSPEND_RESUME, see api_sse.c) instead of holding
     * a pool thread. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (cfg->listen_fd >= 0)
        flags |= MHD_USE_ITC; /* so api_stop can quiesce (give the socket back) */
    if (api__sse_start(a) != 0) {
        snprintf(err, errlen, "cannot start the event-stream ticker thread");
        goto fail;
    }
    /* The logger first: libmicrohttpd warns (through its default logger)
     * about any option parsed before it, at every start. */
    a->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, &on_request, a, MHD_OPTION_EXTERNAL_LOGGER, &mhd_logger, NULL,
        MHD_OPTION_ARRAY, listen_opt, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->threads > 0 ? cfg->threads : 4),
        MHD_OPTION_CONNECTION_LIMIT, a->cfg.max_connections + margin,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_CONNECTION_TIMEOUT,
        a->cfg.connection_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, &on_completed, a, MHD_OPTION_UNESCAPE_CALLBACK,
        &unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION, &on_connection, a,
        MHD_OPTION_URI_LOG_CALLBACK, &on_uri, a, MHD_OPTION_END);
    if (!a->mhd) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not available)", where);
        goto fail;
    }
    if (cfg->listen_fd >= 0) {
        snprintf(a->base_url, sizeof a->base_url, "http://%s", sockname);
        return a;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    char host[64];
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    snprintf(a->base_url, sizeof a->base_url, "http://%s:%u", host,
             info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port));
    return a;
fail:
    api__sse_stop(a);
    api__free_tokens(a);
    api__stats_free(a);
    pthread_cond_destroy(&a->ticker_cv);
    pthread_mutex_destroy(&a->sse_mu);
    pthread_mutex_destroy(&a->ip_mu);
    free(a);
    return NULL;
}

void api_stop(api_server *a)
{
    if (!a)
        return;
    api__sse_stop(a); /* no connection may stay suspended past this */
    if (a->mhd) {
        /* A socket handed over by systemd stays systemd's: quiesce first, so
         * that MHD_stop_daemon does not shut it down (which would break it
         * for the next mtld the socket unit starts), and close only our
         * descriptor afterwards. */
        MHD_socket ls = a->cfg.listen_fd >= 0 ? MHD_quiesce_daemon(a->mhd) : MHD_INVALID_SOCKET;
        MHD_stop_daemon(a->mhd);
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
    }
    api__free_tokens(a);
    api__stats_free(a);
    free(a->ips);
    pthread_cond_destroy(&a->ticker_cv);
    pthread_mutex_destroy(&a->sse_mu);
    pthread_mutex_destroy(&a->ip_mu);
    free(a);
}

const char *api_base_url(const api_server *a)
{
    return a->base_url;
}
