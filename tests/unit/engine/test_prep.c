/*
 * tests/unit/engine/test_prep.c — standardisation and the seeded
 * (stratified) train/test split.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/prep.h"
#include "helpers.h"

START_TEST(test_standardize)
{
    /* Fit on rows 0 and 2 only: col0 {1, 3} -> mean 2, std 1; col1 {5, 5}
     * is constant -> std reported as 1; col2 {-2, 2} -> mean 0, std 2. */
    eng_real x[9] = {1, 5, -2, 100, 7, 0, 3, 5, 2};
    uint32_t idx[2] = {0, 2};
    double mean[3], std[3];
    eng_standardize_fit(x, 3, idx, 2, mean, std);
    ck_assert_double_eq_tol(mean[0], 2, 1e-12);
    ck_assert_double_eq_tol(std[0], 1, 1e-12);
    ck_assert_double_eq_tol(mean[1], 5, 1e-12);
    ck_assert_double_eq(std[1], 1);
    ck_assert_double_eq_tol(mean[2], 0, 1e-12);
    ck_assert_double_eq_tol(std[2], 2, 1e-12);
    eng_standardize_apply(x, 3, 3, mean, std);
    const double want[9] = {-1, 0, -1, 98, 2, 0, 1, 0, 1};
    for (int i = 0; i < 9; i++)
        ck_assert_double_eq_tol(x[i], want[i], 1e-5);
}
END_TEST

/* Checks the invariants every split must have; in_test[i] (if given) gets 1
 * for the rows on the test side. */
static void check_partition(size_t n, const uint32_t *train, size_t ntr, const uint32_t *test,
                            size_t nt, char *in_test)
{
    ck_assert_uint_eq(ntr + nt, n);
    char *seen = calloc(n ? n : 1, 1);
    for (size_t i = 0; i < ntr; i++) {
        ck_assert_uint_lt(train[i], n);
        if (i)
            ck_assert_uint_lt(train[i - 1], train[i]); /* ascending */
        ck_assert(!seen[train[i]]);
        seen[train[i]] = 1;
    }
    for (size_t i = 0; i < nt; i++) {
        ck_assert_uint_lt(test[i], n);
        if (i)
            ck_assert_uint_lt(test[i - 1], test[i]);
        ck_assert(!seen[test[i]]); /* disjoint from train and from itself */
        seen[test[i]] = 2;
    }
    for (size_t i = 0; i < n; i++) {
        ck_assert(seen[i]); /* train ∪ test = all rows */
        if (in_test)
            in_test[i] = seen[i] == 2;
    }
    free(seen);
}

START_TEST(test_split_stratified_proportions)
{
    enum { N = 1000, K = 5 };
    const int sizes[K] = {500, 300, 150, 47, 3};
    int *strata = malloc(sizeof(int) * N);
    uint32_t *order = malloc(sizeof(uint32_t) * N);
    for (uint32_t i = 0; i < N; i++)
        order[i] = i;
    eng_rng r;
    eng_rng_seed(&r, 3);
    eng_rng_shuffle(&r, order, N);
    for (int c = 0, at = 0; c < K; c++)
        for (int j = 0; j < sizes[c]; j++)
            strata[order[at++]] = c;

    uint32_t *train = malloc(sizeof(uint32_t) * N), *test = malloc(sizeof(uint32_t) * N);
    uint32_t *train2 = malloc(sizeof(uint32_t) * N), *test2 = malloc(sizeof(uint32_t) * N);
    char *in_test = malloc(N);
    size_t ntr, nt, ntr2, nt2;
    eng_rng_seed(&r, 11);
    ck_assert_int_eq(eng_split(strata, K, N, 0.2, &r, train, &ntr, test, &nt), ENG_OK);
    check_partition(N, train, ntr, test, nt, in_test);
    int per[K] = {0};
    for (int i = 0; i < N; i++)
        per[strata[i]] += in_test[i];
    for (int c = 0; c < K; c++) {
        ck_assert_msg(fabs(per[c] - 0.2 * sizes[c]) <= 1.0, "class %d: %d of %d in test", c,
                      per[c], sizes[c]);
        ck_assert_int_ge(per[c], 1);
        ck_assert_int_le(per[c], sizes[c] - 1);
    }

    /* Deterministic for a seed... */
    eng_rng_seed(&r, 11);
    ck_assert_int_eq(eng_split(strata, K, N, 0.2, &r, train2, &ntr2, test2, &nt2), ENG_OK);
    ck_assert_uint_eq(nt, nt2);
    ck_assert_mem_eq(test, test2, nt * sizeof *test);
    ck_assert_mem_eq(train, train2, ntr * sizeof *train);
    /* ...and another seed picks other rows. */
    eng_rng_seed(&r, 12);
    ck_assert_int_eq(eng_split(strata, K, N, 0.2, &r, train2, &ntr2, test2, &nt2), ENG_OK);
    ck_assert_uint_eq(nt, nt2);
    ck_assert(memcmp(test, test2, nt * sizeof *test) != 0);

    free(strata);
    free(order);
    free(train);
    free(test);
    free(train2);
    free(test2);
    free(in_test);
}
END_TEST

START_TEST(test_split_small_and_unstratified)
{
    /* Strata of 2 rows keep one row on each side whatever the fraction. */
    int strata[8] = {0, 0, 1, 1, -1, 2, -1, 2};
    uint32_t train[8], test[8];
    char in_test[8];
    size_t ntr, nt;
    eng_rng r;
    eng_rng_seed(&r, 1);
    const double fractions[3] = {0.05, 0.5, 0.95};
    for (int f = 0; f < 3; f++) {
        ck_assert_int_eq(eng_split(strata, 3, 8, fractions[f], &r, train, &ntr, test, &nt),
                         ENG_OK);
        check_partition(8, train, ntr, test, nt, in_test);
        ck_assert_uint_eq(nt, 3);
        ck_assert_int_eq(in_test[0] + in_test[1], 1);
        ck_assert_int_eq(in_test[2] + in_test[3], 1);
        ck_assert_int_eq(in_test[5] + in_test[7], 1);
        ck_assert(!in_test[4] && !in_test[6]); /* negative stratum: always train */
    }
    /* Fraction 0: everything trains. */
    ck_assert_int_eq(eng_split(strata, 3, 8, 0, &r, train, &ntr, test, &nt), ENG_OK);
    ck_assert_uint_eq(nt, 0);
    ck_assert_uint_eq(ntr, 8);
    /* No strata: round(0.25 * 10) = 3 (2.5 rounds half up) of 10 rows. */
    uint32_t tr10[10], te10[10];
    ck_assert_int_eq(eng_split(NULL, 0, 10, 0.25, &r, tr10, &ntr, te10, &nt), ENG_OK);
    check_partition(10, tr10, ntr, te10, nt, NULL);
    ck_assert_uint_eq(nt, 3);
    /* Empty input. */
    ck_assert_int_eq(eng_split(NULL, 0, 0, 0.25, &r, tr10, &ntr, te10, &nt), ENG_OK);
    ck_assert_uint_eq(ntr + nt, 0);
}
END_TEST

START_TEST(test_split_rejects_bad_arguments)
{
    int strata[4] = {0, 1, 0, 5};
    uint32_t train[4], test[4];
    size_t ntr = 99, nt = 99;
    eng_rng r;
    eng_rng_seed(&r, 1);
    ck_assert_int_eq(eng_split(NULL, 0, 4, 1.0, &r, train, &ntr, test, &nt), ENG_EINVAL);
    ck_assert_int_eq(eng_split(NULL, 0, 4, -0.1, &r, train, &ntr, test, &nt), ENG_EINVAL);
    ck_assert_int_eq(eng_split(NULL, 0, 4, NAN, &r, train, &ntr, test, &nt), ENG_EINVAL);
    ck_assert_int_eq(eng_split(strata, 2, 4, 0.5, &r, train, &ntr, test, &nt), ENG_EINVAL);
    ck_assert_uint_eq(ntr, 99); /* outputs untouched on error */
    ck_assert_uint_eq(nt, 99);
}
END_TEST

Suite *prep_suite(void)
{
    Suite *s = suite_create("prep");
    TCase *tc = tcase_create("prep");
    tcase_add_test(tc, test_standardize);
    tcase_add_test(tc, test_split_stratified_proportions);
    tcase_add_test(tc, test_split_small_and_unstratified);
    tcase_add_test(tc, test_split_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
