/*
 * client/sse.c — the Server-Sent Events parser (see sse.h).
 *
 * Bytes are collected into a line buffer until an end of line; each line is
 * then processed as a field. The buffers grow as needed up to the line
 * limit, so a chunk boundary anywhere (even between CR and LF) is harmless.
 */
#include "client/sse.h"

#include <stdlib.h>
#include <string.h>

void cli_sse_init(cli_sse *s, cli_sse_cb cb, void *ud)
{
    memset(s, 0, sizeof *s);
    s->cb = cb;
    s->ud = ud;
}

void cli_sse_free(cli_sse *s)
{
    free(s->line);
    free(s->data);
    s->line = s->data = NULL;
    s->len = s->cap = s->dlen = s->dcap = 0;
}

const char *cli_sse_last_id(const cli_sse *s)
{
    return s->id;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    if (need > CLI_SSE_MAX_LINE + 2)
        return -1;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static void copy_field(char *dst, size_t n, const char *v, size_t vlen)
{
    if (vlen >= n)
        vlen = n - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
}

static int dispatch(cli_sse *s)
{
    int rc = 0;
    if (s->has_data) {
        cli_sse_event ev = {s->type[0] ? s->type : "message", s->data ? s->data : "", s->id};
        if (!s->data)
            ev.data = "";
        rc = s->cb(s->ud, &ev);
    }
    s->has_data = 0;
    s->dlen = 0;
    if (s->data)
        s->data[0] = '\0';
    s->type[0] = '\0';
    return rc;
}

/* One complete line (s->line, s->len bytes, NUL-terminated). */
static int process_line(cli_sse *s)
{
    const char *l = s->line ? s->line : "";
    size_t len = s->len;
    if (len == 0)
        return dispatch(s);
    if (l[0] == ':')
        return 0; /* comment: heartbeat */
    const char *colon = memchr(l, ':', len);
    size_t flen = colon ? (size_t)(colon - l) : len;
    const char *v = colon ? colon + 1 : l + len;
    size_t vlen = colon ? len - flen - 1 : 0;
    if (vlen && *v == ' ')
        v++, vlen--;

    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        size_t need = s->dlen + (s->has_data ? 1 : 0) + vlen + 1;
        if (grow(&s->data, &s->dcap, need))
            return -1;
        if (s->has_data)
            s->data[s->dlen++] = '\n';
        memcpy(s->data + s->dlen, v, vlen);
        s->dlen += vlen;
        s->data[s->dlen] = '\0';
        s->has_data = 1;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        copy_field(s->type, sizeof s->type, v, vlen);
    } else if (flen == 2 && memcmp(l, "id", 2) == 0) {
        if (!memchr(v, '\0', vlen))
            copy_field(s->id, sizeof s->id, v, vlen);
    }
    return 0; /* retry and unknown fields: ignored */
}

int cli_sse_feed(cli_sse *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n' && s->after_cr) {
            s->after_cr = 0;
            continue;
        }
        s->after_cr = 0;
        if (c == '\r' || c == '\n') {
            s->after_cr = c == '\r';
            if (grow(&s->line, &s->cap, s->len + 1))
                return -1;
            s->line[s->len] = '\0';
            int rc = process_line(s);
            s->len = 0;
            if (rc)
                return rc;
            continue;
        }
        if (s->len >= CLI_SSE_MAX_LINE || grow(&s->line, &s->cap, s->len + 2))
            return -1;
        s->line[s->len++] = c;
    }
    return 0;
}
