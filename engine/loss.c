/*
 * engine/loss.c — the per-task losses of mtl.h and their gradients, plus the
 * public row-wise softmax.
 *
 * Cross-entropy is computed from logits with log-sum-exp
 * (l = max + log sum exp(z - max) - z_y), never as -log(softmax), so logits of
 * any magnitude give a finite loss and gradient. With label smoothing s the
 * target is q = (1-s)·onehot(y) + s/K and the loss is written as
 * (1-s)(max - z_y) + (s/K)·Σ_c (max - z_c) + log Σ exp(z - max): every term is
 * a non-negative difference, so ±1000 logits stay exact; the gradient is
 * softmax(z) - q. Binary cross-entropy is max(z,0) - z·y + log1p(e^-|z|),
 * gradient sigmoid(z) - y with sigmoid taken on the side where e^-|z| <= 1.
 * Huber is ½e² inside δ and δ(|e| - ½δ) outside (gradient e clipped to ±δ). Each loss makes two passes:
 * the first validates labels/weights and sums the weights (the denominator of
 * the weighted mean), the second computes loss and gradient together — or is
 * skipped when the denominator is 0, which defines the loss as 0 rather than
 * NaN. Masked rows (row weight 0) are never read beyond their weight, so a
 * missing label may be stored as NaN. Sums are accumulated in double even in
 * the float build; the per-element work stays in eng_real.
 */
#include "engine/eng__internal.h"

static int weight_ok(double w)
{
    return w >= 0 && !isinf(w); /* NaN fails w >= 0 */
}

void eng_softmax_rows(const eng_real *logits, int n, int k, eng_real *probs)
{
    for (int i = 0; i < n; i++) {
        const eng_real *z = logits + (size_t)i * k;
        eng_real *p = probs + (size_t)i * k;
        eng_real mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx)
                mx = z[j];
        eng_real s = 0;
        for (int j = 0; j < k; j++) {
            p[j] = ENG__EXP(z[j] - mx); /* reads z[j] before writing p[j]: aliasing is fine */
            s += p[j];
        }
        eng_real inv = (eng_real)1 / s;
        for (int j = 0; j < k; j++)
            p[j] *= inv;
    }
}

/* Weight of row i (row weight times class weight of its label) or -1 when
 * the label or a weight is invalid. */
static double ce_row_weight(const eng_real *y, const eng_real *rw, const eng_real *cw, int k,
                            int i, int *label)
{
    double r = rw ? (double)rw[i] : 1.0;
    if (!weight_ok(r))
        return -1;
    if (r == 0) {
        *label = -1;
        return 0;
    }
    double yv = (double)y[i];
    if (!(yv >= 0 && yv < k) || yv != floor(yv))
        return -1;
    *label = (int)yv;
    return cw ? r * (double)cw[*label] : r;
}

int eng__loss_softmax_ce(const eng_real *z, int n, int k, const eng_real *y,
                         const eng_real *row_weight, const eng_real *class_weight, double smooth,
                         double scale, eng_real *dz, double *loss, double *wsum)
{
    if (class_weight)
        for (int j = 0; j < k; j++)
            if (!weight_ok((double)class_weight[j]))
                return ENG_EINVAL;
    double den = 0;
    for (int i = 0; i < n; i++) {
        int c;
        double w = ce_row_weight(y, row_weight, class_weight, k, i, &c);
        if (w < 0)
            return ENG_EINVAL;
        den += w;
    }
    *wsum = den;
    *loss = 0;
    if (den == 0)
        return ENG_OK;

    double total = 0;
    const double g = scale / den;
    const double s_k = smooth / k, on = 1 - smooth;
    for (int i = 0; i < n; i++) {
        const eng_real *zi = z + (size_t)i * k;
        eng_real *di = dz ? dz + (size_t)i * k : NULL;
        int c = -1;
        double w = ce_row_weight(y, row_weight, class_weight, k, i, &c);
        if (w == 0) {
            if (di)
                for (int j = 0; j < k; j++)
                    di[j] = 0;
            continue;
        }
        eng_real mx = zi[0];
        for (int j = 1; j < k; j++)
            if (zi[j] > mx)
                mx = zi[j];
        eng_real s = 0;
        if (di) {
            for (int j = 0; j < k; j++) {
                di[j] = ENG__EXP(zi[j] - mx);
                s += di[j];
            }
        } else {
            for (int j = 0; j < k; j++)
                s += ENG__EXP(zi[j] - mx);
        }
        /* l = lse - Σ q_c z_c, with lse = mx + log(s) and s in [1, k]. */
        double l = on * (double)(mx - zi[c]) + log((double)s);
        if (smooth > 0) {
            double gap = 0;
            for (int j = 0; j < k; j++)
                gap += (double)(mx - zi[j]);
            l += s_k * gap;
        }
        total += w * l;
        if (di) {
            const eng_real f = (eng_real)(w * g) / s;
            const eng_real off = (eng_real)(w * g * s_k);
            for (int j = 0; j < k; j++)
                di[j] = di[j] * f - off;
            di[c] -= (eng_real)(w * g * on);
        }
    }
    *loss = total / den;
    return ENG_OK;
}

/* Row weight times the class weight of a hard 0/1 label, or -1 when invalid. */
static double bce_row_weight(const eng_real *y, const eng_real *rw, const eng_real *cw, int i)
{
    double r = rw ? (double)rw[i] : 1.0;
    if (!weight_ok(r))
        return -1;
    if (r == 0)
        return 0;
    double yv = (double)y[i];
    if (!(yv >= 0 && yv <= 1))
        return -1;
    if (!cw)
        return r;
    if (yv != 0 && yv != 1)
        return -1;
    return r * (double)cw[yv == 1];
}

int eng__loss_bce(const eng_real *z, int n, const eng_real *y, const eng_real *row_weight,
                  const eng_real *class_weight, double scale, eng_real *dz, double *loss,
                  double *wsum)
{
    if (class_weight && (!weight_ok((double)class_weight[0]) || !weight_ok((double)class_weight[1])))
        return ENG_EINVAL;
    double den = 0;
    for (int i = 0; i < n; i++) {
        double w = bce_row_weight(y, row_weight, class_weight, i);
        if (w < 0)
            return ENG_EINVAL;
        den += w;
    }
    *wsum = den;
    *loss = 0;
    if (den == 0)
        return ENG_OK;

    double total = 0;
    const double g = scale / den;
    for (int i = 0; i < n; i++) {
        double w = bce_row_weight(y, row_weight, class_weight, i);
        if (w == 0) {
            if (dz)
                dz[i] = 0;
            continue;
        }
        const eng_real zi = z[i], yi = y[i];
        const eng_real e = ENG__EXP(-(zi < 0 ? -zi : zi)); /* in (0, 1] */
        total += w * ((double)(zi > 0 ? zi : 0) - (double)zi * (double)yi + (double)ENG__LOG1P(e));
        if (dz) {
            const eng_real sig = zi >= 0 ? 1 / (1 + e) : e / (1 + e);
            dz[i] = (eng_real)(w * g) * (sig - yi);
        }
    }
    *loss = total / den;
    return ENG_OK;
}

int eng__loss_regression(const eng_real *z, int n, const eng_real *y,
                         const eng_real *row_weight, double huber_delta, double scale,
                         eng_real *dz, double *loss, double *wsum)
{
    double den = 0;
    if (row_weight) {
        for (int i = 0; i < n; i++) {
            if (!weight_ok((double)row_weight[i]))
                return ENG_EINVAL;
            den += (double)row_weight[i];
        }
    } else {
        den = n;
    }
    *wsum = den;
    *loss = 0;
    if (den == 0)
        return ENG_OK;

    double total = 0;
    const double g = scale / den, delta = huber_delta;
    for (int i = 0; i < n; i++) {
        double w = row_weight ? (double)row_weight[i] : 1.0;
        if (w == 0) {
            if (dz)
                dz[i] = 0;
            continue;
        }
        double e = (double)z[i] - (double)y[i], l, de;
        if (delta <= 0) {
            l = e * e;
            de = 2 * e;
        } else if (fabs(e) <= delta) {
            l = 0.5 * e * e;
            de = e;
        } else {
            l = delta * (fabs(e) - 0.5 * delta);
            de = e > 0 ? delta : -delta;
        }
        total += w * l;
        if (dz)
            dz[i] = (eng_real)(g * w * de);
    }
    *loss = total / den;
    return ENG_OK;
}
