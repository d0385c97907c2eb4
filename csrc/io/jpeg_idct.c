/* Integer 8x8 inverse DCT.
 *
 * The 1-D transform is the Loeffler-Ligtenberg-Moschytz factorisation used
 * by the IJG "islow" IDCT (3 multiplies in the even part, 9 in the odd
 * part), with the fixed-point scaling Darknet's decoder (stb_image) uses:
 *   - constants are 12-bit: c = (int)(x * 4096 + 0.5), the cast truncating
 *     toward zero, so negative ones round up in magnitude terms
 *     (-1.847759065 -> -7567, not -7568);
 *   - columns first: (sum + 512) >> 10, keeping 2 extra bits;
 *   - then rows: (sum + 65536 + (128 << 17)) >> 17, the level shift folded
 *     into the rounding, clamped to 0..255.
 * Everything between the two passes is exact integer arithmetic, so the
 * order of the additions does not matter.  The column results are kept in
 * 16 bits with saturation as the SSE2 path of that decoder does; no block
 * an encoder makes from 8-bit samples comes near that limit.  Sums are
 * formed in unsigned arithmetic so that absurd coefficients wrap instead of
 * overflowing.  See docs/jpeg.md. */
#include "io/jpeg.h"

#include <string.h>

#define C0541 2217u      /*  0.5411961   */
#define CM1847 (-7567)   /* -1.847759065 */
#define C0765 3135u      /*  0.765366865 */
#define C1175 4816u      /*  1.175875602 */
#define C0298 1223u      /*  0.298631336 */
#define C2053 8410u      /*  2.053119869 */
#define C3072 12586u     /*  3.072711026 */
#define C1501 6149u      /*  1.501321110 */
#define CM0899 (-3685)   /* -0.899976223 */
#define CM2562 (-10497)  /* -2.562915447 */
#define CM1961 (-8034)   /* -1.961570560 */
#define CM0390 (-1597)   /* -0.390180644 */

/* 1-D IDCT of s[0], s[step], ... s[7*step]; out[i] = (sum_i + bias) as signed. */
#define IDCT_1D(S0, S1, S2, S3, S4, S5, S6, S7, BIAS, OUT)                       \
    do {                                                                            \
        uint32_t p1_, p2_, p3_, p4_, p5_, t0_, t1_, t2_, t3_, x0_, x1_, x2_, x3_;   \
        p2_ = (uint32_t)(S2);                                                       \
        p3_ = (uint32_t)(S6);                                                       \
        p1_ = (p2_ + p3_) * C0541;                                                  \
        t2_ = p1_ + p3_ * (uint32_t)CM1847;                                         \
        t3_ = p1_ + p2_ * C0765;                                                    \
        p2_ = (uint32_t)(S0);                                                       \
        p3_ = (uint32_t)(S4);                                                       \
        t0_ = (p2_ + p3_) * 4096u;                                                  \
        t1_ = (p2_ - p3_) * 4096u;                                                  \
        x0_ = t0_ + t3_ + (BIAS);                                                   \
        x3_ = t0_ - t3_ + (BIAS);                                                   \
        x1_ = t1_ + t2_ + (BIAS);                                                   \
        x2_ = t1_ - t2_ + (BIAS);                                                   \
        t0_ = (uint32_t)(S7);                                                       \
        t1_ = (uint32_t)(S5);                                                       \
        t2_ = (uint32_t)(S3);                                                       \
        t3_ = (uint32_t)(S1);                                                       \
        p3_ = t0_ + t2_;                                                            \
        p4_ = t1_ + t3_;                                                            \
        p1_ = t0_ + t3_;                                                            \
        p2_ = t1_ + t2_;                                                            \
        p5_ = (p3_ + p4_) * C1175;                                                  \
        t0_ *= C0298;                                                               \
        t1_ *= C2053;                                                               \
        t2_ *= C3072;                                                               \
        t3_ *= C1501;                                                               \
        p1_ = p5_ + p1_ * (uint32_t)CM0899;                                         \
        p2_ = p5_ + p2_ * (uint32_t)CM2562;                                         \
        p3_ *= (uint32_t)CM1961;                                                    \
        p4_ *= (uint32_t)CM0390;                                                    \
        t3_ += p1_ + p4_;                                                           \
        t2_ += p2_ + p3_;                                                           \
        t1_ += p2_ + p4_;                                                           \
        t0_ += p1_ + p3_;                                                           \
        OUT[0] = (int32_t)(x0_ + t3_);                                              \
        OUT[7] = (int32_t)(x0_ - t3_);                                              \
        OUT[1] = (int32_t)(x1_ + t2_);                                              \
        OUT[6] = (int32_t)(x1_ - t2_);                                              \
        OUT[2] = (int32_t)(x2_ + t1_);                                              \
        OUT[5] = (int32_t)(x2_ - t1_);                                              \
        OUT[3] = (int32_t)(x3_ + t0_);                                              \
        OUT[4] = (int32_t)(x3_ - t0_);                                              \
    } while (0)

static inline int sat16(int32_t v)
{
    return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

static inline unsigned char clamp255(int32_t v)
{
    return (unsigned char)((unsigned)v > 255u ? (v < 0 ? 0 : 255) : v);
}

#define ROW_BIAS (65536u + (128u << 17))

/* DC only: every sample is the same. */
static void idct_dc(const int16_t in[64], unsigned char *out, int stride)
{
    int32_t v = sat16((int32_t)in[0] * 4);
    unsigned char px = clamp255((int32_t)((uint32_t)v * 4096u + ROW_BIAS) >> 17);
    for (int y = 0; y < 8; y++)
        memset(out + (size_t)y * (size_t)stride, px, 8);
}

void mdfi_jpeg_idct_scalar(const int16_t in[64], unsigned char *out, int stride)
{
    int32_t tmp[64];
    for (int x = 0; x < 8; x++) {   /* columns */
        const int16_t *s = in + x;
        int32_t o[8];
        if (!(s[8] | s[16] | s[24] | s[32] | s[40] | s[48] | s[56])) {
            int32_t dc = sat16((int32_t)s[0] * 4);   /* = (s0 * 4096 + 512) >> 10 */
            for (int k = 0; k < 8; k++)
                tmp[k * 8 + x] = dc;
            continue;
        }
        IDCT_1D(s[0], s[8], s[16], s[24], s[32], s[40], s[48], s[56], 512u, o);
        for (int k = 0; k < 8; k++)
            tmp[k * 8 + x] = sat16(o[k] >> 10);
    }
    for (int y = 0; y < 8; y++) {   /* rows */
        const int32_t *s = tmp + y * 8;
        unsigned char *d = out + (size_t)y * (size_t)stride;
        int32_t o[8];
        IDCT_1D(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], ROW_BIAS, o);
        for (int k = 0; k < 8; k++)
            d[k] = clamp255(o[k] >> 17);
    }
}

/* The SIMD versions compute the same integers.  Each output of the 1-D
 * transform is a fixed linear combination of the inputs; multiplying out
 * the factorisation above gives combined constants that all fit in 16 bits,
 * so every output is a sum of 16x16-bit products formed exactly in 32 bits
 * (modulo 2^32, as the unsigned scalar code), and the shifts, the 16-bit
 * saturation between the passes and the 0..255 clamp are the same. */
#define K_T2_S2 C0541                              /* even part */
#define K_T2_S6 ((int)C0541 + CM1847)
#define K_T3_S2 ((int)C0541 + (int)C0765)
#define K_T3_S6 C0541
#define K_P5 ((int)C1175)                          /* odd part: T = a.s1 + b.s7 + c.s3 + d.s5 */
#define K_T0_S1 (CM0899 + K_P5)
#define K_T0_S7 ((int)C0298 + CM0899 + K_P5 + CM1961)
#define K_T0_S3 (K_P5 + CM1961)
#define K_T0_S5 K_P5
#define K_T1_S1 (K_P5 + CM0390)
#define K_T1_S7 K_P5
#define K_T1_S3 (CM2562 + K_P5)
#define K_T1_S5 ((int)C2053 + CM2562 + K_P5 + CM0390)
#define K_T2_S1 K_P5
#define K_T2_S7 (K_P5 + CM1961)
#define K_T2_S3 ((int)C3072 + CM2562 + K_P5 + CM1961)
#define K_T2_S5 (CM2562 + K_P5)
#define K_T3_S1 ((int)C1501 + CM0899 + K_P5 + CM0390)
#define K_T3_S7 (CM0899 + K_P5)
#define K_T3_S3 K_P5
#define K_T3_S5 (K_P5 + CM0390)

#if defined(__SSE2__)
#include <emmintrin.h>

/* (a, b) pairs of 16-bit constants for _mm_madd_epi16 on interleaved (x, y). */
static inline __m128i pair(int a, int b)
{
    return _mm_set1_epi32((int)(((uint32_t)(uint16_t)b << 16) | (uint16_t)a));
}

static inline void transpose8(__m128i v[8])
{
    __m128i a0 = _mm_unpacklo_epi16(v[0], v[1]), a1 = _mm_unpackhi_epi16(v[0], v[1]);
    __m128i a2 = _mm_unpacklo_epi16(v[2], v[3]), a3 = _mm_unpackhi_epi16(v[2], v[3]);
    __m128i a4 = _mm_unpacklo_epi16(v[4], v[5]), a5 = _mm_unpackhi_epi16(v[4], v[5]);
    __m128i a6 = _mm_unpacklo_epi16(v[6], v[7]), a7 = _mm_unpackhi_epi16(v[6], v[7]);
    __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
    __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
    __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
    __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
    v[0] = _mm_unpacklo_epi64(b0, b4);
    v[1] = _mm_unpackhi_epi64(b0, b4);
    v[2] = _mm_unpacklo_epi64(b1, b5);
    v[3] = _mm_unpackhi_epi64(b1, b5);
    v[4] = _mm_unpacklo_epi64(b2, b6);
    v[5] = _mm_unpackhi_epi64(b2, b6);
    v[6] = _mm_unpacklo_epi64(b3, b7);
    v[7] = _mm_unpackhi_epi64(b3, b7);
}

/* Four lanes of the 1-D transform from interleaved input pairs. */
#define PASS_HALF(s04, s26, s17, s35, o)                                                \
    do {                                                                                \
        __m128i t0 = _mm_madd_epi16(s04, pair(4096, 4096));                             \
        __m128i t1 = _mm_madd_epi16(s04, pair(4096, -4096));                            \
        __m128i t2 = _mm_madd_epi16(s26, pair(K_T2_S2, K_T2_S6));                       \
        __m128i t3 = _mm_madd_epi16(s26, pair(K_T3_S2, K_T3_S6));                       \
        __m128i x0 = _mm_add_epi32(_mm_add_epi32(t0, t3), bias);                        \
        __m128i x3 = _mm_add_epi32(_mm_sub_epi32(t0, t3), bias);                        \
        __m128i x1 = _mm_add_epi32(_mm_add_epi32(t1, t2), bias);                        \
        __m128i x2 = _mm_add_epi32(_mm_sub_epi32(t1, t2), bias);                        \
        __m128i o0 = _mm_add_epi32(_mm_madd_epi16(s17, pair(K_T0_S1, K_T0_S7)),         \
                                   _mm_madd_epi16(s35, pair(K_T0_S3, K_T0_S5)));        \
        __m128i o1 = _mm_add_epi32(_mm_madd_epi16(s17, pair(K_T1_S1, K_T1_S7)),         \
                                   _mm_madd_epi16(s35, pair(K_T1_S3, K_T1_S5)));        \
        __m128i o2 = _mm_add_epi32(_mm_madd_epi16(s17, pair(K_T2_S1, K_T2_S7)),         \
                                   _mm_madd_epi16(s35, pair(K_T2_S3, K_T2_S5)));        \
        __m128i o3 = _mm_add_epi32(_mm_madd_epi16(s17, pair(K_T3_S1, K_T3_S7)),         \
                                   _mm_madd_epi16(s35, pair(K_T3_S3, K_T3_S5)));        \
        o[0] = _mm_srai_epi32(_mm_add_epi32(x0, o3), SHIFT);                            \
        o[7] = _mm_srai_epi32(_mm_sub_epi32(x0, o3), SHIFT);                            \
        o[1] = _mm_srai_epi32(_mm_add_epi32(x1, o2), SHIFT);                            \
        o[6] = _mm_srai_epi32(_mm_sub_epi32(x1, o2), SHIFT);                            \
        o[2] = _mm_srai_epi32(_mm_add_epi32(x2, o1), SHIFT);                            \
        o[5] = _mm_srai_epi32(_mm_sub_epi32(x2, o1), SHIFT);                            \
        o[3] = _mm_srai_epi32(_mm_add_epi32(x3, o0), SHIFT);                            \
        o[4] = _mm_srai_epi32(_mm_sub_epi32(x3, o0), SHIFT);                            \
    } while (0)

/* v[k] -> 1-D transform along k in every lane, saturated to 16 bits. */
#define PASS(v, BIAS)                                                                   \
    do {                                                                                \
        const __m128i bias = _mm_set1_epi32(BIAS);                                      \
        __m128i lo[8], hi[8];                                                           \
        PASS_HALF(_mm_unpacklo_epi16(v[0], v[4]), _mm_unpacklo_epi16(v[2], v[6]),       \
                  _mm_unpacklo_epi16(v[1], v[7]), _mm_unpacklo_epi16(v[3], v[5]), lo);  \
        PASS_HALF(_mm_unpackhi_epi16(v[0], v[4]), _mm_unpackhi_epi16(v[2], v[6]),       \
                  _mm_unpackhi_epi16(v[1], v[7]), _mm_unpackhi_epi16(v[3], v[5]), hi);  \
        for (int k_ = 0; k_ < 8; k_++)                                                  \
            v[k_] = _mm_packs_epi32(lo[k_], hi[k_]);                                    \
    } while (0)

void mdfi_jpeg_idct(const int16_t in[64], int last, unsigned char *out, int stride)
{
    if (last == 0) {
        idct_dc(in, out, stride);
        return;
    }
    __m128i v[8];
    for (int k = 0; k < 8; k++)
        v[k] = _mm_loadu_si128((const __m128i *)(const void *)(in + 8 * k));
#define SHIFT 10
    PASS(v, 512);        /* columns: v[k] is row k, lanes are columns */
#undef SHIFT
    transpose8(v);
#define SHIFT 17
    PASS(v, (int)ROW_BIAS);   /* rows: v[x] is column x, lanes are rows */
#undef SHIFT
    transpose8(v);
    for (int y = 0; y < 8; y += 2) {
        __m128i px = _mm_packus_epi16(v[y], v[y + 1]);
        _mm_storel_epi64((__m128i *)(void *)(out + (size_t)y * (size_t)stride), px);
        _mm_storel_epi64((__m128i *)(void *)(out + (size_t)(y + 1) * (size_t)stride),
                         _mm_srli_si128(px, 8));
    }
}

#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>

static inline void transpose8(int16x8_t v[8])
{
    int16x8x2_t t01 = vtrnq_s16(v[0], v[1]), t23 = vtrnq_s16(v[2], v[3]);
    int16x8x2_t t45 = vtrnq_s16(v[4], v[5]), t67 = vtrnq_s16(v[6], v[7]);
    int32x4x2_t x02 = vtrnq_s32(vreinterpretq_s32_s16(t01.val[0]), vreinterpretq_s32_s16(t23.val[0]));
    int32x4x2_t x13 = vtrnq_s32(vreinterpretq_s32_s16(t01.val[1]), vreinterpretq_s32_s16(t23.val[1]));
    int32x4x2_t x46 = vtrnq_s32(vreinterpretq_s32_s16(t45.val[0]), vreinterpretq_s32_s16(t67.val[0]));
    int32x4x2_t x57 = vtrnq_s32(vreinterpretq_s32_s16(t45.val[1]), vreinterpretq_s32_s16(t67.val[1]));
#define HALVES(a, b, lo_out, hi_out)                                                      \
    do {                                                                                  \
        v[lo_out] = vreinterpretq_s16_s32(vcombine_s32(vget_low_s32(a), vget_low_s32(b)));  \
        v[hi_out] = vreinterpretq_s16_s32(vcombine_s32(vget_high_s32(a), vget_high_s32(b))); \
    } while (0)
    HALVES(x02.val[0], x46.val[0], 0, 4);
    HALVES(x13.val[0], x57.val[0], 1, 5);
    HALVES(x02.val[1], x46.val[1], 2, 6);
    HALVES(x13.val[1], x57.val[1], 3, 7);
#undef HALVES
}

#define MUL2(a, ka, b, kb) vmlal_n_s16(vmull_n_s16(a, (int16_t)(ka)), b, (int16_t)(kb))

/* Four lanes (one half) of the 1-D transform. */
static inline void pass_half(const int16x4_t s[8], int32_t bias, int32x4_t o[8], int shift_row)
{
    int32x4_t b = vdupq_n_s32(bias);
    int32x4_t t0 = MUL2(s[0], 4096, s[4], 4096), t1 = MUL2(s[0], 4096, s[4], -4096);
    int32x4_t t2 = MUL2(s[2], K_T2_S2, s[6], K_T2_S6), t3 = MUL2(s[2], K_T3_S2, s[6], K_T3_S6);
    int32x4_t x0 = vaddq_s32(vaddq_s32(t0, t3), b), x3 = vaddq_s32(vsubq_s32(t0, t3), b);
    int32x4_t x1 = vaddq_s32(vaddq_s32(t1, t2), b), x2 = vaddq_s32(vsubq_s32(t1, t2), b);
    int32x4_t o0 = vmlal_n_s16(MUL2(s[1], K_T0_S1, s[7], K_T0_S7), s[3], (int16_t)K_T0_S3);
    int32x4_t o1 = vmlal_n_s16(MUL2(s[1], K_T1_S1, s[7], K_T1_S7), s[3], (int16_t)K_T1_S3);
    int32x4_t o2 = vmlal_n_s16(MUL2(s[1], K_T2_S1, s[7], K_T2_S7), s[3], (int16_t)K_T2_S3);
    int32x4_t o3 = vmlal_n_s16(MUL2(s[1], K_T3_S1, s[7], K_T3_S7), s[3], (int16_t)K_T3_S3);
    o0 = vmlal_n_s16(o0, s[5], (int16_t)K_T0_S5);
    o1 = vmlal_n_s16(o1, s[5], (int16_t)K_T1_S5);
    o2 = vmlal_n_s16(o2, s[5], (int16_t)K_T2_S5);
    o3 = vmlal_n_s16(o3, s[5], (int16_t)K_T3_S5);
    int32x4_t r[8] = {vaddq_s32(x0, o3), vaddq_s32(x1, o2), vaddq_s32(x2, o1), vaddq_s32(x3, o0),
                      vsubq_s32(x3, o0), vsubq_s32(x2, o1), vsubq_s32(x1, o2), vsubq_s32(x0, o3)};
    for (int k = 0; k < 8; k++)
        o[k] = shift_row ? vshrq_n_s32(r[k], 17) : vshrq_n_s32(r[k], 10);
}

static inline void pass(int16x8_t v[8], int32_t bias, int shift_row)
{
    int16x4_t lo[8], hi[8];
    int32x4_t olo[8], ohi[8];
    for (int k = 0; k < 8; k++) {
        lo[k] = vget_low_s16(v[k]);
        hi[k] = vget_high_s16(v[k]);
    }
    pass_half(lo, bias, olo, shift_row);
    pass_half(hi, bias, ohi, shift_row);
    for (int k = 0; k < 8; k++)
        v[k] = vcombine_s16(vqmovn_s32(olo[k]), vqmovn_s32(ohi[k]));
}

void mdfi_jpeg_idct(const int16_t in[64], int last, unsigned char *out, int stride)
{
    if (last == 0) {
        idct_dc(in, out, stride);
        return;
    }
    int16x8_t v[8];
    for (int k = 0; k < 8; k++)
        v[k] = vld1q_s16(in + 8 * k);
    pass(v, 512, 0);
    transpose8(v);
    pass(v, (int32_t)ROW_BIAS, 1);
    transpose8(v);
    for (int y = 0; y < 8; y++)
        vst1_u8(out + (size_t)y * (size_t)stride, vqmovun_s16(v[y]));
}

#else

void mdfi_jpeg_idct(const int16_t in[64], int last, unsigned char *out, int stride)
{
    if (last == 0)
        idct_dc(in, out, stride);
    else
        mdfi_jpeg_idct_scalar(in, out, stride);
}

#endif
