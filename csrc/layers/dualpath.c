/* [dualpath]: a dual-path binary layer with adaptive output range
 * (docs/dualpath.md is the definition this file implements).
 *
 * Source 1 (the input) is quantized with learned per-channel thresholds to
 * 1 bit (sign) or 1.5 bits (ternary) and convolved with the signs of the
 * weights on the binary kernels (kernels/bgemm.h): the exact integer D.
 * BN and the range lambda are folded at prepare into a fixed-point
 * multiplier per output channel, r = round(A D + B) in int64; source 2
 * (from=, by default the input itself) is rounded to an integer and added:
 *   z = clamp(r + rint(clamp(src)), -2^24, 2^24), stored as a float32.
 *
 * It runs on the binary path only, never takes or writes bit tensors (it
 * has two inputs, so the network's passes never fuse it) and is no
 * MDFI_KIND_CONV (no maxpool band fusion). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/bgemm.h"
#include "kernels/dpath.h"
#include "layers/dp_common.h"
#include "layers/layer.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

typedef struct {
    mdfi_bmode mode;          /* SIGN (abits=1) or TERNARY (abits=1.5) */
    mdfi_conv_geom geom;      /* channels = C, the input's */
    int M, src_c;             /* filters; channels of the second source */
} dualpath_spec;

/* ---- parse ----------------------------------------------------------------- */


mdfi_status mdfi_dualpath_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    const int i = ctx->index;
    MDFI_CHECK(mdfi_dp_parse_start(l, s, ctx, sizeof(dualpath_spec),
                                   "astep xnor binary groups dilation", "docs/dualpath.md: its input quantizer is abits with learned "
                                   "thresholds, its weights are always binary", err));
    dualpath_spec *sp = l->spec;
    int bn;
    float abits;
    mdfi_dp_geom g;
    MDFI_CHECK(mdfi_dp_parse_geom(l, s, ctx, &g, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 1, &bn, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "abits", 1.f, &abits, err));
    if (bn != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: batch_normalize=%d; "
                         "a [dualpath] layer always has BN (folded into its output "
                         "multiplier)", name, mdfi_cfg_line(s, "batch_normalize"), i, bn);
    if (abits != 1.f && abits != 1.5f)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: abits=%s; the "
                         "activation bits of a [dualpath] layer are 1 (sign) or 1.5 (ternary)",
                         name, mdfi_cfg_line(s, "abits"), i, mdfi_cfg_str(s, "abits", ""));
    sp->mode = abits == 1.f ? MDFI_BMODE_SIGN : MDFI_BMODE_TERNARY;
    const int size = g.size, filters = g.filters;
    /* |D| <= C k^2 must be an exact float32 (the kernel's output) and keep
     * Mul * D inside int64 (docs/dualpath.md) */
    if ((long long)l->in_c * size * size > MDFI_LIMIT_BINARY_TAPS ||
        l->in_c > MDFI_LIMIT_BINARY_CHANNELS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [dualpath]: %d channels x %dx%d "
                         "taps is too large for a binary convolution (at most 2^24)", name,
                         s->line, i, l->in_c, size, size);
    /* the second source: from=-1 (the default) is this layer's input, the
     * network input for the first layer; so n_in is always 2 */
    MDFI_CHECK(mdfi_dp_parse_source(l, s, ctx, &g, &sp->src_c, err));
    sp->M = filters;
    sp->geom = (mdfi_conv_geom){l->in_c, l->in_h, l->in_w, size, g.stride, g.padding, g.out_h,
                                g.out_w, g.stride, 1};
    mdfi_dp_describe(l, &g);
    l->batch_normalize = 1;
    const double k = (double)l->in_c * size * size;
    /* binary multiply-adds, one per input bit plane (1.5 bits: two); the
     * epilogue is integer */
    l->macs = (double)filters * k * g.out_h * g.out_w;
    l->bops = l->macs * (sp->mode == MDFI_BMODE_TERNARY ? 2 : 1);
    /* biases, scales, rolling_mean, rolling_variance, weights, shift, [delta], range */
    l->n_params = (size_t)filters * 4 + (size_t)filters * (size_t)k + (size_t)l->in_c +
                  (sp->mode == MDFI_BMODE_TERNARY) + 1;
    return MDFI_OK;
}

/* ---- bind / load -------------------------------------------------------------- */

typedef struct {
    dualpath_spec s;
    /* the arrays, in the file's order, between load and prepare (one block) */
    float *raw;
    float *biases, *scales, *mean, *var, *weights, *shift, *delta, *range;
    /* prepared */
    const mdfi_bgemm_kernel *kern;
    mdfi_dpath_loops loops;   /* for the layer's ISA (identical results) */
    mdfi_bconv bc;
    float *hi, *lo;           /* [C] input thresholds (SIGN: hi only) */
    mdfi_dp_fixed fx;         /* [M] Mul_m, Off_m + 2^(S_m - 1), S_m; alpha 1, beta 0 */
    size_t in_words;          /* the padded input */
    int fused;                /* the kernel writes z itself (mdfi_bout's rq) */
} dp_params;

static mdfi_status dp_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    dp_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    p->s = *(const dualpath_spec *)l->spec;
    l->priv = p;
    return MDFI_OK;
}

static void free_prepared(dp_params *p)
{
    mdfi_bconv_free(&p->bc);
    free(p->hi);
    free(p->lo);
    p->hi = p->lo = NULL;
    mdfi_dp_fixed_free(&p->fx);
}

/* With no parameter source: zeros, but BN scales and variance 1 and range 1,
 * so that a network without weights prepares and runs (A = 1/(1 + 1e-6)). */
static mdfi_status dp_load(mdfi_layer *l, mdfi_params *r, mdfi_errbuf *err)
{
    dp_params *p = l->priv;
    const size_t M = (size_t)p->s.M, C = (size_t)p->s.geom.channels;
    const size_t nw = M * C * (size_t)p->s.geom.ksize * (size_t)p->s.geom.ksize;
    free(p->raw);
    p->raw = calloc(4 * M + nw + C + 2, sizeof(float));
    if (!p->raw)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory for %zu weights",
                         l->index, nw);
    p->biases = p->raw;
    p->scales = p->biases + M;
    p->mean = p->scales + M;
    p->var = p->mean + M;
    p->weights = p->var + M;
    p->shift = p->weights + nw;
    p->delta = p->shift + C;
    p->range = p->delta + 1;
    for (size_t m = 0; m < M; ++m)
        p->scales[m] = p->var[m] = 1.f;
    *p->range = 1.f;
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_params_floats(r, p->biases, M, "biases", err));
    MDFI_CHECK(mdfi_params_floats(r, p->scales, M, "scales", err));
    MDFI_CHECK(mdfi_params_floats(r, p->mean, M, "rolling_mean", err));
    MDFI_CHECK(mdfi_params_floats(r, p->var, M, "rolling_variance", err));
    MDFI_CHECK(mdfi_params_floats(r, p->weights, nw, "weights", err));
    MDFI_CHECK(mdfi_params_floats(r, p->shift, C, "shift", err));
    if (p->s.mode == MDFI_BMODE_TERNARY)
        MDFI_CHECK(mdfi_params_floats(r, p->delta, 1, "delta", err));
    return mdfi_params_floats(r, p->range, 1, "range", err);
}

/* ---- prepare ------------------------------------------------------------------------ */

/* The fold of output channel m (docs/dualpath.md, float32 in this order),
 * then its fixed-point multiplier; refuses what cannot be folded. */
static mdfi_status fold_channel(const mdfi_layer *l, dp_params *p, int m, mdfi_errbuf *err)
{
    const float var = p->var[m], lambda = *p->range;
    if (var < 0.f)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: channel %d has a "
                         "negative rolling_variance (%g)", l->index, m, (double)var);
    const float sd = sqrtf(var) + 1e-6f;
    const float g = p->scales[m] / sd;
    const float A = lambda * g;
    const float B = lambda * (p->biases[m] - p->mean[m] * g);
    return mdfi_dp_fixed_set(&p->fx, m, A, B, l, "dualpath", err);
}

static mdfi_status dp_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    dp_params *p = l->priv;
    MDFI_CHECK(mdfi_dp_kernel(l, ctx, "dualpath", &p->kern, err));
    p->loops = mdfi_dpath_loops_for(ctx->isa);
    free_prepared(p);
    const int M = p->s.M, C = p->s.geom.channels;
    const float lambda = *p->range, delta = *p->delta;
    MDFI_CHECK(mdfi_dp_check_range(lambda, l, "dualpath", err));
    if (p->s.mode == MDFI_BMODE_TERNARY && !(delta >= 0.f))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: delta = %g must be >= 0",
                         l->index, (double)delta);
    p->hi = malloc((size_t)C * sizeof(float));
    p->lo = malloc((size_t)C * sizeof(float));
    if (!p->hi || !p->lo || mdfi_dp_fixed_alloc(&p->fx, M))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    for (int m = 0; m < M; ++m)
        MDFI_CHECK(fold_channel(l, p, m, err));
    for (int c = 0; c < C; ++c) {
        p->hi[c] = p->s.mode == MDFI_BMODE_SIGN ? p->shift[c] : p->shift[c] + delta;
        p->lo[c] = p->s.mode == MDFI_BMODE_SIGN ? p->shift[c] : p->shift[c] - delta;
    }
    const size_t k = (size_t)C * p->s.geom.ksize * p->s.geom.ksize;
    unsigned char *wbits = mdfi_dp_weight_signs(p->weights, (size_t)M * k);
    if (!wbits)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    free(p->raw);
    p->raw = NULL;
    int failed = mdfi_bconv_init(&p->bc, p->kern, p->s.mode, &p->s.geom, M, wbits);
    free(wbits);
    if (failed)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                         l->index);
    /* the kernel's requantization takes the int32 split alone: every channel
     * must have it, and |D| <= C k^2 must stay below 2^14 (kernels/dpath.h) */
    p->fused = p->kern->requant && mdfi_bconv_dmax(&p->bc) < 1 << 14;
    for (int m = 0; m < M; ++m)
        p->fused &= p->fx.rq[m].split;
    l->param_bytes = mdfi_bconv_param_bytes(&p->bc) + 2 * (size_t)C * sizeof(float) +
                     mdfi_dp_fixed_bytes(&p->fx);
    p->in_words = mdfi_bconv_input_words(&p->bc);
    size_t need = ALIGN64(p->in_words * sizeof(uint64_t)) + mdfi_bconv_workspace_size(&p->bc);
    if (need > l->scratch_bytes)
        l->scratch_bytes = need;
    return MDFI_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

typedef struct {
    mdfi_dp_split split;   /* first: mdfi_dp_run's */
    const dp_params *p;
    mdfi_run_ctx *ctx;
    uint64_t *padded;      /* the shared padded bit input (scratch[0]) */
} dp_job;

/* Image rows [y0, y1) of the padded input (planes x words x ph x pw, the
 * layout of mdfi_bconv_input_words; image pixel (y, x) at word
 * (y + pad) * pw + x + pad), quantized with per-channel thresholds; their
 * halo, and the top / bottom halo rows with the first / last rows. */
static void pack_rows(const dp_params *p, const float *in, uint64_t *out, int y0, int y1)
{
    const mdfi_bconv *bc = &p->bc;
    const mdfi_conv_geom *g = &bc->g;
    const int C = g->channels, W = g->in_w, pad = g->pad;
    const size_t plane = (size_t)bc->ph * bc->pw, hw = (size_t)g->in_h * W;
    mdfi_dp_zero_rows(bc, bc->planes, out, y0, y1);
    const size_t nz = (size_t)bc->words * plane;   /* plane 1: [a != 0] */
    for (int cw = 0; cw < bc->words; ++cw) {
        const int c0 = 64 * cw, nc = C - c0 < 64 ? C - c0 : 64;
        for (int y = y0; y < y1; ++y) {
            uint64_t *pos = out + (size_t)cw * plane + (size_t)(y + pad) * bc->pw + pad;
            p->loops.pack_words(in + (size_t)c0 * hw + (size_t)y * W, hw, nc, W, p->hi + c0,
                                p->lo + c0, pos, p->s.mode == MDFI_BMODE_SIGN ? NULL : pos + nz);
        }
    }
}

static void input_task(void *arg, int task, int thread)
{
    (void)thread;
    const dp_job *j = arg;
    int y0, y1;
    if (mdfi_dp_rows(&j->split, j->p->s.geom.in_h, task, &y0, &y1))
        pack_rows(j->p, j->ctx->in[0], j->padded, y0, y1);
}

/* Output columns [n0, n1) of every channel: the kernel writes (float)D
 * into the output, then each D becomes z in place; or the kernel writes z. */
static void conv_task(void *arg, int task, int thread)
{
    const dp_job *j = arg;
    const dp_params *p = j->p;
    int n0, n1;
    if (!mdfi_dp_cols(&j->split, task, &n0, &n1))
        return;
    float *out = j->ctx->out;
    const size_t N = (size_t)j->split.N;
    mdfi_bout o;
    mdfi_dp_bout(&o, out, N, &p->fx);
    void *ws = (char *)j->ctx->scratch[thread] + ALIGN64(p->in_words * sizeof(uint64_t));
    if (p->fused) {
        o.rq = p->fx.rq;
        o.src = j->ctx->in[1];
        o.src_c = p->s.src_c;
    }
    mdfi_bconv_run(&p->bc, j->padded, &o, n0, n1, ws);
    if (!p->fused)
        mdfi_dp_requant_columns(&p->loops, &p->fx, out, NULL, j->ctx->in[1], p->s.src_c, N, n0,
                                n1);
}

static void dp_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    dp_job j = {{0, 0, 0}, l->priv, ctx, ctx->scratch[0]};
    mdfi_dp_run(ctx->pool, l->out_h * l->out_w, input_task, conv_task, &j);
}

static void dp_destroy(mdfi_layer *l)
{
    dp_params *p = l->priv;
    if (!p)
        return;
    free_prepared(p);
    free(p->raw);
    free(p);
    l->priv = NULL;
}

/* [dualpath] runs on the binary path only. */
const mdfi_layer_variant mdfi_dualpath_binary = {dp_bind, dp_load, dp_prepare, dp_forward,
                                                 dp_destroy, NULL};
