/*
 * engine/mtl.c — the multi-task network of mtl.h: a shared trunk, then per
 * task a tower and a linear head, trained on sum_t lambda_t L_t.
 *
 * The model is a flat list of dense layers in parameter-block order: trunk
 * layers, then for each task its tower layers and its head. Each layer knows
 * which layer feeds it (-1 = the input batch), so forward is one walk down
 * the list and backward is a walk back up each task's chain followed by the
 * trunk. Every task chain writes dL/dh into the trunk's top buffer, the first
 * with gemm beta 0 and the rest with beta 1, which sums the task gradients
 * without a separate pass.
 *
 * Memory is three allocations made once in eng_mtl_new: the parameter block,
 * the gradient block (same layout), and one workspace holding, per layer, the
 * activated outputs and their gradients for max_batch rows (ReLU's mask is
 * read off the activated output, so no pre-activation buffer is kept).
 * Forward and train_batch only read and write these.
 *
 * A task that contributes no gradient (lambda 0, or every row weighted 0)
 * has its chain's gradients zeroed and is not back-propagated at all.
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

typedef struct {
    int in, out;
    eng_act act;
    int src;       /* layer feeding this one; -1 = the input batch */
    int task;      /* -1 = trunk */
    int index;     /* position within the trunk or tower; -1 = head */
    size_t w_off;  /* weight [out][in] in the parameter block */
    size_t b_off;  /* bias [out] right after it */
    eng_real *a;   /* [max_batch][out] activated output */
    eng_real *d;   /* [max_batch][out] gradient w.r.t. a, then w.r.t. the pre-activation */
} layer;

struct eng_mtl {
    eng_mtl_spec spec;
    int max_batch;
    int n_layers;
    int top;                         /* last trunk layer, -1 when n_trunk == 0 */
    int first[ENG_MAX_TASKS];        /* first layer of each task's chain */
    int head[ENG_MAX_TASKS];         /* its head (last layer of the chain) */
    layer L[MAX_NLAYERS];
    size_t nparams;
    eng_real *params;
    eng_real *grads;
    eng_real *work;
    const eng_real *x;               /* the batch of the last forward */
    int n;
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
    if (s->act != ENG_ACT_IDENTITY && s->act != ENG_ACT_RELU)
        return ENG_EINVAL;
    for (int l = 0; l < s->n_trunk; l++)
        if (!valid_width(s->trunk[l]))
            return ENG_EINVAL;
    if (s->n_tasks < 1 || s->n_tasks > ENG_MAX_TASKS)
        return ENG_EINVAL;
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        if (ts->kind == ENG_HEAD_CLASSIFICATION) {
            if (ts->n_out < 2 || !valid_width(ts->n_out))
                return ENG_EINVAL;
        } else if (ts->kind == ENG_HEAD_REGRESSION) {
            if (ts->n_out != 1)
                return ENG_EINVAL;
        } else {
            return ENG_EINVAL;
        }
        if (ts->n_tower < 0 || ts->n_tower > ENG_MAX_LAYERS)
            return ENG_EINVAL;
        for (int l = 0; l < ts->n_tower; l++)
            if (!valid_width(ts->tower[l]))
                return ENG_EINVAL;
    }
    return ENG_OK;
}

static void add_layer(eng_mtl *m, int in, int out, eng_act act, int src, int task, int index)
{
    layer *ly = &m->L[m->n_layers++];
    ly->in = in;
    ly->out = out;
    ly->act = act;
    ly->src = src;
    ly->task = task;
    ly->index = index;
    ly->w_off = m->nparams;
    ly->b_off = m->nparams + (size_t)out * (size_t)in;
    m->nparams = ly->b_off + (size_t)out;
}

/* Lays out the layers and parameter offsets; no allocation. */
static void build_layers(eng_mtl *m)
{
    const eng_mtl_spec *s = &m->spec;
    int width = s->n_in, src = -1;
    for (int l = 0; l < s->n_trunk; l++) {
        add_layer(m, width, s->trunk[l], s->act, src, -1, l);
        width = s->trunk[l];
        src = m->n_layers - 1;
    }
    m->top = src;
    const int trunk_width = width;
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        int w = trunk_width, sr = m->top;
        m->first[t] = m->n_layers;
        for (int l = 0; l < ts->n_tower; l++) {
            add_layer(m, w, ts->tower[l], s->act, sr, t, l);
            w = ts->tower[l];
            sr = m->n_layers - 1;
        }
        add_layer(m, w, ts->n_out, ENG_ACT_IDENTITY, sr, t, -1);
        m->head[t] = m->n_layers - 1;
    }
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
    build_layers(m);

    /* Widths are capped at 2^24 and there are at most MAX_NLAYERS layers, so
     * these sums fit comfortably in a 64-bit size_t; the byte counts are
     * still checked against SIZE_MAX for 32-bit hosts. */
    size_t work_elems = 0;
    for (int l = 0; l < m->n_layers; l++)
        work_elems += 2 * round_up((size_t)max_batch * (size_t)m->L[l].out);
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
        size_t sz = round_up((size_t)max_batch * (size_t)m->L[l].out);
        m->L[l].a = p;
        m->L[l].d = p + sz;
        p += 2 * sz;
    }
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
    return 2 * m->n_layers;
}

int eng_mtl_tensor(const eng_mtl *m, int i, eng_tensor_info *out)
{
    if (!m || !out || i < 0 || i >= 2 * m->n_layers)
        return ENG_EINVAL;
    const layer *ly = &m->L[i / 2];
    const int is_bias = i % 2;
    const char *kind = is_bias ? "bias" : "weight";
    eng_tensor_info t;
    memset(&t, 0, sizeof t);
    if (ly->task < 0)
        snprintf(t.name, sizeof t.name, "trunk.%d.%s", ly->index, kind);
    else if (ly->index >= 0)
        snprintf(t.name, sizeof t.name, "tasks.%d.tower.%d.%s", ly->task, ly->index, kind);
    else
        snprintf(t.name, sizeof t.name, "tasks.%d.head.%s", ly->task, kind);
    if (is_bias) {
        t.rank = 1;
        t.shape[0] = ly->out;
        t.offset = ly->b_off;
        t.count = (size_t)ly->out;
    } else {
        t.rank = 2;
        t.shape[0] = ly->out;
        t.shape[1] = ly->in;
        t.offset = ly->w_off;
        t.count = (size_t)ly->out * (size_t)ly->in;
    }
    *out = t;
    return ENG_OK;
}

void eng_mtl_init(eng_mtl *m, eng_rng *rng)
{
    for (int l = 0; l < m->n_layers; l++) {
        const layer *ly = &m->L[l];
        const int is_head = ly->index < 0;
        double std = (!is_head && ly->act == ENG_ACT_RELU)
                         ? sqrt(2.0 / ly->in)                 /* He */
                         : sqrt(2.0 / (ly->in + ly->out));    /* Xavier */
        eng_real *w = m->params + ly->w_off;
        size_t count = (size_t)ly->out * (size_t)ly->in;
        for (size_t k = 0; k < count; k++)
            w[k] = (eng_real)(std * eng_rng_normal(rng));
        memset(m->params + ly->b_off, 0, (size_t)ly->out * sizeof(eng_real));
    }
}

static const eng_real *layer_input(const eng_mtl *m, const layer *ly)
{
    return ly->src < 0 ? m->x : m->L[ly->src].a;
}

int eng_mtl_forward(eng_mtl *m, const eng_real *x, int n)
{
    if (!m || !x || n < 1)
        return ENG_EINVAL;
    if (n > m->max_batch)
        return ENG_ESHAPE;
    m->x = x;
    m->n = n;
    for (int l = 0; l < m->n_layers; l++) {
        layer *ly = &m->L[l];
        eng__dense_forward(layer_input(m, ly), n, ly->in, ly->out, m->params + ly->w_off,
                           m->params + ly->b_off, ly->act, ly->a);
    }
    return ENG_OK;
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
        eng_real *dx = ly->src < 0 ? NULL : m->L[ly->src].d;
        eng__dense_backward(layer_input(m, ly), m->n, ly->in, ly->out, m->params + ly->w_off,
                            ly->a, ly->act, ly->d, m->grads + ly->w_off, m->grads + ly->b_off,
                            dx, l == lo ? accumulate_out : 0);
    }
}

static void zero_grads(eng_mtl *m, int lo, int hi)
{
    size_t from = m->L[lo].w_off, to = m->L[hi].b_off + (size_t)m->L[hi].out;
    memset(m->grads + from, 0, (to - from) * sizeof(eng_real));
}

int eng_mtl_train_batch(eng_mtl *m, const eng_real *x, int n, const eng_task_batch *tb,
                        double *task_loss)
{
    if (!m || !tb)
        return ENG_EINVAL;
    for (int t = 0; t < m->spec.n_tasks; t++)
        if (!tb[t].y || isnan(tb[t].lambda) || isinf(tb[t].lambda))
            return ENG_EINVAL;
    int rc = eng_mtl_forward(m, x, n);
    if (rc != ENG_OK)
        return rc;

    double losses[ENG_MAX_TASKS]; /* copied out on success, or up to the diverged task */
    int trunk_fed = 0;            /* has any task written dL/dh into the trunk's top? */
    for (int t = 0; t < m->spec.n_tasks; t++) {
        const eng_task_spec *ts = &m->spec.task[t];
        layer *hd = &m->L[m->head[t]];
        const double lambda = tb[t].lambda;
        eng_real *dz = lambda != 0 ? hd->d : NULL;
        double loss = 0, wsum = 0;
        if (ts->kind == ENG_HEAD_CLASSIFICATION)
            rc = eng__loss_softmax_ce(hd->a, n, ts->n_out, tb[t].y, tb[t].row_weight,
                                      tb[t].class_weight, lambda, dz, &loss, &wsum);
        else
            rc = eng__loss_mse(hd->a, n, tb[t].y, tb[t].row_weight, lambda, dz, &loss, &wsum);
        if (rc != ENG_OK)
            return rc;
        if (isnan(loss) || isinf(loss)) {
            /* Report which task diverged: the finite losses before it, its
             * own non-finite value, zeros after. */
            if (task_loss) {
                memcpy(task_loss, losses, (size_t)t * sizeof *task_loss);
                task_loss[t] = loss;
                for (int u = t + 1; u < m->spec.n_tasks; u++)
                    task_loss[u] = 0;
            }
            return ENG_ENONFINITE;
        }
        losses[t] = loss;
        if (!dz || wsum == 0) {
            zero_grads(m, m->first[t], m->head[t]);
            continue;
        }
        backward_chain(m, m->first[t], m->head[t], trunk_fed);
        if (m->top >= 0)
            trunk_fed = 1;
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
