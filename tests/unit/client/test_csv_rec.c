/*
 * tests/unit/client/test_csv_rec.c — CSV records as predict and adapt cut
 * them: line ends inside quotes belong to the field, LF / CRLF / CR end a
 * record, blank lines are skipped, an unclosed quote is an error naming its
 * line; fields are unquoted ("" is a quote) and unquoted ones trimmed.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "client/csv_rec.h"

static FILE *mem(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    ck_assert_ptr_nonnull(f);
    return f;
}

START_TEST(records_and_their_line_ends)
{
    const char *text = "a,b\r\n1,\"x\ny\"\n\n  \n2,\"q\"\"r\"\r3,4";
    FILE *f = mem(text);
    cli_csv_reader r;
    cli_csv_init(&r, f);
    const char *want[] = {"a,b\r\n", "1,\"x\ny\"\n", "2,\"q\"\"r\"\r", "3,4"};
    const long lines[] = {1, 2, 6, 7};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(cli_csv_next(&r, "t.csv"), 1);
        ck_assert_uint_eq(r.rec.len, strlen(want[k]));
        ck_assert(memcmp(r.rec.data, want[k], r.rec.len) == 0);
        ck_assert_int_eq(r.line, lines[k]);
    }
    ck_assert_int_eq(cli_csv_next(&r, "t.csv"), 0);
    cli_csv_free(&r);
    fclose(f);
}
END_TEST

START_TEST(an_unclosed_quote_is_an_error)
{
    FILE *f = mem("a,b\n1,\"open\n2,3\n");
    cli_csv_reader r;
    cli_csv_init(&r, f);
    ck_assert_int_eq(cli_csv_next(&r, "t.csv"), 1);
    ck_assert_int_eq(cli_csv_next(&r, "t.csv"), -1);
    cli_csv_free(&r);
    fclose(f);
}
END_TEST

START_TEST(fields_unquoted_and_trimmed)
{
    const char *rec = " a , \"b,c\" ,\"d\"\"e\",,\"\" \r\n";
    cli_csv_fields f;
    ck_assert_int_eq(cli_csv_split(rec, strlen(rec), ',', &f), 0);
    ck_assert_int_eq(f.n, 5);
    ck_assert_str_eq(f.field[0], "a");
    ck_assert_str_eq(f.field[1], "b,c");
    ck_assert_str_eq(f.field[2], "d\"e");
    ck_assert_str_eq(f.field[3], "");
    ck_assert_str_eq(f.field[4], "");
    ck_assert_int_eq(f.quoted[0], 0);
    ck_assert_int_eq(f.quoted[1], 1);
    ck_assert_int_eq(f.quoted[3], 0);
    ck_assert_int_eq(f.quoted[4], 1);
    cli_csv_fields_free(&f);
}
END_TEST

Suite *csv_rec_suite(void)
{
    Suite *s = suite_create("csv_rec");
    TCase *tc = tcase_create("records");
    tcase_add_test(tc, records_and_their_line_ends);
    tcase_add_test(tc, an_unclosed_quote_is_an_error);
    tcase_add_test(tc, fields_unquoted_and_trimmed);
    suite_add_tcase(s, tc);
    return s;
}
