/*
 * engine/loss.c — the per-task losses of mtl.h and their gradients, plus the
 * public row-wise softmax.
 *
 * Cross-entropy is computed from logits with log-sum-exp
 * (l = max + log sum exp(z - max) - z_y), never as -log(softmax), so logits of
 * any magnitude give a finite loss and gradient. Each loss makes two passes:
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
                         const eng_real *row_weight, const eng_real *class_weight,
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
        /* l = lse - z_c = (mx - z_c) + log(s), with s in [1, k]. */
        total += w * ((double)(mx - zi[c]) + log((double)s));
        if (di) {
            eng_real f = (eng_real)(w * g) / s;
            for (int j = 0; j < k; j++)
                di[j] *= f;
            di[c] -= (eng_real)(w * g);
        }
    }
    *loss = total / den;
    return ENG_OK;
}

int eng__loss_mse(const eng_real *z, int n, const eng_real *y, const eng_real *row_weight,
                  double scale, eng_real *dz, double *loss, double *wsum)
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
    const double g = 2 * scale / den;
    for (int i = 0; i < n; i++) {
        double w = row_weight ? (double)row_weight[i] : 1.0;
        if (w == 0) {
            if (dz)
                dz[i] = 0;
            continue;
        }
        double e = (double)z[i] - (double)y[i];
        total += w * e * e;
        if (dz)
            dz[i] = (eng_real)(g * w * e);
    }
    *loss = total / den;
    return ENG_OK;
}
