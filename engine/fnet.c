/*
 * engine/fnet.c — the functional MLP of fnet.h: forward, backward, two
 * losses and the exact Hessian-vector product.
 *
 * Notation (row-major batches, n rows): A_0 = X, Z_l = A_{l−1} W_lᵀ + b_l,
 * A_l = σ(Z_l) (l < L), A_L = Z_L. Backward: Δ_L = ∂ℓ/∂Z_L,
 * gW_l = Δ_lᵀ A_{l−1}, gb_l = Σ_rows Δ_l, G_{l−1} = Δ_l W_l,
 * Δ_{l−1} = σ'(Z_{l−1}) ⊙ G_{l−1}.
 *
 * Hessian-vector product (Pearlmutter 1994, the R-operator R{·} = d/dr ·
 * (θ + r v) at r = 0), v = (V_l, vb_l):
 *   R-forward   R{A_0} = 0,  R{Z_l} = A_{l−1} V_lᵀ + R{A_{l−1}} W_lᵀ + vb_l,
 *               R{A_l} = σ'(Z_l) ⊙ R{Z_l};
 *   at the loss R{Δ_L} = ∇²_z ℓ · R{Z_L}: MSE (2/n) R{Z_L}; softmax-CE
 *               p ⊙ (R{z} − ⟨p, R{z}⟩) / n per row (= (diag p − p pᵀ) R{z}/n);
 *   R-backward  R{gW_l} = R{Δ_l}ᵀ A_{l−1} + Δ_lᵀ R{A_{l−1}},  R{gb_l} = Σ R{Δ_l},
 *               R{Δ_{l−1}} = σ'(Z_{l−1}) ⊙ (R{Δ_l} W_l + Δ_l V_l)
 *                            + σ''(Z_{l−1}) ⊙ R{Z_{l−1}} ⊙ G_{l−1}.
 * Every product is one GEMM over the batch. The tape keeps A_l, Δ_l and
 * G_l of the forward/backward the product is taken at, so an HVP costs the
 * R passes only (about twice a forward/backward), never a recomputation.
 * σ' and σ'' are read off the stored activation (ReLU: a > 0; tanh: 1 − a²),
 * so no pre-activation is kept. Layers whose V_l, vb_l are zero while
 * R{A_{l−1}} is zero (ANIL's head-only directions) skip their R-forward
 * GEMMs: the result is the same, exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/eng__internal.h"
#include "engine/fnet.h"

typedef struct {
    int n;                 /* rows of the last forward (0 = never used) */
    int has_loss;          /* a loss + backward is on the tape */
    eng_fnet_loss kind;
    eng_real *a[ENG_FNET_MAX_LAYERS + 1]; /* a[0] = copy of x; a[L] = output */
    eng_real *d[ENG_FNET_MAX_LAYERS + 1]; /* Δ_l, l = 1..L */
    eng_real *g[ENG_FNET_MAX_LAYERS + 1]; /* G_l = ∂ℓ/∂A_l, l = 1..L−1 */
    eng_real *p;                          /* softmax of the output (CE) */
} tape_t;

struct eng_fnet {
    eng_fnet_spec s;
    int max_rows;
    int n_tapes;
    size_t np;
    size_t w_off[ENG_FNET_MAX_LAYERS + 1], b_off[ENG_FNET_MAX_LAYERS + 1];
    tape_t *tapes;
    /* R-pass scratch, shared by all tapes */
    eng_real *rz[ENG_FNET_MAX_LAYERS + 1]; /* R{Z_l} */
    eng_real *ra[ENG_FNET_MAX_LAYERS + 1]; /* R{A_l}, l < L */
    eng_real *rd, *rd2;                    /* R{Δ} of the current and next layer */
    eng_real *block;                       /* the one allocation */
};

int eng_fnet_new(const eng_fnet_spec *spec, int max_rows, int n_tapes, eng_fnet **out)
{
    if (!spec || !out || spec->n_layers < 1 || spec->n_layers > ENG_FNET_MAX_LAYERS ||
        max_rows < 1 || max_rows > (1 << 24) || n_tapes < 1 || n_tapes > 4096 ||
        (spec->act != ENG_FNET_RELU && spec->act != ENG_FNET_TANH))
        return ENG_EINVAL;
    const int L = spec->n_layers;
    int dmax = 0;
    for (int l = 0; l <= L; l++) {
        if (spec->dims[l] < 1 || spec->dims[l] > 65536)
            return ENG_EINVAL;
        if (spec->dims[l] > dmax)
            dmax = spec->dims[l];
    }
    eng_fnet *f = calloc(1, sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    f->s = *spec;
    f->max_rows = max_rows;
    f->n_tapes = n_tapes;
    size_t off = 0;
    for (int l = 1; l <= L; l++) {
        f->w_off[l] = off;
        off += (size_t)spec->dims[l] * (size_t)spec->dims[l - 1];
        f->b_off[l] = off;
        off += (size_t)spec->dims[l];
    }
    f->np = off;

    /* Count the block: per tape a[0..L], d[1..L], g[1..L-1], p; then scratch. */
    const size_t R = (size_t)max_rows;
    size_t per_tape = R * (size_t)spec->dims[L]; /* p */
    for (int l = 0; l <= L; l++)
        per_tape += R * (size_t)spec->dims[l];
    for (int l = 1; l <= L; l++)
        per_tape += R * (size_t)spec->dims[l] * (l < L ? 2 : 1);
    size_t scratch = 2 * R * (size_t)dmax;
    for (int l = 1; l <= L; l++)
        scratch += R * (size_t)spec->dims[l] * (l < L ? 2 : 1);
    size_t total = per_tape * (size_t)n_tapes + scratch;
    f->tapes = calloc((size_t)n_tapes, sizeof *f->tapes);
    f->block = calloc(total, sizeof *f->block);
    if (!f->tapes || !f->block) {
        eng_fnet_free(f);
        return ENG_ENOMEM;
    }
    eng_real *q = f->block;
    for (int t = 0; t < n_tapes; t++) {
        tape_t *tp = &f->tapes[t];
        for (int l = 0; l <= L; l++) {
            tp->a[l] = q;
            q += R * (size_t)spec->dims[l];
        }
        for (int l = 1; l <= L; l++) {
            tp->d[l] = q;
            q += R * (size_t)spec->dims[l];
            if (l < L) {
                tp->g[l] = q;
                q += R * (size_t)spec->dims[l];
            }
        }
        tp->p = q;
        q += R * (size_t)spec->dims[L];
    }
    for (int l = 1; l <= L; l++) {
        f->rz[l] = q;
        q += R * (size_t)spec->dims[l];
        if (l < L) {
            f->ra[l] = q;
            q += R * (size_t)spec->dims[l];
        }
    }
    f->rd = q;
    q += R * (size_t)dmax;
    f->rd2 = q;
    *out = f;
    return ENG_OK;
}

void eng_fnet_free(eng_fnet *f)
{
    if (!f)
        return;
    free(f->tapes);
    free(f->block);
    free(f);
}

const eng_fnet_spec *eng_fnet_get_spec(const eng_fnet *f)
{
    return &f->s;
}

size_t eng_fnet_nparams(const eng_fnet *f)
{
    return f->np;
}

int eng_fnet_max_rows(const eng_fnet *f)
{
    return f->max_rows;
}

size_t eng_fnet_weight_offset(const eng_fnet *f, int l)
{
    return f->w_off[l];
}

size_t eng_fnet_bias_offset(const eng_fnet *f, int l)
{
    return f->b_off[l];
}

void eng_fnet_init(const eng_fnet *f, eng_real *params, eng_rng *rng)
{
    /* torch.nn.Linear's default: weights and biases U(−1/√fan_in, 1/√fan_in).
     * Nonzero biases matter for low-dimensional inputs: with zero biases
     * every first-layer ReLU of a 1-D input bends at x = 0. */
    const int L = f->s.n_layers;
    for (int l = 1; l <= L; l++) {
        int in = f->s.dims[l - 1], out = f->s.dims[l];
        double bound = 1.0 / sqrt((double)in);
        eng_real *w = params + f->w_off[l], *b = params + f->b_off[l];
        for (size_t i = 0; i < (size_t)in * (size_t)out; i++)
            w[i] = (eng_real)(bound * (2 * eng_rng_uniform(rng) - 1));
        for (int i = 0; i < out; i++)
            b[i] = (eng_real)(bound * (2 * eng_rng_uniform(rng) - 1));
    }
}

/* C = op(A) op(B) + beta C (beta 0 or 1), row-major: every product of this
 * file goes through eng__gemm (gemm.c), which runs the small per-task
 * products as vectorised loops and hands larger ones to BLAS. */
static void gemm(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
                 const eng_real *B, int ldb, eng_real beta, eng_real *C, int ldc)
{
    eng__gemm(ta, tb, M, N, K, A, lda, B, ldb, beta != 0, C, ldc);
}

/* y [n][k] += b [k] on every row (row loops: an index i % k per element
 * costs a division each). */
static void add_bias_rows(eng_real *restrict y, const eng_real *restrict b, int n, int k)
{
    for (int i = 0; i < n; i++) {
        eng_real *restrict yi = y + (size_t)i * k;
        for (int j = 0; j < k; j++)
            yi[j] += b[j];
    }
}

/* z = x·Wᵀ (+ b) over n rows; then σ if hidden. */
ENG__CLONES static void layer_forward(const eng_fnet *f, int l, const eng_real *params,
                                      const eng_real *x, int n, eng_real *y)
{
    const int in = f->s.dims[l - 1], out = f->s.dims[l];
    const eng_real *w = params + f->w_off[l], *b = params + f->b_off[l];
    gemm(0, 1, n, out, in, x, in, w, in, (eng_real)0, y, out);
    if (l == f->s.n_layers) {
        add_bias_rows(y, b, n, out);
    } else if (f->s.act == ENG_FNET_RELU) {
        for (int i = 0; i < n; i++) {
            eng_real *yi = y + (size_t)i * out;
            for (int j = 0; j < out; j++) {
                eng_real v = yi[j] + b[j];
                yi[j] = v < 0 ? 0 : v;
            }
        }
    } else {
        for (int i = 0; i < n; i++) {
            eng_real *yi = y + (size_t)i * out;
            for (int j = 0; j < out; j++)
                yi[j] = (eng_real)tanh((double)(yi[j] + b[j]));
        }
    }
}

int eng_fnet_forward(eng_fnet *f, int tape, const eng_real *params, const eng_real *x, int n)
{
    if (!f || !params || !x || tape < 0 || tape >= f->n_tapes || n < 1)
        return ENG_EINVAL;
    if (n > f->max_rows)
        return ENG_ESHAPE;
    tape_t *tp = &f->tapes[tape];
    memcpy(tp->a[0], x, (size_t)n * (size_t)f->s.dims[0] * sizeof *x);
    for (int l = 1; l <= f->s.n_layers; l++)
        layer_forward(f, l, params, tp->a[l - 1], n, tp->a[l]);
    tp->n = n;
    tp->has_loss = 0;
    return ENG_OK;
}

const eng_real *eng_fnet_output(const eng_fnet *f, int tape)
{
    return f->tapes[tape].a[f->s.n_layers];
}

/* Column sums of m [n][k] into out [k] (overwrite), eight columns at a
 * time held in registers over the rows: summing row after row into out
 * itself re-reads each store at another width (a store-forwarding stall
 * per row on the 40-wide layers). Each column is still summed in row
 * order, so the result is the same. */
static void colsum(const eng_real *restrict m, int n, int k, eng_real *restrict out)
{
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        eng_real acc[8] = {0};
        for (int i = 0; i < n; i++) {
            const eng_real *restrict mi = m + (size_t)i * k + j;
            for (int u = 0; u < 8; u++)
                acc[u] += mi[u];
        }
        for (int u = 0; u < 8; u++)
            out[j + u] = acc[u];
    }
    for (; j < k; j++) {
        eng_real acc = 0;
        for (int i = 0; i < n; i++)
            acc += m[(size_t)i * k + j];
        out[j] = acc;
    }
}

/* dst = src ⊙ [a > 0] for ReLU outputs a (never negative but for −0), as
 * integer bit operations: a float compare or a bool-to-float conversion is
 * "control flow" to GCC without -fno-trapping-math and the loop would stay
 * scalar and branchy (a mispredict on half the units); these vectorise.
 * For the bits u of a non-NaN a, a > 0 ⟺ the sign bits of ~u and −u are
 * both set; the mask keeps or clears every bit of src. dst may be src. */
static void relu_mask(eng_real *dst, const eng_real *src, const eng_real *restrict a, size_t cnt)
{
#ifdef ENG_DOUBLE
    typedef uint64_t bits_t;
#else
    typedef uint32_t bits_t;
#endif
    const int top = (int)(8 * sizeof(bits_t)) - 1;
    for (size_t i = 0; i < cnt; i++) {
        bits_t u, v;
        memcpy(&u, &a[i], sizeof u);
        memcpy(&v, &src[i], sizeof v);
        bits_t keep = (bits_t)0 - ((~u & ((bits_t)0 - u)) >> top);
        v &= keep;
        memcpy(&dst[i], &v, sizeof v);
    }
}

/* Backward from tp->d[L] (already holding Δ_L): fills grad, Δ_l and G_l. */
ENG__CLONES static void backward_tape(eng_fnet *f, tape_t *tp, const eng_real *params,
                                      eng_real *grad)
{
    const int L = f->s.n_layers, n = tp->n;
    for (int l = L; l >= 1; l--) {
        const int in = f->s.dims[l - 1], out = f->s.dims[l];
        const eng_real *dl = tp->d[l];
        gemm(1, 0, out, in, n, dl, out, tp->a[l - 1], in, (eng_real)0, grad + f->w_off[l], in);
        colsum(dl, n, out, grad + f->b_off[l]);
        if (l == 1)
            break;
        eng_real *restrict g = tp->g[l - 1], *restrict dn = tp->d[l - 1];
        const eng_real *restrict a = tp->a[l - 1];
        gemm(0, 0, n, in, out, dl, out, params + f->w_off[l], in, (eng_real)0, g, in);
        const size_t cnt = (size_t)n * (size_t)in;
        if (f->s.act == ENG_FNET_RELU) {
            relu_mask(dn, g, a, cnt);
        } else {
            for (size_t i = 0; i < cnt; i++)
                dn[i] = g[i] * (1 - a[i] * a[i]);
        }
    }
}

int eng_fnet_backward(eng_fnet *f, int tape, const eng_real *params, const eng_real *dout,
                      eng_real *grad)
{
    if (!f || !params || !dout || !grad || tape < 0 || tape >= f->n_tapes ||
        f->tapes[tape].n < 1)
        return ENG_EINVAL;
    tape_t *tp = &f->tapes[tape];
    memcpy(tp->d[f->s.n_layers], dout,
           (size_t)tp->n * (size_t)f->s.dims[f->s.n_layers] * sizeof *dout);
    backward_tape(f, tp, params, grad);
    tp->has_loss = 0;
    return ENG_OK;
}

int eng_fnet_loss_grad(eng_fnet *f, int tape, const eng_real *params, const eng_real *x,
                       const eng_real *y, int n, eng_fnet_loss kind, double *loss,
                       eng_real *grad)
{
    if (!y || !loss || (kind != ENG_FNET_MSE && kind != ENG_FNET_CE))
        return ENG_EINVAL;
    int rc = eng_fnet_forward(f, tape, params, x, n);
    if (rc != ENG_OK)
        return rc;
    tape_t *tp = &f->tapes[tape];
    const int L = f->s.n_layers, k = f->s.dims[L];
    const eng_real *z = tp->a[L];
    eng_real *d = tp->d[L];
    const double inv_n = 1.0 / n;
    double sum = 0;
    if (kind == ENG_FNET_MSE) {
        const size_t cnt = (size_t)n * (size_t)k;
        for (size_t i = 0; i < cnt; i++) {
            double e = (double)z[i] - (double)y[i];
            sum += e * e;
            d[i] = (eng_real)(2.0 * inv_n * e);
        }
    } else {
        for (int i = 0; i < n; i++) {
            const eng_real *zi = z + (size_t)i * k;
            eng_real *pi = tp->p + (size_t)i * k, *di = d + (size_t)i * k;
            double yv = (double)y[i];
            if (!(yv >= 0 && yv < k))
                return ENG_EINVAL;
            int c = (int)yv;
            double mx = zi[0];
            for (int j = 1; j < k; j++)
                if (zi[j] > mx)
                    mx = zi[j];
            double se = 0;
            for (int j = 0; j < k; j++)
                se += exp((double)zi[j] - mx);
            double lse = mx + log(se);
            sum += lse - (double)zi[c];
            for (int j = 0; j < k; j++) {
                double pj = exp((double)zi[j] - lse);
                pi[j] = (eng_real)pj;
                di[j] = (eng_real)(inv_n * (pj - (j == c)));
            }
        }
    }
    *loss = sum * inv_n;
    if (!isfinite(*loss))
        return ENG_ENONFINITE;
    if (grad) {
        backward_tape(f, tp, params, grad);
        tp->has_loss = 1;
        tp->kind = kind;
    }
    return ENG_OK;
}

static int all_zero(const eng_real *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0)
            return 0;
    return 1;
}

ENG__CLONES int eng_fnet_hvp(eng_fnet *f, int tape, const eng_real *params, const eng_real *v,
                             eng_real *hv)
{
    if (!f || !params || !v || !hv || v == hv || tape < 0 || tape >= f->n_tapes ||
        !f->tapes[tape].has_loss)
        return ENG_EINVAL;
    tape_t *tp = &f->tapes[tape];
    const int L = f->s.n_layers, n = tp->n;
    const int relu = f->s.act == ENG_FNET_RELU;
    /* ra_live[l]: R{A_l} may be nonzero (else it is exactly zero and skipped) */
    int ra_live[ENG_FNET_MAX_LAYERS + 1] = {0};

    /* R-forward */
    for (int l = 1; l <= L; l++) {
        const int in = f->s.dims[l - 1], out = f->s.dims[l];
        const size_t cnt = (size_t)n * (size_t)out;
        const eng_real *vw = v + f->w_off[l], *vb = v + f->b_off[l];
        eng_real *rz = f->rz[l];
        int live = ra_live[l - 1] || !all_zero(vw, (size_t)in * (size_t)out + (size_t)out);
        if (!live) {
            memset(rz, 0, cnt * sizeof *rz);
            if (l < L)
                memset(f->ra[l], 0, cnt * sizeof *rz);
            continue;
        }
        gemm(0, 1, n, out, in, tp->a[l - 1], in, vw, in, (eng_real)0, rz, out);
        if (ra_live[l - 1])
            gemm(0, 1, n, out, in, f->ra[l - 1], in, params + f->w_off[l], in, (eng_real)1, rz,
                 out);
        add_bias_rows(rz, vb, n, out);
        if (l < L) {
            const eng_real *restrict a = tp->a[l];
            eng_real *restrict ra = f->ra[l];
            if (relu)
                relu_mask(ra, rz, a, cnt);
            else
                for (size_t i = 0; i < cnt; i++)
                    ra[i] = rz[i] * (1 - a[i] * a[i]);
            ra_live[l] = 1;
        }
    }

    /* R at the loss */
    const int k = f->s.dims[L];
    const eng_real inv_n = (eng_real)(1.0 / n);
    eng_real *rd = f->rd, *rd2 = f->rd2;
    if (tp->kind == ENG_FNET_MSE) {
        const size_t cnt = (size_t)n * (size_t)k;
        for (size_t i = 0; i < cnt; i++)
            rd[i] = 2 * inv_n * f->rz[L][i];
    } else {
        for (int i = 0; i < n; i++) {
            const eng_real *pi = tp->p + (size_t)i * k, *ri = f->rz[L] + (size_t)i * k;
            eng_real *o = rd + (size_t)i * k;
            eng_real dot = 0;
            for (int j = 0; j < k; j++)
                dot += pi[j] * ri[j];
            for (int j = 0; j < k; j++)
                o[j] = inv_n * pi[j] * (ri[j] - dot);
        }
    }

    /* R-backward */
    for (int l = L; l >= 1; l--) {
        const int in = f->s.dims[l - 1], out = f->s.dims[l];
        gemm(1, 0, out, in, n, rd, out, tp->a[l - 1], in, (eng_real)0, hv + f->w_off[l], in);
        if (ra_live[l - 1])
            gemm(1, 0, out, in, n, tp->d[l], out, f->ra[l - 1], in, (eng_real)1,
                 hv + f->w_off[l], in);
        colsum(rd, n, out, hv + f->b_off[l]);
        if (l == 1)
            break;
        /* rd2 = R{Δ_l} W_l + Δ_l V_l, then the activation's terms */
        gemm(0, 0, n, in, out, rd, out, params + f->w_off[l], in, (eng_real)0, rd2, in);
        gemm(0, 0, n, in, out, tp->d[l], out, v + f->w_off[l], in, (eng_real)1, rd2, in);
        const size_t cnt = (size_t)n * (size_t)in;
        const eng_real *restrict a = tp->a[l - 1];
        if (relu) {
            relu_mask(rd2, rd2, a, cnt);
        } else {
            const eng_real *g = tp->g[l - 1], *rz = f->rz[l - 1];
            for (size_t i = 0; i < cnt; i++) {
                eng_real s1 = 1 - a[i] * a[i];
                rd2[i] = s1 * rd2[i] - 2 * a[i] * s1 * rz[i] * g[i];
            }
        }
        eng_real *t = rd;
        rd = rd2;
        rd2 = t;
    }
    return ENG_OK;
}
