/* tests/unit/api/test_csv_main.c — runs the CSV parser suites. */
#include <stdlib.h>

#include "test_csv.h"

int main(void)
{
    SRunner *sr = srunner_create(csv_reader_suite());
    int failed;

    srunner_add_suite(sr, csv_table_suite());
    srunner_add_suite(sr, csv_stream_suite());
    srunner_add_suite(sr, csv_gzip_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
