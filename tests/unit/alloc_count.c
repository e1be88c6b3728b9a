/*
 * tests/unit/alloc_count.c — counts allocations, for the unit tests that
 * assert a hot path never allocates (tests/unit/engine and tests/unit/meta).
 *
 * The test binaries are linked with --wrap for each allocator (TEST_ALLOC_WRAP
 * in tests/CMakeLists.txt), so every call made by code in the binary, the
 * engine included, lands here first and is counted.
 */
#include <stdlib.h>

#include "tests/unit/alloc_count.h"

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
