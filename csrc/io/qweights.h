/* MDFI quantized weights files (.qweights), written by
 * `python -m weights_tools quantize`.  Layout (little endian; the full
 * description is in docs/fixed-point.md):
 *
 *   header  32 bytes: "MDFIQWT\0", u32 version (1), u32 cfg layers,
 *           u32 records, u32 flags (0), u64 file size
 *   records one per [convolutional]/[connected] layer: a 40-byte head
 *           (u32 "QREC", u32 layer, u32 kind, u32 M, u32 K, u32 groups,
 *           i8 in_bits in_frac w_bits w_frac out_bits out_frac, u8 mode,
 *           u8 0, u32 payload bytes, u32 0), then int32 bias[M] and
 *           int8/int16 weights[M][K], zero-padded to 4 bytes; mode 1 (one
 *           weight fraction per output channel) then has int8 w_frac[M],
 *           zero-padded to 4 bytes; mode 2 (a multiplier and a fraction per
 *           output channel) has w_frac[M] as mode 1, then int32 mult[M]
 *   trailer u32 CRC-32 (zlib's) of everything before it
 *
 * Opening checks the magic, version, size, CRC and the record structure and
 * keeps an index; record payloads are read later, one layer at a time. */
#ifndef MDFI_IO_QWEIGHTS_H
#define MDFI_IO_QWEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "mdfi.h"

#define MDFI_QW_VERSION 1
#define MDFI_QW_CONV 1
#define MDFI_QW_CONNECTED 2

typedef struct {
    int layer, kind, outputs, k, groups, mode;
    int in_bits, in_frac, w_bits, w_frac, out_bits, out_frac;
    long long offset;         /* of the payload (bias first) */
    long long payload;        /* bytes */
} mdfi_qrecord;

typedef struct {
    char *path;
    int version, n_layers, n_rec;
    mdfi_qrecord *rec;
} mdfi_qweights;

/* 1 if the file starts with the quantized-weights magic. */
int mdfi_qweights_sniff(const char *path);
/* Reads and checks the whole file (CRC, structure); *out on success. */
mdfi_status mdfi_qweights_open(const char *path, mdfi_qweights **out, mdfi_errbuf *err);
void mdfi_qweights_free(mdfi_qweights *q);
/* The record of a layer, or NULL. */
const mdfi_qrecord *mdfi_qweights_find(const mdfi_qweights *q, int layer);
/* Reads a record's bias[M], weights[M*K] (int8_t or int16_t per w_bits),
 * for modes 1 and 2 the weight fractions[M] and for mode 2 the
 * multipliers[M] (w_frac / mult may then not be NULL). */
mdfi_status mdfi_qweights_read(const mdfi_qweights *q, const mdfi_qrecord *r, int32_t *bias,
                               void *weights, int8_t *w_frac, int32_t *mult, mdfi_errbuf *err);
/* CRC-32 (reflected polynomial 0xEDB88320, as zlib) continued from crc. */
uint32_t mdfi_crc32(uint32_t crc, const void *data, size_t n);

#endif
