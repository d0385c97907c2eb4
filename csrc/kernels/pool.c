/* Pooling loops (kernels/pool.h). */
#include "kernels/pool.h"

#include <float.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

static float max_into(float v, float m)
{
    return v > m ? v : m;
}

void mdfi_max2x2_row(const float *a, const float *b, int n, float *out)
{
    int i = 0;
#if defined(__SSE2__)
    /* maxps(v, m) is v > m ? v : m exactly (m on NaN or equality), so four
     * outputs a step give the scalar loop's bits; SSE2 is in every x86-64. */
    const __m128 lowest = _mm_set1_ps(-FLT_MAX);
    for (; i + 4 <= n; i += 4) {
        const __m128 a0 = _mm_loadu_ps(a + 2 * i), a1 = _mm_loadu_ps(a + 2 * i + 4);
        const __m128 b0 = _mm_loadu_ps(b + 2 * i), b1 = _mm_loadu_ps(b + 2 * i + 4);
        __m128 m = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), lowest);
        m = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), m);
        m = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), m);
        m = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), m);
        _mm_storeu_ps(out + i, m);
    }
#endif
    for (; i < n; ++i) {
        float m = max_into(a[2 * i], -FLT_MAX);
        m = max_into(a[2 * i + 1], m);
        m = max_into(b[2 * i], m);
        out[i] = max_into(b[2 * i + 1], m);
    }
}

void mdfi_max2x2s1_row(const float *a, const float *b, int n, float *out)
{
    int i = 0;
#if defined(__SSE2__)
    const __m128 lowest = _mm_set1_ps(-FLT_MAX);
    for (; i + 4 <= n; i += 4) {
        __m128 m = _mm_max_ps(_mm_loadu_ps(a + i), lowest);
        m = _mm_max_ps(_mm_loadu_ps(a + i + 1), m);
        m = _mm_max_ps(_mm_loadu_ps(b + i), m);
        _mm_storeu_ps(out + i, _mm_max_ps(_mm_loadu_ps(b + i + 1), m));
    }
#endif
    for (; i < n; ++i) {
        float m = max_into(a[i], -FLT_MAX);
        m = max_into(a[i + 1], m);
        m = max_into(b[i], m);
        out[i] = max_into(b[i + 1], m);
    }
}

#define MAX2(x, y) ((x) > (y) ? (x) : (y))

void mdfi_max2x2_row_i8(const int8_t *a, const int8_t *b, int n, int8_t *out)
{
    int i = 0;
#if defined(__SSE2__)
    /* SSE2 has no signed byte max: flipped sign bits order as unsigned bytes;
     * a pair's two bytes are a 16-bit lane's low and high halves. */
    const __m128i flip = _mm_set1_epi8(-128), low = _mm_set1_epi16(0xff);
    for (; i + 16 <= n; i += 16) {
        __m128i m[2];
        for (int h = 0; h < 2; ++h) {
            __m128i x = _mm_max_epu8(
                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + 2 * i + 16 * h)), flip),
                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(b + 2 * i + 16 * h)), flip));
            m[h] = _mm_max_epi16(_mm_and_si128(x, low), _mm_srli_epi16(x, 8));
        }
        _mm_storeu_si128((__m128i *)(out + i), _mm_xor_si128(_mm_packus_epi16(m[0], m[1]), flip));
    }
#elif defined(__aarch64__)
    for (; i + 16 <= n; i += 16)   /* the rows' max, then adjacent pairs' */
        vst1q_s8(out + i, vpmaxq_s8(vmaxq_s8(vld1q_s8(a + 2 * i), vld1q_s8(b + 2 * i)),
                                    vmaxq_s8(vld1q_s8(a + 2 * i + 16), vld1q_s8(b + 2 * i + 16))));
#endif
    for (; i < n; ++i)
        out[i] = (int8_t)MAX2(MAX2(a[2 * i], a[2 * i + 1]), MAX2(b[2 * i], b[2 * i + 1]));
}

void mdfi_max2x2_row_i16(const int16_t *a, const int16_t *b, int n, int16_t *out)
{
    int i = 0;
#if defined(__SSE2__)
    /* a pair is a 32-bit lane's halves: the low half takes the max of both,
     * is sign-extended over the lane and packed back */
    for (; i + 8 <= n; i += 8) {
        __m128i m[2];
        for (int h = 0; h < 2; ++h) {
            __m128i x = _mm_max_epi16(_mm_loadu_si128((const __m128i *)(a + 2 * i + 8 * h)),
                                      _mm_loadu_si128((const __m128i *)(b + 2 * i + 8 * h)));
            x = _mm_max_epi16(x, _mm_srli_epi32(x, 16));
            m[h] = _mm_srai_epi32(_mm_slli_epi32(x, 16), 16);
        }
        _mm_storeu_si128((__m128i *)(out + i), _mm_packs_epi32(m[0], m[1]));
    }
#elif defined(__aarch64__)
    for (; i + 8 <= n; i += 8)
        vst1q_s16(out + i, vpmaxq_s16(vmaxq_s16(vld1q_s16(a + 2 * i), vld1q_s16(b + 2 * i)),
                                      vmaxq_s16(vld1q_s16(a + 2 * i + 8), vld1q_s16(b + 2 * i + 8))));
#endif
    for (; i < n; ++i)
        out[i] = (int16_t)MAX2(MAX2(a[2 * i], a[2 * i + 1]), MAX2(b[2 * i], b[2 * i + 1]));
}

#if defined(__SSE2__)
static __m128i max_epi32_sse2(__m128i x, __m128i y)   /* (SSE4.1 has pmaxsd) */
{
    const __m128i gt = _mm_cmpgt_epi32(x, y);
    return _mm_or_si128(_mm_and_si128(gt, x), _mm_andnot_si128(gt, y));
}
#endif

void mdfi_max2x2_row_i32(const int32_t *a, const int32_t *b, int n, int32_t *out)
{
    int i = 0;
#if defined(__SSE2__)
    /* the rows' max, then its even and odd lanes (as floats: a shuffle only) */
    for (; i + 4 <= n; i += 4) {
        const __m128i m0 = max_epi32_sse2(_mm_loadu_si128((const __m128i *)(a + 2 * i)),
                                          _mm_loadu_si128((const __m128i *)(b + 2 * i)));
        const __m128i m1 = max_epi32_sse2(_mm_loadu_si128((const __m128i *)(a + 2 * i + 4)),
                                          _mm_loadu_si128((const __m128i *)(b + 2 * i + 4)));
        const __m128 f0 = _mm_castsi128_ps(m0), f1 = _mm_castsi128_ps(m1);
        _mm_storeu_si128((__m128i *)(out + i),
                         max_epi32_sse2(_mm_castps_si128(_mm_shuffle_ps(f0, f1, 0x88)),
                                        _mm_castps_si128(_mm_shuffle_ps(f0, f1, 0xdd))));
    }
#elif defined(__aarch64__)
    for (; i + 4 <= n; i += 4)
        vst1q_s32(out + i, vpmaxq_s32(vmaxq_s32(vld1q_s32(a + 2 * i), vld1q_s32(b + 2 * i)),
                                      vmaxq_s32(vld1q_s32(a + 2 * i + 4), vld1q_s32(b + 2 * i + 4))));
#endif
    for (; i < n; ++i)
        out[i] = MAX2(MAX2(a[2 * i], a[2 * i + 1]), MAX2(b[2 * i], b[2 * i + 1]));
}

void mdfi_max_rows_i32(const int32_t *a, const int32_t *b, int n, int32_t *out)
{
    int i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= n; i += 4)
        _mm_storeu_si128((__m128i *)(out + i),
                         max_epi32_sse2(_mm_loadu_si128((const __m128i *)(a + i)),
                                        _mm_loadu_si128((const __m128i *)(b + i))));
#elif defined(__aarch64__)
    for (; i + 4 <= n; i += 4)
        vst1q_s32(out + i, vmaxq_s32(vld1q_s32(a + i), vld1q_s32(b + i)));
#endif
    for (; i < n; ++i)
        out[i] = MAX2(a[i], b[i]);
}

void mdfi_max2x2s1_row_i8(const int8_t *a, const int8_t *b, int n, int8_t *out)
{
    int i = 0;
#if defined(__SSE2__)
    const __m128i flip = _mm_set1_epi8(-128);
    for (; i + 16 <= n; i += 16) {
        __m128i m = _mm_max_epu8(
            _mm_max_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + i)), flip),
                         _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + i + 1)), flip)),
            _mm_max_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(b + i)), flip),
                         _mm_xor_si128(_mm_loadu_si128((const __m128i *)(b + i + 1)), flip)));
        _mm_storeu_si128((__m128i *)(out + i), _mm_xor_si128(m, flip));
    }
#elif defined(__aarch64__)
    for (; i + 16 <= n; i += 16)
        vst1q_s8(out + i, vmaxq_s8(vmaxq_s8(vld1q_s8(a + i), vld1q_s8(a + i + 1)),
                                   vmaxq_s8(vld1q_s8(b + i), vld1q_s8(b + i + 1))));
#endif
    for (; i < n; ++i)
        out[i] = (int8_t)MAX2(MAX2(a[i], a[i + 1]), MAX2(b[i], b[i + 1]));
}
