/*
 * engine/episodes.c — the episode sampler and the sinusoid generator of
 * episodes.h.
 *
 * Rows are grouped by class once (a counting sort), so an episode costs
 * O(ways · (shots+queries)²) at worst: Floyd's algorithm picks m distinct
 * indices out of n with exactly m draws and no state, then a Fisher–Yates
 * pass randomises their order (Floyd's output order is not uniform, and
 * the order decides which rows are support and which query).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/episodes.h"

struct eng_episodes {
    int ways, shots, queries;
    int n_elig;
    int *elig;        /* [n_elig] original class ids */
    size_t *start;    /* [n_elig + 1] offsets into rows */
    uint32_t *rows;   /* rows of eligible classes, grouped, ascending */
    uint32_t *pick;   /* scratch [max(ways, shots+queries)] */
};

int eng_episodes_new(const int *label, size_t n_rows, int n_classes, const unsigned char *allowed,
                     int ways, int shots, int queries, eng_episodes **out)
{
    if (!label || !out || n_classes < 1 || ways < 1 || shots < 1 || queries < 0 ||
        n_rows > UINT32_MAX)
        return ENG_EINVAL;
    for (size_t i = 0; i < n_rows; i++)
        if (label[i] >= n_classes)
            return ENG_EINVAL;
    int rc = ENG_ENOMEM;
    size_t *count = calloc((size_t)n_classes, sizeof *count);
    eng_episodes *e = calloc(1, sizeof *e);
    if (!count || !e)
        goto fail;
    e->ways = ways;
    e->shots = shots;
    e->queries = queries;
    for (size_t i = 0; i < n_rows; i++)
        if (label[i] >= 0 && (!allowed || allowed[label[i]]))
            count[label[i]]++;
    size_t need = (size_t)shots + (size_t)queries, total = 0;
    for (int c = 0; c < n_classes; c++)
        if (count[c] >= need) {
            e->n_elig++;
            total += count[c];
        }
    size_t npick = (size_t)(ways > shots + queries ? ways : shots + queries);
    e->elig = malloc(((size_t)e->n_elig + 1) * sizeof *e->elig);
    e->start = malloc(((size_t)e->n_elig + 1) * sizeof *e->start);
    e->rows = malloc((total + 1) * sizeof *e->rows);
    e->pick = malloc(npick * sizeof *e->pick);
    if (!e->elig || !e->start || !e->rows || !e->pick)
        goto fail;
    /* count[c] becomes the write position of eligible class c (SIZE_MAX: not eligible) */
    size_t pos = 0;
    int k = 0;
    for (int c = 0; c < n_classes; c++) {
        if (count[c] >= need) {
            e->elig[k] = c;
            e->start[k++] = pos;
            size_t n = count[c];
            count[c] = pos;
            pos += n;
        } else {
            count[c] = SIZE_MAX;
        }
    }
    e->start[k] = pos;
    for (size_t i = 0; i < n_rows; i++)
        if (label[i] >= 0 && (!allowed || allowed[label[i]]) && count[label[i]] != SIZE_MAX)
            e->rows[count[label[i]]++] = (uint32_t)i;
    free(count);
    *out = e;
    return ENG_OK;
fail:
    free(count);
    eng_episodes_free(e);
    return rc;
}

void eng_episodes_free(eng_episodes *e)
{
    if (!e)
        return;
    free(e->elig);
    free(e->start);
    free(e->rows);
    free(e->pick);
    free(e);
}

int eng_episodes_eligible(const eng_episodes *e)
{
    return e->n_elig;
}

/* m distinct values of 0..n−1 in uniformly random order (m <= n). */
static void pick_distinct(eng_rng *rng, uint32_t n, uint32_t m, uint32_t *out)
{
    uint32_t cnt = 0;
    for (uint32_t j = n - m; j < n; j++) {
        uint32_t t = (uint32_t)eng_rng_below(rng, (uint64_t)j + 1);
        int seen = 0;
        for (uint32_t i = 0; i < cnt && !seen; i++)
            seen = out[i] == t;
        out[cnt++] = seen ? j : t;
    }
    eng_rng_shuffle(rng, out, m);
}

int eng_episodes_sample(const eng_episodes *e, eng_rng *rng, uint32_t *support_rows,
                        eng_real *support_y, uint32_t *query_rows, eng_real *query_y,
                        int *classes)
{
    if (!e || !rng || !support_rows || (e->queries > 0 && !query_rows) || e->n_elig < e->ways)
        return ENG_EINVAL;
    uint32_t *pick = e->pick;
    /* classes first, kept in the output arrays' place: draw all, then rows */
    pick_distinct(rng, (uint32_t)e->n_elig, (uint32_t)e->ways, pick);
    /* stash the drawn class slots in support_rows' first entries' stead:
     * copy them out before pick is reused for rows */
    int ways = e->ways, K = e->shots, Q = e->queries;
    for (int j = 0; j < ways; j++)
        support_rows[(size_t)j * K] = pick[j];
    for (int j = 0; j < ways; j++) {
        uint32_t slot = support_rows[(size_t)j * K];
        size_t lo = e->start[slot], n = e->start[slot + 1] - lo;
        if (classes)
            classes[j] = e->elig[slot];
        pick_distinct(rng, (uint32_t)n, (uint32_t)(K + Q), pick);
        for (int i = 0; i < K; i++) {
            support_rows[(size_t)j * K + i] = e->rows[lo + pick[i]];
            if (support_y)
                support_y[(size_t)j * K + i] = (eng_real)j;
        }
        for (int i = 0; i < Q; i++) {
            query_rows[(size_t)j * Q + i] = e->rows[lo + pick[K + i]];
            if (query_y)
                query_y[(size_t)j * Q + i] = (eng_real)j;
        }
    }
    return ENG_OK;
}

int eng_split_classes(int n_classes, double test_fraction, eng_rng *rng, unsigned char *is_test)
{
    if (n_classes < 2 || !rng || !is_test || !(test_fraction >= 0 && test_fraction <= 1))
        return ENG_EINVAL;
    long nt = lround(test_fraction * n_classes);
    if (nt < 1)
        nt = 1;
    if (nt > n_classes - 1)
        nt = n_classes - 1;
    memset(is_test, 0, (size_t)n_classes);
    /* Floyd again, inline: nt distinct classes */
    for (long j = n_classes - nt; j < n_classes; j++) {
        long t = (long)eng_rng_below(rng, (uint64_t)j + 1);
        if (is_test[t])
            is_test[j] = 1;
        else
            is_test[t] = 1;
    }
    return ENG_OK;
}

void eng_sinusoid_task(eng_rng *rng, double *amplitude, double *phase)
{
    *amplitude = 0.1 + 4.9 * eng_rng_uniform(rng);
    *phase = M_PI * eng_rng_uniform(rng);
}

void eng_sinusoid_points(eng_rng *rng, double amplitude, double phase, int n, eng_real *x,
                         eng_real *y)
{
    for (int i = 0; i < n; i++) {
        double xi = -5.0 + 10.0 * eng_rng_uniform(rng);
        x[i] = (eng_real)xi;
        y[i] = (eng_real)(amplitude * sin(xi - phase));
    }
}
