/*
 * engine/eng__internal.h — symbols shared between the engine's .c files only
 * (the eng__ prefix marks them; nothing outside engine/ may include this).
 *
 * The engine is compiled once per scalar type, so everything that depends on
 * eng_real — the BLAS routine, the libm functions — is chosen here by one
 * macro switch instead of being repeated in every file.
 */
#ifndef ENG__INTERNAL_H
#define ENG__INTERNAL_H

#include <cblas.h>
#include <math.h>

#include "engine/mtl.h"
#include "engine/types.h"

#ifdef ENG_DOUBLE
#define ENG__GEMM cblas_dgemm
#define ENG__EXP exp
#define ENG__LOG log
#define ENG__SQRT sqrt
#else
#define ENG__GEMM cblas_sgemm
#define ENG__EXP expf
#define ENG__LOG logf
#define ENG__SQRT sqrtf
#endif

/* ---- dense.c: one fully connected layer on a batch, weights [out][in] ---- */

/* y[n][out] = act(x[n][in] · wᵀ + b). */
void eng__dense_forward(const eng_real *x, int n, int in, int out, const eng_real *w,
                        const eng_real *b, eng_act act, eng_real *y);

/* Backward through the same layer. On entry dy[n][out] holds dL/dy (the
 * gradient w.r.t. the activated output y); it is turned into dL/dz in place
 * (ReLU: masked where y <= 0). Then dw = dzᵀ·x, db = column sums of dz
 * (both overwritten) and, if dx is not NULL, dx (+)= dz·w: overwritten when
 * accumulate is 0, added to when it is 1. */
void eng__dense_backward(const eng_real *x, int n, int in, int out, const eng_real *w,
                         const eng_real *y, eng_act act, eng_real *dy, eng_real *dw,
                         eng_real *db, eng_real *dx, int accumulate);

/* ---- loss.c: per-task losses with row and class weights (see mtl.h) ---- */

/* Softmax cross-entropy of logits z[n][k] against class indices y[n].
 * Writes the weighted mean loss to *loss and the weight sum (the
 * denominator) to *wsum. If dz is not NULL and the denominator is not 0,
 * dz[n][k] = scale * dL/dz (rows with weight 0 get 0). Rows with row weight
 * 0 are skipped entirely (their label is not read, so it may be NaN).
 * ENG_EINVAL for a label outside 0..k-1 or a negative/non-finite weight. */
int eng__loss_softmax_ce(const eng_real *z, int n, int k, const eng_real *y,
                         const eng_real *row_weight, const eng_real *class_weight,
                         double scale, eng_real *dz, double *loss, double *wsum);

/* Mean squared error of z[n] (one output) against y[n], same conventions. */
int eng__loss_mse(const eng_real *z, int n, const eng_real *y, const eng_real *row_weight,
                  double scale, eng_real *dz, double *loss, double *wsum);

#endif
