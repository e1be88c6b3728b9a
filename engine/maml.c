/*
 * engine/maml.c — the meta-gradient through an unrolled inner loop, for
 * MAML (exact second order), FOMAML, ANIL and Meta-SGD (see meta.h).
 *
 * Why reverse mode over the inner loop: the meta-gradient of L_q(θ_K)
 * with respect to θ_0 is Jᵀ ∇L_q(θ_K) with J = Π_k (I − α H_s(θ_k)); walking
 * the product backwards needs one Hessian-vector product per inner step and
 * never a Hessian. Each inner step's forward/backward stays on its own tape
 * (fnet.h), so the backward walk costs only the R-passes. θ_0..θ_K are kept
 * (memory linear in K, as in any exact MAML).
 *
 * Adjoints, with v_{k+1} = ∂L_q/∂θ_{k+1}:
 *   maml     v_k = v_{k+1} − α H_k v_{k+1}
 *   anil     v_k = v_{k+1} − α H_k (P v_{k+1})        (P: head mask)
 *   metasgd  v_k = v_{k+1} − H_k (α ⊙ v_{k+1}),  ∂L_q/∂α −= g_k ⊙ v_{k+1}
 *   fomaml   v_0 = v_K
 */
#include <string.h>

#include "engine/eng__internal.h"
#include "engine/meta__internal.h"

/* y[i] = x[i] − a z[i] over [lo, hi): the inner SGD step and the MAML
 * adjoint step (y may be x). */
ENG__CLONES static void axpy_to(eng_real *y, const eng_real *x, eng_real a, const eng_real *z,
                                size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        y[i] = x[i] - a * z[i];
}

/* grad[i] += s (v[i] − a hv[i]): MAML's last adjoint step and the
 * accumulation into the meta-gradient in one pass (hv NULL: just v). The
 * rounding is that of the two separate passes (v − a hv is stored to
 * eng_real first), so the result does not depend on the fusion. */
ENG__CLONES static void accumulate(eng_real *grad, eng_real s, const eng_real *v, eng_real a,
                                   const eng_real *hv, size_t n)
{
    if (!hv) {
        for (size_t i = 0; i < n; i++)
            grad[i] += s * v[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        eng_real vi = v[i] - a * hv[i];
        grad[i] += s * vi;
    }
}

int eng__meta_inner_step(eng_meta *m, int tape, const eng_real *alpha, const eng_real *p,
                         const eng_real *xs, const eng_real *ys, int ns, eng_real *g,
                         eng_real *next, double *loss)
{
    int rc = eng_fnet_loss_grad(m->net, tape, p, xs, ys, ns, m->c.loss, loss, g);
    if (rc != ENG_OK)
        return rc;
    const eng_real a = (eng_real)m->c.inner_lr;
    const size_t np = m->np;
    switch (m->c.alg) {
    case ENG_META_ANIL:
        if (next != p)
            memcpy(next, p, m->head_lo * sizeof *p);
        axpy_to(next, p, a, g, m->head_lo, np);
        break;
    case ENG_META_METASGD:
        for (size_t i = 0; i < np; i++)
            next[i] = p[i] - alpha[i] * g[i];
        break;
    default:
        axpy_to(next, p, a, g, 0, np);
        break;
    }
    return ENG_OK;
}

int eng__maml_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t, double scale,
                        eng_real *grad, double *query_loss)
{
    const size_t np = m->np;
    const int K = m->c.inner_steps;
    const eng_meta_alg alg = m->c.alg;
    const eng_real *alpha = alg == ENG_META_METASGD ? theta + np : NULL;
    const eng_real a = (eng_real)m->c.inner_lr;
    eng_real *th = m->theta_k, *v = m->v, *hv = m->hv, *u = m->u;
    double l;
    int rc;

    /* θ_k = th + k np for k >= 1; θ_0 is read in place (no copy) */
#define THETA_K(k) ((k) == 0 ? theta : th + (size_t)(k) * np)
    for (int k = 0; k < K; k++) {
        rc = eng__meta_inner_step(m, k, alpha, THETA_K(k), t->xs, t->ys, t->ns,
                                  m->gk + (size_t)k * np, th + (size_t)(k + 1) * np, &l);
        if (rc != ENG_OK)
            return rc;
    }
    rc = eng_fnet_loss_grad(m->net, K, THETA_K(K), t->xq, t->yq, t->nq, m->c.loss, query_loss,
                            v);
    if (rc != ENG_OK)
        return rc;
    eng_real *ga = alpha ? grad + np : NULL;
    for (int k = K - 1; k >= 0 && alg != ENG_META_FOMAML; k--) {
        const eng_real *tk = THETA_K(k);
        if (alg == ENG_META_MAML) {
            rc = eng_fnet_hvp(m->net, k, tk, v, hv);
            if (rc != ENG_OK)
                return rc;
            if (k == 0) { /* v_0 = v_1 − α H_0 v_1 goes straight into grad */
                accumulate(grad, (eng_real)scale, v, a, hv, np);
                return ENG_OK;
            }
            axpy_to(v, v, a, hv, 0, np);
        } else if (alg == ENG_META_ANIL) {
            memset(u, 0, m->head_lo * sizeof *u);
            memcpy(u + m->head_lo, v + m->head_lo, (np - m->head_lo) * sizeof *u);
            rc = eng_fnet_hvp(m->net, k, tk, u, hv);
            if (rc != ENG_OK)
                return rc;
            for (size_t i = 0; i < np; i++)
                v[i] -= a * hv[i];
        } else { /* metasgd */
            const eng_real *gk = m->gk + (size_t)k * np;
            for (size_t i = 0; i < np; i++) {
                ga[i] -= (eng_real)scale * gk[i] * v[i];
                u[i] = alpha[i] * v[i];
            }
            rc = eng_fnet_hvp(m->net, k, tk, u, hv);
            if (rc != ENG_OK)
                return rc;
            for (size_t i = 0; i < np; i++)
                v[i] -= hv[i];
        }
    }
#undef THETA_K
    accumulate(grad, (eng_real)scale, v, 0, NULL, np);
    return ENG_OK;
}
