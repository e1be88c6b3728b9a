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

/* Regression metrics. r2 = 1 - SS_res/SS_tot (0 when SS_tot == 0 and
 * SS_res == 0, -inf-free: returns 0 when SS_tot == 0). */
void eng_regression_metrics(const double *truth, const double *pred, size_t n,
                            double *mse, double *mae, double *r2);

#endif
