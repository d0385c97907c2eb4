/* AVX-512 VPOPCNTDQ (+ VNNI) binary micro-kernels.  Columns (pixels) run
 * along the vector lanes: a zmm holds one 64-bit word of 8 pixels, the
 * filter's word is broadcast, so each lane's popcount adds straight into
 * that pixel's counter and nothing is reduced across lanes.  8 x 16 tiles:
 * 16 counters, two per filter.
 *
 * SIGN takes its words in groups of three (see mdfi_bepi_args): per group
 * and counter 3 XORs, a vpternlogq for the carries, 2 popcounts, and 2
 * vpdpbusd that add popcount(s) and 2 popcount(c) (the counts sit in the
 * low byte of each 64-bit lane, so the sums collect in its low dword).
 * That is 8 operations per 3 words where XOR + popcount + add take 9, and
 * popcount, which only one port runs, is no longer the limit.  Taps outside
 * the image are taken back in the epilogue.  The two-plane modes go word
 * by word (2-bit's weight 2 by vpdpbusd too).  Every kernel needs VNNI,
 * which the variant's selection checks.
 *
 * The kernels apply the epilogue themselves, from the counts: a filter's
 * two counters make one vector of 16 int32 (the 16 columns).  The B panels
 * of stride-1 convolutions are packed from the padded input with masked
 * loads (pack_src). */
#include <immintrin.h>
#include <string.h>

#include "kernels/bgemm.h"

#define MR 8
#define NR 16
#define INLINE static inline __attribute__((always_inline))
/* The epilogues: one compact loop over the rows (the branches on the
 * activation and the flags are predictable; copies of the loop per case
 * would only add code). */
#define NOINLINE_ROLLED __attribute__((noinline)) MDFI_NO_UNSWITCH

/* Darknet's leaky slope (float)(.1 * (double)x), exactly: with
 * 0.1 = H + L (H = 0.1f, L = (float)(0.1 - H) = -1.4901161e-9),
 * y = fma(x, H, x * L) equals it for every 2^-120 <= |x| <= inf (checked for
 * all floats), and max(y, x) is x for x > 0 (and for NaN; for a pair of
 * zeros too, so -0 stays -0).  Lanes whose x * L is 0 or subnormal (every
 * other x) go through double, unless there can be none (tiny_free). */
INLINE __m512 leaky(__m512 x, int tiny_free)
{
    const __m512 p = _mm512_mul_ps(x, _mm512_set1_ps(-1.4901161e-9f));
    __m512 y = _mm512_fmadd_ps(x, _mm512_set1_ps(.1f), p);
    /* fpclass: +0 0x02, -0 0x04, denormal 0x20 */
    __mmask16 odd = tiny_free ? 0 : _mm512_fpclass_ps_mask(p, 0x26);
    if (odd) {
        const __m512d dt = _mm512_set1_pd(.1);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
        __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
        __m512 z = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_mul_pd(lo, dt))),
                                      _mm512_cvtpd_ps(_mm512_mul_pd(hi, dt)), 1);
        y = _mm512_mask_blend_ps(odd, y, z);
    }
    return _mm512_max_ps(y, x);
}

/* D = base + mul * count, mul = +-2. */
INLINE __m512i row_d(__m512i cnt, __m512i base, int mul)
{
    cnt = _mm512_add_epi32(cnt, cnt);
    return mul > 0 ? _mm512_add_epi32(base, cnt) : _mm512_sub_epi32(base, cnt);
}

/* Float output of a tile.  (float)D: with |D| < 2^24 (small) one exact fma
 * on the converted count. */
static NOINLINE_ROLLED void tile_out(const __m512i *cnt, const mdfi_bepi_args *e, int i, int mv)
{
    const int mul = e->mul, tiny_free = e->tiny_free, small = e->small;
    const mdfi_epilogue act = e->act;
    const float *alpha = e->alpha + i, *beta = e->beta + i;
    const size_t ldc = e->ldc;
    const __m512i base = _mm512_loadu_si512(e->base);
    const __m512 basef = _mm512_cvtepi32_ps(base), mulf = _mm512_set1_ps((float)mul);
    const __mmask16 lanes = (__mmask16)((1u << e->nv) - 1);
    float *c = e->c + (size_t)i * ldc;
#pragma GCC unroll 1
    for (int r = 0; r < mv; ++r, c += ldc) {
        __m512 v;
        if (small)
            v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(cnt[r]), mulf, basef);
        else
            v = _mm512_cvtepi32_ps(row_d(cnt[r], base, mul));
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(alpha[r])), _mm512_set1_ps(beta[r]));
        if (act == MDFI_EPI_RELU)
            v = _mm512_max_ps(v, _mm512_setzero_ps());   /* NaN, -0 -> +0 */
        else if (act == MDFI_EPI_LEAKY)
            v = leaky(v, tiny_free);
        _mm512_mask_storeu_ps(c, lanes, v);
    }
}

/* [dualpath]'s z of a tile (mdfi_bout's rq): per row the int32 split of
 * kernels/dpath.h, the second source added, in registers. */
static NOINLINE_ROLLED void tile_rq(const __m512i *cnt, const mdfi_bepi_args *e, int i, int mv)
{
    const mdfi_bout *o = e->o;
    const int mul = e->mul;
    const size_t ldc = e->ldc;
    const __m512i base = _mm512_loadu_si512(e->base);
    const __mmask16 lanes = (__mmask16)((1u << e->nv) - 1);
    const __m512i hi = _mm512_set1_epi32(1 << 24), lo = _mm512_set1_epi32(-(1 << 24));
    const __m512 fhi = _mm512_set1_ps(16777216.0f), flo = _mm512_set1_ps(-16777216.0f);
    float *c = e->c + (size_t)i * ldc;
    int sm = i % o->src_c;   /* the source's channel, stepped: no division per row */
#pragma GCC unroll 1
    for (int r = 0; r < mv; ++r, c += ldc, sm = sm + 1 == o->src_c ? 0 : sm + 1) {
        const int m = i + r;
        const mdfi_dpath_rq *q = o->rq + m;
        const __m512i D = row_d(cnt[r], base, mul);
        const __m512i L = _mm512_add_epi32(_mm512_mullo_epi32(D, _mm512_set1_epi32(q->ml)),
                                           _mm512_set1_epi32(q->ol));
        __m512i z = _mm512_add_epi32(_mm512_mullo_epi32(D, _mm512_set1_epi32(q->mh)),
                                     _mm512_set1_epi32(q->oh));
        z = _mm512_sra_epi32(_mm512_add_epi32(z, _mm512_srai_epi32(L, 16)),
                             _mm_cvtsi32_si128(q->s - 16));
        z = _mm512_min_epi32(_mm512_max_epi32(z, lo), hi);
        __m512 sv = _mm512_maskz_loadu_ps(lanes, o->src + (size_t)sm * ldc + e->n);
        sv = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(sv, sv, _CMP_ORD_Q), sv);   /* NaN -> 0 */
        sv = _mm512_min_ps(_mm512_max_ps(sv, flo), fhi);
        z = _mm512_add_epi32(z, _mm512_cvt_roundps_epi32(sv, _MM_FROUND_TO_NEAREST_INT |
                                                                 _MM_FROUND_NO_EXC));
        z = _mm512_min_epi32(_mm512_max_epi32(z, lo), hi);
        _mm512_mask_storeu_ps(c, lanes, _mm512_cvtepi32_ps(z));
    }
}

/* Plane masks of 16 lanes from e = dir * D against ascending thresholds:
 * SIGN c0;  TERNARY pos = c1, nonzero = c1 | !c0;  2BIT bit0 = c0^c1^c2, bit1 = c1. */
INLINE __mmask16 plane_masks(mdfi_bmode mode, __m512i e, const int32_t *t, __mmask16 *k1)
{
    const __mmask16 c0 = _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[0]));
    if (mode == MDFI_BMODE_SIGN)
        return c0;
    const __mmask16 c1 = _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[1]));
    if (mode == MDFI_BMODE_TERNARY) {
        *k1 = (__mmask16)(c1 | (__mmask16)~c0);
        return c1;
    }
    *k1 = c1;
    return (__mmask16)(c0 ^ c1 ^ _mm512_cmpgt_epi32_mask(e, _mm512_set1_epi32(t[2])));
}

/* ORs the bits of 16 pixels (two vectors) into the words at w. */
INLINE void or_bits(uint64_t *w, __mmask16 lanes, __m512i lo, __m512i hi)
{
    _mm512_mask_storeu_epi64(w, (__mmask8)lanes,
                             _mm512_or_si512(_mm512_maskz_loadu_epi64((__mmask8)lanes, w), lo));
    _mm512_mask_storeu_epi64(w + 8, (__mmask8)(lanes >> 8),
                             _mm512_or_si512(_mm512_maskz_loadu_epi64((__mmask8)(lanes >> 8), w + 8), hi));
}

/* Bit output of a tile: the rows' plane bits gather in registers (per
 * plane, the 16 pixels' words in two vectors) while the rows share an
 * output word, then OR into memory. */
static NOINLINE_ROLLED void tile_bits(const __m512i *cnt, const mdfi_bepi_args *e, int i, int mv)
{
    const mdfi_bout *o = e->o;
    const mdfi_bmode mode = o->q->mode;
    const int L1 = o->q->levels - 1, two = o->q->planes > 1, mul = e->mul;
    const __m512i base = _mm512_loadu_si512(e->base);
    const __mmask16 lanes = (__mmask16)((1u << e->nv) - 1);
    const int32_t *thr = o->thr + (size_t)i * L1;
    const signed char *dir = o->dir + i;
    const size_t pstride = (size_t)o->out_words * e->N;
    uint64_t *out = o->bits + e->n;
    const __m512i zero = _mm512_setzero_si512();
    __m512i p00 = zero, p01 = zero, p10 = zero, p11 = zero;
    int ch = o->m0 + i, word = ch >> 6;
#pragma GCC unroll 1
    for (int r = 0; r < mv; ++r, ++ch, thr += L1) {
        if (ch >> 6 != word) {
            uint64_t *w = out + (size_t)word * e->N;
            or_bits(w, lanes, p00, p01);
            if (two)
                or_bits(w + pstride, lanes, p10, p11);
            p00 = p01 = p10 = p11 = zero;
            word = ch >> 6;
        }
        __m512i d = row_d(cnt[r], base, mul);
        if (dir[r] < 0)
            d = _mm512_sub_epi32(zero, d);
        __mmask16 k1 = 0;
        const __mmask16 k0 = plane_masks(mode, d, thr, &k1);
        const __m512i bit = _mm512_set1_epi64((long long)(1ull << (ch & 63)));
        p00 = _mm512_mask_or_epi64(p00, (__mmask8)k0, p00, bit);
        p01 = _mm512_mask_or_epi64(p01, (__mmask8)(k0 >> 8), p01, bit);
        if (two) {
            p10 = _mm512_mask_or_epi64(p10, (__mmask8)k1, p10, bit);
            p11 = _mm512_mask_or_epi64(p11, (__mmask8)(k1 >> 8), p11, bit);
        }
    }
    uint64_t *w = out + (size_t)word * e->N;
    or_bits(w, lanes, p00, p01);
    if (two)
        or_bits(w + pstride, lanes, p10, p11);
}

/* The epilogue of rows [i, i + MR) (at most M): each row's 16 counts (the
 * low dwords of its two counters, in column order), less the border
 * correction, then the output. */
static __attribute__((noinline)) void finish(const __m512i acc[][2], const mdfi_bepi_args *e,
                                             int i, int M)
{
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512i cnt[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        cnt[r] = _mm512_permutex2var_epi32(acc[r][0], idx, acc[r][1]);
    const uint16_t *pc = e->pc + (size_t)i * e->tbl;   /* (i is a multiple of MR) */
    for (int q = 0; q < e->nout; ++q) {
        const __mmask16 k = (__mmask16)e->outm[q];
        const uint16_t *p = pc + e->outt[q] * MR;
        const int sg = e->outs[q];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
            cnt[r] = _mm512_mask_sub_epi32(cnt[r], k, cnt[r], _mm512_set1_epi32(sg * p[r]));
    }
    if (e->c && e->o->rq)
        tile_rq(cnt, e, i, M - i < MR ? M - i : MR);
    else if (e->c)
        tile_out(cnt, e, i, M - i < MR ? M - i : MR);
    else
        tile_bits(cnt, e, i, M - i < MR ? M - i : MR);
}

/* The counters to memory for finish (a copy: acc itself stays in registers). */
INLINE void finish_acc(__m512i acc[MR][2], const mdfi_bepi_args *e, int i, int M)
{
    __m512i out[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        out[r][0] = acc[r][0], out[r][1] = acc[r][1];
    finish(out, e, i, M);
}

/* vpdpbusd is VNNI: this variant is selected only on CPUs with it (bgemm.c). */
static void ukr_sign(int K, int M, const uint64_t *a, const uint64_t *b0,
                     const mdfi_bepi_args *e)
{
    const __m512i ones = _mm512_set1_epi8(1), twos = _mm512_set1_epi8(2);
    for (int i = 0; i < M; i += MR) {
        const uint64_t *b = b0;
        __m512i acc[MR][2];
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r)
            acc[r][0] = acc[r][1] = _mm512_setzero_si512();
        for (int k = 0; k < K - K % 3; k += 3, a += 3 * MR, b += 3 * NR) {
            __m512i x1[2], xd[2], xs[2];
            for (int v = 0; v < 2; ++v) {
                x1[v] = _mm512_load_si512(b + 8 * v);
                xd[v] = _mm512_load_si512(b + NR + 8 * v);
                xs[v] = _mm512_load_si512(b + 2 * NR + 8 * v);
            }
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                const __m512i w1 = _mm512_set1_epi64((long long)a[r]);
                const __m512i wd = _mm512_set1_epi64((long long)a[MR + r]);
                const __m512i ws = _mm512_set1_epi64((long long)a[2 * MR + r]);
#pragma GCC unroll 2
                for (int v = 0; v < 2; ++v) {
                    const __m512i y1 = _mm512_xor_si512(w1, x1[v]);
                    const __m512i d = _mm512_xor_si512(wd, xd[v]);
                    const __m512i sum = _mm512_xor_si512(ws, xs[v]);
                    /* carry = d ? ~sum : y1: truth table A ? ~B : C = 0x3a */
                    const __m512i c = _mm512_ternarylogic_epi64(d, sum, y1, 0x3a);
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], _mm512_popcnt_epi64(sum), ones);
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], _mm512_popcnt_epi64(c), twos);
                }
            }
        }
        for (int k = K - K % 3; k < K; ++k, a += MR, b += NR)   /* the last words, one by one */
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r)
                for (int v = 0; v < 2; ++v)
                    acc[r][v] = _mm512_dpbusd_epi32(
                        acc[r][v],
                        _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_set1_epi64((long long)a[r]),
                                                             _mm512_load_si512(b + 8 * v))),
                        ones);
        finish_acc(acc, e, i, M);
    }
}

/* TERNARY popcount((w ^ pos) & nonzero); 2BIT popcount(w & b0) + 2 popcount(w & b1),
 * both added by vpdpbusd as in ukr_sign. */
INLINE void ukr2(const int mode, int K, int M, const uint64_t *a, const uint64_t *b0,
                 const mdfi_bepi_args *e)
{
    const __m512i ones = _mm512_set1_epi8(1), twos = _mm512_set1_epi8(2);
    for (int i = 0; i < M; i += MR) {
        const uint64_t *b = b0;
        __m512i acc[MR][2];
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r)
            acc[r][0] = acc[r][1] = _mm512_setzero_si512();
        for (int k = 0; k < K; ++k, a += MR, b += 2 * NR) {
            const __m512i p0[2] = {_mm512_load_si512(b), _mm512_load_si512(b + 8)};
            const __m512i p1[2] = {_mm512_load_si512(b + NR), _mm512_load_si512(b + NR + 8)};
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                const __m512i w = _mm512_set1_epi64((long long)a[r]);
                for (int v = 0; v < 2; ++v) {
                    if (mode == MDFI_BMODE_TERNARY) {
                        /* (w ^ pos) & nonzero: truth table (A ^ B) & C = 0x28 */
                        acc[r][v] = _mm512_add_epi64(acc[r][v], _mm512_popcnt_epi64(
                            _mm512_ternarylogic_epi64(w, p0[v], p1[v], 0x28)));
                    } else {
                        acc[r][v] = _mm512_dpbusd_epi32(
                            acc[r][v], _mm512_popcnt_epi64(_mm512_and_si512(w, p0[v])), ones);
                        acc[r][v] = _mm512_dpbusd_epi32(
                            acc[r][v], _mm512_popcnt_epi64(_mm512_and_si512(w, p1[v])), twos);
                    }
                }
            }
        }
        finish_acc(acc, e, i, M);
    }
}

/* TERNARY for a partial panel (nv < 16 columns; the tail of a 7 x 7 map has
 * one): lanes run along the filters instead, 8 a vector straight from A,
 * each column's two words broadcast, so the work is nv / 16 of a full
 * panel's.  A scatter puts column j's counts where ukr2 keeps them (lane j
 * of each row's counters), and finish goes on as for ukr2. */
static __attribute__((noinline)) void cols_ternary(int K, int M, const uint64_t *a,
                                                   const uint64_t *b, const mdfi_bepi_args *e)
{
    const __m512i rows = _mm512_setr_epi64(0, 16, 32, 48, 64, 80, 96, 112);
    for (int i = 0; i < M; i += MR, a += (size_t)K * MR) {
        __m512i acc[MR][2];
        memset(acc, 0, sizeof acc);
#pragma GCC unroll 1
        for (int j = 0; j < e->nv; ++j) {
            __m512i c = _mm512_setzero_si512();
#pragma GCC unroll 1
            for (int k = 0; k < K; ++k)
                c = _mm512_add_epi64(c, _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(
                        _mm512_loadu_si512(a + (size_t)k * MR),
                        _mm512_set1_epi64((long long)b[2 * NR * k + j]),
                        _mm512_set1_epi64((long long)b[2 * NR * k + NR + j]), 0x28)));
            _mm512_i64scatter_epi64(acc, _mm512_add_epi64(rows, _mm512_set1_epi64(j)), c, 8);
        }
        finish(acc, e, i, M);
    }
}

static void ukr_ternary(int K, int M, const uint64_t *a, const uint64_t *b,
                        const mdfi_bepi_args *e)
{
    if (e->nv < NR)
        cols_ternary(K, M, a, b, e);
    else
        ukr2(MDFI_BMODE_TERNARY, K, M, a, b, e);
}

static void ukr_2bit(int K, int M, const uint64_t *a, const uint64_t *b,
                     const mdfi_bepi_args *e)
{
    ukr2(MDFI_BMODE_2BIT, K, M, a, b, e);
}

/* A stride-1 panel from the padded input: per vector of 8 lanes, those on
 * its first output row and those on the next (gap further), two zero-masked
 * loads ORed.  Two-plane modes: the columns' sums as well. */
static void pack_src(const mdfi_bsrc *s, mdfi_bmode mode, uint64_t *dst, int32_t *base)
{
    const int P = mode == MDFI_BMODE_SIGN ? 1 : 2, T = s->T, W = s->W;
    const int K3 = T * W - T * W % 3;
    const ptrdiff_t cws = s->cws, pls = s->pls, gap = s->gap;
    const uint64_t *b[2] = {s->b + s->voff[0], s->b + s->voff[1]};
    const __mmask8 lo[2] = {(__mmask8)s->lo, (__mmask8)(s->lo >> 8)};
    const __mmask8 hi[2] = {(__mmask8)(s->live & ~s->lo), (__mmask8)((s->live & ~s->lo) >> 8)};
    __m512i col[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}, run[2] = {col[0], col[1]};
    int k = 0;
    for (int t = 0; t < T; ++t)
        for (int cw = 0; cw < W; ++cw, ++k)
            for (int pl = 0; pl < P; ++pl, dst += NR) {
                const ptrdiff_t off = s->toff[t] + cw * cws + pl * pls;
                for (int v = 0; v < 2; ++v) {
                    __m512i x = _mm512_maskz_loadu_epi64(lo[v], b[v] + off);
                    if (hi[v])
                        x = _mm512_or_si512(x, _mm512_maskz_loadu_epi64(hi[v], b[v] + off + gap));
                    if (P == 1) {   /* SIGN: running XOR in groups of three */
                        x = run[v] = k % 3 && k < K3 ? _mm512_xor_si512(run[v], x) : x;
                    } else {
                        __m512i c = _mm512_popcnt_epi64(x);
                        if (mode == MDFI_BMODE_2BIT && pl)
                            c = _mm512_add_epi64(c, c);
                        if (mode == MDFI_BMODE_2BIT || pl)
                            col[v] = _mm512_add_epi64(col[v], c);
                    }
                    _mm512_store_si512(dst + 8 * v, x);
                }
            }
    if (P > 1)
        for (int v = 0; v < 2; ++v) {
            __m512i c = mode == MDFI_BMODE_2BIT ? _mm512_sub_epi64(_mm512_setzero_si512(), col[v])
                                                : col[v];
            _mm256_storeu_si256((__m256i *)(base + 8 * v), _mm512_cvtepi64_epi32(c));
        }
}

/* One image row to words: 16 pixels at a time, each channel's compare mask
 * sets its bit in the 16 words (two vectors of 8).  SIGN: the bits of
 * channels 0-31 and 32-63 gather in 32-bit lanes (one masked OR of a
 * broadcast per channel), then interleave into the 64-bit words. */
static void pack_row(const mdfi_bquant *q, int C, int W, const float *in, size_t cstride,
                     uint64_t *out, size_t wstride)
{
    const int Wd = (C + 63) / 64;
    const size_t pstride = (size_t)Wd * wstride;
    const __m512 t0 = _mm512_set1_ps(q->t[0]), t1 = _mm512_set1_ps(q->t[1]);
    const __m512 t2 = _mm512_set1_ps(q->t[2]);
    uint32_t pow2[32];
    for (int i = 0; i < 32; ++i)
        pow2[i] = 1u << i;
    for (int x0 = 0; x0 < W; x0 += 16) {
        const int nx = W - x0 < 16 ? W - x0 : 16;
        const __mmask16 ld = (__mmask16)(nx >= 16 ? 0xffff : (1u << nx) - 1);
        for (int cw = 0; cw < Wd; ++cw) {
            const int cn = C - 64 * cw < 64 ? C - 64 * cw : 64;
            if (q->mode == MDFI_BMODE_SIGN) {
                const float *src = in + (size_t)64 * cw * cstride + x0;
                __m512i h[2];
                for (int half = 0, ci = 0; half < 2; ++half) {
                    __m512i a = _mm512_setzero_si512();
                    for (const int c1 = cn < 32 * half + 32 ? cn : 32 * half + 32; ci < c1;
                         ++ci, src += cstride)
                        a = _mm512_mask_or_epi32(
                            a, _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(ld, src), t0, _CMP_GT_OQ),
                            a, _mm512_set1_epi32((int)pow2[ci & 31]));
                    h[half] = a;
                }
                const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6,
                                                      22, 7, 23);
                const __m512i ihi = _mm512_add_epi32(ilo, _mm512_set1_epi32(8));
                uint64_t *o = out + (size_t)cw * wstride + x0;
                _mm512_mask_storeu_epi64(o, (__mmask8)ld, _mm512_permutex2var_epi32(h[0], ilo, h[1]));
                _mm512_mask_storeu_epi64(o + 8, (__mmask8)(ld >> 8),
                                         _mm512_permutex2var_epi32(h[0], ihi, h[1]));
                continue;
            }
            /* two planes: 64-bit lanes, the high 8 pixels' masks shifted down */
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, b0 = a0, b1 = a0;
            const float *src = in + (size_t)64 * cw * cstride + x0;
            for (int ci = 0; ci < cn; ++ci, src += cstride) {
                const __m512 x = _mm512_maskz_loadu_ps(ld, src);
                const __m512i bit = _mm512_set1_epi64((long long)(1ull << ci));
                __mmask16 k0, k1;
                if (q->mode == MDFI_BMODE_TERNARY) {
                    k0 = _mm512_cmp_ps_mask(x, t1, _CMP_GT_OQ);
                    k1 = (__mmask16)(k0 | _mm512_cmp_ps_mask(x, t0, _CMP_NGT_UQ));
                } else {
                    const __mmask16 c0 = _mm512_cmp_ps_mask(x, t0, _CMP_GT_OQ);
                    k1 = _mm512_cmp_ps_mask(x, t1, _CMP_GT_OQ);
                    k0 = (__mmask16)(c0 ^ k1 ^ _mm512_cmp_ps_mask(x, t2, _CMP_GT_OQ));
                }
                a0 = _mm512_mask_or_epi64(a0, (__mmask8)k0, a0, bit);
                a1 = _mm512_mask_or_epi64(a1, (__mmask8)(k0 >> 8), a1, bit);
                b0 = _mm512_mask_or_epi64(b0, (__mmask8)k1, b0, bit);
                b1 = _mm512_mask_or_epi64(b1, (__mmask8)(k1 >> 8), b1, bit);
            }
            uint64_t *o = out + (size_t)cw * wstride + x0;
            const __mmask8 m0 = (__mmask8)ld, m1 = (__mmask8)(ld >> 8);
            _mm512_mask_storeu_epi64(o, m0, a0);
            _mm512_mask_storeu_epi64(o + 8, m1, a1);
            _mm512_mask_storeu_epi64(o + pstride, m0, b0);
            _mm512_mask_storeu_epi64(o + pstride + 8, m1, b1);
        }
    }
}

const mdfi_bgemm_kernel mdfi_bgemm_avx512vpopcnt = {
    .kind = MDFI_BK_AVX512VPOPCNT, .mr = MR, .nr = NR, .b_block_words = 32768,
    .ukr_fused = {ukr_sign, ukr_ternary, ukr_2bit}, .pack_src = pack_src, .grouped = 1,
    .requant = 1,
    .pack_row = pack_row,
};
