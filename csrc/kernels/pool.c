/* Pooling loops (kernels/pool.h). */
#include "kernels/pool.h"

#include <float.h>

#if defined(__SSE2__)
#include <emmintrin.h>
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
