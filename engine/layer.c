/*
 * engine/layer.c — one layer over a batch, forward and backward; for now the
 * one kind is dense: z = x·Wᵀ + b → [layer norm] → activation → [dropout].
 *
 * Weights are [out][in] row-major (PyTorch's nn.Linear), so each product is
 * one BLAS gemm over the whole batch with no transposed copy:
 *   forward   z  = x·wᵀ          (NoTrans, Trans)
 *   backward  dw = dzᵀ·x         (Trans, NoTrans)
 *             dx = dz·w          (NoTrans, NoTrans; beta 1 to accumulate)
 * Everything else is element-wise passes over the [n][out] output, as few
 * as the options allow: with no layer norm and no dropout (the common case)
 * the forward is gemm + ONE fused bias+activation pass and the backward is
 * ONE fused derivative+bias-gradient pass + two gemms, and no pre-activation
 * buffer is kept (act.c reads derivatives off the output). Layer norm and
 * dropout each add one pass and the buffers they need (eng__layer_workspace);
 * GELU keeps its input. See eng__internal.h for how a convolution would slot
 * in as another kind. A blocked layer (eng__block: the experts and gates of
 * a mixture) runs the same passes with one gemm pair per block instead of
 * one for the layer. Nothing here allocates.
 */
#include "engine/eng__internal.h"

enum { WS_A, WS_D, WS_H, WS_Z, WS_U, WS_RSTD, WS_MASK };

void eng__layer_workspace(const eng__layer *ly, int max_batch, size_t sizes[7])
{
    const size_t unit = (size_t)max_batch * (size_t)ly->out;
    sizes[WS_A] = unit;
    sizes[WS_D] = unit;
    sizes[WS_H] = ly->dropout > 0 ? unit : 0;
    sizes[WS_Z] = ly->act == ENG_ACT_GELU ? unit : 0;
    sizes[WS_U] = ly->ln ? unit : 0;
    sizes[WS_RSTD] = ly->ln ? (size_t)max_batch : 0;
    sizes[WS_MASK] = ly->dropout > 0 ? unit : 0;
}

void eng__layer_forward(eng__layer *ly, const eng_real *x, int n, const eng_real *params,
                        eng_rng *rng)
{
    const int k = ly->out;
    const eng_real *w = params + ly->w_off, *b = params + ly->b_off;
    const int drop = rng && ly->dropout > 0;
    eng_real *h = drop ? ly->h : ly->a;        /* where the activation goes */
    eng_real *pre = ly->z ? ly->z : h;         /* where the gemm goes */

    if (ly->nblocks == 0)
        ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, k, ly->in, (eng_real)1, x, ly->in,
                  w, ly->in, (eng_real)0, pre, k);
    for (int i = 0; i < ly->nblocks; i++) {
        const eng__block *bl = &ly->blocks[i];
        ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, bl->cols, ly->in, (eng_real)1,
                  bl->x ? bl->x : x, bl->x ? bl->ldx : ly->in, w + (size_t)bl->col0 * ly->in,
                  ly->in, (eng_real)0, pre + bl->col0, k);
    }
    if (ly->ln) {
        eng__bias_act(ENG_ACT_IDENTITY, 0, pre, b, n, k, pre);
        eng__layernorm_forward(pre, n, k, params + ly->g_off, params + ly->g_off + k, ly->u,
                               ly->rstd, pre);
        eng__bias_act(ly->act, ly->slope, pre, NULL, n, k, h);
    } else if (pre != h) {
        eng__bias_act(ENG_ACT_IDENTITY, 0, pre, b, n, k, pre);
        eng__bias_act(ly->act, ly->slope, pre, NULL, n, k, h);
    } else {
        eng__bias_act(ly->act, ly->slope, pre, b, n, k, h);
    }
    if (drop)
        eng__dropout_forward(ly->dropout, rng, h, (size_t)n * (size_t)k, ly->mask, ly->a);
}

void eng__layer_backward(eng__layer *ly, const eng_real *x, int n, const eng_real *params,
                         eng_real *grads, eng_real *dx, int accumulate)
{
    const int k = ly->out;
    eng_real *d = ly->d, *db = grads + ly->b_off;
    const eng_real *h = ly->dropout > 0 ? ly->h : ly->a;
    if (ly->dropout > 0) {
        const size_t count = (size_t)n * (size_t)k;
        for (size_t i = 0; i < count; i++)
            d[i] *= ly->mask[i];
    }
    if (!ly->ln) {
        eng__act_backward(ly->act, ly->slope, h, ly->z, n, k, d, db);
    } else {
        eng__act_backward(ly->act, ly->slope, h, ly->z, n, k, d, NULL);
        eng__layernorm_backward(ly->u, ly->rstd, n, k, params + ly->g_off, d,
                                grads + ly->g_off, grads + ly->g_off + k);
        eng__act_backward(ENG_ACT_IDENTITY, 0, NULL, NULL, n, k, d, db);
    }
    for (int i = 0; i < ly->nblocks; i++) {
        const eng__block *bl = &ly->blocks[i];
        const eng_real *bx = bl->x ? bl->x : x;
        const int ldx = bl->x ? bl->ldx : ly->in;
        const size_t wo = (size_t)bl->col0 * ly->in;
        ENG__GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, bl->cols, ly->in, n, (eng_real)1,
                  d + bl->col0, k, bx, ldx, (eng_real)0, grads + ly->w_off + wo, ly->in);
        if (bl->dx)
            ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ly->in, bl->cols, (eng_real)1,
                      d + bl->col0, k, params + ly->w_off + wo, ly->in,
                      bl->accumulate ? (eng_real)1 : (eng_real)0, bl->dx, ldx);
    }
    if (ly->nblocks > 0)
        return;
    ENG__GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, k, ly->in, n, (eng_real)1, d, k, x, ly->in,
              (eng_real)0, grads + ly->w_off, ly->in);
    if (dx)
        ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ly->in, k, (eng_real)1, d, k,
                  params + ly->w_off, ly->in, accumulate ? (eng_real)1 : (eng_real)0, dx, ly->in);
}

#ifdef ENG_GEMM_TIMING
#include <time.h>

unsigned long long eng__gemm_ns;

void eng__gemm_timed(enum CBLAS_ORDER o, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m,
                     int n, int k, eng_real alpha, const eng_real *a, int lda, const eng_real *b,
                     int ldb, eng_real beta, eng_real *c, int ldc)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ENG__GEMM_RAW(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    eng__gemm_ns += (unsigned long long)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
                                         (t1.tv_nsec - t0.tv_nsec));
}
#endif
