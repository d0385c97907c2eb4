/* Integer GEMM driver: the variant table, A packing, B packing with
 * implicit im2col, the cache-blocked loops around the per-ISA micro-kernels
 * and the portable requantization epilogue (see qgemm.h, qgemm_impl.h). */
#include "kernels/qgemm_impl.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* ---- variants ---------------------------------------------------------- */

static const mdfi_qgemm_kernel *const variants[] = {
    &mdfi_qgemm_ref8, &mdfi_qgemm_ref16,
#ifdef MDFI_HAVE_AVX2
    &mdfi_qgemm_avx2_8, &mdfi_qgemm_avx2_16, &mdfi_qgemm_avx2_8p,
#endif
#ifdef MDFI_HAVE_AVX512
    &mdfi_qgemm_avx512_8, &mdfi_qgemm_avx512_16,
#endif
#ifdef MDFI_HAVE_AVX512VNNI
    &mdfi_qgemm_avx512vnni_8, &mdfi_qgemm_avx512vnni_16,
#endif
#ifdef MDFI_HAVE_NEON
    &mdfi_qgemm_neon_8, &mdfi_qgemm_neon_16,
#endif
#ifdef MDFI_HAVE_DOTPROD
    &mdfi_qgemm_neondot_8,
#endif
};

int mdfi_qgemm_variant_count(void)
{
    return (int)(sizeof variants / sizeof variants[0]);
}

const mdfi_qgemm_kernel *mdfi_qgemm_variant(int i)
{
    return i >= 0 && i < mdfi_qgemm_variant_count() ? variants[i] : NULL;
}

MDFI_COLD int mdfi_qgemm_runnable(const mdfi_qgemm_kernel *k)
{
    return k && mdfi_isa_available(k->isa) && (mdfi_cpu_features() & k->needs) == k->needs;
}

/* The ISA's variant for the width: the last runnable one in table order,
 * which lists the plain variant of an ISA before the one needing an extra
 * feature (AVX-512 BW before VNNI, NEON before dot product). */
static const mdfi_qgemm_kernel *pick(mdfi_isa isa, int bits, int pair)
{
    const mdfi_qgemm_kernel *best = NULL;
    for (int i = 0; i < mdfi_qgemm_variant_count(); ++i) {
        const mdfi_qgemm_kernel *k = variants[i];
        if (k->isa == isa && k->bits == bits && mdfi_qgemm_runnable(k) &&
            (!k->pair_max || pair <= k->pair_max))
            best = k;
    }
    return best;
}

MDFI_COLD const mdfi_qgemm_kernel *mdfi_qgemm_kernel_for(mdfi_isa isa, int bits)
{
    return pick(isa, bits, 1 << 17);   /* past any pair of int16 */
}

MDFI_COLD const mdfi_qgemm_kernel *mdfi_qgemm_kernel_for_a(mdfi_isa isa, int bits, const void *A,
                                                           int M, int K)
{
    int pair = 0;   /* the largest |A[m][2i]| + |A[m][2i+1]| (K padded with 0) */
    for (int m = 0; bits == 8 && m < M; ++m)   /* only 8-bit variants bound it */
        for (int k = 0; k < K; k += 2) {
            const int8_t *a = (const int8_t *)A + (size_t)m * K + k;
            int s = abs(a[0]) + (k + 1 < K ? abs(a[1]) : 0);
            pair = s > pair ? s : pair;
        }
    return bits == 8 ? pick(isa, bits, pair) : mdfi_qgemm_kernel_for(isa, bits);
}

const char *mdfi_qgemm_kernel_name(const mdfi_qgemm_kernel *k)
{
    return k ? k->name : "none";
}

MDFI_COLD int mdfi_qgemm_fits(int K, int32_t max_abs_a, int32_t max_abs_b, int64_t max_abs_bias)
{
    if (K < 0 || max_abs_a < 0 || max_abs_b < 0 || max_abs_bias < 0 ||
        max_abs_bias > INT32_MAX)
        return 0;
    int64_t room = INT32_MAX - max_abs_bias;
    int64_t ab = (int64_t)max_abs_a * max_abs_b;   /* <= 2^62 */
    return ab == 0 || K <= room / ab;
}

/* ---- A packing --------------------------------------------------------- */

/* Bytes per packed element as the micro-kernels read them. */
static int elem_bytes(const mdfi_qgemm_kernel *k)
{
    return k->bits == 16 || k->b_conv == MDFI_QB_SEXT16 ? 2 : 1;
}

/* Bytes per element of the packed A as stored: the operand's own width.
 * Kernels that multiply int8 operands as int16 (MDFI_QB_SEXT16) get each
 * A micro-panel widened into the workspace just before its B sweep
 * (widen_panel), so the weights are held at 1 byte, not 2; the widening
 * is mr * kc moves per mr * kc * nc multiply-adds. */
static int a_bytes(const mdfi_qgemm_kernel *k)
{
    return k->bits / 8;
}

static int round_up(int x, int m)
{
    return (x + m - 1) / m * m;
}

/* The MR for M: fewest padded rows, weighted by each tile's speed. */
static const mdfi_qgemm_tile *pick_tile(const mdfi_qgemm_kernel *k, int M)
{
    const mdfi_qgemm_tile *best = &k->tiles[0];
    long long best_cost = -1;
    for (int i = 0; i < k->ntiles; ++i) {
        const mdfi_qgemm_tile *t = &k->tiles[i];
        long long cost = (long long)round_up(M, t->mr) * t->cost;
        if (best_cost < 0 || cost < best_cost) {
            best = t;
            best_cost = cost;
        }
    }
    return best;
}

int mdfi_qgemm_mr(const mdfi_qgemm_kernel *k, int M)
{
    return pick_tile(k, M)->mr;
}

static size_t panels_bytes(const mdfi_qgemm_kernel *k, int M, int K)
{
    int mr = pick_tile(k, M)->mr;
    size_t b = (size_t)round_up(M, mr) * round_up(K, k->kgrp) * a_bytes(k);
    return (b + 63) / 64 * 64;
}

size_t mdfi_qgemm_corr_offset(const mdfi_qgemm_kernel *k, int M, int K)
{
    return panels_bytes(k, M, K);
}

/* A multiple of 64 bytes, so that consecutive packed matrices (groups) stay
 * 64-byte aligned. */
MDFI_COLD size_t mdfi_qgemm_packed_a_size(const mdfi_qgemm_kernel *k, int M, int K)
{
    size_t b = panels_bytes(k, M, K);
    if (k->b_conv == MDFI_QB_XOR80)
        b += ((size_t)round_up(M, pick_tile(k, M)->mr) * sizeof(uint32_t) + 63) / 64 * 64;
    return b;
}

static int32_t a_at(const mdfi_qgemm_kernel *k, const void *A, size_t i)
{
    return k->bits == 8 ? ((const int8_t *)A)[i] : ((const int16_t *)A)[i];
}

MDFI_COLD void mdfi_qgemm_pack_a(const mdfi_qgemm_kernel *k, int M, int K, const void *A, void *dst)
{
    const int mr = pick_tile(k, M)->mr, G = k->kgrp, Kp = round_up(K, G);
    const int eb = a_bytes(k);
    int8_t *d8 = dst;
    int16_t *d16 = dst;
    size_t o = 0;
    for (int i0 = 0; i0 < M; i0 += mr)
        for (int g0 = 0; g0 < Kp; g0 += G)
            for (int r = 0; r < mr; ++r)
                for (int t = 0; t < G; ++t, ++o) {
                    int m = i0 + r, kk = g0 + t;
                    int32_t v = m < M && kk < K ? a_at(k, A, (size_t)m * K + kk) : 0;
                    if (eb == 1)
                        d8[o] = (int8_t)v;
                    else
                        d16[o] = (int16_t)v;
                }
    memset((char *)dst + o * eb, 0, panels_bytes(k, M, K) - o * eb);
    if (k->b_conv == MDFI_QB_XOR80) {
        /* sum_k A*(B + 128) = sum_k A*B + corr: computed mod 2^32. */
        uint32_t *corr = (uint32_t *)((char *)dst + panels_bytes(k, M, K));
        int mp = round_up(M, mr);
        for (int m = 0; m < mp; ++m) {
            uint32_t s = 0;
            for (int kk = 0; m < M && kk < K; ++kk)
                s += (uint32_t)a_at(k, A, (size_t)m * K + kk);
            corr[m] = s * 128u;
        }
        size_t used = panels_bytes(k, M, K) + (size_t)mp * sizeof(uint32_t);
        memset((char *)dst + used, 0, mdfi_qgemm_packed_a_size(k, M, K) - used);
    }
}

/* ---- requantization ---------------------------------------------------- */

/* rshift_round(x, s) = floor(x / 2^s + 1/2) for s > 0, written so that no
 * step overflows (x + 2^(s-1) would for x near the top of the range):
 * floor(x / 2^s) plus bit s-1 of x (two's complement).  Shift counts past
 * the width give the exact result 0 (or -1 + 1). */
static int64_t rshift_round64(int64_t x, int s)
{
    int s1 = s < 63 ? s : 63, s0 = s - 1 < 63 ? s - 1 : 63;
    return (x >> s1) + ((x >> s0) & 1);
}

/* x * 2^l saturated to [lo, hi] (|lo|, hi <= 2^15), without overflow: a
 * nonzero x with |x| > 2^16 or l > 16 saturates anyway, so clamping both
 * first keeps the result. */
static int64_t lshift_sat(int64_t x, int l, int64_t lo, int64_t hi)
{
    const int64_t lim = (int64_t)1 << 16;
    x = x < -lim ? -lim : x > lim ? lim : x;
    x *= (int64_t)1 << (l < 16 ? l : 16);
    return x < lo ? lo : x > hi ? hi : x;
}

int32_t mdfi_qgemm_requant(int32_t x, int m, const mdfi_qepilogue *e)
{
    /* 1. Activation on the accumulator. */
    int32_t a = x;
    if (e->act == MDFI_QACT_RELU) {
        a = x > 0 ? x : 0;
    } else if (e->act == MDFI_QACT_LEAKY && x < 0) {
        int ls = e->leaky_shift < 0 ? 0 : e->leaky_shift > 63 ? 63 : e->leaky_shift;
        a = (int32_t)(((int64_t)x * e->leaky_mult) >> ls);   /* arithmetic shift: floor */
    }
    /* 2. Per-channel scale (in int64: a * mult needs it). */
    const int64_t hi = e->out_bits == 8 ? 127 : 32767, lo = -hi - 1;
    int64_t v = e->mult ? (int64_t)a * e->mult[m] : a;
    int s = e->shift[m];
    if (s <= 0)
        return (int32_t)lshift_sat(v, -s, lo, hi);
    v = rshift_round64(v, s);
    /* 3. Saturation. */
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

MDFI_COLD void mdfi_qgemm_epi_scalar(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                           const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc)
{
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r;
        const uint32_t add = mdfi_qgemm_row_offset(e, corr, m);
        const int32_t *ar = acc + (size_t)r * ldacc;
        for (int j = 0; j < nv; ++j) {
            int32_t v = mdfi_qgemm_requant((int32_t)((uint32_t)ar[j] + add), m, e);
            if (e->out_bits == 8)
                ((int8_t *)c)[(size_t)r * ldc + j] = (int8_t)v;
            else
                ((int16_t *)c)[(size_t)r * ldc + j] = (int16_t)v;
        }
    }
}

/* out_bits 32: the sums with bias added and the B offset taken off, four
 * at a time in a vector type (the compiler left the plain loop scalar). */
typedef uint32_t v4u __attribute__((vector_size(16)));

static void epi_raw(const mdfi_qepilogue *e, int m0, const uint32_t *corr, const int32_t *acc,
                    int ldacc, int mv, int nv, void *c, size_t ldc)
{
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r;
        const uint32_t add = mdfi_qgemm_row_offset(e, corr, m);
        const v4u va = {add, add, add, add};
        const int32_t *ar = acc + (size_t)r * ldacc;
        int32_t *o = (int32_t *)c + (size_t)r * ldc;
        int j = 0;
        for (; j + 4 <= nv; j += 4) {
            v4u x;
            memcpy(&x, ar + j, sizeof x);
            x += va;
            memcpy(o + j, &x, sizeof x);
        }
        for (; j < nv; ++j)
            o[j] = (int32_t)((uint32_t)ar[j] + add);
    }
}

/* out_bits 32 with pairs: the sums as epi_raw, then the larger of each pair
 * of columns (nv even).  The x86 kernels take their own (epi_pairs: AVX2),
 * so this loop serves the others. */
static void epi_raw_pairs(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                          const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc)
{
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r;
        const uint32_t add = mdfi_qgemm_row_offset(e, corr, m);
        const int32_t *ar = acc + (size_t)r * ldacc;
        int32_t *o = (int32_t *)c + (size_t)r * ldc;
        for (int j = 0; 2 * j < nv; ++j) {
            const int32_t x = (int32_t)((uint32_t)ar[2 * j] + add);
            const int32_t y = (int32_t)((uint32_t)ar[2 * j + 1] + add);
            o[j] = x > y ? x : y;
        }
    }
}

void mdfi_qgemm_requant_rows(const mdfi_qgemm_kernel *k, const mdfi_qepilogue *e,
                             const int32_t *x, int ldx, int mv, int nv, void *c, size_t ldc)
{
    mdfi_qepilogue f = *e;
    f.bias = NULL;
    (k->epi ? k->epi : mdfi_qgemm_epi_scalar)(&f, 0, NULL, x, ldx, mv, nv, c, ldc);
}

MDFI_COLD int mdfi_qgemm_monotone(const mdfi_qepilogue *e, int M)
{
    if (e->act == MDFI_QACT_LEAKY && e->leaky_mult < 0)
        return 0;
    for (int m = 0; e->mult && m < M; ++m)
        if (e->mult[m] <= 0)
            return 0;
    return 1;
}

/* ---- B packing --------------------------------------------------------- */

/* Blocking (as GotoBLAS).  K is cut into nkb equal blocks of at most k->kc
 * rows, so the MR x kc A micro-panel stays in L1 while it sweeps the packed
 * B block, kc rows x nc columns sized to k->b_block_bytes (L2).  With one K
 * block the sums of an MR-row strip go from the micro-kernels straight to
 * the epilogue through an MR x nc buffer; with several, the sums of all M
 * rows wait in an int32 buffer (Mp x nc, nc capped so that it stays within
 * ACC_MAX bytes) for the next K block.  Integer sums make the result
 * independent of all of this. */
typedef struct {
    int K, Kp, N, kc, nkb, nc, ldacc, acc_rows;
} blocking;

#define NC_MAX 512                  /* caps nc (the epilogue strip, the rows pack_b builds) */
#define ACC_MAX (1024 * 1024)       /* caps the all-rows sums buffer */

static blocking get_blocking(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g)
{
    blocking b;
    const int G = k->kgrp, nr = k->nr, mr = pick_tile(k, M)->mr;
    b.K = g->channels * g->ksize * g->ksize;
    b.Kp = round_up(b.K, G);
    b.N = g->out_h * g->out_w;
    b.nkb = (b.Kp + k->kc - 1) / k->kc;
    b.kc = round_up((b.Kp + b.nkb - 1) / b.nkb, G);
    b.acc_rows = b.nkb > 1 ? round_up(M, mr) : mr;
    long long nc = (long long)k->b_block_bytes / ((long long)b.kc * elem_bytes(k));
    long long cap = NC_MAX;
    if (b.nkb > 1 && (long long)ACC_MAX / (4LL * b.acc_rows) < cap)
        cap = (long long)ACC_MAX / (4LL * b.acc_rows);
    if (nc > cap)
        nc = cap;
    nc = nc / nr * nr;
    if (nc < nr)
        nc = nr;
    int nmax = round_up(b.N, nr);
    b.nc = nc > nmax ? nmax : (int)nc;
    b.ldacc = round_up(b.nc, 16);
    return b;
}

#define MAX_G 4

/* Copies n bytes; runs up to 256 bytes (output rows of 13 to 208) with
 * fixed-size moves, the last one overlapping, which is cheaper than a
 * library call for them. */
static inline void copy_bytes_inl(char *o, const char *s, size_t n)
{
    if (n > 256) {
        memcpy(o, s, n);
    } else if (n >= 16) {
        for (size_t i = 0; i + 16 < n; i += 16)
            memcpy(o + i, s + i, 16);
        memcpy(o + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(o, s, 8);
        memcpy(o + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(o, s, 4);
        memcpy(o + n - 4, s + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; ++i)
            o[i] = s[i];
    }
}

static inline void zero_bytes_inl(char *o, size_t n)
{
    static const char zeros[16];
    if (n > 256) {
        memset(o, 0, n);
    } else if (n >= 16) {
        for (size_t i = 0; i + 16 < n; i += 16)
            memcpy(o + i, zeros, 16);
        memcpy(o + n - 16, zeros, 16);
    } else {
        for (size_t i = 0; i < n; ++i)
            o[i] = 0;
    }
}

/* Out-of-line forms for the partial rows and edges: inlining every call
 * site cost 2.4 KB of code for work done a few times per panel row. */
__attribute__((noinline)) static void copy_bytes(char *o, const char *s, size_t n)
{
    copy_bytes_inl(o, s, n);
}

__attribute__((noinline)) static void zero_bytes(char *o, size_t n)
{
    zero_bytes_inl(o, n);
}

/* build_row for stride 1 and bytes, the common case, with less work per
 * output row: the window hangs over at most pad columns on either side. */
static void build_row_s1(const mdfi_conv_geom *g, const char *plane, int ky, int xoff, int n0,
                         int nc, int width, char *row)
{
    const int ow = g->out_w;
    /* Output columns [lo, hi) read inside the image, 0 <= lo <= hi <= ow. */
    const int lo = xoff >= 0 ? 0 : -xoff < ow ? -xoff : ow;
    const int hi = g->in_w - xoff < lo ? lo : g->in_w - xoff < ow ? g->in_w - xoff : ow;
    int col = 0, oy = n0 / ow, ox = n0 % ow;
    if (ox) {   /* a partial first output row: the general path */
        int len = ow - ox < nc ? ow - ox : nc, iy = oy - g->pad + ky;
        int a = ox > lo ? ox : lo, b = ox + len < hi ? ox + len : hi;
        if (iy < 0 || iy >= g->in_h || a >= b)
            a = b = ox + len;
        zero_bytes(row, (size_t)(a - ox));
        if (b > a)
            copy_bytes(row + (a - ox), plane + (size_t)iy * g->in_w + a + xoff, (size_t)(b - a));
        zero_bytes(row + (b - ox), (size_t)(ox + len - b));
        col = len;
        ++oy;
    }
    for (; col + ow <= nc; col += ow, ++oy) {   /* whole output rows */
        const int iy = oy - g->pad + ky;
        char *o = row + col;
        if (iy < 0 || iy >= g->in_h) {
            zero_bytes_inl(o, (size_t)ow);
            continue;
        }
        for (int x = 0; x < lo; ++x)
            o[x] = 0;
        copy_bytes_inl(o + lo, plane + (size_t)iy * g->in_w + lo + xoff, (size_t)(hi - lo));
        for (int x = hi; x < ow; ++x)
            o[x] = 0;
    }
    if (col < nc) {   /* a partial last output row */
        const int len = nc - col, iy = oy - g->pad + ky;
        int b = len < hi ? len : hi, a = lo < b ? lo : b;
        if (iy < 0 || iy >= g->in_h)
            a = b = len;
        zero_bytes(row + col, (size_t)a);
        if (b > a)
            copy_bytes(row + col + a, plane + (size_t)iy * g->in_w + a + xoff, (size_t)(b - a));
        zero_bytes(row + col + b, (size_t)(len - b));
    }
    zero_bytes(row + nc, (size_t)(width - nc));
}

/* Row kk = (c*ks + ky)*ks + kx of B over columns [n0, n0 + nc), as input
 * elements (ib bytes) into row[0 .. width): each output row the columns
 * cover is zeros where the window hangs over the image, a (strided) copy of
 * the input row elsewhere. */
static void build_row(const mdfi_conv_geom *g, const char *in, int ib, int c, int ky, int kx,
                      int n0, int nc, int width, char *row)
{
    const int s = g->stride, ow = g->out_w, xoff = kx - g->pad;
    const char *plane = in + (size_t)c * g->in_h * g->in_w * ib;
    if (s == 1 && ib == 1) {
        build_row_s1(g, plane, ky, xoff, n0, nc, width, row);
        return;
    }
    /* Output columns [lo, hi) read inside the image horizontally. */
    const int lo = xoff >= 0 ? 0 : (-xoff + s - 1) / s;
    const int hi = g->in_w - 1 - xoff < 0 ? 0 : (g->in_w - 1 - xoff) / s + 1;
    int col = 0;
    for (int oy = n0 / ow, ox = n0 % ow; col < nc; ++oy, ox = 0) {
        const int len = ow - ox < nc - col ? ow - ox : nc - col;
        const int iy = oy * s - g->pad + ky;
        int a = ox > lo ? ox : lo, b = ox + len < hi ? ox + len : hi;
        if (iy < 0 || iy >= g->in_h || a >= b)
            a = b = ox + len;   /* all zeros */
        char *o = row + (size_t)col * ib;
        zero_bytes(o, (size_t)(a - ox) * ib);
        if (b > a) {
            const char *src = plane + ((size_t)iy * g->in_w + (size_t)a * s + xoff) * ib;
            char *d = o + (size_t)(a - ox) * ib;
            if (s == 1)
                copy_bytes(d, src, (size_t)(b - a) * ib);
            else if (ib == 1)
                for (int x = 0; x < b - a; ++x)
                    d[x] = src[(size_t)x * s];
            else
                for (int x = 0; x < b - a; ++x)
                    memcpy(d + 2 * x, src + (size_t)x * s * 2, 2);
        }
        zero_bytes(o + (size_t)(b - ox) * ib, (size_t)(ox + len - b) * ib);
        col += len;
    }
    zero_bytes(row + (size_t)nc * ib, (size_t)(width - nc) * ib);
}

/* Portable interleave of np panels of width w (see mdfi_qgemm_interleave). */
static void interleave_portable(const mdfi_qgemm_kernel *k, void *dst, size_t step,
                                const void *const *src, int np, int w)
{
    const int G = k->kgrp;
    for (int p = 0; p < np; ++p) {
        const size_t c0 = (size_t)p * k->nr;
        char *d = (char *)dst + p * step;
        if (k->bits == 16) {
            int16_t *o = (int16_t *)d;
            for (int t = 0; t < G; ++t)
                for (int j = 0; j < w; ++j)
                    o[j * G + t] = ((const int16_t *)src[t])[c0 + j];
        } else if (k->b_conv == MDFI_QB_SEXT16) {
            int16_t *o = (int16_t *)d;
            for (int t = 0; t < G; ++t)
                for (int j = 0; j < w; ++j)
                    o[j * G + t] = ((const int8_t *)src[t])[c0 + j];
        } else {
            uint8_t *o = (uint8_t *)d;
            const uint8_t x = k->b_conv == MDFI_QB_XOR80 ? 0x80 : 0;
            for (int t = 0; t < G; ++t)
                for (int j = 0; j < w; ++j)
                    o[j * G + t] = (uint8_t)(((const uint8_t *)src[t])[c0 + j] ^ x);
        }
    }
}

/* Packs rows [k0, k0 + kc) and columns [n0, n0 + nc) of B into dst (layout
 * in qgemm_impl.h, with kc rows per panel); the last panel is last_w (NR or
 * NR/2) wide.  Builds the G rows of a k group across all nc columns in rows
 * (G rows of ldrow elements), then interleaves them into every panel. */
static void pack_b(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, const void *input,
                   int K, int k0, int kc, int n0, int nc, int last_w, void *dst, char *rows,
                   int ldrow)
{
    const int ks = g->ksize, G = k->kgrp, nr = k->nr;
    const int ib = k->bits / 8, eb = elem_bytes(k);
    const int np = (nc + nr - 1) / nr, width = (np - 1) * nr + last_w;
    const size_t b_panel = (size_t)nr * kc * eb;
    /* 1x1, stride 1, no padding: row k of B is a piece of input plane k. */
    const int pointwise = ks == 1 && g->stride == 1 && g->pad == 0 && g->out_w == g->in_w &&
                          g->out_h == g->in_h;
    const size_t plane = (size_t)g->in_h * g->in_w;
    int c = k0 / (ks * ks), ky = k0 / ks % ks, kx = k0 % ks;
    for (int g0 = 0; g0 < kc; g0 += G) {
        const void *src[MAX_G];
        for (int t = 0; t < G; ++t) {
            char *row = rows + (size_t)t * ldrow * ib;
            src[t] = row;
            if (k0 + g0 + t >= K) {
                zero_bytes(row, (size_t)width * ib);
                continue;
            }
            if (pointwise) {
                const char *p = (const char *)input + ((size_t)(k0 + g0 + t) * plane + n0) * ib;
                if ((size_t)n0 + width <= plane) {   /* read in place */
                    src[t] = p;
                } else {
                    copy_bytes(row, p, (size_t)nc * ib);
                    zero_bytes(row + (size_t)nc * ib, (size_t)(width - nc) * ib);
                }
            } else {
                build_row(g, input, ib, c, ky, kx, n0, nc, width, row);
            }
            if (++kx == ks) {
                kx = 0;
                if (++ky == ks) {
                    ky = 0;
                    ++c;
                }
            }
        }
        char *d = (char *)dst + (size_t)g0 * nr * eb;
        const int full = last_w == nr ? np : np - 1;
        if (k->interleave)
            k->interleave(d, b_panel, src, full);
        else
            interleave_portable(k, d, b_panel, src, full, nr);
        if (full < np) {   /* the half-width last panel: its groups are pw*G wide */
            const void *tail[MAX_G];
            for (int t = 0; t < G; ++t)
                tail[t] = (const char *)src[t] + (size_t)full * nr * ib;
            interleave_portable(k, (char *)dst + full * b_panel + (size_t)g0 * last_w * eb, 0,
                                tail, 1, last_w);
        }
    }
}

/* ---- channel-grouped input (qgemm.h) ------------------------------------ */

/* X's shape: nq groups of ph padded rows of pw G-tuples (tb bytes each), a
 * row rs bytes (the interleave stores anywhere). */
typedef struct {
    int G, eb, tb, nq, pw, ph;
    size_t rs;
} cg_shape;

static cg_shape cg_shape_of(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g)
{
    cg_shape s;
    s.G = k->kgrp;
    s.eb = elem_bytes(k);
    s.tb = s.G * s.eb;
    s.nq = (g->channels + s.G - 1) / s.G;
    s.pw = g->in_w + 2 * g->pad;
    s.ph = g->in_h + 2 * g->pad;
    s.rs = (size_t)s.pw * s.tb;
    return s;
}

static const char *cg_crow(const cg_shape *s, const void *X, int q, int Y)
{
    return (const char *)X + ((size_t)q * s->ph + Y) * s->rs;
}

static char *cg_row(const cg_shape *s, void *X, int q, int Y)
{
    return (char *)cg_crow(s, X, q, Y);
}

MDFI_COLD int mdfi_qgemm_cg_ok(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g)
{
    return k && !k->conv && k->pair_max == 0 && g->stride == 1 &&
           (g->stride_y == 1 || g->stride_y == 0) && g->dilation <= 1 &&
           g->out_w == g->in_w + 2 * g->pad - g->ksize + 1 &&
           g->out_h == g->in_h + 2 * g->pad - g->ksize + 1;
}

int mdfi_qgemm_kgroup(const mdfi_qgemm_kernel *k)
{
    return k->kgrp;
}

MDFI_COLD mdfi_conv_geom mdfi_qgemm_cg_geom(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g)
{
    mdfi_conv_geom c = *g;
    c.channels = round_up(g->channels, k->kgrp);
    return c;
}

MDFI_COLD size_t mdfi_qgemm_cg_bytes(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g)
{
    const cg_shape s = cg_shape_of(k, g);
    return (size_t)s.nq * s.ph * s.rs;
}

MDFI_COLD void mdfi_qgemm_cg_order(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, int M,
                                   const void *A, void *A2)
{
    const int C = g->channels, taps = g->ksize * g->ksize, G = k->kgrp;
    const int K = C * taps, K2 = round_up(C, G) * taps;
    for (int m = 0; m < M; ++m)
        for (int k2 = 0; k2 < K2; ++k2) {
            const int t = k2 % G, tap = k2 / G % taps, c = k2 / G / taps * G + t;
            const int32_t v = c < C ? a_at(k, A, (size_t)m * K + (size_t)c * taps + tap) : 0;
            if (k->bits == 8)
                ((int8_t *)A2)[(size_t)m * K2 + k2] = (int8_t)v;
            else
                ((int16_t *)A2)[(size_t)m * K2 + k2] = (int16_t)v;
        }
}

/* bytes of the converted zero (0x80 where B is stored as b + 128). */
static void cg_zero(const mdfi_qgemm_kernel *k, char *o, size_t bytes)
{
    memset(o, k->b_conv == MDFI_QB_XOR80 ? 0x80 : 0, bytes);
}

void mdfi_qgemm_cg_put_row(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g,
                           const void *const *rows, void *X, int q, int y)
{
    const cg_shape s = cg_shape_of(k, g);
    const int W = g->in_w, np = W / k->nr, ib = k->bits / 8;
    char *o = cg_row(&s, X, q, y + g->pad);
    cg_zero(k, o, (size_t)g->pad * s.tb);
    char *d = o + (size_t)g->pad * s.tb;
    const size_t step = (size_t)k->nr * s.tb;
    if (np) {
        if (k->interleave)
            k->interleave(d, step, rows, np);
        else
            interleave_portable(k, d, step, rows, np, k->nr);
    }
    if (W % k->nr) {   /* the columns past the last whole panel, through buffers */
        const int rem = W % k->nr;
        /* nr <= 64 elements of up to 2 bytes */
        char in[MAX_G][64 * 2] __attribute__((aligned(32)));
        char out[MAX_G * 64 * 2] __attribute__((aligned(32)));
        const void *tail[MAX_G];
        for (int t = 0; t < s.G; ++t) {
            memcpy(in[t], (const char *)rows[t] + (size_t)np * k->nr * ib, (size_t)rem * ib);
            memset(in[t] + (size_t)rem * ib, 0, (size_t)(k->nr - rem) * ib);
            tail[t] = in[t];
        }
        if (k->interleave)
            k->interleave(out, step, tail, 1);
        else
            interleave_portable(k, out, step, tail, 1, k->nr);
        memcpy(d + np * step, out, (size_t)rem * s.tb);
    }
    cg_zero(k, d + (size_t)W * s.tb, (size_t)g->pad * s.tb);
}

void mdfi_qgemm_cg_pad_rows(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, void *X, int q)
{
    const cg_shape s = cg_shape_of(k, g);
    for (int Y = 0; Y < s.ph; ++Y)
        if (Y < g->pad || Y >= g->pad + g->in_h)
            cg_zero(k, cg_row(&s, X, q, Y), (size_t)s.pw * s.tb);
}

/* pack_b for X: k group i of the block is channel group q and tap (ky, kx);
 * its part of a panel is the runs of X row (q, oy + ky) from column ox + kx,
 * one per output row the panel's columns cover.  The runs (where in the
 * panel, where in X from tap (0, 0)) are the same for every group: found
 * once, with one division per output row. */
typedef struct {
    int dst;        /* bytes into the panel's group */
    int len;        /* bytes */
    size_t src;     /* bytes into X from the group's row 0 */
    int panel;
} cg_run;

static void pack_b_cg(const mdfi_qgemm_kernel *k, const mdfi_conv_geom *g, const void *X,
                      int k0, int kc, int n0, int nc, int last_w, void *dst, cg_run *runs)
{
    const cg_shape s = cg_shape_of(k, g);
    const int ks = g->ksize, taps = ks * ks, G = s.G, nr = k->nr, ow = g->out_w;
    const int np = (nc + nr - 1) / nr;
    const size_t b_panel = (size_t)nr * kc * s.eb;
    int nrun = 0, oy = n0 / ow, ox = n0 % ow;
    for (int p = 0; p < np; ++p) {
        const int w = p == np - 1 ? last_w : nr;
        int left = n0 + nc - (n0 + p * nr), col = 0;
        left = left < w ? left : w;
        while (left > 0) {
            const int run = left < ow - ox ? left : ow - ox;
            runs[nrun++] = (cg_run){col * s.tb, run * s.tb,
                                    (size_t)oy * s.rs + (size_t)ox * s.tb, p};
            col += run;
            left -= run;
            if ((ox += run) == ow) {
                ox = 0;
                ++oy;
            }
        }
        if (col < w)   /* past the last column: zeros */
            runs[nrun++] = (cg_run){col * s.tb, (w - col) * s.tb, (size_t)-1, p};
    }
    /* Run by run, its k groups in turn (up to CHUNK at a time): each run's
     * part of its panel is written in order, one k group's rows after the
     * other, from the k groups' rows of X. */
    enum { CHUNK = 64 };
    size_t off[CHUNK];   /* k group's tap and channel group, from X */
    for (int c0 = 0; c0 < kc; c0 += CHUNK * G) {
        const int c1 = kc - c0 < CHUNK * G ? kc : c0 + CHUNK * G;
        int n = 0;
        for (int g0 = c0; g0 < c1; g0 += G, ++n) {
            const int gi = (k0 + g0) / G, q = gi / taps, ky = gi % taps / ks, kx = gi % ks;
            off[n] = (size_t)(cg_crow(&s, X, q, ky) - (const char *)X) + (size_t)kx * s.tb;
        }
        for (int r = 0; r < nrun; ++r) {
            const cg_run *u = &runs[r];
            const int w = u->panel == np - 1 ? last_w : nr;
            const size_t step = (size_t)w * s.tb, len = (size_t)u->len;
            char *d = (char *)dst + (size_t)u->panel * b_panel + (size_t)c0 * w * s.eb + u->dst;
            const char *src = (const char *)X + u->src;
            if (u->src == (size_t)-1) {
                for (int i = 0; i < n; ++i)
                    zero_bytes(d + i * step, len);
            } else if (len == 128) {   /* a whole row of 32 columns of 4 bytes (VNNI) */
                for (int i = 0; i < n; ++i)
                    memcpy(d + i * step, src + off[i], 128);
            } else {
                for (int i = 0; i < n; ++i)
                    copy_bytes(d + i * step, src + off[i], len);
            }
        }
    }
}

/* The most runs of a block: every panel's columns, one per output row they
 * cover (at most nr + 1 each with the zeros past the end). */
static size_t cg_runs_bytes(const mdfi_qgemm_kernel *k, int nc)
{
    const int np = (nc + k->nr - 1) / k->nr;
    return ((size_t)np * (k->nr + 1) * sizeof(cg_run) + 63) / 64 * 64;
}

/* ---- driver ------------------------------------------------------------ */

/* Workspace: packed B block (kc x nc) | sums (acc_rows x ldacc int32) |
 * the G rows pack_b builds (ldacc elements each). */
static size_t b_block_bytes(const mdfi_qgemm_kernel *k, const blocking *b)
{
    return ((size_t)b->kc * b->nc * elem_bytes(k) + 63) / 64 * 64;
}

static size_t acc_bytes(const blocking *b)
{
    return ((size_t)b->acc_rows * b->ldacc * sizeof(int32_t) + 63) / 64 * 64;
}

/* The rows pack_b builds, then (a kernel that widens A) one widened A
 * micro-panel. */
static size_t rows_bytes(const mdfi_qgemm_kernel *k, const blocking *b)
{
    const size_t rows = ((size_t)k->kgrp * b->ldacc * (k->bits / 8) + 63) / 64 * 64;
    const size_t runs = cg_runs_bytes(k, b->nc);   /* what pack_b_cg keeps there instead */
    return rows > runs ? rows : runs;
}

MDFI_COLD size_t mdfi_qgemm_workspace_size(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g)
{
    if (k->workspace)
        return k->workspace(M, g);
    blocking b = get_blocking(k, M, g);
    size_t widened = a_bytes(k) < elem_bytes(k) ? (size_t)pick_tile(k, M)->mr * b.kc * 2 : 0;
    return b_block_bytes(k, &b) + acc_bytes(&b) + rows_bytes(k, &b) + widened;
}

/* n int8 weights to int16, 16 at a time where it can (gcc -O2 vectorizes
 * the fixed-count inner loop). */
static void widen_panel(const int8_t *restrict a, int16_t *restrict w, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; ++j)
            w[i + j] = a[i + j];
    for (; i < n; ++i)
        w[i] = a[i];
}

/* mdfi_qgemm_conv, and with cg mdfi_qgemm_conv_cg (input: X). */
static void conv(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g, const void *packed_a,
                 const void *input, const mdfi_qepilogue *epi, void *C, size_t ldc, int n0,
                 int n1, void *workspace, int cg)
{
    const mdfi_qgemm_tile *t = pick_tile(k, M);
    const mdfi_conv_geom gb = cg ? mdfi_qgemm_cg_geom(k, g) : *g;
    const blocking b = get_blocking(k, M, &gb);
    const int mr = t->mr, nr = k->nr, eb = elem_bytes(k), ab = a_bytes(k);
    const int ob = epi->out_bits / 8;
    char *bp = workspace;
    int32_t *acc = (int32_t *)(bp + b_block_bytes(k, &b));
    char *rows = (char *)acc + acc_bytes(&b);
    int16_t *wide = (int16_t *)(rows + rows_bytes(k, &b));   /* used when ab < eb */
    const uint32_t *corr =
        k->b_conv == MDFI_QB_XOR80
            ? (const uint32_t *)((const char *)packed_a + mdfi_qgemm_corr_offset(k, M, b.K))
            : NULL;
    const mdfi_qgemm_epi fin = epi->out_bits == 32 ? (!epi->pairs   ? epi_raw
                                                      : k->epi_pairs ? k->epi_pairs
                                                                     : epi_raw_pairs)
                               : k->epi                ? k->epi
                                                       : mdfi_qgemm_epi_scalar;
    const int cdiv = epi->out_bits == 32 && epi->pairs ? 2 : 1;   /* C's columns per sum */
    const size_t a_panel = (size_t)mr * b.Kp * ab;
    for (int jc = n0; jc < n1; jc += b.nc) {
        const int nc = n1 - jc < b.nc ? n1 - jc : b.nc;
        const int np = (nc + nr - 1) / nr;
        /* A last panel of at most nr/2 columns is packed and computed half
         * width. */
        const int half = t->ukr_half && nc % nr && nc % nr <= nr / 2;
        const int last_w = half ? nr / 2 : nr;
        for (int pc = 0; pc < b.Kp; pc += b.kc) {
            const int kc = b.Kp - pc < b.kc ? b.Kp - pc : b.kc;
            const size_t b_panel = (size_t)nr * kc * eb;
            if (cg)
                pack_b_cg(k, g, input, pc, kc, jc, nc, last_w, bp, (cg_run *)rows);
            else
                pack_b(k, g, input, b.K, pc, kc, jc, nc, last_w, bp, rows, b.ldacc);
            /* The A micro-panel (L1) sweeps the B block (L2). */
            for (int i = 0; i < M; i += mr) {
                const char *a = (const char *)packed_a + (size_t)(i / mr) * a_panel +
                                (size_t)pc * mr * ab;
                if (ab < eb) {
                    widen_panel((const int8_t *)a, wide, (size_t)mr * kc);
                    a = (const char *)wide;
                }
                int32_t *ai = b.nkb > 1 ? acc + (size_t)i * b.ldacc : acc;
                for (int p = 0; p < np; ++p) {
                    mdfi_qgemm_ukr ukr = p == np - 1 && half ? t->ukr_half : t->ukr;
                    ukr(kc / k->kgrp, a, bp + (size_t)p * b_panel, ai + p * nr, b.ldacc, pc > 0);
                }
                if (pc + kc == b.Kp)
                    fin(epi, i, corr, ai, b.ldacc, M - i < mr ? M - i : mr, nc,
                        (char *)C + ((size_t)i * ldc + (size_t)(jc - n0) / cdiv) * ob, ldc);
            }
        }
    }
}

void mdfi_qgemm_conv(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g,
                     const void *packed_a, const void *input, const mdfi_qepilogue *epi,
                     void *C, size_t ldc, int n0, int n1, void *workspace)
{
    if (n0 >= n1 || M <= 0)
        return;
    if (k->conv)
        k->conv(M, g, packed_a, input, epi, C, ldc, n0, n1, workspace);
    else
        conv(k, M, g, packed_a, input, epi, C, ldc, n0, n1, workspace, 0);
}

void mdfi_qgemm_conv_cg(const mdfi_qgemm_kernel *k, int M, const mdfi_conv_geom *g,
                        const void *packed_a, const void *X, const mdfi_qepilogue *epi,
                        void *C, size_t ldc, int n0, int n1, void *workspace)
{
    if (n0 < n1 && M > 0)
        conv(k, M, g, packed_a, X, epi, C, ldc, n0, n1, workspace, 1);
}
