/*
 * tests/unit/engine/test_weighting.c — the task weighting methods of
 * engine/weighting.h.
 *
 * Both builds: PCGrad projections against vectors projected by hand, DWA
 * weights against values computed by hand, weight 0, no allocation in a
 * step, the gradient cosine. Double build only: each method's parameter
 * gradient (uncertainty's s_t, gradnorm's w_t and the norms it balances)
 * and the network gradient each method produces, against central finite
 * differences.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/weighting.h"
#include "helpers.h"

#define TOL(x) (1e-6 * fmax(1.0, fabs(x)))

/* ---- pcgrad: hand-projected vectors ------------------------------------ */

START_TEST(test_pcgrad_two_conflicting)
{
    /* g0 = (1, 0), g1 = (-1, 1): g0·g1 = -1 < 0.
     * g0' = g0 - (-1/2) g1 = (0.5, 0.5);  g1' = g1 - (-1/1) g0 = (0, 1).
     * sum = (0.5, 1.5). */
    const eng_real a[2] = {1, 0}, b[2] = {-1, 1};
    const eng_real *g[2] = {a, b};
    const uint32_t order[4] = {0, 1, 1, 0};
    eng_real out[2], scratch[2];
    eng_pcgrad(2, g, 2, order, out, scratch);
    ck_assert_double_eq_tol(out[0], 0.5, REAL_TOL);
    ck_assert_double_eq_tol(out[1], 1.5, REAL_TOL);
}
END_TEST

START_TEST(test_pcgrad_no_conflict_is_sum)
{
    const eng_real a[3] = {1, 2, 0}, b[3] = {0, 1, 3};
    const eng_real *g[2] = {a, b};
    const uint32_t order[4] = {1, 0, 0, 1};
    eng_real out[3], scratch[3];
    eng_pcgrad(2, g, 3, order, out, scratch);
    ck_assert_double_eq_tol(out[0], 1, REAL_TOL);
    ck_assert_double_eq_tol(out[1], 3, REAL_TOL);
    ck_assert_double_eq_tol(out[2], 3, REAL_TOL);
}
END_TEST

START_TEST(test_pcgrad_three_order_matters)
{
    /* g0 = (1, 0), g1 = (-1, 1), g2 = (-1, -1), visiting order 0: 1 then 2.
     *  g0' = (1,0) - (-1/2)(-1,1) = (0.5, 0.5);  (0.5,0.5)·g2 = -1 < 0:
     *  g0' = (0.5,0.5) - (-1/2)(-1,-1) = (0, 0).
     * Task 1, order 2 then 0: g1·g2 = 0 (no conflict); g1·g0 = -1:
     *  g1' = (-1,1) - (-1)(1,0) = (0, 1).
     * Task 2, order 0 then 1: g2·g0 = -1: g2' = (-1,-1) + (1,0) = (0,-1);
     *  (0,-1)·g1 = -1: g2' = (0,-1) - (-1/2)(-1,1) = (-0.5, -0.5).
     * sum = (-0.5, 0.5).
     * Other orders — task 0: 2 then 1, task 2: 1 then 0 — give
     *  g0' = (1,0) + 0.5(-1,-1) = (0.5,-0.5), then ·g1 = -1:
     *  g0' = (0.5,-0.5) + 0.5(-1,1) = (0, 0);  g1' = (0, 1) as before;
     *  g2·g1 = 0, then g2·g0 = -1: g2' = (0, -1);  sum = (0, 0). */
    const eng_real a[2] = {1, 0}, b[2] = {-1, 1}, c[2] = {-1, -1};
    const eng_real *g[3] = {a, b, c};
    const uint32_t o1[9] = {0, 1, 2, 2, 1, 0, 0, 2, 1};
    eng_real out[2], scratch[2];
    eng_pcgrad(3, g, 2, o1, out, scratch);
    ck_assert_double_eq_tol(out[0], -0.5, REAL_TOL);
    ck_assert_double_eq_tol(out[1], 0.5, REAL_TOL);
    const uint32_t o2[9] = {2, 1, 0, 2, 1, 0, 1, 0, 2};
    eng_pcgrad(3, g, 2, o2, out, scratch);
    ck_assert_double_eq_tol(out[0], 0, REAL_TOL);
    ck_assert_double_eq_tol(out[1], 0, REAL_TOL);
}
END_TEST

/* ---- dwa: hand-computed weights --------------------------------------- */

START_TEST(test_dwa_hand_values)
{
    /* r = (1/2, 2/1) = (0.5, 2); temperature 2: exp(0.25) = 1.2840254166877414,
     * exp(1) = 2.718281828459045, sum 4.0023072451467864:
     * 2·1.2840254166877414/4.0023072451467864 = 0.641642601649214,
     * 2·2.718281828459045/4.0023072451467864 = 1.358357398350786. */
    const double p1[2] = {1, 2}, p2[2] = {2, 1};
    double w[2];
    eng_dwa_weights(2, p1, p2, 2.0, w);
    ck_assert_double_eq_tol(w[0], 0.641642601649214, 1e-12);
    ck_assert_double_eq_tol(w[1], 1.358357398350786, 1e-12);
    /* equal ratios: every weight 1 whatever the temperature */
    const double q1[3] = {3, 1.5, 0.3}, q2[3] = {6, 3, 0.6};
    double v[3];
    eng_dwa_weights(3, q1, q2, 0.1, v);
    for (int t = 0; t < 3; t++)
        ck_assert_double_eq_tol(v[t], 1.0, 1e-12);
}
END_TEST

static eng_mtl *demo_model(eng_act act, uint64_t seed, demo_batch *b)
{
    eng_mtl_spec s;
    demo_spec(&s);
    s.act = act;
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, DEMO_N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, seed);
    eng_mtl_init(m, &r);
    demo_batch_fill(b, &r);
    return m;
}

static eng_wt *make_wt(eng_mtl *m, eng_wt_kind kind, const double *c)
{
    eng_wt_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = kind;
    cfg.n_tasks = 3;
    for (int t = 0; t < 3; t++)
        cfg.c[t] = c[t];
    cfg.alpha = 1.5;
    cfg.temperature = 2.0;
    cfg.lr = 0.01;
    eng_wt *w = NULL;
    ck_assert_int_eq(eng_wt_new(&cfg, m, &w), ENG_OK);
    return w;
}

/* Σ lam_t L_t over the batch; leaves ∇ of it in eng_mtl_grads(m). */
static double weighted_loss(eng_mtl *m, const demo_batch *b, const double *lam)
{
    eng_task_batch tb[3];
    double loss[3], sum = 0;
    memcpy(tb, b->tb, sizeof tb);
    for (int t = 0; t < 3; t++)
        tb[t].lambda = lam[t];
    ck_assert_int_eq(eng_mtl_train_batch(m, b->x, DEMO_N, tb, loss), ENG_OK);
    for (int t = 0; t < 3; t++)
        sum += lam[t] * loss[t];
    return sum;
}

/* A malloc'd copy of the gradient of Σ lam_t L_t over every parameter. */
static double *task_grads(eng_mtl *m, const demo_batch *b, const double *lam)
{
    size_t np = eng_mtl_nparams(m);
    double *g = malloc(np * sizeof *g);
    ck_assert_ptr_nonnull(g);
    weighted_loss(m, b, lam);
    for (size_t k = 0; k < np; k++)
        g[k] = eng_mtl_grads(m)[k];
    return g;
}

/* The parameters [0, end) that the tasks share (everything before "tasks."). */
static size_t trunk_end(eng_mtl *m)
{
    size_t trunk = 0;
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (strncmp(ti.name, "tasks.", 6))
            trunk = ti.offset + ti.count;
    }
    return trunk;
}

static double dot(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t k = 0; k < n; k++)
        d += a[k] * b[k];
    return d;
}

START_TEST(test_dwa_through_epochs)
{
    /* Task 1 has weight 0: DWA shares T = 2 over tasks 0 and 2. Epoch means
     * (1, 9, 2) then (2, 9, 1): r = (2, ·, 0.5), temperature 2, so
     * λ0 = 0.5·2·e^1/(e^1 + e^0.25) = 0.5·1.358357398350786 and
     * λ2 = 1.5·0.641642601649214. */
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 3, &b);
    const double c[3] = {0.5, 0, 1.5};
    eng_wt *w = make_wt(m, ENG_WT_DWA, c);
    double lam[3];
    eng_wt_weights(w, lam);
    for (int t = 0; t < 3; t++)
        ck_assert_double_eq_tol(lam[t], c[t], 1e-12);
    const double e1[3] = {1, 9, 2}, e2[3] = {2, 9, 1};
    eng_wt_epoch_end(w, e1);
    eng_wt_weights(w, lam);
    ck_assert_double_eq_tol(lam[0], 0.5, 1e-12); /* one epoch: still static */
    eng_wt_epoch_end(w, e2);
    eng_wt_weights(w, lam);
    ck_assert_double_eq_tol(lam[0], 0.5 * 1.358357398350786, 1e-12);
    ck_assert(lam[1] == 0);
    ck_assert_double_eq_tol(lam[2], 1.5 * 0.641642601649214, 1e-12);
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST

/* ---- weight 0, allocation, state --------------------------------------- */

START_TEST(test_static_weight_zero)
{
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 4, &b);
    const double c[3] = {1, 0, 1};
    eng_wt *w = make_wt(m, ENG_WT_STATIC, c);
    double loss[3];
    ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, NULL, loss), ENG_OK);
    ck_assert(loss[1] > 0); /* its loss is still reported */
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (strncmp(ti.name, "tasks.1.", 8))
            continue;
        for (size_t k = 0; k < ti.count; k++)
            ck_assert(eng_mtl_grads(m)[ti.offset + k] == 0);
    }
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_step_no_alloc_and_state_roundtrip)
{
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_RELU, 5, &b);
    const double c[3] = {1, 1, 1};
    for (int kind = ENG_WT_STATIC; kind <= ENG_WT_PCGRAD; kind++) {
        eng_wt *w = make_wt(m, (eng_wt_kind)kind, c);
        eng_rng order;
        eng_rng_seed(&order, 9);
        ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, &order, NULL), ENG_OK);
        size_t len;
        double *st = eng_wt_state(w, &len), saved[256];
        ck_assert(len <= 256);
        memcpy(saved, st, len * sizeof *st);
        long before = test_alloc_count();
        int rc = eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, &order, NULL);
        long during = test_alloc_count() - before;
        ck_assert_int_eq(rc, ENG_OK);
        ck_assert_int_eq(during, 0);
        double lam1[3], lam2[3];
        eng_wt_weights(w, lam1);
        memcpy(st, saved, len * sizeof *st); /* "resume" from the saved state */
        ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, &order, NULL), ENG_OK);
        eng_wt_weights(w, lam2);
        for (int t = 0; t < 3; t++)
            ck_assert(lam1[t] == lam2[t]);
        eng_wt_free(w);
    }
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_grad_cosine)
{
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 6, &b);
    const double c[3] = {1, 1, 1};
    eng_wt *w = make_wt(m, ENG_WT_STATIC, c);
    double cos[9];
    ck_assert_int_eq(eng_wt_grad_cosine(w, b.x, DEMO_N, b.tb, NULL, cos), ENG_OK);
    /* against the one-hot gradients on the trunk, computed here */
    size_t trunk = trunk_end(m);
    double *g[3];
    for (int t = 0; t < 3; t++) {
        double lam[3] = {0, 0, 0};
        lam[t] = 1;
        g[t] = task_grads(m, &b, lam);
    }
    for (int t = 0; t < 3; t++)
        for (int u = 0; u < 3; u++) {
            double d = dot(g[t], g[u], trunk), nt = dot(g[t], g[t], trunk),
                   nu = dot(g[u], g[u], trunk);
            ck_assert_double_eq_tol(cos[t * 3 + u], d / sqrt(nt * nu), 1e-5);
        }
    ck_assert_double_eq_tol(cos[4], 1.0, 1e-5);
    for (int t = 0; t < 3; t++)
        free(g[t]);
    /* a task without a labelled row has no direction: NaN */
    eng_real zero[DEMO_N] = {0};
    b.tb[1].row_weight = zero;
    ck_assert_int_eq(eng_wt_grad_cosine(w, b.x, DEMO_N, b.tb, NULL, cos), ENG_OK);
    ck_assert(isnan(cos[1]) && isnan(cos[3 + 2]) && !isnan(cos[2]));
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_absent_task_zero_loss_not_nan)
{
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 7, &b);
    eng_real zero[DEMO_N] = {0}, nanv[DEMO_N];
    for (int i = 0; i < DEMO_N; i++)
        nanv[i] = NAN; /* every label missing: never read */
    b.tb[1].row_weight = zero;
    b.tb[1].y = nanv;
    const double c[3] = {1, 1, 1};
    for (int kind = ENG_WT_STATIC; kind <= ENG_WT_PCGRAD; kind++) {
        eng_wt *w = make_wt(m, (eng_wt_kind)kind, c);
        double loss[3], lam[3];
        eng_rng order;
        eng_rng_seed(&order, 1);
        ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, &order, loss), ENG_OK);
        ck_assert(loss[1] == 0);
        eng_wt_weights(w, lam);
        ck_assert(isfinite(lam[1]));
        ck_assert(!eng_any_nonfinite(eng_mtl_grads(m), eng_mtl_nparams(m)));
        eng_wt_free(w);
    }
    eng_mtl_free(m);
}
END_TEST

#ifdef ENG_DOUBLE
/* ---- finite differences (double build) --------------------------------- */

#define H 1e-6

/* ∂(Σ lam_t L_t)/∂p_k by central differences (p_k is put back). */
static double fd_param(eng_mtl *m, const demo_batch *b, const double *lam, size_t k)
{
    eng_real *p = eng_mtl_params(m);
    const eng_real keep = p[k];
    p[k] = keep + H;
    double up = weighted_loss(m, b, lam);
    p[k] = keep - H;
    double down = weighted_loss(m, b, lam);
    p[k] = keep;
    return (up - down) / (2 * H);
}

/* eng_mtl_grads(m), as a step left it, against finite differences of
 * Σ lam_t L_t over every parameter. */
static void check_network_grad(eng_mtl *m, const demo_batch *b, const double *lam)
{
    size_t np = eng_mtl_nparams(m), nonzero = 0;
    eng_real *g = malloc(np * sizeof *g);
    ck_assert_ptr_nonnull(g);
    memcpy(g, eng_mtl_grads(m), np * sizeof *g); /* the differences overwrite grads */
    for (size_t k = 0; k < np; k++) {
        double fd = fd_param(m, b, lam, k);
        ck_assert_msg(fabs(g[k] - fd) <= 1e-5 * fmax(fmax(fabs(g[k]), fabs(fd)), 1e-3),
                      "param %zu: analytic %.12g, numeric %.12g", k, g[k], fd);
        nonzero += fabs(g[k]) > 1e-6;
    }
    free(g);
    ck_assert(nonzero > np / 2);
}

START_TEST(test_uncertainty_s_gradient)
{
    /* ∂J/∂s_t of the pure objective, against finite differences */
    const double s[3] = {0.3, -0.7, 1.2}, c[3] = {1, 0.5, 2}, k[3] = {1, 0.5, 1},
                 L[3] = {1.7, 0.4, 2.9};
    double ds[3], tmp[3], d2[3];
    eng_uncertainty_loss(3, s, c, k, L, ds);
    for (int t = 0; t < 3; t++) {
        double sp[3], sm[3];
        memcpy(sp, s, sizeof sp);
        memcpy(sm, s, sizeof sm);
        sp[t] += H;
        sm[t] -= H;
        double fd = (eng_uncertainty_loss(3, sp, c, k, L, tmp) -
                     eng_uncertainty_loss(3, sm, c, k, L, d2)) /
                    (2 * H);
        ck_assert_double_eq_tol(ds[t], fd, 1e-8);
    }
    /* the minimum in s_t is at exp(s_t) = 2 k_t L_t */
    const double s1[1] = {log(2 * 0.5 * 0.8)}, one[1] = {1}, half[1] = {0.5}, l1[1] = {0.8};
    eng_uncertainty_loss(1, s1, one, half, l1, ds);
    ck_assert_double_eq_tol(ds[0], 0, 1e-12);
}
END_TEST

START_TEST(test_uncertainty_network_gradient_and_step)
{
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 11, &b);
    const double c[3] = {1, 0.5, 2};
    eng_wt *w = make_wt(m, ENG_WT_UNCERTAINTY, c);
    size_t len;
    double *st = eng_wt_state(w, &len);
    st[0] = 0.3, st[1] = -0.7, st[2] = 1.2; /* s (block 0) */
    double lam[3], loss[3];
    eng_wt_weights(w, lam);
    /* task 1 is the regression task: k = ½ */
    ck_assert_double_eq_tol(lam[0], 1 * exp(-0.3), 1e-12);
    ck_assert_double_eq_tol(lam[1], 0.5 * 0.5 * exp(0.7), 1e-12);
    ck_assert_double_eq_tol(lam[2], 2 * exp(-1.2), 1e-12);
    ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, NULL, loss), ENG_OK);
    check_network_grad(m, &b, lam);
    /* s moved against its gradient: Adam's first step is lr·sign(g) */
    const double s0[3] = {0.3, -0.7, 1.2}, k[3] = {1, 0.5, 1};
    double ds[3];
    eng_uncertainty_loss(3, s0, c, k, loss, ds);
    for (int t = 0; t < 3; t++)
        ck_assert_double_eq_tol(st[t], s0[t] - 0.01 * (ds[t] > 0 ? 1 : -1), 1e-9);
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST

/* ‖∇_W L_t‖ by finite differences over the last trunk layer's weight. */
static double fd_norm_W(eng_mtl *m, const demo_batch *b, int t)
{
    eng_tensor_info ti = {0};
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info x;
        eng_mtl_tensor(m, i, &x);
        if (!strncmp(x.name, "trunk.", 6) && x.rank == 2)
            ti = x;
    }
    ck_assert_str_eq(ti.name, "trunk.1.weight");
    double lam[3] = {0, 0, 0}, sq = 0;
    lam[t] = 1;
    for (size_t k = ti.offset; k < ti.offset + ti.count; k++) {
        double fd = fd_param(m, b, lam, k);
        sq += fd * fd;
    }
    return sqrt(sq);
}

START_TEST(test_gradnorm_weight_gradient)
{
    /* the pure gradient in w, target held fixed, against finite differences */
    const double w0[3] = {0.8, 1.5, 0.7}, c[3] = {1, 2, 0.5}, gn[3] = {0.9, 0.2, 1.4},
                 ratio[3] = {1.1, 0.6, 0.95};
    const double alpha = 1.5;
    double dw[3], gbar = 0, rbar = 0, target[3];
    eng_gradnorm_loss(3, w0, c, gn, ratio, alpha, dw);
    for (int t = 0; t < 3; t++) {
        gbar += w0[t] * c[t] * gn[t] / 3;
        rbar += ratio[t] / 3;
    }
    for (int t = 0; t < 3; t++)
        target[t] = gbar * pow(ratio[t] / rbar, alpha);
    for (int t = 0; t < 3; t++) {
        double up = 0, down = 0;
        for (int u = 0; u < 3; u++) {
            double wu = w0[u] + (u == t ? H : 0), wd = w0[u] - (u == t ? H : 0);
            up += fabs(wu * c[u] * gn[u] - target[u]);
            down += fabs(wd * c[u] * gn[u] - target[u]);
        }
        ck_assert_double_eq_tol(dw[t], (up - down) / (2 * H), 1e-7);
    }

    /* Through a step: the norms it balances are c_t·w_t·‖∇_W L_t‖ (finite
     * differences), the network gradient is Σ c_t w_t ∇L_t with the weights
     * from before the step, and afterwards Σ w = T. */
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 12, &b);
    eng_wt *w = make_wt(m, ENG_WT_GRADNORM, c);
    size_t len;
    double *st = eng_wt_state(w, &len);
    double *W = st + 3 * 3; /* block 3 */
    for (int t = 0; t < 3; t++)
        W[t] = w0[t];
    double lam[3], loss[3], G[3];
    eng_wt_weights(w, lam);
    ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, NULL, loss), ENG_OK);
    eng_wt_gradnorm_norms(w, G);
    for (int t = 0; t < 3; t++) {
        double want = c[t] * w0[t] * fd_norm_W(m, &b, t);
        ck_assert_msg(fabs(G[t] - want) < 1e-6 * fmax(1, want), "G[%d] %g vs %g", t, G[t], want);
    }
    /* the step left the combined gradient in grads; recompute it since
     * fd_norm_W overwrote them */
    for (int t = 0; t < 3; t++)
        W[t] = w0[t];
    ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, NULL, loss), ENG_OK);
    ck_assert_double_eq_tol(W[0] + W[1] + W[2], 3.0, 1e-12);
    check_network_grad(m, &b, lam);
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_pcgrad_step_two_tasks)
{
    /* Two tasks (task 2 weighted 0): the shared gradient is the hand
     * projection of the one-hot trunk gradients, the heads get their own. */
    demo_batch b;
    eng_mtl *m = demo_model(ENG_ACT_TANH, 13, &b);
    const double c[3] = {1, 0.7, 0};
    eng_wt *w = make_wt(m, ENG_WT_PCGRAD, c);
    size_t np = eng_mtl_nparams(m), trunk = trunk_end(m);
    double *g[2];
    for (int t = 0; t < 2; t++) {
        double lam[3] = {0, 0, 0};
        lam[t] = c[t];
        g[t] = task_grads(m, &b, lam);
    }
    eng_rng order;
    eng_rng_seed(&order, 3);
    ck_assert_int_eq(eng_wt_step(w, b.x, DEMO_N, b.tb, NULL, &order, NULL), ENG_OK);
    double d = dot(g[0], g[1], trunk), n0 = dot(g[0], g[0], trunk), n1 = dot(g[1], g[1], trunk);
    for (size_t k = 0; k < np; k++) {
        double want = g[0][k] + g[1][k];
        if (k < trunk && d < 0)
            want = (g[0][k] - d / n1 * g[1][k]) + (g[1][k] - d / n0 * g[0][k]);
        ck_assert_double_eq_tol(eng_mtl_grads(m)[k], want, 1e-10);
    }
    free(g[0]);
    free(g[1]);
    eng_wt_free(w);
    eng_mtl_free(m);
}
END_TEST
#endif

Suite *weighting_suite(void)
{
    Suite *s = suite_create("weighting");
    TCase *tc = tcase_create("weighting");
    tcase_add_test(tc, test_pcgrad_two_conflicting);
    tcase_add_test(tc, test_pcgrad_no_conflict_is_sum);
    tcase_add_test(tc, test_pcgrad_three_order_matters);
    tcase_add_test(tc, test_dwa_hand_values);
    tcase_add_test(tc, test_dwa_through_epochs);
    tcase_add_test(tc, test_static_weight_zero);
    tcase_add_test(tc, test_step_no_alloc_and_state_roundtrip);
    tcase_add_test(tc, test_grad_cosine);
    tcase_add_test(tc, test_absent_task_zero_loss_not_nan);
#ifdef ENG_DOUBLE
    tcase_add_test(tc, test_uncertainty_s_gradient);
    tcase_add_test(tc, test_uncertainty_network_gradient_and_step);
    tcase_add_test(tc, test_gradnorm_weight_gradient);
    tcase_add_test(tc, test_pcgrad_step_two_tasks);
#endif
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
