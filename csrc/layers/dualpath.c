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
#include "layers/layer.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)
#define LIM24 16777216.0f             /* 2^24: the clamp of r, s and z */

typedef struct {
    mdfi_bmode mode;          /* SIGN (abits=1) or TERNARY (abits=1.5) */
    mdfi_conv_geom geom;      /* channels = C, the input's */
    int M, src_c;             /* filters; channels of the second source */
} dualpath_spec;

/* ---- parse ----------------------------------------------------------------- */

static const char *const refused_keys[] = {"astep", "xnor", "binary", "groups", "dilation"};

mdfi_status mdfi_dualpath_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    const int i = ctx->index;
    dualpath_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    for (size_t k = 0; k < sizeof refused_keys / sizeof refused_keys[0]; ++k)
        if (mdfi_cfg_str(s, refused_keys[k], NULL))
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: %s is not a key of "
                             "[dualpath] (docs/dualpath.md: its input quantizer is abits with "
                             "learned thresholds, its weights are always binary)", name,
                             mdfi_cfg_line(s, refused_keys[k]), i, refused_keys[k]);
    int filters, size, stride, pad, padding, bn, from;
    float abits;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "filters", 1, &filters, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", 1, &size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pad", 0, &pad, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", 0, &padding, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "batch_normalize", 1, &bn, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "from", -1, &from, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "abits", 1.f, &abits, err));
    const char *act = mdfi_cfg_str(s, "activation", "linear");
    if (bn != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: batch_normalize=%d; "
                         "a [dualpath] layer always has BN (folded into its output "
                         "multiplier)", name, mdfi_cfg_line(s, "batch_normalize"), i, bn);
    if (strcmp(act, "linear"))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: activation=%s; a "
                         "[dualpath] layer has no activation (linear): the next layer's "
                         "quantizer is the non-linearity", name, mdfi_cfg_line(s, "activation"),
                         i, act);
    if (abits != 1.f && abits != 1.5f)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: abits=%s; the "
                         "activation bits of a [dualpath] layer are 1 (sign) or 1.5 (ternary)",
                         name, mdfi_cfg_line(s, "abits"), i, mdfi_cfg_str(s, "abits", ""));
    sp->mode = abits == 1.f ? MDFI_BMODE_SIGN : MDFI_BMODE_TERNARY;
    if (filters < 1 || size < 1 || stride < 1 || padding < 0 || filters > 65536 || size > 64 ||
        stride > 64 || padding > 64)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [dualpath]: bad filters=%d size=%d "
                         "stride=%d padding=%d", name, s->line, i, filters, size, stride,
                         padding);
    if (pad)
        padding = size / 2;
    int out_h = (l->in_h + 2 * padding - size) / stride + 1;
    int out_w = (l->in_w + 2 * padding - size) / stride + 1;
    if (l->in_h + 2 * padding < size || l->in_w + 2 * padding < size)
        out_h = out_w = 0;
    MDFI_CHECK(mdfi_layer_check_shape(ctx, s, filters, out_h, out_w, err));
    /* |D| <= C k^2 must be an exact float32 (the kernel's output) and keep
     * Mul * D inside int64 (docs/dualpath.md) */
    if ((long long)l->in_c * size * size > (1LL << 24) || l->in_c > 65535)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [dualpath]: %d channels x %dx%d "
                         "taps is too large for a binary convolution (at most 2^24)", name,
                         s->line, i, l->in_c, size, size);
    /* the second source: from=-1 (the default) is this layer's input, the
     * network input for the first layer; so n_in is always 2 */
    l->n_in = 2;
    if (from == -1)
        l->in[1] = l->in[0];
    else
        MDFI_CHECK(mdfi_layer_ref(ctx, s, "from", from, &l->in[1], err));
    int sc = ctx->net_c, sh = ctx->net_h, sw = ctx->net_w;
    if (l->in[1] >= 0) {
        const mdfi_layer *f = &ctx->layers[l->in[1]];
        sc = f->out_c, sh = f->out_h, sw = f->out_w;
    }
    if (sh != out_h || sw != out_w || filters % sc)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [dualpath]: from=%d (%s %d, "
                         "%d x %d x %d) does not fit an output of %d x %d x %d: the second "
                         "source needs the output's height and width, and channels that "
                         "divide filters", name, mdfi_cfg_line(s, "from"), i, from,
                         l->in[1] < 0 ? "the network input" : "layer",
                         l->in[1] < 0 ? -1 : l->in[1], sc, sh, sw, filters, out_h, out_w);
    sp->M = filters;
    sp->src_c = sc;
    sp->geom = (mdfi_conv_geom){l->in_c, l->in_h, l->in_w, size, stride, padding, out_h, out_w};
    l->out_c = filters;
    l->out_h = out_h;
    l->out_w = out_w;
    l->filters = filters;
    l->size = size;
    l->stride = stride;
    l->pad = padding;
    l->groups = 1;
    l->batch_normalize = 1;
    l->xnor = 1;   /* the binary path (net/passes.c) */
    l->activation = "linear";
    const double k = (double)l->in_c * size * size;
    l->flops = 2.0 * filters * k * out_h * out_w;   /* binary multiply-adds, as [convolutional] */
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
    float *one, *zero;        /* [M] the kernel's alpha = 1, beta = 0: it writes (float)D */
    int64_t *mul, *off;       /* [M] Mul_m; Off_m plus the rounding term 2^(S_m - 1) */
    int *shift_s;             /* [M] S_m */
    size_t in_words;          /* the padded input */
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
    free(p->one);
    free(p->zero);
    free(p->mul);
    free(p->off);
    free(p->shift_s);
    p->hi = p->lo = p->one = p->zero = NULL;
    p->mul = p->off = NULL;
    p->shift_s = NULL;
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
    if (!isfinite(A) || !isfinite(B))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: channel %d folds to a "
                         "non-finite multiplier or offset (A = %g, B = %g)", l->index, m,
                         (double)A, (double)B);
    int S = 0, e = 0;
    if (A != 0.f) {
        (void)frexp((double)A, &e);
        S = 30 - e < 36 ? 30 - e : 36;
        if (S < 0)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: channel %d's "
                             "multiplier |A| = %g is too large (must be < 2^30)", l->index, m,
                             (double)fabsf(A));
    }
    if (fabsf(B) >= LIM24)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: channel %d's offset "
                         "|B| = %g is too large (must be < 2^24)", l->index, m,
                         (double)fabsf(B));
    p->shift_s[m] = S;
    p->mul[m] = (int64_t)rint(ldexp((double)A, S));
    p->off[m] = (int64_t)rint(ldexp((double)B, S)) + (S > 0 ? (int64_t)1 << (S - 1) : 0);
    return MDFI_OK;
}

static mdfi_status dp_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    dp_params *p = l->priv;
    if (l->bits_in || l->bits_out || l->fused)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d [dualpath]: takes and writes "
                         "float tensors only", l->index);
    if (ctx->binary_kind >= 0) {
        p->kern = mdfi_bgemm_kernel_get((mdfi_bkind)ctx->binary_kind);
        if (!p->kern)
            return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: this CPU/build cannot run the "
                             "binary kernel %s", l->index,
                             mdfi_bgemm_kind_name((mdfi_bkind)ctx->binary_kind));
    } else {
        p->kern = mdfi_bgemm_kernel_select(ctx->isa);
    }
    p->loops = mdfi_dpath_loops_for(ctx->isa);
    free_prepared(p);
    const int M = p->s.M, C = p->s.geom.channels;
    const float lambda = *p->range, delta = *p->delta;
    if (!(lambda > 0.f) || !isfinite(lambda))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: range = %g must be a "
                         "positive number", l->index, (double)lambda);
    if (p->s.mode == MDFI_BMODE_TERNARY && !(delta >= 0.f))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [dualpath]: delta = %g must be >= 0",
                         l->index, (double)delta);
    p->hi = malloc((size_t)C * sizeof(float));
    p->lo = malloc((size_t)C * sizeof(float));
    p->one = malloc((size_t)M * sizeof(float));
    p->zero = malloc((size_t)M * sizeof(float));
    p->mul = malloc((size_t)M * sizeof(int64_t));
    p->off = malloc((size_t)M * sizeof(int64_t));
    p->shift_s = malloc((size_t)M * sizeof(int));
    if (!p->hi || !p->lo || !p->one || !p->zero || !p->mul || !p->off || !p->shift_s)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    for (int m = 0; m < M; ++m) {
        MDFI_CHECK(fold_channel(l, p, m, err));
        p->one[m] = 1.f;
        p->zero[m] = 0.f;
    }
    for (int c = 0; c < C; ++c) {
        p->hi[c] = p->s.mode == MDFI_BMODE_SIGN ? p->shift[c] : p->shift[c] + delta;
        p->lo[c] = p->s.mode == MDFI_BMODE_SIGN ? p->shift[c] : p->shift[c] - delta;
    }
    const size_t k = (size_t)C * p->s.geom.ksize * p->s.geom.ksize;
    unsigned char *wbits = malloc((size_t)M * k + 1);
    if (!wbits)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    for (size_t j = 0; j < (size_t)M * k; ++j)
        wbits[j] = p->weights[j] > 0.f;
    free(p->raw);
    p->raw = NULL;
    int failed = mdfi_bconv_init(&p->bc, p->kern, p->s.mode, &p->s.geom, M, wbits);
    free(wbits);
    if (failed)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                         l->index);
    l->param_bytes = mdfi_bconv_param_bytes(&p->bc) + 2 * (size_t)C * sizeof(float) +
                     (size_t)M * (2 * sizeof(float) + 2 * sizeof(int64_t) + sizeof(int));
    p->in_words = mdfi_bconv_input_words(&p->bc);
    size_t need = ALIGN64(p->in_words * sizeof(uint64_t)) + mdfi_bconv_workspace_size(&p->bc);
    if (need > l->scratch_bytes)
        l->scratch_bytes = need;
    return MDFI_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

typedef struct {
    const mdfi_layer *l;
    const dp_params *p;
    mdfi_run_ctx *ctx;
    uint64_t *padded;   /* the shared padded bit input (scratch[0]) */
    int N, chunk, tasks;
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
    const int r0 = y0 == 0 ? 0 : y0 + pad, r1 = y1 == g->in_h ? bc->ph : y1 + pad;
    for (int wp = 0; wp < bc->planes * bc->words; ++wp)
        memset(out + wp * plane + (size_t)r0 * bc->pw, 0,
               (size_t)(r1 - r0) * bc->pw * sizeof(uint64_t));
    const size_t nz = (size_t)bc->words * plane;   /* plane 1: [a != 0] */
    for (int c = 0; c < C; ++c) {
        const uint64_t bit = 1ull << (c & 63);
        uint64_t *o0 = out + (size_t)(c >> 6) * plane + pad;
        for (int y = y0; y < y1; ++y) {
            uint64_t *pos = o0 + (size_t)(y + pad) * bc->pw;
            p->loops.pack_row(in + (size_t)c * hw + (size_t)y * W, W, p->hi[c], p->lo[c], bit,
                                pos, p->s.mode == MDFI_BMODE_SIGN ? NULL : pos + nz);
        }
    }
}

static void input_task(void *arg, int task, int thread)
{
    (void)thread;
    const dp_job *j = arg;
    const int H = j->p->s.geom.in_h;
    int y0 = (int)((long long)H * task / j->tasks), y1 = (int)((long long)H * (task + 1) / j->tasks);
    if (y0 < y1)
        pack_rows(j->p, j->ctx->in[0], j->padded, y0, y1);
}

/* Output columns [n0, n1) of every channel: the kernel writes (float)D
 * into the output, then each D becomes z in place. */
static void conv_task(void *arg, int task, int thread)
{
    const dp_job *j = arg;
    const dp_params *p = j->p;
    const int n0 = task * j->chunk, n1 = n0 + j->chunk < j->N ? n0 + j->chunk : j->N;
    if (n0 >= n1)
        return;
    float *out = j->ctx->out;
    const size_t N = (size_t)j->N;
    mdfi_bout o;
    memset(&o, 0, sizeof o);
    o.out = out;
    o.ldc = N;
    o.alpha = p->one;
    o.beta = p->zero;
    o.act = MDFI_EPI_LINEAR;
    void *ws = (char *)j->ctx->scratch[thread] + ALIGN64(p->in_words * sizeof(uint64_t));
    mdfi_bconv_run(&p->bc, j->padded, &o, n0, n1, ws);
    const float *src = j->ctx->in[1];
    for (int m = 0; m < p->s.M; ++m)
        p->loops.requant(out + (size_t)m * N + n0, src + (size_t)(m % p->s.src_c) * N + n0,
                           (size_t)(n1 - n0), p->mul[m], p->off[m], p->shift_s[m]);
}

static void dp_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const dp_params *p = l->priv;
    const int threads = mdfi_pool_threads(ctx->pool);
    dp_job j = {l, p, ctx, ctx->scratch[0], l->out_h * l->out_w, 0, threads};
    mdfi_pool_run(ctx->pool, threads, input_task, &j);
    /* column chunks of whole 32-column panels; integer arithmetic, so any
     * split gives identical results */
    j.chunk = (j.N + threads - 1) / threads;
    j.chunk = (j.chunk + 31) & ~31;
    mdfi_pool_run(ctx->pool, (j.N + j.chunk - 1) / j.chunk, conv_task, &j);
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
