/* The [dualpath] element loops (kernels/dpath.h). */
#include "kernels/dpath.h"

#include <math.h>

#include "base/error.h"
#include "kernels/bgemm.h"   /* mdfi_popcount64 */
#include "kernels/dpath_gated.h"

#define LIM ((int64_t)1 << 24)
#define FLOOR_BIAS ((int64_t)1 << 62)   /* a multiple of 2^s for s <= 36 */

void mdfi_dpath_pack_words(const float *x, size_t cstride, int nc, int w, const float *hi,
                           const float *lo, uint64_t *pos, uint64_t *nonzero)
{
    for (int i = 0; i < w; ++i) {
        uint64_t u = 0, z = 0;
        for (int c = 0; c < nc; ++c) {
            const float v = x[(size_t)c * cstride + i];
            const uint64_t up = v > hi[c];
            u |= up << c;
            z |= (up | (uint64_t)(v < lo[c])) << c;
        }
        pos[i] = u;
        if (nonzero)
            nonzero[i] = z;
    }
}

void mdfi_dpath_pack_frac_words(const float *x, size_t cstride, int nc, int w, const float *shift,
                                const float *hi, const float *lo, uint64_t *s1, uint64_t *s0)
{
    for (int i = 0; i < w; ++i) {
        uint64_t u = 0, z = 0;
        for (int c = 0; c < nc; ++c) {
            const float v = x[(size_t)c * cstride + i];
            const uint64_t up = v > shift[c], mid = (uint64_t)(v > lo[c]) & !up;
            u |= up << c;
            z |= ((uint64_t)(v > hi[c]) | mid) << c;
        }
        s1[i] = u;
        s0[i] = z;
    }
}

void mdfi_dpath_pack_thermo_row(const float *x, int w, const float *t, int T, int ch0,
                                size_t wstride, uint64_t *out)
{
    for (int k = 0; k < T; ++k) {
        const int ch = ch0 + k;
        const uint64_t bit = 1ull << (ch & 63);
        uint64_t *o = out + (size_t)(ch >> 6) * wstride;
        const float tk = t[k];
        for (int i = 0; i < w; ++i)
            o[i] |= (uint64_t)(x[i] > tk) * bit;
    }
}

static int popcount_swar(uint64_t x)
{
    return mdfi_popcount64(x);
}

int mdfi_dpath_gated(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                     const int32_t *kc, int32_t G, float *out, int n0, int n1, int32_t *list)
{
    return mdfi_gated_body(g, s0, w, kc, G, out, n0, n1, list, popcount_swar);
}

/* rint for |v| <= 2^24 without a libm call: below 2^23, adding and taking
 * back 2^23 rounds to an integer in the current (to nearest even) mode;
 * from 2^23 on every float32 is an integer.  C99 evaluates float in float
 * on every target MDFI builds for (FLT_EVAL_METHOD 0). */
static inline float round_even(float v)
{
    float a = fabsf(v);
    float r = (a + 8388608.0f) - 8388608.0f;
    return copysignf(a < 8388608.0f ? r : a, v);
}

static int64_t rq_exact(const mdfi_dpath_rq *q, int64_t D)
{
    /* floor((mul D + off) / 2^s) without shifting a negative value */
    const int64_t r = (int64_t)((uint64_t)(q->mul * D + q->off + FLOOR_BIAS) >> q->s) -
                      (FLOOR_BIAS >> q->s);
    return r < -LIM ? -LIM : r > LIM ? LIM : r;
}

/* floor(x / 2^k), 0 <= k <= 31, without shifting a negative value */
static inline int32_t floor_shift32(int32_t x, int k)
{
    return (int32_t)((int64_t)(((uint32_t)x + 0x80000000u) >> k) - ((int64_t)1 << (31 - k)));
}

static int64_t rq(const mdfi_dpath_rq *q, int32_t D)
{
    if (!q->split || D <= -(1 << 14) || D >= 1 << 14)
        return rq_exact(q, D);
    const int32_t Q = q->mh * D + q->oh + floor_shift32(q->ml * D + q->ol, 16);
    const int32_t r = floor_shift32(Q, q->s - 16);
    return r < -LIM ? -LIM : r > LIM ? LIM : r;
}

MDFI_COLD void mdfi_dpath_rq_split(mdfi_dpath_rq *q)
{
    const int64_t mh = (int64_t)((uint64_t)(q->mul + FLOOR_BIAS) >> 16) - (FLOOR_BIAS >> 16);
    const int64_t oh = (int64_t)((uint64_t)(q->off + FLOOR_BIAS) >> 16) - (FLOOR_BIAS >> 16);
    q->split = q->s >= 16 && q->mul >= -((int64_t)1 << 30) && q->mul <= (int64_t)1 << 30 &&
               oh > -((int64_t)1 << 30) && oh < (int64_t)1 << 30;
    q->mh = q->split ? (int32_t)mh : 0;
    q->ml = q->split ? (int32_t)(q->mul - mh * 65536) : 0;
    q->oh = q->split ? (int32_t)oh : 0;
    q->ol = q->split ? (int32_t)(q->off - oh * 65536) : 0;
}

void mdfi_dpath_requant(float *d, const float *d0, const float *src, size_t n,
                        const mdfi_dpath_rq *q)
{
    for (size_t i = 0; i < n; ++i) {
        const int32_t D = d0 ? 2 * (int32_t)d[i] + (int32_t)d0[i] : (int32_t)d[i];
        float v = src[i];
        v = v != v ? 0.f : v < -16777216.0f ? -16777216.0f : v > 16777216.0f ? 16777216.0f : v;
        int64_t t = rq(q, D) + (int64_t)round_even(v);
        t = t < -LIM ? -LIM : t > LIM ? LIM : t;
        d[i] = (float)t;
    }
}

MDFI_COLD mdfi_dpath_loops mdfi_dpath_loops_for(mdfi_isa isa)
{
    mdfi_dpath_loops f = {mdfi_dpath_pack_words, mdfi_dpath_pack_frac_words, mdfi_dpath_requant,
                          mdfi_dpath_gated};
#ifdef MDFI_HAVE_POPCNT
    if (isa != MDFI_ISA_REF && (mdfi_cpu_features() & MDFI_CPU_POPCNT))
        f.gated = mdfi_dpath_gated_popcnt;
#endif
#ifdef MDFI_HAVE_AVX2
    if ((isa == MDFI_ISA_AVX2 || isa == MDFI_ISA_AVX512) && mdfi_isa_available(MDFI_ISA_AVX2)) {
        f.pack_words = mdfi_dpath_pack_words_avx2;
        f.pack_frac = mdfi_dpath_pack_frac_words_avx2;
        f.requant = mdfi_dpath_requant_avx2;
        if (mdfi_cpu_features() & MDFI_CPU_POPCNT)
            f.gated = mdfi_dpath_gated_avx2;
    }
#endif
#ifdef MDFI_HAVE_AVX512
    if (isa == MDFI_ISA_AVX512 && mdfi_isa_available(MDFI_ISA_AVX512)) {
        f.pack_words = mdfi_dpath_pack_words_avx512;
        f.pack_frac = mdfi_dpath_pack_frac_words_avx512;
    }
#endif
#ifdef MDFI_HAVE_AVX512VPOPCNT
    if (isa == MDFI_ISA_AVX512 && mdfi_isa_available(MDFI_ISA_AVX512) &&
        (mdfi_cpu_features() & (MDFI_CPU_VPOPCNT | MDFI_CPU_POPCNT)) ==
            (MDFI_CPU_VPOPCNT | MDFI_CPU_POPCNT))
        f.gated = mdfi_dpath_gated_avx512vp;
#endif
    (void)isa;
    return f;
}
