/* NEON forms of the logistic and AlexeyAB's swish and mish: the arithmetic of
 * kernels/x86/act_avx2.c four values a step (see there).  ARMv7 has no
 * vector divide or round-to-nearest: the quotient is a reciprocal estimate
 * refined by two Newton steps, and the rounding adds +-0.5 before the
 * truncating conversion; within a few ulps of the definition either way. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/activations.h"

#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define VFMA(acc, x, y) vfmaq_f32(acc, x, y)
#else
#define VFMA(acc, x, y) vmlaq_f32(acc, x, y)
#endif

static inline float32x4_t div4(float32x4_t a, float32x4_t b)
{
#if defined(__aarch64__)
    return vdivq_f32(a, b);
#else
    float32x4_t r = vrecpeq_f32(b);
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    return vmulq_f32(a, r);
#endif
}

/* e^x for x in [-87.3, 88], as exp8 in act_avx2.c */
static inline float32x4_t exp4(float32x4_t x)
{
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.0f));
    const float32x4_t t = vmulq_f32(x, vdupq_n_f32(1.44269504f));
    const float32x4_t half = vbslq_f32(vcltq_f32(t, vdupq_n_f32(0.f)), vdupq_n_f32(-.5f),
                                       vdupq_n_f32(.5f));
    const int32x4_t ni = vcvtq_s32_f32(vaddq_f32(t, half));
    const float32x4_t n = vcvtq_f32_s32(ni);
    float32x4_t r = VFMA(x, n, vdupq_n_f32(-0.693359375f));
    r = VFMA(r, n, vdupq_n_f32(2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.f / 720);
    p = VFMA(vdupq_n_f32(1.f / 120), p, r);
    p = VFMA(vdupq_n_f32(1.f / 24), p, r);
    p = VFMA(vdupq_n_f32(1.f / 6), p, r);
    p = VFMA(vdupq_n_f32(.5f), p, r);
    p = VFMA(vdupq_n_f32(1.f), p, r);
    p = VFMA(vdupq_n_f32(1.f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

/* Only swish and mish come here (mdfi_activate_for): x n / (n + c) as in
 * act_avx2.c, the tail through a buffer. */
void mdfi_activate_neon(float *x, size_t n, mdfi_activation a)
{
    const int mish = a == MDFI_ACT_MISH, logistic = a == MDFI_ACT_LOGISTIC;
    const float32x4_t vm = vdupq_n_f32(mish ? 1.f : 0.f), va = vdupq_n_f32(mish ? 2.f : 1.f);
    for (size_t i = 0; i < n; i += 4) {
        const size_t k = n - i < 4 ? n - i : 4;
        float t[4] = {0};
        float *p = k == 4 ? x + i : t;
        if (k < 4)
            memcpy(t, x + i, k * sizeof *x);
        const float32x4_t v = vld1q_f32(p), e = exp4(v);
        float32x4_t r;
        if (logistic) {
            r = div4(e, vaddq_f32(e, va));
            /* 1 in float above 17.4; ARMv7's reciprocal estimate of e + 1 would
               flush to 0 near 88 */
            r = vbslq_f32(vcgtq_f32(v, vdupq_n_f32(20.f)), vdupq_n_f32(1.f), r);
            r = vbslq_f32(vceqq_f32(v, v), r, v);   /* NaN stays */
        } else {
            const float32x4_t num = vmulq_f32(e, VFMA(va, vm, e));
            r = vmulq_f32(v, div4(num, vaddq_f32(num, va)));
            r = vbslq_f32(vcgtq_f32(v, vdupq_n_f32(20.f)), v, r);
        }
        r = vbslq_f32(vcltq_f32(v, vdupq_n_f32(-87.3f)), vdupq_n_f32(0.f), r);   /* as AVX2 */
        vst1q_f32(p, r);
        if (k < 4)
            memcpy(x + i, t, k * sizeof *x);
    }
}
