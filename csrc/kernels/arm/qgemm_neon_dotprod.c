/* AArch64 int8 micro-kernels for CPUs with the ARMv8.2 dot product
 * instructions (built with +dotprod, chosen at run time by
 * MDFI_CPU_DOTPROD).  sdot by lane sums four int8 x int8 products into each
 * int32 lane, exact, and takes both operands signed: no offset needed.
 * k groups of 4: a B vector holds 4 columns x 4 k, an A vector 4 rows x
 * 4 k (one row per 32-bit lane).  MR x 12 tiles: 8 x 12 takes 24
 * accumulators, 3 B and 2 A registers.  Epilogue: the NEON one. */
#include <arm_neon.h>

#include "kernels/qgemm_impl.h"

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_DOTPROD)
#error "qgemm_neon_dotprod.c needs AArch64 with -march=armv8.2-a+dotprod"
#endif

#define NR 12
#define MAXR 8
#define INLINE static inline __attribute__((always_inline))

/* Row r of the tile += B * lane of A. */
#define ROW(r, av, lane)                                           \
    do {                                                           \
        c[r][0] = vdotq_laneq_s32(c[r][0], b0, av, lane);          \
        c[r][1] = vdotq_laneq_s32(c[r][1], b1, av, lane);          \
        c[r][2] = vdotq_laneq_s32(c[r][2], b2, av, lane);          \
    } while (0)

INLINE void tile(const int MR, int ng, const void *a_, const void *b_, int32_t *acc, int ldacc,
                 int accum)
{
    const int8_t *a = a_, *b = b_;
    int32x4_t c[MAXR][3];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v)
            c[r][v] = accum ? vld1q_s32(acc + r * ldacc + 4 * v) : vdupq_n_s32(0);
    for (int g = 0; g < ng; ++g) {
        int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16), b2 = vld1q_s8(b + 32);
        int8x16_t a0 = vld1q_s8(a);
        ROW(0, a0, 0);
        ROW(1, a0, 1);
        ROW(2, a0, 2);
        ROW(3, a0, 3);
        if (MR == 8) {
            int8x16_t a1 = vld1q_s8(a + 16);
            ROW(4, a1, 0);
            ROW(5, a1, 1);
            ROW(6, a1, 2);
            ROW(7, a1, 3);
        }
        a += 4 * MR;
        b += 4 * NR;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v)
            vst1q_s32(acc + r * ldacc + 4 * v, c[r][v]);
}

static void u8r(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum)
{
    tile(8, ng, a, b, acc, ldacc, accum);
}

static void u4r(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum)
{
    tile(4, ng, a, b, acc, ldacc, accum);
}

/* int8 rows to int8 quads, 12-column panels: dst[4j + t] = src[t][j].  Byte
 * then halfword zips of the first 16 columns' rows; 12 are kept. */
static void interleave_q(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        int8x8_t x0 = vld1_s8(s0 + NR * p), x1 = vld1_s8(s1 + NR * p);
        int8x8_t x2 = vld1_s8(s2 + NR * p), x3 = vld1_s8(s3 + NR * p);
        int8x8x2_t z01 = vzip_s8(x0, x1), z23 = vzip_s8(x2, x3);
        int16x4x2_t lo = vzip_s16(vreinterpret_s16_s8(z01.val[0]), vreinterpret_s16_s8(z23.val[0]));
        int16x4x2_t hi = vzip_s16(vreinterpret_s16_s8(z01.val[1]), vreinterpret_s16_s8(z23.val[1]));
        int8_t *o = (int8_t *)d;
        vst1_s8(o, vreinterpret_s8_s16(lo.val[0]));        /* columns 0-1 */
        vst1_s8(o + 8, vreinterpret_s8_s16(lo.val[1]));    /* 2-3 */
        vst1_s8(o + 16, vreinterpret_s8_s16(hi.val[0]));   /* 4-5 */
        vst1_s8(o + 24, vreinterpret_s8_s16(hi.val[1]));   /* 6-7 */
        for (int j = 8; j < NR; ++j) {                     /* 8-11 */
            o[4 * j] = s0[NR * p + j];
            o[4 * j + 1] = s1[NR * p + j];
            o[4 * j + 2] = s2[NR * p + j];
            o[4 * j + 3] = s3[NR * p + j];
        }
    }
}

static const mdfi_qgemm_tile tiles[] = {{8, 100, u8r, NULL}, {4, 130, u4r, NULL}};

const mdfi_qgemm_kernel mdfi_qgemm_neondot_8 = {
    .name = "neondot-8", .isa = MDFI_ISA_NEON, .bits = 8, .needs = MDFI_CPU_DOTPROD,
    .nr = NR, .kgrp = 4, .kc = 1024, .b_conv = MDFI_QB_SAME, .b_block_bytes = 192 * 1024,
    .ntiles = 2, .tiles = tiles, .epi = mdfi_qgemm_epi_neon, .interleave = interleave_q,
};
