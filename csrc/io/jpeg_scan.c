/* One scan's entropy-coded data: MCU order (T.81 A.2), restart intervals
 * (F.2.2.5 / RSTn), and the check that the data did not run out. */
#include "io/jpeg.h"

#include <string.h>

static void bits_start(jpeg_bits *b, const unsigned char *p, const unsigned char *end)
{
    b->p = p;
    b->end = end;
    b->acc = 0;
    b->nbits = b->fake = 0;
    b->marker = 0;
}

/* Bits past the data were consumed: say where the data stopped. */
static mdfi_status ran_out(jpeg_dec *d, long mcu, long mcus)
{
    const jpeg_bits *b = &d->bits;
    if (b->marker && b->marker != 0x100)
        return mdfi_jpeg_fail(d, "corrupt scan data: it ends early at marker FF%02X, byte %ld "
                              "(scan %d, MCU %ld of %ld)", b->marker, (long)(b->p - d->data),
                              d->scans, mcu + 1, mcus);
    return mdfi_jpeg_fail(d, "truncated: the file ends in the scan data (scan %d, MCU %ld of "
                          "%ld)", d->scans, mcu + 1, mcus);
}

/* Between restart intervals: the next thing must be an RSTn marker. */
static mdfi_status restart(jpeg_dec *d, long mcu, long mcus)
{
    jpeg_bits *b = &d->bits;
    const unsigned char *p = b->p;
    /* skips what is left of the interval's data (normally nothing) */
    while (p < d->end && !(p[0] == 0xFF && p + 1 < d->end && p[1] != 0x00 && p[1] != 0xFF))
        p++;
    if (p + 1 >= d->end)
        return mdfi_jpeg_fail(d, "truncated: the file ends in the scan data before a restart "
                              "marker (scan %d, MCU %ld of %ld)", d->scans, mcu + 1, mcus);
    if (p[1] < 0xD0 || p[1] > 0xD7)
        return mdfi_jpeg_fail(d, "corrupt scan data: expected a restart marker (RSTn) before "
                              "MCU %ld of %ld, found FF%02X at byte %ld", mcu + 1, mcus, p[1],
                              (long)(p - d->data));
    bits_start(b, p + 2, d->end);
    for (int i = 0; i < d->ns; i++)
        d->comp[d->scomp[i]].dc_pred = 0;
    d->eobrun = 0;
    return MDFI_OK;
}

/* One block of component c at block (bx, by). */
static mdfi_status block(jpeg_dec *d, jpeg_comp *c, int bx, int by)
{
    if (d->progressive)
        return mdfi_jpeg_block_prog(d, c, c->coef + ((size_t)by * (size_t)(c->stride / 8) +
                                                     (size_t)bx) * 64);
    int16_t blk[64];
    int last = mdfi_jpeg_block_seq(d, c, blk);
    if (last < 0)
        return MDFI_ERR_IMAGE;
    mdfi_jpeg_idct(blk, last, c->plane + (size_t)by * 8 * (size_t)c->stride + (size_t)bx * 8,
                   c->stride);
    return MDFI_OK;
}

mdfi_status mdfi_jpeg_scan(jpeg_dec *d)
{
    jpeg_bits *b = &d->bits;
    bits_start(b, d->pos, d->end);
    for (int i = 0; i < d->ns; i++)
        d->comp[d->scomp[i]].dc_pred = 0;
    d->eobrun = 0;

    /* One component: non-interleaved, one block per MCU over the blocks that
     * hold samples.  Several: interleaved MCUs of h x v blocks each. */
    jpeg_comp *c0 = &d->comp[d->scomp[0]];
    int single = d->ns == 1;
    long cols = single ? c0->bw : d->mcux, rows = single ? c0->bh : d->mcuy;
    long mcus = cols * rows, mcu = 0;
    int todo = d->restart;
    for (long my = 0; my < rows; my++) {
        for (long mx = 0; mx < cols; mx++, mcu++) {
            if (d->restart) {
                if (todo == 0) {
                    mdfi_status st = restart(d, mcu, mcus);
                    if (st != MDFI_OK)
                        return st;
                    todo = d->restart;
                }
                todo--;
            }
            if (single) {
                mdfi_status st = block(d, c0, (int)mx, (int)my);
                if (st != MDFI_OK)
                    return st;
            } else {
                for (int i = 0; i < d->ns; i++) {
                    jpeg_comp *c = &d->comp[d->scomp[i]];
                    for (int y = 0; y < c->v; y++)
                        for (int x = 0; x < c->h; x++) {
                            mdfi_status st = block(d, c, (int)mx * c->h + x, (int)my * c->v + y);
                            if (st != MDFI_OK)
                                return st;
                        }
                }
            }
            if (b->nbits < b->fake)
                return ran_out(d, mcu, mcus);
        }
    }
    /* The next marker is searched from where the reader stopped; bits still
     * in the accumulator are the last byte's padding. */
    d->pos = b->p;
    return MDFI_OK;
}
