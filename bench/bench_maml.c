/*
 * bench/bench_maml.c — MAML on the sinusoid family of Finn et al. 2017
 * (§5.1, appendix table): speed and the full reproduction.
 *
 *   bench_maml speed [SECONDS]   meta-iterations per second, one thread:
 *                                second order (maml) and first order (fomaml)
 *   bench_maml repro K [ITERS]   meta-train ITERS (default 70000) iterations
 *                                with K-shot tasks, then meta-test on 600 new
 *                                tasks: MSE after 0/1/5/10 steps, mean ± 95% CI
 *
 * The setting is the paper's: net 1→40→40→1 ReLU, one inner step at
 * α = 0.01 on K support points, query K points, meta-batch 25, Adam 0.001.
 * Meta-test: K support points, the MSE on 100 query points of the same task
 * (the expected MSE does not depend on the query size; 100 points narrow the
 * interval), adaptation with the same α. Float engine, as the daemon runs.
 * Results go to bench/RESULTS.md by hand, with the machine they ran on.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/blas_pick.h"
#include "engine/blas_threads.h"
#include "engine/episodes.h"
#include "engine/meta.h"

#define MB 25
#define KMAX 20
#define NQ_TEST 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this process: on a shared machine the rate per CPU second is
 * what the code achieves; the wall-clock rate also shows the contention. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    eng_meta *m;
    size_t np;
    eng_real *th, *g, *am, *av;
    eng_real xs[MB][KMAX], ys[MB][KMAX], xq[MB][NQ_TEST], yq[MB][NQ_TEST];
    eng_meta_task tasks[MB];
    eng_adam_cfg opt;
    eng_rng rng;
    int K;
    long t;
} learner;

static int learner_new(learner *L, eng_meta_alg alg, int K, uint64_t seed)
{
    eng_meta_cfg c = {0};
    c.alg = alg;
    c.net = (eng_fnet_spec){3, {1, 40, 40, 1}, ENG_FNET_RELU};
    c.loss = ENG_FNET_MSE;
    c.inner_steps = 1;
    c.inner_lr = 0.01;
    c.max_support = K;
    c.max_query = NQ_TEST;
    if (eng_meta_new(&c, &L->m) != ENG_OK)
        return -1;
    L->np = eng_meta_nparams(L->m);
    L->th = calloc(L->np, sizeof *L->th);
    L->g = calloc(L->np, sizeof *L->g);
    L->am = calloc(L->np, sizeof *L->am);
    L->av = calloc(L->np, sizeof *L->av);
    if (!L->th || !L->g || !L->am || !L->av)
        return -1;
    eng_rng_seed(&L->rng, seed);
    eng_meta_init(L->m, L->th, &L->rng);
    L->opt = eng_adam_defaults();
    L->opt.lr = 0.001;
    L->K = K;
    L->t = 0;
    return 0;
}

static void learner_free(learner *L)
{
    eng_meta_free(L->m);
    free(L->th);
    free(L->g);
    free(L->am);
    free(L->av);
}

static int learner_step(learner *L, double *loss)
{
    for (int t = 0; t < MB; t++) {
        double A, ph;
        eng_sinusoid_task(&L->rng, &A, &ph);
        eng_sinusoid_points(&L->rng, A, ph, L->K, L->xs[t], L->ys[t]);
        eng_sinusoid_points(&L->rng, A, ph, L->K, L->xq[t], L->yq[t]);
        L->tasks[t] = (eng_meta_task){L->xs[t], L->ys[t], L->K, L->xq[t], L->yq[t], L->K, 0};
    }
    L->t++;
    return eng_meta_step(L->m, L->th, L->tasks, MB, &L->opt, L->g, L->am, L->av, L->t, loss);
}

static int speed(double seconds)
{
    static const struct {
        eng_meta_alg alg;
        const char *name;
    } algs[] = {{ENG_META_MAML, "maml (second order)"}, {ENG_META_FOMAML, "fomaml (first order)"}};
    printf("MAML sinusoid, net 1-40-40-1 ReLU, K=10, 1 inner step, meta-batch 25, float, 1 thread\n");
    for (size_t a = 0; a < 2; a++) {
        static learner L;
        if (learner_new(&L, algs[a].alg, 10, 1) != 0)
            return 1;
        double loss = 0, t0, t1, c0, c1;
        long n = 0;
        for (int i = 0; i < 200; i++) /* warm-up */
            learner_step(&L, &loss);
        t0 = now_s();
        c0 = cpu_s();
        do {
            for (int i = 0; i < 100; i++)
                if (learner_step(&L, &loss) != ENG_OK)
                    return 1;
            n += 100;
            t1 = now_s();
        } while (t1 - t0 < seconds);
        c1 = cpu_s();
        printf("%-22s %8.0f meta-iterations per CPU second (%.1f us per task); wall: %.0f/s\n",
               algs[a].name, n / (c1 - c0), (c1 - c0) / n / MB * 1e6, n / (t1 - t0));
        learner_free(&L);
    }
    return 0;
}

static int repro(int K, long iters)
{
    static learner L;
    if (K < 1 || K > KMAX || learner_new(&L, ENG_META_MAML, K, 2017) != 0)
        return 1;
    double t0 = now_s(), loss = 0, avg = 0;
    for (long i = 1; i <= iters; i++) {
        if (learner_step(&L, &loss) != ENG_OK) {
            fprintf(stderr, "step %ld failed\n", i);
            return 1;
        }
        avg += loss;
        if (i % 10000 == 0) {
            fprintf(stderr, "iter %ld  mean query loss %.4f  %.0f s\n", i, avg / 10000,
                    now_s() - t0);
            avg = 0;
        }
    }
    double train_s = now_s() - t0;
    const int steps[4] = {0, 1, 5, 10}, n_tasks = 600;
    double sum[4] = {0}, sq[4] = {0};
    eng_rng ev;
    eng_rng_seed(&ev, 1);
    for (int e = 0; e < n_tasks; e++) {
        double A, ph, l[4];
        eng_sinusoid_task(&ev, &A, &ph);
        eng_sinusoid_points(&ev, A, ph, K, L.xs[0], L.ys[0]);
        eng_sinusoid_points(&ev, A, ph, NQ_TEST, L.xq[0], L.yq[0]);
        eng_meta_task t = {L.xs[0], L.ys[0], K, L.xq[0], L.yq[0], NQ_TEST, 0};
        if (eng_meta_evaluate(L.m, L.th, &t, steps, 4, l, NULL) != ENG_OK)
            return 1;
        for (int s = 0; s < 4; s++) {
            sum[s] += l[s];
            sq[s] += l[s] * l[s];
        }
    }
    printf("K=%d, %ld meta-iterations (%.0f s), meta-test MSE on %d tasks, mean ± 95%% CI:\n", K,
           iters, train_s, n_tasks);
    for (int s = 0; s < 4; s++) {
        double mean = sum[s] / n_tasks;
        double var = sq[s] / n_tasks - mean * mean;
        double ci = 1.96 * sqrt(var > 0 ? var * n_tasks / (n_tasks - 1) : 0) / sqrt(n_tasks);
        printf("  after %2d steps: %.3f ± %.3f\n", steps[s], mean, ci);
    }
    learner_free(&L);
    return 0;
}

int main(int argc, char **argv)
{
    mtld_blas_pick(argv); /* the kernel set mtld would run on */
    eng_blas_set_threads(1);
    if (argc >= 2 && strcmp(argv[1], "speed") == 0)
        return speed(argc >= 3 ? strtod(argv[2], NULL) : 3.0);
    if (argc >= 3 && strcmp(argv[1], "repro") == 0)
        return repro((int)strtol(argv[2], NULL, 10),
                     argc >= 4 ? strtol(argv[3], NULL, 10) : 70000);
    fprintf(stderr, "usage: %s speed [SECONDS] | repro K [ITERS]\n", argv[0]);
    return 2;
}
