/* Winograd F(4,3) convolution (see winograd.h): the transforms, over the
 * tiles of a batch as vector lanes, around the fp32 GEMM. */
#include "kernels/winograd.h"

#include <stddef.h>
#include <string.h>

/* Tiles per batch: its transformed input (a*a*C floats a tile) in about
 * WINO_V_BYTES, between 16 and 128 tiles.  Output channels per block: the
 * GEMMs' results (a*a*mb floats a tile) in about WINO_M_BYTES. */
#define WINO_V_BYTES (128 * 1024)
#define WINO_M_BYTES (512 * 1024)

/* The transforms run over the tiles of a batch as lanes; a batch is padded
 * to a multiple of LANES (zero tiles) so the vector loops need no tail. */
#define LANES 8

/* F(4,3), points 0, 1, -1, 2, -2 and infinity: G (6 x 3); BT and AT are in
 * bt_pass and at_pass. */
static const double g4[18] = {1 / 4., 0, 0, -1 / 6., -1 / 6., -1 / 6., -1 / 6., 1 / 6., -1 / 6.,
                              1 / 24., 1 / 12., 1 / 6., 1 / 24., -1 / 12., 1 / 6., 0, 0, 1};

static size_t up16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

int mdfi_wino_shape_ok(const mdfi_conv_geom *g)
{
    return g->ksize == 3 && g->stride == 1 && g->stride_y == 1 && g->dilation == 1 &&
           g->out_h == g->in_h + 2 * g->pad - 2 && g->out_w == g->in_w + 2 * g->pad - 2 &&
           g->out_h > 0 && g->out_w > 0 && g->channels > 0;
}

/* Floats of one position's packed U for a block of rows output channels. */
static size_t pos_size(const mdfi_wino *w, int rows)
{
    return up16((mdfi_sgemm_packed_a_size(w->k, rows, w->C) + 3) / 4);
}

MDFI_COLD mdfi_status mdfi_wino_plan(mdfi_wino *w, const mdfi_sgemm_kernel *k, int m, int M,
                                     const mdfi_conv_geom *g, mdfi_errbuf *err)
{
    if (!k || !mdfi_wino_shape_ok(g) || m != 4 || M < 1)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "Winograd F(%d,3) does not take this "
                         "convolution", m);
    memset(w, 0, sizeof *w);
    w->k = k;
    w->m = m;
    w->a = m + 2;
    w->M = M;
    w->C = g->channels;
    w->in_h = g->in_h;
    w->in_w = g->in_w;
    w->pad = g->pad;
    w->out_h = g->out_h;
    w->out_w = g->out_w;
    w->tiles_x = (g->out_w + m - 1) / m;
    w->tiles_y = (g->out_h + m - 1) / m;
    size_t aa = (size_t)w->a * w->a, tiles = (size_t)w->tiles_x * w->tiles_y;
    size_t batch = WINO_V_BYTES / (aa * w->C * sizeof(float)) / LANES * LANES;
    batch = batch < 16 ? 16 : batch > 128 ? 128 : batch;
    tiles = (tiles + LANES - 1) / LANES * LANES;
    w->batch = (int)(batch < tiles ? batch : tiles);
    /* blocks of equal size, multiples of 24 rows (whole panels of every MR) */
    size_t mb = WINO_M_BYTES / (aa * w->batch * sizeof(float));
    mb = mb < 24 ? 24 : mb;
    w->nmb = (int)((M + mb - 1) / mb);
    w->mb = w->nmb > 1 ? ((M + w->nmb - 1) / w->nmb + 23) / 24 * 24 : M;
    w->nmb = (M + w->mb - 1) / w->mb;
    w->pos_floats = pos_size(w, w->mb);
    w->block_floats = aa * w->pos_floats;
    mdfi_conv_geom gg = {w->C, 1, w->batch, 1, 1, 0, 1, w->batch, 1, 1};
    size_t lanes = (size_t)w->batch;
    w->ws_bytes = (2 * up16(aa * lanes) + up16(aa * w->C * lanes) +
                   up16(aa * w->mb * lanes) + up16((size_t)m * m * lanes) + 2 * lanes) *
                      sizeof(float) +
                  mdfi_sgemm_workspace_size(k, w->mb, &gg);
    return MDFI_OK;
}

size_t mdfi_wino_packed_floats(const mdfi_wino *w)
{
    int last = w->M - (w->nmb - 1) * w->mb;
    return (size_t)(w->nmb - 1) * w->block_floats +
           (size_t)w->a * w->a * pos_size(w, last);
}

/* U = G g GT of one 3x3 kernel, in double, rounded once. */
static void weight_tf(const mdfi_wino *w, const float *g3, float *u)
{
    const double *G = g4;
    const int a = w->a;
    double t[6][3];
    for (int i = 0; i < a; ++i)
        for (int x = 0; x < 3; ++x)
            t[i][x] = G[i * 3] * g3[x] + G[i * 3 + 1] * g3[3 + x] + G[i * 3 + 2] * g3[6 + x];
    for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j)
            u[i * a + j] = (float)(t[i][0] * G[j * 3] + t[i][1] * G[j * 3 + 1] +
                                   t[i][2] * G[j * 3 + 2]);
}

MDFI_COLD void mdfi_wino_pack_rows(const mdfi_wino *w, int o0, int rows, const float *w3,
                                   float *packed)
{
    const int aa = w->a * w->a;
    float u[36];
    for (int o = o0; o < o0 + rows; ++o) {
        int b = o / w->mb, r = o - b * w->mb;
        int brows = w->M - b * w->mb < w->mb ? w->M - b * w->mb : w->mb;
        float *blk = packed + (size_t)b * w->block_floats;
        size_t ps = pos_size(w, brows);
        for (int c = 0; c < w->C; ++c) {
            weight_tf(w, w3 + ((size_t)(o - o0) * w->C + c) * 9, u);
            size_t at = mdfi_sgemm_packed_at(w->k, brows, w->C, r, c);
            for (int t = 0; t < aa; ++t)
                blk[t * ps + at] = u[t];
        }
    }
}

/* 4 lanes: GCC's vector extension (clang has it too), SSE on x86-64 and
 * NEON on AArch64 without any intrinsic; memcpy keeps loads and stores
 * unaligned and free of aliasing assumptions. */
typedef float v4 __attribute__((vector_size(16)));
static inline v4 ld(const float *p)
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st(float *p, v4 v)
{
    memcpy(p, &v, sizeof v);
}

/* o[u] = (BT x)[u], u < 6, for the 6-vectors x[s] = x + s*xs (lanes j < T). */
static void bt_pass(const float *x, size_t xs, float *o, size_t os, int T)
{
    const v4 four = {4, 4, 4, 4}, five = {5, 5, 5, 5};
    for (int j = 0; j < T; j += 4) {
        const float *p = x + j;
        v4 x0 = ld(p), x1 = ld(p + xs), x2 = ld(p + 2 * xs), x3 = ld(p + 3 * xs);
        v4 x4 = ld(p + 4 * xs), x5 = ld(p + 5 * xs);
        v4 t1 = x4 - four * x2, t2 = x3 - four * x1, t3 = x4 - x2, t4 = (x3 - x1) + (x3 - x1);
        float *q = o + j;
        st(q, four * x0 - five * x2 + x4);
        st(q + os, t1 + t2);
        st(q + 2 * os, t1 - t2);
        st(q + 3 * os, t3 + t4);
        st(q + 4 * os, t3 - t4);
        st(q + 5 * os, four * x1 - five * x3 + x5);
    }
}

/* o[v] = (AT x)[v], v < 4. */
static void at_pass(const float *x, size_t xs, float *o, size_t os, int T)
{
    const v4 four = {4, 4, 4, 4}, eight = {8, 8, 8, 8};
    for (int j = 0; j < T; j += 4) {
        const float *p = x + j;
        v4 x1 = ld(p + xs), x2 = ld(p + 2 * xs), x3 = ld(p + 3 * xs), x4 = ld(p + 4 * xs);
        v4 s12 = x1 + x2, d12 = x1 - x2, s34 = x3 + x4, d34 = x3 - x4;
        float *q = o + j;
        st(q, ld(p) + s12 + s34);
        st(q + os, d12 + (d34 + d34));
        st(q + 2 * os, s12 + four * s34);
        st(q + 3 * os, d12 + eight * d34 + ld(p + 5 * xs));
    }
}

typedef int v4i __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

/* y = act(y + bias) over n lanes (a multiple of 4); leaky is Darknet's
 * (float)(.1 * (double)x), lane by lane the same as the scalar form. */
static void finish(float *y, int n, float bias, mdfi_epilogue epi)
{
    const v4 b = {bias, bias, bias, bias}, zero = {0, 0, 0, 0};
    const v4d tenth = {.1, .1, .1, .1};
    for (int j = 0; j < n; j += 4) {
        v4 x = ld(y + j) + b;
        v4i pos = x > zero;
        if (epi == MDFI_EPI_RELU)
            x = (v4)(pos & (v4i)x);
        else if (epi == MDFI_EPI_LEAKY)
            x = (v4)((pos & (v4i)x) |
                     (~pos & (v4i)__builtin_convertvector(
                                 __builtin_convertvector(x, v4d) * tenth, v4)));
        st(y + j, x);
    }
}

/* d[(r*a + s)*T + j] = the a x a input patch of tile j < nt in plane in
 * (zeros outside the image); the tile's top left output is (oy[j], ox[j]). */
static void gather(const mdfi_wino *w, const float *in, const int *oy, const int *ox, int nt,
                   int T, float *d)
{
    const int a = w->a;
    for (int j = 0; j < nt; ++j) {
        int iy0 = oy[j] - w->pad, ix0 = ox[j] - w->pad;
        int inside = ix0 >= 0 && ix0 + a <= w->in_w;
        for (int r = 0; r < a; ++r) {
            float *o = d + (size_t)r * a * T + j;
            int iy = iy0 + r;
            const float *row = in + (ptrdiff_t)iy * w->in_w + ix0;
            if (iy < 0 || iy >= w->in_h) {
                for (int s = 0; s < a; ++s)
                    o[s * T] = 0.f;
            } else if (inside) {
                o[0] = row[0];
                o[T] = row[1];
                o[2 * T] = row[2];
                o[3 * T] = row[3];
                o[4 * T] = row[4];
                o[5 * T] = row[5];
            } else {
                for (int s = 0; s < a; ++s)
                    o[s * T] = ix0 + s >= 0 && ix0 + s < w->in_w ? row[s] : 0.f;
            }
        }
    }
}

void mdfi_wino_run(const mdfi_wino *w, const float *packed, const float *input,
                   const float *bias, mdfi_epilogue epi, float *C, size_t ldc, int y0,
                   int y1, int t0, int t1, int b, void *workspace)
{
    const int a = 6, m = 4, aa = 36, K = w->C, nt = t1 - t0;
    const int T = (nt + LANES - 1) / LANES * LANES;   /* lanes past nt: zero tiles */
    const int o0 = b * w->mb, rows = w->M - o0 < w->mb ? w->M - o0 : w->mb;
    const size_t lanes = (size_t)w->batch;
    float *d = workspace, *tmp = d + up16(aa * lanes), *v = tmp + up16(aa * lanes);
    float *mo = v + up16(aa * K * lanes), *y = mo + up16(aa * w->mb * lanes);
    int *oy = (int *)(y + up16((size_t)m * m * lanes)), *ox = oy + lanes;
    void *gws = ox + lanes;
    if (nt <= 0 || rows <= 0)
        return;
    for (int j = 0; j < nt; ++j) {   /* each tile's top left output */
        oy[j] = (t0 + j) / w->tiles_x * m;
        ox[j] = (t0 + j) % w->tiles_x * m;
    }
    /* V[t][c][j] = (BT d B)[t] of channel c, tile j */
    const size_t plane = (size_t)w->in_h * w->in_w, vs = (size_t)K * T;
    if (T > nt)
        memset(d, 0, aa * (size_t)T * sizeof(float));
    for (int c = 0; c < K; ++c) {
        gather(w, input + c * plane, oy, ox, nt, T, d);
        for (int r = 0; r < a; ++r)
            bt_pass(d + (size_t)r * a * T, T, tmp + (size_t)r * a * T, T, T);
        for (int u = 0; u < a; ++u)
            bt_pass(tmp + (size_t)u * T, (size_t)a * T, v + c * T + u * vs, a * vs, T);
    }
    /* M[t] = U[t] V[t]: rows x T each */
    const mdfi_conv_geom g = {K, 1, T, 1, 1, 0, 1, T, 1, 1};
    const float *u = packed + (size_t)b * w->block_floats;
    const size_t ps = pos_size(w, rows), ms = (size_t)rows * T;
    for (int t = 0; t < aa; ++t)
        mdfi_sgemm_conv(w->k, rows, &g, u + t * ps, v + t * vs, NULL, MDFI_EPI_LINEAR,
                        mo + t * ms, (size_t)T, 0, T, gws);
    /* Y = AT M A, + bias, activation, stored where the rows are in [y0, y1) */
    for (int o = 0; o < rows; ++o) {
        const float *mrow = mo + (size_t)o * T;
        for (int q = 0; q < a; ++q)
            at_pass(mrow + q * ms, a * ms, tmp + (size_t)q * T, (size_t)a * T, T);
        for (int p = 0; p < m; ++p)
            at_pass(tmp + (size_t)p * a * T, T, y + (size_t)p * m * T, T, T);
        finish(y, m * m * T, bias ? bias[o0 + o] : 0.f, epi);
        float *co = C + (size_t)(o0 + o) * ldc;
        for (int j = 0; j < nt; ++j) {
            int n = w->out_w - ox[j] < m ? w->out_w - ox[j] : m;
            int p0 = y0 - oy[j] > 0 ? y0 - oy[j] : 0, p1 = (y1 < w->out_h ? y1 : w->out_h) - oy[j];
            float *dst = co + (ptrdiff_t)(oy[j] - y0) * w->out_w + ox[j];
            const float *src = y + j;
            for (int p = p0; p < (p1 < m ? p1 : m); ++p)
                for (int q = 0; q < n; ++q)
                    dst[p * w->out_w + q] = src[(p * m + q) * T];
        }
    }
}
