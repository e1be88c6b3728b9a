/*
 * engine/prep.h — preparing data for training: standardisation with
 * training-split statistics and seeded train/test splits.
 */
#ifndef ENG_PREP_H
#define ENG_PREP_H

#include "engine/rng.h"
#include "engine/types.h"

/* Column mean and (population) std of the rows idx[0..n) of x [*][d]
 * row-major. A std below 1e-12 is reported as 1 so constant columns map to 0. */
void eng_standardize_fit(const eng_real *x, size_t d, const uint32_t *idx, size_t n,
                         double *mean, double *std);
/* x[i][j] = (x[i][j] - mean[j]) / std[j] for all rows 0..rows. */
void eng_standardize_apply(eng_real *x, size_t rows, size_t d,
                           const double *mean, const double *std);

/* Split rows 0..n into test (round(test_fraction * size) of each stratum) and
 * train, chosen at random with rng. strata: NULL (one stratum) or [n] labels
 * in 0..n_strata-1 (negative = the row is in no stratum: always train).
 * train and test must each hold n entries; counts go to *n_train, *n_test;
 * both lists come out in ascending row order (the trainer shuffles per epoch).
 * Every stratum with >= 2 rows keeps at least one row on each side when
 * test_fraction > 0.
 * Errors: ENG_EINVAL if test_fraction is outside [0, 1). ENG_ENOMEM. */
int eng_split(const int *strata, int n_strata, size_t n, double test_fraction, eng_rng *rng,
              uint32_t *train, size_t *n_train, uint32_t *test, size_t *n_test);

#endif
