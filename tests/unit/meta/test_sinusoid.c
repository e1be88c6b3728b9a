/*
 * tests/unit/meta/test_sinusoid.c — a short reproduction of the MAML
 * paper's sinusoid regression (Finn et al. 2017, §5.1) in the float engine
 * the daemon uses: net 1→40→40→1 ReLU, K = 10, one inner step at α = 0.01,
 * meta-batch 25, Adam 0.001, fixed seed. After 2,000 meta-iterations, one
 * adaptation step on 10 points must at least halve the meta-test MSE of the
 * unadapted initialisation (the paper's point: the initialisation learns to
 * be adapted, not to predict). The full 70k-iteration run is in bench/.
 */
#include <math.h>
#include <stdlib.h>

#include "engine/episodes.h"
#include "helpers.h"

#ifndef ENG_DOUBLE
#define MB 25
#define KS 10
#define NQE 100

START_TEST(one_step_halves_mse)
{
    eng_meta_cfg c = {0};
    c.alg = ENG_META_MAML;
    c.net = (eng_fnet_spec){3, {1, 40, 40, 1}, ENG_FNET_RELU};
    c.loss = ENG_FNET_MSE;
    c.inner_steps = 1;
    c.inner_lr = 0.01;
    c.max_support = KS;
    c.max_query = NQE;
    eng_meta *m;
    ck_assert_int_eq(eng_meta_new(&c, &m), ENG_OK);
    size_t np = eng_meta_nparams(m);
    eng_real *th = calloc(np, sizeof *th), *g = calloc(np, sizeof *g);
    eng_real *am = calloc(np, sizeof *am), *av = calloc(np, sizeof *av);
    static eng_real xs[MB][KS], ys[MB][KS], xq[MB][NQE], yq[MB][NQE];
    eng_meta_task tasks[MB];
    eng_rng r;
    eng_rng_seed(&r, 2017);
    eng_meta_init(m, th, &r);
    eng_adam_cfg opt = eng_adam_defaults();
    opt.lr = 0.001;
    for (long it = 1; it <= 2000; it++) {
        for (int t = 0; t < MB; t++) {
            double A, ph;
            eng_sinusoid_task(&r, &A, &ph);
            eng_sinusoid_points(&r, A, ph, KS, xs[t], ys[t]);
            eng_sinusoid_points(&r, A, ph, KS, xq[t], yq[t]);
            tasks[t] = (eng_meta_task){xs[t], ys[t], KS, xq[t], yq[t], KS, 0};
        }
        double l;
        ck_assert_int_eq(eng_meta_step(m, th, tasks, MB, &opt, g, am, av, it, &l), ENG_OK);
    }
    eng_rng ev;
    eng_rng_seed(&ev, 1);
    double s0 = 0, s1 = 0;
    const int n_eval = 200, steps[2] = {0, 1};
    for (int e = 0; e < n_eval; e++) {
        double A, ph, loss[2];
        eng_sinusoid_task(&ev, &A, &ph);
        eng_sinusoid_points(&ev, A, ph, KS, xs[0], ys[0]);
        eng_sinusoid_points(&ev, A, ph, NQE, xq[0], yq[0]);
        eng_meta_task t = {xs[0], ys[0], KS, xq[0], yq[0], NQE, 0};
        ck_assert_int_eq(eng_meta_evaluate(m, th, &t, steps, 2, loss, NULL), ENG_OK);
        s0 += loss[0];
        s1 += loss[1];
    }
    s0 /= n_eval;
    s1 /= n_eval;
    ck_assert_msg(s1 <= 0.5 * s0, "mse after 1 step %g, after 0 steps %g", s1, s0);
    free(th);
    free(g);
    free(am);
    free(av);
    eng_meta_free(m);
}
END_TEST
#endif

Suite *sinusoid_suite(void)
{
#ifdef ENG_DOUBLE
    return NULL;
#else
    Suite *s = suite_create("sinusoid");
    TCase *tc = tcase_create("maml");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, one_step_halves_mse);
    suite_add_tcase(s, tc);
    return s;
#endif
}
