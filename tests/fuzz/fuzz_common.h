/* What the fuzz targets share (tests/fuzz/, docs/architecture.md#fuzzing). */
#ifndef MDFI_FUZZ_COMMON_H
#define MDFI_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mdfi.h"

/* A failed network call must say why; MDFI_FUZZ_VERBOSE=1 prints it. */
static inline void fuzz_check_net_error(const mdfi_net *net, mdfi_status st)
{
    if (st == MDFI_OK)
        return;
    const char *msg = mdfi_net_last_error(net);
    if (!msg || !msg[0])
        abort();
    if (getenv("MDFI_FUZZ_VERBOSE"))
        fprintf(stderr, "%s\n", msg);
}

/* The input as a read-only FILE, or NULL for an empty one (fmemopen refuses it). */
static inline FILE *fuzz_open_input(const uint8_t *data, size_t size)
{
    return size ? fmemopen((void *)data, size, "rb") : NULL;
}

#endif
