/*
 * tests/unit/engine/test_gemm.c — the small-product loops of engine/gemm.c
 * against the BLAS path, every form (NN, TN, NT, and TT which falls back to
 * BLAS), beta 0 and 1, padded leading dimensions, and shapes that hit every
 * tile and remainder (rows 1..MR+, columns below/at/above one and two
 * vectors, one column, k = 1, k past the NT panel height of 64). In the
 * double build the two agree to rounding of double sums; the float build
 * checks the same at float precision. It also checks that beta 0 ignores
 * what C held (NaN in, finite out) and that a call is deterministic.
 *
 * The one test that includes engine/eng__internal.h: the kernels are not
 * public API, and a test of them must call them directly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/eng__internal.h"
#include "helpers.h"

static const int dims_m[] = {1, 2, 3, 4, 5, 10, 13};
static const int dims_n[] = {1, 3, 4, 8, 9, 16, 17, 40, 41};
static const int dims_k[] = {1, 2, 7, 8, 10, 40, 65, 130};

static void fill(eng_rng *r, eng_real *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (eng_real)(2 * eng_rng_uniform(r) - 1);
}

/* One case: C = op(A) op(B) + beta C by both paths; pad widens every
 * leading dimension. */
static void check_case(eng_rng *r, int ta, int tb, int M, int N, int K, int beta, int pad)
{
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    eng_real *A = malloc((size_t)ar * lda * sizeof *A), *B = malloc((size_t)br * ldb * sizeof *B);
    const size_t nc = (size_t)M * ldc;
    eng_real *C0 = malloc(nc * sizeof *C0), *Cs = malloc(nc * sizeof *Cs),
             *Cb = malloc(nc * sizeof *Cb), *Cs2 = malloc(nc * sizeof *Cs2);
    ck_assert_ptr_nonnull(A);
    ck_assert_ptr_nonnull(B);
    ck_assert_ptr_nonnull(C0);
    ck_assert_ptr_nonnull(Cs);
    ck_assert_ptr_nonnull(Cb);
    ck_assert_ptr_nonnull(Cs2);
    fill(r, A, (size_t)ar * lda);
    fill(r, B, (size_t)br * ldb);
    fill(r, C0, (size_t)M * ldc);
    if (!beta) /* beta 0: C's old contents must not leak in, even NaN */
        for (size_t i = 0; i < (size_t)M * ldc; i++)
            C0[i] = NAN;
    memcpy(Cs, C0, (size_t)M * ldc * sizeof *Cs);
    memcpy(Cb, C0, (size_t)M * ldc * sizeof *Cb);
    memcpy(Cs2, C0, (size_t)M * ldc * sizeof *Cs2);
    eng__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, beta, Cs, ldc);
    eng__gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, beta, Cb, ldc);
    eng__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, beta, Cs2, ldc);
    ck_assert_mem_eq(Cs, Cs2, (size_t)M * ldc * sizeof *Cs);
#ifdef ENG_DOUBLE
    const double eps = 2.3e-16;
#else
    const double eps = 1.2e-7;
#endif
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= N) { /* padding is never written */
                ck_assert_msg(memcmp(&Cs[at], &C0[at], sizeof *Cs) == 0,
                              "padding written at (%d,%d)", i, j);
                continue;
            }
            double mag = beta ? fabs((double)C0[at]) : 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                mag += fabs(a * b);
            }
            double tol = 4.0 * (K + 2) * eps * mag + 1e-300;
            ck_assert_msg(isfinite((double)Cs[at]) && fabs((double)Cs[at] - (double)Cb[at]) <= tol,
                          "ta=%d tb=%d M=%d N=%d K=%d beta=%d pad=%d at (%d,%d): small %.17g blas "
                          "%.17g (tol %.3g)",
                          ta, tb, M, N, K, beta, pad, i, j, (double)Cs[at], (double)Cb[at], tol);
        }
    }
    free(A);
    free(B);
    free(C0);
    free(Cs);
    free(Cb);
    free(Cs2);
}

/* _i: the form (ta, tb) = bits of _i. */
START_TEST(small_matches_blas)
{
    const int ta = _i & 1, tb = (_i >> 1) & 1;
    eng_rng r;
    eng_rng_seed(&r, 77 + (uint64_t)_i);
    const int nm = (int)(sizeof dims_m / sizeof *dims_m),
              nn = (int)(sizeof dims_n / sizeof *dims_n),
              nk = (int)(sizeof dims_k / sizeof *dims_k);
    for (int a = 0; a < nm; a++)
        for (int b = 0; b < nn; b++)
            for (int c = 0; c < nk; c++)
                for (int beta = 0; beta <= 1; beta++)
                    check_case(&r, ta, tb, dims_m[a], dims_n[b], dims_k[c], beta,
                               (a + b + c + beta) % 2 ? 3 : 0);
}
END_TEST

/* The dispatcher: the MAML sinusoid shapes (small path) and one large
 * product (BLAS path) give the same as the paths they pick. */
START_TEST(dispatch_picks_a_path)
{
    eng_rng r;
    eng_rng_seed(&r, 5);
    static const int shapes[][5] = {{0, 1, 10, 40, 40}, {0, 0, 10, 40, 40}, {1, 0, 40, 40, 10},
                                    {0, 1, 10, 40, 1},  {0, 1, 10, 1, 40},  {1, 0, 40, 1, 10},
                                    {0, 1, 70, 80, 90}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3],
                  K = shapes[s][4];
        const int small = (size_t)M * N * K <= ENG__GEMM_SMALL;
        eng_real *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
        eng_real *C1 = malloc((size_t)M * N * sizeof *C1), *C2 = malloc((size_t)M * N * sizeof *C2);
        ck_assert(A && B && C1 && C2);
        fill(&r, A, (size_t)M * K);
        fill(&r, B, (size_t)K * N);
        const int lda = ta ? M : K, ldb = tb ? K : N;
        eng__gemm(ta, tb, M, N, K, A, lda, B, ldb, 0, C1, N);
        if (small)
            eng__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, 0, C2, N);
        else
            eng__gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, 0, C2, N);
        ck_assert_mem_eq(C1, C2, (size_t)M * N * sizeof *C1);
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}
END_TEST

Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, small_matches_blas, 0, 4);
    tcase_add_test(tc, dispatch_picks_a_path);
    suite_add_tcase(s, tc);
    return s;
}
