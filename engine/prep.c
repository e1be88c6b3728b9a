/*
 * engine/prep.c — standardisation statistics and seeded stratified splits.
 *
 * Statistics are two-pass (mean, then squared deviations) in double, walking
 * rows in order so the row-major matrix is read contiguously; a constant
 * column gets std 1 so it maps to 0 instead of dividing by zero.
 *
 * The split buckets rows by stratum with a stable counting sort, picks
 * round(f * size) test rows per bucket by a partial Fisher–Yates shuffle
 * (strata in index order, so a seed always gives the same split), and then
 * emits both lists by one ascending scan. The caller's train array serves as
 * the bucket scratch and the test array as the "chosen" mask, both being
 * n long; only the per-stratum counts are allocated.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/prep.h"

void eng_standardize_fit(const eng_real *x, size_t d, const uint32_t *idx, size_t n,
                         double *mean, double *std)
{
    for (size_t j = 0; j < d; j++)
        mean[j] = std[j] = 0;
    for (size_t i = 0; i < n; i++) {
        const eng_real *row = x + (size_t)idx[i] * d;
        for (size_t j = 0; j < d; j++)
            mean[j] += (double)row[j];
    }
    for (size_t j = 0; j < d; j++)
        mean[j] = n ? mean[j] / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        const eng_real *row = x + (size_t)idx[i] * d;
        for (size_t j = 0; j < d; j++) {
            double e = (double)row[j] - mean[j];
            std[j] += e * e;
        }
    }
    for (size_t j = 0; j < d; j++) {
        double s = n ? sqrt(std[j] / (double)n) : 0;
        std[j] = s < 1e-12 ? 1 : s;
    }
}

void eng_standardize_apply(eng_real *x, size_t rows, size_t d, const double *mean,
                           const double *std)
{
    for (size_t i = 0; i < rows; i++) {
        eng_real *row = x + i * d;
        for (size_t j = 0; j < d; j++)
            row[j] = (eng_real)(((double)row[j] - mean[j]) / std[j]);
    }
}

int eng_split(const int *strata, int n_strata, size_t n, double test_fraction, eng_rng *rng,
              uint32_t *train, size_t *n_train, uint32_t *test, size_t *n_test)
{
    if (!(test_fraction >= 0 && test_fraction < 1) || n > UINT32_MAX)
        return ENG_EINVAL;
    if (strata) {
        if (n_strata < 1)
            return ENG_EINVAL;
        for (size_t i = 0; i < n; i++)
            if (strata[i] >= n_strata)
                return ENG_EINVAL;
    } else {
        n_strata = 1;
    }
    size_t *start = calloc((size_t)n_strata + 1, sizeof *start);
    if (!start)
        return ENG_ENOMEM;

    /* Counting sort of the stratified rows into train[] (stable: ascending
     * within each bucket). start[s]..start[s+1] is bucket s. */
    for (size_t i = 0; i < n; i++) {
        int s = strata ? strata[i] : 0;
        if (s >= 0)
            start[s + 1]++;
    }
    for (int s = 0; s < n_strata; s++)
        start[s + 1] += start[s];
    for (size_t i = 0; i < n; i++) {
        int s = strata ? strata[i] : 0;
        if (s >= 0)
            train[start[s]++] = (uint32_t)i;
    }
    /* start[s] now holds the end of bucket s; shift back to the beginnings. */
    memmove(start + 1, start, (size_t)n_strata * sizeof *start);
    start[0] = 0;

    /* test[i] = 1 marks row i for the test side. */
    if (n)
        memset(test, 0, n * sizeof *test);
    for (int s = 0; s < n_strata; s++) {
        uint32_t *b = train + start[s];
        size_t size = start[s + 1] - start[s];
        size_t k = (size_t)floor(test_fraction * (double)size + 0.5);
        if (test_fraction > 0 && size >= 2) {
            if (k < 1)
                k = 1;
            if (k > size - 1)
                k = size - 1;
        }
        for (size_t i = 0; i < k; i++) {
            size_t j = i + (size_t)eng_rng_below(rng, size - i);
            uint32_t tmp = b[i];
            b[i] = b[j];
            b[j] = tmp;
            test[b[i]] = 1;
        }
    }
    free(start);

    /* One ascending scan. Writing test[nt] / train[ntr] never overtakes the
     * scan position i, so the mask entries still to be read are intact. */
    size_t ntr = 0, nt = 0;
    for (size_t i = 0; i < n; i++) {
        if (test[i])
            test[nt++] = (uint32_t)i;
        else
            train[ntr++] = (uint32_t)i;
    }
    *n_train = ntr;
    *n_test = nt;
    return ENG_OK;
}
