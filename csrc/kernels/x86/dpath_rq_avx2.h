/* The requantization of kernels/dpath.h in AVX2, eight values: what the
 * requantization loop (kernels/x86/dpath_avx2.c) and the AVX2 binary
 * kernel's own epilogue (bgemm_avx2.c) share.  For files built with AVX2. */
#ifndef MDFI_KERNELS_X86_DPATH_RQ_AVX2_H
#define MDFI_KERNELS_X86_DPATH_RQ_AVX2_H

#include <immintrin.h>

#include "kernels/dpath.h"

/* r(D) by q's int32 split: q->split holds and every |D| < 2^14. */
static inline __attribute__((always_inline)) __m256i mdfi_rq_split8(__m256i D,
                                                                   const mdfi_dpath_rq *q)
{
    const __m256i L = _mm256_add_epi32(_mm256_mullo_epi32(D, _mm256_set1_epi32(q->ml)),
                                       _mm256_set1_epi32(q->ol));
    __m256i r = _mm256_add_epi32(_mm256_mullo_epi32(D, _mm256_set1_epi32(q->mh)),
                                 _mm256_set1_epi32(q->oh));
    r = _mm256_sra_epi32(_mm256_add_epi32(r, _mm256_srai_epi32(L, 16)),
                         _mm_cvtsi32_si128(q->s - 16));
    return _mm256_min_epi32(_mm256_max_epi32(r, _mm256_set1_epi32(-(1 << 24))),
                            _mm256_set1_epi32(1 << 24));
}

/* z = clamp(r + rint(clamp(src)), +-2^24) as floats, NaN sources read as 0. */
static inline __attribute__((always_inline)) __m256 mdfi_rq_add_src8(__m256i r, __m256 src)
{
    const __m256 fhi = _mm256_set1_ps(16777216.0f), flo = _mm256_set1_ps(-16777216.0f);
    src = _mm256_and_ps(src, _mm256_cmp_ps(src, src, _CMP_ORD_Q));
    src = _mm256_min_ps(_mm256_max_ps(src, flo), fhi);
    src = _mm256_round_ps(src, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i t = _mm256_add_epi32(r, _mm256_cvtps_epi32(src));
    return _mm256_cvtepi32_ps(_mm256_min_epi32(_mm256_max_epi32(t, _mm256_set1_epi32(-(1 << 24))),
                                               _mm256_set1_epi32(1 << 24)));
}

#endif
