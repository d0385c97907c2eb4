/* libFuzzer target for the JPEG decoder: every input must decode or fail
 * with a message, without a sanitizer report.  Build and run with clang:
 *   make fuzz                              builds build/fuzz/fuzz_jpeg
 *   build/fuzz/fuzz_jpeg -max_total_time=60 CORPUS_DIR SEED.jpg...
 * (tests/c/test_jpeg fuzz is the built-in mutation loop that CI runs with gcc.) */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/jpeg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *px = NULL;
    int w, h, c;
    mdfi_errbuf err;
    err.msg[0] = 0;
    /* A small pixel cap: mutated sizes would otherwise ask for gigabytes. */
    mdfi_status st = mdfi_jpeg_decode_mem(data, size, "fuzz", 1L << 22, &px, &w, &h, &c, &err);
    if (st == MDFI_OK) {
        if (!px || w < 1 || h < 1 || (c != 1 && c != 3))
            abort();
        free(px);
    } else if (strncmp(err.msg, "fuzz: ", 6) != 0) {
        abort();   /* a failure must say why */
    }
    return 0;
}
