/* [convolutional]: weights [filters][c/groups][size][size], cross-correlation
 * with zero padding, optional batch norm, then the activation.  Runs as a
 * float GEMM (layers/gemm_layer.c), a fixed-point GEMM (fixed_gemm.c) or, with
 * xnor=1, a binary convolution on bit-packed data (conv_xnor.c). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/gemm_layer.h"

/* The keys of a binary convolution (docs/binary.md): xnor=1, and the
 * quantizer of its input, abits (1 sign, 1.5 ternary, 2) and astep. */
static mdfi_status binary_keys(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_gemm_spec *c, mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    const char *x = mdfi_cfg_str(s, "xnor", NULL);
    if (!(x && strcmp(x, "0")) && !mdfi_cfg_str(s, "abits", NULL) &&
        !mdfi_cfg_str(s, "astep", NULL))
        return MDFI_OK;   /* a float convolution */
    float astep;
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "astep", 1.f, &astep, err));
    const char *abits = mdfi_cfg_str(s, "abits", NULL);
    if (c->geom.dilation != 1 || c->geom.stride_y != c->geom.stride || l->share_from)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [convolutional]: dilation, "
                         "stride_y unlike stride_x and share_index are not supported on the "
                         "%s path", name, s->line, ctx->index, "binary (xnor=1)");
    if (l->xnor != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: %s", name,
                         mdfi_cfg_line(s, l->xnor ? "xnor" : abits ? "abits" : "astep"),
                         ctx->index,
                         l->xnor ? "xnor must be 0 or 1"
                                 : "abits/astep quantize the input of a binary convolution "
                                   "and need xnor=1 (binary weights)");
    mdfi_bmode mode = MDFI_BMODE_SIGN;
    if (abits && (!strcmp(abits, "1.5") || !strcmp(abits, "ternary")))
        mode = MDFI_BMODE_TERNARY;
    else if (abits && !strcmp(abits, "2"))
        mode = MDFI_BMODE_2BIT;
    else if (abits && strcmp(abits, "1"))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: abits=%s; the "
                         "activation bits of an xnor layer are 1 (sign, as Darknet), 1.5 "
                         "(ternary -1/0/+1) or 2 (levels 0..3)", name,
                         mdfi_cfg_line(s, "abits"), ctx->index, abits);
    if (mode == MDFI_BMODE_SIGN && mdfi_cfg_str(s, "astep", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: astep applies to "
                         "abits=1.5 or 2; with abits=1 the input binarizes by its sign",
                         name, mdfi_cfg_line(s, "astep"), ctx->index);
    if (!(astep > 0.f) || !isfinite(astep))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: astep=%g must be "
                         "a positive number", name, mdfi_cfg_line(s, "astep"), ctx->index,
                         (double)astep);
    mdfi_bquant_init(&c->inq, mode, astep);
    l->in_q = c->inq;
    /* binary multiply-adds, one per input bit plane; no float ones (the float
     * epilogue alpha D + beta is not counted, as no convolution's is) */
    l->macs = l->flops / 2;
    l->bops = l->macs * c->inq.planes;
    l->flops = 0;
    /* |D| <= (3 levels) * channels * taps must stay far inside int32 */
    if ((long long)3 * c->k > MDFI_LIMIT_XNOR_SUM ||
        c->geom.channels > MDFI_LIMIT_BINARY_CHANNELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [convolutional]: %d channels "
                         "x %dx%d taps is too large for a binary convolution", name, s->line,
                         ctx->index, c->geom.channels, l->size, l->size);
    return MDFI_OK;
}

mdfi_status mdfi_convolutional_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                     const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_gemm_spec *c = calloc(1, sizeof *c);
    if (!c)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = c;
    int filters, size, stride, pad, padding, binary, dilation, stride_x, stride_y, share;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "filters", 1, &filters, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", 1, &size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_x", -1, &stride_x, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_y", -1, &stride_y, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "share_index", INT_MIN, &share, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pad", 0, &pad, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", 0, &padding, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "groups", 1, &c->groups, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 0, &c->bn, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "xnor", 0, &l->xnor, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "binary", 0, &binary, err));   /* CPU: a float conv */
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "dilation", 1, &dilation, err));
    const char *act = mdfi_cfg_str(s, "activation", "logistic");
    if (mdfi_activation_parse(act, &c->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", name,
                         mdfi_cfg_line(s, "activation"), act);
    /* AlexeyAB: stride_x and stride_y below 1 take stride's value; a 1x1
     * kernel is never dilated */
    stride_x = stride_x < 1 ? stride : stride_x;
    stride_y = stride_y < 1 ? stride : stride_y;
    dilation = size == 1 ? 1 : dilation;
    if (filters < 1 || size < 1 || stride_x < 1 || stride_y < 1 || c->groups < 1 ||
        padding < 0 || dilation < 1 || filters > MDFI_LIMIT_FILTERS ||
        size > MDFI_LIMIT_KERNEL || stride_x > MDFI_LIMIT_KERNEL ||
        stride_y > MDFI_LIMIT_KERNEL || padding > MDFI_LIMIT_KERNEL ||
        dilation > MDFI_LIMIT_KERNEL)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: bad "
                         "filters=%d size=%d stride=%d,%d groups=%d padding=%d dilation=%d "
                         "(1.." MDFI_LIMIT_STR(MDFI_LIMIT_KERNEL) " but filters)", name,
                         s->line, ctx->index, filters, size, stride_x, stride_y, c->groups,
                         padding, dilation);
    if (l->in_c % c->groups || filters % c->groups)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [convolutional]: groups=%d "
                         "must divide the input channels (%d) and filters (%d)", name,
                         mdfi_cfg_line(s, "groups"), ctx->index, c->groups, l->in_c, filters);
    if (pad)
        padding = size / 2;
    /* AlexeyAB's output size ignores the dilation, and its im2col pads by
     * padding * dilation; where the im2col's own size differs, Darknet's
     * buffer and its columns disagree: refused. */
    int out_h = (l->in_h + 2 * padding - size) / stride_y + 1;
    int out_w = (l->in_w + 2 * padding - size) / stride_x + 1;
    int ext = dilation * (size - 1) + 1, pd = padding * dilation;
    if (l->in_h + 2 * padding < size || l->in_w + 2 * padding < size)
        out_h = out_w = 0;
    /* AlexeyAB skips im2col for size 1 and stride_x 1, stride_y or not */
    if ((out_h && (out_h != (l->in_h + 2 * pd - ext) / stride_y + 1 ||
                   out_w != (l->in_w + 2 * pd - ext) / stride_x + 1)) ||
        (size == 1 && stride_x == 1 && stride_y != 1))
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [convolutional]: "
                         "dilation=%d, stride_y=%d: Darknet's output size and the columns its "
                         "im2col makes differ", name, s->line, ctx->index, dilation, stride_y);
    MDFI_CHECK(mdfi_layer_check_shape(ctx, s, filters, out_h, out_w, err));
    /* K = taps per filter is the GEMM's int (a route of 8 x 65536 channels into a
     * 64x64 kernel made 2^31) */
    const long long nw = (long long)(l->in_c / c->groups) * size * size * filters;
    if (nw >= MDFI_LIMIT_CONNECTED_WEIGHTS)   /* and so K = nw / filters < 2^31 */
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [convolutional]: %lld weights",
                         name, s->line, ctx->index, nw);
    l->out_c = filters;
    l->out_h = out_h;
    l->out_w = out_w;
    l->filters = filters;
    l->size = size;
    l->stride = stride_x;
    l->pad = padding;
    l->groups = c->groups;
    l->batch_normalize = c->bn;
    l->activation = mdfi_activation_name(c->act);
    c->m = filters / c->groups;
    c->k = l->in_c / c->groups * size * size;
    c->geom = (mdfi_conv_geom){l->in_c / c->groups, l->in_h, l->in_w, size, stride_x, pd,
                               out_h, out_w, stride_y, dilation};
    l->flops = 2.0 * filters * (double)c->k * out_h * out_w;
    l->n_params = mdfi_gemm_param_count(c);
    if (share != INT_MIN) {
        /* AlexeyAB's share_index: the parameters of an earlier convolution of the
         * same shape, read from its place in the weights file (net.c); none of its own */
        int i;
        MDFI_CHECK(mdfi_layer_ref(ctx, s, "share_index", share, &i, err));
        const mdfi_layer *o = &ctx->layers[i];
        if (o->type != l->type || o->size != size || o->in_c != l->in_c ||
            o->filters != filters || o->groups != c->groups || o->batch_normalize != c->bn)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: "
                             "share_index=%d: layer %d is not a convolution of this shape",
                             name, mdfi_cfg_line(s, "share_index"), ctx->index, share, i);
        l->share_from = o->share_from ? o->share_from : i + 1;   /* Darknet's pointers */
        l->n_params = 0;
    }
    return binary_keys(l, s, ctx, c, err);
}

/* Darknet's order: biases, [scales, rolling_mean, rolling_variance], then
 * the weights, which prepare streams into packed panels. */
static mdfi_status float_load(mdfi_layer *l, mdfi_params *src, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    p->stream = 1;
    MDFI_CHECK(mdfi_gemm_alloc(l, p, err));
    return src ? mdfi_darknet_read_head(&p->raw, src, (size_t)l->out_c, p->s.bn, err) : MDFI_OK;
}

const mdfi_layer_variant mdfi_convolutional_float = {
    mdfi_gemm_bind, float_load, mdfi_gemm_prepare, mdfi_gemm_forward, mdfi_gemm_destroy, NULL};
