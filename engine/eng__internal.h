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
#include "engine/rng.h"
#include "engine/types.h"

#ifdef ENG_DOUBLE
#define ENG__GEMM_RAW cblas_dgemm
#define ENG__EXP exp
#define ENG__LOG log
#define ENG__LOG1P log1p
#define ENG__SQRT sqrt
#define ENG__TANH tanh
#define ENG__ERF erf
#else
#define ENG__GEMM_RAW cblas_sgemm
#define ENG__EXP expf
#define ENG__LOG logf
#define ENG__LOG1P log1pf
#define ENG__SQRT sqrtf
#define ENG__TANH tanhf
#define ENG__ERF erff
#endif

/* Every gemm of the engine goes through ENG__GEMM. Built with
 * -DENG_GEMM_TIMING (the bench's `engine_timed` library only), it is timed
 * with CLOCK_MONOTONIC and the nanoseconds added to eng__gemm_ns, the one
 * global of that build; the normal builds call BLAS directly. */
#ifdef ENG_GEMM_TIMING
extern unsigned long long eng__gemm_ns;
void eng__gemm_timed(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m,
                     int n, int k, eng_real alpha, const eng_real *a, int lda, const eng_real *b,
                     int ldb, eng_real beta, eng_real *c, int ldc);
#define ENG__GEMM eng__gemm_timed
#else
#define ENG__GEMM ENG__GEMM_RAW
#endif

/* ENG__CLONES on a function compiles it three times — for x86-64-v4,
 * x86-64-v3 (AVX2+FMA) and the baseline — and picks one by the CPU once at
 * load time (GCC's target_clones), so the engine's hot loops vectorise at
 * the machine's width while one binary still runs anywhere. Outside
 * gemm.c, floating-point contraction stays off (ISO C mode), so every clone
 * of an element-wise loop computes bit-identical results. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(ENG_NO_CLONES)
#define ENG__CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ENG__CLONES
#endif

/* ---- small products (gemm.c) ---------------------------------------------
 *
 * eng__gemm: row-major C = op(A) op(B) + beta C, beta 0 or 1 (with beta 0, C
 * is only written), op(X) = X or Xᵀ as ta/tb say; M, N, K >= 1. Products of
 * at most ENG__GEMM_SMALL multiply-adds (and not both transposed) run as
 * plain C loops — below that size a BLAS call's fixed cost rivals the
 * arithmetic (see gemm.c) — the rest through ENG__GEMM. eng__gemm_small and
 * eng__gemm_blas are the two paths alone (any shape), for the tests that
 * hold one against the other (tests/unit/engine/test_gemm.c, the one test
 * that includes this header). None allocates; all are deterministic. */
#ifndef ENG__GEMM_SMALL
#define ENG__GEMM_SMALL 65536
#endif
void eng__gemm(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
               const eng_real *B, int ldb, int beta, eng_real *C, int ldc);
void eng__gemm_small(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
                     const eng_real *B, int ldb, int beta, eng_real *C, int ldc);
void eng__gemm_blas(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
                    const eng_real *B, int ldb, int beta, eng_real *C, int ldc);

/* ---- layers (layer.c, act.c, layernorm.c, dropout.c) ---------------------
 *
 * A layer maps a batch of n rows of `in` features to n rows of `out`
 * features, owns a contiguous run of the parameter block [p_off, p_end) and
 * some per-row workspace allocated once for max_batch rows. The model
 * (mtl.c) only wires layers together by `src`, walks them forward and back,
 * and never looks inside: everything a kind of layer does is behind
 * eng__layer_forward / eng__layer_backward, which switch on `kind`.
 *
 * Convolution fits this without a redesign: a conv layer is another `kind`
 * whose rows are flattened C×H×W feature maps (in = C·H·W, out = C'·H'·W'),
 * whose parameters (kernel [C'][C][kh][kw], bias [C']) are another run of
 * the flat block listed in the tensor table, whose extra workspace (an
 * im2col buffer of n·H'·W' × C·kh·kw) is sized in eng__layer_workspace, and
 * whose forward/backward are the same three gemms on the im2col matrix; the
 * bias+activation, layer-norm and dropout passes below already work on any
 * [n][out] buffer.
 */
typedef enum { ENG__LAYER_DENSE = 0 } eng__layer_kind;

/* A block of a blocked dense layer (the experts and gates of a mixture,
 * moe.c): output columns [col0, col0 + cols) of the layer, i.e. weight rows
 * [col0, col0 + cols) of its [out][in] weight, computed from the block's own
 * input matrix — `in` values per row at row stride ldx, starting at x (NULL:
 * the x the layer is called with, stride in). On the way back dL/dx is
 * written to dx (same stride; NULL: not wanted), added when accumulate is 1.
 * So E experts reading one input are ONE block (one gemm over their
 * concatenated weights), and a deeper expert layer is E blocks on column
 * slices of the layer below (a block-diagonal weight). */
typedef struct {
    const eng_real *x;
    int ldx;
    eng_real *dx;
    int accumulate;
    int col0, cols;
} eng__block;

typedef struct {
    eng__layer_kind kind;
    int in, out;
    eng_act act;
    eng_real slope;    /* leaky ReLU */
    int ln;            /* layer norm on the pre-activation */
    double dropout;    /* drop probability (hidden layers only) */
    int src;           /* layer feeding this one; -1 = the input batch */
    int task;          /* -1 = trunk */
    int index;         /* position within the trunk or tower; -1 = head */
    int nblocks;       /* 0: one plain dense map of the x passed in; else blocked */
    const eng__block *blocks; /* [nblocks] (layer norm is not offered on them) */
    size_t w_off;      /* weight [out][in] in the parameter block */
    size_t b_off;      /* bias [out] right after it */
    size_t g_off;      /* layer-norm gain γ [out] (when ln), then β [out] */
    size_t p_end;      /* one past the layer's last parameter */
    /* workspace, each [max_batch][out] unless stated; NULL when unused */
    eng_real *a;       /* output fed to the next layer (after dropout) */
    eng_real *d;       /* gradient w.r.t. a, turned into that w.r.t. z in place */
    eng_real *h;       /* activation before dropout (== a without dropout) */
    eng_real *z;       /* input of the activation (GELU only: it needs z) */
    eng_real *u;       /* layer norm: the normalised pre-activation */
    eng_real *rstd;    /* layer norm: [max_batch] 1/sqrt(var + eps) per row */
    eng_real *mask;    /* dropout: 0 or 1/(1-p) per unit */
} eng__layer;

/* Workspace elements the layer needs for max_batch rows, as separate
 * buffers: sizes[i] for a, d, h, z, u, rstd, mask (0 = not needed). */
void eng__layer_workspace(const eng__layer *ly, int max_batch, size_t sizes[7]);

/* Forward on x [n][in]. rng NULL: inference (no dropout). Otherwise dropout
 * masks are drawn from rng. */
void eng__layer_forward(eng__layer *ly, const eng_real *x, int n, const eng_real *params,
                        eng_rng *rng);

/* Backward after a training forward. On entry ly->d holds dL/da; on return
 * the layer's parameter gradients are in grads (overwritten) and, if dx is
 * not NULL, dx (+)= dL/dx: overwritten when accumulate is 0, added when 1.
 * A blocked layer ignores dx and accumulate and uses its blocks'. */
void eng__layer_backward(eng__layer *ly, const eng_real *x, int n, const eng_real *params,
                         eng_real *grads, eng_real *dx, int accumulate);

/* act.c: out = act(in + b) over [n][k] (b may be NULL: no bias; in and out
 * may alias). */
void eng__bias_act(eng_act act, eng_real slope, const eng_real *in, const eng_real *b, int n,
                   int k, eng_real *out);
/* act.c: d *= act'(.) over [n][k], reading the activation's output h
 * (ReLU, leaky ReLU, tanh, sigmoid) or its input z (GELU); if db is not
 * NULL it receives (overwritten) the column sums of the result. */
void eng__act_backward(eng_act act, eng_real slope, const eng_real *h, const eng_real *z, int n,
                       int k, eng_real *d, eng_real *db);

/* layernorm.c: rows of v [n][k] normalised into u, rstd per row, and
 * out = γ⊙u + β (out may alias v). */
void eng__layernorm_forward(const eng_real *v, int n, int k, const eng_real *gamma,
                            const eng_real *beta, eng_real *u, eng_real *rstd, eng_real *out);
/* layernorm.c: d holds dL/dout on entry, dL/dv on return; dgamma, dbeta
 * overwritten. */
void eng__layernorm_backward(const eng_real *u, const eng_real *rstd, int n, int k,
                             const eng_real *gamma, eng_real *d, eng_real *dgamma,
                             eng_real *dbeta);

/* dropout.c: mask[i] = 1/(1-p) with probability 1-p, else 0, for count
 * units, drawn from rng; then a = h ⊙ mask. */
void eng__dropout_forward(double p, eng_rng *rng, const eng_real *h, size_t count,
                          eng_real *mask, eng_real *a);

/* ---- loss.c: per-task losses with row and class weights (see mtl.h) ----
 * Each writes the weighted mean loss to *loss and the weight sum (the
 * denominator) to *wsum. If dz is not NULL and the denominator is not 0,
 * dz = scale * dL/dz (rows with weight 0 get 0). Rows with row weight 0 are
 * skipped entirely (their label is not read, so it may be NaN). ENG_EINVAL
 * for a bad label or a negative/non-finite weight. */

/* Softmax cross-entropy of logits z[n][k] against class indices y[n], with
 * label smoothing `smooth` in [0, 1). */
int eng__loss_softmax_ce(const eng_real *z, int n, int k, const eng_real *y,
                         const eng_real *row_weight, const eng_real *class_weight, double smooth,
                         double scale, eng_real *dz, double *loss, double *wsum);

/* Binary cross-entropy of logits z[n] against y[n] in [0, 1]; class_weight
 * [2] optional (then y must be exactly 0 or 1). */
int eng__loss_bce(const eng_real *z, int n, const eng_real *y, const eng_real *row_weight,
                  const eng_real *class_weight, double scale, eng_real *dz, double *loss,
                  double *wsum);

/* Squared error (huber_delta 0) or Huber loss with that delta, of z[n]
 * against y[n]. */
int eng__loss_regression(const eng_real *z, int n, const eng_real *y,
                         const eng_real *row_weight, double huber_delta, double scale,
                         eng_real *dz, double *loss, double *wsum);

/* ---- moe.c: the mixture of experts between the trunk and the towers ----
 *
 * Everything the model needs from a mixture, which owns the experts, the
 * gates and the mixed outputs (see moe.c for the layout and the formulas).
 * Build (no allocation besides the struct) lays its parameters out from
 * p_off on and returns where they end; workspace_size and bind hand it its
 * buffers in the model's one workspace allocation. */
typedef struct eng__moe eng__moe;

/* in: the mixture's input width (n_in, or the trunk's top width). *out is
 * new (free with free()); ENG_ENOMEM. */
int eng__moe_build(const eng_mtl_spec *s, int in, size_t p_off, eng__moe **out);
size_t eng__moe_param_end(const eng__moe *mo);
int eng__moe_width(const eng__moe *mo); /* d: the width of each task's mixed output */
/* Elements of workspace for max_batch rows (a multiple of align). */
size_t eng__moe_workspace(const eng__moe *mo, int max_batch, size_t align);
/* Takes its buffers from work; dinput: where dL/d(input) goes (the trunk's
 * top gradient), NULL when the input is the batch itself. */
void eng__moe_bind(eng__moe *mo, eng_real *work, int max_batch, size_t align, eng_real *dinput);
int eng__moe_ntensors(const eng__moe *mo);
void eng__moe_tensor(const eng__moe *mo, int i, eng_tensor_info *out);
void eng__moe_init(const eng__moe *mo, eng_real *params, eng_rng *rng);
void eng__moe_forward(eng__moe *mo, const eng_real *x, int n, const eng_real *params,
                      eng_rng *rng);
/* Task t's mixed output [n][d] and its gradient buffer. */
eng_real *eng__moe_out(const eng__moe *mo, int t);
eng_real *eng__moe_dout(const eng__moe *mo, int t);
/* After the forward and with eng__moe_dout(t) filled for every t with
 * fed[t] != 0 (the others are not read): parameter gradients (overwritten)
 * and, when bound with dinput, dL/d(input) (overwritten). */
void eng__moe_backward(eng__moe *mo, const eng_real *x, int n, const eng_real *params,
                       eng_real *grads, const int *fed);
/* Gate queries (eng_mtl_gate_*). */
int eng__moe_levels(const eng__moe *mo);
int eng__moe_gate_size(const eng__moe *mo, int level, int gate);
int eng__moe_gate_name(const eng__moe *mo, int level, int gate, int c, char *buf, size_t len);
int eng__moe_gate_sums(const eng__moe *mo, int level, int gate, int n, double *sum);

#endif
