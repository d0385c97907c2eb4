/* [upsample]: nearest neighbour by `stride`, times `scale`. */
#include <stdlib.h>

#include "base/error.h"
#include "layers/layer.h"

typedef struct {
    float scale;
} upsample_spec;

static mdfi_status upsample_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                  const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    upsample_spec *u = calloc(1, sizeof *u);
    if (!u)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = u;
    int stride;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 2, &stride, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "scale", 1.f, &u->scale, err));
    if (stride < 1 || stride > 64)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [upsample]: stride=%d "
                         "is not supported (1..64; negative = downsample is not)",
                         ctx->cfg->name, mdfi_cfg_line(s, "stride"), ctx->index, stride);
    l->stride = stride;
    l->out_c = l->in_c;
    l->out_h = l->in_h * stride;
    l->out_w = l->in_w * stride;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void upsample_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const upsample_spec *u = l->priv;
    const int st = l->stride;
    float *out = ctx->out;
    for (int c = 0; c < l->out_c; ++c) {
        const float *src = ctx->in[0] + (size_t)c * l->in_h * l->in_w;
        for (int y = 0; y < l->out_h; ++y) {
            const float *row = src + (size_t)(y / st) * l->in_w;
            for (int x = 0; x < l->out_w; ++x)
                *out++ = u->scale * row[x / st];
        }
    }
}

static void upsample_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_ops mdfi_upsample_ops = {"upsample", upsample_parse, NULL, NULL,
                                          upsample_forward, upsample_destroy};
