/* AVX-512 fp32 micro-kernels: MR x 32 tiles (two zmm per row), A broadcast
 * from memory, one fma chain per element.  MR = 14 uses 28 accumulators of
 * the 32 registers; 8 wastes fewer padded rows for other M. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/sgemm_impl.h"

#define NR 32
#define MAXR 14
#define A_AHEAD 2048   /* bytes of A prefetched ahead */
#define INLINE static inline __attribute__((always_inline))

/* Darknet's leaky slope (float)(.1 * (double)x) as the correctly rounded
 * x / 10 (see sgemm_impl.h). */
INLINE __m512 leaky(__m512 x)
{
    const __m512 tenth = _mm512_set1_ps(MDFI_LEAKY_C), ten = _mm512_set1_ps(10.f);
    __m512 q = _mm512_mul_ps(x, tenth);
    __m512 r = _mm512_fnmadd_ps(q, ten, x);
    __m512 y = _mm512_fmadd_ps(r, tenth, q);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), y, x);
}

INLINE __m512 finish(__m512 x, __m512 bias, mdfi_epilogue epi)
{
    x = _mm512_add_ps(x, bias);
    if (epi == MDFI_EPI_RELU)
        return _mm512_max_ps(x, _mm512_setzero_ps());
    if (epi == MDFI_EPI_LEAKY)
        return leaky(x);
    return x;
}

/* MR x (16*NV) tile; NV = 2 is the full NR = 32, NV = 1 the half-width edge. */
INLINE void tile(const int MR, const int NV, int kc, const float *a, const float *b, float *c,
                 size_t ldc, int mv, int nv, unsigned flags, const float *bias)
{
    __m512 acc[MAXR][2];
    const int width = 16 * NV;
    __mmask16 mk[2];
    mk[0] = nv >= 16 ? 0xffff : (__mmask16)((1u << nv) - 1);
    mk[1] = nv >= 32 ? 0xffff : nv <= 16 ? 0 : (__mmask16)((1u << (nv - 16)) - 1);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)   /* (no pointer past a short row's end) */
            acc[r][v] = (flags & MDFI_UK_ACCUM) && r < mv && (v == 0 || nv > 16)
                            ? _mm512_maskz_loadu_ps(mk[v], c + r * ldc + 16 * v)
                            : _mm512_setzero_ps();
    for (int k = 0; k < kc; ++k) {
        __m512 bv[2];
        /* A streams from memory on its first use (later calls hit L1); its
         * K block is contiguous, so run ahead into the next micro-panel. */
        _mm_prefetch((const char *)((uintptr_t)a + A_AHEAD), _MM_HINT_T0);
        for (int v = 0; v < NV; ++v)
            bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            __m512 av = _mm512_set1_ps(a[r]);
            for (int v = 0; v < NV; ++v)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
        a += MR;
        b += width;
    }
    const int last = (flags & MDFI_UK_LAST) != 0;
    const mdfi_epilogue epi = MDFI_UK_EPI(flags);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
        if (r >= mv)
            break;
        __m512 bv = _mm512_set1_ps(last && bias ? bias[r] : 0.f);
        for (int v = 0; v < NV; ++v)
            if (v == 0 || nv > 16)
                _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk[v],
                                      last ? finish(acc[r][v], bv, epi) : acc[r][v]);
    }
}

#define UKR(name, MR, NV)                                                                  \
    static void name(int kc, const float *a, const float *b, float *c, size_t ldc, int mv, \
                     int nv, unsigned flags, const float *bias)                            \
    {                                                                                      \
        tile(MR, NV, kc, a, b, c, ldc, mv, nv, flags, bias);                               \
    }
UKR(ukr14, 14, 2)
UKR(ukr8, 8, 2)
UKR(ukr14h, 14, 1)
UKR(ukr8h, 8, 1)

/* N == 1: each panel's MR rows are one masked vector; four panels at once
 * keep four independent fma chains in flight.  Same per-row chain as tile(). */
INLINE void gemv(const int MR, int M, int K, int kcb, const float *pa, const float *x,
                 const float *bias, mdfi_epilogue epi, float *c, size_t ldc)
{
    const __mmask16 full = (__mmask16)((1u << MR) - 1);
    const int np = (M + MR - 1) / MR;
    const size_t mp = (size_t)np * MR;
    for (int p0 = 0; p0 < np; p0 += 4) {
        int cnt = np - p0 < 4 ? np - p0 : 4;
        __m512 acc[4];
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm512_setzero_ps();
        for (int pc = 0; pc < K; pc += kcb) {
            int kc = K - pc < kcb ? K - pc : kcb;
            const size_t panel = (size_t)MR * kc;
            const float *a = pa + pc * mp + p0 * panel;
            if (cnt == 4) {
                for (int k = 0; k < kc; ++k, a += MR) {
                    __m512 xv = _mm512_set1_ps(x[pc + k]);
#pragma GCC unroll 4
                    for (int i = 0; i < 4; ++i)
                        acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(full, a + i * panel), xv,
                                                 acc[i]);
                }
            } else {
                for (int k = 0; k < kc; ++k, a += MR) {
                    __m512 xv = _mm512_set1_ps(x[pc + k]);
                    for (int i = 0; i < cnt; ++i)
                        acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(full, a + i * panel), xv,
                                                 acc[i]);
                }
            }
        }
        for (int i = 0; i < cnt; ++i) {
            int m0 = (p0 + i) * MR, mv = M - m0 < MR ? M - m0 : MR;
            __mmask16 mk = (__mmask16)((1u << mv) - 1);
            __m512 bv = bias ? _mm512_maskz_loadu_ps(mk, bias + m0) : _mm512_setzero_ps();
            float out[16];
            _mm512_storeu_ps(out, finish(acc[i], bv, epi));
            for (int r = 0; r < mv; ++r)
                c[(size_t)(m0 + r) * ldc] = out[r];
        }
    }
}

#define GEMV(name, MR)                                                                     \
    static void name(int M, int K, int kc, const float *pa, const float *x, const float *bias, \
                     mdfi_epilogue epi, float *c, size_t ldc)                                 \
    {                                                                                         \
        gemv(MR, M, K, kc, pa, x, bias, epi, c, ldc);                                         \
    }
GEMV(gemv14, 14)
GEMV(gemv8, 8)

/* B panel fill (see mdfi_sgemm_fill): a run of up to 32 floats is two
 * masked load/store pairs. */
static void fill(float *o, int kc, const float *in, size_t plane, int c, int r, int rr,
                 const mdfi_copy_op *ops, const int *first)
{
    const __m512 zero = _mm512_setzero_ps();
    if (mdfi_sgemm_simple_panel(ops, first, rr, NR)) {   /* inside the image: plain copies */
        for (int kk = 0; kk < kc; ++kk, o += NR) {
            const float *s = in + c * plane + ops[r].src;
            _mm512_store_ps(o, _mm512_loadu_ps(s));
            _mm512_store_ps(o + 16, _mm512_loadu_ps(s + 16));
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
        if (end - op == 1 && op->len == NR) {
            _mm512_store_ps(o, _mm512_loadu_ps(src + op->src));
            _mm512_store_ps(o + 16, _mm512_loadu_ps(src + op->src + 16));
        } else {
            _mm512_store_ps(o, zero);
            _mm512_store_ps(o + 16, zero);
            for (; op < end; ++op) {
                unsigned m = (unsigned)((1ull << op->len) - 1);
                __mmask16 lo = (__mmask16)m, hi = (__mmask16)(m >> 16);
                const float *s = src + op->src;
                _mm512_mask_storeu_ps(o + op->dst, lo, _mm512_maskz_loadu_ps(lo, s));
                if (hi)
                    _mm512_mask_storeu_ps(o + op->dst + 16, hi, _mm512_maskz_loadu_ps(hi, s + 16));
            }
        }
        if (++r == rr) {
            r = 0;
            ++c;
        }
    }
}

/* cost: relative time per row.  Measured equal (within noise) from MR = 8
 * to 14, so the tile with the fewest padded rows wins: 8 for the usual
 * power-of-two M.  (A 12-row tile was dropped for the program's size, 11 KB:
 * the rule picked it for 56 values of M up to 1024 (9-12, 33-36, 57-60,
 * ...), where 8 or 14 pad up to 17 % more rows.) */
static const mdfi_sgemm_tile tiles[] = {
    {14, 101, ukr14, ukr14h, gemv14, NULL},
    {8, 100, ukr8, ukr8h, gemv8, NULL},
};

/* kc 384: a 14 x 384 A micro-panel is 21 KB of a 32-48 KB L1; B blocks of
 * 512 KB sit in the 1-2 MB L2 of AVX-512 cores.  (Measured flat from kc 192
 * to 768 and B blocks 32 KB to 1 MB on a 2 MB-L2 Xeon.) */
const mdfi_sgemm_kernel mdfi_sgemm_avx512 = {
    .isa = MDFI_ISA_AVX512, .nr = NR, .kc = 384, .b_block_floats = 128 * 1024,
    .ntiles = 2, .tiles = tiles, .fill = fill,
    .wino_u = mdfi_wino_u_avx2,   /* (every AVX-512 CPU has AVX2) */
};
