/* [softmax]: exp(x/t - max/t) / sum per group, Darknet's arithmetic (the
 * exponential in double, sums in float). */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "layers/fixed.h"
#include "layers/layer.h"

typedef struct {
    float temperature;
} softmax_spec;

mdfi_status mdfi_softmax_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    softmax_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    int groups;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "groups", 1, &groups, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "temperature", 1.f, &sp->temperature, err));
    if (mdfi_cfg_str(s, "tree", NULL))
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [softmax]: tree= (a "
                         "hierarchical softmax) is not supported", ctx->cfg->name,
                         mdfi_cfg_line(s, "tree"), ctx->index);
    int inputs = l->in_c * l->in_h * l->in_w;
    if (groups < 1 || inputs % groups || sp->temperature == 0.f)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [softmax]: groups=%d must "
                         "divide the %d inputs and temperature must not be 0", ctx->cfg->name,
                         s->line, ctx->index, groups, inputs);
    l->groups = groups;
    l->out_c = inputs;
    l->out_h = l->out_w = 1;
    return mdfi_layer_check_shape(ctx, s, l->out_c, 1, 1, err);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const float t = ((const softmax_spec *)l->spec)->temperature;
    int n = l->out_c / l->groups;
    for (int g = 0; g < l->groups; ++g) {
        const float *x = ctx->in[0] + (size_t)g * n;
        float *y = ctx->out + (size_t)g * n;
        float largest = -FLT_MAX, sum = 0;
        for (int i = 0; i < n; ++i)
            largest = x[i] > largest ? x[i] : largest;
        for (int i = 0; i < n; ++i) {
            float e = (float)exp(x[i] / t - largest / t);
            sum += e;
            y[i] = e;
        }
        for (int i = 0; i < n; ++i)
            y[i] /= sum;
    }
}

/* ---- fixed point: dequantize, then the float softmax in place ------------------ */

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    (void)err;
    l->q_in = ctx->layers[l->in[0]].q_out;
    return MDFI_OK;
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_dequantize(ctx->in[0], l->q_in, ctx->out, mdfi_layer_outputs(l));
    mdfi_run_ctx c = *ctx;
    c.in[0] = ctx->out;
    float_forward(l, &c);
}

const mdfi_layer_variant mdfi_softmax_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_softmax_fixed = {fixed_bind, NULL, NULL, fixed_forward, NULL, NULL};
