/* The gated pass of [fracconv] (mdfi_dpath_gated, kernels/dpath.h) in every
 * form this build and CPU run, against the definition computed here from the
 * sign bits, plainly:
 *
 *   P = 2 D1                       where 2 D1 <= G,
 *   P = 2 D1 + D0                  elsewhere,
 *   D0 = sum over the in-image taps and the C' channels of [w == s] - [w != s].
 *
 *   test_dpath [--quick]
 *
 * Cases: C' = 1 .. 64 and 65 .. 128 (every count of channels mod 64, one and
 * two words) and a few of three and four words; 1 x 1, 2 x 2, 3 x 3 and 5 x 5
 * filters, strides 1 and 2, paddings from none to windows wholly outside the
 * image; pixel ranges [n0, n1) with every tail mod 8; gates that fire
 * nowhere, everywhere and on part of the outputs, and on 2 D1 == G.  The
 * window's words are read from a padded plane laid out as the layer lays it
 * out (halo 0), each pixel its own border class.  Outputs outside [n0, n1)
 * must stay untouched, the count returned must be the gated outputs', and
 * the list gets exactly n1 - n0 ints (run under ASan by MDFI_SANITIZE=1).
 * Prints "NAME ok" for each form that ran and agreed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/dpath.h"

static int n_pass, n_fail;

static void check(int ok, const char *what)
{
    if (ok) {
        ++n_pass;
    } else {
        ++n_fail;
        if (n_fail <= 20)
            printf("FAIL %s\n", what);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static int below(int n)
{
    return (int)(next() % (uint32_t)n);
}

typedef struct {
    const char *name;
    mdfi_dpath_gated_fn fn;
} form;

/* One case: geometry, random sign bits and weights, every form against the
 * definition over several pixel ranges and gates. */
typedef struct {
    int C, H, Wd, ks, stride, pad;
} shape;

static int run_case(const shape *sh, const form *forms, int n_forms, int *form_ok)
{
    const int C = sh->C, H = sh->H, Wd = sh->Wd, ks = sh->ks, s = sh->stride, pad = sh->pad;
    const int oh = (H + 2 * pad - ks) / s + 1, ow = (Wd + 2 * pad - ks) / s + 1;
    if (oh < 1 || ow < 1)
        return 1;
    const int N = oh * ow, T2 = ks * ks, W = (C + 63) / 64, nt = T2 * W, M = 3;
    /* the padded plane as bgemm.c sizes it: the image at (pad, pad), room
     * for every window, halo 0 */
    int ph = pad + H, pw = pad + Wd;
    if ((oh - 1) * s + ks > ph)
        ph = (oh - 1) * s + ks;
    if ((ow - 1) * s + ks > pw)
        pw = (ow - 1) * s + ks;
    const size_t plane = (size_t)ph * pw;
    unsigned char *sb = malloc((size_t)C * H * Wd), *wb = malloc((size_t)M * C * T2);
    uint64_t *s0 = calloc(plane * W, sizeof *s0), *w = calloc((size_t)M * nt, sizeof *w);
    int32_t *base = malloc(N * sizeof *base), *cls = malloc(N * sizeof *cls);
    int32_t *off = malloc(nt * sizeof *off), *kc = malloc((size_t)M * N * sizeof *kc);
    int32_t *d1 = malloc((size_t)M * N * sizeof *d1), *d0 = malloc((size_t)M * N * sizeof *d0);
    float *out = malloc((N + 16) * sizeof *out);
    int ok = sb && wb && s0 && w && base && cls && off && kc && d1 && d0 && out;
    if (!ok)
        goto done;
    for (int i = 0; i < C * H * Wd; ++i)
        sb[i] = next() & 1;
    for (int i = 0; i < M * C * T2; ++i)
        wb[i] = next() & 1;
    for (int c = 0; c < C; ++c)
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < Wd; ++x)
                if (sb[((size_t)c * H + y) * Wd + x])
                    s0[(size_t)(c >> 6) * plane + (size_t)(y + pad) * pw + x + pad] |=
                        1ull << (c & 63);
    for (int m = 0; m < M; ++m)
        for (int c = 0; c < C; ++c)
            for (int t = 0; t < T2; ++t)
                if (wb[((size_t)m * C + c) * T2 + t])
                    w[(size_t)m * nt + t * W + (c >> 6)] |= 1ull << (c & 63);
    for (int t = 0; t < T2; ++t)
        for (int cw = 0; cw < W; ++cw)
            off[t * W + cw] = (int32_t)((t / ks) * pw + t % ks + (size_t)cw * plane);
    /* the definition; kc per pixel (each pixel its own class) */
    for (int n = 0; n < N; ++n) {
        const int oy = n / ow, ox = n % ow;
        base[n] = oy * s * pw + ox * s;
        cls[n] = n;
        for (int m = 0; m < M; ++m) {
            int32_t D0 = 0, K = 0;
            for (int t = 0; t < T2; ++t) {
                const int iy = oy * s - pad + t / ks, ix = ox * s - pad + t % ks;
                if (iy < 0 || iy >= H || ix < 0 || ix >= Wd) {
                    for (int c = 0; c < C; ++c)
                        K += 2 * wb[((size_t)m * C + c) * T2 + t];
                    continue;
                }
                K += C;
                for (int c = 0; c < C; ++c)
                    D0 += wb[((size_t)m * C + c) * T2 + t] == sb[((size_t)c * H + iy) * Wd + ix]
                              ? 1 : -1;
            }
            d0[(size_t)m * N + n] = D0;
            kc[(size_t)m * N + n] = K;
            d1[(size_t)m * N + n] = below(2 * C * T2 + 1) - C * T2;
        }
    }
    for (int rep = 0; rep < 6; ++rep) {
        /* a range with any tail mod 8, and a gate: rep 0 nowhere, 1
         * everywhere, else one of the values of 2 D1 (so some equal it) */
        const int n0 = rep < 2 ? 0 : below(N), n1 = rep < 2 ? N : n0 + 1 + below(N - n0);
        for (int m = 0; m < M; ++m) {
            const int32_t *D1 = d1 + (size_t)m * N;
            const int32_t G = rep == 0 ? (1 << 25) : rep == 1 ? -(1 << 25)
                                                             : 2 * D1[below(N)] - (rep & 1);
            int want_k = 0;
            for (int n = n0; n < n1; ++n)
                want_k += 2 * D1[n] > G;
            for (int f = 0; f < n_forms; ++f) {
                for (int n = 0; n < N + 16; ++n)
                    out[n] = n < N ? (float)D1[n] : -7.f;
                int32_t *list = malloc((size_t)(n1 - n0) * sizeof *list);
                if (!list) {
                    ok = 0;
                    continue;
                }
                const mdfi_dpath_gate_geom g = {base, cls, off, nt, ks, W, pw, (ptrdiff_t)plane};
                const int k = forms[f].fn(&g, s0, w + (size_t)m * nt, kc + (size_t)m * N, G,
                                          out, n0, n1, list);
                free(list);
                int same = k == want_k;
                for (int n = 0; n < N + 16; ++n) {
                    float want = n >= N ? -7.f : (float)D1[n];
                    if (n >= n0 && n < n1)
                        want = (float)(2 * D1[n] + (2 * D1[n] > G ? d0[(size_t)m * N + n] : 0));
                    same &= out[n] == want;
                }
                char what[200];
                snprintf(what, sizeof what, "%s: C'=%d %dx%d ks=%d s=%d pad=%d [%d, %d) G=%d",
                         forms[f].name, C, H, Wd, ks, s, pad, n0, n1, (int)G);
                check(same, what);
                form_ok[f] &= same;
            }
        }
    }
done:
    free(sb);
    free(wb);
    free(s0);
    free(w);
    free(base);
    free(cls);
    free(off);
    free(kc);
    free(d1);
    free(d0);
    free(out);
    check(ok, "out of memory");
    return ok;
}

/* The packers in every form against their definitions: values on and one
 * float step around each threshold, NaN, infinities; every channel count of
 * a word and row lengths 1 .. 35 (every tail of an 8- and a 16-pixel step);
 * words past the row must stay untouched.  pack_words with and without its
 * second plane, pack_frac. */
typedef void (*pack_frac_fn)(const float *x, size_t cstride, int nc, int w, const float *shift,
                             const float *hi, const float *lo, uint64_t *s1, uint64_t *s0);
typedef void (*pack_words_fn)(const float *x, size_t cstride, int nc, int w, const float *hi,
                              const float *lo, uint64_t *pos, uint64_t *nonzero);

static void check_pack(const char *name, pack_frac_fn frac, pack_words_fn words)
{
    enum { CS = 40, UNTOUCHED = 0x5a };
    static float x[64 * CS];
    float sh[64], hi[64], lo[64];
    uint64_t s1[CS + 4], s0[CS + 4];
    unsigned seed = 7;
    int ok = 1;
    for (int nc = 1; nc <= 64; ++nc)
        for (int w = 1; w < 36; ++w) {
            for (int c = 0; c < nc; ++c) {
                seed = seed * 1103515245u + 12345u;
                sh[c] = (float)((int)(seed >> 16) % 9 - 4) * 0.25f;
                lo[c] = sh[c] - 0.5f;
                hi[c] = sh[c] + 0.5f;
                const float picks[] = {sh[c], lo[c], hi[c], nextafterf(sh[c], 9.f),
                                       nextafterf(lo[c], 9.f), nextafterf(hi[c], -9.f),
                                       nextafterf(lo[c], -9.f), NAN, INFINITY, -INFINITY,
                                       sh[c] - 0.25f, 3.f, -3.f};
                for (int i = 0; i < w; ++i) {
                    seed = seed * 1103515245u + 12345u;
                    x[c * CS + i] = picks[(seed >> 16) % 13];
                }
            }
            for (int kind = 0; kind < 3; ++kind) {   /* frac; words; words, no second plane */
                memset(s1, UNTOUCHED, sizeof s1);
                memset(s0, UNTOUCHED, sizeof s0);
                if (kind == 0)
                    frac(x, CS, nc, w, sh, hi, lo, s1, s0);
                else   /* ternary thresholds hi = sh, lo as above */
                    words(x, CS, nc, w, sh, lo, s1, kind == 1 ? s0 : NULL);
                for (int i = 0; i < CS + 4; ++i) {
                    uint64_t u = 0x5a5a5a5a5a5a5a5aull, z = u;
                    if (i < w) {
                        u = 0;
                        z = kind == 2 ? z : 0;
                        for (int c = 0; c < nc; ++c) {
                            const float v = x[c * CS + i];
                            const int up = v > sh[c];
                            u |= (uint64_t)up << c;
                            if (kind == 0)
                                z |= (uint64_t)(v > hi[c] || (v > lo[c] && !up)) << c;
                            else if (kind == 1)
                                z |= (uint64_t)(up || v < lo[c]) << c;
                        }
                    }
                    ok &= s1[i] == u && s0[i] == z;
                }
            }
        }
    char what[80];
    snprintf(what, sizeof what, "pack %s", name);
    check(ok, what);
    if (ok)
        printf("pack_frac, pack_words %s ok\n", name);
}

typedef void (*requant_fn)(float *d, const float *d0, const float *src, size_t n,
                           const mdfi_dpath_rq *q);

/* The definition (kernels/dpath.h), in int64. */
static float requant_def(const mdfi_dpath_rq *q, int64_t D, float src)
{
    const int64_t L = (int64_t)1 << 24, num = q->mul * D + q->off;
    int64_t r = num >= 0 ? num >> q->s : -((-num + ((int64_t)1 << q->s) - 1) >> q->s);
    r = r < -L ? -L : r > L ? L : r;
    const float v = src != src ? 0.f : src < -16777216.0f ? -16777216.0f
                                     : src > 16777216.0f ? 16777216.0f : src;
    int64_t t = r + (int64_t)rint(v);
    return (float)(t < -L ? -L : t > L ? L : t);
}

/* The requantization in every form: channels folded as mdfi_dp_fixed_set
 * folds them (Mul of up to 30 bits, S from 0 to 36, offsets up to 2^24 in
 * output units, so some channels cannot take the int32 split), D both sides
 * of the split's 2^14 and up to 2^20, given as one value or as 2 D1 + D0;
 * second sources with halves, NaN, infinities and values past 2^24; rows of
 * every length mod 8.  Also counts the channels without the split. */
static void check_requant(const char *name, requant_fn fn)
{
    enum { N = 67 };
    float d[N], d0[N], src[N];
    int ok = 1, without = 0, channels = 0;
    for (int c = 0; c < 600; ++c) {
        const int big = below(8) == 0;
        const float A = (float)ldexp((below(2) ? 1.0 : -1.0) * (1.0 + below(1 << 20) / (double)(1 << 20)),
                                     big ? below(10) + 4 : below(14) - 12);
        const float B = big ? (float)(below(1 << 24) - (1 << 23))
                            : (float)((below(1 << 16) - (1 << 15)) / 256.0);
        int e;
        (void)frexp((double)A, &e);
        mdfi_dpath_rq q;
        q.s = 30 - e < 36 ? 30 - e : 36;
        q.mul = (int64_t)rint(ldexp((double)A, q.s));
        q.off = (int64_t)rint(ldexp((double)B, q.s)) + (q.s > 0 ? (int64_t)1 << (q.s - 1) : 0);
        mdfi_dpath_rq_split(&q);
        ++channels;
        without += !q.split;
        const int32_t dmax = below(2) ? 1 + below(1 << 14) : 1 + below(1 << 20);
        for (int n = 1; n <= N; n += 1 + below(9)) {
            for (int i = 0; i < n; ++i) {
                d[i] = (float)(below(2 * dmax + 1) - dmax);
                const float picks[] = {(float)(below(200) - 100), (float)below(7) - 3.5f, NAN,
                                       INFINITY, -INFINITY, 3e7f, -16777217.f, 0.49999997f};
                src[i] = picks[below(8)];
            }
            float want[N];
            for (int i = 0; i < n; ++i)
                want[i] = requant_def(&q, (int64_t)d[i], src[i]);
            const int two = below(2);   /* D as 2 D1 + D0 (gate=0's planes) */
            for (int i = 0; two && i < n; ++i) {
                const float D = d[i];
                d[i] = (float)(below(2 * dmax + 1) - dmax);
                d0[i] = D - 2.f * d[i];
            }
            fn(d, two ? d0 : NULL, src, (size_t)n, &q);
            for (int i = 0; i < n; ++i)
                ok &= d[i] == want[i];
        }
    }
    char what[80];
    snprintf(what, sizeof what, "requant %s", name);
    check(ok, what);
    if (ok)
        printf("requant %s ok (%d of %d channels without the int32 split)\n", name, without,
               channels);
}

int main(int argc, char **argv)
{
    check_requant("portable", mdfi_dpath_requant);
#ifdef MDFI_HAVE_AVX2
    if (mdfi_isa_available(MDFI_ISA_AVX2))
        check_requant("avx2", mdfi_dpath_requant_avx2);
#endif
    check_pack("portable", mdfi_dpath_pack_frac_words, mdfi_dpath_pack_words);
#ifdef MDFI_HAVE_AVX2
    if (mdfi_isa_available(MDFI_ISA_AVX2))
        check_pack("avx2", mdfi_dpath_pack_frac_words_avx2, mdfi_dpath_pack_words_avx2);
#endif
#ifdef MDFI_HAVE_AVX512
    if (mdfi_isa_available(MDFI_ISA_AVX512))
        check_pack("avx512", mdfi_dpath_pack_frac_words_avx512, mdfi_dpath_pack_words_avx512);
#endif
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    form forms[4];
    int n_forms = 0;
    const unsigned f = mdfi_cpu_features();
    (void)f;
    forms[n_forms++] = (form){"portable", mdfi_dpath_gated};
#ifdef MDFI_HAVE_POPCNT
    if (f & MDFI_CPU_POPCNT)
        forms[n_forms++] = (form){"popcnt", mdfi_dpath_gated_popcnt};
#endif
#ifdef MDFI_HAVE_AVX2
    if (mdfi_isa_available(MDFI_ISA_AVX2) && (f & MDFI_CPU_POPCNT))
        forms[n_forms++] = (form){"avx2", mdfi_dpath_gated_avx2};
#endif
#ifdef MDFI_HAVE_AVX512VPOPCNT
    if (mdfi_isa_available(MDFI_ISA_AVX512) && (f & MDFI_CPU_VPOPCNT) && (f & MDFI_CPU_POPCNT))
        forms[n_forms++] = (form){"avx512vp", mdfi_dpath_gated_avx512vp};
#endif
    int form_ok[4] = {1, 1, 1, 1};
    static const int sizes[][2] = {{3, 3}, {5, 7}, {14, 14}, {7, 7}, {1, 9}, {9, 2}, {28, 28}};
    static const int kernels[][3] = {   /* ksize, stride, pad */
        {3, 1, 1}, {3, 2, 1}, {3, 1, 0}, {3, 1, 2}, {1, 1, 0}, {1, 1, 1}, {1, 2, 0},
        {2, 1, 1}, {5, 1, 2}, {5, 2, 2}, {5, 1, 4}};
    const int n_sizes = sizeof sizes / sizeof sizes[0], n_kernels = sizeof kernels / sizeof kernels[0];
    static const int wide[] = {150, 193, 256};   /* three and four words */
    int cases = 0;
    for (int i = 0; i < 128 + 3; ++i) {
        const int C = i < 128 ? i + 1 : wide[i - 128];
        /* 3 x 3 stride 1 pad 1 (the layer's common case) for every C; the
         * other shapes on every fourth C (every C without --quick) */
        const int all = !quick || C % 4 == 1 || C > 128;
        for (int k = 0; k < n_kernels; ++k) {
            if (k && !all)
                continue;
            const int *sz = sizes[(C + k) % n_sizes];
            const shape sh = {C, sz[0], sz[1], kernels[k][0], kernels[k][1], kernels[k][2]};
            run_case(&sh, forms, n_forms, form_ok);
            ++cases;
        }
    }
    printf("%d cases\n", cases);
    for (int i = 0; i < n_forms; ++i)
        if (form_ok[i])
            printf("%s ok\n", forms[i].name);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    if (!n_fail)
        printf("ok\n");
    return n_fail != 0;
}
