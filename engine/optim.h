/*
 * engine/optim.h — optimisers, gradient clipping and learning-rate
 * schedules as plain functions over the flat parameter block. State
 * (moments) lives in caller-owned arrays of the same length, so it can be
 * checkpointed as tensors and restored exactly. t is the optimiser step,
 * 1-based, and is all the bias correction and the schedules depend on.
 *
 * Update rules (g the gradient, lr the scheduled rate, wd the weight decay):
 *   sgd        g += wd p;  p -= lr g
 *   momentum   g += wd p;  b = mu b + g;  p -= lr b             (PyTorch SGD,
 *   nesterov   g += wd p;  b = mu b + g;  p -= lr (g + mu b)     dampening 0)
 *   adam       g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
 *              p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   adamw      p -= lr wd p (decoupled, Loshchilov & Hutter), then adam
 *              with no decay in g
 * State arrays: momentum/nesterov use s1 (b); adam/adamw s1 (m) and s2 (v);
 * sgd none (NULL is fine for unused ones).
 *
 * Clipping by global norm: ‖g‖ = sqrt(Σ g²) over the whole block; when it
 * exceeds clip_norm, g is scaled by clip_norm/‖g‖ (exactly; PyTorch adds
 * 1e-6 to the denominator).
 *
 * Schedules give lr(t) for t = 1..T (T the total number of steps), s = t−1:
 *   constant       lr
 *   step           lr · gamma^floor(s / step_size)
 *   cosine         min + (lr − min)·½(1 + cos(π s / T))
 *   warmup         lr · min(1, (s+1) / W)               (linear warm-up, then constant)
 *   warmup_cosine  lr · (s+1)/W for s < W, then cosine from lr to min over the
 *                  remaining T − W steps
 */
#ifndef ENG_OPTIM_H
#define ENG_OPTIM_H

#include "engine/types.h"

typedef enum {
    ENG_OPT_SGD = 0,
    ENG_OPT_MOMENTUM = 1,
    ENG_OPT_NESTEROV = 2,
    ENG_OPT_ADAM = 3,
    ENG_OPT_ADAMW = 4,
} eng_opt_kind;

typedef struct {
    eng_opt_kind kind;
    double momentum;      /* momentum, nesterov: mu in [0, 1) */
    double beta1, beta2, eps;
    double weight_decay;  /* L2 into g, except adamw: decoupled */
    double clip_norm;     /* > 0: clip the gradient's global norm; 0: off */
} eng_opt_cfg;

/* momentum 0.9, betas 0.9/0.999, eps 1e-8, no decay, no clipping. */
eng_opt_cfg eng_opt_defaults(eng_opt_kind kind);

/* How many state arrays (0, 1 or 2) the kind needs. */
int eng_opt_nstate(eng_opt_kind kind);

/* One step at rate lr on p[n] with gradient g[n] (scaled in place when
 * clipping). Returns ENG_OK; ENG_EINVAL for t < 1 or a bad kind;
 * ENG_ENONFINITE when g holds NaN/Inf — with clipping on this is found
 * before anything changes, otherwise in the update pass itself (no extra
 * pass over memory), after which p and the state are unusable: the caller
 * must stop training. */
int eng_opt_step(const eng_opt_cfg *c, double lr, eng_real *p, eng_real *g, eng_real *s1,
                 eng_real *s2, size_t n, long t);

/* The global L2 norm of g[n] (accumulated in double, in a fixed order, so
 * it is deterministic); if max_norm > 0 and the norm exceeds it, g is scaled
 * to norm max_norm. A non-finite norm is returned as is and g left alone. */
double eng_clip_grad_norm(eng_real *g, size_t n, double max_norm);

typedef enum {
    ENG_SCHED_CONSTANT = 0,
    ENG_SCHED_STEP = 1,
    ENG_SCHED_COSINE = 2,
    ENG_SCHED_WARMUP = 3,
    ENG_SCHED_WARMUP_COSINE = 4,
} eng_sched_kind;

typedef struct {
    eng_sched_kind kind;
    long step_size;   /* step: > 0 */
    double gamma;     /* step: the factor */
    long warmup;      /* warmup, warmup_cosine: W > 0 */
    double min_lr;    /* cosine, warmup_cosine: the floor */
} eng_schedule;

/* lr(t) for step t (1-based) of total (>= 1). t beyond total is treated as
 * total. */
double eng_schedule_lr(const eng_schedule *s, double lr, long t, long total);

/* ---- the original Adam interface (kept: callers and checkpoints use it) --- */

typedef struct {
    double lr;
    double beta1, beta2, eps;
    double weight_decay;
    int decoupled; /* 1 = AdamW */
} eng_adam_cfg;

/* Defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, no decay. */
eng_adam_cfg eng_adam_defaults(void);

/* Adam/AdamW at c->lr; does nothing for t < 1. */
void eng_adam_step(const eng_adam_cfg *c, eng_real *p, const eng_real *g,
                   eng_real *m, eng_real *v, size_t n, long t);

/* Plain SGD: p -= lr * g. */
void eng_sgd_step(double lr, eng_real *p, const eng_real *g, size_t n);

#endif
