/*
 * engine/protonet.c — Prototypical Networks (Snell, Swersky & Zemel 2017).
 *
 * Support and query rows go through the embedding network f in ONE forward
 * pass (stacked), so one backward pass returns the gradient through both:
 *   c_j = (1/n_j) Σ_{s: y_s = j} f(x_s)                  (prototypes)
 *   z_qj = −‖e_q − c_j‖²,  ℓ = mean_q CE(softmax(z_q), y_q)
 *   ∂ℓ/∂e_q = Σ_j ∂ℓ/∂z_qj · (−2)(e_q − c_j)
 *   ∂ℓ/∂c_j = Σ_q ∂ℓ/∂z_qj · 2(e_q − c_j),  ∂ℓ/∂e_s = ∂ℓ/∂c_{y_s} / n_{y_s}
 * Distances are summed as squared differences (not ‖e‖² − 2e·c + ‖c‖²),
 * which cancels badly when embeddings are far from the origin; at few-shot
 * sizes the loops cost less than the network.
 */
#include <math.h>
#include <string.h>

#include "engine/meta__internal.h"

int eng__protonet_forward(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                          double *loss, double *accuracy)
{
    const eng_fnet_spec *s = eng_fnet_get_spec(m->net);
    const int d0 = s->dims[0], dE = s->dims[s->n_layers];
    const int ns = t->ns, nq = t->nq, W = t->ways;
    if (ns < 1 || nq < 1 || W < 2)
        return ENG_EINVAL;
    if (ns > m->c.max_support || nq > m->c.max_query || W > m->c.max_ways)
        return ENG_ESHAPE;
    memcpy(m->xcat, t->xs, (size_t)ns * d0 * sizeof *m->xcat);
    memcpy(m->xcat + (size_t)ns * d0, t->xq, (size_t)nq * d0 * sizeof *m->xcat);
    int rc = eng_fnet_forward(m->net, 0, theta, m->xcat, ns + nq);
    if (rc != ENG_OK)
        return rc;
    const eng_real *E = eng_fnet_output(m->net, 0), *Eq = E + (size_t)ns * dE;

    memset(m->proto, 0, (size_t)W * dE * sizeof *m->proto);
    memset(m->count, 0, (size_t)W * sizeof *m->count);
    for (int i = 0; i < ns; i++) {
        double y = (double)t->ys[i];
        if (!(y >= 0 && y < W))
            return ENG_EINVAL;
        int j = (int)y;
        m->count[j] += 1;
        for (int d = 0; d < dE; d++)
            m->proto[(size_t)j * dE + d] += E[(size_t)i * dE + d];
    }
    for (int j = 0; j < W; j++) {
        if (m->count[j] == 0)
            return ENG_EINVAL;
        for (int d = 0; d < dE; d++)
            m->proto[(size_t)j * dE + d] /= m->count[j];
    }
    for (int q = 0; q < nq; q++)
        for (int j = 0; j < W; j++) {
            eng_real acc = 0;
            for (int d = 0; d < dE; d++) {
                eng_real diff = Eq[(size_t)q * dE + d] - m->proto[(size_t)j * dE + d];
                acc += diff * diff;
            }
            m->logits[(size_t)q * W + j] = -acc;
        }
    if (!t->yq)
        return ENG_OK;
    double sum = 0;
    int right = 0;
    for (int q = 0; q < nq; q++) {
        const eng_real *z = m->logits + (size_t)q * W;
        double y = (double)t->yq[q];
        if (!(y >= 0 && y < W))
            return ENG_EINVAL;
        int c = (int)y, best = 0;
        for (int j = 1; j < W; j++)
            if (z[j] > z[best])
                best = j;
        double se = 0;
        for (int j = 0; j < W; j++)
            se += exp((double)z[j] - (double)z[best]);
        sum += (double)z[best] + log(se) - (double)z[c];
        right += best == c;
    }
    if (loss)
        *loss = sum / nq;
    if (accuracy)
        *accuracy = (double)right / nq;
    return isfinite(sum) ? ENG_OK : ENG_ENONFINITE;
}

int eng__protonet_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                            double scale, eng_real *grad, double *query_loss)
{
    if (!t->yq)
        return ENG_EINVAL;
    int rc = eng__protonet_forward(m, theta, t, query_loss, NULL);
    if (rc != ENG_OK)
        return rc;
    const eng_fnet_spec *s = eng_fnet_get_spec(m->net);
    const int dE = s->dims[s->n_layers];
    const int ns = t->ns, nq = t->nq, W = t->ways;
    const eng_real *E = eng_fnet_output(m->net, 0), *Eq = E + (size_t)ns * dE;
    /* logits → ∂ℓ/∂z = (softmax − onehot) / nq, in place */
    for (int q = 0; q < nq; q++) {
        eng_real *z = m->logits + (size_t)q * W;
        double mx = z[0], se = 0;
        for (int j = 1; j < W; j++)
            if (z[j] > mx)
                mx = z[j];
        for (int j = 0; j < W; j++)
            se += exp((double)z[j] - mx);
        int c = (int)t->yq[q];
        for (int j = 0; j < W; j++)
            z[j] = (eng_real)((exp((double)z[j] - mx) / se - (j == c)) / nq);
    }
    eng_real *dEs = m->demb, *dEq = m->demb + (size_t)ns * dE;
    memset(m->dproto, 0, (size_t)W * dE * sizeof *m->dproto);
    for (int q = 0; q < nq; q++) {
        const eng_real *dz = m->logits + (size_t)q * W, *eq = Eq + (size_t)q * dE;
        eng_real *o = dEq + (size_t)q * dE;
        for (int d = 0; d < dE; d++)
            o[d] = 0;
        for (int j = 0; j < W; j++) {
            const eng_real *c = m->proto + (size_t)j * dE;
            eng_real *dc = m->dproto + (size_t)j * dE;
            for (int d = 0; d < dE; d++) {
                eng_real g = 2 * dz[j] * (eq[d] - c[d]);
                o[d] -= g;
                dc[d] += g;
            }
        }
    }
    for (int i = 0; i < ns; i++) {
        int j = (int)t->ys[i];
        for (int d = 0; d < dE; d++)
            dEs[(size_t)i * dE + d] = m->dproto[(size_t)j * dE + d] / m->count[j];
    }
    rc = eng_fnet_backward(m->net, 0, theta, m->demb, m->gtmp);
    if (rc != ENG_OK)
        return rc;
    for (size_t i = 0; i < m->np; i++)
        grad[i] += (eng_real)scale * m->gtmp[i];
    return ENG_OK;
}
