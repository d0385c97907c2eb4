/* [scale_channels]: squeeze-and-excitation's scaling (AlexeyAB's Darknet).
 * The previous layer gives one factor per channel (c x 1 x 1), or with
 * scale_wh=1 one per position (1 x h x w); the layer from= gives the feature
 * map.  out = prev[c] * from[c, y, x] (or prev[y, x] * from[c, y, x]), then
 * the activation (default linear).  The output has from's shape.
 * [sam] (spatial attention, AlexeyAB's too) is the same with one factor per
 * element: out = prev[i] * from[i], both of one shape.
 *
 * Fixed point: out = sat(rshift_round(act(a * b), fa + fb - fout)) on the
 * int64 product, with the integer activations of docs/fixed-point.md. */
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/fixed.h"
#include "layers/layer.h"

typedef struct {
    int scale_wh;              /* one factor per position instead of per channel */
    int sam;                   /* one factor per element */
    mdfi_activation act;
} scale_spec;

/* Both types: sam = 1 for [sam] (one factor per element, no scale_wh). */
static mdfi_status parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx, int sam,
                         mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    scale_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    sp->sam = sam;
    int from;
    MDFI_CHECK(mdfi_cfg_int_required(ctx->cfg, s, "from", &from, err));
    if (!sam)
        MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "scale_wh", 0, &sp->scale_wh, err));
    const char *act = mdfi_cfg_str(s, "activation", "linear");
    if (mdfi_activation_parse(act, &sp->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", name,
                         mdfi_cfg_line(s, "activation"), act);
    if (sp->scale_wh != 0 && sp->scale_wh != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [scale_channels]: scale_wh=%d "
                         "must be 0 or 1", name, mdfi_cfg_line(s, "scale_wh"), ctx->index,
                         sp->scale_wh);
    l->activation = mdfi_activation_name(sp->act);
    l->n_in = 2;
    MDFI_CHECK(mdfi_layer_ref(ctx, s, "from", from, &l->in[1], err));
    const mdfi_layer *f = &ctx->layers[l->in[1]];
    int ok = sam ? l->in_c == f->out_c && l->in_h == f->out_h && l->in_w == f->out_w
           : sp->scale_wh ? l->in_c == 1 && l->in_h == f->out_h && l->in_w == f->out_w
                          : l->in_h == 1 && l->in_w == 1 && l->in_c == f->out_c;
    if (!ok)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: the previous layer gives "
                         "%dx%dx%d but from=%d gives %dx%dx%d; it needs %s", name, s->line,
                         ctx->index, s->type, l->in_c, l->in_h, l->in_w, from, f->out_c,
                         f->out_h, f->out_w,
                         sam ? "the same shape" : sp->scale_wh ? "1 x h x w factors (scale_wh=1)"
                         : "c x 1 x 1 factors, one per channel of from");
    l->out_c = f->out_c;
    l->out_h = f->out_h;
    l->out_w = f->out_w;
    l->flops = (double)l->out_c * l->out_h * l->out_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

mdfi_status mdfi_scale_channels_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                      const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    return parse(l, s, ctx, 0, err);
}

mdfi_status mdfi_sam_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                           mdfi_errbuf *err)
{
    return parse(l, s, ctx, 1, err);
}

/* Which factor element i of the output takes (Darknet's indexing). */
static size_t factor_of(const mdfi_layer *l, size_t i)
{
    const size_t plane = (size_t)l->out_h * l->out_w;
    const scale_spec *sp = l->spec;
    return sp->sam ? i : sp->scale_wh ? i % plane : i / plane;
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const size_t n = mdfi_layer_outputs(l);
    const float *scale = ctx->in[0], *from = ctx->in[1];
    for (size_t i = 0; i < n; ++i)
        ctx->out[i] = scale[factor_of(l, i)] * from[i];
    mdfi_activate(ctx->out, n, ((const scale_spec *)l->spec)->act);
}

/* ---- fixed point ------------------------------------------------------------- */

typedef struct {
    mdfi_qfmt a, b;            /* the factors' and the feature map's formats */
    int act;                   /* 0 linear, 1 relu, 2 leaky */
} fx_scale;

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    const scale_spec *spec = l->spec;
    MDFI_CHECK(mdfi_fx_bind_int_inputs(l, ctx, err));
    int act;
    MDFI_CHECK(mdfi_fx_bind_act(ctx, spec->act, &act, err));
    fx_scale *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->a = ctx->layers[l->in[0]].q_out;
    p->b = ctx->layers[l->in[1]].q_out;
    p->act = act;
    return MDFI_OK;
}

static void fixed_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const fx_scale *p = l->priv;
    const int s = p->a.frac + p->b.frac - l->q_out.frac;
    const size_t plane = (size_t)l->out_h * l->out_w;
    for (size_t i = (size_t)c * plane; i < (size_t)(c + 1) * plane; ++i) {
        /* |a * b| < 2^30: exact in int64, and so is the leaky product */
        int64_t t = (int64_t)mdfi_fx_get(ctx->in[0], p->a.bits, factor_of(l, i)) *
                    mdfi_fx_get(ctx->in[1], p->b.bits, i);
        mdfi_fx_put(ctx->out, l->q_out.bits, i,
                    mdfi_fx_requant(mdfi_fx_activate(t, p->act), s, l->q_out.bits));
    }
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, fixed_channel);
}

static void fixed_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_variant mdfi_scale_channels_float = {NULL, NULL, NULL, float_forward, NULL,
                                                      NULL};
const mdfi_layer_variant mdfi_scale_channels_fixed = {fixed_bind, NULL, NULL, fixed_forward,
                                                      fixed_destroy, NULL};
