/* MDFI quantized weights files (.qweights), written by
 * `python -m weights_tools quantize`.  Layout (little endian; the full
 * description is in docs/fixed-point.md):
 *
 *   header  32 bytes: "MDFIQWT\0", u32 version (1 or 2), u32 cfg layers,
 *           u32 records, u32 flags (0), u64 file size
 *   records at most one per layer, in increasing layer order: a 40-byte head
 *           (u32 "QREC", u32 layer, u32 kind, u32 M, u32 K, u32 groups,
 *           i8 in_bits in_frac w_bits w_frac out_bits out_frac, u8 mode,
 *           u8 0, u32 payload bytes, u32 0), then the payload:
 *     kinds 1, 2 (convolutional, connected): int32 bias[M] and int8/int16
 *           weights[M][K], zero-padded to 4 bytes; mode 1 (one weight
 *           fraction per output channel) then has int8 w_frac[M], zero-padded
 *           to 4 bytes; mode 2 (a multiplier and a fraction per output
 *           channel) has w_frac[M] as mode 1, then int32 mult[M]
 *     kind 3 (named arrays, version 2 only): M arrays, K = groups = mode = 0,
 *           each char name[32] (NUL-padded, [A-Za-z0-9_]+, unique in the
 *           record), u32 dtype, u32 count, then the data zero-padded to 4 bytes
 *   trailer u32 CRC-32 (zlib's) of everything before it
 *
 * Loading checks the magic, version, size, CRC and the record structure and
 * keeps an index; record payloads are read later, one layer at a time. */
#ifndef MDFI_IO_QWEIGHTS_H
#define MDFI_IO_QWEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mdfi.h"

#define MDFI_QW_VERSION 2          /* the newest this build reads */
#define MDFI_QW_CONV 1
#define MDFI_QW_CONNECTED 2
#define MDFI_QW_ARRAYS 3           /* named arrays of any layer (version 2) */

/* dtypes of kind-3 arrays */
#define MDFI_QW_INT8 1
#define MDFI_QW_INT16 2
#define MDFI_QW_INT32 3
#define MDFI_QW_FLOAT32 4
#define MDFI_QW_NAME_BYTES 32

typedef struct {
    char name[MDFI_QW_NAME_BYTES];   /* NUL-terminated */
    int dtype;
    size_t count;                    /* elements */
    long long offset;                /* of the data in the file */
} mdfi_qarray;

typedef struct {
    int layer, kind, outputs, k, groups, mode;   /* kind 3: outputs = arrays, k = groups = 0 */
    int in_bits, in_frac, w_bits, w_frac, out_bits, out_frac;
    long long offset;         /* of the payload (bias or first array head) */
    long long payload;        /* bytes */
    const mdfi_qarray *arrays;   /* kind 3: outputs of them, in file order; else NULL */
} mdfi_qrecord;

typedef struct {
    char *path;
    int version, n_layers, n_rec;
    mdfi_qrecord *rec;
} mdfi_qweights;

/* 1 if the file starts with the quantized-weights magic. */
int mdfi_qweights_sniff(const char *path);
/* 1 if the 8 bytes at h are the quantized-weights magic. */
int mdfi_qweights_magic(const unsigned char h[8]);
/* Reads and checks the whole file (CRC, structure); *out on success. */
mdfi_status mdfi_qweights_open(const char *path, mdfi_qweights **out, mdfi_errbuf *err);
/* The same from a stream already open (left open, position unspecified). */
mdfi_status mdfi_qweights_load(FILE *f, const char *path, mdfi_qweights **out,
                               mdfi_errbuf *err);
void mdfi_qweights_free(mdfi_qweights *q);
/* The record of a layer, or NULL. */
const mdfi_qrecord *mdfi_qweights_find(const mdfi_qweights *q, int layer);
/* Reads a GEMM record's bias[M], weights[M*K] (int8_t or int16_t per w_bits),
 * for modes 1 and 2 the weight fractions[M] and for mode 2 the
 * multipliers[M] (w_frac / mult may then not be NULL).  Opens the file. */
mdfi_status mdfi_qweights_read(const mdfi_qweights *q, const mdfi_qrecord *r, int32_t *bias,
                               void *weights, int8_t *w_frac, int32_t *mult, mdfi_errbuf *err);
/* The same from the open stream f. */
mdfi_status mdfi_qweights_read_from(FILE *f, const char *path, const mdfi_qrecord *r,
                                    int32_t *bias, void *weights, int8_t *w_frac,
                                    int32_t *mult, mdfi_errbuf *err);
/* CRC-32 (reflected polynomial 0xEDB88320, as zlib) continued from crc. */
uint32_t mdfi_crc32(uint32_t crc, const void *data, size_t n);

/* qarrays.c: kind-3 records */
/* Bytes per element of a dtype, 0 if unknown; its name ("int8"...). */
size_t mdfi_qarray_size(int dtype);
const char *mdfi_qarray_dtype_name(int dtype);
/* Reads and checks the array heads of record r (its payload, in f, already
 * known to lie inside the file); *out: r->outputs of them, malloc'ed. */
mdfi_status mdfi_qarrays_index(FILE *f, const char *path, const mdfi_qrecord *r,
                               mdfi_qarray **out, mdfi_errbuf *err);
/* The array of record r called name, or NULL. */
const mdfi_qarray *mdfi_qarrays_find(const mdfi_qrecord *r, const char *name);

#endif
