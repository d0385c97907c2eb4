/* AVX2+FMA fp32 micro-kernels: MR x 16 tiles (two ymm per row), A
 * broadcast, one fma chain per element.  6 x 16 takes 12 accumulators, two B
 * vectors and a broadcast: 15 of the 16 registers. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/sgemm_impl.h"
#include "kernels/x86/sgemm_avx2_ops.h"

#define NR 16
#define MAXR 6
#define A_AHEAD 2048   /* bytes of A prefetched ahead */

/* MR x (8*NV) tile; NV = 2 is the full NR = 16, NV = 1 the half-width edge. */
INLINE void tile(const int MR, const int NV, int kc, const float *a, const float *b, float *c,
                 size_t ldc, int mv, int nv, unsigned flags, const float *bias)
{
    __m256 acc[MAXR][2];
    const int full = nv == 8 * NV;
    __m256i mk[2];
    mk[0] = lane_mask(nv, 0);
    mk[1] = lane_mask(nv, 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) {
            /* (No pointer past the rows or a short row's end.) */
            if (!(flags & MDFI_UK_ACCUM) || r >= mv || (v && nv <= 8)) {
                acc[r][v] = _mm256_setzero_ps();
            } else {
                const float *src = c + r * ldc + 8 * v;
                acc[r][v] = full ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, mk[v]);
            }
        }
    for (int k = 0; k < kc; ++k) {
        __m256 bv[2];
        /* A streams from memory on its first use (later calls hit L1); its
         * K block is contiguous, so run ahead into the next micro-panel. */
        _mm_prefetch((const char *)((uintptr_t)a + A_AHEAD), _MM_HINT_T0);
        for (int v = 0; v < NV; ++v)
            bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m256 av = _mm256_broadcast_ss(a + r);
            for (int v = 0; v < NV; ++v)
                acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
        a += MR;
        b += 8 * NV;
    }
    const int last = (flags & MDFI_UK_LAST) != 0;
    const mdfi_epilogue epi = MDFI_UK_EPI(flags);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        if (r >= mv)
            break;
        __m256 bv = _mm256_set1_ps(last && bias ? bias[r] : 0.f);
        for (int v = 0; v < NV; ++v) {
            __m256 x = last ? finish(acc[r][v], bv, epi) : acc[r][v];
            if (full)
                _mm256_storeu_ps(c + r * ldc + 8 * v, x);
            else if (v == 0 || nv > 8)
                _mm256_maskstore_ps(c + r * ldc + 8 * v, mk[v], x);
        }
    }
}

#define UKR(name, MR, NV)                                                                  \
    static void name(int kc, const float *a, const float *b, float *c, size_t ldc, int mv, \
                     int nv, unsigned flags, const float *bias)                            \
    {                                                                                      \
        tile(MR, NV, kc, a, b, c, ldc, mv, nv, flags, bias);                               \
    }
UKR(ukr6, 6, 2)
UKR(ukr4, 4, 2)
UKR(ukr6h, 6, 1)
UKR(ukr4h, 4, 1)

/* B panel fill (see mdfi_sgemm_fill).  A row with several runs (a panel
 * crossing output rows or the image's edge) gathers them in two registers:
 * each run is masked loads lined up with its columns (lanes off the run are
 * neither read nor kept) ORed in, then the row is two plain stores
 * (masked stores are slow on AMD cores). */
static void fill(float *o, int kc, const float *in, size_t plane, int c, int r, int rr,
                 const mdfi_copy_op *ops, const int *first)
{
    const __m256i j0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i j1 = _mm256_add_epi32(j0, _mm256_set1_epi32(8));
    if (mdfi_sgemm_simple_panel(ops, first, rr, NR)) {   /* inside the image: plain copies */
        for (int kk = 0; kk < kc; ++kk, o += NR) {
            const float *s = in + c * plane + ops[r].src;
            _mm256_store_ps(o, _mm256_loadu_ps(s));
            _mm256_store_ps(o + 8, _mm256_loadu_ps(s + 8));
            if (++r == rr) {
                r = 0;
                ++c;
            }
        }
        return;
    }
    for (int kk = 0; kk < kc; ++kk, o += NR) {
        const float *src = in + c * plane;
        const mdfi_copy_op *op = ops + first[r], *end = ops + first[r + 1];
        __m256 v0 = _mm256_setzero_ps(), v1 = v0;
        for (; op < end; ++op) {
            /* lanes j with dst <= j < dst + len read s[j] = src[op->src + j - dst] */
            const __m256i lo = _mm256_set1_epi32(op->dst - 1);
            const __m256i hi = _mm256_set1_epi32(op->dst + op->len);
            const float *s = src + op->src - op->dst;
            const __m256i k0 = _mm256_and_si256(_mm256_cmpgt_epi32(j0, lo), _mm256_cmpgt_epi32(hi, j0));
            const __m256i k1 = _mm256_and_si256(_mm256_cmpgt_epi32(j1, lo), _mm256_cmpgt_epi32(hi, j1));
            v0 = _mm256_or_ps(v0, _mm256_maskload_ps(s, k0));
            v1 = _mm256_or_ps(v1, _mm256_maskload_ps(s + 8, k1));
        }
        _mm256_store_ps(o, v0);
        _mm256_store_ps(o + 8, v1);
        if (++r == rr) {
            r = 0;
            ++c;
        }
    }
}

/* cost: relative time per row, measured: 4 x 16 has only 8 accumulators
 * for 2 FMA ports of latency 4-5 and runs ~12% slower than 6 x 16. */
static const mdfi_sgemm_tile tiles[] = {
    {6, 100, ukr6, ukr6h, mdfi_sgemm_gemv6_avx2, mdfi_sgemm_cols6_avx2},
    {4, 114, ukr4, ukr4h, mdfi_sgemm_gemv4_avx2, NULL},
};

/* kc 256: a 6 x 256 A micro-panel is 6 KB of L1; B blocks of 128 KB leave
 * room in the 256 KB L2 of older AVX2 cores. */
const mdfi_sgemm_kernel mdfi_sgemm_avx2 = {
    .isa = MDFI_ISA_AVX2, .nr = NR, .kc = 256, .b_block_floats = 32 * 1024,
    .ntiles = 2, .tiles = tiles, .fill = fill, .wino_u = mdfi_wino_u_avx2,
};
