/* [contrastive] (AlexeyAB): a training loss over a [yolo] layer's embeddings.
 * At inference forward_contrastive_layer returns at once, so its output is the
 * zeros it was allocated with: the same here (and it reads no weights). */
#include <string.h>

#include "base/error.h"
#include "layers/layer.h"

mdfi_status mdfi_contrastive_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                   const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    mdfi_cfg_ignore(s, "classes temperature yolo_layer cls_normalizer max_delta "
                       "contrastive_neg_max");
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    memset(ctx->out, 0, mdfi_layer_outputs(l) * sizeof(float));
}

const mdfi_layer_variant mdfi_contrastive_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
