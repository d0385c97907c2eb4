/* Darknet's get_yolo_detections + correct_yolo_boxes (relative=1), with the
 * same mix of float32 and double arithmetic so the boxes are bit-exact. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "detect/detect.h"

#include <math.h>
#include <stddef.h>

static int head_ok(const mdfi_yolo_head *hd)
{
    return hd && hd->output && hd->lw > 0 && hd->lh > 0 && hd->classes >= 0 &&
           hd->n_mask >= 0 && (hd->n_mask == 0 || (hd->mask && hd->anchors));
}

int mdfi_yolo_count(const mdfi_yolo_head *head, float thresh)
{
    if (!head_ok(head))
        return 0;
    size_t plane = (size_t)head->lw * (size_t)head->lh, g = (size_t)head->gaussian;
    size_t stride = (5 + 4 * g + head->classes) * plane;   /* one anchor's channels */
    if (head->region || head->detection)   /* these list every cell and anchor */
        return (int)plane * head->n_mask;
    int count = 0;
    for (int n = 0; n < head->n_mask; n++) {
        const float *obj = head->output + (size_t)n * stride + (4 + 4 * g) * plane;
        for (size_t i = 0; i < plane; i++)
            if (obj[i] > thresh)
                count++;
    }
    return count;
}

/* Darknet's letterbox size, as in letterbox_image (correct_yolo_boxes uses
 * the same test). */
static void letterbox_size(int net_w, int net_h, int im_w, int im_h, int *new_w, int *new_h)
{
    if ((float)net_w / (float)im_w < (float)net_h / (float)im_h) {
        *new_w = net_w;
        *new_h = (int)((long long)im_h * net_w / im_w);
    } else {
        *new_h = net_h;
        *new_w = (int)((long long)im_w * net_h / im_h);
    }
}

int mdfi_yolo_boxes(const mdfi_yolo_head *head, int net_w, int net_h,
                    int im_w, int im_h, float thresh, mdfi_box *boxes, float *probs)
{
    /* Sizes are the caller's to validate; refusing here avoids integer
     * division by zero below. */
    if (!head_ok(head) || !boxes || (head->classes > 0 && !probs) || net_w <= 0 ||
        net_h <= 0 || im_w <= 0 || im_h <= 0)
        return 0;
    int lw = head->lw, lh = head->lh, classes = head->classes;
    /* [Gaussian_yolo]: x, y, w, h at entries 0, 2, 4, 6, objectness at 8 */
    size_t plane = (size_t)lw * (size_t)lh, g = (size_t)head->gaussian, at = plane + g * plane;
    size_t stride = (5 + 4 * g + (size_t)classes) * plane;
    int new_w, new_h;
    letterbox_size(net_w, net_h, im_w, im_h, &new_w, &new_h);
    /* correct_yolo_boxes: the offset in double, the scale in float. */
    double off_x = (double)(net_w - new_w) / 2. / (double)net_w;
    double off_y = (double)(net_h - new_h) / 2. / (double)net_h;
    float scale_x = (float)new_w / (float)net_w, scale_y = (float)new_h / (float)net_h;
    float grow_w = (float)net_w / (float)new_w, grow_h = (float)net_h / (float)new_h;

    int count = 0;
    const size_t boxes_n = plane * (size_t)head->n_mask;
    for (size_t t = 0; t < boxes_n; t++) {
        /* [yolo]: cells, then anchors; [region]: anchor-major, every box */
        size_t i = head->region ? t % plane : t / (size_t)head->n_mask;
        int n = head->region ? (int)(t / plane) : (int)(t % (size_t)head->n_mask);
        int row = (int)(i / (size_t)lw), col = (int)(i % (size_t)lw);
        const float *e = head->output + (size_t)n * stride + i;   /* entry j at e[j*plane] */
        const float *cls = e + (5 + 4 * g) * plane;
        size_t step = at, cstep = plane;
        float objectness = e[4 * at];
        if (head->detection) {   /* classes of each cell; each box's confidence; boxes */
            cls = head->output + i * (size_t)classes;
            objectness = head->output[plane * (size_t)classes + t];
            e = head->output + plane * (size_t)(classes + head->n_mask) + 4 * t;
            step = cstep = 1;
        } else if (!(objectness > thresh)) {
            if (!head->region)
                continue;
            objectness = 0;   /* kept, with no class, as Darknet keeps it */
        }
        int m = head->mask[n];
        mdfi_box *b = &boxes[count];
        /* get_yolo_box: x,y in float; w,h through double exp(). */
        b->x = ((float)col + e[0]) / (float)lw;
        b->y = ((float)row + e[step]) / (float)lh;
        if (head->detection) {   /* Darknet's pow(t, 2) in double is t*t rounded once */
            b->w = head->sqrt_wh ? e[2] * e[2] : e[2];
            b->h = head->sqrt_wh ? e[3] * e[3] : e[3];
        } else if (head->new_coords) {   /* AlexeyAB's get_yolo_box, in float */
            b->w = e[2 * plane] * e[2 * plane] * 4 * head->anchors[2 * m] / (float)net_w;
            b->h = e[3 * plane] * e[3 * plane] * 4 * head->anchors[2 * m + 1] /
                   (float)net_h;
        } else {   /* get_yolo_box over the input size, get_region_box the grid */
            double gw = head->region ? lw : net_w, gh = head->region ? lh : net_h;
            b->w = (float)(exp((double)e[2 * at]) * (double)head->anchors[2 * m] / gw);
            b->h = (float)(exp((double)e[3 * at]) * (double)head->anchors[2 * m + 1] / gh);
        }
        b->x = (float)(((double)b->x - off_x) / (double)scale_x);
        b->y = (float)(((double)b->y - off_y) / (double)scale_y);
        b->w = b->w * grow_w;
        b->h = b->h * grow_h;
        b->objectness = objectness;
        b->prob = probs + (size_t)count * (size_t)classes;
        /* Gaussian: times 1 - the sigmas' mean, in double as AlexeyAB (exact for 1) */
        float uc = g ? (float)((e[plane] + e[3 * plane] + e[5 * plane] + e[7 * plane]) / 4.0) : 0;
        for (int j = 0; j < classes; j++) {
            float p = (float)((double)(objectness * cls[(size_t)j * cstep]) *
                              (1.0 - uc));
            b->prob[j] = p > thresh ? p : 0.0f;
        }
        count++;
    }
    return count;
}
