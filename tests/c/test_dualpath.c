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
 *         and every output is an integer within +-2^24; again with one channel
 *         whose requantization has no int32 split (its layer not requantized
 *         in a kernel's epilogue);
 *       - refused parameters (range 0, a negative variance, |B| >= 2^24) and
 *         a short file fail with MDFI_ERR_WEIGHTS and free everything
 *         (run under ASan by MDFI_SANITIZE=1). */
#include "dp_driver.h"

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

/* What a test breaks in the parameters of the first layer. */
typedef enum { BREAK_NONE, BREAK_RANGE, BREAK_VAR, BREAK_B, BREAK_SHORT, WIDE_A } breakage;

/* Writes the quick network's weights to a new temporary file (path). */
static int write_weights(char *path, breakage b)
{
    FILE *f = weights_file(path, "dualpath");
    if (!f)
        return 0;
    int ok = 1;
    for (size_t i = 0; i < sizeof quick_layers / sizeof quick_layers[0]; ++i) {
        const dp_shape *s = &quick_layers[i];
        const int first = i == 0;
        for (int m = 0; m < s->M; ++m)   /* biases */
            ok &= put(f, first && b == BREAK_B && m == 3 ? 1e9f : uniform(-4, 4));
        for (int m = 0; m < s->M; ++m)   /* scales */
            ok &= put(f, first && b == WIDE_A && m == 5 ? 2.f : uniform(-2.5f, 2.5f));
        for (int m = 0; m < s->M; ++m)   /* rolling_mean */
            ok &= put(f, uniform(-3, 3));
        for (int m = 0; m < s->M; ++m)   /* rolling_variance */
            ok &= put(f, first && b == BREAK_VAR && m == 7 ? -1.f
                         : first && b == WIDE_A && m == 5 ? 1e-10f   /* A >= 2^15: S < 16 */
                                                          : uniform(0.05f, 4));
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

/* b: BREAK_NONE, or WIDE_A: one channel of the first layer without the int32
 * split of its requantization (kernels/dpath.h), so that the kernels which
 * requantize in their epilogue leave that layer to the pass. */
static void variants_agree(breakage b)
{
    char path[64];
    check(write_weights(path, b), "write weights");
    float x[65 * 5 * 7];
    quick_input(x, sizeof x / sizeof x[0]);
    size_t n_ref = 0;
    float *ref = run_all(quick_cfg, path, "ref", 1, x, sizeof x / sizeof x[0], &n_ref);
    check(ref && n_ref == 65 * 35 + 2 * 130 * 35 + 130 * 12 * 3, "ref runs");
    int integers = ref != NULL, clamped = 0;
    for (size_t i = 0; ref && i < n_ref; ++i) {
        integers &= ref[i] == rintf(ref[i]) && fabsf(ref[i]) <= 16777216.f;
        clamped |= fabsf(ref[i]) == 16777216.f;
    }
    check(integers && clamped, "outputs are integers within 2^24 (some at the clamp)");
    if (ref)
        variants_match(quick_cfg, path, x, sizeof x / sizeof x[0], ref, n_ref);
    free(ref);
    unlink(path);
}

static int write_quick(char *path, int b)
{
    return write_weights(path, (breakage)b);
}

static void refusals(void)
{
    static const int breaks[] = {BREAK_RANGE, BREAK_VAR, BREAK_B, BREAK_SHORT};
    static const char *const needles[] = {
        "layer 0 [dualpath]: range = 0", "layer 0 [dualpath]: channel 7 has a negative "
        "rolling_variance", "layer 0 [dualpath]: channel 3's offset",
        "ran out at layer 5 [dualpath]"};
    refusal_cases(quick_cfg, write_quick, breaks, needles, sizeof breaks / sizeof breaks[0]);
}

static int quick(void)
{
    hand_example();
    variants_agree(BREAK_NONE);
    variants_agree(WIDE_A);
    refusals();
    return summary();
}

int main(int argc, char **argv)
{
    return driver_main(argc, argv, "test_dualpath", quick);
}
