/*
 * engine/meta.c — the meta-learner of meta.h: its one allocation, the
 * meta-batch and outer step, adaptation and meta-test evaluation. The
 * per-task meta-gradients live one concept per file: maml.c (MAML, FOMAML,
 * ANIL, Meta-SGD), reptile.c, protonet.c.
 *
 * Sizing: the MAML family keeps K+1 tapes (one per inner step plus the
 * query) and K+1 copies of the weights, so memory is linear in the inner
 * steps and independent of how many meta-iterations run; protonet keeps one
 * tape for support and query stacked. Evaluation may adapt for any number
 * of steps with tape 0 alone (no meta-gradient is taken there).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/meta__internal.h"

static void *block_take(eng_real **q, size_t n)
{
    eng_real *p = *q;
    *q += n;
    return p;
}

int eng_meta_new(const eng_meta_cfg *cfg, eng_meta **out)
{
    if (!cfg || !out || cfg->inner_steps < 0 || cfg->inner_steps > 1000 ||
        cfg->max_support < 1 || cfg->max_query < 1 || !(cfg->inner_lr >= 0) ||
        cfg->alg < ENG_META_MAML || cfg->alg > ENG_META_PROTONET ||
        (cfg->alg == ENG_META_PROTONET && cfg->max_ways < 2))
        return ENG_EINVAL;
    const int proto = cfg->alg == ENG_META_PROTONET;
    eng_meta *m = calloc(1, sizeof *m);
    if (!m)
        return ENG_ENOMEM;
    m->c = *cfg;
    int rows = proto ? cfg->max_support + cfg->max_query
                     : (cfg->max_support > cfg->max_query ? cfg->max_support : cfg->max_query);
    m->n_tapes = (proto || cfg->alg == ENG_META_REPTILE) ? 1 : cfg->inner_steps + 1;
    int rc = eng_fnet_new(&cfg->net, rows, m->n_tapes, &m->net);
    if (rc != ENG_OK) {
        free(m);
        return rc;
    }
    const int L = cfg->net.n_layers, d0 = cfg->net.dims[0], dE = cfg->net.dims[L];
    m->np = eng_fnet_nparams(m->net);
    m->nmeta = cfg->alg == ENG_META_METASGD ? 2 * m->np : m->np;
    m->head_lo = eng_fnet_weight_offset(m->net, L);
    const size_t np = m->np, K = (size_t)cfg->inner_steps;
    size_t total = (K + 1) * np + (K ? K : 1) * np + 5 * np;
    size_t W = proto ? (size_t)cfg->max_ways : 0, S = (size_t)cfg->max_support,
           Q = (size_t)cfg->max_query;
    if (proto)
        total += (S + Q) * (size_t)d0 + 2 * W * (size_t)dE + Q * W + (S + Q) * (size_t)dE + W;
    eng_real *q = calloc(total, sizeof *q);
    if (!q) {
        eng_meta_free(m);
        return ENG_ENOMEM;
    }
    m->theta_k = q; /* the block's base: freed through it */
    block_take(&q, (K + 1) * np);
    m->gk = block_take(&q, (K ? K : 1) * np);
    m->v = block_take(&q, np);
    m->hv = block_take(&q, np);
    m->u = block_take(&q, np);
    m->fast = block_take(&q, np);
    m->gtmp = block_take(&q, np);
    if (proto) {
        m->xcat = block_take(&q, (S + Q) * (size_t)d0);
        m->proto = block_take(&q, W * (size_t)dE);
        m->dproto = block_take(&q, W * (size_t)dE);
        m->logits = block_take(&q, Q * W);
        m->demb = block_take(&q, (S + Q) * (size_t)dE);
        m->count = block_take(&q, W);
    }
    *out = m;
    return ENG_OK;
}

void eng_meta_free(eng_meta *m)
{
    if (!m)
        return;
    eng_fnet_free(m->net);
    free(m->theta_k);
    free(m);
}

const eng_meta_cfg *eng_meta_get_cfg(const eng_meta *m)
{
    return &m->c;
}

eng_fnet *eng_meta_net(eng_meta *m)
{
    return m->net;
}

size_t eng_meta_nparams(const eng_meta *m)
{
    return m->nmeta;
}

size_t eng_meta_net_nparams(const eng_meta *m)
{
    return m->np;
}

void eng_meta_init(eng_meta *m, eng_real *theta, eng_rng *rng)
{
    eng_fnet_init(m->net, theta, rng);
    if (m->c.alg == ENG_META_METASGD)
        for (size_t i = 0; i < m->np; i++)
            theta[m->np + i] = (eng_real)m->c.inner_lr;
}

static int check_task(const eng_meta *m, const eng_meta_task *t)
{
    if (!t || !t->xs || !t->ys || !t->xq || !t->yq || t->ns < 1 || t->nq < 1)
        return ENG_EINVAL;
    if (t->ns > m->c.max_support || t->nq > m->c.max_query)
        return ENG_ESHAPE;
    return ENG_OK;
}

int eng_meta_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t, double scale,
                       eng_real *grad, double *query_loss)
{
    if (!m || !theta || !grad || !query_loss)
        return ENG_EINVAL;
    int rc = check_task(m, t);
    if (rc != ENG_OK)
        return rc;
    switch (m->c.alg) {
    case ENG_META_REPTILE:
        return eng__reptile_task_grad(m, theta, t, scale, grad, query_loss);
    case ENG_META_PROTONET:
        return eng__protonet_task_grad(m, theta, t, scale, grad, query_loss);
    default:
        return eng__maml_task_grad(m, theta, t, scale, grad, query_loss);
    }
}

int eng_meta_batch_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *tasks, int n,
                        eng_real *grad, double *mean_loss)
{
    if (!m || !tasks || n < 1 || !grad)
        return ENG_EINVAL;
    memset(grad, 0, m->nmeta * sizeof *grad);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double l = 0;
        int rc = eng_meta_task_grad(m, theta, &tasks[i], 1.0 / n, grad, &l);
        if (rc != ENG_OK)
            return rc;
        sum += l;
    }
    if (mean_loss)
        *mean_loss = sum / n;
    return ENG_OK;
}

int eng_meta_step(eng_meta *m, eng_real *theta, const eng_meta_task *tasks, int n,
                  const eng_adam_cfg *opt, eng_real *grad, eng_real *am, eng_real *av, long t,
                  double *mean_loss)
{
    if (!opt || t < 1)
        return ENG_EINVAL;
    int rc = eng_meta_batch_grad(m, theta, tasks, n, grad, mean_loss);
    if (rc != ENG_OK)
        return rc;
    for (size_t i = 0; i < m->nmeta; i++)
        if (!isfinite((double)grad[i]))
            return ENG_ENONFINITE;
    if (m->c.alg == ENG_META_REPTILE)
        eng_sgd_step(opt->lr, theta, grad, m->nmeta);
    else
        eng_adam_step(opt, theta, grad, am, av, m->nmeta, t);
    return ENG_OK;
}

int eng_meta_adapt(eng_meta *m, const eng_real *theta, const eng_real *xs, const eng_real *ys,
                   int ns, int steps, eng_real *fast)
{
    if (!m || !theta || !fast || steps < 0 || (steps > 0 && (!xs || !ys || ns < 1)))
        return ENG_EINVAL;
    if (ns > m->c.max_support)
        return ENG_ESHAPE;
    memcpy(fast, theta, m->np * sizeof *fast);
    if (m->c.alg == ENG_META_PROTONET)
        return ENG_OK;
    const eng_real *alpha = m->c.alg == ENG_META_METASGD ? theta + m->np : NULL;
    double l;
    for (int k = 0; k < steps; k++) {
        int rc = eng__meta_inner_step(m, 0, alpha, fast, xs, ys, ns, m->gtmp, fast, &l);
        if (rc != ENG_OK)
            return rc;
    }
    return ENG_OK;
}

int eng_meta_evaluate(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                      const int *steps, int n_steps, double *loss, double *accuracy)
{
    if (!m || !theta || !steps || n_steps < 1 || !loss)
        return ENG_EINVAL;
    int rc = check_task(m, t);
    if (rc != ENG_OK)
        return rc;
    for (int i = 0; i < n_steps; i++)
        if (steps[i] < 0 || (i > 0 && steps[i] < steps[i - 1]))
            return ENG_EINVAL;
    if (m->c.alg == ENG_META_PROTONET) {
        double l = 0, a = 0;
        rc = eng__protonet_forward(m, theta, t, &l, &a);
        if (rc != ENG_OK)
            return rc;
        for (int i = 0; i < n_steps; i++) {
            loss[i] = l;
            if (accuracy)
                accuracy[i] = a;
        }
        return ENG_OK;
    }
    const eng_real *alpha = m->c.alg == ENG_META_METASGD ? theta + m->np : NULL;
    eng_real *fast = m->fast;
    const int k = eng_fnet_get_spec(m->net)->dims[eng_fnet_get_spec(m->net)->n_layers];
    memcpy(fast, theta, m->np * sizeof *fast);
    int done = 0;
    double l;
    for (int i = 0; i < n_steps; i++) {
        while (done < steps[i] && rc == ENG_OK) {
            rc = eng__meta_inner_step(m, 0, alpha, fast, t->xs, t->ys, t->ns, m->gtmp, fast, &l);
            done++;
        }
        if (rc == ENG_OK)
            rc = eng_fnet_loss_grad(m->net, 0, fast, t->xq, t->yq, t->nq, m->c.loss, &loss[i],
                                    NULL);
        if (rc == ENG_ENONFINITE) { /* adaptation diverged: this and later counts are NaN */
            for (int j = i; j < n_steps; j++) {
                loss[j] = NAN;
                if (accuracy)
                    accuracy[j] = NAN;
            }
            return rc;
        }
        if (rc != ENG_OK)
            return rc;
        if (accuracy) {
            accuracy[i] = 0;
            if (m->c.loss == ENG_FNET_CE) {
                const eng_real *z = eng_fnet_output(m->net, 0);
                int right = 0;
                for (int r = 0; r < t->nq; r++) {
                    const eng_real *zr = z + (size_t)r * k;
                    int best = 0;
                    for (int j = 1; j < k; j++)
                        if (zr[j] > zr[best])
                            best = j;
                    right += best == (int)t->yq[r];
                }
                accuracy[i] = (double)right / t->nq;
            }
        }
    }
    return ENG_OK;
}

int eng_meta_predict(eng_meta *m, const eng_real *params, const eng_meta_task *support_only,
                     const eng_real *x, int n, eng_real *out)
{
    if (!m || !params || !x || !out || n < 1)
        return ENG_EINVAL;
    if (n > m->c.max_query)
        return ENG_ESHAPE;
    const eng_fnet_spec *s = eng_fnet_get_spec(m->net);
    if (m->c.alg == ENG_META_PROTONET) {
        if (!support_only)
            return ENG_EINVAL;
        eng_meta_task t = *support_only;
        t.xq = x;
        t.yq = NULL;
        t.nq = n;
        int rc = eng__protonet_forward(m, params, &t, NULL, NULL);
        if (rc != ENG_OK)
            return rc;
        memcpy(out, m->logits, (size_t)n * (size_t)t.ways * sizeof *out);
        return ENG_OK;
    }
    int rc = eng_fnet_forward(m->net, 0, params, x, n);
    if (rc != ENG_OK)
        return rc;
    memcpy(out, eng_fnet_output(m->net, 0), (size_t)n * (size_t)s->dims[s->n_layers] * sizeof *out);
    return ENG_OK;
}
