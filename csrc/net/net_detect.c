/* mdfi_net_detect: wires the [yolo] layers' outputs to detect/. */
#include <stdlib.h>

#include "net/net.h"
#include "layers/yolo.h"

static mdfi_yolo_head head_of(const mdfi_net *net, int i)
{
    const mdfi_layer *l = &net->layers[i];
    const mdfi_yolo_spec *y = l->spec;
    mdfi_yolo_head h = {net->out[i], l->out_w, l->out_h, y->classes, y->n_mask, y->mask,
                        y->anchors, y->new_coords, y->region, y->gaussian, y->detection,
                        y->sqrt_wh};
    return h;
}

mdfi_status mdfi_net_prepare_detect(mdfi_net *net)
{
    net->max_boxes = 0;
    net->classes = 0;
    for (int i = 0; i < net->n; ++i) {
        const mdfi_layer *l = &net->layers[i];
        if (!mdfi_layer_has_kind(l, MDFI_KIND_YOLO))
            continue;
        const mdfi_yolo_spec *y = l->spec;
        if (net->classes && net->classes != y->classes)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "layer %d [yolo]: classes=%d differs from "
                                 "an earlier [yolo] layer's %d", i, y->classes, net->classes);
        net->classes = y->classes;
        net->nms_beta = y->nms_beta;   /* AlexeyAB's detector: the last [yolo]'s kind */
        net->max_boxes += l->out_h * l->out_w * y->n_mask;
    }
    if (!net->max_boxes)
        return MDFI_OK;
    size_t nb = (size_t)net->max_boxes;
    net->boxes = malloc(nb * sizeof *net->boxes);
    net->box_scratch = malloc(nb * sizeof *net->box_scratch);
    net->probs = malloc(nb * (size_t)net->classes * sizeof *net->probs);
    if (!net->boxes || !net->box_scratch || !net->probs)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory for %d boxes", net->max_boxes);
    return MDFI_OK;
}

void mdfi_net_free_detect(mdfi_net *net)
{
    free(net->boxes);
    free(net->box_scratch);
    free(net->probs);
    free(net->dets);
    net->boxes = net->box_scratch = NULL;
    net->probs = NULL;
    net->dets = NULL;
    net->cap_dets = 0;
}

static mdfi_status push(mdfi_net *net, int *count, const mdfi_detection *d)
{
    if (*count == net->cap_dets) {
        int cap = net->cap_dets ? 2 * net->cap_dets : 64;
        mdfi_detection *nd = realloc(net->dets, (size_t)cap * sizeof *nd);
        if (!nd)
            return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory listing detections");
        net->dets = nd;
        net->cap_dets = cap;
    }
    net->dets[(*count)++] = *d;
    return MDFI_OK;
}

mdfi_status mdfi_net_detect(mdfi_net *net, int im_w, int im_h, float thresh, float nms,
                            const mdfi_detection **dets, int *count)
{
    if (!net || !dets || !count)
        return MDFI_ERR_ARG;
    *dets = NULL;
    *count = 0;
    if (!net->ran)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "run forward before detect");
    if (!net->max_boxes)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "this network has no [yolo] layer");
    if (im_w < 1 || im_h < 1 || !(thresh >= 0.f && thresh <= 1.f))
        return mdfi_net_fail(net, MDFI_ERR_ARG, "detect: bad image size %dx%d or threshold %g",
                             im_w, im_h, (double)thresh);
    int n = 0;
    for (int i = 0; i < net->n; ++i) {
        if (!mdfi_layer_has_kind(&net->layers[i], MDFI_KIND_YOLO))
            continue;
        mdfi_yolo_head h = head_of(net, i);
        n += mdfi_yolo_boxes(&h, net->w, net->h, im_w, im_h, thresh, net->boxes + n,
                             net->probs + (size_t)n * net->classes);
    }
    if (nms > 0)
        mdfi_nms_sort(net->boxes, n, net->classes, nms, net->nms_beta, net->box_scratch);
    for (int i = 0; i < n; ++i) {
        const mdfi_box *b = &net->boxes[i];
        for (int j = 0; j < net->classes; ++j) {
            if (!(b->prob[j] > thresh))
                continue;
            mdfi_detection d = {i, j, b->prob[j], b->objectness, b->x, b->y, b->w, b->h,
                                0, 0, 0, 0};
            mdfi_box_pixels(b, im_w, im_h, &d.left, &d.top, &d.right, &d.bottom);
            mdfi_status st = push(net, count, &d);
            if (st != MDFI_OK)
                return st;
        }
    }
    *dets = net->dets;
    return MDFI_OK;
}
