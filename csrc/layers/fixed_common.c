/* What the fixed-point variants share: formats, input binding, conversions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/image.h"
#include "layers/fixed.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

/* Every input must be integer; sets q_in to in[0]'s format and reads fixed_out. */
mdfi_status mdfi_fx_bind_int_inputs(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    mdfi_cfg_section *s = ctx->sec;
    for (int k = 0; k < l->n_in; ++k)
        if (l->in[k] < 0 || !ctx->layers[l->in[k]].q_out.bits)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: its input (%s) is float; "
                             "only convolutional and connected layers quantize float input",
                             ctx->cfg->name, s->line, ctx->index, s->type,
                             l->in[k] < 0 ? "the network input" : "an earlier layer");
    l->q_in = ctx->layers[l->in[0]].q_out;
    mdfi_qfmt out;
    MDFI_CHECK(mdfi_fx_read_format(ctx->cfg, s, "fixed_out", &out, err));
    if (!out.bits)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] needs fixed_out",
                         ctx->cfg->name, s->line, ctx->index, s->type);
    if (mdfi_cfg_str(s, "fixed_w", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no weights: fixed_w is "
                         "not allowed", ctx->cfg->name, mdfi_cfg_line(s, "fixed_w"), ctx->index,
                         s->type);
    if (mdfi_cfg_str(s, "fixed_in", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: fixed_in is only for "
                         "convolutional and connected layers (others read their inputs' "
                         "formats)", ctx->cfg->name, mdfi_cfg_line(s, "fixed_in"), ctx->index,
                         s->type);
    mdfi_fx_set_output(l, out);
    return MDFI_OK;
}

mdfi_status mdfi_fx_bind_act(const mdfi_bind_ctx *ctx, mdfi_activation a, int *out,
                             mdfi_errbuf *err)
{
    *out = a == MDFI_ACT_LINEAR ? 0 : a == MDFI_ACT_RELU ? 1 : a == MDFI_ACT_LEAKY ? 2 : -1;
    if (*out < 0)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [%s]: activation %s has "
                         "no integer form (linear, relu, leaky)", ctx->cfg->name,
                         mdfi_cfg_line(ctx->sec, "activation"), ctx->index, ctx->sec->type,
                         mdfi_activation_name(a));
    return MDFI_OK;
}

/* Per-channel work split over the pool. */
typedef struct {
    const mdfi_layer *l;
    const mdfi_run_ctx *ctx;
    mdfi_fx_channel_fn fn;
    int per;
} chan_job;

static void chan_task(void *arg, int task, int thread)
{
    const chan_job *j = arg;
    (void)thread;
    int c0 = task * j->per, c1 = c0 + j->per < j->l->out_c ? c0 + j->per : j->l->out_c;
    for (int c = c0; c < c1; ++c)
        j->fn(j->l, j->ctx, c);
}

void mdfi_fx_by_channel(const mdfi_layer *l, mdfi_run_ctx *ctx, mdfi_fx_channel_fn fn)
{
    int threads = mdfi_pool_threads(ctx->pool);
    chan_job j = {l, ctx, fn, (l->out_c + threads - 1) / threads};
    mdfi_pool_run(ctx->pool, (l->out_c + j.per - 1) / j.per, chan_task, &j);
}

mdfi_status mdfi_fx_read_format(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                                mdfi_qfmt *f, mdfi_errbuf *err)
{
    const char *v = mdfi_cfg_str(s, key, NULL);
    f->bits = f->frac = 0;
    if (!v)
        return MDFI_OK;
    char *end;
    long bits = strtol(v, &end, 10);
    long frac = 0;
    int ok = end != v && *end == ':';
    if (ok) {
        const char *p = end + 1;
        frac = strtol(p, &end, 10);
        ok = end != p && *end == '\0';
    }
    if (!ok || (bits != 8 && bits != 16) || frac < MDFI_FX_FRAC_MIN || frac > MDFI_FX_FRAC_MAX)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: %s=%s is not BITS:FRAC with BITS 8 or 16 "
                         "and FRAC in %d..%d", cfg->name, mdfi_cfg_line(s, key), key, v,
                         MDFI_FX_FRAC_MIN, MDFI_FX_FRAC_MAX);
    f->bits = (int)bits;
    f->frac = (int)frac;
    return MDFI_OK;
}

void mdfi_fx_set_output(mdfi_layer *l, mdfi_qfmt out)
{
    l->q_out = out;
    l->out_bytes = mdfi_layer_outputs(l) * (size_t)(out.bits / 8);
}

void mdfi_fx_convert(const void *src, mdfi_qfmt from, void *dst, mdfi_qfmt to, size_t n)
{
    const int s = from.frac - to.frac;
    if (from.bits == to.bits && s == 0) {
        if (src != dst)
            memmove(dst, src, n * (size_t)(from.bits / 8));
        return;
    }
    if (from.bits == 8 && to.bits == 8 && s > 0 && s < 8) {
        /* mdfi_fx_requant's rounding shift, which cannot saturate here, in
         * a loop the compiler vectorizes (a [route] of yolov3-tiny W8A8) */
        const int8_t *a = src;
        int8_t *b = dst;
        for (size_t i = 0; i < n; ++i)
            b[i] = (int8_t)((a[i] >> s) + ((a[i] >> (s - 1)) & 1));
        return;
    }
    for (size_t i = 0; i < n; ++i)
        mdfi_fx_put(dst, to.bits, i, mdfi_fx_requant(mdfi_fx_get(src, from.bits, i), s, to.bits));
}

typedef float qvf __attribute__((vector_size(16)));
typedef int32_t qvi __attribute__((vector_size(16)));
typedef int16_t qvh __attribute__((vector_size(8)));
typedef int8_t qvb __attribute__((vector_size(4)));

/* m ? a : b, lane by lane */
#define QV_BLEND(m, a, b) ((qvf)(((qvi)(a) & (m)) | ((qvi)(b) & ~(m))))

typedef struct {
    qvf scale, magic, lo, hi, half;
} qv_consts;

/* Four values of the loop below (the same float operations), as int32. */
static inline __attribute__((always_inline)) qvi quant4(const float *src, const qv_consts *k)
{
#if defined(__SSE2__)
    /* maxps / minps give the blends' values here (y is not NaN by then) */
    __m128 y = _mm_mul_ps(_mm_loadu_ps(src), (__m128)k->scale);
    y = _mm_and_ps(y, _mm_cmpeq_ps(y, y));
    y = _mm_min_ps(_mm_max_ps(y, (__m128)k->lo), (__m128)k->hi);
    const __m128 r = _mm_sub_ps(_mm_add_ps(y, (__m128)k->magic), (__m128)k->magic);
    return (qvi)_mm_sub_epi32(_mm_cvttps_epi32(r),
                              _mm_castps_si128(_mm_cmpeq_ps(_mm_sub_ps(y, r), (__m128)k->half)));
#else
    qvf y;
    memcpy(&y, src, sizeof y);
    y *= k->scale;
    y = (qvf)((qvi)y & (y == y));
    y = QV_BLEND(y < k->lo, k->lo, y);
    y = QV_BLEND(y > k->hi, k->hi, y);
    const qvf r = (y + k->magic) - k->magic;
    return __builtin_convertvector(r, qvi) - (y - r == k->half);
#endif
}

void mdfi_fx_quantize(const float *src, void *dst, mdfi_qfmt to, size_t n)
{
    /* floor(x * 2^F + 1/2), saturated, NaN -> 0, in float32 and still exact:
     * x * 2^F is exact (or rounds only where the result is 0 or saturates);
     * adding and subtracting 1.5 * 2^23 rounds |y| <= 2^15 to the nearest
     * integer r, ties to even; y - r is exact, and a tie rounded down
     * (y - r == 1/2) goes up.  No int -> float conversion (a serial
     * dependency on x86) and no branch.  Sixteen at a time with the same
     * operations in vector types (this file is built for size, where the
     * compiler would not vectorize the loop), narrowed by SSE2's or NEON's
     * saturating packs (the values are in range already); the tail one by
     * one. */
    const float scale = (float)ldexp(1., to.frac), magic = 12582912.f;
    const float hi = to.bits == 8 ? 127.f : 32767.f, lo = -hi - 1.f;
    const qv_consts k = {scale + (qvf){0}, magic + (qvf){0}, lo + (qvf){0}, hi + (qvf){0},
                         .5f + (qvf){0}};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const qvi q0 = quant4(src + i, &k), q1 = quant4(src + i + 4, &k);
        const qvi q2 = quant4(src + i + 8, &k), q3 = quant4(src + i + 12, &k);
#if defined(__SSE2__)
        const __m128i h0 = _mm_packs_epi32((__m128i)q0, (__m128i)q1);
        const __m128i h1 = _mm_packs_epi32((__m128i)q2, (__m128i)q3);
        if (to.bits == 8) {
            _mm_storeu_si128((__m128i *)((int8_t *)dst + i), _mm_packs_epi16(h0, h1));
        } else {
            _mm_storeu_si128((__m128i *)((int16_t *)dst + i), h0);
            _mm_storeu_si128((__m128i *)((int16_t *)dst + i + 8), h1);
        }
#elif defined(__ARM_NEON)
        const int16x8_t h0 = vcombine_s16(vqmovn_s32((int32x4_t)q0), vqmovn_s32((int32x4_t)q1));
        const int16x8_t h1 = vcombine_s16(vqmovn_s32((int32x4_t)q2), vqmovn_s32((int32x4_t)q3));
        if (to.bits == 8) {
            vst1q_s8((int8_t *)dst + i, vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1)));
        } else {
            vst1q_s16((int16_t *)dst + i, h0);
            vst1q_s16((int16_t *)dst + i + 8, h1);
        }
#else
        const qvi q[4] = {q0, q1, q2, q3};
        for (int v = 0; v < 4; ++v)
            if (to.bits == 8) {
                const qvb b = __builtin_convertvector(q[v], qvb);
                memcpy((int8_t *)dst + i + 4 * v, &b, sizeof b);
            } else {
                const qvh h = __builtin_convertvector(q[v], qvh);
                memcpy((int16_t *)dst + i + 4 * v, &h, sizeof h);
            }
#endif
    }
#define QUANTIZE_LOOP(T)                                                  \
    for (; i < n; ++i) {                                                  \
        float y = src[i] * scale;                                         \
        y = y == y ? y : 0.f;                                             \
        y = y < lo ? lo : y > hi ? hi : y;                                \
        float big = y + magic;  /* rounds here (C99: assignment drops */  \
        float r = big - magic;  /* any excess precision)              */  \
        ((T *)dst)[i] = (T)((int32_t)r + (y - r == .5f));                 \
    }
    if (to.bits == 8)
        QUANTIZE_LOOP(int8_t)
    else
        QUANTIZE_LOOP(int16_t)
#undef QUANTIZE_LOOP
}

void mdfi_fx_quantize_bytes(const unsigned char *src, void *dst, mdfi_qfmt to, size_t n)
{
    float unit[256];
    int16_t q[256];   /* int8 values in its first 256 bytes */
    mdfi_unit_floats(unit);
    mdfi_fx_quantize(unit, q, to, 256);
    for (size_t i = 0; i < n; ++i)
        if (to.bits == 8)
            ((int8_t *)dst)[i] = ((const int8_t *)q)[src[i]];
        else
            ((int16_t *)dst)[i] = q[src[i]];
}

void mdfi_fx_dequantize(const void *src, mdfi_qfmt fmt, float *dst, size_t n)
{
    const float scale = (float)ldexp(1., -fmt.frac);
    for (size_t i = 0; i < n; ++i)
        dst[i] = (float)mdfi_fx_get(src, fmt.bits, i) * scale;
}
