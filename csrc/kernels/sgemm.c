/* fp32 GEMM driver: the kernel table, A packing, B packing with implicit
 * im2col, and the cache-blocked loops around the per-ISA micro-kernels. */
#include "kernels/sgemm_impl.h"

#include <string.h>

const mdfi_sgemm_kernel *mdfi_sgemm_kernel_for(mdfi_isa isa)
{
    if (!mdfi_isa_available(isa))
        return NULL;
    switch (isa) {
    case MDFI_ISA_REF: return &mdfi_sgemm_ref;
#ifdef MDFI_HAVE_AVX2
    case MDFI_ISA_AVX2: return &mdfi_sgemm_avx2;
#endif
#ifdef MDFI_HAVE_AVX512
    case MDFI_ISA_AVX512: return &mdfi_sgemm_avx512;
#endif
#ifdef MDFI_HAVE_NEON
    case MDFI_ISA_NEON: return &mdfi_sgemm_neon;
#endif
    default: return NULL;
    }
}

const char *mdfi_sgemm_kernel_name(const mdfi_sgemm_kernel *k)
{
    return k ? mdfi_isa_name(k->isa) : "none";
}

/* The MR for M: fewest padded rows, weighted by each tile's speed.  Packing
 * and the call both derive it from M alone, so they always agree. */
static const mdfi_sgemm_tile *pick_tile(const mdfi_sgemm_kernel *k, int M)
{
    const mdfi_sgemm_tile *best = &k->tiles[0];
    long long best_cost = -1;
    for (int i = 0; i < k->ntiles; ++i) {
        const mdfi_sgemm_tile *t = &k->tiles[i];
        long long cost = (long long)((M + t->mr - 1) / t->mr) * t->mr * t->cost;
        if (best_cost < 0 || cost < best_cost) {
            best = t;
            best_cost = cost;
        }
    }
    return best;
}

/* Blocking.  K is cut into equal blocks of at most k->kc (the MR x kc A
 * micro-panel stays in L1 while the micro-kernel sweeps the B block), and
 * the packed B block kc x nc is sized to k->b_block_floats (L2).  Neither
 * depends on [n0, n1); nor does the result, since partial sums go through C
 * unchanged and each element keeps one fma chain in k order. */
typedef struct {
    int K, N, kc, nc;
} blocking;

/* The K block size: K cut into equal blocks of at most k->kc. */
static int k_block(const mdfi_sgemm_kernel *k, int K)
{
    int nkb = (K + k->kc - 1) / k->kc;
    return (K + nkb - 1) / nkb;
}

static blocking get_blocking(const mdfi_sgemm_kernel *k, const mdfi_conv_geom *g)
{
    blocking b;
    b.K = g->channels * g->ksize * g->ksize;
    b.N = g->out_h * g->out_w;
    b.kc = k_block(k, b.K);
    b.nc = k->b_block_floats / b.kc / k->nr * k->nr;
    if (b.nc < k->nr)
        b.nc = k->nr;
    int nmax = (b.N + k->nr - 1) / k->nr * k->nr;
    if (b.nc > nmax)
        b.nc = nmax;
    return b;
}

/* Packed A layout, per K block [pc, pc+kc) (see get_blocking): the block
 * starts at pc*Mp (Mp = M rounded up to MR) and holds Mp/MR panels of kc x MR,
 * panel i (rows i*MR..) at pc*Mp + i*MR*kc with
 *   [(k - pc)*MR + r] = A[i*MR + r][k]    (0 for rows >= M),
 * so a micro-kernel step reads MR consecutive floats and a K block of A is
 * one sequential stream.  MR = 1 (the reference) is a plain copy of A. */
size_t mdfi_sgemm_packed_a_size(const mdfi_sgemm_kernel *k, int M, int K)
{
    int mr = mdfi_sgemm_pack_mr(k, M);
    return (size_t)((M + mr - 1) / mr) * mr * K * sizeof(float);
}

int mdfi_sgemm_pack_mr(const mdfi_sgemm_kernel *k, int M)
{
    return pick_tile(k, M)->mr;
}

void mdfi_sgemm_pack_a_rows(const mdfi_sgemm_kernel *k, int M, int K, int i0, int i1,
                            const float *A, float *dst)
{
    int mr = mdfi_sgemm_pack_mr(k, M), kcb = k->conv ? K : k_block(k, K);
    size_t mp = (size_t)(M + mr - 1) / mr * mr;
    for (int pc = 0; pc < K; pc += kcb) {
        int kc = K - pc < kcb ? K - pc : kcb;
        for (int i = i0; i < i1; i += mr) {
            float *o = dst + (size_t)pc * mp + (size_t)i * kc;
            for (int kk = pc; kk < pc + kc; ++kk)
                for (int r = 0; r < mr; ++r)
                    *o++ = i + r < i1 ? A[(size_t)(i + r - i0) * K + kk] : 0.f;
        }
    }
}

size_t mdfi_sgemm_packed_at(const mdfi_sgemm_kernel *k, int M, int K, int i, int kk)
{
    int mr = mdfi_sgemm_pack_mr(k, M), kcb = k->conv ? K : k_block(k, K);
    int pc = kk / kcb * kcb, kc = K - pc < kcb ? K - pc : kcb;
    size_t mp = (size_t)(M + mr - 1) / mr * mr;
    return (size_t)pc * mp + (size_t)(i / mr * mr) * kc + (size_t)(kk - pc) * mr + i % mr;
}

void mdfi_sgemm_pack_a(const mdfi_sgemm_kernel *k, int M, int K, const float *A, float *dst)
{
    mdfi_sgemm_pack_a_rows(k, M, K, 0, M, A, dst);
}

/* Copies n floats with few fixed-size moves: whole 8-float blocks, then one
 * last block overlapping the previous (fixed sizes become vector moves even
 * in this portable file; a libc call per short run costs more). */
static inline void copy_floats(float *o, const float *s, int n)
{
    if (n >= 8) {
        for (int i = 0; i + 8 < n; i += 8)
            memcpy(o + i, s + i, 8 * sizeof(float));
        memcpy(o + n - 8, s + n - 8, 8 * sizeof(float));
    } else if (n >= 4) {
        memcpy(o, s, 4 * sizeof(float));
        memcpy(o + n - 4, s + n - 4, 4 * sizeof(float));
    } else {
        for (int i = 0; i < n; ++i)
            o[i] = s[i];
    }
}

static inline void zero_floats(float *o, int n)
{
    static const float zeros[8];
    if (n >= 8) {
        for (int i = 0; i + 8 < n; i += 8)
            memcpy(o + i, zeros, sizeof zeros);
        memcpy(o + n - 8, zeros, sizeof zeros);
    } else {
        for (int i = 0; i < n; ++i)
            o[i] = 0.f;
    }
}

/* Packed B block layout: columns [n0, n0+nc) in panels of nr, each panel
 * kc rows of nr floats (row kk of panel p at dst + (p*kc + kk)*nr), the last
 * panel zero-padded to nr columns.  Filled panel by panel, so writes are
 * sequential.
 *
 * Which input runs a panel row copies depends on (ky, kx) but not on the
 * channel, so each panel first lists, for every (ky, kx), its copies
 * {dst column, source offset in the channel plane, length} (one per output
 * row the panel touches, clipped to the image); each row of B is then zeros
 * overwritten by its list's runs from its channel's plane (k->fill, or
 * fill_panel below).  The list lives in the workspace: ks*ks*(nr+1)
 * entries at most. */
#define MAX_NR 64

/* Room for the copy list, its per-(ky, kx) index and the per-kx column
 * bounds, in floats. */
static size_t ops_floats(int ks, int nr)
{
    size_t r = (size_t)ks * ks;
    return (r * (nr + 1) * sizeof(mdfi_copy_op) + (r + 1 + 2 * ks) * sizeof(int)) /
           sizeof(float) + 1;
}

/* Fills ops with the copies of panel columns [n, n+w); first[r]..first[r+1]
 * are those of r = ky*ks + kx.  Output columns [lo[kx], hi[kx]) read the
 * image (0 <= ox*s - pad + kx*d < in_w). */
static void panel_ops(const mdfi_conv_geom *g, int pointwise, int n, int w, const int *lo,
                      const int *hi, mdfi_copy_op *ops, int *first)
{
    const int ks = g->ksize, s = g->stride, pad = g->pad, ow = g->out_w, d = g->dilation;
    if (pointwise) {   /* one run, across output rows */
        mdfi_copy_op op = {0, n, w};
        ops[0] = op;
        first[0] = 0;
        first[1] = 1;
        return;
    }
    mdfi_copy_op seg[MAX_NR];   /* {col, oy, ox}: the panel's pieces of output rows */
    int nseg = 0;
    for (int col = 0, oy = n / ow, ox = n % ow; col < w; ++oy, ox = 0) {
        mdfi_copy_op sg = {col, oy, ox};
        seg[nseg++] = sg;
        col += ow - ox;
    }
    int nops = 0;
    for (int ky = 0; ky < ks; ++ky)
        for (int kx = 0; kx < ks; ++kx) {
            first[ky * ks + kx] = nops;
            for (int i = 0; i < nseg; ++i) {
                int col = seg[i].dst, oy = seg[i].src, ox = seg[i].len;
                int end = ox + (w - col < ow - ox ? w - col : ow - ox);
                int iy = oy * g->stride_y - pad + ky * d;
                int a = ox > lo[kx] ? ox : lo[kx], b = end < hi[kx] ? end : hi[kx];
                if (iy >= 0 && iy < g->in_h && a < b) {
                    mdfi_copy_op op = {col + a - ox, iy * g->in_w + a * s + kx * d - pad,
                                       b - a};
                    ops[nops++] = op;
                }
            }
        }
    first[ks * ks] = nops;
}

/* Portable panel fill, any stride (see mdfi_sgemm_fill). */
static void fill_panel(float *o, int nr, int kc, int s, const float *in, size_t plane, int c,
                       int r, int rr, const mdfi_copy_op *ops, const int *first)
{
    for (int kk = 0; kk < kc; ++kk, o += nr) {
        const float *src = in + c * plane;
        const mdfi_copy_op *op = ops + first[r], *end = ops + first[r + 1];
        if (end - op != 1 || op->len != nr)   /* no single run covers the row */
            zero_floats(o, nr);
        for (; op < end; ++op) {
            if (s == 1) {
                copy_floats(o + op->dst, src + op->src, op->len);
            } else {
                for (int x = 0; x < op->len; ++x)
                    o[op->dst + x] = src[op->src + x * s];
            }
        }
        if (++r == rr) {
            r = 0;
            ++c;
        }
    }
}

/* last_nr: width of the last panel (nr, or nr/2 for a half-width edge tile). */
static void pack_b(const mdfi_sgemm_kernel *k, const mdfi_conv_geom *g, const float *in,
                   int k0, int kc, int n0, int nc, int nr, int last_nr, float *dst,
                   mdfi_copy_op *ops)
{
    const int ks = g->ksize, s = g->stride, rr = ks * ks;
    const size_t plane = (size_t)g->in_h * g->in_w;
    /* 1x1, stride 1, no padding: row k of B is input plane k. */
    const int pointwise = ks == 1 && s == 1 && g->pad == 0 && g->out_w == g->in_w &&
                          g->out_h == g->in_h;
    int *first = (int *)(ops + rr * (nr + 1)), *lo = first + rr + 1, *hi = lo + ks;
    for (int kx = 0; kx < ks; ++kx) {
        int xoff = kx * g->dilation - g->pad;
        lo[kx] = xoff >= 0 ? 0 : (-xoff + s - 1) / s;
        hi[kx] = g->in_w - 1 - xoff < 0 ? 0 : (g->in_w - 1 - xoff) / s + 1;
    }
    for (int p0 = 0; p0 < nc; p0 += nr, dst += (size_t)kc * nr) {
        const int w = nc - p0 < nr ? nc - p0 : nr;
        const int pnr = p0 + nr < nc ? nr : last_nr;
        panel_ops(g, pointwise, n0 + p0, w, lo, hi, ops, first);
        if (s == 1 && pnr == k->nr && k->fill)
            k->fill(dst, kc, in, plane, k0 / rr, k0 % rr, rr, ops, first);
        else
            fill_panel(dst, pnr, kc, s, in, plane, k0 / rr, k0 % rr, rr, ops, first);
    }
}

size_t mdfi_sgemm_workspace_size(const mdfi_sgemm_kernel *k, int M, const mdfi_conv_geom *g)
{
    if (k->workspace)
        return k->workspace(M, g);
    blocking b = get_blocking(k, g);
    size_t floats = (size_t)b.kc * b.nc;
    if (b.N == 1 && (size_t)b.K > floats)
        floats = (size_t)b.K;   /* the gemv path packs the whole column */
    return (floats + ops_floats(g->ksize, k->nr)) * sizeof(float);
}

/* The micro-kernels of K block [pc, pc + kc) over a packed B block of nc
 * columns (np panels, the last half wide when half): every MR rows of A
 * sweep the block (the A micro-panel in L1, the B block in L2). */
static void sweep(const mdfi_sgemm_tile *t, int nr, int M, int pc, int kc, int nc, int half,
                  unsigned flags, const float *packed_a, const float *pb, const float *bias,
                  float *C, size_t ldc)
{
    const int mr = t->mr, np = (nc + nr - 1) / nr;
    const size_t mp = (size_t)(M + mr - 1) / mr * mr;
    for (int i = 0; i < M; i += mr) {
        const float *a = packed_a + (size_t)pc * mp + (size_t)i * kc;
        int mv = M - i < mr ? M - i : mr;
        const float *bi = bias ? bias + i : NULL;
        float *crow = C + (size_t)i * ldc;
        for (int p = 0; p < np; ++p) {
            int nv = nc - p * nr < nr ? nc - p * nr : nr;
            mdfi_sgemm_ukr ukr = half && p == np - 1 ? t->ukr_half : t->ukr;
            ukr(kc, a, pb + (size_t)p * kc * nr, crow + p * nr, ldc, mv, nv, flags, bi);
        }
    }
}

/* A last panel of at most nr/2 columns is packed and computed half width
 * (the per-element arithmetic is the same). */
static int half_panel(const mdfi_sgemm_tile *t, int nr, int nc)
{
    return t->ukr_half && nc % nr && nc % nr <= nr / 2;
}

static mdfi_conv_geom plain_geom(int K, int N)
{
    const mdfi_conv_geom g = {K, 1, N, 1, 1, 0, 1, N, 1, 1};
    return g;
}

int mdfi_sgemm_plain_ok(const mdfi_sgemm_kernel *k, int K, int N)
{
    const mdfi_conv_geom g = plain_geom(K, N);
    const blocking b = get_blocking(k, &g);
    return !k->conv && b.kc == K && b.nc >= N;
}

size_t mdfi_sgemm_plain_b_floats(const mdfi_sgemm_kernel *k, int K, int N)
{
    /* panels nr wide, kc * nr apart, the last one half wide where it is packed so */
    const int np = (N + k->nr - 1) / k->nr, half = half_panel(&k->tiles[0], k->nr, N);
    return ((size_t)(np - 1) * k->nr + (size_t)(half ? k->nr / 2 : k->nr)) * K;
}

void mdfi_sgemm_plain_pack_b(const mdfi_sgemm_kernel *k, int K, int N, const float *B,
                             float *dst, void *workspace)
{
    const mdfi_conv_geom g = plain_geom(K, N);
    const int half = half_panel(&k->tiles[0], k->nr, N);
    pack_b(k, &g, B, 0, K, 0, N, k->nr, half ? k->nr / 2 : k->nr, dst, workspace);
}

void mdfi_sgemm_plain_mul(const mdfi_sgemm_kernel *k, int M, int K, int N, const float *packed_a,
                          const float *packed_b, float *C, size_t ldc, int accumulate)
{
    const mdfi_sgemm_tile *t = pick_tile(k, M);
    const int nr = k->nr, n1 = (N - 1) / nr * nr;
    const unsigned flags = MDFI_UK_FLAGS(accumulate, 1, MDFI_EPI_LINEAR);
    /* A last panel of a few columns (half width: the tiles with cols have
     * half tiles) goes to cols, once for all rows: the Winograd GEMMs' 49
     * or 50 tiles. */
    if (t->cols && N - n1 <= MDFI_SGEMM_COLS_MAX) {
        t->cols(M, K, packed_a, packed_b + (size_t)n1 * K, nr / 2, N - n1, C + n1, ldc, flags);
        N = n1;
    }
    sweep(t, nr, M, 0, K, N, half_panel(&k->tiles[0], nr, N), flags, packed_a, packed_b, NULL,
          C, ldc);
}

void mdfi_sgemm_conv(const mdfi_sgemm_kernel *k, int M, const mdfi_conv_geom *g,
                     const float *packed_a, const float *input, const float *bias,
                     mdfi_epilogue epi, float *C, size_t ldc, int n0, int n1,
                     void *workspace)
{
    if (n0 >= n1 || M <= 0)
        return;
    if (k->conv) {
        k->conv(M, g, packed_a, input, bias, epi, C, ldc, n0, n1, workspace);
        return;
    }
    const mdfi_sgemm_tile *t = pick_tile(k, M);
    const blocking b = get_blocking(k, g);
    const int nr = k->nr;
    float *ws = workspace;
    mdfi_copy_op *ops = (mdfi_copy_op *)(ws + (size_t)b.kc * b.nc);
    if (b.N == 1 && t->gemv) {
        pack_b(k, g, input, 0, b.K, 0, 1, 1, 1, ws, (mdfi_copy_op *)(ws + b.K));
        t->gemv(M, b.K, b.kc, packed_a, ws, bias, epi, C, ldc);
        return;
    }
    for (int jc = n0; jc < n1; jc += b.nc) {
        int nc = n1 - jc < b.nc ? n1 - jc : b.nc;
        int half = half_panel(t, nr, nc);
        for (int pc = 0; pc < b.K; pc += b.kc) {
            int kc = b.K - pc < b.kc ? b.K - pc : b.kc;
            pack_b(k, g, input, pc, kc, jc, nc, nr, half ? nr / 2 : nr, ws, ops);
            sweep(t, nr, M, pc, kc, nc, half, MDFI_UK_FLAGS(pc > 0, pc + kc == b.K, epi),
                  packed_a, ws, bias, C + (jc - n0), ldc);
        }
    }
}
