/* Reference binary convolution: the specification every optimized variant
 * is tested against, and the portable fallback.  Straight from the
 * definition: for each output, the taps inside the image only (so no
 * padding correction), each word by its own formula, SWAR popcount.
 *
 * For a word of n real channels (bits past them are 0 in both operands):
 *   SIGN     sum w*a = n - 2 popcount(w ^ a)
 *   TERNARY  sum w*a = popcount(nz) - 2 popcount((w ^ pos) & nz)
 *   2BIT     sum w*a = sum_b 2^b (2 popcount(w & bit_b) - popcount(bit_b))
 * with w = the weight bits (1 = +1). */
#include "kernels/bgemm.h"

static size_t ref_workspace(const mdfi_bconv *bc)
{
    (void)bc;
    return 64;
}

static int32_t word_dot(mdfi_bmode mode, int n, uint64_t w, const uint64_t *x, size_t pstride)
{
    switch (mode) {
    case MDFI_BMODE_TERNARY: {
        uint64_t pos = x[0], nz = x[pstride];
        return mdfi_popcount64(nz) - 2 * mdfi_popcount64((w ^ pos) & nz);
    }
    case MDFI_BMODE_2BIT: {
        uint64_t b0 = x[0], b1 = x[pstride];
        return (2 * mdfi_popcount64(w & b0) - mdfi_popcount64(b0)) +
               2 * (2 * mdfi_popcount64(w & b1) - mdfi_popcount64(b1));
    }
    default:
        return n - 2 * mdfi_popcount64(w ^ x[0]);
    }
}

/* a: the MR = 1 packing, filter m's K words from a + m*K; in: the padded
 * input (its halo is never read). */
static void ref_conv(const mdfi_bconv *bc, const uint64_t *in, const mdfi_bout *o, int n0,
                     int n1, void *workspace)
{
    (void)workspace;
    const mdfi_conv_geom *g = &bc->g;
    const int ks = g->ksize, W = bc->words, C = g->channels;
    const size_t plane = (size_t)bc->ph * bc->pw, pstride = (size_t)W * plane;
    const size_t N = (size_t)g->out_h * g->out_w;
    for (int n = n0; n < n1; ++n) {
        const int oy = n / g->out_w, ox = n % g->out_w;
        for (int m = 0; m < bc->M; ++m) {
            const uint64_t *am = bc->a + (size_t)m * bc->K;
            int32_t d = 0;
            for (int cw = 0; cw < W; ++cw) {
                const int nch = C - 64 * cw < 64 ? C - 64 * cw : 64;
                for (int ky = 0; ky < ks; ++ky) {
                    const int iy = oy * g->stride - g->pad + ky;
                    if (iy < 0 || iy >= g->in_h)
                        continue;
                    for (int kx = 0; kx < ks; ++kx) {
                        const int ix = ox * g->stride - g->pad + kx;
                        if (ix < 0 || ix >= g->in_w)
                            continue;
                        const uint64_t *x =
                            in + cw * plane + (size_t)(iy + g->pad) * bc->pw + ix + g->pad;
                        d += word_dot(bc->mode, nch, am[(ky * ks + kx) * W + cw], x, pstride);
                    }
                }
            }
            if (o->out)
                o->out[(size_t)m * o->ldc + n] =
                    mdfi_bepi_value(d, o->alpha[m], o->beta[m], o->act);
            else
                mdfi_bout_put(o, N, m, (size_t)n, d);
        }
    }
}

const mdfi_bgemm_kernel mdfi_bgemm_ref = {
    .kind = MDFI_BK_REF, .mr = 1, .nr = 1, .b_block_words = 0,
    .workspace = ref_workspace, .conv = ref_conv,
};
