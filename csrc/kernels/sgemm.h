/* Single-precision GEMM for convolution and connected layers.
 *
 *   C[M x N] = act(A[M x K] * B[K x N] + bias[M])
 *
 * A holds the weights (one row per output channel) and is packed once at
 * prepare time.  B is never materialised as a full im2col matrix: the kernel
 * packs panels of it straight from the CHW input (implicit im2col), so a conv
 * needs only a small per-thread workspace.  A connected layer is the special
 * case ksize=1, H=W=1 ... handled through the same geometry (see below).
 *
 * Determinism: every output element is the K-reduction in one fixed order that
 * does not depend on the column range [n0, n1) a call covers, so splitting N
 * across threads gives bit-identical results for any thread count.
 */
#ifndef MDFI_KERNELS_SGEMM_H
#define MDFI_KERNELS_SGEMM_H

#include <stddef.h>
#include "kernels/cpu.h"

/* Epilogue activations the GEMM applies itself; others are applied by the
 * layer in a separate pass. */
typedef enum {
    MDFI_EPI_LINEAR = 0,
    MDFI_EPI_RELU = 1,
    MDFI_EPI_LEAKY = 2 /* x > 0 ? x : (float)(.1 * (double)x), exactly as Darknet */
} mdfi_epilogue;

/* Geometry of B.  B[k][n] with k = (c*ksize + ky)*ksize + kx and
 * n = oy*out_w + ox is
 *   input[c][oy*stride_y - pad + ky*dilation][ox*stride - pad + kx*dilation]
 * (0 outside the image).  K = channels*ksize*ksize, N = out_h*out_w.
 * A plain matrix B[K x N] (row-major, row stride N) is channels=K, ksize=1,
 * stride=1, pad=0, in_h=out_h=1, in_w=out_w=N, stride_y=dilation=1.
 * stride is the horizontal stride.  The integer and binary GEMMs take
 * stride_y == stride and dilation 1 only: their layers refuse the others. */
typedef struct {
    int channels, in_h, in_w;
    int ksize, stride, pad;
    int out_h, out_w;
    int stride_y, dilation;
} mdfi_conv_geom;

typedef struct mdfi_sgemm_kernel mdfi_sgemm_kernel;

/* The kernel table entry for an ISA; NULL if this build/CPU cannot run it. */
const mdfi_sgemm_kernel *mdfi_sgemm_kernel_for(mdfi_isa isa);
/* Name of the ISA a table entry implements ("ref", "avx2", ...). */
const char *mdfi_sgemm_kernel_name(const mdfi_sgemm_kernel *k);

/* Bytes needed for the packed A of an M x K matrix. */
size_t mdfi_sgemm_packed_a_size(const mdfi_sgemm_kernel *k, int M, int K);
/* Packs row-major A (row stride K) into dst (mdfi_sgemm_packed_a_size bytes,
 * 64-byte aligned). */
void mdfi_sgemm_pack_a(const mdfi_sgemm_kernel *k, int M, int K,
                       const float *A, float *dst);
/* The packing unit: panels of MR rows.  pack_a_rows packs rows [i0, i1) of
 * A, given as their own row-major block (A[0] is row i0), into their place
 * in dst; i0 is a multiple of MR, and i1 one too or M.  Packing every panel
 * this way gives exactly mdfi_sgemm_pack_a's result. */
int mdfi_sgemm_pack_mr(const mdfi_sgemm_kernel *k, int M);
void mdfi_sgemm_pack_a_rows(const mdfi_sgemm_kernel *k, int M, int K, int i0, int i1,
                            const float *A, float *dst);

/* Where A[i][kk] lies in the packed A of an M x K matrix (packing element
 * by element: the caller zeroes the padding first). */
size_t mdfi_sgemm_packed_at(const mdfi_sgemm_kernel *k, int M, int K, int i, int kk);

/* Bytes of per-thread workspace for a call with this geometry. */
size_t mdfi_sgemm_workspace_size(const mdfi_sgemm_kernel *k, int M,
                                 const mdfi_conv_geom *g);

/* A plain K x N matrix B (row stride N) multiplied by many A, packed once:
 * where plain_ok (one K block and one B block: not the reference kernel),
 * plain_pack_b packs B into dst (plain_b_floats, 64-byte aligned; workspace
 * as mdfi_sgemm_conv's for that matrix), and plain_mul computes C (M x N,
 * row stride ldc) = A B (accumulate: C += A B) from a packed A of M x K, the
 * same sums as mdfi_sgemm_conv.  plain_mul may take fewer columns N than B
 * was packed with where the two widths have the same panels
 * (plain_b_floats equal): the Winograd path's zero lanes. */
int mdfi_sgemm_plain_ok(const mdfi_sgemm_kernel *k, int K, int N);
size_t mdfi_sgemm_plain_b_floats(const mdfi_sgemm_kernel *k, int K, int N);
void mdfi_sgemm_plain_pack_b(const mdfi_sgemm_kernel *k, int K, int N, const float *B,
                             float *dst, void *workspace);
void mdfi_sgemm_plain_mul(const mdfi_sgemm_kernel *k, int M, int K, int N, const float *packed_a,
                          const float *packed_b, float *C, size_t ldc, int accumulate);

/* Computes output columns [n0, n1); C points at column n0 (row stride ldc floats).
 * bias may be NULL (treated as zeros).  workspace: 64-byte aligned,
 * mdfi_sgemm_workspace_size bytes. */
void mdfi_sgemm_conv(const mdfi_sgemm_kernel *k, int M,
                     const mdfi_conv_geom *g, const float *packed_a,
                     const float *input, const float *bias,
                     mdfi_epilogue epi, float *C, size_t ldc, int n0, int n1,
                     void *workspace);

#endif
