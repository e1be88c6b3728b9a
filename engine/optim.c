/*
 * engine/optim.c — the optimisers, clipping and schedules of optim.h as
 * plain loops over the flat block.
 *
 * The scalars that depend only on the step (bias corrections, the step size)
 * are computed once per call in double; each per-element loop works in
 * eng_real with the branches on the kind and the decay mode hoisted out, so
 * the compiler vectorises it. The finiteness of g is checked inside the same
 * loops (an OR over the exponent bits: integer work that vectorises next to
 * the float work) instead of in a separate pass over memory. Adam's update
 * is written the way PyTorch writes it,
 * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), which equals the
 * textbook form in optim.h.
 */
#include <string.h>

#include "engine/eng__internal.h"
#include "engine/optim.h"

#ifdef ENG_DOUBLE
typedef uint64_t bits_t;
#define EXP_MASK 0x7ff0000000000000ULL
#else
typedef uint32_t bits_t;
#define EXP_MASK 0x7f800000U
#endif

static inline unsigned nonfinite_bit(eng_real x)
{
    bits_t b;
    memcpy(&b, &x, sizeof b);
    return (b & EXP_MASK) == EXP_MASK;
}

eng_opt_cfg eng_opt_defaults(eng_opt_kind kind)
{
    eng_opt_cfg c = {.kind = kind, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0, .clip_norm = 0};
    return c;
}

int eng_opt_nstate(eng_opt_kind kind)
{
    switch (kind) {
    case ENG_OPT_SGD: return 0;
    case ENG_OPT_MOMENTUM:
    case ENG_OPT_NESTEROV: return 1;
    default: return 2;
    }
}

double eng_clip_grad_norm(eng_real *g, size_t n, double max_norm)
{
    /* Eight independent double accumulators: a fixed summation order (so
     * deterministic) that the compiler can still vectorise. */
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)g[i + j] * (double)g[i + j];
    for (; i < n; i++)
        acc[0] += (double)g[i] * (double)g[i];
    double ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    double norm = sqrt(ss);
    if (!isfinite(norm) || !(max_norm > 0) || norm <= max_norm)
        return norm;
    const eng_real f = (eng_real)(max_norm / norm);
    for (size_t k = 0; k < n; k++)
        g[k] *= f;
    return norm;
}

/* Adam / AdamW at rate lr; returns the OR of the non-finite bits of g. */
ENG__CLONES static unsigned adam(const eng_opt_cfg *c, double lr, int decoupled, eng_real *p,
                     const eng_real *g, eng_real *m, eng_real *v, size_t n, long t)
{
    const eng_real b1 = (eng_real)c->beta1, b2 = (eng_real)c->beta2;
    const eng_real a1 = (eng_real)(1 - c->beta1), a2 = (eng_real)(1 - c->beta2);
    const double bc1 = 1 - pow(c->beta1, (double)t);
    const double bc2 = 1 - pow(c->beta2, (double)t);
    const eng_real step = (eng_real)(lr / bc1);
    const eng_real inv_sqrt_bc2 = (eng_real)(1 / sqrt(bc2));
    const eng_real eps = (eng_real)c->eps;
    const eng_real wd = (eng_real)c->weight_decay;
    unsigned bad = 0;

    if (decoupled || c->weight_decay == 0) {
        const eng_real shrink = (eng_real)(1 - lr * (decoupled ? c->weight_decay : 0));
        for (size_t i = 0; i < n; i++) {
            eng_real gi = g[i];
            bad |= nonfinite_bit(gi);
            eng_real mi = b1 * m[i] + a1 * gi;
            eng_real vi = b2 * v[i] + a2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * shrink - step * mi / (ENG__SQRT(vi) * inv_sqrt_bc2 + eps);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            bad |= nonfinite_bit(g[i]);
            eng_real gi = g[i] + wd * p[i];
            eng_real mi = b1 * m[i] + a1 * gi;
            eng_real vi = b2 * v[i] + a2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= step * mi / (ENG__SQRT(vi) * inv_sqrt_bc2 + eps);
        }
    }
    return bad;
}

/* SGD with optional (Nesterov) momentum; b NULL for plain SGD. */
static unsigned sgd(const eng_opt_cfg *c, double lr, int nesterov, eng_real *p, const eng_real *g,
                    eng_real *b, size_t n)
{
    const eng_real a = (eng_real)lr, wd = (eng_real)c->weight_decay;
    const eng_real mu = (eng_real)c->momentum;
    unsigned bad = 0;
    if (!b) {
        for (size_t i = 0; i < n; i++) {
            bad |= nonfinite_bit(g[i]);
            p[i] -= a * (g[i] + wd * p[i]);
        }
    } else if (!nesterov) {
        for (size_t i = 0; i < n; i++) {
            bad |= nonfinite_bit(g[i]);
            eng_real gi = g[i] + wd * p[i];
            eng_real bi = mu * b[i] + gi;
            b[i] = bi;
            p[i] -= a * bi;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            bad |= nonfinite_bit(g[i]);
            eng_real gi = g[i] + wd * p[i];
            eng_real bi = mu * b[i] + gi;
            b[i] = bi;
            p[i] -= a * (gi + mu * bi);
        }
    }
    return bad;
}

int eng_opt_step(const eng_opt_cfg *c, double lr, eng_real *p, eng_real *g, eng_real *s1,
                 eng_real *s2, size_t n, long t)
{
    if (!c || t < 1 || (unsigned)c->kind > ENG_OPT_ADAMW)
        return ENG_EINVAL;
    if (c->clip_norm > 0 && !isfinite(eng_clip_grad_norm(g, n, c->clip_norm)))
        return ENG_ENONFINITE;
    unsigned bad = 0;
    switch (c->kind) {
    case ENG_OPT_SGD: bad = sgd(c, lr, 0, p, g, NULL, n); break;
    case ENG_OPT_MOMENTUM: bad = sgd(c, lr, 0, p, g, s1, n); break;
    case ENG_OPT_NESTEROV: bad = sgd(c, lr, 1, p, g, s1, n); break;
    case ENG_OPT_ADAM: bad = adam(c, lr, 0, p, g, s1, s2, n, t); break;
    case ENG_OPT_ADAMW: bad = adam(c, lr, 1, p, g, s1, s2, n, t); break;
    }
    return bad ? ENG_ENONFINITE : ENG_OK;
}

#define PI 3.14159265358979323846

static double cosine(double lr, double min_lr, double s, double span)
{
    return min_lr + (lr - min_lr) * 0.5 * (1 + cos(PI * s / span));
}

double eng_schedule_lr(const eng_schedule *sc, double lr, long t, long total)
{
    if (total < 1)
        total = 1;
    if (t > total)
        t = total;
    if (t < 1)
        t = 1;
    const long s = t - 1;
    switch (sc->kind) {
    case ENG_SCHED_STEP:
        return sc->step_size > 0 ? lr * pow(sc->gamma, (double)(s / sc->step_size)) : lr;
    case ENG_SCHED_COSINE:
        return cosine(lr, sc->min_lr, (double)s, (double)total);
    case ENG_SCHED_WARMUP:
        return sc->warmup > 0 && s < sc->warmup ? lr * (double)(s + 1) / (double)sc->warmup : lr;
    case ENG_SCHED_WARMUP_COSINE:
        if (sc->warmup > 0 && s < sc->warmup)
            return lr * (double)(s + 1) / (double)sc->warmup;
        if (total - sc->warmup < 1)
            return lr;
        return cosine(lr, sc->min_lr, (double)(s - (sc->warmup > 0 ? sc->warmup : 0)),
                      (double)(total - (sc->warmup > 0 ? sc->warmup : 0)));
    case ENG_SCHED_CONSTANT:
    default:
        return lr;
    }
}

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
    eng_opt_cfg o = eng_opt_defaults(c->decoupled ? ENG_OPT_ADAMW : ENG_OPT_ADAM);
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.eps = c->eps;
    o.weight_decay = c->weight_decay;
    (void)adam(&o, c->lr, c->decoupled, p, g, m, v, n, t);
}

void eng_sgd_step(double lr, eng_real *p, const eng_real *g, size_t n)
{
    const eng_real a = (eng_real)lr;
    for (size_t i = 0; i < n; i++)
        p[i] -= a * g[i];
}
