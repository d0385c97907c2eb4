/* Progressive Huffman decoding (T.81 G.1.2): DC first and refinement
 * passes, AC spectral-selection first passes with end-of-band runs, and AC
 * successive-approximation refinement.  Coefficients accumulate (not yet
 * dequantised, natural order) until the last scan; then every block is
 * dequantised and transformed, as Darknet's decoder does. */
#include "io/jpeg.h"

#include <string.h>

static mdfi_status corrupt(jpeg_dec *d, const char *what)
{
    return mdfi_jpeg_fail(d, "corrupt progressive scan data: %s", what);
}

static int16_t shifted(int v, int al)
{
    return (int16_t)(uint16_t)((unsigned)v << al);
}

static mdfi_status dc_pass(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    jpeg_bits *b = &d->bits;
    jpeg_need(b);
    if (d->ah) {   /* refinement: one more bit of the DC value */
        if (jpeg_get(b, 1))
            blk[0] = (int16_t)(uint16_t)((unsigned)blk[0] + (1u << d->al));
        return MDFI_OK;
    }
    int s = mdfi_jpeg_decode_sym(b, &d->dc[c->td]);
    if (s < 0)
        return corrupt(d, "bad Huffman code (DC)");
    if (s > 15)
        return corrupt(d, "DC difference size above 15");
    int diff = s ? jpeg_extend(jpeg_get(b, s), s) : 0;
    c->dc_pred = (int16_t)(uint16_t)((unsigned)c->dc_pred + (unsigned)diff);
    blk[0] = shifted(c->dc_pred, d->al);
    return MDFI_OK;
}

static mdfi_status ac_first(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    if (d->eobrun > 0) {
        d->eobrun--;
        return MDFI_OK;
    }
    jpeg_bits *b = &d->bits;
    const jpeg_huff *ac = &d->ac[c->ta];
    for (int k = d->ss; k <= d->se;) {
        jpeg_need(b);
        int rs = mdfi_jpeg_decode_sym(b, ac);
        if (rs < 0)
            return corrupt(d, "bad Huffman code (AC)");
        int r = rs >> 4, s = rs & 15;
        if (s == 0) {
            if (r < 15) {   /* EOBr: this block and 2^r + bits - 1 more end here */
                d->eobrun = (1 << r) - 1;
                if (r)
                    d->eobrun += (int)jpeg_get(b, r);
                return MDFI_OK;
            }
            k += 16;
            continue;
        }
        k += r;
        if (k > d->se)
            return corrupt(d, "AC coefficient past the end of the band");
        blk[mdfi_jpeg_zigzag[k]] = shifted(jpeg_extend(jpeg_get(b, s), s), d->al);
        k++;
    }
    return MDFI_OK;
}

/* A coefficient that is already non-zero gets one correction bit. */
static void refine(jpeg_bits *b, int16_t *coef, int bit)
{
    jpeg_need(b);
    if (jpeg_get(b, 1) && (*coef & bit) == 0)
        *coef = (int16_t)(uint16_t)((unsigned)*coef + (unsigned)(*coef > 0 ? bit : -bit));
}

static mdfi_status ac_refine(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    jpeg_bits *b = &d->bits;
    const jpeg_huff *ac = &d->ac[c->ta];
    const int bit = 1 << d->al;
    int k = d->ss;
    if (d->eobrun == 0) {
        while (k <= d->se) {
            jpeg_need(b);
            int rs = mdfi_jpeg_decode_sym(b, ac);
            if (rs < 0)
                return corrupt(d, "bad Huffman code (AC refinement)");
            int r = rs >> 4, s = rs & 15, value = 0;
            if (s == 0 && r < 15) {   /* EOBr; the rest of this block is refined below */
                d->eobrun = 1 << r;
                if (r)
                    d->eobrun += (int)jpeg_get(b, r);
                break;
            }
            if (s) {   /* a new coefficient of magnitude 1 << al; s must be 1 */
                if (s != 1)
                    return corrupt(d, "refinement value size is not 1");
                value = jpeg_get(b, 1) ? bit : -bit;
            }
            /* Skip r zero coefficients, refining the non-zero ones passed;
             * the next zero one takes the value (ZRL: r = 15, no value). */
            while (k <= d->se) {
                int16_t *coef = &blk[mdfi_jpeg_zigzag[k]];
                k++;
                if (*coef != 0) {
                    refine(b, coef, bit);
                } else if (r == 0) {
                    if (value)
                        *coef = (int16_t)value;
                    break;
                } else {
                    r--;
                }
            }
        }
    }
    if (d->eobrun > 0) {   /* inside an end-of-band run: only correction bits */
        for (; k <= d->se; k++) {
            int16_t *coef = &blk[mdfi_jpeg_zigzag[k]];
            if (*coef != 0)
                refine(b, coef, bit);
        }
        d->eobrun--;
    }
    return MDFI_OK;
}

mdfi_status mdfi_jpeg_block_prog(jpeg_dec *d, jpeg_comp *c, int16_t blk[64])
{
    if (d->ss == 0)
        return dc_pass(d, c, blk);
    return d->ah ? ac_refine(d, c, blk) : ac_first(d, c, blk);
}

void mdfi_jpeg_prog_finish(jpeg_dec *d)
{
    for (int i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        uint16_t q[64];
        for (int k = 0; k < 64; k++)
            q[mdfi_jpeg_zigzag[k]] = d->quant[c->tq][k];
        size_t blocks_per_row = (size_t)(c->stride / 8);
        for (int by = 0; by < c->bh; by++) {
            for (int bx = 0; bx < c->bw; bx++) {
                const int16_t *src = c->coef + ((size_t)by * blocks_per_row + (size_t)bx) * 64;
                int16_t blk[64];
                int last = 0;
                for (int k = 0; k < 64; k++) {
                    int n = mdfi_jpeg_zigzag[k];
                    blk[n] = (int16_t)(uint16_t)((unsigned)src[n] * q[n]);
                    if (blk[n])
                        last = k;
                }
                mdfi_jpeg_idct(blk, last, c->plane + (size_t)by * 8 * (size_t)c->stride +
                               (size_t)bx * 8, c->stride);
            }
        }
    }
}
