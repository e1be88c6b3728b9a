/*
 * engine/optim.c — Adam/AdamW and SGD as plain loops over the flat block.
 *
 * The scalars that depend only on the step (bias corrections, the step size)
 * are computed once per call in double; the per-element loop works in
 * eng_real and has no branches beyond the one on the decay mode (hoisted out
 * of the loop), so the compiler can vectorise it. The update is written the
 * way PyTorch writes it, p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),
 * which equals the textbook form in optim.h.
 */
#include "engine/eng__internal.h"
#include "engine/optim.h"

eng_adam_cfg eng_adam_defaults(void)
{
    eng_adam_cfg c = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                      .weight_decay = 0, .decoupled = 0};
    return c;
}

void eng_adam_step(const eng_adam_cfg *c, eng_real *p, const eng_real *g, eng_real *m,
                   eng_real *v, size_t n, long t)
{
    if (t < 1) /* bias correction 1 - beta^0 would divide by 0 */
        return;
    const eng_real b1 = (eng_real)c->beta1, b2 = (eng_real)c->beta2;
    const eng_real a1 = (eng_real)(1 - c->beta1), a2 = (eng_real)(1 - c->beta2);
    const double bc1 = 1 - pow(c->beta1, (double)t);
    const double bc2 = 1 - pow(c->beta2, (double)t);
    const eng_real step = (eng_real)(c->lr / bc1);
    const eng_real inv_sqrt_bc2 = (eng_real)(1 / sqrt(bc2));
    const eng_real eps = (eng_real)c->eps;
    const eng_real wd = (eng_real)c->weight_decay;

    if (c->decoupled || c->weight_decay == 0) {
        const eng_real shrink = (eng_real)(1 - c->lr * (c->decoupled ? c->weight_decay : 0));
        for (size_t i = 0; i < n; i++) {
            eng_real gi = g[i];
            eng_real mi = b1 * m[i] + a1 * gi;
            eng_real vi = b2 * v[i] + a2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * shrink - step * mi / (ENG__SQRT(vi) * inv_sqrt_bc2 + eps);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            eng_real gi = g[i] + wd * p[i];
            eng_real mi = b1 * m[i] + a1 * gi;
            eng_real vi = b2 * v[i] + a2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= step * mi / (ENG__SQRT(vi) * inv_sqrt_bc2 + eps);
        }
    }
}

void eng_sgd_step(double lr, eng_real *p, const eng_real *g, size_t n)
{
    const eng_real a = (eng_real)lr;
    for (size_t i = 0; i < n; i++)
        p[i] -= a * g[i];
}
