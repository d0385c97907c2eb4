/* AVX-512 VPOPCNTDQ binary micro-kernels.  Columns (pixels) run along the
 * vector lanes: a zmm holds one 64-bit word of 8 pixels, the filter's word
 * is broadcast, so each lane's popcount adds straight into that pixel's
 * counter and nothing is reduced across lanes.  MR x NR tiles (NV = NR/8
 * vectors per row, MR*NV counters); the two-plane kernels run the tile in
 * groups of at most 16 columns.  The kernels apply the float epilogue
 * themselves (fused_epi), through one shared non-inlined tile pass. */
#include <immintrin.h>
#include <math.h>

#include "kernels/bgemm.h"

#ifndef MR
#define MR 8
#endif
#ifndef NR
#define NR 24
#endif
#define NV (NR / 8)
#define NG ((NV + 1) / 2)   /* groups of 16 columns */
#define INLINE static inline __attribute__((always_inline))

/* Darknet's leaky slope (float)(.1 * (double)x), exactly: the fma-corrected
 * q = x * 0.1f equals it for +0 and every 2^-125 <= |x| < inf (checked for
 * all negative floats).  Lanes whose q is subnormal, -0, -inf or NaN (which
 * covers every other x <= 0) go through double; one fpclass finds them. */
INLINE __m512 leaky(__m512 x)
{
    const __m512 tenth = _mm512_set1_ps(.1f), ten = _mm512_set1_ps(10.f);
    __m512 q = _mm512_mul_ps(x, tenth);
    __m512 y = _mm512_fmadd_ps(_mm512_fnmadd_ps(q, ten, x), tenth, q);
    /* fpclass: QNaN 0x01, -0 0x04, -Inf 0x10, denormal 0x20, SNaN 0x80 */
    __mmask16 odd = _mm512_fpclass_ps_mask(q, 0xb5);
    if (odd) {
        const __m512d dt = _mm512_set1_pd(.1);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
        __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
        __m512 z = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_mul_pd(lo, dt))),
                                      _mm512_cvtpd_ps(_mm512_mul_pd(hi, dt)), 1);
        y = _mm512_mask_blend_ps(odd, y, z);
    }
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), y, x);
}

/* Group g (columns 16g..) of row r: d = base + mul * count, act(d * alpha + beta). */
INLINE void finish16(__m512i cnt, int r, int g, const mdfi_bepi_args *e)
{
    const int left = e->nv - 16 * g;
    if (left <= 0)
        return;
    const __mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
    __m512i bs = _mm512_maskz_loadu_epi32(mk, e->base + 16 * g);
    __m512i twice = _mm512_slli_epi32(cnt, 1);
    __m512i d = e->mul > 0 ? _mm512_add_epi32(bs, twice) : _mm512_sub_epi32(bs, twice);
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(e->alpha[r]));
    f = _mm512_add_ps(f, _mm512_set1_ps(e->beta[r]));
    if (e->act == MDFI_EPI_RELU)
        f = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(f, _mm512_setzero_ps(), _CMP_GT_OQ), f);
    else if (e->act == MDFI_EPI_LEAKY)
        f = leaky(f);
    _mm512_mask_storeu_ps(e->c + (size_t)r * e->ldc + 16 * g, mk, f);
}

/* The low dwords of two vectors of 8 counters: 16 int32 in column order. */
INLINE __m512i join(__m512i lo, __m512i hi)
{
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_epi32(lo, idx, hi);
}

/* The float epilogue of a stored tile (p: row stride NR).  One copy, not
 * inlined into every kernel: the counts go through L1 once. */
static __attribute__((noinline)) void epi_tile(const int32_t *p, const mdfi_bepi_args *e)
{
    for (int r = 0; r < e->mv; ++r)
        for (int g = 0; g < NG; ++g)
            finish16(_mm512_maskz_loadu_epi32(2 * g + 1 < NV ? 0xffff : 0x00ff, p + r * NR + 16 * g),
                     r, g, e);
}

/* Counters of group g (vectors 2g and 2g+1, if any) of every row to p (row
 * stride NR). */
INLINE void store_group(__m512i lo[MR], __m512i hi[MR], int g, int32_t *p)
{
    const __mmask16 mk = 2 * g + 1 < NV ? 0xffff : 0x00ff;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        _mm512_mask_storeu_epi32(p + r * NR + 16 * g, mk, join(lo[r], hi[r]));
}

INLINE void store_tile(__m512i acc[MR][NV], int32_t *p, const mdfi_bepi_args *e)
{
    for (int g = 0; g < NG; ++g) {
        __m512i lo[MR], hi[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            lo[r] = acc[r][2 * g];
            hi[r] = 2 * g + 1 < NV ? acc[r][2 * g + 1] : _mm512_setzero_si512();
        }
        store_group(lo, hi, g, p);
    }
    if (e)
        epi_tile(p, e);
}

static void ukr_sign(int K, const uint64_t *a, const uint64_t *b, int32_t *p,
                     const mdfi_bepi_args *e)
{
    __m512i acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = _mm512_setzero_si512();
    for (int k = 0; k < K; ++k, a += MR, b += NR) {
        __m512i bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            bv[v] = _mm512_load_si512((const void *)(b + 8 * v));
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m512i av = _mm512_set1_epi64((long long)a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[r][v] = _mm512_add_epi64(
                    acc[r][v], _mm512_popcnt_epi64(_mm512_xor_si512(av, bv[v])));
        }
    }
    store_tile(acc, p, e);
}

/* Masked SIGN: the mask (compact_mask: a bit per lane) is a k register per
 * tap and 8 columns, and an out-of-image tap's count is simply not added
 * (merge-masked add): xor, popcount, add as in ukr_sign. */
static void ukr_masked(int T, int W, const uint64_t *a, const uint64_t *b, int32_t *p,
                       const mdfi_bepi_args *e)
{
    __m512i acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = _mm512_setzero_si512();
    for (int t = 0; t < T; ++t) {
        /* compact mask: byte v of the row's first word = lanes 8v..8v+7 (a
         * k-register load, no vector ALU work) */
        const unsigned char *mbytes = (const unsigned char *)(b + (size_t)W * NR);
        __mmask8 in[NV];
        for (int v = 0; v < NV; ++v)
            in[v] = _load_mask8((__mmask8 *)(mbytes + v));
        for (int cw = 0; cw < W; ++cw, a += MR, b += NR) {
            __m512i bv[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                bv[v] = _mm512_load_si512((const void *)(b + 8 * v));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                __m512i av = _mm512_set1_epi64((long long)a[r]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v)
                    acc[r][v] = _mm512_mask_add_epi64(
                        acc[r][v], in[v], acc[r][v],
                        _mm512_popcnt_epi64(_mm512_xor_si512(av, bv[v])));
            }
        }
        b += NR;   /* past the mask row */
    }
    store_tile(acc, p, e);
}

/* Group g (at most 16 columns) of a two-plane tile:
 * TERNARY popcount((a ^ pos) & nonzero), 2BIT popcount(a & b0) + 2 popcount(a & b1). */
INLINE void group2(const int mode, const int g, int K, const uint64_t *a, const uint64_t *b,
                   int32_t *p)
{
    const int nv = 2 * g + 1 < NV ? 2 : 1;
    __m512i acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < 2; ++v)
            acc[r][v] = _mm512_setzero_si512();
    b += 16 * g;
    for (int k = 0; k < K; ++k, a += MR, b += 2 * NR) {
        __m512i b0[2], b1[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; ++v) {
            b0[v] = _mm512_load_si512((const void *)(b + 8 * v));
            b1[v] = _mm512_load_si512((const void *)(b + NR + 8 * v));
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m512i av = _mm512_set1_epi64((long long)a[r]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; ++v) {
                if (mode == MDFI_BMODE_TERNARY) {
                    /* (a ^ pos) & nonzero: truth table (A ^ B) & C = 0x28 */
                    __m512i x = _mm512_ternarylogic_epi64(av, b0[v], b1[v], 0x28);
                    acc[r][v] = _mm512_add_epi64(acc[r][v], _mm512_popcnt_epi64(x));
                } else {
                    __m512i c0 = _mm512_popcnt_epi64(_mm512_and_si512(av, b0[v]));
                    __m512i c1 = _mm512_popcnt_epi64(_mm512_and_si512(av, b1[v]));
                    acc[r][v] = _mm512_add_epi64(acc[r][v],
                                                 _mm512_add_epi64(c0, _mm512_slli_epi64(c1, 1)));
                }
            }
        }
    }
    __m512i lo[MR], hi[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        lo[r] = acc[r][0];
        hi[r] = acc[r][1];
    }
    store_group(lo, hi, g, p);
}

static void ukr_ternary(int K, const uint64_t *a, const uint64_t *b, int32_t *p,
                        const mdfi_bepi_args *e)
{
    for (int g = 0; g < NG; ++g)
        group2(MDFI_BMODE_TERNARY, g, K, a, b, p);
    if (e)
        epi_tile(p, e);
}

static void ukr_2bit(int K, const uint64_t *a, const uint64_t *b, int32_t *p,
                     const mdfi_bepi_args *e)
{
    for (int g = 0; g < NG; ++g)
        group2(MDFI_BMODE_2BIT, g, K, a, b, p);
    if (e)
        epi_tile(p, e);
}

/* Plane masks of 16 lanes from e = dir * D against ascending thresholds:
 * SIGN c0;  TERNARY pos = c1, nonzero = c1 | !c0;  2BIT bit0 = c0^c1^c2, bit1 = c1. */
INLINE void plane_masks(mdfi_bmode mode, __m512i e, const int32_t *t, __mmask16 *k0,
                        __mmask16 *k1)
{
    __mmask16 c0 = _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[0]));
    if (mode == MDFI_BMODE_SIGN) {
        *k0 = c0;
        *k1 = 0;
        return;
    }
    __mmask16 c1 = _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[1]));
    if (mode == MDFI_BMODE_TERNARY) {
        *k0 = c1;
        *k1 = (__mmask16)(c1 | (__mmask16)~c0);
        return;
    }
    __mmask16 c2 = _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[2]));
    *k0 = (__mmask16)(c0 ^ c1 ^ c2);
    *k1 = c1;
}


/* The bits of the tile's rows go to registers (per plane, NV vectors of 8
 * pixels) while the rows share an output word, then OR into memory. */
static void epi_bits(const int32_t *p, const int32_t *base, int mul, int mv, int nv,
                     const mdfi_bout *o, int m, size_t N, size_t n)
{
    const mdfi_bmode mode = o->q->mode;
    const int L = o->q->levels, P = o->q->planes;
    __mmask8 lane[NV];
    for (int q = 0; q < NV; ++q) {
        int left = nv - 8 * q;
        lane[q] = left >= 8 ? 0xff : left <= 0 ? 0 : (__mmask8)((1u << left) - 1);
    }
    __m512i bs[NG];
    for (int g = 0; g < NG; ++g)
        bs[g] = _mm512_maskz_loadu_epi32(2 * g + 1 < NV ? 0xffff : 0x00ff, base + 16 * g);
    __m512i acc[2][NV];
    int word = -1;
    for (int r = 0; r <= mv; ++r) {
        const int ch = o->m0 + m + r;
        if (word >= 0 && (r == mv || ch >> 6 != word)) {   /* flush */
            for (int pl = 0; pl < P; ++pl) {
                uint64_t *w = o->bits + ((size_t)pl * o->out_words + word) * N + n;
                for (int q = 0; q < NV; ++q)
                    if (lane[q]) {
                        __m512i cur = _mm512_maskz_loadu_epi64(lane[q], w + 8 * q);
                        _mm512_mask_storeu_epi64(w + 8 * q, lane[q],
                                                 _mm512_or_si512(cur, acc[pl][q]));
                    }
            }
            word = -1;
        }
        if (r == mv)
            break;
        if (word < 0) {
            word = ch >> 6;
            for (int pl = 0; pl < 2; ++pl)
                for (int q = 0; q < NV; ++q)
                    acc[pl][q] = _mm512_setzero_si512();
        }
        const __m512i bit = _mm512_set1_epi64((long long)(1ull << (ch & 63)));
        const int32_t *t = o->thr + (size_t)(m + r) * (L - 1);
        const int neg = o->dir[m + r] < 0;
        for (int g = 0; g < NG; ++g) {
            const int two = 2 * g + 1 < NV;
            __m512i cnt = _mm512_maskz_loadu_epi32(two ? 0xffff : 0x00ff, p + r * NR + 16 * g);
            __m512i twice = _mm512_slli_epi32(cnt, 1);
            __m512i d = mul > 0 ? _mm512_add_epi32(bs[g], twice) : _mm512_sub_epi32(bs[g], twice);
            __m512i ev = neg ? _mm512_sub_epi32(_mm512_setzero_si512(), d) : d;
            __mmask16 k0, k1;
            plane_masks(mode, ev, t, &k0, &k1);
            acc[0][2 * g] = _mm512_mask_or_epi64(acc[0][2 * g], (__mmask8)k0, acc[0][2 * g], bit);
            if (two)
                acc[0][2 * g + 1] = _mm512_mask_or_epi64(acc[0][2 * g + 1], (__mmask8)(k0 >> 8),
                                                         acc[0][2 * g + 1], bit);
            if (P > 1) {
                acc[1][2 * g] = _mm512_mask_or_epi64(acc[1][2 * g], (__mmask8)k1, acc[1][2 * g], bit);
                if (two)
                    acc[1][2 * g + 1] = _mm512_mask_or_epi64(acc[1][2 * g + 1], (__mmask8)(k1 >> 8),
                                                             acc[1][2 * g + 1], bit);
            }
        }
    }
}

/* One image row to words: 16 pixels at a time, each channel's compare mask
 * sets its bit in the 16 words (two vectors of 8). */
static void pack_row(const mdfi_bquant *q, int C, int W, const float *in, size_t cstride,
                     uint64_t *out, size_t wstride)
{
    const int Wd = (C + 63) / 64;
    const size_t pstride = (size_t)Wd * wstride;
    const __m512 t0 = _mm512_set1_ps(q->t[0]), t1 = _mm512_set1_ps(q->t[1]);
    const __m512 t2 = _mm512_set1_ps(q->t[2]);
    for (int x0 = 0; x0 < W; x0 += 16) {
        const int nx = W - x0 < 16 ? W - x0 : 16;
        const __mmask16 ld = (__mmask16)(nx >= 16 ? 0xffff : (1u << nx) - 1);
        for (int cw = 0; cw < Wd; ++cw) {
            const int cn = C - 64 * cw < 64 ? C - 64 * cw : 64;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, b0 = a0, b1 = a0;
            const float *src = in + (size_t)64 * cw * cstride + x0;
            for (int ci = 0; ci < cn; ++ci, src += cstride) {
                __m512 x = _mm512_maskz_loadu_ps(ld, src);
                __m512i bit = _mm512_set1_epi64((long long)(1ull << ci));
                __mmask16 k0, k1 = 0;
                if (q->mode == MDFI_BMODE_SIGN) {
                    k0 = _mm512_cmp_ps_mask(x, t0, _CMP_GT_OQ);
                } else if (q->mode == MDFI_BMODE_TERNARY) {
                    k0 = _mm512_cmp_ps_mask(x, t1, _CMP_GT_OQ);
                    k1 = (__mmask16)(k0 | _mm512_cmp_ps_mask(x, t0, _CMP_NGT_UQ));
                } else {
                    __mmask16 c0 = _mm512_cmp_ps_mask(x, t0, _CMP_GT_OQ);
                    __mmask16 c1 = _mm512_cmp_ps_mask(x, t1, _CMP_GT_OQ);
                    __mmask16 c2 = _mm512_cmp_ps_mask(x, t2, _CMP_GT_OQ);
                    k0 = (__mmask16)(c0 ^ c1 ^ c2);
                    k1 = c1;
                }
                a0 = _mm512_mask_or_epi64(a0, (__mmask8)k0, a0, bit);
                a1 = _mm512_mask_or_epi64(a1, (__mmask8)(k0 >> 8), a1, bit);
                if (q->planes > 1) {
                    b0 = _mm512_mask_or_epi64(b0, (__mmask8)k1, b0, bit);
                    b1 = _mm512_mask_or_epi64(b1, (__mmask8)(k1 >> 8), b1, bit);
                }
            }
            uint64_t *o = out + (size_t)cw * wstride + x0;
            const __mmask8 m0 = (__mmask8)ld, m1 = (__mmask8)(ld >> 8);
            _mm512_mask_storeu_epi64(o, m0, a0);
            _mm512_mask_storeu_epi64(o + 8, m1, a1);
            if (q->planes > 1) {
                _mm512_mask_storeu_epi64(o + pstride, m0, b0);
                _mm512_mask_storeu_epi64(o + pstride + 8, m1, b1);
            }
        }
    }
}

const mdfi_bgemm_kernel mdfi_bgemm_avx512vpopcnt = {
    .kind = MDFI_BK_AVX512VPOPCNT, .mr = MR, .nr = NR, .b_block_words = 32768,
    .ukr = {ukr_sign, ukr_ternary, ukr_2bit}, .ukr_masked = ukr_masked, .fused_epi = 1,
    .compact_mask = 1,
    .epi_bits = epi_bits, .pack_row = pack_row,
};
