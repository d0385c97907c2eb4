/* AVX-512 VNNI integer micro-kernels: MR x 32 tiles, two zmm of int32 sums
 * per row, A broadcast 32 bits at a time (4 int8 or 2 int16 k values).
 *   int8:  vpdpbusd multiplies unsigned bytes by signed bytes, so B is
 *          packed as b + 128 (uint8) and the packed A carries
 *          corr[m] = 128 * sum_k A[m][k], subtracted in the epilogue; the
 *          instruction sums four u8 x s8 products into int32 with no
 *          intermediate saturation, so the result is exact.
 *   int16: vpdpwssd sums two s16 x s16 products into int32 (wrapping only
 *          where the caller's bound on the total already fails).
 * MR = 14 uses 28 accumulators of the 32 registers. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define NR 32
#define MAXR 14
#define INLINE static inline __attribute__((always_inline))

INLINE int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* MR x (16*NV) tile over ng groups; W16: int16 operands (vpdpwssd). */
INLINE void tile(const int MR, const int NV, const int W16, int ng, const void *a,
                 const void *b, int32_t *acc, int ldacc, int accum)
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
                c[r][v] = W16 ? _mm512_dpwssd_epi32(c[r][v], bv[v], av)
                              : _mm512_dpbusd_epi32(c[r][v], bv[v], av);
        }
        ap += 4 * MR;
        bp += NV;
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            _mm512_storeu_si512(acc + r * ldacc + 16 * v, c[r][v]);
}

#define UKR(name, MR, NV, W16)                                                         \
    static void name(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum) \
    {                                                                               \
        tile(MR, NV, W16, ng, a, b, acc, ldacc, accum);                                    \
    }
UKR(u8_14, 14, 2, 0)
UKR(u8_12, 12, 2, 0)
UKR(u8_8, 8, 2, 0)
UKR(u8_14h, 14, 1, 0)
UKR(u8_12h, 12, 1, 0)
UKR(u8_8h, 8, 1, 0)
UKR(u16_14, 14, 2, 1)
UKR(u16_12, 12, 2, 1)
UKR(u16_8, 8, 2, 1)
UKR(u16_14h, 14, 1, 1)
UKR(u16_12h, 12, 1, 1)
UKR(u16_8h, 8, 1, 1)

/* int8 rows to u8 quads, 32-column panels: dst[4j + t] = src[t][j] ^ 0x80.
 * Byte then word unpacks within 128-bit lanes, then the lanes put in
 * order. */
static void interleave_xor(void *dst, size_t step, const void *const *src, int np)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const __m256i *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        __m256i x0 = _mm256_xor_si256(_mm256_loadu_si256(s0 + p), flip);
        __m256i x1 = _mm256_xor_si256(_mm256_loadu_si256(s1 + p), flip);
        __m256i x2 = _mm256_xor_si256(_mm256_loadu_si256(s2 + p), flip);
        __m256i x3 = _mm256_xor_si256(_mm256_loadu_si256(s3 + p), flip);
        __m256i p01l = _mm256_unpacklo_epi8(x0, x1), p01h = _mm256_unpackhi_epi8(x0, x1);
        __m256i p23l = _mm256_unpacklo_epi8(x2, x3), p23h = _mm256_unpackhi_epi8(x2, x3);
        /* q0: columns 0-3 | 16-19, q1: 4-7 | 20-23, q2: 8-11 | 24-27, q3: 12-15 | 28-31 */
        __m256i q0 = _mm256_unpacklo_epi16(p01l, p23l), q1 = _mm256_unpackhi_epi16(p01l, p23l);
        __m256i q2 = _mm256_unpacklo_epi16(p01h, p23h), q3 = _mm256_unpackhi_epi16(p01h, p23h);
        __m256i *o = (__m256i *)d;
        _mm256_storeu_si256(o, _mm256_permute2x128_si256(q0, q1, 0x20));
        _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(q2, q3, 0x20));
        _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(q0, q1, 0x31));
        _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(q2, q3, 0x31));
    }
}

/* cost: measured time per row of each tile on YOLOv3-tiny shapes, relative
 * (MR = 8 runs about 3% slower per row where K is long). */
static const mdfi_qgemm_tile tiles8[] = {
    {14, 100, u8_14, u8_14h},
    {12, 101, u8_12, u8_12h},
    {8, 103, u8_8, u8_8h},
};

static const mdfi_qgemm_tile tiles16[] = {
    {14, 100, u16_14, u16_14h},
    {12, 101, u16_12, u16_12h},
    {8, 103, u16_8, u16_8h},
};

const mdfi_qgemm_kernel mdfi_qgemm_avx512vnni_8 = {
    .name = "avx512vnni-8", .isa = MDFI_ISA_AVX512, .bits = 8, .needs = MDFI_CPU_VNNI,
    .nr = NR, .kgrp = 4, .kc = 1152, .b_conv = MDFI_QB_XOR80, .b_block_bytes = 512 * 1024,
    .ntiles = 3, .tiles = tiles8, .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2, .interleave = interleave_xor,
};

const mdfi_qgemm_kernel mdfi_qgemm_avx512vnni_16 = {
    .name = "avx512vnni-16", .isa = MDFI_ISA_AVX512, .bits = 16, .needs = MDFI_CPU_VNNI,
    .nr = NR, .kgrp = 2, .kc = 576, .b_conv = MDFI_QB_SAME, .b_block_bytes = 512 * 1024,
    .ntiles = 3, .tiles = tiles16, .epi = mdfi_qgemm_epi_avx2,
    .epi_pairs = mdfi_qgemm_epi_pairs_avx2,
    .interleave = mdfi_qgemm_interleave_avx512_i16,
};
