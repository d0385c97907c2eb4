/* libFuzzer target for the binary PNM reader (P5/P6): every input decodes or
 * fails with a message naming the input; a decoded image converts to floats.
 *   make fuzz && build/fuzz/fuzz_pnm CORPUS tests/fuzz/corpus/pnm
 * (the test suite runs the same function in the gcc mutation loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fuzz_open_input(data, size);
    if (!f)
        return 0;
    unsigned char *px = NULL;
    int w = 0, h = 0, c = 0;
    mdfi_errbuf err;
    err.msg[0] = 0;
    mdfi_status st = mdfi_pnm_decode(f, "fuzz", &px, &w, &h, &c, &err);
    fclose(f);
    if (st != MDFI_OK) {
        if (px || strncmp(err.msg, "fuzz", 4) != 0)
            abort();   /* a failure must say why, naming the input */
        return 0;
    }
    if (!px || w < 1 || h < 1 || (c != 1 && c != 3) || (size_t)w * h * c > size)
        abort();
    mdfi_image img;
    if (mdfi_image_from_bytes(px, w, h, c, &img, &err) == MDFI_OK) {
        if (img.c != 3 || img.w != w || img.h != h)
            abort();
        mdfi_image_free(&img);
    }
    free(px);
    return 0;
}
