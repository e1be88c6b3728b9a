/*
 * tests/unit/meta/test_fnet.c — the functional MLP: forward against a naive
 * reference, gradients and exact Hessian-vector products against central
 * finite differences (double build), and properties that hold in float
 * (H symmetric: wᵀ(Hv) = vᵀ(Hw); backward from ∂ℓ/∂z equals loss_grad).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

typedef struct {
    eng_fnet_spec s;
    eng_fnet_loss kind;
    int n;
} net_case;

static const net_case cases[] = {
    {{3, {4, 6, 5, 3}, ENG_FNET_TANH}, ENG_FNET_CE, 7},
    {{3, {4, 6, 5, 3}, ENG_FNET_RELU}, ENG_FNET_CE, 7},
    {{2, {2, 7, 2}, ENG_FNET_TANH}, ENG_FNET_MSE, 5},
    {{3, {1, 8, 8, 1}, ENG_FNET_RELU}, ENG_FNET_MSE, 9},
    {{1, {5, 3}, ENG_FNET_TANH}, ENG_FNET_CE, 4},
};

typedef struct {
    eng_fnet *f;
    size_t np;
    eng_real *p, *x, *y, *g, *v, *w, *hv, *hw, *tmp;
} fixture;

static void fx_make(fixture *fx, const net_case *c, uint64_t seed)
{
    eng_rng r;
    eng_rng_seed(&r, seed);
    ck_assert_int_eq(eng_fnet_new(&c->s, c->n, 2, &fx->f), ENG_OK);
    fx->np = eng_fnet_nparams(fx->f);
    int d0 = c->s.dims[0], dL = c->s.dims[c->s.n_layers];
    fx->p = calloc(fx->np, sizeof *fx->p);
    fx->g = calloc(fx->np, sizeof *fx->g);
    fx->v = calloc(fx->np, sizeof *fx->v);
    fx->w = calloc(fx->np, sizeof *fx->w);
    fx->hv = calloc(fx->np, sizeof *fx->hv);
    fx->hw = calloc(fx->np, sizeof *fx->hw);
    fx->tmp = calloc(fx->np, sizeof *fx->tmp);
    fx->x = calloc((size_t)c->n * d0, sizeof *fx->x);
    fx->y = calloc((size_t)c->n * dL, sizeof *fx->y);
    eng_fnet_init(fx->f, fx->p, &r);
    /* nonzero biases so every term of the R-operator is exercised */
    for (int l = 1; l <= c->s.n_layers; l++)
        fill_normal(&r, fx->p + eng_fnet_bias_offset(fx->f, l), (size_t)c->s.dims[l], 0.3);
    fill_normal(&r, fx->x, (size_t)c->n * d0, 1.0);
    fill_normal(&r, fx->v, fx->np, 1.0);
    fill_normal(&r, fx->w, fx->np, 1.0);
    for (int i = 0; i < c->n; i++) {
        if (c->kind == ENG_FNET_CE)
            fx->y[i] = (eng_real)eng_rng_below(&r, (uint64_t)dL);
        else
            for (int j = 0; j < dL; j++)
                fx->y[(size_t)i * dL + j] = (eng_real)eng_rng_normal(&r);
    }
}

static void fx_free(fixture *fx)
{
    eng_fnet_free(fx->f);
    free(fx->p);
    free(fx->g);
    free(fx->v);
    free(fx->w);
    free(fx->hv);
    free(fx->hw);
    free(fx->tmp);
    free(fx->x);
    free(fx->y);
}

/* Naive double forward straight from the layout documented in fnet.h. */
START_TEST(forward_matches_reference)
{
    const net_case *c = &cases[_i];
    fixture fx;
    fx_make(&fx, c, 11 + (uint64_t)_i);
    ck_assert_int_eq(eng_fnet_forward(fx.f, 0, fx.p, fx.x, c->n), ENG_OK);
    const eng_real *out = eng_fnet_output(fx.f, 0);
    int L = c->s.n_layers;
    for (int i = 0; i < c->n; i++) {
        double h[16], nh[16];
        int w = c->s.dims[0];
        for (int k = 0; k < w; k++)
            h[k] = fx.x[(size_t)i * w + k];
        size_t off = 0;
        for (int l = 1; l <= L; l++) {
            int o = c->s.dims[l];
            for (int j = 0; j < o; j++) {
                double z = fx.p[off + (size_t)o * w + j];
                for (int k = 0; k < w; k++)
                    z += fx.p[off + (size_t)j * w + k] * h[k];
                if (l < L)
                    z = c->s.act == ENG_FNET_RELU ? (z > 0 ? z : 0) : tanh(z);
                nh[j] = z;
            }
            off += (size_t)o * w + o;
            memcpy(h, nh, sizeof h);
            w = o;
        }
        for (int j = 0; j < w; j++)
            ck_assert_double_le(fabs(h[j] - out[(size_t)i * w + j]), 1e-5 * (1 + fabs(h[j])));
    }
    fx_free(&fx);
}
END_TEST

START_TEST(backward_equals_loss_grad)
{
    const net_case *c = &cases[_i];
    fixture fx;
    fx_make(&fx, c, 21 + (uint64_t)_i);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_OK);
    /* ∂ℓ/∂z by hand, then the generic backward */
    ck_assert_int_eq(eng_fnet_forward(fx.f, 1, fx.p, fx.x, c->n), ENG_OK);
    int k = c->s.dims[c->s.n_layers];
    eng_real *dz = calloc((size_t)c->n * k, sizeof *dz);
    const eng_real *z = eng_fnet_output(fx.f, 1);
    for (int i = 0; i < c->n; i++) {
        if (c->kind == ENG_FNET_MSE) {
            for (int j = 0; j < k; j++)
                dz[i * k + j] = (eng_real)(2.0 / c->n * (z[i * k + j] - fx.y[i * k + j]));
        } else {
            double se = 0;
            for (int j = 0; j < k; j++)
                se += exp((double)z[i * k + j]);
            for (int j = 0; j < k; j++)
                dz[i * k + j] =
                    (eng_real)((exp((double)z[i * k + j]) / se - (j == (int)fx.y[i])) / c->n);
        }
    }
    ck_assert_int_eq(eng_fnet_backward(fx.f, 1, fx.p, dz, fx.tmp), ENG_OK);
    ck_assert_double_le(max_rel_err(fx.tmp, fx.g, fx.np), 1e-5);
    free(dz);
    fx_free(&fx);
}
END_TEST

/* wᵀ(Hv) = vᵀ(Hw): holds for the exact Hessian in any precision. */
START_TEST(hvp_symmetric)
{
    const net_case *c = &cases[_i];
    fixture fx;
    fx_make(&fx, c, 31 + (uint64_t)_i);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_OK);
    ck_assert_int_eq(eng_fnet_hvp(fx.f, 0, fx.p, fx.v, fx.hv), ENG_OK);
    ck_assert_int_eq(eng_fnet_hvp(fx.f, 0, fx.p, fx.w, fx.hw), ENG_OK);
    double a = 0, b = 0, s = 0;
    for (size_t i = 0; i < fx.np; i++) {
        a += (double)fx.w[i] * fx.hv[i];
        b += (double)fx.v[i] * fx.hw[i];
        s += fabs((double)fx.w[i] * fx.hv[i]);
    }
    ck_assert_double_le(fabs(a - b), 1e-5 * (1 + s));
    ck_assert_double_gt(s, 0);
    fx_free(&fx);
}
END_TEST

START_TEST(hvp_needs_a_loss)
{
    const net_case *c = &cases[0];
    fixture fx;
    fx_make(&fx, c, 41);
    ck_assert_int_eq(eng_fnet_forward(fx.f, 0, fx.p, fx.x, c->n), ENG_OK);
    ck_assert_int_eq(eng_fnet_hvp(fx.f, 0, fx.p, fx.v, fx.hv), ENG_EINVAL);
    ck_assert_int_eq(eng_fnet_forward(fx.f, 0, fx.p, fx.x, c->n + 1), ENG_ESHAPE);
    fx.y[0] = 99; /* class out of range */
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_EINVAL);
    fx_free(&fx);
}
END_TEST

#ifdef ENG_DOUBLE
static double loss_at(fixture *fx, const net_case *c, const eng_real *p)
{
    double l = 0;
    ck_assert_int_eq(eng_fnet_loss_grad(fx->f, 1, p, fx->x, fx->y, c->n, c->kind, &l, NULL),
                     ENG_OK);
    return l;
}

START_TEST(grad_vs_finite_differences)
{
    const net_case *c = &cases[_i];
    fixture fx;
    fx_make(&fx, c, 51 + (uint64_t)_i);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_OK);
    const double h = 1e-6;
    for (size_t i = 0; i < fx.np; i++) {
        eng_real keep = fx.p[i];
        fx.p[i] = keep + h;
        double lp = loss_at(&fx, c, fx.p);
        fx.p[i] = keep - h;
        double lm = loss_at(&fx, c, fx.p);
        fx.p[i] = keep;
        fx.tmp[i] = (lp - lm) / (2 * h);
    }
    ck_assert_double_le(max_rel_err(fx.g, fx.tmp, fx.np), 1e-7);
    fx_free(&fx);
}
END_TEST

/* H v against (∇ℓ(θ + h v) − ∇ℓ(θ − h v)) / 2h. */
START_TEST(hvp_vs_finite_differences)
{
    const net_case *c = &cases[_i];
    fixture fx;
    fx_make(&fx, c, 61 + (uint64_t)_i);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_OK);
    ck_assert_int_eq(eng_fnet_hvp(fx.f, 0, fx.p, fx.v, fx.hv), ENG_OK);
    const double h = 1e-5;
    eng_real *pp = calloc(fx.np, sizeof *pp), *gp = calloc(fx.np, sizeof *gp);
    for (size_t i = 0; i < fx.np; i++)
        pp[i] = fx.p[i] + h * fx.v[i];
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 1, pp, fx.x, fx.y, c->n, c->kind, &l, gp), ENG_OK);
    for (size_t i = 0; i < fx.np; i++)
        pp[i] = fx.p[i] - h * fx.v[i];
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 1, pp, fx.x, fx.y, c->n, c->kind, &l, fx.tmp),
                     ENG_OK);
    for (size_t i = 0; i < fx.np; i++)
        fx.tmp[i] = (gp[i] - fx.tmp[i]) / (2 * h);
    ck_assert_double_le(max_rel_err(fx.hv, fx.tmp, fx.np), 1e-7);
    /* a head-only direction (ANIL's) takes the skipping path: same check */
    size_t lo = eng_fnet_weight_offset(fx.f, c->s.n_layers);
    memset(fx.v, 0, lo * sizeof *fx.v);
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 0, fx.p, fx.x, fx.y, c->n, c->kind, &l, fx.g),
                     ENG_OK);
    ck_assert_int_eq(eng_fnet_hvp(fx.f, 0, fx.p, fx.v, fx.hv), ENG_OK);
    for (size_t i = 0; i < fx.np; i++)
        pp[i] = fx.p[i] + h * fx.v[i];
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 1, pp, fx.x, fx.y, c->n, c->kind, &l, gp), ENG_OK);
    for (size_t i = 0; i < fx.np; i++)
        pp[i] = fx.p[i] - h * fx.v[i];
    ck_assert_int_eq(eng_fnet_loss_grad(fx.f, 1, pp, fx.x, fx.y, c->n, c->kind, &l, fx.tmp),
                     ENG_OK);
    for (size_t i = 0; i < fx.np; i++)
        fx.tmp[i] = (gp[i] - fx.tmp[i]) / (2 * h);
    ck_assert_double_le(max_rel_err(fx.hv, fx.tmp, fx.np), 1e-7);
    free(pp);
    free(gp);
    fx_free(&fx);
}
END_TEST
#endif

Suite *fnet_suite(void)
{
    Suite *s = suite_create("fnet");
    TCase *tc = tcase_create("fnet");
    int nc = (int)(sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, forward_matches_reference, 0, nc);
    tcase_add_loop_test(tc, backward_equals_loss_grad, 0, nc);
    tcase_add_loop_test(tc, hvp_symmetric, 0, nc);
    tcase_add_test(tc, hvp_needs_a_loss);
#ifdef ENG_DOUBLE
    tcase_add_loop_test(tc, grad_vs_finite_differences, 0, nc);
    tcase_add_loop_test(tc, hvp_vs_finite_differences, 0, nc);
#endif
    suite_add_tcase(s, tc);
    return s;
}
