/*
 * tests/unit/store/test_tasks.c — tasks: create/get/find/list/delete,
 * generator tasks without a dataset, unique names, unknown datasets, and
 * refusal to delete a task a queued or running job uses.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

START_TEST(create_get_find_list_delete)
{
    int64_t ds = fx_dataset("d", 3, 2), a = 0, b = 0;
    store_task t = {0}, *list = NULL;
    size_t n = 0;
    char key[32];

    ck_assert_int_eq(store_task_create(fx_store, "salary", ds, "{\"target\":\"y\"}", &a), STORE_OK);
    ck_assert_int_eq(store_task_create(fx_store, "sine", 0, "{\"generator\":\"sinusoid\"}", &b),
                     STORE_OK);
    ck_assert_int_gt(b, a);

    ck_assert_int_eq(store_task_get(fx_store, a, &t), STORE_OK);
    ck_assert_int_eq(t.id, a);
    ck_assert_str_eq(t.name, "salary");
    ck_assert_int_eq(t.dataset_id, ds);
    ck_assert_str_eq(t.def, "{\"target\":\"y\"}");
    fx_assert_timestamp(t.created_at);
    store_task_clear(&t);
    store_task_clear(NULL);

    ck_assert_int_eq(store_task_find(fx_store, "sine", &t), STORE_OK);
    ck_assert_int_eq(t.id, b);
    ck_assert_int_eq(t.dataset_id, 0);
    store_task_clear(&t);
    snprintf(key, sizeof key, "%lld", (long long)b);
    ck_assert_int_eq(store_task_find(fx_store, key, &t), STORE_OK);
    ck_assert_str_eq(t.name, "sine");
    store_task_clear(&t);
    ck_assert_int_eq(store_task_find(fx_store, "nope", &t), STORE_ENOTFOUND);
    ck_assert_int_eq(store_task_get(fx_store, 999, &t), STORE_ENOTFOUND);
    ck_assert_ptr_null(t.name);

    ck_assert_int_eq(store_task_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(list[0].name, "salary");
    ck_assert_str_eq(list[1].name, "sine");
    store_task_list_free(list, n);

    ck_assert_int_eq(store_task_delete(fx_store, a), STORE_OK);
    ck_assert_int_eq(store_task_delete(fx_store, a), STORE_ENOTFOUND);
    ck_assert_int_eq(store_task_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(list[0].id, b);
    store_task_list_free(list, n);
}
END_TEST

START_TEST(duplicate_and_bad_references)
{
    int64_t ds = fx_dataset("d", 3, 2), id = -5;
    store_task t = {0};

    fx_task("t", ds);
    ck_assert_int_eq(store_task_create(fx_store, "t", 0, "other", &id), STORE_EEXISTS);
    ck_assert_int_eq(store_task_create(fx_store, "u", ds + 100, "x", &id), STORE_ENOTFOUND);
    ck_assert_int_eq(store_task_create(fx_store, "u", -1, "x", &id), STORE_EINVAL);
    ck_assert_int_eq(store_task_create(fx_store, "7", 0, "x", &id), STORE_EINVAL);
    ck_assert_int_eq(store_task_create(fx_store, "", 0, "x", &id), STORE_EINVAL);
    ck_assert_int_eq(id, -5);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM tasks"), 1);
    ck_assert_int_eq(store_task_find(fx_store, "t", &t), STORE_OK);
    ck_assert_str_eq(t.def, "{\"kind\":\"x\"}");
    store_task_clear(&t);
}
END_TEST

START_TEST(delete_in_use_by_active_jobs)
{
    int64_t ds = fx_dataset("d", 3, 2);
    int64_t ta = fx_task("a", ds), tb = fx_task("b", ds);
    int64_t both[] = {ta, tb};
    int64_t j1 = fx_job("j1", 0, both, 2);
    int64_t j2 = fx_job("j2", 0, &tb, 1);

    ck_assert_int_eq(store_task_delete(fx_store, ta), STORE_EINUSE); /* j1 queued */
    ck_assert_int_eq(store_job_set_state(fx_store, j1, "running", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_task_delete(fx_store, ta), STORE_EINUSE); /* j1 running */
    ck_assert_int_eq(store_job_set_state(fx_store, j1, "succeeded", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_task_delete(fx_store, ta), STORE_OK); /* j1 finished */
    ck_assert_int_eq(fx_int("SELECT count(*) FROM job_tasks WHERE task_id = 1"), 0);

    ck_assert_int_eq(store_task_delete(fx_store, tb), STORE_EINUSE); /* j2 still queued */
    ck_assert_int_eq(fx_int("SELECT count(*) FROM tasks"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM job_tasks"), 2);
    ck_assert_int_eq(store_job_set_state(fx_store, j2, "cancelled", NULL, NULL), STORE_OK);
    ck_assert_int_eq(store_task_delete(fx_store, tb), STORE_OK);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM job_tasks"), 0);
    ck_assert_int_eq(store_dataset_delete(fx_store, ds), STORE_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_tasks");
    TCase *tc = fx_tcase("tasks");
    tcase_add_test(tc, create_get_find_list_delete);
    tcase_add_test(tc, duplicate_and_bad_references);
    tcase_add_test(tc, delete_in_use_by_active_jobs);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
