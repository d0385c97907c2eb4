/* AVX2 forms of the logistic and AlexeyAB's swish and mish
 * (kernels/activations.h), eight values a step with one exponential each: e^x by range reduction to
 * r in [-ln2/2, ln2/2] and a degree-6 polynomial (|error| ~ 1 ulp), and
 * mish through tanh(log(1 + e^x)) = n / (n + 2), n = e^x (e^x + 2), which
 * needs neither log nor tanh; the logistic is e^x / (e^x + 1).  They differ from the scalar forms by a few
 * ulps (the scalar tanh of a small softplus cancels; this form does not). */
#include <immintrin.h>
#include <string.h>

#include "kernels/activations.h"

/* e^x for x in [-87.3, 88] (clamped there, so that 2^n stays a normal float). */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln 2 split so that n ln2_hi is exact */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                         _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* With e = e^x: swish = x e / (e + 1), mish = x n / (n + 2) for n = e (e + 2),
 * so both are x n / (n + c), n = e (vm e + va): (vm, va, c) = (0, 1, 1) or (1, 2, 2).
 * Above 20 both are x in float (AlexeyAB's softplus threshold for mish). */
void mdfi_activate_avx2(float *x, size_t n, mdfi_activation a)
{
    const int mish = a == MDFI_ACT_MISH, logistic = a == MDFI_ACT_LOGISTIC;
    const __m256 vm = _mm256_set1_ps(mish ? 1.f : 0.f), va = _mm256_set1_ps(mish ? 2.f : 1.f);
    const __m256 twenty = _mm256_set1_ps(20.f);
    for (size_t i = 0; i < n; i += 8) {   /* the tail through a buffer, same arithmetic */
        const size_t k = n - i < 8 ? n - i : 8;
        float t[8] = {0};
        float *p = k == 8 ? x + i : t;
        if (k < 8)
            memcpy(t, x + i, k * sizeof *x);
        const __m256 v = _mm256_loadu_ps(p), e = exp8(v);
        __m256 r;
        if (logistic) {   /* 1 above 17.4 in float: e / (e + 1) rounds to it */
            r = _mm256_div_ps(e, _mm256_add_ps(e, va));
            r = _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));   /* NaN stays */
        } else {
            const __m256 num = _mm256_mul_ps(e, _mm256_fmadd_ps(vm, e, va));
            r = _mm256_mul_ps(v, _mm256_div_ps(num, _mm256_add_ps(num, va)));
            r = _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, twenty, _CMP_GT_OQ));
        }
        /* below exp8's range all three are under 1e-37: 0 (the clamped e^-87.3
           would not be) */
        r = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_set1_ps(-87.3f), _CMP_LT_OQ), r);
        _mm256_storeu_ps(p, r);
        if (k < 8)
            memcpy(x + i, t, k * sizeof *x);
    }
}
