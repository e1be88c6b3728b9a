/*
 * tests/unit/api/test_csv_table.c — CSV bytes to a typed table: header,
 * typing, strict numbers, the number-to-category flip, missing values,
 * limits, errors with their line and column, chunking, and the real datasets.
 * Every small case is parsed whole and byte by byte; both must agree.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/csv_table.h"
#include "test_csv.h"

#ifndef MTLD_DATA_DIR
#define MTLD_DATA_DIR "data"
#endif

/* ------------------------------------------------------------ helpers */

static int parse_chunked(const char *in, size_t len, const csv_options *opt, size_t chunk,
                         csv_table **out, csv_error *err)
{
    csv_table_builder *b = csv_table_builder_new(opt);
    size_t off = 0;
    int rc = 0;

    ck_assert_ptr_nonnull(b);
    memset(err, 0, sizeof *err);
    *out = NULL;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len && rc == 0) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = csv_table_builder_feed(b, in + off, n, err);
        off += n;
    }
    if (rc == 0)
        rc = csv_table_builder_finish(b, out, err);
    csv_table_builder_free(b);
    return rc;
}

static int same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void assert_same_table(const csv_table *a, const csv_table *b, const char *what)
{
    size_t i, k;
    ck_assert_msg(a->n_rows == b->n_rows && a->n_cols == b->n_cols, "%s: shape", what);
    ck_assert_msg(a->n_dropped == b->n_dropped, "%s: n_dropped", what);
    for (i = 0; i < a->n_cols; i++) {
        const csv_column *x = &a->cols[i], *y = &b->cols[i];
        ck_assert_msg(strcmp(x->name, y->name) == 0, "%s: name", what);
        ck_assert_msg(x->type == y->type && x->n_levels == y->n_levels, "%s: type", what);
        ck_assert_msg(x->n_missing == y->n_missing && x->n_filled == y->n_filled, "%s: miss",
                      what);
        for (k = 0; k < x->n_levels; k++)
            ck_assert_msg(strcmp(x->levels[k], y->levels[k]) == 0, "%s: level", what);
    }
    for (i = 0; i < a->n_rows * a->n_cols; i++)
        ck_assert_msg(same_float(a->data[i], b->data[i]), "%s: cell %zu: %g vs %g", what, i,
                      (double)a->data[i], (double)b->data[i]);
}

/* Parses whole and byte by byte; both must give the same result. */
static int parse_opt(const char *in, size_t len, const csv_options *opt, csv_table **out,
                     csv_error *err)
{
    csv_table *t1;
    csv_error e1;
    int rc = parse_chunked(in, len, opt, 0, out, err);
    int rc1 = parse_chunked(in, len, opt, 1, &t1, &e1);

    ck_assert_msg(rc == rc1, "whole rc %d (%s), bytewise rc %d (%s)", rc, err->message, rc1,
                  e1.message);
    if (rc == 0)
        assert_same_table(*out, t1, "bytewise");
    else
        ck_assert_msg(err->line == e1.line && err->column == e1.column &&
                          strcmp(err->message, e1.message) == 0,
                      "bytewise error differs: %s / %s", err->message, e1.message);
    csv_table_free(t1);
    return rc;
}

static csv_table *parse_ok(const char *in, const csv_options *opt)
{
    csv_options d = csv_options_default();
    csv_table *t;
    csv_error err;
    int rc = parse_opt(in, strlen(in), opt ? opt : &d, &t, &err);
    ck_assert_msg(rc == 0, "rc %d: %s (line %ld col %ld)", rc, err.message, err.line, err.column);
    return t;
}

/* Strict UTF-8 check (messages go into JSON). */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++, need, lo = 0x80, hi = 0xBF;
        if (c < 0x80)
            continue;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
            return 0;
        for (; need; need--, lo = 0x80, hi = 0xBF, p++)
            if (*p < lo || *p > hi)
                return 0;
    }
    return 1;
}

/* Expects error rc at line:col with exactly the message msg (if not NULL). */
static void expect_err_len(const char *in, size_t len, const csv_options *opt, int want_rc,
                           long line, long col, const char *msg)
{
    csv_options d = csv_options_default();
    csv_table *t;
    csv_error err;
    int rc = parse_opt(in, len, opt ? opt : &d, &t, &err);

    ck_assert_msg(rc == want_rc, "rc %d want %d: %s", rc, want_rc, err.message);
    ck_assert_ptr_null(t);
    ck_assert_msg(err.line == line && err.column == col, "at %ld:%ld want %ld:%ld (%s)",
                  err.line, err.column, line, col, err.message);
    ck_assert_msg(valid_utf8(err.message), "message not UTF-8: %s", err.message);
    if (msg)
        ck_assert_str_eq(err.message, msg);
}
#define expect_err(in, opt, rc, line, col, msg) expect_err_len(in, strlen(in), opt, rc, line, col, msg)

static float cell(const csv_table *t, size_t r, size_t c)
{
    ck_assert(r < t->n_rows && c < t->n_cols);
    return t->data[r * t->n_cols + c];
}

#define ASSERT_CELL(t, r, c, v)                                                       \
    ck_assert_msg(same_float(cell(t, r, c), (float)(v)), "cell %d,%d = %.9g, want %.9g", \
                  (int)(r), (int)(c), (double)cell(t, r, c), (double)(float)(v))

static void assert_levels(const csv_column *c, const char *const *want, size_t n)
{
    size_t i;
    ck_assert_int_eq(c->type, CSV_COL_CATEGORY);
    ck_assert_uint_eq(c->n_levels, n);
    for (i = 0; i < n; i++)
        ck_assert_str_eq(c->levels[i], want[i]);
}
#define LEVELS(c, ...)                                                                \
    do {                                                                              \
        const char *const w_[] = {__VA_ARGS__};                                      \
        assert_levels(c, w_, sizeof w_ / sizeof w_[0]);                               \
    } while (0)

/* ------------------------------------------------------------ typing */

START_TEST(categories_in_order_of_appearance)
{
    csv_table *t = parse_ok("id,color\n1,red\n2,blue\n3,red\n4,green\n5,blue\n", NULL);
    ck_assert_uint_eq(t->n_rows, 5);
    ck_assert_uint_eq(t->n_cols, 2);
    ck_assert_str_eq(t->cols[0].name, "id");
    ck_assert_str_eq(t->cols[1].name, "color");
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    ck_assert_uint_eq(t->cols[0].n_levels, 0);
    ck_assert_ptr_null(t->cols[0].levels);
    LEVELS(&t->cols[1], "red", "blue", "green");
    ASSERT_CELL(t, 0, 1, 0);
    ASSERT_CELL(t, 1, 1, 1);
    ASSERT_CELL(t, 2, 1, 0);
    ASSERT_CELL(t, 3, 1, 2);
    ASSERT_CELL(t, 4, 1, 1);
    ASSERT_CELL(t, 4, 0, 5);
    ck_assert_uint_eq(t->n_dropped, 0);
    csv_table_free(t);
}
END_TEST

START_TEST(number_column_flips_to_category)
{
    csv_table *t = parse_ok("x,y\n1.0,5\n2,6\n1.0,7\nabc,8\n2,9\n-0,1\n", NULL);
    LEVELS(&t->cols[0], "1.0", "2", "abc", "-0");
    ASSERT_CELL(t, 0, 0, 0);
    ASSERT_CELL(t, 1, 0, 1);
    ASSERT_CELL(t, 2, 0, 0);
    ASSERT_CELL(t, 3, 0, 2);
    ASSERT_CELL(t, 4, 0, 1);
    ASSERT_CELL(t, 5, 0, 3);
    ck_assert_int_eq(t->cols[1].type, CSV_COL_NUMBER);
    ASSERT_CELL(t, 3, 1, 8);
    csv_table_free(t);

    /* two texts of one float ("1", "1.0", "1e0") keep their own levels */
    t = parse_ok("x\n1\n1.0\n1\n2\n1e0\nz\n01\n1.0\n", NULL);
    LEVELS(&t->cols[0], "1", "1.0", "2", "1e0", "z", "01");
    ASSERT_CELL(t, 0, 0, 0);
    ASSERT_CELL(t, 1, 0, 1);
    ASSERT_CELL(t, 2, 0, 0);
    ASSERT_CELL(t, 3, 0, 2);
    ASSERT_CELL(t, 4, 0, 3);
    ASSERT_CELL(t, 5, 0, 4);
    ASSERT_CELL(t, 6, 0, 5);
    ASSERT_CELL(t, 7, 0, 1);
    csv_table_free(t);

    /* 0 and -0 are different texts (and different floats) */
    t = parse_ok("x\n0\n-0\n0.0\nq\n", NULL);
    LEVELS(&t->cols[0], "0", "-0", "0.0", "q");
    ASSERT_CELL(t, 2, 0, 2);
    csv_table_free(t);

    /* a number out of float range is just a level in a category column */
    t = parse_ok("x\na\n1e39\n", NULL);
    LEVELS(&t->cols[0], "a", "1e39");
    csv_table_free(t);
}
END_TEST

START_TEST(strict_numbers)
{
    static const char *const text[] = {
        "12abc", "0x10", "nan", "NaN", "inf", "-inf", "Infinity", "1e", "1e+", ".",
        "1.",    "+",    "-",   "1..2", "1e5.0", "1 2", "e5", ".e5", "0x1p3", "1d",
        "1f",    "--1",  "+-1", "1_000", "\xD9\xA1", "\xEF\xBC\x91", "1,5", "TRUE", "-.", "1e-"};
    static const struct {
        const char *in;
        double want;
    } num[] = {{"-.5", -0.5},  {"1e3", 1000},     {"+2", 2},          {"0", 0},
               {"007", 7},      {"1.25", 1.25},    {"1E-2", 0.01},     {".5e1", 5},
               {"0.1", 0.1},    {"-12.5e+2", -1250}, {"1e-50", 0},     {"3.4028235e38", FLT_MAX},
               {"123456789012345678901234567890", 1.2345678901234568e29},
               {"0.000000000000000000000000000000000000000000001", 1e-45},
               {"9007199254740993", 9007199254740992.0}, {"4.35", 4.35}, {"-0.0", -0.0}};
    csv_options o = csv_options_default();
    char buf[128];
    size_t i;

    o.delimiter = ';';
    for (i = 0; i < sizeof text / sizeof text[0]; i++) {
        csv_table *t;
        snprintf(buf, sizeof buf, "x;y\n%s;1\n", text[i]);
        t = parse_ok(buf, &o);
        ck_assert_msg(t->cols[0].type == CSV_COL_CATEGORY, "'%s' taken as a number", text[i]);
        LEVELS(&t->cols[0], text[i]);
        ck_assert_int_eq(t->cols[1].type, CSV_COL_NUMBER);
        csv_table_free(t);
    }
    for (i = 0; i < sizeof num / sizeof num[0]; i++) {
        csv_table *t;
        snprintf(buf, sizeof buf, "x\n%s\n", num[i].in);
        t = parse_ok(buf, &o);
        ck_assert_msg(t->cols[0].type == CSV_COL_NUMBER, "'%s' not a number", num[i].in);
        ck_assert_msg(same_float(cell(t, 0, 0), (float)num[i].want), "'%s' = %.9g, want %.9g",
                      num[i].in, (double)cell(t, 0, 0), (double)(float)num[i].want);
        csv_table_free(t);
    }
    /* a quoted number with blanks inside the quotes is text */
    {
        csv_table *t = parse_ok("x\n\" 1\"\n", NULL);
        LEVELS(&t->cols[0], " 1");
        csv_table_free(t);
    }
    expect_err("a,x\n1,1\n2,1e39\n", NULL, CSV_ESYNTAX, 3, 2,
               "number out of range (float32) in column 'x': 1e39");
    expect_err("x\n-3.4028236e38\n", NULL, CSV_ESYNTAX, 2, 1, NULL);
    expect_err("x\n1e400\n", NULL, CSV_ESYNTAX, 2, 1, NULL);
    expect_err("x\n-1e99999999999999\n", NULL, CSV_ESYNTAX, 2, 1, NULL);
}
END_TEST

/* An independent reading of the grammar, for the random test below. */
static int ref_is_number(const char *s)
{
    size_t i = 0, a = 0, b = 0, c = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (s[i] >= '0' && s[i] <= '9')
        i++, a++;
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, b++;
        if (b == 0)
            return 0;
    }
    if (a + b == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, c++;
        if (c == 0)
            return 0;
    }
    return s[i] == '\0';
}

START_TEST(strict_numbers_random)
{
    static const char alphabet[] = "0123456789000111+-..eE5x";
    csv_options o = csv_options_default();
    unsigned seed = 4242;
    char cellbuf[40], in[64];
    int k, n_num = 0;

    for (k = 0; k < 6000; k++) {
        size_t len, i;
        csv_table *t;
        csv_error err;
        int rc;

        seed = seed * 1103515245u + 12345u;
        len = 1 + (seed >> 16) % (k % 3 == 0 ? 30 : 9);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            cellbuf[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        cellbuf[len] = '\0';
        snprintf(in, sizeof in, "x\n%s\n", cellbuf);
        rc = parse_chunked(in, strlen(in), &o, 0, &t, &err);
        if (ref_is_number(cellbuf)) {
            double d = strtod(cellbuf, NULL);
            if (d >= 0x1.ffffffp127 || d <= -0x1.ffffffp127) {
                ck_assert_msg(rc == CSV_ESYNTAX, "'%s' should be out of range", cellbuf);
                continue;
            }
            ck_assert_msg(rc == 0, "'%s': %s", cellbuf, err.message);
            ck_assert_msg(t->cols[0].type == CSV_COL_NUMBER, "'%s' should be a number", cellbuf);
            ck_assert_msg(same_float(cell(t, 0, 0), (float)d), "'%s' = %.9g, strtod %.9g",
                          cellbuf, (double)cell(t, 0, 0), (double)(float)d);
            n_num++;
        } else {
            ck_assert_msg(rc == 0, "'%s': %s", cellbuf, err.message);
            ck_assert_msg(t->cols[0].type == CSV_COL_CATEGORY, "'%s' should be text", cellbuf);
            ck_assert_str_eq(t->cols[0].levels[0], cellbuf);
        }
        csv_table_free(t);
    }
    ck_assert_int_gt(n_num, 500); /* the test did test numbers */
}
END_TEST

/* Random small tables: every chunking and every policy gives the same. */
START_TEST(random_tables_chunk_invariant)
{
    static const char *const cells[] = {"1", "1.0", "-0", "2.5e1", "abc", "NA", "", "\"q,\"",
                                        "x", "7", " 3 ", "\"\"\"\"", "\xC3\xA9", "?", "1e39"};
    unsigned seed = 99;
    char in[512];
    int k, n_ok = 0;

    for (k = 0; k < 1500; k++) {
        csv_options o = csv_options_default();
        size_t len, r, c, rows, cols;
        csv_table *ref, *t;
        csv_error eref, err;
        int rref, rc;
        size_t chunk;

        seed = seed * 1103515245u + 12345u;
        rows = 1 + (seed >> 16) % 6;
        cols = 1 + (seed >> 20) % 3;
        o.missing = (csv_missing)((seed >> 24) % 3);
        o.max_levels = 2 + (seed >> 26) % 4;
        memcpy(in, "a,b,c", 2 * cols - 1); /* header: a / a,b / a,b,c */
        in[2 * cols - 1] = '\n';
        len = 2 * cols;
        for (r = 0; r < rows; r++) {
            size_t ncell = cols;
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 17 == 0)
                ncell = cols + 1; /* a ragged row now and then */
            for (c = 0; c < ncell; c++) {
                const char *v;
                seed = seed * 1103515245u + 12345u;
                v = cells[(seed >> 16) % (sizeof cells / sizeof cells[0])];
                if (c)
                    in[len++] = ',';
                memcpy(in + len, v, strlen(v));
                len += strlen(v);
            }
            in[len++] = (seed >> 28) % 3 == 0 ? '\r' : '\n';
        }
        rref = parse_chunked(in, len, &o, 0, &ref, &eref);
        n_ok += rref == 0;
        for (chunk = 1; chunk <= 5; chunk += 2) {
            rc = parse_chunked(in, len, &o, chunk, &t, &err);
            ck_assert_msg(rc == rref, "case %d chunk %zu: rc %d vs %d", k, chunk, rc, rref);
            if (rc == 0) {
                assert_same_table(ref, t, "random table");
                csv_table_free(t);
            } else {
                ck_assert_msg(err.line == eref.line && err.column == eref.column &&
                                  strcmp(err.message, eref.message) == 0,
                              "case %d: %s vs %s", k, err.message, eref.message);
            }
        }
        csv_table_free(ref);
    }
    ck_assert_int_gt(n_ok, 300); /* both outcomes are exercised */
    ck_assert_int_lt(n_ok, 1200);
}
END_TEST

/* ------------------------------------------------------------ header */

START_TEST(header_names)
{
    csv_options o = csv_options_default();
    csv_table *t = parse_ok(" a ,\" b \",\"c\"\"d\", \xC3\xA9t\xC3\xA9 \n1,2,3,4\n", NULL);
    ck_assert_str_eq(t->cols[0].name, "a");
    ck_assert_str_eq(t->cols[1].name, "b");
    ck_assert_str_eq(t->cols[2].name, "c\"d");
    ck_assert_str_eq(t->cols[3].name, "\xC3\xA9t\xC3\xA9");
    csv_table_free(t);

    o.header = 0;
    t = parse_ok("1,x\n2,y\n", &o);
    ck_assert_uint_eq(t->n_rows, 2);
    ck_assert_str_eq(t->cols[0].name, "c0");
    ck_assert_str_eq(t->cols[1].name, "c1");
    LEVELS(&t->cols[1], "x", "y");
    ASSERT_CELL(t, 0, 0, 1);
    csv_table_free(t);

    expect_err("a,,b\n1,2,3\n", NULL, CSV_EHEADER, 1, 2, "column 2 has an empty name");
    expect_err("a, \"  \" ,b\n1,2,3\n", NULL, CSV_EHEADER, 1, 2, "column 2 has an empty name");
    expect_err("\n\na,b,\n", NULL, CSV_EHEADER, 3, 3, "column 3 has an empty name");
    expect_err("a,b,a\n1,2,3\n", NULL, CSV_EHEADER, 1, 3,
               "column 3 has the same name 'a' as column 1");
    expect_err("x,a,\" a\"\n1,2,3\n", NULL, CSV_EHEADER, 1, 3,
               "column 3 has the same name 'a' as column 2");

    /* a long name of 2-, 3- and 4-byte characters is shortened on a whole
     * character, in every message that shows it */
    {
        char name[400], in[1000];
        size_t k, len = 0;
        for (k = 0; k < 33; k++) {
            memcpy(name + len, "\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E", 9);
            len += 9;
        }
        name[len] = '\0';
        for (k = 0; k < 4; k++) {
            snprintf(in, sizeof in, "a,%s\n1,%s\n", name,
                     k == 0 ? "1e39" : k == 1 ? "NA" : k == 2 ? "\"x\"y" : "1,2");
            expect_err(in, NULL, k == 0 ? CSV_ESYNTAX : k == 1 ? CSV_EMISSING : CSV_ESYNTAX,
                       2, k == 3 ? 0 : 2, NULL);
        }
        snprintf(in, sizeof in, "%s,%s\n", name, name);
        expect_err(in, NULL, CSV_EHEADER, 1, 2, NULL);
    }
}
END_TEST

START_TEST(ragged_rows)
{
    csv_options o = csv_options_default();
    expect_err("a,b\n1,2\n3\n", NULL, CSV_ESYNTAX, 3, 0, "the row has 1 fields, expected 2");
    expect_err("a,b\n1,2\n\n3,4,5\n", NULL, CSV_ESYNTAX, 4, 0, "the row has 3 fields, expected 2");
    expect_err("a,b\n\"x\ny\"\n", NULL, CSV_ESYNTAX, 2, 0, "the row has 1 fields, expected 2");
    o.max_cols = 3;
    expect_err("a,b\n1,2,3,4,5\n", &o, CSV_ESYNTAX, 2, 0,
               "the row has more than 4 fields, expected 2");
    o.header = 0;
    expect_err("1,2\n3\n", &o, CSV_ESYNTAX, 2, 0, "the row has 1 fields, expected 2");
}
END_TEST

START_TEST(syntax_errors_located)
{
    expect_err("a,b\n1,\"x\"y\n", NULL, CSV_ESYNTAX, 2, 2,
               "text after closing quote ('b')");
    expect_err("a,b\n1,2\n3,\"4\n5\n", NULL, CSV_ESYNTAX, 3, 2,
               "unterminated quoted field ('b')");
    expect_err_len("a,b\n1,\xC3\x28\n", 9, NULL, CSV_ESYNTAX, 2, 2,
                   "invalid UTF-8 ('b')");
    expect_err_len("a,b\n1,2\0\n", 9, NULL, CSV_ESYNTAX, 2, 2,
                   "NUL byte in input ('b')");
    expect_err_len("a,\xFF\n", 4, NULL, CSV_ESYNTAX, 1, 2, "invalid UTF-8");
}
END_TEST

/* ------------------------------------------------------------ missing values */

START_TEST(missing_error)
{
    static const char *const tokens[] = {"", "NA", "N/A", "?", "null", "NULL", "\"\""};
    static const char *const not_missing[] = {"na", "Null", "None", "-", "n/a", "\" NA\""};
    char buf[64], msg[100];
    size_t i;

    for (i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        snprintf(buf, sizeof buf, "a,b\n1,2\n3,%s\n", tokens[i]);
        expect_err(buf, NULL, CSV_EMISSING, 3, 2, "missing value in column 'b'");
        snprintf(buf, sizeof buf, "a,b\n1,2\n\n%s,4\n", tokens[i]);
        snprintf(msg, sizeof msg, "missing value in column 'a'");
        expect_err(buf, NULL, CSV_EMISSING, 4, 1, msg);
    }
    for (i = 0; i < sizeof not_missing / sizeof not_missing[0]; i++) {
        csv_table *t;
        snprintf(buf, sizeof buf, "a,b\n1,2\n3,%s\n", not_missing[i]);
        t = parse_ok(buf, NULL);
        ck_assert_int_eq(t->cols[1].type, CSV_COL_CATEGORY);
        ck_assert_uint_eq(t->cols[1].n_missing, 0);
        csv_table_free(t);
    }
}
END_TEST

START_TEST(missing_drop)
{
    csv_options o = csv_options_default();
    csv_table *t;

    o.missing = CSV_MISSING_DROP;
    t = parse_ok("a,b\n1,x\nNA,y\n3,?\n5,z\n,\n7,x\n", &o);
    ck_assert_uint_eq(t->n_rows, 3);
    ck_assert_uint_eq(t->n_dropped, 3);
    ck_assert_uint_eq(t->cols[0].n_missing, 2);
    ck_assert_uint_eq(t->cols[1].n_missing, 2);
    ck_assert_uint_eq(t->cols[0].n_filled, 0);
    LEVELS(&t->cols[1], "x", "z"); /* "y" was only in a dropped row */
    ASSERT_CELL(t, 0, 0, 1);
    ASSERT_CELL(t, 1, 0, 5);
    ASSERT_CELL(t, 2, 0, 7);
    ASSERT_CELL(t, 2, 1, 0);
    csv_table_free(t);

    /* a dropped row cannot turn a column into a category */
    t = parse_ok("a,b\n1,2\nabc,NA\n3,4\n", &o);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    csv_table_free(t);

    expect_err("a,b\n1,NA\nnull,2\n", &o, CSV_EEMPTY, 0, 0,
               "no data rows left: all 2 were dropped for missing values");
}
END_TEST

START_TEST(missing_fill)
{
    csv_options o = csv_options_default();
    csv_table *t;

    o.missing = CSV_MISSING_FILL;
    t = parse_ok("a,b\n1,x\nNA,y\n2,?\n4,y\n0.5,x\n", &o);
    ck_assert_uint_eq(t->n_rows, 5);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    ASSERT_CELL(t, 1, 0, 1.875); /* (1 + 2 + 4 + 0.5) / 4 */
    ASSERT_CELL(t, 0, 0, 1);
    ck_assert_uint_eq(t->cols[0].n_missing, 1);
    ck_assert_uint_eq(t->cols[0].n_filled, 1);
    LEVELS(&t->cols[1], "x", "y");
    ASSERT_CELL(t, 2, 1, 0); /* x and y both twice: the first seen wins */
    ck_assert_uint_eq(t->cols[1].n_missing, 1);
    ck_assert_uint_eq(t->cols[1].n_filled, 1);
    csv_table_free(t);

    /* the mean is over the original numbers */
    t = parse_ok("a\n0.1\n\n0.2\nN/A\n0.4\n", &o);
    ck_assert_uint_eq(t->n_rows, 4); /* the blank line is no row; N/A is */
    ASSERT_CELL(t, 2, 0, (0.1 + 0.2 + 0.4) / 3);
    ck_assert_uint_eq(t->cols[0].n_filled, 1);
    csv_table_free(t);

    /* mode of a column that flipped: counts of the numeric phase kept */
    t = parse_ok("c\n1\nNA\n1.0\nz\n1\nNULL\n", &o);
    ck_assert_uint_eq(t->n_rows, 6);
    LEVELS(&t->cols[0], "1", "1.0", "z");
    ASSERT_CELL(t, 1, 0, 0);
    ASSERT_CELL(t, 2, 0, 1);
    ASSERT_CELL(t, 3, 0, 2);
    ASSERT_CELL(t, 5, 0, 0);
    ck_assert_uint_eq(t->cols[0].n_filled, 2);
    csv_table_free(t);

    /* the most frequent level, not the first */
    t = parse_ok("c\nu\nv\nv\n?\n", &o);
    ASSERT_CELL(t, 3, 0, 1);
    csv_table_free(t);

    expect_err("a,b\n1,\n2,NA\n", &o, CSV_EMISSING, 0, 2,
               "column 'b' has only missing values: nothing to fill them with");
}
END_TEST

/* ------------------------------------------------------------ limits and empties */

START_TEST(limits)
{
    csv_options o = csv_options_default();
    csv_table *t;

    o.max_rows = 2;
    t = parse_ok("a\n1\n2\n", &o);
    csv_table_free(t);
    expect_err("a\n1\n2\n\n3\n", &o, CSV_ELIMIT, 5, 0,
               "more than 2 data rows (limit max_rows=2)");
    o.missing = CSV_MISSING_DROP; /* dropped rows do not count */
    t = parse_ok("a\n1\nNA\n2\n", &o);
    ck_assert_uint_eq(t->n_rows, 2);
    csv_table_free(t);

    o = csv_options_default();
    o.max_cols = 2;
    t = parse_ok("a,b\n1,2\n", &o);
    csv_table_free(t);
    expect_err("a,b,c\n1,2,3\n", &o, CSV_ELIMIT, 1, 3, "more than 2 columns (limit max_columns=2)");
    expect_err("a,b,c,d,e\n", &o, CSV_ELIMIT, 1, 3, "more than 2 columns (limit max_columns=2)");
    o.header = 0;
    expect_err("\n1,2,3\n", &o, CSV_ELIMIT, 2, 3, "more than 2 columns (limit max_columns=2)");

    o = csv_options_default();
    o.max_levels = 2;
    t = parse_ok("c\na\nb\na\n", &o);
    csv_table_free(t);
    expect_err("c\na\nb\na\nc\n", &o, CSV_ELIMIT, 5, 1,
               "column 'c' has more than 2 distinct values (limit max_levels=2)");
    /* a number column may have any number of distinct values ... */
    t = parse_ok("x\n1\n2\n3\n4\n5\n", &o);
    ck_assert_int_eq(t->cols[0].type, CSV_COL_NUMBER);
    csv_table_free(t);
    /* ... but cannot then flip: its texts were not kept */
    expect_err("x\n1\n2\n3\na\n", &o, CSV_ELIMIT, 5, 1,
               "column 'x' has more than 2 distinct values (limit max_levels=2)");
    /* flipping with exactly max_levels texts, then one more level */
    expect_err("x\n1\n2\na\n", &o, CSV_ELIMIT, 4, 1, NULL);
    t = parse_ok("x\n1\n1\nb\n", &o);
    LEVELS(&t->cols[0], "1", "b");
    csv_table_free(t);

    o = csv_options_default();
    o.max_field = 3;
    t = parse_ok("abc,d\n\"a\"\"b\",\"xyz\"\n", &o);
    csv_table_free(t);
    expect_err("ab,abcd\n", &o, CSV_ELIMIT, 1, 2,
               "field longer than 3 bytes (limit max_field=3)");
    expect_err("a,b\n1,\"xy\nzw\"\n", &o, CSV_ELIMIT, 3, 2,
               "field longer than 3 bytes (limit max_field=3) ('b')");
}
END_TEST

START_TEST(empty_inputs)
{
    csv_options o = csv_options_default();
    expect_err("", NULL, CSV_EEMPTY, 0, 0, "empty input: no header row");
    expect_err("\n\n  \r\n", NULL, CSV_EEMPTY, 0, 0, "empty input: no header row");
    expect_err("\xEF\xBB\xBF", NULL, CSV_EEMPTY, 0, 0, "empty input: no header row");
    expect_err("a,b\n", NULL, CSV_EEMPTY, 0, 0, "no data rows after the header");
    expect_err("a,b", NULL, CSV_EEMPTY, 0, 0, "no data rows after the header");
    expect_err("a,b\n\n\n", NULL, CSV_EEMPTY, 0, 0, "no data rows after the header");
    o.header = 0;
    expect_err("", &o, CSV_EEMPTY, 0, 0, "empty input: no rows");
}
END_TEST

START_TEST(api_edges)
{
    csv_options o = csv_options_default();
    csv_table_builder *b;
    csv_table *t = NULL;
    csv_error err;

    ck_assert_int_eq(o.delimiter, ',');
    ck_assert_int_eq(o.header, 1);
    ck_assert_int_eq(o.missing, CSV_MISSING_ERROR);
    ck_assert_uint_eq(o.max_rows, 10000000);
    ck_assert_uint_eq(o.max_cols, 1000);
    ck_assert_uint_eq(o.max_levels, 1000);
    ck_assert_uint_eq(o.max_field, 65536);
    csv_table_free(NULL);
    csv_table_builder_free(NULL);
    ck_assert_ptr_null(csv_table_builder_new(NULL));
    o.delimiter = '|';
    ck_assert_ptr_null(csv_table_builder_new(&o));
    o = csv_options_default();

    /* NULL err is fine; errors are sticky; a finished builder refuses more */
    b = csv_table_builder_new(&o);
    ck_assert_int_eq(csv_table_builder_feed(b, "a\n1\n\"x\"y", 9, NULL), CSV_ESYNTAX);
    ck_assert_int_eq(csv_table_builder_feed(b, "2\n", 2, &err), CSV_ESYNTAX);
    ck_assert_int_eq(err.line, 3);
    ck_assert_int_eq(csv_table_builder_finish(b, &t, &err), CSV_ESYNTAX);
    ck_assert_ptr_null(t);
    csv_table_builder_free(b);

    b = csv_table_builder_new(&o);
    ck_assert_int_eq(csv_table_builder_feed(b, "a\n1\n", 4, NULL), 0);
    ck_assert_int_eq(csv_table_builder_finish(b, &t, NULL), 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_ne(csv_table_builder_feed(b, "2\n", 2, &err), 0);
    csv_table_builder_free(b);
    csv_table_free(t);

    /* a builder freed mid-way (levels, texts, collisions) leaks nothing */
    b = csv_table_builder_new(&o);
    ck_assert_int_eq(csv_table_builder_feed(b, "a,b\n1,x\n1.0,y\n", 14, &err), 0);
    csv_table_builder_free(b);
}
END_TEST

/* ------------------------------------------------------------ chunking */

static const char TRICKY[] =
    "\xEF\xBB\xBF id ,\"na,me\",\"q\"\"t\",num , \xE2\x82\xAC\r\n"
    "1,\"Ann\r\nLee\",\"a\"\"b\", 1.0 ,\xC3\xA9t\xC3\xA9\r"
    "2 , Bob ,\"x\n\",1,\"\xF0\x9D\x84\x9E\"\n"
    "\r\n"
    "3,Cy,?, 2 ,\xC3\xA9t\xC3\xA9\n"
    "  \n"
    "4,\"\",\"\"\"\",abc,NA\r\n"
    "5,Bob,x,1.0,\"\xE2\x82\xAC\"\r\n"
    "6,Ann,q,-.5e1,\xC3\xA9t\xC3\xA9\n\n";

static csv_table *tricky_reference(csv_options *o)
{
    csv_table *t;
    csv_error err;
    *o = csv_options_default();
    o->missing = CSV_MISSING_FILL;
    ck_assert_int_eq(parse_chunked(TRICKY, sizeof TRICKY - 1, o, 0, &t, &err), 0);
    return t;
}

START_TEST(chunking_same_table)
{
    const size_t len = sizeof TRICKY - 1;
    csv_options o;
    csv_table *ref = tricky_reference(&o), *t;
    csv_error err;
    size_t i, k;
    unsigned seed = 12345;

    /* the reference itself */
    ck_assert_uint_eq(ref->n_rows, 6);
    ck_assert_uint_eq(ref->n_cols, 5);
    ck_assert_str_eq(ref->cols[0].name, "id");
    ck_assert_str_eq(ref->cols[1].name, "na,me");
    ck_assert_str_eq(ref->cols[2].name, "q\"t");
    ck_assert_str_eq(ref->cols[3].name, "num");
    ck_assert_str_eq(ref->cols[4].name, "\xE2\x82\xAC");
    ck_assert_int_eq(ref->cols[0].type, CSV_COL_NUMBER);
    LEVELS(&ref->cols[1], "Ann\r\nLee", "Bob", "Cy", "Ann");
    LEVELS(&ref->cols[2], "a\"b", "x\n", "\"", "x", "q");
    LEVELS(&ref->cols[3], "1.0", "1", "2", "abc", "-.5e1");
    LEVELS(&ref->cols[4], "\xC3\xA9t\xC3\xA9", "\xF0\x9D\x84\x9E", "\xE2\x82\xAC");
    ASSERT_CELL(ref, 1, 0, 2);
    ASSERT_CELL(ref, 3, 1, 1);   /* "" missing: filled with Bob (twice) */
    ASSERT_CELL(ref, 4, 3, 0);   /* "1.0" of row 5 is the same level as row 1's */
    ASSERT_CELL(ref, 1, 3, 1);
    ASSERT_CELL(ref, 2, 2, 0);   /* ? filled with the first of the most frequent */
    ASSERT_CELL(ref, 3, 4, 0);   /* NA filled with été (3 times) */
    ck_assert_uint_eq(ref->cols[1].n_filled, 1);
    ck_assert_uint_eq(ref->cols[2].n_filled, 1);
    ck_assert_uint_eq(ref->cols[4].n_filled, 1);

    for (i = 1; i <= 3; i++) { /* bytes, pairs, triples */
        ck_assert_int_eq(parse_chunked(TRICKY, len, &o, i, &t, &err), 0);
        assert_same_table(ref, t, "fixed chunks");
        csv_table_free(t);
    }
    for (i = 0; i <= len; i++) { /* every split into two chunks */
        csv_table_builder *b = csv_table_builder_new(&o);
        ck_assert_int_eq(csv_table_builder_feed(b, TRICKY, i, &err), 0);
        ck_assert_int_eq(csv_table_builder_feed(b, TRICKY + i, len - i, &err), 0);
        ck_assert_int_eq(csv_table_builder_finish(b, &t, &err), 0);
        assert_same_table(ref, t, "two chunks");
        csv_table_free(t);
        csv_table_builder_free(b);
    }
    for (k = 0; k < 300; k++) { /* random chunk sizes, fixed seed */
        csv_table_builder *b = csv_table_builder_new(&o);
        size_t off = 0;
        while (off < len) {
            size_t n;
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 23;
            if (n > len - off)
                n = len - off;
            ck_assert_int_eq(csv_table_builder_feed(b, TRICKY + off, n, &err), 0);
            off += n;
        }
        ck_assert_int_eq(csv_table_builder_finish(b, &t, &err), 0);
        assert_same_table(ref, t, "random chunks");
        csv_table_free(t);
        csv_table_builder_free(b);
    }
    csv_table_free(ref);
}
END_TEST

START_TEST(chunking_same_error)
{
    static const char in[] = "a,b\r\n1,\"x\r\ny\"\r\n2,\"p\"\"q\" z\r\n";
    const size_t len = sizeof in - 1;
    csv_options o = csv_options_default();
    size_t i;

    for (i = 0; i <= len; i++) {
        csv_table_builder *b = csv_table_builder_new(&o);
        csv_table *t = NULL;
        csv_error err;
        int rc = csv_table_builder_feed(b, in, i, &err);
        if (!rc)
            rc = csv_table_builder_feed(b, in + i, len - i, &err);
        if (!rc)
            rc = csv_table_builder_finish(b, &t, &err);
        ck_assert_int_eq(rc, CSV_ESYNTAX);
        ck_assert_int_eq(err.line, 4);
        ck_assert_int_eq(err.column, 2);
        ck_assert_str_eq(err.message, "text after closing quote ('b')");
        csv_table_builder_free(b);
    }
}
END_TEST

/* ------------------------------------------------------------ real data */

static csv_table *parse_file(const char *path)
{
    csv_options o = csv_options_default();
    csv_table_builder *b = csv_table_builder_new(&o);
    csv_table *t = NULL;
    csv_error err;
    static char buf[65536];
    FILE *f = fopen(path, "rb");
    size_t n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        ck_assert_msg(csv_table_builder_feed(b, buf, n, &err) == 0, "%s: %s", path, err.message);
    fclose(f);
    ck_assert_msg(csv_table_builder_finish(b, &t, &err) == 0, "%s: %s", path, err.message);
    csv_table_builder_free(b);
    return t;
}

START_TEST(real_stackoverflow)
{
    static const float row0[25] = {20, 0, 1, 5000, 8, 0, 0, 0, 0, 0, 1, 0, 0,
                                   0,  0, 0, 0,    0, 0, 0, 0, 1, 0, 100000, 1};
    csv_table *t = parse_file(MTLD_DATA_DIR "/stackoverflow/stackoverflow.csv");
    size_t i;

    ck_assert_uint_eq(t->n_rows, 5594);
    ck_assert_uint_eq(t->n_cols, 25);
    for (i = 0; i < 25; i++)
        ck_assert_msg(t->cols[i].type == CSV_COL_NUMBER, "column %s", t->cols[i].name);
    ck_assert_str_eq(t->cols[0].name, "years_coded_job");
    ck_assert_str_eq(t->cols[23].name, "salary");
    ck_assert_str_eq(t->cols[24].name, "remote");
    for (i = 0; i < 25; i++)
        ASSERT_CELL(t, 0, i, row0[i]);
    ASSERT_CELL(t, 3, 23, 64516.1290322581);
    csv_table_free(t);
}
END_TEST

START_TEST(real_letters)
{
    static const float row0[17] = {0, 2, 8, 3, 5, 1, 8, 13, 0, 6, 6, 10, 8, 0, 8, 0, 8};
    csv_table *t = parse_file(MTLD_DATA_DIR "/letters/letters.csv");
    size_t i;

    ck_assert_uint_eq(t->n_rows, 20000);
    ck_assert_uint_eq(t->n_cols, 17);
    ck_assert_str_eq(t->cols[0].name, "lettr");
    ck_assert_int_eq(t->cols[0].type, CSV_COL_CATEGORY);
    ck_assert_uint_eq(t->cols[0].n_levels, 26);
    ck_assert_str_eq(t->cols[0].levels[0], "T"); /* order of first appearance */
    ck_assert_str_eq(t->cols[0].levels[1], "I");
    ck_assert_str_eq(t->cols[0].levels[2], "D");
    for (i = 1; i < 17; i++)
        ck_assert_msg(t->cols[i].type == CSV_COL_NUMBER, "column %s", t->cols[i].name);
    ck_assert_str_eq(t->cols[16].name, "yegvx");
    for (i = 0; i < 17; i++)
        ASSERT_CELL(t, 0, i, row0[i]);
    ASSERT_CELL(t, 1, 0, 1); /* I */
    csv_table_free(t);
}
END_TEST

Suite *csv_table_suite(void)
{
    Suite *s = suite_create("csv_table");
    TCase *tc = tcase_create("table");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, categories_in_order_of_appearance);
    tcase_add_test(tc, number_column_flips_to_category);
    tcase_add_test(tc, strict_numbers);
    tcase_add_test(tc, strict_numbers_random);
    tcase_add_test(tc, random_tables_chunk_invariant);
    tcase_add_test(tc, header_names);
    tcase_add_test(tc, ragged_rows);
    tcase_add_test(tc, syntax_errors_located);
    tcase_add_test(tc, missing_error);
    tcase_add_test(tc, missing_drop);
    tcase_add_test(tc, missing_fill);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, empty_inputs);
    tcase_add_test(tc, api_edges);
    tcase_add_test(tc, chunking_same_table);
    tcase_add_test(tc, chunking_same_error);
    tcase_add_test(tc, real_stackoverflow);
    tcase_add_test(tc, real_letters);
    suite_add_tcase(s, tc);
    return s;
}
