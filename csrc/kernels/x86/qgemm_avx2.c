/* AVX2 integer micro-kernels and B interleaves (the epilogue is in
 * qgemm_epi_avx2.c, built for size).
 *
 * Both widths take int16 operands in k pairs and vpmaddwd + vpaddd.  For
 * int8 this means sign-extending when packing: vpmaddubsw (u8 x s8, twice
 * the products per instruction) saturates its int16 pair sums, and with
 * B offset to unsigned a pair can reach 2 * 255 * -128 = -65280, so it is
 * exact only for restricted data; vpmaddwd is exact for all of it.
 * MR x 16 tiles (two ymm per row): 6 x 16 takes 12 accumulators, two B
 * vectors, a broadcast and a product temporary, the 16 registers. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define NR 16
#define MAXR 6
#define INLINE static inline __attribute__((always_inline))

INLINE int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- micro-kernels ----------------------------------------------------- */

INLINE void tile(const int MR, const int NV, int ng, const void *a, const void *b, int32_t *acc,
                 int ldacc, int accum)
{
    __m256i c[MAXR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            c[r][v] = accum ? _mm256_loadu_si256((const __m256i *)(acc + r * ldacc + 8 * v))
                            : _mm256_setzero_si256();
    const char *ap = a;
    const __m256i *bp = b;
    for (int g = 0; g < ng; ++g) {
        __m256i bv[2];
        for (int v = 0; v < NV; ++v)
            bv[v] = _mm256_load_si256(bp + v);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m256i av = _mm256_set1_epi32(load32(ap + 4 * r));
            for (int v = 0; v < NV; ++v)
                c[r][v] = _mm256_add_epi32(c[r][v], _mm256_madd_epi16(bv[v], av));
        }
        ap += 4 * MR;
        bp += NV;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            _mm256_storeu_si256((__m256i *)(acc + r * ldacc + 8 * v), c[r][v]);
}

#define UKR(name, MR, NV)                                                           \
    static void name(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum) \
    {                                                                               \
        tile(MR, NV, ng, a, b, acc, ldacc, accum);                                         \
    }
UKR(u6, 6, 2)
UKR(u4, 4, 2)
UKR(u6h, 6, 1)
UKR(u4h, 4, 1)

/* ---- B interleaves (full 16-column panels) ------------------------------ */

static void interleave_sext(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0], *s1 = src[1];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 16 * p));
        __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 16 * p));
        __m256i *o = (__m256i *)d;
        _mm256_store_si256(o, _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1)));
        _mm256_store_si256(o + 1, _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1)));
    }
}

static void interleave_i16(void *dst, size_t step, const void *const *src, int np)
{
    const int16_t *s0 = src[0], *s1 = src[1];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        __m128i *o = (__m128i *)d;
        for (int h = 0; h < 2; ++h) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 16 * p + 8 * h));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 16 * p + 8 * h));
            _mm_store_si128(o + 2 * h, _mm_unpacklo_epi16(x0, x1));
            _mm_store_si128(o + 2 * h + 1, _mm_unpackhi_epi16(x0, x1));
        }
    }
}

/* ---- tables ------------------------------------------------------------ */

static const mdfi_qgemm_tile tiles[] = {
    {6, 101, u6, u6h},
    {4, 100, u4, u4h},
};

const mdfi_qgemm_kernel mdfi_qgemm_avx2_8 = {
    .name = "avx2-8", .isa = MDFI_ISA_AVX2, .bits = 8, .nr = NR, .kgrp = 2, .kc = 512,
    .b_conv = MDFI_QB_SEXT16, .b_block_bytes = 256 * 1024, .ntiles = 2, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2, .interleave = interleave_sext,
};

const mdfi_qgemm_kernel mdfi_qgemm_avx2_16 = {
    .name = "avx2-16", .isa = MDFI_ISA_AVX2, .bits = 16, .nr = NR, .kgrp = 2, .kc = 512,
    .b_conv = MDFI_QB_SAME, .b_block_bytes = 256 * 1024, .ntiles = 2, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2, .interleave = interleave_i16,
};
