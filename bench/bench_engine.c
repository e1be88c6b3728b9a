/*
 * bench/bench_engine.c — training speed of the engine on the shapes of
 * issue #3, single-threaded BLAS unless told otherwise:
 *   small: 64 → 256 → 256, 3 heads of 10 classes, batch 32 / 128 / 512
 *   large: 784 → 1024 → 1024, 3 heads of 10 classes, batch 32 / 128
 * One step = eng_mtl_train_step (forward, three softmax-CE losses,
 * backward) + Adam (lr 1e-3) over the flat block, exactly what the daemon's
 * runner does per batch minus copying the batch in. Data is synthetic
 * (normal inputs, uniform labels) in a pool of 16 batches, so the input is
 * not always the same cache-hot block.
 *
 * Timing windows: see run(). Built twice from this source (bench/CMakeLists.txt):
 *   bench_engine        against `engine`: the samples/s to quote;
 *   bench_engine_gemm   against `engine_timed`, in which every gemm call is
 *                       bracketed by clock_gettime(CLOCK_MONOTONIC), so it
 *                       also prints the fraction of the step inside sgemm.
 *                       Its samples/s show the instrumentation's cost.
 * The step allocates nothing (tests/unit/engine asserts it); everything
 * here is allocated before the clock starts.
 *
 * Usage: bench_engine [--threads N] [--seconds S] [--only small|large]
 * Output: one line per shape, key=value, easy to paste into RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/blas_pick.h"
#include "engine/blas_core.h"
#include "engine/blas_threads.h"
#include "engine/mtl.h"
#include "engine/optim.h"

#ifdef ENG_GEMM_TIMING
extern unsigned long long eng__gemm_ns;
#endif

#define POOL 16
#define WINDOWS 7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wall time by default; with --clock cpu, this process's CPU time, which a
 * loaded machine's time slicing barely inflates (one BLAS thread only). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(const char *label, int n_in, int h1, int h2, int batch, double seconds)
{
    eng_mtl_spec s;
    memset(&s, 0, sizeof s);
    s.n_in = n_in;
    s.n_trunk = 2;
    s.trunk[0] = h1;
    s.trunk[1] = h2;
    s.act = ENG_ACT_RELU;
    s.n_tasks = 3;
    for (int t = 0; t < 3; t++) {
        s.task[t].kind = ENG_HEAD_CLASSIFICATION;
        s.task[t].n_out = 10;
    }
    eng_mtl *m = NULL;
    if (eng_mtl_new(&s, batch, &m) != ENG_OK) {
        fprintf(stderr, "cannot build the model\n");
        return 1;
    }
    eng_rng r;
    eng_rng_seed(&r, 1);
    eng_mtl_init(m, &r);
    size_t np = eng_mtl_nparams(m);
    float *mo = calloc(np, sizeof *mo), *ve = calloc(np, sizeof *ve);
    float *x = malloc(sizeof(float) * (size_t)POOL * batch * n_in);
    float *y = malloc(sizeof(float) * (size_t)POOL * 3 * batch);
    if (!mo || !ve || !x || !y) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)POOL * batch * n_in; i++)
        x[i] = (float)eng_rng_normal(&r);
    for (size_t i = 0; i < (size_t)POOL * 3 * batch; i++)
        y[i] = (float)eng_rng_below(&r, 10);
    eng_opt_cfg opt = eng_opt_defaults(ENG_OPT_ADAM);

    long step = 0;
    double loss[3];
    int rc = ENG_OK;
    /* Timing: WINDOWS windows of seconds/WINDOWS each after a warm-up
     * (page-in, OpenBLAS buffers); the best window and the median are
     * reported, since on a shared machine other processes steal whole
     * windows. The gemm share is that of the best window. */
    double rate[WINDOWS], frac[WINDOWS];
    for (int w = -1; w < WINDOWS; w++) {
        double t0 = now_s(), until = t0 + (w < 0 ? 0.3 : seconds / WINDOWS);
        long steps = 0;
#ifdef ENG_GEMM_TIMING
        unsigned long long g0 = eng__gemm_ns;
#endif
        do {
            for (int k = 0; k < 4; k++) { /* check the clock every 4 steps */
                int b = (int)(step % POOL);
                eng_task_batch tb[3];
                for (int t = 0; t < 3; t++)
                    tb[t] = (eng_task_batch){.y = y + ((size_t)b * 3 + t) * batch, .lambda = 1};
                rc |= eng_mtl_train_step(m, x + (size_t)b * batch * n_in, batch, tb, NULL, loss);
                rc |= eng_opt_step(&opt, 1e-3, eng_mtl_params(m), eng_mtl_grads(m), mo, ve, np,
                                   step + 1);
                step++;
                steps++;
            }
        } while (now_s() < until);
        double el = now_s() - t0;
        if (w >= 0) {
            rate[w] = steps * (double)batch / el;
#ifdef ENG_GEMM_TIMING
            frac[w] = (double)(eng__gemm_ns - g0) * 1e-9 / el;
#else
            frac[w] = 0;
#endif
        }
    }
    int best = 0;
    for (int w = 1; w < WINDOWS; w++)
        if (rate[w] > rate[best])
            best = w;
    double sorted[WINDOWS];
    memcpy(sorted, rate, sizeof sorted);
    qsort(sorted, WINDOWS, sizeof sorted[0], cmp_double);
    printf("shape=%s batch=%d samples_per_s=%.0f median=%.0f step_us=%.1f", label, batch,
           rate[best], sorted[WINDOWS / 2], batch / rate[best] * 1e6);
#ifdef ENG_GEMM_TIMING
    printf(" gemm_fraction=%.3f", frac[best]);
#else
    (void)frac;
#endif
    printf(" loss0=%.4f%s\n", loss[0], rc == ENG_OK ? "" : " ERROR");
    fflush(stdout);
    free(mo);
    free(ve);
    free(x);
    free(y);
    eng_mtl_free(m);
    return rc != ENG_OK;
}

int main(int argc, char **argv)
{
    mtld_blas_pick(argv); /* the kernel set mtld would run on */
    int threads = 1;
    double seconds = 3;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--clock") && !strcmp(argv[i + 1], "cpu"))
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    }
    eng_blas_set_threads(threads);
    printf("# bench_engine threads=%d seconds=%.1f clock=%s blas_core=%s%s%s%s%s\n", threads,
           seconds, bench_clock == CLOCK_MONOTONIC ? "wall" : "cpu",
           eng_blas_core(), *mtld_blas_replaced() ? " (OpenBLAS chose " : "",
           mtld_blas_replaced(), *mtld_blas_replaced() ? ")" : "",
#ifdef ENG_GEMM_TIMING
           " (gemm-timed build)"
#else
           ""
#endif
    );
    int bad = 0;
    if (!only || !strcmp(only, "small")) {
        const int bs[3] = {32, 128, 512};
        for (int i = 0; i < 3; i++)
            bad |= run("64-256-256-3x10", 64, 256, 256, bs[i], seconds);
    }
    if (!only || !strcmp(only, "large")) {
        const int bl[2] = {32, 128};
        for (int i = 0; i < 2; i++)
            bad |= run("784-1024-1024-3x10", 784, 1024, 1024, bl[i], seconds);
    }
    return bad;
}
