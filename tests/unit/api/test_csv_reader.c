/*
 * tests/unit/api/test_csv_reader.c — the CSV push parser on its own.
 *
 * Every case is parsed whole and in several chunk sizes (1, 2, 3, 5, 64
 * bytes): records, error code, line and column must not depend on where the
 * chunks split. Records are rendered as "LINE:<f1><f2>...\n".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/csv_reader.h"
#include "test_csv.h"

typedef struct {
    char out[16384];
    size_t len;
    int stop_after; /* callback returns 7 at this record (0: never) */
    int n;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    ck_assert_msg(s->len + n < sizeof s->out, "sink overflow");
    memcpy(s->out + s->len, p, n);
    s->len += n;
    s->out[s->len] = '\0';
}

static int sink_fn(void *ctx, char *const *f, const size_t *lens, size_t n, long line,
                   csv_error *err)
{
    sink *s = ctx;
    char tmp[32];
    size_t i;
    int k = snprintf(tmp, sizeof tmp, "%ld:", line);

    put(s, tmp, (size_t)k);
    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(strlen(f[i]), lens[i]);
        put(s, "<", 1);
        put(s, f[i], lens[i]);
        put(s, ">", 1);
    }
    put(s, "\n", 1);
    if (++s->n == s->stop_after) {
        err->line = 99;
        err->column = 0;
        snprintf(err->message, sizeof err->message, "stopped by the callback");
        return 7;
    }
    return 0;
}

static int read_chunked(const char *in, size_t len, char delim, size_t max_field,
                        size_t max_fields, size_t chunk, sink *s, csv_error *err)
{
    csv_reader *r = csv_reader_new(delim, max_field, max_fields, sink_fn, s);
    size_t off = 0;
    int rc = 0;

    ck_assert_ptr_nonnull(r);
    s->len = 0;
    s->out[0] = '\0';
    s->n = 0;
    memset(err, 0, sizeof *err);
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len && rc == 0) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = csv_reader_feed(r, in + off, n, err);
        off += n;
    }
    if (rc == 0)
        rc = csv_reader_finish(r, err);
    csv_reader_free(r);
    return rc;
}

static const size_t CHUNKS[] = {0, 1, 2, 3, 5, 64};

/* want == NULL: records not checked. emsg: substring of the message. */
static void expect_full(const char *in, size_t len, char delim, size_t max_field,
                        size_t max_fields, const char *want, int want_rc, long eline, long ecol,
                        const char *emsg)
{
    size_t k;
    for (k = 0; k < sizeof CHUNKS / sizeof CHUNKS[0]; k++) {
        sink s;
        csv_error err;
        int rc;
        memset(&s, 0, sizeof s);
        rc = read_chunked(in, len, delim, max_field, max_fields, CHUNKS[k], &s, &err);
        ck_assert_msg(rc == want_rc, "chunk %zu: rc %d, want %d (%s)", CHUNKS[k], rc, want_rc,
                      err.message);
        if (want)
            ck_assert_msg(strcmp(s.out, want) == 0, "chunk %zu: got\n%s\nwant\n%s", CHUNKS[k],
                          s.out, want);
        if (want_rc) {
            ck_assert_msg(err.line == eline && err.column == ecol,
                          "chunk %zu: error at %ld:%ld, want %ld:%ld (%s)", CHUNKS[k], err.line,
                          err.column, eline, ecol, err.message);
            if (emsg)
                ck_assert_msg(strstr(err.message, emsg), "message '%s' lacks '%s'",
                              err.message, emsg);
        }
    }
}

#define EXPECT(in, want) expect_full(in, strlen(in), ',', 1000, 100, want, 0, 0, 0, NULL)
#define EXPECT_ERR(in, len, line, col, msg)                                      \
    expect_full(in, len, ',', 1000, 100, NULL, -1, line, col, msg)

START_TEST(quoted_fields)
{
    EXPECT("a,\"b,c\",\"d\"\"e\",\"f\ng\"\nh,i,j,k\n", "1:<a><b,c><d\"e><f\ng>\n3:<h><i><j><k>\n");
    EXPECT("\"\"\"\"\n", "1:<\">\n");           /* a field that is one quote */
    EXPECT("\"\",x\n", "1:<><x>\n");             /* empty quoted field */
    EXPECT("\"\"\n", "1:<>\n");                  /* a record of one empty quoted field */
    EXPECT("\"a\"\"\"\"b\"\n", "1:<a\"\"b>\n");  /* consecutive doubled quotes */
    EXPECT("\"a\n\nb\",c\nd,e", "1:<a\n\nb><c>\n4:<d><e>\n");
    EXPECT("ab\"c,d\n", "1:<ab\"c><d>\n");       /* a stray quote in an unquoted field is text */
    EXPECT("a,\"\nb\"\"\r\n\"\n", "1:<a><\nb\"\r\n>\n");
}
END_TEST

START_TEST(line_endings)
{
    EXPECT("a\r\nb\rc\nd", "1:<a>\n2:<b>\n3:<c>\n4:<d>\n");
    EXPECT("a,b\r\nc,d\r\n", "1:<a><b>\n2:<c><d>\n");
    EXPECT("a\rb\r", "1:<a>\n2:<b>\n");
    EXPECT("\"x\r\ny\",z\r\nw", "1:<x\r\ny><z>\n3:<w>\n");
    EXPECT("\"x\ry\",z\rw", "1:<x\ry><z>\n3:<w>\n");
    EXPECT("a\n\r\nb", "1:<a>\n3:<b>\n");
    EXPECT("a\r\rb", "1:<a>\n3:<b>\n");
    EXPECT("a\n\rb", "1:<a>\n3:<b>\n");
    EXPECT("a\r\n\r\n\r\nb\r\n", "1:<a>\n4:<b>\n");
    EXPECT("\"a\"\r\n\"b\"\r", "1:<a>\n2:<b>\n");
}
END_TEST

START_TEST(bom)
{
    EXPECT("\xEF\xBB\xBF" "a,b\n", "1:<a><b>\n");
    EXPECT("\xEF\xBB\xBF\"a\",b\n", "1:<a><b>\n");
    EXPECT("\xEF\xBB\xBF", "");
    /* U+FEFF later on is an ordinary character */
    EXPECT("x\n\xEF\xBB\xBFy", "1:<x>\n2:<\xEF\xBB\xBFy>\n");
    EXPECT("\xEF\xBB\xBF\xEF\xBB\xBF" "a", "1:<\xEF\xBB\xBF" "a>\n");
    /* a start that looks like a BOM but is another character */
    EXPECT("\xEF\xBC\x81,x", "1:<\xEF\xBC\x81><x>\n");
    EXPECT_ERR("\xEF\xBB", 2, 1, 1, "UTF-8");
    EXPECT_ERR("\xEF\xBBx", 3, 1, 1, "UTF-8");
    EXPECT_ERR("\xEF", 1, 1, 1, "UTF-8");
}
END_TEST

START_TEST(blank_lines)
{
    EXPECT("\n\na\n\n  \n\t\nb\n\n\n", "3:<a>\n7:<b>\n");
    EXPECT("a,b\n1,2\n\n\n", "1:<a><b>\n2:<1><2>\n");
    EXPECT("a\n,\n", "1:<a>\n2:<><>\n");
    EXPECT("a\n\"\"\n", "1:<a>\n2:<>\n");
    EXPECT("", "");
    EXPECT("\n\r\n\r", "");
    EXPECT("a\n   ", "1:<a>\n");
}
END_TEST

START_TEST(trimming)
{
    EXPECT("  a  ,\tb\t, \"c \" ,d e,  \n", "1:<a><b><c ><d e><>\n");
    EXPECT(" \" x\" \t, y", "1:< x><y>\n");
    expect_full("a \t b\t\"x\" \n", 11, '\t', 1000, 100, "1:<a><b><x>\n", 0, 0, 0, NULL);
    expect_full("1,5;2; 3 \n", 10, ';', 1000, 100, "1:<1,5><2><3>\n", 0, 0, 0, NULL);
    expect_full("a\t\tb\n", 5, '\t', 1000, 100, "1:<a><><b>\n", 0, 0, 0, NULL);
}
END_TEST

START_TEST(valid_utf8)
{
    EXPECT("\xC3\xA9,\xE2\x82\xAC,\xF0\x9D\x84\x9E,\xF4\x8F\xBF\xBF,\xED\x9F\xBF,\xEE\x80\x80,\xC2\x80\n",
           "1:<\xC3\xA9><\xE2\x82\xAC><\xF0\x9D\x84\x9E><\xF4\x8F\xBF\xBF><\xED\x9F\xBF><\xEE\x80\x80><\xC2\x80>\n");
    EXPECT("\"\xC3\xA9\n\xE2\x82\xAC\"", "1:<\xC3\xA9\n\xE2\x82\xAC>\n");
}
END_TEST

START_TEST(invalid_utf8)
{
    EXPECT_ERR("x,\xC0\x80\n", 5, 1, 2, "invalid UTF-8");     /* overlong 2-byte */
    EXPECT_ERR("x,\xC1\xBF\n", 5, 1, 2, "invalid UTF-8");
    EXPECT_ERR("a\nb,c,\xE0\x80\x80", 9, 2, 3, "invalid UTF-8"); /* overlong 3-byte */
    EXPECT_ERR("a\nb,c,\xE0\x9F\xBF", 9, 2, 3, "invalid UTF-8");
    EXPECT_ERR("\xED\xA0\x80", 3, 1, 1, "invalid UTF-8");       /* surrogate U+D800 */
    EXPECT_ERR("\xED\xBF\xBF", 3, 1, 1, "invalid UTF-8");       /* surrogate U+DFFF */
    EXPECT_ERR("\xF0\x8F\xBF\xBF", 4, 1, 1, "invalid UTF-8");   /* overlong 4-byte */
    EXPECT_ERR("\xF4\x90\x80\x80", 4, 1, 1, "invalid UTF-8");   /* > U+10FFFF */
    EXPECT_ERR("\xF5\x80\x80\x80", 4, 1, 1, "invalid UTF-8");
    EXPECT_ERR("\xFF", 1, 1, 1, "invalid UTF-8");
    EXPECT_ERR("ok\n\x80", 4, 2, 1, "invalid UTF-8");           /* lone continuation */
    EXPECT_ERR("a\xC3,b", 5, 1, 1, "invalid UTF-8");            /* ',' is no continuation */
    EXPECT_ERR("a\xE2\x82\n", 4, 1, 1, "invalid UTF-8");
    EXPECT_ERR("a,b\nc,\xC3", 7, 2, 2, "truncated");            /* cut at end of input */
    EXPECT_ERR("\"a\n\xFF\"", 5, 2, 1, "invalid UTF-8");        /* physical line in a quote */
    EXPECT_ERR("\"a\"\xC3\xA9", 5, 1, 1, "after closing quote");
}
END_TEST

START_TEST(nul_byte)
{
    EXPECT_ERR("a,b\nc,d\0e\n", 10, 2, 2, "NUL");
    EXPECT_ERR("a\n\0", 3, 2, 1, "NUL");
    EXPECT_ERR("\"a\0\"", 4, 1, 1, "NUL");
    EXPECT_ERR("x,\"a\"\0", 6, 1, 2, "NUL");
    EXPECT_ERR("x, \0", 4, 1, 2, "NUL");
    EXPECT_ERR("x,\"a\" \0", 7, 1, 2, "NUL");
}
END_TEST

START_TEST(quote_errors)
{
    EXPECT_ERR("a,b\nc,\"d\"e\n", 11, 2, 2, "text after closing quote");
    EXPECT_ERR("a,\"b\" x\n", 8, 1, 2, "text after closing quote");
    EXPECT_ERR("\"a\"\"b\"c", 7, 1, 1, "text after closing quote");
    EXPECT_ERR("\"a\" \"b\"", 7, 1, 1, "text after closing quote");
    /* unterminated: reported at the line of the opening quote */
    EXPECT_ERR("a,b\nc,\"d\ne\n", 11, 2, 2, "unterminated quoted field");
    EXPECT_ERR("a,b\n\"\"\"\n", 8, 2, 1, "unterminated quoted field");
    EXPECT_ERR("\"", 1, 1, 1, "unterminated quoted field");
    EXPECT_ERR("x,y,\"abc\"\"", 10, 1, 3, "unterminated quoted field");
    /* records before the error were delivered */
    expect_full("a,b\nc,\"d\"e\n", 11, ',', 1000, 100, "1:<a><b>\n", -1, 2, 2, NULL);
}
END_TEST

START_TEST(field_too_long)
{
    expect_full("abcd,abcde\n", 11, ',', 4, 100, NULL, -1, 1, 2, "field longer than 4 bytes");
    expect_full("\"ab\"\"c\",\"abcd\"\n", 15, ',', 4, 100, "1:<ab\"c><abcd>\n", 0, 0, 0, NULL);
    expect_full("x\n\"ab\ncd\"\n", 10, ',', 4, 100, NULL, -1, 3, 1, "longer than 4");
    expect_full("    abcd,x\n", 11, ',', 4, 100, "1:<abcd><x>\n", 0, 0, 0, NULL);
    /* trailing blanks count until they are trimmed */
    expect_full("ab   ,x\n", 8, ',', 4, 100, NULL, -1, 1, 1, "longer than 4");
    expect_full("a,\xC3\xA9\xC3\xA9\xC3\xA9", 8, ',', 5, 100, NULL, -1, 1, 2, "longer than 5");
    /* the same after a first record (the buffer is warm: the fast path) */
    expect_full("x,y\nab   ,x\n", 12, ',', 4, 100, "1:<x><y>\n", -1, 2, 1, "longer than 4");
    expect_full("x,y\nabcd,abcde\n", 16, ',', 4, 100, "1:<x><y>\n", -1, 2, 2, "longer than 4");
    expect_full("x,y\nabcd,  abcd\n", 16, ',', 4, 100, "1:<x><y>\n2:<abcd><abcd>\n", 0, 0, 0,
                NULL);
}
END_TEST

START_TEST(too_many_fields)
{
    expect_full("a,b,c\nd,e,f,g\n", 14, ',', 100, 3, "1:<a><b><c>\n", -1, 2, 4,
                "more than 3 fields");
    expect_full("a,b,c,\n", 7, ',', 100, 3, NULL, -1, 1, 4, "more than 3 fields");
    expect_full("a,b,\"c\"\n", 8, ',', 100, 3, "1:<a><b><c>\n", 0, 0, 0, NULL);
    expect_full("\"a\n\",b,c,d", 10, ',', 100, 3, NULL, -1, 2, 4, "more than 3 fields");
}
END_TEST

START_TEST(callback_stops)
{
    sink s;
    csv_error err;
    csv_reader *r;
    size_t k;

    for (k = 0; k < sizeof CHUNKS / sizeof CHUNKS[0]; k++) {
        memset(&s, 0, sizeof s);
        s.stop_after = 2;
        ck_assert_int_eq(read_chunked("a\nb\nc\n", 6, ',', 10, 10, CHUNKS[k], &s, &err), 7);
        ck_assert_str_eq(s.out, "1:<a>\n2:<b>\n");
        ck_assert_int_eq(err.line, 99);
        ck_assert_str_eq(err.message, "stopped by the callback");
    }
    /* sticky: feeding again returns the same value without parsing */
    memset(&s, 0, sizeof s);
    s.stop_after = 1;
    r = csv_reader_new(',', 10, 10, sink_fn, &s);
    ck_assert_int_eq(csv_reader_feed(r, "a\nb\n", 4, NULL), 7);
    ck_assert_int_eq(csv_reader_feed(r, "c\n", 2, &err), 7);
    ck_assert_int_eq(csv_reader_finish(r, &err), 7);
    ck_assert_str_eq(s.out, "1:<a>\n");
    csv_reader_free(r);
    /* a syntax error is sticky too */
    memset(&s, 0, sizeof s);
    r = csv_reader_new(',', 10, 10, sink_fn, &s);
    ck_assert_int_eq(csv_reader_feed(r, "\"a\"b", 4, &err), -1);
    ck_assert_int_eq(csv_reader_error_kind(r), CSV_RERR_AFTER_QUOTE);
    ck_assert_int_eq(csv_reader_feed(r, "c\n", 2, &err), -1);
    ck_assert_int_eq(csv_reader_finish(r, NULL), -1);
    csv_reader_free(r);
}
END_TEST

START_TEST(bad_arguments)
{
    sink s;
    ck_assert_ptr_null(csv_reader_new('|', 10, 10, sink_fn, &s));
    ck_assert_ptr_null(csv_reader_new('"', 10, 10, sink_fn, &s));
    ck_assert_ptr_null(csv_reader_new(',', 0, 10, sink_fn, &s));
    ck_assert_ptr_null(csv_reader_new(',', 10, 0, sink_fn, &s));
    ck_assert_ptr_null(csv_reader_new(',', 10, 10, NULL, &s));
    csv_reader_free(NULL);
    ck_assert_int_eq(csv_reader_error_kind(NULL), CSV_RERR_NONE);
}
END_TEST

/* Every split of a tricky input into two chunks, and three chunks. */
START_TEST(every_split)
{
    static const char in[] = "\xEF\xBB\xBF h1 ,\"h\"\"2\"\r\n\"a\r\nb\",\xE2\x82\xAC\r\r\n"
                             "\"\"\"\"  ,\xF0\x9D\x84\x9E\n\n x , y \r";
    const size_t len = sizeof in - 1;
    sink ref, s;
    csv_error err;
    size_t i, j;

    memset(&ref, 0, sizeof ref);
    ck_assert_int_eq(read_chunked(in, len, ',', 100, 10, 0, &ref, &err), 0);
    ck_assert_str_eq(ref.out, "1:<h1><h\"2>\n2:<a\r\nb><\xE2\x82\xAC>\n5:<\"><\xF0\x9D\x84\x9E>\n"
                              "7:<x><y>\n");
    for (i = 0; i <= len; i++) {
        for (j = i; j <= len; j++) {
            csv_reader *r;
            memset(&s, 0, sizeof s);
            r = csv_reader_new(',', 100, 10, sink_fn, &s);
            ck_assert_int_eq(csv_reader_feed(r, in, i, &err), 0);
            ck_assert_int_eq(csv_reader_feed(r, in + i, j - i, &err), 0);
            ck_assert_int_eq(csv_reader_feed(r, in + j, len - j, &err), 0);
            ck_assert_int_eq(csv_reader_finish(r, &err), 0);
            ck_assert_msg(strcmp(s.out, ref.out) == 0, "split %zu/%zu: %s", i, j, s.out);
            csv_reader_free(r);
        }
    }
}
END_TEST

/* Random inputs over an alphabet of the bytes that matter: every chunking
 * gives the same records, result, error position and message. */
START_TEST(random_inputs_chunk_invariant)
{
    static const char *const atoms[] = {",", ",", "\"", "\"\"", "\r", "\n", "\r\n", " ", "\t",
                                        "a", "bc", "1", "\xC3\xA9", "\xE2\x82\xAC", "\xC3",
                                        "\xA9", "\xEF\xBB\xBF", "xyz12"};
    unsigned seed = 777;
    char in[256];
    int k;

    for (k = 0; k < 3000; k++) {
        size_t len = 0, natoms, a, c;
        sink ref, s;
        csv_error eref, err;
        int rref;

        seed = seed * 1103515245u + 12345u;
        natoms = (seed >> 16) % 40;
        for (a = 0; a < natoms; a++) {
            const char *t;
            seed = seed * 1103515245u + 12345u;
            t = atoms[(seed >> 16) % (sizeof atoms / sizeof atoms[0])];
            memcpy(in + len, t, strlen(t));
            len += strlen(t);
        }
        memset(&ref, 0, sizeof ref);
        rref = read_chunked(in, len, ',', 6, 5, 0, &ref, &eref);
        for (c = 1; c <= 7; c += 2) {
            int rc;
            memset(&s, 0, sizeof s);
            rc = read_chunked(in, len, ',', 6, 5, c, &s, &err);
            ck_assert_msg(rc == rref, "case %d chunk %zu: rc %d vs %d", k, c, rc, rref);
            ck_assert_msg(strcmp(s.out, ref.out) == 0, "case %d chunk %zu: records", k, c);
            if (rc)
                ck_assert_msg(err.line == eref.line && err.column == eref.column &&
                                  strcmp(err.message, eref.message) == 0,
                              "case %d chunk %zu: %ld:%ld %s vs %ld:%ld %s", k, c, err.line,
                              err.column, err.message, eref.line, eref.column, eref.message);
        }
    }
}
END_TEST

Suite *csv_reader_suite(void)
{
    Suite *s = suite_create("csv_reader");
    TCase *tc = tcase_create("reader");

    tcase_add_test(tc, quoted_fields);
    tcase_add_test(tc, line_endings);
    tcase_add_test(tc, bom);
    tcase_add_test(tc, blank_lines);
    tcase_add_test(tc, trimming);
    tcase_add_test(tc, valid_utf8);
    tcase_add_test(tc, invalid_utf8);
    tcase_add_test(tc, nul_byte);
    tcase_add_test(tc, quote_errors);
    tcase_add_test(tc, field_too_long);
    tcase_add_test(tc, too_many_fields);
    tcase_add_test(tc, callback_stops);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, every_split);
    tcase_add_test(tc, random_inputs_chunk_invariant);
    suite_add_tcase(s, tc);
    return s;
}
