/* YOLO box decoding and NMS with Darknet's semantics (get_network_boxes with
 * relative=1, do_nms_sort).  Pure functions over arrays: no network types. */
#ifndef MDFI_DETECT_DETECT_H
#define MDFI_DETECT_DETECT_H

#include "mdfi.h"

typedef struct {
    float x, y, w, h;     /* relative centre/size, letterbox-corrected */
    float objectness;
    float *prob;          /* [classes], owned by the caller's storage */
} mdfi_box;

/* One [yolo] layer's output, already passed through the layer's logistic on
 * entries 0,1,4..: CHW with n_mask*(5+classes) channels of lh x lw. */
typedef struct {
    const float *output;
    int lw, lh, classes;
    int n_mask;
    const int *mask;          /* [n_mask] anchor indices */
    const float *anchors;     /* [2*total] (w, h) pairs in pixels */
    int new_coords;           /* AlexeyAB's: w = 4 t^2 anchor instead of e^t anchor */
    int region;               /* [region]: every cell and anchor, anchor-major, w and h
                                 relative to the grid (get_region_detections) */
    int gaussian;             /* [Gaussian_yolo]: a sigma after each of x, y, w, h; class
                                 scores times 1 - their mean (get_gaussian_yolo_detections) */
    int detection, sqrt_wh;   /* [detection] (YOLOv1): get_detection_detections' layout and
                                 boxes (w, h squared with sqrt=1), every cell and box listed */
} mdfi_yolo_head;

/* Number of cells/anchors with objectness > thresh. */
int mdfi_yolo_count(const mdfi_yolo_head *head, float thresh);

/* Appends those boxes in Darknet's order (cells row-major, then anchors) to
 * boxes[], using probs (count*classes floats) for their class arrays.
 * Returns how many it wrote.  net_w/net_h: network input; im_w/im_h: the
 * original image (for the letterbox correction). */
int mdfi_yolo_boxes(const mdfi_yolo_head *head, int net_w, int net_h,
                    int im_w, int im_h, float thresh, mdfi_box *boxes,
                    float *probs);

/* do_nms_sort: boxes with objectness 0 move to the end; for each class a
 * stable sort by prob descending then IoU suppression.  scratch holds n boxes.
 * beta >= 0: AlexeyAB's DIoU suppression instead, IoU - (d^2/c^2)^beta (its
 * greedynms is beta 0.6, diounms beta_nms). */
void mdfi_nms_sort(mdfi_box *boxes, int n, int classes, float nms_thresh, float beta,
                   mdfi_box *scratch);

/* Pixel box as draw_detections computes it. */
void mdfi_box_pixels(const mdfi_box *b, int im_w, int im_h,
                     int *left, int *top, int *right, int *bottom);

#endif
