/*
 * tests/unit/engine/test_loss.c — the losses of mtl.h through the public
 * API: a model with no trunk and an identity head (weights = I, bias = 0)
 * makes the logits equal to the input, so the loss and its gradient can be
 * written down by hand.
 */
#include <math.h>
#include <string.h>

#include "engine/mtl.h"
#include "helpers.h"

/* A model whose task-0 output equals its input x [n][k], with the task's
 * loss options from opt (NULL: defaults). */
static eng_mtl *identity_model_opt(eng_head_kind kind, int k, const eng_task_spec *opt)
{
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = k;
    s.n_trunk = 0;
    s.act = ENG_ACT_RELU;
    s.n_tasks = 1;
    if (opt)
        s.task[0] = *opt;
    s.task[0].kind = kind;
    s.task[0].n_out = k;
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_OK);
    eng_real *p = eng_mtl_params(m);
    for (int i = 0; i < k; i++)
        p[i * k + i] = 1;
    return m;
}

static eng_mtl *identity_model(eng_head_kind kind, int k)
{
    return identity_model_opt(kind, k, NULL);
}

static int all_finite(const eng_real *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

START_TEST(test_ce_extreme_logits)
{
    /* Row 0: z = (1000, -1000, 0), y = 0: l = log(1 + e^-2000 + e^-1000) = 0.
     * Row 1: same z, y = 1: l = 1000 - (-1000) + 0 = 2000. Mean 1000.
     * p = (1, 0, 0) in both rows, so dL/dz = (p - onehot)/2:
     * row 0 (0, 0, 0), row 1 (0.5, -0.5, 0).
     * dW = dzᵀ x: row 0 of W gets 0.5 * (1000, -1000, 0) = (500, -500, 0),
     * row 1 gets (-500, 500, 0), row 2 zero; db = (0.5, -0.5, 0). */
    eng_mtl *m = identity_model(ENG_HEAD_CLASSIFICATION, 3);
    eng_real x[6] = {1000, -1000, 0, 1000, -1000, 0};
    eng_real y[2] = {0, 1};
    eng_task_batch tb = {.y = y, .lambda = 1.0};
    double loss = -1;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert(isfinite(loss));
    ck_assert_double_eq_tol(loss, 1000, 1e-9);
    const eng_real *g = eng_mtl_grads(m);
    ck_assert(all_finite(g, eng_mtl_nparams(m)));
    const double want_w[9] = {500, -500, 0, -500, 500, 0, 0, 0, 0};
    const double want_b[3] = {0.5, -0.5, 0};
    for (int i = 0; i < 9; i++)
        ck_assert_double_eq_tol(g[i], want_w[i], 1e-9);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(g[9 + i], want_b[i], 1e-9);

    /* Both extremes at once, label on the very negative logit. */
    eng_real x2[3] = {-1000, 1000, -1000};
    eng_real y2[1] = {0};
    tb.y = y2;
    ck_assert_int_eq(eng_mtl_train_batch(m, x2, 1, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 2000, 1e-9);
    ck_assert(all_finite(eng_mtl_grads(m), eng_mtl_nparams(m)));
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_softmax_rows_extreme)
{
    eng_real z[6] = {1000, -1000, 0, -1000, -1000, -1000}, p[6];
    eng_softmax_rows(z, 2, 3, p);
    ck_assert_double_eq_tol(p[0], 1, 1e-12);
    ck_assert_double_eq_tol(p[1], 0, 1e-12);
    ck_assert_double_eq_tol(p[2], 0, 1e-12);
    for (int j = 3; j < 6; j++)
        ck_assert_double_eq_tol(p[j], 1.0 / 3, REAL_TOL);
    /* In place. */
    eng_real q[2] = {0, (eng_real)log(3.0)};
    eng_softmax_rows(q, 1, 2, q);
    ck_assert_double_eq_tol(q[0], 0.25, REAL_TOL);
    ck_assert_double_eq_tol(q[1], 0.75, REAL_TOL);
}
END_TEST

START_TEST(test_weighted_losses_hand_computed)
{
    /* CE, class weights (1, 2): row 0 z = (0, 0), y 0: l = ln 2 (weight 1);
     * row 1 z = (ln 3, 0), y 1: p1 = 1/4, l = ln 4 (weight 2);
     * row 2 masked by row weight 0 with a NaN label (never read).
     * L = (ln 2 + 2 ln 4) / 3 = 5 ln 2 / 3. */
    eng_mtl *m = identity_model(ENG_HEAD_CLASSIFICATION, 2);
    eng_real x[6] = {0, 0, (eng_real)log(3.0), 0, 5, -5};
    eng_real y[3] = {0, 1, NAN}, rw[3] = {1, 1, 0}, cw[2] = {1, 2};
    eng_task_batch tb = {.y = y, .row_weight = rw, .class_weight = cw, .lambda = 1};
    double loss;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 3, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 5 * log(2.0) / 3, REAL_TOL);
    /* db = sum_i w_i (p_i - onehot_i) / 3 = (1*(0.5-1) + 2*(0.75-0)) / 3 = 1/3
     * for class 0, and the negative of that for class 1. */
    const eng_real *g = eng_mtl_grads(m);
    ck_assert_double_eq_tol(g[4], 1.0 / 3, REAL_TOL);
    ck_assert_double_eq_tol(g[5], -1.0 / 3, REAL_TOL);
    eng_mtl_free(m);

    /* MSE: z = x = (1, 2, 3), y = 0, row weights (1, 0, 3), lambda 0.5:
     * L = (1*1 + 3*9)/4 = 7 (reported without lambda);
     * dL/db = lambda * 2 * (1*1 + 3*3)/4 = 2.5, dL/dw = 0.5 * 2 * (1*1*1 + 3*3*3)/4 = 7. */
    m = identity_model(ENG_HEAD_REGRESSION, 1);
    eng_real xr[3] = {1, 2, 3}, yr[3] = {0, 0, 0}, rwr[3] = {1, 0, 3};
    eng_task_batch tr = {.y = yr, .row_weight = rwr, .lambda = 0.5};
    ck_assert_int_eq(eng_mtl_train_batch(m, xr, 3, &tr, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 7, REAL_TOL * 10);
    g = eng_mtl_grads(m);
    ck_assert_double_eq_tol(g[0], 7, REAL_TOL * 10);
    ck_assert_double_eq_tol(g[1], 2.5, REAL_TOL * 10);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_zero_denominator_gives_zero)
{
    /* Every row masked (and class weights that zero the rest): loss 0 and
     * gradient exactly 0, never NaN — even over a previous nonzero gradient. */
    eng_mtl *m = identity_model(ENG_HEAD_CLASSIFICATION, 2);
    eng_real x[4] = {1, 2, 3, -1}, y[2] = {0, 1}, rw0[2] = {0, 0}, cw0[2] = {0, 0};
    eng_task_batch tb = {.y = y, .lambda = 1};
    double loss;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert(loss > 0);
    tb.row_weight = rw0;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert(loss == 0);
    for (size_t i = 0; i < eng_mtl_nparams(m); i++)
        ck_assert(eng_mtl_grads(m)[i] == 0);
    tb.row_weight = NULL;
    tb.class_weight = cw0;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert(loss == 0);
    for (size_t i = 0; i < eng_mtl_nparams(m); i++)
        ck_assert(eng_mtl_grads(m)[i] == 0);
    eng_mtl_free(m);

    m = identity_model(ENG_HEAD_REGRESSION, 1);
    eng_real yr[2] = {NAN, NAN};
    tb = (eng_task_batch){.y = yr, .row_weight = rw0, .lambda = 1};
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert(loss == 0);
    ck_assert(eng_mtl_grads(m)[0] == 0 && eng_mtl_grads(m)[1] == 0);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_bad_targets)
{
    eng_mtl *m = identity_model(ENG_HEAD_CLASSIFICATION, 3);
    eng_real x[6] = {1, 2, 3, 4, 5, 6};
    double loss;
    eng_real y_big[2] = {0, 3}, y_frac[2] = {0, 1.5}, y_neg[2] = {-1, 0}, y_ok[2] = {0, 2};
    eng_real rw_neg[2] = {1, -1}, cw_nan[3] = {1, NAN, 1};
    eng_task_batch tb = {.y = y_big, .lambda = 1};
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.y = y_frac;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.y = y_neg;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.y = y_ok;
    tb.row_weight = rw_neg;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.row_weight = NULL;
    tb.class_weight = cw_nan;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.class_weight = NULL;
    tb.lambda = NAN;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_EINVAL);
    tb.lambda = 1;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_OK);
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 9, &tb, &loss), ENG_ESHAPE); /* > max_batch */
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 0, &tb, &loss), ENG_EINVAL);

    /* A NaN parameter makes the loss NaN: ENG_ENONFINITE. */
    eng_mtl_params(m)[1] = NAN;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tb, &loss), ENG_ENONFINITE);
    eng_mtl_free(m);

    /* An infinite regression target on a live row: ENG_ENONFINITE. */
    m = identity_model(ENG_HEAD_REGRESSION, 1);
    eng_real yr[2] = {0, INFINITY};
    eng_task_batch tr = {.y = yr, .lambda = 1};
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 2, &tr, &loss), ENG_ENONFINITE);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_label_smoothing_extreme_logits)
{
    /* K = 3, s = 0.3: q = (0.8, 0.1, 0.1) for y = 0. z = (1000, -1000, 0):
     * -log p = (0, 2000, 1000), l = 0.1*2000 + 0.1*1000 = 300.
     * dL/dz = p - q = (0.2, -0.1, -0.1); dW row c = dz_c * x, db = dz. */
    eng_task_spec opt = {.label_smoothing = 0.3};
    eng_mtl *m = identity_model_opt(ENG_HEAD_CLASSIFICATION, 3, &opt);
    eng_real x[3] = {1000, -1000, 0}, y[1] = {0};
    eng_task_batch tb = {.y = y, .lambda = 1.0};
    double loss = -1;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 1, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 300, 1e-9);
    const eng_real *g = eng_mtl_grads(m);
    ck_assert(all_finite(g, eng_mtl_nparams(m)));
    const double dz[3] = {0.2, -0.1, -0.1};
    for (int c = 0; c < 3; c++) {
        for (int j = 0; j < 3; j++)
            ck_assert_double_eq_tol(g[c * 3 + j], dz[c] * x[j], 10 * REAL_TOL * 1000);
        ck_assert_double_eq_tol(g[9 + c], dz[c], 1e-6);
    }
    /* s = 0 is exactly plain CE; with class weights the smoothed row keeps
     * its label's weight: rows (y=0, w 1) and (y=1, w 3) on z = 0: every
     * row's loss is log 3, so the weighted mean is log 3 too. */
    eng_mtl_free(m);
    opt.label_smoothing = 0.5;
    m = identity_model_opt(ENG_HEAD_CLASSIFICATION, 3, &opt);
    eng_real x0[6] = {0}, y2[2] = {0, 1}, cw[3] = {1, 3, 1};
    tb = (eng_task_batch){.y = y2, .class_weight = cw, .lambda = 1.0};
    ck_assert_int_eq(eng_mtl_train_batch(m, x0, 2, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, log(3.0), 1e-6);
    /* db = sum_i w_i (p - q_i) / sum w: p = 1/3; q_0 = (2/3, 1/6, 1/6), q_1 = (1/6, 2/3, 1/6)
     * db = (1*(1/3-2/3) + 3*(1/3-1/6), 1*(1/3-1/6) + 3*(1/3-2/3), 4*(1/3-1/6)) / 4
     *    = (1/24, -5/24, 1/6), which sums to 0 as softmax gradients must */
    g = eng_mtl_grads(m);
    ck_assert_double_eq_tol(g[9], 1.0 / 24, 1e-6);
    ck_assert_double_eq_tol(g[10], -5.0 / 24, 1e-6);
    ck_assert_double_eq_tol(g[11], 1.0 / 6, 1e-6);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_bce_extreme_logits)
{
    /* z = (1000, -1000, -1000, 0), y = (0, 0, 1, 0.5):
     * l = (1000, 0, 1000, log 2); mean (2000 + log 2)/4.
     * dL/dz = (sigmoid(z) - y)/4 = (1, 0, -1, 0)/4;
     * dW = sum dz_i x_i = (1000 + 1000)/4 = 500, db = 0. */
    eng_mtl *m = identity_model(ENG_HEAD_BINARY, 1);
    eng_real x[4] = {1000, -1000, -1000, 0}, y[4] = {0, 0, 1, 0.5};
    eng_task_batch tb = {.y = y, .lambda = 1.0};
    double loss = -1;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 4, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, (2000 + log(2.0)) / 4, 1e-6);
    const eng_real *g = eng_mtl_grads(m);
    ck_assert_double_eq_tol(g[0], 500, 1e-9);
    ck_assert_double_eq_tol(g[1], 0, 1e-9);
    /* Class weights (0.5 for y=0, 2 for y=1): rows z = 0: l = log 2 each,
     * weighted mean log 2; db = (0.5*0.5 + 2*(-0.5)) / 2.5 = -0.3. A soft
     * label with class weights is refused, as is a label outside [0, 1]. */
    eng_real x0[2] = {0, 0}, y01[2] = {0, 1}, cw[2] = {0.5, 2};
    tb = (eng_task_batch){.y = y01, .class_weight = cw, .lambda = 1.0};
    ck_assert_int_eq(eng_mtl_train_batch(m, x0, 2, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-6);
    ck_assert_double_eq_tol(eng_mtl_grads(m)[1], -0.3, 1e-6);
    y01[1] = 0.5;
    ck_assert_int_eq(eng_mtl_train_batch(m, x0, 2, &tb, &loss), ENG_EINVAL);
    tb.class_weight = NULL;
    y01[1] = 1.5;
    ck_assert_int_eq(eng_mtl_train_batch(m, x0, 2, &tb, &loss), ENG_EINVAL);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_huber_hand_computed)
{
    /* delta 1: z = (1000, -1000, 0.5, 0), y = (0, 0, 0, 2): e = (1000, -1000, 0.5, -2)
     * l = (999.5, 999.5, 0.125, 1.5), mean 500.15625
     * dL/dz = (1, -1, 0.5, -1)/4; dW = (1000 + 1000 + 0.25)/4 = 500.0625; db = -0.125 */
    eng_task_spec opt = {.loss = ENG_LOSS_HUBER};
    eng_mtl *m = identity_model_opt(ENG_HEAD_REGRESSION, 1, &opt);
    eng_real x[4] = {1000, -1000, 0.5, 0}, y[4] = {0, 0, 0, 2};
    eng_task_batch tb = {.y = y, .lambda = 1.0};
    double loss = -1;
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 4, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 500.15625, 1e-9);
    ck_assert_double_eq_tol(eng_mtl_grads(m)[0], 500.0625, 1e-9);
    ck_assert_double_eq_tol(eng_mtl_grads(m)[1], -0.125, 1e-9);
    eng_mtl_free(m);
    /* delta 3 on the same data: l = (2995.5, 2995.5, 0.125, 2), mean 1498.28125 */
    opt.huber_delta = 3;
    m = identity_model_opt(ENG_HEAD_REGRESSION, 1, &opt);
    ck_assert_int_eq(eng_mtl_train_batch(m, x, 4, &tb, &loss), ENG_OK);
    ck_assert_double_eq_tol(loss, 1498.28125, 1e-9);
    eng_mtl_free(m);
}
END_TEST

Suite *loss_suite(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, test_ce_extreme_logits);
    tcase_add_test(tc, test_softmax_rows_extreme);
    tcase_add_test(tc, test_weighted_losses_hand_computed);
    tcase_add_test(tc, test_zero_denominator_gives_zero);
    tcase_add_test(tc, test_bad_targets);
    tcase_add_test(tc, test_label_smoothing_extreme_logits);
    tcase_add_test(tc, test_bce_extreme_logits);
    tcase_add_test(tc, test_huber_hand_computed);
    suite_add_tcase(s, tc);
    return s;
}
