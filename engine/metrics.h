/*
 * engine/metrics.h — evaluation metrics over a whole split (never averaged
 * per batch). Pure functions; no allocation unless stated.
 */
#ifndef ENG_METRICS_H
#define ENG_METRICS_H

#include <stddef.h>

/* Fraction of i with truth[i] == pred[i]; 0 when n == 0. */
double eng_accuracy(const int *truth, const int *pred, size_t n);

/* Macro-averaged F1 over k classes. A class that occurs in neither truth nor
 * prediction is excluded from the average; for a class that is included, a
 * 0/0 precision or recall counts as 0. Returns 0 when no class is included.
 * Uses a caller-provided scratch of 3*k size_t (tp, fp, fn). */
double eng_macro_f1(const int *truth, const int *pred, size_t n, int k, size_t *scratch);

/* Per-class precision tp/(tp+fp) and recall tp/(tp+fn) over k classes,
 * into precision[k] and recall[k] (either may be NULL); 0/0 counts as 0
 * (a class never predicted has precision 0, one never true recall 0).
 * Counted exactly as eng_macro_f1 counts (out-of-range labels count against
 * the other side). Scratch of 3*k size_t. */
void eng_per_class_pr(const int *truth, const int *pred, size_t n, int k, size_t *scratch,
                      double *precision, double *recall);

/* Confusion matrix cm[k][k] row-major, cm[t*k + p] = rows with truth t and
 * prediction p (overwritten). Rows with a label outside 0..k-1 on either
 * side are not counted; returns how many rows were left out that way. */
size_t eng_confusion_matrix(const int *truth, const int *pred, size_t n, int k, size_t *cm);

/* Regression metrics. r2 = 1 - SS_res/SS_tot; NaN when SS_tot == 0 (a
 * constant target, or n == 0): R² is undefined there, and any number would
 * be a made-up score (callers report it as missing). mse and mae are 0 for
 * n == 0. */
void eng_regression_metrics(const double *truth, const double *pred, size_t n,
                            double *mse, double *mae, double *r2);

#endif
