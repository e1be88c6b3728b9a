/*
 * api/api_auth.c — bearer tokens.
 *
 * The token file holds one token per line, or "sha256:HEX" (64 hex digits,
 * the SHA-256 of a token) so the file need not hold the secret itself;
 * blank lines and lines starting with # are ignored. Every accepted token is
 * kept only as its SHA-256; a presented token is hashed once and compared
 * with each digest in constant time (every byte of every digest is looked
 * at, whatever matches), so neither a token's content nor its length leaks
 * through timing. Tokens are never logged, and error messages about the
 * file name the line, never its text.
 *
 * SHA-256 comes from nettle (already on every system that has
 * libmicrohttpd's TLS stack, GnuTLS): no hand-written crypto.
 */
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"

void api__sha256(const void *data, size_t len, unsigned char out[API__SHA256_LEN])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

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

static int parse_digest(const char *hex, unsigned char out[API__SHA256_LEN])
{
    if (strlen(hex) != 2 * API__SHA256_LEN)
        return -1;
    for (int i = 0; i < API__SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}

int api__load_tokens(struct api_server *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0, rc = -1;
    if (!f) {
        snprintf(err, errlen, "cannot read token file %s", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        unsigned char(*grown)[API__SHA256_LEN] =
            realloc(a->tokens, (a->n_tokens + 1) * sizeof *grown);
        if (!grown) {
            snprintf(err, errlen, "out of memory reading tokens");
            goto done;
        }
        a->tokens = grown;
        if (!strncmp(line, "sha256:", 7)) {
            if (parse_digest(line + 7, a->tokens[a->n_tokens]) != 0) {
                snprintf(err, errlen,
                         "token file %s line %d: 'sha256:' must be followed by 64 hex digits",
                         path, lineno);
                goto done;
            }
        } else {
            api__sha256(line, n, a->tokens[a->n_tokens]);
        }
        a->n_tokens++;
    }
    if (a->n_tokens == 0) {
        snprintf(err, errlen, "token file %s holds no token", path);
        goto done;
    }
    rc = 0;
done:
    memset(line, 0, sizeof line);
    fclose(f);
    return rc;
}

void api__free_tokens(struct api_server *a)
{
    if (a->tokens)
        memset(a->tokens, 0, a->n_tokens * sizeof *a->tokens);
    free(a->tokens);
    a->tokens = NULL;
    a->n_tokens = 0;
}

int api__authorized(struct api_server *a, struct MHD_Connection *c)
{
    if (a->n_tokens == 0)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 /* RFC 7235: the scheme is case-insensitive */ || !h[7])
        return 0;
    unsigned char d[API__SHA256_LEN];
    api__sha256(h + 7, strlen(h + 7), d);
    unsigned ok = 0;
    for (size_t i = 0; i < a->n_tokens; i++) {
        unsigned char diff = 0;
        for (int k = 0; k < API__SHA256_LEN; k++)
            diff |= (unsigned char)(a->tokens[i][k] ^ d[k]);
        ok |= (unsigned)(diff == 0);
    }
    return ok != 0;
}
