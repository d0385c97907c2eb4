/* What the AVX2 fp32 tiles (sgemm_avx2.c) and the AVX2 gemv
 * (sgemm_gemv_avx2.c) share: the epilogue and lane masks.  Only for files
 * built with AVX2 and FMA. */
#ifndef MDFI_KERNELS_X86_SGEMM_AVX2_OPS_H
#define MDFI_KERNELS_X86_SGEMM_AVX2_OPS_H

#include <immintrin.h>

#include "kernels/sgemm_impl.h"

#define INLINE static inline __attribute__((always_inline))

/* Darknet's leaky slope as the correctly rounded x / 10 (see sgemm_impl.h). */
INLINE __m256 leaky(__m256 x)
{
    const __m256 tenth = _mm256_set1_ps(MDFI_LEAKY_C), ten = _mm256_set1_ps(10.f);
    __m256 q = _mm256_mul_ps(x, tenth);
    __m256 r = _mm256_fnmadd_ps(q, ten, x);
    __m256 y = _mm256_fmadd_ps(r, tenth, q);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
}

INLINE __m256 finish(__m256 x, __m256 bias, mdfi_epilogue epi)
{
    x = _mm256_add_ps(x, bias);
    if (epi == MDFI_EPI_RELU)
        return _mm256_max_ps(x, _mm256_setzero_ps());
    if (epi == MDFI_EPI_LEAKY)
        return leaky(x);
    return x;
}

/* Lanes j with j + base < nv. */
INLINE __m256i lane_mask(int nv, int base)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(nv - base), iota);
}

#endif
