/*
 * engine/weighting.h — task weighting for multi-task training: how the task
 * losses L_t of one batch become the gradient the optimiser steps on.
 *
 * c_t is each task's static weight (the job spec's `weight`, default 1);
 * c_t = 0 removes the task from the objective under every method. T is the
 * number of tasks with c_t > 0. "Present" means the batch has at least one
 * row with a non-zero row weight for the task; an absent task contributes
 * nothing and its weighting parameters are not updated on that batch.
 *
 *   static       λ_t = c_t;  minimise Σ λ_t L_t.
 *   uncertainty  (Kendall, Gal & Cipolla 2018) a learned log-variance
 *                s_t = log σ_t² per task (starting at 0):
 *                  regression      J_t = ½·exp(−s_t)·L_t + ½·s_t
 *                  classification  J_t =    exp(−s_t)·L_t + ½·s_t
 *                (binary heads count as classification); minimise
 *                Σ c_t J_t over the network and s, so λ_t = c_t·k_t·exp(−s_t)
 *                (k_t ½ or 1) and ∂/∂s_t = c_t(½ − k_t·exp(−s_t)·L_t).
 *                s is stepped by Adam (β 0.9/0.999, ε 1e-8) at cfg.lr.
 *   gradnorm     (Chen et al. 2018) weights w_t (starting at 1), λ_t = c_t·w_t.
 *                W = the last shared layer's weight matrix; per step
 *                  G_t = ‖∇_W λ_t L_t‖,  Ḡ = mean_t G_t,
 *                  L̃_t = L_t / L_t(0)  (L_t(0): the task's first loss),
 *                  r_t = L̃_t / mean_u L̃_u,
 *                  L_grad = Σ_t |G_t − Ḡ·r_t^α|   (the target held constant),
 *                  ∂L_grad/∂w_t = sign(G_t − Ḡ r_t^α)·c_t·‖∇_W L_t‖;
 *                w is stepped by Adam at cfg.lr, clamped to ≥ 1e-6, then
 *                renormalised so Σ_t w_t = T. The network's gradient is
 *                Σ λ_t ∇L_t with the weights from before the update.
 *   dwa          (Liu, Johns & Davison 2019) from the mean training loss of
 *                the two previous epochs, r_t = L_t(e−1)/L_t(e−2):
 *                  λ_t = c_t · T·exp(r_t/τ) / Σ_u exp(r_u/τ)
 *                and λ_t = c_t during the first two epochs.
 *   pcgrad       (Yu et al. 2020) per-task gradients g_t = ∇ c_t L_t. On
 *                the shared parameters, for each task t: g'_t = g_t, then
 *                for every other task u in a random order (drawn from the
 *                rng the caller passes, one shuffle per t):
 *                  if g'_t·g_u < 0:  g'_t ← g'_t − (g'_t·g_u / ‖g_u‖²) g_u
 *                and the shared gradient is Σ_t g'_t. Task-specific
 *                parameters get Σ_t g_t (each only its own task's).
 *
 * Per-task gradients come from the model's own train entry point with a
 * one-hot lambda vector (eng_task_batch.lambda): the backward pass is
 * linear in lambda, so Σ_t λ_t·(one-hot gradient t) is the weighted
 * gradient. Every pass reuses a copy of the same dropout rng state, so all
 * passes see the same masks. gradnorm and pcgrad cost one forward and one
 * backward pass per present task; static, uncertainty and dwa one in all.
 *
 * Shared parameters: every tensor whose name does not begin with "tasks."
 * (the trunk); the last shared layer is the last such rank-2 tensor.
 *
 * State (s and its Adam moments, w and its moments, L(0), the DWA loss
 * history, the Adam step) is a flat array of doubles so a checkpoint can
 * store it exactly and a resumed job continues bit-identically.
 *
 * Allocation happens in eng_wt_new only; eng_wt_step never allocates.
 * Not thread-safe: one eng_wt per model.
 */
#ifndef ENG_WEIGHTING_H
#define ENG_WEIGHTING_H

#include "engine/mtl.h"
#include "engine/rng.h"
#include "engine/types.h"

typedef enum {
    ENG_WT_STATIC = 0,
    ENG_WT_UNCERTAINTY = 1,
    ENG_WT_GRADNORM = 2,
    ENG_WT_DWA = 3,
    ENG_WT_PCGRAD = 4,
} eng_wt_kind;

typedef struct {
    eng_wt_kind kind;
    int n_tasks;                  /* must equal the model's */
    double c[ENG_MAX_TASKS];      /* static weights, >= 0 */
    double alpha;                 /* gradnorm: >= 0 */
    double temperature;           /* dwa: > 0 */
    double lr;                    /* uncertainty, gradnorm: Adam step size, > 0 */
} eng_wt_cfg;

typedef struct eng_wt eng_wt;

/* Builds the weighting for model m (borrowed: it must outlive *out). The
 * state starts as eng_wt_reset leaves it. ENG_EINVAL for a bad cfg,
 * ENG_ENOMEM. */
int eng_wt_new(const eng_wt_cfg *cfg, eng_mtl *m, eng_wt **out);
void eng_wt_free(eng_wt *w); /* NULL is fine */

/* Initial state: s = 0, w = 1, no L(0), no loss history. */
void eng_wt_reset(eng_wt *w);

/* One training step's gradient: forward and backward on x [n][n_in] with
 * tb's targets and row weights (tb[t].lambda is ignored: the method sets
 * it), leaving the weighted gradient in eng_mtl_grads(m) and each L_t in
 * task_loss (may be NULL), and updating s (uncertainty) or w (gradnorm).
 * drop: the dropout rng (copied before each pass, so it is not advanced;
 * NULL when the model has no dropout); order: pcgrad's shuffles (advanced;
 * may be NULL otherwise). Errors as eng_mtl_train_step (ENG_ENONFINITE
 * with eng_mtl_nonfinite naming the task).
 * The weights used are those of eng_wt_weights before the call. */
int eng_wt_step(eng_wt *w, const eng_real *x, int n, const eng_task_batch *tb,
                const eng_rng *drop, eng_rng *order, double *task_loss);

/* DWA: records the mean training loss of the epoch just finished (one per
 * task). Other methods keep the history too (it is cheap) but ignore it. */
void eng_wt_epoch_end(eng_wt *w, const double *epoch_loss);

/* The effective weights λ_t the next step will use. */
void eng_wt_weights(const eng_wt *w, double *lambda);

/* Cosine similarity between the per-task gradients (λ = 1 each) on the
 * shared parameters, for the batch given: cos[t*n_tasks+u]; NaN where a
 * gradient is zero (an absent task, or a model with no shared layer).
 * Uses the same buffers as pcgrad; eng_mtl_grads(m) is left unspecified. */
int eng_wt_grad_cosine(eng_wt *w, const eng_real *x, int n, const eng_task_batch *tb,
                       const eng_rng *drop, double *cos);

/* The state as a flat array (borrowed; *len doubles); writing it (to
 * restore a checkpoint) is how a resumed job gets it back. */
double *eng_wt_state(eng_wt *w, size_t *len);

/* gradnorm's G_t of the last step (0 for tasks not balanced). */
void eng_wt_gradnorm_norms(const eng_wt *w, double *g);

/* ---- the methods' arithmetic, as pure functions (tested by hand) ------- */

/* DWA weights for T tasks from the epoch means prev1 = L(e−1) and
 * prev2 = L(e−2), temperature temp: out_t = T·exp(r_t/temp)/Σ exp(r_u/temp)
 * with r_t = prev1_t/prev2_t (r_t = 1 where prev2_t is 0). */
void eng_dwa_weights(int T, const double *prev1, const double *prev2, double temp, double *out);

/* Uncertainty's objective over the task losses L[T] for log-variances s,
 * static weights c and factors k (½ regression, 1 classification):
 * returns Σ_t c_t (k_t·exp(−s_t)·L_t + ½·s_t) and writes ∂/∂s_t to ds. */
double eng_uncertainty_loss(int T, const double *s, const double *c, const double *k,
                            const double *L, double *ds);

/* gradnorm's loss and its gradient in w: gn[t] = ‖∇_W L_t‖ (unweighted),
 * c[t] the static weights, ratio[t] = L_t/L_t(0); the target is computed
 * from w and held constant. Writes ∂L_grad/∂w_t to dw and returns L_grad. */
double eng_gradnorm_loss(int T, const double *w, const double *c, const double *gn,
                         const double *ratio, double alpha, double *dw);

/* PCGrad over T gradients g[t] (each n long) on one parameter block, with
 * order[t*T..t*T+T) the visiting order for task t (t itself is skipped).
 * out (n) receives Σ_t g'_t; proj (n) is scratch. */
void eng_pcgrad(int T, const eng_real *const *g, size_t n, const uint32_t *order,
                eng_real *out, eng_real *proj);

#endif
