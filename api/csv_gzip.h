/*
 * api/csv_gzip.h — a push decoder for gzip request bodies
 * (Content-Encoding: gzip), built on zlib's streaming inflate. Compressed
 * bytes go in as they arrive, in chunks of any size; the decompressed bytes
 * come out through a callback in pieces of at most 64 KiB, so a body is never
 * held whole, compressed or not. A limit on the decompressed size stops zip
 * bombs: once the output would pass max_out, decoding fails at once.
 * Several gzip members one after another (as `cat a.gz b.gz`) are one
 * stream, as RFC 1952 says. Like the CSV parser, a pure function of the
 * bytes fed: no I/O, no globals; fuzzable.
 */
#ifndef CSV_GZIP_H
#define CSV_GZIP_H

#include <stddef.h>

typedef struct csv_gunzip csv_gunzip;

/* Receives decompressed bytes; non-zero stops decoding (feed returns it). */
typedef int (*csv_bytes_fn)(void *ctx, const char *buf, size_t len);

enum {
    CSV_GZ_OK = 0,
    CSV_GZ_EDATA = -1,  /* not gzip, corrupt, or a bad checksum */
    CSV_GZ_ELIMIT = -2, /* more than max_out bytes of output */
    CSV_GZ_ENOMEM = -3,
    CSV_GZ_ETRUNC = -4, /* finish: the stream stopped mid-member */
};

/* NULL on out of memory or max_out == 0. */
csv_gunzip *csv_gunzip_new(size_t max_out);
void csv_gunzip_free(csv_gunzip *g); /* NULL is fine */
/* Decodes n more bytes. Errors are sticky. */
int csv_gunzip_feed(csv_gunzip *g, const void *in, size_t n, csv_bytes_fn fn, void *ctx);
/* End of input: CSV_GZ_ETRUNC unless the last member was complete (an
 * empty body is no gzip stream either). */
int csv_gunzip_finish(csv_gunzip *g);
/* Decompressed bytes so far. */
size_t csv_gunzip_total(const csv_gunzip *g);

#endif
