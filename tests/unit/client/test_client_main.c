/* tests/unit/client/test_client_main.c — runs mtlctl's parser tests. */
#include <check.h>
#include <stdlib.h>

Suite *sse_suite(void);
Suite *csv_rec_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    srunner_add_suite(sr, csv_rec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
