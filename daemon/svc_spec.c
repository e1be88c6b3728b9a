/*
 * daemon/svc_spec.c — job specs: strict, table-driven validation.
 *
 * One table lists every key a spec may hold (as a dotted path), its JSON
 * type, its range, and where it lands in svc__spec (or a function for the
 * keys that need more than a range). The walker visits every key the client
 * sent: an unknown key, a wrong type or an out-of-range value is an error
 * whose field is the exact key path (e.g. "model.trunk[2]"), and the defaults
 * fill what is absent. Keys of features not built yet are recognised and
 * refused as "unsupported" rather than silently ignored.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_meta.h"
#include "engine/optim.h"
#include "engine/weighting.h"

typedef enum { K_INT, K_NUM, K_STR, K_BOOL, K_OBJ, K_ANY } kind;

typedef int (*apply_fn)(svc__spec *sp, json_t *v, const char *path, svc_error *e);

typedef struct {
    const char *path;
    kind k;
    double min, max;
    size_t off;        /* offset of an int / double / uint64 field, or (size_t)-1 */
    char ctype;        /* 'i' int, 'd' double, 'u' uint64 */
    apply_fn apply;    /* custom handling (after the type check) */
    int supported;     /* 0: recognised but not available yet */
} rule;

#define NOFF ((size_t)-1)
#define OFF(f) offsetof(svc__spec, f)

static const char *const alg_names[] = {"multitask", "maml",     "fomaml",   "reptile",
                                        "anil",      "metasgd",  "protonet", "finetune"};

const char *svc__algorithm_name(svc__algorithm a)
{
    return (unsigned)a < sizeof alg_names / sizeof alg_names[0] ? alg_names[a] : "?";
}

static int apply_name(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    if (strlen(json_string_value(v)) > 64)
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be at most 64 characters", path);
    snprintf(sp->name, sizeof sp->name, "%s", json_string_value(v));
    return SVC_OK;
}

int svc__algorithm_from_name(const char *name, svc__algorithm *out)
{
    for (size_t i = 0; name && i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strcmp(name, alg_names[i]) == 0) {
            *out = (svc__algorithm)i;
            return 1;
        }
    return 0;
}

static int apply_algorithm(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    if (svc__algorithm_from_name(json_string_value(v), &sp->algorithm))
        return SVC_OK;
    return svc__fail(e, SVC_EINVAL, path,
                     "'%s' must be one of multitask, maml, fomaml, reptile, anil, metasgd, "
                     "protonet, finetune", path);
}

static int apply_layers(json_t *v, const char *path, int *n, int *dst, svc_error *e)
{
    if (!json_is_array(v))
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be an array of layer widths", path);
    if (json_array_size(v) > ENG_MAX_LAYERS)
        return svc__fail(e, SVC_EINVAL, path, "'%s' may have at most %d layers", path,
                         ENG_MAX_LAYERS);
    size_t i;
    json_t *w;
    json_array_foreach(v, i, w)
    {
        if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 4096) {
            char item[160];
            snprintf(item, sizeof item, "%s[%zu]", path, i);
            return svc__fail(e, SVC_EINVAL, item, "'%s' must be an integer from 1 to 4096", item);
        }
        dst[i] = (int)json_integer_value(w);
    }
    *n = (int)json_array_size(v);
    return SVC_OK;
}

static int apply_trunk(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    return apply_layers(v, path, &sp->n_trunk, sp->trunk, e);
}

static int apply_towers(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    return apply_layers(v, path, &sp->n_towers, sp->towers, e);
}

/* Looks v's string up in names[n]: its index into *out, or a 422 that lists
 * the choices. */
static int pick(const char *const *names, size_t n, json_t *v, const char *path, int *out,
                svc_error *e)
{
    const char *str = json_string_value(v);
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(str, names[i]) == 0) {
            *out = (int)i;
            return SVC_OK;
        }
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    return svc__fail(e, SVC_EINVAL, path, "'%s' must be one of %s", path, list);
}

#define NAMES(a) (a), sizeof(a) / sizeof((a)[0])

/* Indexed by eng_act: "identity" is the engine's, not offered in specs. */
static const char *const act_names[] = {"relu", "leaky_relu", "tanh", "sigmoid", "gelu"};
static const eng_act act_values[] = {ENG_ACT_RELU, ENG_ACT_LEAKY_RELU, ENG_ACT_TANH,
                                     ENG_ACT_SIGMOID, ENG_ACT_GELU};

static int apply_activation(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    int i;
    int rc = pick(NAMES(act_names), v, path, &i, e);
    if (rc == SVC_OK)
        sp->activation = act_values[i];
    return rc;
}

/* Indexed by eng_wt_kind (engine/weighting.h). */
static const char *const wt_names[] = {"static", "uncertainty", "gradnorm", "dwa", "pcgrad"};

/* "weighting": a method name, or {"name": ..., "alpha", "temperature", "lr"}
 * where alpha is gradnorm's, temperature dwa's and lr the step size of the
 * learned weights (uncertainty, gradnorm). An option that does not belong
 * to the method named is refused rather than ignored. */
static int apply_weighting(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    char f[96];
    if (json_is_string(v))
        return pick(NAMES(wt_names), v, path, &sp->weighting, e);
    if (!json_is_object(v))
        return svc__fail(e, SVC_EINVAL, path,
                         "'%s' must be a method name or {\"name\": ..., options}", path);
    json_t *name = json_object_get(v, "name");
    snprintf(f, sizeof f, "%s.name", path);
    if (!name)
        return svc__fail(e, SVC_EINVAL, f, "'%s' is required", f);
    if (!json_is_string(name))
        return svc__fail(e, SVC_EINVAL, f, "'%s' must be a string", f);
    int rc = pick(NAMES(wt_names), name, f, &sp->weighting, e);
    if (rc != SVC_OK)
        return rc;
    static const struct {
        const char *key;
        int kind; /* the method it belongs to; -1: uncertainty or gradnorm */
        double min, max;
        size_t off;
    } opts[] = {
        {"alpha", ENG_WT_GRADNORM, 0, 100, OFF(wt_alpha)},
        {"temperature", ENG_WT_DWA, 0.01, 1000, OFF(wt_temperature)},
        {"lr", -1, 1e-8, 10, OFF(wt_lr)},
    };
    const char *k;
    json_t *kv;
    json_object_foreach(v, k, kv)
    {
        if (!strcmp(k, "name"))
            continue;
        snprintf(f, sizeof f, "%s.%s", path, k);
        size_t i = 0;
        while (i < sizeof opts / sizeof opts[0] && strcmp(opts[i].key, k))
            i++;
        if (i == sizeof opts / sizeof opts[0])
            return svc__fail(e, SVC_EINVAL, f,
                             "unknown key '%s' (expected name, alpha, temperature, lr)", f);
        const int w = sp->weighting;
        if (opts[i].kind >= 0 ? w != opts[i].kind
                              : (w != ENG_WT_UNCERTAINTY && w != ENG_WT_GRADNORM))
            return svc__fail(e, SVC_EINVAL, f, "'%s' does not apply to weighting '%s'", f,
                             wt_names[w]);
        if (!json_is_number(kv) || json_number_value(kv) < opts[i].min ||
            json_number_value(kv) > opts[i].max)
            return svc__fail(e, SVC_EINVAL, f, "'%s' must be a number from %g to %g", f,
                             opts[i].min, opts[i].max);
        *(double *)((char *)sp + opts[i].off) = json_number_value(kv);
    }
    return SVC_OK;
}

const char *svc__weighting_name(int w)
{
    return (unsigned)w < sizeof wt_names / sizeof wt_names[0] ? wt_names[w] : "?";
}

static const char *const sampling_names[] = {"round_robin", "proportional"};

static int apply_sampling(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    /* it only matters for tasks on several datasets (svc_job.c, svc_runner.c) */
    return pick(NAMES(sampling_names), v, path, &sp->sampling, e);
}

static int apply_baselines(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    (void)path, (void)e;
    sp->baselines = json_is_true(v);
    return SVC_OK;
}

/* Indexed by eng_opt_kind. */
static const char *const opt_names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};

static int apply_optimizer_name(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    return pick(NAMES(opt_names), v, path, &sp->optimizer, e);
}

/* Indexed by eng_sched_kind. */
static const char *const sched_names[] = {"constant", "step", "cosine", "warmup",
                                          "warmup_cosine"};

static int apply_schedule_name(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    return pick(NAMES(sched_names), v, path, &sp->sched, e);
}

static int apply_schedule_long(json_t *v, long *dst)
{
    *dst = (long)json_integer_value(v);
    return SVC_OK;
}

static int apply_step_size(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    (void)path, (void)e;
    return apply_schedule_long(v, &sp->sched_step_size);
}

static int apply_warmup(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    (void)path, (void)e;
    return apply_schedule_long(v, &sp->sched_warmup);
}

static int apply_layer_norm(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    (void)path, (void)e;
    sp->layer_norm = json_is_true(v);
    return SVC_OK;
}

/* The metrics early stopping may watch, whether larger is better, and the
 * task kind that records them (NULL: every kind), as the runner records a
 * task's held-out figures: loss, then accuracy and macro F1 for a
 * classification task or MSE, MAE and R² for a regression one. */
static const struct {
    const char *name;
    int maximise;
    const char *kind;
} es_metrics[] = {{"loss", 0, NULL},
                  {"accuracy", 1, "classification"},
                  {"macro_f1", 1, "classification"},
                  {"mse", 0, "regression"},
                  {"mae", 0, "regression"},
                  {"r2", 1, "regression"}};

int svc__spec_es_fits_kind(const svc__spec *sp, const char *task_kind, svc_error *e)
{
    const char *dot = strrchr(sp->es_metric, '.');
    if (!dot || !task_kind)
        return SVC_OK;
    char valid[96] = "";
    int fits = 0;
    for (size_t i = 0; i < sizeof es_metrics / sizeof es_metrics[0]; i++) {
        if (es_metrics[i].kind && strcmp(es_metrics[i].kind, task_kind) != 0)
            continue;
        if (strcmp(dot + 1, es_metrics[i].name) == 0)
            fits = 1;
        size_t n = strlen(valid);
        snprintf(valid + n, sizeof valid - n, "%s%s", n ? ", " : "", es_metrics[i].name);
    }
    if (fits)
        return SVC_OK;
    return svc__fail(e, SVC_EINVAL, "early_stopping.metric",
                     "'early_stopping.metric' is '%s', but task '%.*s' is a %s task, which "
                     "records %s (as '%.*s.METRIC')",
                     sp->es_metric, (int)(dot - sp->es_metric), sp->es_metric, task_kind, valid,
                     (int)(dot - sp->es_metric), sp->es_metric);
}

static int apply_es_metric(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    const char *m = json_string_value(v);
    const char *dot = strrchr(m, '.');
    const char *name = dot ? dot + 1 : m;
    if (strlen(m) >= sizeof sp->es_metric)
        return svc__fail(e, SVC_EINVAL, path, "'%s' is too long", path);
    for (size_t i = 0; i < sizeof es_metrics / sizeof es_metrics[0]; i++)
        if (strcmp(name, es_metrics[i].name) == 0 && (dot || i == 0)) {
            snprintf(sp->es_metric, sizeof sp->es_metric, "%s", m);
            sp->es_maximise = es_metrics[i].maximise;
            return SVC_OK; /* the task part is resolved once "tasks" is read */
        }
    return svc__fail(e, SVC_EINVAL, path,
                     "'%s' must be \"loss\" (the weighted held-out loss of all tasks) or "
                     "\"TASK.METRIC\" with METRIC one of loss, accuracy, macro_f1, mse, mae, r2",
                     path);
}

/* early_stopping.metric "TASK.METRIC": TASK must be one of the job's tasks
 * as the spec names them. Run after the walk, when both keys are known. */
static int resolve_es_task(svc__spec *sp, svc_error *e)
{
    sp->es_task = -1;
    if (!sp->es_metric[0] || !strchr(sp->es_metric, '.'))
        return SVC_OK;
    size_t len = (size_t)(strrchr(sp->es_metric, '.') - sp->es_metric);
    for (int i = 0; i < sp->n_tasks; i++)
        if (strlen(sp->tasks[i].task) == len && !strncmp(sp->tasks[i].task, sp->es_metric, len)) {
            sp->es_task = i;
            return SVC_OK;
        }
    return svc__fail(e, SVC_EINVAL, "early_stopping.metric",
                     "'early_stopping.metric' names task '%.*s', which is not in 'tasks'",
                     (int)len, sp->es_metric);
}

/* A task's loss options: "loss" (cross_entropy | mse | huber: which of them
 * fits the task's kind is checked when the job starts, where the kind is
 * known), "label_smoothing" in [0, 1), "huber_delta" > 0. */
static int task_loss_options(svc__spec *sp, int i, json_t *t, const char *p, svc_error *e)
{
    char f[96];
    json_t *v;
    if (!t)
        return SVC_OK;
    if ((v = json_object_get(t, "loss"))) {
        static const char *const losses[] = {"cross_entropy", "mse", "huber"};
        int k = -1;
        snprintf(f, sizeof f, "%s.loss", p);
        if (!json_is_string(v))
            return svc__fail(e, SVC_EINVAL, f, "'%s' must be a string", f);
        int rc = pick(NAMES(losses), v, f, &k, e);
        if (rc != SVC_OK)
            return rc;
        sp->tasks[i].loss = k + 1;
    }
    if ((v = json_object_get(t, "label_smoothing"))) {
        snprintf(f, sizeof f, "%s.label_smoothing", p);
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) < 1))
            return svc__fail(e, SVC_EINVAL, f, "'%s' must be a number from 0 to below 1", f);
        sp->tasks[i].label_smoothing = json_number_value(v);
    }
    if ((v = json_object_get(t, "huber_delta"))) {
        snprintf(f, sizeof f, "%s.huber_delta", p);
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1e6))
            return svc__fail(e, SVC_EINVAL, f, "'%s' must be a number above 0, at most 1e6", f);
        if (sp->tasks[i].loss != 3)
            return svc__fail(e, SVC_EINVAL, f, "'%s' needs \"loss\": \"huber\"", f);
        sp->tasks[i].huber_delta = json_number_value(v);
    }
    return SVC_OK;
}

static int apply_tasks(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be a non-empty array", path);
    if (json_array_size(v) > ENG_MAX_TASKS)
        return svc__fail(e, SVC_EINVAL, path, "'%s' may list at most %d tasks", path,
                         ENG_MAX_TASKS);
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        json_t *name = t, *weight = NULL;
        if (json_is_object(t)) {
            const char *k;
            json_t *kv;
            json_object_foreach(t, k, kv)
            {
                if (strcmp(k, "task") != 0 && strcmp(k, "weight") != 0 && strcmp(k, "loss") &&
                    strcmp(k, "label_smoothing") && strcmp(k, "huber_delta")) {
                    char kp[160];
                    snprintf(kp, sizeof kp, "%s.%s", p, k);
                    return svc__fail(e, SVC_EINVAL, kp,
                                     "unknown key '%s' (expected task, weight, loss, "
                                     "label_smoothing, huber_delta)",
                                     kp);
                }
            }
            name = json_object_get(t, "task");
            weight = json_object_get(t, "weight");
        }
        if (json_is_integer(name)) {
            snprintf(sp->tasks[i].task, sizeof sp->tasks[i].task, "%lld",
                     (long long)json_integer_value(name));
        } else if (json_is_string(name) && strlen(json_string_value(name)) <= 64) {
            snprintf(sp->tasks[i].task, sizeof sp->tasks[i].task, "%s", json_string_value(name));
        } else if (json_is_object(t)) {
            char tp[80];
            snprintf(tp, sizeof tp, "%s.task", p);
            return svc__fail(e, SVC_EINVAL, tp, "'%s' %s a task name (at most 64 characters) or id",
                             tp, name ? "must be" : "is required:");
        } else {
            return svc__fail(e, SVC_EINVAL, p,
                             "'%s' must be a task name or id, or {\"task\": ..., \"weight\": ...}",
                             p);
        }
        sp->tasks[i].weight = 1.0;
        int rc = task_loss_options(sp, (int)i, json_is_object(t) ? t : NULL, p, e);
        if (rc != SVC_OK)
            return rc;
        if (weight) {
            char wp[80];
            snprintf(wp, sizeof wp, "%s.weight", p);
            if (!json_is_number(weight) || json_number_value(weight) < 0 ||
                json_number_value(weight) > 1e6)
                return svc__fail(e, SVC_EINVAL, wp, "'%s' must be a number from 0 to 1e6", wp);
            sp->tasks[i].weight = json_number_value(weight);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(sp->tasks[j].task, sp->tasks[i].task) == 0)
                return svc__fail(e, SVC_EINVAL, p, "task '%s' is listed twice", sp->tasks[i].task);
    }
    sp->n_tasks = (int)json_array_size(v);
    /* A weight of 0 leaves that task out of the loss (it is still evaluated);
     * every weight 0 leaves nothing to train. */
    int trained = 0;
    for (int k = 0; k < sp->n_tasks; k++)
        trained += sp->tasks[k].weight > 0;
    if (!trained)
        return svc__fail(e, SVC_EINVAL, path,
                         "every task in '%s' has weight 0: nothing would be trained (give at "
                         "least one task a weight above 0)",
                         path);
    return SVC_OK;
}

static int walk(svc__spec *sp, json_t *obj, const char *prefix, svc_error *e);

/* model.mmoe: null (no mixture) or an object of the model.mmoe.* keys;
 * "experts" is required, and "model.trunk" then defaults to none (the
 * experts read the input, as in the MMoE paper). */
static int apply_mmoe(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    if (json_is_null(v))
        return SVC_OK;
    if (!json_is_object(v))
        return svc__fail(e, SVC_EINVAL, path,
                         "'%s' must be an object ({\"experts\": E, \"expert_units\": [...], "
                         "...}) or null",
                         path);
    int rc = walk(sp, v, path, e);
    if (rc != SVC_OK)
        return rc;
    if (!json_object_get(v, "experts"))
        return svc__fail(e, SVC_EINVAL, "model.mmoe.experts", "'model.mmoe.experts' is required");
    return SVC_OK;
}

static int apply_expert_units(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    int rc = apply_layers(v, path, &sp->moe_n_units, sp->moe_units, e);
    if (rc == SVC_OK && sp->moe_n_units == 0)
        return svc__fail(e, SVC_EINVAL, path, "'%s' needs at least one layer width", path);
    return rc;
}

void svc__model_arch(const svc__spec *sp, eng_mtl_spec *ms)
{
    ms->n_trunk = sp->n_trunk;
    memcpy(ms->trunk, sp->trunk, sizeof ms->trunk);
    ms->act = sp->activation;
    ms->leaky_slope = sp->leaky_slope;
    ms->dropout = sp->dropout;
    ms->layer_norm = sp->layer_norm;
    for (int t = 0; t < ENG_MAX_TASKS; t++) {
        ms->task[t].n_tower = sp->n_towers;
        memcpy(ms->task[t].tower, sp->towers, sizeof ms->task[t].tower);
    }
    memset(&ms->moe, 0, sizeof ms->moe);
    if (sp->moe_experts > 0) {
        ms->moe.experts = sp->moe_experts;
        ms->moe.task_experts = sp->moe_task_experts;
        ms->moe.levels = sp->moe_levels;
        ms->moe.n_units = sp->moe_n_units;
        memcpy(ms->moe.units, sp->moe_units, sizeof ms->moe.units);
        ms->moe.gate_temperature = sp->moe_temperature;
    }
}

/* from_checkpoint: null, a job id (integer or digits), or {"job": id}. That
 * the job exists and has a checkpoint is checked at submission (svc_job.c). */
static int apply_from_checkpoint(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    char field[96];
    snprintf(field, sizeof field, "%s", path);
    if (json_is_null(v))
        return SVC_OK;
    if (json_is_object(v)) {
        const char *k;
        json_t *kv;
        json_object_foreach(v, k, kv)
        {
            if (strcmp(k, "job") != 0 && strcmp(k, "checkpoint") != 0)
                return svc__fail(e, SVC_EINVAL, path,
                                 "unknown key '%s.%s' (expected job or checkpoint)", path, k);
        }
        json_t *imp = json_object_get(v, "checkpoint");
        if (imp && json_object_get(v, "job"))
            return svc__fail(e, SVC_EINVAL, path,
                             "'%s' takes either 'job' or 'checkpoint', not both", path);
        if (imp) {
            snprintf(field, sizeof field, "%s.checkpoint", path);
            if (json_is_integer(imp) && json_integer_value(imp) > 0)
                snprintf(sp->from_import, sizeof sp->from_import, "%lld",
                         (long long)json_integer_value(imp));
            else if (json_is_string(imp) && json_string_length(imp) > 0 &&
                     json_string_length(imp) <= 64)
                snprintf(sp->from_import, sizeof sp->from_import, "%s", json_string_value(imp));
            else
                return svc__fail(e, SVC_EINVAL, field,
                                 "'%s' must be the id or name of an imported model "
                                 "(POST /v1/checkpoints)", field);
            return SVC_OK;
        }
        snprintf(field, sizeof field, "%s.job", path);
        v = json_object_get(v, "job");
        if (!v)
            return svc__fail(e, SVC_EINVAL, field, "'%s' is required (or '%s.checkpoint')",
                             field, path);
    }
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(sp->from_job, sizeof sp->from_job, "%lld", (long long)json_integer_value(v));
        return SVC_OK;
    }
    const char *str = json_string_value(v);
    size_t n = str ? strlen(str) : 0;
    int digits = n > 0 && n < 19;
    for (size_t i = 0; digits && i < n; i++)
        digits = str[i] >= '0' && str[i] <= '9';
    if (!digits)
        return svc__fail(e, SVC_EINVAL, field,
                         "'%s' must be a job id (a positive integer) or {\"job\": id}", field);
    snprintf(sp->from_job, sizeof sp->from_job, "%s", str);
    return SVC_OK;
}

static int apply_freeze(svc__spec *sp, json_t *v, const char *path, svc_error *e)
{
    const char *f = json_string_value(v);
    if (strcmp(f, "trunk") && strcmp(f, "none"))
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be \"trunk\" or \"none\"", path);
    sp->freeze_trunk = !strcmp(f, "trunk");
    return SVC_OK;
}

static const rule rules[] = {
    {"name", K_STR, 0, 0, NOFF, 0, apply_name, 1},
    {"algorithm", K_STR, 0, 0, NOFF, 0, apply_algorithm, 1},
    {"tasks", K_ANY, 0, 0, NOFF, 0, apply_tasks, 1},
    {"model", K_OBJ, 0, 0, NOFF, 0, NULL, 1},
    {"model.trunk", K_ANY, 0, 0, NOFF, 0, apply_trunk, 1},
    {"model.towers", K_ANY, 0, 0, NOFF, 0, apply_towers, 1},
    {"model.activation", K_STR, 0, 0, NOFF, 0, apply_activation, 1},
    {"model.dropout", K_NUM, 0, 0.99, OFF(dropout), 'd', NULL, 1},
    {"model.layer_norm", K_BOOL, 0, 0, NOFF, 0, apply_layer_norm, 1},
    {"model.leaky_slope", K_NUM, 0.0001, 0.99, OFF(leaky_slope), 'd', NULL, 1},
    {"model.mmoe", K_ANY, 0, 0, NOFF, 0, apply_mmoe, 1},
    {"model.mmoe.experts", K_INT, 1, ENG_MOE_MAX_EXPERTS, OFF(moe_experts), 'i', NULL, 1},
    {"model.mmoe.expert_units", K_ANY, 0, 0, NOFF, 0, apply_expert_units, 1},
    {"model.mmoe.gate_temperature", K_NUM, 0.01, 100, OFF(moe_temperature), 'd', NULL, 1},
    {"model.mmoe.task_experts", K_INT, 0, 16, OFF(moe_task_experts), 'i', NULL, 1},
    {"model.mmoe.levels", K_INT, 1, ENG_MOE_MAX_LEVELS, OFF(moe_levels), 'i', NULL, 1},
    {"weighting", K_ANY, 0, 0, NOFF, 0, apply_weighting, 1},
    {"sampling", K_STR, 0, 0, NOFF, 0, apply_sampling, 1},
    {"baselines", K_BOOL, 0, 0, NOFF, 0, apply_baselines, 1},
    {"optimizer", K_OBJ, 0, 0, NOFF, 0, NULL, 1},
    {"optimizer.name", K_STR, 0, 0, NOFF, 0, apply_optimizer_name, 1},
    {"optimizer.momentum", K_NUM, 0, 0.999999, OFF(momentum), 'd', NULL, 1},
    {"optimizer.clip_norm", K_NUM, 0, 1e6, OFF(clip_norm), 'd', NULL, 1},
    {"optimizer.schedule", K_OBJ, 0, 0, NOFF, 0, NULL, 1},
    {"optimizer.schedule.name", K_STR, 0, 0, NOFF, 0, apply_schedule_name, 1},
    {"optimizer.schedule.step_size", K_INT, 1, 1e9, NOFF, 0, apply_step_size, 1},
    {"optimizer.schedule.gamma", K_NUM, 0, 1, OFF(sched_gamma), 'd', NULL, 1},
    {"optimizer.schedule.warmup", K_INT, 1, 1e9, NOFF, 0, apply_warmup, 1},
    {"optimizer.schedule.min_lr", K_NUM, 0, 10, OFF(sched_min_lr), 'd', NULL, 1},
    {"early_stopping", K_OBJ, 0, 0, NOFF, 0, NULL, 1},
    {"early_stopping.metric", K_STR, 0, 0, NOFF, 0, apply_es_metric, 1},
    {"early_stopping.patience", K_INT, 1, 100000, OFF(es_patience), 'i', NULL, 1},
    {"optimizer.lr", K_NUM, 1e-8, 10, OFF(lr), 'd', NULL, 1},
    {"optimizer.weight_decay", K_NUM, 0, 1, OFF(weight_decay), 'd', NULL, 1},
    {"optimizer.beta1", K_NUM, 0, 0.999999, OFF(beta1), 'd', NULL, 1},
    {"optimizer.beta2", K_NUM, 0, 0.999999999, OFF(beta2), 'd', NULL, 1},
    {"optimizer.eps", K_NUM, 1e-12, 1, OFF(eps), 'd', NULL, 1},
    {"epochs", K_INT, 1, 100000, OFF(epochs), 'i', NULL, 1},
    {"batch_size", K_INT, 1, 8192, OFF(batch_size), 'i', NULL, 1},
    {"seed", K_INT, 0, 9007199254740991.0, OFF(seed), 'u', NULL, 1},
    {"test_fraction", K_NUM, 0.01, 0.9, OFF(test_fraction), 'd', NULL, 1},
    {"validation_fraction", K_NUM, 0, 0.9, OFF(validation_fraction), 'd', NULL, 1},
    {"priority", K_INT, -1000, 1000, OFF(priority), 'i', NULL, 1},
    {"checkpoint_every", K_INT, 1, 100000000, OFF(checkpoint_every), 'i', NULL, 1},
    {"keep_checkpoints", K_INT, 1, 1000, OFF(keep_checkpoints), 'i', NULL, 1},
    /* meta-learning keys: validated by svc__meta_spec_parse (svc_meta.c) */
    {"episodes", K_ANY, 0, 0, NOFF, 0, NULL, 1},
    {"inner", K_ANY, 0, 0, NOFF, 0, NULL, 1},
    {"meta_batch", K_ANY, 0, 0, NOFF, 0, NULL, 1},
    {"steps", K_ANY, 0, 0, NOFF, 0, NULL, 1},
    {"eval", K_ANY, 0, 0, NOFF, 0, NULL, 1},
    {"from_checkpoint", K_ANY, 0, 0, NOFF, 0, apply_from_checkpoint, 1},
    {"freeze", K_STR, 0, 0, NOFF, 0, apply_freeze, 1},
};

static const rule *find_rule(const char *path)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].path, path) == 0)
            return &rules[i];
    return NULL;
}

static const char *kind_name(kind k)
{
    switch (k) {
    case K_INT: return "an integer";
    case K_NUM: return "a number";
    case K_STR: return "a string";
    case K_BOOL: return "true or false";
    case K_OBJ: return "an object";
    default: return "a value";
    }
}

static int check_one(svc__spec *sp, const rule *r, json_t *v, const char *path, svc_error *e);

static int walk(svc__spec *sp, json_t *obj, const char *prefix, svc_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char path[128];
        if (prefix[0])
            snprintf(path, sizeof path, "%s.%s", prefix, key);
        else
            snprintf(path, sizeof path, "%s", key);
        const rule *r = find_rule(path);
        if (!r)
            return svc__fail(e, SVC_EINVAL, path, "unknown key '%s' in job spec", path);
        int rc = check_one(sp, r, v, path, e);
        if (rc != SVC_OK)
            return rc;
    }
    return SVC_OK;
}

static int check_one(svc__spec *sp, const rule *r, json_t *v, const char *path, svc_error *e)
{
    if (!r->supported)
        return svc__fail(e, SVC_EUNSUPPORTED, path,
                         "'%s' belongs to meta-learning, which is not available in this build yet",
                         path);
    switch (r->k) {
    case K_INT:
        if (!json_is_integer(v))
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be %s", path, kind_name(r->k));
        if ((double)json_integer_value(v) < r->min || (double)json_integer_value(v) > r->max)
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be from %.15g to %.15g", path, r->min,
                             r->max);
        break;
    case K_NUM:
        if (!json_is_number(v))
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be %s", path, kind_name(r->k));
        if (json_number_value(v) < r->min || json_number_value(v) > r->max)
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be from %g to %g", path, r->min,
                             r->max);
        break;
    case K_STR:
        if (!json_is_string(v))
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be %s", path, kind_name(r->k));
        break;
    case K_BOOL:
        if (!json_is_boolean(v))
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be %s", path, kind_name(r->k));
        break;
    case K_OBJ:
        if (!json_is_object(v))
            return svc__fail(e, SVC_EINVAL, path, "'%s' must be %s", path, kind_name(r->k));
        return walk(sp, v, path, e);
    case K_ANY:
        break;
    }
    if (r->off != NOFF) {
        char *base = (char *)sp;
        if (r->ctype == 'i')
            *(int *)(base + r->off) = (int)json_integer_value(v);
        else if (r->ctype == 'u')
            *(uint64_t *)(base + r->off) = (uint64_t)json_integer_value(v);
        else
            *(double *)(base + r->off) = json_number_value(v);
    }
    return r->apply ? r->apply(sp, v, path, e) : SVC_OK;
}

/* What model.mmoe needs beyond its own keys' ranges: the experts of a
 * level fit the engine's limit, the trunk (below the experts) defaults to
 * none, and it is a multi-task model only. */
static int check_mmoe(svc__spec *sp, json_t *spec, svc_error *e)
{
    json_t *model = json_object_get(spec, "model");
    json_t *mm = json_object_get(model, "mmoe");
    if (!mm || json_is_null(mm)) {
        sp->moe_experts = 0;
        return SVC_OK;
    }
    if (sp->algorithm != SVC_ALG_MULTITASK && sp->algorithm != SVC_ALG_FINETUNE)
        return svc__fail(e, SVC_EINVAL, "model.mmoe",
                         "'model.mmoe' applies to algorithms multitask and finetune only");
    if (sp->moe_experts + sp->n_tasks * sp->moe_task_experts > ENG_MOE_MAX_EXPERTS)
        return svc__fail(e, SVC_EINVAL, "model.mmoe.task_experts",
                         "'model.mmoe.experts' + tasks x 'model.mmoe.task_experts' is %d; a level "
                         "may hold at most %d experts",
                         sp->moe_experts + sp->n_tasks * sp->moe_task_experts,
                         ENG_MOE_MAX_EXPERTS);
    if (!json_object_get(model, "trunk"))
        sp->n_trunk = 0; /* the experts read the input unless a trunk is asked for */
    return SVC_OK;
}

/* validation_fraction: the rows that choose the epoch (best checkpoint,
 * early stopping) are carved from the training part, so some training rows
 * must be left; with none (0) there is nothing to stop on, and early
 * stopping on the test split would leak it into the reported figures.
 * Meta-learning holds out classes of its own (episodes). */
static int check_validation(const svc__spec *sp, json_t *spec, svc_error *e)
{
    if (svc__is_meta(sp->algorithm)) {
        if (json_object_get(spec, "validation_fraction"))
            return svc__fail(e, SVC_EINVAL, "validation_fraction",
                             "'validation_fraction' applies to algorithms multitask and finetune "
                             "only (meta-learning holds out classes: 'episodes')");
        return SVC_OK;
    }
    /* 0.95 with room for the sum's rounding: 0.9 + 0.05 is 0.9500000000000001
     * in binary floating point, and is meant as 0.95 */
    if (sp->validation_fraction + sp->test_fraction > 0.95 + 1e-9)
        return svc__fail(e, SVC_EINVAL, "validation_fraction",
                         "'validation_fraction' + 'test_fraction' is %g; at most 0.95, so rows "
                         "are left to train on",
                         sp->validation_fraction + sp->test_fraction);
    if (sp->validation_fraction == 0 && json_object_get(spec, "early_stopping"))
        return svc__fail(e, SVC_EINVAL, "early_stopping",
                         "'early_stopping' needs a validation split: 'validation_fraction' is 0");
    return SVC_OK;
}

int svc__spec_parse(json_t *spec, svc__spec *out, svc_error *e)
{
    svc__spec sp;
    memset(&sp, 0, sizeof sp);
    sp.algorithm = SVC_ALG_MULTITASK;
    sp.n_trunk = 2;
    sp.trunk[0] = 128;
    sp.trunk[1] = 64;
    sp.activation = ENG_ACT_RELU;
    sp.optimizer = ENG_OPT_ADAM;
    sp.momentum = 0.9;
    sp.sched = ENG_SCHED_CONSTANT;
    sp.sched_step_size = 1000;
    sp.sched_gamma = 0.1;
    sp.sched_warmup = 100;
    sp.es_patience = 5;
    sp.es_task = -1;
    sp.lr = 0.001;
    sp.beta1 = 0.9;
    sp.beta2 = 0.999;
    sp.eps = 1e-8;
    sp.epochs = 30;
    sp.batch_size = 64;
    sp.seed = 7;
    sp.test_fraction = 0.2;
    sp.validation_fraction = 0.1;
    sp.checkpoint_every = 100;
    sp.keep_checkpoints = 3;
    sp.weighting = ENG_WT_STATIC;
    sp.wt_alpha = 1.5;
    sp.wt_temperature = 2.0;
    sp.moe_levels = 1;
    sp.moe_n_units = 1;
    sp.moe_units[0] = 64;
    sp.moe_temperature = 1.0;

    if (!json_is_object(spec))
        return svc__fail(e, SVC_EINVAL, "", "a job spec must be a JSON object");
    if (!json_object_get(spec, "algorithm"))
        return svc__fail(e, SVC_EINVAL, "algorithm", "'algorithm' is required");
    if (!json_object_get(spec, "tasks"))
        return svc__fail(e, SVC_EINVAL, "tasks", "'tasks' is required");
    int rc = walk(&sp, spec, "", e);
    if (rc != SVC_OK)
        return rc;
    json_t *es = json_object_get(spec, "early_stopping");
    if (es && !json_object_get(es, "metric"))
        return svc__fail(e, SVC_EINVAL, "early_stopping.metric",
                         "'early_stopping.metric' is required");
    rc = resolve_es_task(&sp, e);
    if (rc != SVC_OK)
        return rc;
    rc = check_validation(&sp, spec, e);
    if (rc != SVC_OK)
        return rc;
    rc = check_mmoe(&sp, spec, e);
    if (rc != SVC_OK)
        return rc;
    if (sp.algorithm == SVC_ALG_FINETUNE && !sp.from_job[0] && !sp.from_import[0])
        return svc__fail(e, SVC_EINVAL, "from_checkpoint",
                         "'from_checkpoint' is required: finetune starts from a checkpoint");
    if (json_object_get(spec, "freeze") && sp.algorithm != SVC_ALG_FINETUNE)
        return svc__fail(e, SVC_EINVAL, "freeze", "'freeze' applies to algorithm finetune only");
    svc__meta_spec ms;
    rc = svc__meta_spec_parse(spec, &sp, &ms, e);
    if (rc != SVC_OK)
        return rc;
    *out = sp;
    return SVC_OK;
}
