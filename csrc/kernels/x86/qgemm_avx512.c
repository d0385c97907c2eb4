/* AVX-512BW integer micro-kernels (CPUs without VNNI) and B interleaves
 * (also used by the VNNI variants, whose CPUs all have BW); the
 * requantization epilogue is the AVX2 one (qgemm_epi_avx2.c).
 *
 * Both widths take int16 operands in k pairs (int8 is sign-extended when
 * packed) and vpmaddwd: two s16 x s16 products summed into int32 (exact:
 * the only wrapping case, -32768 * -32768 twice, breaks the caller's bound
 * on the total anyway), then vpaddd.  8 x 32 tiles (16 accumulators), A
 * broadcast a pair at a time.  A 12 x 32 tile also fits the 32 registers; it
 * went for room, its weight in the tile choice saying it was no faster a row. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define NR 32
#define MAXR 8
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
    __m512i c[MAXR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            c[r][v] = accum ? _mm512_loadu_si512(acc + r * ldacc + 16 * v) : _mm512_setzero_si512();
    const char *ap = a;
    const __m512i *bp = b;
    for (int g = 0; g < ng; ++g) {
        __m512i bv[2];
        for (int v = 0; v < NV; ++v)
            bv[v] = _mm512_load_si512(bp + v);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            __m512i av = _mm512_set1_epi32(load32(ap + 4 * r));
            for (int v = 0; v < NV; ++v)
                c[r][v] = _mm512_add_epi32(c[r][v], _mm512_madd_epi16(bv[v], av));
        }
        ap += 4 * MR;
        bp += NV;
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            _mm512_storeu_si512(acc + r * ldacc + 16 * v, c[r][v]);
}

#define UKR(name, MR, NV)                                                           \
    static void name(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum) \
    {                                                                               \
        tile(MR, NV, ng, a, b, acc, ldacc, accum);                                         \
    }
UKR(u8, 8, 2)
UKR(u8h, 8, 1)

/* ---- B interleaves (full 32-column panels) ------------------------------ */

/* int8 rows to int16 pairs, 32-column panels: dst[2j + t] = src[t][j]. */
static void interleave_sext(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0], *s1 = src[1];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        for (int h = 0; h < 2; ++h) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 32 * p + 16 * h));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 32 * p + 16 * h));
            __m256i lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1));
            __m256i hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1));
            _mm256_storeu_si256((__m256i *)(d + 64 * h), lo);
            _mm256_storeu_si256((__m256i *)(d + 64 * h + 32), hi);
        }
    }
}

/* int16 rows to int16 pairs, 32-column panels. */
void mdfi_qgemm_interleave_avx512_i16(void *dst, size_t step, const void *const *src, int np)
{
    const int16_t *s0 = src[0], *s1 = src[1];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        for (int h = 0; h < 4; ++h) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 32 * p + 8 * h));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 32 * p + 8 * h));
            _mm_storeu_si128((__m128i *)(d + 32 * h), _mm_unpacklo_epi16(x0, x1));
            _mm_storeu_si128((__m128i *)(d + 32 * h + 16), _mm_unpackhi_epi16(x0, x1));
        }
    }
}

/* ---- tables ------------------------------------------------------------ */

static const mdfi_qgemm_tile tiles[] = {
    {8, 100, u8, u8h},
};

const mdfi_qgemm_kernel mdfi_qgemm_avx512_8 = {
    .name = "avx512-8", .isa = MDFI_ISA_AVX512, .bits = 8, .nr = NR, .kgrp = 2, .kc = 768,
    .b_conv = MDFI_QB_SEXT16, .b_block_bytes = 512 * 1024, .ntiles = 1, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = interleave_sext,
};

const mdfi_qgemm_kernel mdfi_qgemm_avx512_16 = {
    .name = "avx512-16", .isa = MDFI_ISA_AVX512, .bits = 16, .nr = NR, .kgrp = 2, .kc = 768,
    .b_conv = MDFI_QB_SAME, .b_block_bytes = 512 * 1024, .ntiles = 1, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = mdfi_qgemm_interleave_avx512_i16,
};
