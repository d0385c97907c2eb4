/* Binary convolution driver: quantizers and input packing, the kernel
 * table, weight packing, B packing with implicit im2col on bit tensors, the
 * padding correction, the epilogues and the threshold folding. */
#include "kernels/bgemm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* ---- quantizers ----------------------------------------------------------- */

void mdfi_bquant_init(mdfi_bquant *q, mdfi_bmode mode, float step)
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
static void pack_row_portable(const mdfi_bquant *q, int C, int W, const float *in,
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
        pack_row_portable(q, c, (int)(e - s), in + s, hw, out + s, hw);
    }
}

/* ---- kernel table ------------------------------------------------------------ */

static const char *const kind_names[MDFI_BK_COUNT] = {"ref", "popcnt", "avx2", "avx512vpopcnt",
                                                      "neon"};

const char *mdfi_bgemm_kind_name(mdfi_bkind kind)
{
    return (unsigned)kind < MDFI_BK_COUNT ? kind_names[kind] : "?";
}

int mdfi_bgemm_kind_parse(const char *name, mdfi_bkind *kind)
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

const mdfi_bgemm_kernel *mdfi_bgemm_kernel_get(mdfi_bkind kind)
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
        return (f & MDFI_CPU_AVX512) && (f & MDFI_CPU_VPOPCNT) ? &mdfi_bgemm_avx512vpopcnt
                                                               : NULL;
#endif
#ifdef MDFI_HAVE_NEON
    case MDFI_BK_NEON: return (f & MDFI_CPU_NEON) ? &mdfi_bgemm_neon : NULL;
#endif
    default: return NULL;
    }
}

static void why_printf(char *why, size_t n, const char *a, const char *b)
{
    if (why && n)
        snprintf(why, n, "%s%s", a, b);
}

const mdfi_bgemm_kernel *mdfi_bgemm_kernel_select(mdfi_isa isa, char *why, size_t why_len)
{
    const char *env = getenv("MDFI_BINARY_KERNEL");
    if (env && *env && strcmp(env, "auto")) {
        mdfi_bkind kind;
        if (mdfi_bgemm_kind_parse(env, &kind)) {
            why_printf(why, why_len, "MDFI_BINARY_KERNEL is not one of ref, popcnt, avx2, "
                       "avx512vpopcnt, neon, auto: ", env);
            return NULL;
        }
        const mdfi_bgemm_kernel *k = mdfi_bgemm_kernel_get(kind);
        if (!k)
            why_printf(why, why_len, "MDFI_BINARY_KERNEL: this CPU/build cannot run the binary "
                       "kernel ", env);
        return k;
    }
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
 * filter i*MR + r (0 past M), k = (ky*ks + kx)*words + cw (tap-major). */
int mdfi_bconv_init(mdfi_bconv *bc, const mdfi_bgemm_kernel *k, mdfi_bmode mode,
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
    bc->a = mdfi_aligned_alloc((bc->a_words ? bc->a_words : 1) * sizeof(uint64_t));
    if (!bc->a)
        return -1;
    memset(bc->a, 0, bc->a_words * sizeof(uint64_t));
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
    return 0;
}

void mdfi_bconv_free(mdfi_bconv *bc)
{
    mdfi_aligned_free(bc->a);
    bc->a = NULL;
}

size_t mdfi_bconv_param_bytes(const mdfi_bconv *bc)
{
    return bc->a_words * sizeof(uint64_t);
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
    const mdfi_bgemm_pack_row pack = bc->k->pack_row ? bc->k->pack_row : pack_row_portable;
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
 * means -1 activations, so a B panel with such taps (a border panel) gets,
 * per tap, a mask row: all ones where the tap is inside the image, 0
 * outside, and runs the masked micro-kernel, popcount((w ^ x) & inside),
 * which counts the sign differences of in-image taps only.  Panels without
 * (interior panels) run the plain XOR kernel.  Either way
 * D = C * taps_inside - 2 * count. */

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
    b.pmax = bc->mode == MDFI_BMODE_SIGN && bc->g.pad > 0 ? 2 : bc->planes;
    long col = (long)bc->K * b.pmax;
    long nc = k->b_block_words / (col ? col : 1) / k->nr * k->nr;
    if (nc < k->nr)
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

/* Workspace: B block | base[nc] | masked[nc] | tile | off0[NR] | yx[2 NR] | runs[3 NR] */
size_t mdfi_bconv_workspace_size(const mdfi_bconv *bc)
{
    if (bc->k->workspace)
        return bc->k->workspace(bc);
    blocking b = get_blocking(bc);
    const int nr = bc->k->nr;
    size_t bytes = ALIGN64(b.block_words * sizeof(uint64_t));
    bytes += ALIGN64((size_t)b.nc * sizeof(int32_t)) * 2;
    bytes += ALIGN64((size_t)bc->k->mr * nr * sizeof(int32_t));
    bytes += ALIGN64((size_t)nr * sizeof(long)) + ALIGN64(2 * (size_t)nr * sizeof(int)) +
             ALIGN64(3 * (size_t)nr * sizeof(int));
    return bytes;
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
    long *off0;            /* [NR] word of tap (0, 0) in the padded plane */
    int *yx;               /* [2 NR] image row and column of tap (0, 0) */
    int *runs;             /* [3 NR] runs of consecutive words: column, offset, length */
} bpack_ws;

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
 *   masked (SIGN border panel): (t * (words + 1) + cw) * NR, then the tap's
 *            mask row (all ones where the tap is inside the image) at
 *            (t * (words + 1) + words) * NR.
 * Columns past nc repeat column 0 (never read). */
static void pack_b(const mdfi_bconv *bc, const blocking *bl, const uint64_t *in, int jc, int nc,
                   const bpack_ws *w)
{
    const mdfi_conv_geom *g = &bc->g;
    const int nr = bc->k->nr, W = bc->words, ks = g->ksize, K = bc->K, planes = bc->planes;
    const int ih = g->in_h, iw = g->in_w, s = g->stride, pad = g->pad, ow = g->out_w;
    const size_t plane = (size_t)bc->ph * bc->pw, pstride = (size_t)W * plane;
    int *ys = w->yx, *xs = w->yx + nr;
    for (int p0 = 0, pi = 0; p0 < nc; p0 += nr, ++pi) {
        uint64_t *dst = w->dst + (size_t)pi * bl->panel_words;
        const int wd = nc - p0 < nr ? nc - p0 : nr;
        int interior = 1;   /* every column's taps are all inside the image */
        int nruns = 0;
        for (int j = 0; j < nr; ++j) {
            int n = jc + p0 + (j < wd ? j : 0), oy = n / ow, ox = n % ow;
            int y = oy * s - pad, x = ox * s - pad;
            ys[j] = y;
            xs[j] = x;
            w->off0[j] = (long)(oy * s) * bc->pw + ox * s;
            if (nruns && w->off0[j] == w->off0[j - 1] + 1) {
                w->runs[3 * (nruns - 1) + 2]++;
            } else {
                w->runs[3 * nruns] = j;
                w->runs[3 * nruns + 1] = (int)w->off0[j];
                w->runs[3 * nruns + 2] = 1;
                ++nruns;
            }
            if (j >= wd)
                continue;
            int ny = (y + ks < ih ? y + ks : ih) - (y > 0 ? y : 0);
            int nx = (x + ks < iw ? x + ks : iw) - (x > 0 ? x : 0);
            ny = ny > 0 ? ny : 0;
            nx = nx > 0 ? nx : 0;
            interior &= ny == ks && nx == ks;
            w->base[p0 + j] = g->channels * ny * nx;   /* SIGN; replaced below otherwise */
        }
        const int masked = !interior && bc->mode == MDFI_BMODE_SIGN;
        w->masked[pi] = masked;
        /* bit j: column j's tap row ky (column kx) is inside the image */
        uint64_t rowok[64], colok[64], live = nr >= 64 ? ~0ull : (1ull << nr) - 1;
        for (int kk = 0; masked && kk < ks; ++kk) {
            rowok[kk] = colok[kk] = 0;
            for (int j = 0; j < nr; ++j) {
                rowok[kk] |= (uint64_t)((unsigned)(ys[j] + kk) < (unsigned)ih) << j;
                colok[kk] |= (uint64_t)((unsigned)(xs[j] + kk) < (unsigned)iw) << j;
            }
        }
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
                if (masked && bc->k->compact_mask) {   /* bit j: lane j inside */
                    dst[((size_t)t * (W + 1) + W) * nr] = rowok[ky] & colok[kx] & live;
                } else if (masked) {   /* all ones, then the few columns outside cleared */
                    uint64_t *d = dst + ((size_t)t * (W + 1) + W) * nr;
                    memset(d, 0xff, (size_t)nr * sizeof(uint64_t));
                    for (uint64_t out = ~(rowok[ky] & colok[kx]) & live; out; out &= out - 1)
                        d[ctz64(out)] = 0;
                }
            }
        if (bc->mode == MDFI_BMODE_SIGN)
            continue;
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
 * c_i = dir*D > thr_i as in pack_row_portable. */
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
    const blocking b = get_blocking(bc);
    const int mr = k->mr, nr = k->nr, K = bc->K, M = bc->M;
    const int mul = bc->mode == MDFI_BMODE_2BIT ? 2 : -2;
    char *ws = workspace;
    bpack_ws w;
    w.dst = (uint64_t *)ws;
    ws += ALIGN64(b.block_words * sizeof(uint64_t));
    w.base = (int32_t *)ws;
    ws += ALIGN64((size_t)b.nc * sizeof(int32_t));
    w.masked = (int32_t *)ws;
    ws += ALIGN64((size_t)b.nc * sizeof(int32_t));
    int32_t *tile = (int32_t *)ws;
    ws += ALIGN64((size_t)mr * nr * sizeof(int32_t));
    w.off0 = (long *)ws;
    ws += ALIGN64((size_t)nr * sizeof(long));
    w.yx = (int *)ws;
    ws += ALIGN64(2 * (size_t)nr * sizeof(int));
    w.runs = (int *)ws;
    for (int jc = n0; jc < n1; jc += b.nc) {
        const int nc = n1 - jc < b.nc ? n1 - jc : b.nc;
        const int np = (nc + nr - 1) / nr;
        pack_b(bc, &b, in, jc, nc, &w);
        for (int i = 0; i < M; i += mr) {
            const uint64_t *a = bc->a + (size_t)i * K;
            const int mv = M - i < mr ? M - i : mr;
            for (int p = 0; p < np; ++p) {
                const int c0 = p * nr, nv = nc - c0 < nr ? nc - c0 : nr;
                const uint64_t *bp = w.dst + (size_t)p * b.panel_words;
                mdfi_bepi_args e, *ep = NULL;
                if (o->out && k->fused_epi) {
                    e.base = w.base + c0, e.mul = mul, e.mv = mv, e.nv = nv;
                    e.alpha = o->alpha + i, e.beta = o->beta + i, e.act = o->act;
                    e.c = o->out + (size_t)i * o->ldc + jc + c0, e.ldc = o->ldc;
                    ep = &e;
                }
                if (w.masked[p])
                    k->ukr_masked(bc->g.ksize * bc->g.ksize, bc->words, a, bp, tile, ep);
                else
                    k->ukr[bc->mode](K, a, bp, tile, ep);
                if (ep) {
                    /* done by the micro-kernel */
                } else if (o->out) {
                    float *c = o->out + (size_t)i * o->ldc + jc + c0;
                    if (k->epi)
                        k->epi(tile, w.base + c0, mul, mv, nv, o->alpha + i, o->beta + i,
                               o->act, c, o->ldc);
                    else
                        epi_portable(tile, nr, w.base + c0, mul, mv, nv, o->alpha + i,
                                     o->beta + i, o->act, c, o->ldc);
                } else if (k->epi_bits) {
                    k->epi_bits(tile, w.base + c0, mul, mv, nv, o, i, (size_t)b.N,
                                (size_t)(jc + c0));
                } else {
                    epi_bits_portable(tile, nr, w.base + c0, mul, mv, nv, o, i, (size_t)b.N,
                                      (size_t)(jc + c0));
                }
            }
        }
    }
}

/* ---- threshold folding ----------------------------------------------------- */

static int level_at(int32_t d, float alpha, float beta, mdfi_epilogue act,
                    mdfi_activation post, const mdfi_bquant *q)
{
    float v = mdfi_bepi_value(d, alpha, beta, act);
    if (post != MDFI_ACT_LINEAR)
        v = mdfi_activate1(v, post);
    return mdfi_bquant_level(q, v);
}

int mdfi_bthresholds(int dmax, float alpha, float beta, mdfi_epilogue act,
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
