/* [shortcut]: out = alpha*previous + beta*from, then the activation.
 * Both inputs must have the same shape (Darknet's resampling of unequal
 * shapes is not supported and reported). */
#include <stdlib.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/layer.h"

typedef struct {
    float alpha, beta;
    mdfi_activation act;
} shortcut_spec;

static mdfi_status shortcut_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                  const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    shortcut_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = sp;
    int from;
    MDFI_CHECK(mdfi_cfg_int_required(ctx->cfg, s, "from", &from, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "alpha", 1.f, &sp->alpha, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "beta", 1.f, &sp->beta, err));
    const char *act = mdfi_cfg_str(s, "activation", "linear");
    if (mdfi_activation_parse(act, &sp->act))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: unknown activation '%s'", ctx->cfg->name,
                         mdfi_cfg_line(s, "activation"), act);
    l->activation = mdfi_activation_name(sp->act);
    l->n_in = 2;
    MDFI_CHECK(mdfi_layer_ref(ctx, s, "from", from, &l->in[1], err));
    const mdfi_layer *f = &ctx->layers[l->in[1]];
    if (f->out_c != l->in_c || f->out_h != l->in_h || f->out_w != l->in_w)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [shortcut]: from=%d gives "
                         "%dx%dx%d but the previous layer gives %dx%dx%d; shapes must match",
                         ctx->cfg->name, mdfi_cfg_line(s, "from"), ctx->index, from, f->out_c,
                         f->out_h, f->out_w, l->in_c, l->in_h, l->in_w);
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->flops = (double)l->out_c * l->out_h * l->out_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void shortcut_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const shortcut_spec *sp = l->priv;
    size_t n = mdfi_layer_outputs(l);
    const float *a = ctx->in[0], *b = ctx->in[1];
    for (size_t i = 0; i < n; ++i)
        ctx->out[i] = sp->alpha * a[i] + sp->beta * b[i];
    mdfi_activate(ctx->out, n, sp->act);
}

static void shortcut_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_ops mdfi_shortcut_ops = {"shortcut", shortcut_parse, NULL, NULL,
                                          shortcut_forward, shortcut_destroy};
