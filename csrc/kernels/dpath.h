/* The element loops of the integer-stream binary layers [dualpath]
 * (layers/dualpath.c, docs/dualpath.md) and [fracconv] (layers/fracconv.c,
 * docs/wsfracbnn.md), kept with the kernels so that they are built for speed
 * (-O2) rather than size like the layers. */
#ifndef MDFI_KERNELS_DPATH_H
#define MDFI_KERNELS_DPATH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu.h"

/* The words of w pixels of one row for nc <= 64 channels (channel c's row
 * at x + c * cstride), quantized with per-channel thresholds and stored (not
 * ORed): bit c of pos[i] is x > hi[c]; for ternary (nonzero != NULL) bit c of
 * nonzero[i] is x > hi[c] or x < lo[c] (float compares; NaN sets neither).
 * Bits of channels >= nc are 0. */
void mdfi_dpath_pack_words(const float *x, size_t cstride, int nc, int w, const float *hi,
                           const float *lo, uint64_t *pos, uint64_t *nonzero);

/* One output channel over n values: d holds (float)D (exact), src the
 * second source's channel.  d[i] becomes
 *   clamp(clamp(floor((mul D + off) / 2^s), +-2^24) + rint(clamp(src[i])), +-2^24)
 * with NaN sources read as 0 (round half to even, for |src| <= 2^24). */
void mdfi_dpath_requant(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);

/* [fracconv]'s 2-bit quantizer, row y (w pixels) of channel c ORed into the
 * two padded sign planes: s1 gets bit where x > shift, s0 where x > hi or
 * (x > lo and x <= shift) (float compares; NaN sets neither). */
void mdfi_dpath_pack_frac_row(const float *x, int w, float shift, float hi, float lo,
                              uint64_t bit, uint64_t *s1, uint64_t *s0);

/* [fracconv]'s thermometer: row y (w pixels) of image channel c becomes the
 * bit channels ch0 .. ch0 + T - 1 (bit ch0 + k where x > t[k]) of a padded
 * sign plane whose word planes are wstride words apart; out points at the
 * row's first pixel in word plane 0. */
void mdfi_dpath_pack_thermo_row(const float *x, int w, const float *t, int T, int ch0,
                                size_t wstride, uint64_t *out);

/* sum over i < n of popcount(a[i] ^ b[i]): one dot product of sign words. */
int mdfi_dpath_popdot(const uint64_t *a, const uint64_t *b, int n);

/* The loops in the fastest form for a layer prepared for an ISA
 * (every form gives identical results). */
typedef struct {
    void (*pack_words)(const float *x, size_t cstride, int nc, int w, const float *hi,
                       const float *lo, uint64_t *pos, uint64_t *nonzero);
    void (*requant)(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);
    int (*popdot)(const uint64_t *a, const uint64_t *b, int n);
} mdfi_dpath_loops;

/* popdot is the portable one for the ISA ref, else the CPU's instruction
 * where this build has a form for it (identical counts). */
mdfi_dpath_loops mdfi_dpath_loops_for(mdfi_isa isa);
#ifdef MDFI_HAVE_AVX2
void mdfi_dpath_pack_words_avx2(const float *x, size_t cstride, int nc, int w, const float *hi,
                                const float *lo, uint64_t *pos, uint64_t *nonzero);
void mdfi_dpath_requant_avx2(float *d, const float *src, size_t n, int64_t mul, int64_t off, int s);
#endif
#ifdef MDFI_HAVE_POPCNT
int mdfi_dpath_popdot_popcnt(const uint64_t *a, const uint64_t *b, int n);
#endif

#endif
