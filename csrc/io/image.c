/* Image loading: sniff the magic bytes, decode to 8-bit pixels, convert to
 * Darknet's float CHW image with 3 channels forced (as stb_image with
 * req_comp=3 in load_image_color). */
#include "io/image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    const char *magic;     /* leading bytes */
    size_t len;
    mdfi_image_decoder decode;
} image_format;

/* Every "P1".."P7" goes to the PNM decoder so unsupported variants get a
 * precise message.  New formats (JPEG: FF D8 FF) join this table. */
static const image_format formats[] = {
    {"P1", 2, mdfi_pnm_decode}, {"P2", 2, mdfi_pnm_decode}, {"P3", 2, mdfi_pnm_decode},
    {"P4", 2, mdfi_pnm_decode}, {"P5", 2, mdfi_pnm_decode}, {"P6", 2, mdfi_pnm_decode},
    {"P7", 2, mdfi_pnm_decode},
};
#define MAGIC_MAX 4

mdfi_status mdfi_image_read(const char *path, mdfi_image *img, mdfi_errbuf *err)
{
    if (img)
        memset(img, 0, sizeof *img);
    if (!path || !img)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_read: NULL %s", path ? "image" : "path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    unsigned char magic[MAGIC_MAX];
    size_t got = fread(magic, 1, sizeof magic, f);
    mdfi_status st;
    if (ferror(f)) {   /* e.g. a directory: fopen succeeds, reading fails */
        st = mdfi_fail(err, MDFI_ERR_IO, "%s: read error: %s", path, strerror(errno));
        fclose(f);
        return st;
    }
    if (got == 0) {
        fclose(f);
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: empty file, not a PNM file (P5/P6)", path);
    }
    const image_format *fmt = NULL;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0] && !fmt; i++)
        if (got >= formats[i].len && memcmp(magic, formats[i].magic, formats[i].len) == 0)
            fmt = &formats[i];
    if (!fmt) {
        fclose(f);
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: not a PNM file (P5/P6)", path);
    }
    if (fseek(f, 0, SEEK_SET) != 0) {
        st = mdfi_fail(err, MDFI_ERR_IO, "%s: cannot seek back after reading the magic "
                       "bytes: %s", path, strerror(errno));
        fclose(f);
        return st;
    }

    unsigned char *pixels = NULL;
    int w = 0, h = 0, c = 0;
    st = fmt->decode(f, path, &pixels, &w, &h, &c, err);
    fclose(f);
    if (st != MDFI_OK)
        return st;
    st = mdfi_image_from_bytes(pixels, w, h, c, img, err);
    free(pixels);
    if (st != MDFI_OK && err) {   /* from_bytes does not know the path */
        mdfi_errbuf inner = *err;
        return mdfi_fail(err, st, "%s: %.400s", path, inner.msg);
    }
    if (st != MDFI_OK)
        return st;
    return MDFI_OK;
}

mdfi_status mdfi_image_from_bytes(const unsigned char *pixels, int w, int h, int c,
                                  mdfi_image *img, mdfi_errbuf *err)
{
    if (img)
        memset(img, 0, sizeof *img);
    if (!pixels || !img)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_from_bytes: NULL %s",
                         pixels ? "image" : "pixels");
    if (c != 1 && c != 3)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_from_bytes: %d channels "
                         "(only 1 or 3)", c);
    if (w <= 0 || h <= 0 || (long long)w * h > MDFI_IMAGE_MAX_PIXELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "image size %dx%d is empty or too large "
                         "(more than 2^28 pixels)", w, h);
    size_t plane = (size_t)w * (size_t)h;
    float *data = malloc(3 * plane * sizeof *data);
    if (!data)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    /* Darknet: (float)(byte / 255.0), the division in double. */
    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)(v / 255.0);
    for (int k = 0; k < 3; k++) {
        float *dst = data + (size_t)k * plane;
        const unsigned char *src = pixels + (c == 3 ? k : 0);
        for (size_t i = 0; i < plane; i++)
            dst[i] = lut[src[i * (size_t)c]];
    }
    img->w = w;
    img->h = h;
    img->c = 3;
    img->data = data;
    return MDFI_OK;
}

void mdfi_image_free(mdfi_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}
