/*
 * engine/dense.c — a fully connected layer over a batch, forward and backward.
 *
 * Weights are [out][in] row-major (PyTorch's nn.Linear), so each product is
 * one BLAS gemm over the whole batch with no transposed copy:
 *   forward   z  = x·wᵀ          (NoTrans, Trans)
 *   backward  dw = dzᵀ·x         (Trans, NoTrans)
 *             dx = dz·w          (NoTrans, NoTrans; beta 1 to accumulate)
 * Everything else (bias, ReLU, its mask, the bias gradient) is one fused pass
 * over the output so the layer touches each activation at most twice. ReLU's
 * mask is taken from the activated output (y > 0 exactly when z > 0), so no
 * pre-activation buffer is needed. ReLU is "v < 0 ? 0 : v" so a NaN
 * pre-activation passes through (as in PyTorch) and a diverged model is
 * reported by the loss instead of hidden. These loops must be vectorised
 * (engine/CMakeLists.txt builds the engine with -O3): as scalar code the
 * compiler emits the ReLU select as a branch that mispredicts on half the
 * units and costs as much as the gemms on small layers. Nothing here allocates.
 */
#include "engine/eng__internal.h"

void eng__dense_forward(const eng_real *x, int n, int in, int out, const eng_real *w,
                        const eng_real *b, eng_act act, eng_real *y)
{
    ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, (eng_real)1, x, in, w, in,
              (eng_real)0, y, out);
    if (act == ENG_ACT_RELU) {
        for (int i = 0; i < n; i++) {
            eng_real *yi = y + (size_t)i * out;
            for (int j = 0; j < out; j++) {
                eng_real v = yi[j] + b[j];
                yi[j] = v < 0 ? 0 : v;
            }
        }
    } else {
        for (int i = 0; i < n; i++) {
            eng_real *yi = y + (size_t)i * out;
            for (int j = 0; j < out; j++)
                yi[j] += b[j];
        }
    }
}

void eng__dense_backward(const eng_real *x, int n, int in, int out, const eng_real *w,
                         const eng_real *y, eng_act act, eng_real *dy, eng_real *dw,
                         eng_real *db, eng_real *dx, int accumulate)
{
    for (int j = 0; j < out; j++)
        db[j] = 0;
    if (act == ENG_ACT_RELU) {
        for (int i = 0; i < n; i++) {
            const eng_real *yi = y + (size_t)i * out;
            eng_real *di = dy + (size_t)i * out;
            for (int j = 0; j < out; j++) {
                eng_real d = yi[j] > 0 ? di[j] : 0;
                di[j] = d;
                db[j] += d;
            }
        }
    } else {
        for (int i = 0; i < n; i++) {
            const eng_real *di = dy + (size_t)i * out;
            for (int j = 0; j < out; j++)
                db[j] += di[j];
        }
    }
    ENG__GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, (eng_real)1, dy, out, x, in,
              (eng_real)0, dw, in);
    if (dx)
        ENG__GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, (eng_real)1, dy, out,
                  w, in, accumulate ? (eng_real)1 : (eng_real)0, dx, in);
}
