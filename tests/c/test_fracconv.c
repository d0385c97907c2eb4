/* The [fracconv] layer through the public API (docs/wsfracbnn.md).
 *
 *   test_fracconv CFG WEIGHTS INPUT.f32 OUT.f32 [--binary-kernel K] [--threads N]
 *       every layer's output to OUT.f32 (tests/test_fracconv.py compares
 *       them with the numpy reference; tests/c/dp_driver.h)
 *   test_fracconv --quick
 *       - two hand-computed examples without weights (stream with the gate,
 *         thermometer);
 *       - two built-in networks (stream: 65 / 130 channels, gate 1 and 0,
 *         stride 2, tiling, maxpool, route, shortcut=0; thermometer first
 *         layer) with pseudo-random parameters in a temporary weights file:
 *         every binary kernel variant this build and CPU run, 1 and 3
 *         threads, gives the bits of ref on 1 thread; every output is an
 *         integer within +-2^24;
 *       - the count of gated outputs (mdfi_net_layer_gates) of every variant
 *         and 1 and 3 threads is ref's on 1 thread, strictly between 0 and
 *         the layer's outputs; zeros before a forward; layers without a gate
 *         and bad arguments refused;
 *       - refused parameters (range 0, step < 0, a NaN gate, |B| >= 2^24)
 *         and a short file fail with MDFI_ERR_WEIGHTS and free everything
 *         (run under ASan by MDFI_SANITIZE=1). */
#include "dp_driver.h"

/* ---- the hand-computed examples ----------------------------------------------------- */

/* Runs cfg without weights on the 9 pixels x; every channel must equal want. */
static void hand(const char *cfg, int channels, const float *x, const float *want,
                 const char *what)
{
    mdfi_status st;
    mdfi_net *net = open_net(cfg, NULL, NULL, 1, &st, NULL, 0);
    check(net != NULL, what);
    if (!net)
        return;
    const float *y;
    size_t n;
    int ok = mdfi_net_forward(net, x, 9) == MDFI_OK && mdfi_net_output(net, &y, &n) == MDFI_OK &&
             n == (size_t)channels * 9;
    for (int i = 0; ok && i < channels * 9; ++i)
        ok = y[i] == want[i % 9];
    check(ok, what);
    mdfi_net_free(net);
}

static void hand_examples(void)
{
    /* stream, no weights: weights 0 (-> -1), shift 0, step 0, gate 0, scale
     * and range 1: A = 1, B = 0.  s1 = s0 = a = [x > 0], D1 = D0 = -a; the
     * gate fires where 2 D1 > 0 (a = -1): P = 3 there, else -2; the
     * shortcut adds rint(x) (NaN -> 0, clamped to 2^24) */
    static const float x[9] = {-4, -2.5f, -1, 0, 0.5f, 1, NAN, 2.5f, 1e30f};
    static const float z[9] = {-1, 1, 2, 3, -2, -1, 3, 0, 16777214.f};
    hand("[net]\nwidth=3\nheight=3\nchannels=1\n[fracconv]\nfilters=2\nsize=1\n", 2, x, z,
         "stream hand example");
    /* thermometer T = 2 (t = 0.25, 0.75), weights -1: D1 = -(b0 + b1) */
    static const float u[9] = {0, 0.25f, 0.5f, 0.75f, 0.8f, 1, NAN, -3, 7};
    static const float d[9] = {2, 2, 0, 0, -2, -2, 2, 2, -2};
    hand("[net]\nwidth=9\nheight=1\nchannels=1\n[fracconv]\nfilters=3\nsize=1\n"
         "input=thermometer\nlevels=2\n", 3, u, d, "thermometer hand example");
}

/* ---- networks with pseudo-random parameters ----------------------------------------- */

static const char stream_cfg[] =
    "[net]\nwidth=7\nheight=5\nchannels=65\n"
    "[fracconv]\nfilters=65\nsize=3\npad=1\n"
    "[fracconv]\nfilters=130\nsize=1\ngate=0\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[route]\nlayers=1\n"
    "[fracconv]\nfilters=130\nsize=3\nstride=2\npad=1\nfrom=2\n"
    "[fracconv]\nfilters=130\nsize=3\npad=1\nshortcut=0\n";

static const char thermo_cfg[] =
    "[net]\nwidth=9\nheight=7\nchannels=3\n"
    "[fracconv]\nfilters=65\nsize=3\npad=1\ninput=thermometer\nlevels=16\n"
    "[fracconv]\nfilters=65\nsize=3\npad=1\n";

typedef struct {
    int M, C, T, k, gate;   /* T = 0: input=stream */
} fc_shape;

static const fc_shape stream_layers[] = {{65, 65, 0, 3, 1}, {130, 65, 0, 1, 0},
                                         {130, 130, 0, 3, 1}, {130, 130, 0, 3, 1}};
static const fc_shape thermo_layers[] = {{65, 3, 16, 3, 0}, {65, 65, 0, 3, 1}};

/* What a test breaks in the parameters of the first stream layer. */
typedef enum { BREAK_NONE, BREAK_RANGE, BREAK_STEP, BREAK_GATE, BREAK_B, BREAK_SHORT } breakage;

static int write_weights(char *path, const fc_shape *layers, size_t n, breakage b)
{
    FILE *f = weights_file(path, "fracconv");
    if (!f)
        return 0;
    int ok = 1;
    for (size_t i = 0; i < n; ++i) {
        const fc_shape *s = &layers[i];
        const int first = i == 0;
        for (int m = 0; m < s->M; ++m)   /* biases */
            ok &= put(f, first && b == BREAK_B && m == 3 ? 1e9f : uniform(-4, 4));
        for (int m = 0; m < s->M; ++m)   /* scales */
            ok &= put(f, uniform(-0.15f, 0.15f));
        for (long j = 0; j < (long)s->M * s->C * (s->T ? s->T : 1) * s->k * s->k; ++j)
            ok &= put(f, uniform(-1, 1));
        if (!s->T) {
            for (int c = 0; c < s->C; ++c)   /* shift: halves, so some inputs hit it */
                ok &= put(f, floorf(uniform(-4, 5)) / 2);
            ok &= put(f, first && b == BREAK_STEP ? -0.5f : 0.5f);   /* step */
            for (int m = 0; s->gate && m < s->M; ++m)   /* gate: some never, some always */
                ok &= put(f, first && b == BREAK_GATE && m == 5 ? NAN
                             : m % 7 == 0                   ? 1e30f
                             : m % 7 == 1                   ? -1e30f
                                                            : floorf(uniform(-60, 60)) / 2);
        }
        if (!(first && b == BREAK_SHORT))
            ok &= put(f, first && b == BREAK_RANGE ? 0.f : uniform(0.3f, 3));
    }
    return fclose(f) == 0 && ok;
}

static void quick_input(float *x, size_t n, int image)
{
    static const float special[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 2.5f, -2.5f, 0.5f};
    for (size_t i = 0; i < n; ++i) {
        x[i] = image ? floorf(uniform(0, 33)) / 32 : floorf(uniform(-8, 9)) / 2;
        if (uniform(0, 1) < 0.08f)
            x[i] = special[(size_t)uniform(0, 8) % 8];
    }
}

#define MAX_LAYERS 8

/* Per layer (gated, total) of one forward, -1 for a layer without a gate
 * (which the API refuses with zeros); 0 if the variant does not run here. */
static int gate_counts(const char *cfg, const char *weights, const char *bk, int threads,
                       const float *x, size_t n_in, long long counts[MAX_LAYERS][2])
{
    mdfi_status st;
    mdfi_net *net = open_net(cfg, weights, bk, threads, &st, NULL, 0);
    if (!net)
        return 0;
    const int n = mdfi_net_num_layers(net);
    long long g = 7, t = 7;
    check(mdfi_net_layer_gates(net, n, &g, &t) == MDFI_ERR_ARG &&
          mdfi_net_layer_gates(net, 0, NULL, &t) == MDFI_ERR_ARG &&
          mdfi_net_layer_gates(NULL, 0, &g, &t) == MDFI_ERR_ARG, "gates: bad arguments");
    for (int pass = 0; pass < 2; ++pass) {   /* before a forward, after one */
        if (pass && mdfi_net_forward(net, x, n_in) != MDFI_OK)
            break;
        for (int i = 0; i < n && i < MAX_LAYERS; ++i) {
            mdfi_layer_info li;
            g = t = 7;
            st = mdfi_net_layer_gates(net, i, &g, &t);
            const int ok = mdfi_net_layer_info(net, i, &li) == MDFI_OK &&
                           st == (li.gate ? MDFI_OK : MDFI_ERR_ARG) && g >= 0 && g <= t &&
                           (pass ? !li.gate || t == (long long)li.out_c * li.out_h * li.out_w
                                 : g == 0 && t == 0);
            check(ok, pass ? "gates after a forward" : "gates before a forward");
            counts[i][0] = li.gate ? g : -1;
            counts[i][1] = li.gate ? t : -1;
        }
    }
    mdfi_net_free(net);
    return 1;
}

/* The gated-output counter: what ref on 1 thread counts, for every variant
 * and 1 and 3 threads; the mixed gates fire on part of the outputs. */
static void gates_agree(const char *cfg, const char *weights, const float *x, size_t n_in)
{
    long long ref[MAX_LAYERS][2], got[MAX_LAYERS][2];
    memset(ref, 0, sizeof ref);
    check(gate_counts(cfg, weights, "ref", 1, x, n_in, ref), "gates: ref runs");
    int gated_layers = 0, partly = 1;
    for (int i = 0; i < MAX_LAYERS; ++i)
        if (ref[i][0] >= 0 && ref[i][1] > 0) {
            ++gated_layers;
            partly &= ref[i][0] > 0 && ref[i][0] < ref[i][1];
        }
    check(gated_layers > 0 && partly, "gates fire on part of the outputs");
    for (size_t v = 0; v < sizeof all_kinds / sizeof all_kinds[0]; ++v)
        for (int threads = 1; threads <= 3; threads += 2) {
            memset(got, 0, sizeof got);
            if (gate_counts(cfg, weights, all_kinds[v], threads, x, n_in, got))
                check(!memcmp(got, ref, sizeof ref), "gates: the same count on every variant");
        }
}

static void variants_agree(const char *cfg, const fc_shape *layers, size_t n_layers,
                           size_t n_in, int image, size_t n_out)
{
    char path[64];
    check(write_weights(path, layers, n_layers, BREAK_NONE), "write weights");
    float *x = malloc(n_in * sizeof *x);
    if (!x)
        return;
    quick_input(x, n_in, image);
    size_t n_ref = 0;
    float *ref = run_all(cfg, path, "ref", 1, x, n_in, &n_ref);
    check(ref && n_ref == n_out, "ref runs");
    int integers = ref != NULL;
    for (size_t i = 0; ref && i < n_ref; ++i)
        integers &= ref[i] == rintf(ref[i]) && fabsf(ref[i]) <= 16777216.f;
    check(integers, "outputs are integers within 2^24");
    if (ref)
        variants_match(cfg, path, x, n_in, ref, n_ref);
    gates_agree(cfg, path, x, n_in);
    free(ref);
    free(x);
    unlink(path);
}

static int write_stream(char *path, int b)
{
    return write_weights(path, stream_layers, sizeof stream_layers / sizeof stream_layers[0],
                         (breakage)b);
}

static void refusals(void)
{
    static const int breaks[] = {BREAK_RANGE, BREAK_STEP, BREAK_GATE, BREAK_B, BREAK_SHORT};
    static const char *const needles[] = {
        "layer 0 [fracconv]: range = 0", "layer 0 [fracconv]: step = -0.5 must be >= 0",
        "layer 0 [fracconv]: channel 5's gate = nan", "layer 0 [fracconv]: channel 3's offset",
        "ran out at layer 5 [fracconv]"};
    refusal_cases(stream_cfg, write_stream, breaks, needles, sizeof breaks / sizeof breaks[0]);
}

static int quick(void)
{
    hand_examples();
    variants_agree(stream_cfg, stream_layers, sizeof stream_layers / sizeof stream_layers[0],
                   65 * 35, 0, 65 * 35 + 2 * 130 * 35 + 130 * 12 * 3);
    variants_agree(thermo_cfg, thermo_layers, sizeof thermo_layers / sizeof thermo_layers[0],
                   3 * 63, 1, 2 * 65 * 63);
    refusals();
    return summary();
}

int main(int argc, char **argv)
{
    return driver_main(argc, argv, "test_fracconv", quick);
}
