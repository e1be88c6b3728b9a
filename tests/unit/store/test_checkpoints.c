/*
 * tests/unit/store/test_checkpoints.c — checkpoint records: add, list
 * oldest first, latest (highest step), delete.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

START_TEST(add_list_latest_delete)
{
    int64_t job = fx_job("j", 0, NULL, 0), other = fx_job("k", 0, NULL, 0);
    int64_t c100 = 0, c200 = 0, c300 = 0, ck = -5;
    store_checkpoint c = {0}, *list = NULL;
    size_t n = 0;

    ck_assert_int_eq(store_checkpoint_latest(fx_store, job, &c), STORE_ENOTFOUND);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 100, "/d/j-100.st", 1000, &c100),
                     STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 200, "/d/j-200.st", 2000, &c200),
                     STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, other, 999, "/d/k.st", 1, &ck), STORE_OK);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 300, "/d/j-300.st", 3000, &c300),
                     STORE_OK);

    ck_assert_int_eq(store_checkpoint_list(fx_store, job, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(list[0].id, c100);
    ck_assert_int_eq(list[0].job_id, job);
    ck_assert_int_eq(list[0].step, 100);
    ck_assert_str_eq(list[0].path, "/d/j-100.st");
    ck_assert_int_eq(list[0].bytes, 1000);
    fx_assert_timestamp(list[0].created_at);
    ck_assert_int_eq(list[2].id, c300);
    store_checkpoint_list_free(list, n);
    store_checkpoint_list_free(NULL, 0);

    ck_assert_int_eq(store_checkpoint_latest(fx_store, job, &c), STORE_OK);
    ck_assert_int_eq(c.id, c300);
    ck_assert_int_eq(c.step, 300);
    ck_assert_str_eq(c.path, "/d/j-300.st");
    store_checkpoint_clear(&c);
    store_checkpoint_clear(NULL);

    ck_assert_int_eq(store_checkpoint_delete(fx_store, c300), STORE_OK);
    ck_assert_int_eq(store_checkpoint_delete(fx_store, c300), STORE_ENOTFOUND);
    ck_assert_int_eq(store_checkpoint_latest(fx_store, job, &c), STORE_OK);
    ck_assert_int_eq(c.id, c200);
    store_checkpoint_clear(&c);
    ck_assert_int_eq(store_checkpoint_delete(fx_store, c100), STORE_OK);
    ck_assert_int_eq(store_checkpoint_list(fx_store, job, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(list[0].id, c200);
    store_checkpoint_list_free(list, n);
    ck_assert_int_eq(store_checkpoint_list(fx_store, other, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    store_checkpoint_list_free(list, n);
}
END_TEST

START_TEST(errors)
{
    int64_t job = fx_job("j", 0, NULL, 0), id = -5;
    store_checkpoint c = {0}, *list = NULL;
    size_t n = 0;

    ck_assert_int_eq(store_checkpoint_add(fx_store, job + 1, 1, "/p", 1, &id), STORE_ENOTFOUND);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 1, NULL, 1, &id), STORE_EINVAL);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, -1, "/p", 1, &id), STORE_EINVAL);
    ck_assert_int_eq(store_checkpoint_add(fx_store, job, 1, "/p", -1, &id), STORE_EINVAL);
    ck_assert_int_eq(id, -5);
    ck_assert_int_eq(store_checkpoint_list(fx_store, job + 1, &list, &n), STORE_ENOTFOUND);
    ck_assert_int_eq(store_checkpoint_latest(fx_store, job + 1, &c), STORE_ENOTFOUND);
    ck_assert_ptr_null(c.path);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM checkpoints"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_checkpoints");
    TCase *tc = fx_tcase("checkpoints");
    tcase_add_test(tc, add_list_latest_delete);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
