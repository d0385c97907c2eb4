/* [connected]: y = W x + b over the flattened CHW input, W stored
 * [outputs][inputs]; optional batch norm (stored after the weights). */
#include <stdlib.h>

#include "base/error.h"
#include "layers/gemm_layer.h"

static mdfi_status fc_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                            mdfi_errbuf *err)
{
    mdfi_gemm_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = p;
    int outputs;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "output", 1, &outputs, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 0, &p->bn, err));
    const char *act = mdfi_cfg_str(s, "activation", "logistic");
    if (mdfi_activation_parse(act, &p->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", ctx->cfg->name,
                         mdfi_cfg_line(s, "activation"), act);
    if (outputs < 1 || outputs > (1 << 24))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [connected]: bad output=%d",
                         ctx->cfg->name, mdfi_cfg_line(s, "output"), ctx->index, outputs);
    long long inputs = (long long)l->in_c * l->in_h * l->in_w;
    if (inputs * outputs > (1LL << 31))
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
    p->geom = (mdfi_conv_geom){(int)inputs, 1, 1, 1, 1, 0, 1, 1};
    l->flops = 2.0 * (double)inputs * outputs;
    l->n_params = mdfi_gemm_param_count(p, outputs);
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

static mdfi_status fc_load(mdfi_layer *l, mdfi_weights_reader *r, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    size_t n = (size_t)l->out_c;
    MDFI_CHECK(mdfi_gemm_alloc(l, p, err));
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_weights_read(r, p->raw.biases, n, "biases", err));
    MDFI_CHECK(mdfi_weights_read(r, p->raw.weights, n * (size_t)p->k, "weights", err));
    if (r->transpose)
        MDFI_CHECK(transpose(p->raw.weights, p->k, p->m, err));
    if (p->bn) {
        MDFI_CHECK(mdfi_weights_read(r, p->raw.scales, n, "scales", err));
        MDFI_CHECK(mdfi_weights_read(r, p->raw.mean, n, "rolling_mean", err));
        MDFI_CHECK(mdfi_weights_read(r, p->raw.var, n, "rolling_variance", err));
    }
    return MDFI_OK;
}

static mdfi_status fc_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    return mdfi_gemm_prepare(l, l->priv, ctx, err);
}

static void fc_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_gemm_forward(l, l->priv, ctx);
}

static void fc_destroy(mdfi_layer *l)
{
    if (l->priv)
        mdfi_gemm_free(l->priv);
    free(l->priv);
}

const mdfi_layer_ops mdfi_connected_ops = {
    "connected", fc_parse, fc_load, fc_prepare, fc_forward, fc_destroy};
