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
 * tiles (sgemm_avx2.c). */
INLINE void gemv(const int MR, int M, int K, int kcb, const float *pa, const float *x,
                 const float *bias, mdfi_epilogue epi, float *c, size_t ldc)
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
