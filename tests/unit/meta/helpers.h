/*
 * tests/unit/meta/helpers.h — shared by the meta-learning test files: the
 * suites, the allocation counter, finite-difference helpers.
 */
#ifndef META_TEST_HELPERS_H
#define META_TEST_HELPERS_H

#include <check.h>
#include <stddef.h>

#include "engine/meta.h"
#include "tests/unit/alloc_count.h"

Suite *fnet_suite(void);
Suite *meta_grad_suite(void); /* finite-difference checks: NULL in the float build */
Suite *meta_suite(void);      /* identities that hold in any precision */
Suite *episodes_suite(void);
Suite *sinusoid_suite(void);  /* the short MAML reproduction: NULL in the double build */


/* Fills a[n] with normal(0, sd) draws. */
void fill_normal(eng_rng *r, eng_real *a, size_t n, double sd);

/* max_i |a_i − b_i| / (1 + |b_i|) */
double max_rel_err(const eng_real *a, const eng_real *b, size_t n);

#endif
