/*
 * engine/mtl.h — the multi-task network: a shared MLP trunk, then per task an
 * optional tower (more hidden layers) and a linear head; optionally a
 * mixture of experts (MMoE, CGC, PLE: eng_moe_spec) between the trunk and
 * the towers.
 *
 *   x ─ trunk (hidden)* ─ h ─┬─ tower_0 (hidden)* ─ head_0 (dense, no act) → out_0
 *                            └─ tower_1 ...       ─ head_1                 → out_1
 *
 * A hidden layer is   z = x·Wᵀ + b  →  [layer norm]  →  act  →  [dropout].
 *
 * A model owns ONE contiguous block of parameters and ONE of gradients (same
 * layout), so optimisers are plain loops over arrays and a checkpoint is a
 * view of the block. Dense weights are stored row-major [out][in] (PyTorch's
 * nn.Linear layout), bias [out] follows its weight, and a layer-norm gain
 * [out] and bias [out] follow that when the spec asks for layer norm.
 *
 * All activations/workspace are allocated by eng_mtl_new for up to max_batch
 * rows: forward and backward never allocate.
 *
 * Activations (after every trunk and tower layer; heads are linear):
 *   relu        max(0, z)
 *   leaky_relu  z if z > 0 else a·z   (a = leaky_slope, 0.01 when 0)
 *   tanh        tanh z
 *   sigmoid     1 / (1 + e^-z)
 *   gelu        z·Φ(z) = ½ z (1 + erf(z/√2))   — the EXACT form (PyTorch's
 *               default nn.GELU()), not the tanh approximation
 * Layer norm (per row over the layer's units, eps 1e-5, population variance):
 *   u = (z − mean) / sqrt(var + eps);  ẑ = γ ⊙ u + β   (γ starts at 1, β at 0)
 * Dropout (training only, inverted): each unit is kept with probability
 *   1 − p and then scaled by 1/(1 − p), so inference (eng_mtl_forward) uses
 *   the weights as they are. The mask comes from the eng_rng the caller gives
 *   eng_mtl_train_step: the same rng state gives the same mask.
 *
 * Loss of task t on a batch (rows i with weight r_i, default 1):
 *   classification: softmax cross-entropy from logits (log-sum-exp), with
 *                   label smoothing s: target q = (1−s)·onehot(y) + s/K,
 *                   l_i = −Σ_c q_c log softmax(z_i)_c; class weights c_y optional;
 *   binary:         one logit, y in [0, 1]: BCE from logits,
 *                   l_i = max(z,0) − z·y + log(1 + e^−|z|); class weights
 *                   [2] (for y = 0 / y = 1) optional, then y must be 0 or 1;
 *   regression:     l_i = (z_i − y_i)^2  (MSE; out size 1), or Huber with δ:
 *                   ½e² if |e| ≤ δ, else δ(|e| − ½δ)   (e = z − y);
 *   L_t = sum_i r_i c_{y_i} l_i / sum_i r_i c_{y_i}   (0 when the denominator is 0)
 * The total minimised is sum_t lambda_t L_t. Logits of ±1000 give finite
 * losses and gradients in every case.
 *
 * Not thread-safe: one model per thread. The BLAS calls are the only
 * heavy work (sgemm/dgemm for forward and both backward products).
 */
#ifndef ENG_MTL_H
#define ENG_MTL_H

#include "engine/rng.h"
#include "engine/types.h"

#define ENG_MAX_LAYERS 8
#define ENG_MAX_TASKS 16
#define ENG_MOE_MAX_LEVELS 4
#define ENG_MOE_MAX_EXPERTS 64 /* per level: experts + n_tasks * task_experts */

typedef enum {
    ENG_ACT_IDENTITY = 0,
    ENG_ACT_RELU = 1,
    ENG_ACT_LEAKY_RELU = 2,
    ENG_ACT_TANH = 3,
    ENG_ACT_SIGMOID = 4,
    ENG_ACT_GELU = 5, /* exact (erf) form */
} eng_act;

typedef enum {
    ENG_HEAD_CLASSIFICATION = 0, /* n_out = number of classes (>= 2), softmax CE */
    ENG_HEAD_REGRESSION = 1,     /* n_out = 1, MSE or Huber */
    ENG_HEAD_BINARY = 2,         /* n_out = 1, binary cross-entropy from the logit */
} eng_head_kind;

typedef enum {
    ENG_LOSS_DEFAULT = 0, /* the kind's loss: softmax CE, MSE, BCE */
    ENG_LOSS_HUBER = 1,   /* regression only */
} eng_loss;

/* Every field added after the first release is zero-initialised to the old
 * behaviour, so a spec memset to 0 and filled as before builds the same model. */
typedef struct {
    eng_head_kind kind;
    int n_out;
    int n_tower;                /* number of tower layers (0 = head on the trunk) */
    int tower[ENG_MAX_LAYERS];  /* their widths */
    eng_loss loss;              /* ENG_LOSS_DEFAULT or ENG_LOSS_HUBER (regression) */
    double label_smoothing;     /* classification only, in [0, 1); 0 = none */
    double huber_delta;         /* ENG_LOSS_HUBER: > 0; 0 means 1.0 */
} eng_task_spec;

/* A mixture of experts between the trunk and the towers (engine/moe.c has
 * the layout). Per level: `experts` shared experts and, per task,
 * `task_experts` experts of its own, each an MLP of `units` (activation and
 * dropout after every layer, no layer norm); per task a gate
 *   a_t(x) = softmax((W_t x + b_t) / temperature)
 * over the shared experts and its own, and task t's output is
 *   (1/Z) sum_j a_tj(x) g_j(x),  Z = sum_j a_tj(x) (= 1 for a softmax).
 * experts > 0, task_experts 0, levels 1: MMoE (Ma et al. 2018);
 * task_experts > 0: CGC; levels > 1: PLE (Tang et al. 2020), where level
 * v + 1 reads, per task, that task's output of level v (its gate and its
 * experts) and, for the shared experts, the output of a shared gate over
 * every expert of level v. */
typedef struct {
    int experts;              /* shared experts per level; 0 = no mixture */
    int task_experts;         /* per task per level (CGC/PLE); 0 = MMoE */
    int levels;               /* 0 or 1: one level; up to ENG_MOE_MAX_LEVELS */
    int n_units;              /* layers of each expert, 1..ENG_MAX_LAYERS */
    int units[ENG_MAX_LAYERS];
    double gate_temperature;  /* > 0; 0 means 1 */
} eng_moe_spec;

typedef struct {
    int n_in;                   /* input width (> 0) */
    int n_trunk;                /* number of trunk layers (0 = heads on the input) */
    int trunk[ENG_MAX_LAYERS];  /* their widths */
    eng_act act;                /* activation after every trunk and tower layer */
    int n_tasks;                /* 1..ENG_MAX_TASKS */
    eng_task_spec task[ENG_MAX_TASKS];
    double leaky_slope;         /* ENG_ACT_LEAKY_RELU: in [0, 1); 0 means 0.01 */
    double dropout;             /* after every trunk/tower activation: [0, 1); 0 = none */
    int layer_norm;             /* 1: layer norm before every trunk/tower activation */
    eng_moe_spec moe;           /* experts 0: none (the trunk feeds the towers) */
} eng_mtl_spec;

/* Targets of one task for a batch of n rows. */
typedef struct {
    const eng_real *y;            /* [n]: class index 0..n_out-1 (as a real) or target value */
    const eng_real *row_weight;   /* [n] or NULL (all 1); 0 masks a row out */
    const eng_real *class_weight; /* [n_out] or NULL (all 1); classification only */
    double lambda;                /* this task's weight in the total loss */
} eng_task_batch;

typedef struct eng_mtl eng_mtl;

/* Describes one parameter tensor inside the flat block (for checkpoints). */
typedef struct {
    char name[48];   /* "trunk.0.weight", "trunk.0.bias", "tasks.1.tower.0.weight",
                        "tasks.1.head.weight", "tasks.1.head.bias", and with layer
                        norm "trunk.0.ln.weight" (γ), "trunk.0.ln.bias" (β);
                        a mixture's "experts.J.L.weight" (shared expert J,
                        layer L), "task_experts.T.K.L.weight" (task T's
                        expert K), "gates.T.weight", "gates.shared.weight"
                        (and .bias), prefixed "levels.V." when levels > 1 */
    int rank;        /* 1 (bias, layer-norm γ/β) or 2 (weight) */
    int shape[2];    /* [out, in] or [out] */
    size_t offset;   /* in elements from eng_mtl_params() */
    size_t count;    /* elements */
} eng_tensor_info;

/* Build a model for batches of at most max_batch rows. *out is new (free with
 * eng_mtl_free). Parameters are zero until eng_mtl_init. Errors: ENG_EINVAL for
 * a bad spec, ENG_ENOMEM. */
int eng_mtl_new(const eng_mtl_spec *spec, int max_batch, eng_mtl **out);
void eng_mtl_free(eng_mtl *m); /* NULL is fine */

const eng_mtl_spec *eng_mtl_get_spec(const eng_mtl *m);
size_t eng_mtl_nparams(const eng_mtl *m);
eng_real *eng_mtl_params(eng_mtl *m);  /* borrowed: the flat block, nparams long */
eng_real *eng_mtl_grads(eng_mtl *m);   /* borrowed: same layout */
int eng_mtl_ntensors(const eng_mtl *m);
int eng_mtl_tensor(const eng_mtl *m, int i, eng_tensor_info *out);

/* Mixtures (spec.moe.experts > 0): the gates' weights over the experts on
 * the rows of the last forward (eng_mtl_forward or a train call).
 * eng_mtl_gate_levels: the levels (0 without a mixture). A gate is
 * (level, g): g < n_tasks is task g's gate; g == n_tasks the shared gate of
 * a level below the last. eng_mtl_gate_size: its number of choices (0 when
 * there is no such gate). eng_mtl_gate_expert: the name of the expert of
 * choice c into buf ("experts.J", "task_experts.T.K", prefixed "levels.V."
 * when levels > 1). eng_mtl_gate_sums: ADDS each choice's weight summed over
 * the rows into sum[c]. The last two return ENG_EINVAL for a bad gate. */
int eng_mtl_gate_levels(const eng_mtl *m);
int eng_mtl_gate_size(const eng_mtl *m, int level, int g);
int eng_mtl_gate_expert(const eng_mtl *m, int level, int g, int c, char *buf, size_t len);
int eng_mtl_gate_sums(const eng_mtl *m, int level, int g, double *sum);

/* He-normal weights (std sqrt(2/fan_in)) for ReLU, leaky ReLU and GELU
 * layers, Xavier-normal (std sqrt(2/(fan_in+fan_out))) for tanh, sigmoid and
 * identity layers and for heads; biases 0; layer-norm γ 1 and β 0. One
 * normal draw per weight in tensor order, so the same seed gives the same
 * weights whatever the options (a mixture's experts and gates, in block
 * order between the trunk and the towers, likewise: He or Xavier by the
 * activation for experts, Xavier for gates, fan-out being one expert's or
 * one gate's width). Deterministic given the rng state. */
void eng_mtl_init(eng_mtl *m, eng_rng *rng);

/* Inference forward pass (no dropout) on x [n][n_in] row-major,
 * 1 <= n <= max_batch. Afterwards
 * eng_mtl_output(m, t) points at [n][n_out_t] logits (classification) or
 * predictions (regression), valid until the next call. */
int eng_mtl_forward(eng_mtl *m, const eng_real *x, int n);
const eng_real *eng_mtl_output(const eng_mtl *m, int task);

/* Forward + loss + backward. tb has n_tasks entries. Writes (overwrites, does
 * not accumulate) the gradient of sum_t lambda_t L_t into eng_mtl_grads(m),
 * and each L_t into task_loss[t] (may be NULL). Returns ENG_ENONFINITE if a
 * loss is NaN/Inf (gradients are then unspecified; task_loss then holds the
 * losses up to and including the first non-finite one, zeros after it).
 * Rows with row weight 0 are skipped entirely (their label may be NaN).
 * ENG_ESHAPE if n > max_batch; ENG_EINVAL for n < 1, NULL pointers, or a bad
 * label/weight on a live row. */
int eng_mtl_train_batch(eng_mtl *m, const eng_real *x, int n,
                        const eng_task_batch *tb, double *task_loss);

/* eng_mtl_train_batch with dropout: masks are drawn from rng (advanced),
 * which may be NULL only when the spec's dropout is 0 (ENG_EINVAL otherwise).
 * eng_mtl_train_batch(m, ...) is eng_mtl_train_step(m, ..., NULL, ...).
 *
 * Besides a non-finite loss, ENG_ENONFINITE is returned when a task's
 * gradient (its head/tower parameters or what it sends into the trunk)
 * becomes NaN/Inf although its loss is finite. eng_mtl_nonfinite tells
 * which. */
int eng_mtl_train_step(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                       eng_rng *rng, double *task_loss);

/* After ENG_ENONFINITE from a train call: the task at fault (0..n_tasks-1)
 * and *in_gradient (0: its loss, 1: its gradient). Returns -1 (and leaves
 * *in_gradient alone) when the last train call did not fail that way. */
int eng_mtl_nonfinite(const eng_mtl *m, int *in_gradient);

/* 1 if any of a[0..n) is NaN or ±Inf. One vectorised pass, no branches. */
int eng_any_nonfinite(const eng_real *a, size_t n);

/* Row-wise softmax of logits [n][k] into probs (may alias). Stable for
 * logits of any magnitude. */
void eng_softmax_rows(const eng_real *logits, int n, int k, eng_real *probs);

#endif
