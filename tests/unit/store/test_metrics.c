/*
 * tests/unit/store/test_metrics.c — metrics: batches in order, ?since,
 * truncation on resume (all splits after a step, or one split from a step
 * on), non-finite values stored as NULL and read as NaN.
 */
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

START_TEST(add_list_since_truncate)
{
    int64_t job = fx_job("j", 0, NULL, 0);
    const store_metric in[] = {
        {.step = 0, .task = "a", .split = "train", .name = "loss", .value = 2.5},
        {.step = 0, .task = "b", .split = "train", .name = "loss", .value = 1.5},
        {.step = 10, .task = NULL, .split = "test", .name = "accuracy", .value = 0.75},
        {.step = 20, .task = "a", .split = "train", .name = "loss", .value = -1e-300},
    };
    const store_metric late = {.step = 5, .task = "a", .split = "train", .name = "late",
                               .value = 3};
    store_metric *m = NULL;
    size_t n = 0, i;

    ck_assert_int_eq(store_metric_add(fx_store, job, in, 4), STORE_OK);
    ck_assert_int_eq(store_metric_add(fx_store, job, &late, 1), STORE_OK);
    ck_assert_int_eq(store_metric_add(fx_store, job, NULL, 0), STORE_OK);

    /* By step, then insertion: "late" (step 5) sorts between 0 and 10. */
    ck_assert_int_eq(store_metric_list(fx_store, job, 0, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(m[0].task, "a");
    ck_assert_str_eq(m[1].task, "b");
    ck_assert_str_eq(m[2].name, "late");
    ck_assert_str_eq(m[3].task, ""); /* NULL task is job-wide */
    ck_assert_str_eq(m[3].split, "test");
    ck_assert_str_eq(m[3].name, "accuracy");
    ck_assert(m[3].value == 0.75);
    ck_assert_int_eq(m[4].step, 20);
    ck_assert(m[4].value == -1e-300);
    for (i = 1; i < n; i++)
        ck_assert_int_le(m[i - 1].step, m[i].step);
    store_metric_list_free(m, n);
    store_metric_list_free(NULL, 0);

    ck_assert_int_eq(store_metric_list(fx_store, job, 10, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(m[0].step, 10);
    store_metric_list_free(m, n);
    ck_assert_int_eq(store_metric_list(fx_store, job, 21, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 0);
    store_metric_list_free(m, n);

    /* Resume from step 5: what came after is gone. */
    ck_assert_int_eq(store_metric_truncate(fx_store, job, 5), STORE_OK);
    ck_assert_int_eq(store_metric_list(fx_store, job, 0, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(m[2].step, 5);
    store_metric_list_free(m, n);
}
END_TEST

START_TEST(truncate_one_split)
{
    /* A job resumed at its last step keeps that step's validation figures
     * and drops its test figures (evaluated again). */
    int64_t job = fx_job("j", 0, NULL, 0);
    const store_metric in[] = {
        {.step = 10, .task = "a", .split = "validation", .name = "loss", .value = 1},
        {.step = 10, .task = "a", .split = "test", .name = "loss", .value = 2},
        {.step = 20, .task = "a", .split = "validation", .name = "loss", .value = 3},
        {.step = 20, .task = "a", .split = "test", .name = "loss", .value = 4},
        {.step = 30, .task = "a", .split = "test", .name = "loss", .value = 5},
    };
    store_metric *m = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_metric_add(fx_store, job, in, 5), STORE_OK);
    ck_assert_int_eq(store_metric_truncate_split(fx_store, job, 20, "test"), STORE_OK);
    ck_assert_int_eq(store_metric_list(fx_store, job, 0, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(m[0].value == 1 && m[1].value == 2 && m[2].value == 3);
    store_metric_list_free(m, n);
    ck_assert_int_eq(store_metric_truncate_split(fx_store, job, 0, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_metric_truncate_split(fx_store, job + 1, 0, "test"), STORE_ENOTFOUND);
}
END_TEST

START_TEST(non_finite_is_null_is_nan)
{
    int64_t job = fx_job("j", 0, NULL, 0);
    const store_metric in[] = {
        {.step = 1, .task = "", .split = "train", .name = "loss", .value = NAN},
        {.step = 2, .task = "", .split = "train", .name = "loss", .value = INFINITY},
        {.step = 3, .task = "", .split = "train", .name = "loss", .value = -INFINITY},
        {.step = 4, .task = "", .split = "train", .name = "loss", .value = 0.0},
    };
    store_metric *m = NULL;
    size_t n = 0;

    ck_assert_int_eq(store_metric_add(fx_store, job, in, 4), STORE_OK);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics WHERE value IS NULL"), 3);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics WHERE value = 0.0"), 1);
    ck_assert_int_eq(store_metric_list(fx_store, job, 0, &m, &n), STORE_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert(isnan(m[0].value));
    ck_assert(isnan(m[1].value));
    ck_assert(isnan(m[2].value));
    ck_assert(m[3].value == 0.0);
    store_metric_list_free(m, n);
}
END_TEST

START_TEST(errors_change_nothing)
{
    int64_t job = fx_job("j", 0, NULL, 0);
    const store_metric bad[] = {
        {.step = 1, .task = "", .split = "train", .name = "loss", .value = 1},
        {.step = 2, .task = "", .split = NULL, .name = "loss", .value = 1},
    };
    store_metric *m = (store_metric *)1;
    size_t n = 7;

    ck_assert_int_eq(store_metric_add(fx_store, job, bad, 2), STORE_EINVAL);
    ck_assert_int_eq(store_metric_add(fx_store, job + 1, bad, 1), STORE_ENOTFOUND);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics"), 0);
    ck_assert_int_eq(store_metric_list(fx_store, job + 1, 0, &m, &n), STORE_ENOTFOUND);
    ck_assert_ptr_eq(m, (store_metric *)1);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(store_metric_truncate(fx_store, job + 1, 0), STORE_ENOTFOUND);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_metrics");
    TCase *tc = fx_tcase("metrics");
    tcase_add_test(tc, add_list_since_truncate);
    tcase_add_test(tc, truncate_one_split);
    tcase_add_test(tc, non_finite_is_null_is_nan);
    tcase_add_test(tc, errors_change_nothing);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
