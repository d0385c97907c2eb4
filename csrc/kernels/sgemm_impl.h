/* Internal to the fp32 GEMM: what sgemm.c (driver, packing) shares with the
 * per-ISA micro-kernel files.  Not part of any public interface. */
#ifndef MDFI_KERNELS_SGEMM_IMPL_H
#define MDFI_KERNELS_SGEMM_IMPL_H

#include "kernels/sgemm.h"

/* Micro-kernel flags. */
enum {
    MDFI_UK_ACCUM = 1,   /* start from the partial sums in C (not the first K block) */
    MDFI_UK_LAST = 2     /* last K block: add bias, apply the epilogue, store */
};
#define MDFI_UK_EPI(flags) ((mdfi_epilogue)((flags) >> 2))
#define MDFI_UK_FLAGS(accum, last, epi) \
    (((accum) ? MDFI_UK_ACCUM : 0) | ((last) ? MDFI_UK_LAST : 0) | ((unsigned)(epi) << 2))

/* One MR x NR tile over kc steps:
 *   acc[r][j] = (accum ? C[r][j] : 0);  for k: acc[r][j] = fma(a[k*MR+r], b[k*NR+j], acc)
 * (NR/2 for the half-width edge tiles)
 * then (last) C = act(acc + bias[r]), else C = acc; only rows < mv and
 * columns < nv of C are read or written.  b is 64-byte aligned, zero-padded
 * to NR columns; a is zero-padded to MR rows.  One fma chain per element, in
 * k order, so the result depends neither on the tile position nor on kc. */
typedef void (*mdfi_sgemm_ukr)(int kc, const float *a, const float *b, float *c,
                               size_t ldc, int mv, int nv, unsigned flags,
                               const float *bias);

/* N == 1: y = act(A x + bias) for all M rows of a packed A (K blocks of kc,
 * see mdfi_sgemm_pack_a), x = the K-vector of B; y[m] is stored at
 * c[m * ldc].  Same per-row fma chain as the tiles. */
typedef void (*mdfi_sgemm_gemv)(int M, int K, int kc, const float *packed_a, const float *x,
                                const float *bias, mdfi_epilogue epi, float *c, size_t ldc);

/* The first nv (<= MDFI_SGEMM_COLS_MAX) columns of a half-width B panel (row stride
 * bw) for all M rows of a packed A's K block (panels of MR rows, kc * MR
 * floats apart): the tile's semantics and fma chain per element, with the
 * rows of several panels in vectors instead of a tile's columns, so a
 * narrow edge costs about its columns' work rather than a half tile's.
 * Linear, no bias (flags' epilogue is not applied): the Winograd GEMMs. */
typedef void (*mdfi_sgemm_cols)(int M, int kc, const float *a, const float *b, int bw, int nv,
                                float *c, size_t ldc, unsigned flags);
#define MDFI_SGEMM_COLS_MAX 2

/* A run of one B panel row: len floats from offset src of a channel plane
 * to column dst. */
typedef struct {
    int dst, src, len;
} mdfi_copy_op;

/* Fills kc rows of one NR-wide B panel (stride-1 convolutions): row kk, of
 * channel c and r = ky*ks + kx (rr = ks*ks) counting on from (c, r), is zeros
 * overwritten by the runs ops[first[r] .. first[r+1]) from in + c*plane.
 * dst is 64-byte aligned, the runs stay within NR columns.  A panel inside
 * the image has one full run per r (ops[r], first[r] = r): see
 * mdfi_sgemm_simple_panel. */
typedef void (*mdfi_sgemm_fill)(float *dst, int kc, const float *in, size_t plane, int c, int r,
                                int rr, const mdfi_copy_op *ops, const int *first);

typedef struct {
    int mr;              /* rows per packed A panel */
    int cost;            /* relative time per row; picks MR for a given M */
    mdfi_sgemm_ukr ukr;
    mdfi_sgemm_ukr ukr_half;   /* MR x NR/2 for a narrow last panel, or NULL */
    mdfi_sgemm_gemv gemv;
    mdfi_sgemm_cols cols;      /* or NULL */
} mdfi_sgemm_tile;

struct mdfi_sgemm_kernel {
    mdfi_isa isa;
    int nr;              /* B panel width (columns per micro-tile) */
    int kc;              /* largest K block */
    int b_block_floats;  /* budget of one packed B block (kc x nc), sized for L2 */
    int ntiles;
    const mdfi_sgemm_tile *tiles;
    mdfi_sgemm_fill fill;   /* NULL: the portable one */
    /* Winograd on the fly: U of a chunk from its taps (kernels/winograd.c's
     * weight_tf_planes, whose layout it shares); NULL: the portable one */
    void (*wino_u)(const float *g, float *u, size_t us, size_t n);
    /* The reference replaces the tiled driver with its own loops. */
    size_t (*workspace)(int M, const mdfi_conv_geom *g);
    void (*conv)(int M, const mdfi_conv_geom *g, const float *a, const float *input,
                 const float *bias, mdfi_epilogue epi, float *c, size_t ldc,
                 int n0, int n1, void *workspace);
};

#ifdef MDFI_HAVE_AVX2
void mdfi_wino_u_avx2(const float *g, float *u, size_t us, size_t n);
#endif

/* Whether every r of a panel is one run of all nr columns. */
static inline int mdfi_sgemm_simple_panel(const mdfi_copy_op *ops, const int *first, int rr,
                                          int nr)
{
    for (int r = 0; r < rr; ++r)
        if (first[r] != r || ops[r].len != nr)
            return 0;
    return first[rr] == rr;
}

extern const mdfi_sgemm_kernel mdfi_sgemm_ref;
#ifdef MDFI_HAVE_AVX2
extern const mdfi_sgemm_kernel mdfi_sgemm_avx2;
/* Its gemv for 6- and 4-row panels (x86/sgemm_gemv_avx2.c). */
void mdfi_sgemm_gemv6_avx2(int M, int K, int kc, const float *pa, const float *x,
                           const float *bias, mdfi_epilogue epi, float *c, size_t ldc);
void mdfi_sgemm_gemv4_avx2(int M, int K, int kc, const float *pa, const float *x,
                           const float *bias, mdfi_epilogue epi, float *c, size_t ldc);
/* Its cols for 6-row panels (x86/sgemm_gemv_avx2.c). */
void mdfi_sgemm_cols6_avx2(int M, int kc, const float *a, const float *b, int bw, int nv,
                           float *c, size_t ldc, unsigned flags);
#endif
#ifdef MDFI_HAVE_AVX512
extern const mdfi_sgemm_kernel mdfi_sgemm_avx512;
#endif
#ifdef MDFI_HAVE_NEON
extern const mdfi_sgemm_kernel mdfi_sgemm_neon;
#endif

/* Darknet's leaky slope is (float)(.1 * (double)x).  That equals the
 * correctly rounded x / 10 for every negative float (checked exhaustively);
 * the fma-corrected product q = x*0.1f; r = fma(-q, 10, x); q + r*0.1f gives
 * that quotient except for |x| < 2^-125 (subnormal results), -0 (gives +0)
 * and -inf (gives NaN): three vector ops instead of a division. */
#define MDFI_LEAKY_C 0.1f

#endif
