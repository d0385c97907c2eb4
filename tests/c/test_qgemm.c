/* Tests the integer GEMM variants the CPU runs against a naive convolution
 * and requantization written here from the text of qgemm.h, and benchmarks
 * them.
 *
 *   test_qgemm [--quick] [--variant NAME | NAME]   correctness (exit 1 on failure)
 *   test_qgemm --bench [--quick] [--variant NAME | NAME]
 *                                   GOP/s and MACs/cycle on YOLOv3-tiny shapes
 * NAME: a variant ("avx2-8"), or an ISA ("avx2": its 8- and 16-bit variants).
 *
 * Each case checks: [0, N) equal to the naive result exactly; several
 * [n0, n1) splits identical to the whole range; guards around C, the packed
 * A and the workspace untouched; workspace garbage does not leak into C.
 * The cases cycle through output widths, activations, pow2 / mult scales
 * (left shifts, shifts past 31 and 63 included), bias or none, and data
 * with the extreme values -128 / 127 (-32768 / 32767) in either operand,
 * as large as the int32 bound of qgemm.h allows; each variant's results
 * must saturate at both ends now and then.  Every variant's epilogue and
 * the scalar requantization also get corner values directly.
 * One line per failure with the whole case; then "N passed, N failed".
 * --bench: cycles from the core clock (x86-64: timed dependent imul chain)
 * or /proc/cpuinfo; fp32 is the sgemm of the best ISA on the same shapes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/qgemm_impl.h"
#include "kernels/sgemm.h"

#define GUARD 64         /* guard bytes on each side */
#define GUARD_BYTE 0xa7  /* no int8/int16 result is written as a run of these */

static int quick, passed, failed;
static long long sat_lo, sat_hi, outputs;   /* saturated results seen (the data must hit them) */

/* ---- random numbers and buffers ----------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}

/* Uniform in [lo, hi] (hi - lo < 2^32). */
static int64_t rnd_in(int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    uint64_t r = ((uint64_t)rnd() << 32) | rnd();
    return lo + (int64_t)(span ? r % span : r);
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

static int guard_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (p[i] != GUARD_BYTE)
            return 0;
    return 1;
}

/* ---- cases -------------------------------------------------------------- */

enum { DATA_RANDOM, DATA_SMALL, DATA_EXTREME_A, DATA_EXTREME_B, DATA_EXTREME_AB };
static const char *const data_names[] = {"random", "small", "extremeA", "extremeB", "extremeAB"};
static const char *const act_names[] = {"linear", "relu", "leaky"};

typedef struct {
    int M;
    mdfi_conv_geom g;
    int out_bits;     /* 8 or 16 */
    mdfi_qact act;
    int leaky_mult, leaky_shift;
    int mult_mode;    /* per-channel multiplier + shift */
    int no_bias;
    int data;         /* DATA_* */
    int big_bias;     /* bias near the int32 limit */
} tcase;

static void describe(const mdfi_qgemm_kernel *k, const tcase *t, char *buf, size_t n)
{
    const mdfi_conv_geom *g = &t->g;
    snprintf(buf, n,
             "variant=%s M=%d K=%d N=%d (c=%d in=%dx%d ks=%d s=%d pad=%d out=%dx%d) out=int%d "
             "act=%s(%d,%d) mode=%s bias=%s data=%s",
             mdfi_qgemm_kernel_name(k), t->M, g->channels * g->ksize * g->ksize,
             g->out_h * g->out_w, g->channels, g->in_h, g->in_w, g->ksize, g->stride, g->pad,
             g->out_h, g->out_w, t->out_bits, act_names[t->act], t->leaky_mult, t->leaky_shift,
             t->mult_mode ? "mult" : "pow2",
             t->no_bias ? "NULL" : t->big_bias ? "big" : "yes", data_names[t->data]);
}

static void fail(const mdfi_qgemm_kernel *k, const tcase *t, const char *what)
{
    char buf[400];
    describe(k, t, buf, sizeof buf);
    printf("FAIL %s: %s\n", buf, what);
    ++failed;
}

/* ---- the naive computation, from the text of qgemm.h --------------------- */

static int64_t naive_b(const mdfi_conv_geom *g, const int32_t *in, int k, int n)
{
    int c = k / (g->ksize * g->ksize), ky = (k / g->ksize) % g->ksize, kx = k % g->ksize;
    int iy = (n / g->out_w) * g->stride - g->pad + ky;
    int ix = (n % g->out_w) * g->stride - g->pad + kx;
    if (iy < 0 || ix < 0 || iy >= g->in_h || ix >= g->in_w)
        return 0;
    return in[((size_t)c * g->in_h + iy) * g->in_w + ix];
}

/* floor(v / 2^s + 1/2) for |v| <= 2^62, s >= 1: the formula where it cannot
 * overflow, the two limits by hand. */
static int64_t naive_rshift_round(int64_t v, int s)
{
    if (s >= 64)
        return 0;
    if (s == 63)
        return v == ((int64_t)1 << 62) ? 1 : 0;
    return (v + ((int64_t)1 << (s - 1))) >> s;
}

static int64_t naive_requant(int64_t acc, int m, const mdfi_qepilogue *e)
{
    int64_t a = acc;
    if (e->act == MDFI_QACT_RELU)
        a = acc > 0 ? acc : 0;
    if (e->act == MDFI_QACT_LEAKY && acc < 0)
        a = (int32_t)((acc * e->leaky_mult) >> e->leaky_shift);
    int64_t v = e->mult ? a * e->mult[m] : a;
    int s = e->shift[m];
    if (s > 0) {
        v = naive_rshift_round(v, s);
    } else if (v != 0) {
        /* v * 2^-s; anything of magnitude 2^24 or more saturates. */
        int l = -s;
        if (l >= 24 || v >= (1 << 24) || v <= -(1 << 24))
            v = v > 0 ? (1 << 24) : -(1 << 24);
        else
            v *= (int64_t)1 << l;
    }
    int64_t hi = e->out_bits == 8 ? 127 : 32767, lo = -hi - 1;
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- one case ----------------------------------------------------------- */

typedef struct {
    int32_t *a, *in;        /* as int32, for the naive loops */
    void *a_raw, *in_buf;   /* typed copies for the kernel (input misaligned) */
    const void *in_raw;
    int32_t *bias, *mult;
    int8_t *shift;
    int64_t *acc;           /* naive sums, M x N */
} tdata;

/* Magnitude limits of A and B that keep K*|A|*|B| + |bias| in int32. */
static void limits_any(const mdfi_qgemm_kernel *k, const tcase *t, int K, int64_t *amax,
                       int64_t *bmax);

/* A variant exact only for small weights (pair_max) gets weights of that size. */
static void limits(const mdfi_qgemm_kernel *k, const tcase *t, int K, int64_t *amax,
                   int64_t *bmax)
{
    limits_any(k, t, K, amax, bmax);
    if (k->pair_max && *amax > k->pair_max / 2)
        *amax = k->pair_max / 2;
}

static void limits_any(const mdfi_qgemm_kernel *k, const tcase *t, int K, int64_t *amax,
                       int64_t *bmax)
{
    const int64_t full = k->bits == 8 ? 128 : 32768;
    const int64_t room = ((int64_t)1 << 30) / K;   /* leaves 2^30 for the bias */
    switch (t->data) {
    case DATA_SMALL:
        *amax = 3, *bmax = 5;
        break;
    case DATA_EXTREME_A:
        *amax = full, *bmax = room / full < full ? room / full : full;
        break;
    case DATA_EXTREME_B:
        *bmax = full, *amax = room / full < full ? room / full : full;
        break;
    case DATA_EXTREME_AB:   /* int16: K = 1 only (otherwise capped by room) */
        *amax = full;
        *bmax = room / full < full ? room / full : full;
        if (k->bits == 16 && K == 1)
            *bmax = full;
        break;
    default: {
        int64_t m = full;
        while (m * m > room)
            m /= 2;
        *amax = *bmax = m;
    }
    }
    if (*amax < 1)
        *amax = 1;
    if (*bmax < 1)
        *bmax = 1;
}

/* Values in [-lim, lim - 1]; extremes often, when lim is the type's range. */
static int32_t value(int64_t lim, int extreme, int bits)
{
    const int64_t full = bits == 8 ? 128 : 32768;
    if (extreme && lim == full) {
        uint32_t r = rnd() % 4;
        if (r == 0)
            return (int32_t)-full;
        if (r == 1)
            return (int32_t)(full - 1);
    }
    return (int32_t)rnd_in(-lim, lim - 1);
}

static void make_data(const mdfi_qgemm_kernel *k, const tcase *t, tdata *d)
{
    const mdfi_conv_geom *g = &t->g;
    const int M = t->M, K = g->channels * g->ksize * g->ksize, N = g->out_h * g->out_w;
    const size_t in_n = (size_t)g->channels * g->in_h * g->in_w, eb = (size_t)k->bits / 8;
    int64_t amax, bmax;
    limits(k, t, K, &amax, &bmax);
    const int ext_a = t->data == DATA_EXTREME_A || t->data == DATA_EXTREME_AB;
    const int ext_b = t->data == DATA_EXTREME_B || t->data == DATA_EXTREME_AB;
    d->a = xalloc((size_t)M * K * sizeof(int32_t));
    d->in = xalloc((in_n + 1) * sizeof(int32_t));
    d->a_raw = xalloc((size_t)M * K * eb);
    d->in_buf = xalloc((in_n + 1) * eb);
    d->in_raw = (char *)d->in_buf + eb;   /* only element-aligned, as a layer may pass */
    for (size_t i = 0; i < (size_t)M * K; ++i)
        d->a[i] = value(amax, ext_a, k->bits);
    for (size_t i = 0; i < in_n; ++i)
        d->in[i] = value(bmax, ext_b, k->bits);
    for (size_t i = 0; i < (size_t)M * K; ++i) {
        if (eb == 1)
            ((int8_t *)d->a_raw)[i] = (int8_t)d->a[i];
        else
            ((int16_t *)d->a_raw)[i] = (int16_t)d->a[i];
    }
    for (size_t i = 0; i < in_n; ++i) {
        if (eb == 1)
            ((int8_t *)d->in_buf)[i + 1] = (int8_t)d->in[i];
        else
            ((int16_t *)d->in_buf)[i + 1] = (int16_t)d->in[i];
    }
    /* Naive sums without bias, exact in int64 (B as an int32 matrix first). */
    d->acc = xalloc((size_t)M * N * sizeof(int64_t));
    int32_t *bm = xalloc((size_t)K * N * sizeof(int32_t));
    for (int kk = 0; kk < K; ++kk)
        for (int n = 0; n < N; ++n)
            bm[(size_t)kk * N + n] = (int32_t)naive_b(g, d->in, kk, n);
    for (int m = 0; m < M; ++m) {
        int64_t *row = d->acc + (size_t)m * N;
        for (int n = 0; n < N; ++n)
            row[n] = 0;
        for (int kk = 0; kk < K; ++kk) {
            int64_t av = d->a[(size_t)m * K + kk];
            const int32_t *br = bm + (size_t)kk * N;
            for (int n = 0; n < N; ++n)
                row[n] += av * br[n];
        }
    }
    free(bm);
    /* Bias: around the sums' size, or near the limit the bound allows. */
    d->bias = xalloc((size_t)M * sizeof(int32_t));
    d->mult = xalloc((size_t)M * sizeof(int32_t));
    d->shift = xalloc((size_t)M);
    const int64_t sum_max = (int64_t)K * amax * bmax;
    for (int m = 0; m < M; ++m) {
        int64_t bl = sum_max > 0 ? sum_max : 1;
        if (bl > INT32_MAX - sum_max)
            bl = INT32_MAX - sum_max;
        if (t->big_bias)
            d->bias[m] = (int32_t)((rnd() & 1 ? 1 : -1) * (INT32_MAX - sum_max));
        else
            d->bias[m] = (int32_t)rnd_in(-bl, bl);
    }
    /* Scales: mostly around the sums' magnitude, with left shifts, zero,
     * and shifts past 31 / 63 mixed in; multipliers of both signs and
     * extreme sizes. */
    for (int m = 0; m < M; ++m) {
        int64_t mx = 1;
        const int64_t bias = t->no_bias ? 0 : d->bias[m];
        for (int n = 0; n < N; ++n) {
            int64_t v = d->acc[(size_t)m * N + n] + bias;
            if (v < 0)
                v = -v;
            if (v > mx)
                mx = v;
        }
        int lg = 0;
        while (((int64_t)1 << lg) < mx)
            ++lg;
        int base = lg - (t->out_bits - 2);
        uint32_t pick = rnd() % 16;
        int32_t mult = 0;
        if (t->mult_mode) {
            static const int32_t specials[] = {1, -1, 0, INT32_MAX, INT32_MIN, 1 << 30, 3};
            /* 1..32767 as .qweights files hold (the AVX2 epilogue's fast rows) */
            mult = pick < 5 ? (int32_t)rnd_in(1 << 30, INT32_MAX)
                            : pick < 10 ? (int32_t)rnd_in(1, 32767)
                            : pick < 12 ? (int32_t)rnd_in(INT32_MIN, -1)
                                        : specials[rnd() % 7];
            int lm = 0;   /* log2 |mult| */
            while (lm < 31 && ((int64_t)1 << lm) < (mult < 0 ? -(int64_t)mult : mult))
                ++lm;
            base += lm;
        }
        int s;
        if (pick == 13)
            s = -(int)(rnd() % 20);                 /* left shifts (saturate often) */
        else if (pick == 14)
            s = 30 + (int)(rnd() % 40);             /* large: 0 / -1 rounding */
        else if (pick == 15)
            s = rnd() % 2 ? 127 : -128;
        else
            s = base + (int)(rnd() % 7) - 3;
        if (s > 127)
            s = 127;
        if (s < -128)
            s = -128;
        d->shift[m] = (int8_t)s;
        d->mult[m] = mult;
    }
}

static void free_data(tdata *d)
{
    free(d->a), free(d->in), free(d->a_raw), free(d->in_buf), free(d->bias), free(d->mult);
    free(d->shift), free(d->acc);
}

static int run_range(const mdfi_qgemm_kernel *k, const tcase *t, const void *pa, const tdata *d,
                     const mdfi_qepilogue *e, void *c, size_t ldc, int n0, int n1,
                     unsigned char *ws, size_t ws_bytes)
{
    memset(ws, (int)(rnd() & 0xff), ws_bytes);   /* garbage */
    memset(ws + ws_bytes, GUARD_BYTE, GUARD);
    mdfi_qgemm_conv(k, t->M, &t->g, pa, d->in_raw, e, (char *)c + (size_t)n0 * (e->out_bits / 8),
                    ldc, n0, n1, ws);
    return guard_ok(ws + ws_bytes, GUARD) ? 0 : -1;
}

static int64_t c_at(const void *c, int bits, size_t i)
{
    return bits == 8 ? ((const int8_t *)c)[i] : ((const int16_t *)c)[i];
}

/* The channel-grouped form (mdfi_qgemm_conv_cg) where the kernel and shape
 * take it: its own A order and packing, X made row by row, the whole range
 * and a split one; both must give want's bytes (the plain form's). */
static int check_cg(const mdfi_qgemm_kernel *k, const tcase *t, const tdata *d,
                    const mdfi_qepilogue *e, const void *want, size_t ldc, char *msg, size_t n)
{
    const mdfi_conv_geom *g = &t->g;
    if (!mdfi_qgemm_cg_ok(k, g))
        return 0;
    const mdfi_conv_geom cg = mdfi_qgemm_cg_geom(k, g);
    const int M = t->M, K = g->channels * g->ksize * g->ksize, N = g->out_h * g->out_w;
    const int K2 = cg.channels * g->ksize * g->ksize, G = mdfi_qgemm_kgroup(k);
    const size_t ib = (size_t)k->bits / 8, ob = (size_t)t->out_bits / 8;
    void *a2 = xalloc((size_t)M * K2 * ib);
    mdfi_qgemm_cg_order(k, g, M, d->a_raw, a2);
    const size_t pa_bytes = mdfi_qgemm_packed_a_size(k, M, K2);
    unsigned char *pa = xalloc(pa_bytes);
    mdfi_qgemm_pack_a(k, M, K2, a2, pa);
    const size_t x_bytes = mdfi_qgemm_cg_bytes(k, g);
    unsigned char *X = xalloc(x_bytes + GUARD);
    memset(X, 0x5a, x_bytes);   /* garbage: every byte the GEMM reads must be written */
    memset(X + x_bytes, GUARD_BYTE, GUARD);
    const size_t plane = (size_t)g->in_h * g->in_w;
    char *zero = xalloc((size_t)g->in_w * ib);
    memset(zero, 0, (size_t)g->in_w * ib);
    for (int q = 0; q < cg.channels / G; ++q) {
        mdfi_qgemm_cg_pad_rows(k, g, X, q);
        for (int y = 0; y < g->in_h; ++y) {
            const void *rows[4];
            for (int c = 0; c < G; ++c)
                rows[c] = q * G + c < g->channels
                              ? (const char *)d->in_raw +
                                    ((size_t)(q * G + c) * plane + (size_t)y * g->in_w) * ib
                              : zero;
            mdfi_qgemm_cg_put_row(k, g, rows, X, q, y);
        }
    }
    const size_t ws_bytes = mdfi_qgemm_workspace_size(k, M, &cg);
    unsigned char *ws = xalloc(ws_bytes + GUARD);
    const size_t c_bytes = (size_t)M * ldc * ob;
    char *c = xalloc(c_bytes);
    int bad = !guard_ok(X + x_bytes, GUARD);
    if (bad)
        snprintf(msg, n, "cg: put_row wrote past mdfi_qgemm_cg_bytes");
    const int cuts[3] = {0, N / 2 + 1 < N ? N / 2 + 1 : N, N};
    for (int split = 0; split < 2 && !bad; ++split) {
        memset(c, 0x77, c_bytes);
        for (int i = 0; i < (split ? 2 : 1); ++i) {
            const int n0 = split ? cuts[i] : 0, n1 = split ? cuts[i + 1] : N;
            memset(ws, (int)(rnd() & 0xff), ws_bytes);
            memset(ws + ws_bytes, GUARD_BYTE, GUARD);
            mdfi_qgemm_conv_cg(k, M, g, pa, X, e, c + (size_t)n0 * ob, ldc, n0, n1, ws);
            if (!guard_ok(ws + ws_bytes, GUARD)) {
                snprintf(msg, n, "cg: wrote past the workspace of cg_geom");
                bad = 1;
            }
        }
        for (int m = 0; m < M && !bad; ++m)
            if (memcmp(c + (size_t)m * ldc * ob, (const char *)want + (size_t)m * ldc * ob,
                       (size_t)N * ob)) {
                snprintf(msg, n, "cg%s: row m=%d differs from the plain form (K %d -> %d)",
                         split ? " split" : "", m, K, K2);
                bad = 1;
            }
    }
    free(a2), free(pa), free(X), free(zero), free(ws), free(c);
    return bad;
}

static long long cg_cases;

static void run_case(const mdfi_qgemm_kernel *k, const tcase *t)
{
    const mdfi_conv_geom *g = &t->g;
    const int M = t->M, K = g->channels * g->ksize * g->ksize, N = g->out_h * g->out_w;
    const size_t ldc = (size_t)N + 3, ob = (size_t)t->out_bits / 8;
    const size_t c_bytes = (size_t)M * ldc * ob;
    char msg[300];
    tdata d;
    make_data(k, t, &d);
    mdfi_qepilogue e = {t->no_bias ? NULL : d.bias, t->mult_mode ? d.mult : NULL, d.shift,
                        t->act, t->leaky_mult, t->leaky_shift, t->out_bits, 0};

    /* Sums must fit int32 (a check of the test's own data). */
    for (size_t i = 0; i < (size_t)M * N; ++i) {
        int64_t v = d.acc[i] + (t->no_bias ? 0 : d.bias[i / N]);
        if (v > INT32_MAX || v < INT32_MIN) {
            fail(k, t, "test bug: sum outside int32");
            free_data(&d);
            return;
        }
    }

    size_t pa_bytes = mdfi_qgemm_packed_a_size(k, M, K);
    unsigned char *pa = xalloc(pa_bytes + GUARD);
    memset(pa, 0x3c, pa_bytes);
    memset(pa + pa_bytes, GUARD_BYTE, GUARD);
    mdfi_qgemm_pack_a(k, M, K, d.a_raw, pa);
    size_t ws_bytes = mdfi_qgemm_workspace_size(k, M, g);
    unsigned char *ws = xalloc(ws_bytes + GUARD);
    unsigned char *whole = xalloc(c_bytes + 2 * GUARD), *split = xalloc(c_bytes + 2 * GUARD);
    memset(whole, GUARD_BYTE, c_bytes + 2 * GUARD);
    memset(split, GUARD_BYTE, c_bytes + 2 * GUARD);
    void *cw = whole + GUARD, *cs = split + GUARD;
    if (!guard_ok(pa + pa_bytes, GUARD)) {
        fail(k, t, "pack_a wrote past mdfi_qgemm_packed_a_size");
        goto out;
    }
    if (run_range(k, t, pa, &d, &e, cw, ldc, 0, N, ws, ws_bytes)) {
        fail(k, t, "wrote past mdfi_qgemm_workspace_size");
        goto out;
    }
    /* Cuts, at least one off any tile boundary. */
    int cuts[5] = {0, N / 3, N / 3 + 1 + (int)(rnd() % 7), (2 * N) / 3 + 1, N};
    for (int i = 1; i < 5; ++i) {
        if (cuts[i] > N)
            cuts[i] = N;
        if (cuts[i] < cuts[i - 1])
            cuts[i] = cuts[i - 1];
    }
    for (int i = 0; i < 4; ++i)
        if (run_range(k, t, pa, &d, &e, cs, ldc, cuts[i], cuts[i + 1], ws, ws_bytes)) {
            fail(k, t, "wrote past mdfi_qgemm_workspace_size (split)");
            goto out;
        }
    for (size_t i = 0; i < c_bytes + 2 * GUARD; ++i) {
        long long pos = (long long)i - GUARD;
        long long el = pos >= 0 ? pos / (long long)ob : -1;
        int inside = pos >= 0 && pos < (long long)c_bytes && (size_t)el % ldc < (size_t)N;
        if (!inside && (whole[i] != GUARD_BYTE || split[i] != GUARD_BYTE)) {
            snprintf(msg, sizeof msg, "wrote outside C at byte offset %lld", pos);
            fail(k, t, msg);
            goto out;
        }
    }
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            size_t i = (size_t)m * ldc + n;
            int64_t acc = d.acc[(size_t)m * N + n] + (t->no_bias ? 0 : d.bias[m]);
            int64_t want = naive_requant(acc, m, &e);
            sat_lo += want == (t->out_bits == 8 ? -128 : -32768);
            sat_hi += want == (t->out_bits == 8 ? 127 : 32767);
            ++outputs;
            int64_t got = c_at(cw, t->out_bits, i), got_split = c_at(cs, t->out_bits, i);
            if (got != want) {
                snprintf(msg, sizeof msg,
                         "m=%d n=%d got %lld want %lld (acc %lld shift %d mult %ld)", m, n,
                         (long long)got, (long long)want, (long long)acc, d.shift[m],
                         (long)(t->mult_mode ? d.mult[m] : 0));
                fail(k, t, msg);
                goto out;
            }
            if (got_split != got) {
                snprintf(msg, sizeof msg, "split [%d,%d,%d,%d,%d] differs at m=%d n=%d: %lld vs %lld",
                         cuts[0], cuts[1], cuts[2], cuts[3], cuts[4], m, n, (long long)got_split,
                         (long long)got);
                fail(k, t, msg);
                goto out;
            }
        }
    if (check_cg(k, t, &d, &e, cw, ldc, msg, sizeof msg)) {
        fail(k, t, msg);
        goto out;
    }
    cg_cases += mdfi_qgemm_cg_ok(k, &t->g);
    ++passed;
out:
    free(pa), free(ws), free(whole), free(split);
    free_data(&d);
}

/* ---- the shape classes -------------------------------------------------- */

static mdfi_conv_geom conv_geom(int c, int h, int w, int ks, int s, int pad)
{
    mdfi_conv_geom g = {c, h, w, ks, s, pad, (h + 2 * pad - ks) / s + 1, (w + 2 * pad - ks) / s + 1,
                        s, 1};
    return g;
}

static mdfi_conv_geom matrix_geom(int K, int N)
{
    mdfi_conv_geom g = {K, 1, N, 1, 1, 0, 1, N, 1, 1};
    return g;
}

static const struct {
    int mult, shift;
} leaky_params[] = {{13, 7},    {26, 8},      {3277, 15},     {1, 0},         {1, 3},   {0, 4},
                    {5, 40},    {1, 63},      {-3, 2},        {65535, 16},    {1 << 20, 20},
                    {INT32_MAX, 31}, {-1, 0}};

static int case_no;

/* Cycles every option through the cases. */
static void add(const mdfi_qgemm_kernel *k, int M, mdfi_conv_geom g)
{
    int i = case_no++;
    if (g.out_h < 1 || g.out_w < 1 || M < 1)
        return;
    tcase t;
    memset(&t, 0, sizeof t);
    t.M = M;
    t.g = g;
    t.out_bits = i % 2 ? 16 : 8;
    t.act = (mdfi_qact)(i / 2 % 3);
    int lp = (int)(rnd() % (sizeof leaky_params / sizeof leaky_params[0]));
    t.leaky_mult = leaky_params[lp].mult;
    t.leaky_shift = leaky_params[lp].shift;
    t.mult_mode = i / 6 % 2;
    t.no_bias = i % 5 == 4;
    t.data = i % 7 == 3 ? DATA_SMALL : (int)(rnd() % 5);
    t.big_bias = !t.no_bias && i % 11 == 7;
    run_case(k, &t);
}

static int max_mr(const mdfi_qgemm_kernel *k)
{
    int mr = 1;
    for (int i = 0; i < k->ntiles; ++i)
        if (k->tiles[i].mr > mr)
            mr = k->tiles[i].mr;
    return mr;
}

static void test_kernel(const mdfi_qgemm_kernel *k)
{
    const int before = failed;
    sat_lo = sat_hi = outputs = cg_cases = 0;
    /* The reference has no tiles; give it shapes like a vector ISA's. */
    const int mr = k->conv ? 6 : max_mr(k), nr = k->conv ? 16 : k->nr;
    const int kc = k->conv ? 64 : k->kc, G = k->conv ? 4 : k->kgrp;
    /* Plain GEMM: M around MR, N around NR (and NR/2), K odd, small, around
     * the group and the K block. */
    const int ns[] = {1, 2, nr / 2, nr / 2 + 1, nr - 1, nr, nr + 1, 2 * nr + 3, 3 * nr, 67};
    const int kl[] = {1, 2, 3, G + 1, 7, 17, kc - 1, kc, kc + 1, 2 * kc + 5};
    for (int M = 1; M <= 2 * mr + 1; ++M)
        for (int ni = 0; ni < 10; ++ni)
            for (int ki = 0; ki < 10; ++ki) {
                if ((M + ni + ki) % (quick ? 3 : 2) || (quick && ki == 9 && M % 4))
                    continue;
                add(k, M, matrix_geom(kl[ki], ns[ni]));
            }
    /* Every option combination on one small shape. */
    for (int i = 0; i < (quick ? 24 : 96); ++i)
        add(k, mr + 3, matrix_geom(2 * G + 1, 2 * nr + 5));
    /* Convolutions: kernel sizes, strides, paddings, non-square inputs. */
    const int sizes[] = {1, 3, 5, 7, 11};
    const int ms[] = {1, 5, 16, 33};
    for (int si = 0; si < 5; ++si)
        for (int s = 1; s <= 4; s *= 2)
            for (int pad = 0; pad <= 2; ++pad) {
                int ks = sizes[si], c = 1 + (si + s + pad) % 4;
                add(k, ms[(si + pad) % 4], conv_geom(c, 13, 19, ks, s, pad));
                add(k, ms[(si + s) % 4], conv_geom(c + 2, ks + 4, ks + 1, ks, s, pad));
                if (!quick || (si + s + pad) % 3 == 0)
                    add(k, 2 * mr + 1, conv_geom(3, 31, 22, ks, s, ks / 2));
            }
    /* Tiny images under wide padding (windows hanging over both sides). */
    add(k, 3, conv_geom(2, 1, 1, 5, 1, 2));
    add(k, 4, conv_geom(1, 2, 1, 5, 1, 2));
    add(k, 5, conv_geom(3, 1, 3, 5, 1, 2));
    add(k, 2, conv_geom(2, 3, 2, 7, 1, 3));
    add(k, 7, conv_geom(2, 1, 1, 3, 2, 2));
    add(k, 6, conv_geom(1, 2, 40, 5, 1, 2));
    /* N = 1 (connected layers, 1x1 outputs). */
    const int gm[] = {1, 3, mr, mr + 1, 4 * mr + 1, 100};
    for (int i = 0; i < 6; ++i) {
        add(k, gm[i], matrix_geom(1 + 37 * i, 1));
        add(k, gm[i], conv_geom(3 + i, 3, 3, 3, 1, 0));
    }
    /* Layer-like shapes: several N blocks, several K blocks, pointwise,
     * first layer, stride 2, a long K. */
    add(k, 40, conv_geom(16, 27, 30, 3, 1, 1));
    add(k, 40, conv_geom(quick ? 70 : 300, 9, 11, 3, 1, 1));
    add(k, 33, conv_geom(64, 13, 13, 1, 1, 0));
    add(k, 16, conv_geom(3, 60, 47, 3, 1, 1));
    add(k, 24, conv_geom(9, 40, 41, 3, 2, 1));
    if (!quick) {
        add(k, 64, matrix_geom(k->bits == 8 ? 4608 : 1152, 70));
        add(k, 256, conv_geom(128, 26, 26, 3, 1, 1));
        add(k, 255, conv_geom(256, 26, 26, 1, 1, 0));
        add(k, 96, conv_geom(512, 13, 13, 3, 1, 1));    /* K = 4608 */
        add(k, 32, conv_geom(16, 208, 208, 3, 1, 1));
        add(k, 16, conv_geom(3, 416, 416, 3, 1, 1));
    }
    if (outputs && (sat_lo * 200 < outputs || sat_hi * 200 < outputs)) {
        printf("FAIL %s: test data saturated only %lld low / %lld high of %lld outputs\n",
               k->name, sat_lo, sat_hi, outputs);
        ++failed;
    }
    printf("%-14s %s\n", mdfi_qgemm_kernel_name(k), failed == before ? "ok" : "FAILED");
    printf("%s cg cases %lld\n", mdfi_qgemm_kernel_name(k), cg_cases);
    fflush(stdout);
}

/* Requantization corner cases straight through the epilogue functions. */
static void test_requant_cases(void)
{
    /* (value, shift, mult) triples whose rounding is easy to get wrong. */
    static const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, 127, 128, -128, -129, 255, 256, -255,
                                 -256, 32767, 32768, -32768, -32769, INT32_MAX, INT32_MIN,
                                 INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)};
    static const int shifts[] = {-128, -40, -31, -17, -16, -15, -8, -1, 0, 1, 2, 7, 8, 15,
                                 16, 17, 30, 31, 32, 33, 62, 63, 64, 65, 127};
    static const int32_t mults[] = {1, -1, 0, 2, INT32_MAX, INT32_MIN, 1 << 30, 1518500250};
    const int nx = sizeof xs / sizeof xs[0], ns = sizeof shifts / sizeof shifts[0];
    const int nm = sizeof mults / sizeof mults[0];
    int bad = 0;
    for (int mi = -1; mi < nm && !bad; ++mi)
        for (int si = 0; si < ns && !bad; ++si)
            for (int act = 0; act < 3 && !bad; ++act)
                for (int ob = 8; ob <= 16 && !bad; ob += 8)
                    for (int xi = 0; xi < nx && !bad; ++xi) {
                        int32_t mult = mi >= 0 ? mults[mi] : 0;
                        int8_t shift = (int8_t)shifts[si];
                        mdfi_qepilogue e = {NULL, mi >= 0 ? &mult : NULL, &shift,
                                            (mdfi_qact)act, 13, 7, ob, 0};
                        int64_t want = naive_requant(xs[xi], 0, &e);
                        int64_t got = mdfi_qgemm_requant(xs[xi], 0, &e);
                        if (got != want) {
                            printf("FAIL requant: x=%d shift=%d mult=%d act=%s out=int%d: got "
                                   "%lld want %lld\n",
                                   xs[xi], shift, mult, act_names[act], ob, (long long)got,
                                   (long long)want);
                            ++failed;
                            bad = 1;
                        }
                    }
    if (!bad)
        ++passed;
}

/* The same corner values through each variant's (vector) epilogue. */
static void test_epilogue(const mdfi_qgemm_kernel *k)
{
    if (k->conv)
        return;
    const mdfi_qgemm_epi fn = k->epi ? k->epi : mdfi_qgemm_epi_scalar;
    enum { R = 6, W = 37 };
    int32_t acc[R * W], bias[R], mult[R];
    uint32_t corr[R];
    int8_t shift[R];
    int16_t out[R * W];
    int bad = 0;
    for (int it = 0; it < (quick ? 300 : 3000) && !bad; ++it) {
        int mode = it % 2, act = it / 2 % 3, ob = it / 6 % 2 ? 16 : 8;
        int lp = (int)(rnd() % (sizeof leaky_params / sizeof leaky_params[0]));
        int mv = 1 + (int)(rnd() % R), nv = 1 + (int)(rnd() % W);
        for (int r = 0; r < R; ++r) {
            bias[r] = (int32_t)rnd();
            corr[r] = rnd() % 4 ? 0 : rnd();
            mult[r] = rnd() % 3 ? (int32_t)rnd() : (int32_t)(rnd() % 4096);
            int s = (int)(rnd() % 80) - 16;
            if (rnd() % 8 == 0)
                s = (int)(rnd() % 256) - 128;
            shift[r] = (int8_t)s;
        }
        for (int i = 0; i < R * W; ++i) {
            uint32_t v = rnd();
            acc[i] = (int32_t)(rnd() % 2 ? v : v % 65536u - 32768u);
        }
        mdfi_qepilogue e = {rnd() % 4 ? bias : NULL, mode ? mult : NULL, shift, (mdfi_qact)act,
                            leaky_params[lp].mult, leaky_params[lp].shift, ob, 0};
        const uint32_t *cp = k->b_conv == MDFI_QB_XOR80 ? corr : NULL;
        memset(out, GUARD_BYTE, sizeof out);
        fn(&e, 0, cp, acc, W, mv, nv, out, W);
        for (int r = 0; r < R && !bad; ++r)
            for (int j = 0; j < W && !bad; ++j) {
                size_t i = (size_t)r * W + j;
                if (r >= mv || j >= nv) {
                    const unsigned char *pb = (const unsigned char *)out + i * (ob / 8);
                    if (pb[0] != GUARD_BYTE || (ob == 16 && pb[1] != GUARD_BYTE)) {
                        printf("FAIL epilogue %s: wrote outside the tile (r=%d j=%d mv=%d nv=%d)\n",
                               k->name, r, j, mv, nv);
                        ++failed;
                        bad = 1;
                    }
                    continue;
                }
                uint32_t x = (uint32_t)acc[i] + (e.bias ? (uint32_t)bias[r] : 0u) -
                             (cp ? corr[r] : 0u);
                int64_t want = naive_requant((int32_t)x, r, &e);
                int64_t got = ob == 8 ? ((int8_t *)out)[i] : out[i];
                if (got != want) {
                    printf("FAIL epilogue %s: x=%d shift=%d mult=%s%d act=%s(%d,%d) out=int%d: got "
                           "%lld want %lld\n",
                           k->name, (int32_t)x, shift[r], mode ? "" : "none/", mult[r],
                           act_names[act], e.leaky_mult, e.leaky_shift, ob, (long long)got,
                           (long long)want);
                    ++failed;
                    bad = 1;
                }
            }
    }
    if (!bad)
        ++passed;
}

static void test_api(void)
{
    int bad = 0;
    /* kernel_for gives a runnable variant of the ISA and width, or NULL. */
    for (int i = 0; i < MDFI_ISA_COUNT; ++i)
        for (int bits = 8; bits <= 16; bits += 8) {
            const mdfi_qgemm_kernel *k = mdfi_qgemm_kernel_for((mdfi_isa)i, bits);
            if (k && (k->isa != (mdfi_isa)i || k->bits != bits || !mdfi_qgemm_runnable(k)))
                bad = 1;
            if (!k && mdfi_isa_available((mdfi_isa)i))
                bad = 1;   /* every available ISA has both widths */
        }
    if (!mdfi_qgemm_kernel_for(MDFI_ISA_REF, 8) || mdfi_qgemm_kernel_for(MDFI_ISA_REF, 4))
        bad = 1;
    if (!mdfi_qgemm_fits(4608, 128, 128, 0) || !mdfi_qgemm_fits(1, 32768, 32768, 0) ||
        mdfi_qgemm_fits(2, 32768, 32768, 0) || mdfi_qgemm_fits(131072, 128, 128, 1) ||
        !mdfi_qgemm_fits(131071, 128, 128, 0) || mdfi_qgemm_fits(1, 1, 1, INT32_MAX) ||
        !mdfi_qgemm_fits(0, 32768, 32768, INT32_MAX) || !mdfi_qgemm_fits(INT32_MAX, 0, 5, 7))
        bad = 1;
    /* kernel_for_a: a variant with pair_max only for weights whose adjacent
     * pairs fit it (the pairs are k = 2i, 2i + 1 of each row; an odd K's
     * last k pairs with the zero padding) */
    for (int i = 0; i < mdfi_qgemm_variant_count(); ++i) {
        const mdfi_qgemm_kernel *k = mdfi_qgemm_variant(i);
        if (!k->pair_max || !mdfi_qgemm_runnable(k))
            continue;
        int8_t a[2][5] = {{64, -64, 1, 2, -64}, {-3, 4, 64, 64, 64}};
        if (mdfi_qgemm_kernel_for_a(k->isa, 8, a, 2, 5) != k)
            bad = 1;
        a[1][1] = 65;   /* -3, 65: 68; 65 beside 64 elsewhere would be 129 */
        a[1][2] = 63;
        if (mdfi_qgemm_kernel_for_a(k->isa, 8, a, 2, 5) != k)
            bad = 1;
        a[1][3] = 66;   /* 63 + 66 = 129 */
        if (mdfi_qgemm_kernel_for_a(k->isa, 8, a, 2, 5) == k ||
            mdfi_qgemm_kernel_for_a(k->isa, 8, a, 2, 5) != mdfi_qgemm_kernel_for(k->isa, 8))
            bad = 1;
        if (mdfi_qgemm_kernel_for(k->isa, 8) == k)   /* never for unknown weights */
            bad = 1;
    }
    if (bad) {
        printf("FAIL api: kernel_for / fits inconsistent\n");
        ++failed;
    } else {
        ++passed;
    }
    const mdfi_qgemm_kernel *k8 = mdfi_qgemm_kernel_for(mdfi_isa_best(), 8);
    const mdfi_qgemm_kernel *k16 = mdfi_qgemm_kernel_for(mdfi_isa_best(), 16);
    printf("cpu: features 0x%x, best %s / %s\n", mdfi_cpu_features(), mdfi_qgemm_kernel_name(k8),
           mdfi_qgemm_kernel_name(k16));
}

/* ---- benchmark ---------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Core cycles per second and how they were found.  x86-64: timing a chain
 * of dependent 64-bit imul (3 cycles each on every x86-64 core of the last
 * fifteen years), which follows turbo, unlike the TSC (printed too).
 * Elsewhere: "cpu MHz" of /proc/cpuinfo when there is one. */
static double clock_hz(char *how, size_t n)
{
#if defined(__x86_64__)
    double best = 0;
    for (int rep = 0; rep < 20; ++rep) {   /* the fastest: least disturbed */
        long cnt = 10000000, x = 3;
        double t0 = now();
        __asm__ volatile("1:\n\timul %0, %0\n\timul %0, %0\n\tsub $2, %1\n\tjnz 1b"
                         : "+r"(x), "+r"(cnt)
                         :
                         : "cc");
        double hz = 3.0 * 10000000 / (now() - t0);
        if (hz > best)
            best = hz;
    }
    unsigned lo, hi;
    double t0 = now();
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    uint64_t c0 = ((uint64_t)hi << 32) | lo;
    while (now() - t0 < 0.02) {
    }
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    double tsc = (double)((((uint64_t)hi << 32) | lo) - c0) / (now() - t0);
    snprintf(how, n, "core clock timed with a dependent imul chain (3-cycle latency); TSC %.3f GHz",
             tsc * 1e-9);
    return best;
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7) && strchr(line, ':')) {
            mhz = atof(strchr(line, ':') + 1);
            break;
        }
    if (f)
        fclose(f);
    snprintf(how, n, "%s", mhz > 0 ? "cpu MHz of /proc/cpuinfo" : "unknown (1 GHz assumed)");
    return mhz > 0 ? mhz * 1e6 : 1e9;
#endif
}

/* Best-of time of [0, N) for one shape, in seconds. */
static double bench_q(const mdfi_qgemm_kernel *k, int M, mdfi_conv_geom g)
{
    const int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
    const size_t in_n = (size_t)g.channels * g.in_h * g.in_w, eb = (size_t)k->bits / 8;
    char *a = xalloc((size_t)M * K * eb), *in = xalloc(in_n * eb);
    int32_t *bias = xalloc((size_t)M * sizeof(int32_t));
    int8_t *shift = xalloc((size_t)M);
    int8_t *c = xalloc((size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K * eb; ++i)
        a[i] = (char)(rnd() % 256u - 128u);
    for (size_t i = 0; i < in_n * eb; ++i)
        in[i] = (char)(rnd() % 256u - 128u);
    for (int i = 0; i < M; ++i) {
        bias[i] = (int32_t)(rnd() % 1000u) - 500;
        shift[i] = 10;
    }
    if (k->bits == 16)   /* keep 16-bit sums bounded: small values */
        for (size_t i = 0; i < in_n; ++i)
            ((int16_t *)in)[i] = (int16_t)(((int16_t *)in)[i] >> 6);
    mdfi_qepilogue e = {bias, NULL, shift, MDFI_QACT_LEAKY, 13, 7, 8, 0};
    void *pa = xalloc(mdfi_qgemm_packed_a_size(k, M, K));
    mdfi_qgemm_pack_a(k, M, K, a, pa);
    void *ws = xalloc(mdfi_qgemm_workspace_size(k, M, &g));
    double best = 1e30, total = 0;
    for (int it = 0; it < (quick ? 2 : 60) && (total < 0.5 || it < 5); ++it) {
        double t0 = now();
        mdfi_qgemm_conv(k, M, &g, pa, in, &e, c, (size_t)N, 0, N, ws);
        double dt = now() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    free(a), free(in), free(bias), free(shift), free(c), free(pa), free(ws);
    return best;
}

static double bench_f(const mdfi_sgemm_kernel *k, int M, mdfi_conv_geom g)
{
    const int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
    const size_t in_n = (size_t)g.channels * g.in_h * g.in_w;
    float *a = xalloc((size_t)M * K * sizeof(float)), *in = xalloc(in_n * sizeof(float));
    float *bias = xalloc((size_t)M * sizeof(float)), *c = xalloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = (float)(rnd() % 2001u) * 1e-3f - 1.f;
    for (size_t i = 0; i < in_n; ++i)
        in[i] = (float)(rnd() % 2001u) * 1e-3f - 1.f;
    for (int i = 0; i < M; ++i)
        bias[i] = 0.1f;
    float *pa = xalloc(mdfi_sgemm_packed_a_size(k, M, K));
    mdfi_sgemm_pack_a(k, M, K, a, pa);
    float *ws = xalloc(mdfi_sgemm_workspace_size(k, M, &g));
    double best = 1e30, total = 0;
    for (int it = 0; it < (quick ? 2 : 60) && (total < 0.5 || it < 5); ++it) {
        double t0 = now();
        mdfi_sgemm_conv(k, M, &g, pa, in, bias, MDFI_EPI_LEAKY, c, (size_t)N, 0, N, ws);
        double dt = now() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    free(a), free(in), free(bias), free(c), free(pa), free(ws);
    return best;
}

static void bench(const mdfi_qgemm_kernel *const *ks, int nks)
{
    static const struct {
        int M, c, hw, ks;
    } shapes[] = {{256, 128, 26, 3}, {32, 16, 208, 3}, {1024, 512, 13, 3}, {16, 3, 416, 3}};
    /* YOLOv3-tiny's convolutions (416x416). */
    static const struct {
        int M, c, hw, ks;
    } yolo[] = {{16, 3, 416, 3},    {32, 16, 208, 3},  {64, 32, 104, 3},   {128, 64, 52, 3},
                {256, 128, 26, 3},  {512, 256, 13, 3}, {1024, 512, 13, 3}, {256, 1024, 13, 1},
                {512, 256, 13, 3},  {255, 512, 13, 1}, {128, 256, 13, 1},  {256, 384, 26, 3},
                {255, 256, 26, 1}};
    char how[160];
    const double hz = clock_hz(how, sizeof how);
    printf("cycles: %.3f GHz, %s\n", hz * 1e-9, how);
    const mdfi_sgemm_kernel *fk = mdfi_sgemm_kernel_for(mdfi_isa_best());
    char fname[32];
    snprintf(fname, sizeof fname, "fp32-%s", fk ? mdfi_sgemm_kernel_name(fk) : "n/a");
    const int nsh = sizeof shapes / sizeof shapes[0], ny = sizeof yolo / sizeof yolo[0];
    double ftime[4];
    for (int i = 0; i < nsh; ++i) {
        mdfi_conv_geom g = conv_geom(shapes[i].c, shapes[i].hw, shapes[i].hw, shapes[i].ks, 1,
                                     shapes[i].ks / 2);
        int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
        double macs = (double)shapes[i].M * K * N;
        ftime[i] = fk ? bench_f(fk, shapes[i].M, g) : 0;
        printf("%-14s M=%-4d K=%-4d N=%-6d %7.1f GOP/s %6.1f MACs/cycle\n", fname,
               shapes[i].M, K, N,
               ftime[i] > 0 ? 2 * macs / ftime[i] * 1e-9 : 0,
               ftime[i] > 0 ? macs / (ftime[i] * hz) : 0);
        fflush(stdout);
    }
    for (int v = 0; v < nks; ++v) {
        const mdfi_qgemm_kernel *k = ks[v];
        for (int i = 0; i < nsh; ++i) {
            mdfi_conv_geom g = conv_geom(shapes[i].c, shapes[i].hw, shapes[i].hw, shapes[i].ks, 1,
                                         shapes[i].ks / 2);
            int K = g.channels * g.ksize * g.ksize, N = g.out_h * g.out_w;
            double macs = (double)shapes[i].M * K * N;
            double t = bench_q(k, shapes[i].M, g);
            printf("%-14s M=%-4d K=%-4d N=%-6d %7.1f GOP/s %6.1f MACs/cycle  %.2fx fp32\n",
                   k->name, shapes[i].M, K, N, 2 * macs / t * 1e-9, macs / (t * hz),
                   ftime[i] > 0 ? ftime[i] / t : 0);
            fflush(stdout);
        }
        if (quick)
            continue;
        double secs = 0, fsecs = 0, macs = 0;
        for (int i = 0; i < ny; ++i) {
            mdfi_conv_geom g = conv_geom(yolo[i].c, yolo[i].hw, yolo[i].hw, yolo[i].ks, 1,
                                         yolo[i].ks / 2);
            macs += (double)yolo[i].M * g.channels * g.ksize * g.ksize * g.out_h * g.out_w;
            secs += bench_q(k, yolo[i].M, g);
            if (fk && v == 0)
                fsecs += bench_f(fk, yolo[i].M, g);
        }
        if (v == 0 && fk)
            printf("%-14s YOLOv3-tiny convs: %.2f GMAC in %.1f ms, %.1f GOP/s\n", fname,
                   macs * 1e-9, fsecs * 1e3, 2 * macs / fsecs * 1e-9);
        printf("%-14s YOLOv3-tiny convs: %.2f GMAC in %.1f ms, %.1f GOP/s, %.1f MACs/cycle\n",
               k->name, macs * 1e-9, secs * 1e3, 2 * macs / secs * 1e-9, macs / (secs * hz));
        fflush(stdout);
    }
}

/* ---- main --------------------------------------------------------------- */

static int matches(const mdfi_qgemm_kernel *k, const char *filter)
{
    return !filter || !strcmp(filter, k->name) || !strcmp(filter, mdfi_isa_name(k->isa));
}

int main(int argc, char **argv)
{
    int do_bench = 0;
    const char *filter = NULL;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--bench")) {
            do_bench = 1;
        } else if (!strcmp(argv[i], "--variant") && i + 1 < argc) {
            filter = argv[++i];
        } else if (argv[i][0] != '-') {
            filter = argv[i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--bench] [[--variant] NAME]\n", argv[0]);
            return 2;
        }
    }
    const mdfi_qgemm_kernel *ks[32];
    int nks = 0, known = 0;
    for (int i = 0; i < mdfi_qgemm_variant_count(); ++i) {
        const mdfi_qgemm_kernel *k = mdfi_qgemm_variant(i);
        if (!matches(k, filter))
            continue;
        ++known;
        if (!mdfi_qgemm_runnable(k)) {
            printf("%-14s not runnable on this CPU (skipped)\n", k->name);
            continue;
        }
        if (!do_bench || k->bits == 8 || filter)
            ks[nks++] = k;
    }
    if (filter && !known) {
        fprintf(stderr, "%s: no such variant in this build\n", filter);
        return 2;
    }
    if (filter && !nks) {
        printf("%s: not runnable on this CPU\n", filter);
        return 3;
    }
    if (do_bench) {
        bench(ks, nks);
        return 0;
    }
    test_api();
    test_requant_cases();
    for (int i = 0; i < nks; ++i) {
        test_epilogue(ks[i]);
        test_kernel(ks[i]);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
