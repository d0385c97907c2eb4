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

/* floor as round_even (no libm call, which 32-bit ARM would make) */
static inline float floor_even(float v)
{
    const float r = round_even(v);
    return r > v ? r - 1.f : r;
}

static int64_t rq_exact(const mdfi_dpath_rq *q, int64_t D)
{
    /* floor((mul D + off) / 2^s) without shifting a negative value */
    const int64_t r = (int64_t)((uint64_t)(q->mul * D + q->off + FLOOR_BIAS) >> q->s) -
                      (FLOOR_BIAS >> q->s);
    return r < -LIM ? -LIM : r > LIM ? LIM : r;
}

void mdfi_dpath_requant(float *d, const float *d0, const float *src, size_t n,
                        const mdfi_dpath_rq *q)
{
    const float range = (float)q->range;
    for (size_t i = 0; i < n; ++i) {
        const float D = d0 ? 2.f * d[i] + d0[i] : d[i], p = D * q->a;
        const float r = fabsf(D) <= range ? floor_even(p + q->b) : (float)rq_exact(q, (int64_t)D);
        float v = src[i];
        v = v != v ? 0.f : v < -16777216.0f ? -16777216.0f : v > 16777216.0f ? 16777216.0f : v;
        /* both integers of at most 2^24: the sum is exact or, past 2^24, clamped */
        const float t = r + round_even(v);
        d[i] = t < -16777216.0f ? -16777216.0f : t > 16777216.0f ? 16777216.0f : t;
    }
}

/* a = Mul / 2^s and b = Off / 2^s rounded to float.  Where it fails, it
 * fails by a float step at some D (a value within 2^-24 of an integer, as
 * about 2 % of trained channels have; no neighbouring b did better): those
 * channels keep the definition. */
MDFI_COLD void mdfi_dpath_rq_shortcut(mdfi_dpath_rq *q, int32_t dmax)
{
    q->a = (float)ldexp((double)q->mul, -q->s);
    q->b = (float)ldexp((double)q->off, -q->s);
    q->range = -1;
    if (dmax < 0 || dmax > 1 << 16)
        return;
    for (int32_t D = -dmax; D <= dmax; ++D) {
        const float p = (float)D * q->a;   /* two statements: never an fma */
        if (floor_even(p + q->b) != (float)rq_exact(q, D))
            return;
    }
    q->range = dmax;
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
#ifdef MDFI_HAVE_AVX512VPOPCNT
    if (isa == MDFI_ISA_AVX512 && mdfi_isa_available(MDFI_ISA_AVX512) &&
        (mdfi_cpu_features() & (MDFI_CPU_VPOPCNT | MDFI_CPU_POPCNT)) ==
            (MDFI_CPU_VPOPCNT | MDFI_CPU_POPCNT))
        f.gated = mdfi_dpath_gated_avx512vp;
#endif
    (void)isa;
    return f;
}
