/*
 * engine/mtl.h — the multi-task network: a shared MLP trunk, then per task an
 * optional tower (more dense layers) and a linear head.
 *
 *   x ─ trunk (dense+act)* ─ h ─┬─ tower_0 (dense+act)* ─ head_0 (dense, no act) → out_0
 *                               └─ tower_1 ...          ─ head_1                 → out_1
 *
 * A model owns ONE contiguous block of parameters and ONE of gradients (same
 * layout), so optimisers are plain loops over arrays and a checkpoint is a
 * view of the block. Dense weights are stored row-major [out][in] (PyTorch's
 * nn.Linear layout), bias [out] follows its weight.
 *
 * All activations/workspace are allocated by eng_mtl_new for up to max_batch
 * rows: forward and backward never allocate.
 *
 * Loss of task t on a batch (rows i with weight r_i, default 1):
 *   classification: softmax cross-entropy from logits (log-sum-exp),
 *                   l_i = -log softmax(z_i)[y_i], class weights c_y optional;
 *   regression:     l_i = (z_i - y_i)^2   (MSE; out size 1)
 *   L_t = sum_i r_i c_{y_i} l_i / sum_i r_i c_{y_i}   (0 when the denominator is 0)
 * The total minimised is sum_t lambda_t L_t.
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

typedef enum {
    ENG_ACT_IDENTITY = 0,
    ENG_ACT_RELU = 1,
} eng_act;

typedef enum {
    ENG_HEAD_CLASSIFICATION = 0, /* n_out = number of classes (>= 2), softmax CE */
    ENG_HEAD_REGRESSION = 1,     /* n_out = 1, MSE */
} eng_head_kind;

typedef struct {
    eng_head_kind kind;
    int n_out;
    int n_tower;                /* number of tower layers (0 = head on the trunk) */
    int tower[ENG_MAX_LAYERS];  /* their widths */
} eng_task_spec;

typedef struct {
    int n_in;                   /* input width (> 0) */
    int n_trunk;                /* number of trunk layers (0 = heads on the input) */
    int trunk[ENG_MAX_LAYERS];  /* their widths */
    eng_act act;                /* activation after every trunk and tower layer */
    int n_tasks;                /* 1..ENG_MAX_TASKS */
    eng_task_spec task[ENG_MAX_TASKS];
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
                        "tasks.1.head.weight", "tasks.1.head.bias" */
    int rank;        /* 1 (bias) or 2 (weight) */
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

/* He-normal weights (std sqrt(2/fan_in)) for ReLU layers, Xavier-normal for
 * heads; biases 0. Deterministic given the rng state. */
void eng_mtl_init(eng_mtl *m, eng_rng *rng);

/* Forward pass on x [n][n_in] row-major, 1 <= n <= max_batch. Afterwards
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

/* Row-wise softmax of logits [n][k] into probs (may alias). Stable for
 * logits of any magnitude. */
void eng_softmax_rows(const eng_real *logits, int n, int k, eng_real *probs);

#endif
