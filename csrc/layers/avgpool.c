/* [avgpool]: global average over each channel -> c x 1 x 1; in float, or in
 * fixed point with a rounded integer division. */
#include <stdint.h>

#include "base/error.h"
#include "layers/fixed.h"
#include "layers/layer.h"

mdfi_status mdfi_avgpool_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    l->out_c = l->in_c;
    l->out_h = l->out_w = 1;
    l->flops = 0;
    return mdfi_layer_check_shape(ctx, s, l->out_c, 1, 1, err);
}

/* Each channel's sum is float and in order, as Darknet's; two channels at a
 * time, so two chains of adds overlap (the layer is built for size: the
 * compiler interleaves none).  An odd last channel is summed twice. */
static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const int n = l->in_h * l->in_w, C = l->in_c;
    for (int c = 0; c < C; c += 2) {
        const int d = c + 1 < C ? c + 1 : c;
        const float *s0 = ctx->in[0] + (size_t)c * n, *s1 = ctx->in[0] + (size_t)d * n;
        float a0 = 0, a1 = 0;
        for (int i = 0; i < n; ++i) {
            a0 += s0[i];
            a1 += s1[i];
        }
        ctx->out[d] = a1 / n;
        ctx->out[c] = a0 / n;
    }
}

/* ---- fixed point: out = sat(floor((2 num + den) / (2 den))) ----------------- */

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    mdfi_cfg_section *s = ctx->sec;
    MDFI_CHECK(mdfi_fx_bind_int_inputs(l, ctx, err));
    int d = l->q_out.frac - l->q_in.frac;
    if (d > 16 || d < -16)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [avgpool]: fixed_out=%d:%d is more "
                         "than 16 bits of fraction away from its input's %d:%d", ctx->cfg->name,
                         mdfi_cfg_line(s, "fixed_out"), ctx->index, l->q_out.bits, l->q_out.frac,
                         l->q_in.bits, l->q_in.frac);
    return MDFI_OK;
}

static int64_t floor_div(int64_t a, int64_t b)   /* b > 0 */
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static void avgpool_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const size_t n = (size_t)l->in_h * l->in_w;
    int64_t sum = 0;
    for (size_t i = 0; i < n; ++i)
        sum += mdfi_fx_get(ctx->in[0], l->q_in.bits, (size_t)c * n + i);
    int up = l->q_out.frac - l->q_in.frac;
    /* |sum| < 2^46 and |up| <= 16 (checked at parse): no overflow */
    int64_t num = up > 0 ? sum * ((int64_t)1 << up) : sum;
    int64_t den = (int64_t)n * ((int64_t)1 << (up < 0 ? -up : 0));
    int64_t q = floor_div(2 * num + den, 2 * den);
    mdfi_fx_put(ctx->out, l->q_out.bits, (size_t)c, mdfi_fx_requant(q, 0, l->q_out.bits));
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, avgpool_channel);
}

const mdfi_layer_variant mdfi_avgpool_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_avgpool_fixed = {fixed_bind, NULL, NULL, fixed_forward, NULL, NULL};
