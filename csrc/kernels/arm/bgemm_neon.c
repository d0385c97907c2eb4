/* NEON binary micro-kernels (aarch64, and armv7 with NEON): vcnt gives
 * per-byte popcounts, vpadal folds them pairwise into 16-bit counters each
 * step, and those go to 64-bit counters every 1024 steps (16-bit lanes gain
 * at most 2 * 24 per step).  Pixels run along the lanes (a q register holds
 * one word of 2 pixels); 4 x 4 tiles fit armv7's 16 q registers. */
#include <arm_neon.h>

#include "kernels/bgemm.h"

#define MR 4
#define NR 4
#define NV 2
#define RUN 1024
#define INLINE static inline __attribute__((always_inline))

/* masked: SIGN with a mask row per tap of W words (K = T * W). */
INLINE void tile(const int mode, const int masked, int K, int W, const uint64_t *a,
                 const uint64_t *b, int32_t *p)
{
    const int P = mode == MDFI_BMODE_SIGN ? 1 : 2;
    uint64x2_t acc[MR][NV];
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            acc[r][v] = vdupq_n_u64(0);
    const uint64_t *bk = b, *mrow = b + (size_t)W * NR;
    int cw = 0;
    for (int k0 = 0; k0 < K; k0 += RUN) {
        const int k1 = K - k0 < RUN ? K : k0 + RUN;
        uint16x8_t cnt[MR][NV];
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                cnt[r][v] = vdupq_n_u16(0);
        for (int k = k0; k < k1; ++k) {
            const uint64_t *ak = a + (size_t)k * MR, *b1k = masked ? mrow : bk + NR;
            uint64x2_t b0[NV], b1[NV];
            for (int v = 0; v < NV; ++v) {
                b0[v] = vld1q_u64(bk + 2 * v);
                b1[v] = P > 1 || masked ? vld1q_u64(b1k + 2 * v) : vdupq_n_u64(0);
            }
            if (masked) {
                bk += NR;
                if (++cw == W) {   /* next tap: past its mask row */
                    cw = 0;
                    bk += NR;
                    mrow = bk + (size_t)W * NR;
                }
            } else {
                bk += (size_t)P * NR;
            }
            for (int r = 0; r < MR; ++r) {
                uint64x2_t av = vdupq_n_u64(ak[r]);
                for (int v = 0; v < NV; ++v) {
                    uint8x16_t c;
                    if (mode == MDFI_BMODE_SIGN && !masked) {
                        c = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(av, b0[v])));
                    } else if (mode == MDFI_BMODE_TERNARY || masked) {
                        c = vcntq_u8(vreinterpretq_u8_u64(vandq_u64(veorq_u64(av, b0[v]), b1[v])));
                    } else {
                        uint8x16_t c1 = vcntq_u8(vreinterpretq_u8_u64(vandq_u64(av, b1[v])));
                        c = vaddq_u8(vcntq_u8(vreinterpretq_u8_u64(vandq_u64(av, b0[v]))),
                                     vshlq_n_u8(c1, 1));
                    }
                    cnt[r][v] = vpadalq_u8(cnt[r][v], c);
                }
            }
        }
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = vpadalq_u32(acc[r][v], vpaddlq_u16(cnt[r][v]));
    }
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
            vst1_s32(p + r * NR + 2 * v, vreinterpret_s32_u32(vmovn_u64(acc[r][v])));
}

static void ukr_sign(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_SIGN, 0, K, 1, a, b, p);
}

static void ukr_ternary(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_TERNARY, 0, K, 1, a, b, p);
}

static void ukr_2bit(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_2BIT, 0, K, 1, a, b, p);
}

static void ukr_masked(int T, int W, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_SIGN, 1, T * W, W, a, b, p);
}

const mdfi_bgemm_kernel mdfi_bgemm_neon = {
    .kind = MDFI_BK_NEON, .mr = MR, .nr = NR, .b_block_words = 16384,
    .ukr = {ukr_sign, ukr_ternary, ukr_2bit}, .ukr_masked = ukr_masked,
};
