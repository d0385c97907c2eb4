/* NEON integer micro-kernels and the NEON requantization epilogue.
 *
 * Both widths take int16 operands, one k at a time (int8 is sign-extended
 * when packed), and vmlal by lane: int16 x int16 products accumulated into
 * int32 lanes, exact.  (vmlal_s8 would accumulate two int8 products in an
 * int16 lane, which overflows for -128 * -128 twice.)
 *   AArch64 (32 q registers): MR x 12 tiles, the MR <= 8 A values of a k in
 *   one q register used by lane; 8 x 12 takes 24 accumulators.
 *   ARMv7 (16 q registers): MR x 8 tiles, A in two d registers; 6 x 8
 *   takes 12 accumulators.
 * CPUs with the dot product instructions use qgemm_neon_dotprod.c for int8. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#if defined(__aarch64__)
#define NR 12
#define MAXR 8
#else
#define NR 8
#define MAXR 6
#endif
#define INLINE static inline __attribute__((always_inline))

/* ---- micro-kernels ----------------------------------------------------- */

#if defined(__aarch64__)
/* Row r of the tile += b * A[r] (lane of a q register / a d register). */
#define ROWQ(r, av, lane)                                                         \
    do {                                                                          \
        c[r][0] = vmlal_laneq_s16(c[r][0], vget_low_s16(b0), av, lane);           \
        c[r][1] = vmlal_high_laneq_s16(c[r][1], b0, av, lane);                    \
        c[r][2] = vmlal_laneq_s16(c[r][2], b1, av, lane);                         \
    } while (0)
#define ROWD(r, av, lane)                                                         \
    do {                                                                          \
        c[r][0] = vmlal_lane_s16(c[r][0], vget_low_s16(b0), av, lane);            \
        c[r][1] = vmlal_high_lane_s16(c[r][1], b0, av, lane);                     \
        c[r][2] = vmlal_lane_s16(c[r][2], b1, av, lane);                          \
    } while (0)
#else
#define ROWD(r, av, lane)                                                         \
    do {                                                                          \
        c[r][0] = vmlal_lane_s16(c[r][0], vget_low_s16(b0), av, lane);            \
        c[r][1] = vmlal_lane_s16(c[r][1], vget_high_s16(b0), av, lane);           \
    } while (0)
#endif

INLINE void tile(const int MR, int kc, const void *a_, const void *b_, int32_t *acc, int ldacc,
                 int accum)
{
    const int16_t *a = a_, *b = b_;
    int32x4_t c[MAXR][NR / 4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
        for (int v = 0; v < NR / 4; ++v)
            c[r][v] = accum ? vld1q_s32(acc + r * ldacc + 4 * v) : vdupq_n_s32(0);
    for (int k = 0; k < kc; ++k) {
        int16x8_t b0 = vld1q_s16(b);
#if defined(__aarch64__)
        int16x4_t b1 = vld1_s16(b + 8);
        if (MR == 8) {
            int16x8_t av = vld1q_s16(a);
            ROWQ(0, av, 0);
            ROWQ(1, av, 1);
            ROWQ(2, av, 2);
            ROWQ(3, av, 3);
            ROWQ(4, av, 4);
            ROWQ(5, av, 5);
            ROWQ(6, av, 6);
            ROWQ(7, av, 7);
        } else {
            int16x4_t av = vld1_s16(a);
            ROWD(0, av, 0);
            ROWD(1, av, 1);
            ROWD(2, av, 2);
            ROWD(3, av, 3);
        }
#else
        int16x4_t a0 = vld1_s16(a);
        ROWD(0, a0, 0);
        ROWD(1, a0, 1);
        ROWD(2, a0, 2);
        ROWD(3, a0, 3);
        if (MR == 6) {
            int32_t pair;   /* rows 4 and 5, without reading past the panel */
            memcpy(&pair, a + 4, sizeof pair);
            int16x4_t a1 = vreinterpret_s16_s32(vdup_n_s32(pair));
            ROWD(4, a1, 0);
            ROWD(5, a1, 1);
        }
#endif
        a += MR;
        b += NR;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
        for (int v = 0; v < NR / 4; ++v)
            vst1q_s32(acc + r * ldacc + 4 * v, c[r][v]);
}

#if defined(__aarch64__)
static void u8r(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum)
{
    tile(8, ng, a, b, acc, ldacc, accum);
}
#else
static void u6r(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum)
{
    tile(6, ng, a, b, acc, ldacc, accum);
}
#endif

static void u4r(int ng, const void *a, const void *b, int32_t *acc, int ldacc, int accum)
{
    tile(4, ng, a, b, acc, ldacc, accum);
}

/* ---- epilogue ---------------------------------------------------------- */

/* NEON's rounding shifts compute (x + 2^(s-1)) >> s in full precision, which
 * is rshift_round exactly, and its saturating left shifts and narrowings
 * saturate exactly; so each mode is a few instructions:
 *   pow2:  right: vrshl by -s (s <= 32, larger s gives 0 as s = 32 does);
 *          left:  vqshl by min(-s, 31) (saturates whenever -s is larger)
 *   mult:  vmull to int64, vrshl / vqshl the same way (s <= 64, l <= 63),
 *          vqmovn back to int32 saturating
 *   then vqmovn to int16 (and int8). */
typedef struct {
    int32x4_t add, lm, sh32;
    int64x2_t sh64, lsh;
    int32x2_t mult;
    mdfi_qact act;
    int mode;   /* 0: pow2, 1: mult */
} rowc;

INLINE int32x4_t narrow64(int64x2_t lo, int64x2_t hi)
{
    return vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi));
}

INLINE int32x4_t requant(const rowc *rc, int32x4_t x)
{
    x = vaddq_s32(x, rc->add);
    if (rc->act == MDFI_QACT_RELU) {
        x = vmaxq_s32(x, vdupq_n_s32(0));
    } else if (rc->act == MDFI_QACT_LEAKY) {
        uint32x4_t neg = vcltq_s32(x, vdupq_n_s32(0));
        int64x2_t lo = vshlq_s64(vmull_s32(vget_low_s32(x), vget_low_s32(rc->lm)), rc->lsh);
        int64x2_t hi = vshlq_s64(vmull_s32(vget_high_s32(x), vget_low_s32(rc->lm)), rc->lsh);
        x = vbslq_s32(neg, vcombine_s32(vmovn_s64(lo), vmovn_s64(hi)), x);
    }
    if (rc->mode == 0)
        return vqrshlq_s32(x, rc->sh32);
    int64x2_t lo = vmull_s32(vget_low_s32(x), rc->mult);
    int64x2_t hi = vmull_s32(vget_high_s32(x), rc->mult);
    return narrow64(vqrshlq_s64(lo, rc->sh64), vqrshlq_s64(hi, rc->sh64));
}

void mdfi_qgemm_epi_neon(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                         const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc)
{
    rowc rc;
    const int ls = e->leaky_shift < 0 ? 0 : e->leaky_shift > 63 ? 63 : e->leaky_shift;
    rc.act = e->act;
    rc.lm = vdupq_n_s32(e->leaky_mult);
    rc.lsh = vdupq_n_s64(-ls);
    rc.mode = e->mult != NULL;
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r, s = e->shift[m];
        uint32_t add = mdfi_qgemm_row_offset(e, corr, m);
        rc.add = vreinterpretq_s32_u32(vdupq_n_u32(add));
        /* Shift counts: negative = right, rounding; positive = left,
         * saturating (vqrshl does both). */
        rc.sh32 = vdupq_n_s32(s > 32 ? -32 : s < -31 ? 31 : -s);
        rc.sh64 = vdupq_n_s64(s > 64 ? -64 : s < -63 ? 63 : -s);
        rc.mult = vdup_n_s32(e->mult ? e->mult[m] : 1);
        const int32_t *ar = acc + (size_t)r * ldacc;
        for (int j = 0; j < nv; j += 8) {
            const int n = nv - j < 8 ? nv - j : 8;
            int32_t tmp[8];
            const int32_t *src = ar + j;
            if (n < 8) {
                memcpy(tmp, src, (size_t)n * sizeof(int32_t));
                src = tmp;
            }
            int16x8_t v = vcombine_s16(vqmovn_s32(requant(&rc, vld1q_s32(src))),
                                       vqmovn_s32(requant(&rc, vld1q_s32(src + 4))));
            if (e->out_bits == 8) {
                int8_t *o = (int8_t *)c + (size_t)r * ldc + j;
                int8x8_t b = vqmovn_s16(v);
                if (n == 8) {
                    vst1_s8(o, b);
                } else {
                    int8_t t[8];
                    vst1_s8(t, b);
                    memcpy(o, t, (size_t)n);
                }
            } else {
                int16_t *o = (int16_t *)c + (size_t)r * ldc + j;
                if (n == 8) {
                    vst1q_s16(o, v);
                } else {
                    int16_t t[8];
                    vst1q_s16(t, v);
                    memcpy(o, t, (size_t)n * sizeof(int16_t));
                }
            }
        }
    }
}

/* ---- B interleave (G = 1: a row is a panel row) ------------------------- */

static void interleave_sext(void *dst, size_t step, const void *const *src, int np)
{
    const int8_t *s0 = src[0];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step) {
        int16_t *o = (int16_t *)d;
#if NR == 12
        int8_t t[16] = {0};
        memcpy(t, s0 + NR * p, NR);
        int8x16_t x = vld1q_s8(t);
        vst1q_s16(o, vmovl_s8(vget_low_s8(x)));
        vst1_s16(o + 8, vget_low_s16(vmovl_s8(vget_high_s8(x))));
#else
        vst1q_s16(o, vmovl_s8(vld1_s8(s0 + NR * p)));
#endif
    }
}

static void interleave_i16(void *dst, size_t step, const void *const *src, int np)
{
    const char *s0 = src[0];
    char *d = dst;
    for (int p = 0; p < np; ++p, d += step)
        memcpy(d, s0 + (size_t)NR * 2 * p, NR * 2);
}

/* ---- tables ------------------------------------------------------------ */

#if defined(__aarch64__)
static const mdfi_qgemm_tile tiles[] = {{8, 100, u8r, NULL}, {4, 130, u4r, NULL}};
#else
static const mdfi_qgemm_tile tiles[] = {{6, 100, u6r, NULL}, {4, 120, u4r, NULL}};
#endif

const mdfi_qgemm_kernel mdfi_qgemm_neon_8 = {
    .name = "neon-8", .isa = MDFI_ISA_NEON, .bits = 8, .nr = NR, .kgrp = 1, .kc = 512,
    .b_conv = MDFI_QB_SEXT16, .b_block_bytes = 192 * 1024, .ntiles = 2, .tiles = tiles,
    .epi = mdfi_qgemm_epi_neon, .interleave = interleave_sext,
};

const mdfi_qgemm_kernel mdfi_qgemm_neon_16 = {
    .name = "neon-16", .isa = MDFI_ISA_NEON, .bits = 16, .nr = NR, .kgrp = 1, .kc = 512,
    .b_conv = MDFI_QB_SAME, .b_block_bytes = 192 * 1024, .ntiles = 2, .tiles = tiles,
    .epi = mdfi_qgemm_epi_neon, .interleave = interleave_i16,
};
