/* tests/unit/api/test_csv.h — suites of the CSV parser tests. */
#ifndef TEST_CSV_H
#define TEST_CSV_H

#include <check.h>

Suite *csv_reader_suite(void);
Suite *csv_table_suite(void);
Suite *csv_stream_suite(void);
Suite *csv_gzip_suite(void);

#endif
