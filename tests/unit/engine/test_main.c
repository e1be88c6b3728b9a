/*
 * tests/unit/engine/test_main.c — runs every engine suite. The float binary
 * skips the gradient checks (grad_suite returns NULL there).
 */
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
    SRunner *sr = srunner_create(rng_suite());
    srunner_add_suite(sr, optim_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_add_suite(sr, prep_suite());
    srunner_add_suite(sr, loss_suite());
    srunner_add_suite(sr, mtl_suite());
    srunner_add_suite(sr, weighting_suite());
    srunner_add_suite(sr, moe_suite());
    Suite *syn = synthetic_suite();
    if (syn)
        srunner_add_suite(sr, syn);
    srunner_add_suite(sr, gemm_suite());
    srunner_add_suite(sr, blas_core_suite());
    Suite *g = grad_suite();
    if (g)
        srunner_add_suite(sr, g);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
