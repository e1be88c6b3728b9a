/*
 * api/api_auth.c — bearer tokens. The token file holds one token per line
 * (blank lines and lines starting with # ignored). Comparison is constant
 * time in the token's content so a timing probe learns nothing; tokens are
 * never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

int api__load_tokens(struct api_server *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f) {
        snprintf(err, errlen, "cannot read token file %s", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        char **grown = realloc(a->tokens, (a->n_tokens + 1) * sizeof *grown);
        if (!grown)
            goto oom;
        a->tokens = grown;
        if (!(a->tokens[a->n_tokens] = strdup(line)))
            goto oom;
        a->n_tokens++;
    }
    fclose(f);
    if (a->n_tokens == 0) {
        snprintf(err, errlen, "token file %s holds no token", path);
        return -1;
    }
    return 0;
oom:
    fclose(f);
    snprintf(err, errlen, "out of memory reading tokens");
    return -1;
}

void api__free_tokens(struct api_server *a)
{
    for (size_t i = 0; i < a->n_tokens; i++)
        free(a->tokens[i]);
    free(a->tokens);
    a->tokens = NULL;
    a->n_tokens = 0;
}

static int equal_ct(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return diff == 0 && blen > 0;
}

int api__authorized(struct api_server *a, struct MHD_Connection *c)
{
    if (a->n_tokens == 0)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *tok = h + 7;
    size_t tl = strlen(tok);
    int ok = 0;
    for (size_t i = 0; i < a->n_tokens; i++)
        ok |= equal_ct(a->tokens[i], strlen(a->tokens[i]), tok, tl);
    return ok;
}
