/*
 * api/csv_gzip.c — gzip bodies decoded as they stream (see csv_gzip.h).
 *
 * One z_stream in gzip-only mode (windowBits 15 + 16: a zlib or raw deflate
 * body is refused rather than guessed at) and one 64 KiB output buffer: the
 * memory is zlib's ~44 KiB state plus that buffer, whatever the body size.
 * The output limit is checked before each piece is handed on, so a bomb is
 * stopped after at most max_out bytes of work.
 */
#include "api/csv_gzip.h"

#include <stdlib.h>
#include <zlib.h>

#define OUT_SIZE 65536

struct csv_gunzip {
    z_stream z;
    size_t max_out, total;
    int in_member;   /* inside a member (its header may be partly read) */
    int members;     /* members completed */
    int failed;
    unsigned char out[OUT_SIZE];
};

csv_gunzip *csv_gunzip_new(size_t max_out)
{
    csv_gunzip *g;
    if (max_out == 0)
        return NULL;
    g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (inflateInit2(&g->z, 15 + 16) != Z_OK) {
        free(g);
        return NULL;
    }
    g->max_out = max_out;
    return g;
}

void csv_gunzip_free(csv_gunzip *g)
{
    if (!g)
        return;
    inflateEnd(&g->z);
    free(g);
}

size_t csv_gunzip_total(const csv_gunzip *g)
{
    return g ? g->total : 0;
}

static int fail(csv_gunzip *g, int rc)
{
    g->failed = rc;
    return rc;
}

int csv_gunzip_feed(csv_gunzip *g, const void *in, size_t n, csv_bytes_fn fn, void *ctx)
{
    const unsigned char *p = in;

    if (g->failed)
        return g->failed;
    while (n > 0) {
        /* avail_in is a uInt: feed at most 1 GiB at a time */
        uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
        g->z.next_in = (unsigned char *)p;
        g->z.avail_in = step;
        g->in_member = 1;
        for (;;) {
            int zrc;
            size_t got;
            g->z.next_out = g->out;
            g->z.avail_out = OUT_SIZE;
            zrc = inflate(&g->z, Z_NO_FLUSH);
            if (zrc == Z_MEM_ERROR)
                return fail(g, CSV_GZ_ENOMEM);
            if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
                return fail(g, CSV_GZ_EDATA);
            got = OUT_SIZE - g->z.avail_out;
            if (got > g->max_out - g->total)
                return fail(g, CSV_GZ_ELIMIT);
            g->total += got;
            if (got) {
                int rc = fn(ctx, (const char *)g->out, got);
                if (rc)
                    return fail(g, rc);
            }
            if (zrc == Z_STREAM_END) { /* another member may follow */
                g->members++;
                g->in_member = 0;
                if (inflateReset(&g->z) != Z_OK)
                    return fail(g, CSV_GZ_EDATA);
                if (g->z.avail_in == 0)
                    break;
                g->in_member = 1;
                continue;
            }
            /* all input taken and the output drained (a full buffer may
             * mean more is pending), or no progress possible */
            if ((g->z.avail_in == 0 && g->z.avail_out != 0) || (zrc == Z_BUF_ERROR && got == 0))
                break;
        }
        p += step;
        n -= step;
    }
    return 0;
}

int csv_gunzip_finish(csv_gunzip *g)
{
    if (g->failed)
        return g->failed;
    if (g->in_member || g->members == 0)
        return fail(g, CSV_GZ_ETRUNC);
    return 0;
}
