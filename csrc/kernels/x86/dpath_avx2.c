/* AVX2 form of mdfi_dpath_requant (kernels/dpath.h): eight outputs a step,
 * the same integers as the portable loop.  |mul| <= 2^30 and |D| < 2^24 fit
 * vpmuldq's signed 32 x 32 -> 64 bit products, so the int64 arithmetic of
 * the definition is exact here too. */
#include <immintrin.h>

#include "kernels/dpath.h"

void mdfi_dpath_requant_avx2(float *d, const float *src, size_t n, int64_t mul, int64_t off,
                             int s)
{
    const __m256i vmul = _mm256_set1_epi64x(mul);
    const __m256i vadd = _mm256_set1_epi64x(off + ((int64_t)1 << 62));
    const __m256i lift = _mm256_set1_epi64x(((int64_t)1 << 62) >> s);
    const __m128i count = _mm_cvtsi32_si128(s);
    const __m256i hi64 = _mm256_set1_epi64x((int64_t)1 << 24), lo64 = _mm256_set1_epi64x(-((int64_t)1 << 24));
    const __m256i hi32 = _mm256_set1_epi32(1 << 24), lo32 = _mm256_set1_epi32(-(1 << 24));
    const __m256 fhi = _mm256_set1_ps(16777216.0f), flo = _mm256_set1_ps(-16777216.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i dv = _mm256_cvttps_epi32(_mm256_loadu_ps(d + i));
        __m256i r[2];
        for (int k = 0; k < 2; ++k) {   /* even, then odd elements: one per 64-bit lane */
            __m256i v = _mm256_mul_epi32(k ? _mm256_srli_epi64(dv, 32) : dv, vmul);
            v = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(v, vadd), count), lift);
            v = _mm256_blendv_epi8(v, hi64, _mm256_cmpgt_epi64(v, hi64));
            r[k] = _mm256_blendv_epi8(v, lo64, _mm256_cmpgt_epi64(lo64, v));
        }
        const __m256i r32 = _mm256_blend_epi32(r[0], _mm256_slli_epi64(r[1], 32), 0xAA);
        __m256 sv = _mm256_loadu_ps(src + i);
        sv = _mm256_and_ps(sv, _mm256_cmp_ps(sv, sv, _CMP_ORD_Q));   /* NaN -> 0 */
        sv = _mm256_min_ps(_mm256_max_ps(sv, flo), fhi);
        sv = _mm256_round_ps(sv, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256i t = _mm256_add_epi32(r32, _mm256_cvtps_epi32(sv));
        t = _mm256_min_epi32(_mm256_max_epi32(t, lo32), hi32);
        _mm256_storeu_ps(d + i, _mm256_cvtepi32_ps(t));
    }
    if (i < n)
        mdfi_dpath_requant(d + i, src + i, n - i, mul, off, s);
}

/* Eight pixels a step: the compares as lane masks, widened to 64 bits and
 * ORed into the pixels' words (NaN compares false, as in the scalar loop). */
void mdfi_dpath_pack_row_avx2(const float *x, int w, float hi, float lo, uint64_t bit,
                              uint64_t *pos, uint64_t *nonzero)
{
    const __m256 vhi = _mm256_set1_ps(hi), vlo = _mm256_set1_ps(lo);
    const __m256i vbit = _mm256_set1_epi64x((long long)bit);
    int i = 0;
    for (; i + 8 <= w; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(v, vhi, _CMP_GT_OQ));
        __m256i *p = (__m256i *)(pos + i);
        const __m256i u0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(up));
        const __m256i u1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(up, 1));
        _mm256_storeu_si256(p, _mm256_or_si256(_mm256_loadu_si256(p), _mm256_and_si256(u0, vbit)));
        _mm256_storeu_si256(p + 1,
                            _mm256_or_si256(_mm256_loadu_si256(p + 1), _mm256_and_si256(u1, vbit)));
        if (nonzero) {
            const __m256i nz = _mm256_or_si256(
                up, _mm256_castps_si256(_mm256_cmp_ps(v, vlo, _CMP_LT_OQ)));
            __m256i *q = (__m256i *)(nonzero + i);
            const __m256i n0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(nz));
            const __m256i n1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(nz, 1));
            _mm256_storeu_si256(q, _mm256_or_si256(_mm256_loadu_si256(q), _mm256_and_si256(n0, vbit)));
            _mm256_storeu_si256(q + 1, _mm256_or_si256(_mm256_loadu_si256(q + 1),
                                                       _mm256_and_si256(n1, vbit)));
        }
    }
    if (i < w)
        mdfi_dpath_pack_row(x + i, w - i, hi, lo, bit, pos + i, nonzero ? nonzero + i : NULL);
}
