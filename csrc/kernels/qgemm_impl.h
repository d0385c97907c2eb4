/* Internal to the integer GEMM: what qgemm.c (dispatch, packing, blocking,
 * scalar epilogue) shares with the per-ISA micro-kernel files and the test
 * driver.  Not part of any public interface.
 *
 * Packed layouts (one "element" is eb = 1 or 2 bytes, see b_conv):
 *   A: ceil(M/MR) panels of MR rows; K is padded with zeros to Kp, a multiple
 *      of the k group G (1, 2 or 4 consecutive k values that one SIMD lane
 *      reduces at once: vpdpbusd and sdot take 4, vpmaddwd and vpdpwssd 2).
 *      Panel i holds, for each group g and row r, the G values
 *        A[i*MR + r][g*G .. g*G + G-1]       (0 for rows >= M or k >= K)
 *      so one group step of the micro-kernel reads MR*G consecutive elements
 *      and the k range [pc, pc + kc) of a panel starts at element pc*MR.
 *      Kernels with an unsigned B (MDFI_QB_XOR80) then store, at byte offset
 *      mdfi_qgemm_corr_offset, one uint32 per padded row:
 *        corr[m] = 128 * sum_k A[m][k]   (mod 2^32)
 *   B: one block of the implicit im2col matrix, rows [pc, pc + kc) and
 *      columns [jc, jc + nc), in panels of NR columns; panel p (at
 *      p*NR*kc elements) holds for each group g and column j the G values
 *      B[pc + g*G .. pc + g*G + G-1][jc + p*NR + j], converted as b_conv
 *      says; the last panel may be NR/2 wide (half-width tile).
 *
 * Integer sums are exact (modulo 2^32 where an ISA wraps: the caller's bound
 * on |acc| makes the wrapped result the true one), so the order of the
 * K reduction, the blocking and the thread split never change a result. */
#ifndef MDFI_KERNELS_QGEMM_IMPL_H
#define MDFI_KERNELS_QGEMM_IMPL_H

#include "kernels/qgemm.h"

/* How B (and A) elements are stored in the packed panels. */
enum {
    MDFI_QB_SAME = 0,   /* as the input: int8 or int16 */
    MDFI_QB_SEXT16 = 1, /* int8 input sign-extended to int16 (A too) */
    MDFI_QB_XOR80 = 2   /* int8 input stored as uint8 b + 128 (A stays int8, corr[]) */
};

/* One MR x NR (or MR x NR/2 for ukr_half) tile over ng k groups:
 *   acc[r*ldacc + j] = (accum ? acc[r*ldacc + j] : 0) + sum_k a[r][k] * b[k][j]
 * for all r < MR and j < NR (NR/2), in int32 with wrap-around.  a: the
 * panel's elements from the block's first group; b: the B panel's from the
 * same group (64-byte aligned where NR*G*eb is a multiple of 64, as on
 * every x86 variant).  acc: 16-byte aligned, ldacc a multiple of 16. */
typedef void (*mdfi_qgemm_ukr)(int ng, const void *a, const void *b, int32_t *acc, int ldacc,
                               int accum);

/* Requantizes an mv x nv tile of sums (row stride ldacc) into C:
 *   C[r][j] = requant(acc[r][j] + bias[m0+r] - corr[m0+r], m0 + r)
 * c points at the tile's first element of C (int8_t or int16_t by
 * e->out_bits), row stride ldc elements; corr may be NULL (no offset). */
typedef void (*mdfi_qgemm_epi)(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                               const int32_t *acc, int ldacc, int mv, int nv, void *c,
                               size_t ldc);

/* Interleaves one k group into np full NR-wide panels: src[t] (t < G)
 * points at np*NR input elements (int8 or int16, any alignment) of row
 * g*G + t; panel p (at dst + p*step bytes, any alignment: the channel-
 * grouped input's rows are packed tight) gets
 * dst[j*G + t] = convert(src[t][p*NR + j]) for j < NR. */
typedef void (*mdfi_qgemm_interleave)(void *dst, size_t step, const void *const *src, int np);

typedef struct {
    int mr;            /* rows per packed A panel */
    int cost;          /* relative time per row; picks MR for a given M */
    mdfi_qgemm_ukr ukr;
    mdfi_qgemm_ukr ukr_half;   /* MR x NR/2 for a narrow last panel, or NULL */
} mdfi_qgemm_tile;

struct mdfi_qgemm_kernel {
    const char *name;     /* "avx512vnni-8", ... */
    mdfi_isa isa;
    int bits;             /* operand width: 8 or 16 */
    unsigned needs;       /* mdfi_cpu_features() bits the variant requires */
    int pair_max;         /* exact only where |A[m][2i]| + |A[m][2i+1]| <= pair_max
                             (0: for every A); mdfi_qgemm_kernel_for_a chooses it */
    int nr;               /* B panel width */
    int kgrp;             /* k group G */
    int kc;               /* largest K block (multiple of G) */
    int b_conv;           /* MDFI_QB_* */
    int b_block_bytes;    /* budget of one packed B block (kc x nc), sized for L2 */
    int ntiles;
    const mdfi_qgemm_tile *tiles;
    mdfi_qgemm_epi epi;               /* NULL: mdfi_qgemm_epi_scalar */
    mdfi_qgemm_epi epi_pairs;         /* out_bits 32 with pairs; NULL: the portable one */
    mdfi_qgemm_interleave interleave; /* NULL: the portable one */
    /* The reference replaces the tiled driver with its own loops. */
    size_t (*workspace)(int M, const mdfi_conv_geom *g);
    void (*conv)(int M, const mdfi_conv_geom *g, const void *a, const void *input,
                 const mdfi_qepilogue *e, void *c, size_t ldc, int n0, int n1,
                 void *workspace);
};

/* Every variant compiled in, runnable here or not (i < count); the test
 * driver walks them.  mdfi_qgemm_runnable: the CPU has what it needs. */
int mdfi_qgemm_variant_count(void);
const mdfi_qgemm_kernel *mdfi_qgemm_variant(int i);
int mdfi_qgemm_runnable(const mdfi_qgemm_kernel *k);

/* Byte offset of corr[] in a packed A (kernels with b_conv XOR80). */
size_t mdfi_qgemm_corr_offset(const mdfi_qgemm_kernel *k, int M, int K);
/* MR used for M rows (packing and the call both derive it from M alone). */
int mdfi_qgemm_mr(const mdfi_qgemm_kernel *k, int M);

/* What an epilogue adds to row m's sums: the bias less the B offset's
 * correction (corr may be NULL), in uint32: the sum wraps back into range. */
static inline uint32_t mdfi_qgemm_row_offset(const mdfi_qepilogue *e, const uint32_t *corr, int m)
{
    return (e->bias ? (uint32_t)e->bias[m] : 0u) - (corr ? corr[m] : 0u);
}

/* The specified requantization of one sum x (bias and correction already
 * added) for output channel m: activation, scale, saturation. */
int32_t mdfi_qgemm_requant(int32_t x, int m, const mdfi_qepilogue *e);
/* Portable epilogue (mdfi_qgemm_epi) built on mdfi_qgemm_requant. */
void mdfi_qgemm_epi_scalar(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                           const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc);

extern const mdfi_qgemm_kernel mdfi_qgemm_ref8, mdfi_qgemm_ref16;
#ifdef MDFI_HAVE_AVX2
extern const mdfi_qgemm_kernel mdfi_qgemm_avx2_8, mdfi_qgemm_avx2_16, mdfi_qgemm_avx2_8p;
/* AVX2 epilogue (x86/qgemm_epi_avx2.c), of the AVX-512 variants too: every
 * AVX-512 CPU has AVX2, and its 11 operations per 8 sums on three ports
 * issue about as fast as a 512-bit form's ~14 per 16 on two. */
void mdfi_qgemm_epi_avx2(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                         const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc);
void mdfi_qgemm_epi_pairs_avx2(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                               const int32_t *acc, int ldacc, int mv, int nv, void *c,
                               size_t ldc);
#endif
#ifdef MDFI_HAVE_AVX512
extern const mdfi_qgemm_kernel mdfi_qgemm_avx512_8, mdfi_qgemm_avx512_16;
/* int16 rows to k pairs, 32-column panels (mdfi_qgemm_interleave). */
void mdfi_qgemm_interleave_avx512_i16(void *dst, size_t step, const void *const *src, int np);
#endif
#ifdef MDFI_HAVE_AVX512VNNI
extern const mdfi_qgemm_kernel mdfi_qgemm_avx512vnni_8, mdfi_qgemm_avx512vnni_16;
#endif
#ifdef MDFI_HAVE_NEON
extern const mdfi_qgemm_kernel mdfi_qgemm_neon_8, mdfi_qgemm_neon_16;
/* NEON epilogue, shared with the dot product variant. */
void mdfi_qgemm_epi_neon(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                         const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc);
#endif
#ifdef MDFI_HAVE_DOTPROD
extern const mdfi_qgemm_kernel mdfi_qgemm_neondot_8;
#endif

#endif
