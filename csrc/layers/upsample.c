/* [upsample]: nearest neighbour by `stride`, times `scale`. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/fixed.h"
#include "layers/layer.h"

typedef struct {
    float scale;
} upsample_spec;

mdfi_status mdfi_upsample_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                  const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    upsample_spec *u = calloc(1, sizeof *u);
    if (!u)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = u;
    int stride;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 2, &stride, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "scale", 1.f, &u->scale, err));
    if (stride < 1 || stride > MDFI_LIMIT_KERNEL)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [upsample]: stride=%d "
                         "is not supported (1.." MDFI_LIMIT_STR(MDFI_LIMIT_KERNEL) ")",
                         ctx->cfg->name, mdfi_cfg_line(s, "stride"), ctx->index, stride);
    l->stride = stride;
    l->out_c = l->in_c;
    /* a side of 2^25 or more (a tall, narrow map) times 64 would overflow int:
     * saturated, it is refused below as absurdly large */
    l->out_h = l->in_h > INT_MAX / stride ? INT_MAX : l->in_h * stride;
    l->out_w = l->in_w > INT_MAX / stride ? INT_MAX : l->in_w * stride;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

/* Channel c (threads split the channels: mdfi_fx_by_channel): each scaled
 * input value once, written stride times (no division per value). */
static void float_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const upsample_spec *u = l->spec;
    const int st = l->stride;
    const float *src = ctx->in[0] + (size_t)c * l->in_h * l->in_w;
    float *out = ctx->out + (size_t)c * l->out_h * l->out_w;
    for (int y = 0; y < l->out_h; ++y) {
        const float *row = src + (size_t)(y / st) * l->in_w;
        for (int x = 0; x < l->in_w; ++x) {
            const float v = u->scale * row[x];
            for (int k = 0; k < st; ++k)
                *out++ = v;
        }
    }
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, float_channel);
}

/* ---- fixed point (scale 1) ------------------------------------------------------------ */

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    mdfi_cfg_section *s = ctx->sec;
    const float scale = ((const upsample_spec *)l->spec)->scale;
    if (scale != 1.f)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [upsample]: scale=%g has "
                         "no fixed-point form (only 1)", ctx->cfg->name,
                         mdfi_cfg_line(s, "scale"), ctx->index, (double)scale);
    return mdfi_fx_bind_int_inputs(l, ctx, err);
}

static void upsample_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const int st = l->stride, ib = l->q_in.bits, ob = l->q_out.bits;
    const int shift = l->q_in.frac - l->q_out.frac;
    const size_t plane = (size_t)l->in_h * l->in_w;
    size_t o = (size_t)c * l->out_h * l->out_w;
    if (ib == ob && !shift) {   /* the usual case, a copy: each input row's output row
                                   is made once, then copied for the stride's others */
        const size_t eb = (size_t)ib / 8, ow = (size_t)l->out_w;
        char *out = (char *)ctx->out + o * eb;
        for (int y = 0; y < l->out_h; y += st) {
            const size_t r = c * plane + (size_t)(y / st) * l->in_w;
            char *row = out + (size_t)y * ow * eb;
            if (ib == 8)
                for (int x = 0; x < l->in_w; ++x)
                    for (int k = 0; k < st; ++k)
                        row[x * st + k] = ((const char *)ctx->in[0])[r + x];
            else
                for (int x = 0; x < l->in_w; ++x)
                    for (int k = 0; k < st; ++k)
                        ((int16_t *)row)[x * st + k] = ((const int16_t *)ctx->in[0])[r + x];
            for (int k = 1; k < st && y + k < l->out_h; ++k)
                memcpy(row + (size_t)k * ow * eb, row, ow * eb);
        }
        return;
    }
    for (int y = 0; y < l->out_h; ++y) {
        size_t row = c * plane + (size_t)(y / st) * l->in_w;
        for (int x = 0; x < l->out_w; ++x, ++o)
            mdfi_fx_put(ctx->out, ob, o,
                        mdfi_fx_requant(mdfi_fx_get(ctx->in[0], ib, row + x / st), shift, ob));
    }
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, upsample_channel);
}

const mdfi_layer_variant mdfi_upsample_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_upsample_fixed = {fixed_bind, NULL, NULL, fixed_forward, NULL, NULL};
