/* [local]: pjreddie's locally connected layer (YOLOv1): a convolution whose
 * filters differ at every output position.  forward_local_layer: one bias
 * per output value, plus at each location j the GEMM of its own filters
 * W_j [filters][c][size][size] with im2col's column j, then the activation.
 * load_weights reads the biases (all outputs), then W_0, W_1, ... in
 * location order.  The output size takes pad as a flag (h - 1, or h - size
 * when 0) while im2col pads by pad pixels: unless size = 2 pad + 1 the two
 * may disagree and Darknet's GEMM reads im2col's columns at the wrong
 * stride, so MDFI refuses pad > 0 with another size.
 * A direct loop: no im2col scratch, and the sum in Darknet's k order. */
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/layer.h"

mdfi_status mdfi_local_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                             mdfi_errbuf *err)
{
    mdfi_activation *act = calloc(1, sizeof *act);
    if (!act)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = act;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "filters", 1, &l->filters, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", 1, &l->size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &l->stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pad", 0, &l->pad, err));
    const char *name = mdfi_cfg_str(s, "activation", "logistic");
    if (mdfi_activation_parse(name, act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", ctx->cfg->name,
                         mdfi_cfg_line(s, "activation"), name);
    l->activation = mdfi_activation_name(*act);
    const int k = l->size, st = l->stride, p = l->pad;
    /* pad > 0: im2col's output is the layer's when size = 2 pad + 1 */
    int bad = l->filters < 1 || l->filters > MDFI_LIMIT_CONNECTED_OUTPUTS || k < 1 ||
              k > MDFI_LIMIT_KERNEL || st < 1 || st > MDFI_LIMIT_KERNEL || p < 0 ||
              (p ? k != 2 * p + 1 : l->in_h < k || l->in_w < k);
    double w = 0;
    if (!bad) {
        l->out_c = l->filters;
        l->out_h = (l->in_h - (p ? 1 : k)) / st + 1;
        l->out_w = (l->in_w - (p ? 1 : k)) / st + 1;
        w = (double)l->out_h * l->out_w * l->filters * k * k * l->in_c;
        /* and what a 32-bit size_t counts in bytes (armhf) */
        bad = w > (double)MDFI_LIMIT_CONNECTED_WEIGHTS || w > (double)(SIZE_MAX / 8);
    }
    if (bad)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [local]: filters=%d size=%d "
                         "stride=%d pad=%d do not fit its %dx%dx%d input (pad > 0 needs size "
                         "= 2 pad + 1, as Darknet's im2col)", ctx->cfg->name, s->line,
                         ctx->index, l->filters, k, st, p, l->in_c, l->in_h, l->in_w);
    MDFI_CHECK(mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err));
    l->n_params = mdfi_layer_outputs(l) + (size_t)w;
    l->param_bytes = l->n_params * sizeof(float);
    l->flops = 2 * w;
    return MDFI_OK;
}

/* The biases, then the weights, as the file stores them (NULL: zeros).  Load
 * runs before every prepare: a fresh zeroed array each time, which calloc
 * leaves untouched until read (yolov1's 462 MB without weights: info). */
static mdfi_status float_load(mdfi_layer *l, mdfi_params *r, mdfi_errbuf *err)
{
    free(l->priv);
    if (!(l->priv = calloc(l->n_params, sizeof(float))))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    if (!r)
        return MDFI_OK;
    const size_t n = mdfi_layer_outputs(l);
    MDFI_CHECK(mdfi_params_floats(r, l->priv, n, "biases", err));
    return mdfi_params_floats(r, (float *)l->priv + n, l->n_params - n, "weights", err);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const int locations = l->out_h * l->out_w, k = l->size;
    const float *bias = l->priv, *w = bias + mdfi_layer_outputs(l), *x = ctx->in[0];
    for (int j = 0; j < locations; ++j) {
        const int y0 = j / l->out_w * l->stride - l->pad, x0 = j % l->out_w * l->stride - l->pad;
        for (int f = 0; f < l->filters; ++f) {
            const size_t o = (size_t)f * locations + j;
            float acc = bias[o];
            for (int c = 0; c < l->in_c; ++c)
                for (int ky = 0; ky < k; ++ky)
                    for (int kx = 0; kx < k; ++kx, ++w) {
                        const int iy = y0 + ky, ix = x0 + kx;   /* im2col's zero padding */
                        if (iy >= 0 && iy < l->in_h && ix >= 0 && ix < l->in_w)
                            acc += *w * x[((size_t)c * l->in_h + iy) * l->in_w + ix];
                    }
            ctx->out[o] = acc;
        }
    }
    mdfi_activate(ctx->out, mdfi_layer_outputs(l), *(const mdfi_activation *)l->spec);
}

static void float_destroy(mdfi_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const mdfi_layer_variant mdfi_local_float = {NULL, float_load, NULL, float_forward,
                                             float_destroy, NULL};
