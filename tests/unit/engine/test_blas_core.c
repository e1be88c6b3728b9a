/*
 * tests/unit/engine/test_blas_core.c — engine/blas_core.c's advice: which
 * OPENBLAS_CORETYPE replaces the kernel set OpenBLAS chose, and when not.
 */
#include <string.h>

#include "engine/blas_core.h"
#include "helpers.h"

static const eng_cpu_features AVX512 = {1, 1, 1, 1, 1, 1, 1};
static const eng_cpu_features AVX2 = {1, 1, 0, 0, 0, 0, 0};
static const eng_cpu_features SSE = {0, 0, 0, 0, 0, 0, 0};

/* OpenBLAS 0.3.21 on an Emerald Rapids Xeon (family 6, model 207): Prescott. */
START_TEST(fallback_on_avx512_gets_skylakex)
{
    ck_assert_str_eq(eng_blas_core_advice("Prescott", AVX512), "SkylakeX");
    ck_assert_str_eq(eng_blas_core_advice("prescott", AVX512), "SkylakeX");
    ck_assert_str_eq(eng_blas_core_advice("Nehalem", AVX512), "SkylakeX");
}
END_TEST

/* AVX-512 only counts whole: F without BW/VL/DQ/CD (Knights Landing) is not
 * what the SkylakeX kernels need, so Haswell's. */
START_TEST(partial_avx512_gets_haswell)
{
    eng_cpu_features knl = {1, 1, 1, 0, 0, 0, 1};
    ck_assert_str_eq(eng_blas_core_advice("Prescott", knl), "Haswell");
    ck_assert_str_eq(eng_blas_core_advice("Sandybridge", AVX2), "Haswell");
}
END_TEST

/* A kernel set OpenBLAS chose for a CPU it knows is kept, and so is a
 * fallback on a CPU that has nothing better. */
START_TEST(known_cores_and_old_cpus_are_kept)
{
    ck_assert_ptr_null(eng_blas_core_advice("Haswell", AVX512));
    ck_assert_ptr_null(eng_blas_core_advice("SkylakeX", AVX512));
    ck_assert_ptr_null(eng_blas_core_advice("Cooperlake", AVX512));
    ck_assert_ptr_null(eng_blas_core_advice("Zen", AVX2));
    ck_assert_ptr_null(eng_blas_core_advice("Excavator", AVX2));
    ck_assert_ptr_null(eng_blas_core_advice("Prescott", SSE));
    eng_cpu_features avx2_no_fma = {1, 0, 0, 0, 0, 0, 0};
    ck_assert_ptr_null(eng_blas_core_advice("Prescott", avx2_no_fma));
    ck_assert_ptr_null(eng_blas_core_advice(NULL, AVX512));
    ck_assert_ptr_null(eng_blas_core_advice("unknown", AVX512));
}
END_TEST

/* The loaded library names its kernel set; this process's advice, whatever
 * the machine, is either nothing or one of the two names above. */
START_TEST(this_machine)
{
    const char *core = eng_blas_core();
    ck_assert(core && *core);
    const char *a = eng_blas_core_advice(core, eng_cpu_probe());
    ck_assert(a == NULL || !strcmp(a, "SkylakeX") || !strcmp(a, "Haswell"));
}
END_TEST

Suite *blas_core_suite(void)
{
    Suite *s = suite_create("blas_core");
    TCase *tc = tcase_create("advice");
    tcase_add_test(tc, fallback_on_avx512_gets_skylakex);
    tcase_add_test(tc, partial_avx512_gets_haswell);
    tcase_add_test(tc, known_cores_and_old_cpus_are_kept);
    tcase_add_test(tc, this_machine);
    suite_add_tcase(s, tc);
    return s;
}
