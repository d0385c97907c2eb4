/* [fracconv]: a BN-free fractional binary convolution on the integer stream
 * (docs/wsfracbnn.md is the definition this file implements; issue 16).
 *
 * input=stream: each input channel is quantized to two sign planes, s1
 * (x > shift_c) and s0 (the second bit of the 2-bit level 2 s1 + s0), and
 * convolved with the signs of the weights on the binary kernels
 * (kernels/bgemm.h).  gate=1: D1 for every output (SIGN mode), D0 only where
 * 2 D1 > floor(gate_m), by one popcount dot product per gated output over the
 * s0 words of its window; P = 2 D1 + g D0.  gate=0: one pass of the 2-bit
 * kernel over the planes as bits b = (s + 1) / 2, whose level a = 2 b1 + b0
 * is (q + 3) / 2, so P = 2 D1 + D0 = 2 D_a - 3 sum of w over the window's
 * in-image taps: a constant per filter and border class, added as the
 * requantization's D0.
 * input=thermometer: T sign bits per image channel (x > t_k), one plane, P = D1.
 * Then, as [dualpath] (layers/dp_common.h): r = round(A P + B) in int64 with
 * A = range * scale_m, B = range * bias_m, plus the second source (from=)
 * unless shortcut=0:  z = clamp(r + s, -2^24, 2^24), stored as a float32.
 *
 * It runs on the binary path only, never takes or writes bit tensors and is
 * no MDFI_KIND_CONV (net/passes.c hands bits only to [convolutional] xnor=1
 * readers and fuses maxpools only into CONV kinds). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/bgemm.h"
#include "kernels/bwindow.h"
#include "kernels/dpath.h"
#include "layers/dp_common.h"
#include "layers/layer.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)
#define GATE_LIM 33554432.0   /* 2^25 > |2 D1|: a clamped gate decides as the real one */
#define GATE_BLOCK 256        /* output columns per call of the gated pass */

typedef struct {
    int thermo;            /* input=thermometer (else stream) */
    int T;                 /* levels (thermometer), 1 for stream */
    int gate;              /* stream: the second plane only where the gate fires */
    int shortcut;          /* add the second source */
    int C, M, src_c;       /* image / stream channels; filters; second source's channels */
    mdfi_conv_geom geom;   /* channels = C' = C T (thermometer) or C */
} fracconv_spec;

/* ---- parse ----------------------------------------------------------------- */


/* A 0/1 key; def when missing. */
static mdfi_status flag(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s, const char *key, int def,
                        int *out, mdfi_errbuf *err)
{
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, key, def, out, err));
    if (*out != 0 && *out != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: %s=%d; it is 0 or 1",
                         ctx->cfg->name, mdfi_cfg_line(s, key), ctx->index, key, *out);
    return MDFI_OK;
}

/* A key that only the other input mode has. */
static mdfi_status only_for(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s, const char *key,
                            const char *mode, mdfi_errbuf *err)
{
    if (!mdfi_cfg_str(s, key, NULL))
        return MDFI_OK;
    return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: %s is a key of "
                     "input=%s only", ctx->cfg->name, mdfi_cfg_line(s, key), ctx->index, key,
                     mode);
}

mdfi_status mdfi_fracconv_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    const int i = ctx->index;
    MDFI_CHECK(mdfi_dp_parse_start(l, s, ctx, sizeof(fracconv_spec),
                                   "abits astep xnor binary groups dilation batch_normalize",
                                   "docs/wsfracbnn.md: it has no BN, its input quantizer is "
                                   "input=, its weights are always binary", err));
    fracconv_spec *sp = l->spec;
    const char *input = mdfi_cfg_str(s, "input", "stream");
    sp->thermo = !strcmp(input, "thermometer");
    if (!sp->thermo && strcmp(input, "stream"))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: input=%s; it is "
                         "stream or thermometer", name, mdfi_cfg_line(s, "input"), i, input);
    sp->T = 1;
    if (sp->thermo) {
        MDFI_CHECK(only_for(ctx, s, "gate", "stream", err));
        MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "levels", 0, &sp->T, err));
        if (sp->T < 1 || sp->T > MDFI_LIMIT_LEVELS)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: input=thermometer "
                             "needs levels=T with 1 <= T <= 256 (got %s)", name,
                             mdfi_cfg_line(s, "levels"), i, mdfi_cfg_str(s, "levels", "none"));
    } else {
        MDFI_CHECK(only_for(ctx, s, "levels", "thermometer", err));
        MDFI_CHECK(flag(ctx, s, "gate", 1, &sp->gate, err));
    }
    MDFI_CHECK(flag(ctx, s, "shortcut", !sp->thermo, &sp->shortcut, err));
    if (sp->thermo && sp->shortcut)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: shortcut=1 with "
                         "input=thermometer; a thermometer layer reads an image, not the "
                         "integer stream, so it has no shortcut", name,
                         mdfi_cfg_line(s, "shortcut"), i);
    if (!sp->shortcut && mdfi_cfg_str(s, "from", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [fracconv]: from= with "
                         "shortcut=0; from= names the shortcut's source", name,
                         mdfi_cfg_line(s, "from"), i);
    mdfi_dp_geom g;
    MDFI_CHECK(mdfi_dp_parse_geom(l, s, ctx, &g, err));
    const long long cin = (long long)l->in_c * sp->T;
    /* |P| <= 3 C' k^2 < 2^24: an exact float32 (the kernel's output) with
     * Mul P inside int64 (docs/wsfracbnn.md) */
    if (cin * g.size * g.size > MDFI_LIMIT_FRAC_TAPS || cin > MDFI_LIMIT_BINARY_CHANNELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [fracconv]: %lld channels x "
                         "%dx%d taps is too large (at most 2^22)", name, s->line, i, cin, g.size,
                         g.size);
    if (sp->shortcut)
        MDFI_CHECK(mdfi_dp_parse_source(l, s, ctx, &g, &sp->src_c, err));
    sp->C = l->in_c;
    sp->M = g.filters;
    sp->geom = (mdfi_conv_geom){(int)cin, l->in_h, l->in_w, g.size, g.stride, g.padding,
                                g.out_h, g.out_w, g.stride, 1};
    mdfi_dp_describe(l, &g);
    const double k = (double)cin * g.size * g.size;
    /* binary multiply-adds: thermometer one plane of C T channels; stream
     * two planes, gate=1 the first only (forward counts the gated outputs,
     * whose second plane the network adds per forward); no float ones */
    l->macs = (double)g.filters * k * g.out_h * g.out_w;
    l->gate = !sp->thermo && sp->gate;
    l->bops = l->macs * (sp->thermo || sp->gate ? 1 : 2);
    /* biases, scales, weights, [shift, step, [gate]], range */
    l->n_params = (size_t)g.filters * 2 + (size_t)g.filters * (size_t)k + 1;
    if (!sp->thermo)
        l->n_params += (size_t)l->in_c + 1 + (sp->gate ? (size_t)g.filters : 0);
    return MDFI_OK;
}

/* ---- bind / load -------------------------------------------------------------- */

typedef struct {
    fracconv_spec s;
    /* the arrays, in the file's order, between load and prepare (one block) */
    float *raw;
    float *biases, *scales, *weights, *shift, *step, *gate, *range;
    /* prepared */
    const mdfi_bgemm_kernel *kern;
    mdfi_dpath_loops loops;
    mdfi_bconv bc;
    mdfi_bwin win;           /* thermometer of few bits a pixel: bc over dense windows */
    int dense;               /* win is used (bc then keeps its geometry, not its weights) */
    mdfi_dp_fixed fx;
    void *block;             /* one allocation for the arrays below */
    float *thr;              /* stream: [3][C] shift, hi, lo; thermometer: [T] t_k */
    int32_t *G;              /* [M] floor(gate_m), clamped to +-2^25 (gate=1) */
    uint64_t *wg;            /* [M][k^2][words] filter sign words, tap-major (stream) */
    float *zeros;            /* [N] the second source of shortcut=0 */
    /* stream: where each output's window lies in the s0 plane (base, cls,
     * off: kernels/dpath.h) and kc [M][classes]; gate=0 the constant D0 [M][N]
     * (one block, gate_block) */
    mdfi_dpath_gate_geom gg;
    int32_t *kc;
    float *d0c;
    int n_cls;
    void *gate_block;
    size_t block_bytes;
    size_t plane_words;      /* one padded plane: words x ph x pw */
    size_t shared_bytes;     /* s0, s1 (the 2-bit kernel's plane order), gate=1 the
                                per-thread counts of gated outputs: at the start of
                                scratch[0] */
    size_t win_at, counts_at;  /* after the planes: win's rows and input (dense); the counts */
    int threads;
} fc_params;

static void free_prepared(fc_params *p)
{
    mdfi_bconv_free(&p->bc);
    mdfi_bwin_free(&p->win);
    p->dense = 0;
    mdfi_dp_fixed_free(&p->fx);
    free(p->block);
    p->block = NULL;
    free(p->gate_block);
    p->gate_block = NULL;
}

static int gated(const fc_params *p)
{
    return !p->s.thermo && p->s.gate;
}

/* With no parameter source: zeros, but scales and range 1.  The first load
 * makes the layer's state (no bind: the variant reads no keys of its own). */
static mdfi_status fc_load(mdfi_layer *l, mdfi_params *r, mdfi_errbuf *err)
{
    fc_params *p = l->priv;
    if (!p) {
        if (!(l->priv = p = calloc(1, sizeof *p)))
            return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
        p->s = *(const fracconv_spec *)l->spec;
    }
    const size_t M = (size_t)p->s.M, C = (size_t)p->s.C;
    const size_t nw = M * (size_t)p->s.geom.channels * (size_t)p->s.geom.ksize *
                      (size_t)p->s.geom.ksize;
    free(p->raw);
    p->raw = calloc(3 * M + nw + C + 2, sizeof(float));
    if (!p->raw)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory for %zu weights",
                         l->index, nw);
    p->biases = p->raw;
    p->scales = p->biases + M;
    p->weights = p->scales + M;
    p->shift = p->weights + nw;
    p->step = p->shift + C;
    p->gate = p->step + 1;
    p->range = p->gate + M;
    for (size_t m = 0; m < M; ++m)
        p->scales[m] = 1.f;
    *p->range = 1.f;
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_params_floats(r, p->biases, M, "biases", err));
    MDFI_CHECK(mdfi_params_floats(r, p->scales, M, "scales", err));
    MDFI_CHECK(mdfi_params_floats(r, p->weights, nw, "weights", err));
    if (!p->s.thermo) {
        MDFI_CHECK(mdfi_params_floats(r, p->shift, C, "shift", err));
        MDFI_CHECK(mdfi_params_floats(r, p->step, 1, "step", err));
        if (p->s.gate)
            MDFI_CHECK(mdfi_params_floats(r, p->gate, M, "gate", err));
    }
    return mdfi_params_floats(r, p->range, 1, "range", err);
}

/* ---- prepare ------------------------------------------------------------------------ */

/* One zeroed block for the thresholds, the filters' sign words (stream),
 * the gate thresholds (gate=1) and the zero second source (shortcut=0). */
static mdfi_status alloc_block(const mdfi_layer *l, fc_params *p, mdfi_errbuf *err)
{
    const size_t M = (size_t)p->s.M, T2 = (size_t)p->s.geom.ksize * p->s.geom.ksize;
    const size_t W = (size_t)mdfi_bwords(p->s.geom.channels), g = (size_t)gated(p);
    const size_t st = (size_t)!p->s.thermo;
    const size_t n_thr = p->s.thermo ? (size_t)p->s.T : 3 * (size_t)p->s.C;
    const size_t N = p->s.shortcut ? 0 : (size_t)p->s.geom.out_h * p->s.geom.out_w;
    const size_t at_wg = 0, at_thr = at_wg + ALIGN64(st * M * T2 * W * sizeof(uint64_t));
    const size_t at_G = at_thr + ALIGN64(n_thr * sizeof(float));
    const size_t at_zeros = at_G + ALIGN64(g * M * sizeof(int32_t));
    p->block_bytes = at_zeros + N * sizeof(float);
    char *b = p->block = calloc(1, p->block_bytes);
    if (!b)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    p->wg = (uint64_t *)(b + at_wg);
    p->thr = (float *)(b + at_thr);
    p->G = (int32_t *)(b + at_G);
    p->zeros = (float *)(b + at_zeros);
    return MDFI_OK;
}

/* The input thresholds: stream [3][C] = shift, fl32(shift + step),
 * fl32(shift - step); thermometer [T] t_k = fl32((2k + 1) / (2T)) (float
 * division of exact integers: correctly rounded). */
static mdfi_status prepare_thresholds(const mdfi_layer *l, fc_params *p, mdfi_errbuf *err)
{
    const int C = p->s.C, T = p->s.T;
    const float step = *p->step;
    if (!p->s.thermo && !(step >= 0.f))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [fracconv]: step = %g must be >= 0",
                         l->index, (double)step);
    if (p->s.thermo) {
        for (int k = 0; k < T; ++k)
            p->thr[k] = (float)(2 * k + 1) / (float)(2 * T);
        return MDFI_OK;
    }
    for (int c = 0; c < C; ++c) {
        p->thr[c] = p->shift[c];
        p->thr[C + c] = p->shift[c] + step;
        p->thr[2 * C + c] = p->shift[c] - step;
    }
    return MDFI_OK;
}

/* The classes of the output rows (or columns) by the taps that lie in the
 * image, ky in [lo, hi) (hi < lo: none), numbered in order of first
 * appearance: cls[o] for o < out; lohi (2 out ints) gets each class's pair.
 * Returns the number of classes (1 where every window lies inside). */
static int edge_classes(int out, int in, int k, int stride, int pad, int32_t *cls, int *lohi)
{
    int n = 0;
    for (int o = 0; o < out; ++o) {
        const int i0 = o * stride - pad, lo = i0 < 0 ? -i0 : 0, hi = in - i0 < k ? in - i0 : k;
        int c = 0;
        while (c < n && (lohi[2 * c] != lo || lohi[2 * c + 1] != hi))
            ++c;
        if (c == n) {
            lohi[2 * n] = lo;
            lohi[2 * n + 1] = hi;
            ++n;
        }
        cls[o] = c;
    }
    return n;
}

/* input=stream: the filters' sign words, the border classes of the outputs
 * and a table per filter and class; gate=1 also the gate thresholds and the
 * gated pass's geometry (kernels/dpath.h: mdfi_dpath_gate_geom, kc), gate=0
 * the constant D0 of the 2-bit pass. */
static mdfi_status prepare_windows(const mdfi_layer *l, fc_params *p, const unsigned char *wbits,
                                   mdfi_errbuf *err)
{
    const mdfi_conv_geom *g = &p->bc.g;
    const int M = p->s.M, C = g->channels, ks = g->ksize, T2 = ks * ks, W = p->bc.words;
    const int oh = g->out_h, ow = g->out_w, gate = p->s.gate;
    const size_t N = (size_t)oh * ow, nt = (size_t)T2 * W;
    for (int m = 0; m < M; ++m) {
        if (gate) {
            const float gm = p->gate[m];
            if (!isfinite(gm))
                return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [fracconv]: channel %d's gate = "
                                 "%g is not a finite number", l->index, m, (double)gm);
            double G = floor((double)gm);
            G = G < -GATE_LIM ? -GATE_LIM : G > GATE_LIM ? GATE_LIM : G;
            p->G[m] = (int32_t)G;
        }
        for (int c = 0; c < C; ++c)
            for (int t = 0; t < T2; ++t)
                if (wbits[((size_t)m * C + c) * T2 + t])
                    p->wg[((size_t)m * T2 + t) * W + (c >> 6)] |= 1ull << (c & 63);
    }
    /* rows and columns by their in-image taps (temporary), then one block:
     * base [N], cls [N], off [nt], kc [M][classes] (gate=0: d0c [M][N]) */
    int32_t *rc = malloc((size_t)(oh + ow) * sizeof *rc);
    int *lohi = malloc((size_t)(oh + ow) * 2 * sizeof *lohi);
    int nr = 0, nc = 0;
    char *b = NULL;
    if (rc && lohi) {
        nr = edge_classes(oh, g->in_h, ks, g->stride, g->pad, rc, lohi);
        nc = edge_classes(ow, g->in_w, ks, g->stride, g->pad, rc + oh, lohi + 2 * nr);
        p->n_cls = nr * nc;
        b = p->gate_block = malloc((2 * N + nt + (size_t)M * (p->n_cls + (gate ? 0 : N))) *
                                   sizeof(int32_t));
    }
    if (!b) {
        free(rc);
        free(lohi);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    }
    int32_t *base = (int32_t *)b, *cls = base + N, *off = cls + N;
    p->kc = off + nt;
    const ptrdiff_t pw = p->bc.pw, plane = (ptrdiff_t)p->bc.ph * pw;
    for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
            base[(size_t)oy * ow + ox] = (int32_t)((ptrdiff_t)oy * g->stride * pw + ox * g->stride);
            cls[(size_t)oy * ow + ox] = rc[oy] * nc + rc[oh + ox];
        }
    for (int t = 0; t < T2; ++t)
        for (int cw = 0; cw < W; ++cw)
            off[t * W + cw] = (int32_t)((t / ks) * pw + t % ks + cw * plane);
    /* kc[m][class], gate=1: C' per in-image tap, plus twice the filter's
     * popcount over the outside taps (their zero words count as all signs
     * differing).  gate=0: -3 sum of w over the in-image taps, w = 2 b - 1
     * summed over C' channels: 3 C' - 6 popcount per tap. */
    const int k = gate ? 2 : -6;   /* per set sign of the filter's other taps */
    for (int m = 0; m < M; ++m)
        for (int r = 0; r < nr; ++r)
            for (int c = 0; c < nc; ++c) {
                const int *y = lohi + 2 * r, *x = lohi + 2 * (nr + c);
                int32_t v = 0;
                for (int t = 0; t < T2; ++t) {
                    const int ky = t / ks, kx = t % ks;
                    const int in = ky >= y[0] && ky < y[1] && kx >= x[0] && kx < x[1];
                    if (in == gate) {   /* gate=1 inside: C'; gate=0 outside: 0 */
                        v += in * C;
                        continue;
                    }
                    v += in * 3 * C;
                    for (int cw = 0; cw < W; ++cw)
                        v += k * mdfi_popcount64(p->wg[((size_t)m * T2 + t) * W + cw]);
                }
                p->kc[(size_t)m * p->n_cls + r * nc + c] = v;
            }
    p->d0c = (float *)(p->kc + (size_t)M * p->n_cls);
    for (size_t i = 0; !gate && i < (size_t)M * N; ++i)
        p->d0c[i] = (float)p->kc[i / N * p->n_cls + cls[i % N]];
    free(rc);
    free(lohi);
    p->gg = (mdfi_dpath_gate_geom){base, cls, off, (int)nt, ks, W, pw, plane};
    return MDFI_OK;
}

static mdfi_status fc_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    fc_params *p = l->priv;
    MDFI_CHECK(mdfi_dp_kernel(l, ctx, "fracconv", &p->kern, err));
    p->loops = mdfi_dpath_loops_for(ctx->isa);
    /* the gated pass follows a forced binary kernel: ref, the portable
     * popcount; popcnt, the POPCNT form; else the ISA's (kernels/dpath.h) */
    if (p->kern->kind == MDFI_BK_REF)
        p->loops.gated = mdfi_dpath_gated;
#ifdef MDFI_HAVE_POPCNT
    if (p->kern->kind == MDFI_BK_POPCNT)
        p->loops.gated = mdfi_dpath_gated_popcnt;
#endif
    free_prepared(p);
    MDFI_CHECK(alloc_block(l, p, err));
    const int M = p->s.M;
    const float lambda = *p->range;
    MDFI_CHECK(mdfi_dp_check_range(lambda, l, "fracconv", err));
    MDFI_CHECK(prepare_thresholds(l, p, err));
    if (mdfi_dp_fixed_alloc(&p->fx, M))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    for (int m = 0; m < M; ++m) {   /* no BN: A = range scale, B = range bias (float32) */
        const float A = lambda * p->scales[m], B = lambda * p->biases[m];
        MDFI_CHECK(mdfi_dp_fixed_set(&p->fx, m, A, B, l, "fracconv", err));
    }
    const size_t k = (size_t)p->s.geom.channels * p->s.geom.ksize * p->s.geom.ksize;
    unsigned char *wbits = mdfi_dp_weight_signs(p->weights, (size_t)M * k);
    if (!wbits)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    const int dense2 = !p->s.thermo && !p->s.gate;   /* gate=0: the 2-bit kernel */
    int failed = mdfi_bconv_init(&p->bc, p->kern, dense2 ? MDFI_BMODE_2BIT : MDFI_BMODE_SIGN,
                                 &p->s.geom, M, wbits);
    mdfi_status st = failed ? mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing "
                                        "weights", l->index)
                            : !p->s.thermo ? prepare_windows(l, p, wbits, err) : MDFI_OK;
    if (st == MDFI_OK && p->s.thermo && mdfi_bwin_worth(&p->bc)) {
        /* a few bits a pixel: bc's 3 x 3 windows of mostly empty words packed
         * end to end (kernels/bwindow.h); bc keeps the plane's geometry */
        if (mdfi_bwin_init(&p->win, &p->bc, wbits))
            st = mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
        p->dense = st == MDFI_OK;
        mdfi_bconv_free(&p->bc);
        p->bc.a_words = 0;
    }
    free(wbits);
    MDFI_CHECK(st);
    const size_t N = (size_t)l->out_h * l->out_w;
    free(p->raw);
    p->raw = NULL;
    l->param_bytes = mdfi_bconv_param_bytes(&p->bc) + mdfi_dp_fixed_bytes(&p->fx) +
                     p->block_bytes + (p->dense ? mdfi_bwin_param_bytes(&p->win) : 0);
    if (!p->s.thermo)
        l->param_bytes += (2 * N + (size_t)p->gg.nt + (size_t)M * (p->n_cls + (dense2 ? N : 0))) *
                          sizeof(int32_t);
    /* scratch[0] starts with what the threads share: the padded s0 and s1
     * planes (one plane, thermometer); every thread's scratch then holds the
     * kernel's workspace and, gate=1, its list of gated pixels */
    const size_t planes = p->s.thermo ? 1 : 2;
    p->plane_words = mdfi_bconv_input_words(&p->bc) / (size_t)p->bc.planes;
    p->win_at = ALIGN64(planes * p->plane_words * sizeof(uint64_t));
    p->shared_bytes = p->win_at + (p->dense ? ALIGN64(mdfi_bwin_rows_words(&p->win) * sizeof(uint64_t)) +
                                             ALIGN64(mdfi_bwin_input_words(&p->win) * sizeof(uint64_t))
                                           : 0);
    p->counts_at = p->shared_bytes;
    p->threads = ctx->threads;
    p->shared_bytes += gated(p) ? ALIGN64((size_t)ctx->threads * sizeof(long long)) : 0;
    size_t ws = mdfi_bconv_workspace_size(&p->bc);
    if (p->dense && mdfi_bconv_workspace_size(&p->win.bc) > ws)
        ws = mdfi_bconv_workspace_size(&p->win.bc);
    size_t need = p->shared_bytes + ALIGN64(ws) +
                  (gated(p) ? GATE_BLOCK * sizeof(int32_t) : 0);
    l->scratch_bytes = need > l->scratch_bytes ? need : l->scratch_bytes;
    return MDFI_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

typedef struct {
    mdfi_dp_split split;   /* first: mdfi_dp_run's */
    const fc_params *p;
    mdfi_run_ctx *ctx;
    uint64_t *s0, *s1;     /* the shared padded planes (scratch[0]; s1 alone, thermometer) */
    uint64_t *rows, *win;  /* dense: win's row plane and input (scratch[0], at win_at) */
    long long *counts;     /* gate=1: [threads] gated outputs (scratch[0]) */
} fc_job;

/* Image rows [y0, y1) of the padded planes (words x ph x pw each, image
 * pixel (y, x) at word (y + pad) * pw + x + pad), with their halo and the
 * top / bottom halo rows with the first / last rows. */
static void pack_rows(const fc_job *j, int y0, int y1)
{
    const fc_params *p = j->p;
    const mdfi_bconv *bc = &p->bc;
    const mdfi_conv_geom *g = &bc->g;
    const int C = p->s.C, W = g->in_w, pad = g->pad;
    const size_t plane = (size_t)bc->ph * bc->pw, hw = (size_t)g->in_h * W;
    mdfi_dp_zero_rows(bc, p->s.thermo ? 1 : 2, j->s0, y0, y1);   /* s1 follows s0 */
    const float *in = j->ctx->in[0];
    if (!p->s.thermo) {   /* 64 channels a word, stored (the halo stays 0) */
        for (int c0 = 0; c0 < C; c0 += 64) {
            const size_t at = (size_t)(c0 >> 6) * plane + pad;
            for (int y = y0; y < y1; ++y) {
                const size_t row = at + (size_t)(y + pad) * bc->pw;
                p->loops.pack_frac(in + (size_t)c0 * hw + (size_t)y * W, hw,
                                   C - c0 < 64 ? C - c0 : 64, W, p->thr + c0, p->thr + C + c0,
                                   p->thr + 2 * C + c0, j->s1 + row, j->s0 + row);
            }
        }
        return;
    }
    for (int c = 0; c < C; ++c)
        for (int y = y0; y < y1; ++y)
            mdfi_dpath_pack_thermo_row(in + (size_t)c * hw + (size_t)y * W, W, p->thr, p->s.T,
                                       c * p->s.T, plane, j->s1 + (size_t)(y + pad) * bc->pw + pad);
}

static void input_task(void *arg, int task, int thread)
{
    (void)thread;
    const fc_job *j = arg;
    int y0, y1;
    if (!mdfi_dp_rows(&j->split, j->p->s.geom.in_h, task, &y0, &y1))
        return;
    pack_rows(j, y0, y1);
    if (j->p->dense) {   /* the padded rows pack_rows wrote */
        int r0, r1;
        mdfi_dp_padded_rows(&j->p->bc, y0, y1, &r0, &r1);
        mdfi_bwin_rows(&j->p->win, j->s1, j->rows, r0, r1);
    }
}

/* gate=1, columns [n0, n1): out holds (float)D1 and becomes (float)P.  In
 * blocks of columns, channel by channel: the kernel lists the outputs whose
 * gate fires and counts each one's differing signs straight from the s0
 * plane (kernels/dpath.h, mdfi_dpath_gated).  Returns the number of outputs
 * gated. */
static long long gated_pass(const fc_job *j, float *out, int n0, int n1, int32_t *list)
{
    long long fired = 0;
    const fc_params *p = j->p;
    const size_t N = (size_t)j->split.N, nt = (size_t)p->gg.nt;
    for (int b0 = n0; b0 < n1; b0 += GATE_BLOCK) {
        const int b1 = n1 - b0 < GATE_BLOCK ? n1 : b0 + GATE_BLOCK;
        for (int m = 0; m < p->s.M; ++m)
            fired += p->loops.gated(&p->gg, j->s0, p->wg + (size_t)m * nt,
                                    p->kc + (size_t)m * p->n_cls, p->G[m], out + (size_t)m * N,
                                    b0, b1, list);
    }
    return fired;
}

/* Output columns [n0, n1) of every channel: D1 on the kernel, then P, then
 * z in place. */
static void conv_task(void *arg, int task, int thread)
{
    const fc_job *j = arg;
    const fc_params *p = j->p;
    int n0, n1;
    if (!mdfi_dp_cols(&j->split, task, &n0, &n1))
        return;
    float *out = j->ctx->out;
    const size_t N = (size_t)j->split.N;
    char *mine = (char *)j->ctx->scratch[thread] + p->shared_bytes;
    void *ws = mine;
    mdfi_bout o;
    mdfi_dp_bout(&o, out, N, &p->fx);
    const float *d0 = NULL;
    if (p->dense)
        mdfi_bwin_run(&p->win, p->win.row_units ? j->rows : j->s1, j->win, &o, n0, n1, ws);
    else if (gated(p) || p->s.thermo)
        mdfi_bconv_run(&p->bc, j->s1, &o, n0, n1, ws);
    else {   /* gate=0: D_a of both planes in one pass; P = 2 D_a + d0c */
        mdfi_bconv_run(&p->bc, j->s0, &o, n0, n1, ws);
        d0 = p->d0c;
    }
    if (gated(p))
        j->counts[thread] += gated_pass(j, out, n0, n1,
                                        (int32_t *)(mine + ALIGN64(mdfi_bconv_workspace_size(&p->bc))));
    if (p->s.shortcut)
        mdfi_dp_requant_columns(&p->loops, &p->fx, out, d0, j->ctx->in[1], p->s.src_c, N, n0, n1);
    else
        mdfi_dp_requant_columns(&p->loops, &p->fx, out, d0, p->zeros, 1, N, n0, n1);
}

static void fc_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const fc_params *p = l->priv;
    uint64_t *s0 = ctx->scratch[0];
    char *at = (char *)ctx->scratch[0] + p->win_at;
    fc_job j = {{0, 0, 0}, p, ctx, s0, p->s.thermo ? s0 : s0 + p->plane_words, (uint64_t *)at,
                (uint64_t *)(at + ALIGN64(mdfi_bwin_rows_words(&p->win) * sizeof(uint64_t))),
                (long long *)((char *)ctx->scratch[0] + p->counts_at)};
    if (gated(p))   /* counted per thread, summed here */
        memset(j.counts, 0, (size_t)p->threads * sizeof *j.counts);
    mdfi_dp_run(ctx->pool, l->out_h * l->out_w, input_task, conv_task, &j);
    for (int t = 0; gated(p) && t < p->threads; ++t)
        ctx->gated += j.counts[t];
}

static void fc_destroy(mdfi_layer *l)
{
    fc_params *p = l->priv;
    if (p) {
        free_prepared(p);
        free(p->raw);
    }
    free(p);
    l->priv = NULL;
}

/* [fracconv] runs on the binary path only. */
const mdfi_layer_variant mdfi_fracconv_binary = {NULL, fc_load, fc_prepare, fc_forward,
                                                 fc_destroy, NULL};
