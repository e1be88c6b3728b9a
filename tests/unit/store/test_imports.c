/*
 * tests/unit/store/test_imports.c — imported model records: add (names
 * unique, optional, never all digits), find by id or name, list oldest
 * first, kept across a reopen.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

START_TEST(add_find_list)
{
    int64_t a = 0, b = 0, x = -1;
    store_import m = {0}, *list = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_import_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(store_import_add(fx_store, "resnet", "/d/import-1.st", 4096, "{\"k\":1}", &a),
                     STORE_OK);
    ck_assert_int_eq(store_import_add(fx_store, NULL, "/d/import-2.st", 8, NULL, &b), STORE_OK);
    ck_assert_int_gt(b, a);
    ck_assert_int_eq(store_import_add(fx_store, "resnet", "/d/x.st", 1, NULL, &x), STORE_EEXISTS);
    ck_assert_int_eq(store_import_add(fx_store, "123", "/d/x.st", 1, NULL, &x), STORE_EINVAL);
    ck_assert_int_eq(store_import_add(fx_store, "y", "", 1, NULL, &x), STORE_EINVAL);
    ck_assert_int_eq(x, -1);

    fx_reopen();
    ck_assert_int_eq(store_import_find(fx_store, "resnet", &m), STORE_OK);
    ck_assert_int_eq(m.id, a);
    ck_assert_str_eq(m.path, "/d/import-1.st");
    ck_assert_int_eq(m.bytes, 4096);
    ck_assert_str_eq(m.meta, "{\"k\":1}");
    fx_assert_timestamp(m.created_at);
    store_import_clear(&m);
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)b);
    ck_assert_int_eq(store_import_find(fx_store, key, &m), STORE_OK);
    ck_assert_ptr_null(m.name);
    ck_assert_ptr_null(m.meta);
    store_import_clear(&m);
    store_import_clear(NULL);
    ck_assert_int_eq(store_import_find(fx_store, "nope", &m), STORE_ENOTFOUND);
    ck_assert_int_eq(store_import_find(fx_store, "999", &m), STORE_ENOTFOUND);

    ck_assert_int_eq(store_import_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(list[0].id, a);
    ck_assert_int_eq(list[1].id, b);
    store_import_list_free(list, n);
    store_import_list_free(NULL, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_imports");
    TCase *tc = fx_tcase("imports");
    tcase_add_test(tc, add_find_list);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
