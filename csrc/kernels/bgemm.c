/* Binary convolution driver: quantizers and input packing, the kernel
 * table, weight packing, B packing with implicit im2col on bit tensors, the
 * padding correction, the epilogues and the threshold folding. */
#include "kernels/bgemm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

/* Prepare-time code is MDFI_COLD: built for size (the program must stay small). */
#define COLD MDFI_COLD
/* Whether the build has a kernel that takes mask rows for border panels
 * (ukr_masked: NEON's); the others are grouped and take the halo back. */
#ifdef MDFI_HAVE_NEON
#define MASK_ROWS 1
#else
#define MASK_ROWS 0
#endif

/* ---- quantizers ----------------------------------------------------------- */

COLD void mdfi_bquant_init(mdfi_bquant *q, mdfi_bmode mode, float step)
{
    memset(q, 0, sizeof *q);
    q->mode = mode;
    q->step = step;
    switch (mode) {
    case MDFI_BMODE_TERNARY:
        q->levels = 3;
        q->planes = 2;
        q->t[1] = 0.5f * step;
        q->t[0] = nextafterf(-q->t[1], -INFINITY);
        /* -1: not positive, nonzero; 0: nothing; +1: both */
        q->code[0] = 2, q->code[1] = 0, q->code[2] = 3;
        q->value[0] = -1, q->value[1] = 0, q->value[2] = 1;
        break;
    case MDFI_BMODE_2BIT:
        q->levels = 4;
        q->planes = 2;
        q->t[0] = 0.5f * step;
        q->t[1] = 1.5f * step;
        q->t[2] = 2.5f * step;
        for (int i = 0; i < 4; ++i)
            q->code[i] = (unsigned char)i, q->value[i] = (signed char)i;
        break;
    default:
        q->mode = MDFI_BMODE_SIGN;
        q->step = 1.f;
        q->levels = 2;
        q->planes = 1;
        q->t[0] = 0.f;
        q->code[0] = 0, q->code[1] = 1;
        q->value[0] = -1, q->value[1] = 1;
        break;
    }
}

size_t mdfi_btensor_words(int planes, int c, int h, int w)
{
    return (size_t)planes * mdfi_bwords(c) * (size_t)h * (size_t)w;
}

/* Portable row packer (see mdfi_bgemm_pack_row).  Thresholds as in
 * mdfi_bquant: planes from the compares c_i = x > t_i (t ascending):
 *   SIGN c0;  TERNARY pos = c1, nonzero = c1 | !c0;  2BIT bit0 = c0^c1^c2, bit1 = c1. */
void mdfi_bgemm_pack_row_portable(const mdfi_bquant *q, int C, int W, const float *in,
                                  size_t cstride, uint64_t *out, size_t wstride)
{
    const int Wd = mdfi_bwords(C);
    const size_t pstride = (size_t)Wd * wstride;
    for (int cw = 0; cw < Wd; ++cw) {
        const int c0 = 64 * cw, cn = C - c0 < 64 ? C - c0 : 64;
        uint64_t *o0 = out + (size_t)cw * wstride, *o1 = o0 + pstride;
        for (int i = 0; i < W; ++i)
            o0[i] = 0;
        if (q->planes > 1)
            for (int i = 0; i < W; ++i)
                o1[i] = 0;
        for (int ci = 0; ci < cn; ++ci) {
            const float *x = in + (size_t)(c0 + ci) * cstride;
            if (q->mode == MDFI_BMODE_SIGN) {
                for (int i = 0; i < W; ++i)
                    o0[i] |= (uint64_t)(x[i] > 0.f) << ci;
            } else if (q->mode == MDFI_BMODE_TERNARY) {
                const float lo = q->t[0], hi = q->t[1];
                for (int i = 0; i < W; ++i) {
                    uint64_t pos = x[i] > hi, neg = !(x[i] > lo);
                    o0[i] |= pos << ci;
                    o1[i] |= (pos | neg) << ci;
                }
            } else {
                const float t0 = q->t[0], t1 = q->t[1], t2 = q->t[2];
                for (int i = 0; i < W; ++i) {
                    uint64_t a = x[i] > t0, b = x[i] > t1, c = x[i] > t2;
                    o0[i] |= (a ^ b ^ c) << ci;
                    o1[i] |= b << ci;
                }
            }
        }
    }
}

void mdfi_bpack_input(const mdfi_bquant *q, int c, size_t hw, const float *in, uint64_t *out,
                      size_t p0, size_t p1)
{
    for (size_t s = p0; s < p1; s += 4096) {   /* rows of at most 4096 pixels */
        size_t e = p1 - s < 4096 ? p1 : s + 4096;
        mdfi_bgemm_pack_row_portable(q, c, (int)(e - s), in + s, hw, out + s, hw);
    }
}

/* ---- kernel table ------------------------------------------------------------ */

static const char kind_names[MDFI_BK_COUNT][14] = {"ref", "popcnt", "avx2", "avx512vpopcnt",
                                                   "neon"};

const char *mdfi_bgemm_kind_name(mdfi_bkind kind)
{
    return (unsigned)kind < MDFI_BK_COUNT ? kind_names[kind] : "?";
}

COLD int mdfi_bgemm_kind_parse(const char *name, mdfi_bkind *kind)
{
    for (int i = 0; name && i < MDFI_BK_COUNT; ++i)
        if (!strcmp(name, kind_names[i])) {
            *kind = (mdfi_bkind)i;
            return 0;
        }
    return -1;
}

const char *mdfi_bgemm_kernel_name(const mdfi_bgemm_kernel *k)
{
    return k ? mdfi_bgemm_kind_name(k->kind) : "none";
}

COLD const mdfi_bgemm_kernel *mdfi_bgemm_kernel_get(mdfi_bkind kind)
{
    unsigned f = mdfi_cpu_features();
    (void)f;
    switch (kind) {
    case MDFI_BK_REF: return &mdfi_bgemm_ref;
#ifdef MDFI_HAVE_POPCNT
    case MDFI_BK_POPCNT: return (f & MDFI_CPU_POPCNT) ? &mdfi_bgemm_popcnt : NULL;
#endif
#ifdef MDFI_HAVE_AVX2
    case MDFI_BK_AVX2: return (f & MDFI_CPU_AVX2) ? &mdfi_bgemm_avx2 : NULL;
#endif
#ifdef MDFI_HAVE_AVX512VPOPCNT
    case MDFI_BK_AVX512VPOPCNT:
        return (f & MDFI_CPU_AVX512) && (f & MDFI_CPU_VPOPCNT) && (f & MDFI_CPU_VNNI)
                   ? &mdfi_bgemm_avx512vpopcnt
                   : NULL;
#endif
#ifdef MDFI_HAVE_NEON
    case MDFI_BK_NEON: return (f & MDFI_CPU_NEON) ? &mdfi_bgemm_neon : NULL;
#endif
    default: return NULL;
    }
}

COLD const mdfi_bgemm_kernel *mdfi_bgemm_kernel_select(mdfi_isa isa)
{
    const mdfi_bgemm_kernel *k = NULL;
    switch (isa) {
    case MDFI_ISA_AVX512:
        k = mdfi_bgemm_kernel_get(MDFI_BK_AVX512VPOPCNT);
        if (!k)
            k = mdfi_bgemm_kernel_get(MDFI_BK_AVX2);
        break;
    case MDFI_ISA_AVX2: k = mdfi_bgemm_kernel_get(MDFI_BK_AVX2); break;
    case MDFI_ISA_NEON: k = mdfi_bgemm_kernel_get(MDFI_BK_NEON); break;
    default:
        if (mdfi_isa_best() == MDFI_ISA_REF)
            k = mdfi_bgemm_kernel_get(MDFI_BK_POPCNT);
        break;
    }
    return k ? k : &mdfi_bgemm_ref;
}

/* ---- weights ---------------------------------------------------------------- */

/* Packed A: ceil(M/MR) panels; panel i holds a[(i*K + k)*MR + r] = word k of
 * filter i*MR + r (0 past M), k = (ky*ks + kx)*words + cw (tap-major); for a
 * grouped kernel in SIGN mode, words 3g, 3g+1, 3g+2 (< K - K % 3) become
 * (w1, w1^w2, w1^w2^w3). */
COLD int mdfi_bconv_init(mdfi_bconv *bc, const mdfi_bgemm_kernel *k, mdfi_bmode mode,
                         const mdfi_conv_geom *g, int M, const unsigned char *wbits)
{
    memset(bc, 0, sizeof *bc);
    mdfi_bquant q;
    mdfi_bquant_init(&q, mode, 1.f);
    bc->k = k;
    bc->mode = mode;
    bc->planes = q.planes;
    bc->g = *g;
    bc->M = M;
    const int C = g->channels, T = g->ksize * g->ksize, mr = k->mr;
    const int grouped = k->grouped && mode == MDFI_BMODE_SIGN;
    bc->words = mdfi_bwords(C);
    bc->K = bc->words * T;
    bc->ph = g->pad + g->in_h;
    bc->pw = g->pad + g->in_w;
    if ((g->out_h - 1) * g->stride + g->ksize > bc->ph)
        bc->ph = (g->out_h - 1) * g->stride + g->ksize;
    if ((g->out_w - 1) * g->stride + g->ksize > bc->pw)
        bc->pw = (g->out_w - 1) * g->stride + g->ksize;
    const int panels = (M + mr - 1) / mr;
    bc->a_words = (size_t)panels * mr * bc->K;
    /* the correction table: row sums, column sums and taps where a row sum
     * fits 16 bits, else the taps alone (mdfi_bepi_args) */
    bc->pc_tbl = g->ksize * 64 * bc->words <= 65535 ? 2 * g->ksize + T : T;
    const size_t pcn = grouped && g->pad > 0 ? (size_t)panels * mr * bc->pc_tbl : 0;
    const size_t bytes = bc->a_words * sizeof(uint64_t) + pcn * sizeof(uint16_t);
    bc->a = mdfi_aligned_alloc(bytes ? bytes : 1);
    if (!bc->a)
        return -1;
    memset(bc->a, 0, bytes);
    for (int m = 0; m < M; ++m) {
        uint64_t *panel = bc->a + (size_t)(m / mr) * bc->K * mr;
        const unsigned char *wm = wbits + (size_t)m * C * T;
        for (int c = 0; c < C; ++c)
            for (int t = 0; t < T; ++t)
                if (wm[(size_t)c * T + t]) {
                    int kk = t * bc->words + c / 64;
                    panel[(size_t)kk * mr + m % mr] |= 1ull << (c % 64);
                }
    }
    const int K3 = bc->K - bc->K % 3, tbl = bc->pc_tbl, t0 = tbl - T, ks = g->ksize;
    if (pcn)
        bc->pc = (uint16_t *)(bc->a + bc->a_words);
    for (size_t i = 0; grouped && i < bc->a_words; ++i) {
        const int kk = (int)(i / mr % (size_t)bc->K), t = kk / bc->words, r = (int)(i % mr);
        if (pcn) {   /* p(t) of row r (<= channels < 2^16), and its row and column sums */
            uint16_t *pc = bc->pc + i / ((size_t)mr * bc->K) * tbl * mr;
            const uint16_t n = (uint16_t)mdfi_popcount64(bc->a[i]);
            pc[(t0 + t) * mr + r] += n;
            if (t0) {
                pc[t / ks * mr + r] += n;
                pc[(ks + t % ks) * mr + r] += n;
            }
        }
        if (kk % 3 && kk < K3)   /* running XOR in each group */
            bc->a[i] ^= bc->a[i - mr];
    }
    return 0;
}

void mdfi_bconv_free(mdfi_bconv *bc)
{
    mdfi_aligned_free(bc->a);
    bc->a = NULL;
    bc->pc = NULL;
}

COLD size_t mdfi_bconv_param_bytes(const mdfi_bconv *bc)
{
    return bc->a_words * sizeof(uint64_t) +
           (bc->pc ? (size_t)(bc->M + bc->k->mr - 1) / bc->k->mr * bc->k->mr * bc->pc_tbl *
                         sizeof(uint16_t)
                   : 0);
}

int mdfi_bconv_dmax(const mdfi_bconv *bc)
{
    int d = bc->g.channels * bc->g.ksize * bc->g.ksize;
    return bc->mode == MDFI_BMODE_2BIT ? 3 * d : d;
}

/* ---- the padded input ------------------------------------------------------ */

size_t mdfi_bconv_input_words(const mdfi_bconv *bc)
{
    return (size_t)bc->planes * bc->words * (size_t)bc->ph * bc->pw;
}

int mdfi_bconv_padded(const mdfi_bconv *bc)
{
    return bc->ph != bc->g.in_h || bc->pw != bc->g.in_w;
}

/* Zeroes the halo of rows [y0, y1) of every word plane. */
static void zero_halo(const mdfi_bconv *bc, uint64_t *out, int y0, int y1)
{
    const mdfi_conv_geom *g = &bc->g;
    const size_t plane = (size_t)bc->ph * bc->pw;
    const int right = bc->pw - g->pad - g->in_w;
    for (int wp = 0; wp < bc->planes * bc->words; ++wp) {
        uint64_t *o = out + wp * plane;
        if (y0 == 0)
            memset(o, 0, (size_t)g->pad * bc->pw * sizeof(uint64_t));
        if (y1 == g->in_h)
            memset(o + (size_t)(g->pad + g->in_h) * bc->pw, 0,
                   (size_t)(bc->ph - g->pad - g->in_h) * bc->pw * sizeof(uint64_t));
        for (int y = y0; y < y1; ++y) {
            uint64_t *row = o + (size_t)(y + g->pad) * bc->pw;
            memset(row, 0, (size_t)g->pad * sizeof(uint64_t));
            memset(row + g->pad + g->in_w, 0, (size_t)right * sizeof(uint64_t));
        }
    }
}

void mdfi_bconv_pack_input(const mdfi_bconv *bc, const mdfi_bquant *q, const float *in,
                           uint64_t *out, int y0, int y1)
{
    const mdfi_conv_geom *g = &bc->g;
    const mdfi_bgemm_pack_row pack =
        bc->k->pack_row ? bc->k->pack_row : mdfi_bgemm_pack_row_portable;
    const size_t plane = (size_t)bc->ph * bc->pw;
    zero_halo(bc, out, y0, y1);
    for (int y = y0; y < y1; ++y)
        pack(q, g->channels, g->in_w, in + (size_t)y * g->in_w, (size_t)g->in_h * g->in_w,
             out + (size_t)(y + g->pad) * bc->pw + g->pad, plane);
}

void mdfi_bconv_copy_input(const mdfi_bconv *bc, const uint64_t *bits, uint64_t *out, int y0,
                           int y1)
{
    const mdfi_conv_geom *g = &bc->g;
    const size_t plane = (size_t)bc->ph * bc->pw, src_plane = (size_t)g->in_h * g->in_w;
    zero_halo(bc, out, y0, y1);
    for (int wp = 0; wp < bc->planes * bc->words; ++wp)
        for (int y = y0; y < y1; ++y)
            memcpy(out + wp * plane + (size_t)(y + g->pad) * bc->pw + g->pad,
                   bits + wp * src_plane + (size_t)y * g->in_w, (size_t)g->in_w * sizeof(uint64_t));
}

/* ---- the tiled driver ------------------------------------------------------
 *
 * Padding.  A tap outside the image must contribute 0.  In the two-plane
 * modes a 0 word there already means "no activation".  In SIGN mode a 0 word
 * means -1 activations, so a B panel with such taps (a border panel) counts,
 * per tap, only the lanes whose tap is inside the image: a mask row per tap
 * (all ones where inside) and the masked micro-kernel,
 * popcount((w ^ x) & inside).  Interior panels run the plain XOR kernel.
 * Either way D = C * taps_inside - 2 * count.  Grouped kernels count the
 * outside taps too and take them back in the epilogue (mdfi_bepi_args).
 *
 * Kernels with ukr_fused go one panel of NR columns at a time: pack it
 * (pack_src reads a stride-1 panel straight from the padded input, else
 * pack_b), then run every A panel over it, the kernel writing the outputs.
 * The others pack a block of panels (L2-sized), run each A panel over the
 * block and apply the epilogue to each stored tile; grouped ones (AVX2,
 * POPCNT) and all where no kernel reads mask rows take a block of one panel
 * and run it against every A panel instead, so that a border panel's
 * corrections are listed once, and subtract them from the stored tile. */

typedef struct {
    int N, nc;             /* columns; columns per B block (multiple of NR) */
    int pmax;              /* planes of a B panel at most */
    size_t panel_words;    /* K * pmax * NR: panels are this far apart */
    size_t block_words;
} blocking;

static blocking get_blocking(const mdfi_bconv *bc)
{
    const mdfi_bgemm_kernel *k = bc->k;
    blocking b;
    b.N = bc->g.out_h * bc->g.out_w;
    b.pmax = MASK_ROWS && bc->mode == MDFI_BMODE_SIGN && bc->g.pad > 0 && !k->ukr_fused[0] &&
                     !k->grouped ? 2 : bc->planes;
    long col = (long)bc->K * b.pmax;
    long nc = k->b_block_words / (col ? col : 1) / k->nr * k->nr;
    if (nc < k->nr || k->ukr_fused[0] || !MASK_ROWS || k->grouped)   /* B panel outer */
        nc = k->nr;
    long nmax = (long)(b.N + k->nr - 1) / k->nr * k->nr;
    if (nc > nmax)
        nc = nmax;
    b.nc = (int)nc;
    b.panel_words = (size_t)col * k->nr;
    b.block_words = (size_t)nc * col;
    return b;
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

/* Workspace: B block | base[nc] | masked[nc] | tile | off0[NR] | runs[3 NR] | rowout[64]
 *            | colout[64] | toff[T] | outt[tbl] | outs[tbl] | outm[tbl], tbl = 2 ksize + T */
COLD size_t mdfi_bconv_workspace_size(const mdfi_bconv *bc)
{
    if (bc->k->workspace)
        return bc->k->workspace(bc);
    blocking b = get_blocking(bc);
    const int nr = bc->k->nr, T = bc->g.ksize * bc->g.ksize;
    size_t bytes = ALIGN64(b.block_words * sizeof(uint64_t));
    bytes += ALIGN64((size_t)b.nc * sizeof(int32_t)) * 2;
    bytes += ALIGN64((size_t)bc->k->mr * nr * sizeof(int32_t));
    bytes += ALIGN64((size_t)nr * sizeof(long)) + ALIGN64(3 * (size_t)nr * sizeof(int));
    const size_t tbl = 2 * (size_t)bc->g.ksize + T;
    return bytes + 128 * sizeof(uint64_t) + ALIGN64((size_t)T * sizeof(ptrdiff_t)) +
           2 * ALIGN64(tbl * sizeof(int)) + tbl * sizeof(uint64_t);
}

void mdfi_bout_zero(const mdfi_bout *o, size_t N, int n0, int n1)
{
    if (!o->bits || n0 >= n1)
        return;
    for (int p = 0; p < o->q->planes; ++p)
        for (int w = 0; w < o->out_words; ++w)
            memset(o->bits + ((size_t)p * o->out_words + w) * N + n0, 0,
                   (size_t)(n1 - n0) * sizeof(uint64_t));
}

typedef struct {
    uint64_t *dst;         /* the B block */
    int32_t *base;         /* [nc] per-column constant of D */
    int32_t *masked;       /* [panels] SIGN border panel */
    int32_t *tile;         /* [MR * NR] counts */
    long *off0;            /* [NR] word of tap (0, 0) in the padded plane */
    int *runs;             /* [3 NR] runs of consecutive words: column, offset, length */
    uint64_t *rowout;      /* [64] bit j: lane j's tap row k outside the image */
    uint64_t *colout;      /* [64] the same for tap columns */
    ptrdiff_t *toff;       /* [T] fused kernels: word offset of each tap */
    int *outt;             /* [2 ksize + T] grouped kernels: a panel's corrections */
    uint64_t *outm;        /* [2 ksize + T] their lanes */
    int *outs;             /* [2 ksize + T] their signs */
} bpack_ws;

static bpack_ws carve(const mdfi_bconv *bc, const blocking *b, void *workspace)
{
    const int nr = bc->k->nr;
    char *ws = workspace;
    bpack_ws w;
    w.dst = (uint64_t *)ws;
    ws += ALIGN64(b->block_words * sizeof(uint64_t));
    w.base = (int32_t *)ws;
    ws += ALIGN64((size_t)b->nc * sizeof(int32_t));
    w.masked = (int32_t *)ws;
    ws += ALIGN64((size_t)b->nc * sizeof(int32_t));
    w.tile = (int32_t *)ws;
    ws += ALIGN64((size_t)bc->k->mr * nr * sizeof(int32_t));
    w.off0 = (long *)ws;
    ws += ALIGN64((size_t)nr * sizeof(long));
    w.runs = (int *)ws;
    ws += ALIGN64(3 * (size_t)nr * sizeof(int));
    w.rowout = (uint64_t *)ws;
    w.colout = w.rowout + 64;
    ws += 128 * sizeof(uint64_t);
    const size_t T = (size_t)bc->g.ksize * bc->g.ksize;
    w.toff = (ptrdiff_t *)ws;
    ws += ALIGN64(T * sizeof(ptrdiff_t));
    const size_t tbl = 2 * (size_t)bc->g.ksize + T;
    w.outt = (int *)ws;
    ws += ALIGN64(tbl * sizeof(int));
    w.outs = (int *)ws;
    ws += ALIGN64(tbl * sizeof(int));
    w.outm = (uint64_t *)ws;
    return w;
}

/* The NR lanes of the panel at output column n (nv real columns; the other
 * lanes repeat column n): the word of tap (0, 0) in the padded plane
 * (off0), base[j] = C * taps inside the image, bit j of w->rowout[k]
 * (colout[k]) set when real lane j's tap row (column) k is outside the
 * image (k < ksize), and bit j of *rows where an output row starts.
 * Returns whether every tap of every real lane is inside.  Lanes go by
 * output row: the row's part once, then per column. */
static int panel_lanes(const mdfi_bconv *bc, int n, int nv, const bpack_ws *w, int32_t *base,
                       uint64_t *rows)
{
    const mdfi_conv_geom *g = &bc->g;
    const int nr = bc->k->nr, ks = g->ksize, s = g->stride, ow = g->out_w;
    uint64_t *rowout = w->rowout, *colout = w->colout;
    int oy = n / ow, ox = n - oy * ow, interior = 1;
    for (int kk = 0; kk < ks; ++kk)
        rowout[kk] = colout[kk] = 0;
    *rows = 0;
    for (int j = 0; j < nv; ox = 0, ++oy) {
        *rows |= 1ull << j;
        const int y = oy * s - g->pad, ylo = y < 0 ? -y : 0;
        int yhi = g->in_h - y < ks ? g->in_h - y : ks;
        yhi = yhi > ylo ? yhi : ylo;
        const int j1 = nv - j < ow - ox ? nv : j + ow - ox, cy = g->channels * (yhi - ylo);
        const long row = (long)(oy * s) * bc->pw;
        if (ylo || yhi < ks) {   /* lanes [j, j1) */
            const uint64_t seg = ((j1 - j >= 64 ? 0 : 1ull << (j1 - j)) - 1) << j;
            interior = 0;
            for (int kk = 0; kk < ks; ++kk)
                if (kk < ylo || kk >= yhi)
                    rowout[kk] |= seg;
        }
        for (; j < j1; ++j, ++ox) {
            const int x = ox * s - g->pad, xlo = x < 0 ? -x : 0;
            int xhi = g->in_w - x < ks ? g->in_w - x : ks;
            xhi = xhi > xlo ? xhi : xlo;
            w->off0[j] = row + ox * s;
            base[j] = cy * (xhi - xlo);   /* SIGN; the two-plane modes replace it */
            if (xlo || xhi < ks) {
                interior = 0;
                for (int kk = 0; kk < ks; ++kk)
                    colout[kk] |= (uint64_t)(kk < xlo || kk >= xhi) << j;
            }
        }
    }
    for (int j = nv; j < nr; ++j) {   /* past the real columns: lane 0 again */
        w->off0[j] = w->off0[0];
        base[j] = base[0];
    }
    return interior;
}

/* Index of the lowest set bit (x != 0): bsf/rbit on every target, no ISA flag. */
static inline int ctz64(uint64_t x)
{
    return __builtin_ctzll(x);
}

/* n words, in fixed-size moves (no libc call per short run). */
static inline void copy_words(uint64_t *d, const uint64_t *s, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        memcpy(d + i, s + i, 4 * sizeof(uint64_t));
    for (; i < n; ++i)
        d[i] = s[i];
}

/* Packs columns [jc, jc+nc) of B from the padded input.  Panel p starts at
 * dst + p * panel_words; row k = t * words + cw (tap t) of plane pl is at
 *   unmasked: (k * planes + pl) * NR
 *   masked (SIGN border panel, but not for ukr_fused): (t * (words + 1) + cw) * NR,
 *            then the tap's mask row (all ones where the tap is inside the
 *            image) at (t * (words + 1) + words) * NR.
 * Columns past nc repeat column 0 (never read). */
static void pack_b(const mdfi_bconv *bc, const blocking *bl, const uint64_t *in, int jc, int nc,
                   const bpack_ws *w)
{
    const int nr = bc->k->nr, W = bc->words, ks = bc->g.ksize, K = bc->K, planes = bc->planes;
    const size_t plane = (size_t)bc->ph * bc->pw, pstride = (size_t)W * plane;
    for (int p0 = 0, pi = 0; p0 < nc; p0 += nr, ++pi) {
        uint64_t *dst = w->dst + (size_t)pi * bl->panel_words;
        const int wd = nc - p0 < nr ? nc - p0 : nr;
        const uint64_t live = nr >= 64 ? ~0ull : (1ull << nr) - 1;
        uint64_t rows;
        const int interior = panel_lanes(bc, jc + p0, wd, w, w->base + p0, &rows);
        int nruns = 0;
        for (int j = 0; j < nr; ++j) {
            if (nruns && w->off0[j] == w->off0[j - 1] + 1) {
                w->runs[3 * (nruns - 1) + 2]++;
            } else {
                w->runs[3 * nruns] = j;
                w->runs[3 * nruns + 1] = (int)w->off0[j];
                w->runs[3 * nruns + 2] = 1;
                ++nruns;
            }
        }
        w->masked[pi] = !interior && bc->mode == MDFI_BMODE_SIGN;
        const int masked = MASK_ROWS && w->masked[pi] && !bc->k->ukr_fused[0] && !bc->k->grouped;
        for (int ky = 0; ky < ks; ++ky)
            for (int kx = 0; kx < ks; ++kx) {
                const int t = ky * ks + kx;
                const size_t delta = (size_t)ky * bc->pw + kx;
                for (int cw = 0; cw < W; ++cw)
                    for (int pl = 0; pl < planes; ++pl) {
                        const uint64_t *src = in + pl * pstride + cw * plane + delta;
                        uint64_t *d = dst + (masked ? (size_t)t * (W + 1) + cw
                                                    : ((size_t)t * W + cw) * planes + pl) * nr;
                        if (nruns * 4 <= nr) {
                            for (int r = 0; r < nruns; ++r)
                                copy_words(d + w->runs[3 * r], src + w->runs[3 * r + 1],
                                           w->runs[3 * r + 2]);
                        } else {
                            for (int j = 0; j < nr; ++j)
                                d[j] = src[w->off0[j]];
                        }
                    }
                if (masked) {   /* all ones, then the few columns outside cleared */
                    uint64_t *d = dst + ((size_t)t * (W + 1) + W) * nr;
                    memset(d, 0xff, (size_t)nr * sizeof(uint64_t));
                    for (uint64_t out = (w->rowout[ky] | w->colout[kx]) & live; out; out &= out - 1)
                        d[ctz64(out)] = 0;
                }
            }
        if (bc->mode == MDFI_BMODE_SIGN) {
            for (int kk = 0; kk < K - K % 3 && bc->k->grouped; ++kk)   /* running XOR per group */
                for (int j = 0; kk % 3 && j < nr; ++j)
                    dst[(size_t)kk * nr + j] ^= dst[(size_t)(kk - 1) * nr + j];
            continue;
        }
        /* two-plane modes: the per-column sum of the activation levels */
        for (int j = 0; j < wd; ++j) {
            int32_t b = 0;
            const uint64_t *d = dst + j;
            for (int kk = 0; kk < K; ++kk, d += (size_t)planes * nr) {
                if (bc->mode == MDFI_BMODE_TERNARY)
                    b += mdfi_popcount64(d[nr]);
                else
                    b -= mdfi_popcount64(d[0]) + 2 * mdfi_popcount64(d[nr]);
            }
            w->base[p0 + j] = b;
        }
    }
}

/* Portable bit epilogue (see mdfi_bgemm_epi_bits); planes from the compares
 * c_i = dir*D > thr_i as in mdfi_bgemm_pack_row_portable. */
static void epi_bits_portable(const int32_t *p, int nr, const int32_t *base, int mul, int mv,
                              int nv, const mdfi_bout *o, int m, size_t N, size_t n)
{
    const int L = o->q->levels;
    for (int r = 0; r < mv; ++r) {
        const int ch = o->m0 + m + r, sh = ch & 63;
        const int32_t *t = o->thr + (size_t)(m + r) * (L - 1);
        const int32_t sg = o->dir[m + r] > 0 ? 1 : -1;
        uint64_t *w0 = o->bits + (size_t)(ch >> 6) * N + n;
        uint64_t *w1 = w0 + (size_t)o->out_words * N;
        const int32_t *pr = p + r * nr;
        if (o->q->mode == MDFI_BMODE_SIGN) {
            for (int j = 0; j < nv; ++j)
                w0[j] |= (uint64_t)(sg * (base[j] + mul * pr[j]) > t[0]) << sh;
        } else if (o->q->mode == MDFI_BMODE_TERNARY) {
            for (int j = 0; j < nv; ++j) {
                int32_t e = sg * (base[j] + mul * pr[j]);
                uint64_t c0 = e > t[0], c1 = e > t[1];
                w0[j] |= c1 << sh;
                w1[j] |= (c1 | !c0) << sh;
            }
        } else {
            for (int j = 0; j < nv; ++j) {
                int32_t e = sg * (base[j] + mul * pr[j]);
                uint64_t c0 = e > t[0], c1 = e > t[1], c2 = e > t[2];
                w0[j] |= (c0 ^ c1 ^ c2) << sh;
                w1[j] |= c1 << sh;
            }
        }
    }
}

static void epi_portable(const int32_t *p, int nr, const int32_t *base, int mul, int mv, int nv,
                         const float *alpha, const float *beta, mdfi_epilogue act, float *c,
                         size_t ldc)
{
    for (int r = 0; r < mv; ++r)
        for (int j = 0; j < nv; ++j)
            c[(size_t)r * ldc + j] =
                mdfi_bepi_value(base[j] + mul * p[r * nr + j], alpha[r], beta[r], act);
}

/* Whether x is 0 or |x| >= 2^-97 (not NaN).  If every alpha and beta is,
 * a nonzero float(D) * alpha + beta is a multiple of 2^-120 (the rounded
 * product is a multiple of alpha's last place, as |D| >= 1), so at least
 * that large: the vector leaky needs no check for tiny values. */
static int not_tiny(float x)
{
    return x == 0.f || fabsf(x) >= 0x1p-97f;
}

/* The corrections of the panel whose lanes panel_lanes last described:
 * entries t of bc's table with their lanes and signs.  Full table: a lane
 * loses the row sums of its outside tap rows and the column sums of its
 * outside tap columns, and gets back the taps outside in both; taps alone:
 * it loses each tap in an outside row or column. */
static int border_list(const mdfi_bconv *bc, const bpack_ws *w)
{
    const int ks = bc->g.ksize, t0 = bc->pc_tbl - ks * ks;
    int nout = 0;
    for (int t = 0; t < bc->pc_tbl; ++t) {
        const int u = t - t0;   /* tap, or < 0: row sum t (< ks), column sum t - ks */
        w->outt[nout] = t;
        w->outs[nout] = u >= 0 && t0 ? -1 : 1;
        w->outm[nout] = u < 0 ? (t < ks ? w->rowout[t] : w->colout[t - ks])
                      : t0    ? w->rowout[u / ks] & w->colout[u % ks]
                              : w->rowout[u / ks] | w->colout[u % ks];
        nout += w->outm[nout] != 0;
    }
    return nout;
}

/* The driver of the fused kernels. */
static void run_fused(const mdfi_bconv *bc, const uint64_t *in, const mdfi_bout *o, int n0,
                      int n1, void *workspace)
{
    const mdfi_bgemm_kernel *k = bc->k;
    const mdfi_conv_geom *g = &bc->g;
    const blocking b = get_blocking(bc);
    const bpack_ws w = carve(bc, &b, workspace);
    const int nr = k->nr, M = bc->M, ks = g->ksize, T = ks * ks;
    /* stride 1, and each 8 lanes of a panel on at most two output rows */
    const int direct = k->pack_src && g->stride == 1 && g->out_w >= 7;
    const int correct = bc->pc != NULL;
    mdfi_bsrc s;
    mdfi_bepi_args e;
    memset(&e, 0, sizeof e);
    e.base = w.base;
    e.mul = bc->mode == MDFI_BMODE_2BIT ? 2 : -2;
    e.act = o->act;
    e.alpha = o->alpha;
    e.beta = o->beta;
    e.ldc = o->ldc;
    e.o = o;
    e.N = (size_t)b.N;
    e.pc = bc->pc;
    e.outs = w.outs;
    e.outt = w.outt;
    e.outm = w.outm;
    e.tbl = bc->pc_tbl;
    e.tiny_free = 1;
    e.small = mdfi_bconv_dmax(bc) < 1 << 24;
    for (int m = 0; o->out && m < M; ++m)
        e.tiny_free &= not_tiny(o->alpha[m]) & not_tiny(o->beta[m]);
    memset(&s, 0, sizeof s);
    s.T = T;
    s.W = bc->words;
    s.toff = w.toff;
    s.cws = (ptrdiff_t)bc->ph * bc->pw;
    s.pls = s.W * s.cws;
    s.gap = bc->pw - g->out_w;
    for (int t = 0; t < T; ++t)
        w.toff[t] = (ptrdiff_t)(t / ks) * bc->pw + t % ks;
    for (int n = n0; n < n1; n += nr) {
        const int nv = n1 - n < nr ? n1 - n : nr;
        if (direct) {
            uint64_t rows;
            w.masked[0] = !panel_lanes(bc, n, nv, &w, w.base, &rows);
            s.b = in + w.off0[0];
            s.lo = 0;
            s.live = nv >= 64 ? ~0ull : (1ull << nv) - 1;
            for (int v = 0; v < nr / 8; ++v) {   /* lanes before the vector's first row break */
                const unsigned brk = (unsigned)(rows >> 8 * v) & 0xfe;
                s.lo |= (unsigned long long)(brk ? (brk & -brk) - 1 : 0xff) << 8 * v;
                s.voff[v] = w.off0[8 * v] - w.off0[0];
            }
            s.lo &= s.live;
            k->pack_src(&s, bc->mode, w.dst, w.base);
        } else {
            pack_b(bc, &b, in, n, nv, &w);
        }
        e.nout = correct && w.masked[0] ? border_list(bc, &w) : 0;   /* see mdfi_bepi_args */
        e.nv = nv;
        e.n = (size_t)n;
        e.c = o->out ? o->out + n : NULL;
        k->ukr_fused[bc->mode](bc->K, M, bc->a, w.dst, &e);
    }
}

void mdfi_bconv_run(const mdfi_bconv *bc, const uint64_t *in, const mdfi_bout *o, int n0,
                    int n1, void *workspace)
{
    const mdfi_bgemm_kernel *k = bc->k;
    if (n0 >= n1 || bc->M <= 0)
        return;
    if (k->conv) {
        k->conv(bc, in, o, n0, n1, workspace);
        return;
    }
    if (k->ukr_fused[0]) {
        run_fused(bc, in, o, n0, n1, workspace);
        return;
    }
    const blocking b = get_blocking(bc);
    const bpack_ws w = carve(bc, &b, workspace);
    const int mr = k->mr, nr = k->nr, K = bc->K, M = bc->M, ks = bc->g.ksize;
    const int mul = bc->mode == MDFI_BMODE_2BIT ? 2 : -2;
    /* grouped SIGN: border panels count the halo, their tiles take it back */
    const int correct = bc->pc != NULL, tbl = bc->pc_tbl;
    for (int jc = n0; jc < n1; jc += b.nc) {
        const int nc = n1 - jc < b.nc ? n1 - jc : b.nc;
        const int np = (nc + nr - 1) / nr;
        pack_b(bc, &b, in, jc, nc, &w);
        /* grouped kernels: a B panel against every A panel (its corrections
         * listed once); else an A panel against every B panel */
        const int pouter = !MASK_ROWS || k->grouped, ni = (M + mr - 1) / mr;
        const int nouter = pouter ? np : ni;
        for (int u = 0; u < nouter; ++u) {
            /* pouter: the block is this one panel, whose lanes pack_b described */
            const int nout = pouter && correct && w.masked[u] ? border_list(bc, &w) : 0;
            for (int x = 0; x < (pouter ? ni : np); ++x) {
                const int i = (pouter ? x : u) * mr, p = pouter ? u : x;
                const uint64_t *a = bc->a + (size_t)i * K;
                const int mv = M - i < mr ? M - i : mr;
                const int c0 = p * nr, nv = nc - c0 < nr ? nc - c0 : nr;
                const uint64_t *bp = w.dst + (size_t)p * b.panel_words;
                if (MASK_ROWS && w.masked[p] && !k->grouped)
                    k->ukr_masked(ks * ks, bc->words, a, bp, w.tile);
                else
                    k->ukr[bc->mode](K, a, bp, w.tile);
                for (int q = 0; q < nout; ++q) {
                    const uint16_t *pc = bc->pc + ((size_t)(i / mr) * tbl + w.outt[q]) * mr;
                    for (uint64_t lanes = w.outm[q]; lanes; lanes &= lanes - 1)
                        for (int r = 0, j = ctz64(lanes); r < mv; ++r)
                            w.tile[r * nr + j] -= w.outs[q] * pc[r];
                }
                if (o->out && o->rq) {
                    k->epi_rq(w.tile, w.base + c0, mul, mv, nv, o, i, (size_t)(jc + c0));
                } else if (o->out) {
                    float *c = o->out + (size_t)i * o->ldc + jc + c0;
                    if (k->epi)
                        k->epi(w.tile, w.base + c0, mul, mv, nv, o->alpha + i, o->beta + i,
                               o->act, c, o->ldc);
                    else
                        epi_portable(w.tile, nr, w.base + c0, mul, mv, nv, o->alpha + i,
                                     o->beta + i, o->act, c, o->ldc);
                } else if (k->epi_bits) {
                    k->epi_bits(w.tile, w.base + c0, mul, mv, nv, o, i, (size_t)b.N,
                                (size_t)(jc + c0));
                } else {
                    epi_bits_portable(w.tile, nr, w.base + c0, mul, mv, nv, o, i, (size_t)b.N,
                                      (size_t)(jc + c0));
                }
            }
        }
    }
}

/* ---- threshold folding ----------------------------------------------------- */

COLD static int level_at(int32_t d, float alpha, float beta, mdfi_epilogue act,
                         mdfi_activation post, const mdfi_bquant *q)
{
    float v = mdfi_bepi_value(d, alpha, beta, act);
    if (post != MDFI_ACT_LINEAR)
        v = mdfi_activate1(v, post);
    return mdfi_bquant_level(q, v);
}

COLD int mdfi_bthresholds(int dmax, float alpha, float beta, mdfi_epilogue act,
                          mdfi_activation post, const mdfi_bquant *q, signed char *dir,
                          int32_t *thr)
{
    const int L = q->levels;
    if (post == MDFI_ACT_LINEAR && isfinite(alpha) && isfinite(beta)) {
        /* mul, add, relu/leaky and the compares are each monotone, so the
         * level is monotone in D, rising if alpha >= 0: binary searches. */
        const int sg = alpha >= 0 ? 1 : -1;
        *dir = (signed char)sg;
        for (int i = 0; i < L - 1; ++i) {
            /* largest e in [-dmax-1, dmax] with level(sg*e) <= i */
            int lo = -dmax - 1, hi = dmax;   /* level(lo) <= i holds (virtually) */
            if (level_at(sg * dmax, alpha, beta, act, post, q) <= i) {
                thr[i] = dmax;
                continue;
            }
            while (hi - lo > 1) {   /* level(sg*hi) > i */
                int mid = lo + (hi - lo) / 2;
                if (level_at(sg * mid, alpha, beta, act, post, q) <= i)
                    lo = mid;
                else
                    hi = mid;
            }
            thr[i] = lo;
        }
        return 0;
    }
    /* Any other activation: look at every D, accept only a monotone result. */
    int up = 1, down = 1, prev = level_at(-dmax, alpha, beta, act, post, q);
    for (int d = -dmax + 1; d <= dmax; ++d) {
        int l = level_at(d, alpha, beta, act, post, q);
        up &= l >= prev;
        down &= l <= prev;
        prev = l;
    }
    if (!up && !down)
        return -1;
    const int sg = up ? 1 : -1;
    *dir = (signed char)sg;
    for (int i = 0; i < L - 1; ++i)
        thr[i] = -dmax - 1;
    /* thr[i] = -dmax-1 + #{e in [-dmax, dmax] : level(sg*e) <= i} */
    for (int e = -dmax; e <= dmax; ++e) {
        int l = level_at(sg * e, alpha, beta, act, post, q);
        for (int i = l; i < L - 1; ++i)
            thr[i]++;
    }
    return 0;
}
