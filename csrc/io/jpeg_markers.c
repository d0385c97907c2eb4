/* JPEG segments (T.81 Annex B) and the decoder's entry points.  Every
 * length is checked against the bytes that remain before it is used;
 * unsupported kinds of JPEG (12-bit, arithmetic coding, lossless,
 * hierarchical, CMYK) are refused by name. */
#include "io/image.h"
#include "io/jpeg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

mdfi_status mdfi_jpeg_fail(jpeg_dec *d, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mdfi_fail(d->err, MDFI_ERR_IMAGE, "%s: JPEG: %s", d->name, msg);
}

static long offset(const jpeg_dec *d, const unsigned char *p)
{
    return (long)(p - d->data);
}

static int be16(const unsigned char *p)
{
    return (p[0] << 8) | p[1];
}

static const char *marker_kind(int m)
{
    switch (m) {
    case 0xC3: case 0xC7: return "lossless JPEG";
    case 0xC5: case 0xC6: case 0xDE: case 0xDF: return "hierarchical JPEG";
    case 0xC9: case 0xCA: case 0xCB: case 0xCD: case 0xCE: case 0xCF: case 0xCC:
        return "arithmetic-coded JPEG";
    default: return NULL;
    }
}

/* The next marker byte.  After a scan, stray bytes before the marker are
 * skipped (some cameras pad the data with zeros); elsewhere a marker must
 * follow at once.  0xFF fill bytes may precede any marker. */
static mdfi_status next_marker(jpeg_dec *d, int after_scan, int *marker)
{
    const unsigned char *p = d->pos;
    if (after_scan) {
        while (p < d->end && !(p[0] == 0xFF && p + 1 < d->end && p[1] != 0x00 && p[1] != 0xFF))
            p++;
    }
    if (p >= d->end)
        return mdfi_jpeg_fail(d, "truncated: the file ends before the EOI marker "
                              "(%ld bytes)", offset(d, d->end));
    if (*p != 0xFF)
        return mdfi_jpeg_fail(d, "corrupt: expected a marker at byte %ld, found 0x%02x",
                              offset(d, p), *p);
    while (p < d->end && *p == 0xFF)
        p++;
    if (p >= d->end)
        return mdfi_jpeg_fail(d, "truncated: the file ends inside a marker at byte %ld",
                              offset(d, p));
    *marker = *p;
    d->pos = p + 1;
    return MDFI_OK;
}

/* Checks the segment length at d->pos; body and len: the bytes after it. */
static mdfi_status segment(jpeg_dec *d, int marker, const unsigned char **body, int *len)
{
    if (d->end - d->pos < 2)
        return mdfi_jpeg_fail(d, "truncated: the file ends in the length of marker FF%02X "
                              "at byte %ld", marker, offset(d, d->pos));
    int n = be16(d->pos);
    if (n < 2)
        return mdfi_jpeg_fail(d, "corrupt: marker FF%02X at byte %ld has length %d",
                              marker, offset(d, d->pos) - 2, n);
    if (d->end - d->pos < n)
        return mdfi_jpeg_fail(d, "truncated: marker FF%02X at byte %ld needs %d bytes, "
                              "%ld remain", marker, offset(d, d->pos) - 2, n,
                              (long)(d->end - d->pos));
    *body = d->pos + 2;
    *len = n - 2;
    d->pos += n;
    return MDFI_OK;
}

static void app_segment(jpeg_dec *d, int marker, const unsigned char *b, int len)
{
    if (marker == 0xE0 && len >= 5 && memcmp(b, "JFIF", 5) == 0)
        d->jfif = 1;
    if (marker == 0xEE && len >= 12 && memcmp(b, "Adobe", 5) == 0) {
        d->adobe = 1;
        d->adobe_transform = b[11];
    }
}

static mdfi_status dqt(jpeg_dec *d, const unsigned char *b, int len)
{
    while (len > 0) {
        int pq = b[0] >> 4, tq = b[0] & 15;
        if (pq > 1 || tq > 3)
            return mdfi_jpeg_fail(d, "corrupt DQT: table %d with precision %d "
                                  "(tables 0-3, precision 0 or 1)", tq, pq);
        int need = 1 + 64 * (pq + 1);
        if (len < need)
            return mdfi_jpeg_fail(d, "corrupt DQT: table %d needs %d bytes, the segment "
                                  "has %d", tq, need, len);
        for (int k = 0; k < 64; k++)
            d->quant[tq][k] = (uint16_t)(pq ? be16(b + 1 + 2 * k) : b[1 + k]);
        d->quant_defined[tq] = 1;
        b += need;
        len -= need;
    }
    return MDFI_OK;
}

static mdfi_status dht(jpeg_dec *d, const unsigned char *b, int len)
{
    while (len > 0) {
        int tc = b[0] >> 4, th = b[0] & 15;
        if (tc > 1 || th > 3)
            return mdfi_jpeg_fail(d, "corrupt DHT: class %d table %d (class 0-1, "
                                  "table 0-3)", tc, th);
        if (len < 17)
            return mdfi_jpeg_fail(d, "corrupt DHT: %s table %d: %d bytes left for 16 code "
                                  "counts", tc ? "AC" : "DC", th, len - 1);
        int total = 0;
        for (int i = 0; i < 16; i++)
            total += b[1 + i];
        if (total > 256 || len < 17 + total)
            return mdfi_jpeg_fail(d, "corrupt DHT: %s table %d lists %d codes, the segment "
                                  "holds %d", tc ? "AC" : "DC", th, total,
                                  len - 17 < 0 ? 0 : len - 17);
        mdfi_status st = mdfi_jpeg_build_huff(d, tc ? &d->ac[th] : &d->dc[th], b + 1, b + 17,
                                              tc, tc, th);
        if (st != MDFI_OK)
            return st;
        b += 17 + total;
        len -= 17 + total;
    }
    return MDFI_OK;
}

static mdfi_status sof(jpeg_dec *d, int marker, const unsigned char *b, int len)
{
    if (d->sof)
        return mdfi_jpeg_fail(d, "corrupt: a second frame header (SOF)");
    if (len < 6)
        return mdfi_jpeg_fail(d, "corrupt SOF: %d bytes", len);
    int prec = b[0], y = be16(b + 1), x = be16(b + 3), n = b[5];
    if (prec != 8)
        return mdfi_jpeg_fail(d, "%d-bit samples are not supported (only 8-bit)", prec);
    if (n == 0)
        return mdfi_jpeg_fail(d, "corrupt SOF: zero components");
    if (n == 4)
        return mdfi_jpeg_fail(d, "4 components (CMYK or YCCK%s) are not supported: "
                              "only grey, YCbCr and RGB", d->adobe ? ", Adobe" : "");
    if (n != 1 && n != 3)
        return mdfi_jpeg_fail(d, "%d components are not supported: only 1 (grey) or 3 "
                              "(YCbCr, RGB)", n);
    if (len != 6 + 3 * n)
        return mdfi_jpeg_fail(d, "corrupt SOF: length %d for %d components", len + 2, n);
    if (x == 0 || y == 0)
        return mdfi_jpeg_fail(d, "image size %dx%d: %s", x, y, y == 0 ?
                              "height 0 (defined later by a DNL marker) is not supported"
                              : "zero width");
    if ((long long)x * y > d->max_pixels)
        return mdfi_jpeg_fail(d, "image size %dx%d is too large (more than %ld pixels)",
                              x, y, d->max_pixels);
    /* checked before any plane is allocated: a few bytes cannot claim gigabytes */
    if ((long long)x * y / MDFI_LIMIT_JPEG_PIXELS_PER_BYTE > d->end - d->data)
        return mdfi_jpeg_fail(d, "image size %dx%d cannot be coded in %ld bytes (truncated "
                              "or corrupt)", x, y, (long)(d->end - d->data));
    d->sof = marker;
    d->progressive = marker == 0xC2;
    d->x = x;
    d->y = y;
    d->ncomp = n;
    d->hmax = d->vmax = 1;
    for (int i = 0; i < n; i++) {
        jpeg_comp *c = &d->comp[i];
        c->id = b[6 + 3 * i];
        c->h = b[7 + 3 * i] >> 4;
        c->v = b[7 + 3 * i] & 15;
        c->tq = b[8 + 3 * i];
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4)
            return mdfi_jpeg_fail(d, "corrupt SOF: component %d has sampling factors %dx%d "
                                  "(1 to 4)", c->id, c->h, c->v);
        if (c->tq > 3)
            return mdfi_jpeg_fail(d, "corrupt SOF: component %d uses quantisation table %d "
                                  "(0-3)", c->id, c->tq);
        for (int j = 0; j < i; j++)
            if (d->comp[j].id == c->id)
                return mdfi_jpeg_fail(d, "corrupt SOF: two components have the id %d", c->id);
        if (c->h > d->hmax) d->hmax = c->h;
        if (c->v > d->vmax) d->vmax = c->v;
    }
    for (int i = 0; i < n; i++) {
        jpeg_comp *c = &d->comp[i];
        if (d->hmax % c->h || d->vmax % c->v)
            return mdfi_jpeg_fail(d, "sampling factors %dx%d of component %d do not divide "
                                  "the largest (%dx%d): not supported", c->h, c->v, c->id,
                                  d->hmax, d->vmax);
    }
    d->mcux = (x + 8 * d->hmax - 1) / (8 * d->hmax);
    d->mcuy = (y + 8 * d->vmax - 1) / (8 * d->vmax);
    for (int i = 0; i < n; i++) {
        jpeg_comp *c = &d->comp[i];
        c->w = (x * c->h + d->hmax - 1) / d->hmax;
        c->hgt = (y * c->v + d->vmax - 1) / d->vmax;
        c->bw = (c->w + 7) / 8;
        c->bh = (c->hgt + 7) / 8;
        c->stride = d->mcux * c->h * 8;
    }
    return MDFI_OK;
}

/* Planes (and progressive coefficients) once the first scan starts. */
static mdfi_status allocate(jpeg_dec *d)
{
    for (int i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        if (c->plane)
            continue;
        uint64_t rows = (uint64_t)d->mcuy * (uint64_t)c->v * 8;
        uint64_t bytes = rows * (uint64_t)c->stride;
        if (bytes > SIZE_MAX / 2)   /* coefficients take twice the plane */
            return mdfi_jpeg_fail(d, "image size %dx%d does not fit in memory", d->x, d->y);
        c->plane = malloc((size_t)bytes);
        if (d->progressive && c->plane)
            c->coef = calloc((size_t)bytes, sizeof *c->coef);
        if (!c->plane || (d->progressive && !c->coef))
            return mdfi_fail(d->err, MDFI_ERR_NOMEM, "%s: JPEG: out of memory for a %dx%d "
                             "image", d->name, d->x, d->y);
    }
    return MDFI_OK;
}

static mdfi_status sos(jpeg_dec *d, const unsigned char *b, int len)
{
    if (!d->sof)
        return mdfi_jpeg_fail(d, "corrupt: a scan (SOS) before the frame header (SOF)");
    if (++d->scans > MDFI_LIMIT_JPEG_SCANS)
        return mdfi_jpeg_fail(d, "more than %d scans: refused", MDFI_LIMIT_JPEG_SCANS);
    int ns = len >= 1 ? b[0] : 0;
    if (ns < 1 || ns > d->ncomp)
        return mdfi_jpeg_fail(d, "corrupt SOS: %d components in a scan of a %d-component "
                              "image", ns, d->ncomp);
    if (len != 4 + 2 * ns)
        return mdfi_jpeg_fail(d, "corrupt SOS: length %d for %d components", len + 2, ns);
    d->ns = ns;
    for (int i = 0; i < ns; i++) {
        int id = b[1 + 2 * i], tables = b[2 + 2 * i], k = 0;
        while (k < d->ncomp && d->comp[k].id != id)
            k++;
        if (k == d->ncomp)
            return mdfi_jpeg_fail(d, "corrupt SOS: component id %d is not in the frame", id);
        for (int j = 0; j < i; j++)
            if (d->scomp[j] == k)
                return mdfi_jpeg_fail(d, "corrupt SOS: component %d twice in one scan", id);
        d->scomp[i] = k;
        d->comp[k].td = tables >> 4;
        d->comp[k].ta = tables & 15;
        if (d->comp[k].td > 3 || d->comp[k].ta > 3)
            return mdfi_jpeg_fail(d, "corrupt SOS: component %d uses Huffman tables %d/%d "
                                  "(0-3)", id, d->comp[k].td, d->comp[k].ta);
    }
    d->ss = b[1 + 2 * ns];
    d->se = b[2 + 2 * ns];
    d->ah = b[3 + 2 * ns] >> 4;
    d->al = b[3 + 2 * ns] & 15;
    if (!d->progressive) {
        if (d->ss != 0 || d->ah != 0 || d->al != 0)
            return mdfi_jpeg_fail(d, "corrupt SOS: spectral selection %d-%d, approximation "
                                  "%d/%d in a sequential scan", d->ss, d->se, d->ah, d->al);
        d->se = 63;
    } else {
        if (d->ss > d->se || d->se > 63 || (d->ss == 0 && d->se != 0) || d->ah > 13 ||
            d->al > 13)
            return mdfi_jpeg_fail(d, "corrupt SOS: spectral selection %d-%d, approximation "
                                  "%d/%d", d->ss, d->se, d->ah, d->al);
        if (d->ss > 0 && ns != 1)
            return mdfi_jpeg_fail(d, "corrupt SOS: an AC scan with %d components (must be 1)",
                                  ns);
    }
    for (int i = 0; i < ns; i++) {
        jpeg_comp *c = &d->comp[d->scomp[i]];
        int need_dc = d->ss == 0 && d->ah == 0, need_ac = d->se > 0;
        if (need_dc && !d->dc[c->td].defined)
            return mdfi_jpeg_fail(d, "the scan uses DC Huffman table %d, which is not defined",
                                  c->td);
        if (need_ac && !d->ac[c->ta].defined)
            return mdfi_jpeg_fail(d, "the scan uses AC Huffman table %d, which is not defined",
                                  c->ta);
        if (!d->progressive && !d->quant_defined[c->tq])
            return mdfi_jpeg_fail(d, "component %d uses quantisation table %d, which is not "
                                  "defined", c->id, c->tq);
        c->coded = 1;
    }
    return allocate(d);
}

static mdfi_status parse(jpeg_dec *d)
{
    if (d->end - d->data < 3 || d->data[0] != 0xFF || d->data[1] != 0xD8 || d->data[2] != 0xFF)
        return mdfi_jpeg_fail(d, "not a JPEG file (no SOI marker)");
    d->pos = d->data + 2;
    int after_scan = 0;
    for (;;) {
        int m = 0;
        mdfi_status st = next_marker(d, after_scan, &m);
        if (st != MDFI_OK)
            return st;
        after_scan = 0;
        const unsigned char *b = NULL;
        int len = 0;
        if (m == 0xD9)
            break;
        if (m >= 0xD0 && m <= 0xD7)     /* a restart marker outside a scan: no data */
            continue;
        if (m == 0xD8 || m == 0x01 || (m >= 0x02 && m <= 0xBF))
            return mdfi_jpeg_fail(d, "corrupt: unexpected marker FF%02X at byte %ld", m,
                                  offset(d, d->pos) - 2);
        if (marker_kind(m))
            return mdfi_jpeg_fail(d, "%s (marker FF%02X) is not supported: only baseline, "
                                  "extended sequential and progressive Huffman", marker_kind(m),
                                  m);
        st = segment(d, m, &b, &len);
        if (st != MDFI_OK)
            return st;
        switch (m) {
        case 0xC0: case 0xC1: case 0xC2: st = sof(d, m, b, len); break;
        case 0xC4: st = dht(d, b, len); break;
        case 0xDB: st = dqt(d, b, len); break;
        case 0xDD:
            if (len != 2)
                return mdfi_jpeg_fail(d, "corrupt DRI: length %d", len + 2);
            d->restart = be16(b);
            break;
        case 0xDA:
            st = sos(d, b, len);
            if (st == MDFI_OK)
                st = mdfi_jpeg_scan(d);
            after_scan = 1;
            break;
        case 0xC8:
            return mdfi_jpeg_fail(d, "marker FFC8 (JPG extension) is not supported");
        default:   /* APPn, COM, DNL, JPGn: skipped */
            if (m >= 0xE0 && m <= 0xEF)
                app_segment(d, m, b, len);
            break;
        }
        if (st != MDFI_OK)
            return st;
    }
    if (!d->sof)
        return mdfi_jpeg_fail(d, "corrupt: no frame header (SOF) before EOI");
    if (d->scans == 0)
        return mdfi_jpeg_fail(d, "corrupt: no scan (SOS) before EOI");
    for (int i = 0; i < d->ncomp; i++)
        if (!d->comp[i].coded)
            return mdfi_jpeg_fail(d, "corrupt: component %d is in no scan", d->comp[i].id);
    if (d->progressive) {
        for (int i = 0; i < d->ncomp; i++)
            if (!d->quant_defined[d->comp[i].tq])
                return mdfi_jpeg_fail(d, "component %d uses quantisation table %d, which is "
                                      "not defined", d->comp[i].id, d->comp[i].tq);
        mdfi_jpeg_prog_finish(d);
    }
    return MDFI_OK;
}

mdfi_status mdfi_jpeg_decode_mem(const unsigned char *data, size_t size, const char *name,
                                 long max_pixels, unsigned char **pixels, int *w, int *h,
                                 int *c, mdfi_errbuf *err)
{
    *pixels = NULL;
    jpeg_dec *d = calloc(1, sizeof *d);
    if (!d)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: JPEG: out of memory", name);
    d->name = name;
    d->err = err;
    d->max_pixels = max_pixels;
    d->data = data;
    d->end = data + size;
    mdfi_status st = parse(d);
    unsigned char *out = NULL;
    if (st == MDFI_OK) {
        /* <= 3 * 2^28 bytes, checked in sof() */
        out = malloc((size_t)d->x * (size_t)d->y * (size_t)(d->ncomp == 1 ? 1 : 3));
        st = out ? mdfi_jpeg_output(d, out) :
             mdfi_fail(err, MDFI_ERR_NOMEM, "%s: JPEG: out of memory for the pixels", name);
    }
    if (st == MDFI_OK) {
        *pixels = out;
        *w = d->x;
        *h = d->y;
        *c = d->ncomp == 1 ? 1 : 3;
    } else {
        free(out);
    }
    for (int i = 0; i < 4; i++) {
        free(d->comp[i].plane);
        free(d->comp[i].coef);
    }
    free(d);
    return st;
}

mdfi_status mdfi_jpeg_decode(FILE *f, const char *path, unsigned char **pixels, int *w,
                             int *h, int *c, mdfi_errbuf *err)
{
    *pixels = NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory reading the file", path);
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        return mdfi_fail(err, MDFI_ERR_IO, "%s: read error: %s", path, strerror(e));
    }
    mdfi_status st = mdfi_jpeg_decode_memory(buf, n, path, pixels, w, h, c, err);
    free(buf);
    return st;
}

mdfi_status mdfi_jpeg_decode_memory(const unsigned char *data, size_t size, const char *name,
                                    unsigned char **pixels, int *w, int *h, int *c,
                                    mdfi_errbuf *err)
{
    return mdfi_jpeg_decode_mem(data, size, name, MDFI_LIMIT_IMAGE_PIXELS, pixels, w, h, c, err);
}
