/*
 * api/api_idem.c — Idempotency-Key on the POSTs that create (datasets,
 * tasks, jobs): a client that did not see the answer may send the same
 * request again with the same key and gets the first answer (same status,
 * same body, the same resource), never a second resource.
 *
 * The key is reserved in the store before the handler runs (for a CSV upload,
 * at its headers: the upload is stored while it arrives) and the reply is
 * recorded after it, before this thread returns to libmicrohttpd — so the
 * record is durable before the client can see the 201. A request is
 * identified by a SHA-256 fingerprint of its method, path, query and (for
 * JSON) body; CSV uploads are streamed and never held whole, so for them the
 * fingerprint covers the path and query (the dataset name), which already
 * names the resource. The same key with another request is 422; while the
 * first is still running, 409. Failed requests change nothing and are not
 * recorded: their key may be used again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

#define MAX_KEY 200

typedef struct {
    char buf[2048];
    size_t len;
} argbuf;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    argbuf *b = cls;
    int n = snprintf(b->buf + b->len, sizeof b->buf - b->len, "%s=%s&", key,
                     value ? value : "");
    if (n > 0 && (size_t)n < sizeof b->buf - b->len)
        b->len += (size_t)n;
    return MHD_YES;
}

static void fingerprint(struct MHD_Connection *c, api__req *r, char out[65])
{
    argbuf q = {{0}, 0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    char head[2600];
    int n = snprintf(head, sizeof head, "%s %s?%s\n", r->route->method, r->route->pattern, q.buf);
    /* the path's ids belong to the request too */
    int np = 0;
    for (const char *p = r->route->pattern; *p; p++)
        np += *p == '{';
    for (int i = 0; i < np && i < API__MAX_PARAMS && n > 0 && (size_t)n < sizeof head; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, "%s/", r->params[i]);
    size_t hl = n > 0 && (size_t)n < sizeof head ? (size_t)n : strlen(head);
    unsigned char d1[API__SHA256_LEN], d2[API__SHA256_LEN], both[2 * API__SHA256_LEN];
    api__sha256(head, hl, d1);
    api__sha256(r->body ? r->body : "", r->body ? r->len : 0, d2);
    memcpy(both, d1, sizeof d1);
    memcpy(both + sizeof d1, d2, sizeof d2);
    api__sha256(both, sizeof both, d1);
    for (int i = 0; i < API__SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d1[i]);
}

static enum MHD_Result replay(struct MHD_Connection *c, json_t *rep)
{
    unsigned status = (unsigned)json_integer_value(json_object_get(rep, "status"));
    const char *ctype = json_string_value(json_object_get(rep, "content_type"));
    const char *body = json_string_value(json_object_get(rep, "body"));
    size_t len = json_string_length(json_object_get(rep, "body"));
    char *copy = malloc(len + 1);
    if (!copy)
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    memcpy(copy, body ? body : "", len);
    copy[len] = 0;
    if (status == MHD_HTTP_NO_CONTENT) {
        free(copy);
        return api__reply_empty(c, status);
    }
    return api__reply_text(c, status, ctype && ctype[0] ? ctype : "application/json", copy);
}

/* Reserves the key or answers: *done = 1 when a reply was queued. */
static enum MHD_Result idem_begin(struct MHD_Connection *c, api__req *r, const char *key,
                                  int *done)
{
    *done = 1;
    size_t kl = strlen(key);
    int ok = kl >= 1 && kl <= MAX_KEY;
    for (size_t i = 0; ok && i < kl; i++)
        ok = key[i] > 0x20 && key[i] < 0x7f;
    if (!ok)
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", "Idempotency-Key",
                                "'Idempotency-Key' must be 1 to %d printable ASCII characters "
                                "without spaces",
                                MAX_KEY);
    char fp[65];
    fingerprint(c, r, fp);
    json_t *rep = NULL;
    svc_error e = {0};
    int rc = svc_idem_begin(r->srv->svc, key, fp, &rep, &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    if (rep) {
        enum MHD_Result mr = replay(c, rep);
        json_decref(rep);
        return mr;
    }
    snprintf(r->idem_key, sizeof r->idem_key, "%s", key);
    *done = 0;
    return MHD_YES;
}

enum MHD_Result api__idem_early(struct MHD_Connection *c, api__req *r, int *done)
{
    *done = 0;
    if (!(r->route->flags & API__CREATES) || r->route->body != BODY_CSV)
        return MHD_YES;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    return key ? idem_begin(c, r, key, done) : MHD_YES;
}

void api__idem_unfinished(api__req *r)
{
    if (r->idem_key[0])
        svc_idem_abort(r->srv->svc, r->idem_key);
    r->idem_key[0] = 0;
}

enum MHD_Result api__run_handler(struct MHD_Connection *c, api__req *r)
{
    if (!r->idem_key[0] && (r->route->flags & API__CREATES)) {
        /* JSON bodies are part of the fingerprint: reserve now, at their end. */
        const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
        int done = 0;
        enum MHD_Result br = key ? idem_begin(c, r, key, &done) : MHD_YES;
        if (done)
            return br;
    }
    if (!r->idem_key[0])
        return r->route->fn(c, r);
    enum MHD_Result mr = r->route->fn(c, r);
    if (r->status >= 200 && r->status < 300 && r->reply_body)
        (void)svc_idem_finish(r->srv->svc, r->idem_key, (int)r->status, r->reply_ctype,
                              r->reply_body, r->reply_len);
    else
        svc_idem_abort(r->srv->svc, r->idem_key);
    r->idem_key[0] = 0;
    return mr;
}
