/* [fracconv]'s gated pass (kernels/dpath.h) where the CPU has AVX512_VPOPCNTDQ:
 * the AVX2 form's list of gated pixels, then for 3 x 3 filters of W = 1 or 2
 * words each window row (three words, the fourth lane masked off on load)
 * counted by vpopcntq, where the AVX2 form looks up nibbles.  With it the
 * dense second plane costs about 2 ns an output on an AMD EPYC, the AVX2
 * window count 6 ns a gated one. */
#include <immintrin.h>

#include "kernels/dpath_gated.h"
#include "kernels/x86/dpath_rows3.h"

static void counts3(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                    const int32_t *kc, float *out, const int32_t *list, int k)
{
    const __mmask8 m3 = 0x7;
    const int W = g->words;
    const ptrdiff_t pw = g->pw;
    __m256i a[6];   /* [word plane][window row]: the filter's three words */
    mdfi_rows3_filter(w, W, a);
    for (int j = 0; j < k; ++j) {
        const int32_t n = list[j];
        __m256i c = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int cw = 0; cw < W; ++cw) {
            const uint64_t *p = s0 + g->base[n] + cw * g->plane;
            const __m256i *ar = a + 3 * cw;
            const __m256i x0 = _mm256_xor_si256(_mm256_maskz_loadu_epi64(m3, p), ar[0]);
            const __m256i x1 = _mm256_xor_si256(_mm256_maskz_loadu_epi64(m3, p + pw), ar[1]);
            const __m256i x2 = _mm256_xor_si256(_mm256_maskz_loadu_epi64(m3, p + 2 * pw), ar[2]);
            c = _mm256_add_epi64(c, _mm256_add_epi64(_mm256_popcnt_epi64(x0),
                                                     _mm256_add_epi64(_mm256_popcnt_epi64(x1),
                                                                      _mm256_popcnt_epi64(x2))));
        }
        mdfi_gated_finish(out, n, kc, g->cls, mdfi_rows3_sum(c));
    }
}

int mdfi_dpath_gated_avx512vp(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                              const uint64_t *w, const int32_t *kc, int32_t G, float *out,
                              int n0, int n1, int32_t *list)
{
    const int k = mdfi_dpath_gated_list_avx2(out, n0, n1, G, list);
    if (g->ksize == 3 && g->words <= 2)
        counts3(g, s0, w, kc, out, list, k);
    else
        mdfi_dpath_gated_counts_popcnt(g, s0, w, kc, out, list, k);
    return k;
}
