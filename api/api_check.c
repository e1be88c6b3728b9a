/*
 * api/api_check.c — what a request's path ids and query parameters must be,
 * judged at its headers, before any lookup (issue 6):
 *
 *  - an id in a URL is canonical: a positive decimal integer without sign,
 *    blanks or leading zeros that fits int64 ("+1", "01", " 1", "1e0" and
 *    twenty digits are no ids). A dataset or task may also be named
 *    (names start with a letter); a checkpoint also as latest or best.
 *    Anything else is 404 with field naming the segment ("id", "which"),
 *    as an id that exists nowhere is;
 *  - every query parameter is one the route takes (its allow-list in the
 *    route table), given once, with a value: otherwise 400 naming it.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"

/* 1 if s is a canonical id: [1-9][0-9]* and at most INT64_MAX. */
static int canonical_id(const char *s)
{
    static const char max[] = "9223372036854775807";
    size_t n = strlen(s);
    if (n == 0 || n > sizeof max - 1 || s[0] < '1' || s[0] > '9')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n < sizeof max - 1 || strcmp(s, max) <= 0; /* same length: digit order */
}

static int is_letter(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* The placeholder name of the k-th {...} of pattern ("id", "which") and the
 * thing it names, from the segment before it ("jobs" -> "job"). */
static void placeholder(const char *pattern, int k, char *name, size_t nn, char *noun, size_t on)
{
    const char *p = pattern;
    name[0] = noun[0] = 0;
    for (int i = 0; (p = strchr(p, '{')) != NULL; i++, p++) {
        if (i != k)
            continue;
        const char *close = strchr(p, '}');
        snprintf(name, nn, "%.*s", close ? (int)(close - p - 1) : 0, p + 1);
        const char *seg = p - 1; /* the '/' before the placeholder */
        const char *start = seg;
        while (start > pattern && start[-1] != '/')
            start--;
        int len = (int)(seg - start);
        if (len > 0 && start[len - 1] == 's')
            len--; /* "jobs" names a job */
        snprintf(noun, on, "%.*s", len, start);
        return;
    }
}

enum MHD_Result api__check_ids(struct MHD_Connection *c, api__req *r, int *done)
{
    *done = 0;
    for (int k = 0; k < API__MAX_PARAMS; k++) {
        char name[16], noun[32];
        placeholder(r->route->pattern, k, name, sizeof name, noun, sizeof noun);
        if (!name[0])
            break;
        const char *v = r->params[k];
        if (canonical_id(v))
            continue;
        if (!strcmp(name, "which")) {
            if (!strcmp(v, "latest") || !strcmp(v, "best"))
                continue;
            *done = 1; /* a GET: no body to skip */
            return api__reply_error(c, MHD_HTTP_NOT_FOUND, "not_found", name,
                                    "no %s '%.60s': use latest, best or a %s id (a positive "
                                    "decimal integer without sign or leading zeros)",
                                    noun, v, noun);
        }
        if ((r->route->flags & API__BY_NAME) && is_letter(v[0]))
            continue; /* a name: looked up as one */
        *done = 1;
        if (r->route->body != BODY_NONE)
            r->close_after = 1; /* refused before its body: read none of it */
        if (r->route->flags & API__BY_NAME)
            return api__reply_error(c, MHD_HTTP_NOT_FOUND, "not_found", name,
                                    "no %s '%.60s': a %s is named by its id (a positive "
                                    "decimal integer without sign or leading zeros, at most "
                                    "9223372036854775807) or its name (starting with a letter)",
                                    noun, v, noun);
        return api__reply_error(c, MHD_HTTP_NOT_FOUND, "not_found", name,
                                "no %s '%.60s': %s ids are positive decimal integers without "
                                "sign or leading zeros, at most 9223372036854775807",
                                noun, v, noun);
    }
    return MHD_YES;
}

/* The query parameters seen so far, against the route's allow-list. */
typedef struct {
    const char *allowed; /* "limit offset state" */
    unsigned seen;       /* bit i: the i-th allowed name was given */
    int fault;           /* 0 none, 1 unknown, 2 given twice, 3 without '=' and a value
                            ("?limit" was taken as no limit given) */
    char bad[64];        /* the first parameter at fault */
} query_scan;

/* Index of key in the space-separated list, or -1. */
static int allowed_index(const char *list, const char *key)
{
    size_t kl = strlen(key);
    int i = 0;
    for (const char *p = list; *p; i++) {
        size_t n = strcspn(p, " ");
        if (n == kl && kl > 0 && !strncmp(p, key, n))
            return i;
        p += n;
        p += *p == ' ';
    }
    return -1;
}

static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    query_scan *q = cls;
    if ((!key || !key[0]) && (!value || !value[0]))
        return MHD_YES; /* an empty piece ("?limit=5&", "?&&") says nothing */
    int i = allowed_index(q->allowed, key ? key : "");
    if (i >= 0 && i < 32 && !(q->seen & (1u << i)) && value) {
        q->seen |= 1u << i;
        return MHD_YES;
    }
    snprintf(q->bad, sizeof q->bad, "%s", key ? key : "");
    q->fault = i < 0 ? 1 : !value ? 3 : 2;
    return MHD_NO; /* the first fault is the one said */
}

enum MHD_Result api__check_query(struct MHD_Connection *c, api__req *r, int *done)
{
    query_scan q = {r->route->query ? r->route->query : "", 0, 0, {0}};
    *done = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, scan_arg, &q);
    if (!q.fault)
        return MHD_YES;
    *done = 1;
    if (r->route->body != BODY_NONE)
        r->close_after = 1; /* refused before its body: read none of it */
    const char *field = q.bad[0] ? q.bad : NULL;
    if (q.fault == 3)
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", field,
                                "the query parameter '%s' has no value (%s=VALUE)", q.bad, q.bad);
    if (q.fault == 2)
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", field,
                                "the query parameter '%s' is given more than once", q.bad);
    if (!q.allowed[0])
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", field,
                                "unknown query parameter '%s': %s %s takes none", q.bad,
                                r->route->method, r->route->pattern);
    char list[128];
    size_t n = 0;
    for (const char *p = q.allowed; *p && n + 3 < sizeof list; p++) {
        if (*p == ' ')
            list[n++] = ',';
        list[n++] = *p;
    }
    list[n] = 0;
    return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", field,
                            "unknown query parameter '%s' (%s %s takes %s)", q.bad,
                            r->route->method, r->route->pattern, list);
}
