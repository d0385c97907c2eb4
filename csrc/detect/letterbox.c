/* Darknet's letterbox_image (resize_image + embed_image), bit-exact: every
 * step is the same float32 operation in Darknet's order, and nothing may be
 * fused into an FMA (Darknet's x86-64 build has none), hence the pragmas:
 * GCC ignores STDC FP_CONTRACT but honours its own optimize pragma even
 * against -ffp-contract=fast. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <stdlib.h>

#include "base/error.h"
#include "base/limits.h"

/* Horizontal pass for one source row: new_w output columns. */
static void resize_row(const float *src, int im_w, int new_w, float w_scale, float *dst)
{
    for (int c = 0; c < new_w; c++) {
        if (c == new_w - 1 || im_w == 1) {
            dst[c] = src[im_w - 1];
            continue;
        }
        float sx = (float)c * w_scale;
        int ix = (int)sx;
        float dx = sx - (float)ix;
        /* sx < im_w-1 always; the clamps only keep bad rounding in bounds. */
        int i0 = ix < im_w - 1 ? ix : im_w - 1;
        int i1 = ix + 1 < im_w ? ix + 1 : im_w - 1;
        float a = (1.0f - dx) * src[i0];
        float b = dx * src[i1];
        dst[c] = a + b;
    }
}

/* Two cached rows of the horizontal pass; Darknet's vertical pass reads rows
 * iy and iy+1 with iy non-decreasing, so no full intermediate image. */
typedef struct {
    float *buf[2];
    int idx[2];
} row_cache;

static const float *cached_row(row_cache *rc, int slot_pref, int row, const float *plane,
                               int im_w, int new_w, float w_scale)
{
    for (int s = 0; s < 2; s++)
        if (rc->idx[s] == row)
            return rc->buf[s];
    /* Evict the slot the caller does not need right now. */
    int s = slot_pref;
    resize_row(plane + (size_t)row * (size_t)im_w, im_w, new_w, w_scale, rc->buf[s]);
    rc->idx[s] = row;
    return rc->buf[s];
}

mdfi_status mdfi_letterbox(const mdfi_image *img, int net_w, int net_h, float *out,
                           mdfi_errbuf *err)
{
    if (!img || !img->data || !out)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_letterbox: NULL %s",
                         !img ? "image" : !img->data ? "image data" : "output");
    if (img->c != 3)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_letterbox: image has %d channels, "
                         "need 3", img->c);
    int im_w = img->w, im_h = img->h;
    if (im_w <= 0 || im_h <= 0 || (long long)im_w * im_h > MDFI_LIMIT_IMAGE_PIXELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "mdfi_letterbox: bad image size %dx%d",
                         im_w, im_h);
    if (net_w <= 0 || net_h <= 0 || (long long)net_w * net_h > MDFI_LIMIT_IMAGE_PIXELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "mdfi_letterbox: bad network size %dx%d",
                         net_w, net_h);

    int new_w, new_h;
    if ((float)net_w / (float)im_w < (float)net_h / (float)im_h) {
        new_w = net_w;
        new_h = (int)((long long)im_h * net_w / im_w);
    } else {
        new_h = net_h;
        new_w = (int)((long long)im_w * net_h / im_h);
    }

    size_t plane = (size_t)net_w * (size_t)net_h;
    for (size_t i = 0; i < 3 * plane; i++)
        out[i] = 0.5f;
    if (new_w <= 0 || new_h <= 0)   /* Darknet embeds an empty image */
        return MDFI_OK;

    row_cache rc;
    rc.buf[0] = malloc(2 * (size_t)new_w * sizeof(float));
    if (!rc.buf[0])
        return mdfi_fail(err, MDFI_ERR_NOMEM, "mdfi_letterbox: out of memory for %d columns",
                         new_w);
    rc.buf[1] = rc.buf[0] + new_w;

    float w_scale = (float)(im_w - 1) / (float)(new_w - 1);
    /* new_h == 1 is 0/0 or x/0 in Darknet (undefined (int)NaN); use row 0. */
    float h_scale = new_h > 1 ? (float)(im_h - 1) / (float)(new_h - 1) : 0.0f;
    /* embed_image at ((net-new)/2); set_pixel drops what falls outside. */
    int off_x = (net_w - new_w) / 2, off_y = (net_h - new_h) / 2;
    int c0 = off_x < 0 ? -off_x : 0;
    int c1 = new_w < net_w - off_x ? new_w : net_w - off_x;
    size_t im_plane = (size_t)im_w * (size_t)im_h;

    for (int k = 0; k < 3; k++) {
        const float *src = img->data + (size_t)k * im_plane;
        float *dst = out + (size_t)k * plane;
        rc.idx[0] = rc.idx[1] = -1;
        for (int r = 0; r < new_h; r++) {
            int y = off_y + r;
            if (y < 0 || y >= net_h)
                continue;
            float sy = (float)r * h_scale;
            int iy = (int)sy;
            float dy = sy - (float)iy;
            if (iy > im_h - 1)   /* defensive; sy <= im_h-1 up to rounding */
                iy = im_h - 1;
            int add = r != new_h - 1 && im_h != 1 && iy + 1 < im_h;
            const float *p0 = cached_row(&rc, rc.idx[1] == iy + 1 ? 0 : 1, iy, src, im_w,
                                         new_w, w_scale);
            const float *p1 = add ? cached_row(&rc, p0 == rc.buf[0] ? 1 : 0, iy + 1, src,
                                               im_w, new_w, w_scale) : NULL;
            float *row = dst + (size_t)y * (size_t)net_w;
            float wy = 1.0f - dy;
            for (int c = c0; c < c1; c++)
                row[off_x + c] = wy * p0[c];
            if (!add)
                continue;
            for (int c = c0; c < c1; c++) {
                float t = dy * p1[c];
                row[off_x + c] = row[off_x + c] + t;
            }
        }
    }
    free(rc.buf[0]);
    return MDFI_OK;
}
