/*
 * tests/unit/store/test_jobs.c — jobs: create/get/list/delete, the
 * timestamps state transitions set, progress and results, queue order
 * (priority, then age), requeueing after a crash, and that deleting a job
 * takes its metrics, checkpoint records and task links with it.
 */
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

START_TEST(create_get_list_delete)
{
    int64_t t = fx_task("t", 0), a = 0, b = 0, bogus = 999;
    store_job j = {0}, *list = NULL;
    size_t n = 0;

    ck_assert_int_eq(store_job_create(fx_store, "first", "{\"algorithm\":\"maml\"}", 3, 500, &t, 1,
                                      &a),
                     STORE_OK);
    ck_assert_int_eq(store_job_create(fx_store, NULL, "{}", 0, 0, NULL, 0, &b), STORE_OK);
    ck_assert_int_gt(b, a);

    ck_assert_int_eq(store_job_get(fx_store, a, &j), STORE_OK);
    ck_assert_int_eq(j.id, a);
    ck_assert_str_eq(j.name, "first");
    ck_assert_str_eq(j.state, "queued");
    ck_assert_str_eq(j.spec, "{\"algorithm\":\"maml\"}");
    ck_assert_int_eq(j.priority, 3);
    ck_assert_int_eq(j.step, 0);
    ck_assert_int_eq(j.steps, 500);
    ck_assert(j.progress == 0.0);
    fx_assert_timestamp(j.created_at);
    ck_assert_ptr_null(j.started_at);
    ck_assert_ptr_null(j.finished_at);
    ck_assert_ptr_null(j.error_code);
    ck_assert_ptr_null(j.error_message);
    ck_assert_ptr_null(j.results);
    store_job_clear(&j);
    store_job_clear(NULL);
    ck_assert_int_eq(store_job_get(fx_store, b, &j), STORE_OK);
    ck_assert_ptr_null(j.name);
    store_job_clear(&j);
    ck_assert_int_eq(store_job_get(fx_store, 999, &j), STORE_ENOTFOUND);
    ck_assert_ptr_null(j.state);

    /* Newest first; filtered by state. */
    ck_assert_int_eq(store_job_list(fx_store, NULL, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(list[0].id, b);
    ck_assert_int_eq(list[1].id, a);
    store_job_list_free(list, n);
    ck_assert_int_eq(store_job_set_state(fx_store, a, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_list(fx_store, "running", &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(list[0].id, a);
    store_job_list_free(list, n);
    ck_assert_int_eq(store_job_list(fx_store, "failed", &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 0);
    store_job_list_free(list, n);
    ck_assert_int_eq(store_job_list(fx_store, "bogus", &list, &n), STORE_EINVAL);

    /* Unknown task: no job is created. */
    ck_assert_int_eq(store_job_create(fx_store, "x", "{}", 0, 0, &bogus, 1, &b), STORE_ENOTFOUND);
    ck_assert_int_eq(store_job_create(fx_store, "x", NULL, 0, 0, NULL, 0, &b), STORE_EINVAL);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM jobs"), 2);

    ck_assert_int_eq(store_job_delete(fx_store, a), STORE_OK);
    ck_assert_int_eq(store_job_delete(fx_store, a), STORE_ENOTFOUND);
    ck_assert_int_eq(store_job_get(fx_store, a, &j), STORE_ENOTFOUND);
}
END_TEST

START_TEST(state_transitions)
{
    int64_t id = fx_job("j", 0, NULL, 0);
    store_job j = {0};
    char started[32];

    ck_assert_int_eq(store_job_set_state(fx_store, id, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_str_eq(j.state, "running");
    fx_assert_timestamp(j.started_at);
    ck_assert_ptr_null(j.finished_at);
    snprintf(started, sizeof started, "%s", j.started_at);
    store_job_clear(&j);

    /* Requeued and run again: the first start is kept. */
    ck_assert_int_eq(store_job_set_state(fx_store, id, "queued", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_set_state(fx_store, id, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_str_eq(j.started_at, started);
    store_job_clear(&j);

    ck_assert_int_eq(store_job_set_state(fx_store, id, "failed", "diverged", "loss is NaN"),
                     STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_str_eq(j.state, "failed");
    ck_assert_str_eq(j.started_at, started);
    fx_assert_timestamp(j.finished_at);
    ck_assert_str_ge(j.finished_at, j.started_at);
    ck_assert_str_eq(j.error_code, "diverged");
    ck_assert_str_eq(j.error_message, "loss is NaN");
    store_job_clear(&j);

    /* NULL clears the error; a terminal state keeps finished_at set. */
    ck_assert_int_eq(store_job_set_state(fx_store, id, "succeeded", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_str_eq(j.state, "succeeded");
    fx_assert_timestamp(j.finished_at);
    ck_assert_ptr_null(j.error_code);
    ck_assert_ptr_null(j.error_message);
    store_job_clear(&j);

    ck_assert_int_eq(store_job_set_state(fx_store, id, "paused", NULL, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_job_set_state(fx_store, id, NULL, NULL, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_job_set_state(fx_store, id + 1, "running", NULL, NULL), STORE_ENOTFOUND);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_str_eq(j.state, "succeeded");
    store_job_clear(&j);
}
END_TEST

START_TEST(progress_and_results)
{
    int64_t id = fx_job("j", 0, NULL, 0);
    store_job j = {0};

    ck_assert_int_eq(store_job_set_progress(fx_store, id, 250, 1000, 0.25), STORE_OK);
    ck_assert_int_eq(store_job_set_results(fx_store, id, "{\"t\":{\"mse\":0.5}}"), STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_int_eq(j.step, 250);
    ck_assert_int_eq(j.steps, 1000);
    ck_assert(j.progress == 0.25);
    ck_assert_str_eq(j.results, "{\"t\":{\"mse\":0.5}}");
    store_job_clear(&j);

    ck_assert_int_eq(store_job_set_progress(fx_store, id, 1, 10, 1.5), STORE_EINVAL);
    ck_assert_int_eq(store_job_set_progress(fx_store, id, 1, 10, -0.1), STORE_EINVAL);
    ck_assert_int_eq(store_job_set_progress(fx_store, id, 1, 10, NAN), STORE_EINVAL);
    ck_assert_int_eq(store_job_set_progress(fx_store, id + 1, 1, 10, 0.1), STORE_ENOTFOUND);
    ck_assert_int_eq(store_job_set_results(fx_store, id + 1, "{}"), STORE_ENOTFOUND);
    ck_assert_int_eq(store_job_set_results(fx_store, id, NULL), STORE_OK);
    ck_assert_int_eq(store_job_get(fx_store, id, &j), STORE_OK);
    ck_assert_ptr_null(j.results);
    ck_assert_int_eq(j.step, 250);
    store_job_clear(&j);
}
END_TEST

START_TEST(next_queued_priority_then_age)
{
    int64_t next = -5, low, hi1, hi2, mid;

    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_ENOTFOUND);
    ck_assert_int_eq(next, -5);
    low = fx_job("low", 0, NULL, 0);
    hi1 = fx_job("hi1", 5, NULL, 0);
    mid = fx_job("mid", 1, NULL, 0);
    hi2 = fx_job("hi2", 5, NULL, 0);

    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_OK);
    ck_assert_int_eq(next, hi1);
    ck_assert_int_eq(store_job_set_state(fx_store, hi1, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_OK);
    ck_assert_int_eq(next, hi2);
    ck_assert_int_eq(store_job_set_state(fx_store, hi2, "cancelled", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_OK);
    ck_assert_int_eq(next, mid);
    ck_assert_int_eq(store_job_set_state(fx_store, mid, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_OK);
    ck_assert_int_eq(next, low);
    ck_assert_int_eq(store_job_set_state(fx_store, low, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_ENOTFOUND);

    /* A requeued older job goes ahead of newer ones of the same priority. */
    ck_assert_int_eq(store_job_set_state(fx_store, hi1, "queued", NULL, NULL), STORE_OK);
    fx_job("hi3", 5, NULL, 0);
    ck_assert_int_eq(store_job_next_queued(fx_store, &next), STORE_OK);
    ck_assert_int_eq(next, hi1);
}
END_TEST

START_TEST(requeue_running)
{
    int64_t a = fx_job("a", 0, NULL, 0), b = fx_job("b", 0, NULL, 0), c = fx_job("c", 0, NULL, 0);
    store_job j = {0};
    int n = -1;

    ck_assert_int_eq(store_job_requeue_running(fx_store, &n), STORE_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(store_job_set_state(fx_store, a, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_set_state(fx_store, b, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_job_set_state(fx_store, c, "succeeded", NULL, NULL), STORE_OK);
    fx_reopen(); /* as after a crash */
    ck_assert_int_eq(store_job_requeue_running(fx_store, &n), STORE_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(store_job_get(fx_store, a, &j), STORE_OK);
    ck_assert_str_eq(j.state, "queued");
    fx_assert_timestamp(j.started_at);
    store_job_clear(&j);
    ck_assert_int_eq(store_job_get(fx_store, c, &j), STORE_OK);
    ck_assert_str_eq(j.state, "succeeded");
    store_job_clear(&j);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM jobs WHERE state = 'running'"), 0);
}
END_TEST

START_TEST(delete_takes_dependents)
{
    int64_t t = fx_task("t", 0);
    int64_t a = fx_job("a", 0, &t, 1), b = fx_job("b", 0, &t, 1), ck = 0;
    store_metric m = {.step = 1, .task = "t", .split = "train", .name = "loss", .value = 1.0};

    ck_assert_int_eq(store_metric_add(fx_store, a, &m, 1), STORE_OK);
    ck_assert_int_eq(store_metric_add(fx_store, b, &m, 1), STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, a, 1, "/x/a-1.safetensors", 10, &ck),
                     STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, b, 1, "/x/b-1.safetensors", 10, &ck),
                     STORE_OK);
    ck_assert_int_eq(store_job_delete(fx_store, a), STORE_OK);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM checkpoints"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM job_tasks"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM metrics WHERE job_id = 1"), 0);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM jobs"), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_jobs");
    TCase *tc = fx_tcase("jobs");
    tcase_add_test(tc, create_get_list_delete);
    tcase_add_test(tc, state_transitions);
    tcase_add_test(tc, progress_and_results);
    tcase_add_test(tc, next_queued_priority_then_age);
    tcase_add_test(tc, requeue_running);
    tcase_add_test(tc, delete_takes_dependents);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
