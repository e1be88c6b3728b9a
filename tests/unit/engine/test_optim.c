/*
 * tests/unit/engine/test_optim.c — Adam, AdamW, SGD, momentum and Nesterov
 * against values worked out by hand (the arithmetic is in the comments; the
 * last digits were checked with a few lines of Python in double), gradient
 * clipping, the learning-rate schedules, and the non-finite check.
 */
#include <math.h>
#include <string.h>

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

/* The same problem through eng_opt_step, for any kind. */
static void run_opt(const eng_opt_cfg *c, double lr, int steps, double (*expect)[2])
{
    eng_real p[2] = {1, -1}, g[2], s1[2] = {0, 0}, s2[2] = {0, 0};
    for (int t = 1; t <= steps; t++) {
        grad_of(p, g);
        ck_assert_int_eq(eng_opt_step(c, lr, p, g, s1, s2, 2, t), ENG_OK);
        ck_assert_double_eq_tol(p[0], expect[t - 1][0], REAL_TOL);
        ck_assert_double_eq_tol(p[1], expect[t - 1][1], REAL_TOL);
    }
}

START_TEST(test_momentum_three_steps)
{
    /* lr 0.1, mu 0.9: b = mu b + g; p -= lr b.
     * t=1: g = (2, -4);     b = (2, -4);                 p = (0.8, -0.6)
     * t=2: g = (1.6, -2.4); b = (1.8+1.6, -3.6-2.4) = (3.4, -6);  p = (0.46, 0)
     * t=3: g = (0.92, 0);   b = (3.06+0.92, -5.4) = (3.98, -5.4); p = (0.062, 0.54) */
    double expect[3][2] = {{0.8, -0.6}, {0.46, 0}, {0.062, 0.54}};
    eng_opt_cfg c = eng_opt_defaults(ENG_OPT_MOMENTUM);
    ck_assert_double_eq(c.momentum, 0.9);
    run_opt(&c, 0.1, 3, expect);
}
END_TEST

START_TEST(test_nesterov_three_steps)
{
    /* lr 0.1, mu 0.9: b = mu b + g; p -= lr (g + mu b).
     * t=1: g = (2, -4); b = (2, -4); g + mu b = (3.8, -7.6); p = (0.62, -0.24)
     * t=2: g = (1.24, -0.96); b = (1.8+1.24, -3.6-0.96) = (3.04, -4.56)
     *      g + mu b = (1.24+2.736, -0.96-4.104) = (3.976, -5.064); p = (0.2224, 0.2664)
     * t=3: g = (0.4448, 1.0656); b = (2.736+0.4448, -4.104+1.0656) = (3.1808, -3.0384)
     *      g + mu b = (0.4448+2.86272, 1.0656-2.73456) = (3.30752, -1.66896)
     *      p = (0.2224-0.330752, 0.2664+0.166896) = (-0.108352, 0.433296) */
    double expect[3][2] = {{0.62, -0.24}, {0.2224, 0.2664}, {-0.108352, 0.433296}};
    eng_opt_cfg c = eng_opt_defaults(ENG_OPT_NESTEROV);
    run_opt(&c, 0.1, 3, expect);
}
END_TEST

START_TEST(test_opt_adam_adamw_three_steps)
{
    /* Adam through eng_opt_step: the three steps of test_adam_three_steps. */
    double adam_expect[3][2] = {{0.9000000005, -0.90000000025},
                                {0.8004122286917928, -0.8004122281815201},
                                {0.7015862729460303, -0.7015862721668379}};
    eng_opt_cfg c = eng_opt_defaults(ENG_OPT_ADAM);
    run_opt(&c, 0.1, 3, adam_expect);
    /* AdamW, wd 0.1: the two steps of test_adamw_decoupled_decay, then
     * t=3: g = (1.563143712, -3.126287421) from p = (0.7815718559, -0.7815718554)
     *      m = 0.9 (0.3580000001, -0.7160000001) + 0.1 g = (0.4785143713, -0.9570287422)
     *      v = 0.999 (0.007164400004, 0.02865760001) + 0.001 g^2
     *        = (0.009600654, 0.03840261615)
     *      mhat = m / 0.271 = (1.765735687, -3.531471374)
     *      sqrt(vhat) = sqrt(v / 0.002997001) = (1.789806207, 3.579612414)
     *      step = 0.1 mhat / (sqrt(vhat) + 1e-8) = (0.09865513, -0.09865513)
     *      p = 0.99 p - step = (0.6751012216, -0.6751012209) */
    double adamw_expect[3][2] = {{0.8900000005, -0.89000000025},
                                 {0.7815718559365048, -0.7815718554276766},
                                 {0.6751012216400696, -0.6751012208655041}};
    c = eng_opt_defaults(ENG_OPT_ADAMW);
    c.weight_decay = 0.1;
    run_opt(&c, 0.1, 3, adamw_expect);
}
END_TEST

START_TEST(test_sgd_weight_decay)
{
    /* SGD with wd 0.5, lr 0.1: g' = g + 0.5 p. t=1: g' = (2.5, -4.5), p = (0.75, -0.55). */
    double expect[1][2] = {{0.75, -0.55}};
    eng_opt_cfg c = eng_opt_defaults(ENG_OPT_SGD);
    c.weight_decay = 0.5;
    run_opt(&c, 0.1, 1, expect);
}
END_TEST

START_TEST(test_clip_grad_norm)
{
    eng_real g[10] = {3, 4, 0, 0, 0, 0, 0, 0, 0, 12}; /* norm 13 */
    ck_assert_double_eq_tol(eng_clip_grad_norm(g, 10, 0), 13, 1e-12); /* 0: just the norm */
    ck_assert(g[0] == 3);
    ck_assert_double_eq_tol(eng_clip_grad_norm(g, 10, 100), 13, 1e-12); /* below: untouched */
    ck_assert(g[9] == 12);
    ck_assert_double_eq_tol(eng_clip_grad_norm(g, 10, 6.5), 13, 1e-12);
    ck_assert_double_eq_tol(g[0], 1.5, REAL_TOL);
    ck_assert_double_eq_tol(g[1], 2, REAL_TOL);
    ck_assert_double_eq_tol(g[9], 6, REAL_TOL);
    ck_assert_double_eq_tol(eng_clip_grad_norm(g, 10, 0), 6.5, 1e-6);

    /* Clipping inside a step: SGD lr 1, clip 1 moves p by exactly a unit vector. */
    eng_opt_cfg c = eng_opt_defaults(ENG_OPT_SGD);
    c.clip_norm = 1;
    eng_real p[2] = {0, 0}, gg[2] = {30, -40};
    ck_assert_int_eq(eng_opt_step(&c, 1.0, p, gg, NULL, NULL, 2, 1), ENG_OK);
    ck_assert_double_eq_tol(p[0], -0.6, REAL_TOL);
    ck_assert_double_eq_tol(p[1], 0.8, REAL_TOL);
}
END_TEST

START_TEST(test_nonfinite_gradient)
{
    for (int kind = ENG_OPT_SGD; kind <= ENG_OPT_ADAMW; kind++) {
        eng_opt_cfg c = eng_opt_defaults((eng_opt_kind)kind);
        eng_real p[9] = {0}, g[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, s1[9] = {0}, s2[9] = {0};
        ck_assert_int_eq(eng_opt_step(&c, 0.1, p, g, s1, s2, 9, 1), ENG_OK);
        g[7] = (eng_real)NAN;
        ck_assert_int_eq(eng_opt_step(&c, 0.1, p, g, s1, s2, 9, 2), ENG_ENONFINITE);
        g[7] = (eng_real)INFINITY;
        ck_assert_int_eq(eng_opt_step(&c, 0.1, p, g, s1, s2, 9, 3), ENG_ENONFINITE);
        /* With clipping the bad gradient is found before anything moves. */
        c.clip_norm = 1;
        eng_real keep[9];
        memcpy(keep, p, sizeof keep);
        g[7] = (eng_real)-INFINITY;
        ck_assert_int_eq(eng_opt_step(&c, 0.1, p, g, s1, s2, 9, 4), ENG_ENONFINITE);
        ck_assert_mem_eq(keep, p, sizeof keep);
        ck_assert_int_eq(eng_opt_step(&c, 0.1, p, g, s1, s2, 9, 0), ENG_EINVAL);
    }
    ck_assert_int_eq(eng_opt_nstate(ENG_OPT_SGD), 0);
    ck_assert_int_eq(eng_opt_nstate(ENG_OPT_NESTEROV), 1);
    ck_assert_int_eq(eng_opt_nstate(ENG_OPT_ADAMW), 2);
}
END_TEST

START_TEST(test_schedules)
{
    eng_schedule s = {.kind = ENG_SCHED_CONSTANT};
    ck_assert_double_eq(eng_schedule_lr(&s, 0.1, 1, 10), 0.1);
    ck_assert_double_eq(eng_schedule_lr(&s, 0.1, 10, 10), 0.1);

    s = (eng_schedule){.kind = ENG_SCHED_STEP, .step_size = 3, .gamma = 0.5};
    /* steps 1-3: 0.1, 4-6: 0.05, 7-9: 0.025, 10: 0.0125 */
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 3, 10), 0.1, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 4, 10), 0.05, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 9, 10), 0.025, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 10, 10), 0.0125, 1e-15);

    s = (eng_schedule){.kind = ENG_SCHED_COSINE, .min_lr = 0.01};
    /* T = 4: s = 0..3, lr = 0.01 + 0.09 (1 + cos(pi s/4)) / 2 */
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 1, 4), 0.1, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 2, 4), 0.01 + 0.045 * (1 + sqrt(0.5)), 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 3, 4), 0.055, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 4, 4), 0.01 + 0.045 * (1 - sqrt(0.5)), 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 99, 4), 0.01 + 0.045 * (1 - sqrt(0.5)), 1e-15);

    s = (eng_schedule){.kind = ENG_SCHED_WARMUP, .warmup = 4};
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.2, 1, 10), 0.05, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.2, 3, 10), 0.15, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.2, 4, 10), 0.2, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.2, 9, 10), 0.2, 1e-15);

    s = (eng_schedule){.kind = ENG_SCHED_WARMUP_COSINE, .warmup = 2, .min_lr = 0};
    /* T = 6: warm-up 0.05, 0.1; then cosine over 4 steps from 0.1 */
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 1, 6), 0.05, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 2, 6), 0.1, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 3, 6), 0.1, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 5, 6), 0.05, 1e-15);
    ck_assert_double_eq_tol(eng_schedule_lr(&s, 0.1, 6, 6), 0.05 * (1 - sqrt(0.5)), 1e-15);
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
    tcase_add_test(tc, test_momentum_three_steps);
    tcase_add_test(tc, test_nesterov_three_steps);
    tcase_add_test(tc, test_opt_adam_adamw_three_steps);
    tcase_add_test(tc, test_sgd_weight_decay);
    tcase_add_test(tc, test_clip_grad_norm);
    tcase_add_test(tc, test_nonfinite_gradient);
    tcase_add_test(tc, test_schedules);
    suite_add_tcase(s, tc);
    return s;
}
