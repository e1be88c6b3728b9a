/*
 * engine/metrics.c — accuracy, macro-F1 and regression metrics over a whole
 * split. Computed once over all predictions (never averaged per batch, which
 * would weight small last batches wrongly). Counts are integers, so results
 * do not depend on the order of the rows.
 *
 * Per-class F1 is written as 2tp / (2tp + fp + fn), which equals 2PR/(P+R)
 * whenever tp > 0 and is 0 when tp == 0 — exactly the "0/0 precision or
 * recall counts as 0" rule — with no division by zero to guard. A label
 * outside 0..k-1 (e.g. -1 for "no prediction") counts against the other side
 * but opens no class of its own. Per-class precision/recall share the same
 * counts; the confusion matrix leaves such rows out (and says how many).
 */
#include <math.h>
#include <string.h>

#include "engine/metrics.h"

double eng_accuracy(const int *truth, const int *pred, size_t n)
{
    if (n == 0)
        return 0;
    size_t hit = 0;
    for (size_t i = 0; i < n; i++)
        hit += truth[i] == pred[i];
    return (double)hit / (double)n;
}

/* tp, fp, fn per class into scratch[0..k), [k..2k), [2k..3k). */
static void count_classes(const int *truth, const int *pred, size_t n, int k, size_t *scratch)
{
    size_t *tp = scratch, *fp = scratch + k, *fn = scratch + 2 * (size_t)k;
    memset(scratch, 0, 3 * (size_t)k * sizeof *scratch);
    for (size_t i = 0; i < n; i++) {
        int t = truth[i], p = pred[i];
        int t_ok = t >= 0 && t < k, p_ok = p >= 0 && p < k;
        if (t == p) {
            if (t_ok)
                tp[t]++;
            continue;
        }
        if (t_ok)
            fn[t]++;
        if (p_ok)
            fp[p]++;
    }
}

double eng_macro_f1(const int *truth, const int *pred, size_t n, int k, size_t *scratch)
{
    if (k <= 0)
        return 0;
    count_classes(truth, pred, n, k, scratch);
    const size_t *tp = scratch, *fp = scratch + k, *fn = scratch + 2 * (size_t)k;
    double sum = 0;
    int included = 0;
    for (int c = 0; c < k; c++) {
        size_t denom = 2 * tp[c] + fp[c] + fn[c];
        if (denom == 0)
            continue; /* in neither truth nor prediction */
        included++;
        sum += 2.0 * (double)tp[c] / (double)denom;
    }
    return included ? sum / included : 0;
}

void eng_per_class_pr(const int *truth, const int *pred, size_t n, int k, size_t *scratch,
                      double *precision, double *recall)
{
    if (k <= 0)
        return;
    count_classes(truth, pred, n, k, scratch);
    const size_t *tp = scratch, *fp = scratch + k, *fn = scratch + 2 * (size_t)k;
    for (int c = 0; c < k; c++) {
        if (precision)
            precision[c] = tp[c] + fp[c] ? (double)tp[c] / (double)(tp[c] + fp[c]) : 0;
        if (recall)
            recall[c] = tp[c] + fn[c] ? (double)tp[c] / (double)(tp[c] + fn[c]) : 0;
    }
}

size_t eng_confusion_matrix(const int *truth, const int *pred, size_t n, int k, size_t *cm)
{
    size_t skipped = 0;
    if (k > 0)
        memset(cm, 0, (size_t)k * (size_t)k * sizeof *cm);
    for (size_t i = 0; i < n; i++) {
        int t = truth[i], p = pred[i];
        if (t < 0 || t >= k || p < 0 || p >= k) {
            skipped++;
            continue;
        }
        cm[(size_t)t * (size_t)k + (size_t)p]++;
    }
    return skipped;
}

void eng_regression_metrics(const double *truth, const double *pred, size_t n, double *mse,
                            double *mae, double *r2)
{
    double se = 0, ae = 0, mean = 0, ss_tot = 0;
    for (size_t i = 0; i < n; i++)
        mean += truth[i];
    if (n)
        mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double e = pred[i] - truth[i], d = truth[i] - mean;
        se += e * e;
        ae += fabs(e);
        ss_tot += d * d;
    }
    if (mse)
        *mse = n ? se / (double)n : 0;
    if (mae)
        *mae = n ? ae / (double)n : 0;
    if (r2)
        *r2 = ss_tot > 0 ? 1 - se / ss_tot : NAN;
}
