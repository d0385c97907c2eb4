/* Tests the fp32 GEMM kernels of every ISA the CPU runs against a naive
 * double-precision convolution written here, and benchmarks them.
 *
 *   test_sgemm [--quick] [--isa NAME | NAME]    correctness (exit 1 on failure)
 *   test_sgemm --bench [--quick] [--isa NAME | NAME]
 *                                               GFLOP/s on YOLOv3-tiny shapes
 *
 * Each case checks: the whole range [0, N) against the naive result within
 * 1e-5 * sum|a*b| (+|bias|); several [n0, n1) splits bit-identical to the
 * whole range; sentinel guards around C, the packed A and the workspace
 * untouched; a workspace full of NaN garbage does not leak into C.  With
 * K = 1 the epilogues must match Darknet's bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/sgemm_impl.h"

#define SENTINEL 0xffbadbadu   /* a NaN no computation produces */
#define GUARD 37               /* floats of guard on each side (odd: C is misaligned) */

static int quick, passed, failed;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static void fill_sentinel(float *p, size_t n)
{
    uint32_t s = SENTINEL;
    for (size_t i = 0; i < n; ++i)
        memcpy(p + i, &s, sizeof s);
}

static int is_sentinel(const float *p)
{
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return u == SENTINEL;
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

typedef struct {
    int M;
    mdfi_conv_geom g;
    mdfi_epilogue epi;
    int no_bias;
} tcase;

static const char *const epi_names[] = {"linear", "relu", "leaky"};

static void describe(const mdfi_sgemm_kernel *k, const tcase *t, char *buf, size_t n)
{
    const mdfi_conv_geom *g = &t->g;
    snprintf(buf, n,
             "isa=%s M=%d K=%d N=%d (c=%d in=%dx%d ks=%d s=%d pad=%d out=%dx%d) epi=%s bias=%s",
             mdfi_sgemm_kernel_name(k), t->M, g->channels * g->ksize * g->ksize,
             g->out_h * g->out_w, g->channels, g->in_h, g->in_w, g->ksize, g->stride, g->pad,
             g->out_h, g->out_w, epi_names[t->epi], t->no_bias ? "NULL" : "yes");
}

/* B[k][n] straight from the definition in sgemm.h. */
static double naive_b(const mdfi_conv_geom *g, const float *in, int k, int n)
{
    int c = k / (g->ksize * g->ksize), ky = (k / g->ksize) % g->ksize, kx = k % g->ksize;
    int iy = (n / g->out_w) * g->stride_y - g->pad + ky * g->dilation;
    int ix = (n % g->out_w) * g->stride - g->pad + kx * g->dilation;
    if (iy < 0 || ix < 0 || iy >= g->in_h || ix >= g->in_w)
        return 0.0;
    return in[((size_t)c * g->in_h + iy) * g->in_w + ix];
}

static double naive_act(double x, mdfi_epilogue epi)
{
    if (epi == MDFI_EPI_RELU)
        return x > 0 ? x : 0;
    if (epi == MDFI_EPI_LEAKY)
        return x > 0 ? x : 0.1 * x;
    return x;
}

/* Runs [n0, n1) with a workspace full of NaN garbage and checks its guard. */
static int run_range(const mdfi_sgemm_kernel *k, const tcase *t, const float *pa,
                     const float *in, const float *bias, float *c, size_t ldc, int n0, int n1,
                     float *ws, size_t ws_floats)
{
    fill_sentinel(ws, ws_floats + GUARD);
    mdfi_sgemm_conv(k, t->M, &t->g, pa, in, bias, t->epi, c + n0, ldc, n0, n1, ws);
    for (size_t i = ws_floats; i < ws_floats + GUARD; ++i)
        if (!is_sentinel(ws + i))
            return -1;
    return 0;
}

static void fail(const mdfi_sgemm_kernel *k, const tcase *t, const char *what)
{
    char buf[256];
    describe(k, t, buf, sizeof buf);
    printf("FAIL %s: %s\n", buf, what);
    ++failed;
}

static void run_case(const mdfi_sgemm_kernel *k, const tcase *t)
{
    const mdfi_conv_geom *g = &t->g;
    const int M = t->M, K = g->channels * g->ksize * g->ksize, N = g->out_h * g->out_w;
    const size_t ldc = (size_t)N + 3;
    const size_t c_floats = (size_t)M * ldc + 2 * GUARD;
    size_t in_n = (size_t)g->channels * g->in_h * g->in_w;
    float *a = xalloc((size_t)M * K * sizeof(float));
    float *in_buf = xalloc((in_n + 1) * sizeof(float));
    float *in = in_buf + 1;   /* only 4-byte aligned, as a layer may pass */
    float *bias = xalloc((size_t)M * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = frand();
    for (size_t i = 0; i < in_n; ++i)
        in[i] = frand();
    for (int i = 0; i < M; ++i)
        bias[i] = frand();
    const float *bp = t->no_bias ? NULL : bias;
    char msg[200];

    size_t pa_bytes = mdfi_sgemm_packed_a_size(k, M, K);
    size_t pa_floats = (pa_bytes + sizeof(float) - 1) / sizeof(float);
    float *pa = xalloc((pa_floats + GUARD) * sizeof(float));
    fill_sentinel(pa, pa_floats + GUARD);
    mdfi_sgemm_pack_a(k, M, K, a, pa);
    for (size_t i = pa_floats; i < pa_floats + GUARD; ++i)
        if (!is_sentinel(pa + i)) {
            fail(k, t, "pack_a wrote past mdfi_sgemm_packed_a_size");
            goto out;
        }
    size_t ws_floats = (mdfi_sgemm_workspace_size(k, M, g) + sizeof(float) - 1) / sizeof(float);
    float *ws = xalloc((ws_floats + GUARD) * sizeof(float));
    float *whole = xalloc(c_floats * sizeof(float)), *split = xalloc(c_floats * sizeof(float));
    fill_sentinel(whole, c_floats);
    fill_sentinel(split, c_floats);
    float *cw = whole + GUARD, *cs = split + GUARD;

    if (run_range(k, t, pa, in, bp, cw, ldc, 0, N, ws, ws_floats)) {
        fail(k, t, "wrote past mdfi_sgemm_workspace_size");
        goto out2;
    }
    /* Three cuts, at least one of them off any tile boundary. */
    int cuts[5] = {0, N / 3, N / 3 + 1 + (int)((unsigned)rng_state % 7), (2 * N) / 3 + 1, N};
    for (int i = 1; i < 5; ++i) {
        if (cuts[i] > N) cuts[i] = N;
        if (cuts[i] < cuts[i - 1]) cuts[i] = cuts[i - 1];
    }
    for (int i = 0; i < 4; ++i)
        if (run_range(k, t, pa, in, bp, cs, ldc, cuts[i], cuts[i + 1], ws, ws_floats)) {
            fail(k, t, "wrote past mdfi_sgemm_workspace_size (split)");
            goto out2;
        }
    for (size_t i = 0; i < c_floats; ++i) {
        long long pos = (long long)i - GUARD;
        int inside = pos >= 0 && pos < (long long)((size_t)M * ldc) &&
                     (size_t)pos % ldc < (size_t)N;
        if (!inside && (!is_sentinel(whole + i) || !is_sentinel(split + i))) {
            snprintf(msg, sizeof msg, "wrote outside C at offset %lld", pos);
            fail(k, t, msg);
            goto out2;
        }
        if (inside && memcmp(whole + i, split + i, sizeof(float))) {
            snprintf(msg, sizeof msg,
                     "split [%d,%d,%d,%d,%d] differs at m=%lld n=%lld: %.9g vs %.9g", cuts[0],
                     cuts[1], cuts[2], cuts[3], cuts[4], pos / (long long)ldc,
                     pos % (long long)ldc, whole[i], split[i]);
            fail(k, t, msg);
            goto out2;
        }
    }
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            double s = 0, sabs = 0;
            for (int kk = 0; kk < K; ++kk) {
                double p = (double)a[(size_t)m * K + kk] * naive_b(g, in, kk, n);
                s += p;
                sabs += fabs(p);
            }
            double bm = bp ? bp[m] : 0.0;
            double want = naive_act(s + bm, t->epi);
            double got = cw[(size_t)m * ldc + n];
            double tol = 1e-5 * (sabs + fabs(bm)) + 1e-30;
            if (!(fabs(got - want) <= tol)) {
                snprintf(msg, sizeof msg, "m=%d n=%d got %.9g want %.9g (tol %.3g)", m, n, got,
                         want, tol);
                fail(k, t, msg);
                goto out2;
            }
        }
    ++passed;
out2:
    free(ws);
    free(whole);
    free(split);
out:
    free(pa);
    free(a);
    free(in_buf);
    free(bias);
}

/* With K = 1 and A = 1 every ISA computes act((float)(x + bias)) with no
 * other rounding, so the epilogue must match Darknet's exactly: leaky is
 * (float)(.1 * x) in double there. */
static void test_epilogue_exact(const mdfi_sgemm_kernel *k, int N)
{
    const int M = 3;
    const float a[3] = {1.f, 1.f, 1.f}, bias[3] = {0.f, 0.5f, -3.f};
    float *in = xalloc((size_t)N * sizeof(float)), *c = xalloc((size_t)M * N * sizeof(float));
    for (int n = 0; n < N; ++n)
        in[n] = ldexpf(frand(), (int)(frand() * 40));   /* wide range, no subnormals */
    mdfi_conv_geom g = {1, 1, N, 1, 1, 0, 1, N, 1, 1};
    float *pa = xalloc(mdfi_sgemm_packed_a_size(k, M, 1) + 64);
    float *ws = xalloc(mdfi_sgemm_workspace_size(k, M, &g) + 64);
    mdfi_sgemm_pack_a(k, M, 1, a, pa);
    for (int e = 0; e < 3; ++e) {
        tcase t = {M, g, (mdfi_epilogue)e, 0};
        mdfi_sgemm_conv(k, M, &g, pa, in, bias, t.epi, c, (size_t)N, 0, N, ws);
        int bad = 0;
        for (int m = 0; m < M && !bad; ++m)
            for (int n = 0; n < N && !bad; ++n) {
                float v = in[n] + bias[m], want = v;
                if (t.epi == MDFI_EPI_RELU)
                    want = v > 0 ? v : 0.f;
                else if (t.epi == MDFI_EPI_LEAKY)
                    want = v > 0 ? v : (float)(.1 * v);
                if (c[(size_t)m * N + n] != want) {
                    char msg[160];
                    snprintf(msg, sizeof msg, "epilogue not exact: x=%a got %a want %a", v,
                             c[(size_t)m * N + n], want);
                    fail(k, &t, msg);
                    bad = 1;
                }
            }
        if (!bad)
            ++passed;
    }
    free(in), free(c), free(pa), free(ws);
}

static mdfi_conv_geom conv_geom(int c, int h, int w, int ks, int s, int pad)
{
    mdfi_conv_geom g = {c, h, w, ks, s, pad, 0, 0, s, 1};
    g.out_h = (h + 2 * pad - ks) / s + 1;
    g.out_w = (w + 2 * pad - ks) / s + 1;
    return g;
}

static mdfi_conv_geom matrix_geom(int K, int N)
{
    mdfi_conv_geom g = {K, 1, N, 1, 1, 0, 1, N, 1, 1};
    return g;
}

static int case_no;
static void add(const mdfi_sgemm_kernel *k, int M, mdfi_conv_geom g)
{
    tcase t = {M, g, (mdfi_epilogue)(case_no % 3), case_no % 4 == 3};
    ++case_no;
    if (g.out_h < 1 || g.out_w < 1)
        return;
    run_case(k, &t);
}

/* plain_pack_b + plain_mul (the Winograd GEMMs) against mdfi_sgemm_conv on
 * the same matrices: the same fma chain per element, so the same bits.  B
 * is packed nb wide, the next multiple of 8, and N columns multiplied, as
 * the Winograd path does where the panels are a multiple of 16 wide (its lanes up to nb are zero tiles): last panels
 * full, half, and the few-column edge (cols); the K range in two calls, the
 * second accumulating; C's columns past N untouched. */
static void plain_case(const mdfi_sgemm_kernel *k, int M, int K1, int N)
{
    /* (where panels are a multiple of 16 wide: what the Winograd path checks) */
    const int K2 = 3, K = K1 + K2, nb = k->nr % 16 ? N : (N + 7) / 8 * 8;
    const mdfi_conv_geom g = matrix_geom(K, nb);
    if (!mdfi_sgemm_plain_ok(k, K1, nb) || !mdfi_sgemm_plain_ok(k, K2, nb) ||
        !mdfi_sgemm_plain_ok(k, K, nb))
        return;
    float *a = xalloc((size_t)M * K * sizeof(float)), *b = xalloc((size_t)K * nb * sizeof(float));
    float *a1 = xalloc((size_t)M * K1 * sizeof(float)), *a2 = xalloc((size_t)M * K2 * sizeof(float));
    for (int m = 0; m < M; ++m)
        for (int kk = 0; kk < K; ++kk) {
            a[(size_t)m * K + kk] = frand();
            if (kk < K1)
                a1[(size_t)m * K1 + kk] = a[(size_t)m * K + kk];
            else
                a2[(size_t)m * K2 + kk - K1] = a[(size_t)m * K + kk];
        }
    for (size_t i = 0; i < (size_t)K * nb; ++i)
        b[i] = frand();
    float *pa = xalloc(mdfi_sgemm_packed_a_size(k, M, K)), *pa1 = xalloc(mdfi_sgemm_packed_a_size(k, M, K1));
    float *pa2 = xalloc(mdfi_sgemm_packed_a_size(k, M, K2));
    mdfi_sgemm_pack_a(k, M, K, a, pa);
    mdfi_sgemm_pack_a(k, M, K1, a1, pa1);
    mdfi_sgemm_pack_a(k, M, K2, a2, pa2);
    void *ws = xalloc(mdfi_sgemm_workspace_size(k, M, &g));
    float *pb1 = xalloc(mdfi_sgemm_plain_b_floats(k, K1, nb) * sizeof(float));
    float *pb2 = xalloc(mdfi_sgemm_plain_b_floats(k, K2, nb) * sizeof(float));
    mdfi_sgemm_plain_pack_b(k, K1, nb, b, pb1, ws);
    mdfi_sgemm_plain_pack_b(k, K2, nb, b + (size_t)K1 * nb, pb2, ws);
    float *want = xalloc((size_t)M * nb * sizeof(float)), *got = xalloc((size_t)M * nb * sizeof(float));
    fill_sentinel(got, (size_t)M * nb);
    mdfi_sgemm_conv(k, M, &g, pa, b, NULL, MDFI_EPI_LINEAR, want, (size_t)nb, 0, N, ws);
    mdfi_sgemm_plain_mul(k, M, K1, N, pa1, pb1, got, (size_t)nb, 0);
    mdfi_sgemm_plain_mul(k, M, K2, N, pa2, pb2, got, (size_t)nb, 1);
    int bad = 0;
    for (int m = 0; m < M && !bad; ++m)
        for (int n = 0; n < nb && !bad; ++n) {
            const size_t i = (size_t)m * nb + n;
            bad = n < N ? memcmp(want + i, got + i, sizeof(float)) != 0 : !is_sentinel(got + i);
            if (bad) {
                printf("FAIL isa=%s plain M=%d K=%d+%d N=%d (packed %d wide) at m=%d n=%d: "
                       "%.9g against %.9g\n", mdfi_sgemm_kernel_name(k), M, K1, K2, N, nb, m, n,
                       got[i], want[i]);
                ++failed;
            }
        }
    passed += !bad;
    free(a), free(b), free(a1), free(a2), free(pa), free(pa1), free(pa2);
    free(ws), free(pb1), free(pb2), free(want), free(got);
}

static void test_plain(const mdfi_sgemm_kernel *k, int mr)
{
    const int nr = k->nr, ns[] = {1, 2, 3, 8, 9, nr + 1, nr + 2, 3 * nr + 1, 3 * nr + 2,
                                  3 * nr + 7, 49, 50, 4 * nr};
    const int ms[] = {1, mr - 1, mr, 4 * mr + 1, 9 * mr + 5};
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 13; ++j) {
            plain_case(k, ms[i], 5, ns[j]);
            if (!quick)
                plain_case(k, ms[i], 40, ns[j]);
        }
}

static int max_mr(const mdfi_sgemm_kernel *k)
{
    int mr = 1;
    for (int i = 0; i < k->ntiles; ++i)
        if (k->tiles[i].mr > mr)
            mr = k->tiles[i].mr;
    return mr;
}

static void test_kernel(const mdfi_sgemm_kernel *k)
{
    int before = failed;
    /* The reference has no tiles; give it shapes like a vector ISA's. */
    const int mr = k->conv ? 6 : max_mr(k), nr = k->conv ? 16 : k->nr, kc = k->conv ? 64 : k->kc;
    /* Plain GEMM: M around MR, N around NR, K around the K block. */
    const int ns[] = {1, 2, nr - 1, nr, nr + 1, nr + 2, 2 * nr + 3, 3 * nr, 67};
    const int ks_q[] = {1, 3, 17, kc + 1};
    const int ks_f[] = {1, 2, 3, 7, 17, kc - 1, kc, kc + 1, 2 * kc + 5};
    const int *kl = quick ? ks_q : ks_f;
    int nk = quick ? 4 : 9;
    for (int M = 1; M <= 2 * mr + 1; ++M)
        for (int ni = 0; ni < 9; ++ni)
            for (int ki = 0; ki < nk; ++ki) {
                if (quick && (M + ni + ki) % 3)
                    continue;
                if (ns[ni] >= 1 && kl[ki] >= 1)
                    add(k, M, matrix_geom(kl[ki], ns[ni]));
            }
    test_epilogue_exact(k, 5 * nr + 3);
    test_epilogue_exact(k, 1);
    /* Epilogues x bias on one shape, all combinations. */
    for (int e = 0; e < 6; ++e) {
        tcase t = {mr + 3, matrix_geom(kc + 9, 2 * nr + 5), (mdfi_epilogue)(e % 3), e >= 3};
        run_case(k, &t);
    }
    /* Convolutions: kernel sizes, strides, paddings, non-square inputs. */
    const int sizes[] = {1, 3, 5, 7, 11};
    const int ms[] = {1, 5, 16, 33};
    for (int si = 0; si < 5; ++si)
        for (int s = 1; s <= 4; s *= 2)
            for (int pad = 0; pad <= 2; ++pad) {
                int ks = sizes[si], c = 1 + (si + s + pad) % 4;
                if (quick && (si + s + pad) % 2)
                    continue;
                add(k, ms[(si + pad) % 4], conv_geom(c, 13, 19, ks, s, pad));
                add(k, ms[(si + s) % 4], conv_geom(c + 2, ks + 4, ks + 1, ks, s, pad));
                if (!quick)
                    add(k, 2 * mr + 1, conv_geom(3, 31, 22, ks, s, ks / 2));
            }
    /* N = 1 (connected layers and 1x1 outputs), the gemv path. */
    const int gm[] = {1, 3, mr, mr + 1, 4 * mr + 1, 9 * mr + 5, 100};
    for (int i = 0; i < 7; ++i) {
        add(k, gm[i], matrix_geom(1 + 37 * i, 1));
        add(k, gm[i], conv_geom(3 + i, 3, 3, 3, 1, 0));
    }
    add(k, 21, matrix_geom(quick ? 1000 : 9216, 1));
    /* Layer-like shapes. */
    add(k, 64, conv_geom(16, 27, 30, 3, 1, 1));          /* several N blocks */
    add(k, 40, conv_geom(70, 9, 11, 3, 1, 1));           /* several K blocks */
    add(k, 33, conv_geom(64, 13, 13, 1, 1, 0));          /* pointwise */
    add(k, 16, conv_geom(3, 60, 47, 3, 1, 1));           /* first layer */
    add(k, 24, conv_geom(9, 40, 41, 3, 2, 1));           /* stride 2 */
    /* A narrow last panel (the cols edge) under more than eight A panels,
     * over several K blocks. */
    add(k, 8 * mr + 13, conv_geom(70, 7, 7, 3, 1, 1));
    add(k, 9 * mr + 1, matrix_geom(kc + 9, 3 * nr + 2));
    /* Dilation (its padding is pad * dilation, as AlexeyAB's) and separate
     * vertical and horizontal strides. */
    for (int d = 2; d <= 3; ++d)
        for (int sx = 1; sx <= 2; ++sx)
            for (int sy = 1; sy <= 3; ++sy) {
                int ks = d == 2 ? 3 : 5, p = ks / 2;
                mdfi_conv_geom g = {5, 23, 21, ks, sx, p * d, 0, 0, sy, d};
                g.out_h = (23 + 2 * p - ks) / sy + 1;
                g.out_w = (21 + 2 * p - ks) / sx + 1;
                add(k, 7 + d + sx + sy, g);
                mdfi_conv_geom g1 = conv_geom(6, 17, 12, 3, sx, 1);   /* undilated */
                g1.stride_y = sy;
                g1.out_h = (17 + 2 - 3) / sy + 1;
                add(k, 2 * mr + 1, g1);
            }
    if (!quick) {
        add(k, 256, conv_geom(128, 26, 26, 3, 1, 1));    /* YOLOv3-tiny layer 6 */
        add(k, 255, conv_geom(256, 26, 26, 1, 1, 0));
        add(k, 1024, conv_geom(512, 13, 13, 3, 1, 1));   /* YOLOv3-tiny layer 13 */
        add(k, 32, conv_geom(16, 208, 208, 3, 1, 1));
    }
    test_plain(k, mr);
    printf("%-6s %s\n", mdfi_sgemm_kernel_name(k), failed == before ? "ok" : "FAILED");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best-of time of [0, N) for one shape, in GFLOP/s. */
static double bench_shape(const mdfi_sgemm_kernel *k, int M, mdfi_conv_geom g)
{
    int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
    size_t in_n = (size_t)g.channels * g.in_h * g.in_w;
    float *a = xalloc((size_t)M * K * sizeof(float)), *in = xalloc(in_n * sizeof(float));
    float *bias = xalloc((size_t)M * sizeof(float)), *c = xalloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = frand();
    for (size_t i = 0; i < in_n; ++i)
        in[i] = frand();
    for (int i = 0; i < M; ++i)
        bias[i] = frand();
    float *pa = xalloc(mdfi_sgemm_packed_a_size(k, M, K));
    mdfi_sgemm_pack_a(k, M, K, a, pa);
    float *ws = xalloc(mdfi_sgemm_workspace_size(k, M, &g));
    double best = 1e30, total = 0;
    for (int it = 0; it < (quick ? 1 : 50) && (total < 0.4 || it < 3); ++it) {
        double t0 = now();
        mdfi_sgemm_conv(k, M, &g, pa, in, bias, MDFI_EPI_LEAKY, c, (size_t)N, 0, N, ws);
        double dt = now() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    free(a), free(in), free(bias), free(c), free(pa), free(ws);
    return 2.0 * M * K * N / best * 1e-9;
}

static void bench(const mdfi_sgemm_kernel *k)
{
    static const struct {
        int M, c, hw, ks;
    } shapes[] = {{256, 128, 26, 3}, {32, 16, 208, 3}, {1024, 512, 13, 3}, {16, 3, 416, 3}};
    /* YOLOv3-tiny's convolutions (416x416): output channels, input c, size, ksize. */
    static const struct {
        int M, c, hw, ks;
    } yolo[] = {{16, 3, 416, 3},    {32, 16, 208, 3},   {64, 32, 104, 3},  {128, 64, 52, 3},
                {256, 128, 26, 3},  {512, 256, 13, 3},  {1024, 512, 13, 3}, {256, 1024, 13, 1},
                {512, 256, 13, 3},  {255, 512, 13, 1},  {128, 256, 13, 1}, {256, 384, 26, 3},
                {255, 256, 26, 1}};
    for (int i = 0; i < 4; ++i) {
        mdfi_conv_geom g = conv_geom(shapes[i].c, shapes[i].hw, shapes[i].hw, shapes[i].ks, 1,
                                     shapes[i].ks / 2);
        int K = g.channels * g.ksize * g.ksize;
        double gf = bench_shape(k, shapes[i].M, g);
        printf("%-6s M=%-4d K=%-4d N=%-6d %7.1f GFLOP/s\n", mdfi_sgemm_kernel_name(k),
               shapes[i].M, K, g.out_h * g.out_w, gf);
        fflush(stdout);
    }
    if (quick)
        return;
    double secs = 0, flops = 0;
    for (size_t i = 0; i < sizeof yolo / sizeof yolo[0]; ++i) {
        mdfi_conv_geom g = conv_geom(yolo[i].c, yolo[i].hw, yolo[i].hw, yolo[i].ks, 1,
                                     yolo[i].ks / 2);
        double f = 2.0 * yolo[i].M * g.channels * g.ksize * g.ksize * g.out_h * g.out_w;
        secs += f / (bench_shape(k, yolo[i].M, g) * 1e9);
        flops += f;
    }
    printf("%-6s YOLOv3-tiny convs: %.2f GFLOP in %.1f ms, %.1f GFLOP/s\n",
           mdfi_sgemm_kernel_name(k), flops * 1e-9, secs * 1e3, flops / secs * 1e-9);
}

static int test_cpu(void)
{
    int bad = 0;
    for (int i = 0; i < MDFI_ISA_COUNT; ++i) {
        mdfi_isa isa;
        if (mdfi_isa_parse(mdfi_isa_name((mdfi_isa)i), &isa) || isa != (mdfi_isa)i)
            bad = 1;
        if ((mdfi_sgemm_kernel_for((mdfi_isa)i) != NULL) != mdfi_isa_available((mdfi_isa)i))
            bad = 1;
    }
    mdfi_isa tmp;
    if (!mdfi_isa_available(MDFI_ISA_REF) || !mdfi_isa_available(mdfi_isa_best()) ||
        mdfi_isa_parse("nope", &tmp) == 0)
        bad = 1;
    if (bad) {
        printf("FAIL cpu: isa names/availability inconsistent\n");
        ++failed;
    } else {
        ++passed;
    }
    printf("cpu: features 0x%x, best %s\n", mdfi_cpu_features(), mdfi_isa_name(mdfi_isa_best()));
    return bad;
}

int main(int argc, char **argv)
{
    int do_bench = 0, only = -1;
    for (int i = 1; i < argc; ++i) {
        mdfi_isa isa;
        const char *name = argv[i];
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
            continue;
        }
        if (!strcmp(argv[i], "--bench")) {
            do_bench = 1;
            continue;
        }
        if (!strcmp(argv[i], "--isa") && i + 1 < argc)
            name = argv[++i];
        if (mdfi_isa_parse(name, &isa)) {
            fprintf(stderr, "usage: %s [--quick] [--bench] [--isa] [ref|avx2|avx512|neon]\n",
                    argv[0]);
            return 2;
        }
        only = (int)isa;
    }
    if (only >= 0 && !mdfi_sgemm_kernel_for((mdfi_isa)only)) {
        printf("%s: not available on this build/CPU\n", mdfi_isa_name((mdfi_isa)only));
        return 3;
    }
    if (!do_bench)
        test_cpu();
    for (int i = 0; i < MDFI_ISA_COUNT; ++i) {
        const mdfi_sgemm_kernel *k = mdfi_sgemm_kernel_for((mdfi_isa)i);
        if (!k || (only >= 0 && i != only))
            continue;
        if (do_bench)
            bench(k);
        else
            test_kernel(k);
    }
    if (do_bench)
        return 0;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
