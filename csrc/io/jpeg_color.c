/* Chroma upsampling and colour conversion, chosen to give Darknet's bytes
 * (stb_image 2.19; see docs/jpeg.md).  A component with hs x vs fewer
 * samples than the largest is brought to full size row by row:
 *   1x1  as is
 *   2x1  horizontal triangle filter: the two outputs of input i are
 *        (3*in[i] + in[i-1] + 2) >> 2 and (3*in[i] + in[i+1] + 2) >> 2,
 *        with the edge samples copied (the right edge has its own rule)
 *   1x2  vertical triangle filter: (3*near + far + 2) >> 2
 *   2x2  both at once: t = 3*near + far per column, then
 *        (3*t[i] + t[i-1] + 8) >> 4 and (3*t[i] + t[i+1] + 8) >> 4
 *   else sample replication
 * where "near" is the input row nearest the output row and "far" the one
 * on its other side (clamped at the top and bottom).  Then YCbCr -> RGB in
 * fixed point (constants 1.402, 0.71414, 0.34414, 1.772 to 12 bits; see
 * ycc_rgb) unless the file says its components are RGB. */
#include "io/jpeg.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef struct {
    int hs, vs;             /* upsampling factors */
    int w_in;               /* input samples per row used: ceil(x / hs) */
    int rows;               /* input rows: the component's height */
    unsigned char *buf;     /* one output row when the component is resampled */
} resampler;

static void row_h2(unsigned char *out, const unsigned char *in, int w)
{
    if (w == 1) {
        out[0] = out[1] = in[0];
        return;
    }
    out[0] = in[0];
    out[1] = (unsigned char)((in[0] * 3 + in[1] + 2) >> 2);
    int i;
    for (i = 1; i < w - 1; i++) {
        int n = 3 * in[i] + 2;
        out[2 * i] = (unsigned char)((n + in[i - 1]) >> 2);
        out[2 * i + 1] = (unsigned char)((n + in[i + 1]) >> 2);
    }
    out[2 * i] = (unsigned char)((in[w - 2] * 3 + in[w - 1] + 2) >> 2);
    out[2 * i + 1] = in[w - 1];
}

static void row_v2(unsigned char *out, const unsigned char *near, const unsigned char *far,
                   int w)
{
    for (int i = 0; i < w; i++)
        out[i] = (unsigned char)((3 * near[i] + far[i] + 2) >> 2);
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* t = 3*near + far for the 8 columns from i, in 16 bits. */
static inline __m128i col_sums(const unsigned char *near, const unsigned char *far, int i)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i n = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(near + i)), zero);
    __m128i f = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(far + i)), zero);
    return _mm_add_epi16(_mm_add_epi16(n, _mm_add_epi16(n, n)), f);
}
#endif

static void row_hv2(unsigned char *out, const unsigned char *near, const unsigned char *far,
                    int w)
{
    if (w == 1) {
        out[0] = out[1] = (unsigned char)((3 * near[0] + far[0] + 2) >> 2);
        return;
    }
    /* Input i gives out[2i] (with t[i-1]) and out[2i+1] (with t[i+1]); the two
     * ends are (t + 2) >> 2. */
    int t0 = 3 * near[0] + far[0];
    out[0] = (unsigned char)((t0 + 2) >> 2);
    out[1] = (unsigned char)((3 * t0 + 3 * near[1] + far[1] + 8) >> 4);
    int i = 1;
#if defined(__SSE2__)
    const __m128i eight = _mm_set1_epi16(8);
    for (; i + 8 <= w - 1; i += 8) {
        __m128i t = col_sums(near, far, i), tm = col_sums(near, far, i - 1);
        __m128i tp = col_sums(near, far, i + 1);
        __m128i t3 = _mm_add_epi16(_mm_add_epi16(t, _mm_add_epi16(t, t)), eight);
        __m128i even = _mm_srli_epi16(_mm_add_epi16(t3, tm), 4);
        __m128i odd = _mm_srli_epi16(_mm_add_epi16(t3, tp), 4);
        __m128i px = _mm_packus_epi16(_mm_unpacklo_epi16(even, odd), _mm_unpackhi_epi16(even, odd));
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * i), px);
    }
#endif
    for (; i < w - 1; i++) {
        int t = 3 * near[i] + far[i];
        out[2 * i] = (unsigned char)((3 * t + 3 * near[i - 1] + far[i - 1] + 8) >> 4);
        out[2 * i + 1] = (unsigned char)((3 * t + 3 * near[i + 1] + far[i + 1] + 8) >> 4);
    }
    int tl = 3 * near[w - 1] + far[w - 1];
    out[2 * w - 2] = (unsigned char)((3 * tl + 3 * near[w - 2] + far[w - 2] + 8) >> 4);
    out[2 * w - 1] = (unsigned char)((tl + 2) >> 2);
}

static void row_generic(unsigned char *out, const unsigned char *in, int w, int hs)
{
    for (int i = 0; i < w; i++)
        for (int j = 0; j < hs; j++)
            out[i * hs + j] = in[i];
}

/* Output row y of component c at full resolution. */
static const unsigned char *resample(const jpeg_comp *c, resampler *r, int y)
{
    const unsigned char *plane = c->plane;
    size_t stride = (size_t)c->stride;
    if (r->hs == 1 && r->vs == 1)
        return plane + (size_t)y * stride;
    int near = y / r->vs;
    if (r->vs == 2 && r->hs <= 2) {
        int far = (y & 1) ? near + 1 : near - 1;
        if (far < 0)
            far = 0;
        if (far > r->rows - 1)
            far = r->rows - 1;
        const unsigned char *n = plane + (size_t)near * stride, *f = plane + (size_t)far * stride;
        if (r->hs == 1)
            row_v2(r->buf, n, f, r->w_in);
        else
            row_hv2(r->buf, n, f, r->w_in);
    } else if (r->hs == 2 && r->vs == 1) {
        row_h2(r->buf, plane + (size_t)near * stride, r->w_in);
    } else {
        row_generic(r->buf, plane + (size_t)near * stride, r->w_in, r->hs);
    }
    return r->buf;
}

/* Fixed-point YCbCr -> RGB.  With cr, cb centred on 0:
 *   R = (Y*2^20 + 2^19 + cr*(5743 << 8)) >> 20
 *   G = (Y*2^20 + 2^19 - cr*(2925 << 8) + ((-cb*(1410 << 8)) & ~0xFFFF)) >> 20
 *   B = (Y*2^20 + 2^19 + cb*(7258 << 8)) >> 20
 * clamped to 0..255.  The mask on the cb term of G floors it to a multiple
 * of 2^16: that is what the decoder's 16-bit SIMD version computes, and the
 * scalar one was written to agree with it.  In 16 bits the same values are
 *   R = (16Y + 8 + floor(5743 cr / 256)) >> 4
 *   G = (16Y + 8 + floor(-1410 cb / 256) + floor(-2925 cr / 256)) >> 4
 *   B = (16Y + 8 + floor(7258 cb / 256)) >> 4
 * (floor((k + z) / 16) = floor((k + floor(z)) / 16) for an integer k), which
 * is what the SIMD loops below compute. */
void mdfi_jpeg_ycc_rgb_scalar(unsigned char *out, const unsigned char *y, const unsigned char *cb,
                           const unsigned char *cr, int n)
{
    for (int i = 0; i < n; i++) {
        int32_t yf = ((int32_t)y[i] << 20) + (1 << 19);
        int32_t vr = cr[i] - 128, vb = cb[i] - 128;
        int32_t r = yf + vr * (5743 << 8);
        int32_t g = yf + vr * -(2925 << 8) + (int32_t)((uint32_t)(vb * -(1410 << 8)) & 0xFFFF0000u);
        int32_t b = yf + vb * (7258 << 8);
        r >>= 20;
        g >>= 20;
        b >>= 20;
        out[3 * i] = (unsigned char)((unsigned)r > 255u ? (r < 0 ? 0 : 255) : r);
        out[3 * i + 1] = (unsigned char)((unsigned)g > 255u ? (g < 0 ? 0 : 255) : g);
        out[3 * i + 2] = (unsigned char)((unsigned)b > 255u ? (b < 0 ? 0 : 255) : b);
    }
}

#if defined(__SSE2__)

void mdfi_jpeg_ycc_rgb(unsigned char *out, const unsigned char *y, const unsigned char *cb,
                    const unsigned char *cr, int n)
{
    const __m128i zero = _mm_setzero_si128(), flip = _mm_set1_epi8((char)0x80);
    const __m128i kr = _mm_set1_epi16(5743), kgr = _mm_set1_epi16(-2925);
    const __m128i kgb = _mm_set1_epi16(-1410), kb = _mm_set1_epi16(7258);
    const __m128i half = _mm_set1_epi16(8);
    const __m128i low24 = _mm_set1_epi64x(0xFFFFFF);
    const __m128i mid24 = _mm_set1_epi64x(0xFFFFFF000000);
    const __m128i lane0 = _mm_set_epi64x(0, 0xFFFFFFFFFFFF);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i yv = _mm_loadu_si128((const __m128i *)(const void *)(y + i));
        __m128i bv = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(cb + i)), flip);
        __m128i rv = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(cr + i)), flip);
        __m128i res[3][2];
        for (int h = 0; h < 2; h++) {
            /* 16Y + 8; cb, cr - 128 in the high byte: (c - 128) * 256 */
            __m128i yw = h ? _mm_unpackhi_epi8(yv, zero) : _mm_unpacklo_epi8(yv, zero);
            __m128i bw = h ? _mm_unpackhi_epi8(zero, bv) : _mm_unpacklo_epi8(zero, bv);
            __m128i rw = h ? _mm_unpackhi_epi8(zero, rv) : _mm_unpacklo_epi8(zero, rv);
            yw = _mm_add_epi16(_mm_slli_epi16(yw, 4), half);
            res[0][h] = _mm_srai_epi16(_mm_add_epi16(yw, _mm_mulhi_epi16(rw, kr)), 4);
            res[1][h] = _mm_srai_epi16(_mm_add_epi16(_mm_add_epi16(yw, _mm_mulhi_epi16(bw, kgb)),
                                                     _mm_mulhi_epi16(rw, kgr)), 4);
            res[2][h] = _mm_srai_epi16(_mm_add_epi16(yw, _mm_mulhi_epi16(bw, kb)), 4);
        }
        __m128i r8 = _mm_packus_epi16(res[0][0], res[0][1]);
        __m128i g8 = _mm_packus_epi16(res[1][0], res[1][1]);
        __m128i b8 = _mm_packus_epi16(res[2][0], res[2][1]);
        /* RGBX, four pixels a vector, then squeeze out the X bytes: 12 bytes each */
        __m128i rg[2] = {_mm_unpacklo_epi8(r8, g8), _mm_unpackhi_epi8(r8, g8)};
        __m128i bx[2] = {_mm_unpacklo_epi8(b8, zero), _mm_unpackhi_epi8(b8, zero)};
        unsigned char *o = out + 3 * (size_t)i;
        for (int q = 0; q < 4; q++) {
            __m128i px = (q & 1) ? _mm_unpackhi_epi16(rg[q >> 1], bx[q >> 1])
                                 : _mm_unpacklo_epi16(rg[q >> 1], bx[q >> 1]);
            /* in each 64-bit lane: pixel 0 in bytes 0-2, pixel 1 moved to bytes 3-5 */
            px = _mm_or_si128(_mm_and_si128(px, low24),
                              _mm_and_si128(_mm_srli_epi64(px, 8), mid24));
            /* lane 1's six bytes follow lane 0's */
            px = _mm_or_si128(_mm_and_si128(px, lane0),
                              _mm_srli_si128(_mm_andnot_si128(lane0, px), 2));
            if (q < 3) {   /* 16-byte store; the next one overwrites the last 4 */
                _mm_storeu_si128((__m128i *)(void *)(o + 12 * q), px);
            } else {
                _mm_storel_epi64((__m128i *)(void *)(o + 36), px);
                uint32_t tail = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(px, 8));
                memcpy(o + 44, &tail, 4);
            }
        }
    }
    mdfi_jpeg_ycc_rgb_scalar(out + 3 * (size_t)i, y + i, cb + i, cr + i, n - i);
}

#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>

/* floor(k * c / 256) for c = chroma - 128 (8 lanes). */
static inline int16x8_t scaled(int16x8_t c, int16_t k)
{
    int32x4_t lo = vmull_n_s16(vget_low_s16(c), k), hi = vmull_n_s16(vget_high_s16(c), k);
    return vcombine_s16(vshrn_n_s32(lo, 8), vshrn_n_s32(hi, 8));
}

void mdfi_jpeg_ycc_rgb(unsigned char *out, const unsigned char *y, const unsigned char *cb,
                    const unsigned char *cr, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        int16x8_t yw = vreinterpretq_s16_u16(vshll_n_u8(vld1_u8(y + i), 4));
        yw = vaddq_s16(yw, vdupq_n_s16(8));
        int16x8_t bw = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(cb + i))), vdupq_n_s16(128));
        int16x8_t rw = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(cr + i))), vdupq_n_s16(128));
        uint8x8x3_t px;
        px.val[0] = vqmovun_s16(vshrq_n_s16(vaddq_s16(yw, scaled(rw, 5743)), 4));
        px.val[1] = vqmovun_s16(vshrq_n_s16(vaddq_s16(vaddq_s16(yw, scaled(bw, -1410)),
                                                      scaled(rw, -2925)), 4));
        px.val[2] = vqmovun_s16(vshrq_n_s16(vaddq_s16(yw, scaled(bw, 7258)), 4));
        vst3_u8(out + 3 * (size_t)i, px);
    }
    mdfi_jpeg_ycc_rgb_scalar(out + 3 * (size_t)i, y + i, cb + i, cr + i, n - i);
}

#else
void mdfi_jpeg_ycc_rgb(unsigned char *out, const unsigned char *y, const unsigned char *cb,
                       const unsigned char *cr, int n)
{
    mdfi_jpeg_ycc_rgb_scalar(out, y, cb, cr, n);
}
#endif

mdfi_status mdfi_jpeg_output(jpeg_dec *d, unsigned char *out)
{
    resampler rs[3];
    memset(rs, 0, sizeof rs);
    mdfi_status st = MDFI_OK;
    int n = d->ncomp;
    for (int i = 0; i < n; i++) {
        resampler *r = &rs[i];
        r->hs = d->hmax / d->comp[i].h;
        r->vs = d->vmax / d->comp[i].v;
        r->w_in = (d->x + r->hs - 1) / r->hs;
        r->rows = d->comp[i].hgt;
        if (r->hs > 1 || r->vs > 1) {
            r->buf = malloc((size_t)r->w_in * (size_t)r->hs + 8);
            if (!r->buf)
                st = mdfi_fail(d->err, MDFI_ERR_NOMEM, "%s: JPEG: out of memory", d->name);
        }
    }
    /* Three components are RGB when their ids say 'R','G','B', or an Adobe
     * marker says "no transform" and there is no JFIF marker. */
    int rgb = n == 3 && ((d->comp[0].id == 'R' && d->comp[1].id == 'G' && d->comp[2].id == 'B')
                         || (d->adobe && d->adobe_transform == 0 && !d->jfif));
    for (int y = 0; st == MDFI_OK && y < d->y; y++) {
        unsigned char *o = out + (size_t)y * (size_t)d->x * (size_t)(n == 1 ? 1 : 3);
        const unsigned char *row[3];
        for (int i = 0; i < n; i++)
            row[i] = resample(&d->comp[i], &rs[i], y);
        if (n == 1) {
            memcpy(o, row[0], (size_t)d->x);
        } else if (rgb) {
            for (int x = 0; x < d->x; x++) {
                o[3 * x] = row[0][x];
                o[3 * x + 1] = row[1][x];
                o[3 * x + 2] = row[2][x];
            }
        } else {
            mdfi_jpeg_ycc_rgb(o, row[0], row[1], row[2], d->x);
        }
    }
    for (int i = 0; i < n; i++)
        free(rs[i].buf);
    return st;
}
