/*
 * tests/unit/meta/test_meta_grad.c — meta-gradients.
 *
 * meta_grad_suite (double build): every algorithm's meta-gradient against
 * central finite differences of what it claims to differentiate — the query
 * loss after K inner steps as a function of the initial weights (and of
 * Meta-SGD's learning rates), or ProtoNet's query loss as a function of the
 * embedding weights. The inner learning rate is large (0.3) so the
 * second-order term is big: dropping it fails these checks (asserted).
 *
 * meta_suite (both builds): identities — FOMAML is the first-order formula,
 * MAML minus FOMAML is the Hessian term, MAML with K = 0 is the plain query
 * gradient, Reptile with ε = 1 on one task lands on the adapted weights,
 * and an outer step allocates nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NS 6
#define NQ 5

typedef struct {
    eng_meta *m;
    size_t np, nmeta;
    eng_real *theta, *grad, *fd, *tmp;
    eng_real xs[NS * 4], ys[NS], xq[NQ * 4], yq[NQ];
    eng_meta_task t;
} mfx;

/* classification: 4→6→5→3 (3 ways); regression: 2→7→6→1 */
static void mfx_make(mfx *f, eng_meta_alg alg, int classification, eng_fnet_act act, int K,
                     uint64_t seed)
{
    memset(f, 0, sizeof *f);
    eng_meta_cfg c = {0};
    c.alg = alg;
    c.inner_steps = K;
    c.inner_lr = 0.3;
    c.max_support = NS;
    c.max_query = NQ;
    c.max_ways = 3;
    c.net.act = act;
    c.net.n_layers = 3;
    if (classification || alg == ENG_META_PROTONET) {
        int d[] = {4, 6, 5, 3};
        memcpy(c.net.dims, d, sizeof d);
        c.loss = ENG_FNET_CE;
    } else {
        int d[] = {2, 7, 6, 1};
        memcpy(c.net.dims, d, sizeof d);
        c.loss = ENG_FNET_MSE;
    }
    ck_assert_int_eq(eng_meta_new(&c, &f->m), ENG_OK);
    f->np = eng_meta_net_nparams(f->m);
    f->nmeta = eng_meta_nparams(f->m);
    f->theta = calloc(f->nmeta, sizeof *f->theta);
    f->grad = calloc(f->nmeta, sizeof *f->grad);
    f->fd = calloc(f->nmeta, sizeof *f->fd);
    f->tmp = calloc(f->nmeta, sizeof *f->tmp);
    eng_rng r;
    eng_rng_seed(&r, seed);
    eng_meta_init(f->m, f->theta, &r);
    eng_fnet *net = eng_meta_net(f->m);
    for (int l = 1; l <= 3; l++)
        fill_normal(&r, f->theta + eng_fnet_bias_offset(net, l), (size_t)c.net.dims[l], 0.3);
    if (alg == ENG_META_METASGD) /* per-parameter rates around 0.3 */
        for (size_t i = 0; i < f->np; i++)
            f->theta[f->np + i] = (eng_real)(0.3 * (0.5 + eng_rng_uniform(&r)));
    int d0 = c.net.dims[0];
    fill_normal(&r, f->xs, (size_t)NS * d0, 1.0);
    fill_normal(&r, f->xq, (size_t)NQ * d0, 1.0);
    for (int i = 0; i < NS; i++)
        f->ys[i] = c.loss == ENG_FNET_CE ? (eng_real)(i % 3) : (eng_real)eng_rng_normal(&r);
    for (int i = 0; i < NQ; i++)
        f->yq[i] = c.loss == ENG_FNET_CE ? (eng_real)eng_rng_below(&r, 3)
                                         : (eng_real)eng_rng_normal(&r);
    f->t = (eng_meta_task){f->xs, f->ys, NS, f->xq, f->yq, NQ, 3};
}

static void mfx_free(mfx *f)
{
    eng_meta_free(f->m);
    free(f->theta);
    free(f->grad);
    free(f->fd);
    free(f->tmp);
}

static double grad_of(mfx *f, eng_real *out)
{
    double ql = 0;
    memset(out, 0, f->nmeta * sizeof *out);
    ck_assert_int_eq(eng_meta_task_grad(f->m, f->theta, &f->t, 1.0, out, &ql), ENG_OK);
    return ql;
}

#ifdef ENG_DOUBLE
static double post_loss(mfx *f, int K)
{
    double l = 0;
    ck_assert_int_eq(eng_meta_evaluate(f->m, f->theta, &f->t, &K, 1, &l, NULL), ENG_OK);
    return l;
}

static void finite_diff(mfx *f, int K)
{
    const double h = 1e-6;
    for (size_t i = 0; i < f->nmeta; i++) {
        eng_real keep = f->theta[i];
        f->theta[i] = keep + h;
        double lp = post_loss(f, K);
        f->theta[i] = keep - h;
        double lm = post_loss(f, K);
        f->theta[i] = keep;
        f->fd[i] = (lp - lm) / (2 * h);
    }
}

static void check_fd(eng_meta_alg alg, int classification, eng_fnet_act act, int K,
                     uint64_t seed)
{
    mfx f;
    mfx_make(&f, alg, classification, act, K, seed);
    double ql = grad_of(&f, f.grad);
    ck_assert_double_le(fabs(ql - post_loss(&f, K)), 1e-12 * (1 + fabs(ql)));
    finite_diff(&f, K);
    ck_assert_double_le(max_rel_err(f.grad, f.fd, f.nmeta), 2e-7);
    /* the check can fail: the first-order approximation is far from it */
    if (K > 0 && alg != ENG_META_PROTONET) {
        mfx g;
        mfx_make(&g, ENG_META_FOMAML, classification, act, K, seed);
        grad_of(&g, g.grad);
        ck_assert_double_gt(max_rel_err(g.grad, f.fd, f.np), 1e-3);
        mfx_free(&g);
    }
    mfx_free(&f);
}

START_TEST(maml_fd_classification)
{
    int K = _i == 0 ? 1 : 3;
    check_fd(ENG_META_MAML, 1, ENG_FNET_TANH, K, 100 + (uint64_t)_i);
}
END_TEST

START_TEST(maml_fd_regression)
{
    int K = _i == 0 ? 1 : 3;
    check_fd(ENG_META_MAML, 0, ENG_FNET_TANH, K, 200 + (uint64_t)_i);
    check_fd(ENG_META_MAML, 0, ENG_FNET_RELU, K, 300 + (uint64_t)_i);
}
END_TEST

START_TEST(anil_fd)
{
    check_fd(ENG_META_ANIL, 1, ENG_FNET_TANH, 2, 400);
    check_fd(ENG_META_ANIL, 0, ENG_FNET_TANH, 3, 401);
}
END_TEST

START_TEST(metasgd_fd)
{
    check_fd(ENG_META_METASGD, 1, ENG_FNET_TANH, 2, 500);
    check_fd(ENG_META_METASGD, 0, ENG_FNET_TANH, 1, 501);
}
END_TEST

START_TEST(protonet_fd)
{
    check_fd(ENG_META_PROTONET, 1, ENG_FNET_TANH, 0, 600);
    check_fd(ENG_META_PROTONET, 1, ENG_FNET_RELU, 0, 601);
}
END_TEST
#endif

Suite *meta_grad_suite(void)
{
#ifdef ENG_DOUBLE
    Suite *s = suite_create("meta_grad");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, maml_fd_classification, 0, 2);
    tcase_add_loop_test(tc, maml_fd_regression, 0, 2);
    tcase_add_test(tc, anil_fd);
    tcase_add_test(tc, metasgd_fd);
    tcase_add_test(tc, protonet_fd);
    suite_add_tcase(s, tc);
    return s;
#else
    return NULL;
#endif
}

#ifdef ENG_DOUBLE
#define TOL 1e-12
#else
#define TOL 2e-5
#endif

/* θ_K by hand: K plain SGD steps with the network's own loss_grad. */
static void adapt_by_hand(mfx *f, int K, eng_real *p)
{
    eng_fnet *net = eng_meta_net(f->m);
    const eng_meta_cfg *c = eng_meta_get_cfg(f->m);
    memcpy(p, f->theta, f->np * sizeof *p);
    double l;
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(eng_fnet_loss_grad(net, 0, p, f->xs, f->ys, NS, c->loss, &l, f->tmp),
                         ENG_OK);
        for (size_t i = 0; i < f->np; i++)
            p[i] -= (eng_real)c->inner_lr * f->tmp[i];
    }
}

START_TEST(fomaml_is_first_order_formula)
{
    int K = 1 + _i;
    mfx f;
    mfx_make(&f, ENG_META_FOMAML, _i % 2, ENG_FNET_TANH, K, 700 + (uint64_t)_i);
    grad_of(&f, f.grad);
    eng_real *p = calloc(f.np, sizeof *p);
    adapt_by_hand(&f, K, p);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(eng_meta_net(f.m), 0, p, f.xq, f.yq, NQ,
                                        eng_meta_get_cfg(f.m)->loss, &l, f.fd),
                     ENG_OK);
    ck_assert_double_le(max_rel_err(f.grad, f.fd, f.np), TOL);
    free(p);
    mfx_free(&f);
}
END_TEST

/* K = 1: MAML − FOMAML = −α H_s(θ_0) ∇L_q(θ_1). */
START_TEST(maml_minus_fomaml_is_hessian_term)
{
    mfx f, g;
    mfx_make(&f, ENG_META_MAML, 1, ENG_FNET_TANH, 1, 800);
    mfx_make(&g, ENG_META_FOMAML, 1, ENG_FNET_TANH, 1, 800);
    grad_of(&f, f.grad);
    grad_of(&g, g.grad);
    eng_fnet *net = eng_meta_net(f.m);
    double l;
    ck_assert_int_eq(eng_fnet_loss_grad(net, 0, f.theta, f.xs, f.ys, NS, ENG_FNET_CE, &l, f.tmp),
                     ENG_OK);
    eng_real *hv = calloc(f.np, sizeof *hv);
    ck_assert_int_eq(eng_fnet_hvp(net, 0, f.theta, g.grad, hv), ENG_OK);
    for (size_t i = 0; i < f.np; i++) {
        f.fd[i] = g.grad[i] - (eng_real)0.3 * hv[i];
    }
    ck_assert_double_le(max_rel_err(f.grad, f.fd, f.np), TOL * 10);
    ck_assert_double_gt(max_rel_err(f.grad, g.grad, f.np), 1e-3);
    free(hv);
    mfx_free(&f);
    mfx_free(&g);
}
END_TEST

START_TEST(maml_k0_is_query_gradient)
{
    mfx f;
    mfx_make(&f, ENG_META_MAML, _i, ENG_FNET_RELU, 0, 900 + (uint64_t)_i);
    double ql = grad_of(&f, f.grad), l;
    ck_assert_int_eq(eng_fnet_loss_grad(eng_meta_net(f.m), 0, f.theta, f.xq, f.yq, NQ,
                                        eng_meta_get_cfg(f.m)->loss, &l, f.fd),
                     ENG_OK);
    ck_assert_double_le(fabs(ql - l), TOL);
    ck_assert_double_le(max_rel_err(f.grad, f.fd, f.np), TOL);
    mfx_free(&f);
}
END_TEST

START_TEST(reptile_eps1_lands_on_adapted)
{
    mfx f;
    mfx_make(&f, ENG_META_REPTILE, _i, ENG_FNET_RELU, 4, 1000 + (uint64_t)_i);
    eng_real *p = calloc(f.np, sizeof *p);
    adapt_by_hand(&f, 4, p);
    eng_adam_cfg opt = eng_adam_defaults();
    opt.lr = 1.0;
    double l;
    ck_assert_int_eq(eng_meta_step(f.m, f.theta, &f.t, 1, &opt, f.grad, f.fd, f.tmp, 1, &l),
                     ENG_OK);
    ck_assert_double_le(max_rel_err(f.theta, p, f.np), TOL);
    free(p);
    mfx_free(&f);
}
END_TEST

/* Adaptation through eng_meta_adapt matches the hand-made loop. */
START_TEST(adapt_matches_hand)
{
    mfx f;
    mfx_make(&f, ENG_META_MAML, 0, ENG_FNET_TANH, 1, 1100);
    eng_real *p = calloc(f.np, sizeof *p);
    adapt_by_hand(&f, 5, p);
    ck_assert_int_eq(eng_meta_adapt(f.m, f.theta, f.xs, f.ys, NS, 5, f.fd), ENG_OK);
    ck_assert_double_le(max_rel_err(f.fd, p, f.np), TOL);
    free(p);
    mfx_free(&f);
}
END_TEST

START_TEST(outer_step_does_not_allocate)
{
    static const eng_meta_alg algs[] = {ENG_META_MAML, ENG_META_FOMAML, ENG_META_REPTILE,
                                        ENG_META_ANIL, ENG_META_METASGD, ENG_META_PROTONET};
    mfx f;
    mfx_make(&f, algs[_i], 1, ENG_FNET_RELU, 3, 1200 + (uint64_t)_i);
    eng_real *am = calloc(f.nmeta, sizeof *am), *av = calloc(f.nmeta, sizeof *av);
    eng_adam_cfg opt = eng_adam_defaults();
    eng_meta_task tasks[3] = {f.t, f.t, f.t};
    double l;
    int K = 2;
    double el;
    int rc = ENG_OK;
    /* no assertion inside the window: Check's own bookkeeping allocates */
    long before = test_alloc_count();
    for (long t = 1; t <= 5 && rc == ENG_OK; t++)
        rc = eng_meta_step(f.m, f.theta, tasks, 3, &opt, f.grad, am, av, t, &l);
    int rc2 = eng_meta_evaluate(f.m, f.theta, &f.t, &K, 1, &el, NULL);
    long after = test_alloc_count();
    ck_assert_int_eq(rc, ENG_OK);
    ck_assert_int_eq(rc2, ENG_OK);
    ck_assert_int_eq(after, before);
    free(am);
    free(av);
    mfx_free(&f);
}
END_TEST

START_TEST(rejects_bad_tasks)
{
    mfx f;
    mfx_make(&f, ENG_META_MAML, 1, ENG_FNET_RELU, 1, 1300);
    double l;
    eng_meta_task t = f.t;
    t.ns = NS + 1;
    ck_assert_int_eq(eng_meta_task_grad(f.m, f.theta, &t, 1, f.grad, &l), ENG_ESHAPE);
    t = f.t;
    f.ys[0] = 3;
    ck_assert_int_eq(eng_meta_task_grad(f.m, f.theta, &t, 1, f.grad, &l), ENG_EINVAL);
    mfx_free(&f);
    mfx_make(&f, ENG_META_PROTONET, 1, ENG_FNET_RELU, 0, 1301);
    for (int i = 0; i < NS; i++)
        f.ys[i] = (eng_real)(i % 2); /* class 2 has no support row */
    ck_assert_int_eq(eng_meta_task_grad(f.m, f.theta, &f.t, 1, f.grad, &l), ENG_EINVAL);
    mfx_free(&f);
}
END_TEST

Suite *meta_suite(void)
{
    Suite *s = suite_create("meta");
    TCase *tc = tcase_create("identities");
    tcase_add_loop_test(tc, fomaml_is_first_order_formula, 0, 3);
    tcase_add_test(tc, maml_minus_fomaml_is_hessian_term);
    tcase_add_loop_test(tc, maml_k0_is_query_gradient, 0, 2);
    tcase_add_loop_test(tc, reptile_eps1_lands_on_adapted, 0, 2);
    tcase_add_test(tc, adapt_matches_hand);
    tcase_add_loop_test(tc, outer_step_does_not_allocate, 0, 6);
    tcase_add_test(tc, rejects_bad_tasks);
    suite_add_tcase(s, tc);
    return s;
}
