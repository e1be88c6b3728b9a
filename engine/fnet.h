/*
 * engine/fnet.h — a functional MLP: the network owns no parameters. Every
 * call takes the flat parameter block as an argument, so meta-learning can
 * run the same network at θ_0, at fast weights θ_1..θ_K (explicit copies),
 * or at prototypes' embedding weights, without swapping state in and out.
 *
 *   x = a_0 → z_1 = a_0 W_1ᵀ + b_1 → a_1 = σ(z_1) → … → z_L (linear output)
 *
 * Parameters, flat: [W_1 (d_1×d_0 row-major, PyTorch's nn.Linear layout),
 * b_1 (d_1), W_2, b_2, …, W_L, b_L].
 *
 * What a forward/backward leaves behind (activations a_l, deltas δ_l, the
 * loss's probabilities) lives in a *tape*; a network has a fixed number of
 * tapes chosen at creation (MAML keeps one per inner step plus one for the
 * query, so memory is linear in the inner steps and nothing else). Every
 * buffer is allocated by eng_fnet_new for up to max_rows rows: no function
 * below allocates.
 *
 * Losses (n rows):
 *   ENG_FNET_MSE: ℓ = (1/n) Σ_i Σ_j (z_ij − y_ij)²       (y is [n][d_L])
 *   ENG_FNET_CE:  ℓ = (1/n) Σ_i [logsumexp(z_i) − z_i,y_i] (y is [n] class
 *                 indices stored as reals)
 *
 * eng_fnet_hvp computes the exact Hessian-vector product H·v of the loss
 * with respect to the parameters (Pearlmutter's R-operator: one forward
 * pass of directional derivatives, then one backward pass of them, all as
 * batched GEMMs) — no finite differences, no second tape of the graph.
 *
 * Not thread-safe: one network per thread. Never prints, never allocates
 * after eng_fnet_new.
 */
#ifndef ENG_FNET_H
#define ENG_FNET_H

#include "engine/rng.h"
#include "engine/types.h"

#define ENG_FNET_MAX_LAYERS 9

typedef enum {
    ENG_FNET_RELU = 0, /* σ(z) = max(0, z); σ' = [z > 0]; σ'' = 0 */
    ENG_FNET_TANH = 1, /* σ' = 1 − a²; σ'' = −2a(1 − a²) */
} eng_fnet_act;

typedef enum {
    ENG_FNET_MSE = 0,
    ENG_FNET_CE = 1,
} eng_fnet_loss;

typedef struct {
    int n_layers;                       /* dense layers L, 1..ENG_FNET_MAX_LAYERS */
    int dims[ENG_FNET_MAX_LAYERS + 1];  /* d_0 (inputs) .. d_L (outputs), each 1..65536 */
    eng_fnet_act act;                   /* on hidden layers; the output is linear */
} eng_fnet_spec;

typedef struct eng_fnet eng_fnet;

/* A network for up to max_rows rows per call, with n_tapes tapes (>= 1).
 * *out is new (eng_fnet_free). ENG_EINVAL for a bad spec, ENG_ENOMEM. */
int eng_fnet_new(const eng_fnet_spec *spec, int max_rows, int n_tapes, eng_fnet **out);
void eng_fnet_free(eng_fnet *f); /* NULL is fine */

const eng_fnet_spec *eng_fnet_get_spec(const eng_fnet *f);
size_t eng_fnet_nparams(const eng_fnet *f);
int eng_fnet_max_rows(const eng_fnet *f);
/* Offsets (in elements) of W_l and b_l, l = 1..L. */
size_t eng_fnet_weight_offset(const eng_fnet *f, int l);
size_t eng_fnet_bias_offset(const eng_fnet *f, int l);

/* Writes initial parameters as torch.nn.Linear does by default: every
 * weight and bias U(−1/√fan_in, 1/√fan_in). Deterministic given the rng. */
void eng_fnet_init(const eng_fnet *f, eng_real *params, eng_rng *rng);

/* Forward pass of x [n][d_0] at params on tape. The output [n][d_L] is then
 * at eng_fnet_output(f, tape) until that tape is used again. ENG_EINVAL for
 * a bad tape or n < 1, ENG_ESHAPE for n > max_rows. */
int eng_fnet_forward(eng_fnet *f, int tape, const eng_real *params, const eng_real *x, int n);
const eng_real *eng_fnet_output(const eng_fnet *f, int tape);

/* After eng_fnet_forward on the same tape and params: given dout [n][d_L]
 * = ∂ℓ/∂output, overwrites grad [nparams] with ∂ℓ/∂params. */
int eng_fnet_backward(eng_fnet *f, int tape, const eng_real *params, const eng_real *dout,
                      eng_real *grad);

/* Forward, loss and (if grad is not NULL) backward in one call; *loss gets
 * ℓ. Leaves the tape ready for eng_fnet_hvp at the same params. ENG_EINVAL
 * for a class index outside 0..d_L−1, ENG_ENONFINITE if ℓ is NaN/Inf. */
int eng_fnet_loss_grad(eng_fnet *f, int tape, const eng_real *params, const eng_real *x,
                       const eng_real *y, int n, eng_fnet_loss kind, double *loss,
                       eng_real *grad);

/* hv = H v, H the Hessian of the loss of the tape's last eng_fnet_loss_grad
 * (with grad, at the same params) with respect to the parameters. v and hv
 * are [nparams] and must not alias. ENG_EINVAL if the tape holds no loss. */
int eng_fnet_hvp(eng_fnet *f, int tape, const eng_real *params, const eng_real *v,
                 eng_real *hv);

#endif
