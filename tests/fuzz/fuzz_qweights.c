/* libFuzzer target for the .qweights reader (io/qweights.c, io/qarrays.c):
 * the header, the record index, the named-array index and every record's data.
 * Every input loads or fails with a message naming the file.  The harness
 * rewrites the declared size and the CRC-32 trailer to match the input, so
 * that mutations reach the records instead of stopping at the checksum (those
 * two checks are tested in tests/test_params.py).
 *   make fuzz && build/fuzz/fuzz_qweights CORPUS tests/fuzz/corpus/qweights
 * (the test suite runs the same function in the gcc mutation loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qweights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void fail_ok(mdfi_status st, const mdfi_errbuf *err)
{
    if (st != MDFI_OK && strncmp(err->msg, "fuzz.qweights", 13) != 0)
        abort();   /* a failure must say why, naming the file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 36 || size > (1u << 20))
        return 0;
    unsigned char *d = malloc(size);
    if (!d)
        return 0;
    memcpy(d, data, size);
    for (int i = 0; i < 8; i++)
        d[24 + i] = (unsigned char)((uint64_t)size >> (8 * i));
    put_le32(d + size - 4, mdfi_crc32(0, d, size - 4));
    FILE *f = fmemopen(d, size, "rb");
    if (!f) {
        free(d);
        return 0;
    }
    mdfi_qweights *q = NULL;
    mdfi_errbuf err;
    err.msg[0] = 0;
    mdfi_status st = mdfi_qweights_load(f, "fuzz.qweights", &q, &err);
    fail_ok(st, &err);
    for (int i = 0; st == MDFI_OK && i < q->n_rec; i++) {
        const mdfi_qrecord *r = &q->rec[i];
        if (mdfi_qweights_find(q, r->layer) != r)
            abort();
        if (r->kind == MDFI_QW_ARRAYS) {
            for (int a = 0; a < r->outputs; a++)
                if (mdfi_qarrays_find(r, r->arrays[a].name) == NULL ||
                    !mdfi_qarray_dtype_name(r->arrays[a].dtype) ||
                    r->arrays[a].offset + (long long)(r->arrays[a].count *
                                                      mdfi_qarray_size(r->arrays[a].dtype)) >
                        (long long)size)
                    abort();   /* the index checked every array against the file */
            continue;
        }
        /* a record's sizes were checked against its payload, inside the file */
        size_t m = (size_t)r->outputs, nw = m * (size_t)r->k * (size_t)(r->w_bits / 8);
        if (nw > size || m > size)
            abort();
        int32_t *bias = malloc(4 * m), *mult = malloc(4 * m);
        void *w = malloc(nw ? nw : 1);
        int8_t *wf = malloc(m);
        if (bias && mult && w && wf)
            fail_ok(mdfi_qweights_read_from(f, "fuzz.qweights", r, bias, w, wf, mult, &err),
                    &err);
        free(bias);
        free(mult);
        free(w);
        free(wf);
    }
    mdfi_qweights_free(q);
    fclose(f);
    free(d);
    return 0;
}
