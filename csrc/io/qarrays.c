/* Kind-3 records of .qweights files: named arrays of any layer's parameters
 * (see qweights.h).  Every head is checked when the file is opened, so that
 * a layer reading an array later only has to match its name, dtype and count. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/qweights.h"

#define ARRAY_HEAD_BYTES (MDFI_QW_NAME_BYTES + 8)

size_t mdfi_qarray_size(int dtype)
{
    switch (dtype) {
    case MDFI_QW_INT8: return 1;
    case MDFI_QW_INT16: return 2;
    case MDFI_QW_INT32: return 4;
    case MDFI_QW_FLOAT32: return 4;
    }
    return 0;
}

const char *mdfi_qarray_dtype_name(int dtype)
{
    switch (dtype) {
    case MDFI_QW_INT8: return "int8";
    case MDFI_QW_INT16: return "int16";
    case MDFI_QW_INT32: return "int32";
    case MDFI_QW_FLOAT32: return "float32";
    }
    return "unknown";
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Non-empty [A-Za-z0-9_], NUL-terminated, only NULs after it.  Not isalnum():
 * the set must not depend on the locale. */
static int name_ok(const unsigned char *n)
{
    size_t len = 0;
    while (len < MDFI_QW_NAME_BYTES && n[len])
        ++len;
    if (len == 0 || len == MDFI_QW_NAME_BYTES)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    for (size_t i = len; i < MDFI_QW_NAME_BYTES; ++i)
        if (n[i])
            return 0;
    return 1;
}

/* Checks one array head read at pos; returns the byte after its padded data. */
static mdfi_status check_array(const char *path, const mdfi_qrecord *r, int i,
                               const unsigned char *h, mdfi_qarray *a, long long pos,
                               long long end, long long *next, mdfi_errbuf *err)
{
    if (!name_ok(h))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: array %d has a bad name (1 to "
                         "%d of A-Z a-z 0-9 _, NUL-padded)", path, r->layer, i,
                         MDFI_QW_NAME_BYTES - 1);
    memcpy(a->name, h, MDFI_QW_NAME_BYTES);
    a->dtype = (int)le32(h + MDFI_QW_NAME_BYTES);
    a->count = le32(h + MDFI_QW_NAME_BYTES + 4);
    a->offset = pos + ARRAY_HEAD_BYTES;
    size_t size = mdfi_qarray_size(a->dtype);
    if (!size)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: array \"%s\" has unknown dtype "
                         "%u (1 int8, 2 int16, 3 int32, 4 float32)", path, r->layer, a->name,
                         (unsigned)le32(h + MDFI_QW_NAME_BYTES));
    long long bytes = (long long)a->count * (long long)size;
    *next = a->offset + (bytes + 3) / 4 * 4;
    if (*next > end)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: array \"%s\" (%zu %s) runs "
                         "past the record's %lld payload bytes", path, r->layer, a->name,
                         a->count, mdfi_qarray_dtype_name(a->dtype), r->payload);
    return MDFI_OK;
}

static mdfi_status index_arrays(FILE *f, const char *path, const mdfi_qrecord *r,
                                mdfi_qarray *a, mdfi_errbuf *err)
{
    long long pos = r->offset, end = r->offset + r->payload;
    unsigned char h[ARRAY_HEAD_BYTES];
    for (int i = 0; i < r->outputs; ++i) {
        if (pos + ARRAY_HEAD_BYTES > end)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: the record says %d arrays "
                             "but its %lld payload bytes end before array %d", path, r->layer,
                             r->outputs, r->payload, i);
        if (fseek(f, (long)pos, SEEK_SET) || fread(h, 1, sizeof h, f) != sizeof h)
            return mdfi_fail(err, MDFI_ERR_IO, "%s: read error", path);
        MDFI_CHECK(check_array(path, r, i, h, &a[i], pos, end, &pos, err));
        for (int j = 0; j < i; ++j)
            if (!strcmp(a[j].name, a[i].name))
                return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: two arrays called "
                                 "\"%s\"", path, r->layer, a[i].name);
    }
    if (pos != end)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: the arrays take %lld bytes but "
                         "the record's payload is %lld", path, r->layer, pos - r->offset,
                         r->payload);
    return MDFI_OK;
}

mdfi_status mdfi_qarrays_index(FILE *f, const char *path, const mdfi_qrecord *r,
                               mdfi_qarray **out, mdfi_errbuf *err)
{
    *out = NULL;
    if (r->outputs < 1 || r->outputs > r->payload / ARRAY_HEAD_BYTES || r->k || r->groups ||
        r->mode)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: bad array record (%d arrays "
                         "in %lld bytes, K %d, groups %d, mode %d: want at least one array, "
                         "K, groups and mode 0)", path, r->layer, r->outputs, r->payload,
                         r->k, r->groups, r->mode);
    mdfi_qarray *a = calloc((size_t)r->outputs, sizeof *a);
    if (!a)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    mdfi_status st = index_arrays(f, path, r, a, err);
    if (st != MDFI_OK) {
        free(a);
        return st;
    }
    *out = a;
    return MDFI_OK;
}

const mdfi_qarray *mdfi_qarrays_find(const mdfi_qrecord *r, const char *name)
{
    for (int i = 0; r->arrays && i < r->outputs; ++i)
        if (!strcmp(r->arrays[i].name, name))
            return &r->arrays[i];
    return NULL;
}
