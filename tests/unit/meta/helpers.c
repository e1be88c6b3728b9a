/*
 * tests/unit/meta/helpers.c — small numeric helpers. (Allocation counting:
 * tests/unit/alloc_count.c.)
 */
#include <math.h>
#include <stdlib.h>

#include "helpers.h"

void fill_normal(eng_rng *r, eng_real *a, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (eng_real)(sd * eng_rng_normal(r));
}

double max_rel_err(const eng_real *a, const eng_real *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (1 + fabs((double)b[i]));
        if (!(e <= worst))
            worst = e; /* NaN propagates as the worst */
    }
    return worst;
}
