/*
 * tests/integration/test_engine_spec.c — the engine's options as job-spec
 * keys, against a real mtld: every bad value is a 422 naming its key path
 * (and nothing is queued); a job using every new option at once succeeds
 * and gives the same results twice (dropout masks are seeded); a task loss
 * option that does not fit the task's kind fails the job by name; early
 * stopping stops on the validation split and the results are the test
 * split's, once at the end; validation_fraction 0 trains without one.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/harness.h"

static mtld_proc P;
static char DIR_[256];
static const char *J = "application/json";

static void setup(void)
{
    h_start_so(&P, DIR_, sizeof DIR_);
}

static void teardown(void)
{
    h_stop_healthy(&P);
}

/* POSTs {"algorithm":"multitask","tasks":["salary","remote"], <extra>} and
 * expects a 422 whose field is `field` and whose message holds needle. */
static void bad(const char *extra, const char *field, const char *needle)
{
    h_expect_bad_so_job(&P, extra, field, needle);
}

START_TEST(bad_values_name_the_key_path)
{
    bad("\"model\":{\"activation\":\"swish\"}", "model.activation", "gelu");
    bad("\"model\":{\"activation\":3}", "model.activation", "string");
    bad("\"model\":{\"dropout\":1.5}", "model.dropout", NULL);
    bad("\"model\":{\"layer_norm\":1}", "model.layer_norm", "true or false");
    bad("\"model\":{\"leaky_slope\":2}", "model.leaky_slope", NULL);
    bad("\"optimizer\":{\"name\":\"rmsprop\"}", "optimizer.name", "nesterov");
    bad("\"optimizer\":{\"momentum\":1}", "optimizer.momentum", NULL);
    bad("\"optimizer\":{\"clip_norm\":-1}", "optimizer.clip_norm", NULL);
    bad("\"optimizer\":{\"schedule\":{\"name\":\"linear_decay\"}}", "optimizer.schedule.name",
        "warmup_cosine");
    bad("\"optimizer\":{\"schedule\":{\"name\":\"step\",\"gamma\":2}}",
        "optimizer.schedule.gamma", NULL);
    bad("\"optimizer\":{\"schedule\":{\"name\":\"warmup\",\"warmup\":0}}",
        "optimizer.schedule.warmup", NULL);
    bad("\"optimizer\":{\"schedule\":{\"warm\":10}}", "optimizer.schedule.warm", "unknown");
    bad("\"optimizer\":{\"schedule\":\"cosine\"}", "optimizer.schedule", "object");
    bad("\"early_stopping\":{\"patience\":3}", "early_stopping.metric", "required");
    bad("\"early_stopping\":{\"metric\":\"accuracy\"}", "early_stopping.metric", "TASK.METRIC");
    bad("\"early_stopping\":{\"metric\":\"remote.auc\"}", "early_stopping.metric", NULL);
    bad("\"early_stopping\":{\"metric\":\"wage.mse\"}", "early_stopping.metric", "wage");
    /* a metric the task's kind never records (salary is regression, remote
     * classification) was accepted and early-stopped on nothing */
    bad("\"early_stopping\":{\"metric\":\"salary.accuracy\"}", "early_stopping.metric",
        "loss, mse, mae, r2");
    bad("\"early_stopping\":{\"metric\":\"remote.r2\"}", "early_stopping.metric",
        "loss, accuracy, macro_f1");
    bad("\"early_stopping\":{\"metric\":\"loss\",\"patience\":0}", "early_stopping.patience",
        NULL);
    bad("\"early_stopping\":{\"metric\":\"loss\",\"when\":1}", "early_stopping.when", "unknown");
    bad("\"validation_fraction\":-0.1", "validation_fraction", NULL);
    bad("\"validation_fraction\":0.91", "validation_fraction", NULL);
    bad("\"validation_fraction\":\"0.1\"", "validation_fraction", "number");
    bad("\"validation_fraction\":0.5,\"test_fraction\":0.5", "validation_fraction", "0.95");
    bad("\"validation_fraction\":0.051,\"test_fraction\":0.9", "validation_fraction", "0.95");
    /* task loss options live in the task's object */
    h_resp r;
    const char *t1 = "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\",\"loss\":\"hinge\"}]}";
    r = h_req(&P, "POST", "/v1/jobs", J, t1, strlen(t1));
    h_expect_error(&r, 422, NULL, "huber", "tasks[0].loss");
    h_resp_free(&r);
    const char *t2 = "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\",\"huber_delta\":2}]}";
    r = h_req(&P, "POST", "/v1/jobs", J, t2, strlen(t2));
    h_expect_error(&r, 422, NULL, "huber", "tasks[0].huber_delta");
    h_resp_free(&r);
    const char *t3 = "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"remote\","
                     "\"label_smoothing\":1}]}";
    r = h_req(&P, "POST", "/v1/jobs", J, t3, strlen(t3));
    h_expect_error(&r, 422, NULL, NULL, "tasks[0].label_smoothing");
    h_resp_free(&r);
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
    /* what each kind records is taken (cancelled at once: only the 202 matters) */
    const char *const fit[] = {"salary.mse", "salary.r2", "remote.macro_f1", "salary.loss"};
    /* and splits summing to exactly 0.95 whatever the float sum rounds to
     * (0.9 + 0.05 is 0.9500000000000001 and was refused) */
    const char *const split[] = {"\"validation_fraction\":0.05,\"test_fraction\":0.9",
                                 "\"validation_fraction\":0.9,\"test_fraction\":0.05",
                                 "\"validation_fraction\":0.5,\"test_fraction\":0.45",
                                 "\"validation_fraction\":0.1"};
    for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++) {
        char spec[320];
        snprintf(spec, sizeof spec,
                 "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],\"epochs\":1,"
                 "\"early_stopping\":{\"metric\":\"%s\"},%s}",
                 fit[i], split[i]);
        long long id = h_submit(&P, spec);
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", id);
        r = h_req(&P, "POST", path, NULL, NULL, 0);
        h_resp_free(&r);
    }
}
END_TEST

static long long submit(const char *spec)
{
    json_t *j = h_post_json(&P, "/v1/jobs", spec, 202);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

static const char *ALL_OPTIONS =
    "{\"algorithm\":\"multitask\",\"seed\":5,\"epochs\":3,\"batch_size\":64,"
    "\"tasks\":[{\"task\":\"salary\",\"loss\":\"huber\",\"huber_delta\":0.5},"
    "{\"task\":\"remote\",\"loss\":\"cross_entropy\",\"label_smoothing\":0.1}],"
    "\"model\":{\"trunk\":[32,16],\"towers\":[8],\"activation\":\"gelu\",\"dropout\":0.2,"
    "\"layer_norm\":true},"
    "\"optimizer\":{\"name\":\"adamw\",\"lr\":0.003,\"weight_decay\":0.01,\"clip_norm\":1.0,"
    "\"schedule\":{\"name\":\"warmup_cosine\",\"warmup\":20,\"min_lr\":0.0001}}}";

START_TEST(every_option_trains_and_is_reproducible)
{
    long long a = submit(ALL_OPTIONS), b = submit(ALL_OPTIONS);
    json_t *ja = h_wait_job(&P, a, 300), *jb = h_wait_job(&P, b, 300);
    ck_assert_str_eq(json_string_value(json_object_get(ja, "state")), "succeeded");
    ck_assert_str_eq(json_string_value(json_object_get(jb, "state")), "succeeded");
    json_t *ra = json_object_get(ja, "results"), *rb = json_object_get(jb, "results");
    double acc = json_number_value(json_object_get(json_object_get(ra, "remote"), "accuracy"));
    ck_assert(acc > 0.5);
    ck_assert(isfinite(json_number_value(json_object_get(json_object_get(ra, "salary"), "mse"))));
    /* same spec, same seed: the same numbers, dropout included */
    ck_assert(json_equal(json_object_get(ra, "remote"), json_object_get(rb, "remote")));
    ck_assert(json_equal(json_object_get(ra, "salary"), json_object_get(rb, "salary")));
    json_decref(ja);
    json_decref(jb);

    /* The other optimisers and activations run too (one short job each). */
    static const char *const variants[] = {
        "\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05},\"model\":{\"trunk\":[16],\"activation\":\"tanh\"}",
        "\"optimizer\":{\"name\":\"momentum\",\"lr\":0.01,\"momentum\":0.8,"
        "\"schedule\":{\"name\":\"step\",\"step_size\":50,\"gamma\":0.5}},"
        "\"model\":{\"trunk\":[16],\"activation\":\"sigmoid\"}",
        "\"optimizer\":{\"name\":\"nesterov\",\"lr\":0.01,\"schedule\":{\"name\":\"cosine\"}},"
        "\"model\":{\"trunk\":[16],\"activation\":\"leaky_relu\",\"leaky_slope\":0.1}",
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char spec[1024];
        snprintf(spec, sizeof spec,
                 "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],\"epochs\":1,%s}",
                 variants[i]);
        long long id = submit(spec);
        json_t *j = h_wait_job(&P, id, 120);
        ck_assert_msg(!strcmp(json_string_value(json_object_get(j, "state")), "succeeded"),
                      "variant %zu: %s", i, json_string_value(json_object_get(j, "state")));
        json_decref(j);
    }
}
END_TEST

START_TEST(loss_option_of_the_wrong_kind_fails_the_job)
{
    long long id = submit("{\"algorithm\":\"multitask\",\"epochs\":1,"
                          "\"tasks\":[{\"task\":\"salary\",\"label_smoothing\":0.1}]}");
    json_t *j = h_wait_job(&P, id, 60);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
    json_t *err = json_object_get(j, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "invalid_spec");
    ck_assert_msg(strstr(json_string_value(json_object_get(err, "message")),
                         "tasks[0].label_smoothing"),
                  "%s", json_string_value(json_object_get(err, "message")));
    json_decref(j);
}
END_TEST

START_TEST(early_stopping_restores_the_best_weights)
{
    /* A large learning rate on a wide net overfits fast: remote's
     * validation accuracy peaks early, and patience 2 stops the job well
     * before 40 epochs. The best step is chosen on the validation split
     * alone: it is the first step of the series' highest validation
     * accuracy (recomputed here from the metrics served), and the test
     * split appears once, at the last step, with the results' figures. */
    long long id = submit("{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                          "\"seed\":2,\"epochs\":40,\"batch_size\":32,"
                          "\"model\":{\"trunk\":[256,256]},\"optimizer\":{\"lr\":0.003},"
                          "\"early_stopping\":{\"metric\":\"remote.accuracy\",\"patience\":2}}");
    json_t *j = h_wait_job(&P, id, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_t *res = json_object_get(j, "results");
    json_t *es = json_object_get(res, "early_stopping");
    ck_assert_ptr_nonnull(es);
    ck_assert(json_is_true(json_object_get(es, "stopped")));
    long long best = json_integer_value(json_object_get(es, "best_step"));
    long long steps = json_integer_value(json_object_get(j, "steps"));
    long long spe = json_integer_value(json_object_get(es, "steps_per_epoch"));
    ck_assert_int_gt(spe, 0);
    ck_assert_int_eq(steps, best + 2 * spe); /* patience 2 epochs after the best */
    double acc = json_number_value(json_object_get(json_object_get(res, "remote"), "accuracy"));
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    size_t i;
    json_t *row;
    long long val_best_step = -1, n_val = 0, n_test = 0;
    double val_best = -1;
    json_array_foreach(json_object_get(m, "metrics"), i, row)
    {
        const char *split = json_string_value(json_object_get(row, "split"));
        long long step = json_integer_value(json_object_get(row, "step"));
        double v = json_number_value(json_object_get(row, "value"));
        if (strcmp(json_string_value(json_object_get(row, "task")), "remote") ||
            strcmp(json_string_value(json_object_get(row, "name")), "accuracy"))
            continue;
        if (!strcmp(split, "validation")) {
            n_val++;
            if (v > val_best) { /* the first of equal values: improvements are strict */
                val_best = v;
                val_best_step = step;
            }
        } else {
            ck_assert_str_eq(split, "test");
            ck_assert_int_eq(step, steps);
            ck_assert_double_eq_tol(v, acc, 1e-9);
            n_test++;
        }
    }
    ck_assert_int_eq(n_val, steps / spe); /* one validation evaluation per epoch */
    ck_assert_int_eq(n_test, 1);
    ck_assert_int_eq(val_best_step, best);
    ck_assert_double_eq_tol(json_number_value(json_object_get(es, "best")), val_best, 1e-9);
    json_decref(m);
    /* The weights restored are the best step's: the same job trained for
     * exactly that many epochs (constant learning rate, so the same steps)
     * reports the same test figures. */
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
             "\"seed\":2,\"epochs\":%lld,\"batch_size\":32,"
             "\"model\":{\"trunk\":[256,256]},\"optimizer\":{\"lr\":0.003}}",
             best / spe);
    json_t *j2 = h_wait_job(&P, submit(spec), 300);
    ck_assert_str_eq(json_string_value(json_object_get(j2, "state")), "succeeded");
    json_t *res2 = json_object_get(j2, "results");
    ck_assert_double_eq_tol(
        json_number_value(json_object_get(json_object_get(res2, "remote"), "accuracy")), acc,
        1e-9);
    ck_assert_double_eq_tol(
        json_number_value(json_object_get(json_object_get(res2, "salary"), "mse")),
        json_number_value(json_object_get(json_object_get(res, "salary"), "mse")), 1e-9);
    json_decref(j2);
    json_decref(j);
}
END_TEST

START_TEST(no_validation_split)
{
    /* validation_fraction 0: every non-test row trains, nothing is
     * evaluated during training (no best step), and early stopping, which
     * would need a held-out split to stop on, is refused */
    bad("\"validation_fraction\":0,\"early_stopping\":{\"metric\":\"remote.accuracy\"}",
        "early_stopping", "validation_fraction");
    long long id = submit("{\"algorithm\":\"multitask\",\"tasks\":[\"salary\",\"remote\"],"
                          "\"seed\":3,\"epochs\":2,\"batch_size\":128,\"validation_fraction\":0,"
                          "\"model\":{\"trunk\":[16]}}");
    json_t *j = h_wait_job(&P, id, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_t *res = json_object_get(j, "results");
    json_t *rows = json_object_get(res, "rows");
    ck_assert_int_eq(json_integer_value(json_object_get(rows, "validation")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(rows, "train")) +
                         json_integer_value(json_object_get(rows, "test")),
                     5594);
    ck_assert_ptr_null(json_object_get(res, "best"));
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    size_t i;
    json_t *row;
    int n_test = 0;
    json_array_foreach(json_object_get(m, "metrics"), i, row)
    {
        const char *split = json_string_value(json_object_get(row, "split"));
        ck_assert_msg(strcmp(split, "validation"), "a validation metric without validation rows");
        n_test += !strcmp(split, "test");
    }
    ck_assert_int_eq(n_test, 4 + 3); /* salary: loss, mse, mae, r2; remote: loss, accuracy, F1 */
    json_decref(m);
    json_decref(j);
}
END_TEST

/* The best step is the epoch end with the lowest Σ weight × validation
 * loss, regression losses on the standardised target (docs/guide.md), and
 * results.best.validation_loss is that sum: computed here from the metric
 * series the server returns. (A regression loss was once divided by y_std²
 * a second time, which left salary out of the choice.) */
START_TEST(best_step_weighs_every_task)
{
    long long id = submit("{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\",\"weight\":1},"
                          "{\"task\":\"remote\",\"weight\":0.25}],\"seed\":4,\"epochs\":8,"
                          "\"batch_size\":64,\"optimizer\":{\"lr\":0.003},\"model\":{\"trunk\":[64]}}");
    json_t *j = h_wait_job(&P, id, 300);
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    json_t *best = json_object_get(json_object_get(j, "results"), "best");
    ck_assert_ptr_nonnull(best);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", id);
    json_t *m = h_get_json(&P, path, 200);
    enum { MAXS = 64 };
    long long steps[MAXS];
    double sum[MAXS];
    int ns = 0;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(m, "metrics"), i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "split")), "validation") ||
            strcmp(json_string_value(json_object_get(row, "name")), "loss"))
            continue;
        long long st = json_integer_value(json_object_get(row, "step"));
        const char *task = json_string_value(json_object_get(row, "task"));
        double w = !strcmp(task, "salary") ? 1.0 : 0.25;
        int k = 0;
        while (k < ns && steps[k] != st)
            k++;
        if (k == ns) {
            ck_assert_int_lt(ns, MAXS);
            steps[ns] = st;
            sum[ns++] = 0;
        }
        sum[k] += w * json_number_value(json_object_get(row, "value"));
    }
    ck_assert_int_eq(ns, 8); /* one evaluation an epoch */
    int arg = 0;
    for (int k = 1; k < ns; k++)
        if (sum[k] < sum[arg])
            arg = k;
    ck_assert_int_eq(json_integer_value(json_object_get(best, "step")), steps[arg]);
    double got = json_number_value(json_object_get(best, "validation_loss"));
    ck_assert_msg(fabs(got - sum[arg]) <= 1e-6 * fabs(sum[arg]),
                  "best.validation_loss %.9g, Σ weight × validation loss at step %lld %.9g", got,
                  steps[arg], sum[arg]);
    json_decref(m);
    json_decref(j);
}
END_TEST

Suite *engine_spec_suite(void)
{
    Suite *s = suite_create("engine_spec");
    TCase *tc = tcase_create("engine_spec");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_values_name_the_key_path);
    tcase_add_test(tc, every_option_trains_and_is_reproducible);
    tcase_add_test(tc, loss_option_of_the_wrong_kind_fails_the_job);
    tcase_add_test(tc, early_stopping_restores_the_best_weights);
    tcase_add_test(tc, no_validation_split);
    tcase_add_test(tc, best_step_weighs_every_task);
    suite_add_tcase(s, tc);
    return s;
}
