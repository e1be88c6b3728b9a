/*
 * api/csv_table.c — CSV records to a typed table, streamed in chunks (see
 * csv_table.h).
 *
 * Rows are typed as they stream in and collected row-major as float in one
 * chunk of CSV_CHUNK_ROWS rows; a full chunk goes to the sink (the store, or
 * the in-memory table) at once, so memory is one chunk plus what a column
 * must remember, never the input:
 *  - a number column keeps the distinct original texts of its numbers (with
 *    counts), at most max_levels of them, and a map from float bits to the
 *    first text with those bits. If a text cell later turns the column into
 *    a category, every earlier cell must become the level of its ORIGINAL
 *    text ("1.0" stays "1.0"): the float bits give it back, except where two
 *    texts share one float ("1" and "1.0"); for those cells the column keeps
 *    an exception (row, text), bounded in number. Past max_levels texts (or
 *    the exception budget) that memory is dropped: the column can only stay
 *    numeric, and a later text cell is an error naming the limit.
 *  - when a column turns into a category, the rows of the current chunk are
 *    mapped at once; chunks already handed out keep their numbers until the
 *    end, when the builder maps them (csv_table_builder_fix_chunk) — the
 *    caller rewrites them in place. One pass at the end, however many
 *    columns turned, instead of one per turn.
 *  - missing cells are NaN (parsed numbers are always finite) and, under
 *    missing=fill, are replaced at the end by the column's mean or mode: the
 *    same fix-up, for the chunks that had a missing cell.
 *  - statistics stream too: min/max and sums of (v - first value) and its
 *    square (shifted sums: exact enough in double for float data, and no
 *    division per cell as Welford's update needs); level counts.
 * Why fix-ups rather than a per-chunk typed representation: every chunk on
 * disk stays the plain float32 matrix the store and the jobs read, and the
 * rewrite touches only chunks that really changed — none in the common case.
 */
#include "api/csv_table.h"

#include <math.h> /* NAN, isnan, sqrt */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- texts */

/* A set of distinct texts in insertion order, with counts and float bits. */
typedef struct {
    char **texts;
    size_t *lens;
    uint32_t *hashes;
    size_t *counts;
    uint32_t *fbits;   /* number phase: float bits of each text */
    size_t n, cap;
    uint32_t *slots;   /* open addressing, index + 1; 0 = empty */
    size_t n_slots;    /* power of two */
} textset;

static uint32_t hash_text(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static void ts_free(textset *t, int keep_texts)
{
    size_t i;
    if (!keep_texts) {
        for (i = 0; i < t->n; i++)
            free(t->texts[i]);
        free(t->texts);
    }
    free(t->lens);
    free(t->hashes);
    free(t->counts);
    free(t->fbits);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static long ts_find(const textset *t, const char *s, size_t n, uint32_t h)
{
    size_t mask, i;
    if (!t->n_slots)
        return -1;
    mask = t->n_slots - 1;
    for (i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = t->slots[i];
        if (!v)
            return -1;
        v--;
        if (t->hashes[v] == h && t->lens[v] == n && memcmp(t->texts[v], s, n) == 0)
            return (long)v;
    }
}

static int ts_rehash(textset *t, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    size_t i, mask = n_slots - 1;
    if (!slots)
        return -1;
    for (i = 0; i < t->n; i++) {
        size_t j = t->hashes[i] & mask;
        while (slots[j])
            j = (j + 1) & mask;
        slots[j] = (uint32_t)i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return 0;
}

#define GROW(ptr, cap)                                                          \
    do {                                                                        \
        void *np_ = realloc((ptr), (cap) * sizeof *(ptr));                      \
        if (!np_)                                                               \
            return -1;                                                          \
        (ptr) = np_;                                                            \
    } while (0)

/* Adds a text (not present); returns its index or -1 on out of memory. */
static long ts_add(textset *t, const char *s, size_t n, uint32_t h, uint32_t fbits)
{
    char *copy;
    size_t j, mask;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        GROW(t->texts, cap);
        GROW(t->lens, cap);
        GROW(t->hashes, cap);
        GROW(t->counts, cap);
        GROW(t->fbits, cap);
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->n_slots && ts_rehash(t, t->n_slots ? t->n_slots * 2 : 16))
        return -1;
    copy = malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, n);
    copy[n] = '\0';
    t->texts[t->n] = copy;
    t->lens[t->n] = n;
    t->hashes[t->n] = h;
    t->counts[t->n] = 0;
    t->fbits[t->n] = fbits;
    mask = t->n_slots - 1;
    for (j = h & mask; t->slots[j]; j = (j + 1) & mask)
        ;
    t->slots[j] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

/* --------------------------------------------------------------- columns */

/* A cell whose text is not the first text with its float's bits. */
typedef struct {
    uint64_t row;       /* 0-based data row */
    uint32_t idx;       /* its text */
} exc_t;

/* Exceptions kept at most, all columns together (16 bytes each). */
#define MAX_EXCEPTIONS 65536

enum { KEEP = 0, OVER_LEVELS = 1, OVER_SPELLINGS = 2, OVER_TEXT = 3 };

typedef struct {
    char *name;
    csv_col_type type;
    textset ts;         /* number: distinct texts so far; category: levels */
    uint32_t *bkeys;    /* number: float bits -> first text with them */
    uint32_t *bvals;    /* index + 1; 0 = empty */
    size_t n_bslots;    /* power of two, 2^(64 - bshift) */
    unsigned bshift;
    exc_t *exc;         /* by row, ascending */
    size_t n_exc, exc_cap;
    int overflow;       /* number: texts no longer kept (KEEP or OVER_*) */
    int flipped;        /* was a number column */
    size_t flip_seq;    /* chunks handed out before it turned */
    /* number statistics over stored floats */
    int have_shift;
    double shift, s1, s2;
    float vmin, vmax;
    double sum;         /* parsed values (double): the fill mean */
    size_t n_num;
    size_t n_missing, n_filled;
    float fill;         /* missing=fill: the value, known at finish */
} bcol;

struct csv_table_builder {
    csv_options opt;
    csv_reader *rd;
    int failed;
    csv_error saved;
    int have_header;
    size_t n_cols;
    bcol *cols;
    float *chunk;       /* [CSV_CHUNK_ROWS][n_cols] being filled */
    size_t chunk_rows;
    int chunk_missing;  /* the chunk holds a missing cell */
    size_t seq;         /* chunks handed out */
    unsigned char *had_missing; /* per chunk handed out */
    size_t had_cap;
    size_t n_rows;      /* rows kept, all chunks */
    size_t n_dropped;
    size_t text_bytes;  /* bytes of the distinct texts kept */
    size_t n_exc;       /* exceptions kept, all columns */
    int cb_failed;      /* the reader stopped because on_record said so */
    csv_chunk_fn sink;  /* NULL: the in-memory table below */
    void *sink_ctx;
    size_t stale_below; /* after finish: chunks below may be stale */
    int finished;
    float *data;        /* in-memory sink */
    size_t data_rows, data_cap;
};

/* Drops what a number column remembers to be able to turn into a category. */
static void forget_texts(csv_table_builder *b, bcol *c, int why)
{
    size_t i;
    for (i = 0; i < c->ts.n; i++)
        b->text_bytes -= c->ts.lens[i] + 1;
    ts_free(&c->ts, 0);
    free(c->bkeys);
    free(c->bvals);
    c->bkeys = c->bvals = NULL;
    c->n_bslots = 0;
    b->n_exc -= c->n_exc;
    free(c->exc);
    c->exc = NULL;
    c->n_exc = c->exc_cap = 0;
    c->overflow = why;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Fibonacci hashing: the top log2(n_slots) bits of key * 2^64/phi. */
static inline size_t bits_slot(uint32_t key, unsigned shift)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> shift);
}

static inline long bits_find(const bcol *c, uint32_t key)
{
    size_t mask, i;
    if (!c->n_bslots)
        return -1;
    mask = c->n_bslots - 1;
    for (i = bits_slot(key, c->bshift); c->bvals[i]; i = (i + 1) & mask)
        if (c->bkeys[i] == key)
            return (long)c->bvals[i] - 1;
    return -1;
}

static int bits_add(bcol *c, uint32_t key, size_t idx, size_t n_present)
{
    size_t mask, i;
    if ((n_present + 1) * 2 > c->n_bslots) {
        size_t n = c->n_bslots ? c->n_bslots * 2 : 16, j;
        unsigned shift = c->n_bslots ? c->bshift - 1 : 60;
        uint32_t *k = calloc(n, sizeof *k), *v = calloc(n, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        for (j = 0; j < c->n_bslots; j++)
            if (c->bvals[j]) {
                size_t p = bits_slot(c->bkeys[j], shift);
                while (v[p])
                    p = (p + 1) & (n - 1);
                k[p] = c->bkeys[j];
                v[p] = c->bvals[j];
            }
        free(c->bkeys);
        free(c->bvals);
        c->bkeys = k;
        c->bvals = v;
        c->n_bslots = n;
        c->bshift = shift;
    }
    mask = c->n_bslots - 1;
    for (i = bits_slot(key, c->bshift); c->bvals[i]; i = (i + 1) & mask)
        ;
    c->bkeys[i] = key;
    c->bvals[i] = (uint32_t)idx + 1;
    return 0;
}

/* ---------------------------------------------------------------- errors */

/* Longest prefix of the valid UTF-8 text s[0..n) that is at most max bytes
 * and ends on a character boundary. */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    size_t i, len;
    unsigned char c;

    if (n <= max)
        return n;
    for (i = max; i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80; i--)
        ; /* back over continuation bytes to the last lead byte */
    if (i == 0)
        return 0;
    c = (unsigned char)s[i - 1];
    if (c < 0x80)
        return max;
    len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return max - (i - 1) >= len ? max : i - 1;
}

static void set_err(csv_error *err, long line, long column, const char *fmt, ...)
{
    va_list ap;
    int k;

    err->line = line;
    err->column = column;
    va_start(ap, fmt);
    k = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (k >= (int)sizeof err->message) /* truncated: end on a whole character */
        err->message[utf8_prefix(err->message, (size_t)k, sizeof err->message - 1)] = '\0';
}

#define NAME_MAX_SHOWN 64
/* printf arguments for a name shown in a message: "%.*s" */
#define SHOW(s) (int)utf8_prefix((s), strlen(s), NAME_MAX_SHOWN), (s)

/* ----------------------------------------------------------------- cells */

static inline int is_missing(const char *s, size_t n)
{
    if (n > 4)
        return 0;
    switch (n) {
    case 0:
        return 1;
    case 1:
        return s[0] == '?';
    case 2:
        return s[0] == 'N' && s[1] == 'A';
    case 3:
        return memcmp(s, "N/A", 3) == 0;
    case 4:
        return memcmp(s, "null", 4) == 0 || memcmp(s, "NULL", 4) == 0;
    default:
        return 0;
    }
}

static const double P10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Strict number: [+-]?(digits[.digits]|.digits)([eE][+-]?digits)? on the whole
 * of s (NUL-terminated at n). 1 and *out set if it is one, else 0. Exact
 * (Clinger's fast path: at most 19 digits, mantissa <= 2^53, |exp10| <= 22)
 * when it can be, else strtod (C locale): either way what strtod gives.
 * Plain byte loops: a column's numbers share a shape, so the branches are
 * well predicted (an 8-digits-at-a-time SWAR version measured slower). */
static inline int parse_num(const char *s, size_t n, double *out)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n, *q;
    uint64_t m = 0;
    size_t n_int, n_frac = 0;
    long dexp = 0;
    int neg = 0;

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    /* the NUL at s[n] ends every scan; m wraps past 19 digits: unused then */
    for (q = p; (unsigned)(*p - '0') < 10; p++)
        m = m * 10 + (unsigned)(*p - '0');
    n_int = (size_t)(p - q);
    if (*p == '.') {
        for (q = ++p; (unsigned)(*p - '0') < 10; p++)
            m = m * 10 + (unsigned)(*p - '0');
        n_frac = (size_t)(p - q);
        if (n_frac == 0)
            return 0;
    }
    if (n_int + n_frac == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        long x = 0;
        int eneg = 0;
        if (*++p == '+' || *p == '-') {
            eneg = *p == '-';
            p++;
        }
        for (q = p; (unsigned)(*p - '0') < 10; p++)
            if (x < 100000)
                x = x * 10 + (*p - '0');
        if (p == q)
            return 0;
        dexp = eneg ? -x : x;
    }
    if (p != e)
        return 0;
    dexp -= (long)n_frac;
    if (n_int + n_frac <= 19 && m <= ((uint64_t)1 << 53) && dexp >= -22 && dexp <= 22) {
        double d = (double)m;
        d = dexp < 0 ? d / P10[-dexp] : d * P10[dexp];
        *out = neg ? -d : d;
    } else {
        *out = strtod(s, NULL);
    }
    return 1;
}

/* nan, inf, infinity in any case, with an optional sign: what float exports
 * write for values that are no numbers. */
static int is_nonfinite(const char *s, size_t n)
{
    static const char *const words[] = {"nan", "inf", "infinity"};
    size_t i, k;
    if (n > 0 && (*s == '+' || *s == '-'))
        s++, n--;
    for (k = 0; k < sizeof words / sizeof words[0]; k++) {
        if (strlen(words[k]) != n)
            continue;
        for (i = 0; i < n && (s[i] | 0x20) == words[k][i]; i++)
            ;
        if (i == n)
            return 1;
    }
    return 0;
}

/* Numbers at or beyond this round to infinity as float32. */
#define FLOAT32_OVERFLOW 0x1.ffffffp127

static int oom(csv_error *err)
{
    set_err(err, 0, 0, "out of memory");
    return CSV_ENOMEM;
}

static inline int same_text(const char *a, const char *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------- number columns */

/* A new distinct text for column c within the max_text budget; -1 on out
 * of memory, -2 when over budget. */
static long add_text(csv_table_builder *b, bcol *c, const char *s, size_t n, uint32_t h,
                     uint32_t fbits)
{
    long idx;
    if (n + 1 > b->opt.max_text - b->text_bytes || b->text_bytes > b->opt.max_text)
        return -2;
    idx = ts_add(&c->ts, s, n, h, fbits);
    if (idx >= 0)
        b->text_bytes += n + 1;
    return idx;
}

static int add_exception(csv_table_builder *b, bcol *c, size_t row, long idx)
{
    if (b->n_exc >= MAX_EXCEPTIONS) {
        forget_texts(b, c, OVER_SPELLINGS);
        return 0;
    }
    if (c->n_exc == c->exc_cap) {
        size_t cap = c->exc_cap ? c->exc_cap * 2 : 16;
        exc_t *p = realloc(c->exc, cap * sizeof *p);
        if (!p)
            return -1;
        c->exc = p;
        c->exc_cap = cap;
    }
    c->exc[c->n_exc].row = row;
    c->exc[c->n_exc].idx = (uint32_t)idx;
    c->n_exc++;
    b->n_exc++;
    return 0;
}

/* Number column: remember the original text of a number in data row `row`. */
static int note_text_slow(csv_table_builder *b, bcol *c, const char *s, size_t n, float v,
                          size_t row)
{
    uint32_t h = hash_text(s, n), bits = float_bits(v);
    long idx = ts_find(&c->ts, s, n, h), first;

    if (idx < 0) {
        if (c->ts.n >= b->opt.max_levels) { /* can never be a category now */
            forget_texts(b, c, OVER_LEVELS);
            return 0;
        }
        idx = add_text(b, c, s, n, h, bits);
        if (idx == -2) {
            forget_texts(b, c, OVER_TEXT);
            return 0;
        }
        if (idx < 0)
            return -1;
        if (bits_find(c, bits) < 0 && bits_add(c, bits, (size_t)idx, (size_t)idx))
            return -1;
    }
    first = bits_find(c, bits);
    if (first != idx) { /* "1.0" after "1": this cell needs its own text */
        if (add_exception(b, c, row, idx))
            return -1;
        if (c->overflow)
            return 0;
    }
    c->ts.counts[idx]++;
    return 0;
}

/* The common case first: the text seen before with this float's bits. */
static inline int note_text(csv_table_builder *b, bcol *c, const char *s, size_t n, float v,
                            size_t row)
{
    long idx = bits_find(c, float_bits(v));
    if (idx >= 0 && c->ts.lens[idx] == n && same_text(c->ts.texts[idx], s, n)) {
        c->ts.counts[idx]++;
        return 0;
    }
    return note_text_slow(b, c, s, n, v, row);
}

/* Maps n number cells (stride apart, the first in data row `first`) of a
 * column that turned into a category to the levels of their texts. */
static void map_cells(const bcol *c, size_t first, float *cell, size_t stride, size_t n)
{
    size_t lo = 0, hi = c->n_exc, r;
    const exc_t *e, *end = c->exc + c->n_exc;

    while (lo < hi) { /* first exception at or after row `first` */
        size_t mid = lo + (hi - lo) / 2;
        if (c->exc[mid].row < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    e = c->exc + lo;
    for (r = 0; r < n; r++, cell += stride) {
        if (isnan(*cell))
            continue;
        while (e < end && e->row < first + r)
            e++;
        if (e < end && e->row == first + r)
            *cell = (float)e->idx;
        else
            *cell = (float)bits_find(c, float_bits(*cell));
    }
}

static int level_limit(csv_table_builder *b, bcol *c, long line, size_t col, csv_error *err)
{
    if (c->overflow == OVER_SPELLINGS)
        set_err(err, line, (long)col + 1,
                "column '%.*s' has text after more than %d numbers written unlike "
                "an equal number before them (as 1 and 1.0): their texts were not kept",
                SHOW(c->name), MAX_EXCEPTIONS);
    else if (c->overflow == OVER_TEXT)
        set_err(err, line, (long)col + 1,
                "column '%.*s' has text, but the distinct values seen before took "
                "more than %zu bytes (limit max_text=%zu)",
                SHOW(c->name), b->opt.max_text, b->opt.max_text);
    else
        set_err(err, line, (long)col + 1,
                "column '%.*s' has more than %zu distinct values (limit max_levels=%zu)",
                SHOW(c->name), b->opt.max_levels, b->opt.max_levels);
    return CSV_ELIMIT;
}

/* A number column met a text: every earlier number becomes the level of its
 * original text — now for the current chunk, at the end for the others. */
static int flip(csv_table_builder *b, bcol *c, size_t col, long line, csv_error *err)
{
    if (c->overflow)
        return level_limit(b, c, line, col, err);
    map_cells(c, b->seq * CSV_CHUNK_ROWS, b->chunk + col, b->n_cols, b->chunk_rows);
    c->type = CSV_COL_CATEGORY;
    c->flipped = 1;
    c->flip_seq = b->seq;
    if (c->flip_seq == 0) { /* nothing handed out to map later */
        free(c->bkeys);
        free(c->bvals);
        c->bkeys = c->bvals = NULL;
        c->n_bslots = 0;
        b->n_exc -= c->n_exc;
        free(c->exc);
        c->exc = NULL;
        c->n_exc = c->exc_cap = 0;
    }
    return 0;
}

static int category_cell(csv_table_builder *b, bcol *c, size_t col, const char *s, size_t n,
                         float *cell, long line, csv_error *err)
{
    uint32_t h = hash_text(s, n);
    long idx = ts_find(&c->ts, s, n, h);

    if (idx < 0) {
        if (c->ts.n >= b->opt.max_levels)
            return level_limit(b, c, line, col, err);
        idx = add_text(b, c, s, n, h, 0);
        if (idx == -2) {
            set_err(err, line, (long)col + 1,
                    "the distinct values of the text columns take more than %zu bytes (limit "
                    "max_text=%zu) in column '%.*s'",
                    b->opt.max_text, b->opt.max_text, SHOW(c->name));
            return CSV_ELIMIT;
        }
        if (idx < 0)
            return oom(err);
    }
    c->ts.counts[idx]++;
    *cell = (float)idx;
    return 0;
}

/* Statistics of a stored number. */
static inline void note_value(bcol *c, float v)
{
    double d;
    if (!c->have_shift) {
        c->have_shift = 1;
        c->shift = v;
        c->vmin = c->vmax = v;
    }
    d = (double)v - c->shift;
    c->s1 += d;
    c->s2 += d * d;
    if (v < c->vmin)
        c->vmin = v;
    if (v > c->vmax)
        c->vmax = v;
}

static int take_header(csv_table_builder *b, char *const *f, const size_t *lens, size_t n,
                       long line, csv_error *err)
{
    size_t i;
    textset names;

    if (n > b->opt.max_cols) {
        set_err(err, line, (long)b->opt.max_cols + 1,
                "more than %zu columns (limit max_columns=%zu)", b->opt.max_cols,
                b->opt.max_cols);
        return CSV_ELIMIT;
    }
    b->cols = calloc(n, sizeof *b->cols);
    if (!b->cols)
        return oom(err);
    b->n_cols = n;
    memset(&names, 0, sizeof names);
    for (i = 0; i < n; i++) {
        char *name;
        size_t len;
        if (b->opt.header) {
            const char *s = f[i];
            long other;
            uint32_t h;
            len = lens[i];
            while (len > 0 && (*s == ' ' || *s == '\t'))
                s++, len--;
            while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            if (len == 0) {
                ts_free(&names, 0);
                set_err(err, line, (long)i + 1, "column %zu has an empty name", i + 1);
                return CSV_EHEADER;
            }
            h = hash_text(s, len);
            other = ts_find(&names, s, len, h);
            if (other >= 0) {
                set_err(err, line, (long)i + 1,
                        "column %zu has the same name '%.*s' as column %ld", i + 1,
                        SHOW(names.texts[other]), other + 1);
                ts_free(&names, 0);
                return CSV_EHEADER;
            }
            if (ts_add(&names, s, len, h, 0) < 0) {
                ts_free(&names, 0);
                return oom(err);
            }
            name = malloc(len + 1);
            if (name) {
                memcpy(name, s, len);
                name[len] = '\0';
            }
        } else {
            char tmp[32];
            int k = snprintf(tmp, sizeof tmp, "c%zu", i);
            len = (size_t)k;
            name = malloc(len + 1);
            if (name)
                memcpy(name, tmp, len + 1);
        }
        if (!name) {
            ts_free(&names, 0);
            return oom(err);
        }
        b->cols[i].name = name;
    }
    ts_free(&names, 0);
    b->have_header = 1;
    return 0;
}

/* --------------------------------------------------------------- chunks */

/* The in-memory sink of csv_table_builder_new: appends to b->data. */
static int memory_sink(void *ctx, size_t seq, const float *rows, size_t n_rows, size_t n_cols)
{
    csv_table_builder *b = ctx;
    (void)seq;
    if (b->data_rows + n_rows > b->data_cap) {
        size_t cap = b->data_cap ? b->data_cap * 2 : CSV_CHUNK_ROWS;
        float *d;
        while (cap < b->data_rows + n_rows)
            cap *= 2;
        if (cap > SIZE_MAX / sizeof(float) / n_cols)
            return -1;
        d = realloc(b->data, cap * n_cols * sizeof *d);
        if (!d)
            return -1;
        b->data = d;
        b->data_cap = cap;
    }
    memcpy(b->data + b->data_rows * n_cols, rows, n_rows * n_cols * sizeof *rows);
    b->data_rows += n_rows;
    return 0;
}

/* Hands the current chunk to the sink. */
static int emit(csv_table_builder *b, csv_error *err, long line)
{
    if (b->seq == b->had_cap) {
        size_t cap = b->had_cap ? b->had_cap * 2 : 64;
        unsigned char *p = realloc(b->had_missing, cap);
        if (!p)
            return oom(err);
        b->had_missing = p;
        b->had_cap = cap;
    }
    b->had_missing[b->seq] = (unsigned char)b->chunk_missing;
    if (b->sink(b->sink_ctx, b->seq, b->chunk, b->chunk_rows, b->n_cols) != 0) {
        if (b->sink == memory_sink)
            return oom(err);
        set_err(err, line, 0, "the rows could not be stored");
        return CSV_ESINK;
    }
    b->seq++;
    b->chunk_rows = 0;
    b->chunk_missing = 0;
    return 0;
}

int csv_table_builder_chunk_stale(const csv_table_builder *b, size_t seq)
{
    size_t i;
    if (!b || !b->finished || seq >= b->stale_below)
        return 0;
    if (b->opt.missing == CSV_MISSING_FILL && b->had_missing[seq])
        return 1;
    for (i = 0; i < b->n_cols; i++)
        if (b->cols[i].flipped && seq < b->cols[i].flip_seq)
            return 1;
    return 0;
}

/* Maps the numbers of columns that turned later, then fills. */
static void fix_rows(const csv_table_builder *b, size_t seq, float *rows, size_t n_rows)
{
    size_t i, r, nc = b->n_cols;
    for (i = 0; i < nc; i++) {
        const bcol *c = &b->cols[i];
        if (c->flipped && seq < c->flip_seq)
            map_cells(c, seq * CSV_CHUNK_ROWS, rows + i, nc, n_rows);
        if (b->opt.missing == CSV_MISSING_FILL && c->n_missing)
            for (r = 0; r < n_rows; r++)
                if (isnan(rows[r * nc + i]))
                    rows[r * nc + i] = c->fill;
    }
}

void csv_table_builder_fix_chunk(const csv_table_builder *b, size_t seq, float *rows,
                                 size_t n_rows)
{
    if (csv_table_builder_chunk_stale(b, seq))
        fix_rows(b, seq, rows, n_rows);
}

size_t csv_table_builder_chunks(const csv_table_builder *b)
{
    return b ? b->seq : 0;
}

/* -------------------------------------------------------------- records */


static int process_record(csv_table_builder *b, char *const *f, const size_t *lens, size_t n,
                          long line, csv_error *err)
{
    size_t i, nc;
    float *row;
    int rc;

    if (!b->have_header) {
        if ((rc = take_header(b, f, lens, n, line, err)))
            return rc;
        b->chunk = malloc((size_t)CSV_CHUNK_ROWS * b->n_cols * sizeof *b->chunk);
        if (!b->chunk)
            return oom(err);
        if (b->opt.header)
            return 0;
    }
    nc = b->n_cols;
    if (n != nc) {
        set_err(err, line, 0, "the row has %zu fields, expected %zu", n, nc);
        return CSV_ESYNTAX;
    }
    if (b->opt.missing == CSV_MISSING_DROP) {
        int any = 0;
        for (i = 0; i < nc; i++)
            if (is_missing(f[i], lens[i])) {
                b->cols[i].n_missing++;
                any = 1;
            }
        if (any) {
            b->n_dropped++;
            return 0;
        }
    }
    if (b->n_rows >= b->opt.max_rows) {
        set_err(err, line, 0, "more than %zu data rows (limit max_rows=%zu)",
                b->opt.max_rows, b->opt.max_rows);
        return CSV_ELIMIT;
    }
    row = b->chunk + b->chunk_rows * nc;
    for (i = 0; i < nc; i++) {
        bcol *c = &b->cols[i];
        const char *s = f[i];
        size_t len = lens[i];
        double d;

        if (is_missing(s, len)) {
            if (b->opt.missing == CSV_MISSING_ERROR) {
                set_err(err, line, (long)i + 1, "missing value in column '%.*s'",
                        SHOW(c->name));
                return CSV_EMISSING;
            }
            c->n_missing++;
            b->chunk_missing = 1;
            row[i] = NAN;
            continue;
        }
        if (c->type == CSV_COL_NUMBER) {
            if (parse_num(s, len, &d)) {
                float v;
                if (d >= FLOAT32_OVERFLOW || d <= -FLOAT32_OVERFLOW) {
                    set_err(err, line, (long)i + 1,
                            "number out of range (float32) in column '%.*s': %.*s",
                            SHOW(c->name), (int)utf8_prefix(s, len, 40), s);
                    return CSV_ESYNTAX;
                }
                v = (float)d;
                if (!c->overflow && note_text(b, c, s, len, v, b->n_rows))
                    return oom(err);
                note_value(c, v);
                c->sum += d;
                c->n_num++;
                row[i] = v;
                continue;
            }
            if (c->n_num > 0 && is_nonfinite(s, len)) {
                set_err(err, line, (long)i + 1,
                        "'%.*s' in number column '%.*s': not a finite number "
                        "(write a missing value as NA or leave the cell empty)",
                        (int)utf8_prefix(s, len, 20), s, SHOW(c->name));
                return CSV_ESYNTAX;
            }
            if ((rc = flip(b, c, i, line, err)))
                return rc;
        }
        if ((rc = category_cell(b, c, i, s, len, &row[i], line, err)))
            return rc;
    }
    b->n_rows++;
    if (++b->chunk_rows == CSV_CHUNK_ROWS)
        return emit(b, err, line);
    return 0;
}

static int on_record(void *ctx, char *const *f, const size_t *lens, size_t n, long line,
                     csv_error *err)
{
    csv_table_builder *b = ctx;
    int rc = process_record(b, f, lens, n, line, err);
    if (rc)
        b->cb_failed = 1;
    return rc;
}

/* ---------------------------------------------------------------- public */

csv_options csv_options_default(void)
{
    csv_options o;
    memset(&o, 0, sizeof o);
    o.delimiter = ',';
    o.header = 1;
    o.missing = CSV_MISSING_ERROR;
    o.max_rows = 10000000;
    o.max_cols = 1000;
    o.max_levels = 1000;
    o.max_field = 64 * 1024;
    o.max_line = 1024 * 1024;
    o.max_text = 32 * 1024 * 1024;
    return o;
}

csv_table_builder *csv_table_builder_new_stream(const csv_options *opt, csv_chunk_fn fn,
                                                void *ctx)
{
    csv_table_builder *b;
    size_t max_fields;

    if (!opt || !fn || opt->max_rows == 0 || opt->max_cols == 0 || opt->max_levels == 0 ||
        opt->max_line == 0)
        return NULL;
    b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->opt = *opt;
    b->sink = fn;
    b->sink_ctx = ctx;
    /* one more field than max_cols, so that a wide header is a limit error
     * and a wide row a ragged-row error, both reported by the table */
    max_fields = opt->max_cols < SIZE_MAX / 2 ? opt->max_cols + 1 : SIZE_MAX / 2;
    b->rd = csv_reader_new(opt->delimiter, opt->max_field, max_fields, on_record, b);
    if (!b->rd) {
        free(b);
        return NULL;
    }
    csv_reader_set_max_record(b->rd, opt->max_line);
    return b;
}

csv_table_builder *csv_table_builder_new(const csv_options *opt)
{
    csv_table_builder *b = csv_table_builder_new_stream(opt, memory_sink, NULL);
    if (b)
        b->sink_ctx = b;
    return b;
}

void csv_table_builder_free(csv_table_builder *b)
{
    size_t i;
    if (!b)
        return;
    csv_reader_free(b->rd);
    for (i = 0; i < b->n_cols; i++) {
        bcol *c = &b->cols[i];
        free(c->name);
        ts_free(&c->ts, 0);
        free(c->bkeys);
        free(c->bvals);
        free(c->exc);
    }
    free(b->cols);
    free(b->chunk);
    free(b->had_missing);
    free(b->data);
    free(b);
}

/* Turns a reader result into a table result, rewording reader errors. */
static int map_reader_rc(csv_table_builder *b, int rc, csv_error *err)
{
    char where[120];
    char msg[sizeof err->message];
    long col = err->column;

    if (b->cb_failed)
        return rc; /* ours, from on_record; err already filled */
    if (rc == -2)
        return oom(err);
    where[0] = '\0';
    if (b->have_header && col >= 1 && (size_t)col <= b->n_cols)
        snprintf(where, sizeof where, " ('%.*s')", SHOW(b->cols[col - 1].name));
    switch (csv_reader_error_kind(b->rd)) {
    case CSV_RERR_FIELD_TOO_LONG:
        set_err(err, err->line, col,
                "field longer than %zu bytes (limit max_field=%zu)%s",
                b->opt.max_field, b->opt.max_field, where);
        return CSV_ELIMIT;
    case CSV_RERR_RECORD_TOO_LONG:
        /* about the whole row: no column (the reader's is only where the
         * count ran over) */
        set_err(err, err->line, 0, "line longer than %zu bytes (limit max_line=%zu)",
                b->opt.max_line, b->opt.max_line);
        return CSV_ELIMIT;
    case CSV_RERR_TOO_MANY_FIELDS:
        if (!b->have_header) {
            set_err(err, err->line, (long)b->opt.max_cols + 1,
                    "more than %zu columns (limit max_columns=%zu)",
                    b->opt.max_cols, b->opt.max_cols);
            return CSV_ELIMIT;
        }
        set_err(err, err->line, 0, "the row has more than %zu fields, expected %zu",
                b->opt.max_cols + 1, b->n_cols);
        return CSV_ESYNTAX;
    default:
        memcpy(msg, err->message, sizeof msg);
        set_err(err, err->line, col, "%s%s", msg, where);
        return CSV_ESYNTAX;
    }
}

int csv_table_builder_feed(csv_table_builder *b, const char *buf, size_t len, csv_error *err)
{
    csv_error dummy;
    int rc;

    if (!err)
        err = &dummy;
    if (b->failed) {
        *err = b->saved;
        return b->failed;
    }
    rc = csv_reader_feed(b->rd, buf, len, err);
    if (rc) {
        rc = map_reader_rc(b, rc, err);
        b->failed = rc;
        b->saved = *err;
    }
    return rc;
}

/* missing=fill: each column's value (mean of its numbers, or its most
 * frequent level, the first seen on a tie). */
static int fill_values(csv_table_builder *b, csv_error *err)
{
    size_t i, k;

    for (i = 0; i < b->n_cols; i++) {
        bcol *c = &b->cols[i];
        if (c->n_missing == 0)
            continue;
        if (c->type == CSV_COL_NUMBER) {
            if (c->n_num == 0) {
                set_err(err, 0, (long)i + 1,
                        "column '%.*s' has only missing values: nothing to fill them with",
                        SHOW(c->name));
                return CSV_EMISSING;
            }
            c->fill = (float)(c->sum / (double)c->n_num);
        } else {
            size_t best = 0;
            for (k = 1; k < c->ts.n; k++)
                if (c->ts.counts[k] > c->ts.counts[best])
                    best = k;
            c->fill = (float)best;
        }
        c->n_filled = c->n_missing;
    }
    return 0;
}

/* The statistics of column c as stored, into o. */
static int column_stats(bcol *c, csv_column *o)
{
    if (c->type == CSV_COL_NUMBER) {
        double n;
        if (c->n_filled) {
            double k = (double)c->n_filled, d;
            if (!c->have_shift) {
                c->have_shift = 1;
                c->shift = c->fill;
                c->vmin = c->vmax = c->fill;
            }
            d = (double)c->fill - c->shift;
            c->s1 += k * d;
            c->s2 += k * d * d;
            if (c->fill < c->vmin)
                c->vmin = c->fill;
            if (c->fill > c->vmax)
                c->vmax = c->fill;
        }
        n = (double)(c->n_num + c->n_filled);
        if (n > 0) {
            double var = (c->s2 - c->s1 * c->s1 / n) / n;
            o->min = c->vmin;
            o->max = c->vmax;
            o->mean = c->shift + c->s1 / n;
            o->std = var > 0 ? sqrt(var) : 0;
        }
        return 0;
    }
    o->counts = malloc((c->ts.n ? c->ts.n : 1) * sizeof *o->counts);
    if (!o->counts)
        return -1;
    if (c->ts.n)
        memcpy(o->counts, c->ts.counts, c->ts.n * sizeof *o->counts);
    if (c->n_filled)
        o->counts[(size_t)c->fill] += c->n_filled;
    return 0;
}

int csv_table_builder_finish(csv_table_builder *b, csv_table **out, csv_error *err)
{
    csv_error dummy;
    csv_table *t = NULL;
    size_t i, s;
    int rc;

    if (!err)
        err = &dummy;
    if (b->failed) {
        *err = b->saved;
        return b->failed;
    }
    rc = csv_reader_finish(b->rd, err);
    if (rc) {
        rc = map_reader_rc(b, rc, err);
        goto fail;
    }
    rc = CSV_EEMPTY;
    if (!b->have_header) {
        set_err(err, 0, 0, b->opt.header ? "empty input: no header row" : "empty input: no rows");
        goto fail;
    }
    if (b->n_rows == 0) {
        if (b->n_dropped)
            set_err(err, 0, 0, "no data rows left: all %zu were dropped for missing values",
                    b->n_dropped);
        else
            set_err(err, 0, 0, "no data rows after the header");
        goto fail;
    }
    if (b->opt.missing == CSV_MISSING_FILL && (rc = fill_values(b, err)))
        goto fail;

    rc = CSV_ENOMEM;
    t = calloc(1, sizeof *t);
    if (!t || !(t->cols = calloc(b->n_cols, sizeof *t->cols))) {
        free(t);
        t = NULL;
        oom(err);
        goto fail;
    }
    t->n_cols = b->n_cols;
    for (i = 0; i < b->n_cols; i++)
        if (column_stats(&b->cols[i], &t->cols[i])) {
            oom(err);
            goto fail;
        }

    /* The last chunk, fixed while still here; the others are stale below. */
    b->finished = 1;
    b->stale_below = b->seq;
    if (b->chunk_rows) {
        fix_rows(b, b->seq, b->chunk, b->chunk_rows);
        if ((rc = emit(b, err, 0)))
            goto fail;
    }
    if (b->sink == memory_sink)
        for (s = 0; s < b->stale_below; s++)
            if (csv_table_builder_chunk_stale(b, s))
                fix_rows(b, s, b->data + s * CSV_CHUNK_ROWS * b->n_cols, CSV_CHUNK_ROWS);

    t->n_rows = b->n_rows;
    t->n_dropped = b->n_dropped;
    if (b->sink == memory_sink) {
        t->data = b->data;
        b->data = NULL;
        if (b->data_cap > b->n_rows) { /* give back the slack */
            float *d = realloc(t->data, b->n_rows * b->n_cols * sizeof *d);
            if (d)
                t->data = d;
        }
    }
    for (i = 0; i < b->n_cols; i++) {
        bcol *c = &b->cols[i];
        csv_column *o = &t->cols[i];
        o->name = c->name;
        c->name = NULL;
        o->type = c->type;
        o->n_missing = c->n_missing;
        o->n_filled = c->n_filled;
        if (c->type == CSV_COL_CATEGORY) {
            o->n_levels = c->ts.n;
            o->levels = c->ts.texts;
            c->ts.texts = NULL;
            c->ts.n = 0; /* the texts now belong to the table */
        }
    }
    *out = t;
    b->failed = CSV_EEMPTY; /* finished: not to be fed again */
    set_err(&b->saved, 0, 0, "table already finished");
    return 0;
fail:
    csv_table_free(t);
    b->finished = 0;
    b->failed = rc;
    b->saved = *err;
    return rc;
}

void csv_table_free(csv_table *t)
{
    size_t i, k;
    if (!t)
        return;
    for (i = 0; t->cols && i < t->n_cols; i++) {
        free(t->cols[i].name);
        for (k = 0; k < t->cols[i].n_levels; k++)
            free(t->cols[i].levels[k]);
        free(t->cols[i].levels);
        free(t->cols[i].counts);
    }
    free(t->cols);
    free(t->data);
    free(t);
}
