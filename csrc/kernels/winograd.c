/* Winograd F(4,3) convolution (see winograd.h): the transforms, over the
 * tiles of a batch as vector lanes, around the fp32 GEMM. */
#include "kernels/winograd.h"

#include <stddef.h>
#include <string.h>

#include "kernels/sgemm_impl.h"

/* Tiles per batch: its transformed input (a*a*C floats a tile) in about
 * WINO_V_BYTES, between 16 and 128 tiles: each batch reads all of U again
 * (yolov3-tiny's layer 6, 64 -> 128 at 52x52, U 1.2 MB: 16 tiles a batch
 * 2.04 ms, 56 tiles 1.92).  Output channels per block: the GEMMs' results
 * (a*a*mb floats a tile) in about WINO_M_BYTES. */
#define WINO_V_BYTES (512 * 1024)
#define WINO_M_BYTES (512 * 1024)
/* On the fly: input channels per chunk, and one chunk's 36 U planes (a*a*kc
 * floats per output channel) in about WINO_U_BYTES, so that they are still
 * in L2 when the GEMMs read them. */
#define WINO_OTF_KC 128
/* On the fly, a batch's transformed input (packed for the GEMM) in up to
 * WINO_OTF_V_BYTES: every batch transforms the weights again, so fewer,
 * larger batches pay (yolov3-tiny's layer 21, 384 -> 256 at 26x26: 4
 * batches of 16 tiles 14 ms, 2 of 32 7.9 ms, 1 of 56 6.8 ms; 2 MB: 2 of 32,
 * against 4 MB's 3 MB more per thread). */
#define WINO_OTF_V_BYTES (2 << 20)
#define WINO_U_BYTES (256 * 1024)

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

/* Floats of a packed rows x K matrix, rounded up to 16. */
static size_t psize(const mdfi_wino *w, int rows, int K)
{
    return up16((mdfi_sgemm_packed_a_size(w->k, rows, K) + 3) / 4);
}

/* Floats of one position's packed U for a block of rows output channels. */
static size_t pos_size(const mdfi_wino *w, int rows)
{
    return psize(w, rows, w->C);
}

/* On the fly, where the GEMM takes a packed B (mdfi_sgemm_plain_ok): the
 * floats of one chunk's V[t] packed once per call, for all its blocks; else 0. */
static size_t vq_size(const mdfi_wino *w)
{
    return mdfi_sgemm_plain_ok(w->k, w->kc, w->batch)
               ? up16(mdfi_sgemm_plain_b_floats(w->k, w->kc, w->batch))
               : 0;
}

/* Blocks of equal size, multiples of 24 rows (whole panels of every MR),
 * about mb rows each. */
static void split_blocks(mdfi_wino *w, size_t mb)
{
    mb = mb < 24 ? 24 : mb;
    w->nmb = (int)((w->M + mb - 1) / mb);
    w->mb = w->nmb > 1 ? ((w->M + w->nmb - 1) / w->nmb + 23) / 24 * 24 : w->M;
    w->nmb = (w->M + w->mb - 1) / w->mb;
}

MDFI_COLD mdfi_status mdfi_wino_plan(mdfi_wino *w, const mdfi_sgemm_kernel *k, int m, int M,
                                     const mdfi_conv_geom *g, int otf, mdfi_errbuf *err)
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
    size_t batch = (otf ? WINO_OTF_V_BYTES : WINO_V_BYTES) / (aa * w->C * sizeof(float)) /
                   LANES * LANES;
    batch = batch < 16 ? 16 : batch > 128 ? 128 : batch;
    tiles = (tiles + LANES - 1) / LANES * LANES;
    w->batch = (int)(batch < tiles ? batch : tiles);
    w->otf = otf;
    if (otf) {   /* the taps of a block: nkc chunks (weight_tf_planes' order) */
        w->kc = w->C < WINO_OTF_KC ? w->C : WINO_OTF_KC;
        w->nkc = (w->C + w->kc - 1) / w->kc;
        split_blocks(w, WINO_U_BYTES / (aa * w->kc * sizeof(float)) / 24 * 24);
        /* an odd number of cache lines apart: the 9 taps read and the 36
         * planes written per element fall in different cache sets (6 KB
         * apart, they shared two of L1's, which made the transform ten
         * times slower) */
        w->plane_floats = psize(w, w->mb, w->kc) | 16;
        w->chunk_floats = 9 * psize(w, w->mb, w->kc);
        w->block_floats = (size_t)w->nkc * w->chunk_floats;
    } else {
        split_blocks(w, WINO_M_BYTES / (aa * w->batch * sizeof(float)));
        w->pos_floats = pos_size(w, w->mb);
        w->block_floats = aa * w->pos_floats;
    }
    mdfi_conv_geom gg = {w->C, 1, w->batch, 1, 1, 0, 1, w->batch, 1, 1};
    size_t lanes = (size_t)w->batch;
    /* the input rows of a batch's tile rows, zero-padded (gather) */
    int trows = (w->batch - 1) / w->tiles_x + 2;
    w->pw = m * w->tiles_x + 4;
    w->ph = m * (trows < w->tiles_y ? trows : w->tiles_y) + 2;
    w->ws_bytes = (2 * up16(aa * lanes) + up16(aa * (otf && vq_size(w) ? w->kc : w->C) * lanes) +
                   up16(aa * w->mb * lanes) + up16((size_t)m * m * lanes) + up16(3 * lanes) +
                   up16((size_t)w->pw * w->ph) + aa * w->plane_floats +
                   (otf ? up16((size_t)w->mb * lanes) + aa * w->nkc * vq_size(w) : 0)) *
                      sizeof(float) +
                  mdfi_sgemm_workspace_size(k, w->mb, &gg);
    return MDFI_OK;
}

size_t mdfi_wino_packed_floats(const mdfi_wino *w)
{
    if (w->otf)
        return (size_t)w->nmb * w->block_floats;
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
        for (int c = 0; w->otf && c < w->C; ++c) {   /* the taps, chunk by chunk */
            const int q = c / w->kc, kcq = w->C - q * w->kc < w->kc ? w->C - q * w->kc : w->kc;
            const size_t e = mdfi_sgemm_packed_at(w->k, brows, kcq, r, c - q * w->kc);
            float *pl = blk + (size_t)q * w->chunk_floats + e / 8 * 72 + e % 8;
            for (int t = 0; t < 9; ++t)
                pl[8 * t] = w3[((size_t)(o - o0) * w->C + c) * 9 + t];
        }
        if (w->otf)
            continue;
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

/* Lane shuffles: GCC >= 12 and clang have __builtin_shufflevector, older
 * GCC __builtin_shuffle (a mask of lane indices into a then b). */
#if defined(__clang__) || __GNUC__ >= 12
#define SHUF(x, y, i, j, k, l) __builtin_shufflevector(x, y, i, j, k, l)
#else
#define SHUF(x, y, i, j, k, l) __builtin_shuffle(x, y, (v4i){i, j, k, l})
#endif

/* r[i] = (x0[i], x1[i], x2[i], x3[i]): a 4 x 4 transpose. */
static inline void transpose4(v4 x0, v4 x1, v4 x2, v4 x3, v4 r[4])
{
    v4 t0 = SHUF(x0, x1, 0, 4, 1, 5), t1 = SHUF(x2, x3, 0, 4, 1, 5);
    v4 t2 = SHUF(x0, x1, 2, 6, 3, 7), t3 = SHUF(x2, x3, 2, 6, 3, 7);
    r[0] = SHUF(t0, t1, 0, 1, 4, 5);
    r[1] = SHUF(t0, t1, 2, 3, 6, 7);
    r[2] = SHUF(t2, t3, 0, 1, 4, 5);
    r[3] = SHUF(t2, t3, 2, 3, 6, 7);
}

/* G x for the 3-vector (x0, x1, x2), the rows of g4 written out, stored
 * at o, o + os, ... o + 5 os. */
static inline void g_rows(v4 x0, v4 x1, v4 x2, float *o, size_t os)
{
    const v4 c4 = {.25f, .25f, .25f, .25f}, c6 = {1 / 6.f, 1 / 6.f, 1 / 6.f, 1 / 6.f};
    const v4 c12 = {1 / 12.f, 1 / 12.f, 1 / 12.f, 1 / 12.f};
    const v4 c24 = {1 / 24.f, 1 / 24.f, 1 / 24.f, 1 / 24.f};
    const v4 s = x0 + x2, q = c24 * x0 + c6 * x2;
    st(o, c4 * x0);
    st(o + os, -c6 * (s + x1));
    st(o + 2 * os, -c6 * (s - x1));
    st(o + 3 * os, q + c12 * x1);
    st(o + 4 * os, q - c12 * x1);
    st(o + 5 * os, x2);
}

/* On the fly: the 36 planes of U = G g GT (us floats apart, position i*6+j)
 * from the taps of g, n elements (a multiple of 8) of a packed A, stored
 * eight elements' tap t together (g[(e / 8) * 72 + t * 8 + e % 8], tap t =
 * ky*3+kx: one stream to read), all 36 of an element at once: H = g GT by
 * rows (into h, 18 vectors), then G H by columns.  (Rows of G g first, all
 * in registers, measured 7 % slower on layer 12 of yolov3-tiny.)  The
 * kernel's own form where it has one (x86/wino_avx2.c). */
static void weight_tf_planes(const float *g, float *u, size_t us, size_t n)
{
    float h[18 * 4];
    for (size_t e = 0; e < n; e += 4) {
        const float *p = g + e / 8 * 72 + e % 8;
        for (int a = 0; a < 3; ++a, p += 24)
            g_rows(ld(p), ld(p + 8), ld(p + 16), h + 24 * a, 4);
        for (int j = 0; j < 6; ++j)
            g_rows(ld(h + 4 * j), ld(h + 24 + 4 * j), ld(h + 48 + 4 * j), u + j * us + e,
                   6 * us);
    }
}

/* y = act(y + bias) over n lanes (a multiple of 4); leaky is Darknet's
 * (float)(.1 * (double)x), which x / 10.f equals for every float (checked
 * exhaustively, tests/c/test_act.c). */
static void finish(float *y, int n, float bias, mdfi_epilogue epi)
{
    const v4 b = {bias, bias, bias, bias}, zero = {0, 0, 0, 0}, ten = {10, 10, 10, 10};
    for (int j = 0; j < n; j += 4) {
        v4 x = ld(y + j) + b;
        v4i pos = x > zero;
        if (epi == MDFI_EPI_RELU)
            x = (v4)(pos & (v4i)x);
        else if (epi == MDFI_EPI_LEAKY)
            x = (v4)((pos & (v4i)x) | (~pos & (v4i)(x / ten)));
        st(y + j, x);
    }
}

/* The first of four tiles of one tile row to take together with tile j:
 * j itself, or (at a row's end) the row's last four tiles, which overlap
 * tiles already done (they are written again with the same values); -1 if
 * j's row has fewer than four tiles in the batch. */
static int group4(const int *oy, int nt, int j)
{
    int k = j;
    if (j + 3 < nt && oy[j + 3] == oy[j])
        return j;
    while (k + 1 < nt && oy[k + 1] == oy[j])
        ++k;
    return k >= 3 && oy[k - 3] == oy[j] ? k - 3 : -1;
}

/* d[(r*a + s)*T + j] = the a x a patch of tile j < nt, read from P (the
 * input rows of the batch's tile rows, zero-padded, pw floats apart; tile
 * j's patch at P + at[j]).  Four tiles of a row, patches 4 floats apart, are
 * five loads and a transpose per patch row. */
static void gather(const float *P, int pw, const int *at, const int *oy, int nt, int T,
                   float *d)
{
    for (int j = 0; j < nt;) {
        int g = group4(oy, nt, j);
        if (g < 0) {
            for (int r = 0; r < 6; ++r)
                for (int s = 0; s < 6; ++s)
                    d[(size_t)(r * 6 + s) * T + j] = P[at[j] + r * pw + s];
            ++j;
            continue;
        }
        for (int r = 0; r < 6; ++r) {
            const float *p = P + at[g] + r * pw;
            float *o = d + (size_t)r * 6 * T + g;
            v4 x[4], x4 = ld(p + 16);
            transpose4(ld(p), ld(p + 4), ld(p + 8), ld(p + 12), x);
            for (int s = 0; s < 4; ++s)
                st(o + s * T, x[s]);
            st(o + 4 * T, SHUF(x[0], x4, 1, 2, 3, 4));
            st(o + 5 * T, SHUF(x[1], x4, 1, 2, 3, 5));
        }
        j = g + 4;
    }
}

void mdfi_wino_run(const mdfi_wino *w, const float *packed, const float *input,
                   const float *bias, mdfi_epilogue epi, float *C, size_t ldc, int y0,
                   int y1, int t0, int t1, int b0, int b1, void *workspace)
{
    const int a = 6, m = 4, aa = 36, K = w->C, nt = t1 - t0, pw = w->pw;
    const int T = (nt + LANES - 1) / LANES * LANES;   /* lanes past nt: zero tiles */
    const size_t lanes = (size_t)w->batch;
    const size_t vq = w->otf ? vq_size(w) : 0;
    float *d = workspace, *tmp = d + up16(aa * lanes), *v = tmp + up16(aa * lanes);
    float *mo = v + up16(aa * (vq ? w->kc : K) * lanes), *y = mo + up16(aa * w->mb * lanes);
    float *P = y + up16((size_t)m * m * lanes);
    float *ub = P + up16((size_t)pw * w->ph), *acc = ub + aa * w->plane_floats;
    float *vp = acc + (w->otf ? up16((size_t)w->mb * lanes) : 0);
    int *oy = (int *)(vp + aa * w->nkc * vq), *ox = oy + lanes;
    int *at = ox + lanes;
    void *gws = (int *)oy + up16(3 * lanes);   /* 64-byte aligned */
    if (nt <= 0 || b0 >= b1)
        return;
    for (int j = 0; j < nt; ++j) {   /* each tile's top left output, its patch in P */
        oy[j] = (t0 + j) / w->tiles_x * m;
        ox[j] = (t0 + j) % w->tiles_x * m;
        at[j] = (oy[j] - oy[0]) * pw + ox[j];
    }
    /* P row i, column x: input row oy[0] - pad + i, column x - pad */
    const int iy0 = oy[0] - w->pad, prows = oy[nt - 1] - oy[0] + a;
    memset(P, 0, (size_t)pw * prows * sizeof(float));
    /* V[t][c][j] = (BT d B)[t] of channel c, tile j: once for every block.
     * With a packed B (vq), V is made chunk by chunk (v holding one chunk)
     * and each chunk's 36 matrices packed at once. */
    const size_t plane = (size_t)w->in_h * w->in_w, vs = (size_t)(vq ? w->kc : K) * T;
    if (T > nt)
        memset(d, 0, aa * (size_t)T * sizeof(float));
    for (int c = 0, c0 = 0; c < K; ++c) {
        for (int i = 0; i < prows; ++i)
            if (iy0 + i >= 0 && iy0 + i < w->in_h)
                memcpy(P + (size_t)i * pw + w->pad, input + c * plane + (size_t)(iy0 + i) * w->in_w,
                       w->in_w * sizeof(float));
        gather(P, pw, at, oy, nt, T, d);
        for (int r = 0; r < a; ++r)
            bt_pass(d + (size_t)r * a * T, T, tmp + (size_t)r * a * T, T, T);
        for (int u = 0; u < a; ++u)
            bt_pass(tmp + (size_t)u * T, (size_t)a * T, v + (c - c0) * T + u * vs, a * vs, T);
        if (vq && (c + 1 - c0 == w->kc || c + 1 == K)) {
            for (int t = 0; t < aa; ++t)
                mdfi_sgemm_plain_pack_b(w->k, c + 1 - c0, T, v + t * vs,
                                        vp + ((size_t)t * w->nkc + c0 / w->kc) * vq, gws);
            c0 = c + 1;
        }
    }
    /* On the fly the GEMMs take the nt real tiles, not the zero lanes up to
     * T: B packed T wide has the panels of nt wide where the panels are a
     * multiple of 16 (and half panels of 8) wide, as on x86 (at the edge,
     * cols then does the 49th or 50th column the 16-wide kernel's way). */
    const int ng = vq && w->k->nr % 16 == 0 ? nt : T;
    for (int b = b0; b < b1; ++b) {
        const int o0 = b * w->mb, rows = w->M - o0 < w->mb ? w->M - o0 : w->mb;
        const size_t ms = (size_t)rows * T;
        /* the lanes the GEMMs skip: zeros, kept from block to block while the
         * layout (rows) stays; nothing but the GEMMs writes mo */
        for (size_t r = 0; ng < T && (b == b0 || rows != w->mb) && r < (size_t)aa * rows; ++r)
            memset(mo + r * T + ng, 0, (size_t)(T - ng) * sizeof(float));
        const float *blk = packed + (size_t)b * w->block_floats;
        /* M[t] = U[t] V[t]: rows x T each */
        for (int q = 0; w->otf && q < w->nkc; ++q) {   /* chunk by chunk, summed into M */
            const int c0 = q * w->kc, kcq = K - c0 < w->kc ? K - c0 : w->kc;
            const mdfi_conv_geom g = {kcq, 1, T, 1, 1, 0, 1, T, 1, 1};
            (w->k->wino_u ? w->k->wino_u : weight_tf_planes)(
                blk + (size_t)q * w->chunk_floats, ub, w->plane_floats, psize(w, rows, kcq));
            /* the next chunk's taps (the next block's first), fetched from
             * memory during these GEMMs: the transform itself is too short
             * a stream to hide the latency.  Into L2 only (locality 1): into
             * L1 too they evicted the GEMMs' operands (yolov3-tiny's on the
             * fly layers 20.2 -> 19.5 ms, AMD EPYC with AVX-512) */
            const float *next = q + 1 < w->nkc ? blk + (size_t)(q + 1) * w->chunk_floats
                                : b + 1 < b1 ? blk + w->block_floats : NULL;
            const size_t share = (w->chunk_floats / aa + 15) & ~(size_t)15;
            for (int t = 0; t < aa; ++t) {
                float *mt = mo + t * ms;
                for (size_t i = t * share; next && i < (t + 1) * share && i < w->chunk_floats;
                     i += 16)
                    __builtin_prefetch(next + i, 0, 1);
                if (vq) {   /* summed into M by the micro-kernels */
                    mdfi_sgemm_plain_mul(w->k, rows, kcq, ng, ub + t * w->plane_floats,
                                         vp + ((size_t)t * w->nkc + q) * vq, mt, (size_t)T, q);
                    continue;
                }
                mdfi_sgemm_conv(w->k, rows, &g, ub + t * w->plane_floats,
                                v + t * vs + (size_t)c0 * T, NULL, MDFI_EPI_LINEAR, q ? acc : mt,
                                (size_t)T, 0, T, gws);
                for (size_t i = 0; q && i < ms; i += 4)   /* ms: a multiple of 8 */
                    st(mt + i, ld(mt + i) + ld(acc + i));
            }
        }
        if (!w->otf) {
            const mdfi_conv_geom g = {K, 1, T, 1, 1, 0, 1, T, 1, 1};
            const size_t ps = pos_size(w, rows);
            for (int t = 0; t < aa; ++t)
                mdfi_sgemm_conv(w->k, rows, &g, blk + t * ps, v + t * vs, NULL, MDFI_EPI_LINEAR,
                                mo + t * ms, (size_t)T, 0, T, gws);
        }
        /* Y = AT M A, + bias, activation, stored where the rows are in [y0, y1) */
        for (int o = 0; o < rows; ++o) {
            const float *mrow = mo + (size_t)o * T;
            for (int q = 0; q < a; ++q)
                at_pass(mrow + q * ms, a * ms, tmp + (size_t)q * T, (size_t)a * T, T);
            for (int p = 0; p < m; ++p)
                at_pass(tmp + (size_t)p * a * T, T, y + (size_t)p * m * T, T, T);
            finish(y, m * m * T, bias ? bias[o0 + o] : 0.f, epi);
            float *co = C + (size_t)(o0 + o) * ldc;
            /* four tiles (lanes) at a time: row p of tile j + k is r[k] */
            for (int j = 0; j < nt; j += 4)
                for (int p = 0; p < m; ++p) {
                    const float *s = y + (size_t)p * m * T + j;
                    v4 r[4];
                    transpose4(ld(s), ld(s + T), ld(s + 2 * T), ld(s + 3 * T), r);
                    for (int k = 0; k < 4 && j + k < nt; ++k) {
                        int row = oy[j + k] + p, n = w->out_w - ox[j + k];
                        if (row < y0 || row >= y1 || row >= w->out_h)
                            continue;
                        float *dst = co + (ptrdiff_t)(row - y0) * w->out_w + ox[j + k], t[4];
                        if (n >= 4) {
                            st(dst, r[k]);
                        } else {
                            st(t, r[k]);
                            memcpy(dst, t, n * sizeof(float));
                        }
                    }
                }
        }
    }
}
