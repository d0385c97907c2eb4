/* Huffman tables (T.81 Annex C), the entropy-coded bit reader (F.2.2.5,
 * byte stuffing) and sequential block decoding (F.2.2). */
#include "io/jpeg.h"

#include <string.h>

/* zig-zag index -> natural (row-major) index; 16 extra entries keep a
 * run that overshoots inside the array (runs are also checked). */
const uint8_t mdfi_jpeg_zigzag[64 + 16] = {
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
};

mdfi_status mdfi_jpeg_build_huff(jpeg_dec *d, jpeg_huff *t, const uint8_t counts[16],
                                 const uint8_t *symbols, int is_ac, int cls, int index)
{
    memset(t, 0, sizeof *t);
    unsigned code = 0;
    int k = 0;
    for (int len = 1; len <= 16; len++) {
        int n = counts[len - 1];
        t->delta[len] = k - (int)code;
        for (int i = 0; i < n; i++, k++, code++) {
            if (code >= (1u << len))
                return mdfi_jpeg_fail(d, "corrupt DHT: %s table %d has more codes of length %d "
                                      "than fit", cls ? "AC" : "DC", index, len);
            uint8_t sym = symbols[k];
            t->symbols[k] = sym;
            if (len > JPEG_FAST_BITS)
                continue;
            int spare = JPEG_FAST_BITS - len;
            for (unsigned j = 0; j < (1u << spare); j++) {
                unsigned idx = (code << spare) | j;
                t->fast[idx] = (uint16_t)((len << 8) | sym);
                int run = sym >> 4, size = sym & 15;
                if (is_ac && size && len + size <= JPEG_FAST_BITS) {
                    unsigned v = (j >> (spare - size)) & ((1u << size) - 1);
                    t->fast_val[idx] = (int16_t)jpeg_extend(v, size);
                    t->fast_rl[idx] = (uint8_t)((run << 4) | (len + size));
                }
            }
        }
        t->end16[len] = code << (16 - len);
        code <<= 1;
    }
    t->end16[17] = 0xFFFFFFFFu;
    t->defined = 1;
    return MDFI_OK;
}

void mdfi_jpeg_fill(jpeg_bits *b)
{
    /* Fast path: the next 8 bytes hold no 0xFF (so no stuffing, no marker). */
    if (!b->marker && b->end - b->p >= 8 && b->nbits <= 56) {
        const unsigned char *p = b->p;
        uint64_t be = (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
                      (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
                      (uint64_t)p[6] << 8 | (uint64_t)p[7];
        uint64_t x = ~be;   /* a 0xFF byte of be is a zero byte of x */
        if (!((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull)) {
            int n = (64 - b->nbits) >> 3, take = 8 * n;
            b->acc |= take == 64 ? be : (be >> (64 - take)) << (64 - take - b->nbits);
            b->p += n;
            b->nbits += take;
            return;
        }
    }
    while (b->nbits <= 56) {
        unsigned byte = 0;
        if (b->marker || b->p >= b->end) {
            b->fake += 8;   /* past the data: zero bits, counted */
        } else if ((byte = *b->p) != 0xFF) {
            b->p++;
        } else if (b->p + 1 < b->end && b->p[1] == 0x00) {
            b->p += 2;      /* stuffed 0xFF */
        } else {
            /* a marker (after any 0xFF fill bytes), or an 0xFF that ends the file */
            const unsigned char *q = b->p;
            while (q < b->end && *q == 0xFF)
                q++;
            b->marker = q < b->end ? *q : 0x100;
            b->fake += 8;
            byte = 0;
        }
        b->acc |= (uint64_t)byte << (56 - b->nbits);
        b->nbits += 8;
    }
}

int mdfi_jpeg_decode_sym(jpeg_bits *b, const jpeg_huff *t)
{
    unsigned e = t->fast[b->acc >> (64 - JPEG_FAST_BITS)];
    if (e) {
        jpeg_get(b, (int)(e >> 8));
        return (int)(e & 255);
    }
    uint32_t v = (uint32_t)(b->acc >> 48);
    int len = JPEG_FAST_BITS + 1;
    while (v >= t->end16[len])
        len++;
    if (len > 16)
        return -1;
    jpeg_get(b, len);
    return t->symbols[(int)(v >> (16 - len)) + t->delta[len]];
}

static int corrupt(jpeg_dec *d, const char *what)
{
    mdfi_jpeg_fail(d, "corrupt scan data: %s", what);
    return -1;
}

int mdfi_jpeg_block_seq(jpeg_dec *d, jpeg_comp *c, int16_t blk[64])
{
    jpeg_bits *b = &d->bits;
    const uint16_t *q = d->quant[c->tq];
    const jpeg_huff *ac = &d->ac[c->ta];
    memset(blk, 0, 64 * sizeof *blk);
    jpeg_need(b);
    int s = mdfi_jpeg_decode_sym(b, &d->dc[c->td]);
    if (s < 0)
        return corrupt(d, "bad Huffman code (DC)");
    if (s > 15)
        return corrupt(d, "DC difference size above 15");
    int diff = s ? jpeg_extend(jpeg_get(b, s), s) : 0;
    /* Darknet's decoder keeps the DC sum in an int and stores (short)(dc*q);
     * keeping it modulo 2^16 gives the same 16 bits without overflow. */
    c->dc_pred = (int16_t)(uint16_t)((unsigned)c->dc_pred + (unsigned)diff);
    blk[0] = (int16_t)(uint16_t)((unsigned)c->dc_pred * q[0]);
    int last = 0;
    for (int k = 1; k < 64;) {
        jpeg_need(b);
        unsigned idx = (unsigned)(b->acc >> (64 - JPEG_FAST_BITS));
        unsigned rl = ac->fast_rl[idx];
        if (rl) {   /* code and value bits in one look-up */
            jpeg_get(b, (int)(rl & 15));
            k += (int)(rl >> 4);
            if (k > 63)
                return corrupt(d, "AC coefficient past the 64th");
            blk[mdfi_jpeg_zigzag[k]] = (int16_t)(uint16_t)((unsigned)ac->fast_val[idx] * q[k]);
            last = k++;
            continue;
        }
        int rs = mdfi_jpeg_decode_sym(b, ac);
        if (rs < 0)
            return corrupt(d, "bad Huffman code (AC)");
        int r = rs >> 4;
        s = rs & 15;
        if (s == 0) {
            if (r != 15)
                break;   /* EOB */
            k += 16;
            if (k > 64)
                return corrupt(d, "zero run past the 64th coefficient");
            continue;
        }
        k += r;
        if (k > 63)
            return corrupt(d, "AC coefficient past the 64th");
        int v = jpeg_extend(jpeg_get(b, s), s);
        blk[mdfi_jpeg_zigzag[k]] = (int16_t)(uint16_t)((unsigned)v * q[k]);
        last = k++;
    }
    return last;
}
