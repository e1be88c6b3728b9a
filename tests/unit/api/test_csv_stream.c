/*
 * tests/unit/api/test_csv_stream.c — the streaming side of the table builder:
 * chunks handed to a sink as they fill, chunks made stale by what only the
 * end reveals (a column that turned into a category late, missing=fill) and
 * their fix-up, statistics kept as rows stream, the record-length and text
 * budget limits, and a sink that refuses.
 *
 * The oracle is deliberately naive: every cell kept as text, the column
 * types decided after the last row, levels numbered in order of first
 * appearance, fill values and statistics computed from the final matrix.
 * Streaming (chunks + fix-ups) and the in-memory table must both equal it
 * bit for bit, over many random multi-chunk tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/csv_table.h"
#include "test_csv.h"

/* ------------------------------------------------------------ a streaming sink */

typedef struct {
    float *data;
    size_t rows, cap, cols;
    size_t next_seq;
    int refuse_at; /* refuse chunk seq == refuse_at - 1 (0: never) */
} sink;

static int sink_fn(void *ctx, size_t seq, const float *rows, size_t n_rows, size_t n_cols)
{
    sink *s = ctx;
    ck_assert_uint_eq(seq, s->next_seq);
    ck_assert(n_rows >= 1 && n_rows <= CSV_CHUNK_ROWS);
    ck_assert_uint_eq(s->rows, seq * CSV_CHUNK_ROWS); /* all chunks before were full */
    if (s->refuse_at && seq + 1 == (size_t)s->refuse_at)
        return 1;
    s->next_seq++;
    s->cols = n_cols;
    if (s->rows + n_rows > s->cap) {
        s->cap = (s->rows + n_rows) * 2;
        s->data = realloc(s->data, s->cap * n_cols * sizeof *s->data);
        ck_assert_ptr_nonnull(s->data);
    }
    memcpy(s->data + s->rows * n_cols, rows, n_rows * n_cols * sizeof *rows);
    s->rows += n_rows;
    return 0;
}

/* Streams in (in pieces of `piece` bytes), finishes, fixes stale chunks as
 * a store would. Returns rc; on success *out (no data) and s->data. */
static int stream(const char *in, size_t len, const csv_options *o, size_t piece, sink *s,
                  csv_table **out, csv_error *err)
{
    csv_table_builder *b = csv_table_builder_new_stream(o, sink_fn, s);
    size_t off = 0, seq;
    int rc = 0;

    ck_assert_ptr_nonnull(b);
    memset(s, 0, sizeof *s);
    while (off < len && rc == 0) {
        size_t n = len - off < piece ? len - off : piece;
        rc = csv_table_builder_feed(b, in + off, n, err);
        off += n;
    }
    if (rc == 0)
        rc = csv_table_builder_finish(b, out, err);
    if (rc == 0) {
        ck_assert_ptr_null((*out)->data);
        ck_assert_uint_eq(s->rows, (*out)->n_rows);
        ck_assert_uint_eq(csv_table_builder_chunks(b), (s->rows + CSV_CHUNK_ROWS - 1) / CSV_CHUNK_ROWS);
        for (seq = 0; seq * CSV_CHUNK_ROWS < s->rows; seq++)
            if (csv_table_builder_chunk_stale(b, seq))
                csv_table_builder_fix_chunk(b, seq, s->data + seq * CSV_CHUNK_ROWS * s->cols,
                                            CSV_CHUNK_ROWS);
        /* the last chunk was fixed before it left */
        ck_assert_int_eq(csv_table_builder_chunk_stale(b, (s->rows - 1) / CSV_CHUNK_ROWS), 0);
    }
    csv_table_builder_free(b);
    return rc;
}

static int whole(const char *in, size_t len, const csv_options *o, csv_table **out,
                 csv_error *err)
{
    csv_table_builder *b = csv_table_builder_new(o);
    int rc;
    ck_assert_ptr_nonnull(b);
    rc = csv_table_builder_feed(b, in, len, err);
    if (rc == 0)
        rc = csv_table_builder_finish(b, out, err);
    csv_table_builder_free(b);
    return rc;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ------------------------------------------------------------ the oracle */

/* The vocabulary: numbers (two spellings of 1, of 0 and -0 as texts), texts,
 * missing. */
static const char *const NUMS[] = {"1", "1.0", "2", "-0", "0", "2.5e1", "7", "0.1", "1e0"};
static const char *const TEXTS[] = {"abc", "x", "z"};
static const char *const MISSING[] = {"NA", "", "?"};
#define N_NUMS (sizeof NUMS / sizeof NUMS[0])

typedef struct {
    size_t rows, cols;
    const char **cell; /* [rows][cols], NULL = missing */
} grid;

static int is_num_text(const char *s)
{
    size_t i;
    for (i = 0; i < N_NUMS; i++)
        if (!strcmp(s, NUMS[i]))
            return 1;
    return 0;
}

/* What the builder must give, computed the slow obvious way. */
static void oracle(const grid *g, csv_missing policy, float **data_out, size_t *rows_out,
                   int *is_cat, size_t *n_levels)
{
    size_t r, c, k, n = 0;
    float *d = malloc(g->rows * g->cols * sizeof *d);
    char *keep = malloc(g->rows);

    ck_assert_ptr_nonnull(d);
    for (r = 0; r < g->rows; r++) {
        keep[r] = 1;
        if (policy == CSV_MISSING_DROP)
            for (c = 0; c < g->cols; c++)
                if (!g->cell[r * g->cols + c])
                    keep[r] = 0;
    }
    for (c = 0; c < g->cols; c++) {
        const char *lv[64];
        size_t nl = 0, cnt[64] = {0}, row = 0, n_num = 0;
        double sum = 0;
        is_cat[c] = 0;
        for (r = 0; r < g->rows; r++) {
            const char *s = g->cell[r * g->cols + c];
            if (keep[r] && s && !is_num_text(s))
                is_cat[c] = 1;
        }
        for (r = 0; r < g->rows; r++) {
            const char *s = g->cell[r * g->cols + c];
            float v = NAN;
            if (!keep[r])
                continue;
            if (s && is_cat[c]) {
                for (k = 0; k < nl && strcmp(lv[k], s); k++)
                    ;
                if (k == nl)
                    lv[nl++] = s;
                cnt[k]++;
                v = (float)k;
            } else if (s) {
                double x = strtod(s, NULL);
                sum += x;
                n_num++;
                v = (float)x;
            }
            d[row++ * g->cols + c] = v;
        }
        n = row;
        n_levels[c] = nl;
        if (policy == CSV_MISSING_FILL) {
            float f;
            if (is_cat[c]) {
                size_t best = 0;
                for (k = 1; k < nl; k++)
                    if (cnt[k] > cnt[best])
                        best = k;
                f = (float)best;
            } else {
                f = (float)(sum / (double)n_num);
            }
            for (r = 0; r < n; r++)
                if (isnan(d[r * g->cols + c]))
                    d[r * g->cols + c] = f;
        }
    }
    free(keep);
    *data_out = d;
    *rows_out = n;
}

static char *render(const grid *g, size_t *len)
{
    size_t cap = 64 + g->rows * g->cols * 8, n = 0, r, c;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    for (c = 0; c < g->cols; c++)
        n += (size_t)snprintf(s + n, cap - n, "%sc%zu", c ? "," : "", c);
    s[n++] = '\n';
    for (r = 0; r < g->rows; r++) {
        for (c = 0; c < g->cols; c++) {
            const char *v = g->cell[r * g->cols + c];
            if (c)
                s[n++] = ',';
            if (!v) /* an empty cell alone on its line would be a blank line */
                v = MISSING[g->cols == 1 ? 0 : (r + c) % 3];
            memcpy(s + n, v, strlen(v));
            n += strlen(v);
        }
        s[n++] = '\n';
    }
    *len = n;
    return s;
}

/* Random multi-chunk tables: streaming, in-memory and oracle agree. */
START_TEST(stream_equals_whole_equals_oracle)
{
    unsigned seed = 4242;
    int k, n_flip_late = 0, n_fill = 0;

    for (k = 0; k < 24; k++) {
        grid g;
        csv_options o = csv_options_default();
        size_t r, c, len, n_ref, levels[4];
        int is_cat[4];
        float *ref;
        char *in;
        csv_table *t_s = NULL, *t_w = NULL;
        csv_error e;
        sink s;
        size_t flip_row[4];

        seed = seed * 1103515245u + 12345u;
        g.cols = 1 + (seed >> 16) % 4;
        g.rows = CSV_CHUNK_ROWS * (1 + (seed >> 20) % 3) + (seed >> 8) % 100;
        o.missing = (csv_missing)((seed >> 24) % 3);
        g.cell = malloc(g.rows * g.cols * sizeof *g.cell);
        ck_assert_ptr_nonnull(g.cell);
        for (c = 0; c < g.cols; c++) {
            seed = seed * 1103515245u + 12345u;
            /* where (if ever) this column meets text: often past a chunk */
            flip_row[c] = (seed >> 16) % 3 == 0 ? g.rows : (seed >> 10) % g.rows;
        }
        for (r = 0; r < g.rows; r++)
            for (c = 0; c < g.cols; c++) {
                const char **p = &g.cell[r * g.cols + c];
                seed = seed * 1103515245u + 12345u;
                if (o.missing != CSV_MISSING_ERROR && (seed >> 16) % 97 == 0)
                    *p = NULL;
                else if (r >= flip_row[c] && (seed >> 18) % 5 == 0)
                    *p = TEXTS[(seed >> 22) % 3];
                else
                    *p = NUMS[(seed >> 24) % N_NUMS];
            }
        for (c = 0; c < g.cols; c++) /* the turn itself */
            if (flip_row[c] < g.rows)
                g.cell[flip_row[c] * g.cols + c] = "abc";
        in = render(&g, &len);
        oracle(&g, o.missing, &ref, &n_ref, is_cat, levels);

        ck_assert_int_eq(stream(in, len, &o, 65536, &s, &t_s, &e), 0);
        ck_assert_int_eq(whole(in, len, &o, &t_w, &e), 0);
        ck_assert_uint_eq(t_s->n_rows, n_ref);
        ck_assert_uint_eq(t_w->n_rows, n_ref);
        for (c = 0; c < g.cols; c++) {
            ck_assert_int_eq(t_s->cols[c].type, is_cat[c] ? CSV_COL_CATEGORY : CSV_COL_NUMBER);
            ck_assert_uint_eq(t_s->cols[c].n_levels, levels[c]);
            if (is_cat[c] && flip_row[c] >= CSV_CHUNK_ROWS && flip_row[c] < g.rows)
                n_flip_late++;
        }
        n_fill += o.missing == CSV_MISSING_FILL;
        for (r = 0; r < n_ref * g.cols; r++) {
            ck_assert_msg(same_bits(s.data[r], ref[r]), "case %d cell %zu: stream %.9g, want %.9g",
                          k, r, (double)s.data[r], (double)ref[r]);
            ck_assert_msg(same_bits(t_w->data[r], ref[r]), "case %d cell %zu: whole %.9g, want %.9g",
                          k, r, (double)t_w->data[r], (double)ref[r]);
        }
        csv_table_free(t_s);
        csv_table_free(t_w);
        free(s.data);
        free(ref);
        free(in);
        free(g.cell);
    }
    ck_assert_int_gt(n_flip_late, 5); /* the hard case was exercised */
    ck_assert_int_gt(n_fill, 3);
}
END_TEST

/* "1" in chunk 0 and "1.0" (the same float) in chunk 1, text in chunk 2:
 * each old cell gets back its own spelling's level. */
START_TEST(spellings_survive_a_late_turn)
{
    size_t rows = 3 * CSV_CHUNK_ROWS, cap = rows * 8 + 16, n = 0, r;
    char *in = malloc(cap);
    csv_options o = csv_options_default();
    csv_table *t;
    csv_error e;
    sink s;

    n += (size_t)snprintf(in, cap, "v\n");
    for (r = 0; r < rows; r++) {
        const char *v = r == 2 * CSV_CHUNK_ROWS + 5 ? "zz" : r % 3 == 0 ? "1" : r % 3 == 1 ? "1.0" : "2";
        n += (size_t)snprintf(in + n, cap - n, "%s\n", v);
    }
    ck_assert_int_eq(stream(in, n, &o, 4096, &s, &t, &e), 0);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_CATEGORY);
    ck_assert_uint_eq(t->cols[0].n_levels, 4);
    ck_assert_str_eq(t->cols[0].levels[0], "1");
    ck_assert_str_eq(t->cols[0].levels[1], "1.0");
    ck_assert_str_eq(t->cols[0].levels[2], "2");
    ck_assert_str_eq(t->cols[0].levels[3], "zz");
    for (r = 0; r < rows; r++) {
        float want = r == 2 * CSV_CHUNK_ROWS + 5 ? 3.0f : (float)(r % 3);
        ck_assert_msg(s.data[r] == want, "row %zu: %g", r, (double)s.data[r]);
    }
    /* counts, the numeric phase included */
    ck_assert_uint_eq(t->cols[0].counts[0], rows / 3);
    ck_assert_uint_eq(t->cols[0].counts[3], 1);
    csv_table_free(t);
    free(s.data);
    free(in);
}
END_TEST

/* More cells spelled unlike their float's first text than the builder keeps:
 * the column may stay numeric, but cannot turn. */
START_TEST(spelling_budget)
{
    size_t rows = 140000, cap = rows * 6 + 32, n = 0, r;
    char *in = malloc(cap);
    csv_options o = csv_options_default();
    csv_table *t;
    csv_error e;
    sink s;

    n += (size_t)snprintf(in, cap, "v\n");
    for (r = 0; r < rows; r++)
        n += (size_t)snprintf(in + n, cap - n, "%s\n", r % 2 ? "1.0" : "1");
    ck_assert_int_eq(stream(in, n, &o, 65536, &s, &t, &e), 0);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    ck_assert(t->cols[0].mean == 1.0 && t->cols[0].std == 0.0);
    csv_table_free(t);
    free(s.data);
    n += (size_t)snprintf(in + n, cap - n, "oops\n");
    ck_assert_int_eq(stream(in, n, &o, 65536, &s, &t, &e), CSV_ELIMIT);
    ck_assert_int_eq(e.line, (long)rows + 2);
    ck_assert_int_eq(e.column, 1);
    ck_assert_msg(strstr(e.message, "column 'v'") && strstr(e.message, "1.0"), "%s", e.message);
    free(s.data);
    free(in);
}
END_TEST

START_TEST(statistics)
{
    csv_options o = csv_options_default();
    csv_table *t;
    csv_error e;
    sink s;
    const char *in = "x,c,y\n1,a,-2\n2,b,NA\n3,a,0.5\n4,?,1e3\n";

    o.missing = CSV_MISSING_FILL;
    ck_assert_int_eq(stream(in, strlen(in), &o, 3, &s, &t, &e), 0);
    ck_assert(t->cols[0].min == 1 && t->cols[0].max == 4);
    ck_assert_double_eq_tol(t->cols[0].mean, 2.5, 1e-12);
    ck_assert_double_eq_tol(t->cols[0].std, sqrt(1.25), 1e-12);
    ck_assert_uint_eq(t->cols[0].n_missing, 0);
    ck_assert_ptr_null(t->cols[0].counts);
    /* c: a twice, b once, ? filled with a */
    ck_assert_uint_eq(t->cols[1].n_levels, 2);
    ck_assert_uint_eq(t->cols[1].counts[0], 3);
    ck_assert_uint_eq(t->cols[1].counts[1], 1);
    ck_assert_uint_eq(t->cols[1].n_filled, 1);
    /* y: -2, 0.5, 1000 and their mean 332.833.. filled in */
    {
        double m = (-2 + 0.5 + 1000) / 3.0, f = (float)m, v[4] = {-2, f, 0.5, 1000}, mean = 0,
               sq = 0;
        int i;
        for (i = 0; i < 4; i++)
            mean += v[i] / 4;
        for (i = 0; i < 4; i++)
            sq += (v[i] - mean) * (v[i] - mean) / 4;
        ck_assert(t->cols[2].min == -2 && t->cols[2].max == 1000);
        ck_assert_double_eq_tol(t->cols[2].mean, mean, 1e-9);
        ck_assert_double_eq_tol(t->cols[2].std, sqrt(sq), 1e-9);
        ck_assert_uint_eq(t->cols[2].n_missing, 1);
        ck_assert_uint_eq(t->cols[2].n_filled, 1);
        ck_assert(s.data[1 * 3 + 2] == (float)m);
    }
    csv_table_free(t);
    free(s.data);
}
END_TEST

START_TEST(limits_of_lines_and_texts)
{
    csv_options o = csv_options_default();
    csv_table *t;
    csv_error e;
    sink s;
    char big[400];

    o.max_line = 16;
    ck_assert_int_eq(stream("a,b\n12345,678\n", 14, &o, 1, &s, &t, &e), 0);
    csv_table_free(t);
    free(s.data);
    ck_assert_int_eq(stream("a,b\n12345,678901234567\n", 23, &o, 1, &s, &t, &e), CSV_ELIMIT);
    ck_assert_int_eq(e.line, 2);
    ck_assert_int_eq(e.column, 0); /* about the whole row */
    ck_assert_str_eq(e.message, "line longer than 16 bytes (limit max_line=16)");
    /* counted across a quoted line break too */
    ck_assert_int_eq(stream("a\n\"123\n456789\n0123456\"\n", 23, &o, 1, &s, &t, &e), CSV_ELIMIT);
    ck_assert_int_eq(e.line, 4);

    o = csv_options_default();
    o.max_text = 64;
    memset(big, 'q', sizeof big);
    memcpy(big, "c\nshort\n", 8);
    big[8 + 70] = '\n';
    ck_assert_int_eq(stream(big, 8 + 71, &o, 7, &s, &t, &e), CSV_ELIMIT);
    ck_assert_int_eq(e.line, 3);
    ck_assert_msg(strstr(e.message, "limit max_text=64") != NULL, "%s", e.message);
    /* a number column past the text budget just stops remembering */
    {
        const char *in = "n\n1.000000000000000000000000000000000000000000000000000000000000000001\n2\n";
        ck_assert_int_eq(stream(in, strlen(in), &o, 5, &s, &t, &e), 0);
    }
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    csv_table_free(t);
    free(s.data);
}
END_TEST

START_TEST(a_refusing_sink_stops_the_parse)
{
    size_t rows = CSV_CHUNK_ROWS + 10, cap = rows * 4 + 8, n = 0, r;
    char *in = malloc(cap);
    csv_options o = csv_options_default();
    csv_table_builder *b;
    csv_table *t = NULL;
    csv_error e;
    sink s;
    int rc = 0;

    n += (size_t)snprintf(in, cap, "v\n");
    for (r = 0; r < rows; r++)
        n += (size_t)snprintf(in + n, cap - n, "%zu\n", r % 10);
    memset(&s, 0, sizeof s);
    s.refuse_at = 1; /* the first chunk */
    b = csv_table_builder_new_stream(&o, sink_fn, &s);
    rc = csv_table_builder_feed(b, in, n, &e);
    ck_assert_int_eq(rc, CSV_ESINK);
    ck_assert_int_eq(e.line, CSV_CHUNK_ROWS + 1);
    ck_assert_int_eq(csv_table_builder_finish(b, &t, &e), CSV_ESINK);
    ck_assert_ptr_null(t);
    csv_table_builder_free(b);

    /* the last chunk goes at finish: refused there too */
    memset(&s, 0, sizeof s);
    s.refuse_at = 2;
    b = csv_table_builder_new_stream(&o, sink_fn, &s);
    ck_assert_int_eq(csv_table_builder_feed(b, in, n, &e), 0);
    ck_assert_int_eq(csv_table_builder_finish(b, &t, &e), CSV_ESINK);
    ck_assert_ptr_null(t);
    csv_table_builder_free(b);
    free(s.data);
    free(in);
    ck_assert_ptr_null(csv_table_builder_new_stream(&o, NULL, NULL));
}
END_TEST

START_TEST(nonfinite_after_numbers)
{
    static const char *const bad[] = {"nan", "NaN", "-inf", "Infinity", "+INF"};
    csv_options o = csv_options_default();
    csv_table *t;
    csv_error e;
    sink s;
    char in[64];
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = snprintf(in, sizeof in, "a,x\nq,1.5\nr,%s\n", bad[i]);
        ck_assert_int_eq(stream(in, (size_t)n, &o, 2, &s, &t, &e), CSV_ESYNTAX);
        ck_assert_int_eq(e.line, 3);
        ck_assert_int_eq(e.column, 2);
        ck_assert_msg(strstr(e.message, "not a finite number") && strstr(e.message, bad[i]),
                      "%s", e.message);
    }
    /* first in its column, or after text: a level like any other */
    ck_assert_int_eq(stream("x\nnan\n1\n", strlen("x\nnan\n1\n"), &o, 3, &s, &t, &e), 0);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_CATEGORY);
    csv_table_free(t);
    free(s.data);
    ck_assert_int_eq(stream("x\n1\nabc\ninf\n", strlen("x\n1\nabc\ninf\n"), &o, 3, &s, &t, &e), 0);
    ck_assert_uint_eq(t->cols[0].n_levels, 3);
    csv_table_free(t);
    free(s.data);
    /* "nano" and "info" are words */
    ck_assert_int_eq(stream("x\n1\nnano\n", strlen("x\n1\nnano\n"), &o, 3, &s, &t, &e), 0);
    csv_table_free(t);
    free(s.data);
}
END_TEST

Suite *csv_stream_suite(void)
{
    Suite *s = suite_create("csv_stream");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stream_equals_whole_equals_oracle);
    tcase_add_test(tc, spellings_survive_a_late_turn);
    tcase_add_test(tc, spelling_budget);
    tcase_add_test(tc, statistics);
    tcase_add_test(tc, limits_of_lines_and_texts);
    tcase_add_test(tc, a_refusing_sink_stops_the_parse);
    tcase_add_test(tc, nonfinite_after_numbers);
    suite_add_tcase(s, tc);
    return s;
}
