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

/* One output channel's requantization: r(D) = clamp(floor((mul D + off) /
 * 2^s), +-2^24), |mul| <= 2^30, s <= 36.  With mul = mh 2^16 + ml and
 * off = oh 2^16 + ol (0 <= ml, ol < 2^16), for |D| < 2^14, s >= 16 and
 * |oh| < 2^30 (split = 1) it is, in int32 without overflow,
 *     Q = mh D + oh + floor((ml D + ol) / 2^16),  r = floor(Q / 2^(s - 16))
 * (mul D + off = Q 2^16 + a remainder in [0, 2^16)): 8 values per AVX2
 * operation where the 64-bit products take 4, and no 64-bit multiply on
 * 32-bit CPUs.  Elsewhere the int64 definition. */
typedef struct {
    int64_t mul, off;
    int s, split;
    int32_t mh, ml, oh, ol;
} mdfi_dpath_rq;

/* Sets mh, ml, oh, ol and split from mul, off and s. */
void mdfi_dpath_rq_split(mdfi_dpath_rq *q);

/* One output channel over n values: d holds (float)D (exact), src the
 * second source's channel; with d0 (else NULL), d holds (float)D1 and d0
 * (float)D0 of a second plane, and D = 2 D1 + D0 ([fracconv] gate=0).
 * d[i] becomes
 *   clamp(r(D) + rint(clamp(src[i])), +-2^24)
 * with NaN sources read as 0 (round half to even, for |src| <= 2^24). */
void mdfi_dpath_requant(float *d, const float *d0, const float *src, size_t n,
                        const mdfi_dpath_rq *q);

/* [fracconv]'s 2-bit quantizer as mdfi_dpath_pack_words, per channel c:
 * bit c of s1[i] is x > shift[c], of s0[i] x > hi[c] or (x > lo[c] and not
 * x > shift[c]) (float compares; NaN sets neither).  Stored, not ORed. */
void mdfi_dpath_pack_frac_words(const float *x, size_t cstride, int nc, int w, const float *shift,
                                const float *hi, const float *lo, uint64_t *s1, uint64_t *s0);

/* [fracconv]'s thermometer: row y (w pixels) of image channel c becomes the
 * bit channels ch0 .. ch0 + T - 1 (bit ch0 + k where x > t[k]) of a padded
 * sign plane whose word planes are wstride words apart; out points at the
 * row's first pixel in word plane 0. */
void mdfi_dpath_pack_thermo_row(const float *x, int w, const float *t, int T, int ch0,
                                size_t wstride, uint64_t *out);

/* [fracconv]'s gated second plane (layers/fracconv.c, docs/wsfracbnn.md).
 * Where an output's window lies in the padded s0 plane (mdfi_bconv_input_words'
 * layout: words x ph x pw, halo 0), fixed at prepare:
 *   base[n]  the word of output pixel n's top-left tap: (oy s) pw + ox s;
 *   off[i]   i < nt = ksize^2 words, tap-major: tap t = (ky, kx) and word
 *            plane cw at ky pw + kx + cw ph pw (i = t words + cw);
 *   cls[n]   which taps of pixel n lie outside the image, as an index into
 *            the caller's per-channel table kc (below);
 *   ksize, words, pw, plane (= ph pw): the same offsets as a shape, which the
 *            AVX2 form reads 3 x 3 windows by (off[] must agree). */
typedef struct {
    const int32_t *base, *cls, *off;
    int nt, ksize, words;
    ptrdiff_t pw, plane;
} mdfi_dpath_gate_geom;

/* One output channel over the pixels [n0, n1): out[n] holds (float)D1 and
 * becomes (float)P, P = 2 D1 where 2 D1 <= G (not gated), else
 *     P = 2 D1 + kc[cls[n]] - 2 d,   d = sum over i < nt of
 *                                         popcount(s0[base[n] + off[i]] ^ w[i]),
 * w the filter's sign words in off's order; a tap outside the image reads
 * zero words there, which kc takes back (kc[c] = C' times the in-image taps
 * of class c plus twice the popcounts of w over its outside taps).  list:
 * scratch of n1 - n0 int32.  Returns the number of gated outputs. */
int mdfi_dpath_gated(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                     const int32_t *kc, int32_t G, float *out, int n0, int n1, int32_t *list);
typedef int (*mdfi_dpath_gated_fn)(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                                   const uint64_t *w, const int32_t *kc, int32_t G, float *out,
                                   int n0, int n1, int32_t *list);

/* The loops in the fastest form for a layer prepared for an ISA
 * (every form gives identical results). */
typedef struct {
    void (*pack_words)(const float *x, size_t cstride, int nc, int w, const float *hi,
                       const float *lo, uint64_t *pos, uint64_t *nonzero);
    void (*pack_frac)(const float *x, size_t cstride, int nc, int w, const float *shift,
                      const float *hi, const float *lo, uint64_t *s1, uint64_t *s0);
    void (*requant)(float *d, const float *d0, const float *src, size_t n,
                    const mdfi_dpath_rq *q);
    mdfi_dpath_gated_fn gated;
} mdfi_dpath_loops;

/* pack_words, pack_frac: the AVX-512 forms for the ISA avx512, the AVX2 forms
 * for avx2 (and avx512 on a build without AVX-512), else the portable ones.
 * gated: for the ISA avx512 where the CPU has AVX512_VPOPCNTDQ the VPOPCNT
 * form, else the AVX2 form for the ISAs avx2 and avx512 where the CPU has
 * AVX2 and POPCNT, else the POPCNT form for any ISA but ref where the CPU has
 * POPCNT, else the portable one (identical results). */
mdfi_dpath_loops mdfi_dpath_loops_for(mdfi_isa isa);
#ifdef MDFI_HAVE_AVX512
void mdfi_dpath_pack_words_avx512(const float *x, size_t cstride, int nc, int w, const float *hi,
                                  const float *lo, uint64_t *pos, uint64_t *nonzero);
void mdfi_dpath_pack_frac_words_avx512(const float *x, size_t cstride, int nc, int w,
                                       const float *shift, const float *hi, const float *lo,
                                       uint64_t *s1, uint64_t *s0);
#endif
#ifdef MDFI_HAVE_AVX2
void mdfi_dpath_pack_words_avx2(const float *x, size_t cstride, int nc, int w, const float *hi,
                                const float *lo, uint64_t *pos, uint64_t *nonzero);
void mdfi_dpath_pack_frac_words_avx2(const float *x, size_t cstride, int nc, int w,
                                     const float *shift, const float *hi, const float *lo,
                                     uint64_t *s1, uint64_t *s0);
void mdfi_dpath_requant_avx2(float *d, const float *d0, const float *src, size_t n,
                             const mdfi_dpath_rq *q);
/* mdfi_dpath_gated's first step, eight pixels a step (the other forms share it) */
int mdfi_dpath_gated_list_avx2(float *out, int n0, int n1, int32_t G, int32_t *list);
/* needs POPCNT too (every AVX2 CPU has it; the choice checks) */
int mdfi_dpath_gated_avx2(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                          const int32_t *kc, int32_t G, float *out, int n0, int n1,
                          int32_t *list);
#endif
#ifdef MDFI_HAVE_AVX512VPOPCNT
/* the AVX2 form's list, the 3 x 3 counts by vpopcntq (AVX512_VPOPCNTDQ, VL) */
int mdfi_dpath_gated_avx512vp(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                              const uint64_t *w, const int32_t *kc, int32_t G, float *out,
                              int n0, int n1, int32_t *list);
#endif
#ifdef MDFI_HAVE_POPCNT
/* the counts of k listed pixels, as mdfi_dpath_gated after its compare */
void mdfi_dpath_gated_counts_popcnt(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                                    const uint64_t *w, const int32_t *kc, float *out,
                                    const int32_t *list, int k);
int mdfi_dpath_gated_popcnt(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                            const int32_t *kc, int32_t G, float *out, int n0, int n1,
                            int32_t *list);
#endif

#endif
