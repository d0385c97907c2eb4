/* The [dualpath] layer through the public API (docs/dualpath.md).
 *
 *   test_dualpath CFG WEIGHTS INPUT.f32 OUT.f32 [--binary-kernel K] [--threads N]
 *       runs the network with keep_outputs; writes every layer's output,
 *       float32 in layer order, to OUT.f32; prints "binary K" and "ok"
 *       (tests/test_dualpath.py compares them with the numpy reference)
 *   test_dualpath --quick
 *       - a hand-computed example without weights (unit BN, range 1);
 *       - a built-in network (65 / 130 channels, 1 and 1.5 bits, stride 2,
 *         tiling, maxpool, route) with pseudo-random parameters written to a
 *         temporary weights file: every binary kernel variant this build and
 *         CPU run, 1 and 3 threads, gives the same bits as ref on 1 thread,
 *         and every output is an integer within +-2^24;
 *       - refused parameters (range 0, a negative variance, |B| >= 2^24) and
 *         a short file fail with MDFI_ERR_WEIGHTS and free everything
 *         (run under ASan by MDFI_SANITIZE=1). */
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
 * status in *st and the message printed unless quiet. */
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
    *st = mdfi_net_load_cfg_text(net, cfg, "dualpath.cfg");
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

/* ---- the hand-computed example -------------------------------------------------- */

static void hand_example(void)
{
    /* no weights: weights 0 (-> -1), shift 0, A = 1/(1 + 1e-6), B = 0, so
     * r = -a and z = rint(x) - a with a = x > 0 ? +1 : -1 */
    static const char cfg[] = "[net]\nwidth=3\nheight=3\nchannels=1\n"
                              "[dualpath]\nfilters=2\nsize=1\n";
    const float x[9] = {-4, -2.5f, -1, 0, 0.5f, 1, NAN, 2.5f, 1e30f};
    const float want[9] = {-3, -1, 0, 1, -1, 0, 1, 1, 16777215.f};
    mdfi_status st;
    mdfi_net *net = open_net(cfg, NULL, NULL, 1, &st, NULL, 0);
    check(net != NULL, "hand example builds");
    if (!net)
        return;
    const float *y;
    size_t n;
    int ok = mdfi_net_forward(net, x, 9) == MDFI_OK && mdfi_net_output(net, &y, &n) == MDFI_OK &&
             n == 18;
    for (int i = 0; ok && i < 18; ++i)
        ok = y[i] == want[i % 9];
    check(ok, "hand example values");
    mdfi_net_free(net);
}

/* ---- a network with pseudo-random parameters ---------------------------------------- */

static const char quick_cfg[] =
    "[net]\nwidth=7\nheight=5\nchannels=65\n"
    "[dualpath]\nfilters=65\nsize=3\npad=1\nabits=1.5\n"
    "[dualpath]\nfilters=130\nsize=1\nabits=1\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[route]\nlayers=1\n"
    "[dualpath]\nfilters=130\nsize=3\nstride=2\npad=1\nabits=1.5\nfrom=2\n"
    "[dualpath]\nfilters=130\nsize=3\npad=1\nabits=1\n";

typedef struct {
    int M, C, k, ternary;
} dp_shape;

static const dp_shape quick_layers[] = {{65, 65, 3, 1}, {130, 65, 1, 0}, {130, 130, 3, 1},
                                        {130, 130, 3, 0}};

static uint32_t rng_state = 12345;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng_state >> 8) / 16777216.f;
}

/* What a test breaks in the parameters of the first layer. */
typedef enum { BREAK_NONE, BREAK_RANGE, BREAK_VAR, BREAK_B, BREAK_SHORT } breakage;

static int put(FILE *f, float v)
{
    return fwrite(&v, sizeof v, 1, f) == 1;
}

/* Writes the quick network's weights to a new temporary file (path). */
static int write_weights(char *path, breakage b)
{
    strcpy(path, "/tmp/mdfi_dualpath_XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f)
        return 0;
    const int32_t head[3] = {0, 2, 0};
    const uint64_t seen = 0;
    int ok = fwrite(head, sizeof head, 1, f) == 1 && fwrite(&seen, sizeof seen, 1, f) == 1;
    for (size_t i = 0; i < sizeof quick_layers / sizeof quick_layers[0]; ++i) {
        const dp_shape *s = &quick_layers[i];
        const int first = i == 0;
        for (int m = 0; m < s->M; ++m)   /* biases */
            ok &= put(f, first && b == BREAK_B && m == 3 ? 1e9f : uniform(-4, 4));
        for (int m = 0; m < s->M; ++m)   /* scales */
            ok &= put(f, uniform(-2.5f, 2.5f));
        for (int m = 0; m < s->M; ++m)   /* rolling_mean */
            ok &= put(f, uniform(-3, 3));
        for (int m = 0; m < s->M; ++m)   /* rolling_variance */
            ok &= put(f, first && b == BREAK_VAR && m == 7 ? -1.f : uniform(0.05f, 4));
        for (long j = 0; j < (long)s->M * s->C * s->k * s->k; ++j)
            ok &= put(f, uniform(-1, 1));
        for (int c = 0; c < s->C; ++c)   /* shift: halves, so some inputs hit it */
            ok &= put(f, floorf(uniform(-4, 5)) / 2);
        if (s->ternary)
            ok &= put(f, 0.5f);
        if (!(first && b == BREAK_SHORT))
            ok &= put(f, first && b == BREAK_RANGE ? 0.f : uniform(0.3f, 3));
    }
    return fclose(f) == 0 && ok;
}

static void quick_input(float *x, size_t n)
{
    static const float special[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 2.5f, -2.5f, 0.5f};
    for (size_t i = 0; i < n; ++i) {
        x[i] = floorf(uniform(-8, 9)) / 2;
        if (uniform(0, 1) < 0.08f)
            x[i] = special[(size_t)uniform(0, 8) % 8];
    }
}

/* Every layer's output, concatenated; NULL if the variant does not run here. */
static float *run_all(const char *weights, const char *bk, int threads, const float *x,
                      size_t n_in, size_t *total)
{
    mdfi_status st;
    char msg[512];
    mdfi_net *net = open_net(quick_cfg, weights, bk, threads, &st, msg, sizeof msg);
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

static void variants_agree(void)
{
    char path[64];
    check(write_weights(path, BREAK_NONE), "write weights");
    float x[65 * 5 * 7];
    quick_input(x, sizeof x / sizeof x[0]);
    size_t n_ref = 0;
    float *ref = run_all(path, "ref", 1, x, sizeof x / sizeof x[0], &n_ref);
    check(ref && n_ref == 65 * 35 + 2 * 130 * 35 + 130 * 12 * 3, "ref runs");
    int integers = ref != NULL, clamped = 0;
    for (size_t i = 0; ref && i < n_ref; ++i) {
        integers &= ref[i] == rintf(ref[i]) && fabsf(ref[i]) <= 16777216.f;
        clamped |= fabsf(ref[i]) == 16777216.f;
    }
    check(integers && clamped, "outputs are integers within 2^24 (some at the clamp)");
    static const char *const kinds[] = {"ref", "popcnt", "avx2", "avx512vpopcnt", "neon"};
    for (size_t v = 0; ref && v < sizeof kinds / sizeof kinds[0]; ++v) {
        int ran = 0, same = 1;
        for (int threads = 1; threads <= 3; threads += 2) {
            size_t n = 0;
            float *got = run_all(path, kinds[v], threads, x, sizeof x / sizeof x[0], &n);
            if (!got)
                continue;
            ran = 1;
            same &= n == n_ref && !memcmp(got, ref, n * sizeof *got);
            free(got);
        }
        if (ran) {
            check(same, kinds[v]);
            if (same)
                printf("%s ok\n", kinds[v]);
        }
    }
    free(ref);
    unlink(path);
}

static void refusals(void)
{
    static const struct {
        breakage b;
        const char *needle;
    } cases[] = {{BREAK_RANGE, "layer 0 [dualpath]: range = 0"},
                 {BREAK_VAR, "layer 0 [dualpath]: channel 7 has a negative rolling_variance"},
                 {BREAK_B, "layer 0 [dualpath]: channel 3's offset"},
                 {BREAK_SHORT, "ran out at layer 5 [dualpath]"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        char path[64], msg[512] = "";
        mdfi_status st = MDFI_OK;
        if (!write_weights(path, cases[i].b)) {
            check(0, "write weights");
            continue;
        }
        mdfi_net *net = open_net(quick_cfg, path, NULL, 2, &st, msg, sizeof msg);
        unlink(path);
        check(!net && st == MDFI_ERR_WEIGHTS && strstr(msg, cases[i].needle), cases[i].needle);
        if (net || !strstr(msg, cases[i].needle))
            printf("  got: %s\n", msg);
        mdfi_net_free(net);
    }
}

static int quick(void)
{
    hand_example();
    variants_agree();
    refusals();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    if (!n_fail)
        printf("ok\n");
    return n_fail != 0;
}

int main(int argc, char **argv)
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
        fprintf(stderr, "usage: test_dualpath CFG WEIGHTS INPUT.f32 OUT.f32 [--binary-kernel K] "
                        "[--threads N] | --quick\n");
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
        fprintf(stderr, "test_dualpath: %s\n", mdfi_net_last_error(net));
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
        fprintf(stderr, "test_dualpath: %s\n", mdfi_net_last_error(net));
        mdfi_net_free(net);
        return 1;
    }
    printf("binary %s\n", bk ? bk : "auto");
    printf("ok\n");
    mdfi_net_free(net);
    return 0;
}
