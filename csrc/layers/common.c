/* Helpers every layer's parse uses. */
#include <stdint.h>

#include "base/error.h"
#include "layers/layer.h"


mdfi_status mdfi_layer_pool_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  int *sy, mdfi_errbuf *err)
{
    int stride;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_x", stride, &l->stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride_y", stride, sy, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", stride, &l->size, err));
    /* size - 1 of a size not yet checked could overflow */
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", l->size > 0 ? l->size - 1 : 0, &l->pad, err));
    if (l->size < 1 || l->stride < 1 || *sy < 1 || l->pad < 0 || l->size > MDFI_LIMIT_POOL ||
        l->stride > MDFI_LIMIT_POOL || *sy > MDFI_LIMIT_POOL || l->pad > MDFI_LIMIT_POOL)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: bad size=%d stride=%d,%d "
                         "padding=%d", ctx->cfg->name, s->line, ctx->index, s->type, l->size,
                         l->stride, *sy, l->pad);
    l->out_c = l->in_c;
    l->out_h = (l->in_h + l->pad - l->size) / *sy + 1;
    l->out_w = (l->in_w + l->pad - l->size) / l->stride + 1;
    if (l->in_h + l->pad < l->size || l->in_w + l->pad < l->size)
        l->out_h = l->out_w = 0;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

mdfi_status mdfi_layer_check_shape(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                   int c, int h, int w, mdfi_errbuf *err)
{
    if (c <= 0 || h <= 0 || w <= 0)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: output %d x %d x %d "
                         "is empty (input too small for size/stride?)", ctx->cfg->name,
                         s->line, ctx->index, s->type, c, h, w);
    int64_t n = (int64_t)c * h * w;
    if (n > MDFI_LIMIT_TENSOR || (int64_t)h * w > MDFI_LIMIT_TENSOR)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: output %d x %d x %d "
                         "is absurdly large", ctx->cfg->name, s->line, ctx->index, s->type,
                         c, h, w);
    return MDFI_OK;
}

mdfi_status mdfi_layer_ref(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                           const char *key, int value, int *index, mdfi_errbuf *err)
{
    int i = value < 0 ? ctx->index + value : value;
    if (i < 0 || i >= ctx->index)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: %s=%d refers to layer "
                         "%d, which is not an earlier layer (0..%d)", ctx->cfg->name,
                         mdfi_cfg_line(s, key), ctx->index, s->type, key, value, i,
                         ctx->index - 1);
    *index = i;
    return MDFI_OK;
}
