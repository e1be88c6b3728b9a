/*
 * tests/unit/meta/test_main.c — runs every meta-learning suite; a suite
 * that only makes sense in one precision returns NULL in the other.
 */
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
    Suite *(*const make[])(void) = {fnet_suite, meta_grad_suite, meta_suite, episodes_suite,
                                    sinusoid_suite};
    SRunner *sr = NULL;
    for (size_t i = 0; i < sizeof make / sizeof make[0]; i++) {
        Suite *s = make[i]();
        if (!s)
            continue;
        if (!sr)
            sr = srunner_create(s);
        else
            srunner_add_suite(sr, s);
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
