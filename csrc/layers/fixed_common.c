/* What the fixed-point variants share: formats, input binding, conversions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/image.h"
#include "layers/fixed.h"

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
    for (size_t i = 0; i < n; ++i)
        mdfi_fx_put(dst, to.bits, i, mdfi_fx_requant(mdfi_fx_get(src, from.bits, i), s, to.bits));
}

typedef float qvf __attribute__((vector_size(16)));
typedef int32_t qvi __attribute__((vector_size(16)));
typedef int16_t qvh __attribute__((vector_size(8)));
typedef int8_t qvb __attribute__((vector_size(4)));
#define QV 4

/* m ? a : b, lane by lane */
#define QV_BLEND(m, a, b) ((qvf)(((qvi)(a) & (m)) | ((qvi)(b) & ~(m))))

void mdfi_fx_quantize(const float *src, void *dst, mdfi_qfmt to, size_t n)
{
    /* floor(x * 2^F + 1/2), saturated, NaN -> 0, in float32 and still exact:
     * x * 2^F is exact (or rounds only where the result is 0 or saturates);
     * adding and subtracting 1.5 * 2^23 rounds |y| <= 2^15 to the nearest
     * integer r, ties to even; y - r is exact, and a tie rounded down
     * (y - r == 1/2) goes up.  No int -> float conversion (a serial
     * dependency on x86) and no branch.  Four at a time with the same
     * operations in vector types (this file is built for size, where the
     * compiler would not vectorize the loop; wider types lowered worse),
     * the tail one by one. */
    const float scale = (float)ldexp(1., to.frac), magic = 12582912.f;
    const float hi = to.bits == 8 ? 127.f : 32767.f, lo = -hi - 1.f;
    const qvf vs = scale + (qvf){0}, vm = magic + (qvf){0}, vlo = lo + (qvf){0};
    const qvf vhi = hi + (qvf){0}, half = .5f + (qvf){0};
    size_t i = 0;
    for (; i + QV <= n; i += QV) {
        qvf y;
        memcpy(&y, src + i, sizeof y);
        y *= vs;
        y = (qvf)((qvi)y & (y == y));
        y = QV_BLEND(y < vlo, vlo, y);
        y = QV_BLEND(y > vhi, vhi, y);
        const qvf r = (y + vm) - vm;
        const qvi q = __builtin_convertvector(r, qvi) - (y - r == half);
        if (to.bits == 8) {
            const qvb b = __builtin_convertvector(q, qvb);
            memcpy((int8_t *)dst + i, &b, sizeof b);
        } else {
            const qvh h = __builtin_convertvector(q, qvh);
            memcpy((int16_t *)dst + i, &h, sizeof h);
        }
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
