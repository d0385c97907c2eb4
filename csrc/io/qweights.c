/* Reader of MDFI quantized weights files (see qweights.h): header, CRC,
 * record index, GEMM payloads.  Kind-3 arrays are in qarrays.c. */
#include "io/qweights.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/limits.h"
#include "base/mem.h"

static const char magic[8] = {'M', 'D', 'F', 'I', 'Q', 'W', 'T', '\0'};
#define HEADER_BYTES 32
#define RECORD_BYTES 40
#define RECORD_MAGIC 0x43455251u   /* "QREC" */

uint32_t mdfi_crc32(uint32_t crc, const void *data, size_t n)
{
    /* CRC of one nibble, for the 16 nibble values: two lookups per byte. */
    static const uint32_t nib[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nib[crc & 15];
        crc = (crc >> 4) ^ nib[crc & 15];
    }
    return ~crc;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const unsigned char *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

int mdfi_qweights_magic(const unsigned char h[8])
{
    return !memcmp(h, magic, sizeof magic);
}

int mdfi_qweights_sniff(const char *path)
{
    unsigned char h[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    return got == sizeof h && mdfi_qweights_magic(h);
}

void mdfi_qweights_free(mdfi_qweights *q)
{
    if (!q)
        return;
    for (int i = 0; q->rec && i < q->n_rec; ++i)
        free((void *)q->rec[i].arrays);
    free(q->path);
    free(q->rec);
    free(q);
}

static int is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* CRC of bytes [0, size - 4) against the trailer. */
static mdfi_status check_crc(FILE *f, const char *path, long long size, mdfi_errbuf *err)
{
    unsigned char buf[1 << 16];
    uint32_t crc = 0;
    long long left = size - 4;
    fseek(f, 0, SEEK_SET);
    while (left > 0) {
        size_t want = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, want, f) != want)
            return mdfi_fail(err, MDFI_ERR_IO, "%s: read error", path);
        crc = mdfi_crc32(crc, buf, want);
        left -= (long long)want;
    }
    if (fread(buf, 1, 4, f) != 4)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: read error", path);
    if (le32(buf) != crc)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: checksum mismatch (CRC-32 %08x, the "
                         "file says %08x): the quantized weights file is corrupt", path,
                         (unsigned)crc, (unsigned)le32(buf));
    return MDFI_OK;
}

static mdfi_status parse(const unsigned char *h, mdfi_qweights *q, long long size,
                         mdfi_errbuf *err)
{
    const char *path = q->path;
    q->version = (int)le32(h + 8);
    if (q->version < 1 || q->version > MDFI_QW_VERSION)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: quantized weights version %d is not "
                         "supported (this build reads versions 1 to %d)", path, q->version,
                         MDFI_QW_VERSION);
    uint32_t n_layers = le32(h + 12), n_rec = le32(h + 16);
    uint64_t declared = le64(h + 24);
    if ((long long)declared != size)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: the header says %llu bytes but the file "
                         "has %lld (truncated?)", path, (unsigned long long)declared, size);
    /* the record table must fit the file before it is allocated */
    if (n_layers > MDFI_LIMIT_QW_LAYERS || n_rec > n_layers || le32(h + 20) != 0 ||
        (long long)n_rec * RECORD_BYTES > size - HEADER_BYTES - 4)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: bad header (%u layers, %u records)", path,
                         (unsigned)n_layers, (unsigned)n_rec);
    q->n_layers = (int)n_layers;
    return MDFI_OK;
}

static void decode_head(const unsigned char *h, long long off, mdfi_qrecord *r)
{
    const signed char *fm = (const signed char *)h + 24;
    r->layer = (int)le32(h + 4);
    r->kind = (int)le32(h + 8);
    r->outputs = (int)le32(h + 12);
    r->k = (int)le32(h + 16);
    r->groups = (int)le32(h + 20);
    r->in_bits = fm[0];
    r->in_frac = fm[1];
    r->w_bits = fm[2];
    r->w_frac = fm[3];
    r->out_bits = fm[4];
    r->out_frac = fm[5];
    r->mode = h[30];
    r->payload = le32(h + 32);
    r->offset = off + RECORD_BYTES;
    r->arrays = NULL;
}

/* The structure of a GEMM record (kinds 1, 2). */
static int gemm_ok(const mdfi_qrecord *r)
{
    /* first: the products below stay far from overflowing */
    if (r->outputs < 1 || r->k < 1 || (long long)r->outputs * r->k > r->payload)
        return 0;
    long long need = 4LL * (uint32_t)r->outputs +
                     (long long)(r->w_bits / 8) * (uint32_t)r->outputs * (uint32_t)r->k;
    if (r->mode == 1 || r->mode == 2)
        need = (need + 3) / 4 * 4 + (uint32_t)r->outputs;
    if (r->mode == 2)
        need = (need + 3) / 4 * 4 + 4LL * (uint32_t)r->outputs;
    return r->groups >= 1 && (r->w_bits == 8 || r->w_bits == 16) && r->mode <= 2 &&
           r->payload >= need;
}

static mdfi_status check_record(FILE *f, mdfi_qweights *q, unsigned i, const unsigned char *h,
                                long long off, long long end, mdfi_errbuf *err)
{
    const char *path = q->path;
    mdfi_qrecord *r = &q->rec[i];
    if (le32(h) != RECORD_MAGIC)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: bad record %u at byte %lld (no record "
                         "magic)", path, i, off);
    if (r->layer < 0 || r->layer >= q->n_layers)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: record %u is for layer %d, but the file "
                         "is for %d layers", path, i, r->layer, q->n_layers);
    if (i && r->layer == q->rec[i - 1].layer)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: two records for layer %d", path,
                         r->layer);
    if (i && r->layer < q->rec[i - 1].layer)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: records out of layer order at layer %d",
                         path, r->layer);
    if (r->payload % 4 || r->offset + r->payload > end)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d's record (%lld bytes at byte "
                         "%lld) runs past the end", path, r->layer, r->payload, off);
    if (r->kind == MDFI_QW_ARRAYS) {
        if (q->version < 2)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d has an array record (kind "
                             "3), which needs file version 2 (the file says %d)", path,
                             r->layer, q->version);
        mdfi_qarray *a;
        MDFI_CHECK(mdfi_qarrays_index(f, path, r, &a, err));
        r->arrays = a;
        return MDFI_OK;
    }
    if ((r->kind != MDFI_QW_CONV && r->kind != MDFI_QW_CONNECTED) || !gemm_ok(r))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: bad record %u (layer %d) at byte %lld",
                         path, i, r->layer, off);
    return MDFI_OK;
}

static mdfi_status read_records(FILE *f, mdfi_qweights *q, uint32_t n_rec, long long size,
                                mdfi_errbuf *err)
{
    const char *path = q->path;
    unsigned char h[RECORD_BYTES];
    q->rec = calloc(n_rec ? n_rec : 1, sizeof *q->rec);
    if (!q->rec)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    long long off = HEADER_BYTES, end = size - 4;
    for (uint32_t i = 0; i < n_rec; ++i) {
        if (off + RECORD_BYTES > end || fseek(f, (long)off, SEEK_SET) ||
            fread(h, 1, RECORD_BYTES, f) != RECORD_BYTES)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: record %u runs past the end", path,
                             (unsigned)i);
        decode_head(h, off, &q->rec[i]);
        q->n_rec = (int)i + 1;    /* so that free() sees its arrays */
        MDFI_CHECK(check_record(f, q, (unsigned)i, h, off, end, err));
        off = q->rec[i].offset + q->rec[i].payload;
    }
    if (off != end)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %lld unexpected bytes after the last "
                         "record", path, end - off);
    return MDFI_OK;
}

static mdfi_status load(FILE *f, mdfi_qweights *q, mdfi_errbuf *err)
{
    const char *path = q->path;
    long long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    unsigned char h[HEADER_BYTES];
    fseek(f, 0, SEEK_SET);
    if (size < HEADER_BYTES + 4 || fread(h, 1, HEADER_BYTES, f) != HEADER_BYTES)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %lld bytes is too short for a quantized "
                         "weights file", path, size);
    if (!mdfi_qweights_magic(h))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: not an MDFI quantized weights file", path);
    /* the header first: a truncated or newer file says so, not "corrupt" */
    MDFI_CHECK(parse(h, q, size, err));
    MDFI_CHECK(check_crc(f, path, size, err));
    return read_records(f, q, le32(h + 16), size, err);
}

mdfi_status mdfi_qweights_load(FILE *f, const char *path, mdfi_qweights **out,
                               mdfi_errbuf *err)
{
    *out = NULL;
    if (!is_little_endian())
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported",
                         path);
    mdfi_qweights *q = calloc(1, sizeof *q);
    if (!q || !(q->path = mdfi_strdup(path))) {
        mdfi_qweights_free(q);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    }
    mdfi_status st = load(f, q, err);
    if (st != MDFI_OK) {
        mdfi_qweights_free(q);
        return st;
    }
    *out = q;
    return MDFI_OK;
}

mdfi_status mdfi_qweights_open(const char *path, mdfi_qweights **out, mdfi_errbuf *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    mdfi_status st = mdfi_qweights_load(f, path, out, err);
    fclose(f);
    return st;
}

const mdfi_qrecord *mdfi_qweights_find(const mdfi_qweights *q, int layer)
{
    for (int i = 0; q && i < q->n_rec; ++i)
        if (q->rec[i].layer == layer)
            return &q->rec[i];
    return NULL;
}

mdfi_status mdfi_qweights_read_from(FILE *f, const char *path, const mdfi_qrecord *r,
                                    int32_t *bias, void *weights, int8_t *w_frac,
                                    int32_t *mult, mdfi_errbuf *err)
{
    if (r->kind != MDFI_QW_CONV && r->kind != MDFI_QW_CONNECTED)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d's record holds named arrays, "
                         "not GEMM weights", path, r->layer);
    size_t m = (size_t)r->outputs, nw = m * (size_t)r->k;
    size_t wb = (size_t)r->w_bits / 8;
    int ok = fseek(f, (long)r->offset, SEEK_SET) == 0 && fread(bias, 4, m, f) == m &&
             fread(weights, wb, nw, f) == nw;
    long long at = r->offset + (4LL * (long long)m + (long long)(wb * nw) + 3) / 4 * 4;
    if (ok && r->mode)
        ok = w_frac && fseek(f, (long)at, SEEK_SET) == 0 && fread(w_frac, 1, m, f) == m;
    if (ok && r->mode == 2)   /* little-endian host (checked at open) */
        ok = mult && fseek(f, (long)(at + ((long long)m + 3) / 4 * 4), SEEK_SET) == 0 &&
             fread(mult, 4, m, f) == m;
    if (!ok)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d's record cannot be read (file "
                         "changed since it was opened?)", path, r->layer);
    return MDFI_OK;
}

mdfi_status mdfi_qweights_read(const mdfi_qweights *q, const mdfi_qrecord *r, int32_t *bias,
                               void *weights, int8_t *w_frac, int32_t *mult, mdfi_errbuf *err)
{
    FILE *f = fopen(q->path, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", q->path, strerror(errno));
    mdfi_status st = mdfi_qweights_read_from(f, q->path, r, bias, weights, w_frac, mult, err);
    fclose(f);
    return st;
}
