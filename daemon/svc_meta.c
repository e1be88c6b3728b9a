/*
 * daemon/svc_meta.c — meta-learning jobs: spec keys, submission checks, and
 * the runner that joins the store and engine/meta.h.
 *
 * A job meta-learns from ONE task, which is either a generator
 * ({"generator": "sinusoid"}: every meta-training task is a fresh sinusoid)
 * or a classification task whose classes are split into meta-train and
 * meta-test classes (episodes.test_classes or episodes.test_fraction);
 * episodes are N-way K-shot draws from one side of the split.
 *
 * Built to resume exactly, like the multitask runner:
 *  - the tasks of meta-iteration i are a pure function of (seed, i): each
 *    iteration reseeds its own generator, so a resumed job needs only the
 *    step;
 *  - a checkpoint holds the meta-parameters, both Adam moments, the step and
 *    the running training-loss sums (hex floats), and metrics after the
 *    checkpoint's step are discarded on resume;
 *  - meta-test episodes come from a generator seeded by eval.seed alone, so
 *    every job with the same evaluation seed (and class split) is judged on
 *    the same episodes.
 * Every buffer is allocated before the loop; a meta-iteration copies rows
 * into them and calls the engine, which allocates nothing. The daemon's
 * resident memory is recorded at the start and end of training and its
 * peak at the end: MAML's memory is linear in inner steps and meta-batch
 * and must not grow with iterations.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/svc_jobdata.h"
#include "daemon/svc_log.h"
#include "daemon/svc_meta.h"
#include "engine/episodes.h"
#include "engine/meta.h"

/* ---- spec keys --------------------------------------------------------- */

static const char *const meta_keys[] = {"episodes", "inner", "meta_batch", "steps", "eval"};

int svc__is_meta(svc__algorithm a)
{
    return a == SVC_ALG_MAML || a == SVC_ALG_FOMAML || a == SVC_ALG_REPTILE ||
           a == SVC_ALG_ANIL || a == SVC_ALG_METASGD || a == SVC_ALG_PROTONET;
}

typedef struct {
    const char *key;
    char type;        /* 'i' int, 'l' long, 'd' double, 'u' uint64, 's' special (caller) */
    double lo, hi;
    void *dst;
} field;

/* Checks obj's keys against fields and stores the plain ones. */
static int parse_obj(json_t *obj, const char *path, const field *f, size_t nf, svc_error *e)
{
    if (!json_is_object(obj))
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be an object", path);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char p[128];
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key); /* "" is the top */
        const field *hit = NULL;
        for (size_t i = 0; i < nf && !hit; i++)
            if (strcmp(f[i].key, key) == 0)
                hit = &f[i];
        if (!hit) {
            char list[200] = "";
            size_t used = 0;
            for (size_t i = 0; i < nf; i++)
                used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0,
                                         "%s%s", i ? ", " : "", f[i].key);
            return svc__fail(e, SVC_EINVAL, p, "unknown key '%s' (expected %s)", p, list);
        }
        if (hit->type == 's')
            continue;
        if (hit->type == 'd' ? !json_is_number(v) : !json_is_integer(v))
            return svc__fail(e, SVC_EINVAL, p, "'%s' must be %s", p,
                             hit->type == 'd' ? "a number" : "an integer");
        double x = json_number_value(v);
        if (!(x >= hit->lo && x <= hit->hi))
            return svc__fail(e, SVC_EINVAL, p, "'%s' must be from %.15g to %.15g", p, hit->lo,
                             hit->hi);
        switch (hit->type) {
        case 'i': *(int *)hit->dst = (int)json_integer_value(v); break;
        case 'l': *(long *)hit->dst = (long)json_integer_value(v); break;
        case 'u': *(uint64_t *)hit->dst = (uint64_t)json_integer_value(v); break;
        default: *(double *)hit->dst = x; break;
        }
    }
    return SVC_OK;
}

static int parse_test_classes(json_t *v, svc__meta_spec *ms, svc_error *e)
{
    const char *path = "episodes.test_classes";
    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > SVC__META_MAX_TEST_CLASSES)
        return svc__fail(e, SVC_EINVAL, path,
                         "'%s' must be an array of 1 to %d class labels (strings or integers)",
                         path, SVC__META_MAX_TEST_CLASSES);
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c)
    {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        char *dst = ms->test_classes[i];
        if (json_is_integer(c))
            snprintf(dst, 65, "%lld", (long long)json_integer_value(c));
        else if (json_is_string(c) && strlen(json_string_value(c)) <= 64)
            snprintf(dst, 65, "%s", json_string_value(c));
        else
            return svc__fail(e, SVC_EINVAL, p, "'%s' must be a class label (string or integer)", p);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ms->test_classes[j], dst) == 0)
                return svc__fail(e, SVC_EINVAL, p, "class '%s' is listed twice", dst);
    }
    ms->n_test_classes = (int)json_array_size(v);
    return SVC_OK;
}

static int parse_eval_steps(json_t *v, svc__meta_spec *ms, svc_error *e)
{
    const char *path = "eval.steps";
    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > SVC__META_MAX_EVAL_STEPS)
        return svc__fail(e, SVC_EINVAL, path, "'%s' must be an array of 1 to %d step counts",
                         path, SVC__META_MAX_EVAL_STEPS);
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c)
    {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > 1000)
            return svc__fail(e, SVC_EINVAL, p, "'%s' must be an integer from 0 to 1000", p);
        ms->eval_steps[i] = (int)json_integer_value(c);
        if (i > 0 && ms->eval_steps[i] <= ms->eval_steps[i - 1])
            return svc__fail(e, SVC_EINVAL, p, "'%s' must be in strictly ascending order", path);
    }
    ms->n_eval_steps = (int)json_array_size(v);
    return SVC_OK;
}

int svc__meta_spec_parse(json_t *spec, const svc__spec *sp, svc__meta_spec *out, svc_error *e)
{
    svc__meta_spec ms;
    memset(&ms, 0, sizeof ms);
    ms.ways = 5;
    ms.shots = 1;
    ms.queries = 15;
    ms.inner_lr = 0.01;
    ms.inner_steps = 1;
    ms.meta_batch = 25;
    ms.steps = 1000;
    ms.eval_episodes = 600;
    ms.n_eval_steps = 3;
    ms.eval_steps[0] = 0;
    ms.eval_steps[1] = 1;
    ms.eval_steps[2] = 10;
    ms.eval_seed = 1;
    if (!svc__is_meta(sp->algorithm)) {
        for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++)
            if (json_object_get(spec, meta_keys[i]))
                return svc__fail(e, SVC_EINVAL, meta_keys[i],
                                 "'%s' applies to meta-learning algorithms only (maml, fomaml, "
                                 "reptile, anil, metasgd, protonet)", meta_keys[i]);
        *out = ms;
        return SVC_OK;
    }
    if (sp->activation != ENG_ACT_RELU && sp->activation != ENG_ACT_TANH)
        return svc__fail(e, SVC_EINVAL, "model.activation",
                         "meta-learning networks use \"relu\" or \"tanh\"");
    if (sp->dropout != 0 || sp->layer_norm || sp->n_towers > 0)
        return svc__fail(e, SVC_EINVAL,
                         sp->dropout != 0 ? "model.dropout"
                                          : sp->layer_norm ? "model.layer_norm" : "model.towers",
                         "dropout, layer norm and towers do not apply to meta-learning (a plain "
                         "MLP: model.trunk and model.activation)");
    if (sp->optimizer != ENG_OPT_ADAM)
        return svc__fail(e, SVC_EINVAL, "optimizer.name",
                         "the outer optimiser of meta-learning is adam (reptile: its lr is the "
                         "outer step size)");
    if (sp->algorithm == SVC_ALG_PROTONET && sp->n_trunk < 1)
        return svc__fail(e, SVC_EINVAL, "model.trunk",
                         "protonet needs at least one layer: the last is the embedding");
    if (sp->algorithm == SVC_ALG_PROTONET)
        ms.n_eval_steps = 1; /* prototypes: no gradient steps */

    json_t *v;
    int rc;
    if ((v = json_object_get(spec, "episodes"))) {
        const field f[] = {{"ways", 'i', 2, 64, &ms.ways},
                           {"shots", 'i', 1, 100, &ms.shots},
                           {"queries", 'i', 1, 500, &ms.queries},
                           {"test_classes", 's', 0, 0, NULL},
                           {"test_fraction", 'd', 0.01, 0.9, &ms.test_fraction},
                           {"test_task", 's', 0, 0, NULL}};
        if ((rc = parse_obj(v, "episodes", f, sizeof f / sizeof f[0], e)) != SVC_OK)
            return rc;
        ms.has_ways = json_object_get(v, "ways") != NULL;
        ms.has_shots = json_object_get(v, "shots") != NULL;
        ms.has_queries = json_object_get(v, "queries") != NULL;
        json_t *tc = json_object_get(v, "test_classes");
        if (tc && (rc = parse_test_classes(tc, &ms, e)) != SVC_OK)
            return rc;
        if (tc && json_object_get(v, "test_fraction"))
            return svc__fail(e, SVC_EINVAL, "episodes.test_fraction",
                             "give either 'episodes.test_classes' or 'episodes.test_fraction', "
                             "not both");
        json_t *tt = json_object_get(v, "test_task");
        if (tt) {
            if (json_is_integer(tt) && json_integer_value(tt) > 0)
                snprintf(ms.test_task, sizeof ms.test_task, "%lld",
                         (long long)json_integer_value(tt));
            else if (json_is_string(tt) && json_string_length(tt) > 0 &&
                     json_string_length(tt) <= 64)
                snprintf(ms.test_task, sizeof ms.test_task, "%s", json_string_value(tt));
            else
                return svc__fail(e, SVC_EINVAL, "episodes.test_task",
                                 "'episodes.test_task' must be a task name or id");
            if (tc || json_object_get(v, "test_fraction"))
                return svc__fail(e, SVC_EINVAL, "episodes.test_task",
                                 "give one of 'episodes.test_classes', "
                                 "'episodes.test_fraction' or 'episodes.test_task'");
            if (strcmp(ms.test_task, sp->tasks[0].task) == 0)
                return svc__fail(e, SVC_EINVAL, "episodes.test_task",
                                 "'episodes.test_task' must be another task than the one "
                                 "meta-trained on (to hold out some of its classes, use "
                                 "test_classes or test_fraction)");
        }
    }
    if ((v = json_object_get(spec, "inner"))) {
        const field f[] = {{"lr", 'd', 0, 10, &ms.inner_lr},
                           {"steps", 'i', 0, 100, &ms.inner_steps}};
        if ((rc = parse_obj(v, "inner", f, 2, e)) != SVC_OK)
            return rc;
    }
    json_t *top = json_object();
    if ((v = json_object_get(spec, "meta_batch")))
        json_object_set(top, "meta_batch", v);
    if ((v = json_object_get(spec, "steps")))
        json_object_set(top, "steps", v);
    const field ft[] = {{"meta_batch", 'i', 1, 1000, &ms.meta_batch},
                        {"steps", 'l', 1, 10000000, &ms.steps}};
    rc = parse_obj(top, "", ft, 2, e);
    json_decref(top);
    if (rc != SVC_OK)
        return rc;
    if ((v = json_object_get(spec, "eval"))) {
        const field f[] = {{"episodes", 'i', 1, 100000, &ms.eval_episodes},
                           {"steps", 's', 0, 0, NULL},
                           {"seed", 'u', 0, 9007199254740991.0, &ms.eval_seed}};
        if ((rc = parse_obj(v, "eval", f, 3, e)) != SVC_OK)
            return rc;
        json_t *st = json_object_get(v, "steps");
        if (st && (rc = parse_eval_steps(st, &ms, e)) != SVC_OK)
            return rc;
    }
    *out = ms;
    return SVC_OK;
}

/* ---- the task distribution --------------------------------------------- */

/* Class labels of a classification job, and the meta-test mask. With
 * episodes.test_task, every class of the job's task is meta-train and the
 * meta-test episodes come from the test task's rows (t_label). */
typedef struct {
    int n_classes;
    int *label;               /* [n_rows] */
    unsigned char *is_test;   /* [n_classes] */
    int t_classes;            /* test_task: its classes */
    int *t_label;             /* [t_rows] its labels, NULL without test_task */
    size_t t_rows;
} class_split;

static void class_split_clear(class_split *c)
{
    free(c->label);
    free(c->is_test);
    free(c->t_label);
    memset(c, 0, sizeof *c);
}

/* episodes.test_task: the test task's data, which must be a classification
 * task reading exactly the inputs of the job's task (same names, same
 * one-hot levels, same order), so one network embeds both. */
static int load_test_task(svc *s, const svc__spec *sp, const svc__meta_spec *ms,
                          const svc__jobdata *train, svc__jobdata *out, svc_error *e)
{
    const char *f = "episodes.test_task";
    store_task t = {0};
    int rc = store_task_find(s->db, ms->test_task, &t);
    if (rc == STORE_ENOTFOUND)
        return svc__fail(e, SVC_EINVAL, f, "no task '%s'", ms->test_task);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "task", ms->test_task);
    int generator = t.dataset_id == 0;
    json_t *def = json_loads(t.def ? t.def : "{}", 0, NULL);
    const char *kind = json_string_value(json_object_get(def, "kind"));
    int classification = kind && !strcmp(kind, "classification");
    json_decref(def);
    store_task_clear(&t);
    if (generator || !classification)
        return svc__fail(e, SVC_EINVAL, f,
                         "test task '%s' must be a classification task (its classes make "
                         "the meta-test episodes)", ms->test_task);
    svc__spec tsp = *sp;
    tsp.n_tasks = 1;
    snprintf(tsp.tasks[0].task, sizeof tsp.tasks[0].task, "%s", ms->test_task);
    tsp.tasks[0].weight = 1;
    svc_error te = {0};
    if ((rc = svc__jobdata_load(s, &tsp, out, &te)) != SVC_OK)
        return svc__fail(e, rc, f, "test task '%s': %s", ms->test_task, te.message);
    if (!json_equal(out->input_names, train->input_names)) {
        char *a = json_dumps(train->input_names, JSON_COMPACT),
             *b = json_dumps(out->input_names, JSON_COMPACT);
        rc = svc__fail(e, SVC_EINVAL, f,
                       "test task '%s' reads other inputs than task '%s' (%.120s vs %.120s): "
                       "one network must embed both",
                       ms->test_task, train->task[0].name, b ? b : "?", a ? a : "?");
        free(a);
        free(b);
        svc__jobdata_clear(out);
        return rc;
    }
    return SVC_OK;
}

static int test_labels(const svc__jobdata *tj, class_split *cs, svc_error *e)
{
    cs->t_rows = tj->n_rows;
    cs->t_classes = tj->task[0].n_classes;
    cs->t_label = malloc((tj->n_rows ? tj->n_rows : 1) * sizeof *cs->t_label);
    if (!cs->t_label)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    for (size_t r = 0; r < tj->n_rows; r++)
        cs->t_label[r] = isfinite(tj->task[0].y[r]) ? (int)tj->task[0].y[r] : -1;
    return SVC_OK;
}

static int make_split(const svc__jobdata *jd, const svc__spec *sp, const svc__meta_spec *ms,
                      class_split *cs, svc_error *e)
{
    const svc__jd_task *t = &jd->task[0];
    memset(cs, 0, sizeof *cs);
    cs->n_classes = t->n_classes;
    cs->label = malloc(jd->n_rows * sizeof *cs->label);
    cs->is_test = calloc((size_t)t->n_classes, 1);
    if (!cs->label || !cs->is_test) {
        class_split_clear(cs);
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    for (size_t r = 0; r < jd->n_rows; r++)
        cs->label[r] = isfinite(t->y[r]) ? (int)t->y[r] : -1;
    if (ms->test_task[0]) {
        /* every class meta-trains; meta-test comes from the test task */
    } else if (ms->n_test_classes > 0) {
        for (int i = 0; i < ms->n_test_classes; i++) {
            int hit = -1;
            for (int c = 0; c < t->n_classes && hit < 0; c++)
                if (strcmp(t->labels[c], ms->test_classes[i]) == 0)
                    hit = c;
            if (hit < 0) {
                char p[64];
                snprintf(p, sizeof p, "episodes.test_classes[%d]", i);
                int rc = svc__fail(e, SVC_EINVAL, p, "task '%s' has no class '%s' (it has %d, "
                                   "e.g. '%s')", t->name, ms->test_classes[i], t->n_classes,
                                   t->labels[0]);
                class_split_clear(cs);
                return rc;
            }
            cs->is_test[hit] = 1;
        }
        if (ms->n_test_classes >= t->n_classes) {
            class_split_clear(cs);
            return svc__fail(e, SVC_EINVAL, "episodes.test_classes",
                             "every class is a test class: none is left for meta-training");
        }
    } else {
        eng_rng rng;
        eng_rng_seed(&rng, sp->seed ^ 0xc1a55e5ULL);
        if (eng_split_classes(t->n_classes, ms->test_fraction > 0 ? ms->test_fraction : 0.2,
                              &rng, cs->is_test) != ENG_OK) {
            class_split_clear(cs);
            return svc__fail(e, SVC_EINVAL, "tasks", "task '%s' has too few classes to split",
                             t->name);
        }
    }
    return SVC_OK;
}

/* Episode samplers on both sides of the split; fails naming what is short. */
static int make_samplers(const svc__jobdata *jd, const class_split *cs, const svc__meta_spec *ms,
                         eng_episodes **train, eng_episodes **test, svc_error *e)
{
    unsigned char *allow = malloc((size_t)cs->n_classes);
    int rc = SVC_OK;
    *train = *test = NULL;
    if (!allow)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    for (int side = 0; side < 2 && rc == SVC_OK; side++) {
        for (int c = 0; c < cs->n_classes; c++)
            allow[c] = cs->is_test[c] == side;
        eng_episodes **dst = side ? test : train;
        int erc = side && cs->t_label
                      ? eng_episodes_new(cs->t_label, cs->t_rows, cs->t_classes, NULL, ms->ways,
                                         ms->shots, ms->queries, dst)
                      : eng_episodes_new(cs->label, jd->n_rows, cs->n_classes, allow, ms->ways,
                                         ms->shots, ms->queries, dst);
        if (erc != ENG_OK) {
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory building episodes");
            break;
        }
        int have = eng_episodes_eligible(*dst);
        if (have < ms->ways && side && cs->t_label)
            rc = svc__fail(e, SVC_EINVAL, "episodes.test_task",
                           "only %d of the %d classes of test task '%s' have at least "
                           "shots+queries = %d rows; %d-way episodes need %d",
                           have, cs->t_classes, ms->test_task, ms->shots + ms->queries,
                           ms->ways, ms->ways);
        else if (have < ms->ways)
            rc = svc__fail(e, SVC_EINVAL, "episodes",
                           "only %d meta-%s classes of task '%s' have at least shots+queries = "
                           "%d rows; %d-way episodes need %d",
                           have, side ? "test" : "train", jd->task[0].name,
                           ms->shots + ms->queries, ms->ways, ms->ways);
    }
    free(allow);
    if (rc != SVC_OK) {
        eng_episodes_free(*train);
        eng_episodes_free(*test);
        *train = *test = NULL;
    }
    return rc;
}

/* Task-level meta-learning: the listed tasks of one dataset are the task
 * distribution (an episode is one task's K support and Q query rows). They
 * must be all regression or all classification with one number of classes,
 * so one network (output: 1 or that many) serves them all. */
static int task_level_check(svc *s, const svc__spec *sp, const svc__meta_spec *ms,
                            svc_error *e)
{
    if (sp->algorithm == SVC_ALG_PROTONET)
        return svc__fail(e, SVC_EINVAL, "algorithm",
                         "protonet learns from the episodes of one classification task; "
                         "meta-learning over several listed tasks takes maml, fomaml, reptile, "
                         "anil or metasgd");
    if (ms->has_ways || ms->n_test_classes || ms->test_fraction > 0 || ms->test_task[0])
        return svc__fail(e, SVC_EINVAL, "episodes",
                         "over several listed tasks an episode is one task's rows: episodes "
                         "take only shots and queries (rows per support and query set)");
    for (int i = 0; i < sp->n_tasks; i++) {
        store_task t = {0};
        char fld[32];
        snprintf(fld, sizeof fld, "tasks[%d]", i);
        int rc = store_task_find(s->db, sp->tasks[i].task, &t);
        int gen = rc == STORE_OK && t.dataset_id == 0;
        store_task_clear(&t);
        if (rc == STORE_ENOTFOUND)
            return svc__fail(e, SVC_EINVAL, fld, "no task '%s'", sp->tasks[i].task);
        if (rc != STORE_OK)
            return svc__store_fail(e, rc, "task", sp->tasks[i].task);
        if (gen)
            return svc__fail(e, SVC_EINVAL, fld,
                             "task '%s' is a generator: a generator is a task distribution "
                             "of its own, list it alone",
                             sp->tasks[i].task);
    }
    svc__jobdata jd;
    int rc = svc__jobdata_load(s, sp, &jd, e);
    if (rc != SVC_OK)
        return rc;
    const svc__jd_task *t0 = &jd.task[0];
    for (int i = 1; i < jd.n_tasks && rc == SVC_OK; i++) {
        const svc__jd_task *t = &jd.task[i];
        char fld[32];
        snprintf(fld, sizeof fld, "tasks[%d]", i);
        if (t->classification != t0->classification ||
            (t->classification && t->n_classes != t0->n_classes))
            rc = svc__fail(e, SVC_EINVAL, fld,
                           "task '%s' is %s %d-class task but '%s' is %s: the tasks of a "
                           "meta-learning job share one network, so they must be all "
                           "regression or all classification with one number of classes",
                           t->name, t->classification ? "a" : "not a", t->n_classes,
                           t0->name,
                           t0->classification ? "a classification task" : "a regression task");
    }
    if (rc == SVC_OK && (jd.n_train < (size_t)(ms->shots + ms->queries) ||
                         jd.n_test < (size_t)ms->queries))
        rc = svc__fail(e, SVC_EINVAL, "episodes",
                       "%zu training and %zu held-out rows cannot give %d support + %d query "
                       "rows per episode",
                       jd.n_train, jd.n_test, ms->shots, ms->queries);
    svc__jobdata_clear(&jd);
    return rc;
}

int svc__meta_submit_check(svc *s, const svc__spec *sp, json_t *spec, svc_error *e)
{
    svc__meta_spec ms;
    int rc = svc__meta_spec_parse(spec, sp, &ms, e);
    if (rc != SVC_OK || !svc__is_meta(sp->algorithm))
        return rc;
    if (sp->n_tasks > 1) { /* K support and Q query rows per task: 10 and 10 unless given */
        if (!ms.has_shots)
            ms.shots = 10;
        if (!ms.has_queries)
            ms.queries = 10;
        return task_level_check(s, sp, &ms, e);
    }
    store_task t = {0};
    rc = store_task_find(s->db, sp->tasks[0].task, &t);
    if (rc == STORE_ENOTFOUND)
        return svc__fail(e, SVC_EINVAL, "tasks[0]", "no task '%s'", sp->tasks[0].task);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "task", sp->tasks[0].task);
    int generator = t.dataset_id == 0;
    json_t *def = json_loads(t.def ? t.def : "{}", 0, NULL);
    const char *kind = json_string_value(json_object_get(def, "kind"));
    int classification = kind && strcmp(kind, "classification") == 0;
    char name[65];
    snprintf(name, sizeof name, "%s", t.name);
    json_decref(def);
    store_task_clear(&t);
    if (generator) {
        if (sp->algorithm == SVC_ALG_PROTONET)
            return svc__fail(e, SVC_EINVAL, "algorithm",
                             "protonet needs a classification task; '%s' is a regression "
                             "generator", name);
        if (ms.has_ways || ms.n_test_classes || ms.test_fraction > 0)
            return svc__fail(e, SVC_EINVAL, "episodes",
                             "task '%s' is a generator: episodes take only shots and queries "
                             "(points per support and query set)", name);
        return SVC_OK;
    }
    if (!classification)
        return svc__fail(e, SVC_EUNSUPPORTED, "tasks[0]",
                         "task '%s' is a regression task: meta-learning draws episodes from "
                         "the classes of a classification task, or uses a generator task", name);
    svc__jobdata jd;
    if ((rc = svc__jobdata_load(s, sp, &jd, e)) != SVC_OK)
        return rc;
    class_split cs;
    svc__jobdata tj;
    memset(&tj, 0, sizeof tj);
    memset(&cs, 0, sizeof cs);
    eng_episodes *tr = NULL, *te = NULL;
    rc = make_split(&jd, sp, &ms, &cs, e);
    if (rc == SVC_OK && ms.test_task[0] && (rc = load_test_task(s, sp, &ms, &jd, &tj, e)) ==
                                               SVC_OK)
        rc = test_labels(&tj, &cs, e);
    if (rc == SVC_OK)
        rc = make_samplers(&jd, &cs, &ms, &tr, &te, e);
    eng_episodes_free(tr);
    eng_episodes_free(te);
    class_split_clear(&cs);
    svc__jobdata_clear(&jd);
    svc__jobdata_clear(&tj);
    return rc;
}

/* ---- the runner --------------------------------------------------------- */

typedef struct {
    svc *s;
    int64_t job_id;
    svc__running *slot;
    svc__spec sp;
    svc__meta_spec ms;
    char *spec_text;
    int generator;
    int task_level;             /* the job's listed tasks are the task distribution */
    int regression;             /* MSE tasks (a generator, or task-level regression) */
    int tl_task;                /* task-level meta-test: the task of the next episode */
    int evaluating;             /* in meta-test (fill_task draws from held-out data) */
    char task_name[65];
    svc__jobdata jd;
    svc__jobdata jd_test;       /* episodes.test_task: its rows (else empty) */
    class_split cs;
    double *x_mean, *x_std;     /* meta-train standardisation [n_in] */
    eng_episodes *ep_train, *ep_test;
    eng_meta *m;
    int L;
    size_t np, nmeta;
    float *theta, *grad, *am, *av;
    int d0, S, Q;               /* input width, rows per support and query set */
    float *xs, *ys, *xq, *yq;   /* [meta_batch][S or Q][...] */
    uint32_t *srows, *qrows;
    eng_meta_task *tasks;
    int64_t step, total, last_ckpt;
    double loss_sum;
    int64_t loss_n;
    long rss_start;
    json_t *from_note;          /* from_checkpoint: what was copied (for results) */
} mrun;

static eng_meta_alg engine_alg(svc__algorithm a)
{
    switch (a) {
    case SVC_ALG_FOMAML: return ENG_META_FOMAML;
    case SVC_ALG_REPTILE: return ENG_META_REPTILE;
    case SVC_ALG_ANIL: return ENG_META_ANIL;
    case SVC_ALG_METASGD: return ENG_META_METASGD;
    case SVC_ALG_PROTONET: return ENG_META_PROTONET;
    default: return ENG_META_MAML;
    }
}

/* Meta-train standardisation: statistics over the rows of meta-train
 * classes only, so nothing of the meta-test classes shapes the inputs. */
static int restandardise(mrun *r)
{
    svc__jobdata *jd = &r->jd;
    int n = jd->n_in;
    r->x_mean = calloc((size_t)n, sizeof *r->x_mean);
    r->x_std = calloc((size_t)n, sizeof *r->x_std);
    double *sq = calloc((size_t)n, sizeof *sq);
    if (!r->x_mean || !r->x_std || !sq) {
        free(sq);
        return -1;
    }
    size_t cnt = 0;
    for (size_t row = 0; row < jd->n_rows; row++) {
        float *x = jd->x + row * (size_t)n;
        for (int i = 0; i < n; i++)
            x[i] = (float)(x[i] * jd->x_std[i] + jd->x_mean[i]);
        int c = r->cs.label[row];
        if (c < 0 || r->cs.is_test[c])
            continue;
        cnt++;
        for (int i = 0; i < n; i++)
            r->x_mean[i] += x[i];
    }
    for (int i = 0; i < n; i++)
        r->x_mean[i] /= cnt ? (double)cnt : 1.0;
    for (size_t row = 0; row < jd->n_rows; row++) {
        int c = r->cs.label[row];
        if (c < 0 || r->cs.is_test[c])
            continue;
        const float *x = jd->x + row * (size_t)n;
        for (int i = 0; i < n; i++)
            sq[i] += (x[i] - r->x_mean[i]) * (x[i] - r->x_mean[i]);
    }
    for (int i = 0; i < n; i++) {
        r->x_std[i] = cnt ? sqrt(sq[i] / (double)cnt) : 1.0;
        if (r->x_std[i] < 1e-12)
            r->x_std[i] = 1.0;
    }
    for (size_t row = 0; row < jd->n_rows; row++) {
        float *x = jd->x + row * (size_t)n;
        for (int i = 0; i < n; i++)
            x[i] = (float)((x[i] - r->x_mean[i]) / r->x_std[i]);
    }
    /* a test task's rows: back to raw values, then the meta-train statistics */
    const svc__jobdata *tj = &r->jd_test;
    for (size_t row = 0; row < tj->n_rows && tj->n_in == n; row++) {
        float *x = tj->x + row * (size_t)n;
        for (int i = 0; i < n; i++)
            x[i] = (float)((x[i] * tj->x_std[i] + tj->x_mean[i] - r->x_mean[i]) / r->x_std[i]);
    }
    free(sq);
    return 0;
}

/* Fills task slot b from rng: a sinusoid, or an episode of sampler. */
static int fill_task(mrun *r, eng_rng *rng, eng_episodes *sampler, int b)
{
    float *xs = r->xs + (size_t)b * r->S * r->d0, *ys = r->ys + (size_t)b * r->S;
    float *xq = r->xq + (size_t)b * r->Q * r->d0, *yq = r->yq + (size_t)b * r->Q;
    if (r->generator) {
        double A, ph;
        eng_sinusoid_task(rng, &A, &ph);
        eng_sinusoid_points(rng, A, ph, r->S, xs, ys);
        eng_sinusoid_points(rng, A, ph, r->Q, xq, yq);
    } else if (r->task_level) {
        /* one listed task: K support rows from the training rows, Q query rows
         * from the training rows (meta-training) or the held-out rows
         * (meta-test), all distinct, rows whose target is missing skipped */
        const int eval = r->evaluating;
        const int t = eval ? r->tl_task : (int)eng_rng_below(rng, (uint64_t)r->jd.n_tasks);
        const svc__jd_task *tk = &r->jd.task[t];
        for (int i = 0; i < r->S + r->Q; i++) {
            const int sup = i < r->S;
            const uint32_t *pool = sup || !eval ? r->jd.train : r->jd.test;
            const size_t np = sup || !eval ? r->jd.n_train : r->jd.n_test;
            uint32_t row = 0;
            int tries = 0, ok = 0;
            while (!ok && tries++ < 1000) {
                row = pool[eng_rng_below(rng, np)];
                ok = isfinite(tk->y[row]);
                for (int j = 0; ok && j < i; j++)
                    ok = (j < r->S ? r->srows[j] : r->qrows[j - r->S]) != row;
            }
            if (!ok)
                return -1;
            if (sup)
                r->srows[i] = row;
            else
                r->qrows[i - r->S] = row;
        }
        size_t w = (size_t)r->d0 * sizeof *xs;
        for (int i = 0; i < r->S; i++) {
            memcpy(xs + (size_t)i * r->d0, r->jd.x + (size_t)r->srows[i] * r->d0, w);
            ys[i] = tk->y[r->srows[i]];
        }
        for (int i = 0; i < r->Q; i++) {
            memcpy(xq + (size_t)i * r->d0, r->jd.x + (size_t)r->qrows[i] * r->d0, w);
            yq[i] = tk->y[r->qrows[i]];
        }
        r->tl_task = t;
    } else {
        if (eng_episodes_sample(sampler, rng, r->srows, ys, r->qrows, yq, NULL) != ENG_OK)
            return -1;
        size_t w = (size_t)r->d0 * sizeof *xs;
        const float *src = sampler == r->ep_test && r->jd_test.x ? r->jd_test.x : r->jd.x;
        for (int i = 0; i < r->S; i++)
            memcpy(xs + (size_t)i * r->d0, src + (size_t)r->srows[i] * r->d0, w);
        for (int i = 0; i < r->Q; i++)
            memcpy(xq + (size_t)i * r->d0, src + (size_t)r->qrows[i] * r->d0, w);
    }
    r->tasks[b] = (eng_meta_task){xs, ys, r->S, xq, yq, r->Q, r->ms.ways};
    return 0;
}

static void iter_rng(const mrun *r, int64_t step, eng_rng *rng)
{
    eng_rng_seed(rng, r->sp.seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(step + 1));
}

/* Tensor names: layers.<i>.weight/bias, alpha.* (metasgd), adam.m.*, adam.v.* */
static void tensor_name(int kind, int l, int bias, char *out, size_t n)
{
    static const char *const prefix[] = {"", "alpha.", "adam.m.", "adam.v.", "adam.m.alpha.",
                                         "adam.v.alpha."};
    snprintf(out, n, "%slayers.%d.%s", prefix[kind], l, bias ? "bias" : "weight");
}

/* The meta-test classes: held-out classes of the job's task, or every
 * class of the test task. New reference. */
static json_t *test_class_list(const mrun *r)
{
    json_t *tc = json_array();
    if (r->cs.t_label) {
        for (int c = 0; c < r->jd_test.task[0].n_classes; c++)
            json_array_append_new(tc, json_string(r->jd_test.task[0].labels[c]));
        return tc;
    }
    for (int c = 0; c < r->cs.n_classes; c++)
        if (r->cs.is_test[c])
            json_array_append_new(tc, json_string(r->jd.task[0].labels[c]));
    return tc;
}

static json_t *checkpoint_meta(mrun *r)
{
    json_t *meta = json_object();
    char buf[64];
    json_object_set_new(meta, "spec", json_string(r->spec_text ? r->spec_text : "{}"));
    json_object_set_new(meta, "format", json_string("mtld-meta-checkpoint-1"));
    json_object_set_new(meta, "algorithm", json_string(svc__algorithm_name(r->sp.algorithm)));
    snprintf(buf, sizeof buf, "%lld", (long long)r->step);
    json_object_set_new(meta, "step", json_string(buf));
    snprintf(buf, sizeof buf, "%a", r->loss_sum);
    json_object_set_new(meta, "loss_sum", json_string(buf));
    snprintf(buf, sizeof buf, "%lld", (long long)r->loss_n);
    json_object_set_new(meta, "loss_n", json_string(buf));
    const eng_fnet_spec *fs = &eng_meta_get_cfg(r->m)->net;
    json_t *dims = json_array();
    for (int l = 0; l <= fs->n_layers; l++)
        json_array_append_new(dims, json_integer(fs->dims[l]));
    json_t *net = json_pack("{s:o,s:s}", "dims", dims, "activation",
                            fs->act == ENG_FNET_TANH ? "tanh" : "relu");
    char *t = json_dumps(net, JSON_COMPACT);
    json_object_set_new(meta, "network", json_string(t ? t : "{}"));
    free(t);
    json_decref(net);
    json_object_set_new(meta, "task", json_string(r->task_name));
    if (!r->generator) {
        json_t *mean = json_array(), *std = json_array(), *labels = json_array(),
               *test = test_class_list(r);
        for (int i = 0; i < r->jd.n_in; i++) {
            json_array_append_new(mean, json_real(r->x_mean[i]));
            json_array_append_new(std, json_real(r->x_std[i]));
        }
        for (int c = 0; c < r->cs.n_classes; c++)
            json_array_append_new(labels, json_string(r->jd.task[0].labels[c]));
        if (r->task_level) {
            json_t *names = json_array();
            for (int k = 0; k < r->jd.n_tasks; k++) {
                json_array_append_new(names, json_string(r->jd.task[k].name));
                for (int c = 0; k == 0 && !r->regression && c < r->jd.task[0].n_classes; c++)
                    json_array_append_new(labels, json_string(r->jd.task[0].labels[c]));
            }
            char *tn = json_dumps(names, JSON_COMPACT);
            json_object_set_new(meta, "tasks_listed", json_string(tn ? tn : "[]"));
            free(tn);
            json_decref(names);
        }
        json_object_set_new(meta, "kind",
                            json_string(r->regression ? "regression" : "classification"));
        if (r->ms.test_task[0])
            json_object_set_new(meta, "test_task", json_string(r->jd_test.task[0].name));
        json_t *o = json_pack("{s:o,s:o}", "mean", mean, "std", std);
        char *s1 = json_dumps(o, JSON_COMPACT), *s2 = json_dumps(r->jd.input_names, JSON_COMPACT),
             *s3 = json_dumps(labels, JSON_COMPACT), *s4 = json_dumps(test, JSON_COMPACT);
        json_object_set_new(meta, "standardization", json_string(s1 ? s1 : "{}"));
        json_object_set_new(meta, "features", json_string(s2 ? s2 : "[]"));
        json_object_set_new(meta, "labels", json_string(s3 ? s3 : "[]"));
        json_object_set_new(meta, "test_classes", json_string(s4 ? s4 : "[]"));
        free(s1);
        free(s2);
        free(s3);
        free(s4);
        json_decref(o);
        json_decref(labels);
        json_decref(test);
    }
    return meta;
}

/* The tensors of the checkpoint: 2 per layer for each block that exists. */
static size_t list_tensors(mrun *r, svc__tensor *ts, char (*names)[80])
{
    eng_fnet *net = eng_meta_net(r->m);
    const eng_fnet_spec *fs = eng_fnet_get_spec(net);
    const float *blocks[6] = {r->theta, NULL, r->am, r->av, NULL, NULL};
    if (r->nmeta > r->np) { /* metasgd: α follows θ in every block */
        blocks[1] = r->theta + r->np;
        blocks[4] = r->am + r->np;
        blocks[5] = r->av + r->np;
    }
    size_t n = 0;
    for (int kind = 0; kind < 6; kind++) {
        if (!blocks[kind])
            continue;
        for (int l = 1; l <= fs->n_layers; l++)
            for (int bias = 0; bias < 2; bias++) {
                tensor_name(kind, l - 1, bias, names[n], 80);
                size_t off = bias ? eng_fnet_bias_offset(net, l) : eng_fnet_weight_offset(net, l);
                int o = fs->dims[l], in = fs->dims[l - 1];
                ts[n] = (svc__tensor){names[n], bias ? 1 : 2, {o, bias ? 0 : in},
                                      blocks[kind] + off, bias ? (size_t)o : (size_t)o * in};
                n++;
            }
    }
    return n;
}

static int write_checkpoint(mrun *r, char *err, size_t errlen)
{
    size_t cap = 6 * 2 * ENG_FNET_MAX_LAYERS;
    svc__tensor *ts = calloc(cap, sizeof *ts);
    char (*names)[80] = calloc(cap, sizeof *names);
    json_t *meta = NULL;
    int rc = -1;
    if (!ts || !names) {
        snprintf(err, errlen, "out of memory writing a checkpoint");
        goto done;
    }
    size_t n = list_tensors(r, ts, names);
    meta = checkpoint_meta(r);
    char path[4300];
    snprintf(path, sizeof path, "%s/job-%lld-step-%lld.safetensors", r->s->ckpt_dir,
             (long long)r->job_id, (long long)r->step);
    int64_t bytes = 0, id = 0;
    if (svc__safetensors_write(path, ts, n, meta, &bytes, err, errlen) != 0)
        goto done;
    if (store_checkpoint_add(r->s->db, r->job_id, r->step, path, bytes, &id) != STORE_OK) {
        snprintf(err, errlen, "cannot record checkpoint in the store");
        goto done;
    }
    r->last_ckpt = r->step;
    store_checkpoint *cs = NULL;
    size_t nc = 0;
    if (store_checkpoint_list(r->s->db, r->job_id, &cs, &nc) == STORE_OK) {
        for (size_t i = 0; i + (size_t)r->sp.keep_checkpoints < nc; i++)
            if (store_checkpoint_delete(r->s->db, cs[i].id) == STORE_OK)
                unlink(cs[i].path);
        store_checkpoint_list_free(cs, nc);
    }
    rc = 0;
done:
    free(ts);
    free(names);
    json_decref(meta);
    return rc;
}

static int restore_file(mrun *r, const char *path)
{
    svc__safetensors st = {0};
    char err[256];
    size_t cap = 6 * 2 * ENG_FNET_MAX_LAYERS;
    svc__tensor *ts = calloc(cap, sizeof *ts);
    char (*names)[80] = calloc(cap, sizeof *names);
    int rc = -1;
    if (!ts || !names || svc__safetensors_read(path, &st, err, sizeof err) != 0)
        goto done;
    size_t n = list_tensors(r, ts, names);
    for (size_t i = 0; i < n; i++)
        if (svc__safetensors_get(&st, ts[i].name, (float *)ts[i].data, ts[i].count) != 0)
            goto done;
    json_t *meta = json_object_get(st.header, "__metadata__");
    const char *step = json_string_value(json_object_get(meta, "step"));
    const char *ls = json_string_value(json_object_get(meta, "loss_sum"));
    const char *ln = json_string_value(json_object_get(meta, "loss_n"));
    if (!step || !ls || !ln)
        goto done;
    r->step = strtoll(step, NULL, 10);
    r->loss_sum = strtod(ls, NULL);
    r->loss_n = strtoll(ln, NULL, 10);
    if (r->step < 0 || r->step > r->total)
        goto done;
    r->last_ckpt = r->step;
    rc = 0;
done:
    svc__safetensors_clear(&st);
    free(ts);
    free(names);
    return rc;
}

/* 1 = resumed from the newest usable checkpoint, 0 = start fresh. */
static int resume(mrun *r)
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
        SVC_LOG(SVC_LOG_WARN, "checkpoint_unusable", "job=%lld step=%lld", (long long)r->job_id,
                (long long)cs[k].step);
        if (store_checkpoint_delete(r->s->db, cs[k].id) == STORE_OK)
            unlink(cs[k].path);
    }
    store_checkpoint_list_free(cs, n);
    if (rc == 1) {
        store_metric_truncate(r->s->db, r->job_id, r->step);
        SVC_LOG(SVC_LOG_INFO, "job_resumed", "job=%lld step=%lld", (long long)r->job_id,
                (long long)r->step);
    }
    return rc;
}

/* The meta-iterations done are stored first (progress is written only now
 * and then: a job failing early would otherwise keep step 0). */
static void fail_job(mrun *r, const char *code, const char *msg)
{
    if (r->step > 0)
        store_job_set_progress(r->s->db, r->job_id, r->step, r->total,
                               r->total ? (double)r->step / (double)r->total : 0);
    store_job_set_state(r->s->db, r->job_id, "failed", code, msg);
    svc__events_state(r->s, r->job_id, "failed", code, msg);
}

static void set_progress(mrun *r)
{
    atomic_store(&r->slot->step, r->step);
    store_job_set_progress(r->s->db, r->job_id, r->step, r->total,
                           r->total ? (double)r->step / (double)r->total : 0);
    svc__events_progress(r->s, r->job_id, r->step, r->total, r->ms.meta_batch);
}

static int record_train_loss(mrun *r)
{
    if (r->loss_n == 0)
        return SVC_OK;
    store_metric m = {r->step, r->task_name, (char *)"train", (char *)"query_loss",
                      r->loss_sum / (double)r->loss_n};
    r->loss_sum = 0;
    r->loss_n = 0;
    svc__events_metrics(r->s, r->job_id, &m, 1);
    return store_metric_add(r->s->db, r->job_id, &m, 1) == STORE_OK ? SVC_OK : SVC_EIO;
}

static void mrun_free(mrun *r)
{
    eng_meta_free(r->m);
    eng_episodes_free(r->ep_train);
    eng_episodes_free(r->ep_test);
    free(r->theta);
    free(r->grad);
    free(r->am);
    free(r->av);
    free(r->xs);
    free(r->ys);
    free(r->xq);
    free(r->yq);
    free(r->srows);
    free(r->qrows);
    free(r->tasks);
    free(r->x_mean);
    free(r->x_std);
    free(r->spec_text);
    json_decref(r->from_note);
    class_split_clear(&r->cs);
    svc__jobdata_clear(&r->jd);
    svc__jobdata_clear(&r->jd_test);
}

/* Loads the task distribution and builds the learner. 0, or -1 with the job
 * failed. */
static int setup(mrun *r)
{
    svc_error e = {0};
    store_task t = {0};
    if (store_task_find(r->s->db, r->sp.tasks[0].task, &t) != STORE_OK) {
        fail_job(r, "invalid_data", "the job's task is gone");
        return -1;
    }
    r->generator = t.dataset_id == 0;
    r->task_level = r->sp.n_tasks > 1;
    snprintf(r->task_name, sizeof r->task_name, "%s", t.name);
    store_task_clear(&t);
    if (r->generator || r->task_level) { /* the MAML paper's K = 10, and as many query points */
        if (!r->ms.has_shots)
            r->ms.shots = 10;
        if (!r->ms.has_queries)
            r->ms.queries = 10;
    }
    const svc__meta_spec *ms = &r->ms;
    eng_meta_cfg c = {0};
    c.alg = engine_alg(r->sp.algorithm);
    c.inner_steps = ms->inner_steps;
    c.inner_lr = ms->inner_lr;
    c.net.act = r->sp.activation == ENG_ACT_TANH ? ENG_FNET_TANH : ENG_FNET_RELU;
    int L = 0;
    if (r->generator) {
        r->d0 = 1;
        r->regression = 1;
        r->S = ms->shots;
        r->Q = ms->queries;
        c.loss = ENG_FNET_MSE;
        c.net.dims[L++] = 1;
        for (int i = 0; i < r->sp.n_trunk; i++)
            c.net.dims[L++] = r->sp.trunk[i];
        c.net.dims[L] = 1;
    } else if (r->task_level) {
        if (svc__jobdata_load(r->s, &r->sp, &r->jd, &e) != SVC_OK) {
            fail_job(r, e.code == SVC_ENOMEM ? "out_of_memory" : "invalid_data", e.message);
            return -1;
        }
        int n = r->jd.n_in;
        r->x_mean = malloc((size_t)n * sizeof *r->x_mean);
        r->x_std = malloc((size_t)n * sizeof *r->x_std);
        if (!r->x_mean || !r->x_std) {
            fail_job(r, "out_of_memory", "out of memory");
            return -1;
        }
        memcpy(r->x_mean, r->jd.x_mean, (size_t)n * sizeof *r->x_mean);
        memcpy(r->x_std, r->jd.x_std, (size_t)n * sizeof *r->x_std);
        const svc__jd_task *t0 = &r->jd.task[0];
        r->regression = !t0->classification;
        r->d0 = n;
        r->S = ms->shots;
        r->Q = ms->queries;
        c.loss = r->regression ? ENG_FNET_MSE : ENG_FNET_CE;
        c.net.dims[L++] = r->d0;
        for (int i = 0; i < r->sp.n_trunk; i++)
            c.net.dims[L++] = r->sp.trunk[i];
        c.net.dims[L] = r->regression ? 1 : t0->n_classes;
    } else {
        if (svc__jobdata_load(r->s, &r->sp, &r->jd, &e) != SVC_OK) {
            fail_job(r, e.code == SVC_ENOMEM ? "out_of_memory" : "invalid_data", e.message);
            return -1;
        }
        if (make_split(&r->jd, &r->sp, ms, &r->cs, &e) != SVC_OK ||
            (ms->test_task[0] &&
             (load_test_task(r->s, &r->sp, ms, &r->jd, &r->jd_test, &e) != SVC_OK ||
              test_labels(&r->jd_test, &r->cs, &e) != SVC_OK)) ||
            make_samplers(&r->jd, &r->cs, ms, &r->ep_train, &r->ep_test, &e) != SVC_OK) {
            fail_job(r, "invalid_data", e.message);
            return -1;
        }
        if (restandardise(r) != 0) {
            fail_job(r, "out_of_memory", "out of memory standardising inputs");
            return -1;
        }
        r->d0 = r->jd.n_in;
        r->S = ms->ways * ms->shots;
        r->Q = ms->ways * ms->queries;
        c.loss = ENG_FNET_CE;
        c.max_ways = ms->ways;
        c.net.dims[L++] = r->d0;
        for (int i = 0; i < r->sp.n_trunk; i++)
            c.net.dims[L++] = r->sp.trunk[i];
        if (c.alg == ENG_META_PROTONET)
            L--; /* the last trunk layer is the (linear) embedding */
        else
            c.net.dims[L] = ms->ways;
    }
    c.net.n_layers = L;
    c.max_support = r->S;
    c.max_query = r->Q;
    r->L = L;
    if (L < 1 || L > ENG_FNET_MAX_LAYERS || eng_meta_new(&c, &r->m) != ENG_OK) {
        fail_job(r, "out_of_memory", "cannot build the meta-learner (out of memory or shape)");
        return -1;
    }
    r->np = eng_meta_net_nparams(r->m);
    r->nmeta = eng_meta_nparams(r->m);
    size_t MB = (size_t)ms->meta_batch;
    r->theta = calloc(r->nmeta, sizeof *r->theta);
    r->grad = calloc(r->nmeta, sizeof *r->grad);
    r->am = calloc(r->nmeta, sizeof *r->am);
    r->av = calloc(r->nmeta, sizeof *r->av);
    r->xs = malloc(MB * (size_t)r->S * (size_t)r->d0 * sizeof *r->xs);
    r->ys = malloc(MB * (size_t)r->S * sizeof *r->ys);
    r->xq = malloc(MB * (size_t)r->Q * (size_t)r->d0 * sizeof *r->xq);
    r->yq = malloc(MB * (size_t)r->Q * sizeof *r->yq);
    r->srows = malloc((size_t)r->S * sizeof *r->srows);
    r->qrows = malloc((size_t)r->Q * sizeof *r->qrows);
    r->tasks = calloc(MB, sizeof *r->tasks);
    if (!r->theta || !r->grad || !r->am || !r->av || !r->xs || !r->ys || !r->xq || !r->yq ||
        !r->srows || !r->qrows || !r->tasks) {
        fail_job(r, "out_of_memory", "out of memory allocating meta-training buffers");
        return -1;
    }
    return 0;
}

/* from_checkpoint on a meta-learning job: the initial θ (layers.<l>) takes
 * the source's weights where the shapes fit — an imported model's trunk.<l>
 * and head, a multitask job's trunk.<l> and the head of the task of the
 * same name, or a meta-learning job's layers.<l> — and keeps its seeded
 * initialisation elsewhere (Meta-SGD's rates always start at inner.lr).
 * 0, or -1 with msg filled when the source cannot be read. */
static int apply_from_checkpoint(mrun *r, char *msg, size_t msglen)
{
    svc__safetensors st = {0};
    store_checkpoint c = {0};
    svc_error ie = {0};
    char path[4096], err[256];
    int rc = -1;
    const int imp = r->sp.from_import[0] != 0;
    if (imp) {
        if (svc__import_path(r->s, r->sp.from_import, path, sizeof path, &ie) != SVC_OK) {
            snprintf(msg, msglen, "from_checkpoint: %s", ie.message);
            return -1;
        }
    } else {
        if (store_checkpoint_latest(r->s->db, strtoll(r->sp.from_job, NULL, 10), &c) !=
            STORE_OK) {
            snprintf(msg, msglen, "from_checkpoint: job %s has no checkpoint any more",
                     r->sp.from_job);
            return -1;
        }
        snprintf(path, sizeof path, "%s", c.path);
    }
    if (svc__safetensors_read(path, &st, err, sizeof err) != 0) {
        snprintf(msg, msglen, "from_checkpoint: %s", err);
        goto done;
    }
    json_t *meta = json_object_get(st.header, "__metadata__");
    const char *fmt = json_string_value(json_object_get(meta, "format"));
    const int src_meta = fmt && !strcmp(fmt, "mtld-meta-checkpoint-1");
    char head_prefix[96] = "";
    if (imp) {
        snprintf(head_prefix, sizeof head_prefix, "head");
    } else if (!src_meta) { /* a multitask job: the head of the task of the same name */
        const char *tt = json_string_value(json_object_get(meta, "tasks"));
        json_t *tasks = tt ? json_loads(tt, 0, NULL) : NULL;
        size_t k;
        json_t *to;
        json_array_foreach(tasks, k, to)
        {
            const char *nm = json_string_value(json_object_get(to, "name"));
            if (nm && !strcmp(nm, r->task_name))
                snprintf(head_prefix, sizeof head_prefix, "tasks.%zu.head", k);
        }
        json_decref(tasks);
    }
    /* the first layer only over the same inputs (or a model that does not say) */
    const char *ftext = json_string_value(json_object_get(meta, "features"));
    json_t *feats = ftext ? json_loads(ftext, 0, NULL) : NULL;
    const int same_inputs = !ftext || (r->jd.input_names && json_equal(feats, r->jd.input_names));
    json_decref(feats);
    int mapped_cols = 0;
    eng_fnet *net = eng_meta_net(r->m);
    const eng_fnet_spec *fs = eng_fnet_get_spec(net);
    const int has_head = engine_alg(r->sp.algorithm) != ENG_META_PROTONET;
    json_t *copied = json_array(), *reinit = json_array();
    for (int l = 1; l <= fs->n_layers; l++)
        for (int bias = 0; bias < 2; bias++) {
            char mine[48], src[128] = "";
            const char *part = bias ? "bias" : "weight";
            snprintf(mine, sizeof mine, "layers.%d.%s", l - 1, part);
            int is_head = has_head && l == fs->n_layers;
            if (src_meta)
                snprintf(src, sizeof src, "%s", mine);
            else if (is_head && head_prefix[0])
                snprintf(src, sizeof src, "%s.%s", head_prefix, part);
            else if (!is_head)
                snprintf(src, sizeof src, "trunk.%d.%s", l - 1, part);
            json_t *shape = json_object_get(json_object_get(st.header, src), "shape");
            int ok = src[0] && (l > 1 || same_inputs) && (int)json_array_size(shape) == (bias ? 1 : 2) &&
                     json_integer_value(json_array_get(shape, 0)) == fs->dims[l] &&
                     (bias || json_integer_value(json_array_get(shape, 1)) == fs->dims[l - 1]);
            size_t off = bias ? eng_fnet_bias_offset(net, l) : eng_fnet_weight_offset(net, l);
            size_t cnt = (size_t)fs->dims[l] * (bias ? 1 : (size_t)fs->dims[l - 1]);
            if (!ok && l == 1 && !same_inputs && src[0] && r->jd.input_names) {
                /* other inputs: the first layer column by column, by input name;
                 * its bias then fits as it is */
                json_t *fj = json_loads(ftext, 0, NULL);
                int n = bias ? 0
                             : svc__map_columns(&st, src, fj, r->jd.input_names, fs->dims[1],
                                                fs->dims[0], r->theta + off);
                json_decref(fj);
                if (n > 0) {
                    mapped_cols = n;
                    json_array_append_new(copied, json_string(mine));
                    continue;
                }
                ok = bias && mapped_cols > 0 && (int)json_array_size(shape) == 1 &&
                     json_integer_value(json_array_get(shape, 0)) == fs->dims[1];
            }
            /* through the gradient buffer, so a bad tensor leaves θ intact */
            if (ok && svc__safetensors_get(&st, src, r->grad, cnt) == 0) {
                memcpy(r->theta + off, r->grad, cnt * sizeof *r->theta);
                json_array_append_new(copied, json_string(mine));
            } else {
                json_array_append_new(reinit, json_string(mine));
            }
        }
    memset(r->grad, 0, r->nmeta * sizeof *r->grad);
    json_t *notes = json_array();
    if (mapped_cols > 0) {
        char note[200];
        snprintf(note, sizeof note,
                 "layers.0.weight: %d of the job's %d inputs matched the checkpoint's by name "
                 "and were copied; the rest start fresh",
                 mapped_cols, fs->dims[0]);
        json_array_append_new(notes, json_string(note));
    }
    r->from_note = imp ? json_pack("{s:s,s:o,s:o}", "checkpoint", r->sp.from_import, "copied",
                                   copied, "reinitialised", reinit)
                       : json_pack("{s:I,s:I,s:o,s:o}", "job",
                                   (json_int_t)strtoll(r->sp.from_job, NULL, 10), "step",
                                   (json_int_t)c.step, "copied", copied, "reinitialised", reinit);
    if (json_array_size(notes))
        json_object_set(r->from_note, "notes", notes);
    json_decref(notes);
    rc = 0;
done:
    svc__safetensors_clear(&st);
    store_checkpoint_clear(&c);
    return rc;
}

typedef struct {
    double mean[SVC__META_MAX_EVAL_STEPS], ci[SVC__META_MAX_EVAL_STEPS];
    double loss[SVC__META_MAX_EVAL_STEPS];
    int diverged[SVC__META_MAX_EVAL_STEPS]; /* episodes whose adaptation diverged */
    double task_sum[ENG_MAX_TASKS];          /* task-level: per task, at the last count */
    int task_n[ENG_MAX_TASKS];
} eval_out;

/* Meta-test: 1 done, 0 interrupted (cancel/stop), -1 failed (job failed). */
static int meta_test(mrun *r, eval_out *out)
{
    const svc__meta_spec *ms = &r->ms;
    const int ns = ms->n_eval_steps, n = ms->eval_episodes;
    double sum[SVC__META_MAX_EVAL_STEPS] = {0}, sq[SVC__META_MAX_EVAL_STEPS] = {0},
           lsum[SVC__META_MAX_EVAL_STEPS] = {0};
    eng_rng rng;
    eng_rng_seed(&rng, ms->eval_seed);
    memset(out, 0, sizeof *out);
    r->evaluating = 1;
    for (int ep = 0; ep < n; ep++) {
        if (ep % 50 == 0 && (atomic_load(&r->slot->cancel) || atomic_load(&r->s->stopping)))
            return 0;
        double loss[SVC__META_MAX_EVAL_STEPS], acc[SVC__META_MAX_EVAL_STEPS];
        if (r->task_level)
            r->tl_task = ep % r->jd.n_tasks; /* every task gets its share of episodes */
        int rc = fill_task(r, &rng, r->ep_test, 0);
        if (rc == 0)
            rc = eng_meta_evaluate(r->m, r->theta, &r->tasks[0], ms->eval_steps, ns, loss, acc);
        if (rc == ENG_ENONFINITE) /* counted below: those step counts report null */
            rc = 0;
        if (rc != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "meta-test episode %d failed: %s", ep,
                     rc < 0 ? eng_strerror(rc) : "cannot draw an episode");
            fail_job(r, "engine_error", msg);
            return -1;
        }
        for (int i = 0; i < ns; i++) {
            double v = r->regression ? loss[i] : acc[i];
            if (r->task_level && i == ns - 1) {
                out->task_sum[r->tl_task] += v;
                out->task_n[r->tl_task]++;
            }
            if (!isfinite(loss[i]))
                out->diverged[i]++;
            sum[i] += v;
            sq[i] += v * v;
            lsum[i] += loss[i];
        }
    }
    for (int i = 0; i < ns; i++) {
        double mean = sum[i] / n, var = n > 1 ? (sq[i] - n * mean * mean) / (n - 1) : 0;
        out->mean[i] = mean;
        out->ci[i] = 1.96 * sqrt(var > 0 ? var : 0) / sqrt((double)n);
        out->loss[i] = lsum[i] / n;
    }
    return 1;
}

static json_t *results_json(mrun *r, const eval_out *ev)
{
    const svc__meta_spec *ms = &r->ms;
    json_t *fs = json_object(), *steps = json_array(), *val = json_object(), *ci = json_object();
    json_t *div = NULL; /* step count → episodes whose adaptation diverged */
    for (int i = 0; i < ms->n_eval_steps; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", ms->eval_steps[i]);
        json_array_append_new(steps, json_integer(ms->eval_steps[i]));
        int ok = ev->diverged[i] == 0 && isfinite(ev->mean[i]);
        json_object_set_new(val, k, ok ? json_real(ev->mean[i]) : json_null());
        json_object_set_new(ci, k, ok ? json_real(ev->ci[i]) : json_null());
        if (ev->diverged[i]) {
            if (!div)
                div = json_object();
            json_object_set_new(div, k, json_integer(ev->diverged[i]));
        }
    }
    int ways = r->generator ? 1 : ms->ways;
    if (r->task_level)
        ways = r->regression ? 1 : r->jd.task[0].n_classes;
    json_object_set_new(fs, "ways", json_integer(ways));
    json_object_set_new(fs, "shots", json_integer(ms->shots));
    json_object_set_new(fs, "queries", json_integer(ms->queries));
    json_object_set_new(fs, "episodes", json_integer(ms->eval_episodes));
    json_object_set_new(fs, "steps", steps);
    json_object_set_new(fs, r->regression ? "mse" : "accuracy", val);
    json_object_set_new(fs, "ci95", ci);
    if (div)
        json_object_set_new(fs, "diverged", div);
    if (r->task_level) {
        json_t *names = json_array();
        for (int t = 0; t < r->jd.n_tasks; t++)
            json_array_append_new(names, json_string(r->jd.task[t].name));
        json_object_set_new(fs, "tasks", names);
    } else if (!r->generator) {
        json_t *tc = test_class_list(r);
        json_object_set_new(fs, "test_classes", tc);
        if (r->ms.test_task[0])
            json_object_set_new(fs, "test_task", json_string(r->jd_test.task[0].name));
    }
    json_t *res = json_object();
    int last = ms->n_eval_steps - 1;
    json_object_set_new(res, "few_shot", fs);
    json_t *last_val = isfinite(ev->mean[last]) && !ev->diverged[last]
                           ? json_real(ev->mean[last]) : json_null();
    json_t *last_loss = isfinite(ev->loss[last]) ? json_real(ev->loss[last]) : json_null();
    if (r->task_level) { /* per task: its episodes' mean at the last step count */
        json_decref(last_val);
        json_decref(last_loss);
        for (int t = 0; t < r->jd.n_tasks; t++) {
            double m = ev->task_n[t] ? ev->task_sum[t] / ev->task_n[t] : NAN;
            json_object_set_new(res, r->jd.task[t].name,
                                json_pack("{s:o,s:I}", r->regression ? "mse" : "accuracy",
                                          isfinite(m) ? json_real(m) : json_null(), "episodes",
                                          (json_int_t)ev->task_n[t]));
        }
    } else if (r->generator) {
        json_decref(last_loss);
        json_object_set_new(res, r->task_name, json_pack("{s:o}", "mse", last_val));
    } else {
        json_object_set_new(res, r->task_name, json_pack("{s:o,s:o}", "accuracy", last_val,
                                                         "loss", last_loss));
    }
    json_object_set_new(res, "meta_parameters", json_integer((json_int_t)r->nmeta));
    if (r->from_note)
        json_object_set(res, "from_checkpoint", r->from_note);
    json_object_set_new(res, "memory",
                        svc__memory_json(r->rss_start));
    return res;
}

void svc__run_meta_job(svc *s, int64_t job_id, svc__running *slot)
{
    mrun r;
    memset(&r, 0, sizeof r);
    r.s = s;
    r.job_id = job_id;
    r.slot = slot;
    svc_error e = {0};
    char msg[512], err[300];
    store_job j = {0};
    if (store_job_get(s->db, job_id, &j) != STORE_OK)
        return;
    r.spec_text = j.spec ? strdup(j.spec) : NULL;
    json_t *spec = json_loads(j.spec ? j.spec : "", 0, NULL);
    store_job_clear(&j);
    int rc = svc__spec_parse(spec, &r.sp, &e);
    if (rc == SVC_OK)
        rc = svc__meta_spec_parse(spec, &r.sp, &r.ms, &e);
    json_decref(spec);
    if (rc != SVC_OK) {
        fail_job(&r, "invalid_spec", e.message);
        goto out;
    }
    if (setup(&r) != 0)
        goto out;
    r.total = r.ms.steps;
    if (resume(&r) == 0) {
        eng_rng init;
        eng_rng_seed(&init, r.sp.seed);
        eng_meta_init(r.m, r.theta, &init);
        if ((r.sp.from_job[0] || r.sp.from_import[0]) &&
            apply_from_checkpoint(&r, msg, sizeof msg) != 0) {
            fail_job(&r, "checkpoint_unreadable", msg);
            goto out;
        }
        memset(r.am, 0, r.nmeta * sizeof *r.am);
        memset(r.av, 0, r.nmeta * sizeof *r.av);
        r.step = 0;
        r.loss_sum = 0;
        r.loss_n = 0;
    }
    atomic_store(&slot->total, r.total);
    atomic_store(&slot->step, r.step);
    pthread_mutex_lock(&s->mu);
    atomic_store(&slot->step0, r.step);
    slot->t0 = svc__now();
    pthread_mutex_unlock(&s->mu);
    set_progress(&r);
    svc__events_state(s, job_id, "running", NULL, NULL);
    /* anchors the stream's ETA clock at the starting step (svc_runner.c) */
    svc__events_progress(s, job_id, r.step, r.total, r.ms.meta_batch);
    r.rss_start = svc__rss_now();

    eng_adam_cfg adam = eng_adam_defaults();
    adam.lr = r.sp.lr;
    adam.beta1 = r.sp.beta1;
    adam.beta2 = r.sp.beta2;
    adam.eps = r.sp.eps;
    adam.weight_decay = r.sp.weight_decay;
    int64_t log_every = r.total / 100 > 0 ? r.total / 100 : 1;
    double last_report = svc__now();
    while (r.step < r.total) {
        if (atomic_load(&slot->cancel))
            goto cancelled;
        if (atomic_load(&s->stopping))
            goto requeue;
        eng_rng rng;
        iter_rng(&r, r.step, &rng);
        for (int b = 0; b < r.ms.meta_batch; b++)
            if (fill_task(&r, &rng, r.ep_train, b) != 0) {
                fail_job(&r, "invalid_data", "cannot draw a meta-training episode");
                goto out;
            }
        double loss = 0;
        rc = eng_meta_step(r.m, r.theta, r.tasks, r.ms.meta_batch, &adam, r.grad, r.am, r.av,
                           (long)r.step + 1, &loss);
        if (rc != ENG_OK) {
            snprintf(msg, sizeof msg, "meta-iteration %lld failed: %s%s", (long long)r.step + 1,
                     eng_strerror(rc),
                     rc == ENG_ENONFINITE ? " (lower inner.lr or optimizer.lr)" : "");
            fail_job(&r, rc == ENG_ENONFINITE ? "diverged" : "engine_error", msg);
            goto out;
        }
        r.loss_sum += loss;
        r.loss_n++;
        r.step++;
        if (r.step % log_every == 0 || r.step == r.total) {
            if (record_train_loss(&r) != SVC_OK) {
                fail_job(&r, "storage_error", "cannot record metrics");
                goto out;
            }
        }
        if (r.step % r.sp.checkpoint_every == 0 || r.step == r.total) {
            if (write_checkpoint(&r, err, sizeof err) != 0) {
                fail_job(&r, "checkpoint_failed", err);
                goto out;
            }
        }
        double t_now = svc__now();
        if (t_now - last_report > 0.25 || r.step == r.total) {
            set_progress(&r);
            last_report = t_now;
        }
    }

    eval_out ev;
    rc = meta_test(&r, &ev);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        if (atomic_load(&slot->cancel))
            goto cancelled;
        goto requeue;
    }
    {
        store_metric m[SVC__META_MAX_EVAL_STEPS];
        char names[SVC__META_MAX_EVAL_STEPS][32];
        for (int i = 0; i < r.ms.n_eval_steps; i++) {
            snprintf(names[i], sizeof names[i], "%s_after_%d", r.generator ? "mse" : "accuracy",
                     r.ms.eval_steps[i]);
            m[i] = (store_metric){r.step, r.task_name, (char *)"meta_test", names[i], ev.mean[i]};
        }
        svc__events_metrics(s, job_id, m, (size_t)r.ms.n_eval_steps);
        if (store_metric_add(s->db, job_id, m, (size_t)r.ms.n_eval_steps) != STORE_OK) {
            fail_job(&r, "storage_error", "cannot record metrics");
            goto out;
        }
    }
    json_t *res = results_json(&r, &ev);
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
    goto out;
cancelled:
    set_progress(&r);
    store_job_set_state(s->db, job_id, "cancelled", NULL, NULL);
    svc__events_state(s, job_id, "cancelled", NULL, NULL);
    goto out;
requeue:
    if (r.step != r.last_ckpt && write_checkpoint(&r, err, sizeof err) != 0) {
        fail_job(&r, "checkpoint_failed", err);
        goto out;
    }
    set_progress(&r);
    store_job_set_state(s->db, job_id, "queued", NULL, NULL);
    svc__events_state(s, job_id, "queued", NULL, NULL);
out:
    mrun_free(&r);
}
