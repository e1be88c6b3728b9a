/*
 * api/api_reply.c — every response leaves through here. One function writes
 * error bodies; one table maps service codes to HTTP statuses. NaN never
 * reaches jansson (it refuses it): the service layer already writes
 * non-finite numbers as null.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"

static const struct {
    int code;
    unsigned status;
} status_table[] = {
    {SVC_EINVAL, MHD_HTTP_UNPROCESSABLE_CONTENT},
    {SVC_ENOTFOUND, MHD_HTTP_NOT_FOUND},
    {SVC_EEXISTS, MHD_HTTP_CONFLICT},
    {SVC_ECONFLICT, MHD_HTTP_CONFLICT},
    {SVC_EFULL, MHD_HTTP_TOO_MANY_REQUESTS},
    {SVC_ENOMEM, MHD_HTTP_SERVICE_UNAVAILABLE},
    {SVC_EIO, MHD_HTTP_INTERNAL_SERVER_ERROR},
    {SVC_EUNSUPPORTED, MHD_HTTP_UNPROCESSABLE_CONTENT},
    {SVC_ELIMIT, MHD_HTTP_CONTENT_TOO_LARGE},
    {SVC_EGONE, MHD_HTTP_NOT_FOUND},
};

unsigned api__svc_status(int code)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].code == code)
            return status_table[i].status;
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

_Thread_local api__req *api__cur;

/* Notes what was sent on the current request: its status for /metrics, and
 * for an Idempotency-Key request a copy of the reply to record. The request
 * is counted now, when its reply is queued, so a client that has its reply
 * sees it counted in the next GET /metrics (the completion hook runs after
 * the reply is on the wire, too late for that). */
static void note_reply(unsigned status, const char *ctype, const char *buf, size_t len)
{
    api__req *r = api__cur;
    if (!r)
        return;
    r->status = status;
    if (!r->recorded && r->srv) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
        api__stats_record(r->srv, r->route, status, now - r->t_start);
        r->recorded = 1;
    }
    if (r->idem_key[0] && buf) {
        free(r->reply_body);
        r->reply_body = malloc(len + 1);
        if (r->reply_body) {
            memcpy(r->reply_body, buf, len);
            r->reply_body[len] = 0;
            r->reply_len = len;
        }
        snprintf(r->reply_ctype, sizeof r->reply_ctype, "%s", ctype);
    }
}

void api__note_status(unsigned status)
{
    note_reply(status, NULL, NULL, 0);
}

static enum MHD_Result send_buffer(struct MHD_Connection *c, unsigned status, const char *ctype,
                                   char *buf, size_t len)
{
    note_reply(status, ctype, buf, len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, buf, &free);
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (api__cur && api__cur->close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (api__cur && api__cur->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", api__cur->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && api__cur && api__cur->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, api__cur->allow);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result api__reply_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(body);
    if (!text)
        return api__reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                                "cannot encode the response");
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (withnl) {
        withnl[len] = '\n';
        withnl[len + 1] = 0;
        text = withnl;
        len++;
    }
    return send_buffer(c, status, "application/json", text, len);
}

/* Replaces every byte that does not start or continue a valid UTF-8
 * sequence with '?', in place. Messages quote client text (a name, a path)
 * and may be cut mid-character by their buffer; jansson refuses invalid
 * UTF-8, and the client still deserves the real error. */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = 0;
        unsigned cp = 0;
        if (*p < 0x80) {
            p++;
            continue;
        } else if ((*p & 0xe0) == 0xc0) {
            n = 1;
            cp = *p & 0x1f;
        } else if ((*p & 0xf0) == 0xe0) {
            n = 2;
            cp = *p & 0x0f;
        } else if ((*p & 0xf8) == 0xf0) {
            n = 3;
            cp = *p & 0x07;
        } else {
            *p++ = '?';
            continue;
        }
        int ok = 1;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                ok = 0;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (ok && (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = 0;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}

enum MHD_Result api__reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                 const char *field, const char *fmt, ...)
{
    char msg[512], fieldbuf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_sanitize(msg);
    if (field) {
        snprintf(fieldbuf, sizeof fieldbuf, "%s", field);
        utf8_sanitize(fieldbuf);
        field = fieldbuf;
    }
    json_t *err = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (err && field && field[0])
        json_object_set_new(err, "field", json_string(field));
    json_t *body = json_pack("{s:o}", "error", err);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        /* Out of memory: a fixed body still tells the client what happened. */
        static const char oom[] =
            "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}\n";
        note_reply(MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, 0);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (withnl) {
        withnl[len] = '\n';
        withnl[len + 1] = 0;
        text = withnl;
        len++;
    }
    return send_buffer(c, status, "application/json", text, len);
}

enum MHD_Result api__reply_svc_error(struct MHD_Connection *c, const svc_error *e)
{
    return api__reply_error(c, api__svc_status(e->code), svc_code_name(e->code), e->field, "%s",
                            e->message);
}

enum MHD_Result api__reply_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                char *text)
{
    if (!text)
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    return send_buffer(c, status, ctype, text, strlen(text));
}

enum MHD_Result api__reply_empty(struct MHD_Connection *c, unsigned status)
{
    note_reply(status, "", "", 0);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

int api__query_int(struct MHD_Connection *c, const char *key, long long dflt, long long max,
                   long long *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (!v[0] || *end || x < 0 || x > max)
        return -1;
    *out = x;
    return 0;
}
