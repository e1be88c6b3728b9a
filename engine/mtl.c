/*
 * engine/mtl.c — the multi-task network of mtl.h: a shared trunk, then per
 * task a tower and a linear head, trained on sum_t lambda_t L_t.
 *
 * The model is a flat list of layers (layer.c) in parameter-block order: trunk
 * layers, then for each task its tower layers and its head. Each layer knows
 * which layer feeds it (-1 = the input batch), so forward is one walk down
 * the list and backward is a walk back up each task's chain followed by the
 * trunk. Every task chain writes dL/dh into the trunk's top buffer, the first
 * with gemm beta 0 and the rest with beta 1, which sums the task gradients
 * without a separate pass.
 *
 * Memory is three allocations made once in eng_mtl_new: the parameter block,
 * the gradient block (same layout), and one workspace holding, per layer,
 * the buffers eng__layer_workspace asks for (outputs and their gradients for
 * max_batch rows, plus what layer norm, dropout or GELU need). Forward and
 * train_step only read and write these.
 *
 * A task that contributes no gradient (lambda 0, or every row weighted 0)
 * has its chain's gradients zeroed and is not back-propagated at all. After
 * each task's chain is back-propagated, its parameter gradients and the
 * trunk gradient it has added to are checked for NaN/Inf (a branch-free
 * pass over a few small buffers), so a non-finite gradient is pinned on the
 * task that produced it; the trunk's own gradients are left to the
 * optimiser, which checks them in the pass it makes anyway (optim.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/eng__internal.h"

#define MAX_NLAYERS (ENG_MAX_LAYERS + ENG_MAX_TASKS * (ENG_MAX_LAYERS + 1))
/* Workspace buffers start on 64-byte boundaries (a cache line, an AVX-512 vector). */
#define WORK_ALIGN 64
#define WORK_ALIGN_ELEMS (WORK_ALIGN / sizeof(eng_real))

typedef eng__layer layer;

/* One entry of the tensor table: a layer and which of its tensors. */
enum { T_WEIGHT, T_BIAS, T_LN_GAIN, T_LN_BIAS };
typedef struct {
    short layer;
    short what;
} tensor_ref;

struct eng_mtl {
    eng_mtl_spec spec;
    int max_batch;
    int n_layers;
    int top;                         /* last trunk layer, -1 when n_trunk == 0 */
    int first[ENG_MAX_TASKS];        /* first layer of each task's chain */
    int head[ENG_MAX_TASKS];         /* its head (last layer of the chain) */
    layer L[MAX_NLAYERS];
    int n_tensors;                   /* in tensors[]: trunk, then the tasks' layers */
    tensor_ref tensors[4 * MAX_NLAYERS];
    eng__moe *moe;                   /* the mixture, or NULL (moe.c) */
    int moe_t0, moe_nt;              /* its tensors: indices [moe_t0, moe_t0 + moe_nt) */
    size_t moe_off, moe_end;         /* its parameters */
    size_t nparams;
    eng_real *params;
    eng_real *grads;
    eng_real *work;
    const eng_real *x;               /* the batch of the last forward */
    int n;
    int bad_task;                    /* see eng_mtl_nonfinite */
    int bad_in_gradient;
};

static int valid_width(int w)
{
    return w > 0 && w <= (1 << 24);
}

static int check_spec(const eng_mtl_spec *s, int max_batch)
{
    if (!s || max_batch < 1 || max_batch > (1 << 24) || !valid_width(s->n_in))
        return ENG_EINVAL;
    if (s->n_trunk < 0 || s->n_trunk > ENG_MAX_LAYERS)
        return ENG_EINVAL;
    if ((unsigned)s->act > ENG_ACT_GELU)
        return ENG_EINVAL;
    if (!(s->leaky_slope >= 0 && s->leaky_slope < 1) || !(s->dropout >= 0 && s->dropout < 1))
        return ENG_EINVAL; /* also refuses NaN */
    if (s->layer_norm != 0 && s->layer_norm != 1)
        return ENG_EINVAL;
    for (int l = 0; l < s->n_trunk; l++)
        if (!valid_width(s->trunk[l]))
            return ENG_EINVAL;
    if (s->n_tasks < 1 || s->n_tasks > ENG_MAX_TASKS)
        return ENG_EINVAL;
    const eng_moe_spec *mo = &s->moe;
    if (mo->experts != 0 || mo->task_experts != 0 || mo->levels != 0 || mo->n_units != 0) {
        if (mo->experts < 1 || mo->task_experts < 0 || mo->levels < 0 ||
            mo->levels > ENG_MOE_MAX_LEVELS || mo->n_units < 1 || mo->n_units > ENG_MAX_LAYERS ||
            mo->experts + s->n_tasks * mo->task_experts > ENG_MOE_MAX_EXPERTS ||
            !(mo->gate_temperature >= 0 && mo->gate_temperature <= 1e6))
            return ENG_EINVAL;
        for (int l = 0; l < mo->n_units; l++)
            if (!valid_width(mo->units[l]))
                return ENG_EINVAL;
    }
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        if (ts->kind == ENG_HEAD_CLASSIFICATION) {
            if (ts->n_out < 2 || !valid_width(ts->n_out))
                return ENG_EINVAL;
        } else if (ts->kind == ENG_HEAD_REGRESSION || ts->kind == ENG_HEAD_BINARY) {
            if (ts->n_out != 1)
                return ENG_EINVAL;
        } else {
            return ENG_EINVAL;
        }
        if (ts->loss != ENG_LOSS_DEFAULT &&
            !(ts->loss == ENG_LOSS_HUBER && ts->kind == ENG_HEAD_REGRESSION))
            return ENG_EINVAL;
        if (!(ts->label_smoothing >= 0 && ts->label_smoothing < 1) ||
            (ts->label_smoothing > 0 && ts->kind != ENG_HEAD_CLASSIFICATION))
            return ENG_EINVAL;
        if (!(ts->huber_delta >= 0 && ts->huber_delta <= 1e30))
            return ENG_EINVAL;
        if (ts->n_tower < 0 || ts->n_tower > ENG_MAX_LAYERS)
            return ENG_EINVAL;
        for (int l = 0; l < ts->n_tower; l++)
            if (!valid_width(ts->tower[l]))
                return ENG_EINVAL;
    }
    return ENG_OK;
}

static void add_tensor(eng_mtl *m, int l, int what)
{
    m->tensors[m->n_tensors].layer = (short)l;
    m->tensors[m->n_tensors].what = (short)what;
    m->n_tensors++;
}

/* hidden: a trunk or tower layer (activation, layer norm, dropout); else a
 * head (linear). */
static void add_layer(eng_mtl *m, int in, int out, int hidden, int src, int task, int index)
{
    const eng_mtl_spec *s = &m->spec;
    const int l = m->n_layers++;
    layer *ly = &m->L[l];
    ly->kind = ENG__LAYER_DENSE;
    ly->in = in;
    ly->out = out;
    ly->act = hidden ? s->act : ENG_ACT_IDENTITY;
    ly->slope = (eng_real)(s->leaky_slope > 0 ? s->leaky_slope : 0.01);
    ly->ln = hidden && s->layer_norm;
    ly->dropout = hidden ? s->dropout : 0;
    ly->src = src;
    ly->task = task;
    ly->index = index;
    ly->w_off = m->nparams;
    ly->b_off = m->nparams + (size_t)out * (size_t)in;
    ly->g_off = ly->b_off + (size_t)out;
    ly->p_end = ly->g_off + (ly->ln ? 2 * (size_t)out : 0);
    m->nparams = ly->p_end;
    add_tensor(m, l, T_WEIGHT);
    add_tensor(m, l, T_BIAS);
    if (ly->ln) {
        add_tensor(m, l, T_LN_GAIN);
        add_tensor(m, l, T_LN_BIAS);
    }
}

/* Lays out the layers and parameter offsets: trunk, mixture, tasks. Only
 * the mixture's struct is allocated. */
static int build_layers(eng_mtl *m)
{
    const eng_mtl_spec *s = &m->spec;
    int width = s->n_in, src = -1;
    for (int l = 0; l < s->n_trunk; l++) {
        add_layer(m, width, s->trunk[l], 1, src, -1, l);
        width = s->trunk[l];
        src = m->n_layers - 1;
    }
    m->top = src;
    m->moe_t0 = m->n_tensors;
    if (s->moe.experts > 0) {
        int rc = eng__moe_build(s, width, m->nparams, &m->moe);
        if (rc != ENG_OK)
            return rc;
        m->moe_off = m->nparams;
        m->moe_end = m->nparams = eng__moe_param_end(m->moe);
        m->moe_nt = eng__moe_ntensors(m->moe);
        width = eng__moe_width(m->moe);
    }
    const int trunk_width = width;
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        /* the tower reads the trunk, or its task's output of the mixture */
        int w = trunk_width, sr = m->moe ? -2 - t : m->top;
        m->first[t] = m->n_layers;
        for (int l = 0; l < ts->n_tower; l++) {
            add_layer(m, w, ts->tower[l], 1, sr, t, l);
            w = ts->tower[l];
            sr = m->n_layers - 1;
        }
        add_layer(m, w, ts->n_out, 0, sr, t, -1);
        m->head[t] = m->n_layers - 1;
    }
    return ENG_OK;
}

static size_t round_up(size_t n)
{
    return (n + WORK_ALIGN_ELEMS - 1) / WORK_ALIGN_ELEMS * WORK_ALIGN_ELEMS;
}

int eng_mtl_new(const eng_mtl_spec *spec, int max_batch, eng_mtl **out)
{
    int rc = check_spec(spec, max_batch);
    if (rc != ENG_OK)
        return rc;
    eng_mtl *m = calloc(1, sizeof *m);
    if (!m)
        return ENG_ENOMEM;
    m->spec = *spec;
    m->max_batch = max_batch;
    rc = build_layers(m);
    if (rc != ENG_OK)
        goto fail;

    /* Widths are capped at 2^24 and there are at most MAX_NLAYERS layers, so
     * these sums fit comfortably in a 64-bit size_t; the byte counts are
     * still checked against SIZE_MAX for 32-bit hosts. */
    size_t work_elems = 0, sizes[7];
    for (int l = 0; l < m->n_layers; l++) {
        eng__layer_workspace(&m->L[l], max_batch, sizes);
        for (int i = 0; i < 7; i++)
            work_elems += round_up(sizes[i]);
    }
    const size_t moe_work = work_elems;
    if (m->moe)
        work_elems += eng__moe_workspace(m->moe, max_batch, WORK_ALIGN_ELEMS);
    rc = ENG_ENOMEM;
    if (m->nparams > SIZE_MAX / sizeof(eng_real) || work_elems > SIZE_MAX / sizeof(eng_real))
        goto fail;
    m->params = calloc(m->nparams, sizeof(eng_real));
    m->grads = calloc(m->nparams, sizeof(eng_real));
    m->work = aligned_alloc(WORK_ALIGN, work_elems * sizeof(eng_real));
    if (!m->params || !m->grads || !m->work)
        goto fail;
    memset(m->work, 0, work_elems * sizeof(eng_real));
    eng_real *p = m->work;
    for (int l = 0; l < m->n_layers; l++) {
        layer *ly = &m->L[l];
        eng_real **bufs[7] = {&ly->a, &ly->d, &ly->h, &ly->z, &ly->u, &ly->rstd, &ly->mask};
        eng__layer_workspace(ly, max_batch, sizes);
        for (int i = 0; i < 7; i++) {
            *bufs[i] = sizes[i] ? p : NULL;
            p += round_up(sizes[i]);
        }
    }
    if (m->moe)
        eng__moe_bind(m->moe, m->work + moe_work, max_batch, WORK_ALIGN_ELEMS,
                      m->top >= 0 ? m->L[m->top].d : NULL);
    m->bad_task = -1;
    *out = m;
    return ENG_OK;
fail:
    eng_mtl_free(m);
    return rc;
}

void eng_mtl_free(eng_mtl *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->work);
    free(m->moe);
    free(m);
}

const eng_mtl_spec *eng_mtl_get_spec(const eng_mtl *m)
{
    return &m->spec;
}

size_t eng_mtl_nparams(const eng_mtl *m)
{
    return m->nparams;
}

eng_real *eng_mtl_params(eng_mtl *m)
{
    return m->params;
}

eng_real *eng_mtl_grads(eng_mtl *m)
{
    return m->grads;
}

int eng_mtl_ntensors(const eng_mtl *m)
{
    return m->n_tensors + m->moe_nt;
}

int eng_mtl_tensor(const eng_mtl *m, int i, eng_tensor_info *out)
{
    if (!m || !out || i < 0 || i >= m->n_tensors + m->moe_nt)
        return ENG_EINVAL;
    if (i >= m->moe_t0 && i < m->moe_t0 + m->moe_nt) {
        eng__moe_tensor(m->moe, i - m->moe_t0, out);
        return ENG_OK;
    }
    if (i >= m->moe_t0)
        i -= m->moe_nt;
    const layer *ly = &m->L[m->tensors[i].layer];
    const int what = m->tensors[i].what;
    static const char *const kinds[] = {"weight", "bias", "ln.weight", "ln.bias"};
    const char *kind = kinds[what];
    eng_tensor_info t;
    memset(&t, 0, sizeof t);
    if (ly->task < 0)
        snprintf(t.name, sizeof t.name, "trunk.%d.%s", ly->index, kind);
    else if (ly->index >= 0)
        snprintf(t.name, sizeof t.name, "tasks.%d.tower.%d.%s", ly->task, ly->index, kind);
    else
        snprintf(t.name, sizeof t.name, "tasks.%d.head.%s", ly->task, kind);
    if (what == T_WEIGHT) {
        t.rank = 2;
        t.shape[0] = ly->out;
        t.shape[1] = ly->in;
        t.offset = ly->w_off;
        t.count = (size_t)ly->out * (size_t)ly->in;
    } else {
        t.rank = 1;
        t.shape[0] = ly->out;
        t.offset = what == T_BIAS ? ly->b_off : ly->g_off + (what == T_LN_BIAS ? ly->out : 0);
        t.count = (size_t)ly->out;
    }
    *out = t;
    return ENG_OK;
}

void eng_mtl_init(eng_mtl *m, eng_rng *rng)
{
    for (int l = 0; l < m->n_layers; l++) {
        if (l == m->top + 1 && m->moe) /* parameter order: trunk, mixture, tasks */
            eng__moe_init(m->moe, m->params, rng);
        const layer *ly = &m->L[l];
        const int he = ly->act == ENG_ACT_RELU || ly->act == ENG_ACT_LEAKY_RELU ||
                       ly->act == ENG_ACT_GELU; /* heads are identity: Xavier */
        double std = he ? sqrt(2.0 / ly->in)                  /* He */
                        : sqrt(2.0 / (ly->in + ly->out));     /* Xavier */
        eng_real *w = m->params + ly->w_off;
        size_t count = (size_t)ly->out * (size_t)ly->in;
        for (size_t k = 0; k < count; k++)
            w[k] = (eng_real)(std * eng_rng_normal(rng));
        memset(m->params + ly->b_off, 0, (size_t)ly->out * sizeof(eng_real));
        if (ly->ln)
            for (int j = 0; j < ly->out; j++) {
                m->params[ly->g_off + j] = 1;
                m->params[ly->g_off + ly->out + j] = 0;
            }
    }
}

/* A layer's source: -1 the batch, -2 - t task t's output of the mixture. */
static const eng_real *layer_input(const eng_mtl *m, const layer *ly)
{
    return ly->src >= 0 ? m->L[ly->src].a : ly->src == -1 ? m->x : eng__moe_out(m->moe, -2 - ly->src);
}

static eng_real *layer_dinput(const eng_mtl *m, const layer *ly)
{
    return ly->src >= 0 ? m->L[ly->src].d : ly->src == -1 ? NULL : eng__moe_dout(m->moe, -2 - ly->src);
}

/* The mixture's input: the trunk's top, or the batch. */
static const eng_real *moe_input(const eng_mtl *m)
{
    return m->top >= 0 ? m->L[m->top].a : m->x;
}

static int forward(eng_mtl *m, const eng_real *x, int n, eng_rng *rng)
{
    if (!m || !x || n < 1)
        return ENG_EINVAL;
    if (n > m->max_batch)
        return ENG_ESHAPE;
    m->x = x;
    m->n = n;
    for (int l = 0; l < m->n_layers; l++) {
        if (l == m->top + 1 && m->moe)
            eng__moe_forward(m->moe, moe_input(m), n, m->params, rng);
        layer *ly = &m->L[l];
        eng__layer_forward(ly, layer_input(m, ly), n, m->params, rng);
    }
    return ENG_OK;
}

int eng_mtl_forward(eng_mtl *m, const eng_real *x, int n)
{
    return forward(m, x, n, NULL);
}

const eng_real *eng_mtl_output(const eng_mtl *m, int task)
{
    if (!m || task < 0 || task >= m->spec.n_tasks)
        return NULL;
    return m->L[m->head[task]].a;
}

/* Back-propagates layers hi, hi-1, ..., lo (a chain where each feeds the
 * next), whose top gradient is already in L[hi].d. The gradient flowing out
 * of layer lo goes to its source, accumulated when accumulate_out is 1. */
static void backward_chain(eng_mtl *m, int lo, int hi, int accumulate_out)
{
    for (int l = hi; l >= lo; l--) {
        layer *ly = &m->L[l];
        eng_real *dx = layer_dinput(m, ly);
        eng__layer_backward(ly, layer_input(m, ly), m->n, m->params, m->grads, dx,
                            l == lo ? accumulate_out : 0);
    }
}

static void zero_grads(eng_mtl *m, int lo, int hi)
{
    size_t from = m->L[lo].w_off, to = m->L[hi].p_end;
    memset(m->grads + from, 0, (to - from) * sizeof(eng_real));
}

/* Fills task_loss after a failure at task t: the losses up to and including
 * t, zeros after. */
static void report_losses(const eng_mtl *m, const double *losses, int t, double *task_loss)
{
    if (!task_loss)
        return;
    memcpy(task_loss, losses, (size_t)(t + 1) * sizeof *task_loss);
    for (int u = t + 1; u < m->spec.n_tasks; u++)
        task_loss[u] = 0;
}

int eng_mtl_train_step(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                       eng_rng *rng, double *task_loss)
{
    if (!m || !tb)
        return ENG_EINVAL;
    m->bad_task = -1;
    if (m->spec.dropout > 0 && !rng)
        return ENG_EINVAL;
    for (int t = 0; t < m->spec.n_tasks; t++)
        if (!tb[t].y || isnan(tb[t].lambda) || isinf(tb[t].lambda))
            return ENG_EINVAL;
    int rc = forward(m, x, n, m->spec.dropout > 0 ? rng : NULL);
    if (rc != ENG_OK)
        return rc;

    double losses[ENG_MAX_TASKS]; /* copied out on success, or up to the diverged task */
    int trunk_fed = 0;            /* has any task written dL/dh into the trunk's top? */
    int fed[ENG_MAX_TASKS] = {0}; /* with a mixture: has task t written into its output's gradient? */
    const size_t top_count = m->top >= 0 ? (size_t)n * (size_t)m->L[m->top].out : 0;
    const size_t moe_count = m->moe ? (size_t)n * (size_t)eng__moe_width(m->moe) : 0;
    for (int t = 0; t < m->spec.n_tasks; t++) {
        const eng_task_spec *ts = &m->spec.task[t];
        layer *hd = &m->L[m->head[t]];
        const double lambda = tb[t].lambda;
        eng_real *dz = lambda != 0 ? hd->d : NULL;
        double loss = 0, wsum = 0;
        if (ts->kind == ENG_HEAD_CLASSIFICATION)
            rc = eng__loss_softmax_ce(hd->a, n, ts->n_out, tb[t].y, tb[t].row_weight,
                                      tb[t].class_weight, ts->label_smoothing, lambda, dz,
                                      &loss, &wsum);
        else if (ts->kind == ENG_HEAD_BINARY)
            rc = eng__loss_bce(hd->a, n, tb[t].y, tb[t].row_weight, tb[t].class_weight, lambda,
                               dz, &loss, &wsum);
        else
            rc = eng__loss_regression(hd->a, n, tb[t].y, tb[t].row_weight,
                                      ts->loss == ENG_LOSS_HUBER
                                          ? (ts->huber_delta > 0 ? ts->huber_delta : 1.0)
                                          : 0,
                                      lambda, dz, &loss, &wsum);
        if (rc != ENG_OK)
            return rc;
        losses[t] = loss;
        if (isnan(loss) || isinf(loss)) {
            /* Report which task diverged: the finite losses before it, its
             * own non-finite value, zeros after. */
            report_losses(m, losses, t, task_loss);
            m->bad_task = t;
            m->bad_in_gradient = 0;
            return ENG_ENONFINITE;
        }
        if (!dz || wsum == 0) {
            zero_grads(m, m->first[t], m->head[t]);
            continue;
        }
        /* with a mixture each task has its own output to send dL/dm into */
        backward_chain(m, m->first[t], m->head[t], m->moe ? 0 : trunk_fed);
        const size_t from = m->L[m->first[t]].w_off, to = m->L[m->head[t]].p_end;
        if (eng_any_nonfinite(m->grads + from, to - from) ||
            (m->moe && eng_any_nonfinite(eng__moe_dout(m->moe, t), moe_count)) ||
            (!m->moe && m->top >= 0 && eng_any_nonfinite(m->L[m->top].d, top_count))) {
            report_losses(m, losses, t, task_loss);
            m->bad_task = t;
            m->bad_in_gradient = 1;
            return ENG_ENONFINITE;
        }
        fed[t] = 1;
        if (m->top >= 0 || m->moe)
            trunk_fed = 1;
    }
    if (m->moe) {
        if (trunk_fed)
            eng__moe_backward(m->moe, moe_input(m), n, m->params, m->grads, fed);
        else
            memset(m->grads + m->moe_off, 0, (m->moe_end - m->moe_off) * sizeof(eng_real));
    }
    if (m->top >= 0) {
        if (trunk_fed)
            backward_chain(m, 0, m->top, 0);
        else
            zero_grads(m, 0, m->top);
    }
    if (task_loss)
        memcpy(task_loss, losses, (size_t)m->spec.n_tasks * sizeof *task_loss);
    return ENG_OK;
}

int eng_mtl_train_batch(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                        double *task_loss)
{
    return eng_mtl_train_step(m, x, n, tb, NULL, task_loss);
}

int eng_mtl_nonfinite(const eng_mtl *m, int *in_gradient)
{
    if (!m || m->bad_task < 0)
        return -1;
    if (in_gradient)
        *in_gradient = m->bad_in_gradient;
    return m->bad_task;
}

int eng_mtl_gate_levels(const eng_mtl *m)
{
    return m && m->moe ? eng__moe_levels(m->moe) : 0;
}

int eng_mtl_gate_size(const eng_mtl *m, int level, int g)
{
    return m && m->moe ? eng__moe_gate_size(m->moe, level, g) : 0;
}

int eng_mtl_gate_expert(const eng_mtl *m, int level, int g, int c, char *buf, size_t len)
{
    if (!m || !m->moe)
        return ENG_EINVAL;
    return eng__moe_gate_name(m->moe, level, g, c, buf, len);
}

int eng_mtl_gate_sums(const eng_mtl *m, int level, int g, double *sum)
{
    if (!m || !m->moe)
        return ENG_EINVAL;
    return eng__moe_gate_sums(m->moe, level, g, m->n, sum);
}

int eng_any_nonfinite(const eng_real *a, size_t n)
{
    /* An exponent of all ones is Inf or NaN. Integer compares and an OR
     * reduction vectorise without fast-math, unlike isfinite() in a loop. */
#ifdef ENG_DOUBLE
    typedef uint64_t bits_t;
    const bits_t e = 0x7ff0000000000000ULL;
#else
    typedef uint32_t bits_t;
    const bits_t e = 0x7f800000U;
#endif
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        bits_t b;
        memcpy(&b, &a[i], sizeof b);
        acc |= (b & e) == e;
    }
    return acc != 0;
}
