/* Binary PNM (netpbm P5/P6) decoder, 8-bit only.  Header grammar from the
 * netpbm spec: magic, then width, height, maxval as ASCII decimals separated
 * by whitespace and '#' comments, then exactly one whitespace byte, then the
 * raster.  Bytes after the raster are ignored (the spec allows more images). */
#include "io/image.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static int pnm_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Read error, or a header that ends early. */
static mdfi_status header_eof(FILE *f, const char *path, const char *what, mdfi_errbuf *err)
{
    if (ferror(f))
        return mdfi_fail(err, MDFI_ERR_IO, "%s: read error: %s", path, strerror(errno));
    return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: PNM header ends before the %s", path, what);
}

/* Skips whitespace and comments, then reads one decimal field. */
static mdfi_status read_field(FILE *f, const char *path, const char *what, long *out,
                              mdfi_errbuf *err)
{
    int ch = getc(f);
    for (;;) {
        if (ch == '#') {
            while (ch != EOF && ch != '\n' && ch != '\r')
                ch = getc(f);
        } else if (pnm_space(ch)) {
            ch = getc(f);
        } else {
            break;
        }
    }
    if (ch == EOF)
        return header_eof(f, path, what, err);
    if (ch < '0' || ch > '9')
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: bad PNM header: expected the %s, "
                         "found byte 0x%02x", path, what, (unsigned)ch);
    long v = 0;
    while (ch >= '0' && ch <= '9') {
        if (v > (INT_MAX - (ch - '0')) / 10)
            return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: bad PNM header: %s too large",
                             path, what);
        v = v * 10 + (ch - '0');
        ch = getc(f);
    }
    /* A field must end in whitespace or a comment; "12x" is not a number. */
    if (ch == EOF)
        return header_eof(f, path, "pixel data (file ends in the header)", err);
    if (!pnm_space(ch) && ch != '#')
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: bad PNM header: junk byte 0x%02x after "
                         "the %s", path, (unsigned)ch, what);
    if (ch == '#') {   /* a comment ends the field; its line end is the delimiter */
        while (ch != '\n' && ch != '\r') {
            ch = getc(f);
            if (ch == EOF)
                return header_eof(f, path, "pixel data (file ends in a comment)", err);
        }
    }
    *out = v;
    return MDFI_OK;
}

mdfi_status mdfi_pnm_decode(FILE *f, const char *path, unsigned char **pixels,
                            int *w, int *h, int *c, mdfi_errbuf *err)
{
    *pixels = NULL;
    int m0 = getc(f), m1 = getc(f);
    if (m0 != 'P' || m1 < '1' || m1 > '7')
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: not a PNM file (P5/P6)", path);
    if (m1 != '5' && m1 != '6')
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: PNM format P%c is not supported "
                         "(only binary P5 grey and P6 RGB)", path, m1);
    int ch = getc(f);
    if (ch == EOF)
        return header_eof(f, path, "width", err);
    if (!pnm_space(ch) && ch != '#')
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: not a PNM file (P5/P6): no whitespace "
                         "after the magic", path);
    ungetc(ch, f);

    long width, height, maxval;
    mdfi_status st = read_field(f, path, "width", &width, err);
    if (st == MDFI_OK) st = read_field(f, path, "height", &height, err);
    if (st == MDFI_OK) st = read_field(f, path, "maxval", &maxval, err);
    if (st != MDFI_OK)
        return st;
    /* read_field consumed the single whitespace byte after the maxval, so
     * the stream now sits on the raster. */
    if (width == 0 || height == 0)
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: image size %ldx%ld is empty", path,
                         width, height);
    if ((long long)width * height > MDFI_LIMIT_IMAGE_PIXELS)
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: image size %ldx%ld is too large "
                         "(more than 2^28 pixels)", path, width, height);
    if (maxval != 255)
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: PNM maxval %ld is not supported "
                         "(only 8-bit, maxval 255)", path, maxval);

    int chans = m1 == '6' ? 3 : 1;
    size_t n = (size_t)width * (size_t)height * (size_t)chans;   /* <= 3*2^28: no overflow */
    /* The file's length first: a short file never allocates its header's size. */
    size_t got = n;
    long at = ftell(f);
    if (at >= 0 && fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end >= at && (size_t)(end - at) < n)
            got = (size_t)(end - at);
        if (fseek(f, at, SEEK_SET) != 0)
            got = 0;
    }
    unsigned char *buf = got == n ? malloc(n) : NULL;
    if (got == n && !buf)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory for %zu bytes of pixels",
                         path, n);
    if (buf)
        got = fread(buf, 1, n, f);
    if (got != n) {
        int e = errno;
        free(buf);
        if (ferror(f))
            return mdfi_fail(err, MDFI_ERR_IO, "%s: read error: %s", path, strerror(e));
        return mdfi_fail(err, MDFI_ERR_IMAGE, "%s: truncated pixel data: %ldx%ld P%c needs "
                         "%zu bytes, the file has %zu", path, width, height, m1, n, got);
    }
    *pixels = buf;
    *w = (int)width;
    *h = (int)height;
    *c = chans;
    return MDFI_OK;
}
