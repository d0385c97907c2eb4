/* The vector swish and mish (kernels/x86/act_avx2.c, kernels/arm/act_neon.c)
 * that mdfi_activate_for picks on this CPU, against their definitions in
 * double:
 *
 *   swish(x) = x / (1 + e^-x),   mish(x) = x tanh(log(1 + e^x)) (x for x > 20)
 *
 * on every float step of 2^-10 in [-120, 120], the float neighbours of the
 * branch points 0 and 20, tiny and huge values, infinities of the input's
 * range and NaN, through arrays whose lengths leave every tail of a vector.
 * A value must be within 4 ulps of the definition (or within 1e-30 of it,
 * where the definition is tinier than floats go); NaN must stay NaN.
 * Prints "NAME ok" for each form that ran and agreed, "NAME skipped" where
 * this CPU picks the scalar loop (AlexeyAB's formulas, checked in Python).
 *
 *   test_act [--quick] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/activations.h"

static double exact(double x, mdfi_activation a)
{
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

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    const mdfi_isa isa = mdfi_isa_best();
    int fail = 0;
    static const struct {
        const char *name;
        mdfi_activation a;
    } acts[] = {{"swish", MDFI_ACT_SWISH}, {"mish", MDFI_ACT_MISH}};
    for (int i = 0; i < 2; ++i) {
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
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return fail;
}
