/* Darknet's do_nms_sort and draw_detections box arithmetic.  The sort is a
 * stable top-down merge sort splitting at n/2 - the same order glibc 2.36's
 * qsort produces - with Darknet's comparator, so ties come out as in Darknet. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "detect/detect.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* nms_comparator(a, b) > 0, i.e. b must come before a. */
static int after(const mdfi_box *a, const mdfi_box *b, int k)
{
    float diff = a->prob[k] - b->prob[k];
    return diff < 0;
}

static void merge_sort(mdfi_box *b, int n, int k, mdfi_box *tmp)
{
    if (n <= 1)
        return;
    int n1 = n / 2, n2 = n - n1;
    mdfi_box *b1 = b, *b2 = b + n1, *t = tmp;
    merge_sort(b1, n1, k, tmp);
    merge_sort(b2, n2, k, tmp);
    while (n1 > 0 && n2 > 0) {
        if (!after(b1, b2, k)) {
            *t++ = *b1++;
            n1--;
        } else {
            *t++ = *b2++;
            n2--;
        }
    }
    if (n1 > 0)
        memcpy(t, b1, (size_t)n1 * sizeof *t);
    /* The n2 left-overs already sit at the end of b. */
    memcpy(b, tmp, (size_t)(n - n2) * sizeof *b);
}

static float overlap(float x1, float w1, float x2, float w2)
{
    float l1 = x1 - w1 / 2.0f;
    float l2 = x2 - w2 / 2.0f;
    float left = l1 > l2 ? l1 : l2;
    float r1 = x1 + w1 / 2.0f;
    float r2 = x2 + w2 / 2.0f;
    float right = r1 < r2 ? r1 : r2;
    return right - left;
}

static float intersection(const mdfi_box *a, const mdfi_box *b)
{
    float w = overlap(a->x, a->w, b->x, b->w);
    float h = overlap(a->y, a->h, b->y, b->h);
    if (w < 0 || h < 0)
        return 0;
    return w * h;
}

static float iou(const mdfi_box *a, const mdfi_box *b)
{
    float i = intersection(a, b);
    float area_a = a->w * a->h;
    float area_b = b->w * b->h;
    float u = area_a + area_b;
    u = u - i;
    return i / u;   /* IEEE: 0/0 is NaN, which suppresses nothing, as in Darknet */
}

/* AlexeyAB's box_diou / box_diounms: IoU less (centre distance^2 over the
 * enclosing box's diagonal^2)^beta, the power in double. */
static float diou(const mdfi_box *a, const mdfi_box *b, float beta)
{
    float top = fminf(a->y - a->h / 2, b->y - b->h / 2);
    float bot = fmaxf(a->y + a->h / 2, b->y + b->h / 2);
    float left = fminf(a->x - a->w / 2, b->x - b->w / 2);
    float right = fmaxf(a->x + a->w / 2, b->x + b->w / 2);
    float w = right - left, h = bot - top;
    float c = w * w + h * h;
    float v = iou(a, b);
    if (c == 0)
        return v;
    float d = (a->x - b->x) * (a->x - b->x) + (a->y - b->y) * (a->y - b->y);
    return v - (float)pow(d / c, beta);
}

void mdfi_nms_sort(mdfi_box *boxes, int n, int classes, float nms_thresh, float beta,
                   mdfi_box *scratch)
{
    if (!boxes || n <= 0 || !scratch)
        return;
    /* Darknet swaps each zero-objectness box with the last live one and
     * re-examines position i, so the survivors' order changes too. */
    int k = n - 1;
    for (int i = 0; i <= k; i++) {
        if (boxes[i].objectness == 0) {
            mdfi_box swap = boxes[i];
            boxes[i] = boxes[k];
            boxes[k] = swap;
            k--;
            i--;
        }
    }
    int total = k + 1;
    for (int cls = 0; cls < classes; cls++) {
        merge_sort(boxes, total, cls, scratch);
        for (int i = 0; i < total; i++) {
            if (boxes[i].prob[cls] == 0)
                continue;
            for (int j = i + 1; j < total; j++)
                if ((beta < 0 ? iou(&boxes[i], &boxes[j]) : diou(&boxes[i], &boxes[j], beta)) >
                    nms_thresh)
                    boxes[j].prob[cls] = 0;
        }
    }
}

/* (int) of a double, saturating instead of undefined behaviour; NaN -> 0. */
static int to_int(double v)
{
    if (!(v == v))
        return 0;
    if (v >= (double)INT_MAX)
        return INT_MAX;
    if (v <= (double)INT_MIN)
        return INT_MIN;
    return (int)v;
}

static int clamp(int v, int hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

void mdfi_box_pixels(const mdfi_box *b, int im_w, int im_h,
                     int *left, int *top, int *right, int *bottom)
{
    /* draw_detections: b.w/2. promotes to double; truncation toward zero. */
    double hw = (double)b->w / 2., hh = (double)b->h / 2.;
    *left = clamp(to_int(((double)b->x - hw) * im_w), im_w - 1);
    *right = clamp(to_int(((double)b->x + hw) * im_w), im_w - 1);
    *top = clamp(to_int(((double)b->y - hh) * im_h), im_h - 1);
    *bottom = clamp(to_int(((double)b->y + hh) * im_h), im_h - 1);
}
