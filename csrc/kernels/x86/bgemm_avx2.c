/* AVX2 binary micro-kernels: popcount by nibble lookup (vpshufb), as AVX2
 * has no vector popcount.  Pixels run along the lanes (a ymm holds one
 * 64-bit word of 4 pixels) and the filter's word is broadcast.  Byte counts
 * add up for a run of k steps that cannot overflow a byte, then vpsadbw
 * folds them into 64-bit counters.  4 x 8 tiles.
 *
 * SIGN takes its words in groups of three (grouped, see mdfi_bepi_args):
 * per group and counter 3 XORs, 3 operations for the carries and two
 * popcounts, popcount(s) + 2 popcount(c), the second by a table of doubled
 * counts: 20 vector operations per three words where XOR, popcount and add
 * take 24.  Taps outside the image count popcount(w) on the zero halo; the
 * driver takes them back (bgemm.c), so border panels need no mask rows. */
#include <immintrin.h>

#include "kernels/bgemm.h"
#include "kernels/x86/dpath_rq_avx2.h"

#define MR 4
#define NR 8
#define NV 2
#define INLINE static inline __attribute__((always_inline))

/* Per-byte popcount (by the table lut: doubled counts for the carries). */
INLINE __m256i popcnt8(__m256i x, __m256i lut, __m256i low)
{
    __m256i lo = _mm256_and_si256(x, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* One step's byte counts of row r's word(s) at ak against the panel's at bk:
 * SIGN a group of three words (the next at ak + sa, bk + sb; a last word
 * alone with sa = sb = 0, as y1 = d = sum make carry 0), else a word of P
 * planes. */
INLINE __m256i step(const int mode, const uint64_t *ak, const uint64_t *bk, int sa, int sb, int r,
                    int v, __m256i lut, __m256i lut2, __m256i low)
{
    const __m256i b0 = _mm256_load_si256((const __m256i *)(bk + 4 * v));
    const __m256i av = _mm256_set1_epi64x((long long)ak[r]);
    if (mode == MDFI_BMODE_SIGN) {
        const __m256i y1 = _mm256_xor_si256(av, b0);
        const __m256i d = _mm256_xor_si256(_mm256_set1_epi64x((long long)ak[sa + r]),
                                           _mm256_load_si256((const __m256i *)(bk + sb + 4 * v)));
        const __m256i sum = _mm256_xor_si256(
            _mm256_set1_epi64x((long long)ak[2 * sa + r]),
            _mm256_load_si256((const __m256i *)(bk + 2 * sb + 4 * v)));
        /* carry = d ? ~sum : y1 = y1 ^ (d & ~(y1 ^ sum)) */
        const __m256i c = _mm256_xor_si256(y1, _mm256_andnot_si256(_mm256_xor_si256(y1, sum), d));
        return _mm256_add_epi8(popcnt8(sum, lut, low), popcnt8(c, lut2, low));
    }
    const __m256i b1 = _mm256_load_si256((const __m256i *)(bk + NR + 4 * v));
    if (mode == MDFI_BMODE_TERNARY)
        return popcnt8(_mm256_and_si256(_mm256_xor_si256(av, b0), b1), lut, low);
    return _mm256_add_epi8(popcnt8(_mm256_and_si256(av, b0), lut, low),
                           popcnt8(_mm256_and_si256(av, b1), lut2, low));
}

INLINE void tile(const int mode, int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i lut2 = _mm256_add_epi8(lut, lut);
    const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    const int P = mode == MDFI_BMODE_SIGN ? 1 : 2;
    /* SIGN: groups of three words, the last K % 3 one by one */
    const int K3 = mode == MDFI_BMODE_SIGN ? K - K % 3 : 0;
    /* words a run: a byte gains at most 8 a word (TERNARY), 8 + 2*8 a group of
     * three or a 2BIT word */
    const int runw = mode == MDFI_BMODE_SIGN ? 30 : mode == MDFI_BMODE_2BIT ? 10 : 31;
    __m256i acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = zero;
    for (int k0 = 0; k0 < K;) {
        const int end = k0 < K3 ? K3 : K, k1 = end - k0 < runw ? end : k0 + runw;
        const int gk = k0 < K3 ? 3 : 1, sa = gk > 1 ? MR : 0, sb = gk > 1 ? NR : 0;
        __m256i cnt[MR][NV];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                cnt[r][v] = zero;
        for (int k = k0; k < k1; k += gk) {
            const uint64_t *ak = a + (size_t)k * MR, *bk = b + (size_t)k * P * NR;
#pragma GCC unroll 4
            for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
                for (int v = 0; v < NV; ++v)
                    cnt[r][v] = _mm256_add_epi8(cnt[r][v],
                                                step(mode, ak, bk, sa, sb, r, v, lut, lut2, low));
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = _mm256_add_epi64(acc[r][v], _mm256_sad_epu8(cnt[r][v], zero));
        k0 = k1;
    }
    /* 64-bit lanes -> int32: the low halves, in order */
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            _mm_store_si128((__m128i *)(p + r * NR + 4 * v),
                            _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc[r][v], pick)));
}

static void ukr_sign(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_SIGN, K, a, b, p);
}

static void ukr_ternary(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_TERNARY, K, a, b, p);
}

static void ukr_2bit(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_2BIT, K, a, b, p);
}

/* Darknet's leaky slope exactly as the scalar epilogue, (float)(.1 * (double)x):
 * with 0.1 = H + L (H = 0.1f, L = (float)(0.1 - H)), fma(x, H, x * L) equals
 * it wherever x * L is a normal float or x is 0 (as the AVX-512 kernel's);
 * the other lanes (|x| below ~2^-96) go through double.  max(y, x) is x for
 * x > 0, NaN and a pair of zeros. */
INLINE __m256 leaky(__m256 x)
{
    const __m256 p = _mm256_mul_ps(x, _mm256_set1_ps(-1.4901161e-9f));
    __m256 y = _mm256_fmadd_ps(x, _mm256_set1_ps(.1f), p);
    const __m256 odd = _mm256_and_ps(
        _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), p), _mm256_set1_ps(0x1p-126f),
                      _CMP_LT_OQ),
        _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_OQ));
    if (_mm256_movemask_ps(odd)) {
        const __m256d tenth = _mm256_set1_pd(.1);
        const __m128 lo = _mm256_cvtpd_ps(
            _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), tenth));
        const __m128 hi = _mm256_cvtpd_ps(
            _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), tenth));
        y = _mm256_blendv_ps(y, _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1), odd);
    }
    return _mm256_max_ps(y, x);
}

/* D of a tile row from its counts p (2 * popcounts) and the column bases. */
INLINE __m256i row_d(const int32_t *p, __m256i bs, int mul)
{
    const __m256i twice = _mm256_slli_epi32(_mm256_load_si256((const __m256i *)p), 1);
    return mul > 0 ? _mm256_add_epi32(bs, twice) : _mm256_sub_epi32(bs, twice);
}

/* Masked stores are slow on AMD cores: only for short tiles. */
INLINE void store_row(float *c, __m256 f, int nv, __m256i mk)
{
    if (nv == NR)
        _mm256_storeu_ps(c, f);
    else
        _mm256_maskstore_ps(c, mk, f);
}

/* Rolled (MDFI_NO_UNSWITCH): GCC's copies per activation and store kind
 * would cost 0.5 KB for no measurable gain. */
static MDFI_NO_UNSWITCH void epi(const int32_t *p, const int32_t *base, int mul, int mv, int nv,
                       const float *alpha, const float *beta, mdfi_epilogue act, float *c,
                       size_t ldc)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), iota);
    const __m256i bs = _mm256_maskload_epi32(base, mk);
    for (int r = 0; r < mv; ++r) {
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(row_d(p + r * NR, bs, mul)),
                                 _mm256_set1_ps(alpha[r]));
        f = _mm256_add_ps(f, _mm256_set1_ps(beta[r]));
        if (act == MDFI_EPI_RELU)
            f = _mm256_and_ps(f, _mm256_cmp_ps(f, _mm256_setzero_ps(), _CMP_GT_OQ));
        else if (act == MDFI_EPI_LEAKY)
            f = leaky(f);
        store_row(c + (size_t)r * ldc, f, nv, mk);
    }
}

/* [dualpath]'s z of a tile: kernels/dpath.h's int32 split (every channel has
 * it and |D| < 2^14: the layer checks), the second source added. */
static MDFI_NO_UNSWITCH void epi_rq(const int32_t *p, const int32_t *base, int mul, int mv,
                                    int nv, const mdfi_bout *o, int m0, size_t n)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), iota);
    const __m256i bs = _mm256_maskload_epi32(base, mk);
    int sm = m0 % o->src_c;   /* the source's channel, stepped: no division per row */
    for (int r = 0; r < mv; ++r, sm = sm + 1 == o->src_c ? 0 : sm + 1) {
        const int m = m0 + r;
        const float *src = o->src + (size_t)sm * o->ldc + n;
        const __m256 f = mdfi_rq_add_src8(mdfi_rq_split8(row_d(p + r * NR, bs, mul), o->rq + m),
                                          nv == NR ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, mk));
        store_row(o->out + (size_t)m * o->ldc + n, f, nv, mk);
    }
}

/* One image row to words (mdfi_bgemm_pack_row), SIGN: 8 pixels at a time,
 * each channel's compare sets its bit in the 8 pixels' 32-bit lanes
 * (channels 0-31 and 32-63 of the word apart), then the halves interleave
 * into the 64-bit words.  The two-plane modes: the portable packer. */
static void pack_row(const mdfi_bquant *q, int C, int W, const float *in, size_t cstride,
                     uint64_t *out, size_t wstride)
{
    if (q->mode != MDFI_BMODE_SIGN) {
        mdfi_bgemm_pack_row_portable(q, C, W, in, cstride, out, wstride);
        return;
    }
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int x0 = 0; x0 < W; x0 += 8) {
        /* lanes of the row (loads), and of its 64-bit words in each half (the
         * last pixels' stores: masked stores are slow on AMD cores, but these
         * are one a row) */
        const __m256i ld = _mm256_cmpgt_epi32(_mm256_set1_epi32(W - x0), iota);
        const __m256i st0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(ld));
        const __m256i st1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(ld, 1));
        for (int c0 = 0; c0 < C; c0 += 64) {
            const float *src = in + (size_t)c0 * cstride + x0;
            __m256i h[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            const int cn = C - c0 < 64 ? C - c0 : 64;
#pragma GCC unroll 1
            for (int ci = 0; ci < cn; ++ci, src += cstride)
                h[ci >> 5] = _mm256_or_si256(h[ci >> 5], _mm256_and_si256(
                    _mm256_castps_si256(_mm256_cmp_ps(_mm256_maskload_ps(src, ld),
                                                      _mm256_setzero_ps(), _CMP_GT_OQ)),
                    _mm256_set1_epi32((int)(1u << (ci & 31)))));
            /* pixel i: h[0] lane i | h[1] lane i << 32, in order */
            const __m256i a = _mm256_unpacklo_epi32(h[0], h[1]);
            const __m256i b = _mm256_unpackhi_epi32(h[0], h[1]);
            long long *o = (long long *)(out + (size_t)(c0 >> 6) * wstride + x0);
            const __m256i lo = _mm256_permute2x128_si256(a, b, 0x20);
            const __m256i hi = _mm256_permute2x128_si256(a, b, 0x31);
            if (W - x0 >= 8) {
                _mm256_storeu_si256((__m256i *)o, lo);
                _mm256_storeu_si256((__m256i *)(o + 4), hi);
            } else {
                _mm256_maskstore_epi64(o, st0, lo);
                _mm256_maskstore_epi64(o + 4, st1, hi);
            }
        }
    }
}

const mdfi_bgemm_kernel mdfi_bgemm_avx2 = {
    .kind = MDFI_BK_AVX2, .mr = MR, .nr = NR, .b_block_words = 32768,
    .ukr = {ukr_sign, ukr_ternary, ukr_2bit}, .grouped = 1, .epi = epi,
    .requant = 1, .epi_rq = epi_rq, .pack_row = pack_row,
};
