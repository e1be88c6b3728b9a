/*
 * tests/unit/engine/helpers.h — shared by the engine test files: the suites,
 * the allocation counter, and an independent reference forward pass.
 */
#ifndef ENGINE_TEST_HELPERS_H
#define ENGINE_TEST_HELPERS_H

#include <check.h>
#include <stddef.h>

#include "engine/mtl.h"
#include "tests/unit/alloc_count.h"

/* Tolerance for comparing values computed in eng_real against exact ones. */
#ifdef ENG_DOUBLE
#define REAL_TOL 1e-12
#else
#define REAL_TOL 2e-6
#endif

Suite *rng_suite(void);
Suite *optim_suite(void);
Suite *metrics_suite(void);
Suite *prep_suite(void);
Suite *loss_suite(void);
Suite *mtl_suite(void);
Suite *weighting_suite(void);
Suite *blas_core_suite(void); /* engine/blas_core.c: which OpenBLAS kernels */
Suite *gemm_suite(void); /* engine/gemm.c's small products against BLAS */
Suite *grad_suite(void); /* NULL in the float build */
Suite *moe_suite(void);  /* mixtures of experts (test_moe.c) */
Suite *synthetic_suite(void); /* the MMoE paper's synthetic benchmark; NULL in double */

#ifdef ENG_DOUBLE
/* test_grad.c: every element of eng_mtl_grads(m) against central finite
 * differences of sum_t lambda_t L_t (dropout masks drawn from copies of
 * *drop, or none when drop is NULL), and most of them nonzero. */
void grad_check_drop(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                     const eng_rng *drop);
#endif
/* test_grad.c: adds 0.1·N(0, 1) to every parameter. */
void jitter(eng_mtl *m, eng_rng *r);


/* Independent forward pass in double (inference: no dropout), straight from
 * the spec and the tensor table, with every activation and layer norm:
 * out[t] receives [n][n_out_t] (caller-allocated). If min_abs_pre is not
 * NULL it gets the smallest |pre-activation| of any ReLU or leaky-ReLU unit
 * (trunk or tower) over the batch (INFINITY when there is none). */
void ref_forward(const eng_mtl *m, const eng_real *params, const eng_real *x, int n,
                 double **out, double *min_abs_pre);

/* The model of the gradient check: n_in 5, trunk [7, 6], ReLU; task 0
 * classification (3 classes) with a tower [4]; task 1 regression; task 2
 * classification (2 classes) with class weights and some row weights 0. */
void demo_spec(eng_mtl_spec *s);

/* A batch of DEMO_N rows for demo_spec, filled from an rng. tb points into
 * the struct itself, so fill it where it will stay. Row 1 of task 2 is
 * masked out and carries a NaN label. */
#define DEMO_N 8
typedef struct {
    eng_real x[DEMO_N * 5];
    eng_real y0[DEMO_N], y1[DEMO_N], y2[DEMO_N], rw2[DEMO_N], cw2[2];
    eng_task_batch tb[3];
} demo_batch;
void demo_batch_fill(demo_batch *b, eng_rng *r);

#endif
