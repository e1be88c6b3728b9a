/*
 * engine/meta.h — meta-learning over a functional MLP (engine/fnet.h):
 * learn an initialisation θ (or an embedding) from many tasks so that a new
 * task is learned from a few examples.
 *
 * A task is a support set (what adaptation may look at) and a query set
 * (what the adapted model is judged on). For every algorithm but ProtoNets
 * adaptation is K steps of gradient descent on the support loss L_s:
 *
 *   maml     θ_{k+1} = θ_k − α ∇L_s(θ_k); the meta-gradient of L_q(θ_K)
 *            with respect to θ_0 is exact (second order): v ← ∇L_q(θ_K),
 *            then for k = K−1..0: v ← v − α H_s(θ_k) v, with H_s·v a
 *            Hessian-vector product (eng_fnet_hvp) — memory linear in K.
 *   fomaml   the same inner loop; meta-gradient ∇L_q(θ_K) (Hessian dropped).
 *   anil     the inner loop adapts the head (last layer) only:
 *            θ_{k+1} = θ_k − α P ∇L_s(θ_k), P the head mask; exact adjoint
 *            v ← v − α H_s(θ_k)(P v).
 *   metasgd  α is a learned per-parameter vector: θ_{k+1} = θ_k − α ⊙ ∇L_s;
 *            adjoint v ← v − H_s(θ_k)(α ⊙ v), and ∂/∂α gains −∇L_s(θ_k) ⊙ v_{k+1}.
 *            The meta-parameters are [θ | α] (twice the network's size).
 *   reptile  "gradient" θ_0 − θ_K; the outer step is plain SGD with step ε,
 *            θ ← θ + ε · mean_tasks(θ_K − θ).
 *   protonet no inner loop: prototypes c_j = mean of the support embeddings
 *            f(x) of class j; logits −‖f(x_q) − c_j‖²; softmax-CE on the
 *            query; the gradient flows through both support and query
 *            embeddings.
 *
 * Meta-batch: eng_meta_step averages the task meta-gradients of a batch of
 * tasks and takes one outer step (Adam from engine/optim.h; SGD for
 * Reptile). Everything is allocated by eng_meta_new: a step allocates
 * nothing. Not thread-safe: one eng_meta per thread.
 */
#ifndef ENG_META_H
#define ENG_META_H

#include "engine/fnet.h"
#include "engine/optim.h"

typedef enum {
    ENG_META_MAML = 0,
    ENG_META_FOMAML,
    ENG_META_REPTILE,
    ENG_META_ANIL,
    ENG_META_METASGD,
    ENG_META_PROTONET,
} eng_meta_alg;

typedef struct {
    eng_meta_alg alg;
    eng_fnet_spec net;     /* protonet: the embedding network */
    eng_fnet_loss loss;    /* MSE (regression) or CE (classification; protonet ignores it) */
    int inner_steps;       /* K >= 0 during meta-training (ignored by protonet) */
    double inner_lr;       /* α; Meta-SGD: the initial value of every α_i */
    int max_support;       /* rows per support set (>= 1) */
    int max_query;         /* rows per query set (>= 1) */
    int max_ways;          /* protonet: classes per episode (>= 2) */
} eng_meta_cfg;

/* One task. Labels are class indices as reals (CE, protonet) or targets
 * [n][d_L] (MSE). Protonet labels are 0..ways−1 and every class must have
 * at least one support row. */
typedef struct {
    const eng_real *xs, *ys;
    int ns;
    const eng_real *xq, *yq;
    int nq;
    int ways; /* protonet only */
} eng_meta_task;

typedef struct eng_meta eng_meta;

int eng_meta_new(const eng_meta_cfg *cfg, eng_meta **out); /* ENG_EINVAL, ENG_ENOMEM */
void eng_meta_free(eng_meta *m);                            /* NULL is fine */

const eng_meta_cfg *eng_meta_get_cfg(const eng_meta *m);
eng_fnet *eng_meta_net(eng_meta *m);       /* borrowed */
size_t eng_meta_nparams(const eng_meta *m); /* meta-parameters: net, + α for metasgd */
size_t eng_meta_net_nparams(const eng_meta *m);

/* Initial meta-parameters: eng_fnet_init, then α_i = inner_lr (metasgd). */
void eng_meta_init(eng_meta *m, eng_real *theta, eng_rng *rng);

/* Adds scale · (this task's meta-gradient) to grad [nparams]; *query_loss
 * gets the query loss after adaptation (before, for protonet: there is no
 * adaptation). ENG_ESHAPE for sets larger than the configuration,
 * ENG_EINVAL for bad labels, ENG_ENONFINITE if a loss is not finite. */
int eng_meta_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t, double scale,
                       eng_real *grad, double *query_loss);

/* grad = mean over the n tasks of their meta-gradients; *mean_loss their
 * mean query loss. */
int eng_meta_batch_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *tasks, int n,
                        eng_real *grad, double *mean_loss);

/* One outer step over a meta-batch: eng_meta_batch_grad into grad, then
 * Adam (opt, moments am/av, step t >= 1) — or, for reptile, SGD with step
 * opt->lr. grad, am, av are caller-owned [nparams]. */
int eng_meta_step(eng_meta *m, eng_real *theta, const eng_meta_task *tasks, int n,
                  const eng_adam_cfg *opt, eng_real *grad, eng_real *am, eng_real *av, long t,
                  double *mean_loss);

/* Fast weights: fast [net_nparams] = θ adapted by `steps` inner steps on
 * the support set with the algorithm's rule (plain SGD at α for maml,
 * fomaml, reptile; head only for anil; α ⊙ g for metasgd). protonet: a copy. */
int eng_meta_adapt(eng_meta *m, const eng_real *theta, const eng_real *xs, const eng_real *ys,
                   int ns, int steps, eng_real *fast);

/* Meta-test one task: for each steps[i] (ascending), the query loss and,
 * for classification, accuracy after steps[i] adaptation steps (protonet:
 * the same for every entry). accuracy may be NULL. If adaptation diverges
 * (a non-finite loss), the entries from that step count on are NaN and the
 * return is ENG_ENONFINITE; the earlier entries are valid. */
int eng_meta_evaluate(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                      const int *steps, int n_steps, double *loss, double *accuracy);

/* Predictions for x [n][d_0] after adaptation on a support set: protonet
 * writes logits [n][ways] (−squared distances to the prototypes from
 * theta); the others write the network output [n][d_L] at fast weights
 * (from eng_meta_adapt). n <= max_query. */
int eng_meta_predict(eng_meta *m, const eng_real *params, const eng_meta_task *support_only,
                     const eng_real *x, int n, eng_real *out);

#endif
