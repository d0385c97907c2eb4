/* [local_avgpool] (AlexeyAB): [maxpool]'s windows (size, stride_x/stride_y,
 * padding; windows start at -padding/2), each output the mean of the window's
 * pixels inside the image (forward_local_avgpool_layer: a float sum in window
 * order, divided by their count). */
#include <stdlib.h>

#include "base/error.h"
#include "layers/layer.h"

mdfi_status mdfi_local_avgpool_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                     const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    int *sy = calloc(1, sizeof *sy);   /* the spec: the vertical stride */
    if (!sy)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sy;
    MDFI_CHECK(mdfi_layer_pool_parse(l, s, ctx, sy, err));
    /* a window past the image would hold no pixel: Darknet divides by 0 */
    if ((l->pad + 1) / 2 >= l->size)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [local_avgpool]: padding=%d leaves "
                         "windows of size=%d outside the image", ctx->cfg->name,
                         mdfi_cfg_line(s, "padding"), ctx->index, l->pad, l->size);
    l->flops = (double)l->size * l->size * mdfi_layer_outputs(l);
    return MDFI_OK;
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const int off = -(l->pad / 2), sy = *(const int *)l->spec, size = l->size;
    float *out = ctx->out;
    for (int c = 0; c < l->out_c; ++c) {
        const float *in = ctx->in[0] + (size_t)c * l->in_h * l->in_w;
        for (int i = 0; i < l->out_h; ++i)
            for (int j = 0; j < l->out_w; ++j) {
                const int y0 = off + i * sy, x0 = off + j * l->stride;
                float sum = 0;
                int n = 0;
                for (int y = y0; y < y0 + size; ++y)
                    for (int x = x0; x < x0 + size; ++x)
                        if (y >= 0 && y < l->in_h && x >= 0 && x < l->in_w) {
                            sum += in[(size_t)y * l->in_w + x];
                            ++n;
                        }
                *out++ = sum / n;
            }
    }
}

const mdfi_layer_variant mdfi_local_avgpool_float = {NULL, NULL, NULL, float_forward, NULL,
                                                     NULL};
