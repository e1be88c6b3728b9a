/*
 * engine/meta__internal.h — what meta.c, maml.c, reptile.c and protonet.c
 * share (the eng__ prefix marks it; nothing outside engine/ includes it).
 * The meta-learner owns one block of scratch sized by its configuration, so
 * no function below allocates.
 */
#ifndef ENG_META__INTERNAL_H
#define ENG_META__INTERNAL_H

#include "engine/meta.h"

struct eng_meta {
    eng_meta_cfg c;
    eng_fnet *net;
    size_t np;          /* network parameters */
    size_t nmeta;       /* meta-parameters (np, or 2 np for metasgd) */
    size_t head_lo;     /* ANIL: the head is params[head_lo .. np) */
    int n_tapes;
    eng_real *theta_k;  /* [(K+1) np]: θ_k at k np, k >= 1 (θ_0 is read in place) */
    eng_real *gk;       /* [max(K,1) np]: ∇L_s(θ_k) (metasgd's α-gradient needs them) */
    eng_real *v, *hv, *u, *fast, *gtmp; /* [np] each */
    /* protonet */
    eng_real *xcat;     /* [(max_support + max_query) d_0] */
    eng_real *proto;    /* [max_ways d_E] prototypes c_j */
    eng_real *dproto;   /* [max_ways d_E] ∂ℓ/∂c_j */
    eng_real *logits;   /* [max_query max_ways], then ∂ℓ/∂logits */
    eng_real *demb;     /* [(max_support + max_query) d_E] ∂ℓ/∂embeddings */
    eng_real *count;    /* [max_ways] support rows per class */
};

/* One inner step of the algorithm's rule on tape: loss and gradient g at p
 * on the support set, then next = p − α g (maml, fomaml, reptile),
 * p − α P g (anil), p − α ⊙ g (metasgd, alpha = the learned vector).
 * next may alias p. */
int eng__meta_inner_step(eng_meta *m, int tape, const eng_real *alpha, const eng_real *p,
                         const eng_real *xs, const eng_real *ys, int ns, eng_real *g,
                         eng_real *next, double *loss);

int eng__maml_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t, double scale,
                        eng_real *grad, double *query_loss);
int eng__reptile_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                           double scale, eng_real *grad, double *query_loss);
int eng__protonet_task_grad(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                            double scale, eng_real *grad, double *query_loss);
/* Embeds support and query (tape 0), builds prototypes and writes logits
 * [nq][ways] into m->logits; *loss and *accuracy (may be NULL) over the
 * query labels if yq is not NULL. */
int eng__protonet_forward(eng_meta *m, const eng_real *theta, const eng_meta_task *t,
                          double *loss, double *accuracy);

#endif
