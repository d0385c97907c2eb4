/* Test driver for images, letterbox and YOLO decoding, run by tests/test_image.py.
 *   test_image read IN OUT.f32                 prints "w h c", writes CHW float32
 *   test_image letterbox IN NET_W NET_H OUT.f32
 *   test_image detect Y16.f32 Y23.f32 IM_W IM_H THRESH [NMS]
 *       yolov3-tiny heads (416x416 net, 80 classes); prints the box count
 *       before NMS, then one JSON line per (box, class) in Darknet's order.
 * Errors go to stderr with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdfi.h"
#include "detect/detect.h"

static int fail(const char *what, mdfi_status st, const char *msg)
{
    fprintf(stderr, "%s: %s: %s\n", what, mdfi_status_name(st), msg);
    return 1;
}

static int write_f32(const char *path, const float *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof *v, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

/* Reads exactly n floats, or returns NULL. */
static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    float *v = malloc(n * sizeof *v);
    int ok = f && v && fread(v, sizeof *v, n, f) == n && fgetc(f) == EOF;
    if (f)
        fclose(f);
    if (!ok) {
        fprintf(stderr, "%s: cannot read exactly %zu floats\n", path, n);
        free(v);
        return NULL;
    }
    return v;
}

static int cmd_read(char **argv)
{
    mdfi_image img;
    mdfi_errbuf err;
    mdfi_status st = mdfi_image_read(argv[0], &img, &err);
    if (st != MDFI_OK)
        return fail("read", st, err.msg);
    printf("%d %d %d\n", img.w, img.h, img.c);
    int rc = write_f32(argv[1], img.data, (size_t)img.w * img.h * img.c);
    mdfi_image_free(&img);
    return rc;
}

static int cmd_letterbox(char **argv)
{
    int net_w = atoi(argv[1]), net_h = atoi(argv[2]);
    mdfi_image img;
    mdfi_errbuf err;
    mdfi_status st = mdfi_image_read(argv[0], &img, &err);
    if (st != MDFI_OK)
        return fail("read", st, err.msg);
    /* Absurd sizes get a 1-float buffer: mdfi_letterbox must refuse them unwritten. */
    int sane = net_w > 0 && net_h > 0 && (long long)net_w * net_h <= (1L << 28);
    size_t n = sane ? 3 * (size_t)net_w * (size_t)net_h : 1;
    float *out = malloc(n * sizeof *out);
    if (!out) {
        mdfi_image_free(&img);
        return fail("letterbox", MDFI_ERR_NOMEM, "output");
    }
    st = mdfi_letterbox(&img, net_w, net_h, out, &err);
    int rc = st != MDFI_OK ? fail("letterbox", st, err.msg) : write_f32(argv[3], out, n);
    free(out);
    mdfi_image_free(&img);
    return rc;
}

static int cmd_detect(char **argv, int argc)
{
    static const float anchors[12] = {10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319};
    static const int mask16[3] = {3, 4, 5}, mask23[3] = {0, 1, 2};
    const int classes = 80, net = 416;
    int im_w = atoi(argv[2]), im_h = atoi(argv[3]);
    float thresh = (float)atof(argv[4]);
    float nms = argc > 5 ? (float)atof(argv[5]) : 0.45f;
    if (im_w <= 0 || im_h <= 0) {
        fprintf(stderr, "bad image size\n");
        return 1;
    }
    float *o16 = read_f32(argv[0], 255 * 13 * 13);
    float *o23 = read_f32(argv[1], 255 * 26 * 26);
    int rc = 1;
    mdfi_box *boxes = NULL, *scratch = NULL;
    float *probs = NULL;
    if (!o16 || !o23)
        goto done;
    mdfi_yolo_head heads[2] = {
        {o16, 13, 13, classes, 3, mask16, anchors, 0, 0, 0, 0, 0},
        {o23, 26, 26, classes, 3, mask23, anchors, 0, 0, 0, 0, 0},
    };
    int total = mdfi_yolo_count(&heads[0], thresh) + mdfi_yolo_count(&heads[1], thresh);
    size_t cap = total > 0 ? (size_t)total : 1;
    boxes = malloc(cap * sizeof *boxes);
    scratch = malloc(cap * sizeof *scratch);
    probs = malloc(cap * classes * sizeof *probs);
    if (!boxes || !scratch || !probs)
        goto done;
    int n = 0;
    for (int h = 0; h < 2; h++)
        n += mdfi_yolo_boxes(&heads[h], net, net, im_w, im_h, thresh, boxes + n,
                             probs + (size_t)n * classes);
    if (n != total) {
        fprintf(stderr, "count %d != boxes %d\n", total, n);
        goto done;
    }
    printf("{\"num_boxes_before_nms\": %d}\n", n);
    if (nms > 0)
        mdfi_nms_sort(boxes, n, classes, nms, -1, scratch);
    for (int i = 0; i < n; i++) {
        const mdfi_box *b = &boxes[i];
        int l, t, r, btm;
        mdfi_box_pixels(b, im_w, im_h, &l, &t, &r, &btm);
        for (int j = 0; j < classes; j++)
            if (b->prob[j] > thresh)
                printf("{\"det_index\": %d, \"class_id\": %d, \"prob\": %.9g, "
                       "\"objectness\": %.9g, \"box\": [%.9g, %.9g, %.9g, %.9g], "
                       "\"bbox\": [%d, %d, %d, %d]}\n", i, j, b->prob[j], b->objectness,
                       b->x, b->y, b->w, b->h, l, t, r, btm);
    }
    rc = 0;
done:
    free(o16);
    free(o23);
    free(boxes);
    free(scratch);
    free(probs);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "read") == 0)
        return cmd_read(argv + 2);
    if (argc >= 6 && strcmp(argv[1], "letterbox") == 0)
        return cmd_letterbox(argv + 2);
    if (argc >= 7 && strcmp(argv[1], "detect") == 0)
        return cmd_detect(argv + 2, argc - 2);
    fprintf(stderr, "usage: test_image read IN OUT.f32 | letterbox IN NET_W NET_H OUT.f32 |"
                    " detect Y16.f32 Y23.f32 IM_W IM_H THRESH [NMS]\n");
    return 2;
}
