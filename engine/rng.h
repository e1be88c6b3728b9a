/*
 * engine/rng.h — a seeded pseudo-random generator (xoshiro256**, seeded
 * through splitmix64). Every job owns one; there is no global RNG anywhere.
 * The state is four u64 words so it can be saved in a checkpoint and
 * restored exactly. Not thread-safe: one generator per thread/job.
 */
#ifndef ENG_RNG_H
#define ENG_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} eng_rng;

void eng_rng_seed(eng_rng *r, uint64_t seed);
uint64_t eng_rng_next(eng_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double eng_rng_uniform(eng_rng *r);
/* Standard normal (Box–Muller; no cached second value, so state is just s[]). */
double eng_rng_normal(eng_rng *r);
/* Uniform integer in [0, n), unbiased (rejection). n > 0. */
uint64_t eng_rng_below(eng_rng *r, uint64_t n);
/* Fisher–Yates shuffle of idx[0..n). */
void eng_rng_shuffle(eng_rng *r, uint32_t *idx, size_t n);

#endif
