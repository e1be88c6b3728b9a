/*
 * api/csv_reader.c — the CSV push parser: a byte-level state machine.
 *
 * Every piece of state lives in the reader, so a chunk may end anywhere: in
 * the middle of a field, between the CR and LF of a CRLF, between the two
 * quotes of a doubled quote, inside a multi-byte UTF-8 sequence or inside the
 * BOM. The current record is kept in one growable buffer (fields separated by
 * NUL), bounded by max_fields * (max_field + 1) bytes, plus per-field offsets.
 *
 * Speed: a 256-entry class table per reader tells which bytes are special in
 * an unquoted and in a quoted field. fast_fields() takes whole plain unquoted
 * fields (the bulk of real files) with the record state in locals: a tight
 * table scan to the delimiter, a copy, two stores. Everything else (quotes,
 * CR, non-ASCII, a field cut by the chunk end) goes through the per-byte
 * state switch, which still appends runs of ordinary bytes at once.
 *
 * UTF-8 is validated as it streams (Unicode Table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF); a sequence may straddle chunks.
 */
#include "api/csv_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_RECORD_START, /* between records: line ends are blank lines */
    ST_FIELD_START,  /* at the start of a field: blanks skipped */
    ST_UNQUOTED,     /* inside an unquoted field */
    ST_QUOTED,       /* inside a quoted field */
    ST_QUOTE_SEEN,   /* a quote inside a quoted field: closing or doubled */
    ST_AFTER_QUOTE   /* blanks after the closing quote */
};

/* class-table bits */
enum { SP_UNQ = 1, SP_Q = 2 };

struct csv_reader {
    char delim;
    size_t max_field, max_fields;
    csv_record_fn fn;
    void *ctx;

    int state;
    int failed;                 /* sticky non-zero result */
    csv_reader_errkind kind;
    unsigned char bom_pos;      /* BOM bytes matched so far */
    unsigned char bom_done;
    unsigned char prev_cr;      /* last byte was a CR (a following LF is its pair) */
    unsigned char cur_quoted;   /* current field was quoted */
    unsigned char utf8_need;    /* continuation bytes still expected */
    unsigned char utf8_lo, utf8_hi; /* allowed range of the next continuation */
    long line;                  /* current physical line */
    long rec_line;              /* line where the current record started */
    long quote_line;            /* line of the current field's opening quote */

    char *buf;                  /* the record: fields, each NUL-terminated */
    size_t buf_len, buf_cap, buf_max;
    size_t rec_max;             /* bytes of a record at most (buf_len counts them) */
    size_t field_start;         /* offset of the current field in buf */

    size_t *starts, *lens;
    char **ptrs;
    size_t n_fields, fields_cap;

    unsigned char cls[256];
};

csv_reader *csv_reader_new(char delimiter, size_t max_field, size_t max_fields,
                           csv_record_fn fn, void *ctx)
{
    csv_reader *r;
    size_t per;
    int c;

    if ((delimiter != ',' && delimiter != ';' && delimiter != '\t') || max_field == 0 ||
        max_fields == 0 || fn == NULL)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->delim = delimiter;
    r->max_field = max_field;
    r->max_fields = max_fields;
    r->fn = fn;
    r->ctx = ctx;
    r->state = ST_RECORD_START;
    r->line = 1;
    r->rec_line = 1;
    per = max_field < (size_t)-1 ? max_field + 1 : max_field;
    r->buf_max = per > (size_t)-1 / max_fields ? (size_t)-1 : per * max_fields;
    r->rec_max = r->buf_max;
    for (c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (c == 0 || c == '\r' || c == '\n' || c == '"' || c >= 0x80)
            k = SP_UNQ | SP_Q;
        if (c == (unsigned char)delimiter)
            k |= SP_UNQ;
        r->cls[c] = k;
    }
    return r;
}

void csv_reader_free(csv_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r->starts);
    free(r->lens);
    free(r->ptrs);
    free(r);
}

void csv_reader_set_max_record(csv_reader *r, size_t max_record)
{
    if (r && max_record > 0 && max_record < r->rec_max)
        r->rec_max = max_record;
}

csv_reader_errkind csv_reader_error_kind(const csv_reader *r)
{
    return r ? r->kind : CSV_RERR_NONE;
}

static int fail(csv_reader *r, csv_error *err, csv_reader_errkind kind, long line,
                long column, const char *msg)
{
    r->kind = kind;
    r->failed = -1;
    err->line = line;
    err->column = column;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return -1;
}

/* Grows the record buffer to hold `need` bytes (cold path of reserve). */
static int grow_buf(csv_reader *r, size_t need)
{
    size_t cap = r->buf_cap ? r->buf_cap : 256;
    char *p;

    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    if (cap > r->buf_max + 1 && need <= r->buf_max + 1)
        cap = r->buf_max + 1;
    p = realloc(r->buf, cap);
    if (!p) {
        r->failed = -2;
        return -2;
    }
    r->buf = p;
    r->buf_cap = cap;
    return 0;
}

static int too_long(csv_reader *r, csv_error *err)
{
    char msg[120];
    snprintf(msg, sizeof msg, "field longer than %zu bytes", r->max_field);
    return fail(r, err, CSV_RERR_FIELD_TOO_LONG, r->line, (long)r->n_fields + 1, msg);
}

static int record_too_long(csv_reader *r, csv_error *err)
{
    char msg[120];
    snprintf(msg, sizeof msg, "record longer than %zu bytes", r->rec_max);
    return fail(r, err, CSV_RERR_RECORD_TOO_LONG, r->line, (long)r->n_fields + 1, msg);
}

/* Appends n bytes to the current field (room for its NUL kept). */
static inline int append(csv_reader *r, const unsigned char *p, size_t n, csv_error *err)
{
    size_t len = r->buf_len;
    if (len - r->field_start + n > r->max_field)
        return too_long(r, err);
    if (len + n > r->rec_max)
        return record_too_long(r, err);
    if (len + n + 1 > r->buf_cap && grow_buf(r, len + n + 1))
        return -2;
    memcpy(r->buf + len, p, n);
    r->buf_len = len + n;
    return 0;
}

static int grow_fields(csv_reader *r)
{
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
    size_t *s, *l;
    char **pp;

    if (cap > r->max_fields)
        cap = r->max_fields;
    s = realloc(r->starts, cap * sizeof *s);
    if (!s)
        goto oom;
    r->starts = s;
    l = realloc(r->lens, cap * sizeof *l);
    if (!l)
        goto oom;
    r->lens = l;
    pp = realloc(r->ptrs, cap * sizeof *pp);
    if (!pp)
        goto oom;
    r->ptrs = pp;
    r->fields_cap = cap;
    return 0;
oom:
    r->failed = -2;
    return -2;
}

/* Close the current field (trimming trailing blanks of an unquoted one). */
static inline int end_field(csv_reader *r)
{
    size_t start = r->field_start, end = r->buf_len;
    char *buf = r->buf;

    if (!r->cur_quoted)
        while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
            end--;
    if (end + 1 > r->buf_cap) {
        if (grow_buf(r, end + 1))
            return -2;
        buf = r->buf;
    }
    buf[end] = '\0';
    if (r->n_fields == r->fields_cap && grow_fields(r))
        return -2;
    r->starts[r->n_fields] = start;
    r->lens[r->n_fields] = end - start;
    r->n_fields++;
    r->buf_len = r->field_start = end + 1;
    return 0;
}

static int too_many(csv_reader *r, csv_error *err)
{
    char msg[120];
    snprintf(msg, sizeof msg, "more than %zu fields in a record", r->max_fields);
    return fail(r, err, CSV_RERR_TOO_MANY_FIELDS, r->line, (long)r->max_fields + 1, msg);
}

/* A delimiter ended a field: another one starts. */
static inline int next_field(csv_reader *r, csv_error *err)
{
    int rc = end_field(r);

    if (rc)
        return rc;
    if (r->n_fields >= r->max_fields)
        return too_many(r, err);
    r->cur_quoted = 0;
    return 0;
}

static int end_record(csv_reader *r, csv_error *err)
{
    size_t i;
    int rc;

    /* a blank (or blanks-only) line is no record */
    if (!(r->n_fields == 1 && r->lens[0] == 0 && !r->cur_quoted)) {
        for (i = 0; i < r->n_fields; i++)
            r->ptrs[i] = r->buf + r->starts[i];
        rc = r->fn(r->ctx, r->ptrs, r->lens, r->n_fields, r->rec_line, err);
        if (rc) {
            r->failed = rc;
            return rc;
        }
    }
    r->n_fields = 0;
    r->buf_len = 0;
    r->field_start = 0;
    r->cur_quoted = 0;
    return 0;
}

/* First byte of a multi-byte UTF-8 sequence: set up what must follow. */
static int utf8_lead(csv_reader *r, unsigned c)
{
    r->utf8_lo = 0x80;
    r->utf8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        r->utf8_need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        r->utf8_need = 2;
        if (c == 0xE0)
            r->utf8_lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            r->utf8_hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        r->utf8_need = 3;
        if (c == 0xF0)
            r->utf8_lo = 0x90; /* no overlongs */
        else if (c == 0xF4)
            r->utf8_hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return -1;
    return 0;
}

/* The fast path, entered at the start of a field: takes whole unquoted
 * fields (blanks around them dropped) ended by the delimiter or an LF, with
 * the record state in locals. It stops at the first field it cannot take
 * whole (a quote, CR, NUL, non-ASCII byte, the end of the chunk, a full
 * buffer, a field too long, a blank line), leaving that field untouched
 * in ST_FIELD_START or ST_RECORD_START for the state machine. Returns the
 * new position; *rc is set non-zero on an error. */
static const unsigned char *fast_fields(csv_reader *r, const unsigned char *p,
                                        const unsigned char *end, csv_error *err, int *rc)
{
    const unsigned char *cls = r->cls;
    const unsigned delim = (unsigned char)r->delim;
    const size_t max_field = r->max_field, max_fields = r->max_fields, rec_max = r->rec_max;
    char *buf = r->buf;
    size_t bl = r->buf_len, cap = r->buf_cap, nf = r->n_fields, fcap = r->fields_cap;
    size_t *starts = r->starts, *lens = r->lens;

    for (;;) {
        const unsigned char *q, *f;
        size_t n;
        unsigned c;

        while (p < end && (*p == ' ' || *p == '\t') && *p != delim)
            p++; /* leading blanks: skipped in ST_FIELD_START anyway */
        for (q = p; q < end && !(cls[*q] & SP_UNQ); q++)
            ;
        if (q == end)
            break;
        c = *q;
        if (c != delim && c != '\n')
            break;
        f = q;
        while (f > p && (f[-1] == ' ' || f[-1] == '\t'))
            f--;
        n = (size_t)(f - p);
        /* max_field counts trailing blanks, as the state machine does */
        if ((size_t)(q - p) > max_field || bl + n + 1 > cap || bl + n > rec_max || nf == fcap ||
            (n == 0 && nf == 0 && c == '\n'))
            break;
        if (n <= 8) { /* most fields: cheaper than a call */
            size_t i;
            for (i = 0; i < n; i++)
                buf[bl + i] = (char)p[i];
        } else
            memcpy(buf + bl, p, n);
        buf[bl + n] = '\0';
        starts[nf] = bl;
        lens[nf] = n;
        nf++;
        bl += n + 1;
        p = q + 1;
        if (c == delim) {
            if (nf >= max_fields) {
                r->buf_len = r->field_start = bl;
                r->n_fields = nf;
                *rc = too_many(r, err);
                return p;
            }
            continue;
        }
        /* LF: the record is complete */
        r->buf_len = r->field_start = bl;
        r->n_fields = nf;
        r->cur_quoted = 0;
        r->line++;
        if ((*rc = end_record(r, err)))
            return p;
        bl = nf = 0;
        r->state = ST_RECORD_START;
        if (p == end || *p == '\n' || *p == '\r')
            return p;
        r->rec_line = r->line;
        r->state = ST_FIELD_START;
    }
    r->buf_len = r->field_start = bl;
    r->n_fields = nf;
    return p;
}

#define FAIL(kind, col, msg) return fail(r, err, kind, r->line, (long)(col), msg)

static int process(csv_reader *r, const unsigned char *p, size_t n, csv_error *err)
{
    const unsigned char *end = p + n;
    const unsigned char *cls = r->cls;
    const unsigned char delim = (unsigned char)r->delim;
    int rc = 0;

    while (p < end) {
        unsigned c = *p;

        if (r->state == ST_FIELD_START && !r->utf8_need) {
            p = fast_fields(r, p, end, err, &rc);
            if (rc)
                return rc;
            if (p == end)
                break;
            c = *p;
        }
        if (r->utf8_need) {
            if (c < r->utf8_lo || c > r->utf8_hi)
                FAIL(CSV_RERR_UTF8, r->n_fields + 1, "invalid UTF-8");
            if ((rc = append(r, p, 1, err)))
                return rc;
            r->utf8_need--;
            r->utf8_lo = 0x80;
            r->utf8_hi = 0xBF;
            p++;
            continue;
        }
        switch (r->state) {
        case ST_RECORD_START:
            if (c == '\n') {
                if (!r->prev_cr)
                    r->line++;
                r->prev_cr = 0;
                p++;
                continue;
            }
            if (c == '\r') {
                r->line++;
                r->prev_cr = 1;
                p++;
                continue;
            }
            r->prev_cr = 0;
            r->rec_line = r->line;
            r->n_fields = 0;
            r->buf_len = 0;
            r->field_start = 0;
            r->cur_quoted = 0;
            r->state = ST_FIELD_START;
            continue; /* the byte starts the first field */

        case ST_FIELD_START:
            if (c == delim) {
                if ((rc = next_field(r, err)))
                    return rc;
                p++;
                continue;
            }
            if (c == ' ' || c == '\t') {
                p++;
                continue;
            }
            if (c == '"') {
                r->cur_quoted = 1;
                r->quote_line = r->line;
                r->state = ST_QUOTED;
                p++;
                continue;
            }
            if (c == '\r' || c == '\n')
                goto end_of_line;
            r->state = ST_UNQUOTED; /* the byte is the field's first */
            /* fall through */
        case ST_UNQUOTED:
            if (!(cls[c] & SP_UNQ)) { /* the fast path: a run of plain bytes */
                const unsigned char *q = p + 1;
                while (q < end && !(cls[*q] & SP_UNQ))
                    q++;
                if ((rc = append(r, p, (size_t)(q - p), err)))
                    return rc;
                p = q;
                if (p == end)
                    break;
                c = *p;
            }
            if (c == delim) {
                if ((rc = next_field(r, err)))
                    return rc;
                r->state = ST_FIELD_START;
                p++;
                continue;
            }
            if (c == '\r' || c == '\n')
                goto end_of_line;
            if (c == '"') { /* a stray quote inside an unquoted field is text */
                if ((rc = append(r, p, 1, err)))
                    return rc;
                p++;
                continue;
            }
            goto content_special;

        case ST_QUOTED:
            if (!(cls[c] & SP_Q)) {
                const unsigned char *q = p + 1;
                while (q < end && !(cls[*q] & SP_Q))
                    q++;
                if ((rc = append(r, p, (size_t)(q - p), err)))
                    return rc;
                r->prev_cr = 0;
                p = q;
                continue;
            }
            if (c == '"') {
                r->state = ST_QUOTE_SEEN;
                r->prev_cr = 0;
                p++;
                continue;
            }
            if (c == '\r' || c == '\n') {
                if (c == '\r' || !r->prev_cr)
                    r->line++;
                r->prev_cr = c == '\r';
                if ((rc = append(r, p, 1, err)))
                    return rc;
                p++;
                continue;
            }
            r->prev_cr = 0;
            goto content_special;

        case ST_QUOTE_SEEN:
            if (c == '"') { /* doubled quote */
                if ((rc = append(r, p, 1, err)))
                    return rc;
                r->state = ST_QUOTED;
                p++;
                continue;
            }
            r->state = ST_AFTER_QUOTE; /* it was the closing quote */
            /* fall through */
        case ST_AFTER_QUOTE:
            if (c == delim) {
                if ((rc = next_field(r, err)))
                    return rc;
                r->state = ST_FIELD_START;
                p++;
                continue;
            }
            if (c == ' ' || c == '\t') {
                p++;
                continue;
            }
            if (c == '\r' || c == '\n')
                goto end_of_line;
            if (c == 0)
                FAIL(CSV_RERR_NUL, r->n_fields + 1, "NUL byte in input");
            FAIL(CSV_RERR_AFTER_QUOTE, r->n_fields + 1, "text after closing quote");
        }
        continue;

    content_special: /* NUL or a non-ASCII byte inside a field */
        if (c == 0)
            FAIL(CSV_RERR_NUL, r->n_fields + 1, "NUL byte in input");
        if (utf8_lead(r, c))
            FAIL(CSV_RERR_UTF8, r->n_fields + 1, "invalid UTF-8");
        if ((rc = append(r, p, 1, err)))
            return rc;
        p++;
        continue;

    end_of_line: /* CR or LF outside quotes ends the record */
        if ((rc = end_field(r)))
            return rc;
        r->line++;
        r->prev_cr = c == '\r';
        r->state = ST_RECORD_START;
        p++;
        if ((rc = end_record(r, err)))
            return rc;
    }
    return 0;
}

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

int csv_reader_feed(csv_reader *r, const char *buf, size_t len, csv_error *err)
{
    const unsigned char *p = (const unsigned char *)buf;
    csv_error dummy;

    if (!err)
        err = &dummy;
    if (r->failed)
        return r->failed;
    while (!r->bom_done && len > 0) {
        if (*p == BOM[r->bom_pos]) {
            p++;
            len--;
            if (++r->bom_pos == 3)
                r->bom_done = 1;
        } else {
            int rc;
            r->bom_done = 1; /* not a BOM: what matched so far is data */
            if (r->bom_pos && (rc = process(r, BOM, r->bom_pos, err)))
                return rc;
        }
    }
    if (len == 0)
        return 0;
    return process(r, p, len, err);
}

int csv_reader_finish(csv_reader *r, csv_error *err)
{
    csv_error dummy;
    int rc;

    if (!err)
        err = &dummy;
    if (r->failed)
        return r->failed;
    if (!r->bom_done) {
        r->bom_done = 1;
        if (r->bom_pos && (rc = process(r, BOM, r->bom_pos, err)))
            return rc;
    }
    if (r->utf8_need)
        return fail(r, err, CSV_RERR_UTF8, r->line, (long)r->n_fields + 1,
                    "invalid UTF-8 (truncated sequence at end of input)");
    switch (r->state) {
    case ST_RECORD_START:
        break;
    case ST_QUOTED:
        return fail(r, err, CSV_RERR_UNTERMINATED, r->quote_line, (long)r->n_fields + 1,
                    "unterminated quoted field");
    default:
        if ((rc = end_field(r)) || (rc = end_record(r, err)))
            return rc;
        r->state = ST_RECORD_START;
    }
    r->failed = 0;
    return 0;
}
