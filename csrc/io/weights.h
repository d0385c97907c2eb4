/* Darknet .weights reader: validates the header, then hands out float32
 * arrays in the order each layer asks for them.  Running out names the layer. */
#ifndef MDFI_IO_WEIGHTS_H
#define MDFI_IO_WEIGHTS_H

#include <stdio.h>
#include "mdfi.h"

typedef struct {
    FILE *f;
    const char *path;
    long long size, pos;      /* bytes */
    int major, minor, revision;
    int transpose;            /* connected weights stored transposed (major/minor > 1000) */
    int layer;                /* layer being read, for messages */
    const char *layer_type;
} mdfi_weights_reader;

mdfi_status mdfi_weights_open(mdfi_weights_reader *r, const char *path, mdfi_errbuf *err);
/* The same on a stream already open, which the reader then owns (closes),
 * failure included; path must outlive the reader. */
mdfi_status mdfi_weights_attach(mdfi_weights_reader *r, FILE *f, const char *path,
                                mdfi_errbuf *err);
/* Reads n floats; "what" names the array ("biases", "weights"...). */
mdfi_status mdfi_weights_read(mdfi_weights_reader *r, float *dst, size_t n,
                              const char *what, mdfi_errbuf *err);
/* Fails exactly as mdfi_weights_read of n floats would if the file has
 * fewer left (for an array read in pieces). */
mdfi_status mdfi_weights_check(const mdfi_weights_reader *r, size_t n, const char *what,
                               mdfi_errbuf *err);
/* After the last layer: the file must be consumed exactly. */
mdfi_status mdfi_weights_finish(mdfi_weights_reader *r, mdfi_errbuf *err);
void mdfi_weights_close(mdfi_weights_reader *r);

#endif
