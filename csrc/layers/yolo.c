/* [yolo]: the logistic on x, y, objectness and class scores of every anchor
 * slot; w and h stay raw.  Decoding lives in detect/.  The fixed-point
 * variant reads integers and writes the same floats.  [Gaussian_yolo]
 * (AlexeyAB's forward_gaussian_yolo_layer, float only) is the same head with
 * a sigma after each of x, y, w, h, each through the logistic too. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/threads.h"
#include "kernels/activations.h"
#include "layers/fixed.h"
#include "layers/yolo.h"

mdfi_status mdfi_yolo_parse_anchors(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                    mdfi_yolo_spec *y, mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    int n_anchor_vals;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "classes", 20, &y->classes, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "num", 1, &y->total, err));
    MDFI_CHECK(mdfi_cfg_float_list(ctx->cfg, s, "anchors", y->anchors, 2 * MDFI_LIMIT_ANCHORS,
                                   &n_anchor_vals, err));
    if (y->classes < 1 || y->classes > MDFI_LIMIT_CLASSES || y->total < 1 ||
        y->total > MDFI_LIMIT_ANCHORS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: bad classes=%d num=%d", name,
                         s->line, ctx->index, s->type, y->classes, y->total);
    /* more values than num pairs: AlexeyAB's parse_yolo reads the first 2 num */
    if (n_anchor_vals != 0 && n_anchor_vals < 2 * y->total)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: %d anchor values for "
                         "num=%d (need %d)", name, mdfi_cfg_line(s, "anchors"), ctx->index,
                         s->type, n_anchor_vals, y->total, 2 * y->total);
    for (int i = n_anchor_vals; i < 2 * y->total; ++i)
        y->anchors[i] = .5f;   /* Darknet's default bias */
    y->scale_xy = 1;
    y->nms_beta = -1;
    return MDFI_OK;
}

/* The channels every anchor slot takes, and the output shape. */
mdfi_status mdfi_yolo_parse_shape(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  const mdfi_yolo_spec *y, mdfi_errbuf *err)
{
    const int k = 5 + 4 * y->gaussian;
    if (l->in_c != y->n_mask * (y->classes + k))
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: input has %d channels "
                         "but %d anchors x (%d classes + %d) = %d are needed", ctx->cfg->name,
                         s->line, ctx->index, s->type, l->in_c, y->n_mask, y->classes, k,
                         y->n_mask * (y->classes + k));
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static mdfi_status parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                         int gaussian, mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_yolo_spec *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = y;
    y->gaussian = gaussian;
    MDFI_CHECK(mdfi_yolo_parse_anchors(ctx, s, y, err));
    MDFI_CHECK(mdfi_cfg_int_list(ctx->cfg, s, "mask", y->mask, MDFI_LIMIT_ANCHORS, &y->n_mask,
                                 err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "scale_x_y", 1.f, &y->scale_xy, err));
    /* parse_gaussian_yolo reads no new_coords; its yolo_point moves the boxes */
    if (gaussian && mdfi_cfg_word_in("left_top right_bottom",
                                     mdfi_cfg_str(s, "yolo_point", "center")))
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [%s]: yolo_point other "
                         "than center is not supported", name, mdfi_cfg_line(s, "yolo_point"),
                         ctx->index, s->type);
    if (!gaussian)
        MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "new_coords", 0, &y->new_coords, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "beta_nms", .6f, &y->nms_beta, err));
    /* AlexeyAB: greedynms is DIoU with exponent 0.6, diounms with beta_nms,
     * anything else plain IoU; corners NMS is not in its detector's output */
    const char *kind = mdfi_cfg_str(s, "nms_kind", "default");
    if (!strcmp(kind, "greedynms"))
        y->nms_beta = .6f;
    else if (strcmp(kind, "diounms"))
        y->nms_beta = -1;
    /* training-only keys (pjreddie's and AlexeyAB's parse_yolo) */
    mdfi_cfg_ignore(s, "jitter ignore_thresh truth_thresh random max_delta iou_loss "
                       "iou_normalizer cls_normalizer obj_normalizer delta_normalizer iou_thresh "
                       "iou_thresh_kind objectness_smooth resize max show_details "
                       "counters_per_class label_smooth_eps focal_loss track_history_size "
                       "sim_thresh dets_for_track dets_for_show track_ciou_norm embedding_layer "
                       "map");
    if ((unsigned)y->new_coords > 1 || !(y->scale_xy > 0))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: bad new_coords=%d "
                         "scale_x_y=%g", name, s->line, ctx->index, s->type, y->new_coords,
                         (double)y->scale_xy);
    if (y->n_mask == 0) {
        y->n_mask = y->total;
        for (int i = 0; i < y->total; ++i)
            y->mask[i] = i;
    }
    for (int i = 0; i < y->n_mask; ++i)
        if (y->mask[i] < 0 || y->mask[i] >= y->total)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: mask %d is not an "
                             "anchor index (0..%d)", name, mdfi_cfg_line(s, "mask"),
                             ctx->index, s->type, y->mask[i], y->total - 1);
    return mdfi_yolo_parse_shape(l, s, ctx, y, err);
}

mdfi_status mdfi_yolo_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                            mdfi_errbuf *err)
{
    return parse(l, s, ctx, 0, err);
}

mdfi_status mdfi_gaussian_yolo_parse(mdfi_layer *l, mdfi_cfg_section *s,
                                     const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    return parse(l, s, ctx, 1, err);
}

/* AlexeyAB's scal_add_cpu with scale_x_y: x s + (-(s - 1) / 2), in float. */
static void scale_add(float *x, size_t n, float s)
{
    const float b = (float)(-0.5 * ((double)s - 1));
    for (size_t i = 0; s != 1.f && i < n; ++i)
        x[i] = x[i] * s + b;
}

/* Float: the logistic loop for the kernel path (a vector form on AVX2 and
 * NEON, within a few ulps of Darknet's double arithmetic; with --kernel ref,
 * that arithmetic). */
typedef struct {
    mdfi_activate_fn logistic;
} float_yolo;

static mdfi_status float_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    if (!l->priv && !(l->priv = calloc(1, sizeof(float_yolo))))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    ((float_yolo *)l->priv)->logistic = mdfi_activate_for(ctx->isa, MDFI_ACT_LOGISTIC);
    return MDFI_OK;
}

static void float_destroy(mdfi_layer *l)
{
    free(l->priv);
}

typedef struct {
    const mdfi_layer *l;
    mdfi_run_ctx *ctx;
    size_t chunk;
} yolo_job;

/* Columns [n0, n0 + chunk) of every channel: the copy, the logistic on x, y
 * (Gaussian: and every sigma), objectness and the class scores, then
 * scale_add on x and y (Gaussian: and their sigmas).  Threads split the columns as the layer
 * before split its outputs, so each reads what its core just wrote; every
 * element's arithmetic is the same for any split. */
static void yolo_cols(void *arg, int task, int thread)
{
    (void)thread;
    const yolo_job *j = arg;
    const mdfi_layer *l = j->l;
    const mdfi_yolo_spec *y = l->spec;
    const mdfi_activate_fn logistic = ((const float_yolo *)l->priv)->logistic;
    const int g = y->gaussian, per = y->classes + 5 + 4 * g;
    const size_t plane = (size_t)l->out_h * l->out_w, n0 = (size_t)task * j->chunk;
    if (n0 >= plane)
        return;
    const size_t n = plane - n0 < j->chunk ? plane - n0 : j->chunk;
    for (int c = 0; c < l->out_c; ++c) {
        float *o = j->ctx->out + (size_t)c * plane + n0;
        const int k = c % per, xy = k < 2 + 2 * g;
        memcpy(o, j->ctx->in[0] + (size_t)c * plane + n0, n * sizeof(float));
        if (c / per >= y->n_mask)
            continue;
        if (!y->new_coords && (xy || (g && (k == 5 || k == 7)) || k >= 4 + 4 * g))
            logistic(o, n, MDFI_ACT_LOGISTIC);
        if (xy)
            scale_add(o, n, y->scale_xy);
    }
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const int threads = mdfi_pool_threads(ctx->pool);
    const size_t plane = (size_t)l->out_h * l->out_w;
    yolo_job j = {l, ctx, ((plane + threads - 1) / threads + 15) & ~(size_t)15};
    mdfi_pool_run(ctx->pool, threads, yolo_cols, &j);
}

/* ---- fixed point: a float head reading integers --------------------------------
 * The logistic of every integer the input format can hold, made at prepare
 * with Darknet's double arithmetic (as the numpy reference computes it): a
 * lookup gives bit-identical floats to dequantizing and applying it. */
typedef struct {
    float *logistic;     /* [2^bits], index q - qmin */
} fx_yolo;

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    l->q_in = ctx->layers[l->in[0]].q_out;
    if (!(l->priv = calloc(1, sizeof(fx_yolo))))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    return MDFI_OK;
}

static mdfi_status fixed_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    fx_yolo *y = l->priv;
    const size_t n = (size_t)1 << l->q_in.bits;
    const int32_t qmin = -(int32_t)(n / 2);
    free(y->logistic);
    if (!(y->logistic = malloc(n * sizeof *y->logistic)))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    const float scale = (float)ldexp(1., -l->q_in.frac);
    for (size_t i = 0; i < n; ++i)
        y->logistic[i] = (float)(qmin + (int32_t)i) * scale;   /* as mdfi_fx_dequantize */
    mdfi_activate(y->logistic, n, MDFI_ACT_LOGISTIC);
    l->param_bytes = n * sizeof *y->logistic;
    return MDFI_OK;
}

/* Channel c (the channels are split over the threads): the table's
 * logistic, or w and h (all with new_coords) dequantized; then scale_add on
 * x and y (the fixed-point head has no Gaussian form). */
static void fixed_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const fx_yolo *y = l->priv;
    const mdfi_yolo_spec *spec = l->spec;
    const size_t plane = (size_t)l->out_h * l->out_w;
    const int bits = l->q_in.bits;
    const float *lut = y->logistic + ((size_t)1 << (bits - 1));   /* lut[q] for signed q */
    const int k = c % (spec->classes + 5);
    const size_t at = (size_t)c * plane;
    float *out = ctx->out + at;
    if (k == 2 || k == 3 || spec->new_coords) {   /* w, h (or all) stay raw */
        mdfi_fx_dequantize((const char *)ctx->in[0] + at * (size_t)(bits / 8), l->q_in, out,
                           plane);
    } else if (bits == 8) {
        const int8_t *q = (const int8_t *)ctx->in[0] + at;
        for (size_t i = 0; i < plane; ++i)
            out[i] = lut[q[i]];
    } else {
        const int16_t *q = (const int16_t *)ctx->in[0] + at;
        for (size_t i = 0; i < plane; ++i)
            out[i] = lut[q[i]];
    }
    if (k < 2)
        scale_add(out, plane, spec->scale_xy);
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, fixed_channel);
}

static void fixed_destroy(mdfi_layer *l)
{
    fx_yolo *y = l->priv;
    if (y)
        free(y->logistic);
    free(y);
}

const mdfi_layer_variant mdfi_yolo_float = {NULL, NULL, float_prepare, float_forward,
                                            float_destroy, NULL};
const mdfi_layer_variant mdfi_yolo_fixed = {fixed_bind, NULL, fixed_prepare, fixed_forward,
                                            fixed_destroy, NULL};
