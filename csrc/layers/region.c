/* [region]: YOLOv2's head, as pjreddie's forward_region_layer leaves it at
 * inference: the logistic on x, y and objectness, then a softmax over the
 * classes of each cell (softmax=1) or the logistic on them.  Boxes are
 * decoded after forward by detect/yolo.c (get_region_detections).
 * AlexeyAB keeps an older form of this layer (its output flattened, the
 * logistic of x, y applied when decoding): MDFI follows pjreddie's, whose
 * code trained the published YOLOv2 weights and which OpenCV follows too. */
/* [detection] (YOLOv1's head, forward_detection_layer) sits here too: the
 * input as it is, and with softmax=1 Darknet's softmax over each cell's
 * classes; get_detection_detections (detect/yolo.c) decodes it. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/yolo.h"

/* [region]'s and [detection]'s training keys (one list: each has some of them) */
#define TRAINING_KEYS "log sqrt max jitter rescore thresh classfix absolute random coord_scale " \
                      "object_scale noobject_scale mask_scale class_scale bias_match " \
                      "focal_loss resize map forced reorg"

mdfi_status mdfi_region_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    mdfi_yolo_spec *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = y;
    int coords, background;
    MDFI_CHECK(mdfi_yolo_parse_anchors(ctx, s, y, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "coords", 4, &coords, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "softmax", 0, &y->softmax, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "background", 0, &background, err));
    mdfi_cfg_ignore(s, TRAINING_KEYS);
    if (mdfi_cfg_str(s, "tree", NULL) || coords != 4 || background)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [region]: tree= "
                         "(YOLO9000's hierarchical softmax) is not supported, nor coords other "
                         "than 4 or background=1", ctx->cfg->name, s->line, ctx->index);
    y->region = 1;
    y->n_mask = y->total;
    for (int i = 0; i < y->total; ++i)
        y->mask[i] = i;
    return mdfi_yolo_parse_shape(l, s, ctx, y, err);
}

/* Darknet's softmax over n values stride apart (exp in double, sums in float). */
static void softmax_strided(float *x, int n, size_t stride)
{
    float largest = -FLT_MAX, sum = 0;
    for (int i = 0; i < n; ++i)
        largest = x[i * stride] > largest ? x[i * stride] : largest;
    for (int i = 0; i < n; ++i) {
        float e = (float)exp(x[i * stride] - largest);
        sum += e;
        x[i * stride] = e;
    }
    for (int i = 0; i < n; ++i)
        x[i * stride] /= sum;
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const mdfi_yolo_spec *y = l->spec;
    const size_t plane = (size_t)l->out_h * l->out_w;
    memcpy(ctx->out, ctx->in[0], mdfi_layer_outputs(l) * sizeof(float));
    if (y->detection) {   /* each cell's classes, stored together */
        for (size_t i = 0; i < plane && y->softmax; ++i)
            softmax_strided(ctx->out + i * y->classes, y->classes, 1);
        return;
    }
    for (int a = 0; a < y->total; ++a) {
        float *base = ctx->out + (size_t)a * (y->classes + 5) * plane;
        mdfi_activate(base, 2 * plane, MDFI_ACT_LOGISTIC);
        mdfi_activate(base + 4 * plane, y->softmax ? plane : (size_t)(1 + y->classes) * plane,
                      MDFI_ACT_LOGISTIC);
        for (size_t i = 0; i < plane && y->softmax; ++i)
            softmax_strided(base + 5 * plane + i, y->classes, plane);
    }
}

mdfi_status mdfi_detection_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 mdfi_errbuf *err)
{
    mdfi_yolo_spec *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = y;
    int coords, side;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "classes", 1, &y->classes, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "coords", 1, &coords, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "num", 1, &y->total, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "side", 7, &side, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "softmax", 0, &y->softmax, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "sqrt", 0, &y->sqrt_wh, err));
    mdfi_cfg_ignore(s, TRAINING_KEYS);
    const long long inputs = (long long)l->in_c * l->in_h * l->in_w;
    if (y->classes < 1 || y->classes > MDFI_LIMIT_CLASSES || y->total < 1 ||
        y->total > MDFI_LIMIT_ANCHORS || side < 1 || side > 4096 || coords != 4 ||
        (long long)side * side * (5 * y->total + y->classes) != inputs)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [detection]: side=%d num=%d "
                         "classes=%d coords=%d (4 only) do not fit its %lld inputs",
                         ctx->cfg->name, s->line, ctx->index, side, y->total, y->classes, coords,
                         inputs);
    y->detection = 1;
    y->nms_beta = -1;   /* do_nms_sort's IoU */
    y->n_mask = y->total;
    l->out_c = 5 * y->total + y->classes;   /* the flat output seen as side x side */
    l->out_h = l->out_w = side;
    return MDFI_OK;
}

const mdfi_layer_variant mdfi_region_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
