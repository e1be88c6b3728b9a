/*
 * engine/episodes.h — where meta-learning's tasks come from.
 *
 * 1. N-way K-shot episodes from a labelled dataset. The sampler is built
 *    once over the rows of the classes allowed (meta-train, or meta-test),
 *    keeping only classes with at least K+Q rows. An episode draws N of
 *    those classes, then K support and Q query rows from each, all distinct
 *    (support and query never share a row), with labels remapped to 0..N−1
 *    in the order the classes were drawn. A draw is a pure function of the
 *    rng state (Floyd's sampling, no state kept in the sampler), so an
 *    episode can be regenerated from a seed alone: runs resume exactly and
 *    every job with the same evaluation seed sees the same test episodes.
 *
 * 2. The sinusoid family of the MAML paper (Finn et al. 2017, §5.1):
 *    y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[−5, 5].
 *
 * Only the seeded eng_rng is used. Nothing allocates after
 * eng_episodes_new.
 */
#ifndef ENG_EPISODES_H
#define ENG_EPISODES_H

#include <stddef.h>
#include <stdint.h>

#include "engine/rng.h"
#include "engine/types.h"

typedef struct eng_episodes eng_episodes;

/* label[i] in 0..n_classes−1 for rows 0..n_rows−1 (a negative label marks a
 * row unusable); allowed[c] != 0 for the classes this sampler may draw
 * (NULL = all). *out is new. ENG_EINVAL for bad sizes (ways < 1, shots < 1,
 * queries < 0, a label >= n_classes), ENG_ENOMEM. Creating a sampler with
 * fewer than `ways` eligible classes succeeds; check eng_episodes_eligible. */
int eng_episodes_new(const int *label, size_t n_rows, int n_classes, const unsigned char *allowed,
                     int ways, int shots, int queries, eng_episodes **out);
void eng_episodes_free(eng_episodes *e); /* NULL is fine */

/* Number of classes with at least shots+queries rows among the allowed. */
int eng_episodes_eligible(const eng_episodes *e);

/* Draws one episode. support_rows[ways*shots] and query_rows[ways*queries]
 * receive dataset row indices, grouped by episode class (class j's support
 * rows are support_rows[j*shots .. j*shots+shots−1]); support_y/query_y
 * (may be NULL) the remapped labels 0..ways−1 as reals; classes (may be
 * NULL) [ways] the original class of each episode label. ENG_EINVAL if
 * fewer than `ways` classes are eligible. */
int eng_episodes_sample(const eng_episodes *e, eng_rng *rng, uint32_t *support_rows,
                        eng_real *support_y, uint32_t *query_rows, eng_real *query_y,
                        int *classes);

/* Splits classes 0..n_classes−1 into meta-train (mask 0) and meta-test
 * (mask 1): round(test_fraction * n_classes) test classes, at least 1 and
 * at most n_classes−1, chosen by rng. ENG_EINVAL if n_classes < 2. */
int eng_split_classes(int n_classes, double test_fraction, eng_rng *rng, unsigned char *is_test);

/* One sinusoid task: amplitude and phase. */
void eng_sinusoid_task(eng_rng *rng, double *amplitude, double *phase);
/* n points of the task: x ~ U[−5, 5], y = A sin(x − φ). */
void eng_sinusoid_points(eng_rng *rng, double amplitude, double phase, int n, eng_real *x,
                         eng_real *y);

#endif
