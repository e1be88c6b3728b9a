/*
 * engine/reptile.c — Reptile (Nichol, Achiam & Schulman 2018): K steps of
 * SGD at α on the support set, then move the initialisation toward the
 * adapted weights, θ ← θ + ε (θ_K − θ), averaged over the meta-batch.
 *
 * Written as a "gradient" θ − θ_K so that the outer update is the plain
 * SGD step θ ← θ − ε · mean(θ − θ_K) that eng_meta_step takes; with ε = 1
 * and one task it lands exactly on θ_K. No second derivatives, no tape
 * beyond the current step: Reptile's memory does not grow with K. The
 * query loss at θ_K is reported (one extra forward) so progress reads the
 * same as for the MAML family.
 */
#include <string.h>

#include "engine/meta__internal.h"

int eng__reptile_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                           double scale, eng_real *grad, double *query_loss)
{
    const size_t np = m->np;
    eng_real *p = m->fast;
    double l;
    int rc;
    memcpy(p, theta, np * sizeof *p);
    for (int k = 0; k < m->c.inner_steps; k++) {
        rc = eng__meta_inner_step(m, 0, NULL, p, t->xs, t->ys, t->ns, m->gtmp, p, &l);
        if (rc != ENG_OK)
            return rc;
    }
    rc = eng_fnet_loss_grad(m->net, 0, p, t->xq, t->yq, t->nq, m->c.loss, query_loss, NULL);
    if (rc != ENG_OK)
        return rc;
    for (size_t i = 0; i < np; i++)
        grad[i] += (eng_real)scale * (theta[i] - p[i]);
    return ENG_OK;
}
