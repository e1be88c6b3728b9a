/*
 * daemon/svc_adapt.c — few-shot adaptation as a service
 * (POST /v1/jobs/{id}/adapt).
 *
 * A meta-learning job's checkpoint is an initialisation (or, for ProtoNets,
 * an embedding). A request brings a support set (rows and their labels) and
 * query rows; this file rebuilds the job's meta-learner from the
 * checkpoint's metadata (network dims and activation, algorithm, inner
 * learning rate, input names and standardisation), adapts a private copy of
 * the meta-parameters on the support set — `steps` inner steps with the
 * algorithm's own rule for the MAML family (plain SGD at inner.lr; head
 * only for ANIL; the learned per-parameter rates for Meta-SGD), prototypes
 * for ProtoNets — and answers predictions for the query. Nothing is
 * written anywhere: the checkpoint file is only read, and the adapted
 * weights die with the request.
 *
 * Labels of the support set are whatever the client calls its classes
 * (strings or integers; new classes are the point of few-shot learning):
 * they are numbered 0..N−1 in order of first appearance, and predictions
 * come back as those labels. A MAML-family classifier has N outputs fixed
 * at meta-training (episodes.ways), so the support set must have exactly
 * that many classes; ProtoNets take any 2..64. A sinusoid (generator) job
 * regresses: rows are [x], labels are y.
 *
 * Everything is bounded: support rows (SVC_ADAPT_MAX_SUPPORT), query rows
 * (the predict limit), steps (SVC_ADAPT_MAX_STEPS). Each request builds its
 * own learner (engine objects are not thread-safe), so requests never wait
 * for each other; the query goes through in batches of QBATCH rows so the
 * learner's memory is bounded whatever the query size.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_rows.h"
#include "engine/meta.h"

#define QBATCH 256
#define MAX_WAYS 64

typedef struct {
    eng_meta *m;
    eng_meta_alg alg;
    int generator;
    int regression;          /* MSE: a generator, or task-level regression */
    int ways_trained;        /* output width of a MAML-family classifier */
    int inner_steps;
    int64_t step;
    float *theta;            /* [nmeta] */
    svc__inputs in;
    double *mean, *std;      /* [n_in], NULL for a generator */
} learner;

static void learner_clear(learner *l)
{
    eng_meta_free(l->m);
    free(l->theta);
    free(l->mean);
    free(l->std);
    svc__inputs_clear(&l->in);
    memset(l, 0, sizeof *l);
}

static json_t *meta_json(json_t *meta, const char *key)
{
    const char *t = json_string_value(json_object_get(meta, key));
    return t ? json_loads(t, 0, NULL) : NULL;
}

static const char *const alg_names[] = {"maml", "fomaml", "reptile", "anil", "metasgd",
                                        "protonet"};

/* Reads the checkpoint and builds the learner for ns support and up to
 * QBATCH query rows with up to `ways` classes (protonet). */
static int load(const char *path, learner *l, int ns, int ways, svc_error *e)
{
    svc__safetensors st = {0};
    char err[300];
    json_t *net = NULL, *spec = NULL, *features = NULL, *stdz = NULL;
    int rc = SVC_OK;
    if (svc__safetensors_read(path, &st, err, sizeof err) != 0) {
        rc = svc__fail(e, SVC_EGONE, NULL, "the checkpoint cannot be read: %s", err);
        goto done;
    }
    json_t *meta = json_object_get(st.header, "__metadata__");
    const char *format = json_string_value(json_object_get(meta, "format"));
    const char *alg = json_string_value(json_object_get(meta, "algorithm"));
    if (!format || strcmp(format, "mtld-meta-checkpoint-1") || !alg) {
        rc = svc__fail(e, SVC_EINVAL, NULL,
                       "this job is not a meta-learning job: adaptation needs a model "
                       "meta-trained by maml, fomaml, reptile, anil, metasgd or protonet "
                       "(use /predict for other jobs)");
        goto done;
    }
    l->alg = (eng_meta_alg)-1;
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (!strcmp(alg, alg_names[i]))
            l->alg = (eng_meta_alg)i;
    net = meta_json(meta, "network");
    spec = meta_json(meta, "spec");
    json_t *dims = json_object_get(net, "dims");
    const char *act = json_string_value(json_object_get(net, "activation"));
    size_t nd = json_array_size(dims);
    if ((int)l->alg < 0 || !json_is_object(spec) || nd < 2 || nd > ENG_FNET_MAX_LAYERS + 1 ||
        !act) {
        rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                       "the checkpoint's metadata lacks what adaptation needs (algorithm, "
                       "network, spec)");
        goto done;
    }
    eng_meta_cfg c = {0};
    c.alg = l->alg;
    c.net.n_layers = (int)nd - 1;
    for (size_t i = 0; i < nd; i++) {
        json_int_t d = json_integer_value(json_array_get(dims, i));
        if (d < 1 || d > 65536) {
            rc = svc__fail(e, SVC_EUNSUPPORTED, NULL, "the checkpoint's network is malformed");
            goto done;
        }
        c.net.dims[i] = (int)d;
    }
    c.net.act = !strcmp(act, "tanh") ? ENG_FNET_TANH : ENG_FNET_RELU;
    json_t *inner = json_object_get(spec, "inner");
    c.inner_lr = json_is_number(json_object_get(inner, "lr"))
                     ? json_number_value(json_object_get(inner, "lr")) : 0.01;
    l->inner_steps = json_is_integer(json_object_get(inner, "steps"))
                         ? (int)json_integer_value(json_object_get(inner, "steps")) : 1;
    c.inner_steps = 0; /* adaptation only: no meta-gradient tapes */
    c.max_support = ns;
    c.max_query = QBATCH;
    c.max_ways = ways > 1 ? ways : 2;
    features = meta_json(meta, "features");
    l->generator = features == NULL;
    const char *kind = json_string_value(json_object_get(meta, "kind"));
    l->regression = l->generator || (kind && !strcmp(kind, "regression"));
    c.loss = l->regression ? ENG_FNET_MSE : ENG_FNET_CE;
    l->ways_trained = c.net.dims[c.net.n_layers];
    const char *step = json_string_value(json_object_get(meta, "step"));
    l->step = step ? strtoll(step, NULL, 10) : 0;
    if (l->generator) {
        json_t *x = json_pack("[s]", "x");
        int bad = svc__inputs_build(&l->in, x);
        json_decref(x);
        if (bad || c.net.dims[0] != 1) {
            rc = svc__fail(e, SVC_EUNSUPPORTED, NULL, "the checkpoint's network is malformed");
            goto done;
        }
    } else {
        stdz = meta_json(meta, "standardization");
        json_t *mean = json_object_get(stdz, "mean"), *sd = json_object_get(stdz, "std");
        if (svc__inputs_build(&l->in, features) != 0 || l->in.n_in != c.net.dims[0] ||
            (int)json_array_size(mean) != l->in.n_in || (int)json_array_size(sd) != l->in.n_in) {
            rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                           "the checkpoint's metadata is inconsistent (features, "
                           "standardization, network)");
            goto done;
        }
        l->mean = malloc((size_t)l->in.n_in * sizeof *l->mean);
        l->std = malloc((size_t)l->in.n_in * sizeof *l->std);
        if (!l->mean || !l->std) {
            rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
            goto done;
        }
        for (int i = 0; i < l->in.n_in; i++) {
            l->mean[i] = json_number_value(json_array_get(mean, (size_t)i));
            l->std[i] = json_number_value(json_array_get(sd, (size_t)i));
            if (!(l->std[i] > 0))
                l->std[i] = 1;
        }
    }
    int erc = eng_meta_new(&c, &l->m);
    if (erc != ENG_OK) {
        rc = erc == ENG_ENOMEM ? svc__fail(e, SVC_ENOMEM, NULL, "out of memory")
                               : svc__fail(e, SVC_EUNSUPPORTED, NULL,
                                           "cannot rebuild the checkpoint's network");
        goto done;
    }
    size_t np = eng_meta_net_nparams(l->m), nmeta = eng_meta_nparams(l->m);
    l->theta = calloc(nmeta, sizeof *l->theta);
    if (!l->theta) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    eng_fnet *f = eng_meta_net(l->m);
    for (int blk = 0; blk < (nmeta > np ? 2 : 1); blk++)
        for (int ly = 1; ly <= c.net.n_layers; ly++)
            for (int bias = 0; bias < 2; bias++) {
                char name[80];
                snprintf(name, sizeof name, "%slayers.%d.%s", blk ? "alpha." : "", ly - 1,
                         bias ? "bias" : "weight");
                size_t off = bias ? eng_fnet_bias_offset(f, ly) : eng_fnet_weight_offset(f, ly);
                size_t cnt = (size_t)c.net.dims[ly] * (bias ? 1 : (size_t)c.net.dims[ly - 1]);
                if (svc__safetensors_get(&st, name, l->theta + (size_t)blk * np + off, cnt) !=
                    0) {
                    rc = svc__fail(e, SVC_EUNSUPPORTED, NULL,
                                   "the checkpoint's tensor '%s' is missing or does not match "
                                   "its network",
                                   name);
                    goto done;
                }
            }
done:
    svc__safetensors_clear(&st);
    json_decref(net);
    json_decref(spec);
    json_decref(features);
    json_decref(stdz);
    return rc;
}

/* A label's identity as text: strings as they are, integers in decimal. */
static int label_text(json_t *v, char *buf, size_t n)
{
    if (json_is_string(v) && strlen(json_string_value(v)) < n && json_string_length(v) > 0) {
        snprintf(buf, n, "%s", json_string_value(v));
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    return -1;
}

static int check_keys(json_t *obj, const char *path, const char *const *keys, size_t n,
                      svc_error *e)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int ok = 0;
        for (size_t i = 0; i < n; i++)
            ok |= !strcmp(k, keys[i]);
        if (!ok) {
            char list[128] = "", field[128];
            size_t used = 0;
            for (size_t i = 0; i < n; i++)
                used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0,
                                         "%s%s", i ? ", " : "", keys[i]);
            snprintf(field, sizeof field, "%s%s%.60s", path, path[0] ? "." : "", k);
            return svc__fail(e, SVC_EINVAL, field, "unknown key '%s' (expected %s)", field, list);
        }
    }
    return SVC_OK;
}

static int rows_array(json_t *parent, const char *path, size_t max, json_t **out, svc_error *e)
{
    char field[64];
    snprintf(field, sizeof field, "%s.rows", path);
    json_t *rows = json_object_get(parent, "rows");
    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return svc__fail(e, SVC_EINVAL, field, "'%s' must be a non-empty array of rows", field);
    if (json_array_size(rows) > max)
        return svc__fail(e, SVC_ELIMIT, field, "'%s' has %zu rows; the limit is %zu", field,
                         json_array_size(rows), max);
    *out = rows;
    return SVC_OK;
}

int svc_job_adapt(svc *s, const char *key, json_t *req, size_t max_rows, json_t **out,
                  svc_error *e)
{
    static const char *const top_keys[] = {"support", "query", "steps", "checkpoint"};
    static const char *const sup_keys[] = {"rows", "labels"};
    static const char *const q_keys[] = {"rows"};
    learner l;
    memset(&l, 0, sizeof l);
    float *xs = NULL, *ys = NULL, *xq = NULL, *o = NULL;
    char (*names)[65] = NULL;
    json_t *res = NULL, *firsts = NULL;
    int rc;
    if (!json_is_object(req))
        return svc__fail(e, SVC_EINVAL, NULL,
                         "the body must be an object {\"support\": {\"rows\", \"labels\"}, "
                         "\"query\": {\"rows\"}, \"steps\"}");
    if ((rc = check_keys(req, "", top_keys, 4, e)) != SVC_OK)
        return rc;
    json_t *sup = json_object_get(req, "support"), *qry = json_object_get(req, "query");
    if (!json_is_object(sup))
        return svc__fail(e, SVC_EINVAL, "support",
                         "'support' is required: an object {\"rows\": [...], \"labels\": [...]}");
    if (!json_is_object(qry))
        return svc__fail(e, SVC_EINVAL, "query",
                         "'query' is required: an object {\"rows\": [...]}");
    if ((rc = check_keys(sup, "support", sup_keys, 2, e)) != SVC_OK ||
        (rc = check_keys(qry, "query", q_keys, 1, e)) != SVC_OK)
        return rc;
    json_t *srows, *qrows, *labels = json_object_get(sup, "labels");
    if ((rc = rows_array(sup, "support", SVC_ADAPT_MAX_SUPPORT, &srows, e)) != SVC_OK ||
        (rc = rows_array(qry, "query", max_rows, &qrows, e)) != SVC_OK)
        return rc;
    size_t ns = json_array_size(srows), nq = json_array_size(qrows);
    if (!json_is_array(labels) || json_array_size(labels) != ns)
        return svc__fail(e, SVC_EINVAL, "support.labels",
                         "'support.labels' must be an array with one label per support row "
                         "(%zu)", ns);
    json_t *jsteps = json_object_get(req, "steps");
    if (jsteps && (!json_is_integer(jsteps) || json_integer_value(jsteps) < 0 ||
                   json_integer_value(jsteps) > SVC_ADAPT_MAX_STEPS))
        return svc__fail(e, SVC_EINVAL, "steps", "'steps' must be an integer from 0 to %d",
                         SVC_ADAPT_MAX_STEPS);
    char which[64] = "latest";
    json_t *ck = json_object_get(req, "checkpoint");
    if (ck && json_is_integer(ck) && json_integer_value(ck) > 0)
        snprintf(which, sizeof which, "%lld", (long long)json_integer_value(ck));
    else if (ck && json_is_string(ck) && json_string_length(ck) > 0 &&
             json_string_length(ck) < sizeof which)
        snprintf(which, sizeof which, "%s", json_string_value(ck));
    else if (ck && !json_is_null(ck))
        return svc__fail(e, SVC_EINVAL, "checkpoint",
                         "'checkpoint' must be \"latest\", \"best\" or a checkpoint id");

    /* The support labels: numbered in order of first appearance. */
    names = calloc(ns, sizeof *names);
    ys = malloc(ns * sizeof *ys);
    firsts = json_array();
    if (!names || !ys || !firsts) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    char path[4096];
    int64_t bytes = 0;
    if ((rc = svc_job_checkpoint_file_which(s, key, which, path, sizeof path, &bytes, e)) !=
        SVC_OK)
        goto done;
    /* The learner is built for up to MAX_WAYS classes (prototype buffers
     * only); then the labels are read as the model needs them. */
    if ((rc = load(path, &l, (int)ns, MAX_WAYS, e)) != SVC_OK)
        goto done;
    int ways = 0;
    double y_mean = 0, y_std = 1; /* task-level regression: the support's own scale */
    {
        int gen = l.regression;
        for (size_t i = 0; i < ns; i++) {
            json_t *lv = json_array_get(labels, i);
            char field[64];
            snprintf(field, sizeof field, "support.labels[%zu]", i);
            if (gen) {
                if (!json_is_number(lv) || !isfinite(json_number_value(lv)) ||
                    fabs(json_number_value(lv)) > FLT_MAX) {
                    rc = svc__fail(e, SVC_EINVAL, field,
                                   "'%s' must be a finite number (this model regresses)", field);
                    goto done;
                }
                ys[i] = (float)json_number_value(lv);
                continue;
            }
            char t[65];
            if (label_text(lv, t, sizeof t) != 0) {
                rc = svc__fail(e, SVC_EINVAL, field,
                               "'%s' must be a class label: a non-empty string of at most 64 "
                               "characters, or an integer",
                               field);
                goto done;
            }
            int k = 0;
            while (k < ways && strcmp(names[k], t))
                k++;
            if (k == ways) {
                if (ways == MAX_WAYS) {
                    rc = svc__fail(e, SVC_EINVAL, "support.labels",
                                   "'support.labels' has more than %d classes", MAX_WAYS);
                    goto done;
                }
                snprintf(names[ways++], 65, "%s", t);
                json_array_append(firsts, lv);
            }
            ys[i] = (float)k;
        }
    }
    if (l.regression && !l.generator) {
        /* meta-trained on standardised targets: a new task's scale comes from
         * its support set, and predictions go back to it */
        double sum = 0, sq = 0;
        for (size_t i = 0; i < ns; i++)
            sum += ys[i];
        y_mean = sum / (double)ns;
        for (size_t i = 0; i < ns; i++)
            sq += (ys[i] - y_mean) * (ys[i] - y_mean);
        y_std = ns > 1 ? sqrt(sq / (double)ns) : 0;
        if (!(y_std > 1e-12))
            y_std = 1;
        for (size_t i = 0; i < ns; i++)
            ys[i] = (float)((ys[i] - y_mean) / y_std);
    }
    const int proto = l.alg == ENG_META_PROTONET;
    int steps = jsteps ? (int)json_integer_value(jsteps) : proto ? 0 : l.inner_steps;
    if (proto && steps != 0) {
        rc = svc__fail(e, SVC_EINVAL, "steps",
                       "a protonet adapts by prototypes, not gradient steps: 'steps' must be 0 "
                       "or absent");
        goto done;
    }
    if (!l.regression && ways < 2) {
        rc = svc__fail(e, SVC_EINVAL, "support.labels",
                       "the support set has 1 class; few-shot classification needs at least 2");
        goto done;
    }
    if (!l.regression && !proto && ways != l.ways_trained) {
        rc = svc__fail(e, SVC_EINVAL, "support.labels",
                       "the support set has %d classes; this model was meta-trained for "
                       "%d-way episodes, so its support set needs exactly %d",
                       ways, l.ways_trained, l.ways_trained);
        goto done;
    }
    const int d0 = l.in.n_in;
    xs = malloc(ns * (size_t)d0 * sizeof *xs);
    xq = malloc(nq * (size_t)d0 * sizeof *xq);
    int nout = proto ? ways : l.ways_trained;
    o = malloc((size_t)QBATCH * (size_t)nout * sizeof *o);
    if (!xs || !xq || !o) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < ns; r++)
        if ((rc = svc__inputs_encode(&l.in, json_array_get(srows, r), "support.rows", r,
                                     xs + r * (size_t)d0, e)) != SVC_OK)
            goto done;
    for (size_t r = 0; r < nq; r++)
        if ((rc = svc__inputs_encode(&l.in, json_array_get(qrows, r), "query.rows", r,
                                     xq + r * (size_t)d0, e)) != SVC_OK)
            goto done;
    if (l.mean)
        for (size_t r = 0; r < ns + nq; r++) {
            float *x = r < ns ? xs + r * (size_t)d0 : xq + (r - ns) * (size_t)d0;
            for (int i = 0; i < d0; i++)
                x[i] = (float)((x[i] - l.mean[i]) / l.std[i]);
        }

    /* Adapt a private copy: the checkpoint's θ is never written. */
    size_t np = eng_meta_net_nparams(l.m);
    float *fast = malloc(np * sizeof *fast);
    if (!fast) {
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
        goto done;
    }
    int erc = eng_meta_adapt(l.m, l.theta, xs, ys, (int)ns, steps, fast);
    eng_meta_task sup_task = {xs, ys, (int)ns, NULL, NULL, 0, ways};
    json_t *preds = json_array();
    for (size_t b = 0; erc == ENG_OK && b < nq; b += QBATCH) {
        int nb = (int)(nq - b < QBATCH ? nq - b : QBATCH);
        erc = eng_meta_predict(l.m, proto ? l.theta : fast, proto ? &sup_task : NULL,
                               xq + b * (size_t)d0, nb, o);
        for (int i = 0; erc == ENG_OK && i < nb; i++) {
            const float *z = o + (size_t)i * (size_t)nout;
            if (l.regression) {
                double y = (double)z[0] * y_std + y_mean;
                json_array_append_new(preds, json_pack("{s:o}", "value",
                                                       isfinite(y) ? json_real(y)
                                                                   : json_null()));
                continue;
            }
            int best = 0;
            for (int c = 1; c < nout; c++)
                if (z[c] > z[best])
                    best = c;
            double mx = z[best], sum = 0;
            for (int c = 0; c < nout; c++)
                sum += exp((double)z[c] - mx);
            json_t *pr = json_array();
            for (int c = 0; c < nout; c++)
                json_array_append_new(pr, json_real(exp((double)z[c] - mx) / sum));
            json_array_append_new(preds, json_pack("{s:O,s:o}", "label",
                                                   json_array_get(firsts, (size_t)best),
                                                   "probabilities", pr));
        }
    }
    free(fast);
    if (erc != ENG_OK) {
        json_decref(preds);
        rc = erc == ENG_ENONFINITE
                 ? svc__fail(e, SVC_EINVAL, "steps",
                             "adaptation diverged (a non-finite loss) within %d steps: use "
                             "fewer steps",
                             steps)
                 : svc__fail(e, SVC_EIO, NULL, "adaptation failed: %s", eng_strerror(erc));
        goto done;
    }
    json_t *cols = json_array();
    for (int i = 0; i < l.in.n_cols; i++)
        json_array_append_new(cols, json_string(l.in.cols[i].name));
    res = json_pack("{s:I,s:s,s:I,s:s,s:i,s:I,s:o}", "job", (json_int_t)strtoll(key, NULL, 10),
                    "checkpoint", which, "step", (json_int_t)l.step, "algorithm",
                    alg_names[l.alg], "steps", steps, "support_rows", (json_int_t)ns, "columns",
                    cols);
    if (res && !l.regression)
        json_object_set(res, "labels", firsts);
    if (res)
        json_object_set_new(res, "predictions", preds);
    else
        json_decref(preds);
    if (!res)
        rc = svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
done:
    learner_clear(&l);
    free(xs);
    free(ys);
    free(xq);
    free(o);
    free(names);
    json_decref(firsts);
    if (rc == SVC_OK)
        *out = res;
    else
        json_decref(res);
    return rc;
}
