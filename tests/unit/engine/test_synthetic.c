/*
 * tests/unit/engine/test_synthetic.c — the synthetic benchmark of the MMoE
 * paper (Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018, §3.2), from its
 * description:
 *   1. u1, u2: orthogonal unit vectors in R^d (Gram–Schmidt on Gaussians);
 *   2. w1 = c·u1,  w2 = c·(p·u1 + sqrt(1 − p²)·u2)  — p is the cosine
 *      between the tasks' directions, the "correlation" the paper varies;
 *   3. x ~ N(0, I_d);
 *   4. y_t = w_tᵀx + Σ_{i=1..m} sin(α_i·w_tᵀx + β_i) + ε_t,  ε_t ~ N(0, 0.01).
 * Here d = 16, c = 1, m = 10, α_i and β_i ~ N(0, 1) (drawn once per seed
 * and shared by both tasks, as in the paper), 2000 training and 1000 test
 * rows.
 *
 * The two models give each task's tower (32 ReLU units, then the head) a
 * representation of the same width, 2: the shared-bottom model a trunk
 * [2]; MMoE two experts of [2] and a softmax gate per task. Two ReLU units
 * hold one direction (relu(a) − relu(−a) = a) but not two, so the shared
 * bottom must compromise when the directions differ and need not when they
 * coincide, while MMoE's gates let each task draw on the expert that suits
 * it. Both train with Adam (lr 0.005, batches of 64, 60 epochs) on the sum
 * of the two MSEs; the figure is the sum of the two test MSEs, averaged
 * over eight seeds (data, functions and initialisation): one seed's run is
 * too noisy a measure for models this small.
 *
 * What must hold (the paper's Figure 3 in small): at correlation 0 and 0.5
 * MMoE's loss is clearly below the shared bottom's, at correlation 1 the two
 * are close, and the shared bottom itself is clearly worse at 0.5 than at 1
 * (the mixture is not merely a bigger model). And the gates show why: at
 * correlation 0 the two tasks weight the experts very differently, at 1
 * alike. The figures go to stderr.
 * The float build only: it is a quality test, not a gradient check.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mtl.h"
#include "engine/optim.h"
#include "helpers.h"

#ifndef ENG_DOUBLE

enum { D = 16, M = 10, N_TRAIN = 2000, N_TEST = 1000, BATCH = 64, EPOCHS = 60, SEEDS = 8 };

typedef struct {
    float x[N_TRAIN * D], y[2][N_TRAIN];
    float xt[N_TEST * D], yt[2][N_TEST];
} synth_data;

static void unit(double *v)
{
    double s = 0;
    for (int i = 0; i < D; i++)
        s += v[i] * v[i];
    for (int i = 0; i < D; i++)
        v[i] /= sqrt(s);
}

static void draw_rows(eng_rng *r, const double *w1, const double *w2, const double *alpha,
                      const double *beta, int n, float *x, float *y1, float *y2)
{
    for (int k = 0; k < n; k++) {
        double a1 = 0, a2 = 0;
        for (int i = 0; i < D; i++) {
            const double v = eng_rng_normal(r);
            x[(size_t)k * D + i] = (float)v;
            a1 += w1[i] * v;
            a2 += w2[i] * v;
        }
        double s1 = a1, s2 = a2;
        for (int i = 0; i < M; i++) {
            s1 += sin(alpha[i] * a1 + beta[i]);
            s2 += sin(alpha[i] * a2 + beta[i]);
        }
        y1[k] = (float)(s1 + 0.1 * eng_rng_normal(r)); /* variance 0.01 */
        y2[k] = (float)(s2 + 0.1 * eng_rng_normal(r));
    }
}

static void synth_generate(synth_data *sd, double p, uint64_t seed)
{
    eng_rng r;
    eng_rng_seed(&r, seed);
    double u1[D], u2[D], w1[D], w2[D], alpha[M], beta[M], dot = 0;
    for (int i = 0; i < D; i++) {
        u1[i] = eng_rng_normal(&r);
        u2[i] = eng_rng_normal(&r);
    }
    unit(u1);
    for (int i = 0; i < D; i++)
        dot += u1[i] * u2[i];
    for (int i = 0; i < D; i++)
        u2[i] -= dot * u1[i];
    unit(u2);
    for (int i = 0; i < D; i++) {
        w1[i] = u1[i];
        w2[i] = p * u1[i] + sqrt(1 - p * p) * u2[i];
    }
    for (int i = 0; i < M; i++) {
        alpha[i] = eng_rng_normal(&r);
        beta[i] = eng_rng_normal(&r);
    }
    draw_rows(&r, w1, w2, alpha, beta, N_TRAIN, sd->x, sd->y[0], sd->y[1]);
    draw_rows(&r, w1, w2, alpha, beta, N_TEST, sd->xt, sd->yt[0], sd->yt[1]);
}

/* Trains one model on sd and returns the sum of the two test MSEs; gate
 * (MMoE only) receives each task's mean gate weight on expert 0. */
static double synth_train(const synth_data *sd, int mmoe, uint64_t seed, double gate[2])
{
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = D;
    s.act = ENG_ACT_RELU;
    s.n_tasks = 2;
    for (int t = 0; t < 2; t++) {
        s.task[t].kind = ENG_HEAD_REGRESSION;
        s.task[t].n_out = 1;
        s.task[t].n_tower = 1;
        s.task[t].tower[0] = 32;
    }
    if (mmoe) {
        s.moe.experts = 2;
        s.moe.n_units = 1;
        s.moe.units[0] = 2;
    } else {
        s.n_trunk = 1;
        s.trunk[0] = 2;
    }
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, N_TEST, &m), ENG_OK);
    eng_rng r;
    eng_rng_seed(&r, seed * 7919 + 1);
    eng_mtl_init(m, &r);
    const size_t np = eng_mtl_nparams(m);
    float *mom = calloc(np, sizeof *mom), *vel = calloc(np, sizeof *vel);
    float *xb = malloc(sizeof(float) * BATCH * D), *yb[2] = {malloc(4 * BATCH), malloc(4 * BATCH)};
    uint32_t *perm = malloc(sizeof *perm * N_TRAIN);
    ck_assert(mom && vel && xb && yb[0] && yb[1] && perm);
    for (uint32_t i = 0; i < N_TRAIN; i++)
        perm[i] = i;
    eng_adam_cfg c = eng_adam_defaults();
    c.lr = 0.005;
    long step = 0;
    for (int e = 0; e < EPOCHS; e++) {
        eng_rng_shuffle(&r, perm, N_TRAIN);
        for (int b0 = 0; b0 < N_TRAIN; b0 += BATCH) {
            const int nb = N_TRAIN - b0 < BATCH ? N_TRAIN - b0 : BATCH;
            for (int i = 0; i < nb; i++) {
                memcpy(xb + (size_t)i * D, sd->x + (size_t)perm[b0 + i] * D, sizeof(float) * D);
                yb[0][i] = sd->y[0][perm[b0 + i]];
                yb[1][i] = sd->y[1][perm[b0 + i]];
            }
            eng_task_batch tb[2] = {{.y = yb[0], .lambda = 1}, {.y = yb[1], .lambda = 1}};
            ck_assert_int_eq(eng_mtl_train_batch(m, xb, nb, tb, NULL), ENG_OK);
            eng_adam_step(&c, eng_mtl_params(m), eng_mtl_grads(m), mom, vel, np, ++step);
        }
    }
    ck_assert_int_eq(eng_mtl_forward(m, sd->xt, N_TEST), ENG_OK);
    double loss = 0;
    for (int t = 0; t < 2; t++) {
        const float *o = eng_mtl_output(m, t);
        for (int i = 0; i < N_TEST; i++)
            loss += ((double)o[i] - sd->yt[t][i]) * ((double)o[i] - sd->yt[t][i]) / N_TEST;
        if (mmoe) {
            double sum[2] = {0, 0};
            ck_assert_int_eq(eng_mtl_gate_sums(m, 0, t, sum), ENG_OK);
            gate[t] = sum[0] / N_TEST;
        }
    }
    free(mom);
    free(vel);
    free(xb);
    free(yb[0]);
    free(yb[1]);
    free(perm);
    eng_mtl_free(m);
    return loss;
}

/* Mean over the seeds of both models' summed test MSE at correlation p. */
static void synth_compare(double p, double *trunk, double *mmoe, double *gap)
{
    synth_data *sd = malloc(sizeof *sd);
    ck_assert_ptr_nonnull(sd);
    *trunk = *mmoe = 0;
    double gate_gap = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        double gate[2];
        synth_generate(sd, p, seed);
        *trunk += synth_train(sd, 0, seed, NULL) / SEEDS;
        *mmoe += synth_train(sd, 1, seed, gate) / SEEDS;
        gate_gap += fabs(gate[0] - gate[1]) / SEEDS;
    }
    fprintf(stderr,
            "mmoe synthetic: correlation %.1f: test MSE sum shared-bottom %.4f, MMoE %.4f "
            "(ratio %.3f); mean |gate_0 - gate_1| on expert 0: %.3f\n",
            p, *trunk, *mmoe, *mmoe / *trunk, gate_gap);
    free(sd);
    *gap = gate_gap;
}

START_TEST(test_mmoe_synthetic_benchmark)
{
    double trunk0, mmoe0, trunk5, mmoe5, trunk1, mmoe1, gap0, gap5, gap1;
    synth_compare(0.0, &trunk0, &mmoe0, &gap0);
    synth_compare(0.5, &trunk5, &mmoe5, &gap5);
    synth_compare(1.0, &trunk1, &mmoe1, &gap1);
    /* low correlation: MMoE clearly better */
    ck_assert_msg(mmoe0 < 0.6 * trunk0, "p = 0: MMoE %g vs shared bottom %g", mmoe0, trunk0);
    ck_assert_msg(mmoe5 < 0.7 * trunk5, "p = 0.5: MMoE %g vs shared bottom %g", mmoe5, trunk5);
    /* identical directions: close */
    ck_assert_msg(fabs(mmoe1 / trunk1 - 1) < 0.2, "p = 1: MMoE %g vs shared bottom %g", mmoe1,
                  trunk1);
    /* the tasks' gates part ways exactly when the tasks do */
    ck_assert_msg(gap0 > 0.2 && gap1 < 0.1, "gate gaps %g (p = 0), %g (p = 1)", gap0, gap1);
    (void)gap5;
    /* the shared bottom is what suffers from the lower correlation */
    ck_assert_msg(trunk5 > 1.5 * trunk1, "shared bottom: %g at p = 0.5, %g at p = 1", trunk5,
                  trunk1);
}
END_TEST

Suite *synthetic_suite(void)
{
    Suite *s = suite_create("synthetic");
    TCase *tc = tcase_create("mmoe");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mmoe_synthetic_benchmark);
    suite_add_tcase(s, tc);
    return s;
}

#else

Suite *synthetic_suite(void)
{
    return NULL;
}

#endif
