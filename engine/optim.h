/*
 * engine/optim.h — optimisers as plain functions over the flat parameter
 * block. State (moments) lives in caller-owned arrays of the same length, so
 * it can be checkpointed as tensors (adam.m.*, adam.v.*) and restored exactly.
 *
 * Adam (Kingma & Ba 2015) with bias correction counted in optimiser steps t
 * (1-based):  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * weight_decay: L2 added to the gradient (g += wd p) unless decoupled (AdamW:
 * p -= lr * wd * p before the Adam update).
 */
#ifndef ENG_OPTIM_H
#define ENG_OPTIM_H

#include "engine/types.h"

typedef struct {
    double lr;
    double beta1, beta2, eps;
    double weight_decay;
    int decoupled; /* 1 = AdamW */
} eng_adam_cfg;

/* Defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, no decay. */
eng_adam_cfg eng_adam_defaults(void);

void eng_adam_step(const eng_adam_cfg *c, eng_real *p, const eng_real *g,
                   eng_real *m, eng_real *v, size_t n, long t);

/* Plain SGD: p -= lr * g. */
void eng_sgd_step(double lr, eng_real *p, const eng_real *g, size_t n);

#endif
