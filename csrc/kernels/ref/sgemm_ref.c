/* Reference fp32 GEMM: the specification every optimized kernel is tested
 * against.  Plain loops; the only concession to speed is building B one
 * block of REF_NB columns at a time, so the inner loop is a row update the
 * compiler can vectorize and the block stays in cache.
 *
 * Each output is, in this order: s = 0; for k = 0..K-1: s += A[m][k]*B[k][n]
 * (separate multiply and add); s += bias[m]; activation. */
#include "kernels/sgemm_impl.h"

#define REF_NB 64

/* B[k][n] of the implicit im2col matrix (see sgemm.h). */
static float b_at(const mdfi_conv_geom *g, const float *in, int k, int n)
{
    int ks = g->ksize;
    int c = k / (ks * ks), ky = k / ks % ks, kx = k % ks;
    int oy = n / g->out_w, ox = n % g->out_w;
    int iy = oy * g->stride_y - g->pad + ky * g->dilation;
    int ix = ox * g->stride - g->pad + kx * g->dilation;
    if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
        return 0.f;
    return in[((size_t)c * g->in_h + iy) * g->in_w + ix];
}

static float activate(float x, mdfi_epilogue epi)
{
    switch (epi) {
    case MDFI_EPI_RELU: return x > 0 ? x : 0.f;
    case MDFI_EPI_LEAKY: return x > 0 ? x : (float)(.1 * x);   /* Darknet: double product */
    default: return x;
    }
}

static size_t ref_workspace(int M, const mdfi_conv_geom *g)
{
    (void)M;
    size_t K = (size_t)g->channels * g->ksize * g->ksize;
    return (K + 1) * REF_NB * sizeof(float);
}

/* acc[j] += a * b[j]: with n = REF_NB a constant, so the compiler
 * vectorizes it; short last blocks (N = 1 for connected layers) use n. */
static inline void row_update(float *acc, float a, const float *b, int n)
{
    for (int j = 0; j < n; ++j)
        acc[j] += a * b[j];
}

/* a: A row-major (the MR = 1 packing is a copy). */
static void ref_conv(int M, const mdfi_conv_geom *g, const float *a, const float *input,
                     const float *bias, mdfi_epilogue epi, float *c, size_t ldc,
                     int n0, int n1, void *workspace)
{
    int K = g->channels * g->ksize * g->ksize;
    float *b = workspace;                 /* K x REF_NB block of B */
    float *acc = b + (size_t)K * REF_NB;  /* REF_NB sums */
    for (int nb = n0; nb < n1; nb += REF_NB) {
        int w = n1 - nb < REF_NB ? n1 - nb : REF_NB;
        for (int k = 0; k < K; ++k)
            for (int j = 0; j < w; ++j)
                b[(size_t)k * REF_NB + j] = b_at(g, input, k, nb + j);
        for (int m = 0; m < M; ++m) {
            const float *am = a + (size_t)m * K;
            for (int j = 0; j < w; ++j)
                acc[j] = 0.f;
            for (int k = 0; k < K; ++k) {
                if (w == REF_NB)
                    row_update(acc, am[k], b + (size_t)k * REF_NB, REF_NB);
                else
                    row_update(acc, am[k], b + (size_t)k * REF_NB, w);
            }
            float bm = bias ? bias[m] : 0.f;
            for (int j = 0; j < w; ++j)
                c[(size_t)m * ldc + (nb - n0) + j] = activate(acc[j] + bm, epi);
        }
    }
}

static const mdfi_sgemm_tile ref_tiles[] = {{1, 1, NULL, NULL, NULL, NULL}};

const mdfi_sgemm_kernel mdfi_sgemm_ref = {
    .isa = MDFI_ISA_REF, .nr = 1, .kc = 1, .ntiles = 1, .tiles = ref_tiles,
    .workspace = ref_workspace, .conv = ref_conv,
};
