/*
 * tests/unit/engine/test_moe.c — mixtures of experts (engine/moe.c): MMoE,
 * CGC and PLE. The forward against an independent reference written from
 * the formulas and the tensor NAMES (so the checkpoint layout is checked
 * too), the tensor table covering the block exactly once, gradients against
 * central finite differences (double build) for experts, gates, towers and
 * the trunk below, one-hot lambdas adding up to the full gradient, the gate
 * weights the telemetry reads, no allocation in the hot path, and spec
 * validation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mtl.h"
#include "helpers.h"

/* The demo model (helpers.c: n_in 5, three tasks, task 0 with a tower [4])
 * with a mixture: experts of widths [5, 4], trunk [6] or none. */
static void moe_spec(eng_mtl_spec *s, int trunk, int experts, int task_experts, int levels,
                     double temp, eng_act act)
{
    demo_spec(s);
    s->act = act;
    s->n_trunk = trunk ? 1 : 0;
    s->trunk[0] = 6;
    s->moe.experts = experts;
    s->moe.task_experts = task_experts;
    s->moe.levels = levels;
    s->moe.n_units = 2;
    s->moe.units[0] = 5;
    s->moe.units[1] = 4;
    s->moe.gate_temperature = temp;
}

static eng_mtl *new_moe(const eng_mtl_spec *s, uint64_t seed, eng_rng *r)
{
    eng_mtl *m = NULL;
    ck_assert_int_eq(eng_mtl_new(s, DEMO_N, &m), ENG_OK);
    eng_rng_seed(r, seed);
    eng_mtl_init(m, r);
    jitter(m, r);
    return m;
}

/* ---- an independent reference forward, in double, by tensor name -------- */

static const eng_real *by_name(const eng_mtl *m, const char *name, int rows, int cols)
{
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info ti;
        ck_assert_int_eq(eng_mtl_tensor(m, i, &ti), ENG_OK);
        if (strcmp(ti.name, name) == 0) {
            ck_assert_int_eq(ti.shape[0], rows);
            if (cols)
                ck_assert_int_eq(ti.shape[1], cols);
            return eng_mtl_params((eng_mtl *)m) + ti.offset;
        }
    }
    ck_abort_msg("no tensor '%s'", name);
    return NULL;
}

static double act_of(eng_act a, double z)
{
    switch (a) {
    case ENG_ACT_RELU: return z > 0 ? z : 0;
    case ENG_ACT_TANH: return tanh(z);
    case ENG_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case ENG_ACT_GELU: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
    default: return z;
    }
}

/* y[n][out] = act(x[n][in]·Wᵀ + b) with W, b named base.weight/.bias. */
static double *ref_layer(const eng_mtl *m, const char *base, const double *x, int n, int in,
                         int out, eng_act act)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", base);
    snprintf(bn, sizeof bn, "%s.bias", base);
    const eng_real *w = by_name(m, wn, out, in), *b = by_name(m, bn, out, 0);
    double *y = malloc(sizeof(double) * (size_t)n * out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double z = b[o];
            for (int k = 0; k < in; k++)
                z += w[(size_t)o * in + k] * x[(size_t)i * in + k];
            y[(size_t)i * out + o] = act_of(act, z);
        }
    return y;
}

/* out[t] gets [n][n_out_t]; gates[v][t] (if not NULL) task t's gate
 * weights at level v, [n][choices]. */
static void ref_moe_forward(const eng_mtl *m, const eng_real *x, int n, double **out,
                            double *gates[ENG_MOE_MAX_LEVELS][ENG_MAX_TASKS])
{
    const eng_mtl_spec *s = eng_mtl_get_spec(m);
    const eng_moe_spec *ms = &s->moe;
    const int T = s->n_tasks, E = ms->experts, k = ms->task_experts;
    const int V = ms->levels > 1 ? ms->levels : 1, X = E + T * k;
    const int d = ms->units[ms->n_units - 1];
    const double tau = ms->gate_temperature > 0 ? ms->gate_temperature : 1;
    char nm[64], pf[16];
    int width = s->n_in;
    double *h = malloc(sizeof(double) * (size_t)n * width);
    for (int i = 0; i < n * width; i++)
        h[i] = x[i];
    for (int l = 0; l < s->n_trunk; l++) {
        snprintf(nm, sizeof nm, "trunk.%d", l);
        double *y = ref_layer(m, nm, h, n, width, s->trunk[l], s->act);
        free(h);
        h = y;
        width = s->trunk[l];
    }
    /* branch inputs: T tasks + shared; at level 0 all are h */
    double *in[ENG_MAX_TASKS + 1];
    for (int b = 0; b <= T; b++)
        in[b] = h;
    for (int v = 0; v < V; v++) {
        snprintf(pf, sizeof pf, V > 1 ? "levels.%d." : "", v);
        const int w_in = v == 0 ? width : d;
        double *g[ENG_MOE_MAX_EXPERTS];
        for (int j = 0; j < X; j++) {
            const double *xi = in[j < E ? T : (j - E) / k];
            double *a = NULL;
            int wd = w_in;
            for (int l = 0; l < ms->n_units; l++) {
                if (j < E)
                    snprintf(nm, sizeof nm, "%sexperts.%d.%d", pf, j, l);
                else
                    snprintf(nm, sizeof nm, "%stask_experts.%d.%d.%d", pf, (j - E) / k,
                             (j - E) % k, l);
                double *y = ref_layer(m, nm, a ? a : xi, n, wd, ms->units[l], s->act);
                free(a);
                a = y;
                wd = ms->units[l];
            }
            g[j] = a;
        }
        const int n_gates = v < V - 1 ? T + 1 : T;
        double *mix[ENG_MAX_TASKS + 1];
        for (int gi = 0; gi < n_gates; gi++) {
            const int C = gi < T ? E + k : X;
            if (gi < T)
                snprintf(nm, sizeof nm, "%sgates.%d", pf, gi);
            else
                snprintf(nm, sizeof nm, "%sgates.shared", pf);
            double *z = ref_layer(m, nm, in[gi], n, w_in, C, ENG_ACT_IDENTITY);
            mix[gi] = calloc((size_t)n * d, sizeof(double));
            for (int i = 0; i < n; i++) {
                double mx = -INFINITY, sum = 0, Z = 0;
                for (int c = 0; c < C; c++)
                    mx = fmax(mx, z[(size_t)i * C + c]);
                for (int c = 0; c < C; c++)
                    sum += exp((z[(size_t)i * C + c] - mx) / tau);
                for (int c = 0; c < C; c++) {
                    const double p = exp((z[(size_t)i * C + c] - mx) / tau) / sum;
                    z[(size_t)i * C + c] = p;
                    Z += p;
                }
                for (int c = 0; c < C; c++) {
                    const int e = gi == T || c < E ? c : E + gi * k + (c - E);
                    for (int j = 0; j < d; j++)
                        mix[gi][(size_t)i * d + j] +=
                            z[(size_t)i * C + c] / Z * g[e][(size_t)i * d + j];
                }
            }
            if (gates && gi < T)
                gates[v][gi] = z;
            else
                free(z);
        }
        for (int j = 0; j < X; j++)
            free(g[j]);
        if (v > 0)
            for (int b = 0; b <= T; b++)
                free(in[b]);
        for (int b = 0; b < n_gates; b++)
            in[b] = mix[b];
        if (n_gates == T)
            in[T] = NULL;
    }
    free(h);
    for (int t = 0; t < T; t++) {
        const eng_task_spec *ts = &s->task[t];
        double *a = NULL;
        int wd = d;
        for (int l = 0; l < ts->n_tower; l++) {
            snprintf(nm, sizeof nm, "tasks.%d.tower.%d", t, l);
            double *y = ref_layer(m, nm, a ? a : in[t], n, wd, ts->tower[l], s->act);
            free(a);
            a = y;
            wd = ts->tower[l];
        }
        snprintf(nm, sizeof nm, "tasks.%d.head", t);
        double *y = ref_layer(m, nm, a ? a : in[t], n, wd, ts->n_out, ENG_ACT_IDENTITY);
        memcpy(out[t], y, sizeof(double) * (size_t)n * ts->n_out);
        free(y);
        free(a);
    }
    for (int t = 0; t < T; t++)
        free(in[t]);
}

static void check_forward(const eng_mtl_spec *s, uint64_t seed)
{
    eng_rng r;
    eng_mtl *m = new_moe(s, seed, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    double *out[3], *gates[ENG_MOE_MAX_LEVELS][ENG_MAX_TASKS] = {{0}};
    for (int t = 0; t < 3; t++)
        out[t] = malloc(sizeof(double) * DEMO_N * s->task[t].n_out);
    ref_moe_forward(m, b.x, DEMO_N, out, gates);
    ck_assert_int_eq(eng_mtl_forward(m, b.x, DEMO_N), ENG_OK);
    for (int t = 0; t < 3; t++) {
        const eng_real *o = eng_mtl_output(m, t);
        for (int i = 0; i < DEMO_N * s->task[t].n_out; i++)
            ck_assert_msg(fabs(o[i] - out[t][i]) < 1e-4 * (1 + fabs(out[t][i])),
                          "task %d output %d: %g vs reference %g", t, i, (double)o[i], out[t][i]);
        free(out[t]);
    }
    /* the telemetry's gate sums are the reference's gate weights summed */
    const int V = s->moe.levels > 1 ? s->moe.levels : 1;
    ck_assert_int_eq(eng_mtl_gate_levels(m), V);
    for (int v = 0; v < V; v++)
        for (int t = 0; t < 3; t++) {
            const int C = eng_mtl_gate_size(m, v, t);
            ck_assert_int_eq(C, s->moe.experts + s->moe.task_experts);
            double sum[ENG_MOE_MAX_EXPERTS] = {0}, total = 0;
            ck_assert_int_eq(eng_mtl_gate_sums(m, v, t, sum), ENG_OK);
            for (int c = 0; c < C; c++) {
                double want = 0;
                for (int i = 0; i < DEMO_N; i++)
                    want += gates[v][t][(size_t)i * C + c];
                ck_assert_msg(fabs(sum[c] - want) < 1e-5, "gate %d/%d choice %d: %g vs %g", v,
                              t, c, sum[c], want);
                total += sum[c];
            }
            ck_assert(fabs(total - DEMO_N) < 1e-4); /* every row's weights sum to 1 */
            free(gates[v][t]);
        }
    eng_mtl_free(m);
}

START_TEST(test_moe_forward_matches_reference)
{
    eng_mtl_spec s;
    moe_spec(&s, 1, 3, 0, 1, 0, ENG_ACT_RELU); /* MMoE on a trunk, tau 1 */
    check_forward(&s, 1);
    moe_spec(&s, 0, 4, 0, 1, 0.5, ENG_ACT_TANH); /* MMoE on the input, tau 0.5 */
    check_forward(&s, 2);
    moe_spec(&s, 1, 2, 2, 1, 2.0, ENG_ACT_GELU); /* CGC */
    check_forward(&s, 3);
    moe_spec(&s, 0, 2, 1, 3, 1.5, ENG_ACT_SIGMOID); /* PLE, three levels */
    check_forward(&s, 4);
    moe_spec(&s, 1, 1, 0, 1, 0, ENG_ACT_RELU); /* one expert: the gate is 1 */
    s.moe.n_units = 1;
    check_forward(&s, 5);
}
END_TEST

START_TEST(test_moe_tensor_table)
{
    eng_mtl_spec s;
    moe_spec(&s, 1, 3, 2, 2, 0, ENG_ACT_RELU);
    eng_rng r;
    eng_mtl *m = new_moe(&s, 6, &r);
    const size_t np = eng_mtl_nparams(m);
    unsigned char *seen = calloc(np, 1);
    int n_gate = 0, n_expert = 0;
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info ti;
        ck_assert_int_eq(eng_mtl_tensor(m, i, &ti), ENG_OK);
        ck_assert_uint_le(ti.offset + ti.count, np);
        ck_assert_uint_eq(ti.count, (size_t)ti.shape[0] * (ti.rank == 2 ? (size_t)ti.shape[1] : 1));
        for (size_t k = ti.offset; k < ti.offset + ti.count; k++) {
            ck_assert_msg(!seen[k], "%s overlaps another tensor", ti.name);
            seen[k] = 1;
        }
        n_gate += strstr(ti.name, "gates.") != NULL;
        n_expert += strstr(ti.name, "experts.") != NULL;
        for (int j = 0; j < i; j++) {
            eng_tensor_info tj;
            eng_mtl_tensor(m, j, &tj);
            ck_assert_str_ne(ti.name, tj.name);
        }
    }
    for (size_t k = 0; k < np; k++)
        ck_assert_msg(seen[k], "parameter %zu belongs to no tensor", k);
    free(seen);
    /* gradnorm's "last shared layer" (the last rank-2 tensor not of a task
     * tower/head) is a shared expert's top layer, which every task reaches */
    char last[48] = "";
    for (int i = 0; i < eng_mtl_ntensors(m); i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (ti.rank == 2 && strncmp(ti.name, "tasks.", 6))
            snprintf(last, sizeof last, "%s", ti.name);
    }
    ck_assert_str_eq(last, "levels.1.experts.2.1.weight");
    /* 2 levels x (3 shared + 3 tasks x 2) experts x 2 layers x (weight, bias);
     * gates: level 0 has 3 task gates + the shared one, level 1 three */
    ck_assert_int_eq(n_expert, 2 * 9 * 2 * 2);
    ck_assert_int_eq(n_gate, 2 * (4 + 3));
    /* names and shapes a checkpoint reader sees */
    by_name(m, "levels.0.experts.2.0.weight", 5, 6);  /* reads the trunk (6) */
    by_name(m, "levels.1.experts.0.0.weight", 5, 4);  /* reads level 0's output (4) */
    by_name(m, "levels.0.task_experts.2.1.1.weight", 4, 5);
    by_name(m, "levels.0.gates.1.weight", 5, 6);      /* 3 shared + 2 own */
    by_name(m, "levels.0.gates.shared.weight", 9, 6); /* every expert */
    by_name(m, "levels.1.gates.2.bias", 5, 0);
    by_name(m, "tasks.0.tower.0.weight", 4, 4);       /* the tower reads d = 4 */
    char name[64];
    ck_assert_int_eq(eng_mtl_gate_expert(m, 1, 2, 4, name, sizeof name), ENG_OK);
    ck_assert_str_eq(name, "levels.1.task_experts.2.1");
    ck_assert_int_eq(eng_mtl_gate_expert(m, 0, 3, 8, name, sizeof name), ENG_OK);
    ck_assert_str_eq(name, "levels.0.task_experts.2.1"); /* the shared gate sees all */
    ck_assert_int_eq(eng_mtl_gate_size(m, 1, 3), 0);      /* no shared gate at the top */
    ck_assert_int_eq(eng_mtl_gate_expert(m, 0, 0, 5, name, sizeof name), ENG_EINVAL);
    eng_mtl_free(m);

    /* MMoE: the plain names of the brief */
    moe_spec(&s, 0, 2, 0, 1, 0, ENG_ACT_RELU);
    m = new_moe(&s, 7, &r);
    by_name(m, "experts.0.0.weight", 5, 5);
    by_name(m, "experts.1.1.bias", 4, 0);
    by_name(m, "gates.1.weight", 2, 5);
    ck_assert_int_eq(eng_mtl_gate_expert(m, 0, 2, 1, name, sizeof name), ENG_OK);
    ck_assert_str_eq(name, "experts.1");
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_moe_init_deterministic_and_scaled)
{
    eng_mtl_spec s;
    moe_spec(&s, 1, 4, 0, 1, 0, ENG_ACT_RELU);
    s.moe.units[0] = 64;
    eng_mtl *a = NULL, *b = NULL;
    ck_assert_int_eq(eng_mtl_new(&s, 4, &a), ENG_OK);
    ck_assert_int_eq(eng_mtl_new(&s, 4, &b), ENG_OK);
    eng_rng r1, r2;
    eng_rng_seed(&r1, 9);
    eng_rng_seed(&r2, 9);
    eng_mtl_init(a, &r1);
    eng_mtl_init(b, &r2);
    ck_assert(memcmp(eng_mtl_params(a), eng_mtl_params(b),
                     eng_mtl_nparams(a) * sizeof(eng_real)) == 0);
    /* He for the ReLU experts: std sqrt(2 / fan_in) over 4 x 64 x 6 weights */
    const eng_real *w = by_name(a, "experts.0.0.weight", 64, 6);
    double ss = 0;
    for (int i = 0; i < 4 * 64 * 6; i++) /* all four experts' first layers follow */
        ss += (double)w[i] * w[i];
    ck_assert(fabs(sqrt(ss / (4 * 64 * 6)) - sqrt(2.0 / 6)) < 0.06);
    const eng_real *bias = by_name(a, "experts.3.0.bias", 64, 0);
    for (int i = 0; i < 64; i++)
        ck_assert(bias[i] == 0);
    eng_mtl_free(a);
    eng_mtl_free(b);
}
END_TEST

START_TEST(test_moe_spec_validation)
{
    eng_mtl_spec good, s;
    moe_spec(&good, 1, 3, 1, 2, 0, ENG_ACT_RELU);
    eng_mtl *m = NULL;
    s = good; s.moe.experts = 0; /* task experts without shared ones */
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.n_units = 0;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.units[1] = 0;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.levels = ENG_MOE_MAX_LEVELS + 1;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.task_experts = -1;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.experts = 62; /* 62 + 3 tasks x 1 > 64 */
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.gate_temperature = -1;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    s = good; s.moe.gate_temperature = NAN;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_EINVAL);
    ck_assert_ptr_null(m);
    s = good; s.moe.experts = 61;
    ck_assert_int_eq(eng_mtl_new(&s, 8, &m), ENG_OK);
    eng_mtl_free(m);
}
END_TEST

START_TEST(test_moe_no_allocation)
{
    eng_mtl_spec s;
    moe_spec(&s, 1, 3, 1, 2, 0, ENG_ACT_GELU);
    s.dropout = 0.2;
    eng_rng r;
    eng_mtl *m = new_moe(&s, 8, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    double loss[3], sum[8];
    int rc = 0;
    long before = test_alloc_count();
    for (int i = 0; i < 3; i++) {
        rc |= eng_mtl_forward(m, b.x, DEMO_N);
        rc |= eng_mtl_gate_sums(m, 0, 1, sum);
        rc |= eng_mtl_train_step(m, b.x, DEMO_N, b.tb, &r, loss);
        rc |= eng_mtl_train_step(m, b.x, 3, b.tb, &r, loss);
    }
    long during = test_alloc_count() - before;
    ck_assert_int_eq(rc, ENG_OK);
    ck_assert_int_eq(during, 0);
    eng_mtl_free(m);
}
END_TEST

/* What the weighting methods rely on: training with one-hot lambdas gives
 * per-task gradients that add up to the gradient of the weighted sum, and
 * a task with lambda 0 leaves its own gate, tower and head at exactly 0. */
START_TEST(test_moe_one_hot_lambdas_add_up)
{
    eng_mtl_spec s;
    moe_spec(&s, 1, 3, 1, 2, 0.8, ENG_ACT_TANH);
    eng_rng r;
    eng_mtl *m = new_moe(&s, 10, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    const size_t np = eng_mtl_nparams(m);
    double *acc = calloc(np, sizeof *acc);
    const double lambda[3] = {b.tb[0].lambda, b.tb[1].lambda, b.tb[2].lambda};
    for (int t = 0; t < 3; t++) {
        for (int u = 0; u < 3; u++)
            b.tb[u].lambda = u == t ? lambda[u] : 0;
        ck_assert_int_eq(eng_mtl_train_batch(m, b.x, DEMO_N, b.tb, NULL), ENG_OK);
        for (size_t i = 0; i < np; i++)
            acc[i] += eng_mtl_grads(m)[i];
        for (int i = 0; i < eng_mtl_ntensors(m); i++) {
            eng_tensor_info ti;
            eng_mtl_tensor(m, i, &ti);
            int other = -1;
            if (sscanf(ti.name, "tasks.%d.", &other) == 1 ||
                sscanf(ti.name, "levels.1.gates.%d.", &other) == 1 ||
                sscanf(ti.name, "levels.1.task_experts.%d.", &other) == 1) {
                if (other == t)
                    continue;
                for (size_t k = 0; k < ti.count; k++)
                    ck_assert_msg(eng_mtl_grads(m)[ti.offset + k] == 0,
                                  "%s has a gradient from task %d", ti.name, t);
            }
        }
    }
    for (int u = 0; u < 3; u++)
        b.tb[u].lambda = lambda[u];
    ck_assert_int_eq(eng_mtl_train_batch(m, b.x, DEMO_N, b.tb, NULL), ENG_OK);
    size_t nonzero = 0;
    for (size_t i = 0; i < np; i++) {
        const double g = eng_mtl_grads(m)[i];
        ck_assert_msg(fabs(g - acc[i]) < 1e-5 * (1 + fabs(g)), "parameter %zu: %g vs %g", i, g,
                      acc[i]);
        nonzero += g != 0;
    }
    ck_assert_uint_gt(nonzero, np / 2);
    /* every task off: every gradient 0 */
    for (int u = 0; u < 3; u++)
        b.tb[u].lambda = 0;
    ck_assert_int_eq(eng_mtl_train_batch(m, b.x, DEMO_N, b.tb, NULL), ENG_OK);
    for (size_t i = 0; i < np; i++)
        ck_assert(eng_mtl_grads(m)[i] == 0);
    free(acc);
    eng_mtl_free(m);
}
END_TEST

#ifdef ENG_DOUBLE
static void grad_variant(int trunk, int experts, int task_experts, int levels, double temp,
                         eng_act act, double dropout, uint64_t seed)
{
    eng_mtl_spec s;
    moe_spec(&s, trunk, experts, task_experts, levels, temp, act);
    s.dropout = dropout;
    eng_rng r;
    eng_mtl *m = new_moe(&s, seed, &r);
    demo_batch b;
    demo_batch_fill(&b, &r);
    eng_rng drop;
    eng_rng_seed(&drop, seed + 1000);
    grad_check_drop(m, b.x, DEMO_N, b.tb, dropout > 0 ? &drop : NULL);
    grad_check_drop(m, b.x, 5, b.tb, dropout > 0 ? &drop : NULL); /* a short batch */
    eng_mtl_free(m);
}

START_TEST(test_grad_mmoe)
{
    grad_variant(1, 3, 0, 1, 0, ENG_ACT_TANH, 0, 41);     /* on a trunk */
    grad_variant(0, 4, 0, 1, 0.5, ENG_ACT_GELU, 0, 42);   /* on the input, tau 0.5 */
    grad_variant(1, 2, 0, 1, 3.0, ENG_ACT_SIGMOID, 0.3, 43); /* dropout in the experts */
}
END_TEST

START_TEST(test_grad_cgc_ple)
{
    grad_variant(1, 2, 2, 1, 0, ENG_ACT_TANH, 0, 44);     /* CGC */
    grad_variant(0, 2, 1, 2, 0.7, ENG_ACT_TANH, 0, 45);   /* PLE, two levels */
    grad_variant(1, 1, 1, 3, 1.3, ENG_ACT_GELU, 0.2, 46); /* three levels, dropout */
}
END_TEST
#endif

Suite *moe_suite(void)
{
    Suite *s = suite_create("moe");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_moe_forward_matches_reference);
    tcase_add_test(tc, test_moe_tensor_table);
    tcase_add_test(tc, test_moe_init_deterministic_and_scaled);
    tcase_add_test(tc, test_moe_spec_validation);
    tcase_add_test(tc, test_moe_no_allocation);
    tcase_add_test(tc, test_moe_one_hot_lambdas_add_up);
#ifdef ENG_DOUBLE
    tcase_add_test(tc, test_grad_mmoe);
    tcase_add_test(tc, test_grad_cgc_ple);
#endif
    suite_add_tcase(s, tc);
    return s;
}
