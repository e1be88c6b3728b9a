/*
 * engine/dropout.c — inverted dropout (Srivastava et al. 2014): during
 * training each unit is kept with probability q = 1 − p and scaled by 1/q,
 * so the expected activation is unchanged and inference uses the weights as
 * they are (no dropout, no rescaling).
 *
 * The mask is drawn from the caller's eng_rng — never a global generator —
 * so a run is reproducible from its seed, and a resumed job can re-derive
 * the generator of any step. Each 64-bit draw decides two units (32 bits
 * each, compared against round(q·2³²)); the mask is stored as the factor
 * 0 or 1/q so the backward is one multiply.
 */
#include "engine/eng__internal.h"

void eng__dropout_forward(double p, eng_rng *rng, const eng_real *h, size_t count,
                          eng_real *mask, eng_real *a)
{
    const double q = 1 - p;
    const double t = q * 4294967296.0;
    const uint64_t thresh = t >= 4294967296.0 ? 4294967296ULL : (uint64_t)t;
    const eng_real scale = (eng_real)(1 / q);
    size_t i = 0;
    for (; i + 1 < count; i += 2) {
        uint64_t r = eng_rng_next(rng);
        mask[i] = (r & 0xffffffffULL) < thresh ? scale : 0;
        mask[i + 1] = (r >> 32) < thresh ? scale : 0;
    }
    if (i < count)
        mask[i] = (eng_rng_next(rng) & 0xffffffffULL) < thresh ? scale : 0;
    for (size_t j = 0; j < count; j++)
        a[j] = h[j] * mask[j];
}
