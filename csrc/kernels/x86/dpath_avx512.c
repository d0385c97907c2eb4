/* AVX-512 forms of the [dualpath] / [fracconv] packers (kernels/dpath.h).
 * A compare of 16 pixels gives a 16-bit mask directly, and a masked OR sets
 * the channel's bit in the 16 pixels' words (two vectors of 8): per channel
 * and plane a compare and two ORs, where AVX2 widens each compare's lanes
 * to 64 bits first.  Rows of 7 or 14 pixels (common) are one masked step,
 * which reads and writes only the row's own pixels. */
#include <immintrin.h>

#include "kernels/dpath.h"

/* One form for both packers (built for size: the program has little room,
 * docs/architecture.md): frac selects [fracconv]'s second plane (a = shift,
 * b = hi, c = lo), else [dualpath]'s (a = hi, c = lo; second may be NULL). */
static void pack16(int frac, const float *x, size_t cstride, int nc, int w, const float *a,
                   const float *b, const float *c, uint64_t *pos, uint64_t *second)
{
    for (int i = 0; i < w; i += 16) {
        const __mmask16 live = w - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (w - i)) - 1);
        __m512i u0 = _mm512_setzero_si512(), u1 = u0, z0 = u0, z1 = u0;
        __m512i bit = _mm512_set1_epi64(1);
        for (int ch = 0; ch < nc; ++ch, bit = _mm512_add_epi64(bit, bit)) {
            const __m512 v = _mm512_maskz_loadu_ps(live, x + (size_t)ch * cstride + i);
            const __mmask16 up = _mm512_cmp_ps_mask(v, _mm512_set1_ps(a[ch]), _CMP_GT_OQ);
            u0 = _mm512_mask_or_epi64(u0, (__mmask8)up, u0, bit);
            u1 = _mm512_mask_or_epi64(u1, (__mmask8)(up >> 8), u1, bit);
            if (second) {
                __mmask16 z;
                if (frac)   /* x > hi, or x > lo and not x > shift */
                    z = _mm512_cmp_ps_mask(v, _mm512_set1_ps(b[ch]), _CMP_GT_OQ) |
                        (_mm512_cmp_ps_mask(v, _mm512_set1_ps(c[ch]), _CMP_GT_OQ) & ~up);
                else        /* x > hi or x < lo */
                    z = up | _mm512_cmp_ps_mask(v, _mm512_set1_ps(c[ch]), _CMP_LT_OQ);
                z0 = _mm512_mask_or_epi64(z0, (__mmask8)z, z0, bit);
                z1 = _mm512_mask_or_epi64(z1, (__mmask8)(z >> 8), z1, bit);
            }
        }
        _mm512_mask_storeu_epi64(pos + i, (__mmask8)live, u0);
        _mm512_mask_storeu_epi64(pos + i + 8, (__mmask8)(live >> 8), u1);
        if (second) {
            _mm512_mask_storeu_epi64(second + i, (__mmask8)live, z0);
            _mm512_mask_storeu_epi64(second + i + 8, (__mmask8)(live >> 8), z1);
        }
    }
}

void mdfi_dpath_pack_words_avx512(const float *x, size_t cstride, int nc, int w, const float *hi,
                                  const float *lo, uint64_t *pos, uint64_t *nonzero)
{
    pack16(0, x, cstride, nc, w, hi, NULL, lo, pos, nonzero);
}

void mdfi_dpath_pack_frac_words_avx512(const float *x, size_t cstride, int nc, int w,
                                       const float *shift, const float *hi, const float *lo,
                                       uint64_t *s1, uint64_t *s0)
{
    pack16(1, x, cstride, nc, w, shift, hi, lo, s1, s0);
}
