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

#include "engine/meta__internal.h"

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
        for (size_t i = m->head_lo; i < np; i++)
            next[i] = p[i] - a * g[i];
        break;
    case ENG_META_METASGD:
        for (size_t i = 0; i < np; i++)
            next[i] = p[i] - alpha[i] * g[i];
        break;
    default:
        for (size_t i = 0; i < np; i++)
            next[i] = p[i] - a * g[i];
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

    memcpy(th, theta, np * sizeof *th);
    for (int k = 0; k < K; k++) {
        rc = eng__meta_inner_step(m, k, alpha, th + (size_t)k * np, t->xs, t->ys, t->ns,
                                  m->gk + (size_t)k * np, th + (size_t)(k + 1) * np, &l);
        if (rc != ENG_OK)
            return rc;
    }
    rc = eng_fnet_loss_grad(m->net, K, th + (size_t)K * np, t->xq, t->yq, t->nq, m->c.loss,
                            query_loss, v);
    if (rc != ENG_OK)
        return rc;
    eng_real *ga = alpha ? grad + np : NULL;
    for (int k = K - 1; k >= 0 && alg != ENG_META_FOMAML; k--) {
        const eng_real *tk = th + (size_t)k * np;
        if (alg == ENG_META_MAML) {
            rc = eng_fnet_hvp(m->net, k, tk, v, hv);
            if (rc != ENG_OK)
                return rc;
            for (size_t i = 0; i < np; i++)
                v[i] -= a * hv[i];
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
    for (size_t i = 0; i < np; i++)
        grad[i] += (eng_real)scale * v[i];
    return ENG_OK;
}
