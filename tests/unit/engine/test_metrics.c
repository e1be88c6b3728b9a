/*
 * tests/unit/engine/test_metrics.c — accuracy, macro-F1 and the regression
 * metrics on cases small enough to work out by hand.
 */
#include <math.h>

#include "engine/metrics.h"
#include "helpers.h"

START_TEST(test_accuracy)
{
    int truth[5] = {0, 1, 2, 1, 0}, pred[5] = {0, 1, 1, 1, 2};
    ck_assert_double_eq_tol(eng_accuracy(truth, pred, 5), 3.0 / 5, 1e-15);
    ck_assert_double_eq(eng_accuracy(truth, pred, 0), 0);
}
END_TEST

START_TEST(test_macro_f1_hand_computed)
{
    /* truth 0 0 1 1 2 2 / pred 0 1 1 1 2 0
     *   class 0: tp 1, fp 1, fn 1 -> P 1/2, R 1/2 -> F1 0.5
     *   class 1: tp 2, fp 1, fn 0 -> P 2/3, R 1   -> F1 (4/3)/(5/3) = 0.8
     *   class 2: tp 1, fp 0, fn 1 -> P 1,   R 1/2 -> F1 1/1.5 = 2/3
     *   macro = (0.5 + 0.8 + 2/3) / 3 = 0.6555... */
    int truth[6] = {0, 0, 1, 1, 2, 2}, pred[6] = {0, 1, 1, 1, 2, 0};
    size_t scratch[3 * 3];
    ck_assert_double_eq_tol(eng_macro_f1(truth, pred, 6, 3, scratch), (0.5 + 0.8 + 2.0 / 3) / 3,
                            1e-15);
}
END_TEST

START_TEST(test_macro_f1_absent_class_excluded)
{
    /* Same data with k = 5: classes 3 and 4 occur in neither truth nor
     * prediction and must not drag the average down (it stays 0.6555...,
     * not 3 * 0.6555 / 5). */
    int truth[6] = {0, 0, 1, 1, 2, 2}, pred[6] = {0, 1, 1, 1, 2, 0};
    size_t scratch[3 * 5];
    ck_assert_double_eq_tol(eng_macro_f1(truth, pred, 6, 5, scratch), (0.5 + 0.8 + 2.0 / 3) / 3,
                            1e-15);
    /* No class at all (n = 0): 0. */
    ck_assert_double_eq(eng_macro_f1(truth, pred, 0, 5, scratch), 0);
}
END_TEST

START_TEST(test_macro_f1_no_predicted_positives)
{
    /* truth 0 1 1 0 / pred 0 0 0 0: class 1 is never predicted, so its
     * precision is 0/0, which counts 0; it occurs in truth, so it is included.
     *   class 0: tp 2, fp 2, fn 0 -> P 1/2, R 1 -> F1 2/3
     *   class 1: tp 0, fp 0, fn 2 -> F1 0
     *   macro = 1/3 (excluding class 1 would wrongly give 2/3). */
    int truth[4] = {0, 1, 1, 0}, pred[4] = {0, 0, 0, 0};
    size_t scratch[3 * 2];
    ck_assert_double_eq_tol(eng_macro_f1(truth, pred, 4, 2, scratch), 1.0 / 3, 1e-15);
    /* All correct: 1. */
    ck_assert_double_eq_tol(eng_macro_f1(truth, truth, 4, 2, scratch), 1.0, 1e-15);
}
END_TEST

START_TEST(test_regression_metrics)
{
    /* errors 0.5, 0, -1, 1: mse (0.25 + 0 + 1 + 1)/4 = 0.5625, mae 2.5/4 = 0.625;
     * mean truth 2.5, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5, SS_res = 2.25,
     * r2 = 1 - 2.25/5 = 0.55. */
    double truth[4] = {1, 2, 3, 4}, pred[4] = {1.5, 2, 2, 5};
    double mse, mae, r2;
    eng_regression_metrics(truth, pred, 4, &mse, &mae, &r2);
    ck_assert_double_eq_tol(mse, 0.5625, 1e-15);
    ck_assert_double_eq_tol(mae, 0.625, 1e-15);
    ck_assert_double_eq_tol(r2, 0.55, 1e-15);
    /* Constant truth: SS_tot = 0, R² undefined: NaN (never -inf, never a
     * made-up 0), with mse and mae as usual. */
    double flat[3] = {2, 2, 2}, p2[3] = {1, 2, 3};
    eng_regression_metrics(flat, p2, 3, &mse, &mae, &r2);
    ck_assert_double_eq_tol(mse, 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(mae, 2.0 / 3, 1e-15);
    ck_assert(isnan(r2));
    eng_regression_metrics(flat, p2, 0, &mse, &mae, &r2);
    ck_assert(mse == 0 && mae == 0 && isnan(r2));
}
END_TEST

START_TEST(test_per_class_and_confusion)
{
    /* k = 4, class 3 never occurs; the last row predicts -1 ("none"). */
    const int truth[8] = {0, 0, 1, 1, 2, 2, 0, 1};
    const int pred[8] = {0, 1, 1, 1, 0, 2, 0, -1};
    size_t scratch[12], cm[16];
    double pr[4], rc[4];
    eng_per_class_pr(truth, pred, 8, 4, scratch, pr, rc);
    /* tp = (2, 2, 1, 0); fp = (1, 1, 0, 0); fn = (1, 1, 1, 0) */
    ck_assert_double_eq_tol(pr[0], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(pr[1], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(pr[2], 1, 1e-15);
    ck_assert_double_eq(pr[3], 0); /* 0/0 counts as 0 */
    ck_assert_double_eq_tol(rc[0], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(rc[1], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(rc[2], 0.5, 1e-15);
    ck_assert_double_eq(rc[3], 0);
    ck_assert_uint_eq(eng_confusion_matrix(truth, pred, 8, 4, cm), 1);
    const size_t want[16] = {2, 1, 0, 0, /* truth 0 */
                             0, 2, 0, 0, /* truth 1 (the -1 row left out) */
                             1, 0, 1, 0, /* truth 2 */
                             0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(cm[i], want[i]);

    /* A batch with no positives of class 1: precision and recall 0 for it. */
    const int t2[3] = {0, 0, 0}, p2[3] = {0, 0, 0};
    eng_per_class_pr(t2, p2, 3, 2, scratch, pr, NULL);
    ck_assert_double_eq(pr[0], 1);
    ck_assert_double_eq(pr[1], 0);
    eng_per_class_pr(t2, p2, 3, 2, scratch, NULL, rc);
    ck_assert_double_eq(rc[0], 1);
    ck_assert_double_eq(rc[1], 0);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_accuracy);
    tcase_add_test(tc, test_macro_f1_hand_computed);
    tcase_add_test(tc, test_macro_f1_absent_class_excluded);
    tcase_add_test(tc, test_macro_f1_no_predicted_positives);
    tcase_add_test(tc, test_regression_metrics);
    tcase_add_test(tc, test_per_class_and_confusion);
    suite_add_tcase(s, tc);
    return s;
}
