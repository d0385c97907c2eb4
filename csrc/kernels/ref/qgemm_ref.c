/* Reference integer GEMM: the specification every optimized variant must
 * match bit for bit.  Plain loops; the only concession to speed is building
 * B one block of (at most) REF_NB columns at a time, so the inner loop is a
 * row update and the block stays in cache.
 *
 * Each output, for channel m and column n:
 *   acc = bias[m] + sum_k A[m][k] * B[k][n]      int32 (the caller bounds it;
 *                                                summed in uint32 so that even
 *                                                a violated bound is defined)
 *   C[m][n] = mdfi_qgemm_requant(acc, m)         activation, scale, saturation
 * with B the implicit im2col matrix of sgemm.h (0 outside the image). */
#include "kernels/qgemm_impl.h"

#define REF_NB 64

/* B[k][n] of the implicit im2col matrix. */
static int32_t b_at(const mdfi_conv_geom *g, int bits, const void *in, int k, int n)
{
    int ks = g->ksize;
    int c = k / (ks * ks), ky = k / ks % ks, kx = k % ks;
    int oy = n / g->out_w, ox = n % g->out_w;
    int iy = oy * g->stride - g->pad + ky, ix = ox * g->stride - g->pad + kx;
    if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
        return 0;
    size_t i = ((size_t)c * g->in_h + iy) * g->in_w + ix;
    return bits == 8 ? ((const int8_t *)in)[i] : ((const int16_t *)in)[i];
}

static size_t ref_workspace(int M, const mdfi_conv_geom *g)
{
    (void)M;
    size_t K = (size_t)g->channels * g->ksize * g->ksize;
    return (K + 1) * REF_NB * sizeof(int32_t);
}

/* a: A row-major (the MR = 1, G = 1 packing is a copy). */
static void ref_conv(int bits, int M, const mdfi_conv_geom *g, const void *a, const void *input,
                     const mdfi_qepilogue *e, void *c, size_t ldc, int n0, int n1,
                     void *workspace)
{
    const int K = g->channels * g->ksize * g->ksize;
    int32_t *b = workspace;                 /* K x REF_NB block of B */
    uint32_t *acc = (uint32_t *)(b + (size_t)K * REF_NB);   /* REF_NB sums */
    for (int nb = n0; nb < n1; nb += REF_NB) {
        int w = n1 - nb < REF_NB ? n1 - nb : REF_NB;
        for (int k = 0; k < K; ++k)
            for (int j = 0; j < w; ++j)
                b[(size_t)k * REF_NB + j] = b_at(g, bits, input, k, nb + j);
        for (int m = 0; m < M; ++m) {
            uint32_t bias = e->bias ? (uint32_t)e->bias[m] : 0u;
            for (int j = 0; j < w; ++j)
                acc[j] = bias;
            for (int k = 0; k < K; ++k) {
                size_t i = (size_t)m * K + k;
                int32_t am = bits == 8 ? ((const int8_t *)a)[i] : ((const int16_t *)a)[i];
                const int32_t *bk = b + (size_t)k * REF_NB;
                for (int j = 0; j < w; ++j)
                    acc[j] += (uint32_t)(am * bk[j]);   /* |am * bk| <= 2^30 */
            }
            for (int j = 0; j < w; ++j) {
                size_t o = (size_t)m * ldc + (size_t)(nb - n0 + j);
                if (e->out_bits == 32) {   /* the sums (mdfi_qgemm_requant_rows) */
                    if (!e->pairs)
                        ((int32_t *)c)[o] = (int32_t)acc[j];
                    else if (j % 2)   /* (even column offsets and counts) */
                        ((int32_t *)c)[(size_t)m * ldc + (size_t)(nb - n0 + j) / 2] =
                            (int32_t)acc[j] > (int32_t)acc[j - 1] ? (int32_t)acc[j]
                                                                  : (int32_t)acc[j - 1];
                    continue;
                }
                int32_t v = mdfi_qgemm_requant((int32_t)acc[j], m, e);
                if (e->out_bits == 8)
                    ((int8_t *)c)[o] = (int8_t)v;
                else
                    ((int16_t *)c)[o] = (int16_t)v;
            }
        }
    }
}

static void ref_conv8(int M, const mdfi_conv_geom *g, const void *a, const void *input,
                      const mdfi_qepilogue *e, void *c, size_t ldc, int n0, int n1,
                      void *workspace)
{
    ref_conv(8, M, g, a, input, e, c, ldc, n0, n1, workspace);
}

static void ref_conv16(int M, const mdfi_conv_geom *g, const void *a, const void *input,
                       const mdfi_qepilogue *e, void *c, size_t ldc, int n0, int n1,
                       void *workspace)
{
    ref_conv(16, M, g, a, input, e, c, ldc, n0, n1, workspace);
}

static const mdfi_qgemm_tile ref_tiles[] = {{1, 1, NULL, NULL}};

const mdfi_qgemm_kernel mdfi_qgemm_ref8 = {
    .name = "ref8", .isa = MDFI_ISA_REF, .bits = 8, .nr = 1, .kgrp = 1, .kc = 1,
    .b_conv = MDFI_QB_SAME, .ntiles = 1, .tiles = ref_tiles,
    .workspace = ref_workspace, .conv = ref_conv8,
};

const mdfi_qgemm_kernel mdfi_qgemm_ref16 = {
    .name = "ref16", .isa = MDFI_ISA_REF, .bits = 16, .nr = 1, .kgrp = 1, .kc = 1,
    .b_conv = MDFI_QB_SAME, .ntiles = 1, .tiles = ref_tiles,
    .workspace = ref_workspace, .conv = ref_conv16,
};
