/* The on-the-fly weight transform of Winograd F(4,3) (kernels/winograd.c,
 * weight_tf_planes) eight elements a step with FMA: the same U up to
 * rounding.  Rolled loops (-O2): it runs once per chunk of weights. */
#include <immintrin.h>

#include "kernels/sgemm_impl.h"

/* G x for the 3-vector (x0, x1, x2), the rows of G written out, stored at
 * o, o + os, ... o + 5 os. */
static inline __attribute__((always_inline)) void rows8(__m256 x0, __m256 x1, __m256 x2,
                                                        float *o, size_t os)
{
    const __m256 c4 = _mm256_set1_ps(.25f), c6 = _mm256_set1_ps(1 / 6.f);
    const __m256 m6 = _mm256_set1_ps(-(1 / 6.f)), c12 = _mm256_set1_ps(1 / 12.f);
    const __m256 s = _mm256_add_ps(x0, x2);
    const __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1 / 24.f), x0, _mm256_mul_ps(c6, x2));
    _mm256_storeu_ps(o, _mm256_mul_ps(c4, x0));
    _mm256_storeu_ps(o + os, _mm256_mul_ps(m6, _mm256_add_ps(s, x1)));
    _mm256_storeu_ps(o + 2 * os, _mm256_mul_ps(m6, _mm256_sub_ps(s, x1)));
    _mm256_storeu_ps(o + 3 * os, _mm256_fmadd_ps(c12, x1, q));
    _mm256_storeu_ps(o + 4 * os, _mm256_fnmadd_ps(c12, x1, q));
    _mm256_storeu_ps(o + 5 * os, x2);
}

/* G's rows, for the columns of H = g GT (H[a][j] = g[a] . G[j]). */
static const float grow[6][4] = {{.25f, 0, 0}, {-(1 / 6.f), -(1 / 6.f), -(1 / 6.f)},
                                 {-(1 / 6.f), 1 / 6.f, -(1 / 6.f)}, {1 / 24.f, 1 / 12.f, 1 / 6.f},
                                 {1 / 24.f, -(1 / 12.f), 1 / 6.f}, {0, 0, 1}};

/* Column j of H for the three rows of taps, then its six U = G H values:
 * H stays in registers, so the stores are U's 36 alone (they bound it). */
void mdfi_wino_u_avx2(const float *g, float *u, size_t us, size_t n)
{
#pragma GCC unroll 1
    for (size_t e = 0; e < n; e += 8) {
        const float *p = g + e * 9;
#pragma GCC unroll 1
        for (int j = 0; j < 6; ++j) {
            const __m256 c0 = _mm256_set1_ps(grow[j][0]), c1 = _mm256_set1_ps(grow[j][1]);
            const __m256 c2 = _mm256_set1_ps(grow[j][2]);
            __m256 h[3];
            for (int a = 0; a < 3; ++a)
                h[a] = _mm256_fmadd_ps(c2, _mm256_loadu_ps(p + 24 * a + 16),
                                       _mm256_fmadd_ps(c1, _mm256_loadu_ps(p + 24 * a + 8),
                                                       _mm256_mul_ps(c0, _mm256_loadu_ps(p + 24 * a))));
            rows8(h[0], h[1], h[2], u + j * us + e, 6 * us);
        }
    }
}
