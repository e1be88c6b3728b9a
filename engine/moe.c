/*
 * engine/moe.c — the mixture of experts between the trunk and the towers:
 * MMoE (Ma et al., KDD 2018), CGC and PLE (Tang et al., RecSys 2020).
 *
 * A level holds X = E + T·k experts: the E shared ones first, then task 0's
 * k, task 1's k, ... Each expert is an MLP of the same widths u_0..u_{L-1}
 * (d = u_{L-1}). Gates, per level: one per task, over the E shared experts
 * then the task's own k (E + k choices); below the last level also a shared
 * gate over all X. With p = softmax(z / τ) the gate's weights,
 *   m_g = (1/Z) Σ_c p_c g_{e(g,c)},   Z = Σ_c p_c = 1,
 * and backward through the softmax with temperature:
 *   dL/dz_c = p_c (dL/dp_c − Σ_c' p_c' dL/dp_c') / τ,  dL/dp_c = <dL/dm_g, g_e>.
 * Level 0 reads the mixture's input (the batch or the trunk's top) for
 * every expert and gate; level v > 0 reads branch b's mixed output of level
 * v − 1: task t's gate and experts read task t's, the shared experts and the
 * shared gate read the shared one. The towers read the last level's m_t.
 *
 * Why it is fast: each expert layer is ONE eng__layer whose output row
 * holds all X experts side by side ([n][X·u_l]) and whose weight is the
 * experts' weights stacked ([X·u_l][in]); blocks (eng__block) say which
 * rows read which input. At level 0 every expert reads the same input, so
 * the first layer of all experts is one gemm; deeper layers are one gemm
 * per expert on column slices of the layer below (a block-diagonal weight),
 * and the gates of level 0 are one more gemm. Bias, activation and dropout
 * then run once over the whole [n][X·u_l] buffer, and the bias gradient of
 * all experts is one column-sum pass. The mixing itself is T·(E + k)·d
 * multiply-adds a row, done in plain loops.
 *
 * Parameters, in block order from p_off on, level by level: for each expert
 * layer l the stacked weight [X·u_l][in_l] then the stacked bias [X·u_l];
 * then the gates' stacked weight [Σ choices][in] and bias. Expert j's weight
 * at layer l is the contiguous slice of rows [j·u_l, (j+1)·u_l), so every
 * expert and gate is a tensor of its own in checkpoints.
 *
 * The gradient of a task whose loss does not reach the mixture (lambda 0 or
 * no labelled row) is never read: its gate's logit gradient is set to 0, so
 * a one-hot lambda gives exactly that task's gradient. Nothing here
 * allocates after eng__moe_build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/eng__internal.h"

#define MAX_GATES (ENG_MAX_TASKS + 1)

typedef struct {
    int n_exp;                 /* X */
    int n_gates;               /* T, plus the shared gate below the last level */
    int in;                    /* width of this level's inputs */
    int gate_col[MAX_GATES];   /* first column of gate g in the gate buffers */
    int gate_n[MAX_GATES];     /* its choices */
    int gate_tot;
    eng__layer ex[ENG_MAX_LAYERS];
    eng__block ex0[MAX_GATES]; /* blocks of the first expert layer */
    eng__block exd[ENG_MAX_LAYERS][ENG_MOE_MAX_EXPERTS]; /* deeper layers: one per expert */
    eng__layer gate;           /* logits [n][gate_tot] in gate.a, their gradient in gate.d */
    eng__block gb[MAX_GATES];
    eng_real *p;               /* [max_batch][gate_tot] gate weights */
    eng_real *mix[MAX_GATES];  /* [max_batch][d] branch outputs: tasks, then shared */
    eng_real *dmix[MAX_GATES];
} level;

struct eng__moe {
    int T, E, k, V, nl, d, in0;
    int units[ENG_MAX_LAYERS];
    eng_real inv_temp;
    size_t p_off, p_end;
    eng_real *dinput;
    level lv[ENG_MOE_MAX_LEVELS];
};

/* The expert behind choice c of gate g. */
static int expert_of(const eng__moe *mo, int g, int c)
{
    return g == mo->T || c < mo->E ? c : mo->E + g * mo->k + (c - mo->E);
}

static void set_layer(eng__layer *ly, int in, int out, eng_act act, eng_real slope,
                      double dropout, int index, size_t *p)
{
    memset(ly, 0, sizeof *ly);
    ly->kind = ENG__LAYER_DENSE;
    ly->in = in;
    ly->out = out;
    ly->act = act;
    ly->slope = slope;
    ly->dropout = dropout;
    ly->src = -1;
    ly->task = -1;
    ly->index = index;
    ly->w_off = *p;
    ly->b_off = *p + (size_t)out * (size_t)in;
    ly->g_off = ly->b_off + (size_t)out;
    ly->p_end = ly->g_off;
    *p = ly->p_end;
}

int eng__moe_build(const eng_mtl_spec *s, int in, size_t p_off, eng__moe **out)
{
    eng__moe *mo = calloc(1, sizeof *mo);
    if (!mo)
        return ENG_ENOMEM;
    const eng_moe_spec *ms = &s->moe;
    mo->T = s->n_tasks;
    mo->E = ms->experts;
    mo->k = ms->task_experts;
    mo->V = ms->levels > 1 ? ms->levels : 1;
    mo->nl = ms->n_units;
    memcpy(mo->units, ms->units, sizeof mo->units);
    mo->d = ms->units[ms->n_units - 1];
    mo->in0 = in;
    mo->inv_temp = (eng_real)(1.0 / (ms->gate_temperature > 0 ? ms->gate_temperature : 1.0));
    mo->p_off = p_off;
    const eng_real slope = (eng_real)(s->leaky_slope > 0 ? s->leaky_slope : 0.01);
    size_t p = p_off;
    for (int v = 0; v < mo->V; v++) {
        level *L = &mo->lv[v];
        L->n_exp = mo->E + mo->T * mo->k;
        L->n_gates = v < mo->V - 1 ? mo->T + 1 : mo->T;
        L->in = v == 0 ? in : mo->d;
        for (int g = 0; g < L->n_gates; g++) {
            L->gate_n[g] = g < mo->T ? mo->E + mo->k : L->n_exp;
            L->gate_col[g] = L->gate_tot;
            L->gate_tot += L->gate_n[g];
        }
        int width = L->in;
        for (int l = 0; l < mo->nl; l++) {
            set_layer(&L->ex[l], width, L->n_exp * mo->units[l], s->act, slope, s->dropout, l,
                      &p);
            width = mo->units[l];
        }
        set_layer(&L->gate, L->in, L->gate_tot, ENG_ACT_IDENTITY, 0, 0, -1, &p);
    }
    mo->p_end = p;
    *out = mo;
    return ENG_OK;
}

size_t eng__moe_param_end(const eng__moe *mo)
{
    return mo->p_end;
}

int eng__moe_width(const eng__moe *mo)
{
    return mo->d;
}

static size_t round_to(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

/* Walks the buffers in one fixed order; with work == NULL only counts. */
static size_t lay_out(eng__moe *mo, eng_real *work, int max_batch, size_t align)
{
    size_t used = 0, sizes[7];
    const size_t mb = (size_t)max_batch;
#define TAKE(ptr, count)                                                                  \
    do {                                                                                  \
        size_t c_ = (count);                                                              \
        if (work)                                                                         \
            (ptr) = c_ ? work + used : NULL;                                              \
        used += round_to(c_, align);                                                      \
    } while (0)
    for (int v = 0; v < mo->V; v++) {
        level *L = &mo->lv[v];
        eng__layer *lys[ENG_MAX_LAYERS + 1];
        for (int l = 0; l < mo->nl; l++)
            lys[l] = &L->ex[l];
        lys[mo->nl] = &L->gate;
        for (int l = 0; l <= mo->nl; l++) {
            eng__layer *ly = lys[l];
            eng_real **bufs[7] = {&ly->a, &ly->d, &ly->h, &ly->z, &ly->u, &ly->rstd, &ly->mask};
            eng__layer_workspace(ly, max_batch, sizes);
            for (int i = 0; i < 7; i++)
                TAKE(*bufs[i], sizes[i]);
        }
        TAKE(L->p, mb * (size_t)L->gate_tot);
        for (int g = 0; g < L->n_gates; g++) {
            TAKE(L->mix[g], mb * (size_t)mo->d);
            TAKE(L->dmix[g], mb * (size_t)mo->d);
        }
    }
#undef TAKE
    return used;
}

size_t eng__moe_workspace(const eng__moe *mo, int max_batch, size_t align)
{
    return lay_out((eng__moe *)mo, NULL, max_batch, align);
}

void eng__moe_bind(eng__moe *mo, eng_real *work, int max_batch, size_t align, eng_real *dinput)
{
    lay_out(mo, work, max_batch, align);
    mo->dinput = dinput;
    for (int v = 0; v < mo->V; v++) {
        level *L = &mo->lv[v];
        const level *P = v > 0 ? &mo->lv[v - 1] : NULL;
        const int X = L->n_exp, u0 = mo->units[0];
        /* first expert layer: level 0 reads one input for all experts;
         * above, the shared experts read the shared branch and each task's
         * experts its own */
        eng__layer *e0 = &L->ex[0];
        e0->blocks = L->ex0;
        if (!P) {
            L->ex0[0] = (eng__block){NULL, L->in, dinput, 1, 0, X * u0};
            e0->nblocks = 1;
        } else {
            L->ex0[0] = (eng__block){P->mix[mo->T], mo->d, P->dmix[mo->T], 1, 0, mo->E * u0};
            e0->nblocks = 1;
            for (int t = 0; t < mo->T && mo->k > 0; t++)
                L->ex0[e0->nblocks++] = (eng__block){P->mix[t], mo->d, P->dmix[t], 1,
                                                     (mo->E + t * mo->k) * u0, mo->k * u0};
        }
        /* deeper layers: expert j reads its own slice of the layer below */
        for (int l = 1; l < mo->nl; l++) {
            const int ui = mo->units[l - 1], uo = mo->units[l];
            for (int j = 0; j < X; j++)
                L->exd[l][j] = (eng__block){L->ex[l - 1].a + (size_t)j * ui, X * ui,
                                            L->ex[l - 1].d + (size_t)j * ui, 0, j * uo, uo};
            L->ex[l].blocks = L->exd[l];
            L->ex[l].nblocks = X;
        }
        /* gates: one gemm at level 0, one per gate (its branch) above */
        L->gate.blocks = L->gb;
        if (!P) {
            L->gb[0] = (eng__block){NULL, L->in, dinput, 1, 0, L->gate_tot};
            L->gate.nblocks = 1;
        } else {
            for (int g = 0; g < L->n_gates; g++)
                L->gb[g] = (eng__block){P->mix[g], mo->d, P->dmix[g], 1, L->gate_col[g],
                                        L->gate_n[g]};
            L->gate.nblocks = L->n_gates;
        }
    }
}

/* ---- tensors ------------------------------------------------------------ */

static int level_tensors(const eng__moe *mo, const level *L)
{
    return 2 * mo->nl * L->n_exp + 2 * L->n_gates;
}

int eng__moe_ntensors(const eng__moe *mo)
{
    int n = 0;
    for (int v = 0; v < mo->V; v++)
        n += level_tensors(mo, &mo->lv[v]);
    return n;
}

static void prefix(const eng__moe *mo, int v, char *buf, size_t len)
{
    /* names are short by construction (indices below 100): a truncation
     * cannot happen, and the return values say so to the compiler */
    if (mo->V > 1 && snprintf(buf, len, "levels.%d.", v) < 0)
        buf[0] = 0;
    else if (mo->V <= 1 && len)
        buf[0] = 0;
}

static void expert_name(const eng__moe *mo, int v, int j, char *buf, size_t len)
{
    char pf[16];
    prefix(mo, v, pf, sizeof pf);
    if (j < mo->E)
        snprintf(buf, len, "%sexperts.%d", pf, j);
    else
        snprintf(buf, len, "%stask_experts.%d.%d", pf, (j - mo->E) / mo->k, (j - mo->E) % mo->k);
}

/* Tensor order (free: init and the block follow memory order, checkpoints
 * go by name), per level: the gates, then layer by layer the task experts
 * and last the shared experts. So the last rank-2 tensor before the tasks'
 * is a shared expert's top layer — what gradnorm (weighting.c) balances as
 * "the last shared layer", one that every task's loss reaches. */
void eng__moe_tensor(const eng__moe *mo, int i, eng_tensor_info *t)
{
    int v = 0;
    while (i >= level_tensors(mo, &mo->lv[v]))
        i -= level_tensors(mo, &mo->lv[v++]);
    const level *L = &mo->lv[v];
    const int X = L->n_exp;
    char base[40], pf[16];
    memset(t, 0, sizeof *t);
    prefix(mo, v, pf, sizeof pf);
    if (i < 2 * L->n_gates) {
        const int g = i % L->n_gates, bias = i >= L->n_gates;
        if (g < mo->T)
            snprintf(t->name, sizeof t->name, "%sgates.%d.%s", pf, g, bias ? "bias" : "weight");
        else
            snprintf(t->name, sizeof t->name, "%sgates.shared.%s", pf, bias ? "bias" : "weight");
        t->rank = bias ? 1 : 2;
        t->shape[0] = L->gate_n[g];
        t->shape[1] = bias ? 0 : L->in;
        t->offset = bias ? L->gate.b_off + (size_t)L->gate_col[g]
                         : L->gate.w_off + (size_t)L->gate_col[g] * L->in;
        t->count = (size_t)L->gate_n[g] * (bias ? 1 : (size_t)L->in);
        return;
    }
    i -= 2 * L->n_gates;
    const int l = i / (2 * X), r = i % (2 * X), bias = r >= X;
    const int j = (r % X + mo->E) % X; /* task experts first, shared last */
    const eng__layer *ly = &L->ex[l];
    const int u = mo->units[l];
    expert_name(mo, v, j, base, sizeof base);
    if (snprintf(t->name, sizeof t->name, "%s.%d.%s", base, l, bias ? "bias" : "weight") < 0)
        t->name[0] = 0;
    t->rank = bias ? 1 : 2;
    t->shape[0] = u;
    t->shape[1] = bias ? 0 : ly->in;
    t->offset = bias ? ly->b_off + (size_t)j * u : ly->w_off + (size_t)j * u * ly->in;
    t->count = bias ? (size_t)u : (size_t)u * ly->in;
}

static void normal_fill(eng_real *w, size_t count, double std, eng_rng *rng)
{
    for (size_t k = 0; k < count; k++)
        w[k] = (eng_real)(std * eng_rng_normal(rng));
}

void eng__moe_init(const eng__moe *mo, eng_real *params, eng_rng *rng)
{
    for (int v = 0; v < mo->V; v++) {
        const level *L = &mo->lv[v];
        for (int l = 0; l < mo->nl; l++) {
            const eng__layer *ly = &L->ex[l];
            const int u = mo->units[l];
            const int he = ly->act == ENG_ACT_RELU || ly->act == ENG_ACT_LEAKY_RELU ||
                           ly->act == ENG_ACT_GELU;
            const double std = he ? sqrt(2.0 / ly->in) : sqrt(2.0 / (ly->in + u));
            normal_fill(params + ly->w_off, (size_t)ly->out * ly->in, std, rng);
            memset(params + ly->b_off, 0, (size_t)ly->out * sizeof(eng_real));
        }
        for (int g = 0; g < L->n_gates; g++)
            normal_fill(params + L->gate.w_off + (size_t)L->gate_col[g] * L->in,
                        (size_t)L->gate_n[g] * L->in, sqrt(2.0 / (L->in + L->gate_n[g])), rng);
        memset(params + L->gate.b_off, 0, (size_t)L->gate_tot * sizeof(eng_real));
    }
}

/* ---- forward and backward ----------------------------------------------- */

eng_real *eng__moe_out(const eng__moe *mo, int t)
{
    return mo->lv[mo->V - 1].mix[t];
}

eng_real *eng__moe_dout(const eng__moe *mo, int t)
{
    return mo->lv[mo->V - 1].dmix[t];
}

/* p = softmax(z / τ) over each gate's columns, row by row. */
static void gate_softmax(const eng__moe *mo, level *L, int n)
{
    const int tot = L->gate_tot;
    for (int i = 0; i < n; i++)
        for (int g = 0; g < L->n_gates; g++) {
            const eng_real *z = L->gate.a + (size_t)i * tot + L->gate_col[g];
            eng_real *p = L->p + (size_t)i * tot + L->gate_col[g];
            const int C = L->gate_n[g];
            eng_real mx = z[0];
            for (int c = 1; c < C; c++)
                mx = z[c] > mx ? z[c] : mx;
            eng_real sum = 0;
            for (int c = 0; c < C; c++) {
                p[c] = ENG__EXP((z[c] - mx) * mo->inv_temp);
                sum += p[c];
            }
            const eng_real inv = (eng_real)1 / sum;
            for (int c = 0; c < C; c++)
                p[c] *= inv;
        }
}

void eng__moe_forward(eng__moe *mo, const eng_real *x, int n, const eng_real *params,
                      eng_rng *rng)
{
    const int d = mo->d;
    for (int v = 0; v < mo->V; v++) {
        level *L = &mo->lv[v];
        for (int l = 0; l < mo->nl; l++)
            eng__layer_forward(&L->ex[l], x, n, params, rng);
        eng__layer_forward(&L->gate, x, n, params, NULL);
        gate_softmax(mo, L, n);
        const eng_real *A = L->ex[mo->nl - 1].a;
        const size_t lda = (size_t)L->n_exp * d;
        for (int g = 0; g < L->n_gates; g++)
            for (int i = 0; i < n; i++) {
                eng_real *o = L->mix[g] + (size_t)i * d;
                const eng_real *p = L->p + (size_t)i * L->gate_tot + L->gate_col[g];
                const eng_real *ai = A + (size_t)i * lda;
                memset(o, 0, (size_t)d * sizeof *o);
                for (int c = 0; c < L->gate_n[g]; c++) {
                    const eng_real w = p[c], *a = ai + (size_t)expert_of(mo, g, c) * d;
                    for (int j = 0; j < d; j++)
                        o[j] += w * a[j];
                }
            }
    }
}

void eng__moe_backward(eng__moe *mo, const eng_real *x, int n, const eng_real *params,
                       eng_real *grads, const int *fed)
{
    const int d = mo->d;
    if (mo->dinput)
        memset(mo->dinput, 0, (size_t)n * mo->in0 * sizeof(eng_real));
    for (int v = mo->V - 1; v >= 0; v--) {
        level *L = &mo->lv[v];
        if (v > 0)
            for (int g = 0; g < mo->lv[v - 1].n_gates; g++)
                memset(mo->lv[v - 1].dmix[g], 0, (size_t)n * d * sizeof(eng_real));
        const eng_real *A = L->ex[mo->nl - 1].a;
        eng_real *DA = L->ex[mo->nl - 1].d;
        const size_t lda = (size_t)L->n_exp * d;
        const int tot = L->gate_tot;
        memset(DA, 0, (size_t)n * lda * sizeof *DA);
        for (int g = 0; g < L->n_gates; g++) {
            const int live = v < mo->V - 1 || fed[g];
            for (int i = 0; i < n; i++) {
                eng_real *dz = L->gate.d + (size_t)i * tot + L->gate_col[g];
                const int C = L->gate_n[g];
                if (!live) {
                    memset(dz, 0, (size_t)C * sizeof *dz);
                    continue;
                }
                const eng_real *p = L->p + (size_t)i * tot + L->gate_col[g];
                const eng_real *dm = L->dmix[g] + (size_t)i * d;
                eng_real s = 0;
                for (int c = 0; c < C; c++) {
                    const size_t off = (size_t)i * lda + (size_t)expert_of(mo, g, c) * d;
                    const eng_real *a = A + off, w = p[c];
                    eng_real *da = DA + off, dp = 0;
                    for (int j = 0; j < d; j++) {
                        dp += dm[j] * a[j];
                        da[j] += w * dm[j];
                    }
                    dz[c] = dp;
                    s += w * dp;
                }
                for (int c = 0; c < C; c++)
                    dz[c] = p[c] * (dz[c] - s) * mo->inv_temp;
            }
        }
        eng__layer_backward(&L->gate, x, n, params, grads, NULL, 0);
        for (int l = mo->nl - 1; l >= 0; l--)
            eng__layer_backward(&L->ex[l], x, n, params, grads, NULL, 0);
    }
}

/* ---- gate queries ------------------------------------------------------- */

int eng__moe_levels(const eng__moe *mo)
{
    return mo->V;
}

int eng__moe_gate_size(const eng__moe *mo, int lvl, int gate)
{
    if (lvl < 0 || lvl >= mo->V || gate < 0 || gate >= mo->lv[lvl].n_gates)
        return 0;
    return mo->lv[lvl].gate_n[gate];
}

int eng__moe_gate_name(const eng__moe *mo, int lvl, int gate, int c, char *buf, size_t len)
{
    if (!buf || c < 0 || c >= eng__moe_gate_size(mo, lvl, gate))
        return ENG_EINVAL;
    expert_name(mo, lvl, expert_of(mo, gate, c), buf, len);
    return ENG_OK;
}

int eng__moe_gate_sums(const eng__moe *mo, int lvl, int gate, int n, double *sum)
{
    const int C = eng__moe_gate_size(mo, lvl, gate);
    if (!sum || C == 0)
        return ENG_EINVAL;
    const level *L = &mo->lv[lvl];
    for (int i = 0; i < n; i++) {
        const eng_real *p = L->p + (size_t)i * L->gate_tot + L->gate_col[gate];
        for (int c = 0; c < C; c++)
            sum[c] += (double)p[c];
    }
    return ENG_OK;
}
