/* [convolutional]: weights [filters][c/groups][size][size], cross-correlation
 * with zero padding, optional batch norm, then the activation. */
#include <stdlib.h>

#include "base/error.h"
#include "layers/conv_xnor.h"
#include "layers/gemm_layer.h"

static mdfi_status conv_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    if (mdfi_conv_xnor_selected(s)) {   /* xnor=1: binary kernels (layers/conv_xnor.c) */
        l->ops = &mdfi_conv_xnor_ops;
        return l->ops->parse(l, s, ctx, err);
    }
    mdfi_gemm_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = p;
    mdfi_conv_spec c;
    MDFI_CHECK(mdfi_conv_parse_spec(l, s, ctx, &c, err));
    p->groups = c.groups;
    p->bn = c.bn;
    p->act = c.act;
    p->m = c.m;
    p->k = c.k;
    p->geom = c.geom;
    p->stream = 1;   /* the weights come last: prepare streams them (gemm_layer.c) */
    l->n_params = mdfi_gemm_param_count(p, l->filters);
    return MDFI_OK;
}

static mdfi_status conv_load(mdfi_layer *l, mdfi_weights_reader *r, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    MDFI_CHECK(mdfi_gemm_alloc(l, p, err));
    /* the weights: read by prepare, a panel at a time */
    return r ? mdfi_darknet_read_head(&p->raw, r, (size_t)l->out_c, p->bn, err) : MDFI_OK;
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
