/* [maxpool]: Darknet's padding rule: padding defaults to size-1, windows
 * start at -(padding/2), and out-of-image taps are ignored (-FLT_MAX). */
#include <float.h>
#include <stdlib.h>

#include "base/error.h"
#include "layers/layer.h"

static mdfi_status maxpool_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    int size, stride, padding;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", stride, &size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", size - 1, &padding, err));
    if (size < 1 || stride < 1 || padding < 0 || size > 256 || stride > 256 || padding > 256)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [maxpool]: bad size=%d "
                         "stride=%d padding=%d", ctx->cfg->name, s->line, ctx->index, size,
                         stride, padding);
    l->size = size;
    l->stride = stride;
    l->pad = padding;
    l->out_c = l->in_c;
    l->out_h = (l->in_h + padding - size) / stride + 1;
    l->out_w = (l->in_w + padding - size) / stride + 1;
    if (l->in_h + padding < size || l->in_w + padding < size)
        l->out_h = l->out_w = 0;
    l->flops = 0;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

/* One output row from input rows [r0, ...) of one channel at src: windows
 * wholly inside the image skip the bounds tests (the common case); the edges
 * take the general path. */
static void pool_row(const mdfi_layer *l, const float *src, int r0, int y0, float *out)
{
    const int size = l->size, stride = l->stride, off = -(l->pad / 2);
    int ylo = y0 < 0 ? 0 : y0, yhi = y0 + size > l->in_h ? l->in_h : y0 + size;
    for (int ox = 0; ox < l->out_w; ++ox) {
        int x0 = off + ox * stride;
        float m = -FLT_MAX;
        if (x0 >= 0 && x0 + size <= l->in_w && size == 2 && yhi - ylo == 2) {
            /* the same comparisons in the same order as the general path */
            const float *a = src + (size_t)(ylo - r0) * l->in_w + x0, *b = a + l->in_w;
            m = a[0] > m ? a[0] : m;
            m = a[1] > m ? a[1] : m;
            m = b[0] > m ? b[0] : m;
            m = b[1] > m ? b[1] : m;
        } else {
            int xlo = x0 < 0 ? 0 : x0, xhi = x0 + size > l->in_w ? l->in_w : x0 + size;
            for (int y = ylo; y < yhi; ++y)
                for (int x = xlo; x < xhi; ++x) {
                    float v = src[(size_t)(y - r0) * l->in_w + x];
                    m = v > m ? v : m;
                }
        }
        out[ox] = m;
    }
}

void mdfi_maxpool_band(const mdfi_layer *l, const float *in, int r0, int r1, int oy0, int oy1,
                       float *out)
{
    const int off = -(l->pad / 2);
    for (int c = 0; c < l->out_c; ++c) {
        const float *src = in + (size_t)c * (r1 - r0) * l->in_w;
        float *o = out + (size_t)c * l->out_h * l->out_w;
        for (int oy = oy0; oy < oy1; ++oy)
            pool_row(l, src, r0, off + oy * l->stride, o + (size_t)oy * l->out_w);
    }
}

static void maxpool_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_maxpool_band(l, ctx->in[0], 0, l->in_h, 0, l->out_h, ctx->out);
}

const mdfi_layer_ops mdfi_maxpool_ops = {"maxpool", maxpool_parse, NULL, NULL,
                                         maxpool_forward, NULL};
