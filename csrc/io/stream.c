/* Frame splitter for streams of concatenated JPEG (MJPEG) or binary PNM
 * files: finds where each frame ends without decoding it.
 *
 * JPEG: from SOI, marker after marker.  Segments are skipped by their
 * length (an EXIF thumbnail inside APP1 carries its own FFD8...FFD9, which
 * the length steps over); after SOS the entropy-coded data runs to the first
 * marker that is neither a stuffed FF00 nor a restart FFD0-FFD7; EOI ends
 * the frame.  A frame cut short shows as the next frame's SOI where a
 * marker is due (or inside a table segment); the frame is reported and the
 * reader goes on from that SOI.
 * PNM: P5/P6, width, height and maxval (as io/pnm.c reads them), then
 * width * height * channels samples of 1 byte (maxval < 256) or 2.
 *
 * The frame sits at the start of the buffer; bytes are read only as the
 * walk needs them, so nothing past the frame's end is read.  After a bad
 * frame the bytes already read are searched for the next frame start and
 * kept at the buffer's start. */
#include "io/stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

#define FIRST_CAP ((size_t)1 << 16)

struct mdfi_stream {
    FILE *f;
    char name[200];
    unsigned char *buf;
    size_t cap, max;
    size_t avail;            /* bytes read into buf */
    size_t done;             /* bytes at buf's start already handed out or dropped */
    uint64_t skip;           /* bytes of an oversized PNM still to be discarded */
    long index;              /* index of the next frame */
    mdfi_status fatal;       /* a read error or no memory: the stream is over */
    mdfi_errbuf fatal_err;
};

/* What reading more bytes gave. */
enum { GOT, END, LIMIT, RDERR, NOMEM };

/* Makes buf hold at least n bytes (n <= max). */
static int grow(mdfi_stream *s, size_t n)
{
    if (n <= s->cap)
        return GOT;
    if (n > s->max)
        return LIMIT;
    size_t cap = s->cap;
    while (cap < n)
        cap = cap > s->max / 2 ? s->max : cap * 2;
    unsigned char *b = realloc(s->buf, cap);
    if (!b)
        return NOMEM;
    s->buf = b;
    s->cap = cap;
    return GOT;
}

/* Reads until buf holds n bytes: a few bytes one by one (a marker, a
 * header field), longer runs (a segment, a raster) in one fread. */
static int more(mdfi_stream *s, size_t n)
{
    int r = grow(s, n);
    if (r != GOT)
        return r;
    while (s->avail < n) {
        size_t want = n - s->avail;
        if (want <= 16) {
            int c = getc_unlocked(s->f);
            if (c == EOF)
                break;
            s->buf[s->avail++] = (unsigned char)c;
        } else {
            size_t k = fread(s->buf + s->avail, 1, want, s->f);
            s->avail += k;
            if (k < want)
                break;
        }
    }
    if (s->avail >= n)
        return GOT;
    return ferror(s->f) ? RDERR : END;
}

static int pnm_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* 2: p[0..n) starts a frame (FF D8 FF, or P5/P6 and a whitespace or '#');
 * 1: it is too short to tell but could; 0: it cannot. */
static int frame_start(const unsigned char *p, size_t n)
{
    static const unsigned char soi[3] = {0xFF, 0xD8, 0xFF};
    size_t k = n < 3 ? n : 3;
    if (memcmp(p, soi, k) == 0)
        return n >= 3 ? 2 : 1;
    if (p[0] != 'P' || (n > 1 && p[1] != '5' && p[1] != '6'))
        return 0;
    if (n < 3)
        return 1;
    return pnm_space(p[2]) || p[2] == '#' ? 2 : 0;
}

/* The first position >= from where buf[at..avail) starts a frame or may. */
static size_t find_start(const mdfi_stream *s, size_t from)
{
    for (size_t at = from; at < s->avail; ++at)
        if (frame_start(s->buf + at, s->avail - at))
            return at;
    return s->avail;
}

/* "NAME: frame N: message" (index < 0: no frame).  from > 0: the frame is
 * corrupt, and the reader goes on from the next frame start at or after
 * byte `from` of what was read: where the walk failed, not the frame's byte
 * 1, so that an EXIF thumbnail the walk stepped over is not taken for the
 * next frame. */
static mdfi_status fail(mdfi_stream *s, mdfi_status st, long index, size_t from,
                        mdfi_errbuf *err, const char *fmt, ...) MDFI_PRINTF(6, 7);
static mdfi_status fail(mdfi_stream *s, mdfi_status st, long index, size_t from,
                        mdfi_errbuf *err, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (from)
        s->done = find_start(s, from);
    if (index < 0)
        return mdfi_fail(err, st, "%s: %s", s->name, msg);
    return mdfi_fail(err, st, "%s: frame %ld: %s", s->name, index, msg);
}

/* A read that came up short inside frame `index`.  Truncation and the size
 * limit are the frame's fault (the stream goes on, or ends at EOF); a read
 * error or no memory ends the stream. */
static mdfi_status short_read(mdfi_stream *s, int r, long index, const char *where,
                              mdfi_errbuf *err)
{
    if (r == END) {
        s->done = s->avail;
        return fail(s, MDFI_ERR_IMAGE, index, 0, err, "truncated: the stream ends in the %s, "
                    "after %zu bytes of the frame", where, s->avail);
    }
    if (r == LIMIT) {
        /* Drop what was read: the hunt for the next frame start goes on in
         * the bytes still to come. */
        s->done = s->avail;
        return fail(s, MDFI_ERR_IMAGE, index, 0, err, "larger than the frame-size limit of "
                    "%zu bytes: skipped", s->max);
    }
    s->fatal = r == NOMEM ? MDFI_ERR_NOMEM : MDFI_ERR_IO;
    if (r == NOMEM)
        fail(s, s->fatal, index, 0, &s->fatal_err, "out of memory for a frame buffer of %zu "
             "bytes", s->cap * 2);
    else
        fail(s, s->fatal, index, 0, &s->fatal_err, "read error: %s", strerror(errno));
    if (err)
        *err = s->fatal_err;
    return s->fatal;
}

static int is_soi_at(const mdfi_stream *s, size_t at)
{
    return at + 3 <= s->avail && frame_start(s->buf + at, 3) == 2 && s->buf[at] == 0xFF;
}

/* Walks a JPEG frame at buf[0] (FF D8 FF read); *end: its length. */
static mdfi_status walk_jpeg(mdfi_stream *s, long index, size_t *end, mdfi_errbuf *err)
{
    size_t pos = 2;
    int r;
    for (;;) {
        if ((r = more(s, pos + 2)) != GOT)
            return short_read(s, r, index, "JPEG data", err);
        if (s->buf[pos] != 0xFF)
            return fail(s, MDFI_ERR_IMAGE, index, pos, err, "JPEG: expected a marker at "
                        "byte %zu, found 0x%02x", pos, s->buf[pos]);
        while (s->buf[pos + 1] == 0xFF) {   /* fill bytes */
            ++pos;
            if ((r = more(s, pos + 2)) != GOT)
                return short_read(s, r, index, "JPEG data", err);
        }
        const int m = s->buf[pos + 1];
        const size_t at = pos;
        pos += 2;
        if (m == 0xD9) {
            *end = pos;
            return MDFI_OK;
        }
        if (m == 0xD8)
            return fail(s, MDFI_ERR_IMAGE, index, at, err, "JPEG: truncated: a new frame "
                        "(SOI) starts at byte %zu, before this one's EOI", at);
        if ((m >= 0xD0 && m <= 0xD7) || m == 0x01)   /* no length */
            continue;
        if (m == 0x00)
            return fail(s, MDFI_ERR_IMAGE, index, at, err, "JPEG: corrupt: FF00 outside a scan "
                        "at byte %zu", at);
        if ((r = more(s, pos + 2)) != GOT)
            return short_read(s, r, index, "JPEG data", err);
        const size_t len = ((size_t)s->buf[pos] << 8) | s->buf[pos + 1];
        if (len < 2)
            return fail(s, MDFI_ERR_IMAGE, index, at, err, "JPEG: corrupt: marker FF%02X at "
                        "byte %zu has length %zu", m, at, len);
        if ((r = more(s, pos + len)) != GOT)
            return short_read(s, r, index, "JPEG data", err);
        /* A table or header holding a frame start: this frame was cut
         * short and the next one began (APPn and COM may hold thumbnails). */
        if (!(m >= 0xE0 && m <= 0xEF) && m != 0xFE)
            for (size_t k = pos + 2; k + 3 <= pos + len; ++k)
                if (is_soi_at(s, k))
                    return fail(s, MDFI_ERR_IMAGE, index, k, err, "JPEG: truncated: a new "
                                "frame (SOI) starts at byte %zu, inside marker FF%02X's "
                                "segment", k, m);
        pos += len;
        if (m != 0xDA)
            continue;
        /* entropy-coded data: up to a marker that is not FF00 or RSTn */
        for (;;) {
            if (pos + 2 > s->avail && (r = more(s, pos + 2)) != GOT)
                return short_read(s, r, index, "JPEG data", err);
            if (s->buf[pos] != 0xFF) {
                ++pos;
                continue;
            }
            const int c = s->buf[pos + 1];
            if (c == 0x00 || (c >= 0xD0 && c <= 0xD7))
                pos += 2;
            else
                break;   /* a marker (or fill bytes before one) at pos */
        }
    }
}

/* Reads one PNM header field as io/pnm.c does: whitespace and comments,
 * digits, then one delimiter (a comment running to its line's end). */
static mdfi_status pnm_field(mdfi_stream *s, long index, size_t *pos, const char *what,
                             uint64_t *out, mdfi_errbuf *err)
{
    int r;
    for (;;) {
        if ((r = more(s, *pos + 1)) != GOT)
            return short_read(s, r, index, "PNM header", err);
        const int c = s->buf[*pos];
        if (c == '#') {
            while (s->buf[*pos] != '\n' && s->buf[*pos] != '\r') {
                ++*pos;
                if ((r = more(s, *pos + 1)) != GOT)
                    return short_read(s, r, index, "PNM header", err);
            }
        } else if (!pnm_space(c)) {
            break;
        }
        ++*pos;
    }
    if (s->buf[*pos] < '0' || s->buf[*pos] > '9')
        return fail(s, MDFI_ERR_IMAGE, index, 1, err, "PNM: bad header: expected the %s at "
                    "byte %zu, found byte 0x%02x", what, *pos, s->buf[*pos]);
    uint64_t v = 0;
    while (s->buf[*pos] >= '0' && s->buf[*pos] <= '9') {
        v = v * 10 + (uint64_t)(s->buf[*pos] - '0');
        if (v > INT32_MAX)
            return fail(s, MDFI_ERR_IMAGE, index, 1, err, "PNM: bad header: the %s is too "
                        "large", what);
        ++*pos;
        if ((r = more(s, *pos + 1)) != GOT)
            return short_read(s, r, index, "PNM header", err);
    }
    const int c = s->buf[*pos];
    if (!pnm_space(c) && c != '#')
        return fail(s, MDFI_ERR_IMAGE, index, 1, err, "PNM: bad header: junk byte 0x%02x "
                    "after the %s", c, what);
    while (c == '#' && s->buf[*pos] != '\n' && s->buf[*pos] != '\r') {
        ++*pos;   /* a comment ends the field; its line end is the delimiter */
        if ((r = more(s, *pos + 1)) != GOT)
            return short_read(s, r, index, "PNM header", err);
    }
    ++*pos;
    *out = v;
    return MDFI_OK;
}

/* Walks a PNM frame at buf[0] ("P5" or "P6" read); *end: its length. */
static mdfi_status walk_pnm(mdfi_stream *s, long index, size_t *end, mdfi_errbuf *err)
{
    size_t pos = 2;
    uint64_t w, h, maxval;
    mdfi_status st = pnm_field(s, index, &pos, "width", &w, err);
    if (st == MDFI_OK)
        st = pnm_field(s, index, &pos, "height", &h, err);
    if (st == MDFI_OK)
        st = pnm_field(s, index, &pos, "maxval", &maxval, err);
    if (st != MDFI_OK)
        return st;
    if (maxval == 0 || maxval > 65535)
        return fail(s, MDFI_ERR_IMAGE, index, 1, err, "PNM: bad header: maxval %llu (1 to "
                    "65535)", (unsigned long long)maxval);
    /* w, h < 2^31: the product fits; sizes past the limit are skipped whole */
    const uint64_t raster = w * h * (s->buf[1] == '6' ? 3u : 1u) * (maxval < 256 ? 1u : 2u);
    if (raster > s->max - pos) {
        s->skip = raster;
        s->done = s->avail;
        return fail(s, MDFI_ERR_IMAGE, index, 0, err, "PNM %llux%llu: larger than the frame-size "
                    "limit of %zu bytes: skipped", (unsigned long long)w,
                    (unsigned long long)h, s->max);
    }
    int r = more(s, pos + (size_t)raster);
    if (r != GOT)
        return short_read(s, r, index, "PNM pixels", err);
    *end = pos + (size_t)raster;
    return MDFI_OK;
}

mdfi_status mdfi_stream_open(mdfi_stream **out, FILE *f, const char *name, size_t max_frame,
                             mdfi_errbuf *err)
{
    if (out)
        *out = NULL;
    if (!out || !f)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_stream_open: NULL %s", out ? "file" : "out");
    mdfi_stream *s = calloc(1, sizeof *s);
    if (!s)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory for a stream");
    s->f = f;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "<stream>");
    s->max = max_frame ? max_frame : MDFI_STREAM_MAX_FRAME;
    if (s->max < 16)
        s->max = 16;
    s->cap = FIRST_CAP < s->max ? FIRST_CAP : s->max;
    s->buf = malloc(s->cap);
    if (!s->buf) {
        free(s);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory for a stream");
    }
    *out = s;
    return MDFI_OK;
}

void mdfi_stream_close(mdfi_stream *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

/* Discards the rest of an oversized PNM, through the buffer. */
static int discard(mdfi_stream *s)
{
    while (s->skip > 0) {
        size_t k = s->skip < s->cap ? (size_t)s->skip : s->cap;
        size_t got = fread(s->buf, 1, k, s->f);
        s->skip -= got;
        if (got < k) {
            s->skip = 0;
            return ferror(s->f) ? RDERR : END;
        }
    }
    return GOT;
}

mdfi_status mdfi_stream_next(mdfi_stream *s, mdfi_frame *fr, mdfi_errbuf *err)
{
    if (!s || !fr)
        return mdfi_fail(err, MDFI_ERR_ARG, "mdfi_stream_next: NULL %s", s ? "frame" : "stream");
    memset(fr, 0, sizeof *fr);
    if (s->fatal) {
        if (err)
            *err = s->fatal_err;
        return s->fatal;
    }
    /* the bytes after the last frame (kept from a resynchronisation) go first */
    memmove(s->buf, s->buf + s->done, s->avail - s->done);
    s->avail -= s->done;
    s->done = 0;
    int r = discard(s);
    /* the next frame start, dropping what comes before it */
    size_t skipped = 0;
    while (r == GOT && (r = more(s, 3)) == GOT && frame_start(s->buf, 3) != 2) {
        size_t at = find_start(s, 1);
        memmove(s->buf, s->buf + at, s->avail - at);
        s->avail -= at;
        skipped += at;
        if (skipped > s->max) {   /* not a stream of frames: give up */
            s->fatal = MDFI_ERR_UNSUPPORTED;
            fail(s, s->fatal, -1, 0, &s->fatal_err, "%zu bytes %s hold no JPEG (FF D8 FF) or PNM "
                 "(P5/P6) frame start: not a stream of JPEG or PNM frames", skipped,
                 s->index ? "after the last frame" : "at the start");
            if (err)
                *err = s->fatal_err;
            return s->fatal;
        }
    }
    fr->skipped = skipped + (r == END ? s->avail : 0);
    if (r == END) {   /* the end: what is left starts no frame */
        s->avail = 0;
        return MDFI_OK;
    }
    if (r != GOT)
        return short_read(s, r, -1, "", err);
    fr->index = s->index++;
    fr->format = s->buf[0] == 0xFF ? "jpeg" : "pnm";
    size_t end = 0;
    mdfi_status st = s->buf[0] == 0xFF ? walk_jpeg(s, fr->index, &end, err)
                                       : walk_pnm(s, fr->index, &end, err);
    if (st != MDFI_OK)
        return st;
    s->done = end;
    fr->data = s->buf;
    fr->size = end;
    return MDFI_OK;
}
