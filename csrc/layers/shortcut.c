/* [shortcut]: out = alpha*previous + beta*from, then the activation.
 * Unequal shapes are pjreddie's shortcut_cpu: the from layer is sampled with
 * an integer stride (or the output written with one) over the smaller
 * channel count and map, the rest of the output is the previous layer's;
 * AlexeyAB's flat-index sum is the same whenever the maps are equal, which
 * is every unequal shortcut of its cfgs (ResNet, CSPResNeXt, yolov3-tiny-prn). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "kernels/eltwise.h"
#include "layers/fixed.h"
#include "layers/layer.h"

typedef struct {
    float alpha, beta;
    mdfi_activation act;
    int stride, sample;    /* 0: equal shapes */
    int c, h, w;           /* the from layer's output */
} shortcut_spec;

mdfi_status mdfi_shortcut_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                  const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    shortcut_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    int from;
    MDFI_CHECK(mdfi_cfg_int_required(ctx->cfg, s, "from", &from, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "alpha", 1.f, &sp->alpha, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "beta", 1.f, &sp->beta, err));
    const char *act = mdfi_cfg_str(s, "activation", "linear");
    if (mdfi_activation_parse(act, &sp->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", ctx->cfg->name,
                         mdfi_cfg_line(s, "activation"), act);
    l->activation = mdfi_activation_name(sp->act);
    l->n_in = 2;
    MDFI_CHECK(mdfi_layer_ref(ctx, s, "from", from, &l->in[1], err));
    const mdfi_layer *f = &ctx->layers[l->in[1]];
    if (f->out_c != l->in_c || f->out_h != l->in_h || f->out_w != l->in_w) {
        /* Darknet asserts the same integer ratio both ways */
        int stride = f->out_w / l->in_w, sample = l->in_w / f->out_w;
        if (stride != f->out_h / l->in_h || sample != l->in_h / f->out_h)
            return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [shortcut]: from=%d gives "
                             "%dx%dx%d and the previous layer %dx%dx%d: the maps are not an "
                             "integer ratio of each other", ctx->cfg->name,
                             mdfi_cfg_line(s, "from"), ctx->index, from, f->out_c, f->out_h,
                             f->out_w, l->in_c, l->in_h, l->in_w);
        sp->stride = stride < 1 ? 1 : stride;
        sp->sample = sample < 1 ? 1 : sample;
        sp->c = f->out_c;
        sp->h = f->out_h;
        sp->w = f->out_w;
    }
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->flops = (double)l->out_c * l->out_h * l->out_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

/* shortcut_cpu of unequal shapes: the output starts as the previous layer's. */
static void resampled(const mdfi_layer *l, const shortcut_spec *sp, const float *add,
                      float *out)
{
    const int minw = sp->w < l->out_w ? sp->w : l->out_w;
    const int minh = sp->h < l->out_h ? sp->h : l->out_h;
    const int minc = sp->c < l->out_c ? sp->c : l->out_c;
    for (int k = 0; k < minc; ++k)
        for (int j = 0; j < minh; ++j)
            for (int i = 0; i < minw; ++i) {
                size_t o = (size_t)i * sp->sample +
                           (size_t)l->out_w * ((size_t)j * sp->sample + (size_t)l->out_h * k);
                size_t s = (size_t)i * sp->stride +
                           (size_t)sp->w * ((size_t)j * sp->stride + (size_t)sp->h * k);
                out[o] = sp->alpha * out[o] + sp->beta * add[s];
            }
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const shortcut_spec *sp = l->spec;
    size_t n = mdfi_layer_outputs(l);
    const float *a = ctx->in[0], *b = ctx->in[1];
    if (sp->stride) {
        memcpy(ctx->out, a, n * sizeof *a);
        resampled(l, sp, b, ctx->out);
    } else {
        mdfi_eltwise_sum(ctx->out, a, b, n, sp->alpha, sp->beta);
    }
    mdfi_activate(ctx->out, n, sp->act);
}

/* ---- fixed point: F = max(fa, fb); t = a 2^(F-fa) + b 2^(F-fb) --------------- */

typedef struct {
    mdfi_qfmt a, b;
    int act;     /* 0 linear, 1 relu, 2 leaky */
} fx_shortcut;

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_cfg_section *s = ctx->sec;
    const shortcut_spec *spec = l->spec;
    if (spec->alpha != 1.f || spec->beta != 1.f || spec->stride)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [shortcut]: alpha and "
                         "beta must be 1 and the shapes equal in fixed point", name, s->line,
                         ctx->index);
    MDFI_CHECK(mdfi_fx_bind_int_inputs(l, ctx, err));
    fx_shortcut *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = sp;
    sp->a = ctx->layers[l->in[0]].q_out;
    sp->b = ctx->layers[l->in[1]].q_out;
    MDFI_CHECK(mdfi_fx_bind_act(ctx, spec->act, &sp->act, err));
    int f = sp->a.frac > sp->b.frac ? sp->a.frac : sp->b.frac;
    if (sp->a.bits - 1 + f - sp->a.frac > 30 || sp->b.bits - 1 + f - sp->b.frac > 30)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [shortcut]: inputs %d:%d and "
                         "%d:%d are too far apart to add in int32", name, s->line, ctx->index,
                         sp->a.bits, sp->a.frac, sp->b.bits, sp->b.frac);
    return MDFI_OK;
}

static void shortcut_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const fx_shortcut *sp = l->priv;
    const int f = sp->a.frac > sp->b.frac ? sp->a.frac : sp->b.frac;
    const int sa = f - sp->a.frac, sb = f - sp->b.frac, s = f - l->q_out.frac;
    const size_t n = (size_t)l->out_h * l->out_w, o0 = (size_t)c * n;
    for (size_t i = o0; i < o0 + n; ++i) {
        int64_t t = (int64_t)mdfi_fx_get(ctx->in[0], sp->a.bits, i) * ((int64_t)1 << sa) +
                    (int64_t)mdfi_fx_get(ctx->in[1], sp->b.bits, i) * ((int64_t)1 << sb);
        mdfi_fx_put(ctx->out, l->q_out.bits, i,
                    mdfi_fx_requant(mdfi_fx_activate(t, sp->act), s, l->q_out.bits));
    }
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, shortcut_channel);
}

static void fixed_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_variant mdfi_shortcut_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_shortcut_fixed = {fixed_bind, NULL, NULL, fixed_forward,
                                                fixed_destroy, NULL};
