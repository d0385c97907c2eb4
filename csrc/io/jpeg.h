/* JPEG decoder internals (ITU T.81): baseline and extended sequential
 * Huffman, progressive Huffman, 8-bit, 1 or 3 components.  Numerics are
 * chosen to give the same bytes as stb_image 2.19, which Darknet uses; see
 * docs/jpeg.md.  Files, one concept each:
 *   jpeg_markers.c      segments (SOI, APPn, DQT, DHT, SOF, DRI, SOS, EOI), entry points
 *   jpeg_huffman.c      Huffman tables and sequential block decoding
 *   jpeg_progressive.c  progressive DC/AC first and refinement passes
 *   jpeg_scan.c         MCU order, restart intervals, end-of-data checks
 *   jpeg_idct.c         integer IDCT
 *   jpeg_color.c        chroma upsampling and YCbCr -> RGB */
#ifndef MDFI_IO_JPEG_H
#define MDFI_IO_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "mdfi.h"
#include "base/limits.h"

#define JPEG_FAST_BITS 9            /* Huffman codes up to this long: one table look-up */

/* A Huffman table, canonical codes (T.81 Annex C). */
typedef struct {
    uint16_t fast[1 << JPEG_FAST_BITS];   /* (length << 8) | symbol; 0: longer code */
    int16_t fast_val[1 << JPEG_FAST_BITS];  /* AC code + value bits together: the value, */
    uint8_t fast_rl[1 << JPEG_FAST_BITS];   /* (run << 4) | bits used; 0: not in one look-up */
    uint32_t end16[18];     /* end of the codes of length L, left-aligned to 16 bits */
    int32_t delta[17];      /* symbol index = (code of length L) + delta[L] */
    uint8_t symbols[256];
    int defined;
} jpeg_huff;

typedef struct {
    int id, h, v, tq;       /* frame: identifier, sampling factors, quantisation table */
    int td, ta;             /* current scan: DC and AC tables */
    int w, hgt;             /* samples: ceil(X*h/hmax) x ceil(Y*v/vmax) */
    int bw, bh;             /* blocks that hold samples: ceil(w/8) x ceil(hgt/8) */
    int stride;             /* plane width: mcux*h*8 (blocks per plane row: stride/8) */
    int dc_pred;
    int coded;              /* appears in at least one scan */
    unsigned char *plane;   /* stride x mcuy*v*8 samples */
    int16_t *coef;          /* progressive: 64 per block, (stride/8) x (mcuy*v) blocks */
} jpeg_comp;

/* Entropy-coded bits.  acc holds nbits bits MSB first; past a marker or the
 * end of the data zero bits are appended and counted in fake, so consuming
 * more than nbits - fake bits means the data ran out. */
typedef struct {
    const unsigned char *p, *end;
    uint64_t acc;
    int nbits, fake;
    int marker;             /* marker byte where the data stopped (p is at its FF), or 0 */
} jpeg_bits;

typedef struct {
    const char *name;       /* for messages */
    mdfi_errbuf *err;
    long max_pixels;
    const unsigned char *data, *end, *pos;
    /* frame */
    int sof;                /* 0: none yet; else 0xC0 / 0xC1 / 0xC2 */
    int progressive;
    int x, y, ncomp;
    jpeg_comp comp[4];
    int hmax, vmax, mcux, mcuy;
    uint16_t quant[4][64];  /* in zig-zag order */
    int quant_defined[4];
    jpeg_huff dc[4], ac[4];
    int restart;            /* DRI interval in MCUs, 0: none */
    int jfif, adobe, adobe_transform;
    /* scan */
    int scans;
    int ns, scomp[4];       /* components of the scan (indices into comp) */
    int ss, se, ah, al;
    int eobrun;
    jpeg_bits bits;
} jpeg_dec;

extern const uint8_t mdfi_jpeg_zigzag[64 + 16];   /* zig-zag index -> natural index */

/* jpeg_markers.c */
mdfi_status mdfi_jpeg_fail(jpeg_dec *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Decodes a whole file in memory to 8-bit pixels (HWC, c = 1 or 3). */
mdfi_status mdfi_jpeg_decode_mem(const unsigned char *data, size_t size, const char *name,
                                 long max_pixels, unsigned char **pixels, int *w, int *h,
                                 int *c, mdfi_errbuf *err);

/* jpeg_huffman.c */
mdfi_status mdfi_jpeg_build_huff(jpeg_dec *d, jpeg_huff *t, const uint8_t counts[16],
                                 const uint8_t *symbols, int is_ac, int cls, int index);
void mdfi_jpeg_fill(jpeg_bits *b);
int mdfi_jpeg_decode_sym(jpeg_bits *b, const jpeg_huff *t);        /* -1: invalid code */
/* Sequential: one block, dequantised, natural order; returns the highest
 * zig-zag index that may be non-zero, or -1 on corrupt data (message set). */
int mdfi_jpeg_block_seq(jpeg_dec *d, jpeg_comp *c, int16_t blk[64]);

/* jpeg_progressive.c: one block of the current progressive scan. */
mdfi_status mdfi_jpeg_block_prog(jpeg_dec *d, jpeg_comp *c, int16_t blk[64]);
/* After the last scan: dequantise and IDCT every block into the planes. */
void mdfi_jpeg_prog_finish(jpeg_dec *d);

/* jpeg_scan.c: decodes the entropy-coded data of the scan whose header was just read. */
mdfi_status mdfi_jpeg_scan(jpeg_dec *d);

/* jpeg_idct.c: dequantised coefficients (natural order) -> 8x8 samples.
 * last: highest zig-zag index that may be non-zero (0: DC only). */
void mdfi_jpeg_idct(const int16_t in[64], int last, unsigned char *out, int stride);
/* The plain C transform (all blocks); the SIMD ones give the same bytes. */
void mdfi_jpeg_idct_scalar(const int16_t in[64], unsigned char *out, int stride);

/* jpeg_color.c: upsamples and converts the planes to out (x*y*c bytes). */
mdfi_status mdfi_jpeg_output(jpeg_dec *d, unsigned char *out);
/* n pixels YCbCr -> interleaved RGB; the SIMD version gives the scalar's bytes. */
void mdfi_jpeg_ycc_rgb(unsigned char *out, const unsigned char *y, const unsigned char *cb,
                       const unsigned char *cr, int n);
void mdfi_jpeg_ycc_rgb_scalar(unsigned char *out, const unsigned char *y,
                              const unsigned char *cb, const unsigned char *cr, int n);

/* Sign-extends the s-bit magnitude category value v (T.81 F.2.2.1 EXTEND). */
static inline int jpeg_extend(unsigned v, int s)
{
    return v < (1u << (s - 1)) ? (int)v - (int)((1u << s) - 1) : (int)v;
}

/* Keeps at least 32 bits in the accumulator. */
static inline void jpeg_need(jpeg_bits *b)
{
    if (b->nbits < 32)
        mdfi_jpeg_fill(b);
}

/* n in 1..16; the caller has called jpeg_need. */
static inline unsigned jpeg_get(jpeg_bits *b, int n)
{
    unsigned v = (unsigned)(b->acc >> (64 - n));
    b->acc <<= n;
    b->nbits -= n;
    return v;
}

#endif
