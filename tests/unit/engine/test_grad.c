/*
 * tests/unit/engine/test_grad.c — every element of eng_mtl_grads against
 * central finite differences of the total loss sum_t lambda_t L_t, in the
 * double build only (in float, differences of h = 1e-6 are noise).
 *
 * ReLU kinks would make the finite difference meaningless, so each check
 * first asserts, with an independent forward pass, that no ReLU
 * pre-activation lies within KINK_MARGIN of 0: a perturbation of h moves a
 * pre-activation by at most about h times the largest input or activation
 * (times a weight product of order 1), far below the margin.
 *
 * Every activation, layer norm, dropout and every loss (softmax CE with
 * label smoothing and class weights, BCE, MSE, Huber) is checked this way.
 * Dropout is checked with a fixed mask: each evaluation trains from a copy
 * of the same rng state, so the loss is a smooth function of the weights.
 * Dropout tests use smooth activations, since the reference forward (for
 * the kink check) is inference and does not see the training masks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Perturbs every parameter away from its initialised value (biases too). */
void jitter(eng_mtl *m, eng_rng *r)
{
    eng_real *p = eng_mtl_params(m);
    for (size_t i = 0; i < eng_mtl_nparams(m); i++)
        p[i] += 0.1 * eng_rng_normal(r);
}

#ifdef ENG_DOUBLE

#define H 1e-6
#define REL_TOL 1e-5
/* Relative error is taken against max(|g|, |fd|, ABS_FLOOR): the finite
 * difference itself carries about eps * L / h ~ 1e-9 of rounding noise, so
 * gradients below the floor are held to an absolute 1e-8 instead. */
#define ABS_FLOOR 1e-3
#define KINK_MARGIN 1e-3

static double total_loss(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                         const eng_rng *drop)
{
    const eng_mtl_spec *s = eng_mtl_get_spec(m);
    double loss[ENG_MAX_TASKS], sum = 0;
    eng_rng r;
    if (drop)
        r = *drop;
    ck_assert_int_eq(eng_mtl_train_step(m, x, n, tb, drop ? &r : NULL, loss), ENG_OK);
    for (int t = 0; t < s->n_tasks; t++)
        sum += tb[t].lambda * loss[t];
    return sum;
}


void grad_check_drop(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                     const eng_rng *drop)
{
    const eng_mtl_spec *s = eng_mtl_get_spec(m);
    size_t np = eng_mtl_nparams(m);
    eng_real *p = eng_mtl_params(m);

    /* ref_forward knows the trunk model only: mixtures are checked with
     * smooth activations (test_moe.c), where there is no kink to avoid */
    ck_assert_msg(s->moe.experts == 0 || (s->act != ENG_ACT_RELU && s->act != ENG_ACT_LEAKY_RELU),
                  "check mixtures with a smooth activation");
    double *outs[ENG_MAX_TASKS];
    for (int t = 0; t < s->n_tasks; t++)
        outs[t] = malloc(sizeof(double) * n * s->task[t].n_out);
    double min_pre = INFINITY;
    if (s->moe.experts == 0)
        ref_forward(m, p, x, n, outs, &min_pre);
    for (int t = 0; t < s->n_tasks; t++)
        free(outs[t]);
    if (s->act == ENG_ACT_RELU || s->act == ENG_ACT_LEAKY_RELU)
        ck_assert_msg(min_pre > KINK_MARGIN,
                      "a ReLU pre-activation is %g from 0: pick another seed", min_pre);

    total_loss(m, x, n, tb, drop);
    eng_real *g = malloc(np * sizeof *g);
    memcpy(g, eng_mtl_grads(m), np * sizeof *g);

    size_t nonzero = 0;
    for (int ti = 0; ti < eng_mtl_ntensors(m); ti++) {
        eng_tensor_info info;
        ck_assert_int_eq(eng_mtl_tensor(m, ti, &info), ENG_OK);
        for (size_t k = info.offset; k < info.offset + info.count; k++) {
            const eng_real keep = p[k];
            p[k] = keep + H;
            double up = total_loss(m, x, n, tb, drop);
            p[k] = keep - H;
            double down = total_loss(m, x, n, tb, drop);
            p[k] = keep;
            double fd = (up - down) / (2 * H);
            double scale = fmax(fmax(fabs(g[k]), fabs(fd)), ABS_FLOOR);
            double rel = fabs(g[k] - fd) / scale;
            ck_assert_msg(rel < REL_TOL, "%s[%zu]: analytic %.12g, numeric %.12g (rel %.3g)",
                          info.name, k - info.offset, g[k], fd, rel);
            nonzero += fabs(g[k]) > 1e-6;
        }
    }
    /* The check is not vacuous: most gradients are clearly nonzero. */
    ck_assert_msg(nonzero > np / 2, "only %zu of %zu gradients are nonzero", nonzero, np);
    free(g);
}

static void grad_check(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb)
{
    grad_check_drop(m, x, n, tb, NULL);
}

/* The demo model and batch with the given activation / layer norm /
 * dropout, checked against finite differences. */
static void check_variant(eng_act act, int layer_norm, double dropout, uint64_t seed)
{
    eng_mtl_spec s;
    demo_spec(&s);
    s.act = act;
    s.layer_norm = layer_norm;
    s.dropout = dropout;
    s.leaky_slope = act == ENG_ACT_LEAKY_RELU ? 0.1 : 0;
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, DEMO_N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, seed);
    eng_mtl_init(m, &r);
    jitter(m, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    eng_rng drop;
    eng_rng_seed(&drop, seed + 1000);
    grad_check_drop(m, b.x, DEMO_N, b.tb, dropout > 0 ? &drop : NULL);
    eng_mtl_free(m);
}

START_TEST(test_grad_leaky_relu)
{
    check_variant(ENG_ACT_LEAKY_RELU, 0, 0, 17);
}
END_TEST

START_TEST(test_grad_tanh)
{
    check_variant(ENG_ACT_TANH, 0, 0, 18);
}
END_TEST

START_TEST(test_grad_sigmoid)
{
    check_variant(ENG_ACT_SIGMOID, 0, 0, 19);
}
END_TEST

START_TEST(test_grad_gelu)
{
    check_variant(ENG_ACT_GELU, 0, 0, 20);
}
END_TEST

START_TEST(test_grad_layer_norm)
{
    check_variant(ENG_ACT_TANH, 1, 0, 21);
    check_variant(ENG_ACT_GELU, 1, 0, 22);
    check_variant(ENG_ACT_IDENTITY, 1, 0, 23);
}
END_TEST

START_TEST(test_grad_dropout)
{
    check_variant(ENG_ACT_TANH, 0, 0.3, 24);
    check_variant(ENG_ACT_GELU, 1, 0.5, 25); /* all three at once */
    check_variant(ENG_ACT_SIGMOID, 0, 0.2, 26);
}
END_TEST

/* Every loss option on one model: classification with label smoothing and
 * class weights, binary cross-entropy (soft targets; then hard targets with
 * class weights), Huber regression with errors on both sides of delta. */
START_TEST(test_grad_losses)
{
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = 4;
    s.n_trunk = 1;
    s.trunk[0] = 6;
    s.act = ENG_ACT_TANH;
    s.n_tasks = 4;
    s.task[0].kind = ENG_HEAD_CLASSIFICATION;
    s.task[0].n_out = 3;
    s.task[0].label_smoothing = 0.2;
    s.task[1].kind = ENG_HEAD_BINARY;
    s.task[1].n_out = 1;
    s.task[2].kind = ENG_HEAD_REGRESSION;
    s.task[2].n_out = 1;
    s.task[2].loss = ENG_LOSS_HUBER;
    s.task[2].huber_delta = 0.5;
    s.task[3].kind = ENG_HEAD_BINARY;
    s.task[3].n_out = 1;
    enum { N = 8 };
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, 31);
    eng_mtl_init(m, &r);
    jitter(m, &r);
    eng_real x[N * 4], y0[N], y1[N], y2[N], y3[N], cw0[3] = {0.5, 2, 1}, cw3[2] = {0.7, 3};
    eng_real rw1[N] = {1, 1, 0, 2, 1, 1, 0.5, 1};
    for (int i = 0; i < N * 4; i++)
        x[i] = (eng_real)eng_rng_normal(&r);
    for (int i = 0; i < N; i++) {
        y0[i] = (eng_real)(i % 3);
        y1[i] = (eng_real)eng_rng_uniform(&r); /* soft targets */
        y2[i] = (eng_real)(3 * eng_rng_normal(&r)); /* many |e| > delta, some inside */
        y3[i] = (eng_real)(i % 2);
    }
    eng_task_batch tb[4] = {{.y = y0, .class_weight = cw0, .lambda = 1},
                            {.y = y1, .row_weight = rw1, .lambda = 0.8},
                            {.y = y2, .lambda = 1.5},
                            {.y = y3, .class_weight = cw3, .lambda = 0.6}};
    grad_check(m, x, N, tb);
    /* Both Huber regimes were exercised. */
    ck_assert_int_eq(eng_mtl_forward(m, x, N), ENG_OK);
    const eng_real *o = eng_mtl_output(m, 2);
    int inside = 0, outside = 0;
    for (int i = 0; i < N; i++) {
        double e = fabs((double)o[i] - (double)y2[i]);
        inside += e < 0.5 - 1e-3;
        outside += e > 0.5 + 1e-3;
    }
    ck_assert_int_gt(inside, 0);
    ck_assert_int_gt(outside, 0);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_grad_multitask)
{
    /* n_in 5, trunk [7, 6], ReLU; classification/3 with tower [4];
     * regression; classification/2 with class weights and masked rows. */
    eng_mtl_spec s;
    demo_spec(&s);
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, DEMO_N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, 17);
    eng_mtl_init(m, &r);
    jitter(m, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    grad_check(m, b.x, DEMO_N, b.tb);
    /* A batch smaller than max_batch. */
    grad_check(m, b.x, 5, b.tb);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_grad_no_trunk)
{
    /* n_trunk 0: task 0 (classification/3) has a tower [5] on the input,
     * task 1 (regression) a head directly on the input. */
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = 4;
    s.n_trunk = 0;
    s.act = ENG_ACT_RELU;
    s.n_tasks = 2;
    s.task[0].kind = ENG_HEAD_CLASSIFICATION;
    s.task[0].n_out = 3;
    s.task[0].n_tower = 1;
    s.task[0].tower[0] = 5;
    s.task[1].kind = ENG_HEAD_REGRESSION;
    s.task[1].n_out = 1;
    enum { N = 6 };
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, 23);
    eng_mtl_init(m, &r);
    jitter(m, &r);
    eng_real x[N * 4], y0[N], y1[N], rw1[N] = {1, 2, 0, 1, 0.5, 1};
    for (int i = 0; i < N * 4; i++)
        x[i] = eng_rng_normal(&r);
    for (int i = 0; i < N; i++) {
        y0[i] = (eng_real)(i % 3);
        y1[i] = eng_rng_normal(&r);
    }
    eng_task_batch tb[2] = {{.y = y0, .lambda = 0.6}, {.y = y1, .row_weight = rw1, .lambda = 2}};
    grad_check(m, x, N, tb);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_grad_identity_activation)
{
    /* Identity activation, two tower layers on a one-layer trunk. */
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = 3;
    s.n_trunk = 1;
    s.trunk[0] = 4;
    s.act = ENG_ACT_IDENTITY;
    s.n_tasks = 2;
    s.task[0].kind = ENG_HEAD_REGRESSION;
    s.task[0].n_out = 1;
    s.task[0].n_tower = 2;
    s.task[0].tower[0] = 3;
    s.task[0].tower[1] = 2;
    s.task[1].kind = ENG_HEAD_CLASSIFICATION;
    s.task[1].n_out = 4;
    enum { N = 5 };
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, N, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, 29);
    eng_mtl_init(m, &r);
    jitter(m, &r);
    eng_real x[N * 3], y0[N], y1[N], cw1[4] = {1, 0.5, 3, 0};
    for (int i = 0; i < N * 3; i++)
        x[i] = eng_rng_normal(&r);
    for (int i = 0; i < N; i++) {
        y0[i] = eng_rng_normal(&r);
        y1[i] = (eng_real)(i % 4);
    }
    eng_task_batch tb[2] = {{.y = y0, .lambda = 1}, {.y = y1, .class_weight = cw1, .lambda = 1}};
    grad_check(m, x, N, tb);
    eng_mtl_free(m);
}
END_TEST

Suite *grad_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("grad");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_grad_multitask);
    tcase_add_test(tc, test_grad_no_trunk);
    tcase_add_test(tc, test_grad_identity_activation);
    tcase_add_test(tc, test_grad_leaky_relu);
    tcase_add_test(tc, test_grad_tanh);
    tcase_add_test(tc, test_grad_sigmoid);
    tcase_add_test(tc, test_grad_gelu);
    tcase_add_test(tc, test_grad_layer_norm);
    tcase_add_test(tc, test_grad_dropout);
    tcase_add_test(tc, test_grad_losses);
    suite_add_tcase(s, tc);
    return s;
}

#else

Suite *grad_suite(void)
{
    return NULL;
}

#endif
