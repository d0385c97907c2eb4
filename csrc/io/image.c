/* Image loading: sniff the magic bytes (PNM or JPEG), decode to 8-bit
 * pixels, convert to Darknet's float CHW image with 3 channels forced (as
 * stb_image with req_comp=3 in load_image_color). */
#include "io/image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef struct {
    const char *decoder;   /* what callers are told decoded it; NULL: the decoder only
                            * refuses these (with a precise message) */
    mdfi_image_decoder decode;
    mdfi_image_mem_decoder decode_mem;   /* NULL: decode through fmemopen */
} image_format;

/* JPEG (FF D8 FF), PNM P5/P6, and the other "P1".."P7", which go to the PNM
 * decoder too so that unsupported variants get a precise message.  (Three
 * rows tested in code, not a row per magic: relocated tables cost the program
 * room, docs/architecture.md.) */
static const image_format formats[] = {
    {"mdfi-jpeg", mdfi_jpeg_decode, mdfi_jpeg_decode_memory},
    {"mdfi-pnm", mdfi_pnm_decode, NULL},
    {NULL, mdfi_pnm_decode, NULL},
};
#define MAGIC_MAX 4
#define UNKNOWN_FORMAT "not a PNM file (P5/P6) or a JPEG file, the formats MDFI decodes"

static const image_format *sniff(const unsigned char *head, size_t n)
{
    if (n >= 3 && !memcmp(head, "\xFF\xD8\xFF", 3))
        return &formats[0];
    if (n >= 2 && head[0] == 'P' && head[1] >= '1' && head[1] <= '7')
        return &formats[head[1] == '5' || head[1] == '6' ? 1 : 2];
    return NULL;
}

const char *mdfi_image_sniff(const void *head, size_t n)
{
    const image_format *fmt = head ? sniff(head, n) : NULL;
    return fmt ? fmt->decoder : NULL;
}

/* Converts decoded pixels; from_bytes does not know the path, so its
 * messages get it here. */
static mdfi_status finish(const char *path, unsigned char *pixels, int w, int h, int c,
                          mdfi_image *img, mdfi_errbuf *err)
{
    mdfi_status st = mdfi_image_from_bytes(pixels, w, h, c, img, err);
    free(pixels);
    if (st != MDFI_OK && err) {
        mdfi_errbuf inner = *err;
        return mdfi_fail(err, st, "%s: %.400s", path, inner.msg);
    }
    return st;
}

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
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: empty file, " UNKNOWN_FORMAT, path);
    }
    const image_format *fmt = sniff(magic, got);
    if (!fmt) {
        fclose(f);
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: " UNKNOWN_FORMAT, path);
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
    return finish(path, pixels, w, h, c, img, err);
}

mdfi_status mdfi_image_decode_pixels(const void *data, size_t size, const char *name,
                                     unsigned char **pixels, int *w, int *h, int *c,
                                     mdfi_errbuf *err)
{
    if (pixels)
        *pixels = NULL;
    if (!name)
        name = "<memory>";
    if (!data || !pixels || !w || !h || !c)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_decode: NULL argument");
    if (size == 0)
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: empty data, " UNKNOWN_FORMAT, name);
    const image_format *fmt = sniff(data, size);
    if (!fmt)
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: " UNKNOWN_FORMAT, name);
    if (fmt->decode_mem)
        return fmt->decode_mem(data, size, name, pixels, w, h, c, err);
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: cannot open the bytes as a stream: %s",
                         name, strerror(errno));
    mdfi_status st = fmt->decode(f, name, pixels, w, h, c, err);
    fclose(f);
    return st;
}

mdfi_status mdfi_image_decode(const void *data, size_t size, const char *name,
                              mdfi_image *img, mdfi_errbuf *err)
{
    if (img)
        memset(img, 0, sizeof *img);
    if (!img)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_decode: NULL image");
    unsigned char *pixels = NULL;
    int w = 0, h = 0, c = 0;
    mdfi_status st = mdfi_image_decode_pixels(data, size, name, &pixels, &w, &h, &c, err);
    if (st != MDFI_OK)
        return st;
    return finish(name ? name : "<memory>", pixels, w, h, c, img, err);
}

void mdfi_pixels_free(unsigned char *pixels)
{
    free(pixels);
}

mdfi_status mdfi_image_from_bytes(const unsigned char *pixels, int w, int h, int c,
                                  mdfi_image *img, mdfi_errbuf *err)
{
    if (img)
        memset(img, 0, sizeof *img);
    return mdfi_image_fill(pixels, w, h, c, img, err);
}

void mdfi_unit_floats(float lut[256])
{
    for (int v = 0; v < 256; v++)   /* Darknet: the division in double */
        lut[v] = (float)(v / 255.0);
}

mdfi_status mdfi_image_fill(const unsigned char *pixels, int w, int h, int c, mdfi_image *img,
                            mdfi_errbuf *err)
{
    if (!pixels || !img)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_from_bytes: NULL %s",
                         pixels ? "image" : "pixels");
    if (c != 1 && c != 3)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_image_from_bytes: %d channels "
                         "(only 1 or 3)", c);
    if (w <= 0 || h <= 0 || (long long)w * h > MDFI_LIMIT_IMAGE_PIXELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "image size %dx%d is empty or too large "
                         "(more than 2^28 pixels)", w, h);
    size_t plane = (size_t)w * (size_t)h;
    float *data = img->data;
    if (!data || img->w != w || img->h != h) {
        mdfi_image_free(img);
        if (!(data = malloc(3 * plane * sizeof *data)))
            return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    }
    float lut[256];
    mdfi_unit_floats(lut);
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
