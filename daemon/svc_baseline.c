/*
 * daemon/svc_baseline.c — single-task baselines (see svc_baseline.h).
 *
 * The loop is the runner's, minus everything a baseline does not need
 * (checkpoints, metrics, progress, task weighting): it copies batches into
 * buffers allocated before the first step and calls the engine.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_baseline.h"

void svc__epoch_perm(uint64_t seed, long epoch, const uint32_t *train, size_t n_train,
                     uint32_t *perm)
{
    eng_rng rng;
    /* splitmix-style mix so neighbouring epochs get unrelated streams */
    eng_rng_seed(&rng, seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1));
    memcpy(perm, train, n_train * sizeof *perm);
    eng_rng_shuffle(&rng, perm, n_train);
}

double svc__relative_gain(double m, double b, int lower_is_better)
{
    if (!isfinite(m) || !isfinite(b) || b == 0)
        return NAN;
    return 100.0 * (lower_is_better ? b - m : m - b) / fabs(b);
}

int svc__train_alone(const svc__spec *sp, const svc__jobdata *jd, int t,
                     const eng_mtl_spec *full, const eng_opt_cfg *opt, const eng_schedule *sched,
                     int64_t steps, atomic_int *cancel, atomic_int *stopping, eng_mtl **out)
{
    eng_mtl_spec ms = *full;
    ms.n_tasks = 1;
    ms.task[0] = full->task[t];
    const int B = sp->batch_size, n_in = jd->n_in;
    const svc__jd_task *tk = &jd->task[t];
    eng_mtl *model = NULL;
    float *m = NULL, *v = NULL, *xb = NULL, *yb = NULL, *rw = NULL;
    uint32_t *perm = NULL;
    int rc = SVC_ENOMEM;
    if (eng_mtl_new(&ms, B, &model) != ENG_OK)
        goto done;
    const size_t np = eng_mtl_nparams(model);
    m = calloc(np, sizeof *m);
    v = calloc(np, sizeof *v);
    xb = malloc((size_t)B * (size_t)n_in * sizeof *xb);
    yb = malloc((size_t)B * sizeof *yb);
    perm = malloc(jd->n_train * sizeof *perm);
    rw = tk->n_missing ? malloc((size_t)B * sizeof *rw) : NULL;
    if (!m || !v || !xb || !yb || !perm || (tk->n_missing && !rw))
        goto done;
    eng_rng init;
    eng_rng_seed(&init, sp->seed);
    eng_mtl_init(model, &init);
    const size_t spe = (jd->n_train + (size_t)B - 1) / (size_t)B;
    long cur = -1;
    eng_task_batch tb = {.y = yb, .row_weight = rw, .class_weight = tk->class_weight,
                         .lambda = 1.0};
    for (int64_t step = 0; step < steps; step++) {
        if ((cancel && atomic_load(cancel)) || (stopping && atomic_load(stopping))) {
            rc = SVC_ECONFLICT;
            goto done;
        }
        const long epoch = (long)(step / (int64_t)spe);
        if (epoch != cur) {
            svc__epoch_perm(sp->seed, epoch, jd->train, jd->n_train, perm);
            cur = epoch;
        }
        const size_t lo = (size_t)(step % (int64_t)spe) * (size_t)B;
        const size_t hi = lo + (size_t)B < jd->n_train ? lo + (size_t)B : jd->n_train;
        const int nb = (int)(hi - lo);
        for (int i = 0; i < nb; i++) {
            const uint32_t row = perm[lo + (size_t)i];
            memcpy(xb + (size_t)i * (size_t)n_in, jd->x + (size_t)row * (size_t)n_in,
                   (size_t)n_in * sizeof *xb);
            yb[i] = tk->y[row];
            if (rw) /* a missing target is masked out */
                rw[i] = isnan(yb[i]) ? 0.0f : 1.0f;
        }
        eng_rng drop;
        eng_rng_seed(&drop, sp->seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(step + 1)));
        if (eng_mtl_train_step(model, xb, nb, &tb, &drop, NULL) != ENG_OK ||
            eng_opt_step(opt, eng_schedule_lr(sched, sp->lr, (long)step + 1, (long)steps),
                         eng_mtl_params(model), eng_mtl_grads(model), m, v, np,
                         (long)step + 1) != ENG_OK) {
            rc = SVC_EIO;
            goto done;
        }
    }
    *out = model;
    model = NULL;
    rc = SVC_OK;
done:
    eng_mtl_free(model);
    free(m);
    free(v);
    free(xb);
    free(yb);
    free(perm);
    free(rw);
    return rc;
}
