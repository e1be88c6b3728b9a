/*
 * client/http.c — the libcurl wrapper (see http.h for the contract).
 *
 * One easy handle per run, reset before each request so the connection is
 * kept between requests (job watch polls twice a second). Bodies are either
 * in memory (JSON) or streamed from a FILE* through CURLOPT_READFUNCTION with
 * the size announced up front, so an upload never sits whole in memory. A
 * 2xx answer can likewise stream to a FILE* (checkpoint download): the write
 * callback checks the status it belongs to, so an error body never lands in
 * the output file. Every failure leaves through report_*(): one line on
 * stderr, one exit code.
 */
#include "client/http.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/out.h"

#define MAX_BODY ((size_t)1 << 30) /* refuse answers above 1 GiB in memory */
#define CONNECT_TIMEOUT_S 10L

int cli_buf_append(cli_buf *b, const void *p, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cli_buf_puts(cli_buf *b, const char *s)
{
    return cli_buf_append(b, s, strlen(s));
}

void cli_buf_free(cli_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void cli_resp_free(cli_resp *resp)
{
    cli_buf_free(&resp->body);
    json_decref(resp->json);
    resp->json = NULL;
}

/* State shared with the curl callbacks during one perform. */
typedef struct xfer {
    CURL *h;
    cli_resp *resp;
    FILE *sink;
    FILE *upload;
    const cli_req *req;
    long long uploaded;
    int stopped;    /* on_data asked to end the transfer */
    int sink_errno; /* a write to sink failed */
    int read_errno; /* a read of upload failed */
    int too_large;
    int oom;
} xfer;

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (x->req->on_data) {
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            x->resp->sunk += (long long)n;
            if (x->req->on_data(x->req->data_ud, p, n)) {
                x->stopped = 1;
                return 0;
            }
            return n;
        }
    }
    if (x->sink) {
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            if (fwrite(p, 1, n, x->sink) != n) {
                x->sink_errno = errno ? errno : EIO;
                return 0;
            }
            x->resp->sunk += (long long)n;
            return n;
        }
    }
    if (x->resp->body.len + n > MAX_BODY) {
        x->too_large = 1;
        return 0;
    }
    if (cli_buf_append(&x->resp->body, p, n)) {
        x->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = fread(p, 1, size * nmemb, x->upload);
    if (n == 0 && ferror(x->upload)) {
        x->read_errno = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    x->uploaded += (long long)n;
    return n;
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer *x = ud;
    x->req->on_progress(x->req->progress_ud, (long long)dlnow, (long long)dltotal,
                        (long long)ulnow, (long long)ultotal);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A transport failure (no HTTP answer) → printed line + exit code. */
static int report_curl(const cli_ctx *ctx, CURLcode cc, const char *errbuf, const xfer *x)
{
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    char clean[CURL_ERROR_SIZE + 8];
    cli_out_clean(clean, sizeof clean, detail);

    if (x->sink_errno) {
        cli_err("cannot write the download: %s", strerror(x->sink_errno));
        return CLI_EXIT_USAGE;
    }
    if (x->read_errno) {
        cli_err("cannot read the upload: %s", strerror(x->read_errno));
        return CLI_EXIT_USAGE;
    }
    if (x->oom) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    if (x->too_large) {
        cli_err("the server's answer is larger than %zu bytes", MAX_BODY);
        return CLI_EXIT_SERVER;
    }
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        if (ctx->wait_s > 0)
            cli_err("cannot connect to %s (kept trying for %g s): %s", ctx->url, ctx->wait_s,
                    clean);
        else
            cli_err("cannot connect to %s: %s", ctx->url, clean);
        return CLI_EXIT_CONNECT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        cli_err("bad server URL %s: %s", ctx->url, clean);
        return CLI_EXIT_USAGE;
    case CURLE_OUT_OF_MEMORY:
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    default:
        cli_err("talking to %s: %s", ctx->url, clean);
        return CLI_EXIT_SERVER;
    }
}

/* A 4xx/5xx answer → printed line (from {"error":{...}} when there is one)
 * + exit code. With --json the body itself also goes to stdout. */
static int report_status(const cli_ctx *ctx, const cli_resp *resp)
{
    int rc = (resp->status >= 400 && resp->status < 500) ? CLI_EXIT_REFUSED : CLI_EXIT_SERVER;

    if (ctx->json && resp->body.len)
        cli_out_raw(&resp->body);

    json_t *root = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *field = json_string_value(json_object_get(err, "field"));
    char cmsg[1024], cfield[256];

    if (msg && *msg) {
        cli_out_clean(cmsg, sizeof cmsg, msg);
        if (field && *field) {
            cli_out_clean(cfield, sizeof cfield, field);
            cli_err("%s (field: %s)", cmsg, cfield);
        } else {
            cli_err("%s", cmsg);
        }
    } else if (code && *code) {
        cli_out_clean(cmsg, sizeof cmsg, code);
        cli_err("server answered HTTP %ld: %s", resp->status, cmsg);
    } else if (resp->status >= 200 && resp->status < 400) {
        cli_err("unexpected HTTP %ld from the server", resp->status);
        rc = CLI_EXIT_SERVER;
    } else {
        cli_err("server answered HTTP %ld", resp->status);
    }
    json_decref(root);
    return rc;
}

int cli_http(cli_ctx *ctx, const cli_req *req, cli_resp *resp)
{
    const char *method = req->method ? req->method : "GET";
    struct curl_slist *hdrs = NULL, *h;
    char *url = NULL, *auth = NULL;
    char ct[128], accept[128], errbuf[CURL_ERROR_SIZE];
    xfer x;
    int rc = CLI_EXIT_USAGE;

    memset(resp, 0, sizeof *resp);
    memset(&x, 0, sizeof x);
    x.h = ctx->curl;
    x.resp = resp;
    x.sink = req->sink;
    x.upload = req->upload;
    x.req = req;

    size_t ulen = strlen(ctx->url) + strlen(req->path) + (req->query ? strlen(req->query) : 0) + 2;
    url = malloc(ulen);
    if (!url)
        goto oom;
    snprintf(url, ulen, "%s%s%s%s", ctx->url, req->path, req->query && *req->query ? "?" : "",
             req->query && *req->query ? req->query : "");

    snprintf(accept, sizeof accept, "Accept: %s", req->accept ? req->accept : "application/json");
    if (!(h = curl_slist_append(hdrs, accept)))
        goto oom;
    hdrs = h;
    if (req->content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", req->content_type);
        if (!(h = curl_slist_append(hdrs, ct)))
            goto oom;
        hdrs = h;
    }
    if (req->upload && req->upload_size < 0) {
        if (!(h = curl_slist_append(hdrs, "Transfer-Encoding: chunked")))
            goto oom;
        hdrs = h;
    }
    for (size_t k = 0; req->headers && req->headers[k]; k++) {
        if (!(h = curl_slist_append(hdrs, req->headers[k])))
            goto oom;
        hdrs = h;
    }
    if (ctx->token) {
        size_t alen = strlen(ctx->token) + sizeof "Authorization: Bearer ";
        if (!(auth = malloc(alen)))
            goto oom;
        snprintf(auth, alen, "Authorization: Bearer %s", ctx->token);
        if (!(h = curl_slist_append(hdrs, auth)))
            goto oom;
        hdrs = h;
    }

    double deadline = now_s() + ctx->wait_s;
    double backoff = 0.1;
    CURLcode cc;
    for (;;) {
        CURL *c = ctx->curl;
        curl_easy_reset(c);
        errbuf[0] = '\0';
        cli_buf_free(&resp->body);
        resp->sunk = 0;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "mtlctl/" MTLD_VERSION);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        if (req->on_progress) {
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
        }
        if (req->low_speed_s > 0) {
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->low_speed_s);
        }
        if (req->upload) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &x);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->upload_size);
        } else if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(req->body ? req->body_len : 0));
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

        cc = curl_easy_perform(c);
        if (cc == CURLE_WRITE_ERROR && x.stopped)
            cc = CURLE_OK;
        if (cc != CURLE_COULDNT_CONNECT || x.uploaded > 0 || resp->sunk > 0 || req->no_retry)
            break;
        double left = deadline - now_s();
        if (left <= 0)
            break;
        if (req->upload && fseeko(req->upload, 0, SEEK_SET) != 0)
            break;
        sleep_s(backoff < left ? backoff : left);
        backoff = backoff * 2 > 2.0 ? 2.0 : backoff * 2;
    }

    if (cc != CURLE_OK) {
        rc = report_curl(ctx, cc, errbuf, &x);
        goto out;
    }
    curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (resp->status < 200 || resp->status >= 300) {
        rc = report_status(ctx, resp);
        goto out;
    }
    if (req->want_json && resp->body.len) {
        json_error_t jerr;
        resp->json = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
        if (!resp->json) {
            char cmsg[200];
            cli_out_clean(cmsg, sizeof cmsg, jerr.text);
            cli_err("the server sent invalid JSON: %s", cmsg);
            rc = CLI_EXIT_SERVER;
            goto out;
        }
    }
    rc = CLI_EXIT_OK;
    goto out;

oom:
    cli_err("out of memory");
    rc = CLI_EXIT_USAGE;
out:
    /* The handle keeps pointers to these until the next reset. */
    curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(ctx->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    free(auth);
    free(url);
    return rc;
}

int cli_http_json(cli_ctx *ctx, const char *method, const char *path, const char *query,
                  const json_t *body, cli_resp *resp)
{
    cli_req req = {.method = method, .path = path, .query = query, .want_json = 1};
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text) {
            memset(resp, 0, sizeof *resp);
            cli_err("out of memory");
            return CLI_EXIT_USAGE;
        }
        req.body = text;
        req.body_len = strlen(text);
        req.content_type = "application/json";
    }
    int rc = cli_http(ctx, &req, resp);
    free(text);
    return rc;
}

char *cli_http_id_path(cli_ctx *ctx, const char *collection, const char *id, const char *suffix)
{
    char *esc = curl_easy_escape(ctx->curl, id, 0);
    if (!esc)
        return NULL;
    if (!suffix)
        suffix = "";
    size_t n = strlen("/v1/") + strlen(collection) + 1 + strlen(esc) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "/v1/%s/%s%s", collection, esc, suffix);
    curl_free(esc);
    return p;
}

int cli_http_id(cli_ctx *ctx, const char *method, const char *collection, const char *id,
                const char *suffix, const char *query, cli_resp *resp)
{
    char *path = cli_http_id_path(ctx, collection, id, suffix);
    if (!path) {
        memset(resp, 0, sizeof *resp);
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    int rc = cli_http_json(ctx, method, path, query, NULL, resp);
    free(path);
    return rc;
}

int cli_query_add(cli_ctx *ctx, cli_buf *q, const char *key, const char *value)
{
    char *esc = curl_easy_escape(ctx->curl, value, 0);
    if (!esc)
        return -1;
    int rc = 0;
    if ((q->len && cli_buf_puts(q, "&")) || cli_buf_puts(q, key) || cli_buf_puts(q, "=") ||
        cli_buf_puts(q, esc))
        rc = -1;
    curl_free(esc);
    return rc;
}
