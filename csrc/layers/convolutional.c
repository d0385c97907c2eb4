/* [convolutional]: weights [filters][c/groups][size][size], cross-correlation
 * with zero padding, optional batch norm, then the activation. */
#include <stdlib.h>

#include "core/error.h"
#include "layers/conv_xnor.h"
#include "layers/gemm_layer.h"

static mdfi_status conv_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    if (mdfi_conv_xnor_selected(s)) {   /* xnor=1: binary kernels (layers/conv_xnor.c) */
        l->ops = &mdfi_conv_xnor_ops;
        return l->ops->parse(l, s, ctx, err);
    }
    const char *name = ctx->cfg->name;
    mdfi_gemm_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = p;
    int filters, size, stride, pad, padding, binary, dilation, stride_x, stride_y;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "filters", 1, &filters, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", 1, &size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_x", -1, &stride_x, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_y", -1, &stride_y, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pad", 0, &pad, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", 0, &padding, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "groups", 1, &p->groups, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 0, &p->bn, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "xnor", 0, &l->xnor, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "binary", 0, &binary, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "dilation", 1, &dilation, err));
    const char *act = mdfi_cfg_str(s, "activation", "logistic");
    if (mdfi_activation_parse(act, &p->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", name,
                         mdfi_cfg_line(s, "activation"), act);
    if (filters < 1 || size < 1 || stride < 1 || p->groups < 1 || padding < 0 ||
        filters > 65536 || size > 64 || stride > 64 || padding > 64)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: bad "
                         "filters=%d size=%d stride=%d groups=%d padding=%d", name, s->line,
                         ctx->index, filters, size, stride, p->groups, padding);
    if ((stride_x != -1 && stride_x != stride) || (stride_y != -1 && stride_y != stride) ||
        dilation != 1)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [convolutional]: "
                         "stride_x/stride_y/dilation are not supported", name, s->line,
                         ctx->index);
    if (l->xnor)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [convolutional]: "
                         "xnor=1 is not supported by this build", name,
                         mdfi_cfg_line(s, "xnor"), ctx->index);
    if (l->in_c % p->groups || filters % p->groups)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [convolutional]: groups=%d "
                         "must divide the input channels (%d) and filters (%d)", name,
                         mdfi_cfg_line(s, "groups"), ctx->index, p->groups, l->in_c, filters);
    if (pad)
        padding = size / 2;
    int out_h = (l->in_h + 2 * padding - size) / stride + 1;
    int out_w = (l->in_w + 2 * padding - size) / stride + 1;
    if (l->in_h + 2 * padding < size || l->in_w + 2 * padding < size)
        out_h = out_w = 0;
    MDFI_CHECK(mdfi_layer_check_shape(ctx, s, filters, out_h, out_w, err));
    l->out_c = filters;
    l->out_h = out_h;
    l->out_w = out_w;
    l->filters = filters;
    l->size = size;
    l->stride = stride;
    l->pad = padding;
    l->groups = p->groups;
    l->batch_normalize = p->bn;
    l->activation = mdfi_activation_name(p->act);
    p->m = filters / p->groups;
    p->k = l->in_c / p->groups * size * size;
    p->geom = (mdfi_conv_geom){l->in_c / p->groups, l->in_h, l->in_w, size, stride, padding,
                               out_h, out_w};
    l->flops = 2.0 * filters * (double)p->k * out_h * out_w;
    l->n_params = mdfi_gemm_param_count(p, filters);
    return MDFI_OK;
}

static mdfi_status conv_load(mdfi_layer *l, mdfi_weights_reader *r, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    size_t n = (size_t)l->out_c;
    MDFI_CHECK(mdfi_gemm_alloc(l, p, err));
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_weights_read(r, p->biases, n, "biases", err));
    if (p->bn) {
        MDFI_CHECK(mdfi_weights_read(r, p->scales, n, "scales", err));
        MDFI_CHECK(mdfi_weights_read(r, p->mean, n, "rolling_mean", err));
        MDFI_CHECK(mdfi_weights_read(r, p->var, n, "rolling_variance", err));
    }
    return mdfi_weights_read(r, p->weights, (size_t)p->groups * p->m * p->k, "weights", err);
}

static mdfi_status conv_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    return mdfi_gemm_prepare(l, l->priv, ctx, err);
}

static void conv_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_gemm_forward(l, l->priv, ctx);
}

static void conv_destroy(mdfi_layer *l)
{
    if (l->priv)
        mdfi_gemm_free(l->priv);
    free(l->priv);
}

const mdfi_layer_ops mdfi_convolutional_ops = {
    "convolutional", conv_parse, conv_load, conv_prepare, conv_forward, conv_destroy};
