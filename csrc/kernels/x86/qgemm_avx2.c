/* AVX2 integer micro-kernels and B interleaves (the epilogue is in
 * qgemm_epi_avx2.c, built for size).
 *
 * Both widths take int16 operands in k pairs and vpmaddwd + vpaddd.  For
 * int8 this means sign-extending when packing: vpmaddubsw (u8 x s8, twice
 * the products per instruction) saturates its int16 pair sums, and with
 * B offset to unsigned a pair can reach 2 * 255 * -128 = -65280, so it is
 * exact only for restricted data; vpmaddwd is exact for all of it.
 * 4 x 16 tiles (two ymm per row): 8 accumulators, two B vectors, a
 * broadcast and the product temporaries.
 *
 * avx2-8p takes the int8 layers whose weights are small enough for
 * vpmaddubsw (quantize --weight-scale mult-pair): B packed as b + 128 (u8) in
 * k groups of 4, as for VNNI, and each pair sum |(b0 a0 + b1 a1)| <= 255 *
 * (|a0| + |a1|) <= 32640 stays inside int16 when |a0| + |a1| <= 128;
 * vpmaddwd by ones adds the two pairs of a group into int32.  32 products
 * per vpmaddubsw against 16 per vpmaddwd: on an AVX2 EPYC (Zen 3) the pair
 * ran 1.46x the products a second of vpmaddwd alone. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define NR 16
#define MAXR 4
#define INLINE static inline __attribute__((always_inline))

INLINE int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- micro-kernels ----------------------------------------------------- */

/* P = 0: int16 pairs (vpmaddwd).  P = 1, avx2-8p: a holds the panel's 4
 * int8 of a group per row, each ymm of b 8 columns x 4 u8 (vpmaddubsw, then
 * vpmaddwd by ones). */
INLINE void tile(const int MR, const int NV, const int P, int ng, const void *a, const void *b,
                 int32_t *acc, int ldacc, int accum)
{
    __m256i c[MAXR][2];
    const __m256i ones = _mm256_set1_epi16(1);
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
                c[r][v] = _mm256_add_epi32(
                    c[r][v], P ? _mm256_madd_epi16(_mm256_maddubs_epi16(bv[v], av), ones)
                               : _mm256_madd_epi16(bv[v], av));
        }
        ap += 4 * MR;
        bp += NV;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            _mm256_storeu_si256((__m256i *)(acc + r * ldacc + 8 * v), c[r][v]);
}

#define UKR(name, MR, NV, P)                                                        \
    static void name(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum) \
    {                                                                               \
        tile(MR, NV, P, ng, a, b, acc, ldacc, accum);                                      \
    }
UKR(u4, 4, 2, 0)
UKR(u4h, 4, 1, 0)
UKR(p4, 4, 2, 1)
UKR(p4h, 4, 1, 1)

/* ---- B interleaves (full 16-column panels) ------------------------------ */

static void interleave_sext(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0], *s1 = src[1];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 16 * p));
        __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 16 * p));
        __m256i *o = (__m256i *)d;
        _mm256_storeu_si256(o, _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1)));
        _mm256_storeu_si256(o + 1, _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1)));
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
            _mm_storeu_si128(o + 2 * h, _mm_unpacklo_epi16(x0, x1));
            _mm_storeu_si128(o + 2 * h + 1, _mm_unpackhi_epi16(x0, x1));
        }
    }
}

/* avx2-8p: four k rows of bytes into column groups of 4, as u8 (b ^ 0x80). */
static void interleave_xor4(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    const __m128i flip = _mm_set1_epi8(-128);
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)(s0 + 16 * p));
        __m128i x1 = _mm_loadu_si128((const __m128i *)(s1 + 16 * p));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(s2 + 16 * p));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(s3 + 16 * p));
        __m128i a = _mm_unpacklo_epi8(x0, x1), b = _mm_unpacklo_epi8(x2, x3);
        __m128i c = _mm_unpackhi_epi8(x0, x1), e = _mm_unpackhi_epi8(x2, x3);
        __m128i *o = (__m128i *)d;
        _mm_storeu_si128(o, _mm_xor_si128(_mm_unpacklo_epi16(a, b), flip));
        _mm_storeu_si128(o + 1, _mm_xor_si128(_mm_unpackhi_epi16(a, b), flip));
        _mm_storeu_si128(o + 2, _mm_xor_si128(_mm_unpacklo_epi16(c, e), flip));
        _mm_storeu_si128(o + 3, _mm_xor_si128(_mm_unpackhi_epi16(c, e), flip));
    }
}

/* ---- tables ------------------------------------------------------------ */

/* MR = 6 (12 accumulators) measured no faster than 4 on yolov3-tiny (AVX2
 * EPYC, 8 interleaved rounds: 51.36 against 51.28 ms), so only 4 is built. */
static const mdfi_qgemm_tile tiles[] = {
    {4, 100, u4, u4h},
};

static const mdfi_qgemm_tile tiles_p[] = {
    {4, 100, p4, p4h},
};

const mdfi_qgemm_kernel mdfi_qgemm_avx2_8 = {
    .name = "avx2-8", .isa = MDFI_ISA_AVX2, .bits = 8, .nr = NR, .kgrp = 2, .kc = 512,
    .b_conv = MDFI_QB_SEXT16, .b_block_bytes = 256 * 1024, .ntiles = 1, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = interleave_sext,
};

const mdfi_qgemm_kernel mdfi_qgemm_avx2_16 = {
    .name = "avx2-16", .isa = MDFI_ISA_AVX2, .bits = 16, .nr = NR, .kgrp = 2, .kc = 512,
    .b_conv = MDFI_QB_SAME, .b_block_bytes = 256 * 1024, .ntiles = 1, .tiles = tiles,
    .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = interleave_i16,
};

const mdfi_qgemm_kernel mdfi_qgemm_avx2_8p = {
    .name = "avx2-8p", .isa = MDFI_ISA_AVX2, .bits = 8, .pair_max = 128, .nr = NR, .kgrp = 4,
    .kc = 512, .b_conv = MDFI_QB_XOR80, .b_block_bytes = 256 * 1024, .ntiles = 1,
    .tiles = tiles_p, .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = interleave_xor4,
};
