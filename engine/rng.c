/*
 * engine/rng.c — xoshiro256** (Blackman & Vigna), seeded through splitmix64.
 *
 * Chosen because the whole state is four u64 words (a checkpoint stores it
 * and a resumed job continues the exact sequence), it is fast, and it passes
 * BigCrush. splitmix64 spreads any seed, including 0, over the state so it is
 * never all zero. Box–Muller keeps no cached second value on purpose: the
 * state stays just s[], so save/restore needs nothing else.
 */
#include <math.h>

#include "engine/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void eng_rng_seed(eng_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t eng_rng_next(eng_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double eng_rng_uniform(eng_rng *r)
{
    return (double)(eng_rng_next(r) >> 11) * 0x1.0p-53;
}

double eng_rng_normal(eng_rng *r)
{
    /* u1 in (0, 1] so the log is finite. */
    double u1 = 1.0 - eng_rng_uniform(r);
    double u2 = eng_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t eng_rng_below(eng_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Reject the lowest 2^64 mod n values so every residue is equally likely. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = eng_rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

void eng_rng_shuffle(eng_rng *r, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)eng_rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
