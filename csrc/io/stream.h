/* A stream of concatenated image files (MJPEG from a camera pipe, or
 * concatenated binary PNM), split into frames without decoding them.
 *
 *   mdfi_stream_open(&s, f, "<stdin>", 0, &err);
 *   while ((st = mdfi_stream_next(s, &fr, &err)) != MDFI_OK || fr.size)
 *       ... st == MDFI_ERR_IMAGE: frame fr.index is bad, the stream goes on;
 *           another error: the stream cannot go on ...
 *   mdfi_stream_close(s);
 *
 * One buffer per stream, grown to the largest frame and never past the
 * frame-size limit, so memory stays constant whatever the stream's length
 * and nothing is allocated per frame once the buffer is large enough.  No
 * byte past a frame's end is read before the frame is returned: a live
 * camera's frame is handed on as soon as its last byte arrives. */
#ifndef MDFI_IO_STREAM_H
#define MDFI_IO_STREAM_H

#include <stdio.h>

#include "mdfi.h"

/* The default frame-size limit: 64 MiB, far above a 4K JPEG or a 4K P6
 * (24 MiB). */
#define MDFI_STREAM_MAX_FRAME ((size_t)64 << 20)

typedef struct mdfi_stream mdfi_stream;

typedef struct {
    const unsigned char *data;   /* the frame's bytes, valid until the next call */
    size_t size;                 /* 0 (and data NULL): the stream ended cleanly */
    long index;                  /* 0, 1, ...: every frame found counts, bad ones too */
    const char *format;          /* "jpeg" or "pnm" */
    size_t skipped;              /* bytes before the frame that start no frame */
} mdfi_frame;

/* f stays the caller's (not closed); name labels messages; max_frame 0:
 * MDFI_STREAM_MAX_FRAME. */
mdfi_status mdfi_stream_open(mdfi_stream **out, FILE *f, const char *name, size_t max_frame,
                             mdfi_errbuf *err);
/* The next frame.  MDFI_OK: a frame, or size 0 at the end of the stream.
 * MDFI_ERR_IMAGE: frame fr->index is truncated, corrupt or over the limit
 * (the message names the stream, the frame and the byte); the reader has
 * resynchronised on the next frame start, so call again.  Any other status
 * (a read error, no memory) ends the stream: later calls return it again. */
mdfi_status mdfi_stream_next(mdfi_stream *s, mdfi_frame *fr, mdfi_errbuf *err);
void mdfi_stream_close(mdfi_stream *s);

#endif
