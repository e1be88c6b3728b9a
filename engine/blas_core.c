/* engine/blas_core.c — see blas_core.h. */
#include <cblas.h>
#include <stddef.h>
#include <strings.h>

#include "engine/blas_core.h"

eng_cpu_features eng_cpu_probe(void)
{
    eng_cpu_features f = {0};
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2") != 0;
    f.fma = __builtin_cpu_supports("fma") != 0;
    f.avx512f = __builtin_cpu_supports("avx512f") != 0;
    f.avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    f.avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    f.avx512dq = __builtin_cpu_supports("avx512dq") != 0;
    f.avx512cd = __builtin_cpu_supports("avx512cd") != 0;
#endif
    return f;
}

const char *eng_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name && *name ? name : "unknown";
}

const char *eng_blas_core_advice(const char *current, eng_cpu_features cpu)
{
    /* OpenBLAS's x86-64 kernel sets without AVX2: what it falls back to
     * for a CPU model it does not know (Prescott, mostly), or picks by a
     * family rule that predates the model. */
    /* OpenBLAS's x86-64 kernel sets without AVX2. OpenBLAS falls back to
     * one of these for a CPU model it does not know (Prescott, mostly);
     * for a CPU it does know that has AVX2, it never picks one, unless the
     * OS does not save the wide registers, which eng_cpu_probe also sees. */
    static const char *const older[] = {"Prescott", "Core2",  "Penryn", "Dunnington",
                                        "Nehalem",  "Atom",   "Sandybridge", "Opteron",
                                        "Opteron_SSE3", "Barcelona"};
    if (!current)
        return NULL;
    int fallback = 0;
    for (size_t i = 0; i < sizeof older / sizeof older[0]; i++)
        if (strcasecmp(current, older[i]) == 0)
            fallback = 1;
    if (!fallback)
        return NULL;
    if (cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq && cpu.avx512cd)
        return "SkylakeX";
    if (cpu.avx2 && cpu.fma)
        return "Haswell";
    return NULL;
}
