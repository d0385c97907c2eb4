/* [dropout]: identity at inference; shares its input's buffer as Darknet does. */
#include "layers/layer.h"

static mdfi_status dropout_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                 const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    (void)mdfi_cfg_str(s, "probability", NULL);
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->alias_input = 1;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void dropout_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    (void)l;
    (void)ctx;
}

const mdfi_layer_ops mdfi_dropout_ops = {"dropout", dropout_parse, NULL, NULL,
                                         dropout_forward, NULL};
