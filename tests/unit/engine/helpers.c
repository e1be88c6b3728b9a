/*
 * tests/unit/engine/helpers.c — a naive reference forward pass that does
 * not share any code with engine/mtl.c or engine/dense.c, and the demo
 * model and batch. (Allocation counting: tests/unit/alloc_count.c.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static double ref_act(eng_act act, double slope, double z)
{
    switch (act) {
    case ENG_ACT_RELU: return z > 0 ? z : 0;
    case ENG_ACT_LEAKY_RELU: return z > 0 ? z : slope * z;
    case ENG_ACT_TANH: return tanh(z);
    case ENG_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case ENG_ACT_GELU: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
    default: return z;
    }
}

/* y[n][out] = act(LN(x[n][in] · wᵀ + b)) (LN when gamma is not NULL),
 * tracking min |input of a kinked activation|. */
static void ref_dense(const eng_real *w, const eng_real *b, const eng_real *gamma,
                      const eng_real *beta, const double *x, int n, int in, int out, eng_act act,
                      double slope, double *y, double *min_abs)
{
    for (int i = 0; i < n; i++) {
        double *yi = y + (size_t)i * out;
        for (int o = 0; o < out; o++) {
            double z = (double)b[o];
            for (int k = 0; k < in; k++)
                z += (double)w[(size_t)o * in + k] * x[(size_t)i * in + k];
            yi[o] = z;
        }
        if (gamma) {
            double mean = 0, var = 0;
            for (int o = 0; o < out; o++)
                mean += yi[o] / out;
            for (int o = 0; o < out; o++)
                var += (yi[o] - mean) * (yi[o] - mean) / out;
            for (int o = 0; o < out; o++)
                yi[o] = (double)gamma[o] * (yi[o] - mean) / sqrt(var + 1e-5) + (double)beta[o];
        }
        for (int o = 0; o < out; o++) {
            if ((act == ENG_ACT_RELU || act == ENG_ACT_LEAKY_RELU) && min_abs &&
                fabs(yi[o]) < *min_abs)
                *min_abs = fabs(yi[o]);
            yi[o] = ref_act(act, slope, yi[o]);
        }
    }
}

/* Reads the tensors of one hidden or head layer from the table. */
static void layer_tensors(const eng_mtl *m, const eng_real *params, int *tensor, int ln,
                          const eng_real **w, const eng_real **b, const eng_real **g,
                          const eng_real **be)
{
    eng_tensor_info ti;
    eng_mtl_tensor(m, (*tensor)++, &ti);
    *w = params + ti.offset;
    eng_mtl_tensor(m, (*tensor)++, &ti);
    *b = params + ti.offset;
    *g = *be = NULL;
    if (ln) {
        eng_mtl_tensor(m, (*tensor)++, &ti);
        *g = params + ti.offset;
        eng_mtl_tensor(m, (*tensor)++, &ti);
        *be = params + ti.offset;
    }
}

void ref_forward(const eng_mtl *m, const eng_real *params, const eng_real *x, int n,
                 double **out, double *min_abs_pre)
{
    const eng_mtl_spec *s = eng_mtl_get_spec(m);
    const double slope = s->leaky_slope > 0 ? s->leaky_slope : 0.01;
    double min_abs = INFINITY;
    int tensor = 0;
    const eng_real *w, *b, *g, *be;

    double *h = malloc(sizeof(double) * (size_t)n * s->n_in);
    for (size_t k = 0; k < (size_t)n * s->n_in; k++)
        h[k] = (double)x[k];
    int width = s->n_in;
    for (int l = 0; l < s->n_trunk; l++) {
        layer_tensors(m, params, &tensor, s->layer_norm, &w, &b, &g, &be);
        double *y = malloc(sizeof(double) * (size_t)n * s->trunk[l]);
        ref_dense(w, b, g, be, h, n, width, s->trunk[l], s->act, slope, y, &min_abs);
        free(h);
        h = y;
        width = s->trunk[l];
    }
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        double *gg = malloc(sizeof(double) * (size_t)n * width);
        memcpy(gg, h, sizeof(double) * (size_t)n * width);
        int wd = width;
        for (int l = 0; l < ts->n_tower; l++) {
            layer_tensors(m, params, &tensor, s->layer_norm, &w, &b, &g, &be);
            double *y = malloc(sizeof(double) * (size_t)n * ts->tower[l]);
            ref_dense(w, b, g, be, gg, n, wd, ts->tower[l], s->act, slope, y, &min_abs);
            free(gg);
            gg = y;
            wd = ts->tower[l];
        }
        layer_tensors(m, params, &tensor, 0, &w, &b, &g, &be);
        ref_dense(w, b, NULL, NULL, gg, n, wd, ts->n_out, ENG_ACT_IDENTITY, 0, out[t], NULL);
        free(gg);
    }
    free(h);
    if (min_abs_pre)
        *min_abs_pre = min_abs;
}

void demo_spec(eng_mtl_spec *s)
{
    memset(s, 0, sizeof *s);
    s->n_in = 5;
    s->n_trunk = 2;
    s->trunk[0] = 7;
    s->trunk[1] = 6;
    s->act = ENG_ACT_RELU;
    s->n_tasks = 3;
    s->task[0].kind = ENG_HEAD_CLASSIFICATION;
    s->task[0].n_out = 3;
    s->task[0].n_tower = 1;
    s->task[0].tower[0] = 4;
    s->task[1].kind = ENG_HEAD_REGRESSION;
    s->task[1].n_out = 1;
    s->task[2].kind = ENG_HEAD_CLASSIFICATION;
    s->task[2].n_out = 2;
}

void demo_batch_fill(demo_batch *b, eng_rng *r)
{
    static const eng_real rw2[DEMO_N] = {1, 0, 0.5, 2, 0, 1, 1, 1.5};
    for (int i = 0; i < DEMO_N * 5; i++)
        b->x[i] = (eng_real)eng_rng_normal(r);
    for (int i = 0; i < DEMO_N; i++) {
        b->y0[i] = (eng_real)eng_rng_below(r, 3);
        b->y1[i] = (eng_real)eng_rng_normal(r);
        b->y2[i] = (eng_real)(i % 2);
        b->rw2[i] = rw2[i];
    }
    b->y2[1] = NAN; /* masked row: its label must never be read */
    b->cw2[0] = 0.3;
    b->cw2[1] = 2.0;
    b->tb[0] = (eng_task_batch){.y = b->y0, .lambda = 1.0};
    b->tb[1] = (eng_task_batch){.y = b->y1, .lambda = 0.7};
    b->tb[2] = (eng_task_batch){.y = b->y2, .row_weight = b->rw2, .class_weight = b->cw2,
                                .lambda = 1.3};
}
