/*
 * engine/layernorm.c — layer normalisation over the units of each row
 * (Ba, Kiros & Hinton 2016), forward and backward.
 *
 *   mean = Σ v / k,  var = Σ (v − mean)² / k  (population, as PyTorch),
 *   rstd = 1/sqrt(var + 1e-5),  u = (v − mean)·rstd,  out = γ⊙u + β
 * Backward (d = dL/dout on entry):
 *   dγ = Σ_rows d⊙u,  dβ = Σ_rows d,  g = d⊙γ,
 *   dL/dv = rstd·(g − mean(g) − u·mean(g⊙u))
 * The forward keeps u and rstd, which is all the backward needs. Row sums
 * are accumulated in double (two passes for the variance, never E[v²]−E[v]²,
 * which cancels catastrophically) so the float build stays accurate for
 * rows with a large mean.
 */
#include "engine/eng__internal.h"

#define LN_EPS 1e-5

void eng__layernorm_forward(const eng_real *v, int n, int k, const eng_real *gamma,
                            const eng_real *beta, eng_real *u, eng_real *rstd, eng_real *out)
{
    for (int i = 0; i < n; i++) {
        const eng_real *vi = v + (size_t)i * k;
        eng_real *ui = u + (size_t)i * k, *oi = out + (size_t)i * k;
        double s = 0, ss = 0;
        for (int j = 0; j < k; j++)
            s += (double)vi[j];
        const double mean = s / k;
        for (int j = 0; j < k; j++) {
            double c = (double)vi[j] - mean;
            ss += c * c;
        }
        const eng_real r = (eng_real)(1 / sqrt(ss / k + LN_EPS));
        const eng_real mu = (eng_real)mean;
        rstd[i] = r;
        for (int j = 0; j < k; j++) {
            eng_real uj = (vi[j] - mu) * r;
            ui[j] = uj;
            oi[j] = gamma[j] * uj + beta[j];
        }
    }
}

void eng__layernorm_backward(const eng_real *u, const eng_real *rstd, int n, int k,
                             const eng_real *gamma, eng_real *d, eng_real *dgamma,
                             eng_real *dbeta)
{
    for (int j = 0; j < k; j++)
        dgamma[j] = dbeta[j] = 0;
    for (int i = 0; i < n; i++) {
        const eng_real *ui = u + (size_t)i * k;
        eng_real *di = d + (size_t)i * k;
        double sg = 0, sgu = 0;
        for (int j = 0; j < k; j++) {
            dgamma[j] += di[j] * ui[j];
            dbeta[j] += di[j];
            double g = (double)di[j] * (double)gamma[j];
            sg += g;
            sgu += g * (double)ui[j];
        }
        const eng_real mg = (eng_real)(sg / k), mgu = (eng_real)(sgu / k), r = rstd[i];
        for (int j = 0; j < k; j++)
            di[j] = r * (di[j] * gamma[j] - mg - ui[j] * mgu);
    }
}
