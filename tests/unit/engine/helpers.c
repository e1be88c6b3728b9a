/*
 * tests/unit/engine/helpers.c — allocation counting (via the linker's
 * --wrap, see CMakeLists.txt) and a naive reference forward pass that does
 * not share any code with engine/mtl.c or engine/dense.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static long alloc_count;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

void *__wrap_malloc(size_t n)
{
    alloc_count++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    alloc_count++;
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    alloc_count++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    alloc_count++;
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    alloc_count++;
    return __real_posix_memalign(p, a, n);
}

long test_alloc_count(void)
{
    return alloc_count;
}

/* y[n][out] = x[n][in] · wᵀ + b, optionally ReLU, tracking min |z|. */
static void ref_dense(const eng_real *w, const eng_real *b, const double *x, int n, int in,
                      int out, int relu, double *y, double *min_abs)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double z = (double)b[o];
            for (int k = 0; k < in; k++)
                z += (double)w[(size_t)o * in + k] * x[(size_t)i * in + k];
            if (relu) {
                if (min_abs && fabs(z) < *min_abs)
                    *min_abs = fabs(z);
                z = z > 0 ? z : 0;
            }
            y[(size_t)i * out + o] = z;
        }
}

void ref_forward(const eng_mtl *m, const eng_real *params, const eng_real *x, int n,
                 double **out, double *min_abs_pre)
{
    const eng_mtl_spec *s = eng_mtl_get_spec(m);
    const int relu = s->act == ENG_ACT_RELU;
    double min_abs = INFINITY;
    int tensor = 0;
    eng_tensor_info wi, bi;

    double *h = malloc(sizeof(double) * (size_t)n * s->n_in);
    for (size_t k = 0; k < (size_t)n * s->n_in; k++)
        h[k] = (double)x[k];
    int width = s->n_in;
    for (int l = 0; l < s->n_trunk; l++) {
        eng_mtl_tensor(m, tensor++, &wi);
        eng_mtl_tensor(m, tensor++, &bi);
        double *y = malloc(sizeof(double) * (size_t)n * s->trunk[l]);
        ref_dense(params + wi.offset, params + bi.offset, h, n, width, s->trunk[l], relu, y,
                  &min_abs);
        free(h);
        h = y;
        width = s->trunk[l];
    }
    for (int t = 0; t < s->n_tasks; t++) {
        const eng_task_spec *ts = &s->task[t];
        double *g = malloc(sizeof(double) * (size_t)n * width);
        memcpy(g, h, sizeof(double) * (size_t)n * width);
        int w = width;
        for (int l = 0; l < ts->n_tower; l++) {
            eng_mtl_tensor(m, tensor++, &wi);
            eng_mtl_tensor(m, tensor++, &bi);
            double *y = malloc(sizeof(double) * (size_t)n * ts->tower[l]);
            ref_dense(params + wi.offset, params + bi.offset, g, n, w, ts->tower[l], relu, y,
                      &min_abs);
            free(g);
            g = y;
            w = ts->tower[l];
        }
        eng_mtl_tensor(m, tensor++, &wi);
        eng_mtl_tensor(m, tensor++, &bi);
        ref_dense(params + wi.offset, params + bi.offset, g, n, w, ts->n_out, 0, out[t], NULL);
        free(g);
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
