/* tests/integration/test_api_common.c — see test_api.h. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/integration/test_api.h"

typedef struct {
    char *buf;
    size_t len, cap;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

typedef struct {
    char *buf;
    size_t len, cap;
} hsink;

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    hsink *h = ud;
    size_t n = size * nmemb;
    if (h->buf && h->len + n + 1 < h->cap) {
        memcpy(h->buf + h->len, ptr, n);
        h->len += n;
        h->buf[h->len] = 0;
    }
    return n;
}

h_resp t_req(const mtld_proc *p, const char *method, const char *path, const char *ctype,
             const void *body, size_t len, const char *const *headers, char *hdrs,
             size_t hdrs_len)
{
    h_resp r;
    memset(&r, 0, sizeof r);
    char url[2048];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    sink s = {0};
    hsink hs = {hdrs, 0, hdrs_len};
    if (hdrs && hdrs_len)
        hdrs[0] = 0;
    struct curl_slist *hl = NULL;
    char cth[160];
    if (ctype) {
        snprintf(cth, sizeof cth, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, cth);
    }
    hl = curl_slist_append(hl, "Expect:");
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r.ctype, sizeof r.ctype, "%s", ct);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = s.buf ? s.buf : calloc(1, 1);
    r.len = s.len;
    return r;
}

int t_connect(const mtld_proc *p)
{
    const char *hp = strstr(p->url, "://");
    const char *colon = hp ? strrchr(hp + 3, ':') : NULL;
    if (!colon)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

size_t t_raw(const mtld_proc *p, const char *req, size_t len, char *out, size_t n,
             int timeout_s)
{
    size_t got = 0;
    out[0] = 0;
    int fd = t_connect(p);
    if (fd < 0)
        return 0;
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    while (got + 1 < n) {
        ssize_t r = recv(fd, out + got, n - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = 0;
        /* a complete reply with Content-Length is enough (keep-alive) */
        const char *end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "\r\nContent-Length: ");
        if (end && cl && cl < end &&
            got >= (size_t)(end + 4 - out) + (size_t)strtoul(cl + 18, NULL, 10))
            break;
    }
    close(fd);
    return got;
}

/* Splits a stream into events: blocks separated by a blank line, whose
 * lines are "id: ", "event: ", "data: " (comments and retry: skipped). */
static int parse_events(char *text, t_event *ev, int max)
{
    int n = 0;
    char *block = text;
    while (block && *block && n < max) {
        char *end = strstr(block, "\n\n");
        if (end)
            *end = 0;
        t_event cur;
        memset(&cur, 0, sizeof cur);
        char *save = NULL;
        for (char *line = strtok_r(block, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (!strncmp(line, "id: ", 4))
                cur.id = atoll(line + 4);
            else if (!strncmp(line, "event: ", 7))
                snprintf(cur.type, sizeof cur.type, "%s", line + 7);
            else if (!strncmp(line, "data: ", 6))
                snprintf(cur.data, sizeof cur.data, "%s", line + 6);
        }
        if (cur.type[0])
            ev[n++] = cur;
        block = end ? end + 2 : NULL;
    }
    return n;
}

int t_events(const mtld_proc *p, long long job, long long last_id, double timeout, t_event *ev,
             int max, long *status, int *ended)
{
    char url[512], lei[64];
    snprintf(url, sizeof url, "%s/v1/jobs/%lld/events", p->url, job);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    sink s = {0};
    struct curl_slist *hl = NULL;
    if (last_id >= 0) {
        snprintf(lei, sizeof lei, "Last-Event-ID: %lld", last_id);
        hl = curl_slist_append(hl, lei);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    CURLcode rc = curl_easy_perform(c);
    *ended = rc == CURLE_OK;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    int n = s.buf ? parse_events(s.buf, ev, max) : 0;
    free(s.buf);
    return n;
}
