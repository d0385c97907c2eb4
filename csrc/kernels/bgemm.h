/* Binary-weight convolution on bit-packed activations: XNOR / AND + popcount.
 *
 * Weights are binary: filter m's weight is +1 where the float weight is > 0
 * and -1 elsewhere (w == 0 gives -1, as Darknet); its scale mean|w| is
 * applied by the caller's epilogue coefficients.  Activations are quantized
 * to one of three modes (mdfi_bmode) and stored as bit planes.  For every
 * output (m, n) the kernels compute the exact integer
 *
 *     D[m][n] = sum over the in-image taps and channels of  w * a
 *
 * (taps outside the image contribute 0: zero padding), then either
 *   float output:  out = act((float)D * alpha[m] + beta[m])    (mul, then add)
 *   bit output:    the level index of a quantizer applied to that value,
 *                  from per-channel integer thresholds on D, stored as the
 *                  bit planes the next binary layer reads (fusion).
 *
 * Bit tensors ("C64HW").  c channels, h x w pixels, P planes are stored as
 * P x words(c) x h x w uint64_t, words(c) = ceil(c / 64): word [p][cw][y][x]
 * holds in bit i plane p of channel 64*cw + i at (y, x).  Bits of channels
 * >= c are 0.  So one word is 64 channels of one pixel, and a word plane is
 * laid out like one channel of a CHW float tensor.
 *
 * Every ISA variant computes the same integers, so every variant gives
 * bit-identical results (the float epilogue is a fixed mul-then-add and
 * Darknet's activation arithmetic), for any split of the columns [n0, n1).
 * See docs/binary.md.
 */
#ifndef MDFI_KERNELS_BGEMM_H
#define MDFI_KERNELS_BGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/activations.h"
#include "kernels/cpu.h"
#include "kernels/dpath.h"   /* mdfi_dpath_rq */
#include "kernels/sgemm.h"   /* mdfi_conv_geom, mdfi_epilogue */

/* For a kernel's epilogue: one rolled loop over its rows, not GCC's copies
 * of it per activation and flag (unswitching), which only add code. */
#if defined(__GNUC__) && !defined(__clang__)
#define MDFI_NO_UNSWITCH __attribute__((optimize("no-unswitch-loops")))
#else
#define MDFI_NO_UNSWITCH
#endif

/* ---- activation modes and quantizers ------------------------------------ */

typedef enum {
    MDFI_BMODE_SIGN = 0,     /* 1 bit, Darknet xnor: x > 0 -> +1, else -1.
                              * plane 0 = [a == +1] */
    MDFI_BMODE_TERNARY = 1,  /* "1.5 bit" {-1, 0, +1}.  plane 0 = [a == +1],
                              * plane 1 = [a != 0] */
    MDFI_BMODE_2BIT = 2      /* 2 bits {0, 1, 2, 3}.  plane 0 = bit 0, plane 1 = bit 1 */
} mdfi_bmode;

#define MDFI_BMAX_LEVELS 4

/* x -> level index: idx = #{i < levels-1 : x > t[i]} (float compares).
 * Values of the levels: SIGN {-1, +1}, TERNARY {-1, 0, +1} * step,
 * 2BIT {0, 1, 2, 3} * step; code[idx] = the plane bits (bit p = plane p). */
typedef struct {
    mdfi_bmode mode;
    int levels, planes;
    float step;
    float t[MDFI_BMAX_LEVELS - 1];
    unsigned char code[MDFI_BMAX_LEVELS];
    signed char value[MDFI_BMAX_LEVELS];   /* integer level values */
} mdfi_bquant;

/* step: the quantization step (1 for SIGN).  Thresholds, in float32:
 *   SIGN     t = {0}
 *   TERNARY  t = {nextafterf(-step/2, -inf), step/2}  (x < -step/2 -> -1, x > step/2 -> +1)
 *   2BIT     t = {0.5f*step, 1.5f*step, 2.5f*step} */
void mdfi_bquant_init(mdfi_bquant *q, mdfi_bmode mode, float step);

static inline int mdfi_bquant_level(const mdfi_bquant *q, float x)
{
    int idx = 0;
    for (int i = 0; i < q->levels - 1; ++i)
        idx += x > q->t[i];
    return idx;
}

static inline int mdfi_bwords(int channels)
{
    return (channels + 63) / 64;
}

/* Words of a bit tensor. */
size_t mdfi_btensor_words(int planes, int c, int h, int w);

/* Packs CHW floats (c channels of hw pixels) into a bit tensor, pixels
 * [p0, p1) of every plane and word (so threads may split the pixels). */
void mdfi_bpack_input(const mdfi_bquant *q, int c, size_t hw, const float *in, uint64_t *out,
                      size_t p0, size_t p1);

/* ---- kernel variants ------------------------------------------------------ */

typedef enum {
    MDFI_BK_REF = 0,          /* plain C from the definition (SWAR popcount) */
    MDFI_BK_POPCNT = 1,       /* x86 scalar POPCNT */
    MDFI_BK_AVX2 = 2,         /* AVX2 nibble lookup (vpshufb) */
    MDFI_BK_AVX512VPOPCNT = 3,/* AVX-512 VPOPCNTDQ */
    MDFI_BK_NEON = 4,         /* NEON vcnt */
    MDFI_BK_COUNT = 5
} mdfi_bkind;

typedef struct mdfi_bgemm_kernel mdfi_bgemm_kernel;

/* The variant if this build and CPU run it, else NULL. */
const mdfi_bgemm_kernel *mdfi_bgemm_kernel_get(mdfi_bkind kind);
const char *mdfi_bgemm_kind_name(mdfi_bkind kind);   /* "ref", "popcnt", ... */
int mdfi_bgemm_kind_parse(const char *name, mdfi_bkind *kind);   /* 0 or -1 */
const char *mdfi_bgemm_kernel_name(const mdfi_bgemm_kernel *k);
/* The variant for a layer prepared for this ISA (the build options may
 * force another with mdfi_bgemm_kernel_get):
 *   avx512 -> avx512vpopcnt if the CPU has VPOPCNTDQ and VNNI, else avx2;
 *   avx2 -> avx2;  neon -> neon;
 *   ref -> ref, except where ref is also the best ISA (no AVX2/NEON): popcnt
 *          if the CPU has it. */
const mdfi_bgemm_kernel *mdfi_bgemm_kernel_select(mdfi_isa isa);

/* ---- a prepared binary convolution (one group) -------------------------- */

typedef struct {
    const mdfi_bgemm_kernel *k;
    mdfi_bmode mode;        /* of the input */
    int planes;             /* of the input */
    mdfi_conv_geom g;       /* channels = the group's real input channels */
    int M;                  /* filters */
    int words;              /* words(channels) */
    int K;                  /* words per filter and plane: words * ksize^2 */
    int ph, pw;             /* the padded input: image pixel (y, x) is word
                             * (y + pad) * pw + x + pad of a ph x pw plane whose
                             * halo is 0, so B packing needs no bounds checks */
    uint64_t *a;            /* packed weight bits (kernel's panel layout) */
    size_t a_words;
    uint16_t *pc;           /* grouped kernels, SIGN, pad > 0: the correction
                             * table (mdfi_bepi_args), [pc_tbl][MR] an A panel,
                             * after a in the same allocation; else NULL */
    int pc_tbl;             /* its entries a row: 2 ksize + T, or T */
} mdfi_bconv;

/* wbits: [M][channels][ks][ks] (Darknet's weight order), nonzero = +1.
 * Returns 0, or -1 when out of memory. */
int mdfi_bconv_init(mdfi_bconv *bc, const mdfi_bgemm_kernel *k, mdfi_bmode mode,
                    const mdfi_conv_geom *g, int M, const unsigned char *wbits);
void mdfi_bconv_free(mdfi_bconv *bc);
size_t mdfi_bconv_param_bytes(const mdfi_bconv *bc);
/* Bytes of per-thread workspace for mdfi_bconv_run. */
size_t mdfi_bconv_workspace_size(const mdfi_bconv *bc);
/* Largest |D| (the range thresholds must cover). */
int mdfi_bconv_dmax(const mdfi_bconv *bc);

/* The padded input: planes x words x ph x pw words. */
size_t mdfi_bconv_input_words(const mdfi_bconv *bc);
/* Whether that differs from the plain bit tensor (pad > 0); if not, a bit
 * tensor input can be passed to mdfi_bconv_run as it is. */
int mdfi_bconv_padded(const mdfi_bconv *bc);
/* Image rows [y0, y1) of the padded input, with their halo (and the top or
 * bottom halo rows when y0 == 0 or y1 == in_h), so threads may split rows:
 * from CHW floats quantized by q (q->mode == bc->mode), or from a bit tensor. */
void mdfi_bconv_pack_input(const mdfi_bconv *bc, const mdfi_bquant *q, const float *in,
                           uint64_t *out, int y0, int y1);
void mdfi_bconv_copy_input(const mdfi_bconv *bc, const uint64_t *bits, uint64_t *out, int y0,
                           int y1);

/* What to do with D.  Either float output (out != NULL) or bits. */
typedef struct {
    /* float: out[m * ldc + n] = act((float)D * alpha[m] + beta[m]) */
    float *out;
    size_t ldc;
    const float *alpha, *beta;   /* [M] */
    mdfi_epilogue act;           /* applied here; others: LINEAR + caller post-pass */
    /* bits: channel m0 + m of an output bit tensor with out_words word
     * planes of N pixels per plane; level idx = #{i : dir[m]*D > thr[m*(L-1)+i]},
     * plane bits = q->code[idx]. */
    uint64_t *bits;
    const mdfi_bquant *q;
    const int32_t *thr;
    const signed char *dir;
    int out_words, m0;
    /* float output of [dualpath]'s z (kernels/dpath.h) instead, where the
     * kernel has .requant (else NULL): rq[m] for channel m, the second
     * source's channel m % src_c at src + (m % src_c) * ldc; the caller
     * makes sure every rq[m].split holds and |D| < 2^14 */
    const mdfi_dpath_rq *rq;
    const float *src;
    int src_c;
} mdfi_bout;

/* Output columns [n0, n1) (N = out_h * out_w) of one group.  in: the
 * group's padded input (mdfi_bconv_input_words words).  For bit output
 * the caller zeroes the words of [n0, n1) first (mdfi_bout_zero), since
 * groups and tiles OR their bits in.  workspace: 64-byte aligned. */
void mdfi_bconv_run(const mdfi_bconv *bc, const uint64_t *in, const mdfi_bout *o, int n0,
                    int n1, void *workspace);
void mdfi_bout_zero(const mdfi_bout *o, size_t N, int n0, int n1);

/* The float value of one output (before a post-pass activation).  A
 * multiply, then an add: the build's -std=c99 keeps GCC from contracting
 * them into an fma, and the vector epilogues do the same two steps.  The
 * value for v <= 0 is computed first, so that the final choice compiles
 * to a branch-free select (the sign of v is unpredictable). */
static inline float mdfi_bepi_value(int32_t d, float alpha, float beta, mdfi_epilogue act)
{
    float v = (float)d * alpha + beta;
    float low = act == MDFI_EPI_RELU ? 0.f : act == MDFI_EPI_LEAKY ? (float)(.1 * (double)v) : v;
    return v > 0 ? v : low;
}

/* Thresholds for one channel: the level index of q applied to
 * act((float)D * alpha + beta) (post = the activation after the epilogue,
 * MDFI_ACT_LINEAR if none) for every D in [-dmax, dmax], written as dir and
 * levels-1 thresholds.  Returns 0, or -1 if that function of D is not
 * monotone (then the layer must not fuse). */
int mdfi_bthresholds(int dmax, float alpha, float beta, mdfi_epilogue act,
                     mdfi_activation post, const mdfi_bquant *q, signed char *dir,
                     int32_t *thr);

/* ---- internal: the kernel table (bgemm.c and the per-ISA files) --------- */

/* One MR x NR tile of raw counts over K words per plane:
 *   SIGN     p[r][j] = sum_k popcount(a[k][r] ^ b[k][0][j])
 *   TERNARY  p[r][j] = sum_k popcount((a[k][r] ^ b[k][0][j]) & b[k][1][j])
 *   2BIT     p[r][j] = sum_k popcount(a[k][r] & b[k][0][j])
 *                         + 2 * popcount(a[k][r] & b[k][1][j])
 * k = (ky * ks + kx) * words + cw (tap-major).
 * a: packed A panel, a[k * MR + r]; b: packed B panel, b[(k * planes + pl) * NR + j],
 * 64-byte aligned; p: int32 [MR][NR], 64-byte aligned. */
typedef void (*mdfi_bgemm_ukr)(int K, const uint64_t *a, const uint64_t *b, int32_t *p);

/* SIGN with a mask per tap (border panels; see bgemm.c), K = T * W:
 *   p[r][j] = sum_t sum_cw popcount((a[k][r] ^ b[t][cw][j]) & b[t][W][j]),
 * k = t * W + cw, b row (t * (W + 1) + cw) * NR.  The mask row b[t][W] holds
 * words of all ones / zeros. */
typedef void (*mdfi_bgemm_ukr_masked)(int T, int W, const uint64_t *a, const uint64_t *b,
                                      int32_t *p);

/* Fused micro-kernels (ukr_fused): the tiles of counts of all M rows (A
 * panels of MR rows, K words each) against one packed B panel
 * b[(k * planes + pl) * NR + j], the epilogue applied by the kernel, row r
 * being row r of the group.
 *
 * Kernels with grouped set (fused, or tiled: ukr) take SIGN words in
 * groups of three: A holds
 * (w1, w1^w2, w1^w2^w3) for the words w1, w2, w3 of steps k, k+1, k+2, B
 * the same of its words x (the packers transform B); the last K % 3 words
 * stay as they are.  With y_i = w_i ^ x_i, y1 = w1 ^ x1, d = y1 ^ y2 and
 * s = y1 ^ y2 ^ y3 each take one XOR, and
 *     popcount(y1) + popcount(y2) + popcount(y3) = popcount(s) + 2 popcount(c),
 *     c = majority(y1, y2, y3) = d ? ~s : y1
 * (a full adder per bit): 8 vector operations per three words instead of 9
 * (xor, popcount, add each), and only two popcounts.  Such kernels count
 * every tap: a tap outside the image reads the zero halo and counts
 * popcount(w) there, which the epilogue takes back.  With p(t) the
 * popcount of row r's words of tap t = (ky, kx), a lane loses the p(t) of
 * the taps in its outside rows or columns:
 *     sum_ky out p(ky, .) + sum_kx out p(., kx) - sum_(ky, kx) both out p(ky, kx),
 * from the table of each A panel made with the weights (mdfi_bconv's pc,
 * uint16): [ks] row sums, [ks] column sums, [T] p(t), MR rows each; where a
 * row sum could pass 2^16 (ksize * channels > 65535), [T] p(t) alone, each
 * tap in an outside row or column an entry.  The lanes of outm[q] lose
 * outs[q] * pc[(panel * tbl + outt[q]) * MR + r], q < nout. */
typedef struct {
    const int32_t *base;         /* [NR] D = base[j] + mul * count */
    int mul, nv;                 /* columns j < nv */
    /* float output (c != NULL): c[r * ldc + j] = act((float)D * alpha[r] + beta[r]) */
    const float *alpha, *beta;
    mdfi_epilogue act;
    int tiny_free;               /* no alpha or beta is nonzero and below 2^-97 in
                                  * magnitude, so no output is below 2^-120 (see bgemm.c) */
    int small;                   /* |D| < 2^24: D and the counts are exact in float */
    float *c;
    size_t ldc;
    /* bit output (c == NULL), as mdfi_bgemm_epi_bits: channel r of o,
     * output column n + j of N */
    const mdfi_bout *o;
    size_t N, n;
    /* border correction (grouped kernels) */
    const uint16_t *pc;
    const int *outt, *outs;      /* entries and signs (+1: loses, -1: gets back) */
    const uint64_t *outm;
    int nout, tbl;               /* tbl: entries per A panel row, mdfi_bconv's pc_tbl */
} mdfi_bepi_args;

typedef void (*mdfi_bgemm_ukr_fused)(int K, int M, const uint64_t *a, const uint64_t *b,
                                     const mdfi_bepi_args *e);

/* A stride-1 panel as it lies in the padded input, for pack_src: word
 * (tap t, cw, plane pl) of lane j = 8v + i is
 *     b[toff[t] + cw * cws + pl * pls + voff[v] + i]         lanes j in lo
 *     b[toff[t] + cw * cws + pl * pls + voff[v] + i + gap]   lanes j in live & ~lo
 * (lanes past the end of an output row continue on the next one, gap =
 * pw - out_w further); lanes outside live are not read. */
typedef struct {
    const uint64_t *b;
    const ptrdiff_t *toff;       /* [T] */
    ptrdiff_t cws, pls, gap;
    ptrdiff_t voff[8];
    unsigned long long lo, live;
    int T, W;
} mdfi_bsrc;

/* Packs the panel s into dst (the layout of ukr_fused, grouped for SIGN if
 * the kernel is) and, in the two-plane modes, writes base[j] for j < NR
 * (TERNARY sum popcount(nonzero), 2BIT -sum (popcount(b0) + 2 popcount(b1))). */
typedef void (*mdfi_bgemm_pack_src)(const mdfi_bsrc *s, mdfi_bmode mode, uint64_t *dst,
                                    int32_t *base);

/* Float epilogue of one tile (p: row stride NR): for r < mv, j < nv:
 *   d = base[j] + mul * p[r][j];  c[r * ldc + j] = act((float)d * alpha[r] + beta[r]) */
typedef void (*mdfi_bgemm_epi)(const int32_t *p, const int32_t *base, int mul, int mv, int nv,
                               const float *alpha, const float *beta, mdfi_epilogue act,
                               float *c, size_t ldc);

/* [dualpath]'s z of a tile (mdfi_bout's rq, see there): rows m0 .. m0 + mv - 1,
 * output columns n .. n + nv - 1. */
typedef void (*mdfi_bgemm_epi_rq)(const int32_t *p, const int32_t *base, int mul, int mv, int nv,
                                  const mdfi_bout *o, int m0, size_t n);
/* Bit epilogue of one tile: rows r < mv are channels m + r of the group
 * (thr/dir index m + r, output channel o->m0 + m + r), columns j < nv are
 * output columns n + j of N; ORs the plane bits of each level into o->bits. */
typedef void (*mdfi_bgemm_epi_bits)(const int32_t *p, const int32_t *base, int mul, int mv,
                                    int nv, const mdfi_bout *o, int m, size_t N, size_t n);

/* Packs one image row: C channels of W floats (channel stride cstride)
 * quantized by q, to words: plane p, word cw at out + (p * words(C) + cw) * wstride. */
typedef void (*mdfi_bgemm_pack_row)(const mdfi_bquant *q, int C, int W, const float *in,
                                    size_t cstride, uint64_t *out, size_t wstride);
/* The portable one (kernels without pack_row; AVX2's for the two-plane modes). */
void mdfi_bgemm_pack_row_portable(const mdfi_bquant *q, int C, int W, const float *in,
                                  size_t cstride, uint64_t *out, size_t wstride);

struct mdfi_bgemm_kernel {
    mdfi_bkind kind;
    int mr, nr;
    int b_block_words;              /* budget of a packed B block (L2) */
    mdfi_bgemm_ukr ukr[3];          /* per mdfi_bmode */
    mdfi_bgemm_ukr_masked ukr_masked;
    mdfi_bgemm_ukr_fused ukr_fused[3];  /* per mdfi_bmode; set: replaces ukr, ukr_masked */
    mdfi_bgemm_pack_src pack_src;   /* stride-1 panels for ukr_fused (else portable) */
    int grouped;                    /* ukr_fused / ukr take SIGN in groups of three words */
    int requant;                    /* applies mdfi_bout's rq: ukr_fused, or epi_rq */
    mdfi_bgemm_epi epi;             /* NULL: the portable one */
    mdfi_bgemm_epi_bits epi_bits;   /* NULL: the portable one */
    mdfi_bgemm_epi_rq epi_rq;       /* tiled kernels with .requant */
    mdfi_bgemm_pack_row pack_row;   /* NULL: the portable one */
    /* The reference replaces the tiled driver with its own loops. */
    size_t (*workspace)(const mdfi_bconv *bc);
    void (*conv)(const mdfi_bconv *bc, const uint64_t *in, const mdfi_bout *o, int n0, int n1,
                 void *workspace);
};

extern const mdfi_bgemm_kernel mdfi_bgemm_ref;
#ifdef MDFI_HAVE_POPCNT
extern const mdfi_bgemm_kernel mdfi_bgemm_popcnt;
#endif
#ifdef MDFI_HAVE_AVX2
extern const mdfi_bgemm_kernel mdfi_bgemm_avx2;
#endif
#ifdef MDFI_HAVE_AVX512VPOPCNT
extern const mdfi_bgemm_kernel mdfi_bgemm_avx512vpopcnt;
#endif
#ifdef MDFI_HAVE_NEON
extern const mdfi_bgemm_kernel mdfi_bgemm_neon;
#endif

/* Portable popcount (SWAR), for code built without ISA flags. */
static inline int mdfi_popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

/* Shared by the driver and the reference: bit output of one element. */
static inline void mdfi_bout_put(const mdfi_bout *o, size_t N, int m, size_t n, int32_t d)
{
    const int L = o->q->levels;
    const int32_t *t = o->thr + (size_t)m * (L - 1);
    int32_t v = o->dir[m] > 0 ? d : -d;
    int idx = 0;
    for (int i = 0; i < L - 1; ++i)
        idx += v > t[i];
    unsigned code = o->q->code[idx];
    int ch = o->m0 + m;
    uint64_t bit = 1ull << (ch & 63);
    for (int p = 0; p < o->q->planes; ++p)
        if (code >> p & 1)
            o->bits[((size_t)p * o->out_words + (ch >> 6)) * N + n] |= bit;
}

#endif
