/*
 * engine/act.c — activations: the fused bias+activation pass of the forward
 * and the fused derivative+bias-gradient pass of the backward.
 *
 * Each is ONE pass over the layer's [n][k] output, with the switch on the
 * activation hoisted out of the loops so every inner loop is a straight
 * element-wise body the compiler vectorises (-O3, see CMakeLists.txt). The
 * derivative is read off the activation's OUTPUT wherever that determines it
 * (ReLU/leaky: h > 0 exactly when z > 0 for a positive slope; tanh: 1 − h²;
 * sigmoid: h(1 − h)), so no pre-activation buffer is kept for them; GELU
 * needs its input z, which the layer keeps only for GELU.
 *
 * ReLU is "v < 0 ? 0 : v" so a NaN pre-activation passes through (as in
 * PyTorch) and a diverged model is reported by the loss instead of hidden.
 * Sigmoid is 1/(1 + e^−v), which is exact at both extremes in IEEE
 * arithmetic (e^1000 = inf gives 0, e^−1000 = 0 gives 1): no branch needed.
 * GELU is the exact form ½v(1 + erf(v/√2)), derivative Φ(v) + v·φ(v).
 */
#include "engine/eng__internal.h"

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* One body per activation; `F(v)` computes the activated value. */
#define BIAS_ACT_LOOP(F)                                                                  \
    do {                                                                                  \
        for (int i = 0; i < n; i++) {                                                     \
            const eng_real *xi = in + (size_t)i * k;                                      \
            eng_real *yi = out + (size_t)i * k;                                           \
            if (b) {                                                                      \
                for (int j = 0; j < k; j++) {                                             \
                    eng_real v = xi[j] + b[j];                                            \
                    yi[j] = F(v);                                                         \
                }                                                                         \
            } else {                                                                      \
                for (int j = 0; j < k; j++) {                                             \
                    eng_real v = xi[j];                                                   \
                    yi[j] = F(v);                                                         \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    } while (0)

#define F_ID(v) (v)
#define F_RELU(v) ((v) < 0 ? (eng_real)0 : (v))
#define F_LEAKY(v) ((v) < 0 ? slope * (v) : (v))
#define F_TANH(v) ENG__TANH(v)
#define F_SIGMOID(v) ((eng_real)1 / ((eng_real)1 + ENG__EXP(-(v))))
#define F_GELU(v) ((eng_real)0.5 * (v) * ((eng_real)1 + ENG__ERF((v) * (eng_real)INV_SQRT2)))

void eng__bias_act(eng_act act, eng_real slope, const eng_real *in, const eng_real *b, int n,
                   int k, eng_real *out)
{
    switch (act) {
    case ENG_ACT_RELU: BIAS_ACT_LOOP(F_RELU); break;
    case ENG_ACT_LEAKY_RELU: BIAS_ACT_LOOP(F_LEAKY); break;
    case ENG_ACT_TANH: BIAS_ACT_LOOP(F_TANH); break;
    case ENG_ACT_SIGMOID: BIAS_ACT_LOOP(F_SIGMOID); break;
    case ENG_ACT_GELU: BIAS_ACT_LOOP(F_GELU); break;
    case ENG_ACT_IDENTITY:
    default:
        if (b || in != out)
            BIAS_ACT_LOOP(F_ID);
        break;
    }
}

/* d[i][j] = D(src[i][j], d[i][j]); db[j] = sum_i d[i][j] when db != NULL. */
#define ACT_BACK_LOOP(SRC, D)                                                             \
    do {                                                                                  \
        for (int i = 0; i < n; i++) {                                                     \
            const eng_real *si = (SRC) + (size_t)i * k;                                   \
            eng_real *di = d + (size_t)i * k;                                             \
            if (db) {                                                                     \
                for (int j = 0; j < k; j++) {                                             \
                    eng_real s = si[j], g = di[j];                                        \
                    g = D(s, g);                                                          \
                    di[j] = g;                                                            \
                    db[j] += g;                                                           \
                }                                                                         \
            } else {                                                                      \
                for (int j = 0; j < k; j++) {                                             \
                    eng_real s = si[j], g = di[j];                                        \
                    di[j] = D(s, g);                                                      \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    } while (0)

#define D_RELU(h, g) ((h) > 0 ? (g) : (eng_real)0)
#define D_LEAKY(h, g) ((h) > 0 ? (g) : slope * (g))
#define D_TANH(h, g) ((g) * ((eng_real)1 - (h) * (h)))
#define D_SIGMOID(h, g) ((g) * (h) * ((eng_real)1 - (h)))
#define D_GELU(z, g)                                                                      \
    ((g) * ((eng_real)0.5 * ((eng_real)1 + ENG__ERF((z) * (eng_real)INV_SQRT2)) +          \
            (z) * (eng_real)INV_SQRT_2PI * ENG__EXP((eng_real)-0.5 * (z) * (z))))

void eng__act_backward(eng_act act, eng_real slope, const eng_real *h, const eng_real *z, int n,
                       int k, eng_real *d, eng_real *db)
{
    if (db)
        for (int j = 0; j < k; j++)
            db[j] = 0;
    switch (act) {
    case ENG_ACT_RELU: ACT_BACK_LOOP(h, D_RELU); break;
    case ENG_ACT_LEAKY_RELU: ACT_BACK_LOOP(h, D_LEAKY); break;
    case ENG_ACT_TANH: ACT_BACK_LOOP(h, D_TANH); break;
    case ENG_ACT_SIGMOID: ACT_BACK_LOOP(h, D_SIGMOID); break;
    case ENG_ACT_GELU: ACT_BACK_LOOP(z, D_GELU); break;
    case ENG_ACT_IDENTITY:
    default:
        if (db)
            for (int i = 0; i < n; i++) {
                const eng_real *di = d + (size_t)i * k;
                for (int j = 0; j < k; j++)
                    db[j] += di[j];
            }
        break;
    }
}
