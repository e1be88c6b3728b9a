/*
 * api/csv_reader.h — a push parser for CSV (RFC 4180 and the untidy files
 * real people have), a pure function of the bytes it is fed: no I/O, no
 * globals, bounded memory. Bytes arrive in chunks of any size (a quoted field
 * or a CRLF may straddle two chunks); each complete record is handed to a
 * callback. It is the first thing untrusted upload bytes touch, so it is
 * built to be fuzzed.
 *
 * Accepted: a UTF-8 BOM at the very start; CRLF, LF or lone CR line ends;
 * quoted fields containing the delimiter, doubled quotes ("") and line
 * breaks; surrounding spaces/tabs of UNQUOTED fields trimmed (spaces around a
 * quoted field are dropped too); blank lines (skipped, so trailing blank
 * lines are fine).
 * Errors (with 1-based physical line and 1-based column = field number):
 * invalid UTF-8, an unterminated quote at end of input, text after a closing
 * quote (`"ab"c`), a field longer than max_field bytes, more than max_fields
 * fields in a record, a NUL byte.
 * A quote inside an unquoted field (`ab"c`) is kept as text. max_field counts
 * the bytes of a field's value as stored (quotes unescaped, leading blanks of
 * an unquoted field not counted, trailing ones counted until trimmed); an
 * optional max_record caps a whole record the same way.
 */
#ifndef CSV_READER_H
#define CSV_READER_H

#include <stddef.h>

typedef struct {
    long line;          /* 1-based physical line of the problem (0 if none) */
    long column;        /* 1-based field number (0 if not about one field) */
    char message[200];  /* human sentence, e.g. "unterminated quoted field" */
} csv_error;

/* Called once per record. fields[i] is NUL-terminated (lens[i] bytes, no
 * embedded NUL), valid only during the call. line = physical line where the
 * record started. Return 0 to go on; non-zero stops parsing: feed/finish then
 * return that value (the callback fills err itself if it wants to). */
typedef int (*csv_record_fn)(void *ctx, char *const *fields, const size_t *lens,
                             size_t n_fields, long line, csv_error *err);

typedef struct csv_reader csv_reader;

/* New reader; NULL on out of memory or a bad argument (delimiter other than
 * ',' ';' '\t', or a zero limit). delimiter: ',' ';' or '\t'. */
csv_reader *csv_reader_new(char delimiter, size_t max_field, size_t max_fields,
                           csv_record_fn fn, void *ctx);
void csv_reader_free(csv_reader *r); /* NULL is fine */

/* Caps a record's bytes (its fields' values plus one per field) at
 * max_record: a longer one is an error (CSV_RERR_RECORD_TOO_LONG) at the
 * line where it reaches the cap. Without it the bound is what max_field and
 * max_fields imply. Call before the first feed. */
void csv_reader_set_max_record(csv_reader *r, size_t max_record);

/* Feed the next chunk. 0 on success, -1 on a syntax error (err filled),
 * -2 out of memory, or the callback's non-zero value. After an error the
 * reader must not be fed again. */
int csv_reader_feed(csv_reader *r, const char *buf, size_t len, csv_error *err);
/* End of input: flushes the last record (which needs no final newline). */
int csv_reader_finish(csv_reader *r, csv_error *err);

/* Which syntax error made the last feed/finish return -1 (CSV_RERR_NONE if
 * none), so a caller can map e.g. a too-long field to its own limit error. */
typedef enum {
    CSV_RERR_NONE = 0,
    CSV_RERR_UTF8,            /* invalid or truncated UTF-8 */
    CSV_RERR_NUL,             /* a NUL byte */
    CSV_RERR_UNTERMINATED,    /* quoted field still open at end of input */
    CSV_RERR_AFTER_QUOTE,     /* text after a closing quote */
    CSV_RERR_FIELD_TOO_LONG,  /* a field longer than max_field bytes */
    CSV_RERR_TOO_MANY_FIELDS, /* more than max_fields fields in a record */
    CSV_RERR_RECORD_TOO_LONG  /* a record longer than max_record bytes */
} csv_reader_errkind;
csv_reader_errkind csv_reader_error_kind(const csv_reader *r);

#endif
