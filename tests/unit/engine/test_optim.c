/*
 * tests/unit/engine/test_optim.c — Adam, AdamW and SGD against values worked
 * out by hand (the arithmetic is in the comments; the last digits were
 * checked with a few lines of Python in double).
 */
#include <math.h>

#include "engine/optim.h"
#include "helpers.h"

/* The two-parameter problem: f(p) = p0^2 + 2 p1^2, g = (2 p0, 4 p1), p = (1, -1). */
static void grad_of(const eng_real *p, eng_real *g)
{
    g[0] = 2 * p[0];
    g[1] = 4 * p[1];
}

static void run_adam(const eng_adam_cfg *c, eng_real *p, int steps, double (*expect)[2])
{
    eng_real g[2], m[2] = {0, 0}, v[2] = {0, 0};
    for (int t = 1; t <= steps; t++) {
        grad_of(p, g);
        eng_adam_step(c, p, g, m, v, 2, t);
        ck_assert_double_eq_tol(p[0], expect[t - 1][0], REAL_TOL);
        ck_assert_double_eq_tol(p[1], expect[t - 1][1], REAL_TOL);
    }
}

START_TEST(test_adam_three_steps)
{
    /* lr 0.1, b1 0.9, b2 0.999, eps 1e-8.
     * t=1: g = (2, -4); m = 0.1 g = (0.2, -0.4); v = 0.001 g^2 = (0.004, 0.016)
     *      bc1 = 0.1, bc2 = 0.001: mhat = (2, -4), sqrt(vhat) = (2, 4)
     *      step = 0.1 * mhat / (sqrt(vhat) + 1e-8) = (0.0999999995, -0.09999999975)
     *      p = (0.9000000005, -0.90000000025)
     * t=2: g = (1.800000001, -3.600000001)
     *      m = 0.9 m + 0.1 g = (0.3600000001, -0.7200000001)
     *      v = 0.999 v + 0.001 g^2 = (0.003996 + 0.003240000004, 0.015984 + 0.01296000001)
     *        = (0.007236000004, 0.02894400001)
     *      bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.998001 = 0.001999
     *      mhat = (1.894736843, -3.789473685), sqrt(vhat) = (1.902579803, 3.805159606)
     *      step = (0.09958777181, -0.09958777207); p = (0.8004122287, -0.8004122282)
     * t=3: g = (1.600824457, -3.201648913)
     *      m = (0.4840824458, -0.9681648914), v = (0.009791402947, 0.03916561177)
     *      bc1 = 1 - 0.729 = 0.271, bc2 = 1 - 0.997002999 = 0.002997001
     *      mhat = (1.786282088, -3.572564175), sqrt(vhat) = (1.807502963, 3.615005925)
     *      step = (0.09882595575, -0.09882595601); p = (0.7015862729, -0.7015862722) */
    double expect[3][2] = {{0.9000000005, -0.90000000025},
                           {0.8004122286917928, -0.8004122281815201},
                           {0.7015862729460303, -0.7015862721668379}};
    eng_adam_cfg c = eng_adam_defaults();
    ck_assert_double_eq(c.lr, 1e-3);
    ck_assert_double_eq(c.beta1, 0.9);
    ck_assert_double_eq(c.beta2, 0.999);
    ck_assert_double_eq(c.eps, 1e-8);
    ck_assert_double_eq(c.weight_decay, 0);
    c.lr = 0.1;
    eng_real p[2] = {1, -1};
    run_adam(&c, p, 3, expect);
}
END_TEST

START_TEST(test_adamw_decoupled_decay)
{
    /* AdamW, lr 0.1, wd 0.1: p -= lr*wd*p first (factor 0.99), then the Adam
     * step from the gradient taken before the decay (the moments never see wd).
     * t=1: p = (0.99, -0.99) - (0.0999999995, -0.09999999975) = (0.8900000005, -0.89000000025)
     * t=2: g = (1.780000001, -3.560000001); m = (0.3580000001, -0.7160000001)
     *      v = (0.003996 + 0.003168400004, 0.015984 + 0.01267360001) = (0.007164400004, 0.02865760001)
     *      mhat = (1.884210527, -3.768421053), sqrt(vhat) = (1.893143417, 3.786286834)
     *      step = (0.09952814456, -0.09952814482)
     *      p = 0.99 * (0.8900000005, -0.89000000025) - step = (0.7815718559, -0.7815718554) */
    double expect[2][2] = {{0.8900000005, -0.89000000025},
                           {0.7815718559365048, -0.7815718554276766}};
    eng_adam_cfg c = eng_adam_defaults();
    c.lr = 0.1;
    c.weight_decay = 0.1;
    c.decoupled = 1;
    eng_real p[2] = {1, -1};
    run_adam(&c, p, 2, expect);
}
END_TEST

START_TEST(test_adam_l2_coupled_decay)
{
    /* Plain Adam with L2: g += wd p before the moments.
     * t=1: g = (2.1, -4.1); the first Adam step is lr * g/(|g| + eps):
     *      p = (1 - 0.1*2.1/2.10000001, -1 + 0.1*4.1/4.10000001)
     *        = (0.9000000004761904, -0.9000000002439025)
     * t=2: g = (1.890000001, -3.690000001) (1.800000001 + 0.09, ...)
     *      m = (0.3780000001, -0.7380000001), v = (0.007977690004, 0.03040929001)
     *      p = (0.8004122286, -0.8004122282)
     * Same first step as without decay, unlike AdamW: the decay went through
     * Adam's normalisation. */
    double expect[2][2] = {{0.9000000004761904, -0.9000000002439025},
                           {0.8004122286431954, -0.8004122281690746}};
    eng_adam_cfg c = eng_adam_defaults();
    c.lr = 0.1;
    c.weight_decay = 0.1;
    c.decoupled = 0;
    eng_real p[2] = {1, -1};
    run_adam(&c, p, 2, expect);
}
END_TEST

START_TEST(test_sgd_step)
{
    eng_real p[3] = {1, -2, 0.5}, g[3] = {0.5, -1, 0};
    eng_sgd_step(0.1, p, g, 3);
    ck_assert_double_eq_tol(p[0], 0.95, REAL_TOL);
    ck_assert_double_eq_tol(p[1], -1.9, REAL_TOL);
    ck_assert_double_eq_tol(p[2], 0.5, REAL_TOL);
}
END_TEST

Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_adam_three_steps);
    tcase_add_test(tc, test_adamw_decoupled_decay);
    tcase_add_test(tc, test_adam_l2_coupled_decay);
    tcase_add_test(tc, test_sgd_step);
    suite_add_tcase(s, tc);
    return s;
}
