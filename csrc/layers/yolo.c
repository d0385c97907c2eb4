/* [yolo]: the logistic on x, y, objectness and class scores of every anchor
 * slot; w and h stay raw.  Decoding lives in detect/. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/yolo.h"

static mdfi_status yolo_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_yolo_spec *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = y;
    int n_anchor_vals;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "classes", 20, &y->classes, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "num", 1, &y->total, err));
    MDFI_CHECK(mdfi_cfg_int_list(ctx->cfg, s, "mask", y->mask, MDFI_YOLO_MAX_ANCHORS, &y->n_mask,
                            err));
    MDFI_CHECK(mdfi_cfg_float_list(ctx->cfg, s, "anchors", y->anchors, 2 * MDFI_YOLO_MAX_ANCHORS,
                              &n_anchor_vals, err));
    /* training-only keys */
    const char *train[] = {"jitter", "ignore_thresh", "truth_thresh", "random", "max_delta",
                           "scale_x_y", "iou_loss", "iou_normalizer", "cls_normalizer"};
    for (size_t i = 0; i < sizeof train / sizeof train[0]; ++i)
        (void)mdfi_cfg_str(s, train[i], NULL);
    if (y->classes < 1 || y->classes > 100000 || y->total < 1 ||
        y->total > MDFI_YOLO_MAX_ANCHORS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [yolo]: bad classes=%d num=%d",
                         name, s->line, ctx->index, y->classes, y->total);
    if (y->n_mask == 0) {
        y->n_mask = y->total;
        for (int i = 0; i < y->total; ++i)
            y->mask[i] = i;
    }
    if (n_anchor_vals != 0 && n_anchor_vals != 2 * y->total)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [yolo]: %d anchor values for "
                         "num=%d (need %d)", name, mdfi_cfg_line(s, "anchors"), ctx->index,
                         n_anchor_vals, y->total, 2 * y->total);
    if (n_anchor_vals == 0)
        for (int i = 0; i < 2 * y->total; ++i)
            y->anchors[i] = .5f;   /* Darknet's default bias */
    for (int i = 0; i < y->n_mask; ++i)
        if (y->mask[i] < 0 || y->mask[i] >= y->total)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [yolo]: mask %d is not an "
                             "anchor index (0..%d)", name, mdfi_cfg_line(s, "mask"),
                             ctx->index, y->mask[i], y->total - 1);
    if (l->in_c != y->n_mask * (y->classes + 5))
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [yolo]: input has %d channels "
                         "but %d masks x (%d classes + 5) = %d are needed", name, s->line,
                         ctx->index, l->in_c, y->n_mask, y->classes,
                         y->n_mask * (y->classes + 5));
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void yolo_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const mdfi_yolo_spec *y = l->priv;
    size_t plane = (size_t)l->out_h * l->out_w;
    memcpy(ctx->out, ctx->in[0], mdfi_layer_outputs(l) * sizeof(float));
    for (int a = 0; a < y->n_mask; ++a) {
        float *base = ctx->out + (size_t)a * (y->classes + 5) * plane;
        mdfi_activate(base, 2 * plane, MDFI_ACT_LOGISTIC);
        mdfi_activate(base + 4 * plane, (size_t)(1 + y->classes) * plane, MDFI_ACT_LOGISTIC);
    }
}

static void yolo_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_ops mdfi_yolo_ops = {"yolo", yolo_parse, NULL, NULL, yolo_forward,
                                      yolo_destroy};
