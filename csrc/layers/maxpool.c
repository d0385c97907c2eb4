/* [maxpool]: Darknet's padding rule: padding defaults to size-1, windows
 * start at -(padding/2), and out-of-image taps are ignored (-FLT_MAX).
 * Three variants: float; fixed point (the max in the input's integers, then
 * requantized); and bits, for a pool between binary layers (the network
 * decides, net/passes.c). */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "kernels/pool.h"
#include "layers/fixed.h"
#include "layers/layer.h"

mdfi_status mdfi_maxpool_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_errbuf *err)
{
    int sy;
    MDFI_CHECK(mdfi_layer_pool_parse(l, s, ctx, &sy, err));
    /* the max pool kernels have one stride */
    if (sy != l->stride)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [maxpool]: stride_y=%d "
                         "unlike stride_x=%d is not supported", ctx->cfg->name, s->line,
                         ctx->index, sy, l->stride);
    return MDFI_OK;
}

/* ---- float ------------------------------------------------------------------ */

/* The window at input row ylo..yhi, column x0 (clipped to the image). */
static float pool_one(const mdfi_pool2d *p, const float *src, int r0, int ylo, int yhi, int x0)
{
    const int size = p->size;
    int xlo = x0 < 0 ? 0 : x0, xhi = x0 + size > p->in_w ? p->in_w : x0 + size;
    float m = -FLT_MAX;
    for (int y = ylo; y < yhi; ++y)
        for (int x = xlo; x < xhi; ++x) {
            float v = src[(size_t)(y - r0) * p->in_w + x];
            m = v > m ? v : m;
        }
    return m;
}

/* One output row from input rows [r0, ...) of one channel at src (off: the
 * windows' start, -(pad / 2)): windows wholly inside the image skip the
 * bounds tests (the common case); the edges take the general path. */
static void pool_row(const mdfi_pool2d *p, const float *src, int r0, int y0, int off, float *out)
{
    const int size = p->size, stride = p->stride;
    int ylo = y0 < 0 ? 0 : y0, yhi = y0 + size > p->in_h ? p->in_h : y0 + size;
    int ox = 0;
    if (size == 2 && stride == 2 && yhi - ylo == 2) {
        /* the inside windows [ox0, ox1) in one run (x0 = off + 2 ox >= 0, x0 + 2 <= in_w);
         * shifts of values >= 0, where -Os made an idiv of (1 - off) / 2 per row */
        const int ox0 = (1 - off) >> 1, lim = p->in_w - 2 - off < 0 ? 0 : ((p->in_w - 2 - off) >> 1) + 1;
        const int ox1 = lim < p->out_w ? lim : p->out_w;
        for (; ox < ox0 && ox < p->out_w; ++ox)
            out[ox] = pool_one(p, src, r0, ylo, yhi, off + ox * stride);
        if (ox1 > ox) {
            const float *a = src + (size_t)(ylo - r0) * p->in_w + off + 2 * ox;
            mdfi_max2x2_row(a, a + p->in_w, ox1 - ox, out + ox);
            ox = ox1;
        }
    }
    for (; ox < p->out_w; ++ox) {
        int x0 = off + ox * stride;
        float m = -FLT_MAX;
        if (x0 >= 0 && x0 + size <= p->in_w && size == 2 && yhi - ylo == 2) {
            /* the same comparisons in the same order as the general path */
            const float *a = src + (size_t)(ylo - r0) * p->in_w + x0, *b = a + p->in_w;
            m = a[0] > m ? a[0] : m;
            m = a[1] > m ? a[1] : m;
            m = b[0] > m ? b[0] : m;
            m = b[1] > m ? b[1] : m;
        } else {
            m = pool_one(p, src, r0, ylo, yhi, x0);
        }
        out[ox] = m;
    }
}

void mdfi_maxpool_band(const mdfi_pool2d *p, const float *in, int r0, int r1, int oy0, int oy1,
                       float *out)
{
    const int off = -(p->pad >> 1);   /* pad >= 0 (parse): a shift, where -Os made /2 an idiv */
    for (int c = 0; c < p->c; ++c) {
        const float *src = in + (size_t)c * (r1 - r0) * p->in_w;
        float *o = out + (size_t)c * p->out_h * p->out_w;
        for (int oy = oy0; oy < oy1; ++oy)
            pool_row(p, src, r0, off + oy * p->stride, off, o + (size_t)oy * p->out_w);
    }
}

/* A 2x2 / 1 pool whose windows start at the pixel and are clipped at the
 * right and bottom edges (yolov3-tiny's 13x13 one): it runs a plane as one
 * long row of windows (vectorized), then the last column, whose windows that
 * row wraps into the next row, and the last row, which has none below. */
static int s1_plane(const mdfi_layer *l)
{
    return l->size == 2 && l->stride == 1 && l->pad >> 1 == 0 && l->out_h == l->in_h &&
           l->out_w == l->in_w && l->in_h > 1 && l->in_w > 1;
}

/* Channel c (threads split the channels: mdfi_fx_by_channel). */
static void float_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const mdfi_pool2d p = {l->size, l->stride, l->pad, l->in_h, l->in_w, l->out_h, l->out_w, 1};
    if (s1_plane(l)) {   /* the edges' windows by pool_one, in Darknet's order of taps */
        const int w = l->in_w, h = l->in_h, last = (h - 1) * w;
        const float *a = ctx->in[0] + (size_t)c * h * w;
        float *d = ctx->out + (size_t)c * h * w;
        mdfi_max2x2s1_row(a, a + w, last - 1, d);
        for (int y = 0; y < h; ++y)
            d[y * w + w - 1] = pool_one(&p, a, 0, y, y + 2 < h ? y + 2 : h, w - 1);
        /* the last row's windows: its row twice (taps seen again change nothing) */
        mdfi_max2x2s1_row(a + last, a + last, w - 1, d + last);
        return;
    }
    mdfi_maxpool_band(&p, ctx->in[0] + (size_t)c * l->in_h * l->in_w, 0, l->in_h, 0, l->out_h,
                      ctx->out + (size_t)c * l->out_h * l->out_w);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, float_channel);
}

/* ---- fixed point -------------------------------------------------------------- */

/* The max of each window, in the input's type T, for output rows [oy0, oy1)
 * from input rows [r0, ...) at src (the whole plane, or a fused conv's band);
 * windows are clipped to the image (outside taps are ignored; Darknet's
 * windows always hold one tap).  With same, row oy goes to dst + (oy - dy)
 * out_w. */
#define MAXPOOL_PLANE(NAME, T, TMIN, ROW2X2, S1)                                          \
    static void NAME(const mdfi_pool2d *l, const T *src, int r0, int oy0, int oy1,        \
                     int32_t *row_max, T *dst, int dy, int same, int shift, int ob,       \
                     void *out, size_t o)                                                 \
    {                                                                                     \
        const int off = -(l->pad >> 1), st = l->stride, sz = l->size;                     \
        for (int oy = oy0; oy < oy1; ++oy) {                                              \
            const int y0 = off + oy * st;                                                 \
            const int ya = y0 < 0 ? 0 : y0;                                               \
            const int yb = y0 + sz > l->in_h ? l->in_h : y0 + sz;                         \
            int ox = 0, done = 0;                                                         \
            if (sz == 2 && st == 2 && off == 0 && yb - ya == 2) { /* 2x2/2 inside */      \
                const T *ra = src + (size_t)(ya - r0) * l->in_w, *rb = ra + l->in_w;      \
                const int full = l->in_w / 2 < l->out_w ? l->in_w / 2 : l->out_w;         \
                if (same) { /* straight into the output (kernels/pool.c) */              \
                    ROW2X2(ra, rb, full, dst + (size_t)(oy - dy) * l->out_w);             \
                    ox = done = full;                                                     \
                }                                                                         \
                for (; ox < full; ++ox) {                                                 \
                    T a = ra[2 * ox] > ra[2 * ox + 1] ? ra[2 * ox] : ra[2 * ox + 1];      \
                    T b = rb[2 * ox] > rb[2 * ox + 1] ? rb[2 * ox] : rb[2 * ox + 1];      \
                    row_max[ox] = a > b ? a : b;                                          \
                }                                                                         \
            }                                                                             \
            if (S1 && sz == 2 && st == 1 && off == 0 && yb - ya == 2 && same) { /* 2x2/1 */ \
                const int8_t *ra = (const int8_t *)src + (size_t)(ya - r0) * l->in_w;     \
                const int full = l->in_w - 1 < l->out_w ? l->in_w - 1 : l->out_w;         \
                mdfi_max2x2s1_row_i8(ra, ra + l->in_w, full,                              \
                                     (int8_t *)dst + (size_t)(oy - dy) * l->out_w);       \
                ox = done = full;                                                         \
            }                                                                             \
            for (; ox < l->out_w; ++ox) {                                                 \
                const int x0 = off + ox * st;                                             \
                const int xa = x0 < 0 ? 0 : x0;                                           \
                const int xb = x0 + sz > l->in_w ? l->in_w : x0 + sz;                     \
                T m = TMIN; /* an empty window (odd padding) gives the type's minimum */  \
                for (int y = ya; y < yb; ++y) {                                           \
                    const T *r = src + (size_t)(y - r0) * l->in_w;                        \
                    for (int x = xa; x < xb; ++x)                                         \
                        m = r[x] > m ? r[x] : m;                                          \
                }                                                                         \
                row_max[ox] = m;                                                          \
            }                                                                             \
            if (same) {                                                                   \
                for (int j = done; j < l->out_w; ++j)                                     \
                    dst[(size_t)(oy - dy) * l->out_w + j] = (T)row_max[j];                \
            } else {                                                                      \
                for (int j = 0; j < l->out_w; ++j)                                        \
                    mdfi_fx_put(out, ob, o + (size_t)oy * l->out_w + j,                   \
                                mdfi_fx_requant(row_max[j], shift, ob));                  \
            }                                                                             \
        }                                                                                 \
    }
/* S1: 2x2 / stride 1 rows (yolov3-tiny's 13x13 pool) vectorized, 8 bits only */
MAXPOOL_PLANE(maxpool_plane8, int8_t, INT8_MIN, mdfi_max2x2_row_i8, 1)
MAXPOOL_PLANE(maxpool_plane16, int16_t, INT16_MIN, mdfi_max2x2_row_i16, 0)
MAXPOOL_PLANE(maxpool_plane32, int32_t, INT32_MIN, mdfi_max2x2_row_i32, 0)

static void maxpool_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const int ib = l->q_in.bits, ob = l->q_out.bits;
    const int shift = l->q_in.frac - l->q_out.frac, same = ib == ob && shift == 0;
    const size_t plane = (size_t)l->in_h * l->in_w, o = (size_t)c * l->out_h * l->out_w;
    int32_t row_max[1024];
    if (l->out_w > 1024) {   /* very wide maps: the plain loop */
        const int off = -(l->pad >> 1);
        for (int oy = 0; oy < l->out_h; ++oy)
            for (int ox = 0; ox < l->out_w; ++ox) {
                int32_t m = INT32_MIN;
                for (int y = off + oy * l->stride; y < off + oy * l->stride + l->size; ++y)
                    for (int x = off + ox * l->stride; x < off + ox * l->stride + l->size; ++x)
                        if (y >= 0 && y < l->in_h && x >= 0 && x < l->in_w) {
                            int32_t v = mdfi_fx_get(ctx->in[0], ib, c * plane +
                                                    (size_t)y * l->in_w + x);
                            m = v > m ? v : m;
                        }
                if (m == INT32_MIN)
                    m = ib == 8 ? INT8_MIN : INT16_MIN;
                mdfi_fx_put(ctx->out, ob, o + (size_t)oy * l->out_w + ox,
                            mdfi_fx_requant(m, shift, ob));
            }
        return;
    }
    if (ib == 8 && same && s1_plane(l)) {
        const int8_t *a = (const int8_t *)ctx->in[0] + c * plane;
        int8_t *d = (int8_t *)ctx->out + o;
        const int w = l->in_w, last = (l->in_h - 1) * w;
        mdfi_max2x2s1_row_i8(a, a + w, last - 1, d);
        for (int i = w - 1; i < last; i += w)
            d[i] = a[i] > a[i + w] ? a[i] : a[i + w];
        mdfi_max2x2s1_row_i8(a + last, a + last, w - 1, d + last);
        d[last + w - 1] = a[last + w - 1];
        return;
    }
    const mdfi_pool2d p = {l->size, l->stride, l->pad, l->in_h, l->in_w, l->out_h, l->out_w,
                           l->out_c};
    if (ib == 8)
        maxpool_plane8(&p, (const int8_t *)ctx->in[0] + c * plane, 0, 0, l->out_h, row_max,
                       (int8_t *)ctx->out + o, 0, same, shift, ob, ctx->out, o);
    else
        maxpool_plane16(&p, (const int16_t *)ctx->in[0] + c * plane, 0, 0, l->out_h, row_max,
                        (int16_t *)ctx->out + o, 0, same, shift, ob, ctx->out, o);
}

void mdfi_fx_maxpool_band(const mdfi_pool2d *p, int bits, const void *in, int r0, int r1,
                          int oy0, int oy1, void *out)
{
    int32_t row_max[1024];   /* out_w <= 1024: net/passes.c fuses no wider pool */
    const size_t band = (size_t)(r1 - r0) * p->in_w, plane = (size_t)p->out_h * p->out_w;
    for (int c = 0; c < p->c; ++c) {
        if (bits == 8)
            maxpool_plane8(p, (const int8_t *)in + c * band, r0, oy0, oy1, row_max,
                           (int8_t *)out + c * plane, 0, 1, 0, 8, out, 0);
        else
            maxpool_plane16(p, (const int16_t *)in + c * band, r0, oy0, oy1, row_max,
                            (int16_t *)out + c * plane, 0, 1, 0, 16, out, 0);
    }
}

void mdfi_fx_maxpool_pairs32(const mdfi_pool2d *p, const int32_t *in, int r0, int r1, int oy0,
                             int oy1, int32_t *out, size_t ldo)
{
    const int w = p->in_w / 2;
    const size_t band = (size_t)(r1 - r0) * w;
    for (int c = 0; c < p->c; ++c)
        for (int oy = oy0; oy < oy1; ++oy) {
            const int32_t *a = in + c * band + (size_t)(2 * oy - r0) * w;
            mdfi_max_rows_i32(a, 2 * oy + 1 < p->in_h ? a + w : a, w,
                              out + c * ldo + (size_t)(oy - oy0) * w);
        }
}

void mdfi_fx_maxpool_band32(const mdfi_pool2d *p, const int32_t *in, int r0, int r1, int oy0,
                            int oy1, int32_t *out, size_t ldo)
{
    int32_t row_max[1024];
    const size_t band = (size_t)(r1 - r0) * p->in_w;
    for (int c = 0; c < p->c; ++c)
        maxpool_plane32(p, in + c * band, r0, oy0, oy1, row_max, out + c * ldo, oy0, 1, 0, 32,
                        out, 0);
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_by_channel(l, ctx, maxpool_channel);
}

/* ---- the binary variant: bit planes in, bit planes out ----------------------
 * Darknet's maxpool (out-of-image taps ignored) commutes with a monotone
 * quantizer, so pooling the level indices is exact:
 *   SIGN     OR of the bits
 *   TERNARY  pos = OR pos;  nz = pos | AND nz       (max of -1/0/+1)
 *   2BIT     b1 = OR b1;  b0 = b1 ? OR(b0 & b1) : OR b0
 * An empty window gives the lowest level, as -FLT_MAX would. */
static void bits_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const mdfi_bquant *q = &l->bits_q;   /* the producer's quantizer (net/passes.c) */
    const int off = -(l->pad >> 1), W = mdfi_bwords(l->out_c);
    const size_t iplane = (size_t)l->in_h * l->in_w, oplane = (size_t)l->out_h * l->out_w;
    const uint64_t *in = (const uint64_t *)ctx->in[0];
    uint64_t *out = (uint64_t *)ctx->out;
    for (int w = 0; w < W; ++w) {
        int nch = l->out_c - 64 * w;
        const uint64_t cmask = nch >= 64 ? ~0ull : (1ull << nch) - 1;
        const uint64_t *s0 = in + (size_t)w * iplane, *s1 = in + ((size_t)W + w) * iplane;
        uint64_t *d0 = out + (size_t)w * oplane, *d1 = out + ((size_t)W + w) * oplane;
        for (int oy = 0; oy < l->out_h; ++oy)
            for (int ox = 0; ox < l->out_w; ++ox) {
                uint64_t or0 = 0, or1 = 0, and1 = ~0ull, or01 = 0;
                for (int ky = 0; ky < l->size; ++ky) {
                    int y = off + oy * l->stride + ky;
                    if (y < 0 || y >= l->in_h)
                        continue;
                    for (int kx = 0; kx < l->size; ++kx) {
                        int x = off + ox * l->stride + kx;
                        if (x < 0 || x >= l->in_w)
                            continue;
                        size_t i = (size_t)y * l->in_w + x;
                        or0 |= s0[i];
                        if (q->planes > 1) {
                            or1 |= s1[i];
                            and1 &= s1[i];
                            or01 |= s0[i] & s1[i];
                        }
                    }
                }
                size_t o = (size_t)oy * l->out_w + ox;
                if (q->mode == MDFI_BMODE_SIGN) {
                    d0[o] = or0;
                } else if (q->mode == MDFI_BMODE_TERNARY) {
                    d0[o] = or0;
                    d1[o] = (or0 | and1) & cmask;
                } else {
                    d1[o] = or1;
                    d0[o] = (or1 & or01) | (~or1 & or0);
                }
            }
    }
}

const mdfi_layer_variant mdfi_maxpool_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_maxpool_fixed = {mdfi_fx_bind_int_inputs, NULL, NULL, fixed_forward,
                                               NULL, NULL};
const mdfi_layer_variant mdfi_maxpool_bits = {NULL, NULL, NULL, bits_forward, NULL, NULL};
