/* Integer GEMM for the fixed-point (power-of-two scale) convolution and
 * connected layers.  Integer-only arithmetic, so every ISA variant gives
 * bit-identical results to the reference: the C code is the specification a
 * hardware designer can follow.
 *
 *   acc[m][n] = bias[m] + sum_k A[m][k] * B[k][n]             (int32, exact)
 *   v = requant(acc)                                          (see below)
 *   C[m][n] = saturate(v) to int8 or int16
 *
 * A: weights, int8 or int16, packed once (mdfi_qgemm_pack_a).
 * B: activations (int8 or int16, same width as A), read straight from the CHW
 *    input with implicit im2col as in sgemm.h (zero padding = integer 0).
 *
 * Requantization, in this order, all in int32 (int64 where noted):
 *   1. activation on the accumulator:
 *        LINEAR: a = acc
 *        RELU:   a = acc > 0 ? acc : 0
 *        LEAKY:  a = acc >= 0 ? acc : (int32)(((int64)acc * leaky_mult) >> leaky_shift)
 *                (arithmetic shift right = floor division by 2^leaky_shift)
 *   2. scale, per output channel m:
 *        POW2 mode (mult[m] == NULL):  v = rshift_round(a, shift[m])
 *        MULT mode:  v = rshift_round((int64)a * mult[m], shift[m])   (64-bit product)
 *      rshift_round(x, s) = s > 0 ? (x + (1 << (s-1))) >> s   (round half up,
 *                           arithmetic shift)   : x << -s  (s <= 0, done in int64)
 *   3. saturate to [-128, 127] (int8 out) or [-32768, 32767] (int16 out).
 * shift[] is per channel so a per-layer shift is simply the same value M times.
 *
 * Overflow: K * max|A| * max|B| + |bias| must fit in int32; callers check this
 * at prepare time (mdfi_qgemm_fits).  int8 x int8 products are <= 2^14, so
 * K < 2^17 is always safe; int16 x int16 needs K * 2^30 < 2^31 in the worst
 * case, so 16-bit layers must bound their data (the caller checks with the
 * real maxima of the quantized weights and the activation format).
 *
 * Determinism: integer sums are exact, so results are identical for any ISA,
 * blocking or thread split [n0, n1).
 */
#ifndef MDFI_KERNELS_QGEMM_H
#define MDFI_KERNELS_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu.h"
#include "kernels/sgemm.h"   /* mdfi_conv_geom */

typedef enum { MDFI_QACT_LINEAR = 0, MDFI_QACT_RELU = 1, MDFI_QACT_LEAKY = 2 } mdfi_qact;

typedef struct {
    const int32_t *bias;     /* [M], at the accumulator's scale; NULL = zeros */
    const int32_t *mult;     /* [M] or NULL (power-of-two mode) */
    const int8_t *shift;     /* [M]: right shift (negative = left shift) */
    mdfi_qact act;
    int32_t leaky_mult;      /* LEAKY: a = (acc * leaky_mult) >> leaky_shift for acc < 0 */
    int leaky_shift;
    int out_bits;            /* 8 or 16; 32: the sums themselves (bias added, no
                                activation or requantization), int32, for
                                mdfi_qgemm_requant_rows to finish later */
    int pairs;               /* out_bits 32: the larger sum of each pair of columns
                                (2j, 2j + 1) at column j, the first half of a 2x2 / 2
                                max pool; the columns a call computes (n0, n1) and C's
                                column offsets are then even, ldc counts pairs */
} mdfi_qepilogue;

typedef struct mdfi_qgemm_kernel mdfi_qgemm_kernel;

/* Kernel for an ISA and operand width (8: int8 A and B; 16: int16 A and B);
 * NULL if this build/CPU cannot run it.  The ISA's variant may further use
 * CPU features (e.g. AVX-512 VNNI, ARM dot product) chosen at run time. */
const mdfi_qgemm_kernel *mdfi_qgemm_kernel_for(mdfi_isa isa, int bits);
/* The same for the weights A (row-major M x K) it will multiply: for bits 8
 * (A int8) also variants exact only for weights of a bounded size (AVX2's
 * vpmaddubsw one, for weights whose adjacent pairs are small:
 * docs/fixed-point.md); A is not read for other widths. */
const mdfi_qgemm_kernel *mdfi_qgemm_kernel_for_a(mdfi_isa isa, int bits, const void *A, int M,
                                                 int K);
/* Name of the variant actually used ("ref8", "avx2-8", "avx512vnni-8", ...). */
const char *mdfi_qgemm_kernel_name(const mdfi_qgemm_kernel *k);

size_t mdfi_qgemm_packed_a_size(const mdfi_qgemm_kernel *k, int M, int K);
/* A: row-major M x K of int8_t (bits 8) or int16_t (bits 16). */
void mdfi_qgemm_pack_a(const mdfi_qgemm_kernel *k, int M, int K, const void *A, void *dst);

size_t mdfi_qgemm_workspace_size(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g);

/* Columns [n0, n1) of the output (int8_t or int16_t per epi->out_bits, row
 * stride ldc elements), with C pointing at column n0 of row 0, as in
 * mdfi_sgemm_conv: a caller may give a buffer for those columns alone (a
 * fused conv's band).  input: CHW int8_t/int16_t.  workspace 64-byte
 * aligned. */
void mdfi_qgemm_conv(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g,
                     const void *packed_a, const void *input, const mdfi_qepilogue *epi,
                     void *C, size_t ldc, int n0, int n1, void *workspace);

/* Channel-grouped input ("cg", stride-1 convolutions): the input converted
 * once per call into X, for channel group q = c / G (G: the kernel's k
 * group, channels padded with zeros to C' = a multiple of G) and padded row
 * Y = y + pad, the padded row's elements in G-channel tuples, converted as
 * the micro-kernels read them, the padding the converted zero.  A k group
 * is then G channels of one tap, and a packed B panel is copies of runs of
 * X: no im2col rows and no interleave per call.  The weights take K' =
 * C' ksize^2 in the order (channel group, tap, channel in group).
 * mdfi_qgemm_cg_ok: whether the kernel and shape take it (stride 1, no
 * dilation, not the reference, not a kernel whose exactness depends on
 * adjacent weights); cg_geom: g with C' channels, for the workspace and
 * packed sizes. */
int mdfi_qgemm_cg_ok(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g);
int mdfi_qgemm_kgroup(const mdfi_qgemm_kernel *k);   /* G */
mdfi_conv_geom mdfi_qgemm_cg_geom(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g);
size_t mdfi_qgemm_cg_bytes(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g);
/* A (M x C ksize^2, Darknet's (c, ky, kx) order, elements of k->bits) into
 * A2 (M x K'), for mdfi_qgemm_pack_a with K'. */
void mdfi_qgemm_cg_order(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, int M,
                         const void *A, void *A2);
/* Input row y of channels q G .. q G + G - 1 into X (rows[t]: in_w input
 * elements of k->bits, or NULL for a padding channel), its padding
 * columns included; cg_pad_rows writes group q's padding rows. */
void mdfi_qgemm_cg_put_row(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g,
                           const void *const *rows, void *X, int q, int y);
void mdfi_qgemm_cg_pad_rows(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, void *X, int q);
/* mdfi_qgemm_conv on X, A packed from mdfi_qgemm_cg_order (K'); the
 * workspace as mdfi_qgemm_workspace_size for cg_geom. */
void mdfi_qgemm_conv_cg(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g,
                        const void *packed_a, const void *X, const mdfi_qepilogue *epi,
                        void *C, size_t ldc, int n0, int n1, void *workspace);

/* Finishes sums made with out_bits 32 (after, say, a max pool over them,
 * which commutes with the epilogue where it is monotone): rows [0, mv) of
 * x (row stride ldx) into C as e says (e->out_bits 8 or 16; e->bias is not
 * added again), with the kernel's epilogue. */
void mdfi_qgemm_requant_rows(const mdfi_qgemm_kernel *k, const mdfi_qepilogue *e,
                             const int32_t *x, int ldx, int mv, int nv, void *c, size_t ldc);
/* Whether e's epilogue is non-decreasing in the sum for every channel m < M
 * (positive multipliers and leaky slope): then max(finish(x)) = finish(max(x)). */
int mdfi_qgemm_monotone(const mdfi_qepilogue *e, int M);

/* Whether K * max_a * max_b + max_bias stays inside int32. */
int mdfi_qgemm_fits(int K, int32_t max_abs_a, int32_t max_abs_b, int64_t max_abs_bias);

#endif
