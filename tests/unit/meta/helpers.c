/*
 * tests/unit/meta/helpers.c — allocation counting through the linker's
 * --wrap (see CMakeLists.txt) and small numeric helpers.
 */
#include <math.h>
#include <stdlib.h>

#include "helpers.h"

static long alloc_count;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

void *__wrap_malloc(size_t n)
{
    alloc_count++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    alloc_count++;
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    alloc_count++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    alloc_count++;
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    alloc_count++;
    return __real_posix_memalign(p, a, n);
}

long test_alloc_count(void)
{
    return alloc_count;
}

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
