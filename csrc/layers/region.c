/* [region]: YOLOv2's head, as pjreddie's forward_region_layer leaves it at
 * inference: the logistic on x, y and objectness, then a softmax over the
 * classes of each cell (softmax=1) or the logistic on them.  Boxes are
 * decoded after forward by detect/yolo.c (get_region_detections).
 * AlexeyAB keeps an older form of this layer (its output flattened, the
 * logistic of x, y applied when decoding): MDFI follows pjreddie's, whose
 * code trained the published YOLOv2 weights and which OpenCV follows too. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/yolo.h"

mdfi_status mdfi_region_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_yolo_spec *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = y;
    int coords, background, n_anchor_vals;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "coords", 4, &coords, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "classes", 20, &y->classes, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "num", 1, &y->total, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "softmax", 0, &y->softmax, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "background", 0, &background, err));
    MDFI_CHECK(mdfi_cfg_float_list(ctx->cfg, s, "anchors", y->anchors, 2 * MDFI_LIMIT_ANCHORS,
                                   &n_anchor_vals, err));
    static const char *const train[] = {
        "log", "sqrt", "max", "jitter", "rescore", "thresh", "classfix", "absolute", "random",
        "coord_scale", "object_scale", "noobject_scale", "mask_scale", "class_scale",
        "bias_match", "focal_loss", "resize", "map"};
    for (size_t i = 0; i < sizeof train / sizeof train[0]; ++i)
        (void)mdfi_cfg_str(s, train[i], NULL);
    if (mdfi_cfg_str(s, "tree", NULL))
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [region]: tree= "
                         "(YOLO9000's hierarchical softmax) is not supported", name,
                         mdfi_cfg_line(s, "tree"), ctx->index);
    if (coords != 4 || background)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [region]: only coords=4 "
                         "and background=0 are supported", name, s->line, ctx->index);
    if (y->classes < 1 || y->classes > MDFI_LIMIT_CLASSES || y->total < 1 ||
        y->total > MDFI_LIMIT_ANCHORS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [region]: bad classes=%d num=%d",
                         name, s->line, ctx->index, y->classes, y->total);
    if (n_anchor_vals != 0 && n_anchor_vals != 2 * y->total)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [region]: %d anchor values for "
                         "num=%d (need %d)", name, mdfi_cfg_line(s, "anchors"), ctx->index,
                         n_anchor_vals, y->total, 2 * y->total);
    y->region = 1;
    y->n_mask = y->total;
    y->scale_xy = 1;
    y->nms_beta = -1;
    for (int i = 0; i < y->total; ++i)
        y->mask[i] = i;
    for (int i = n_anchor_vals; i < 2 * y->total; ++i)
        y->anchors[i] = .5f;   /* make_region_layer's biases */
    if (l->in_c != y->total * (y->classes + 5))
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [region]: input has %d "
                         "channels but num=%d x (%d classes + 5) = %d are needed", name,
                         s->line, ctx->index, l->in_c, y->total, y->classes,
                         y->total * (y->classes + 5));
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
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
    for (int a = 0; a < y->total; ++a) {
        float *base = ctx->out + (size_t)a * (y->classes + 5) * plane;
        mdfi_activate(base, 2 * plane, MDFI_ACT_LOGISTIC);
        mdfi_activate(base + 4 * plane, y->softmax ? plane : (size_t)(1 + y->classes) * plane,
                      MDFI_ACT_LOGISTIC);
        for (size_t i = 0; i < plane && y->softmax; ++i)
            softmax_strided(base + 5 * plane + i, y->classes, plane);
    }
}

const mdfi_layer_variant mdfi_region_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
