/* Tests the one parameter source (io/params.h) on files it writes itself:
 * .qweights version 1 (GEMM records), version 2 (GEMM and named-array
 * records) and Darknet .weights, then corrupt and mismatched ones, each of
 * which must fail with the right status and a message naming the file.
 *
 *   test_params [DIR]      the tests, in DIR (default: a new directory under
 *                          $TMPDIR or /tmp, removed afterwards);
 *                          one FAIL line per failure, then "N passed, M failed"
 *   test_params dump FILE  prints the records of a .qweights file and the
 *                          values of its arrays, one line each:
 *                            record LAYER KIND M K GROUPS
 *                            array LAYER NAME DTYPE COUNT V0 V1 ... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/params.h"

static int passed, failed;
static char dir[512];

#define CHECK(cond, ...) do { if (cond) ++passed; else { ++failed; \
    printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- a little-endian file builder ---------------------------------------- */

typedef struct { unsigned char d[4096]; size_t n; } buf;

static void put(buf *b, const void *p, size_t n) { if (n) memcpy(b->d + b->n, p, n); b->n += n; }
static void u32(buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, x, 4);
}
static void pad4(buf *b) { while (b->n % 4) b->d[b->n++] = 0; }
static void set32(buf *b, size_t at, uint32_t v) { size_t n = b->n; b->n = at; u32(b, v); b->n = n; }

static void header(buf *b, uint32_t version, uint32_t layers, uint32_t records)
{
    b->n = 0;
    put(b, "MDFIQWT", 8);
    u32(b, version); u32(b, layers); u32(b, records); u32(b, 0);
    u32(b, 0); u32(b, 0);   /* size, filled by finish_file */
}

/* A record head; returns where its payload size goes (set by end_record). */
static size_t record(buf *b, uint32_t layer, uint32_t kind, uint32_t m, uint32_t k,
                     uint32_t groups, const signed char fmt[6], int mode)
{
    u32(b, 0x43455251u); u32(b, layer); u32(b, kind); u32(b, m); u32(b, k); u32(b, groups);
    put(b, fmt, 6);
    b->d[b->n++] = (unsigned char)mode;
    b->d[b->n++] = 0;
    size_t at = b->n;
    u32(b, 0); u32(b, 0);
    return at;
}
static void end_record(buf *b, size_t at) { set32(b, at, (uint32_t)(b->n - at - 8)); }

static void array(buf *b, const char *name, uint32_t dtype, uint32_t count, const void *data,
                  size_t bytes)
{
    char n[32] = {0};
    memcpy(n, name, strlen(name));
    put(b, n, 32); u32(b, dtype); u32(b, count); put(b, data, bytes); pad4(b);
}

/* Size field and CRC trailer. */
static void finish_file(buf *b)
{
    set32(b, 24, (uint32_t)(b->n + 4));
    u32(b, mdfi_crc32(0, b->d, b->n));
}

static const char *save(const char *name, const void *d, size_t n)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) {
        printf("FAIL: cannot write %s\n", path);
        exit(2);
    }
    return path;
}

/* ---- the files --------------------------------------------------------- */

static const signed char fmt8[6] = {8, 7, 8, 6, 8, 4}, fmt16[6] = {16, 4, 16, 0, 16, 8};
static const signed char fmt0[6] = {0, 0, 0, 0, 0, 0};
static const int8_t w0[6] = {1, -2, 3, -128, 127, 0};
static const int32_t b0[2] = {-5, 70000};
static const int16_t w2[6] = {-32768, 32767, 1, 2, -3, 4};
static const int32_t b2[3] = {1, 2, 3};
static const int8_t f2[3] = {20, 21, 22};
static const int32_t m2[3] = {1, 32767, 500};
static const float thresh[3] = {0.25f, -1.5f, 3e7f};
static const int8_t gate[5] = {1, 0, 1, 1, -1};
static const int16_t idx[3] = {7, -7, 300};
static const int32_t acc[2] = {-2147483647 - 1, 2147483647};

/* Version 1: a conv record for layer 0 (8 bits, mode 0), a connected one for
 * layer 2 (16 bits, mode 2), in a file for 3 layers. */
static void v1_file(buf *b)
{
    header(b, 1, 3, 2);
    size_t at = record(b, 0, 1, 2, 3, 1, fmt8, 0);
    put(b, b0, sizeof b0); put(b, w0, sizeof w0); pad4(b);
    end_record(b, at);
    at = record(b, 2, 2, 3, 2, 1, fmt16, 2);
    put(b, b2, sizeof b2); put(b, w2, sizeof w2); pad4(b);
    put(b, f2, sizeof f2); pad4(b); put(b, m2, sizeof m2);
    end_record(b, at);
    finish_file(b);
}

/* Version 2: layer 0 as above, layer 1 named arrays (every dtype, odd sizes,
 * an empty one). */
static void v2_arrays(buf *b, const char *name2, uint32_t gate_dtype)
{
    array(b, "thresh", 4, 3, thresh, sizeof thresh);
    array(b, "gate", gate_dtype, 5, gate, sizeof gate);
    array(b, name2, 2, 3, idx, sizeof idx);
    array(b, "acc", 3, 2, acc, sizeof acc);
    array(b, "empty_0", 1, 0, NULL, 0);
}
static void v2_file_with(buf *b, const char *name2, uint32_t gate_dtype, uint32_t layer1)
{
    header(b, 2, 3, 2);
    size_t at = record(b, 0, 1, 2, 3, 1, fmt8, 0);
    put(b, b0, sizeof b0); put(b, w0, sizeof w0); pad4(b);
    end_record(b, at);
    at = record(b, layer1, 3, 5, 0, 0, fmt0, 0);
    v2_arrays(b, name2, gate_dtype);
    end_record(b, at);
    finish_file(b);
}
static void v2_file(buf *b) { v2_file_with(b, "idx", 1, 1); }

static const float floats[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* Darknet: version 0.2.0 (8-byte seen), then 10 floats. */
static void darknet_file(buf *b, uint32_t minor, int extra)
{
    b->n = 0;
    u32(b, 0); u32(b, minor); u32(b, 0); u32(b, 1234);
    if (minor >= 2 && minor < 1000)   /* Darknet's rule: a 64-bit seen, else 32-bit */
        u32(b, 0);
    put(b, floats, sizeof floats);
    while (extra-- > 0)
        b->d[b->n++] = 0;
}

/* ---- checks ------------------------------------------------------------ */

static mdfi_params *open_ok(const char *path)
{
    mdfi_params *p = NULL;
    mdfi_errbuf err = {""};
    mdfi_status st = mdfi_params_open(path, &p, &err);
    CHECK(st == MDFI_OK && p, "open %s: %d %s", path, st, err.msg);
    return st == MDFI_OK ? p : NULL;
}

/* st must be want and the message name the file and contain needle. */
static void expect(mdfi_status st, mdfi_status want, const mdfi_errbuf *err, const char *path,
                   const char *needle, const char *what)
{
    CHECK(st == want && strstr(err->msg, path) && strstr(err->msg, needle),
          "%s: status %d (want %d), message \"%s\" (want the path and \"%s\")", what, st, want,
          err->msg, needle);
}

/* Opening path (the bytes of b) must fail with a message containing needle. */
static void expect_open_fails(const char *name, const buf *b, const char *needle)
{
    const char *path = save(name, b->d, b->n);
    mdfi_params *p = NULL;
    mdfi_errbuf err = {""};
    mdfi_status st = mdfi_params_open(path, &p, &err);
    expect(st, MDFI_ERR_WEIGHTS, &err, path, needle, name);
    CHECK(!p, "%s: no reader on failure", name);
}

static void test_v1(void)
{
    buf b;
    v1_file(&b);
    const char *path = save("v1.qweights", b.d, b.n);
    mdfi_params *p = open_ok(path);
    if (!p)
        return;
    CHECK(mdfi_params_kind_of(p) == MDFI_PARAMS_QWEIGHTS, "v1 kind");
    CHECK(!strcmp(mdfi_params_path(p), path), "v1 path");
    CHECK(mdfi_params_layers(p) == 3 && mdfi_params_records(p) == 2, "v1 counts");
    CHECK(mdfi_params_record(p, 1) == NULL && mdfi_params_record_at(p, 2) == NULL &&
          mdfi_params_record_at(p, -1) == NULL, "v1 missing records");
    const mdfi_qrecord *r0 = mdfi_params_record(p, 0), *r2 = mdfi_params_record(p, 2);
    CHECK(r0 && r0 == mdfi_params_record_at(p, 0) && r0->kind == MDFI_QW_CONV &&
          r0->outputs == 2 && r0->k == 3 && r0->w_bits == 8 && r0->w_frac == 6 &&
          r0->out_frac == 4 && r0->mode == 0 && !r0->arrays, "v1 record 0");
    CHECK(r2 && r2->kind == MDFI_QW_CONNECTED && r2->mode == 2 && r2->w_bits == 16,
          "v1 record 2");
    mdfi_errbuf err = {""};
    int32_t bias[3], mult[3];
    int8_t w8[6], wf[3];
    int16_t w16[6];
    mdfi_params_at(p, 0, "convolutional");
    CHECK(r0 && mdfi_params_read_gemm(p, r0, bias, w8, NULL, NULL, &err) == MDFI_OK &&
          !memcmp(bias, b0, sizeof b0) && !memcmp(w8, w0, sizeof w0), "v1 read 0: %s", err.msg);
    mdfi_params_at(p, 2, "connected");
    CHECK(r2 && mdfi_params_read_gemm(p, r2, bias, w16, wf, mult, &err) == MDFI_OK &&
          !memcmp(bias, b2, sizeof b2) && !memcmp(w16, w2, sizeof w2) &&
          !memcmp(wf, f2, sizeof f2) && !memcmp(mult, m2, sizeof m2), "v1 read 2: %s", err.msg);
    /* again, in another order: one stream, any order */
    CHECK(r0 && mdfi_params_read_gemm(p, r0, bias, w8, NULL, NULL, &err) == MDFI_OK &&
          !memcmp(w8, w0, sizeof w0), "v1 reread 0");
    /* Darknet calls on a .qweights source */
    float fl[2];
    expect(mdfi_params_floats(p, fl, 2, "biases", &err), MDFI_ERR_WEIGHTS, &err, path,
           "is a quantized weights file", "floats on qweights");
    CHECK(strstr(err.msg, "layer 2 [connected]"), "floats on qweights names the layer: %s",
          err.msg);
    expect(mdfi_params_check_floats(p, 2, "weights", &err), MDFI_ERR_WEIGHTS, &err, path,
           "is a quantized weights file", "check_floats on qweights");
    expect(mdfi_params_finish(p, &err), MDFI_ERR_WEIGHTS, &err, path,
           "is a quantized weights file", "finish on qweights");
    CHECK(mdfi_params_bytes_left(p) == -1 && !mdfi_params_transposed(p), "darknet values");
    /* arrays asked of a GEMM record, or of a layer without a record */
    expect(mdfi_params_read_array(p, 0, "thresh", MDFI_QW_FLOAT32, 3, fl, &err),
           MDFI_ERR_WEIGHTS, &err, path, "holds GEMM weights", "array of a GEMM record");
    expect(mdfi_params_read_array(p, 1, "thresh", MDFI_QW_FLOAT32, 3, fl, &err),
           MDFI_ERR_WEIGHTS, &err, path, "no record for layer 1", "array of no record");
    mdfi_params_close(p);

    /* the old API reads the same file */
    mdfi_qweights *q = NULL;
    CHECK(mdfi_qweights_open(path, &q, &err) == MDFI_OK && q->version == 1 && q->n_rec == 2,
          "mdfi_qweights_open v1: %s", err.msg);
    mdfi_qweights_free(q);
}

static void test_v2(void)
{
    buf b;
    v2_file(&b);
    const char *path = save("v2.qweights", b.d, b.n);
    mdfi_params *p = open_ok(path);
    if (!p)
        return;
    mdfi_errbuf err = {""};
    const mdfi_qrecord *r1 = mdfi_params_record(p, 1);
    CHECK(r1 && r1->kind == MDFI_QW_ARRAYS && r1->outputs == 5 && r1->arrays &&
          !strcmp(r1->arrays[0].name, "thresh") && r1->arrays[0].dtype == MDFI_QW_FLOAT32 &&
          r1->arrays[1].count == 5 && !strcmp(r1->arrays[4].name, "empty_0") &&
          r1->arrays[4].count == 0, "v2 array index");
    float t[3];
    int8_t g[5];
    int16_t ix[3];
    int32_t a[2];
    mdfi_params_at(p, 1, "exit");
    /* out of file order on purpose */
    CHECK(mdfi_params_read_array(p, 1, "acc", MDFI_QW_INT32, 2, a, &err) == MDFI_OK &&
          !memcmp(a, acc, sizeof acc), "v2 acc: %s", err.msg);
    CHECK(mdfi_params_read_array(p, 1, "thresh", MDFI_QW_FLOAT32, 3, t, &err) == MDFI_OK &&
          !memcmp(t, thresh, sizeof thresh), "v2 thresh: %s", err.msg);
    CHECK(mdfi_params_read_array(p, 1, "gate", MDFI_QW_INT8, 5, g, &err) == MDFI_OK &&
          !memcmp(g, gate, sizeof gate), "v2 gate: %s", err.msg);
    CHECK(mdfi_params_read_array(p, 1, "idx", MDFI_QW_INT16, 3, ix, &err) == MDFI_OK &&
          !memcmp(ix, idx, sizeof idx), "v2 idx: %s", err.msg);
    CHECK(mdfi_params_read_array(p, 1, "empty_0", MDFI_QW_INT8, 0, NULL, &err) == MDFI_OK,
          "v2 empty: %s", err.msg);
    int32_t bias[2];
    int8_t w8[6];
    const mdfi_qrecord *r0 = mdfi_params_record(p, 0);
    CHECK(r0 && mdfi_params_read_gemm(p, r0, bias, w8, NULL, NULL, &err) == MDFI_OK &&
          !memcmp(w8, w0, sizeof w0), "v2 gemm: %s", err.msg);
    /* asked wrongly: each names the file, the layer and the array */
    expect(mdfi_params_read_array(p, 1, "thresh", MDFI_QW_INT32, 3, t, &err), MDFI_ERR_WEIGHTS,
           &err, path, "layer 1 [exit]: array \"thresh\" is float32, asked for as int32",
           "wrong dtype");
    expect(mdfi_params_read_array(p, 1, "thresh", MDFI_QW_FLOAT32, 4, t, &err),
           MDFI_ERR_WEIGHTS, &err, path, "\"thresh\" has 3 values, asked for 4", "wrong count");
    expect(mdfi_params_read_array(p, 1, "nope", MDFI_QW_FLOAT32, 3, t, &err), MDFI_ERR_WEIGHTS,
           &err, path, "layer 1 [exit] has no array \"nope\" (it has thresh, gate", "wrong name");
    expect(mdfi_params_read_gemm(p, r1, bias, w8, NULL, NULL, &err), MDFI_ERR_WEIGHTS, &err,
           path, "not GEMM weights", "gemm of an arrays record");
    mdfi_qrecord fake = *r0;
    CHECK(mdfi_params_read_gemm(p, &fake, bias, w8, NULL, NULL, &err) == MDFI_ERR_ARG,
          "a record not of this file");
    mdfi_params_close(p);
}

static void test_darknet(void)
{
    buf b;
    darknet_file(&b, 2, 0);
    const char *path = save("net.weights", b.d, b.n);
    mdfi_params *p = open_ok(path);
    if (!p)
        return;
    mdfi_errbuf err = {""};
    float f[10];
    CHECK(mdfi_params_kind_of(p) == MDFI_PARAMS_DARKNET && mdfi_params_bytes_left(p) == 40 &&
          !mdfi_params_transposed(p) && mdfi_params_layers(p) == -1 &&
          mdfi_params_records(p) == 0 && !mdfi_params_record(p, 0), "darknet basics");
    mdfi_params_at(p, 0, "convolutional");
    CHECK(mdfi_params_floats(p, f, 4, "biases", &err) == MDFI_OK && !memcmp(f, floats, 16) &&
          mdfi_params_bytes_left(p) == 24, "darknet read 4: %s", err.msg);
    mdfi_params_at(p, 1, "connected");
    expect(mdfi_params_check_floats(p, 7, "weights", &err), MDFI_ERR_WEIGHTS, &err, path,
           "too short: ran out at layer 1 (connected) reading weights: needed 7 floats, 6 left",
           "check_floats past the end");
    CHECK(mdfi_params_check_floats(p, 6, "weights", &err) == MDFI_OK, "check_floats 6");
    expect(mdfi_params_read_array(p, 1, "x", MDFI_QW_INT8, 1, f, &err), MDFI_ERR_WEIGHTS, &err,
           path, "is a Darknet weights file", "array of darknet");
    expect(mdfi_params_read_gemm(p, NULL, NULL, NULL, NULL, NULL, &err), MDFI_ERR_WEIGHTS, &err,
           path, "is a Darknet weights file", "gemm of darknet");
    CHECK(mdfi_params_floats(p, f, 6, "weights", &err) == MDFI_OK &&
          !memcmp(f, floats + 4, 24) && mdfi_params_finish(p, &err) == MDFI_OK,
          "darknet rest: %s", err.msg);
    expect(mdfi_params_floats(p, f, 1, "scales", &err), MDFI_ERR_WEIGHTS, &err, path,
           "ran out at layer 1 (connected) reading scales: needed 1 floats, 0 left",
           "darknet past the end");
    mdfi_params_close(p);

    darknet_file(&b, 1001, 8);   /* transposed, two floats too many */
    path = save("long.weights", b.d, b.n);
    if (!(p = open_ok(path)))
        return;
    CHECK(mdfi_params_transposed(p) && mdfi_params_floats(p, f, 10, "w", &err) == MDFI_OK,
          "transposed");
    expect(mdfi_params_finish(p, &err), MDFI_ERR_WEIGHTS, &err, path, "too long for the cfg: 8 "
           "bytes left", "darknet too long");
    mdfi_params_close(p);

    expect_open_fails("short.weights", &(buf){.n = 5}, "too short for a Darknet weights header");
}

static void test_bad_files(void)
{
    buf b, c;
    mdfi_params *p = NULL;
    mdfi_errbuf err = {""};
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.qweights", dir);
    expect(mdfi_params_open(missing, &p, &err), MDFI_ERR_IO, &err, missing, "cannot open",
           "missing file");

    v1_file(&b);
    c = b;
    c.n = b.n / 2;
    expect_open_fails("truncated.qweights", &c, "truncated");
    c = b;
    c.d[60] ^= 1;
    expect_open_fails("crc.qweights", &c, "checksum mismatch");
    c = b;
    set32(&c, 8, 3);
    c.n -= 4;
    finish_file(&c);
    expect_open_fails("v3.qweights", &c, "version 3 is not supported");

    v2_file_with(&b, "idx", 9, 1);
    expect_open_fails("dtype.qweights", &b, "layer 1: array \"gate\" has unknown dtype 9");
    v2_file_with(&b, "gate", 1, 1);
    expect_open_fails("dup.qweights", &b, "layer 1: two arrays called \"gate\"");
    v2_file_with(&b, "bad-name", 1, 1);
    expect_open_fails("name.qweights", &b, "layer 1: array 2 has a bad name");
    v2_file_with(&b, "idx", 1, 7);
    expect_open_fails("range.qweights", &b, "record 1 is for layer 7, but the file is for 3 "
                      "layers");
    v2_file_with(&b, "idx", 1, 0);
    expect_open_fails("twice.qweights", &b, "two records for layer 0");

    v2_file(&b);   /* a version-1 file may not have arrays */
    set32(&b, 8, 1);
    b.n -= 4;
    finish_file(&b);
    expect_open_fails("v1arrays.qweights", &b, "needs file version 2");

    /* the arrays and the payload size disagree: 4 bytes more, or fewer arrays */
    header(&b, 2, 2, 1);
    size_t at = record(&b, 1, 3, 2, 0, 0, fmt0, 0);
    array(&b, "gate", 1, 5, gate, sizeof gate);
    array(&b, "acc", 3, 2, acc, sizeof acc);
    u32(&b, 0);
    end_record(&b, at);
    finish_file(&b);
    expect_open_fails("extra.qweights", &b, "the arrays take 96 bytes but the record's payload "
                      "is 100");
    static const int8_t zeros[100];
    header(&b, 2, 2, 1);
    at = record(&b, 1, 3, 2, 0, 0, fmt0, 0);   /* 2 arrays, the bytes of one */
    array(&b, "big", 1, 100, zeros, sizeof zeros);
    end_record(&b, at);
    finish_file(&b);
    expect_open_fails("fewer.qweights", &b, "the record says 2 arrays but its 140 payload bytes "
                      "end before array 1");
    header(&b, 2, 2, 1);
    at = record(&b, 1, 3, 1, 0, 0, fmt0, 0);
    array(&b, "acc", 3, 3, acc, sizeof acc);   /* says 3 int32, holds 2 */
    end_record(&b, at);
    finish_file(&b);
    expect_open_fails("past.qweights", &b, "array \"acc\" (3 int32) runs past");
    header(&b, 2, 2, 1);
    at = record(&b, 1, 3, 1, 4, 0, fmt0, 0);   /* K must be 0 */
    array(&b, "acc", 3, 2, acc, sizeof acc);
    end_record(&b, at);
    finish_file(&b);
    expect_open_fails("arraysk.qweights", &b, "layer 1: bad array record");
    header(&b, 1, 1, 1);
    at = record(&b, 0, 1, 1, 1, 1, (const signed char[6]){8, 0, 12, 0, 8, 0}, 0);
    u32(&b, 0); u32(&b, 0);
    end_record(&b, at);
    finish_file(&b);
    expect_open_fails("wbits.qweights", &b, "bad record 0 (layer 0)");
}

/* ---- dump mode ------------------------------------------------------------ */

static int dump(const char *path)
{
    mdfi_params *p;
    mdfi_errbuf err = {""};
    if (mdfi_params_open(path, &p, &err) != MDFI_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < mdfi_params_records(p); ++i) {
        const mdfi_qrecord *r = mdfi_params_record_at(p, i);
        printf("record %d %d %d %d %d\n", r->layer, r->kind, r->outputs, r->k, r->groups);
        for (int j = 0; r->kind == MDFI_QW_ARRAYS && j < r->outputs; ++j) {
            const mdfi_qarray *a = &r->arrays[j];
            union { int8_t i8[1]; int16_t i16[1]; int32_t i32[1]; float f[1]; } *v =
                malloc(a->count * 4 + 4);
            if (!v || mdfi_params_read_array(p, r->layer, a->name, a->dtype, a->count, v,
                                             &err) != MDFI_OK) {
                fprintf(stderr, "%s\n", v ? err.msg : "out of memory");
                free(v);
                rc = 1;
                break;
            }
            printf("array %d %s %s %zu", r->layer, a->name, mdfi_qarray_dtype_name(a->dtype),
                   a->count);
            for (size_t k = 0; k < a->count; ++k) {
                if (a->dtype == MDFI_QW_INT8) printf(" %d", v->i8[k]);
                else if (a->dtype == MDFI_QW_INT16) printf(" %d", v->i16[k]);
                else if (a->dtype == MDFI_QW_INT32) printf(" %ld", (long)v->i32[k]);
                else printf(" %.9g", (double)v->f[k]);
            }
            printf("\n");
            free(v);
        }
    }
    mdfi_params_close(p);
    return rc;
}

static const char *const files[] = {
    "v1.qweights", "v2.qweights", "net.weights", "long.weights", "short.weights",
    "truncated.qweights", "crc.qweights", "v3.qweights", "dtype.qweights", "dup.qweights",
    "name.qweights", "range.qweights", "twice.qweights", "v1arrays.qweights",
    "extra.qweights", "fewer.qweights", "past.qweights", "arraysk.qweights", "wbits.qweights"};

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "dump"))
        return dump(argv[2]);
    /* --quick (as every driver takes; this one is always quick): a temporary folder */
    int own = argc < 2 || !strcmp(argv[1], "--quick");
    if (own) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/test_params.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 2;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    }
    test_v1();
    test_v2();
    test_darknet();
    test_bad_files();
    if (own) {
        char path[1024];
        for (size_t i = 0; i < sizeof files / sizeof *files; ++i) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            remove(path);
        }
        rmdir(dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
