/*
 * engine/weighting.c — the task weighting methods of weighting.h.
 *
 * The model is used only through its public entry points: a per-task
 * gradient is eng_mtl_train_step with a one-hot lambda vector, and the
 * shared parameters are found by name in the tensor table. So the methods
 * work on any architecture mtl.c builds, as long as task-specific tensors
 * are named "tasks.N...." and shared ones are not.
 *
 * Everything a step needs is allocated once in eng_wt_new: a packed copy of
 * each task's gradient on the shared parameters (T × n_shared), a full
 * accumulator for the combined gradient, and pcgrad's scratch. The state is
 * one array of doubles (see the STATE_* offsets) so checkpoints can store it
 * exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/eng__internal.h"
#include "engine/weighting.h"

/* State layout: per task, in blocks of T doubles, then one scalar. */
enum {
    S_S,     /* uncertainty: s_t = log σ_t² */
    S_SM,    /* its Adam moments */
    S_SV,
    S_W,     /* gradnorm: w_t */
    S_WM,
    S_WV,
    S_L0,    /* gradnorm: L_t(0), 0 = not seen yet */
    S_H1,    /* mean training loss of the previous epoch */
    S_H2,    /* ... and of the one before */
    S_T,     /* Adam step count of the task's parameter (s_t or w_t) */
    S_BLOCKS /* then: the number of epochs recorded (0, 1 or 2) */
};

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
#define W_MIN 1e-6

typedef struct {
    size_t off, count;
} range;

struct eng_wt {
    eng_wt_cfg cfg;
    eng_mtl *m;
    int T;
    size_t np;
    range *shared;      /* the shared parameter runs, merged */
    int n_ranges;
    size_t n_shared;    /* their total length */
    size_t w_off, w_count; /* the last shared layer's weight (count 0: none) */
    eng_real *G;        /* [T][n_shared] per-task shared gradients */
    eng_real *acc;      /* [np] the combined gradient */
    eng_real *pc_out;   /* [n_shared] pcgrad's sum */
    eng_real *pc_proj;  /* [n_shared] pcgrad's scratch */
    uint32_t order[ENG_MAX_TASKS * ENG_MAX_TASKS];
    double gn_last[ENG_MAX_TASKS];
    double *state;      /* [S_BLOCKS*T + 1] */
    size_t state_len;
};

static double *blk(const eng_wt *w, int b)
{
    return w->state + (size_t)b * (size_t)w->T;
}

static int is_regression(const eng_wt *w, int t)
{
    return eng_mtl_get_spec(w->m)->task[t].kind == ENG_HEAD_REGRESSION;
}

int eng_wt_new(const eng_wt_cfg *cfg, eng_mtl *m, eng_wt **out)
{
    if (!cfg || !m || !out || (unsigned)cfg->kind > ENG_WT_PCGRAD ||
        cfg->n_tasks != eng_mtl_get_spec(m)->n_tasks)
        return ENG_EINVAL;
    for (int t = 0; t < cfg->n_tasks; t++)
        if (!(cfg->c[t] >= 0 && cfg->c[t] <= 1e30))
            return ENG_EINVAL;
    if (!(cfg->alpha >= 0 && cfg->alpha <= 1e6) ||
        (cfg->kind == ENG_WT_DWA && !(cfg->temperature > 0 && cfg->temperature <= 1e6)) ||
        ((cfg->kind == ENG_WT_UNCERTAINTY || cfg->kind == ENG_WT_GRADNORM) &&
         !(cfg->lr > 0 && cfg->lr <= 1e6)))
        return ENG_EINVAL;
    eng_wt *w = calloc(1, sizeof *w);
    if (!w)
        return ENG_ENOMEM;
    w->cfg = *cfg;
    w->m = m;
    w->T = cfg->n_tasks;
    w->np = eng_mtl_nparams(m);
    const int nt = eng_mtl_ntensors(m);
    w->shared = calloc((size_t)nt + 1, sizeof *w->shared);
    if (!w->shared)
        goto fail;
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (!strncmp(ti.name, "tasks.", 6))
            continue;
        if (ti.rank == 2) {
            w->w_off = ti.offset;
            w->w_count = ti.count;
        }
        w->n_shared += ti.count;
        range *last = w->n_ranges ? &w->shared[w->n_ranges - 1] : NULL;
        if (last && last->off + last->count == ti.offset)
            last->count += ti.count;
        else
            w->shared[w->n_ranges++] = (range){ti.offset, ti.count};
    }
    const size_t ns = w->n_shared ? w->n_shared : 1;
    w->G = malloc((size_t)w->T * ns * sizeof *w->G);
    w->acc = malloc(w->np * sizeof *w->acc);
    w->pc_out = malloc(ns * sizeof *w->pc_out);
    w->pc_proj = malloc(ns * sizeof *w->pc_proj);
    w->state_len = (size_t)S_BLOCKS * (size_t)w->T + 1;
    w->state = calloc(w->state_len, sizeof *w->state);
    if (!w->G || !w->acc || !w->pc_out || !w->pc_proj || !w->state)
        goto fail;
    eng_wt_reset(w);
    *out = w;
    return ENG_OK;
fail:
    eng_wt_free(w);
    return ENG_ENOMEM;
}

void eng_wt_free(eng_wt *w)
{
    if (!w)
        return;
    free(w->shared);
    free(w->G);
    free(w->acc);
    free(w->pc_out);
    free(w->pc_proj);
    free(w->state);
    free(w);
}

void eng_wt_reset(eng_wt *w)
{
    memset(w->state, 0, w->state_len * sizeof *w->state);
    for (int t = 0; t < w->T; t++)
        blk(w, S_W)[t] = 1.0;
    memset(w->gn_last, 0, sizeof w->gn_last);
}

double *eng_wt_state(eng_wt *w, size_t *len)
{
    *len = w->state_len;
    return w->state;
}

void eng_wt_gradnorm_norms(const eng_wt *w, double *g)
{
    memcpy(g, w->gn_last, (size_t)w->T * sizeof *g);
}

/* ---- pure arithmetic --------------------------------------------------- */

void eng_dwa_weights(int T, const double *prev1, const double *prev2, double temp, double *out)
{
    double mx = -INFINITY, sum = 0;
    for (int t = 0; t < T; t++) {
        out[t] = (prev2[t] != 0 ? prev1[t] / prev2[t] : 1.0) / temp;
        if (out[t] > mx)
            mx = out[t];
    }
    for (int t = 0; t < T; t++) {
        out[t] = exp(out[t] - mx); /* the max cancels: softmax is shift-free */
        sum += out[t];
    }
    for (int t = 0; t < T; t++)
        out[t] = (double)T * out[t] / sum;
}

double eng_uncertainty_loss(int T, const double *s, const double *c, const double *k,
                            const double *L, double *ds)
{
    double J = 0;
    for (int t = 0; t < T; t++) {
        const double e = exp(-s[t]);
        J += c[t] * (k[t] * e * L[t] + 0.5 * s[t]);
        ds[t] = c[t] * (0.5 - k[t] * e * L[t]);
    }
    return J;
}

double eng_gradnorm_loss(int T, const double *w, const double *c, const double *gn,
                         const double *ratio, double alpha, double *dw)
{
    double gbar = 0, rbar = 0, loss = 0;
    for (int t = 0; t < T; t++) {
        gbar += w[t] * c[t] * gn[t];
        rbar += ratio[t];
    }
    gbar /= T;
    rbar /= T;
    for (int t = 0; t < T; t++) {
        const double g = w[t] * c[t] * gn[t];
        const double target = gbar * pow(rbar > 0 ? ratio[t] / rbar : 1.0, alpha);
        const double d = g - target;
        loss += fabs(d);
        dw[t] = (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0) * c[t] * gn[t];
    }
    return loss;
}

void eng_pcgrad(int T, const eng_real *const *g, size_t n, const uint32_t *order,
                eng_real *out, eng_real *proj)
{
    memset(out, 0, n * sizeof *out);
    for (int t = 0; t < T; t++) {
        memcpy(proj, g[t], n * sizeof *proj);
        for (int i = 0; i < T; i++) {
            const int u = (int)order[t * T + i];
            if (u == t)
                continue;
            double dot = 0, nu = 0;
            for (size_t k = 0; k < n; k++) {
                dot += (double)proj[k] * (double)g[u][k];
                nu += (double)g[u][k] * (double)g[u][k];
            }
            if (dot < 0 && nu > 0) {
                const eng_real f = (eng_real)(dot / nu);
                for (size_t k = 0; k < n; k++)
                    proj[k] -= f * g[u][k];
            }
        }
        for (size_t k = 0; k < n; k++)
            out[k] += proj[k];
    }
}

/* ---- weights ----------------------------------------------------------- */

static int n_active(const eng_wt *w)
{
    int k = 0;
    for (int t = 0; t < w->T; t++)
        k += w->cfg.c[t] > 0;
    return k;
}

void eng_wt_weights(const eng_wt *w, double *lambda)
{
    const double *c = w->cfg.c;
    switch (w->cfg.kind) {
    case ENG_WT_UNCERTAINTY:
        for (int t = 0; t < w->T; t++)
            lambda[t] = c[t] * (is_regression(w, t) ? 0.5 : 1.0) * exp(-blk(w, S_S)[t]);
        break;
    case ENG_WT_GRADNORM:
        for (int t = 0; t < w->T; t++)
            lambda[t] = c[t] * blk(w, S_W)[t];
        break;
    case ENG_WT_DWA: {
        const int ka = n_active(w);
        double p1[ENG_MAX_TASKS], p2[ENG_MAX_TASKS], d[ENG_MAX_TASKS];
        int idx[ENG_MAX_TASKS], k = 0;
        for (int t = 0; t < w->T; t++) {
            lambda[t] = c[t];
            if (c[t] > 0) {
                idx[k] = t;
                p1[k] = blk(w, S_H1)[t];
                p2[k] = blk(w, S_H2)[t];
                k++;
            }
        }
        if (w->state[w->state_len - 1] < 2 || ka == 0)
            break;
        eng_dwa_weights(ka, p1, p2, w->cfg.temperature, d);
        for (int i = 0; i < ka; i++)
            lambda[idx[i]] = c[idx[i]] * d[i];
        break;
    }
    default:
        for (int t = 0; t < w->T; t++)
            lambda[t] = c[t];
    }
}

void eng_wt_epoch_end(eng_wt *w, const double *epoch_loss)
{
    for (int t = 0; t < w->T; t++) {
        blk(w, S_H2)[t] = blk(w, S_H1)[t];
        blk(w, S_H1)[t] = epoch_loss[t];
    }
    double *nh = &w->state[w->state_len - 1];
    if (*nh < 2)
        *nh += 1;
}

/* ---- steps ------------------------------------------------------------- */

static int present(const eng_task_batch *tb, int n)
{
    if (!tb->row_weight)
        return 1;
    for (int i = 0; i < n; i++)
        if (tb->row_weight[i] != 0)
            return 1;
    return 0;
}

/* One forward/backward with task t alone at lambda 1 (t = -1: every task at
 * lambda[] instead), with the same dropout masks as every other pass. */
static int pass(eng_wt *w, const eng_real *x, int n, const eng_task_batch *tb, int t,
                const double *lambda, const eng_rng *drop, double *losses)
{
    eng_task_batch b[ENG_MAX_TASKS];
    for (int u = 0; u < w->T; u++) {
        b[u] = tb[u];
        b[u].lambda = t < 0 ? lambda[u] : (u == t ? 1.0 : 0.0);
    }
    eng_rng r;
    if (drop)
        r = *drop;
    return eng_mtl_train_step(w->m, x, n, b, drop ? &r : NULL, losses);
}

/* Copies the shared runs of src into the packed dst. */
static void pack_shared(const eng_wt *w, const eng_real *src, eng_real *dst)
{
    for (int i = 0; i < w->n_ranges; i++) {
        memcpy(dst, src + w->shared[i].off, w->shared[i].count * sizeof *dst);
        dst += w->shared[i].count;
    }
}

static void unpack_shared(const eng_wt *w, const eng_real *src, eng_real *dst)
{
    for (int i = 0; i < w->n_ranges; i++) {
        memcpy(dst + w->shared[i].off, src, w->shared[i].count * sizeof *src);
        src += w->shared[i].count;
    }
}

/* Adam on one scalar parameter p of task t, moments in blocks bm, bv. */
static void adam_scalar(eng_wt *w, int t, double *p, int bm, int bv, double g)
{
    double *m = &blk(w, bm)[t], *v = &blk(w, bv)[t], *k = &blk(w, S_T)[t];
    *k += 1;
    *m = ADAM_B1 * *m + (1 - ADAM_B1) * g;
    *v = ADAM_B2 * *v + (1 - ADAM_B2) * g * g;
    const double mh = *m / (1 - pow(ADAM_B1, *k)), vh = *v / (1 - pow(ADAM_B2, *k));
    *p -= w->cfg.lr * mh / (sqrt(vh) + ADAM_EPS);
}

static void gradnorm_update(eng_wt *w, const int *pres, const double *losses, const double *gn)
{
    double wv[ENG_MAX_TASKS], cv[ENG_MAX_TASKS], gv[ENG_MAX_TASKS], rv[ENG_MAX_TASKS],
        dw[ENG_MAX_TASKS];
    int idx[ENG_MAX_TASKS], k = 0;
    double *W = blk(w, S_W), *L0 = blk(w, S_L0);
    memset(w->gn_last, 0, sizeof w->gn_last);
    for (int t = 0; t < w->T; t++) {
        if (!pres[t])
            continue;
        if (L0[t] == 0)
            L0[t] = losses[t];
        idx[k] = t;
        wv[k] = W[t];
        cv[k] = w->cfg.c[t];
        gv[k] = gn[t];
        rv[k] = L0[t] > 0 ? losses[t] / L0[t] : 1.0;
        w->gn_last[t] = W[t] * cv[k] * gn[t];
        k++;
    }
    if (k < 2)
        return; /* one task is always balanced with itself */
    eng_gradnorm_loss(k, wv, cv, gv, rv, w->cfg.alpha, dw);
    double others = 0, sum = 0;
    for (int t = 0; t < w->T; t++)
        if (w->cfg.c[t] > 0 && !pres[t])
            others += W[t];
    for (int i = 0; i < k; i++) {
        const int t = idx[i];
        adam_scalar(w, t, &W[t], S_WM, S_WV, dw[i]);
        if (!(W[t] >= W_MIN))
            W[t] = W_MIN;
        sum += W[t];
    }
    const double target = (double)n_active(w) - others;
    if (target > 0 && sum > 0)
        for (int i = 0; i < k; i++)
            W[idx[i]] *= target / sum;
}

static double sq_norm(const eng_real *a, size_t n)
{
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += (double)a[k] * (double)a[k];
    return s;
}

int eng_wt_step(eng_wt *w, const eng_real *x, int n, const eng_task_batch *tb,
                const eng_rng *drop, eng_rng *order, double *task_loss)
{
    if (!w || !tb)
        return ENG_EINVAL;
    double lambda[ENG_MAX_TASKS], losses[ENG_MAX_TASKS];
    int pres[ENG_MAX_TASKS], any = 0, rc;
    eng_wt_weights(w, lambda);
    for (int t = 0; t < w->T; t++) {
        pres[t] = w->cfg.c[t] > 0 && tb[t].y && present(&tb[t], n);
        any |= pres[t];
    }
    const eng_wt_kind kind = w->cfg.kind;
    if (kind != ENG_WT_GRADNORM && kind != ENG_WT_PCGRAD) {
        rc = pass(w, x, n, tb, -1, lambda, drop, losses);
        if (rc != ENG_OK)
            goto out;
        if (kind == ENG_WT_UNCERTAINTY) {
            double kf[ENG_MAX_TASKS], ds[ENG_MAX_TASKS];
            for (int t = 0; t < w->T; t++)
                kf[t] = is_regression(w, t) ? 0.5 : 1.0;
            eng_uncertainty_loss(w->T, blk(w, S_S), w->cfg.c, kf, losses, ds);
            for (int t = 0; t < w->T; t++)
                if (pres[t])
                    adam_scalar(w, t, &blk(w, S_S)[t], S_SM, S_SV, ds[t]);
        }
        goto out;
    }
    /* gradnorm, pcgrad: one pass per present task */
    double gn[ENG_MAX_TASKS] = {0};
    const eng_real *gp[ENG_MAX_TASKS];
    int idx[ENG_MAX_TASKS], k = 0;
    eng_real *grads = eng_mtl_grads(w->m);
    memset(w->acc, 0, w->np * sizeof *w->acc);
    if (!any) { /* nothing to learn from: losses, and a zero gradient */
        rc = pass(w, x, n, tb, -1, lambda, drop, losses);
        goto out;
    }
    for (int t = 0; t < w->T; t++) {
        if (!pres[t])
            continue;
        rc = pass(w, x, n, tb, t, lambda, drop, losses);
        if (rc != ENG_OK)
            goto out;
        const eng_real f = (eng_real)lambda[t];
        for (size_t i = 0; i < w->np; i++)
            w->acc[i] += f * grads[i];
        if (w->w_count)
            gn[t] = sqrt(sq_norm(grads + w->w_off, w->w_count));
        if (kind == ENG_WT_PCGRAD && w->n_shared) {
            eng_real *g = w->G + (size_t)k * w->n_shared;
            pack_shared(w, grads, g);
            for (size_t i = 0; i < w->n_shared; i++)
                g[i] *= f;
            gp[k] = g;
        }
        idx[k++] = t;
    }
    if (kind == ENG_WT_PCGRAD && w->n_shared) {
        for (int i = 0; i < k; i++) {
            uint32_t *o = w->order + (size_t)i * (size_t)k;
            for (int j = 0; j < k; j++)
                o[j] = (uint32_t)j;
            if (order)
                eng_rng_shuffle(order, o, (size_t)k);
        }
        eng_pcgrad(k, gp, w->n_shared, w->order, w->pc_out, w->pc_proj);
        unpack_shared(w, w->pc_out, w->acc);
    }
    memcpy(grads, w->acc, w->np * sizeof *grads);
    if (kind == ENG_WT_GRADNORM)
        gradnorm_update(w, pres, losses, gn);
    (void)idx;
out:
    if (task_loss)
        memcpy(task_loss, losses, (size_t)w->T * sizeof *task_loss);
    return rc;
}

int eng_wt_grad_cosine(eng_wt *w, const eng_real *x, int n, const eng_task_batch *tb,
                       const eng_rng *drop, double *cos)
{
    if (!w || !tb || !cos)
        return ENG_EINVAL;
    const int T = w->T;
    double nrm[ENG_MAX_TASKS], losses[ENG_MAX_TASKS];
    for (int t = 0; t < T * T; t++)
        cos[t] = NAN;
    if (!w->n_shared)
        return ENG_OK;
    for (int t = 0; t < T; t++) {
        nrm[t] = 0;
        if (!tb[t].y || !present(&tb[t], n))
            continue;
        int rc = pass(w, x, n, tb, t, NULL, drop, losses);
        if (rc != ENG_OK)
            return rc;
        eng_real *g = w->G + (size_t)t * w->n_shared;
        pack_shared(w, eng_mtl_grads(w->m), g);
        nrm[t] = sqrt(sq_norm(g, w->n_shared));
    }
    for (int t = 0; t < T; t++)
        for (int u = 0; u < T; u++) {
            if (nrm[t] == 0 || nrm[u] == 0)
                continue;
            const eng_real *a = w->G + (size_t)t * w->n_shared, *b = w->G + (size_t)u * w->n_shared;
            double dot = 0;
            for (size_t i = 0; i < w->n_shared; i++)
                dot += (double)a[i] * (double)b[i];
            cos[t * T + u] = dot / (nrm[t] * nrm[u]);
        }
    return ENG_OK;
}
