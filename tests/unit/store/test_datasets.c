/*
 * tests/unit/store/test_datasets.c — datasets: create/get/find/list/delete,
 * bit-exact round trips through float32 chunks with reads that straddle
 * chunk boundaries, unique names, and refusal to delete a dataset in use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/store/fixture.h"

#define ROWS 10000
#define COLS 3

/* Arbitrary bit patterns (NaN payloads, -0, denormals included), so
 * "round-trips" means bit for bit, not merely equal as floats. */
static float *pattern(int64_t rows, int cols)
{
    float *d = malloc((size_t)(rows * cols) * sizeof *d);
    uint32_t x = 2463534242u, i;
    ck_assert_ptr_nonnull(d);
    for (i = 0; i < (uint32_t)(rows * cols); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        memcpy(&d[i], &x, sizeof x);
    }
    return d;
}

START_TEST(create_get_find_list_delete)
{
    store_dataset d = {0}, *list = NULL;
    size_t n = 99;
    char key[32];
    int64_t a = 0, b = 0;
    const float two[] = {1, 2, 3, 4};

    ck_assert_int_eq(store_dataset_create(fx_store, "iris", "{\"columns\":[]}", 2, 2, two, &a),
                     STORE_OK);
    ck_assert_int_eq(store_dataset_create(fx_store, "wine", NULL, 0, 5, NULL, &b), STORE_OK);
    ck_assert_int_gt(a, 0);
    ck_assert_int_gt(b, a);

    ck_assert_int_eq(store_dataset_get(fx_store, a, &d), STORE_OK);
    ck_assert_int_eq(d.id, a);
    ck_assert_str_eq(d.name, "iris");
    ck_assert_int_eq(d.rows, 2);
    ck_assert_int_eq(d.cols, 2);
    ck_assert_str_eq(d.meta, "{\"columns\":[]}");
    ck_assert_int_eq(d.bytes, 2 * 2 * 4);
    fx_assert_timestamp(d.created_at);
    store_dataset_clear(&d);
    ck_assert_ptr_null(d.name);
    store_dataset_clear(NULL);

    ck_assert_int_eq(store_dataset_find(fx_store, "wine", &d), STORE_OK);
    ck_assert_int_eq(d.id, b);
    ck_assert_ptr_null(d.meta);
    ck_assert_int_eq(d.rows, 0);
    ck_assert_int_eq(d.bytes, 0);
    store_dataset_clear(&d);
    snprintf(key, sizeof key, "%lld", (long long)a);
    ck_assert_int_eq(store_dataset_find(fx_store, key, &d), STORE_OK);
    ck_assert_str_eq(d.name, "iris");
    store_dataset_clear(&d);

    /* Not found leaves the out-parameter alone. */
    d.id = 12345;
    ck_assert_int_eq(store_dataset_find(fx_store, "nope", &d), STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_find(fx_store, "999", &d), STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_find(fx_store, "99999999999999999999999", &d),
                     STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_get(fx_store, 999, &d), STORE_ENOTFOUND);
    ck_assert_int_eq(d.id, 12345);
    ck_assert_ptr_null(d.name);

    ck_assert_int_eq(store_dataset_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(list[0].name, "iris");
    ck_assert_str_eq(list[1].name, "wine");
    store_dataset_list_free(list, n);
    store_dataset_list_free(NULL, 0);

    ck_assert_int_eq(store_dataset_delete(fx_store, a), STORE_OK);
    ck_assert_int_eq(store_dataset_get(fx_store, a, &d), STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_delete(fx_store, a), STORE_ENOTFOUND);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 0);
    ck_assert_int_eq(store_dataset_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    store_dataset_list_free(list, n);

    /* Ids are never reused, even for the newest row. */
    ck_assert_int_eq(store_dataset_delete(fx_store, b), STORE_OK);
    ck_assert_int_eq(store_dataset_create(fx_store, "again", NULL, 0, 1, NULL, &a), STORE_OK);
    ck_assert_int_gt(a, b);
    ck_assert_int_eq(store_dataset_list(fx_store, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    store_dataset_list_free(list, n);
}
END_TEST

START_TEST(round_trip_bit_exact)
{
    static const struct {
        int64_t offset, limit, expect;
    } reads[] = {
        {0, ROWS, ROWS},         /* everything */
        {0, 20000, ROWS},        /* clipped */
        {4090, 10, 10},          /* straddles chunk 0 | 1 */
        {4095, 2, 2},            /* last row of 0, first of 1 */
        {4096, 4096, 4096},      /* exactly chunk 1 */
        {8191, 2, 2},            /* straddles 1 | 2 */
        {4000, 5000, 5000},      /* spans three chunks */
        {8190, 5000, ROWS - 8190}, /* into the short last chunk, clipped */
        {9999, 10, 1},
        {ROWS, 5, 0},
        {50000, 1, 0},
        {123, 0, 0},
    };
    float *data = pattern(ROWS, COLS);
    float *out = malloc((size_t)(20000 * COLS) * sizeof *out);
    store_dataset d = {0};
    int64_t id = 0, n;
    size_t i;

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(store_dataset_create(fx_store, "big", "{}", ROWS, COLS, data, &id), STORE_OK);
    ck_assert_int_eq(store_dataset_get(fx_store, id, &d), STORE_OK);
    ck_assert_int_eq(d.rows, ROWS);
    ck_assert_int_eq(d.cols, COLS);
    ck_assert_int_eq(d.bytes, (int64_t)ROWS * COLS * 4);
    store_dataset_clear(&d);
    /* 4096 + 4096 + 1808 rows */
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 3);
    ck_assert_int_eq(fx_int("SELECT n_rows FROM dataset_chunks WHERE seq = 2"), ROWS - 8192);
    ck_assert_int_eq(fx_int("SELECT sum(length(data)) FROM dataset_chunks"),
                     (int64_t)ROWS * COLS * 4);

    for (i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        n = -1;
        memset(out, 0xAB, (size_t)(20000 * COLS) * sizeof *out);
        ck_assert_int_eq(
            store_dataset_read(fx_store, id, reads[i].offset, reads[i].limit, out, &n), STORE_OK);
        ck_assert_msg(n == reads[i].expect, "read %zu: %lld rows, want %lld", i, (long long)n,
                      (long long)reads[i].expect);
        ck_assert_msg(memcmp(out, data + reads[i].offset * COLS, (size_t)(n * COLS) * 4) == 0,
                      "read %zu differs", i);
    }
    /* Survives reopening too. */
    fx_reopen();
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, ROWS, out, &n), STORE_OK);
    ck_assert_int_eq(n, ROWS);
    ck_assert_int_eq(memcmp(out, data, sizeof(float) * ROWS * COLS), 0);

    n = 77;
    ck_assert_int_eq(store_dataset_read(fx_store, id + 1, 0, 1, out, &n), STORE_ENOTFOUND);
    ck_assert_int_eq(store_dataset_read(fx_store, id, -1, 1, out, &n), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, -1, out, &n), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, 1, NULL, &n), STORE_EINVAL);
    ck_assert_int_eq(n, 77);
    free(data);
    free(out);
}
END_TEST

START_TEST(duplicate_name_changes_nothing)
{
    float *data = pattern(5000, 2);
    store_dataset d = {0};
    int64_t id = 0, id2 = -5;

    ck_assert_int_eq(store_dataset_create(fx_store, "dup", "first", 5000, 2, data, &id), STORE_OK);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 2);
    ck_assert_int_eq(store_dataset_create(fx_store, "dup", "second", 5000, 2, data, &id2),
                     STORE_EEXISTS);
    ck_assert_int_eq(id2, -5);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 1);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 2);
    ck_assert_int_eq(store_dataset_find(fx_store, "dup", &d), STORE_OK);
    ck_assert_str_eq(d.meta, "first");
    store_dataset_clear(&d);
    free(data);
}
END_TEST

START_TEST(bad_arguments)
{
    const float one[] = {1};
    int64_t id = -5;
    ck_assert_int_eq(store_dataset_create(NULL, "x", NULL, 1, 1, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, NULL, NULL, 1, 1, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "", NULL, 1, 1, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "42", NULL, 1, 1, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "x", NULL, -1, 1, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "x", NULL, 1, 0, one, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "x", NULL, 1, 1, NULL, &id), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "x", NULL, 1, 1, one, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_dataset_create(fx_store, "x", NULL, 1, 1 << 30, one, &id),
                     STORE_EINVAL);
    ck_assert_int_eq(id, -5);
    ck_assert_int_eq(store_dataset_find(fx_store, NULL, NULL), STORE_EINVAL);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM datasets"), 0);
}
END_TEST

START_TEST(delete_in_use)
{
    int64_t ds = fx_dataset("d", 10, 2);
    int64_t task = fx_task("t", ds);
    store_dataset d = {0};

    ck_assert_int_eq(store_dataset_delete(fx_store, ds), STORE_EINUSE);
    ck_assert_int_eq(store_dataset_get(fx_store, ds, &d), STORE_OK);
    ck_assert_int_eq(d.rows, 10);
    store_dataset_clear(&d);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 1);
    ck_assert_int_eq(store_task_delete(fx_store, task), STORE_OK);
    ck_assert_int_eq(store_dataset_delete(fx_store, ds), STORE_OK);
    ck_assert_int_eq(fx_int("SELECT count(*) FROM dataset_chunks"), 0);
}
END_TEST

START_TEST(corrupt_chunks_are_detected)
{
    int64_t id = fx_dataset("d", 9000, 1), n = -1;
    float out[9000];

    fx_exec("UPDATE dataset_chunks SET data = x'00000000' WHERE seq = 1");
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, 10, out, &n), STORE_OK); /* chunk 0 */
    ck_assert_int_eq(n, 10);
    n = -1;
    ck_assert_int_eq(store_dataset_read(fx_store, id, 4000, 200, out, &n), STORE_EIO);
    fx_exec("DELETE FROM dataset_chunks WHERE seq = 1");
    ck_assert_int_eq(store_dataset_read(fx_store, id, 0, 9000, out, &n), STORE_EIO);
    ck_assert_int_eq(n, -1);
    ck_assert_int_eq(store_dataset_read(fx_store, id, 8500, 10, out, &n), STORE_OK); /* chunk 2 */
    ck_assert(out[0] == 8500.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_datasets");
    TCase *tc = fx_tcase("datasets");
    tcase_add_test(tc, create_get_find_list_delete);
    tcase_add_test(tc, round_trip_bit_exact);
    tcase_add_test(tc, duplicate_name_changes_nothing);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, delete_in_use);
    tcase_add_test(tc, corrupt_chunks_are_detected);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
