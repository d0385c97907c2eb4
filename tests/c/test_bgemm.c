/* Tests the binary convolution kernels (kernels/bgemm.h) of every variant
 * this build and CPU run against a naive integer convolution written here
 * from the definition, and benchmarks them against the fp32 and int8 GEMMs.
 *
 *   test_bgemm [--quick] [VARIANT]          correctness (exit 1 on failure)
 *   test_bgemm --bench [--quick] [--isa ISA] [VARIANT]
 *                                           per-layer timings, ratios, binary ops/cycle; --isa
 *                                           takes every kernel from ISA (e.g. avx2: AVX2 forced)
 *
 * Each case: input packing (whole and split) against the naive levels;
 * float output over [0, N) bit-identical to the naive integer D put through
 * the specified epilogue; column splits identical to the whole range; guard
 * words around the outputs untouched; a garbage-filled workspace; bit
 * output through folded thresholds identical to quantizing the naive float
 * value.  The shapes cover, for the AVX-512 kernel, B panels read straight
 * from the padded input (stride 1, out_w >= 7) and packed otherwise, border
 * corrections at every edge and corner, and K not a multiple of 3.  Plus
 * threshold folding against brute force, and the fusion planner on a small
 * network. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/net.h"
#include "kernels/bgemm.h"
#include "kernels/qgemm.h"
#include "mdfi.h"

#define GUARD 29

static int quick, passed, failed;

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static float frand(void)   /* [-1, 1) */
{
    return (float)((double)rnd() / 2147483648.0 - 1.0);
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static void check(int ok, const char *what, const char *desc)
{
    if (ok) {
        ++passed;
    } else {
        ++failed;
        printf("FAIL %s: %s\n", what, desc);
    }
}

/* ---- the naive definition ------------------------------------------------- */

static int naive_level(int mode, float step, float x)
{
    if (mode == MDFI_BMODE_SIGN)
        return x > 0.f ? 1 : -1;
    if (mode == MDFI_BMODE_TERNARY) {
        float th = 0.5f * step;
        return x > th ? 1 : x < -th ? -1 : 0;
    }
    return (x > 0.5f * step) + (x > 1.5f * step) + (x > 2.5f * step);
}

/* plane bits of a level value */
static unsigned naive_code(int mode, int v)
{
    if (mode == MDFI_BMODE_SIGN)
        return v > 0;
    if (mode == MDFI_BMODE_TERNARY)
        return (unsigned)(v > 0) | (unsigned)(v != 0) << 1;
    return (unsigned)v;
}

static float naive_epi(int32_t d, float alpha, float beta, int act)
{
    float prod = (float)d * alpha;
    float v = prod + beta;
    if (act == MDFI_EPI_RELU)
        return v > 0 ? v : 0.f;
    if (act == MDFI_EPI_LEAKY)
        return v > 0 ? v : (float)(.1 * (double)v);
    return v;
}

typedef struct {
    int mode;
    float step;
    int C, H, W, ks, s, pad, M;
    int act;
} tcase;

static void describe(const char *kname, const tcase *t, char *buf, size_t n)
{
    static const char *const modes[] = {"sign", "ternary", "2bit"};
    snprintf(buf, n, "variant=%s mode=%s step=%g C=%d in=%dx%d ks=%d s=%d pad=%d M=%d act=%d",
             kname, modes[t->mode], (double)t->step, t->C, t->H, t->W, t->ks, t->s, t->pad,
             t->M, t->act);
}

/* Input values that hit every threshold exactly, zeros of both signs, and noise. */
static float pick_input(float step)
{
    switch (rnd() % 8) {
    case 0: return 0.f;
    case 1: return -0.f;
    case 2: return 0.5f * step * (rnd() % 2 ? 1.f : -1.f);
    case 3: return 1.5f * step;
    case 4: return 2.5f * step;
    default: return frand() * 3.5f * step;
    }
}

static void run_case(const mdfi_bgemm_kernel *k, const tcase *t)
{
    char desc[256];
    describe(mdfi_bgemm_kernel_name(k), t, desc, sizeof desc);
    mdfi_conv_geom g;
    g.channels = t->C, g.in_h = t->H, g.in_w = t->W, g.ksize = t->ks, g.stride = t->s;
    g.pad = t->pad;
    g.out_h = (t->H + 2 * t->pad - t->ks) / t->s + 1;
    g.out_w = (t->W + 2 * t->pad - t->ks) / t->s + 1;
    const int N = g.out_h * g.out_w, T = t->ks * t->ks, M = t->M, C = t->C;
    const size_t hw = (size_t)t->H * t->W;
    mdfi_bquant q;
    mdfi_bquant_init(&q, (mdfi_bmode)t->mode, t->step);
    float *x = xalloc(C * hw * sizeof(float));
    int *lev = xalloc(C * hw * sizeof(int));
    for (size_t i = 0; i < C * hw; ++i) {
        x[i] = pick_input(t->step);
        lev[i] = naive_level(t->mode, t->step, x[i]);
    }
    unsigned char *wb = xalloc((size_t)M * C * T);
    for (size_t i = 0; i < (size_t)M * C * T; ++i) {
        int r = (int)(rnd() % 5);
        wb[i] = r == 0 ? 0 : (unsigned char)(r > 2);   /* some exact zeros -> -1 */
    }
    /* packing */
    const size_t words = mdfi_btensor_words(q.planes, C, t->H, t->W);
    uint64_t *packed = xalloc(words * 8), *packed2 = xalloc(words * 8);
    mdfi_bpack_input(&q, C, hw, x, packed, 0, hw);
    size_t cut = hw / 3;
    memset(packed2, 0xa5, words * 8);
    mdfi_bpack_input(&q, C, hw, x, packed2, cut, hw);
    mdfi_bpack_input(&q, C, hw, x, packed2, 0, cut);
    int ok = !memcmp(packed, packed2, words * 8);
    const int Wd = mdfi_bwords(C);
    for (int p = 0; p < q.planes && ok; ++p)
        for (int c = 0; c < Wd * 64 && ok; ++c)
            for (size_t i = 0; i < hw; ++i) {
                unsigned want = c < C ? naive_code(t->mode, lev[(size_t)c * hw + i]) >> p & 1 : 0;
                unsigned got = packed[((size_t)p * Wd + c / 64) * hw + i] >> (c % 64) & 1;
                if (got != want) {
                    ok = 0;
                    break;
                }
            }
    check(ok, "pack", desc);
    /* naive D */
    int32_t *D = xalloc((size_t)M * N * sizeof(int32_t));
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            int oy = n / g.out_w, ox = n % g.out_w;
            int32_t d = 0;
            for (int c = 0; c < C; ++c)
                for (int ky = 0; ky < t->ks; ++ky)
                    for (int kx = 0; kx < t->ks; ++kx) {
                        int iy = oy * t->s - t->pad + ky, ix = ox * t->s - t->pad + kx;
                        if (iy < 0 || iy >= t->H || ix < 0 || ix >= t->W)
                            continue;
                        int w = wb[((size_t)m * C + c) * T + ky * t->ks + kx] ? 1 : -1;
                        d += w * lev[(size_t)c * hw + (size_t)iy * t->W + ix];
                    }
            D[(size_t)m * N + n] = d;
        }
    mdfi_bconv bc;
    if (mdfi_bconv_init(&bc, k, (mdfi_bmode)t->mode, &g, M, wb)) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    /* the padded input: packed from floats (rows split) == copied from the bits */
    const size_t pwords = mdfi_bconv_input_words(&bc);
    uint64_t *pin = xalloc(pwords * 8), *pin2 = xalloc(pwords * 8);
    memset(pin, 0xee, pwords * 8);
    memset(pin2, 0x77, pwords * 8);
    int ycut = t->H / 2;
    mdfi_bconv_pack_input(&bc, &q, x, pin, ycut, t->H);
    mdfi_bconv_pack_input(&bc, &q, x, pin, 0, ycut);
    mdfi_bconv_copy_input(&bc, packed, pin2, 0, t->H);
    check(!memcmp(pin, pin2, pwords * 8), "padded input", desc);
    free(packed);
    packed = pin;
    float *alpha = xalloc(M * sizeof(float)), *beta = xalloc(M * sizeof(float));
    /* about half the cases without tiny alpha/beta: the AVX-512 leaky's fast
     * path (no check for results below 2^-120) */
    const int tiny = (int)(rnd() % 2);
    for (int m = 0; m < M; ++m) {
        int r = (int)(rnd() % 8);
        alpha[m] = r == 0 ? 0.f : frand() * 0.05f;   /* negative ones too */
        beta[m] = r == 1 ? 40.f : frand();           /* constant-sign channels */
        if (r == 2)   /* D = 0 gives -0: leaky's special lanes */
            alpha[m] = -0.01f, beta[m] = -0.f;
        if (r == 3 && tiny)   /* subnormal results */
            alpha[m] = (rnd() % 2 ? 1e-39f : -1e-39f), beta[m] = -1e-40f;
        if (r == 4 && tiny)   /* results just below and above 2^-120 */
            alpha[m] = 0x1p-121f * (float)(rnd() % 5 + 1), beta[m] = -0x1p-118f;
    }
    size_t wsb = mdfi_bconv_workspace_size(&bc);
    void *ws = xalloc(wsb);
    memset(ws, 0xab, wsb);
    /* float output with guards */
    const size_t outn = (size_t)M * N + 2 * GUARD;
    float *out = xalloc(outn * sizeof(float)), *out2 = xalloc(outn * sizeof(float));
    for (size_t i = 0; i < outn; ++i)
        out[i] = out2[i] = -12345.f;
    mdfi_bout o;
    memset(&o, 0, sizeof o);
    o.out = out + GUARD;
    o.ldc = (size_t)N;
    o.alpha = alpha;
    o.beta = beta;
    o.act = (mdfi_epilogue)t->act;
    mdfi_bconv_run(&bc, packed, &o, 0, N, ws);
    ok = 1;
    for (int i = 0; i < GUARD; ++i)
        ok &= out[i] == -12345.f && out[outn - 1 - i] == -12345.f;
    check(ok, "guards", desc);
    ok = 1;
    for (int m = 0; m < M && ok; ++m)
        for (int n = 0; n < N; ++n) {
            float want = naive_epi(D[(size_t)m * N + n], alpha[m], beta[m], t->act);
            float got = out[GUARD + (size_t)m * N + n];
            if (memcmp(&want, &got, sizeof want)) {
                printf("  m=%d n=%d D=%d want %.9g got %.9g\n", m, n, D[(size_t)m * N + n],
                       (double)want, (double)got);
                ok = 0;
                break;
            }
        }
    check(ok, "float output", desc);
    /* column splits, with a fresh garbage workspace */
    int a = N > 2 ? 1 + (int)(rnd() % (unsigned)(N - 1)) : 0;
    int b = a + (N - a > 1 ? (int)(rnd() % (unsigned)(N - a)) : 0);
    o.out = out2 + GUARD;
    memset(ws, 0x5c, wsb);
    mdfi_bconv_run(&bc, packed, &o, b, N, ws);
    mdfi_bconv_run(&bc, packed, &o, 0, a, ws);
    mdfi_bconv_run(&bc, packed, &o, a, b, ws);
    check(!memcmp(out, out2, outn * sizeof(float)), "column splits", desc);
    /* bit output through thresholds, into a wider tensor at channel m0 */
    mdfi_bquant q2;
    mdfi_bquant_init(&q2, (mdfi_bmode)(rnd() % 3), 0.25f + (float)(rnd() % 4) * 0.5f);
    const int m0 = (int)(rnd() % 70), CO = m0 + M + (int)(rnd() % 3);
    const int OW = mdfi_bwords(CO);
    const size_t bn = (size_t)q2.planes * OW * N;
    uint64_t *bits = xalloc((bn + 2 * GUARD) * 8);
    for (size_t i = 0; i < bn + 2 * GUARD; ++i)
        bits[i] = 0x0123456789abcdefull;
    int32_t *thr = xalloc((size_t)M * 3 * sizeof(int32_t));
    signed char *dir = xalloc((size_t)M);
    ok = 1;
    for (int m = 0; m < M; ++m)
        ok &= !mdfi_bthresholds(mdfi_bconv_dmax(&bc), alpha[m], beta[m], (mdfi_epilogue)t->act,
                                MDFI_ACT_LINEAR, &q2, &dir[m], thr + (size_t)m * (q2.levels - 1));
    check(ok, "thresholds exist", desc);
    mdfi_bout ob;
    memset(&ob, 0, sizeof ob);
    ob.bits = bits + GUARD;
    ob.q = &q2;
    ob.thr = thr;
    ob.dir = dir;
    ob.out_words = OW;
    ob.m0 = m0;
    mdfi_bout_zero(&ob, (size_t)N, 0, a);
    mdfi_bconv_run(&bc, packed, &ob, 0, a, ws);
    mdfi_bout_zero(&ob, (size_t)N, a, N);
    mdfi_bconv_run(&bc, packed, &ob, a, N, ws);
    ok = 1;
    for (int i = 0; i < GUARD; ++i)
        ok &= bits[i] == 0x0123456789abcdefull && bits[bn + 2 * GUARD - 1 - i] == 0x0123456789abcdefull;
    for (int p = 0; p < q2.planes && ok; ++p)
        for (int c = 0; c < OW * 64 && ok; ++c)
            for (int n = 0; n < N; ++n) {
                unsigned want = 0;
                if (c >= m0 && c < m0 + M) {
                    int m = c - m0;
                    float v = naive_epi(D[(size_t)m * N + n], alpha[m], beta[m], t->act);
                    want = naive_code(q2.mode, q2.value[mdfi_bquant_level(&q2, v)]) >> p & 1;
                }
                unsigned got = bits[GUARD + ((size_t)p * OW + c / 64) * N + n] >> (c % 64) & 1;
                if (got != want) {
                    printf("  plane %d channel %d n %d: want %u got %u\n", p, c, n, want, got);
                    ok = 0;
                    break;
                }
            }
    check(ok, "bit output", desc);
    mdfi_bconv_free(&bc);
    free(x), free(lev), free(wb), free(packed), free(packed2), free(pin2), free(D), free(alpha), free(beta);
    free(ws), free(out), free(out2), free(bits), free(thr), free(dir);
}

static void test_kernel(const mdfi_bgemm_kernel *k)
{
    int before = failed;
    static const struct {
        int C, H, W, ks, s, pad, M;
    } shapes[] = {
        {1, 5, 7, 3, 1, 1, 3},     {3, 9, 11, 3, 1, 1, 7},    {16, 29, 33, 3, 1, 1, 24},
        {24, 29, 33, 3, 2, 1, 40}, {40, 15, 17, 1, 1, 0, 48}, {48, 8, 9, 3, 1, 1, 70},
        {70, 8, 9, 3, 2, 0, 64},   {64, 13, 13, 3, 1, 1, 33}, {65, 7, 6, 3, 1, 1, 6},
        {63, 6, 7, 5, 1, 2, 13},   {130, 5, 9, 3, 1, 1, 9},   {128, 6, 6, 1, 1, 0, 65},
        {33, 10, 7, 3, 3, 1, 5},   {8, 4, 4, 5, 1, 0, 4},     {9, 3, 3, 3, 1, 2, 11},
        {200, 4, 5, 3, 2, 1, 7},   {5, 1, 1, 1, 1, 0, 3},     {7, 11, 2, 3, 2, 2, 12},
    };
    const int n = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < n; ++i) {
        if (quick && i % 3)
            continue;
        for (int mode = 0; mode < 3; ++mode) {
            tcase t = {mode, mode ? 0.5f + (float)(rnd() % 3) * 0.25f : 1.f, shapes[i].C,
                       shapes[i].H, shapes[i].W, shapes[i].ks, shapes[i].s, shapes[i].pad,
                       shapes[i].M, (int)((i + mode) % 3)};
            run_case(k, &t);
        }
    }
    if (!quick) {   /* bigger layers */
        tcase big[] = {{0, 1.f, 256, 13, 13, 3, 1, 1, 64, 2},
                       {1, 1.f, 128, 14, 14, 3, 1, 1, 32, 1},
                       {2, 0.5f, 96, 12, 11, 3, 1, 1, 40, 0},
                       /* 3 x 64 x words > 65535: the border table of taps alone */
                       {0, 1.f, 21900, 4, 5, 3, 1, 1, 9, 0},
                       {0, 1.f, 21900, 5, 4, 3, 2, 1, 6, 1}};
        for (size_t i = 0; i < sizeof big / sizeof big[0]; ++i)
            run_case(k, &big[i]);
    }
    printf("%-14s %s\n", mdfi_bgemm_kernel_name(k), failed == before ? "ok" : "FAILED");
}

/* ---- threshold folding against brute force ------------------------------------ */

static void test_thresholds(void)
{
    static const mdfi_activation posts[] = {MDFI_ACT_LINEAR, MDFI_ACT_LOGISTIC, MDFI_ACT_TANH,
                                            MDFI_ACT_STAIR, MDFI_ACT_ELU, MDFI_ACT_HARDTAN};
    int bad = 0, nonmono = 0;
    for (int it = 0; it < (quick ? 300 : 3000); ++it) {
        mdfi_bquant q;
        mdfi_bquant_init(&q, (mdfi_bmode)(rnd() % 3), 0.25f + (float)(rnd() % 5) * 0.25f);
        int dmax = 1 + (int)(rnd() % 60);
        float alpha = (rnd() % 7 == 0) ? 0.f : frand() * 0.3f;
        float beta = (rnd() % 5 == 0) ? frand() * 100.f : frand() * 2.f;
        mdfi_epilogue act = (mdfi_epilogue)(rnd() % 3);
        mdfi_activation post = posts[rnd() % 6];
        if (post != MDFI_ACT_LINEAR)
            act = MDFI_EPI_LINEAR;
        signed char dir;
        int32_t thr[3];
        int r = mdfi_bthresholds(dmax, alpha, beta, act, post, &q, &dir, thr);
        int mono_up = 1, mono_down = 1, prev = -1;
        for (int d = -dmax; d <= dmax; ++d) {
            float v = naive_epi(d, alpha, beta, act);
            if (post != MDFI_ACT_LINEAR)
                v = mdfi_activate1(v, post);
            int l = mdfi_bquant_level(&q, v);
            if (prev >= 0) {
                mono_up &= l >= prev;
                mono_down &= l <= prev;
            }
            prev = l;
            if (r == 0) {
                int e = dir > 0 ? d : -d, idx = 0;
                for (int i = 0; i < q.levels - 1; ++i)
                    idx += e > thr[i];
                bad += idx != l;
            }
        }
        if (r != 0) {
            ++nonmono;
            bad += mono_up || mono_down;   /* refused a monotone function */
        }
    }
    char desc[80];
    snprintf(desc, sizeof desc, "%d mismatches (%d non-monotone refused)", bad, nonmono);
    check(bad == 0, "thresholds vs brute force", desc);
    printf("thresholds     %s (%d non-monotone cases refused)\n", bad ? "FAILED" : "ok",
           nonmono);
}

/* ---- the fusion planner --------------------------------------------------------- */

static const char *const fuse_cfg =
    "[net]\nwidth=12\nheight=10\nchannels=3\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=leaky\n"                     /* 0 */
    "[convolutional]\nxnor=1\nbatch_normalize=1\nfilters=70\nsize=3\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"                                                   /* 2 */
    "[convolutional]\nxnor=1\nfilters=20\nsize=3\npad=1\nactivation=relu\n"           /* 3 */
    "[convolutional]\nxnor=1\nabits=1.5\nastep=0.5\nfilters=9\nsize=1\nactivation=linear\n"
    "[convolutional]\nxnor=1\nabits=2\nfilters=6\nsize=3\nstride=2\nactivation=leaky\n" /* 5 */
    "[convolutional]\nxnor=1\nfilters=5\nsize=1\nactivation=logistic\n"               /* 6 */
    "[route]\nlayers=-1\n"                                                            /* 7 */
    "[convolutional]\nxnor=1\nfilters=4\nsize=1\nactivation=leaky\n";                 /* 8 */

static void test_fusion(void)
{
    int expect_bits[] = {0, 1, 1, 1, 1, 1, 0, 0, 0};
    for (int fuse = 0; fuse < 2; ++fuse) {
        mdfi_options opt;
        mdfi_options_default(&opt);
        opt.binary_fuse = fuse;
        mdfi_net *net;
        int ok = mdfi_net_new(&net) == MDFI_OK &&
                 mdfi_net_load_cfg_text(net, fuse_cfg, "fuse.cfg") == MDFI_OK &&
                 mdfi_net_set_options(net, &opt) == MDFI_OK && mdfi_net_prepare(net) == MDFI_OK;
        if (!ok)
            printf("  %s\n", mdfi_net_last_error(net));
        for (int i = 0; ok && i < net->n; ++i) {
            const mdfi_layer *l = &net->layers[i];
            int bits = l->out_bytes != 0;
            ok &= bits == (fuse && expect_bits[i]);
            if (i == 2)
                ok &= (l->run == l->type->path[MDFI_PATH_BINARY]) == fuse;
        }
        float in[3 * 10 * 12];
        for (int i = 0; i < 3 * 10 * 12; ++i)
            in[i] = frand();
        ok = ok && mdfi_net_forward(net, in, 3 * 10 * 12) == MDFI_OK;
        mdfi_net_free(net);
        check(ok, "fusion plan", fuse ? "binary_fuse=1" : "binary_fuse=0");
    }
    printf("fusion plan    %s\n", failed ? "FAILED" : "ok");
}

/* ---- benchmark ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Core clock.  x86-64: a chain of dependent 64-bit multiplies (3 cycles
 * of latency each; add-immediate chains are not safe, recent cores fold
 * them at rename), timed with the monotonic clock so turbo counts.
 * Elsewhere /proc/cpuinfo. */
static double cpu_hz(const char **how)
{
#if defined(__x86_64__)
    double best = 0;
    for (int rep = 0; rep < 10; ++rep) {
        unsigned long long x = 7, n = 4000000ull, cnt = n;
        double t0 = now();
        __asm__ volatile("1:\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                         "imul %0, %0\n\tdec %1\n\tjnz 1b"
                         : "+r"(x), "+r"(cnt)
                         :
                         : "cc");
        double hz = 12.0 * (double)n / (now() - t0);
        best = hz > best ? hz : best;
    }
    *how = "dependent imul chain";
    return best;
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
            break;
    if (f)
        fclose(f);
    *how = mhz > 0 ? "cpu MHz of /proc/cpuinfo" : "unknown (1 GHz assumed)";
    return mhz > 0 ? mhz * 1e6 : 1e9;
#endif
}

#define BEST_OF(expr)                                                                   \
    do {                                                                                \
        double total_ = 0;                                                              \
        best = 1e30;                                                                    \
        for (int it_ = 0; it_ < (quick ? 2 : 200) && (total_ < 0.3 || it_ < 5); ++it_) { \
            double t0_ = now();                                                         \
            expr;                                                                       \
            double dt_ = now() - t0_;                                                   \
            total_ += dt_;                                                              \
            best = dt_ < best ? dt_ : best;                                             \
        }                                                                               \
    } while (0)

/* Seconds for a binary layer: bits in, float (bits_out 0) or bits out. */
static double bench_binary(const mdfi_bgemm_kernel *k, int M, mdfi_conv_geom g, int bits_out,
                           size_t *param_bytes)
{
    const int T = g.ksize * g.ksize, N = g.out_h * g.out_w;
    unsigned char *wb = xalloc((size_t)M * g.channels * T);
    for (size_t i = 0; i < (size_t)M * g.channels * T; ++i)
        wb[i] = rnd() & 1;
    mdfi_bconv bc;
    if (mdfi_bconv_init(&bc, k, MDFI_BMODE_SIGN, &g, M, wb))
        exit(2);
    *param_bytes = mdfi_bconv_param_bytes(&bc) + 2 * (size_t)M * sizeof(float);
    size_t words = mdfi_bconv_input_words(&bc);
    uint64_t *in = xalloc(words * 8);
    for (size_t i = 0; i < words; ++i)
        in[i] = (uint64_t)rnd() << 32 | rnd();
    float *alpha = xalloc(M * 4), *beta = xalloc(M * 4), *out = xalloc((size_t)M * N * 4);
    int32_t *thr = xalloc(M * 4);
    signed char *dir = xalloc(M);
    for (int m = 0; m < M; ++m)
        alpha[m] = 0.01f, beta[m] = 0.1f, thr[m] = 0, dir[m] = 1;
    mdfi_bquant q;
    mdfi_bquant_init(&q, MDFI_BMODE_SIGN, 1.f);
    uint64_t *bits = xalloc((size_t)mdfi_bwords(M) * N * 8);
    mdfi_bout o;
    memset(&o, 0, sizeof o);
    if (bits_out) {
        o.bits = bits, o.q = &q, o.thr = thr, o.dir = dir, o.out_words = mdfi_bwords(M);
    } else {
        o.out = out, o.ldc = (size_t)N, o.alpha = alpha, o.beta = beta, o.act = MDFI_EPI_LEAKY;
    }
    void *ws = xalloc(mdfi_bconv_workspace_size(&bc));
    double best;
    BEST_OF({
        if (bits_out)
            mdfi_bout_zero(&o, (size_t)N, 0, N);
        mdfi_bconv_run(&bc, in, &o, 0, N, ws);
    });
    mdfi_bconv_free(&bc);
    free(wb), free(in), free(alpha), free(beta), free(out), free(thr), free(dir), free(bits);
    free(ws);
    return best;
}

/* Float input packed to bits (what an unfused binary layer adds). */
static double bench_pack(const mdfi_bgemm_kernel *k, int M, mdfi_conv_geom g)
{
    mdfi_bquant q;
    mdfi_bquant_init(&q, MDFI_BMODE_SIGN, 1.f);
    size_t hw = (size_t)g.in_h * g.in_w;
    unsigned char *wb = xalloc((size_t)M * g.channels * 9);
    memset(wb, 1, (size_t)M * g.channels * 9);
    mdfi_bconv bc;
    if (mdfi_bconv_init(&bc, k, MDFI_BMODE_SIGN, &g, M, wb))
        exit(2);
    float *x = xalloc(g.channels * hw * 4);
    for (size_t i = 0; i < g.channels * hw; ++i)
        x[i] = frand();
    uint64_t *o = xalloc(mdfi_bconv_input_words(&bc) * 8);
    double best;
    BEST_OF(mdfi_bconv_pack_input(&bc, &q, x, o, 0, g.in_h));
    mdfi_bconv_free(&bc);
    free(wb), free(x), free(o);
    return best;
}

static double bench_fp32(const mdfi_sgemm_kernel *k, int M, mdfi_conv_geom g)
{
    const int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
    size_t in_n = (size_t)g.channels * g.in_h * g.in_w;
    float *a = xalloc((size_t)M * K * 4), *in = xalloc(in_n * 4), *bias = xalloc(M * 4);
    float *c = xalloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = frand();
    for (size_t i = 0; i < in_n; ++i)
        in[i] = frand();
    for (int i = 0; i < M; ++i)
        bias[i] = 0.1f;
    float *pa = xalloc(mdfi_sgemm_packed_a_size(k, M, K));
    mdfi_sgemm_pack_a(k, M, K, a, pa);
    float *ws = xalloc(mdfi_sgemm_workspace_size(k, M, &g));
    double best;
    BEST_OF(mdfi_sgemm_conv(k, M, &g, pa, in, bias, MDFI_EPI_LEAKY, c, (size_t)N, 0, N, ws));
    free(a), free(in), free(bias), free(c), free(pa), free(ws);
    return best;
}

static double bench_int8(const mdfi_qgemm_kernel *k, int M, mdfi_conv_geom g)
{
    const int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
    size_t in_n = (size_t)g.channels * g.in_h * g.in_w;
    int8_t *a = xalloc((size_t)M * K), *in = xalloc(in_n), *c = xalloc((size_t)M * N);
    int32_t *bias = xalloc(M * 4);
    int8_t *shift = xalloc(M);
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = (int8_t)(rnd() % 256u - 128u);
    for (size_t i = 0; i < in_n; ++i)
        in[i] = (int8_t)(rnd() % 256u - 128u);
    for (int i = 0; i < M; ++i)
        bias[i] = 100, shift[i] = 10;
    mdfi_qepilogue e = {bias, NULL, shift, MDFI_QACT_LEAKY, 13, 7, 8, 0};
    void *pa = xalloc(mdfi_qgemm_packed_a_size(k, M, K));
    mdfi_qgemm_pack_a(k, M, K, a, pa);
    void *ws = xalloc(mdfi_qgemm_workspace_size(k, M, &g));
    double best;
    BEST_OF(mdfi_qgemm_conv(k, M, &g, pa, in, &e, c, (size_t)N, 0, N, ws));
    free(a), free(in), free(c), free(bias), free(shift), free(pa), free(ws);
    return best;
}

static void bench(const mdfi_bgemm_kernel *only, mdfi_isa isa)
{
    const char *how;
    double hz = cpu_hz(&how);
    const mdfi_sgemm_kernel *fk = mdfi_sgemm_kernel_for(isa);
    const mdfi_qgemm_kernel *qk = mdfi_qgemm_kernel_for(isa, 8);
    const mdfi_bgemm_kernel *bk = only ? only : mdfi_bgemm_kernel_select(isa);
    printf("clock %.2f GHz (%s); binary %s, fp32 %s, int8 %s; one thread\n", hz * 1e-9, how,
           mdfi_bgemm_kernel_name(bk), mdfi_sgemm_kernel_name(fk),
           qk ? mdfi_qgemm_kernel_name(qk) : "none");
    printf("%-4s %-4s %-4s %9s %9s %9s %9s %7s %7s %7s %6s %6s\n", "C", "M", "HW", "fp32_ms",
           "int8_ms", "bin_ms", "binb_ms", "x_fp32", "x_int8", "xb_fp32", "MAC/c", "pack%");
    static const int cs[] = {64, 128, 256, 512}, hws[] = {13, 26, 52};
    for (int ci = 0; ci < 4; ++ci)
        for (int hi = 0; hi < 3; ++hi) {
            if (quick && (ci % 2 || hi != 1))
                continue;
            const int C = cs[ci], M = cs[ci], HW = hws[hi];
            mdfi_conv_geom g = {C, HW, HW, 3, 1, 1, HW, HW, 1, 1};
            size_t pbytes;
            double tb = bench_binary(bk, M, g, 0, &pbytes);
            double tbb = bench_binary(bk, M, g, 1, &pbytes);
            double tf = fk ? bench_fp32(fk, M, g) : 0;
            double tq = qk ? bench_int8(qk, M, g) : 0;
            double tp = bench_pack(bk, M, g);
            double macs = (double)M * C * 9 * HW * HW;
            printf("%-4d %-4d %-4d %9.3f %9.3f %9.3f %9.3f %7.1f %7.1f %7.1f %6.0f %6.1f\n", C,
                   M, HW, tf * 1e3, tq * 1e3, tb * 1e3, tbb * 1e3, tf / tb, tq ? tq / tb : 0.,
                   tf / tbb, macs / tb / hz, 100. * tp / tb);
            printf("  weights: float %zu bytes, packed binary %zu bytes (1/%.1f)\n",
                   (size_t)M * C * 9 * 4, pbytes, (double)M * C * 9 * 4 / (double)pbytes);
            fflush(stdout);
        }
    printf("x_fp32 = fp32 time / binary time (float output); xb_fp32 the same with bit output "
           "(fused);\nMAC/c = binary multiply-accumulates per cycle (1 MAC = 2 binary ops); "
           "pack%% = packing the float input to bits, relative to the binary conv.\n");
}

int main(int argc, char **argv)
{
    int do_bench = 0;
    const mdfi_bgemm_kernel *only = NULL;
    mdfi_isa isa = mdfi_isa_best();
    for (int i = 1; i < argc; ++i) {
        mdfi_bkind kind;
        if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            if (mdfi_isa_parse(argv[++i], &isa) || !mdfi_isa_available(isa)) {
                printf("--isa %s: not available on this build/CPU\n", argv[i]);
                return 3;
            }
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--bench")) {
            do_bench = 1;
        } else if (!mdfi_bgemm_kind_parse(argv[i], &kind)) {
            only = mdfi_bgemm_kernel_get(kind);
            if (!only) {
                printf("%s: not available on this build/CPU\n", argv[i]);
                return 3;
            }
        } else {
            fprintf(stderr, "usage: %s [--quick] [--bench] [--isa ISA] "
                            "[ref|popcnt|avx2|avx512vpopcnt|neon]\n",
                    argv[0]);
            return 2;
        }
    }
    printf("cpu features 0x%x, binary kernel for the best ISA (%s): %s\n", mdfi_cpu_features(),
           mdfi_isa_name(mdfi_isa_best()),
           mdfi_bgemm_kernel_name(mdfi_bgemm_kernel_select(mdfi_isa_best())));
    if (do_bench) {
        bench(only, isa);
        return 0;
    }
    for (int i = 0; i < MDFI_BK_COUNT; ++i) {
        const mdfi_bgemm_kernel *k = mdfi_bgemm_kernel_get((mdfi_bkind)i);
        if (k && (!only || k == only))
            test_kernel(k);
    }
    if (!only) {
        test_thresholds();
        test_fusion();
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
