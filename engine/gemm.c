/*
 * engine/gemm.c — eng__gemm, the matrix product of the functional MLP
 * (fnet.c): row-major C = op(A) op(B) (+ C), op = identity or transpose.
 *
 * Why not always BLAS: meta-learning runs the same small network per task,
 * and the MAML sinusoid net (1→40→40→1, 10 rows per set) makes ~30 products
 * per task of at most 10×40×40 — 16k multiply-adds, half of them with a
 * dimension of 1. At that size a BLAS call's fixed cost (argument checks,
 * kernel selection, and on some cores packing or a locked buffer pool) is
 * as large as the arithmetic. Products with M·N·K <= ENG__GEMM_SMALL run
 * here as plain C loops shaped so the compiler keeps a tile of C in vector
 * registers; larger ones go to BLAS (ENG__GEMM), which wins there.
 *
 * The loops, per form (all tiles accumulate over k in order, then add the
 * old C if beta is 1 — deterministic, no reassociation):
 *   NN, TN  "axpy" tiles: MR rows × NR columns of C held in registers; for
 *           each k, a broadcast element of A times a contiguous row of B.
 *   NT      the same after copying the needed part of B transposed into a
 *           small buffer on the stack (B is [N][K]; its columns are not
 *           contiguous), one panel of NR columns at a time, so the copy is
 *           amortised over all M rows.
 * The kernels are compiled for x86-64-v3 (AVX2+FMA), x86-64-v4 and the
 * baseline with GCC's target_clones (chosen once at load time by the CPU,
 * so one binary runs anywhere); -ffp-contract=fast for this file lets the
 * multiply-adds fuse, which changes the last bit against BLAS but not the
 * determinism: the same machine gives bit-identical results every run.
 */
#include <string.h>

#include "engine/eng__internal.h"

#define CLONES ENG__CLONES
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#define V ((int)(32 / sizeof(eng_real))) /* elements of a 256-bit vector */
#define NR (2 * V)                       /* tile columns: two vectors */
#define MR 4                             /* tile rows */
#define MR5 5 /* tile rows when M is a multiple of 5 but not of 4 (10 rows: 5 + 5, not 4 + 4 + 2) */
#define KT 64                            /* NT: rows of the transposed panel */

#if defined(__GNUC__)
/* GCC/Clang generic vectors (not intrinsics: they lower to whatever the
 * clone's instruction set has). Loads and stores go through memcpy, so no
 * alignment is assumed; macros, not functions, so no vector crosses a
 * call boundary in the baseline clone (GCC's -Wpsabi). */
typedef eng_real vec __attribute__((vector_size(32)));
/* One mr × (nv·V) tile (mr, nv compile-time after inlining) of the axpy
 * form: C[r][u] (+)= Σ_k A(r, k) B[k][u], A(r, k) = A[r ars + k acs]. */
INLINE void tile_vec(const int mr, const int nv, int K, const eng_real *restrict A, size_t ars,
                     size_t acs, const eng_real *restrict B, size_t ldb, int beta,
                     eng_real *restrict C, size_t ldc)
{
    vec acc[MR5][NR / V];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nv; q++)
            acc[r][q] = (vec){0};
    for (int k = 0; k < K; k++) {
        const eng_real *restrict b = B + (size_t)k * ldb;
        vec bv[NR / V];
        for (int q = 0; q < nv; q++)
            memcpy(&bv[q], b + q * V, sizeof(vec));
        for (int r = 0; r < mr; r++) {
            const eng_real a = A[(size_t)r * ars + (size_t)k * acs];
            for (int q = 0; q < nv; q++)
                acc[r][q] += a * bv[q];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nv; q++) {
            eng_real *c = C + (size_t)r * ldc + q * V;
            vec o = acc[r][q];
            if (beta) {
                vec old;
                memcpy(&old, c, sizeof old);
                o += old;
            }
            memcpy(c, &o, sizeof o);
        }
}
#define TILE_NR(mr, K, A, ars, acs, B, ldb, beta, C, ldc) \
    tile_vec(mr, NR / V, K, A, ars, acs, B, ldb, beta, C, ldc)
#define TILE_V(mr, K, A, ars, acs, B, ldb, beta, C, ldc) \
    tile_vec(mr, 1, K, A, ars, acs, B, ldb, beta, C, ldc)
#else
#define TILE_NR(mr, K, A, ars, acs, B, ldb, beta, C, ldc) \
    tile_ax(mr, NR, K, A, ars, acs, B, ldb, beta, C, ldc)
#define TILE_V(mr, K, A, ars, acs, B, ldb, beta, C, ldc) \
    tile_ax(mr, V, K, A, ars, acs, B, ldb, beta, C, ldc)
#endif

/* One mr × nr tile in scalars (the columns left over after the vector
 * tiles, or the whole product without GNU vectors). */
INLINE void tile_ax(const int mr, const int nr, int K, const eng_real *restrict A, size_t ars,
                    size_t acs, const eng_real *restrict B, size_t ldb, int beta,
                    eng_real *restrict C, size_t ldc)
{
    eng_real acc[MR5][NR];
    for (int r = 0; r < mr; r++)
        for (int u = 0; u < nr; u++)
            acc[r][u] = 0;
    for (int k = 0; k < K; k++) {
        const eng_real *restrict b = B + (size_t)k * ldb;
        for (int r = 0; r < mr; r++) {
            const eng_real a = A[(size_t)r * ars + (size_t)k * acs];
            for (int u = 0; u < nr; u++)
                acc[r][u] += a * b[u];
        }
    }
    for (int r = 0; r < mr; r++) {
        eng_real *restrict c = C + (size_t)r * ldc;
        if (beta)
            for (int u = 0; u < nr; u++)
                c[u] += acc[r][u];
        else
            for (int u = 0; u < nr; u++)
                c[u] = acc[r][u];
    }
}

/* One block of mr rows of C across all N columns. */
INLINE void rows_ax(const int mr, int N, int K, const eng_real *A, size_t ars, size_t acs,
                    const eng_real *B, size_t ldb, int beta, eng_real *C, size_t ldc)
{
    int j = 0;
    for (; j + NR <= N; j += NR)
        TILE_NR(mr, K, A, ars, acs, B + j, ldb, beta, C + j, ldc);
    for (; j + V <= N; j += V)
        TILE_V(mr, K, A, ars, acs, B + j, ldb, beta, C + j, ldc);
    for (; j < N; j++)
        tile_ax(mr, 1, K, A, ars, acs, B + j, ldb, beta, C + j, ldc);
}

/* C [M][N] (+)= op(A) B, B [K][N] row-major; op(A)(i, k) = A[i ars + k acs]. */
CLONES static void gemm_ax(int M, int N, int K, const eng_real *A, size_t ars, size_t acs,
                           const eng_real *B, size_t ldb, int beta, eng_real *C, size_t ldc)
{
    int i = 0;
    if (M % MR && M % MR5 == 0)
        for (; i + MR5 <= M; i += MR5)
            rows_ax(MR5, N, K, A + (size_t)i * ars, ars, acs, B, ldb, beta, C + (size_t)i * ldc,
                    ldc);
    for (; i + MR <= M; i += MR)
        rows_ax(MR, N, K, A + (size_t)i * ars, ars, acs, B, ldb, beta, C + (size_t)i * ldc, ldc);
    for (; i + 2 <= M; i += 2)
        rows_ax(2, N, K, A + (size_t)i * ars, ars, acs, B, ldb, beta, C + (size_t)i * ldc, ldc);
    for (; i < M; i++)
        rows_ax(1, N, K, A + (size_t)i * ars, ars, acs, B, ldb, beta, C + (size_t)i * ldc, ldc);
}

/* bt [k][c] = B [c][k] for c < nc, k < kc (bt's rows NR apart): V × V
 * blocks with vector shuffles where the compiler has them, the rest one
 * element at a time. */
INLINE void panel_transpose(int nc, int kc, const eng_real *B, size_t ldb, eng_real *bt)
{
    int c0 = 0;
#if defined(__GNUC__) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define SH __builtin_shufflevector
    for (; c0 + V <= nc; c0 += V) {
        int k = 0;
        for (; k + V <= kc; k += V) {
            vec r[V], o[V];
            for (int q = 0; q < V; q++)
                memcpy(&r[q], B + (size_t)(c0 + q) * ldb + k, sizeof(vec));
#ifdef ENG_DOUBLE
            vec t0 = SH(r[0], r[1], 0, 4, 2, 6), t1 = SH(r[0], r[1], 1, 5, 3, 7);
            vec t2 = SH(r[2], r[3], 0, 4, 2, 6), t3 = SH(r[2], r[3], 1, 5, 3, 7);
            o[0] = SH(t0, t2, 0, 1, 4, 5);
            o[2] = SH(t0, t2, 2, 3, 6, 7);
            o[1] = SH(t1, t3, 0, 1, 4, 5);
            o[3] = SH(t1, t3, 2, 3, 6, 7);
#else
            vec t[8], u[8];
            for (int q = 0; q < 8; q += 2) {
                t[q] = SH(r[q], r[q + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                t[q + 1] = SH(r[q], r[q + 1], 2, 10, 3, 11, 6, 14, 7, 15);
            }
            for (int q = 0; q < 8; q += 4) {
                u[q] = SH(t[q], t[q + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                u[q + 1] = SH(t[q], t[q + 2], 2, 3, 10, 11, 6, 7, 14, 15);
                u[q + 2] = SH(t[q + 1], t[q + 3], 0, 1, 8, 9, 4, 5, 12, 13);
                u[q + 3] = SH(t[q + 1], t[q + 3], 2, 3, 10, 11, 6, 7, 14, 15);
            }
            for (int q = 0; q < 4; q++) {
                o[q] = SH(u[q], u[q + 4], 0, 1, 2, 3, 8, 9, 10, 11);
                o[q + 4] = SH(u[q], u[q + 4], 4, 5, 6, 7, 12, 13, 14, 15);
            }
#endif
            for (int q = 0; q < V; q++)
                memcpy(bt + (size_t)(k + q) * NR + c0, &o[q], sizeof(vec));
        }
        for (int c = c0; c < c0 + V; c++)
            for (int kk = k; kk < kc; kk++)
                bt[(size_t)kk * NR + c] = B[(size_t)c * ldb + kk];
    }
#undef SH
#endif
#endif
    for (int c = c0; c < nc; c++) {
        const eng_real *restrict b = B + (size_t)c * ldb;
        for (int k = 0; k < kc; k++)
            bt[(size_t)k * NR + c] = b[k];
    }
}

/* C [M][N] (+)= A Bᵀ, A [M][K], B [N][K]: per panel of up to NR columns of C
 * and KT values of k, copy Bᵀ's block into bt [KT][NR] and run the axpy
 * tiles over all M rows; the first k block writes (or adds to) C, the
 * following ones add. */
CLONES static void gemm_nt(int M, int N, int K, const eng_real *A, size_t lda,
                           const eng_real *B, size_t ldb, int beta, eng_real *C, size_t ldc)
{
    eng_real bt[KT * NR];
    for (int j = 0; j < N; j += NR) {
        const int nc = N - j < NR ? N - j : NR;
        for (int k0 = 0; k0 < K; k0 += KT) {
            const int kc = K - k0 < KT ? K - k0 : KT;
            panel_transpose(nc, kc, B + (size_t)j * ldb + k0, ldb, bt);
            const int bb = beta || k0 > 0;
            const eng_real *Ak = A + k0;
            eng_real *Cj = C + j;
            int i = 0;
            if (nc == NR) {
                if (M % MR && M % MR5 == 0)
                    for (; i + MR5 <= M; i += MR5)
                        TILE_NR(MR5, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                                Cj + (size_t)i * ldc, ldc);
                for (; i + MR <= M; i += MR)
                    TILE_NR(MR, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                            Cj + (size_t)i * ldc, ldc);
                for (; i < M; i++)
                    TILE_NR(1, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                            Cj + (size_t)i * ldc, ldc);
            } else {
                if (M % MR && M % MR5 == 0)
                    for (; i + MR5 <= M; i += MR5)
                        rows_ax(MR5, nc, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                                Cj + (size_t)i * ldc, ldc);
                for (; i + MR <= M; i += MR)
                    rows_ax(MR, nc, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                            Cj + (size_t)i * ldc, ldc);
                for (; i < M; i++)
                    rows_ax(1, nc, kc, Ak + (size_t)i * lda, lda, 1, bt, NR, bb,
                            Cj + (size_t)i * ldc, ldc);
            }
        }
    }
}

/* C [M][N] (+)= A Bᵀ as dot products over k, for N below one vector (a
 * panel copy would not pay): V partial sums over k in order, then the lanes
 * added in order, then the k left over. */
CLONES static void gemm_dot(int M, int N, int K, const eng_real *A, size_t lda,
                            const eng_real *B, size_t ldb, int beta, eng_real *C, size_t ldc)
{
    for (int i = 0; i < M; i++) {
        const eng_real *restrict a = A + (size_t)i * lda;
        for (int j = 0; j < N; j++) {
            const eng_real *restrict b = B + (size_t)j * ldb;
            eng_real sum = 0;
            int k = 0;
#if defined(__GNUC__)
            if (K >= V) {
                vec acc = {0}, av, bv;
                for (; k + V <= K; k += V) {
                    memcpy(&av, a + k, sizeof av);
                    memcpy(&bv, b + k, sizeof bv);
                    acc += av * bv;
                }
                for (int u = 0; u < V; u++)
                    sum += acc[u];
            }
#endif
            for (; k < K; k++)
                sum += a[k] * b[k];
            eng_real *c = C + (size_t)i * ldc + j;
            *c = beta ? *c + sum : sum;
        }
    }
}

void eng__gemm_small(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
                     const eng_real *B, int ldb, int beta, eng_real *C, int ldc)
{
    if (ta && tb) { /* no loop form for it; fnet never asks */
        eng__gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    } else if (tb) {
        if (K == 1 && ldb == 1) /* B [N][1], packed: a row of N */
            gemm_ax(M, N, 1, A, (size_t)lda, 1, B, (size_t)ldb, beta, C, (size_t)ldc);
        else if (N < V)
            gemm_dot(M, N, K, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
        else
            gemm_nt(M, N, K, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
    } else if (ta) {
        if (N == 1 && ldc == 1) /* C [M][1] is a row of M: Cᵀ = Bᵀ A */
            gemm_ax(1, M, K, B, 0, (size_t)ldb, A, (size_t)lda, beta, C, (size_t)M);
        else
            gemm_ax(M, N, K, A, 1, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
    } else {
        gemm_ax(M, N, K, A, (size_t)lda, 1, B, (size_t)ldb, beta, C, (size_t)ldc);
    }
}

void eng__gemm(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
               const eng_real *B, int ldb, int beta, eng_real *C, int ldc)
{
    if ((size_t)M * (size_t)N * (size_t)K <= ENG__GEMM_SMALL)
        eng__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        eng__gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void eng__gemm_blas(int ta, int tb, int M, int N, int K, const eng_real *A, int lda,
                    const eng_real *B, int ldb, int beta, eng_real *C, int ldc)
{
    ENG__GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, (eng_real)1, A, lda, B, ldb, beta ? (eng_real)1 : (eng_real)0, C, ldc);
}
