/* [yolo] spec (l->spec of a layer of kind MDFI_KIND_YOLO), read by the
 * network to decode boxes after forward. */
#ifndef MDFI_LAYERS_YOLO_H
#define MDFI_LAYERS_YOLO_H

#include "layers/layer.h"


typedef struct {
    int classes, n_mask, total;
    /* AlexeyAB's inference keys: x,y scaled by scale_x_y about 0.5; new_coords=1
     * takes x,y,w,h,obj,classes as the conv's logistic left them (no logistic
     * here) and decodes w,h as 4 t^2 anchor; nms_beta >= 0: its DIoU NMS */
    float scale_xy, nms_beta;
    int new_coords;
    int region, softmax;   /* [region] (layers/region.c): YOLOv2's decoding */
    int gaussian;          /* [Gaussian_yolo]: per anchor x, sigma x, y, sigma y, w, sigma w,
                              h, sigma h, objectness, classes (9 + classes channels) */
    int detection, sqrt_wh;   /* [detection] (YOLOv1, layers/region.c): Darknet's flat
                              output, classes of every cell, then the num confidences of
                              every cell, then their boxes; sqrt=1: w, h squared */
    int mask[MDFI_LIMIT_ANCHORS];
    float anchors[2 * MDFI_LIMIT_ANCHORS];
} mdfi_yolo_spec;


/* What [yolo] and [region] parse alike: classes, num and anchors (defaults
 * 0.5; scale_x_y 1 and plain NMS), then the input channels and the shape. */
mdfi_status mdfi_yolo_parse_anchors(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                    mdfi_yolo_spec *y, mdfi_errbuf *err);
mdfi_status mdfi_yolo_parse_shape(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  const mdfi_yolo_spec *y, mdfi_errbuf *err);

#endif
