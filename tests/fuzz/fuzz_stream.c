/* libFuzzer target for the stream frame splitter (io/stream.c): the input is
 * a stream of concatenated JPEG or PNM frames, read through fmemopen with a
 * small frame-size limit (so the limit and resynchronisation paths run).
 * Every frame returned must lie inside the input, in order, start with its
 * format's magic and end with EOI (JPEG); every failure must name the stream;
 * the loop must end (each call consumes input or ends the stream).
 *   make fuzz && build/fuzz/fuzz_stream CORPUS tests/fuzz/corpus/stream
 * (the test suite runs it in the built-in loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/stream.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The frame's bytes must be the input's, somewhere at or after `from`. */
static size_t locate(const uint8_t *data, size_t size, size_t from, const mdfi_frame *fr)
{
    for (size_t at = from; at + fr->size <= size; ++at)
        if (memcmp(data + at, fr->data, fr->size) == 0)
            return at;
    abort();   /* bytes that are not in the input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fuzz_open_input(data, size);
    if (!f)
        return 0;
    mdfi_stream *s = NULL;
    mdfi_errbuf err;
    if (mdfi_stream_open(&s, f, "fuzz", 4096, &err) != MDFI_OK) {
        fclose(f);
        return 0;
    }
    size_t from = 0;
    long last = -1;
    /* a call that returns neither a frame nor the end consumed >= 1 byte */
    for (size_t calls = 0;; ++calls) {
        if (calls > size + 2)
            abort();   /* no progress: a hang */
        mdfi_frame fr;
        err.msg[0] = 0;
        mdfi_status st = mdfi_stream_next(s, &fr, &err);
        if (st != MDFI_OK) {
            if (strncmp(err.msg, "fuzz: ", 6) != 0 || fr.size)
                abort();   /* a failure must say why, naming the stream */
            if (st != MDFI_ERR_IMAGE)
                break;
            continue;
        }
        if (!fr.size)
            break;
        if (fr.index <= last || fr.size > 4096 || !fr.format)
            abort();
        last = fr.index;
        const uint8_t *p = fr.data;
        if (!strcmp(fr.format, "jpeg")) {
            if (fr.size < 4 || p[0] != 0xFF || p[1] != 0xD8 || p[fr.size - 2] != 0xFF ||
                p[fr.size - 1] != 0xD9)
                abort();
        } else if (fr.size < 3 || p[0] != 'P' || (p[1] != '5' && p[1] != '6')) {
            abort();
        }
        from = locate(data, size, from, &fr) + fr.size;
    }
    mdfi_stream_close(s);
    fclose(f);
    return 0;
}
