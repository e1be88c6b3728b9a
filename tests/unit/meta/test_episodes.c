/*
 * tests/unit/meta/test_episodes.c — the N-way K-shot sampler and the class
 * split: exact counts, no support/query overlap, labels remapped, only
 * allowed and eligible classes, determinism per seed; the sinusoid family's
 * ranges.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/episodes.h"
#include "helpers.h"

#define C 12
#define W 4
#define K 3
#define Q 5

/* class c has 4 + 2c rows (so classes 0 and 1 have fewer than K+Q = 8),
 * rows interleaved; one row with label -1 */
static int *make_labels(size_t *n)
{
    size_t total = 1;
    for (int c = 0; c < C; c++)
        total += 4 + 2 * (size_t)c;
    int *lab = malloc(total * sizeof *lab);
    size_t k = 0;
    int left[C];
    for (int c = 0; c < C; c++)
        left[c] = 4 + 2 * c;
    lab[k++] = -1;
    while (k < total)
        for (int c = 0; c < C; c++)
            if (left[c]-- > 0)
                lab[k++] = c;
    *n = total;
    return lab;
}

START_TEST(episode_invariants)
{
    size_t n;
    int *lab = make_labels(&n);
    unsigned char allowed[C];
    for (int c = 0; c < C; c++)
        allowed[c] = c != 5 && c != 9; /* 5, 9: meta-test */
    eng_episodes *e;
    ck_assert_int_eq(eng_episodes_new(lab, n, C, allowed, W, K, Q, &e), ENG_OK);
    ck_assert_int_eq(eng_episodes_eligible(e), C - 2 - 2); /* minus 0, 1 (too small), 5, 9 */
    eng_rng r;
    eng_rng_seed(&r, 5);
    int seen_class[C] = {0};
    for (int ep = 0; ep < 300; ep++) {
        uint32_t s[W * K], q[W * Q];
        eng_real sy[W * K], qy[W * Q];
        int cls[W];
        ck_assert_int_eq(eng_episodes_sample(e, &r, s, sy, q, qy, cls), ENG_OK);
        for (int j = 0; j < W; j++) {
            ck_assert(allowed[cls[j]]);
            ck_assert_int_ge(cls[j], 2);
            seen_class[cls[j]]++;
            for (int i = 0; i < j; i++)
                ck_assert_int_ne(cls[i], cls[j]);
            for (int i = 0; i < K; i++) {
                ck_assert_int_eq(lab[s[j * K + i]], cls[j]);
                ck_assert(sy[j * K + i] == (eng_real)j);
            }
            for (int i = 0; i < Q; i++) {
                ck_assert_int_eq(lab[q[j * Q + i]], cls[j]);
                ck_assert(qy[j * Q + i] == (eng_real)j);
            }
        }
        /* all W*(K+Q) rows distinct: no support/query overlap, no repeats */
        uint32_t all[W * (K + Q)];
        memcpy(all, s, sizeof s);
        memcpy(all + W * K, q, sizeof q);
        for (int a = 0; a < W * (K + Q); a++)
            for (int b = 0; b < a; b++)
                ck_assert_uint_ne(all[a], all[b]);
    }
    for (int c = 2; c < C; c++)
        if (allowed[c])
            ck_assert_int_gt(seen_class[c], 0);
    eng_episodes_free(e);
    free(lab);
}
END_TEST

START_TEST(episodes_deterministic)
{
    size_t n;
    int *lab = make_labels(&n);
    eng_episodes *e;
    ck_assert_int_eq(eng_episodes_new(lab, n, C, NULL, W, K, Q, &e), ENG_OK);
    uint32_t s1[W * K], q1[W * Q], s2[W * K], q2[W * Q];
    eng_rng a, b;
    eng_rng_seed(&a, 77);
    eng_rng_seed(&b, 77);
    for (int ep = 0; ep < 20; ep++) {
        ck_assert_int_eq(eng_episodes_sample(e, &a, s1, NULL, q1, NULL, NULL), ENG_OK);
        ck_assert_int_eq(eng_episodes_sample(e, &b, s2, NULL, q2, NULL, NULL), ENG_OK);
        ck_assert_mem_eq(s1, s2, sizeof s1);
        ck_assert_mem_eq(q1, q2, sizeof q1);
    }
    eng_rng_seed(&b, 78);
    ck_assert_int_eq(eng_episodes_sample(e, &b, s2, NULL, q2, NULL, NULL), ENG_OK);
    ck_assert(memcmp(s1, s2, sizeof s1) != 0 || memcmp(q1, q2, sizeof q1) != 0);
    eng_episodes_free(e);
    free(lab);
}
END_TEST

START_TEST(too_few_classes)
{
    size_t n;
    int *lab = make_labels(&n);
    unsigned char allowed[C] = {0};
    allowed[0] = allowed[7] = allowed[8] = 1; /* 0 too small: 2 eligible < 4 ways */
    eng_episodes *e;
    ck_assert_int_eq(eng_episodes_new(lab, n, C, allowed, W, K, Q, &e), ENG_OK);
    ck_assert_int_eq(eng_episodes_eligible(e), 2);
    uint32_t s[W * K], q[W * Q];
    eng_rng r;
    eng_rng_seed(&r, 1);
    ck_assert_int_eq(eng_episodes_sample(e, &r, s, NULL, q, NULL, NULL), ENG_EINVAL);
    eng_episodes_free(e);
    lab[3] = C; /* label out of range */
    ck_assert_int_eq(eng_episodes_new(lab, n, C, NULL, W, K, Q, &e), ENG_EINVAL);
    free(lab);
}
END_TEST

START_TEST(class_split)
{
    unsigned char a[26], b[26];
    eng_rng r1, r2;
    eng_rng_seed(&r1, 3);
    eng_rng_seed(&r2, 3);
    ck_assert_int_eq(eng_split_classes(26, 0.25, &r1, a), ENG_OK);
    ck_assert_int_eq(eng_split_classes(26, 0.25, &r2, b), ENG_OK);
    ck_assert_mem_eq(a, b, sizeof a);
    int nt = 0;
    for (int c = 0; c < 26; c++)
        nt += a[c];
    ck_assert_int_eq(nt, 7); /* round(6.5) */
    ck_assert_int_eq(eng_split_classes(2, 0.01, &r1, a), ENG_OK);
    ck_assert_int_eq(a[0] + a[1], 1);
    ck_assert_int_eq(eng_split_classes(1, 0.5, &r1, a), ENG_EINVAL);
}
END_TEST

START_TEST(sinusoid_ranges)
{
    eng_rng r;
    eng_rng_seed(&r, 9);
    for (int t = 0; t < 200; t++) {
        double A, ph;
        eng_sinusoid_task(&r, &A, &ph);
        ck_assert(A >= 0.1 && A <= 5.0);
        ck_assert(ph >= 0 && ph <= M_PI);
        eng_real x[10], y[10];
        eng_sinusoid_points(&r, A, ph, 10, x, y);
        for (int i = 0; i < 10; i++) {
            ck_assert(x[i] >= -5 && x[i] <= 5);
            ck_assert_double_le(fabs((double)y[i] - A * sin((double)x[i] - ph)), 1e-5);
        }
    }
}
END_TEST

Suite *episodes_suite(void)
{
    Suite *s = suite_create("episodes");
    TCase *tc = tcase_create("episodes");
    tcase_add_test(tc, episode_invariants);
    tcase_add_test(tc, episodes_deterministic);
    tcase_add_test(tc, too_few_classes);
    tcase_add_test(tc, class_split);
    tcase_add_test(tc, sinusoid_ranges);
    suite_add_tcase(s, tc);
    return s;
}
