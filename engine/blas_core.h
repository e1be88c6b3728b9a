/*
 * engine/blas_core.h — which OpenBLAS kernel set ("core") runs the engine's
 * sgemm, and a better one when OpenBLAS has fallen back.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: when the library loads it
 * reads CPUID and picks a kernel set by CPU family and model. A model newer
 * than the library (0.3.21 predates Sapphire and Emerald Rapids, for one) is
 * not recognised and OpenBLAS falls back to its generic SSE3 kernels
 * ("Prescott"), which run sgemm about four times slower than the AVX-512
 * kernels the same CPU can use. The choice is made before main() and can
 * only be changed by the environment variable OPENBLAS_CORETYPE at process
 * start, so the engine only advises here; the daemon acts on the advice
 * (daemon/blas_pick.c) by re-executing itself once with the variable set.
 *
 * The advice is deliberately narrow: it replaces only the fallback kernel
 * sets older than what the CPU (and the OS, which must save the wide
 * registers) supports, never a kernel set OpenBLAS chose for a CPU it knows.
 */
#ifndef ENG_BLAS_CORE_H
#define ENG_BLAS_CORE_H

/* What the CPU can run, as usable by this process (CPUID and the OS's
 * XSAVE state both agree). */
typedef struct {
    int avx2, fma;
    int avx512f, avx512bw, avx512vl, avx512dq, avx512cd;
} eng_cpu_features;

/* This machine's features (GCC's CPU probe, which checks OS support). */
eng_cpu_features eng_cpu_probe(void);

/* The kernel set the loaded OpenBLAS chose (its own name, e.g. "Prescott",
 * "Haswell", "SkylakeX"); "unknown" when the library does not say. */
const char *eng_blas_core(void);

/* The OPENBLAS_CORETYPE value to use instead of `current` on a CPU with
 * `cpu`, or NULL when `current` should stay: "SkylakeX" when the CPU has
 * AVX-512 F/BW/VL/DQ/CD, else "Haswell" when it has AVX2 and FMA, and only
 * if `current` is one of OpenBLAS's pre-AVX2 kernel sets. Pure. */
const char *eng_blas_core_advice(const char *current, eng_cpu_features cpu);

#endif
