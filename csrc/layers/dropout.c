/* [dropout]: identity at inference; shares its input's buffer as Darknet does. */
#include "layers/layer.h"

mdfi_status mdfi_dropout_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    (void)mdfi_cfg_str(s, "probability", NULL);
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void alias_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    (void)l;
    (void)ctx;
}

/* The same on every path: the network gives it its input's format. */
const mdfi_layer_variant mdfi_dropout_alias = {NULL, NULL, NULL, alias_forward, NULL, NULL};
