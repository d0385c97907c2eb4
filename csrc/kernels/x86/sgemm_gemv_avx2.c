/* The AVX2 fp32 gemv (N == 1: connected layers, 1 x 1 outputs) of the tiles
 * in sgemm_avx2.c.  Its own file so that the Makefile builds it -O2: it
 * streams A once (memory-bound for any large layer), and -O3's extra copies
 * of its loops cost 2.5 KB of the program (docs/architecture.md, the size
 * budget). */
#include <immintrin.h>

#include "kernels/sgemm_impl.h"
#include "kernels/x86/sgemm_avx2_ops.h"

/* N == 1: each panel's MR rows are one masked ymm; four panels at once
 * keep four independent fma chains in flight.  Same per-row chain as the
 * tiles (sgemm_avx2.c).  One copy for both tiles' MR (a register step in
 * the loop, which is bound by A's stream either way): 0.9 KB less. */
__attribute__((noinline)) static void gemv(int MR, int M, int K, int kcb, const float *pa,
                                           const float *x, const float *bias,
                                           mdfi_epilogue epi, float *c, size_t ldc)
{
    const __m256i full = lane_mask(MR, 0);
    const int np = (M + MR - 1) / MR;
    const size_t mp = (size_t)np * MR;
    for (int p0 = 0; p0 < np; p0 += 4) {
        int cnt = np - p0 < 4 ? np - p0 : 4;
        __m256 acc[4];
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm256_setzero_ps();
        for (int pc = 0; pc < K; pc += kcb) {
            int kc = K - pc < kcb ? K - pc : kcb;
            const size_t panel = (size_t)MR * kc;
            const float *a = pa + pc * mp + p0 * panel;
            if (cnt == 4) {
                for (int k = 0; k < kc; ++k, a += MR) {
                    __m256 xv = _mm256_broadcast_ss(x + pc + k);
#pragma GCC unroll 4
                    for (int i = 0; i < 4; ++i)
                        acc[i] = _mm256_fmadd_ps(_mm256_maskload_ps(a + i * panel, full), xv,
                                                 acc[i]);
                }
            } else {
                for (int k = 0; k < kc; ++k, a += MR) {
                    __m256 xv = _mm256_broadcast_ss(x + pc + k);
                    for (int i = 0; i < cnt; ++i)
                        acc[i] = _mm256_fmadd_ps(_mm256_maskload_ps(a + i * panel, full), xv,
                                                 acc[i]);
                }
            }
        }
        for (int i = 0; i < cnt; ++i) {
            int m0 = (p0 + i) * MR, mv = M - m0 < MR ? M - m0 : MR;
            __m256 bv = bias ? _mm256_maskload_ps(bias + m0, lane_mask(mv, 0))
                             : _mm256_setzero_ps();
            float out[8];
            _mm256_storeu_ps(out, finish(acc[i], bv, epi));
            for (int r = 0; r < mv; ++r)
                c[(size_t)(m0 + r) * ldc] = out[r];
        }
    }
}

#define GEMV(name, MR)                                                                     \
    void name(int M, int K, int kc, const float *pa, const float *x, const float *bias, \
                     mdfi_epilogue epi, float *c, size_t ldc)                                 \
    {                                                                                         \
        gemv(MR, M, K, kc, pa, x, bias, epi, c, ldc);                                         \
    }
GEMV(mdfi_sgemm_gemv6_avx2, 6)
GEMV(mdfi_sgemm_gemv4_avx2, 4)

/* The cols edge (sgemm_impl.h) of the 6-row tile: one column at a time,
 * four panels' chains in flight, each panel's six rows one masked ymm of A
 * times the column's broadcast B (a quarter of the cycles a half tile takes
 * per k); a group of fewer panels masks the rest off (nothing read).  C's
 * sums and the results pass through buf (a panel's column is six floats
 * ldc apart); only the register work is unrolled, for size. */
void mdfi_sgemm_cols6_avx2(int M, int kc, const float *a, const float *b, int bw, int nv,
                           float *c, size_t ldc, unsigned flags)
{
    enum { MR = 6, CG = 4 };
    const int np = (M + MR - 1) / MR;
    const size_t panel = (size_t)MR * kc;
    for (int j = 0; j < nv; ++j)
        for (int p0 = 0; p0 < np; p0 += CG) {
            float buf[CG][8] = {{0}};
            __m256i mk[CG];
            const float *ap[CG];
            for (int i = 0; i < CG; ++i) {
                const int m0 = (p0 + i) * MR, mv = M - m0 < MR ? M - m0 : MR;
                mk[i] = lane_mask(p0 + i < np ? MR : 0, 0);
                ap[i] = a + (size_t)(p0 + i < np ? p0 + i : p0) * panel;
                for (int r = 0; (flags & MDFI_UK_ACCUM) && r < mv; ++r)
                    buf[i][r] = c[(size_t)(m0 + r) * ldc + j];
            }
            __m256 acc[CG];
#pragma GCC unroll 4
            for (int i = 0; i < CG; ++i)
                acc[i] = _mm256_loadu_ps(buf[i]);
            const float *bp = b + j;
            for (size_t k = 0; k < panel; k += MR, bp += bw) {
                const __m256 bv = _mm256_broadcast_ss(bp);
#pragma GCC unroll 4
                for (int i = 0; i < CG; ++i)
                    acc[i] = _mm256_fmadd_ps(_mm256_maskload_ps(ap[i] + k, mk[i]), bv, acc[i]);
            }
#pragma GCC unroll 4
            for (int i = 0; i < CG; ++i)
                _mm256_storeu_ps(buf[i], acc[i]);
            for (int i = 0; i < CG && p0 + i < np; ++i) {
                const int m0 = (p0 + i) * MR, mv = M - m0 < MR ? M - m0 : MR;
                for (int r = 0; r < mv; ++r)
                    c[(size_t)(m0 + r) * ldc + j] = buf[i][r];
            }
        }
}
