/* Winograd F(4 x 4, 3 x 3) for fp32 3x3 stride-1 convolutions (points 0,
 * +-1, +-2 and infinity; docs/architecture.md, the Winograd path).
 *
 * An output tile of m x m (m = 4) needs an a x a input tile (a = m + 2 = 6).  Per tile:
 *   V = BT d B      (input transform, per input channel)
 *   M[t] = U[t] V[t] for each of the a*a positions t: a GEMM over the input
 *                   channels, U = G g GT the transformed weights
 *   Y = AT M A      (output transform), then bias and the epilogue activation.
 * The a*a GEMMs run on the fp32 GEMM (sgemm.h) as plain matrices: A = U[t]
 * (packed once at prepare, in blocks of mb output channels), B = V[t] of a
 * batch of tiles (input channels x tiles).  The transforms are portable C
 * over the tiles of a batch, which the compiler vectorizes.
 *
 * On the fly (otf): U for every layer is 4x the 3x3 weights (36 floats per
 * input-output pair instead of 9), too much where weights are large.  Then
 * the 3x3 taps are kept, packed per block of output channels and chunk of
 * kc input channels (in the GEMM's packed-A order of that block x chunk,
 * the nine taps of eight elements together), and a call transforms one chunk's 36 U planes
 * (U = G g GT of each pair, the 36 at once) into a buffer sized for L2 just
 * before the 36 GEMMs over that chunk, adding chunk by chunk into M.  The
 * input transform V is made once per call for all its blocks.
 *
 * Determinism: an output depends only on its own tile's arithmetic (the
 * GEMM's sums do not depend on the columns a call covers, the chunks are
 * fixed by the plan), so any split of the tiles and output blocks over
 * threads gives the same bits. */
#ifndef MDFI_KERNELS_WINOGRAD_H
#define MDFI_KERNELS_WINOGRAD_H

#include "base/error.h"
#include "kernels/sgemm.h"

typedef struct {
    const mdfi_sgemm_kernel *k;
    int m, a;                 /* output tile m x m, input tile a x a */
    int M, C;                 /* output and input channels */
    int in_h, in_w, pad, out_h, out_w;
    int tiles_x, tiles_y;
    int batch;                /* tiles per GEMM (its N) */
    int pw, ph;               /* the gather's padded input rows: floats a row, rows */
    int mb, nmb;              /* output channels per block, blocks */
    size_t block_floats;      /* packed U of one full block, all positions */
    size_t pos_floats;        /* packed U of one position of a full block */
    size_t ws_bytes;          /* per-thread workspace */
    int otf;                  /* U made per call from the taps (above) */
    int kc, nkc;              /* otf: input channels per chunk, chunks */
    size_t plane_floats;      /* otf: one U plane of a full block x chunk (+ padding) */
    size_t chunk_floats;      /* otf: the taps of a full block x chunk */
} mdfi_wino;

/* Whether the geometry is one Winograd computes: 3x3, stride 1, dilation 1,
 * out = in + 2 pad - 2. */
int mdfi_wino_shape_ok(const mdfi_conv_geom *g);

/* Plans F(m,3), m = 4 (the one built), for M outputs of geometry g
 * (mdfi_wino_shape_ok) on kernel k, with U stored (otf = 0) or made per call. */
mdfi_status mdfi_wino_plan(mdfi_wino *w, const mdfi_sgemm_kernel *k, int m, int M,
                           const mdfi_conv_geom *g, int otf, mdfi_errbuf *err);
/* Floats of the packed transformed weights (64-byte aligned, zeroed by the caller). */
size_t mdfi_wino_packed_floats(const mdfi_wino *w);
/* Transforms rows [o0, o0 + rows) of the weights w3 ([rows][C][3][3], BN
 * folded) into their places in packed (otf: puts their taps there). */
void mdfi_wino_pack_rows(const mdfi_wino *w, int o0, int rows, const float *w3,
                         float *packed);
/* Tiles in raster order: tile t covers output rows (t / tiles_x) * m ... */
static inline int mdfi_wino_tiles(const mdfi_wino *w)
{
    return w->tiles_x * w->tiles_y;
}
/* Computes tiles [t0, t1) (at most w->batch) for output blocks [b0, b1) and
 * stores their outputs in rows [y0, y1): output (o, y, x) at
 * C[o * ldc + (y - y0) * out_w + x].  workspace: w->ws_bytes, 64-byte aligned. */
void mdfi_wino_run(const mdfi_wino *w, const float *packed, const float *input,
                   const float *bias, mdfi_epilogue epi, float *C, size_t ldc, int y0,
                   int y1, int t0, int t1, int b0, int b1, void *workspace);

#endif
