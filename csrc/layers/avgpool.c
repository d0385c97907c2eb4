/* [avgpool]: global average over each channel -> c x 1 x 1. */
#include "layers/layer.h"

static mdfi_status avgpool_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    l->out_c = l->in_c;
    l->out_h = l->out_w = 1;
    l->flops = 0;
    return mdfi_layer_check_shape(ctx, s, l->out_c, 1, 1, err);
}

static void avgpool_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    int n = l->in_h * l->in_w;
    for (int c = 0; c < l->in_c; ++c) {
        const float *src = ctx->in[0] + (size_t)c * n;
        float sum = 0;   /* float and in order, as Darknet */
        for (int i = 0; i < n; ++i)
            sum += src[i];
        ctx->out[c] = sum / n;
    }
}

const mdfi_layer_ops mdfi_avgpool_ops = {"avgpool", avgpool_parse, NULL, NULL,
                                         avgpool_forward, NULL};
