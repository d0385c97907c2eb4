/* AVX2 form of mdfi_dpath_requant (kernels/dpath.h), eight outputs a step:
 * by the channel's int32 split where every |D| of the step is below 2^14,
 * else by the int64 definition (|mul| <= 2^30 and |D| < 2^24 fit vpmuldq's
 * signed 32 x 32 -> 64 bit products).  The row's tail is one masked step
 * (rows of 7, 14 or 49 pixels are common). */
#include <immintrin.h>

#include "kernels/dpath.h"
#include "kernels/dpath_gated.h"
#include "kernels/x86/dpath_rows3.h"
#include "kernels/x86/dpath_rq_avx2.h"

/* r(D) of eight D by the definition */
static __m256i requant_def8(__m256i dv, const mdfi_dpath_rq *q)
{
    const __m256i vmul = _mm256_set1_epi64x(q->mul);
    const __m256i vadd = _mm256_set1_epi64x(q->off + ((int64_t)1 << 62));
    const __m256i lift = _mm256_set1_epi64x(((int64_t)1 << 62) >> q->s);
    const __m128i count = _mm_cvtsi32_si128(q->s);
    const __m256i hi64 = _mm256_set1_epi64x((int64_t)1 << 24), lo64 = _mm256_set1_epi64x(-((int64_t)1 << 24));
    __m256i r[2];
    for (int k = 0; k < 2; ++k) {   /* even, then odd elements: one per 64-bit lane */
        __m256i v = _mm256_mul_epi32(k ? _mm256_srli_epi64(dv, 32) : dv, vmul);
        v = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(v, vadd), count), lift);
        v = _mm256_blendv_epi8(v, hi64, _mm256_cmpgt_epi64(v, hi64));
        r[k] = _mm256_blendv_epi8(v, lo64, _mm256_cmpgt_epi64(lo64, v));
    }
    return _mm256_blend_epi32(r[0], _mm256_slli_epi64(r[1], 32), 0xAA);
}

void mdfi_dpath_requant_avx2(float *d, const float *d0, const float *src, size_t n,
                             const mdfi_dpath_rq *q)
{
    const __m256i small = _mm256_set1_epi32((1 << 14) - 1);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t i = 0; i < n; i += 8) {
        const int full = n - i >= 8;
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(full ? 8 : (int)(n - i)), iota);
        __m256i D = _mm256_cvttps_epi32(full ? _mm256_loadu_ps(d + i) : _mm256_maskload_ps(d + i, live));
        if (d0)
            D = _mm256_add_epi32(_mm256_slli_epi32(D, 1), _mm256_cvttps_epi32(
                full ? _mm256_loadu_ps(d0 + i) : _mm256_maskload_ps(d0 + i, live)));
        const __m256 sv = full ? _mm256_loadu_ps(src + i) : _mm256_maskload_ps(src + i, live);
        const __m256i big = _mm256_cmpgt_epi32(_mm256_abs_epi32(D), small);
        const __m256i r = q->split && _mm256_testz_si256(big, big) ? mdfi_rq_split8(D, q)
                                                                    : requant_def8(D, q);
        const __m256 f = mdfi_rq_add_src8(r, sv);
        if (full)
            _mm256_storeu_ps(d + i, f);
        else
            _mm256_maskstore_ps(d + i, live, f);
    }
}

/* Eight pixels a step, every channel of the word ORed into registers and the
 * words stored once; the row's tail is one masked step (rows of 7 or 14
 * pixels are common), reading and writing only its own pixels.  FRAC: the
 * planes of mdfi_dpath_pack_frac_words (a = shift, b = hi, c = lo), else
 * those of mdfi_dpath_pack_words (a = hi, c = lo; nonzero may be NULL).  One
 * copy for both (the branches on FRAC and second are the same for a whole
 * row): the program has little room. */
static void pack8(const int FRAC, const float *x, size_t cstride, int nc, int w, const float *a,
                  const float *b, const float *c, uint64_t *pos, uint64_t *second)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi64x(1);
    for (int i = 0; i < w; i += 8) {
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(w - i), iota);
        __m256i u0 = _mm256_setzero_si256(), u1 = u0, z0 = u0, z1 = u0, bit = one;
        for (int ch = 0; ch < nc; ++ch) {
            const float *xc = x + (size_t)ch * cstride + i;
            const __m256 v = w - i >= 8 ? _mm256_loadu_ps(xc) : _mm256_maskload_ps(xc, live);
            const __m256 up = _mm256_cmp_ps(v, _mm256_set1_ps(a[ch]), _CMP_GT_OQ);
            const __m256i upi = _mm256_castps_si256(up);
            u0 = _mm256_or_si256(u0, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(upi)), bit));
            u1 = _mm256_or_si256(u1, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(upi, 1)), bit));
            if (second) {
                __m256 z;
                if (FRAC)   /* x > hi, or x > lo and not x > shift */
                    z = _mm256_or_ps(_mm256_cmp_ps(v, _mm256_set1_ps(b[ch]), _CMP_GT_OQ),
                                     _mm256_andnot_ps(up, _mm256_cmp_ps(v, _mm256_set1_ps(c[ch]),
                                                                        _CMP_GT_OQ)));
                else        /* x > hi or x < lo */
                    z = _mm256_or_ps(up, _mm256_cmp_ps(v, _mm256_set1_ps(c[ch]), _CMP_LT_OQ));
                const __m256i nz = _mm256_castps_si256(z);
                z0 = _mm256_or_si256(z0, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(nz)), bit));
                z1 = _mm256_or_si256(z1, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(nz, 1)), bit));
            }
            bit = _mm256_slli_epi64(bit, 1);
        }
        long long *p = (long long *)(pos + i), *q = (long long *)(second ? second + i : NULL);
        if (w - i >= 8) {
            _mm256_storeu_si256((__m256i *)p, u0);
            _mm256_storeu_si256((__m256i *)(p + 4), u1);
            if (q) {
                _mm256_storeu_si256((__m256i *)q, z0);
                _mm256_storeu_si256((__m256i *)(q + 4), z1);
            }
        } else {
            const __m256i l0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(live));
            const __m256i l1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(live, 1));
            _mm256_maskstore_epi64(p, l0, u0);
            _mm256_maskstore_epi64(p + 4, l1, u1);
            if (q) {
                _mm256_maskstore_epi64(q, l0, z0);
                _mm256_maskstore_epi64(q + 4, l1, z1);
            }
        }
    }
}

void mdfi_dpath_pack_words_avx2(const float *x, size_t cstride, int nc, int w, const float *hi,
                                const float *lo, uint64_t *pos, uint64_t *nonzero)
{
    pack8(0, x, cstride, nc, w, hi, NULL, lo, pos, nonzero);
}

void mdfi_dpath_pack_frac_words_avx2(const float *x, size_t cstride, int nc, int w,
                                     const float *shift, const float *hi, const float *lo,
                                     uint64_t *s1, uint64_t *s0)
{
    pack8(1, x, cstride, nc, w, shift, hi, lo, s1, s0);
}

/* ---- mdfi_dpath_gated --------------------------------------------------- */

/* The lanes set in a 4-bit mask, as byte indices from the low byte up. */
static const uint32_t lanes_of[16] = {
    0x00000000u, 0x00000000u, 0x00000001u, 0x00000100u, 0x00000002u, 0x00000200u,
    0x00000201u, 0x00020100u, 0x00000003u, 0x00000300u, 0x00000301u, 0x00030100u,
    0x00000302u, 0x00030200u, 0x00030201u, 0x03020100u};

/* mdfi_gated_list eight pixels a step: 2 D1 by integer adds (exact), the
 * gate's compare as a mask, whose set lanes are written to the list four at
 * a time (a store of four indices of which the first popcount(mask) count;
 * the rest are overwritten or lie past the end, inside the list's n1 - n0). */
int mdfi_dpath_gated_list_avx2(float *out, int n0, int n1, int32_t G, int32_t *list)
{
    const __m256i vG = _mm256_set1_epi32(G);
    int k = 0, n = n0;
    for (; n + 8 <= n1; n += 8) {
        __m256i d = _mm256_cvttps_epi32(_mm256_loadu_ps(out + n));
        d = _mm256_add_epi32(d, d);
        _mm256_storeu_ps(out + n, _mm256_cvtepi32_ps(d));
        const unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_cmpgt_epi32(d, vG)));
        const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)lanes_of[mask & 15]));
        _mm_storeu_si128((__m128i *)(list + k), _mm_add_epi32(lo, _mm_set1_epi32(n)));
        k += __builtin_popcount(mask & 15);
        const __m128i hi = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)lanes_of[mask >> 4]));
        _mm_storeu_si128((__m128i *)(list + k), _mm_add_epi32(hi, _mm_set1_epi32(n + 4)));
        k += __builtin_popcount(mask >> 4);
    }
    return k + mdfi_gated_list(out, n, n1, G, list + k);
}

/* Byte counts of the set bits. */
static inline __m256i popcnt_bytes(__m256i x)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
}

/* mdfi_gated_counts for 3 x 3 filters of W = 1 or 2 words: one window row
 * (three words) a vector, its fourth lane masked off on load (and not
 * read), the nibble lookup's byte counts summed over the window's 3 W rows
 * (at most 8 W each) and then over the bytes. */
static void counts3(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                    const int32_t *kc, float *out, const int32_t *list, int k)
{
    const __m256i m3 = _mm256_setr_epi64x(-1, -1, -1, 0);
    const int W = g->words;
    const ptrdiff_t pw = g->pw;
    __m256i a[6];   /* [word plane][window row]: the filter's three words */
    mdfi_rows3_filter(w, W, a);
    for (int j = 0; j < k; ++j) {
        const int32_t n = list[j];
        __m256i c = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int cw = 0; cw < W; ++cw) {
            const long long *p = (const long long *)(s0 + g->base[n] + cw * g->plane);
            const __m256i *ar = a + 3 * cw;
            const __m256i x0 = _mm256_xor_si256(_mm256_maskload_epi64(p, m3), ar[0]);
            const __m256i x1 = _mm256_xor_si256(_mm256_maskload_epi64(p + pw, m3), ar[1]);
            const __m256i x2 = _mm256_xor_si256(_mm256_maskload_epi64(p + 2 * pw, m3), ar[2]);
            c = _mm256_add_epi8(c, _mm256_add_epi8(popcnt_bytes(x0), _mm256_add_epi8(
                                                       popcnt_bytes(x1), popcnt_bytes(x2))));
        }
        mdfi_gated_finish(out, n, kc, g->cls,
                          mdfi_rows3_sum(_mm256_sad_epu8(c, _mm256_setzero_si256())));
    }
}

int mdfi_dpath_gated_avx2(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                          const int32_t *kc, int32_t G, float *out, int n0, int n1,
                          int32_t *list)
{
    const int k = mdfi_dpath_gated_list_avx2(out, n0, n1, G, list);
    if (g->ksize == 3 && g->words <= 2)
        counts3(g, s0, w, kc, out, list, k);
    else
        mdfi_dpath_gated_counts_popcnt(g, s0, w, kc, out, list, k);
    return k;
}
