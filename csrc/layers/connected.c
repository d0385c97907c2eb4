/* [connected]: y = W x + b over the flattened CHW input, W stored
 * [outputs][inputs]; optional batch norm (stored after the weights). */
#include <stdlib.h>

#include "base/error.h"
#include "layers/gemm_layer.h"

mdfi_status mdfi_connected_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 mdfi_errbuf *err)
{
    mdfi_gemm_spec *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = p;
    p->connected = 1;
    int outputs;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "output", 1, &outputs, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 0, &p->bn, err));
    const char *act = mdfi_cfg_str(s, "activation", "logistic");
    if (mdfi_activation_parse(act, &p->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", ctx->cfg->name,
                         mdfi_cfg_line(s, "activation"), act);
    if (outputs < 1 || outputs > MDFI_LIMIT_CONNECTED_OUTPUTS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [connected]: bad output=%d",
                         ctx->cfg->name, mdfi_cfg_line(s, "output"), ctx->index, outputs);
    long long inputs = (long long)l->in_c * l->in_h * l->in_w;
    if (inputs * outputs > MDFI_LIMIT_CONNECTED_WEIGHTS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [connected]: %lld x %d "
                         "weights is absurdly large", ctx->cfg->name, s->line, ctx->index,
                         inputs, outputs);
    l->out_c = outputs;
    l->out_h = l->out_w = 1;
    l->filters = outputs;
    l->batch_normalize = p->bn;
    l->activation = mdfi_activation_name(p->act);
    p->groups = 1;
    p->m = outputs;
    p->k = (int)inputs;
    p->geom = (mdfi_conv_geom){(int)inputs, 1, 1, 1, 1, 0, 1, 1, 1, 1};
    l->flops = 2.0 * (double)inputs * outputs;
    l->n_params = mdfi_gemm_param_count(p);
    return MDFI_OK;
}

/* Darknet writes weights [inputs][outputs] when the header says "transpose". */
static mdfi_status transpose(float *w, int rows, int cols, mdfi_errbuf *err)
{
    size_t n = (size_t)rows * cols;
    float *t = malloc(n * sizeof *t);
    if (!t)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            t[(size_t)c * rows + r] = w[(size_t)r * cols + c];
    for (size_t i = 0; i < n; ++i)
        w[i] = t[i];
    free(t);
    return MDFI_OK;
}

static mdfi_status float_load(mdfi_layer *l, mdfi_params *r, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    size_t n = (size_t)l->out_c;
    MDFI_CHECK(mdfi_gemm_alloc(l, p, err));
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_params_floats(r, p->raw.biases, n, "biases", err));
    MDFI_CHECK(mdfi_params_floats(r, p->raw.weights, n * (size_t)p->s.k, "weights", err));
    if (mdfi_params_transposed(r))
        MDFI_CHECK(transpose(p->raw.weights, p->s.k, p->s.m, err));
    if (p->s.bn) {
        MDFI_CHECK(mdfi_params_floats(r, p->raw.scales, n, "scales", err));
        MDFI_CHECK(mdfi_params_floats(r, p->raw.mean, n, "rolling_mean", err));
        MDFI_CHECK(mdfi_params_floats(r, p->raw.var, n, "rolling_variance", err));
    }
    return MDFI_OK;
}

const mdfi_layer_variant mdfi_connected_float = {
    mdfi_gemm_bind, float_load, mdfi_gemm_prepare, mdfi_gemm_forward, mdfi_gemm_destroy, NULL};
