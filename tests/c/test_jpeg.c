/* Test driver for the JPEG decoder, run by tests/test_jpeg.py.
 *   test_jpeg decode IN OUT.pnm     decodes IN (any format the C core reads) to a
 *                                   binary PPM/PGM of the decoder's 8-bit pixels;
 *                                   prints "w h c decoder"
 *   test_jpeg time IN RUNS          decodes IN (in memory) RUNS times; prints the
 *                                   median milliseconds
 *   test_jpeg fuzz [--seconds S] [--iters N] [--seed N] FILE...
 *                                   mutation fuzzing seeded with FILEs: every
 *                                   mutant must decode or fail with a message
 *                                   (run it under ASan/UBSan); prints the count
 *   test_jpeg [--quick]             self-test: built-in JPEGs decode to known
 *                                   pixels, then a short fuzz run over them
 * Errors go to stderr with exit status 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mdfi.h"
#include "io/jpeg.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *bigger = realloc(buf, cap *= 2);
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    fclose(f);
    if (!buf)
        fprintf(stderr, "%s: out of memory\n", path);
    *size = n;
    return buf;
}

static int cmd_decode(const char *in, const char *out)
{
    size_t size;
    unsigned char *data = read_file(in, &size);
    if (!data)
        return 1;
    unsigned char *px;
    int w, h, c;
    mdfi_errbuf err;
    mdfi_status st = mdfi_image_decode_pixels(data, size, in, &px, &w, &h, &c, &err);
    const char *dec = mdfi_image_sniff(data, size);
    free(data);
    if (st != MDFI_OK) {
        fprintf(stderr, "decode: %s: %s\n", mdfi_status_name(st), err.msg);
        return 1;
    }
    printf("%d %d %d %s\n", w, h, c, dec ? dec : "?");
    FILE *f = fopen(out, "wb");
    size_t n = (size_t)w * h * c;
    int ok = f && fprintf(f, "P%c\n%d %d\n255\n", c == 3 ? '6' : '5', w, h) > 0 &&
             fwrite(px, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    mdfi_pixels_free(px);
    if (!ok) {
        fprintf(stderr, "%s: cannot write\n", out);
        return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_time(const char *in, int runs)
{
    size_t size;
    unsigned char *data = read_file(in, &size);
    if (!data || runs < 1 || runs > 10000)
        return 1;
    double *ms = malloc(sizeof *ms * (size_t)runs);
    int rc = 0;
    for (int i = 0; i < runs && !rc; i++) {
        unsigned char *px;
        int w, h, c;
        mdfi_errbuf err;
        double t0 = now_ms();
        if (mdfi_image_decode_pixels(data, size, in, &px, &w, &h, &c, &err) != MDFI_OK) {
            fprintf(stderr, "decode: %s\n", err.msg);
            rc = 1;
            break;
        }
        ms[i] = now_ms() - t0;
        mdfi_pixels_free(px);
    }
    if (!rc) {
        qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
        printf("%.3f\n", ms[runs / 2]);
    }
    free(ms);
    free(data);
    return rc;
}

/* ---- fuzzing ----------------------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng;

static uint64_t next(rng *r)   /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t below(rng *r, size_t n)
{
    return n ? (size_t)(next(r) % n) : 0;
}

/* Values that tend to reach edge cases in lengths, sizes and codes. */
static const unsigned char interesting[] = {0x00, 0x01, 0x02, 0x07, 0x08, 0x0F, 0x10, 0x11,
                                            0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xC2, 0xC4, 0xD0,
                                            0xD8, 0xD9, 0xDA, 0xDB, 0xDD, 0xFE, 0xFF};

/* One mutant of seed in buf (capacity cap); returns its size. */
static size_t mutate(rng *r, const unsigned char *seed, size_t n, unsigned char *buf,
                     size_t cap)
{
    if (n > cap)
        n = cap;
    memcpy(buf, seed, n);
    int edits = 1 + (int)below(r, 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = below(r, n);
        /* Headers are where the checks are: bias half the edits to the first 1 KB. */
        if (next(r) & 1)
            at = below(r, n < 1024 ? n : 1024);
        switch (below(r, 7)) {
        case 0: buf[at] ^= (unsigned char)(1u << below(r, 8)); break;
        case 1: buf[at] = (unsigned char)next(r); break;
        case 2: buf[at] = interesting[below(r, sizeof interesting)]; break;
        case 3: n = at + 1; break;                          /* truncate */
        case 4: {                                           /* delete a run */
            size_t len = 1 + below(r, 16);
            if (at + len > n)
                len = n - at;
            memmove(buf + at, buf + at + len, n - at - len);
            n -= len;
            break;
        }
        case 5: {                                           /* duplicate a run */
            size_t len = 1 + below(r, 64);
            if (at + len > n)
                len = n - at;
            if (n + len <= cap) {
                memmove(buf + at + len, buf + at, n - at);
                n += len;
            }
            break;
        }
        default:                                            /* 16-bit field */
            if (at + 1 < n) {
                unsigned v = (unsigned)(below(r, 3) == 0 ? 0xFFFF : below(r, 3) == 0 ? 0 :
                                        next(r) & 0xFFFF);
                buf[at] = (unsigned char)(v >> 8);
                buf[at + 1] = (unsigned char)v;
            }
            break;
        }
    }
    return n;
}

typedef struct {
    const unsigned char *data;
    size_t size;
} seed_t;

/* Small pixel cap: mutated sizes would otherwise ask for gigabytes. */
#define FUZZ_MAX_PIXELS (1L << 22)

static int fuzz(const seed_t *seeds, int nseeds, double seconds, long iters, uint64_t seed)
{
    size_t cap = 0;
    for (int i = 0; i < nseeds; i++)
        if (seeds[i].size > cap)
            cap = seeds[i].size;
    cap += 4096;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 1;
    rng r = {seed};
    double t0 = now_ms();
    long n = 0, ok = 0;
    for (; (iters <= 0 || n < iters) && now_ms() - t0 < seconds * 1e3; n++) {
        const seed_t *s = &seeds[below(&r, (size_t)nseeds)];
        size_t len = mutate(&r, s->data, s->size, buf, cap);
        unsigned char *px = NULL;
        int w, h, c;
        mdfi_errbuf err;
        err.msg[0] = 0;
        mdfi_status st = mdfi_jpeg_decode_mem(buf, len, "fuzz", FUZZ_MAX_PIXELS, &px, &w, &h,
                                              &c, &err);
        if (st == MDFI_OK) {
            ok++;
            if (!px || w < 1 || h < 1 || (c != 1 && c != 3)) {
                fprintf(stderr, "fuzz: success without an image\n");
                free(buf);
                return 1;
            }
            free(px);
        } else if (!err.msg[0] || strncmp(err.msg, "fuzz: ", 6) != 0) {
            fprintf(stderr, "fuzz: failure without a message (status %d): '%s'\n", st,
                    err.msg);
            free(buf);
            return 1;
        }
    }
    printf("fuzz: %ld inputs in %.1f s (%ld decoded, %ld refused)\n", n,
           (now_ms() - t0) / 1e3, ok, n - ok);
    free(buf);
    return 0;
}

static int cmd_fuzz(int argc, char **argv)
{
    double seconds = 10;
    long iters = 0;
    uint64_t seed = 1;
    seed_t *seeds = calloc((size_t)argc + 1, sizeof *seeds);
    int nseeds = 0, rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            unsigned char *d = read_file(argv[i], &seeds[nseeds].size);
            if (!d)
                rc = 1;
            seeds[nseeds++].data = d;
        }
    }
    if (!rc && nseeds == 0) {
        fprintf(stderr, "fuzz: no seed files\n");
        rc = 1;
    }
    if (!rc)
        rc = fuzz(seeds, nseeds, seconds, iters, seed);
    for (int i = 0; i < nseeds; i++)
        free((void *)seeds[i].data);
    free(seeds);
    return rc;
}

/* ---- self-test ------------------------------------------------------------------ */

#include "test_jpeg_seeds.h"

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The SIMD IDCT (SSE2 / NEON, where built) against the plain C one, on
 * typical, sparse and full-range 16-bit coefficients. */
static int idct_check(long blocks)
{
    rng r = {7};
    long bad = 0;
    for (long i = 0; i < blocks; i++) {
        int16_t blk[64];
        int kind = (int)(i % 3);
        for (int k = 0; k < 64; k++) {
            uint64_t x = next(&r);
            if (kind == 0)
                blk[k] = (int16_t)((int)(x % 512) - 256) / (1 + k / 4);
            else if (kind == 1)
                blk[k] = (x & 7) == 0 ? (int16_t)((int)(x >> 8) % 2048 - 1024) : 0;
            else
                blk[k] = (int16_t)(uint16_t)(x >> 16);
        }
        unsigned char a[64], b[64];
        mdfi_jpeg_idct(blk, 63, a, 8);
        mdfi_jpeg_idct_scalar(blk, b, 8);
        bad += memcmp(a, b, 64) != 0;
    }
    printf("%s idct: %ld of %ld blocks differ from the plain C transform\n", bad ? "FAIL" : "ok  ",
           bad, blocks);
    return bad != 0;
}

/* The SIMD colour conversion against the plain C one on every (Y, Cb, Cr). */
static int color_check(void)
{
    enum { N = 256 * 256 };
    static unsigned char y[N], cb[N], cr[N], a[3 * N], b[3 * N];
    long bad = 0;
    for (int i = 0; i < N; i++) {
        cb[i] = (unsigned char)(i >> 8);
        cr[i] = (unsigned char)i;
    }
    for (int v = 0; v < 256; v++) {
        memset(y, v, N);
        mdfi_jpeg_ycc_rgb(a, y, cb, cr, N - 3);   /* odd length: the scalar tail too */
        mdfi_jpeg_ycc_rgb_scalar(b, y, cb, cr, N - 3);
        bad += memcmp(a, b, 3 * (N - 3)) != 0;
    }
    printf("%s colour: %ld of 256 luma levels differ from the plain C conversion\n",
           bad ? "FAIL" : "ok  ", bad);
    return bad != 0;
}

static int self_test(int quick)
{
    int failed = idct_check(quick ? 30000 : 300000) + color_check();
    seed_t seeds[sizeof builtin / sizeof builtin[0]];
    int n = (int)(sizeof builtin / sizeof builtin[0]);
    for (int i = 0; i < n; i++) {
        const builtin_jpeg *b = &builtin[i];
        unsigned char *px;
        int w, h, c;
        mdfi_errbuf err;
        mdfi_status st = mdfi_image_decode_pixels(b->data, b->size, b->name, &px, &w, &h, &c,
                                                  &err);
        if (st != MDFI_OK) {
            printf("FAIL %s: %s\n", b->name, err.msg);
            failed++;
        } else {
            uint32_t hash = fnv1a(px, (size_t)w * h * c);
            int good = w == b->w && h == b->h && c == b->c && hash == b->fnv;
            printf("%s %s: %dx%dx%d fnv %08x\n", good ? "ok  " : "FAIL", b->name, w, h, c,
                   (unsigned)hash);
            failed += !good;
            mdfi_pixels_free(px);
        }
        seeds[i].data = b->data;
        seeds[i].size = b->size;
    }
    if (fuzz(seeds, n, quick ? 5 : 30, 0, 12345))
        failed++;
    printf("%d passed, %d failed\n", n + 3 - failed, failed);
    return failed != 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "decode"))
        return cmd_decode(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "time"))
        return cmd_time(argv[2], atoi(argv[3]));
    if (argc >= 2 && !strcmp(argv[1], "fuzz"))
        return cmd_fuzz(argc - 2, argv + 2);
    if (argc == 1 || (argc == 2 && !strcmp(argv[1], "--quick")))
        return self_test(argc == 2);
    fprintf(stderr, "usage: test_jpeg decode IN OUT | time IN RUNS | fuzz [opts] FILE... | "
                    "[--quick]\n");
    return 2;
}
