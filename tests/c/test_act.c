/* The vector logistic, swish and mish (kernels/x86/act_avx2.c,
 * kernels/arm/act_neon.c) that mdfi_activate_for picks on this CPU, against
 * their definitions in double:
 *
 *   logistic(x) = 1 / (1 + e^-x),   swish(x) = x / (1 + e^-x),
 *   mish(x) = x tanh(log(1 + e^x)) (x for x > 20)
 *
 * on every float step of 2^-10 in [-120, 120], the float neighbours of the
 * branch points 0 and 20, tiny and huge values, infinities of the input's
 * range and NaN, through arrays whose lengths leave every tail of a vector.
 * A value must be within 4 ulps of the definition (or within 1e-30 of it,
 * where the definition is tinier than floats go); NaN must stay NaN.
 * Prints "NAME ok" for each form that ran and agreed, "NAME skipped" where
 * this CPU picks the scalar loop (AlexeyAB's formulas, checked in Python).
 *
 * Also the element-wise loops of kernels/eltwise.c (vectorized for the
 * target's baseline SIMD: SSE2, NEON) against Darknet's scalar arithmetic,
 * bit for bit: leaky (float)(.1 * (double)x), relu x * (x > 0), and the
 * [shortcut] sum, on a stride of all 2^32 float bit patterns (every one
 * with --all), at every offset and tail length; prints "eltwise ok".
 *
 *   test_act [--quick | --all] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/activations.h"
#include "kernels/eltwise.h"

static double exact(double x, mdfi_activation a)
{
    if (a == MDFI_ACT_LOGISTIC)
        return 1 / (1 + exp(-x));
    if (a == MDFI_ACT_SWISH)
        return x / (1 + exp(-x));
    return x > 20 ? x : x * tanh(log1p(exp(x)));
}

/* Values and their count: the grid, then the special ones. */
static float *inputs(int quick, size_t *n)
{
    const double step = quick ? 1.0 / 64 : 1.0 / 1024;
    const size_t grid = (size_t)(240 / step) + 1;
    static const float special[] = {0.f, -0.f, 1e-30f, -1e-30f, 1e-45f, -1e-45f, 1e-8f, -1e-8f,
                                    19.999998f, 20.f, 20.000002f, -20.f, 88.f, 89.f, -87.f,
                                    -88.f, -104.f, 3e38f, -3e38f, 1e20f, -1e20f};
    const size_t ns = sizeof special / sizeof special[0];
    float *x = malloc((grid + ns) * sizeof *x);
    if (!x)
        return NULL;
    for (size_t i = 0; i < grid; ++i)
        x[i] = (float)(-120 + (double)i * step);
    memcpy(x + grid, special, sizeof special);
    *n = grid + ns;
    return x;
}

static int n_pass, n_fail;

static int check(const char *name, mdfi_activate_fn fn, mdfi_activation a, int quick)
{
    size_t n = 0;
    float *x = inputs(quick, &n), *y = malloc((n + 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return 1;
    }
    int bad = 0;
    double worst = 0;
    /* lengths 1 .. 17 first (every tail), then the rest in one call */
    size_t at = 0;
    for (size_t len = 1; at < n; ++len) {
        size_t k = len <= 17 ? len : n - at;
        if (k > n - at)
            k = n - at;
        memcpy(y + at, x + at, k * sizeof *y);
        y[at + k] = 12345.f;   /* past the end: must stay */
        fn(y + at, k, a);
        if (y[at + k] != 12345.f && bad++ < 10)
            printf("FAIL %s wrote past %zu values\n", name, k);
        at += k;
    }
    for (size_t i = 0; i < n; ++i) {
        const double e = exact(x[i], a);
        const double err = fabs((double)y[i] - e);
        const double ulp = fabs(e) * (4.0 / 8388608.0);
        if (err > ulp && err > 1e-30 && bad++ < 10)
            printf("FAIL %s x=%.9g got %.9g want %.9g\n", name, x[i], y[i], e);
        if (fabs(e) > 1e-30 && err / fabs(e) > worst)
            worst = err / fabs(e);
    }
    float nan = NAN;
    fn(&nan, 1, a);
    if (!isnan(nan) && bad++ < 10)
        printf("FAIL %s NaN became %g\n", name, nan);
    if (!bad)
        printf("%s ok (%zu values, worst %.2f ulps)\n", name, n, worst * 8388608.0);
    n_pass += !bad;
    n_fail += bad != 0;
    free(x);
    free(y);
    return bad != 0;
}

static int same(float a, float b)
{
    unsigned ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return ua == ub || (a != a && b != b);
}

/* Darknet's forms, one element at a time. */
static float leaky1(float x)
{
    return x > 0 ? x : (float)(.1 * x);
}

static int check_eltwise(unsigned step)
{
    enum { N = 4096 };
    static float x[N + 8], y[N + 8], z[N + 8], w[N + 8];
    unsigned long long bits = 0;
    size_t checked = 0;
    for (unsigned tail = 0; bits < (1ull << 32); tail = (tail + 1) % 37) {
        size_t n = N - tail, off = tail % 8;   /* every length mod 8, every alignment */
        for (size_t i = 0; i < n; ++i, bits += step) {
            unsigned u = (unsigned)bits;
            memcpy(&x[off + i], &u, 4);
            u = (unsigned)(bits * 2654435761u);    /* a second operand for the sum */
            memcpy(&z[off + i], &u, 4);
        }
        for (int k = 0; k < 3; ++k) {
            memcpy(y, x, sizeof y);
            y[off + n] = 12345.f;                  /* must survive: nothing past the end */
            if (k == 0)
                mdfi_leaky_inplace(y + off, n);
            else if (k == 1)
                mdfi_relu_inplace(y + off, n);
            else
                mdfi_eltwise_sum(y + off, x + off, z + off, n, 1.f, 1.f);
            for (size_t i = 0; i < n; ++i) {
                float v = x[off + i];
                float e = k == 0 ? leaky1(v) : k == 1 ? v * (v > 0) : v + z[off + i];
                if (!same(y[off + i], e)) {
                    printf("FAIL eltwise %s x=%.9g got %.9g want %.9g\n",
                           k == 0 ? "leaky" : k == 1 ? "relu" : "sum", v, y[off + i], e);
                    return 1;
                }
            }
            if (y[off + n] != 12345.f) {
                printf("FAIL eltwise wrote past %zu values\n", n);
                return 1;
            }
        }
        mdfi_eltwise_sum(w + off, x + off, z + off, n, .5f, -3.f);   /* the general form */
        for (size_t i = 0; i < n; ++i)
            if (!same(w[off + i], .5f * x[off + i] + -3.f * z[off + i])) {
                printf("FAIL eltwise alpha/beta sum at x=%.9g\n", x[off + i]);
                return 1;
            }
        checked += n;
    }
    printf("eltwise ok (%zu values)\n", checked);
    return 0;
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    const int all = argc > 1 && !strcmp(argv[1], "--all");
    const mdfi_isa isa = mdfi_isa_best();
    int fail = 0;
    static const struct {
        const char *name;
        mdfi_activation a;
    } acts[] = {{"logistic", MDFI_ACT_LOGISTIC}, {"swish", MDFI_ACT_SWISH},
                {"mish", MDFI_ACT_MISH}};
    for (int i = 0; i < 3; ++i) {
        char name[64];
        snprintf(name, sizeof name, "%s-%s", mdfi_isa_name(isa), acts[i].name);
        mdfi_activate_fn fn = mdfi_activate_for(isa, acts[i].a);
        if (fn == mdfi_activate) {   /* the dispatch's answer is what is checked */
            printf("%s skipped (the scalar loop)\n", name);
            ++n_pass;
        } else {
            fail |= check(name, fn, acts[i].a, quick);
        }
    }
    if (check_eltwise(all ? 1 : quick ? 65537 : 4099))
        ++n_fail, fail = 1;
    else
        ++n_pass;
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return fail;
}
