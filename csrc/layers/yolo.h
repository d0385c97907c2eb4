/* [yolo] spec (l->spec of a layer of kind MDFI_KIND_YOLO), read by the
 * network to decode boxes after forward. */
#ifndef MDFI_LAYERS_YOLO_H
#define MDFI_LAYERS_YOLO_H

#include "layers/layer.h"


typedef struct {
    int classes, n_mask, total;
    int mask[MDFI_LIMIT_ANCHORS];
    float anchors[2 * MDFI_LIMIT_ANCHORS];
} mdfi_yolo_spec;


#endif
