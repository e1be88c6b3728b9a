/*
 * tests/unit/alloc_count.h — the allocation counter of alloc_count.c, for
 * unit-test binaries linked with TEST_ALLOC_WRAP (tests/CMakeLists.txt).
 */
#ifndef TEST_ALLOC_COUNT_H
#define TEST_ALLOC_COUNT_H

/* Calls to malloc/calloc/realloc/aligned_alloc/posix_memalign made by code
 * linked into the test binary (the engine included) since the start. */
long test_alloc_count(void);

#endif
