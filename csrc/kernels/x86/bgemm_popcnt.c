/* Scalar POPCNT binary micro-kernels (x86-64 with the POPCNT instruction):
 * 2 x 4 tiles, eight 64-bit counters in registers.  SIGN in groups of three
 * words (grouped, see mdfi_bepi_args): two popcounts for three words, the
 * outside taps taken back by the driver. */
#include "kernels/bgemm.h"

#define MR 2
#define NR 4
#define INLINE static inline __attribute__((always_inline))

INLINE void tile(const int mode, int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    uint64_t acc[MR][NR] = {{0}};
    const int P = mode == MDFI_BMODE_SIGN ? 1 : 2, K3 = mode == MDFI_BMODE_SIGN ? K - K % 3 : 0;
    for (int k = 0; k < K;) {
        /* SIGN: a group (the next words MR, NR further) or a last word alone */
        const int g = k < K3 ? 3 : 1, sa = g > 1 ? MR : 0, sb = g > 1 ? NR : 0;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
            for (int j = 0; j < NR; ++j) {
                if (mode == MDFI_BMODE_SIGN) {
                    const uint64_t y1 = a[r] ^ b[j], d = a[sa + r] ^ b[sb + j];
                    const uint64_t s = a[2 * sa + r] ^ b[2 * sb + j];
                    acc[r][j] += (uint64_t)__builtin_popcountll(s) +
                                 2 * (uint64_t)__builtin_popcountll(y1 ^ (d & ~(y1 ^ s)));
                } else if (mode == MDFI_BMODE_TERNARY) {
                    acc[r][j] += (uint64_t)__builtin_popcountll((a[r] ^ b[j]) & b[NR + j]);
                } else {
                    acc[r][j] += (uint64_t)__builtin_popcountll(a[r] & b[j]) +
                                 2 * (uint64_t)__builtin_popcountll(a[r] & b[NR + j]);
                }
            }
        k += g;
        a += g * MR;
        b += g * P * NR;
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j)
            p[r * NR + j] = (int32_t)acc[r][j];
}

static void ukr_sign(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_SIGN, K, a, b, p);
}

static void ukr_ternary(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_TERNARY, K, a, b, p);
}

static void ukr_2bit(int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    tile(MDFI_BMODE_2BIT, K, a, b, p);
}

const mdfi_bgemm_kernel mdfi_bgemm_popcnt = {
    .kind = MDFI_BK_POPCNT, .mr = MR, .nr = NR, .b_block_words = 16384,
    .ukr = {ukr_sign, ukr_ternary, ukr_2bit}, .grouped = 1,
};
