/* Scalar POPCNT binary micro-kernels (x86-64 with the POPCNT instruction):
 * 2 x 4 tiles, eight 64-bit counters in registers. */
#include "kernels/bgemm.h"

#define MR 2
#define NR 4
#define INLINE static inline __attribute__((always_inline))

INLINE void tile(const int mode, int K, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    uint64_t acc[MR][NR] = {{0}};
    const int P = mode == MDFI_BMODE_SIGN ? 1 : 2;
    for (int k = 0; k < K; ++k, a += MR, b += P * NR) {
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
            for (int j = 0; j < NR; ++j) {
                if (mode == MDFI_BMODE_SIGN)
                    acc[r][j] += (uint64_t)__builtin_popcountll(a[r] ^ b[j]);
                else if (mode == MDFI_BMODE_TERNARY)
                    acc[r][j] += (uint64_t)__builtin_popcountll((a[r] ^ b[j]) & b[NR + j]);
                else
                    acc[r][j] += (uint64_t)__builtin_popcountll(a[r] & b[j]) +
                                 2 * (uint64_t)__builtin_popcountll(a[r] & b[NR + j]);
            }
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

static void ukr_masked(int T, int W, const uint64_t *a, const uint64_t *b, int32_t *p)
{
    uint64_t acc[MR][NR] = {{0}};
    for (int t = 0; t < T; ++t) {
        const uint64_t *m = b + (size_t)W * NR;
        for (int cw = 0; cw < W; ++cw, a += MR, b += NR)
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r)
                for (int j = 0; j < NR; ++j)
                    acc[r][j] += (uint64_t)__builtin_popcountll((a[r] ^ b[j]) & m[j]);
        b += NR;
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j)
            p[r * NR + j] = (int32_t)acc[r][j];
}

const mdfi_bgemm_kernel mdfi_bgemm_popcnt = {
    .kind = MDFI_BK_POPCNT, .mr = MR, .nr = NR, .b_block_words = 16384,
    .ukr = {ukr_sign, ukr_ternary, ukr_2bit}, .ukr_masked = ukr_masked,
};
