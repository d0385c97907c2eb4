/* What the AVX2 and VPOPCNT forms of [fracconv]'s gated pass share for 3 x 3
 * filters of W = 1 or 2 words (kernels/x86/dpath_avx2.c,
 * dpath_avx512vpopcnt.c): the filter's window rows as vectors, and the sum of
 * a vector's four 64-bit lanes.  For files built with AVX2 (or more). */
#ifndef MDFI_KERNELS_X86_DPATH_ROWS3_H
#define MDFI_KERNELS_X86_DPATH_ROWS3_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* a[cw * 3 + ky]: the three words of window row ky in word plane cw (the
 * filter's words in the gated pass's tap-major order), a zero fourth lane. */
static inline __attribute__((always_inline)) void mdfi_rows3_filter(const uint64_t *w, int W,
                                                                    __m256i *a)
{
    for (int r = 0; r < 3 * W; ++r) {
        const uint64_t *wr = w + (size_t)(r % 3) * 3 * W + r / 3;
        a[r] = _mm256_setr_epi64x((long long)wr[0], (long long)wr[W], (long long)wr[2 * W], 0);
    }
}

static inline __attribute__((always_inline)) int mdfi_rows3_sum(__m256i c)
{
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    return _mm_cvtsi128_si32(_mm_add_epi64(h, _mm_unpackhi_epi64(h, h)));
}

#endif
