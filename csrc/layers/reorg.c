/* [reorg] and [reorg3d]: Darknet's space-to-depth.  Both trees run one
 * function, reorg_cpu(x, W, H, C, stride, forward), and differ in what they
 * pass it: [reorg] (pjreddie's, AlexeyAB's reorg_old) the input's shape,
 * [reorg3d] (AlexeyAB's) the output's.  Only [reorg3d] is the usual
 * space-to-depth; YOLOv2's weights were trained with [reorg] as it is.
 * pjreddie's [reorg] has two more forms (the Go engine's cfgs), which
 * forward_reorg_layer runs instead of reorg_cpu: flatten=1, the input's CHW
 * transposed to HWC (reverse=1: back), and extra=N, the input flat followed
 * by N zeros (calloc'd, never written: go.cfg's "pass" move). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/layer.h"

typedef struct {
    int w, h, c;       /* what reorg_cpu is given */
    int reverse, flatten, extra;
} reorg_spec;

static mdfi_status parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                         int use_output, mdfi_errbuf *err)
{
    reorg_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    int stride;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "reverse", 0, &sp->reverse, err));
    if (!use_output) {   /* AlexeyAB's [reorg3d] has neither key */
        MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "flatten", 0, &sp->flatten, err));
        MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "extra", 0, &sp->extra, err));
    }
    /* Darknet's flatten branch copies inputs + extra floats out of an input
     * of inputs (past its end); a negative extra copies into too few */
    const long long inputs = (long long)l->in_c * l->in_h * l->in_w;
    if ((sp->flatten && sp->extra) || sp->extra < 0 || sp->extra > MDFI_LIMIT_TENSOR - inputs)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: extra=%d must be >= 0, "
                         "sane and without flatten= (Darknet reads past its input)",
                         ctx->cfg->name, s->line, ctx->index, s->type, sp->extra);
    /* stride^2 only once stride is known to be small (a fuzzed 10000002 overflowed) */
    const int bad = stride < 1 || stride > MDFI_LIMIT_KERNEL, s2 = bad ? 1 : stride * stride;
    if (bad || (!sp->extra &&
                (sp->reverse ? l->in_c % s2 : l->in_h % stride || l->in_w % stride)))
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: stride=%d does not "
                         "divide the input %dx%dx%d", ctx->cfg->name, s->line, ctx->index,
                         s->type, stride, l->in_c, l->in_h, l->in_w);
    l->stride = stride;
    if (sp->extra) {   /* Darknet's shape is 0x0x0 with outputs = inputs + extra */
        l->out_c = (int)inputs + sp->extra;
        l->out_h = l->out_w = 1;
    } else {   /* as many outputs as inputs: stride divides what it must */
        l->out_c = sp->reverse ? l->in_c / s2 : l->in_c * s2;
        l->out_h = sp->reverse ? l->in_h * stride : l->in_h / stride;
        l->out_w = sp->reverse ? l->in_w * stride : l->in_w / stride;
    }
    sp->c = use_output ? l->out_c : l->in_c;   /* extra= only in [reorg]: the input's */
    sp->h = use_output ? l->out_h : l->in_h;
    sp->w = use_output ? l->out_w : l->in_w;
    if (sp->c % s2 && !sp->flatten && !sp->extra)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: %d channels are not a "
                         "multiple of stride^2 = %d", ctx->cfg->name, s->line, ctx->index,
                         s->type, sp->c, s2);
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

mdfi_status mdfi_reorg_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                             mdfi_errbuf *err)
{
    return parse(l, s, ctx, 0, err);
}

mdfi_status mdfi_reorg3d_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_errbuf *err)
{
    return parse(l, s, ctx, 1, err);
}

/* reorg_cpu: a gather for forward = 0 (not reverse), a scatter otherwise;
 * Darknet's flatten(x, h*w, c, 1, forward = !reverse) is the same loop with
 * the HWC index, a scatter when not reverse. */
static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const reorg_spec *sp = l->spec;
    const int st = l->stride, in_c = sp->flatten ? 1 : sp->c / (st * st);
    const float *x = ctx->in[0];
    float *out = ctx->out;
    if (sp->extra) {
        memcpy(out, x, ctx->in_n[0] * sizeof *out);
        memset(out + ctx->in_n[0], 0, (size_t)sp->extra * sizeof *out);
        return;
    }
    size_t a = 0;
    for (int k = 0; k < sp->c; ++k)
        for (int j = 0; j < sp->h; ++j)
            for (int i = 0; i < sp->w; ++i, ++a) {
                int c2 = k % in_c, offset = k / in_c;
                int w2 = i * st + offset % st, h2 = j * st + offset / st;
                size_t b = sp->flatten ? ((size_t)j * sp->w + i) * sp->c + k :
                           (size_t)w2 + (size_t)sp->w * st * ((size_t)h2 +
                                                              (size_t)sp->h * st * c2);
                if (sp->reverse != !!sp->flatten)
                    out[b] = x[a];
                else
                    out[a] = x[b];
            }
}

const mdfi_layer_variant mdfi_reorg_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
