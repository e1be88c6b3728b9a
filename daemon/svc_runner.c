/*
 * daemon/svc_runner.c — runs one multi-task job from queued to an end state.
 *
 * The training loop is built so that a job stopped at any checkpoint and
 * resumed later ends bit-identical to one that never stopped:
 *  - the order of rows in epoch k is a pure function of (seed, k), so a
 *    resumed job recomputes the permutation of its current epoch instead of
 *    needing the RNG's history;
 *  - a checkpoint holds the weights, both Adam moments, the step, and the
 *    running sums of the epoch's training loss (as exact hex floats);
 *  - metrics recorded after the checkpoint's step are discarded on resume,
 *    so the series has no duplicated or missing step.
 * Everything the loop touches is allocated before it starts: a step only
 * copies a batch into preallocated buffers and calls the engine.
 *
 * Splits: the weights are fitted on the training rows; every epoch end is
 * evaluated on the validation rows (series split "validation"), which alone
 * choose the best checkpoint and when early stopping stops; the test rows
 * are evaluated once, at the end, with the best weights restored under
 * early stopping (split "test" at the last step, and the results), so the
 * reported figures played no part in choosing the weights.
 *
 * Best checkpoint: at every epoch end the validation loss (sum over tasks of
 * weight x loss, regression MSE in standardised units) is compared with the
 * best so far; an improvement writes a checkpoint at once, and its step
 * (with the score, as an exact hex float) is carried in every later
 * checkpoint's metadata, so pruning keeps the newest keep_checkpoints plus
 * that one, and a resumed job tracks the same best as an uninterrupted one.
 *
 * Resume tries the job's checkpoints newest first: one that cannot be read
 * (a torn file after a disk fault) is dropped with a warning and the one
 * before it is used, down to a fresh start.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_baseline.h"
#include "daemon/svc_jobdata.h"
#include "daemon/svc_meta.h"
#include "daemon/svc_log.h"
#include "engine/metrics.h"
#include "engine/optim.h"
#include "engine/weighting.h"

typedef struct {
    svc *s;
    int64_t job_id;
    eng_task_batch last_tb[ENG_MAX_TASKS]; /* the last training batch's targets */
    int last_nb;                           /* ... and its row count (0: none yet) */
    svc__running *slot;
    svc__spec sp;
    svc__jobdata jd;
    eng_mtl *model;
    eng_wt *wt;            /* task weighting (engine/weighting.h) */
    float *m, *v;          /* Adam moments */
    float *xb;             /* [batch][n_in] */
    float *yb[ENG_MAX_TASKS];
    float *rwb[ENG_MAX_TASKS]; /* row weights: 0 where the task's target is missing (or NULL) */
    uint32_t *perm;        /* the current epoch's row order */
    long perm_epoch;
    size_t spe;            /* steps per epoch */
    int64_t total;         /* total steps */
    int64_t step;          /* steps done */
    double epoch_loss[ENG_MAX_TASKS];
    int64_t epoch_batches;
    int64_t epoch_count[ENG_MAX_TASKS]; /* batches of the epoch with a labelled row for the task */
    int64_t last_ckpt;
    int64_t best_step;     /* step of the best checkpoint, -1 = none yet */
    double best_score;     /* its validation loss (or early stopping's metric) */
    int best_dirty;        /* the last epoch end improved on best: checkpoint now */
    json_t *from_note;     /* from_checkpoint: what was copied (for results) */
    double *gate_mean;     /* mixtures: [level][task][ENG_MOE_MAX_EXPERTS] mean gate
                              weights of the last evaluate; NULL without a mixture */
    /* Tasks on several datasets (jd.n_groups > 1): a step trains one task
     * on a batch of its own dataset's training rows (see sampled_task). */
    int multi;
    uint32_t *gperm;       /* [n_train]: each dataset's row order, at jd.g_train0[g] */
    long gperm_epoch[ENG_MAX_TASKS];
    int64_t g_count[ENG_MAX_TASKS]; /* batches drawn from each dataset so far */
} run;

/* The task a step trains when the tasks come from several datasets: a pure
 * function of (seed, step), so a resumed job replays the same sequence.
 * round_robin: the tasks in turn; proportional: task t with probability
 * proportional to its dataset's training rows. */
static int sampled_task(const run *r, int64_t step)
{
    const svc__jobdata *jd = &r->jd;
    if (r->sp.sampling == 0)
        return (int)(step % jd->n_tasks);
    eng_rng rng;
    eng_rng_seed(&rng, r->sp.seed ^ (0x94d049bb133111ebULL * (uint64_t)(step + 1)));
    double total = 0;
    for (int t = 0; t < jd->n_tasks; t++)
        total += (double)jd->g_ntrain[jd->task[t].group];
    double u = eng_rng_uniform(&rng) * total;
    for (int t = 0; t < jd->n_tasks; t++) {
        u -= (double)jd->g_ntrain[jd->task[t].group];
        if (u < 0)
            return t;
    }
    return jd->n_tasks - 1;
}

/* Rows [*lo, *hi) of the returned order make dataset g's next batch: its
 * g_count[g]-th, in epochs of that dataset's own training rows. */
static const uint32_t *group_batch(run *r, int g, size_t *lo, size_t *hi)
{
    const size_t n = r->jd.g_ntrain[g], B = (size_t)r->sp.batch_size;
    const int64_t spe = (int64_t)((n + B - 1) / B);
    const long epoch = (long)(r->g_count[g] / spe);
    uint32_t *perm = r->gperm + r->jd.g_train0[g];
    if (r->gperm_epoch[g] != epoch) {
        svc__epoch_perm(r->sp.seed + (uint64_t)g, epoch, r->jd.train + r->jd.g_train0[g], n, perm);
        r->gperm_epoch[g] = epoch;
    }
    *lo = (size_t)(r->g_count[g] % spe) * B;
    *hi = *lo + B < n ? *lo + B : n;
    r->g_count[g]++;
    return perm;
}

/* Has the batch at least one row labelled for this task? */
static int batch_has_label(const eng_task_batch *tb, int n)
{
    if (!tb->row_weight)
        return 1;
    for (int i = 0; i < n; i++)
        if (tb->row_weight[i] != 0)
            return 1;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void epoch_perm(run *r, long epoch)
{
    if (r->perm_epoch == epoch)
        return;
    svc__epoch_perm(r->sp.seed, epoch, r->jd.train, r->jd.n_train, r->perm);
    r->perm_epoch = epoch;
}

static eng_mtl_spec model_spec(const svc__spec *sp, const svc__jobdata *jd)
{
    eng_mtl_spec ms;
    memset(&ms, 0, sizeof ms);
    ms.n_in = jd->n_in;
    svc__model_arch(sp, &ms);
    ms.n_tasks = jd->n_tasks;
    for (int t = 0; t < jd->n_tasks; t++) {
        ms.task[t].kind = jd->task[t].classification ? ENG_HEAD_CLASSIFICATION : ENG_HEAD_REGRESSION;
        ms.task[t].n_out = jd->task[t].classification ? jd->task[t].n_classes : 1;
        ms.task[t].label_smoothing = sp->tasks[t].label_smoothing;
        ms.task[t].loss = sp->tasks[t].loss == 3 ? ENG_LOSS_HUBER : ENG_LOSS_DEFAULT;
        ms.task[t].huber_delta = sp->tasks[t].huber_delta;
    }
    return ms;
}

/* Per-task evaluation on a split: fills metrics into obj (new keys). */
typedef struct {
    double loss, accuracy, macro_f1, mse, mae, r2;
    size_t labelled;  /* held-out rows with this task's target (the rest are missing) */
    double base_accuracy, base_macro_f1, base_mse, base_mae, base_r2;
} task_eval;

static int evaluate(run *r, const uint32_t *rows, size_t n, task_eval *out)
{
    svc__jobdata *jd = &r->jd;
    int B = r->sp.batch_size, rc = SVC_OK;
    int *truth[ENG_MAX_TASKS] = {0}, *pred[ENG_MAX_TASKS] = {0};
    double *yt[ENG_MAX_TASKS] = {0}, *yp[ENG_MAX_TASKS] = {0};
    size_t *scratch = NULL;
    int kmax = 2;
    for (int t = 0; t < jd->n_tasks; t++) {
        memset(&out[t], 0, sizeof out[t]);
        if (jd->task[t].classification) {
            truth[t] = malloc(n * sizeof(int));
            pred[t] = malloc(n * sizeof(int));
            if (!truth[t] || !pred[t])
                rc = SVC_ENOMEM;
            if (jd->task[t].n_classes > kmax)
                kmax = jd->task[t].n_classes;
        } else {
            yt[t] = malloc(n * sizeof(double));
            yp[t] = malloc(n * sizeof(double));
            if (!yt[t] || !yp[t])
                rc = SVC_ENOMEM;
        }
    }
    scratch = malloc(3 * (size_t)kmax * sizeof *scratch);
    if (!scratch)
        rc = SVC_ENOMEM;
    if (rc != SVC_OK)
        goto done;
    const int gate_levels = r->gate_mean ? eng_mtl_gate_levels(r->model) : 0;
    const size_t gate_len = (size_t)gate_levels * (size_t)jd->n_tasks * ENG_MOE_MAX_EXPERTS;
    if (gate_levels)
        memset(r->gate_mean, 0, gate_len * sizeof *r->gate_mean);
    size_t nl[ENG_MAX_TASKS] = {0}; /* labelled rows so far, per task */
    for (size_t b = 0; b < n; b += (size_t)B) {
        int nb = (int)((n - b) < (size_t)B ? (n - b) : (size_t)B);
        if (r->slot && atomic_load(&r->slot->cancel)) {
            rc = SVC_ECONFLICT; /* cancelled: stop within the second */
            goto done;
        }
        for (int i = 0; i < nb; i++)
            memcpy(r->xb + (size_t)i * jd->n_in, jd->x + (size_t)rows[b + i] * jd->n_in,
                   (size_t)jd->n_in * sizeof(float));
        if (eng_mtl_forward(r->model, r->xb, nb) != ENG_OK) {
            rc = SVC_EIO;
            goto done;
        }
        for (int v = 0; v < gate_levels; v++)
            for (int t = 0; t < jd->n_tasks; t++)
                eng_mtl_gate_sums(r->model, v, t,
                                  r->gate_mean + ((size_t)v * jd->n_tasks + t) * ENG_MOE_MAX_EXPERTS);
        for (int t = 0; t < jd->n_tasks; t++) {
            const float *o = eng_mtl_output(r->model, t);
            svc__jd_task *tk = &jd->task[t];
            for (int i = 0; i < nb; i++) {
                size_t row = rows[b + i];
                if (isnan(tk->y[row]))
                    continue; /* target missing: not part of this task's figures */
                const size_t at = nl[t]++;
                if (tk->classification) {
                    int k = tk->n_classes, best = 0;
                    const float *z = o + (size_t)i * k;
                    double mx = z[0];
                    for (int c = 1; c < k; c++)
                        if (z[c] > z[best])
                            best = c;
                    mx = z[best];
                    double se = 0;
                    for (int c = 0; c < k; c++)
                        se += exp((double)z[c] - mx);
                    int y = (int)tk->y[row];
                    out[t].loss += log(se) + mx - z[y];
                    truth[t][at] = y;
                    pred[t][at] = best;
                } else {
                    yt[t][at] = tk->y[row] * tk->y_std + tk->y_mean;
                    yp[t][at] = o[i] * tk->y_std + tk->y_mean;
                }
            }
        }
    }
    for (int t = 0; t < jd->n_tasks; t++) {
        svc__jd_task *tk = &jd->task[t];
        const size_t n_all = n;
        n = nl[t];
        out[t].labelled = n;
        if (tk->classification) {
            out[t].loss /= (double)n;
            out[t].accuracy = eng_accuracy(truth[t], pred[t], n);
            out[t].macro_f1 = eng_macro_f1(truth[t], pred[t], n, tk->n_classes, scratch);
            /* baseline: always the most frequent class of the training split */
            size_t *cnt = scratch;
            memset(cnt, 0, (size_t)tk->n_classes * sizeof *cnt);
            for (size_t k = 0; k < jd->n_train; k++)
                if (!isnan(tk->y[jd->train[k]]))
                    cnt[(int)tk->y[jd->train[k]]]++;
            int maj = 0;
            for (int c = 1; c < tk->n_classes; c++)
                if (cnt[c] > cnt[maj])
                    maj = c;
            for (size_t i = 0; i < n; i++)
                pred[t][i] = maj;
            out[t].base_accuracy = eng_accuracy(truth[t], pred[t], n);
            out[t].base_macro_f1 = eng_macro_f1(truth[t], pred[t], n, tk->n_classes, scratch);
        } else {
            eng_regression_metrics(yt[t], yp[t], n, &out[t].mse, &out[t].mae, &out[t].r2);
            /* "loss" is the objective trained on (MSE of the standardised
             * target), so train and test losses share one scale. */
            out[t].loss = out[t].mse / (tk->y_std * tk->y_std);
            for (size_t i = 0; i < n; i++)
                yp[t][i] = tk->y_mean; /* baseline: the training mean */
            eng_regression_metrics(yt[t], yp[t], n, &out[t].base_mse, &out[t].base_mae,
                                   &out[t].base_r2);
        }
        n = n_all;
    }
    for (size_t i = 0; i < gate_len && n > 0; i++)
        r->gate_mean[i] /= (double)n;
done:
    for (int t = 0; t < ENG_MAX_TASKS; t++) {
        free(truth[t]);
        free(pred[t]);
        free(yt[t]);
        free(yp[t]);
    }
    free(scratch);
    return rc;
}

static void add_metric(store_metric *m, size_t *n, int64_t step, const char *task,
                       const char *split, const char *name, double v)
{
    m[*n].step = step;
    m[*n].task = (char *)task;
    m[*n].split = (char *)split;
    m[*n].name = (char *)name;
    m[*n].value = v;
    (*n)++;
}

/* Task t's held-out figures on split: loss, then accuracy and macro F1
 * (classification) or MSE, MAE and R² (regression). */
static void add_eval_metrics(const run *r, store_metric *m, size_t *n, int t, const char *split,
                             const task_eval *ev)
{
    const char *tn = r->jd.task[t].name;
    add_metric(m, n, r->step, tn, split, "loss", ev->loss);
    if (r->jd.task[t].classification) {
        add_metric(m, n, r->step, tn, split, "accuracy", ev->accuracy);
        add_metric(m, n, r->step, tn, split, "macro_f1", ev->macro_f1);
    } else {
        add_metric(m, n, r->step, tn, split, "mse", ev->mse);
        add_metric(m, n, r->step, tn, split, "mae", ev->mae);
        add_metric(m, n, r->step, tn, split, "r2", ev->r2);
    }
}

/* early_stopping.metric on this evaluation, as a score to minimise (the
 * best checkpoint then tracks it instead of the weighted loss). */
static double es_score(const run *r, const task_eval *ev, double weighted_loss)
{
    const int t = r->sp.es_task;
    if (t < 0)
        return weighted_loss;
    const char *name = strrchr(r->sp.es_metric, '.') + 1;
    const double v = !strcmp(name, "loss")       ? ev[t].loss
                     : !strcmp(name, "accuracy") ? ev[t].accuracy
                     : !strcmp(name, "macro_f1") ? ev[t].macro_f1
                     : !strcmp(name, "mse")      ? ev[t].mse
                     : !strcmp(name, "mae")      ? ev[t].mae
                                                 : ev[t].r2;
    return r->sp.es_maximise ? -v : v;
}

/* For each (level, task, expert): "gate.<expert>" on split (the one the
 * last evaluate ran on), the mean weight of the task's gate on that expert.
 * The metrics m[0..n) go out with them, in one store call. */
static int add_gate_metrics(run *r, const store_metric *m, size_t n, const char *split)
{
    const int T = r->jd.n_tasks, V = r->gate_mean && split ? eng_mtl_gate_levels(r->model) : 0;
    size_t count = n;
    for (int v = 0; v < V; v++)
        for (int t = 0; t < T; t++)
            count += (size_t)eng_mtl_gate_size(r->model, v, t);
    store_metric *all = malloc(count * sizeof *all);
    char(*names)[64] = malloc((count - n + 1) * sizeof *names);
    int rc = SVC_ENOMEM;
    if (!all || !names)
        goto done;
    memcpy(all, m, n * sizeof *m);
    size_t k = n;
    for (int v = 0; v < V; v++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < eng_mtl_gate_size(r->model, v, t); c++) {
                char *nm = names[k - n], expert[48];
                eng_mtl_gate_expert(r->model, v, t, c, expert, sizeof expert);
                snprintf(nm, sizeof names[0], "gate.%s", expert);
                add_metric(all, &k, r->step, r->jd.task[t].name, split, nm,
                           r->gate_mean[((size_t)v * T + t) * ENG_MOE_MAX_EXPERTS + c]);
            }
    svc__events_metrics(r->s, r->job_id, all, k);
    rc = store_metric_add(r->s->db, r->job_id, all, k) == STORE_OK ? SVC_OK : SVC_EIO;
done:
    free(all);
    free(names);
    return rc;
}

static int record_epoch(run *r)
{
    task_eval ev[ENG_MAX_TASKS];
    store_metric m[ENG_MAX_TASKS * (8 + ENG_MAX_TASKS)];
    char cos_names[ENG_MAX_TASKS * ENG_MAX_TASKS][80];
    double lam[ENG_MAX_TASKS], cos[ENG_MAX_TASKS * ENG_MAX_TASKS];
    size_t n = 0;
    /* The cosine between the task gradients on the shared layers, on the
     * epoch's last training batch (before evaluate reuses its buffer). */
    const int T = r->jd.n_tasks;
    int have_cos = 0;
    if (T > 1 && r->last_nb > 0) {
        eng_rng drop;
        eng_rng_seed(&drop, r->sp.seed ^ 0x6a09e667f3bcc909ULL);
        have_cos = eng_wt_grad_cosine(r->wt, r->xb, r->last_nb, r->last_tb, &drop, cos) == ENG_OK;
    }
    /* Without validation rows (validation_fraction 0) there is nothing
     * held out to look at during training: no best checkpoint either. */
    const int have_val = r->jd.n_validation > 0;
    if (have_val) {
        int erc = evaluate(r, r->jd.validation, r->jd.n_validation, ev);
        if (erc != SVC_OK)
            return erc;
        /* Σ weight × validation loss. A regression task's loss is already
         * the MSE of the standardised target (evaluate), so tasks of other
         * units compare; dividing by y_std² again made salary's share
         * ~1e-9 of what it is, and the best step that of the other tasks. */
        double score = 0;
        for (int t = 0; t < r->jd.n_tasks; t++)
            score += r->jd.task[t].lambda * ev[t].loss;
        if (r->sp.es_metric[0])
            score = es_score(r, ev, score);
        if (isfinite(score) && (r->best_step < 0 || score < r->best_score)) {
            r->best_score = score;
            r->best_step = r->step;
            r->best_dirty = 1;
        }
    }
    for (int t = 0; t < r->jd.n_tasks; t++) {
        add_metric(m, &n, r->step, r->jd.task[t].name, "train", "loss",
                   r->epoch_count[t] ? r->epoch_loss[t] / (double)r->epoch_count[t] : 0);
        if (have_val)
            add_eval_metrics(r, m, &n, t, "validation", &ev[t]);
    }
    /* The weights the next epoch starts with (DWA moves at the epoch end). */
    double means[ENG_MAX_TASKS];
    for (int t = 0; t < r->jd.n_tasks; t++)
        means[t] = r->epoch_count[t] ? r->epoch_loss[t] / (double)r->epoch_count[t] : 0;
    eng_wt_epoch_end(r->wt, means);
    eng_wt_weights(r->wt, lam);
    for (int t = 0; t < r->jd.n_tasks; t++)
        add_metric(m, &n, r->step, r->jd.task[t].name, "train", "weight", lam[t]);
    if (have_cos)
        for (int t = 0; t < T; t++)
            for (int u = t + 1; u < T; u++) {
                if (!isfinite(cos[t * T + u]))
                    continue;
                char *nm = cos_names[t * T + u];
                snprintf(nm, sizeof cos_names[0], "grad_cosine.%s", r->jd.task[u].name);
                add_metric(m, &n, r->step, r->jd.task[t].name, "train", nm, cos[t * T + u]);
            }
    return add_gate_metrics(r, m, n, have_val ? "validation" : NULL);
}

/* The test split's figures, once, at the last step: what the results
 * report, in the series too (with the gates of a mixture). */
static int record_test(run *r, const task_eval *ev)
{
    store_metric m[ENG_MAX_TASKS * 5];
    size_t n = 0;
    for (int t = 0; t < r->jd.n_tasks; t++)
        add_eval_metrics(r, m, &n, t, "test", &ev[t]);
    return add_gate_metrics(r, m, n, "test");
}

/* A metric as JSON: null when it is not a finite number (an R² on a
 * constant target, a diverged loss), which jansson could not encode; the
 * key stays listed. */
static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *results_json(run *r, const task_eval *ev)
{
    json_t *res = json_object();
    for (int t = 0; t < r->jd.n_tasks; t++) {
        json_t *o;
        if (r->jd.task[t].classification)
            o = json_pack("{s:o,s:o,s:o,s:{s:o,s:o}}", "accuracy", num_or_null(ev[t].accuracy),
                          "macro_f1", num_or_null(ev[t].macro_f1), "loss",
                          num_or_null(ev[t].loss), "baseline", "accuracy",
                          num_or_null(ev[t].base_accuracy), "macro_f1",
                          num_or_null(ev[t].base_macro_f1));
        else
            o = json_pack("{s:o,s:o,s:o,s:{s:o,s:o,s:o}}", "mse", num_or_null(ev[t].mse), "mae",
                          num_or_null(ev[t].mae), "r2", num_or_null(ev[t].r2), "baseline",
                          "mse", num_or_null(ev[t].base_mse), "mae",
                          num_or_null(ev[t].base_mae), "r2", num_or_null(ev[t].base_r2));
        if (r->gate_mean) {
            json_t *g = json_object();
            for (int v = 0; v < eng_mtl_gate_levels(r->model); v++)
                for (int c = 0; c < eng_mtl_gate_size(r->model, v, t); c++) {
                    char expert[48];
                    eng_mtl_gate_expert(r->model, v, t, c, expert, sizeof expert);
                    json_object_set_new(
                        g, expert,
                        json_real(r->gate_mean[((size_t)v * r->jd.n_tasks + t) *
                                                   ENG_MOE_MAX_EXPERTS + c]));
                }
            json_object_set_new(o, "gates", g);
        }
        if (r->jd.task[t].n_missing) /* figures over the rows that have the target */
            json_object_set_new(o, "labelled", json_integer((json_int_t)ev[t].labelled));
        json_object_set_new(res, r->jd.task[t].name, o);
    }
    double lam[ENG_MAX_TASKS];
    json_t *wj = json_object();
    eng_wt_weights(r->wt, lam);
    for (int t = 0; t < r->jd.n_tasks; t++)
        json_object_set_new(wj, r->jd.task[t].name, json_real(lam[t]));
    json_object_set_new(res, "weighting",
                        json_pack("{s:s,s:o}", "method", svc__weighting_name(r->sp.weighting),
                                  "weights", wj));
    json_object_set_new(res, "rows",
                        json_pack("{s:I,s:I,s:I}", "train", (json_int_t)r->jd.n_train,
                                  "validation", (json_int_t)r->jd.n_validation, "test",
                                  (json_int_t)r->jd.n_test));
    return res;
}

/* "baselines": true — every task with a weight above 0 trained alone with
 * the same budget (svc_baseline.h), evaluated like the multi-task model,
 * and Δ_MTL: the mean over those tasks of the sign-aware relative gain of
 * the main metric (accuracy for classification, higher is better; MSE for
 * regression, lower is better), in percent. A baseline that diverges is
 * reported as null and left out of the mean. */
static int add_baselines(run *r, const task_eval *ev, const eng_opt_cfg *opt,
                         const eng_schedule *sched, int64_t steps, json_t *res)
{
    const eng_mtl_spec full = model_spec(&r->sp, &r->jd);
    json_t *bl = json_object();
    double sum = 0;
    int counted = 0;
    for (int t = 0; t < r->jd.n_tasks; t++) {
        if (!(r->jd.task[t].lambda > 0))
            continue;
        eng_mtl *alone = NULL;
        int rc = svc__train_alone(&r->sp, &r->jd, t, &full, opt, sched, steps,
                                  r->slot ? &r->slot->cancel : NULL, &r->s->stopping, &alone);
        if (rc == SVC_EIO) {
            json_object_set_new(bl, r->jd.task[t].name, json_null());
            continue;
        }
        if (rc != SVC_OK) {
            json_decref(bl);
            return rc;
        }
        run b = *r; /* the same data and buffers, one task, the baseline model */
        b.gate_mean = NULL; /* keeps the multi-task model's gate telemetry */
        b.jd.n_tasks = 1;
        b.jd.task[0] = r->jd.task[t];
        b.model = alone;
        task_eval be;
        rc = evaluate(&b, r->jd.test, r->jd.n_test, &be);
        eng_mtl_free(alone);
        if (rc != SVC_OK) {
            json_decref(bl);
            return rc;
        }
        const int cls = r->jd.task[t].classification;
        const double mm = cls ? ev[t].accuracy : ev[t].mse, bm = cls ? be.accuracy : be.mse;
        const double gain = svc__relative_gain(mm, bm, !cls);
        json_t *o = cls ? json_pack("{s:o,s:o,s:o}", "accuracy", num_or_null(be.accuracy),
                                    "macro_f1", num_or_null(be.macro_f1), "loss",
                                    num_or_null(be.loss))
                        : json_pack("{s:o,s:o,s:o}", "mse", num_or_null(be.mse), "mae",
                                    num_or_null(be.mae), "r2", num_or_null(be.r2));
        json_object_set_new(o, "metric", json_string(cls ? "accuracy" : "mse"));
        json_object_set_new(o, "delta", isfinite(gain) ? json_real(gain) : json_null());
        json_object_set_new(bl, r->jd.task[t].name, o);
        if (isfinite(gain)) {
            sum += gain;
            counted++;
        }
    }
    json_object_set_new(res, "baselines", bl);
    json_object_set_new(res, "delta_mtl", counted ? json_real(sum / counted) : json_null());
    return SVC_OK;
}

/* ---- checkpoints -------------------------------------------------------- */

static json_t *checkpoint_meta(run *r)
{
    json_t *meta = json_object();
    store_job j = {0};
    char buf[64];
    if (store_job_get(r->s->db, r->job_id, &j) == STORE_OK)
        json_object_set_new(meta, "spec", json_string(j.spec));
    store_job_clear(&j);
    json_object_set_new(meta, "format", json_string("mtld-checkpoint-1"));
    snprintf(buf, sizeof buf, "%lld", (long long)r->step);
    json_object_set_new(meta, "step", json_string(buf));
    snprintf(buf, sizeof buf, "%lld", (long long)r->epoch_batches);
    json_object_set_new(meta, "epoch_batches", json_string(buf));
    if (r->best_step >= 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)r->best_step);
        json_object_set_new(meta, "best_step", json_string(buf));
        snprintf(buf, sizeof buf, "%a", r->best_score);
        json_object_set_new(meta, "best_score", json_string(buf));
    }
    json_t *el = json_array(), *mean = json_array(), *std = json_array(), *tasks = json_array();
    json_t *ec = json_array(), *ws = json_array();
    size_t wlen = 0;
    const double *wst = eng_wt_state(r->wt, &wlen);
    for (size_t i = 0; i < wlen; i++) {
        snprintf(buf, sizeof buf, "%a", wst[i]);
        json_array_append_new(ws, json_string(buf));
    }
    for (int t = 0; t < r->jd.n_tasks; t++) {
        snprintf(buf, sizeof buf, "%a", r->epoch_loss[t]);
        json_array_append_new(el, json_string(buf));
        json_array_append_new(ec, json_integer((json_int_t)r->epoch_count[t]));
        svc__jd_task *tk = &r->jd.task[t];
        json_t *to = json_pack("{s:s,s:s}", "name", tk->name, "kind",
                               tk->classification ? "classification" : "regression");
        if (tk->classification) {
            json_t *lv = json_array();
            for (int c = 0; c < tk->n_classes; c++)
                json_array_append_new(lv, json_string(tk->labels[c]));
            json_object_set_new(to, "labels", lv);
        } else {
            json_object_set_new(to, "mean", json_real(tk->y_mean));
            json_object_set_new(to, "std", json_real(tk->y_std));
        }
        json_array_append_new(tasks, to);
    }
    for (int i = 0; i < r->jd.n_in; i++) {
        json_array_append_new(mean, json_real(r->jd.x_mean[i]));
        json_array_append_new(std, json_real(r->jd.x_std[i]));
    }
    /* __metadata__ is a map of strings: nested values are JSON text. */
    char *s1 = json_dumps(el, JSON_COMPACT), *s2 = json_dumps(r->jd.input_names, JSON_COMPACT);
    json_t *stdz = json_pack("{s:o,s:o}", "mean", mean, "std", std);
    char *s3 = json_dumps(stdz, JSON_COMPACT), *s4 = json_dumps(tasks, JSON_COMPACT);
    json_object_set_new(meta, "epoch_loss", json_string(s1 ? s1 : "[]"));
    /* task weighting: its name, and its state (learned weights, Adam
     * moments, loss history) as exact hex floats */
    char *s5 = json_dumps(ws, JSON_COMPACT), *s6 = json_dumps(ec, JSON_COMPACT);
    json_object_set_new(meta, "weighting", json_string(svc__weighting_name(r->sp.weighting)));
    json_object_set_new(meta, "weighting_state", json_string(s5 ? s5 : "[]"));
    json_object_set_new(meta, "epoch_count", json_string(s6 ? s6 : "[]"));
    free(s5);
    free(s6);
    json_decref(ws);
    json_decref(ec);
    json_object_set_new(meta, "features", json_string(s2 ? s2 : "[]"));
    json_object_set_new(meta, "standardization", json_string(s3 ? s3 : "{}"));
    json_object_set_new(meta, "tasks", json_string(s4 ? s4 : "[]"));
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    json_decref(el);
    json_decref(stdz);
    json_decref(tasks);
    return meta;
}

static int write_checkpoint(run *r, char *err, size_t errlen)
{
    int nt = eng_mtl_ntensors(r->model);
    svc__tensor *ts = calloc((size_t)nt * 3, sizeof *ts);
    char (*names)[64] = calloc((size_t)nt * 2, sizeof *names);
    json_t *meta = NULL;
    int rc = -1;
    if (!ts || !names) {
        snprintf(err, errlen, "out of memory writing a checkpoint");
        goto done;
    }
    float *p = eng_mtl_params(r->model);
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(r->model, i, &ti);
        snprintf(names[2 * i], 64, "adam.m.%s", ti.name);
        snprintf(names[2 * i + 1], 64, "adam.v.%s", ti.name);
        svc__tensor base = {NULL, ti.rank, {ti.shape[0], ti.shape[1]}, NULL, ti.count};
        ts[i] = base;
        ts[i].name = strdup(ti.name);
        ts[i].data = p + ti.offset;
        ts[nt + i] = base;
        ts[nt + i].name = names[2 * i];
        ts[nt + i].data = r->m + ti.offset;
        ts[2 * nt + i] = base;
        ts[2 * nt + i].name = names[2 * i + 1];
        ts[2 * nt + i].data = r->v + ti.offset;
    }
    meta = checkpoint_meta(r);
    char path[4300];
    snprintf(path, sizeof path, "%s/job-%lld-step-%lld.safetensors", r->s->ckpt_dir,
             (long long)r->job_id, (long long)r->step);
    int64_t bytes = 0, id = 0;
    double t_write = now_s();
    if (svc__safetensors_write(path, ts, (size_t)nt * 3, meta, &bytes, err, errlen) != 0)
        goto done;
    if (store_checkpoint_add(r->s->db, r->job_id, r->step, path, bytes, &id) != STORE_OK) {
        snprintf(err, errlen, "cannot record checkpoint in the store");
        goto done;
    }
    r->last_ckpt = r->step;
    r->best_dirty = 0;
    SVC_LOG(SVC_LOG_INFO, "checkpoint_written", "job=%lld step=%lld bytes=%lld ms=%.1f best=%s",
            (long long)r->job_id, (long long)r->step, (long long)bytes,
            (now_s() - t_write) * 1e3, r->best_step == r->step ? "true" : "false");
    /* keep the newest keep_checkpoints, plus the best (the newest record at
     * best_step) */
    store_checkpoint *cs = NULL;
    size_t n = 0;
    if (store_checkpoint_list(r->s->db, r->job_id, &cs, &n) == STORE_OK) {
        long best = -1;
        for (size_t i = 0; i < n; i++)
            if (cs[i].step == r->best_step)
                best = (long)i;
        for (size_t i = 0; i + (size_t)r->sp.keep_checkpoints < n; i++) {
            if ((long)i == best)
                continue;
            if (store_checkpoint_delete(r->s->db, cs[i].id) == STORE_OK)
                unlink(cs[i].path);
        }
        store_checkpoint_list_free(cs, n);
    }
    rc = 0;
done:
    if (ts)
        for (int i = 0; i < nt; i++)
            free((char *)ts[i].name);
    free(ts);
    free(names);
    json_decref(meta);
    return rc;
}

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/* Restores the training state in one checkpoint file. 0, or -1 when the
 * file is unusable (the model may then hold part of it: the caller starts
 * fresh or tries another file, both of which overwrite every tensor). */
static int restore_file(run *r, const char *path)
{
    svc__safetensors st = {0};
    char err[256];
    int rc = -1;
    if (svc__safetensors_read(path, &st, err, sizeof err) != 0)
        goto done;
    float *p = eng_mtl_params(r->model);
    int nt = eng_mtl_ntensors(r->model);
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        char name[64];
        eng_mtl_tensor(r->model, i, &ti);
        if (svc__safetensors_get(&st, ti.name, p + ti.offset, ti.count) != 0)
            goto done;
        snprintf(name, sizeof name, "adam.m.%s", ti.name);
        if (svc__safetensors_get(&st, name, r->m + ti.offset, ti.count) != 0)
            goto done;
        snprintf(name, sizeof name, "adam.v.%s", ti.name);
        if (svc__safetensors_get(&st, name, r->v + ti.offset, ti.count) != 0)
            goto done;
    }
    json_t *meta = json_object_get(st.header, "__metadata__");
    const char *step = json_string_value(json_object_get(meta, "step"));
    if (!step)
        goto done;
    r->step = strtoll(step, NULL, 10);
    r->epoch_batches =
        strtoll(str_or(json_string_value(json_object_get(meta, "epoch_batches")), "0"), NULL, 10);
    json_t *el = json_loads(str_or(json_string_value(json_object_get(meta, "epoch_loss")), "[]"), 0, NULL);
    for (int t = 0; t < r->jd.n_tasks; t++)
        r->epoch_loss[t] = strtod(str_or(json_string_value(json_array_get(el, (size_t)t)), "0"), NULL);
    json_decref(el);
    json_t *ec = json_loads(str_or(json_string_value(json_object_get(meta, "epoch_count")), "[]"),
                            0, NULL);
    for (int t = 0; t < r->jd.n_tasks; t++) {
        json_t *c = json_array_get(ec, (size_t)t);
        r->epoch_count[t] = c ? (int64_t)json_integer_value(c) : r->epoch_batches;
    }
    json_decref(ec);
    size_t wlen = 0;
    double *wst = eng_wt_state(r->wt, &wlen);
    json_t *ws = json_loads(
        str_or(json_string_value(json_object_get(meta, "weighting_state")), "[]"), 0, NULL);
    eng_wt_reset(r->wt);
    if (json_array_size(ws) == wlen)
        for (size_t i = 0; i < wlen; i++)
            wst[i] = strtod(str_or(json_string_value(json_array_get(ws, i)), "0"), NULL);
    json_decref(ws);
    const char *bs = json_string_value(json_object_get(meta, "best_step"));
    r->best_step = bs ? strtoll(bs, NULL, 10) : -1;
    r->best_score = strtod(str_or(json_string_value(json_object_get(meta, "best_score")), "inf"),
                           NULL);
    r->last_ckpt = r->step;
    rc = 0;
done:
    svc__safetensors_clear(&st);
    return rc;
}

/* Early stopping's best-weights restore: copies the parameters (only) of
 * the checkpoint written at best_step back into the model. 0, or -1 when
 * there is none or it cannot be read (the model is then unchanged unless
 * the file was torn mid-tensor; the caller fails the job). */
static int restore_best(run *r)
{
    store_checkpoint *cs = NULL;
    size_t n = 0;
    svc__safetensors st = {0};
    char err[256];
    int rc = -1;
    if (r->best_step < 0 || store_checkpoint_list(r->s->db, r->job_id, &cs, &n) != STORE_OK)
        return -1;
    for (size_t k = n; k-- > 0 && rc != 0;) {
        if (cs[k].step != r->best_step || svc__safetensors_read(cs[k].path, &st, err, sizeof err))
            continue;
        rc = 0;
        float *p = eng_mtl_params(r->model);
        for (int i = 0; i < eng_mtl_ntensors(r->model) && rc == 0; i++) {
            eng_tensor_info ti;
            eng_mtl_tensor(r->model, i, &ti);
            rc = svc__safetensors_get(&st, ti.name, p + ti.offset, ti.count);
        }
        svc__safetensors_clear(&st);
    }
    store_checkpoint_list_free(cs, n);
    return rc;
}

/* Restores the job's newest usable checkpoint: 1 = resumed, 0 = none (start
 * fresh). Unusable checkpoints are dropped, with a warning. */
static int resume(run *r)
{
    store_checkpoint *cs = NULL;
    size_t n = 0;
    int rc = 0;
    if (store_checkpoint_list(r->s->db, r->job_id, &cs, &n) != STORE_OK)
        return 0;
    for (size_t k = n; k-- > 0;) {
        if (restore_file(r, cs[k].path) == 0) {
            rc = 1;
            break;
        }
        char q[400];
        SVC_LOG(SVC_LOG_WARN, "checkpoint_unusable", "job=%lld step=%lld path=\"%s\"",
                (long long)r->job_id, (long long)cs[k].step,
                svc_log_quote(q, sizeof q, cs[k].path));
        if (store_checkpoint_delete(r->s->db, cs[k].id) == STORE_OK)
            unlink(cs[k].path);
    }
    store_checkpoint_list_free(cs, n);
    if (rc == 1) {
        /* a job stopped after its last step (training its baselines) is
         * evaluated on test again at that step */
        store_metric_truncate(r->s->db, r->job_id, r->step);
        store_metric_truncate_split(r->s->db, r->job_id, r->step, "test");
        SVC_LOG(SVC_LOG_INFO, "job_resumed", "job=%lld step=%lld", (long long)r->job_id,
                (long long)r->step);
    }
    return rc;
}

/* The shape of tensor name in a safetensors header equals the model's. */
static int same_shape(const svc__safetensors *st, const char *name, const eng_tensor_info *ti)
{
    json_t *shape = json_object_get(json_object_get(st->header, name), "shape");
    if ((int)json_array_size(shape) != ti->rank)
        return 0;
    for (int i = 0; i < ti->rank; i++)
        if (json_integer_value(json_array_get(shape, (size_t)i)) != ti->shape[i])
            return 0;
    return 1;
}

/* from_checkpoint: copies the source job's latest weights into the freshly
 * initialised model, tensor by tensor. Trunk tensors match by name and
 * shape (the first layer only when the input features are the same); a
 * task's tower and head are taken from the source task of the same name.
 * A meta-learning checkpoint (layers.<i>.*: the MAML family's last layer is
 * its head, a protonet's layers are all embedding) maps its layers onto the
 * trunk and its head onto every task's head, which is how a meta-learned
 * initialisation is fine-tuned on a new task. What does not match keeps its
 * fresh initialisation and is listed in r->from_note, with a note for each
 * head re-initialised. A first layer over other inputs (another job's
 * targets are not this job's) is copied column by column for the inputs
 * both read, matched by name. Returns 0, or -1 with msg filled when the source
 * cannot be read. */
static int apply_from_checkpoint(run *r, char *msg, size_t msglen)
{
    store_checkpoint c = {0};
    svc__safetensors st = {0};
    char err[256];
    int rc = -1;
    int64_t src = strtoll(r->sp.from_job, NULL, 10);
    const int from_import = r->sp.from_import[0] != 0;
    char ipath[4096];
    svc_error ie = {0};
    if (from_import) {
        if (svc__import_path(r->s, r->sp.from_import, ipath, sizeof ipath, &ie) != SVC_OK) {
            snprintf(msg, msglen, "from_checkpoint: %s", ie.message);
            goto done;
        }
    } else if (store_checkpoint_latest(r->s->db, src, &c) != STORE_OK) {
        snprintf(msg, msglen, "from_checkpoint: job %s has no checkpoint any more", r->sp.from_job);
        goto done;
    }
    if (svc__safetensors_read(from_import ? ipath : c.path, &st, err, sizeof err) != 0) {
        snprintf(msg, msglen, "from_checkpoint: %s", err);
        goto done;
    }
    json_t *meta = json_object_get(st.header, "__metadata__");
    json_t *feats = json_loads(str_or(json_string_value(json_object_get(meta, "features")), "[]"),
                               0, NULL);
    json_t *stasks = json_loads(str_or(json_string_value(json_object_get(meta, "tasks")), "[]"),
                                0, NULL);
    const char *fmt = str_or(json_string_value(json_object_get(meta, "format")), "");
    int from_meta = !strcmp(fmt, "mtld-meta-checkpoint-1");
    int meta_head = -1; /* the meta network's head layer (-1: none, e.g. protonet) */
    if (from_meta) {
        json_t *net = json_loads(str_or(json_string_value(json_object_get(meta, "network")), "{}"),
                                 0, NULL);
        const char *alg = str_or(json_string_value(json_object_get(meta, "algorithm")), "");
        int L = (int)json_array_size(json_object_get(net, "dims")) - 1;
        if (strcmp(alg, "protonet") && L >= 1)
            meta_head = L - 1;
        json_decref(net);
    }
    /* an imported model that does not name its inputs is trusted to read the
     * job's (the first layer is copied if its shape fits) */
    int same_inputs = json_equal(feats, r->jd.input_names) ||
                      (from_import && !json_object_get(meta, "features"));
    int mapped = 0; /* first-layer input columns matched by name (other inputs) */
    json_t *copied = json_array(), *reinit = json_array(), *notes = json_array();
    float *p = eng_mtl_params(r->model);
    int nt = eng_mtl_ntensors(r->model);
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        char sname[96] = "";
        eng_mtl_tensor(r->model, i, &ti);
        int ok = 0, t = -1, off = 0, li = -1, head = 0;
        if (!strncmp(ti.name, "trunk.", 6)) {
            if (from_meta && sscanf(ti.name, "trunk.%d.%n", &li, &off) == 1)
                snprintf(sname, sizeof sname, "layers.%d.%s", li, ti.name + off);
            else
                snprintf(sname, sizeof sname, "%s", ti.name);
            ok = same_inputs || strncmp(ti.name, "trunk.0.", 8) != 0 ||
                 (mapped > 0 && !strcmp(ti.name, "trunk.0.bias"));
            if (!same_inputs && !strcmp(ti.name, "trunk.0.weight") && ti.rank == 2) {
                mapped = svc__map_columns(&st, sname, feats, r->jd.input_names, ti.shape[0],
                                          ti.shape[1], p + ti.offset);
                if (mapped > 0) {
                    char note[200];
                    snprintf(note, sizeof note,
                             "trunk.0.weight: %d of the job's %d inputs matched the "
                             "checkpoint's by name and were copied; the rest start fresh",
                             mapped, ti.shape[1]);
                    json_array_append_new(notes, json_string(note));
                    json_array_append_new(copied, json_string(ti.name));
                    continue;
                }
            }
        } else if (sscanf(ti.name, "tasks.%d.%n", &t, &off) == 1 && t >= 0 &&
                   t < r->jd.n_tasks) {
            head = !strncmp(ti.name + off, "head.", 5);
            if (from_import) {
                if (head) {
                    snprintf(sname, sizeof sname, "head.%s", ti.name + off + 5);
                    ok = 1;
                }
            } else if (from_meta) {
                if (head && meta_head >= 0) {
                    snprintf(sname, sizeof sname, "layers.%d.%s", meta_head, ti.name + off + 5);
                    ok = same_inputs || meta_head > 0;
                }
            } else {
                /* the source index of the task with the same name */
                size_t k;
                json_t *to;
                json_array_foreach(stasks, k, to)
                {
                    const char *nm = json_string_value(json_object_get(to, "name"));
                    if (nm && !strcmp(nm, r->jd.task[t].name)) {
                        snprintf(sname, sizeof sname, "tasks.%zu.%s", k, ti.name + off);
                        ok = 1;
                    }
                }
            }
        } else if (!from_import && !from_meta) {
            /* a mixture's experts and gates, by name; the first level reads
             * the input (or the trunk), and a task's own gate or experts
             * only come from the source task of the same name at that index */
            const char *rest = ti.name;
            int lv = -1, lo = 0, ti_task = -1;
            if (sscanf(rest, "levels.%d.%n", &lv, &lo) == 1)
                rest += lo;
            if (sscanf(rest, "gates.%d.", &ti_task) == 1 ||
                sscanf(rest, "task_experts.%d.", &ti_task) == 1) {
                const char *nm = json_string_value(
                    json_object_get(json_array_get(stasks, (size_t)ti_task), "name"));
                ok = ti_task < r->jd.n_tasks && nm && !strcmp(nm, r->jd.task[ti_task].name);
            } else {
                ok = !strncmp(rest, "experts.", 8) || !strncmp(rest, "gates.shared.", 13);
            }
            ok = ok && (same_inputs || r->sp.n_trunk > 0 || lv > 0);
            snprintf(sname, sizeof sname, "%s", ti.name);
        }
        /* the source's values go through a scratch copy (Adam's m, zeroed
         * again below) so a shape mismatch leaves the fresh weights intact */
        if (ok && same_shape(&st, sname, &ti) &&
            svc__safetensors_get(&st, sname, r->m + ti.offset, ti.count) == 0) {
            memcpy(p + ti.offset, r->m + ti.offset, ti.count * sizeof(float));
            json_array_append_new(copied, json_string(ti.name));
            continue;
        }
        json_array_append_new(reinit, json_string(ti.name));
        if (!head || !strstr(ti.name, ".weight"))
            continue;
        /* a head that could not be copied: say why */
        json_t *sh = json_object_get(json_object_get(st.header, sname), "shape");
        char note[300];
        const svc__jd_task *jt = &r->jd.task[t];
        int want = jt->classification ? jt->n_classes : 1;
        if (sname[0] && json_array_size(sh) == 2)
            snprintf(note, sizeof note,
                     "task '%s': head re-initialised, it has %d output%s here and %lld in the "
                     "checkpoint",
                     jt->name, want, want == 1 ? "" : "s",
                     (long long)json_integer_value(json_array_get(sh, 0)));
        else
            snprintf(note, sizeof note, "task '%s': head re-initialised, the checkpoint has "
                     "no head for it", jt->name);
        json_array_append_new(notes, json_string(note));
    }
    memset(r->m, 0, eng_mtl_nparams(r->model) * sizeof *r->m);
    if (from_import)
        r->from_note = json_pack("{s:s,s:o,s:o}", "checkpoint", r->sp.from_import, "copied",
                                 copied, "reinitialised", reinit);
    else
        r->from_note = json_pack("{s:I,s:I,s:o,s:o}", "job", (json_int_t)src, "step",
                                 (json_int_t)c.step, "copied", copied, "reinitialised", reinit);
    if (json_array_size(notes))
        json_object_set(r->from_note, "notes", notes);
    if (from_meta)
        json_object_set_new(r->from_note, "format", json_string(fmt));
    json_decref(notes);
    SVC_LOG(SVC_LOG_INFO, "from_checkpoint", "job=%lld source_job=%lld source_step=%lld "
            "copied=%zu reinitialised=%zu", (long long)r->job_id, (long long)src,
            (long long)c.step, json_array_size(copied), json_array_size(reinit));
    json_decref(feats);
    json_decref(stasks);
    rc = 0;
done:
    svc__safetensors_clear(&st);
    store_checkpoint_clear(&c);
    return rc;
}

/* "freeze": "trunk": the trunk's tensors must be a prefix of the flat
 * parameter block (they are: mtl.c lays the trunk out first), so the
 * optimiser simply steps the rest. Returns that prefix's length, or
 * (size_t)-1 if the layout does not allow it. */
static size_t trunk_prefix(const eng_mtl *m)
{
    size_t end = 0;
    int nt = eng_mtl_ntensors(m);
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (!strncmp(ti.name, "trunk.", 6) && ti.offset + ti.count > end)
            end = ti.offset + ti.count;
    }
    for (int i = 0; i < nt; i++) {
        eng_tensor_info ti;
        eng_mtl_tensor(m, i, &ti);
        if (strncmp(ti.name, "trunk.", 6) && ti.offset < end)
            return (size_t)-1;
    }
    return end;
}

/* A fresh start: seeded initialisation, zero moments, no metrics, then
 * from_checkpoint's weights if the spec names one. */
static int fresh_start(run *r, char *msg, size_t msglen)
{
    eng_rng init_rng;
    eng_rng_seed(&init_rng, r->sp.seed);
    eng_mtl_init(r->model, &init_rng);
    size_t np = eng_mtl_nparams(r->model);
    memset(r->m, 0, np * sizeof *r->m);
    memset(r->v, 0, np * sizeof *r->v);
    r->step = 0;
    r->epoch_batches = 0;
    memset(r->epoch_loss, 0, sizeof r->epoch_loss);
    memset(r->epoch_count, 0, sizeof r->epoch_count);
    eng_wt_reset(r->wt);
    r->best_step = -1;
    r->best_score = INFINITY;
    r->last_ckpt = 0;
    store_metric_truncate(r->s->db, r->job_id, 0);
    if (r->sp.from_job[0] || r->sp.from_import[0])
        return apply_from_checkpoint(r, msg, msglen);
    return 0;
}

/* Estimated bytes of the model and its training buffers: parameters,
 * gradients and two Adam moments (16 bytes a parameter), plus activations
 * and their gradients for a batch (a generous 16 bytes a unit a row). */
static double model_bytes(const svc__spec *sp, const svc__jobdata *jd)
{
    double params = 0, units = jd->n_in;
    int w = jd->n_in;
    for (int l = 0; l < sp->n_trunk; l++) {
        params += (double)w * sp->trunk[l] + sp->trunk[l];
        units += sp->trunk[l];
        w = sp->trunk[l];
    }
    for (int t = 0; t < jd->n_tasks; t++) {
        int tw = w;
        for (int l = 0; l < sp->n_towers; l++) {
            params += (double)tw * sp->towers[l] + sp->towers[l];
            units += sp->towers[l];
            tw = sp->towers[l];
        }
        int out = jd->task[t].classification ? jd->task[t].n_classes : 1;
        params += (double)tw * out + out;
        units += out;
    }
    if (sp->moe_experts > 0) { /* a level's experts and gates (a bound: every level at level 0's size) */
        const double X = sp->moe_experts + (double)jd->n_tasks * sp->moe_task_experts;
        const int d = sp->moe_units[sp->moe_n_units - 1];
        const int L = sp->moe_levels > 1 ? sp->moe_levels : 1;
        int ew = w > d ? w : d;
        for (int l = 0; l < sp->moe_n_units; l++) {
            params += L * X * ((double)ew * sp->moe_units[l] + sp->moe_units[l]);
            units += L * X * sp->moe_units[l];
            ew = sp->moe_units[l];
        }
        params += L * (jd->n_tasks + 1.0) * X * ((w > d ? w : d) + 1.0);
        units += L * (jd->n_tasks + 1.0) * (X + 2.0 * d);
    }
    return 16.0 * params + 16.0 * units * sp->batch_size;
}

/* ---- the job ------------------------------------------------------------ */

/* The steps done are stored first: progress is written only every 0.25 s,
 * so a job failing early would otherwise keep step 0. */
static void fail_job(run *r, const char *code, const char *msg)
{
    if (r->step > 0)
        store_job_set_progress(r->s->db, r->job_id, r->step, r->total,
                               r->total ? (double)r->step / (double)r->total : 0);
    store_job_set_state(r->s->db, r->job_id, "failed", code, msg);
    svc__events_state(r->s, r->job_id, "failed", code, msg);
}

static void run_free(run *r)
{
    eng_wt_free(r->wt);
    eng_mtl_free(r->model);
    free(r->gate_mean);
    free(r->m);
    free(r->v);
    free(r->xb);
    for (int t = 0; t < ENG_MAX_TASKS; t++) {
        free(r->yb[t]);
        free(r->rwb[t]);
    }
    free(r->perm);
    free(r->gperm);
    json_decref(r->from_note);
    svc__jobdata_clear(&r->jd);
}

static void cancel_job(run *r)
{
    store_job_set_progress(r->s->db, r->job_id, r->step, r->total,
                           r->total ? (double)r->step / (double)r->total : 0);
    store_job_set_state(r->s->db, r->job_id, "cancelled", NULL, NULL);
    svc__events_state(r->s, r->job_id, "cancelled", NULL, NULL);
}

void svc__run_job(svc *s, int64_t job_id, svc__running *slot)
{
    run r;
    memset(&r, 0, sizeof r);
    r.s = s;
    r.job_id = job_id;
    r.slot = slot;
    r.perm_epoch = -1;
    svc_error e = {0};
    char msg[512];
    store_job j = {0};

    if (store_job_get(s->db, job_id, &j) != STORE_OK)
        return;
    json_t *spec = json_loads(j.spec, 0, NULL);
    int rc = svc__spec_parse(spec, &r.sp, &e);
    json_decref(spec);
    store_job_clear(&j);
    if (rc != SVC_OK) {
        fail_job(&r, "invalid_spec", e.message);
        return;
    }
    if (svc__is_meta(r.sp.algorithm)) { /* svc_meta.c runs meta-learning jobs */
        svc__run_meta_job(s, job_id, slot);
        return;
    }
    if (svc__jobdata_load(s, &r.sp, &r.jd, &e) != SVC_OK) {
        fail_job(&r, e.code == SVC_ENOMEM ? "out_of_memory" : "invalid_data", e.message);
        return;
    }
    double need = model_bytes(&r.sp, &r.jd);
    if (s->max_model_bytes > 0 && need > (double)s->max_model_bytes) {
        snprintf(msg, sizeof msg,
                 "the model needs about %.0f bytes (parameters, gradients, optimiser state and "
                 "activations), more than this daemon allows a job (--max-model-bytes %lld)",
                 need, (long long)s->max_model_bytes);
        fail_job(&r, "model_too_large", msg);
        goto out;
    }
    for (int t = 0; t < r.jd.n_tasks; t++) {
        /* task loss options that do not fit the task's kind */
        const int cls = r.jd.task[t].classification, loss = r.sp.tasks[t].loss;
        const char *bad = (cls && loss >= 2)  ? "loss"
                          : (!cls && loss == 1) ? "loss"
                          : (!cls && r.sp.tasks[t].label_smoothing > 0) ? "label_smoothing"
                                                                        : NULL;
        if (bad) {
            snprintf(msg, sizeof msg, "'tasks[%d].%s' does not apply to task '%s', a %s task", t,
                     bad, r.jd.task[t].name, cls ? "classification" : "regression");
            fail_job(&r, "invalid_spec", msg);
            goto out;
        }
    }
    eng_mtl_spec ms = model_spec(&r.sp, &r.jd);
    if (eng_mtl_new(&ms, r.sp.batch_size, &r.model) != ENG_OK) {
        fail_job(&r, "out_of_memory", "cannot build the model (out of memory or invalid shape)");
        goto out;
    }
    size_t np = eng_mtl_nparams(r.model);
    r.m = calloc(np, sizeof *r.m);
    r.v = calloc(np, sizeof *r.v);
    r.xb = malloc((size_t)r.sp.batch_size * (size_t)r.jd.n_in * sizeof *r.xb);
    r.perm = malloc(r.jd.n_train * sizeof *r.perm);
    r.multi = r.jd.n_groups > 1;
    if (r.multi) {
        r.gperm = malloc(r.jd.n_train * sizeof *r.gperm);
        for (int g = 0; g < ENG_MAX_TASKS; g++)
            r.gperm_epoch[g] = -1;
    }
    int ok = r.m && r.v && r.xb && r.perm && (!r.multi || r.gperm);
    if (eng_mtl_gate_levels(r.model) > 0) {
        r.gate_mean = calloc((size_t)eng_mtl_gate_levels(r.model) * (size_t)r.jd.n_tasks *
                                 ENG_MOE_MAX_EXPERTS,
                             sizeof *r.gate_mean);
        ok = ok && r.gate_mean;
    }
    for (int t = 0; t < r.jd.n_tasks; t++) {
        r.yb[t] = malloc((size_t)r.sp.batch_size * sizeof *r.yb[t]);
        ok = ok && r.yb[t];
        if (r.jd.task[t].n_missing || r.multi) {
            r.rwb[t] = malloc((size_t)r.sp.batch_size * sizeof *r.rwb[t]);
            ok = ok && r.rwb[t];
        }
    }
    if (!ok) {
        fail_job(&r, "out_of_memory", "out of memory allocating training buffers");
        goto out;
    }
    eng_wt_cfg wc;
    memset(&wc, 0, sizeof wc);
    wc.kind = (eng_wt_kind)r.sp.weighting;
    wc.n_tasks = r.jd.n_tasks;
    for (int t = 0; t < r.jd.n_tasks; t++)
        wc.c[t] = r.jd.task[t].lambda;
    wc.alpha = r.sp.wt_alpha;
    wc.temperature = r.sp.wt_temperature;
    wc.lr = r.sp.wt_lr > 0 ? r.sp.wt_lr : r.sp.lr;
    if (eng_wt_new(&wc, r.model, &r.wt) != ENG_OK) {
        fail_job(&r, "out_of_memory", "out of memory allocating the task weighting");
        goto out;
    }
    r.spe = (r.jd.n_train + (size_t)r.sp.batch_size - 1) / (size_t)r.sp.batch_size;
    r.total = (int64_t)r.spe * r.sp.epochs;
    size_t frozen = 0; /* leading parameters the optimiser leaves alone */
    if (r.sp.freeze_trunk) {
        frozen = trunk_prefix(r.model);
        if (frozen == (size_t)-1 || frozen >= np) {
            fail_job(&r, "invalid_spec", "'freeze': this model's trunk cannot be frozen "
                                         "(its layout is not a leading block)");
            goto out;
        }
    }

    if (resume(&r) == 0 && fresh_start(&r, msg, sizeof msg) != 0) {
        fail_job(&r, "checkpoint_unreadable", msg);
        goto out;
    }
    if (r.multi) /* where each dataset's batches are, replayed from step 0 */
        for (int64_t k = 0; k < r.step; k++)
            r.g_count[r.jd.task[sampled_task(&r, k)].group]++;
    atomic_store(&slot->total, r.total);
    atomic_store(&slot->step, r.step);
    pthread_mutex_lock(&s->mu);
    atomic_store(&slot->step0, r.step);
    slot->t0 = now_s();
    pthread_mutex_unlock(&s->mu);
    store_job_set_progress(s->db, job_id, r.step, r.total, (double)r.step / (double)r.total);
    svc__events_state(s, job_id, "running", NULL, NULL);
    /* A progress event at the starting step anchors the stream's ETA clock,
     * so the next one (a quarter second on) already has an eta. */
    svc__events_progress(s, job_id, r.step, r.total, r.sp.batch_size);
    const long rss_start = svc__rss_now();

    /* For momentum and Nesterov the velocity lives in r.m (saved as the
     * adam.m.* tensors; adam.v.* stays 0), so checkpoints keep one format. */
    eng_opt_cfg opt = eng_opt_defaults((eng_opt_kind)r.sp.optimizer);
    opt.momentum = r.sp.momentum;
    opt.beta1 = r.sp.beta1;
    opt.beta2 = r.sp.beta2;
    opt.eps = r.sp.eps;
    opt.weight_decay = r.sp.weight_decay;
    opt.clip_norm = r.sp.clip_norm;
    const eng_schedule sched = {.kind = (eng_sched_kind)r.sp.sched,
                                .step_size = r.sp.sched_step_size,
                                .gamma = r.sp.sched_gamma,
                                .warmup = r.sp.sched_warmup,
                                .min_lr = r.sp.sched_min_lr};
    const int64_t planned = r.total; /* the schedule's horizon, even if stopped early */
    eng_rng drop_rng;
    /* A job resumed from the checkpoint of its early stop stops there again. */
    if (r.sp.es_metric[0] && r.best_step >= 0 && r.step > 0 && r.step % (int64_t)r.spe == 0 &&
        r.step - r.best_step >= (int64_t)r.sp.es_patience * (int64_t)r.spe)
        r.total = r.step;
    eng_task_batch *tb = r.last_tb;
    double losses[ENG_MAX_TASKS];
    double last_report = now_s();
    eng_rng order_rng;
    char err[300];

    while (r.step < r.total) {
        if (atomic_load(&slot->cancel)) {
            cancel_job(&r);
            goto out;
        }
        if (atomic_load(&s->stopping)) {
            if (r.step != r.last_ckpt && write_checkpoint(&r, err, sizeof err) != 0) {
                fail_job(&r, "checkpoint_failed", err);
                goto out;
            }
            store_job_set_progress(s->db, job_id, r.step, r.total, (double)r.step / (double)r.total);
            store_job_set_state(s->db, job_id, "queued", NULL, NULL);
            svc__events_state(s, job_id, "queued", NULL, NULL);
            goto out;
        }
        size_t lo, hi;
        const uint32_t *order;
        int only = -1; /* several datasets: the one task this step trains */
        if (r.multi) {
            only = sampled_task(&r, r.step);
            order = group_batch(&r, r.jd.task[only].group, &lo, &hi);
        } else {
            long epoch = (long)(r.step / (int64_t)r.spe);
            size_t b = (size_t)(r.step % (int64_t)r.spe);
            epoch_perm(&r, epoch);
            lo = b * (size_t)r.sp.batch_size;
            hi = lo + (size_t)r.sp.batch_size;
            if (hi > r.jd.n_train)
                hi = r.jd.n_train;
            order = r.perm;
        }
        int nb = (int)(hi - lo);
        for (int i = 0; i < nb; i++) {
            uint32_t row = order[lo + (size_t)i];
            memcpy(r.xb + (size_t)i * r.jd.n_in, r.jd.x + (size_t)row * r.jd.n_in,
                   (size_t)r.jd.n_in * sizeof(float));
            for (int t = 0; t < r.jd.n_tasks; t++) {
                r.yb[t][i] = r.jd.task[t].y[row];
                /* a missing target is masked out of that task's loss only; with
                 * several datasets every other task sits this step out (lambda 0) */
                if (r.rwb[t])
                    r.rwb[t][i] = isnan(r.yb[t][i]) || (only >= 0 && t != only) ? 0.0f : 1.0f;
            }
        }
        for (int t = 0; t < r.jd.n_tasks; t++) {
            tb[t].y = r.yb[t];
            tb[t].row_weight = r.rwb[t];
            tb[t].class_weight = r.jd.task[t].class_weight;
            tb[t].lambda = r.jd.task[t].lambda;
        }
        /* Dropout masks come from a generator that is a pure function of
         * (seed, step), so a resumed job draws the same masks. */
        eng_rng_seed(&drop_rng, r.sp.seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(r.step + 1)));
        /* PCGrad's task orders likewise: a pure function of (seed, step). */
        eng_rng_seed(&order_rng, r.sp.seed ^ (0xbf58476d1ce4e5b9ULL * (uint64_t)(r.step + 1)));
        r.last_nb = nb;
        rc = eng_wt_step(r.wt, r.xb, nb, tb, &drop_rng, &order_rng, losses);
        if (rc == ENG_ENONFINITE) {
            int in_grad = 0, bad = eng_mtl_nonfinite(r.model, &in_grad);
            if (bad < 0)
                bad = 0;
            if (in_grad)
                snprintf(msg, sizeof msg, "the gradient of task '%s' became non-finite at step %lld",
                         r.jd.task[bad].name, (long long)r.step + 1);
            else
                snprintf(msg, sizeof msg, "the loss of task '%s' became %s at step %lld",
                         r.jd.task[bad].name, isnan(losses[bad]) ? "NaN" : "infinite",
                         (long long)r.step + 1);
            fail_job(&r, "diverged", msg);
            goto out;
        } else if (rc != ENG_OK) {
            snprintf(msg, sizeof msg, "training step %lld failed: %s", (long long)r.step + 1,
                     eng_strerror(rc));
            fail_job(&r, "engine_error", msg);
            goto out;
        }
        rc = eng_opt_step(&opt, eng_schedule_lr(&sched, r.sp.lr, (long)r.step + 1, (long)planned),
                          eng_mtl_params(r.model) + frozen, eng_mtl_grads(r.model) + frozen,
                          r.m + frozen, r.v + frozen, np - frozen, (long)r.step + 1);
        if (rc != ENG_OK) {
            snprintf(msg, sizeof msg,
                     "a gradient of the shared layers became non-finite at step %lld",
                     (long long)r.step + 1);
            fail_job(&r, "diverged", msg);
            goto out;
        }
        for (int t = 0; t < r.jd.n_tasks; t++)
            if (batch_has_label(&tb[t], nb)) {
                r.epoch_loss[t] += losses[t];
                r.epoch_count[t]++;
            }
        r.epoch_batches++;
        r.step++;
        atomic_store(&slot->step, r.step);

        if (r.step % (int64_t)r.spe == 0) {
            int erc = record_epoch(&r);
            if (erc == SVC_ECONFLICT) {
                cancel_job(&r);
                goto out;
            } else if (erc == SVC_ENOMEM) {
                fail_job(&r, "out_of_memory", "out of memory evaluating the model");
                goto out;
            } else if (erc != SVC_OK) {
                fail_job(&r, "storage_error", "cannot record metrics");
                goto out;
            }
            memset(r.epoch_loss, 0, sizeof r.epoch_loss);
            memset(r.epoch_count, 0, sizeof r.epoch_count);
            r.epoch_batches = 0;
            /* early stopping: patience epochs since the best one */
            if (r.sp.es_metric[0] && r.best_step >= 0 &&
                r.step - r.best_step >= (int64_t)r.sp.es_patience * (int64_t)r.spe &&
                r.step < r.total) {
                SVC_LOG(SVC_LOG_INFO, "early_stop", "job=%lld step=%lld best_step=%lld",
                        (long long)job_id, (long long)r.step, (long long)r.best_step);
                r.total = r.step; /* the checkpoint below is then written */
            }
        }
        if (r.step % r.sp.checkpoint_every == 0 || r.step == r.total || r.best_dirty) {
            if (write_checkpoint(&r, err, sizeof err) != 0) {
                fail_job(&r, "checkpoint_failed", err);
                goto out;
            }
        }
        double t_now = now_s();
        if (t_now - last_report > 0.25 || r.step == r.total) {
            store_job_set_progress(s->db, job_id, r.step, r.total, (double)r.step / (double)r.total);
            svc__events_progress(s, job_id, r.step, r.total, r.sp.batch_size);
            last_report = t_now;
        }
    }

    if (r.sp.es_metric[0] && r.best_step >= 0 && restore_best(&r) != 0) {
        fail_job(&r, "checkpoint_unreadable", "early stopping: the best checkpoint cannot be read");
        goto out;
    }
    task_eval ev[ENG_MAX_TASKS];
    rc = evaluate(&r, r.jd.test, r.jd.n_test, ev);
    if (rc == SVC_ECONFLICT) {
        cancel_job(&r);
        goto out;
    } else if (rc != SVC_OK) {
        fail_job(&r, "out_of_memory", "out of memory evaluating the model");
        goto out;
    }
    if (record_test(&r, ev) != SVC_OK) {
        fail_job(&r, "storage_error", "cannot record metrics");
        goto out;
    }
    json_t *res = results_json(&r, ev);
    if (r.sp.baselines) {
        rc = add_baselines(&r, ev, &opt, &sched, planned, res);
        if (rc != SVC_OK) {
            json_decref(res);
            if (rc == SVC_ECONFLICT && atomic_load(&slot->cancel)) {
                cancel_job(&r);
            } else if (rc == SVC_ECONFLICT) { /* stopping: train them again on restart */
                store_job_set_state(s->db, job_id, "queued", NULL, NULL);
                svc__events_state(s, job_id, "queued", NULL, NULL);
            } else {
                fail_job(&r, "out_of_memory", "out of memory training the single-task baselines");
            }
            goto out;
        }
    }
    if (r.best_step >= 0 && !r.sp.es_metric[0])
        json_object_set_new(res, "best", json_pack("{s:I,s:f}", "step", (json_int_t)r.best_step,
                                                   "validation_loss", r.best_score));
    if (r.best_step >= 0 && r.sp.es_metric[0])
        json_object_set_new(res, "early_stopping",
                            json_pack("{s:s,s:f,s:I,s:b,s:I}", "metric", r.sp.es_metric, "best",
                                      r.sp.es_maximise ? -r.best_score : r.best_score,
                                      "best_step", (json_int_t)r.best_step, "stopped",
                                      r.total < planned, "steps_per_epoch", (json_int_t)r.spe));
    if (r.from_note)
        json_object_set(res, "from_checkpoint", r.from_note);
    if (r.sp.freeze_trunk)
        json_object_set_new(res, "frozen_parameters", json_integer((json_int_t)frozen));
    json_object_set_new(res, "memory", svc__memory_json(rss_start));
    char *text = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(res);
    if (!text || store_job_set_results(s->db, job_id, text) != STORE_OK) {
        free(text);
        fail_job(&r, "storage_error", "cannot store the results");
        goto out;
    }
    free(text);
    store_job_set_state(s->db, job_id, "succeeded", NULL, NULL);
    svc__events_state(s, job_id, "succeeded", NULL, NULL);
out:
    run_free(&r);
}
