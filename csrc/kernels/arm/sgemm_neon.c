/* NEON fp32 micro-kernels, one fma chain per element.
 *   AArch64 (32 q registers): MR x 16 tiles, A read as vectors and used by
 *   lane (fmla by element); 6 x 16 = 24 accumulators + 4 B + 2 A registers.
 *   ARMv7 (16 q registers): MR x 8 tiles, A broadcast by vld1q_dup;
 *   6 x 8 = 12 accumulators + 2 B + 1 A.  Built with -mfpu=neon-vfpv4, so
 *   vfma is there (the dispatcher requires VFPv4 on ARMv7). */
#include <arm_neon.h>
#include <stdint.h>

#include "kernels/sgemm_impl.h"

#if defined(__aarch64__)
#define NR 16
#else
#define NR 8
#endif
#define MAXR 6
#define A_AHEAD 1024   /* bytes of A prefetched ahead */
#define INLINE static inline __attribute__((always_inline))

#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define VFMA(acc, x, y) vfmaq_f32(acc, x, y)
#define VFMA2(acc, x, y) vfma_f32(acc, x, y)
#else
#define VFMA(acc, x, y) vmlaq_f32(acc, x, y)
#define VFMA2(acc, x, y) vmla_f32(acc, x, y)
#endif

/* Darknet's leaky slope as the correctly rounded x / 10 (see sgemm_impl.h). */
INLINE float32x4_t leaky(float32x4_t x)
{
    float32x4_t q = vmulq_n_f32(x, MDFI_LEAKY_C);
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    float32x4_t r = vfmsq_f32(x, q, vdupq_n_f32(10.f));
    q = vfmaq_f32(q, r, vdupq_n_f32(MDFI_LEAKY_C));
#endif
    return vbslq_f32(vcgtq_f32(x, vdupq_n_f32(0.f)), x, q);
}

INLINE float32x4_t finish(float32x4_t x, float32x4_t bias, mdfi_epilogue epi)
{
    x = vaddq_f32(x, bias);
    if (epi == MDFI_EPI_RELU)
        return vmaxq_f32(x, vdupq_n_f32(0.f));
    if (epi == MDFI_EPI_LEAKY)
        return leaky(x);
    return x;
}

#if defined(__aarch64__)
/* acc[r][v] += b[v] * lane of a vector of A (fmla by element). */
#define ROWQ(r, av, lane)                                                    \
    for (int v = 0; v < NV; ++v)                                             \
        acc[r][v] = vfmaq_laneq_f32(acc[r][v], bv[v], av, lane)
#define ROWD(r, av, lane)                                                    \
    for (int v = 0; v < NV; ++v)                                             \
        acc[r][v] = vfmaq_lane_f32(acc[r][v], bv[v], av, lane)
#endif

/* MR x (4*NV) tile; NV = NR/4 is the full width, NR/8 the half-width edge.
 * Partial columns of C go through a stack row buffer (NEON has no masked
 * loads or stores). */
INLINE void tile(const int MR, const int NV, int kc, const float *a, const float *b, float *c,
                 size_t ldc, int mv, int nv, unsigned flags, const float *bias)
{
    float32x4_t acc[MAXR][NR / 4];
    const int width = 4 * NV, full = nv == width;
    float tmp[NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        const int load = (flags & MDFI_UK_ACCUM) && r < mv;
        const float *src = load ? c + r * ldc : tmp;
        if (load && !full) {
            for (int j = 0; j < width; ++j)
                tmp[j] = j < nv ? src[j] : 0.f;
            src = tmp;
        }
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            acc[r][v] = load ? vld1q_f32(src + 4 * v) : vdupq_n_f32(0.f);
    }
    for (int k = 0; k < kc; ++k) {
        float32x4_t bv[NR / 4];
        /* A streams from memory on its first use (later calls hit L1); its
         * K block is contiguous, so run ahead into the next micro-panel. */
        __builtin_prefetch((const void *)((uintptr_t)a + A_AHEAD));
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            bv[v] = vld1q_f32(b + 4 * v);
#if defined(__aarch64__)
        float32x4_t a0 = vld1q_f32(a);
        ROWQ(0, a0, 0);
        ROWQ(1, a0, 1);
        ROWQ(2, a0, 2);
        ROWQ(3, a0, 3);
        if (MR == 6) {
            float32x2_t a1 = vld1_f32(a + 4);
            ROWD(4, a1, 0);
            ROWD(5, a1, 1);
        }
#else
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            float32x4_t av = vld1q_dup_f32(a + r);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[r][v] = VFMA(acc[r][v], bv[v], av);
        }
#endif
        a += MR;
        b += width;
    }
    const int last = (flags & MDFI_UK_LAST) != 0;
    const mdfi_epilogue epi = MDFI_UK_EPI(flags);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        if (r >= mv)
            break;
        float32x4_t bvec = vdupq_n_f32(last && bias ? bias[r] : 0.f);
        float *dst = full ? c + r * ldc : tmp;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            vst1q_f32(dst + 4 * v, last ? finish(acc[r][v], bvec, epi) : acc[r][v]);
        if (!full)
            for (int j = 0; j < nv; ++j)
                c[r * ldc + j] = tmp[j];
    }
}

#define UKR(name, MR, NV)                                                                  \
    static void name(int kc, const float *a, const float *b, float *c, size_t ldc, int mv, \
                     int nv, unsigned flags, const float *bias)                            \
    {                                                                                      \
        tile(MR, NV, kc, a, b, c, ldc, mv, nv, flags, bias);                               \
    }
UKR(ukr6, 6, NR / 4)
UKR(ukr4, 4, NR / 4)
UKR(ukr6h, 6, NR / 8)
UKR(ukr4h, 4, NR / 8)

/* N == 1: rows 0-3 of a panel in one q register, rows 4-5 in a d register;
 * the same per-row fma chain as tile(). */
INLINE void gemv(const int MR, int M, int K, int kcb, const float *pa, const float *x,
                 const float *bias, mdfi_epilogue epi, float *c, size_t ldc)
{
    const size_t mp = (size_t)(M + MR - 1) / MR * MR;
    for (int m0 = 0; m0 < M; m0 += MR) {
        float32x4_t lo = vdupq_n_f32(0.f);
        float32x2_t hi = vdup_n_f32(0.f);
        for (int pc = 0; pc < K; pc += kcb) {
            int kc = K - pc < kcb ? K - pc : kcb;
            const float *a = pa + pc * mp + (size_t)m0 * kc;
            for (int k = 0; k < kc; ++k, a += MR) {
                lo = VFMA(lo, vld1q_f32(a), vdupq_n_f32(x[pc + k]));
                if (MR == 6)
                    hi = VFMA2(hi, vld1_f32(a + 4), vdup_n_f32(x[pc + k]));
            }
        }
        int mv = M - m0 < MR ? M - m0 : MR;
        float out[8], bb[8] = {0};
        for (int r = 0; bias && r < mv; ++r)
            bb[r] = bias[m0 + r];
        vst1q_f32(out, finish(lo, vld1q_f32(bb), epi));
        vst1q_f32(out + 4, finish(vcombine_f32(hi, hi), vld1q_f32(bb + 4), epi));
        for (int r = 0; r < mv; ++r)
            c[(size_t)(m0 + r) * ldc] = out[r];
    }
}

#define GEMV(name, MR)                                                                     \
    static void name(int M, int K, int kc, const float *pa, const float *x, const float *bias, \
                     mdfi_epilogue epi, float *c, size_t ldc)                                 \
    {                                                                                         \
        gemv(MR, M, K, kc, pa, x, bias, epi, c, ldc);                                         \
    }
GEMV(gemv6, 6)
GEMV(gemv4, 4)

/* B panel fill (see mdfi_sgemm_fill): runs in 4-float vectors, the last
 * one overlapping, short runs by element. */
static void fill(float *o, int kc, const float *in, size_t plane, int c, int r, int rr,
                 const mdfi_copy_op *ops, const int *first)
{
    if (mdfi_sgemm_simple_panel(ops, first, rr, NR)) {   /* inside the image: plain copies */
        for (int kk = 0; kk < kc; ++kk, o += NR) {
            const float *s = in + c * plane + ops[r].src;
            for (int v = 0; v < NR; v += 4)
                vst1q_f32(o + v, vld1q_f32(s + v));
            if (++r == rr) {
                r = 0;
                ++c;
            }
        }
        return;
    }
    for (int kk = 0; kk < kc; ++kk, o += NR) {
        const float *src = in + c * plane;
        const mdfi_copy_op *op = ops + first[r], *end = ops + first[r + 1];
        if (end - op != 1 || op->len != NR)
            for (int v = 0; v < NR; v += 4)
                vst1q_f32(o + v, vdupq_n_f32(0.f));
        for (; op < end; ++op) {
            const float *s = src + op->src;
            float *d = o + op->dst;
            int n = op->len;
            if (n >= 4) {
                for (int i = 0; i + 4 < n; i += 4)
                    vst1q_f32(d + i, vld1q_f32(s + i));
                vst1q_f32(d + n - 4, vld1q_f32(s + n - 4));
            } else {
                for (int i = 0; i < n; ++i)
                    d[i] = s[i];
            }
        }
        if (++r == rr) {
            r = 0;
            ++c;
        }
    }
}

/* cost: relative time per row (an estimate: 4 rows load B 1.5x as often
 * per fma as 6; not measured on hardware). */
static const mdfi_sgemm_tile tiles[] = {
    {6, 100, ukr6, ukr6h, gemv6, NULL},
    {4, 110, ukr4, ukr4h, gemv4, NULL},
};

/* kc 256: a 6 x 256 A micro-panel is 6 KB of a 32 KB L1; B blocks of
 * 128 KB fit the 512 KB - 1 MB L2 shared by a Raspberry Pi's cores. */
const mdfi_sgemm_kernel mdfi_sgemm_neon = {
    .isa = MDFI_ISA_NEON, .nr = NR, .kc = 256, .b_block_floats = 32 * 1024,
    .ntiles = 2, .tiles = tiles, .fill = fill,
};
