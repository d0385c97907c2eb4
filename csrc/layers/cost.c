/* [cost]: a training loss.  Darknet's network output skips it (the output is
 * the layer before), so at inference it passes its input on, sharing its
 * buffer as [dropout] does. */
#include "layers/layer.h"

mdfi_status mdfi_cost_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                            mdfi_errbuf *err)
{
    mdfi_cfg_ignore(s, "type scale ratio noobject_scale thresh");
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}
