/* [crop]: Darknet's test-time crop (forward_crop_layer with train = 0): the
 * centre crop_height x crop_width of every channel, mapped to x 2 - 1 (the
 * [0, 1] input to [-1, 1]) unless noadjust=1.  Flips, angles, saturation
 * and exposure only act in training. */
#include <stdlib.h>

#include "base/error.h"
#include "layers/layer.h"

typedef struct {
    float scale, trans;
} crop_spec;

mdfi_status mdfi_crop_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                            mdfi_errbuf *err)
{
    crop_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    int ch, cw, noadjust;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "crop_height", 1, &ch, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "crop_width", 1, &cw, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "noadjust", 0, &noadjust, err));
    mdfi_cfg_ignore(s, "flip angle saturation exposure shift");
    if (ch < 1 || cw < 1 || ch > l->in_h || cw > l->in_w)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [crop]: crop %dx%d does not fit "
                         "the %dx%d input", ctx->cfg->name, s->line, ctx->index, cw, ch,
                         l->in_w, l->in_h);
    sp->scale = noadjust ? 1.f : 2.f;
    sp->trans = noadjust ? 0.f : -1.f;
    l->out_c = l->in_c;
    l->out_h = ch;
    l->out_w = cw;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const crop_spec *sp = l->spec;
    const int dh = (l->in_h - l->out_h) / 2, dw = (l->in_w - l->out_w) / 2;
    float *out = ctx->out;
    for (int c = 0; c < l->out_c; ++c)
        for (int i = 0; i < l->out_h; ++i) {
            const float *row = ctx->in[0] + ((size_t)c * l->in_h + i + dh) * l->in_w + dw;
            for (int j = 0; j < l->out_w; ++j)
                *out++ = row[j] * sp->scale + sp->trans;
        }
}

const mdfi_layer_variant mdfi_crop_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
