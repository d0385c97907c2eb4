/* Fixed-point layers: table selection, formats, conversions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/fixed.h"

static const struct {
    const char *section;
    const mdfi_layer_ops *ops;
} fixed_registry[] = {
    {"convolutional", &mdfi_fixed_conv_ops},
    {"conv", &mdfi_fixed_conv_ops},
    {"connected", &mdfi_fixed_connected_ops},
    {"maxpool", &mdfi_fixed_maxpool_ops},
    {"max", &mdfi_fixed_maxpool_ops},
    {"avgpool", &mdfi_fixed_avgpool_ops},
    {"avg", &mdfi_fixed_avgpool_ops},
    {"upsample", &mdfi_fixed_upsample_ops},
    {"route", &mdfi_fixed_route_ops},
    {"shortcut", &mdfi_fixed_shortcut_ops},
    {"yolo", &mdfi_fixed_yolo_ops},
    {"softmax", &mdfi_fixed_softmax_ops},
    {"soft", &mdfi_fixed_softmax_ops},
};

static const char *const fixed_keys[] = {"fixed_in", "fixed_w", "fixed_out"};

int mdfi_layer_is_fixed(const mdfi_layer *l)
{
    for (size_t i = 0; i < sizeof fixed_registry / sizeof fixed_registry[0]; ++i)
        if (l->ops == fixed_registry[i].ops)
            return 1;
    return 0;
}

int mdfi_fixed_net(const mdfi_layer *layers, int n)
{
    for (int i = 0; i < n; ++i)
        if (mdfi_layer_is_fixed(&layers[i]))
            return 1;
    return 0;
}

static int has_fixed_keys(const mdfi_cfg_section *s)
{
    for (int i = 0; i < s->n_kv; ++i)
        for (size_t k = 0; k < sizeof fixed_keys / sizeof fixed_keys[0]; ++k)
            if (!strcmp(s->kv[i].key, fixed_keys[k]))
                return 1;
    return 0;
}

mdfi_status mdfi_fixed_select(const mdfi_cfg *cfg, mdfi_cfg_section *s,
                              const mdfi_layer *layers, int index,
                              const mdfi_layer_ops **ops, mdfi_errbuf *err)
{
    const mdfi_layer_ops *fx = NULL;
    for (size_t i = 0; i < sizeof fixed_registry / sizeof fixed_registry[0]; ++i)
        if (!strcmp(fixed_registry[i].section, s->type))
            fx = fixed_registry[i].ops;
    int head = fx == &mdfi_fixed_yolo_ops || fx == &mdfi_fixed_softmax_ops;
    if (has_fixed_keys(s)) {
        if (!fx || head)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no fixed-point form "
                             "(fixed_* keys are for convolutional, connected, maxpool, avgpool, "
                             "upsample, route and shortcut)", cfg->name, s->line, index,
                             s->type);
        *ops = fx;
    } else if (head && index > 0 && layers[index - 1].q_out.bits) {
        *ops = fx;
    }
    return MDFI_OK;
}

mdfi_status mdfi_fixed_bind(const mdfi_cfg *cfg, mdfi_cfg_section *s, mdfi_layer *layers,
                            int index, mdfi_errbuf *err)
{
    mdfi_layer *l = &layers[index];
    if (l->alias_input) {
        if (l->in[0] >= 0)
            l->q_out = layers[l->in[0]].q_out;
        return MDFI_OK;
    }
    if (mdfi_layer_is_fixed(l))
        return MDFI_OK;
    for (int k = 0; k < l->n_in; ++k)
        if (l->in[k] >= 0 && layers[l->in[k]].q_out.bits)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no fixed_* keys but "
                             "reads layer %d, which is fixed-point: every layer of a quantized "
                             "cfg needs its formats (re-run weights_tools quantize)", cfg->name,
                             s->line, index, s->type, l->in[k]);
    return MDFI_OK;
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

void mdfi_fx_quantize(const float *src, void *dst, mdfi_qfmt to, size_t n)
{
    /* floor(x * 2^F + 1/2), saturated, NaN -> 0, in float32 and still exact:
     * x * 2^F is exact (or rounds only where the result is 0 or saturates);
     * adding and subtracting 1.5 * 2^23 rounds |y| <= 2^15 to the nearest
     * integer r, ties to even; y - r is exact, and a tie rounded down
     * (y - r == 1/2) goes up.  No int -> float conversion (a serial
     * dependency on x86) and no branch. */
    const float scale = ldexpf(1.f, to.frac), magic = 12582912.f;
    const float hi = to.bits == 8 ? 127.f : 32767.f, lo = -hi - 1.f;
#define QUANTIZE_LOOP(T)                                                  \
    for (size_t i = 0; i < n; ++i) {                                      \
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

void mdfi_fx_dequantize(const void *src, mdfi_qfmt fmt, float *dst, size_t n)
{
    const float scale = ldexpf(1.f, -fmt.frac);
    for (size_t i = 0; i < n; ++i)
        dst[i] = (float)mdfi_fx_get(src, fmt.bits, i) * scale;
}
