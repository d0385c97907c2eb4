#include "io/weights.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"

static int is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static int32_t le32(const unsigned char *b)
{
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

static mdfi_status start(mdfi_weights_reader *r, const char *path, mdfi_errbuf *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->layer = -1;
    r->layer_type = "header";
    if (!is_little_endian())
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported",
                         path);
    return MDFI_OK;
}

static mdfi_status read_header(mdfi_weights_reader *r, mdfi_errbuf *err)
{
    const char *path = r->path;
    if (fseek(r->f, 0, SEEK_END) == 0) {
        long end = ftell(r->f);
        r->size = end;
    }
    fseek(r->f, 0, SEEK_SET);   /* rewind() is one more import the program pays for */
    unsigned char h[20];
    size_t got = fread(h, 1, 12, r->f);
    if (got < 12)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: too short for a Darknet weights header "
                         "(%zu bytes)", path, got);
    r->major = le32(h);
    r->minor = le32(h + 4);
    r->revision = le32(h + 8);
    if (r->major < 0 || r->minor < 0 || r->revision < 0 ||
        (r->major > 10 && r->major <= 1000) || (r->minor > 100 && r->minor <= 1000))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: bad header version %d.%d.%d "
                         "(not a Darknet weights file?)", path, r->major, r->minor,
                         r->revision);
    /* Darknet's load_weights: `seen` is a size_t when major*10 + minor >= 2 and
       both are below 1000, else an int (so 1000.x and x.1000 headers, which
       also mean transposed connected weights, carry a 32-bit seen). */
    long long version = (long long)r->major * 10 + r->minor;
    size_t seen_bytes = (version >= 2 && r->major < 1000 && r->minor < 1000) ? 8 : 4;
    if (fread(h + 12, 1, seen_bytes, r->f) != seen_bytes)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: truncated header", path);
    r->pos = 12 + (long long)seen_bytes;
    r->transpose = r->major > 1000 || r->minor > 1000;
    return MDFI_OK;
}

mdfi_status mdfi_weights_open(mdfi_weights_reader *r, const char *path, mdfi_errbuf *err)
{
    MDFI_CHECK(start(r, path, err));
    r->f = fopen(path, "rb");
    if (!r->f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return read_header(r, err);
}

mdfi_status mdfi_weights_attach(mdfi_weights_reader *r, FILE *f, const char *path,
                                mdfi_errbuf *err)
{
    mdfi_status st = start(r, path, err);
    r->f = f;   /* ours from now on, even on failure */
    return st != MDFI_OK ? st : read_header(r, err);
}

static mdfi_status ran_out(const mdfi_weights_reader *r, size_t n, size_t got,
                           const char *what, mdfi_errbuf *err)
{
    return mdfi_fail(err, MDFI_ERR_WEIGHTS,
                     "%s: too short: ran out at layer %d (%s) reading %s: needed %zu "
                     "floats, %zu left", r->path, r->layer, r->layer_type, what, n, got);
}

mdfi_status mdfi_weights_read(mdfi_weights_reader *r, float *dst, size_t n,
                              const char *what, mdfi_errbuf *err)
{
    size_t got = fread(dst, sizeof(float), n, r->f);
    r->pos += (long long)(got * sizeof(float));
    return got != n ? ran_out(r, n, got, what, err) : MDFI_OK;
}

mdfi_status mdfi_weights_check(const mdfi_weights_reader *r, size_t n, const char *what,
                               mdfi_errbuf *err)
{
    long long left = r->pos < r->size ? (r->size - r->pos) / 4 : 0;
    return (unsigned long long)left < n ? ran_out(r, n, (size_t)left, what, err) : MDFI_OK;
}

mdfi_status mdfi_weights_finish(mdfi_weights_reader *r, mdfi_errbuf *err)
{
    long long left = r->size - r->pos;
    if (left > 0 || getc(r->f) != EOF)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS,
                         "%s: too long for the cfg: %lld bytes left after the last layer "
                         "(wrong cfg for these weights?)", r->path, left > 0 ? left : 1);
    return MDFI_OK;
}

void mdfi_weights_close(mdfi_weights_reader *r)
{
    if (r->f)
        fclose(r->f);
    r->f = NULL;
}
