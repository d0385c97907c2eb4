/* The two element loops of the [dualpath] layer (layers/dualpath.c,
 * docs/dualpath.md), kept with the kernels so that they are built for speed
 * (-O2) rather than size like the layers. */
#ifndef MDFI_KERNELS_DPATH_H
#define MDFI_KERNELS_DPATH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu.h"

/* Row y (w pixels) of channel c, quantized with that channel's thresholds,
 * ORed into the padded bit planes: pos gets bit where x > hi; for ternary
 * (nonzero != NULL) nonzero gets bit where x > hi or x < lo. */
void mdfi_dpath_pack_row(const float *x, int w, float hi, float lo, uint64_t bit, uint64_t *pos,
                         uint64_t *nonzero);

/* One output channel over n values: d holds (float)D (exact), src the
 * second source's channel.  d[i] becomes
 *   clamp(clamp(floor((mul D + off) / 2^s), +-2^24) + rint(clamp(src[i])), +-2^24)
 * with NaN sources read as 0 (round half to even, for |src| <= 2^24). */
void mdfi_dpath_requant(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);

/* The two loops in the fastest form for a layer prepared for an ISA
 * (every form gives identical results). */
typedef struct {
    void (*pack_row)(const float *x, int w, float hi, float lo, uint64_t bit, uint64_t *pos,
                     uint64_t *nonzero);
    void (*requant)(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);
} mdfi_dpath_loops;

mdfi_dpath_loops mdfi_dpath_loops_for(mdfi_isa isa);
#ifdef MDFI_HAVE_AVX2
void mdfi_dpath_pack_row_avx2(const float *x, int w, float hi, float lo, uint64_t bit,
                              uint64_t *pos, uint64_t *nonzero);
void mdfi_dpath_requant_avx2(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);
#endif

#endif
