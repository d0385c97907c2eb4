/* Image decoders behind mdfi_image_read.  Each decoder turns an open file
 * into 8-bit interleaved (HWC) pixels; image.c sniffs the magic bytes, picks
 * the decoder and converts to Darknet's float CHW layout. */
#ifndef MDFI_IO_IMAGE_H
#define MDFI_IO_IMAGE_H

#include <stdio.h>
#include "mdfi.h"
#include "base/limits.h"


/* f is positioned at the first byte; path only names the file in messages.
 * On success *pixels (malloc'd, w*h*c bytes) belongs to the caller. */
typedef mdfi_status (*mdfi_image_decoder)(FILE *f, const char *path,
                                          unsigned char **pixels, int *w, int *h,
                                          int *c, mdfi_errbuf *err);

/* The same from bytes in memory; name only labels messages. */
typedef mdfi_status (*mdfi_image_mem_decoder)(const unsigned char *data, size_t size,
                                              const char *name, unsigned char **pixels,
                                              int *w, int *h, int *c, mdfi_errbuf *err);

/* As mdfi_image_from_bytes, into an image that may hold an earlier one
 * (or be zeroed): its buffer is kept when the size is the same, as for the
 * frames of a stream. */
mdfi_status mdfi_image_fill(const unsigned char *pixels, int w, int h, int c, mdfi_image *img,
                            mdfi_errbuf *err);
/* lut[v] = the float a byte v loads as, Darknet's (float)(v / 255.0): the
 * image loaders' rule, and 8-bit network input's (mdfi_fx_quantize_bytes). */
void mdfi_unit_floats(float lut[256]);

/* Binary PNM, P5 (grey) or P6 (RGB), maxval 255. */
mdfi_status mdfi_pnm_decode(FILE *f, const char *path, unsigned char **pixels,
                            int *w, int *h, int *c, mdfi_errbuf *err);

/* JPEG (baseline, extended sequential or progressive Huffman, 8-bit, grey,
 * YCbCr or RGB) with Darknet's stb_image numerics: io/jpeg*.c, docs/jpeg.md. */
mdfi_status mdfi_jpeg_decode(FILE *f, const char *path, unsigned char **pixels,
                             int *w, int *h, int *c, mdfi_errbuf *err);
mdfi_status mdfi_jpeg_decode_memory(const unsigned char *data, size_t size, const char *name,
                                    unsigned char **pixels, int *w, int *h, int *c,
                                    mdfi_errbuf *err);

#endif
