/* What the C drivers of the integer-stream layers share
 * (tests/c/test_dualpath.c, tests/c/test_fracconv.c): pass / fail counting,
 * a network from cfg text, every layer's output, a temporary weights file of
 * pseudo-random floats, the quick run's summary and the file mode
 *
 *   NAME CFG WEIGHTS INPUT.f32 OUT.f32 [--binary-kernel K] [--threads N]
 *
 * that writes every layer's output, float32 in layer order, to OUT.f32 and
 * prints "binary K" and "ok" (the Python tests compare them with the numpy
 * references).  Included by one driver each, so everything is static. */
#ifndef MDFI_TESTS_DP_DRIVER_H
#define MDFI_TESTS_DP_DRIVER_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mdfi.h"

static int n_pass, n_fail;

static void check(int ok, const char *what)
{
    if (ok) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL %s\n", what);
    }
}

/* A network from cfg text (and a weights file); NULL on failure, with the
 * status in *st and the message in msg. */
static mdfi_net *open_net(const char *cfg, const char *weights, const char *bk, int threads,
                          mdfi_status *st, char *msg, size_t msg_len)
{
    mdfi_net *net;
    if (mdfi_net_new(&net) != MDFI_OK)
        return NULL;
    mdfi_options opt;
    mdfi_options_default(&opt);
    opt.threads = threads;
    opt.binary_kernel = bk;
    opt.keep_outputs = 1;
    *st = mdfi_net_load_cfg_text(net, cfg, "driver.cfg");
    if (*st == MDFI_OK && weights)
        *st = mdfi_net_load_weights(net, weights);
    if (*st == MDFI_OK)
        *st = mdfi_net_set_options(net, &opt);
    if (*st == MDFI_OK)
        *st = mdfi_net_prepare(net);
    if (*st != MDFI_OK) {
        if (msg)
            snprintf(msg, msg_len, "%s", mdfi_net_last_error(net));
        mdfi_net_free(net);
        return NULL;
    }
    return net;
}

/* Every layer's output after one forward, concatenated (malloc'd); NULL if
 * the network does not build (a variant this CPU lacks: not a failure). */
static float *run_all(const char *cfg, const char *weights, const char *bk, int threads,
                      const float *x, size_t n_in, size_t *total)
{
    mdfi_status st;
    char msg[512];
    mdfi_net *net = open_net(cfg, weights, bk, threads, &st, msg, sizeof msg);
    if (!net) {
        if (st != MDFI_ERR_UNSUPPORTED)
            printf("FAIL %s: %s\n", bk, msg), ++n_fail;
        return NULL;
    }
    float *all = NULL;
    *total = 0;
    if (mdfi_net_forward(net, x, n_in) == MDFI_OK) {
        for (int i = 0; i < mdfi_net_num_layers(net); ++i) {
            const float *d;
            size_t cnt;
            if (mdfi_net_layer_output(net, i, &d, &cnt) != MDFI_OK)
                break;
            float *grown = realloc(all, (*total + cnt) * sizeof *all);
            if (!grown)
                break;
            all = grown;
            memcpy(all + *total, d, cnt * sizeof *all);
            *total += cnt;
        }
    }
    mdfi_net_free(net);
    return all;
}

static const char *const all_kinds[] = {"ref", "popcnt", "avx2", "avx512vpopcnt", "neon"};

/* Every binary kernel variant this build and CPU run, 1 and 3 threads, gives
 * the bits of ref (n_ref floats); prints "KIND ok" for each that ran. */
static void variants_match(const char *cfg, const char *weights, const float *x, size_t n_in,
                           const float *ref, size_t n_ref)
{
    for (size_t v = 0; v < sizeof all_kinds / sizeof all_kinds[0]; ++v) {
        int ran = 0, same = 1;
        for (int threads = 1; threads <= 3; threads += 2) {
            size_t n = 0;
            float *got = run_all(cfg, weights, all_kinds[v], threads, x, n_in, &n);
            if (!got)
                continue;
            ran = 1;
            same &= n == n_ref && !memcmp(got, ref, n * sizeof *got);
            free(got);
        }
        if (ran) {
            check(same, all_kinds[v]);
            if (same)
                printf("%s ok\n", all_kinds[v]);
        }
    }
}

static uint32_t rng_state = 12345;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng_state >> 8) / 16777216.f;
}

static int put(FILE *f, float v)
{
    return fwrite(&v, sizeof v, 1, f) == 1;
}

/* A new temporary weights file (path, 64 bytes) with its header written. */
static FILE *weights_file(char *path, const char *name)
{
    snprintf(path, 64, "/tmp/mdfi_%s_XXXXXX", name);
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    const int32_t head[3] = {0, 2, 0};
    const uint64_t seen = 0;
    if (f && (fwrite(head, sizeof head, 1, f) != 1 || fwrite(&seen, sizeof seen, 1, f) != 1)) {
        fclose(f);
        return NULL;
    }
    return f;
}

/* Opens the network of a cfg whose weights break one rule and checks that it
 * fails with MDFI_ERR_WEIGHTS and a message containing needle. */
static void refused(const char *cfg, const char *path, const char *needle)
{
    char msg[512] = "";
    mdfi_status st = MDFI_OK;
    mdfi_net *net = open_net(cfg, path, NULL, 2, &st, msg, sizeof msg);
    check(!net && st == MDFI_ERR_WEIGHTS && strstr(msg, needle), needle);
    if (net || !strstr(msg, needle))
        printf("  got: %s\n", msg);
    mdfi_net_free(net);
}

/* One weights file per case, written by write(path, breaks[i]); each must
 * be refused with needles[i]. */
static void refusal_cases(const char *cfg, int (*write)(char *path, int b), const int *breaks,
                          const char *const *needles, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char path[64];
        if (!write(path, breaks[i])) {
            check(0, "write weights");
            continue;
        }
        refused(cfg, path, needles[i]);
        unlink(path);
    }
}

static int summary(void)
{
    printf("%d passed, %d failed\n", n_pass, n_fail);
    if (!n_fail)
        printf("ok\n");
    return n_fail != 0;
}

/* The file mode; quick() for --quick.  Returns the exit status. */
static int driver_main(int argc, char **argv, const char *name, int (*quick)(void))
{
    const char *pos[4] = {0}, *bk = NULL;
    int n_pos = 0, threads = 1;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick"))
            return quick();
        if (!strcmp(argv[i], "--binary-kernel") && i + 1 < argc)
            bk = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (n_pos < 4)
            pos[n_pos++] = argv[i];
    }
    if (n_pos != 4) {
        fprintf(stderr, "usage: %s CFG WEIGHTS INPUT.f32 OUT.f32 [--binary-kernel K] "
                        "[--threads N] | --quick\n", name);
        return 2;
    }
    mdfi_net *net;
    mdfi_options opt;
    mdfi_options_default(&opt);
    opt.threads = threads;
    opt.binary_kernel = bk;
    opt.keep_outputs = 1;
    if (mdfi_net_new(&net) != MDFI_OK)
        return 1;
    if (mdfi_net_load_cfg(net, pos[0]) != MDFI_OK || mdfi_net_load_weights(net, pos[1]) != MDFI_OK ||
        mdfi_net_set_options(net, &opt) != MDFI_OK || mdfi_net_prepare(net) != MDFI_OK) {
        fprintf(stderr, "%s: %s\n", name, mdfi_net_last_error(net));
        mdfi_net_free(net);
        return 1;
    }
    size_t n = mdfi_net_input_size(net);
    float *x = malloc(n * sizeof *x);
    FILE *f = fopen(pos[2], "rb");
    size_t got = f && x ? fread(x, sizeof *x, n, f) : 0;
    if (f)
        fclose(f);
    FILE *o = got == n ? fopen(pos[3], "wb") : NULL;
    int ok = o && mdfi_net_forward(net, x, n) == MDFI_OK;
    for (int i = 0; ok && i < mdfi_net_num_layers(net); ++i) {
        const float *d;
        size_t cnt;
        ok = mdfi_net_layer_output(net, i, &d, &cnt) == MDFI_OK &&
             fwrite(d, sizeof *d, cnt, o) == cnt;
    }
    ok = o && fclose(o) == 0 && ok;
    free(x);
    if (!ok) {
        fprintf(stderr, "%s: %s\n", name, mdfi_net_last_error(net));
        mdfi_net_free(net);
        return 1;
    }
    printf("binary %s\n", bk ? bk : "auto");
    printf("ok\n");
    mdfi_net_free(net);
    return 0;
}

#endif
