/*
 * tests/unit/api/test_csv_gzip.c — the streaming gzip decoder: round trips
 * in any chunking, several members, the decompressed-size limit (a zip
 * bomb stops early), truncated, corrupt and non-gzip input, and a callback
 * that stops the decoding.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "api/csv_gzip.h"
#include "test_csv.h"

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t stop_after; /* return 9 once len passes this (0: never) */
    size_t max_piece;
} out_t;

static int collect(void *ctx, const char *p, size_t n)
{
    out_t *o = ctx;
    ck_assert(n > 0 && n <= 65536);
    if (n > o->max_piece)
        o->max_piece = n;
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->buf = realloc(o->buf, o->cap);
        ck_assert_ptr_nonnull(o->buf);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return o->stop_after && o->len > o->stop_after ? 9 : 0;
}

/* gzip (not zlib) compression of in. */
static unsigned char *gz(const void *in, size_t n, size_t *out_len)
{
    z_stream z;
    size_t cap = compressBound((uLong)n) + 64;
    unsigned char *out = malloc(cap);
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static int decode(const unsigned char *in, size_t n, size_t chunk, size_t max_out, out_t *o)
{
    csv_gunzip *g = csv_gunzip_new(max_out);
    size_t off = 0;
    int rc = 0;
    ck_assert_ptr_nonnull(g);
    memset(o, 0, sizeof *o);
    while (off < n && rc == 0) {
        size_t k = n - off < chunk ? n - off : chunk;
        rc = csv_gunzip_feed(g, in + off, k, collect, o);
        off += k;
    }
    if (rc == 0)
        rc = csv_gunzip_finish(g);
    if (rc == 0)
        ck_assert_uint_eq(csv_gunzip_total(g), o->len);
    csv_gunzip_free(g);
    return rc;
}

static char *text(size_t n)
{
    char *t = malloc(n);
    size_t i;
    unsigned x = 7;
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        t[i] = (x >> 16) % 5 == 0 ? '\n' : (char)('0' + (x >> 20) % 10);
    }
    return t;
}

START_TEST(round_trip_any_chunking)
{
    static const size_t chunks[] = {1, 7, 4096, 1 << 20};
    size_t n = 300000, zn, k;
    char *t = text(n);
    unsigned char *z = gz(t, n, &zn);
    out_t o;

    for (k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        ck_assert_int_eq(decode(z, zn, chunks[k], n, &o), 0);
        ck_assert_uint_eq(o.len, n);
        ck_assert(memcmp(o.buf, t, n) == 0);
        free(o.buf);
    }
    free(z);
    free(t);
}
END_TEST

START_TEST(members_concatenate)
{
    size_t za, zb;
    unsigned char *a = gz("a,b\n1,2\n", 8, &za), *b = gz("3,4\n", 4, &zb);
    unsigned char *both = malloc(za + zb);
    out_t o;

    memcpy(both, a, za);
    memcpy(both + za, b, zb);
    ck_assert_int_eq(decode(both, za + zb, 3, 1000, &o), 0);
    ck_assert_uint_eq(o.len, 12);
    ck_assert(memcmp(o.buf, "a,b\n1,2\n3,4\n", 12) == 0);
    free(o.buf);
    /* garbage after a member is not a member */
    both[za] = 'x';
    ck_assert_int_eq(decode(both, za + zb, 5, 1000, &o), CSV_GZ_EDATA);
    free(o.buf);
    free(both);
    free(a);
    free(b);
}
END_TEST

START_TEST(bomb_stops_at_the_limit)
{
    size_t n = 50u << 20, zn; /* 50 MiB of zeros: ~50 KiB compressed */
    char *zeros = calloc(1, n);
    unsigned char *z = gz(zeros, n, &zn);
    out_t o;

    free(zeros);
    ck_assert_uint_lt(zn, 200000);
    ck_assert_int_eq(decode(z, zn, 65536, 1u << 20, &o), CSV_GZ_ELIMIT);
    ck_assert_uint_le(o.len, 1u << 20); /* never handed on past the limit */
    ck_assert_uint_le(o.max_piece, 65536);
    free(o.buf);
    free(z);
}
END_TEST

START_TEST(bad_input)
{
    size_t zn;
    unsigned char *z = gz("hello,world\n", 12, &zn);
    out_t o;
    csv_gunzip *g;

    /* truncated anywhere: header, body, trailer */
    ck_assert_int_eq(decode(z, 5, 1, 100, &o), CSV_GZ_ETRUNC);
    free(o.buf);
    ck_assert_int_eq(decode(z, zn - 3, 2, 100, &o), CSV_GZ_ETRUNC);
    free(o.buf);
    ck_assert_int_eq(decode(z, 0, 1, 100, &o), CSV_GZ_ETRUNC);
    free(o.buf);
    /* a bad CRC */
    z[zn - 6] ^= 0x55;
    ck_assert_int_eq(decode(z, zn, 64, 100, &o), CSV_GZ_EDATA);
    free(o.buf);
    /* plain text is not gzip */
    ck_assert_int_eq(decode((const unsigned char *)"a,b\n1,2\n", 8, 64, 100, &o), CSV_GZ_EDATA);
    free(o.buf);
    /* errors are sticky */
    g = csv_gunzip_new(100);
    ck_assert_int_eq(csv_gunzip_feed(g, "nope", 4, collect, &o), CSV_GZ_EDATA);
    ck_assert_int_eq(csv_gunzip_feed(g, z, zn, collect, &o), CSV_GZ_EDATA);
    ck_assert_int_eq(csv_gunzip_finish(g), CSV_GZ_EDATA);
    csv_gunzip_free(g);
    csv_gunzip_free(NULL);
    ck_assert_ptr_null(csv_gunzip_new(0));
    free(z);
}
END_TEST

START_TEST(callback_stops)
{
    size_t n = 200000, zn;
    char *t = text(n);
    unsigned char *z = gz(t, n, &zn);
    csv_gunzip *g = csv_gunzip_new(n);
    out_t o;

    memset(&o, 0, sizeof o);
    o.stop_after = 1000;
    ck_assert_int_eq(csv_gunzip_feed(g, z, zn, collect, &o), 9);
    ck_assert_uint_lt(o.len, n);
    csv_gunzip_free(g);
    free(o.buf);
    free(z);
    free(t);
}
END_TEST

Suite *csv_gzip_suite(void)
{
    Suite *s = suite_create("csv_gzip");
    TCase *tc = tcase_create("gzip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip_any_chunking);
    tcase_add_test(tc, members_concatenate);
    tcase_add_test(tc, bomb_stops_at_the_limit);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, callback_stops);
    suite_add_tcase(s, tc);
    return s;
}
