/* [yolo] spec, read by the net to decode boxes after forward. */
#ifndef MDFI_LAYERS_YOLO_H
#define MDFI_LAYERS_YOLO_H

#include "layers/layer.h"

#define MDFI_YOLO_MAX_ANCHORS 64

typedef struct {
    int classes, n_mask, total;
    int mask[MDFI_YOLO_MAX_ANCHORS];
    float anchors[2 * MDFI_YOLO_MAX_ANCHORS];
} mdfi_yolo_spec;

extern const mdfi_layer_ops mdfi_yolo_ops;
/* A [yolo] layer in either form: float, or the fixed-point head that
 * dequantizes its input (layers/fixed.h). */
int mdfi_layer_is_yolo(const mdfi_layer *l);

#endif
