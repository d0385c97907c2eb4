/* [convolutional] xnor=1: Darknet's binary convolution on bit-packed data.
 *
 * Darknet (CPU forward): the input binarizes as x > 0 -> +1 else -1; each
 * filter's weights become +-s_f with s_f = mean|w| (float32 sequential sum
 * / count; w == 0 -> -s_f); a zero-padded convolution; then BN or bias and
 * the activation, as for a float conv.  Here the conv is the exact integer
 * D = sum w_bit * a over the in-image taps (kernels/bgemm.h), and
 *   y = act((float)D * alpha + beta),  alpha = s_f * step * bn_scale,
 *   beta = bias - mean * bn_scale,  bn_scale = scale / (sqrt(var) + 1e-6).
 *
 * Keys of ours (docs/binary.md): abits = 1 (default: Darknet's sign), 1.5
 * (ternary {-1, 0, +1}) or 2 ({0, 1, 2, 3}); astep = the step of the
 * multi-bit quantizers.
 *
 * Fusion: when every reader of this layer's output is a binary layer (maybe
 * through [maxpool]s) with the same input quantizer, this layer folds its
 * epilogue and that quantizer into integer thresholds on D and writes bit
 * planes; the maxpools run on bits.  Enabled by MDFI_BINARY_FUSE (see
 * fusion_enabled). */
#include "layers/conv_xnor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/bgemm.h"
#include "layers/gemm_layer.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

typedef struct {
    int groups, bn;
    mdfi_activation act;
    mdfi_bquant inq;          /* how this layer quantizes its input */
    mdfi_conv_geom geom;      /* per group */
    int m, k;                 /* filters per group, weights per filter */
    mdfi_layer *net;          /* the network's layers, for the fusion planner */
    int n_layers;
    mdfi_darknet_arrays raw;  /* between load and prepare */
    /* prepared */
    const mdfi_bgemm_kernel *kern;
    mdfi_bconv *bc;           /* [groups] */
    float *alpha, *beta;      /* [filters] */
    mdfi_epilogue epi;
    int post_act;             /* activation left to a pass after the GEMM */
    int in_bits;              /* the input arrives as bit planes (set by the producer) */
    int out_bits;             /* the output is written as bit planes of outq */
    mdfi_bquant outq;
    int32_t *thr;             /* [filters][levels-1] */
    signed char *dir;         /* [filters] */
    size_t in_words;          /* words of the packed input, all groups (float input) */
} xnor_params;

typedef struct {
    int planes, channels;
    mdfi_bmode mode;
} maxpool_bits_params;

int mdfi_conv_xnor_selected(mdfi_cfg_section *s)
{
    const char *x = mdfi_cfg_str(s, "xnor", NULL);
    if (x && strcmp(x, "0"))
        return 1;
    return mdfi_cfg_str(s, "abits", NULL) || mdfi_cfg_str(s, "astep", NULL);
}

/* ---- parse / load ------------------------------------------------------------ */

static mdfi_status xnor_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    xnor_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->net = ctx->layers;
    p->n_layers = ctx->cfg->n_sec - 1;
    mdfi_conv_spec c;
    MDFI_CHECK(mdfi_conv_parse_spec(l, s, ctx, &c, err));
    float astep;
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "astep", 1.f, &astep, err));
    const char *abits = mdfi_cfg_str(s, "abits", NULL);
    if (l->xnor != 1)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: %s", name,
                         mdfi_cfg_line(s, l->xnor ? "xnor" : abits ? "abits" : "astep"),
                         ctx->index,
                         l->xnor ? "xnor must be 0 or 1"
                                 : "abits/astep quantize the input of a binary convolution "
                                   "and need xnor=1 (binary weights)");
    mdfi_bmode mode = MDFI_BMODE_SIGN;
    if (abits && (!strcmp(abits, "1.5") || !strcmp(abits, "ternary")))
        mode = MDFI_BMODE_TERNARY;
    else if (abits && !strcmp(abits, "2"))
        mode = MDFI_BMODE_2BIT;
    else if (abits && strcmp(abits, "1"))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: abits=%s; the "
                         "activation bits of an xnor layer are 1 (sign, as Darknet), 1.5 "
                         "(ternary -1/0/+1) or 2 (levels 0..3)", name,
                         mdfi_cfg_line(s, "abits"), ctx->index, abits);
    if (mode == MDFI_BMODE_SIGN && mdfi_cfg_str(s, "astep", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: astep applies to "
                         "abits=1.5 or 2; with abits=1 the input binarizes by its sign",
                         name, mdfi_cfg_line(s, "astep"), ctx->index);
    if (!(astep > 0.f) || !isfinite(astep))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [convolutional]: astep=%g must be "
                         "a positive number", name, mdfi_cfg_line(s, "astep"), ctx->index,
                         (double)astep);
    mdfi_bquant_init(&p->inq, mode, astep);
    /* |D| <= (3 levels) * channels * taps must stay far inside int32 */
    if ((long long)3 * c.k > (1LL << 28) || c.geom.channels > 65535)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [convolutional]: %d channels "
                         "x %dx%d taps is too large for a binary convolution", name, s->line,
                         ctx->index, c.geom.channels, l->size, l->size);
    p->groups = c.groups;
    p->bn = c.bn;
    p->act = c.act;
    p->m = c.m;
    p->k = c.k;
    p->geom = c.geom;
    l->n_params = (size_t)l->filters * (p->bn ? 4 : 1) + (size_t)l->filters * p->k;
    return MDFI_OK;
}

static mdfi_status xnor_load(mdfi_layer *l, mdfi_weights_reader *r, mdfi_errbuf *err)
{
    xnor_params *p = l->priv;
    size_t n = (size_t)l->out_c, nw = n * p->k;
    MDFI_CHECK(mdfi_darknet_alloc(&p->raw, l, n, p->bn, nw, 1, err));
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_darknet_read_head(&p->raw, r, n, p->bn, err));
    return mdfi_weights_read(r, p->raw.weights, nw, "weights", err);
}

/* ---- fusion planning ------------------------------------------------------------ */

/* MDFI_BINARY_FUSE=1 fuses, =0 does not; unset/auto: fuse unless every
 * layer output must stay readable as floats (keep_outputs): a fused layer's
 * output holds bit planes, not floats. */
static mdfi_status fusion_enabled(const mdfi_prepare_ctx *ctx, int *on, int *known,
                                  mdfi_errbuf *err)
{
    const char *env = getenv("MDFI_BINARY_FUSE");
    *known = 0;
    if (env && !strcmp(env, "1")) {
        *on = 1;
        return MDFI_OK;
    }
    if (env && !strcmp(env, "0")) {
        *on = 0;
        return MDFI_OK;
    }
    if (env && *env && strcmp(env, "auto"))
        return mdfi_fail(err, MDFI_ERR_ARG, "MDFI_BINARY_FUSE=%s: use 0, 1 or auto", env);
    *on = !ctx->keep_outputs;
    *known = 1;
    return MDFI_OK;
}

static int same_quant(const mdfi_bquant *a, const mdfi_bquant *b)
{
    return a->mode == b->mode && a->step == b->step;
}

/* Whether every reader of layer i takes it as bits of one quantizer (*q,
 * set by the first binary reader): binary layers without groups, or
 * maxpools whose own readers all qualify. */
static int bit_readers(mdfi_layer *net, int n, int i, mdfi_bquant *q, int *have_q, int depth)
{
    int readers = 0;
    if (i >= n - 1 || depth > 16)
        return 0;   /* the output layer stays float */
    for (int j = i + 1; j < n; ++j) {
        mdfi_layer *l = &net[j];
        int reads = 0;
        for (int k = 0; k < l->n_in; ++k)
            reads |= l->in[k] == i;
        if (!reads)
            continue;
        ++readers;
        if (l->n_in != 1 || l->alias_input)
            return 0;
        if (l->ops == &mdfi_conv_xnor_ops) {
            const xnor_params *xp = l->priv;
            if (xp->groups != 1)
                return 0;
            if (*have_q && !same_quant(q, &xp->inq))
                return 0;
            *q = xp->inq;
            *have_q = 1;
        } else if (l->ops == &mdfi_maxpool_ops || l->ops == &mdfi_maxpool_bits_ops) {
            if (!bit_readers(net, n, j, q, have_q, depth + 1))
                return 0;
        } else {
            return 0;
        }
    }
    return readers > 0 && *have_q;
}

static size_t bits_bytes(const mdfi_bquant *q, const mdfi_layer *l)
{
    return mdfi_btensor_words(q->planes, l->out_c, l->out_h, l->out_w) * sizeof(uint64_t);
}

/* Output buffer size of a layer that writes bits: exact when we know no one
 * reads it as floats, else at least the float size (so a float reader of a
 * forced fusion reads the wrong values but never past the buffer). */
static size_t out_size(const mdfi_bquant *q, const mdfi_layer *l, int known)
{
    size_t b = bits_bytes(q, l), f = mdfi_layer_outputs(l) * sizeof(float);
    return known || b > f ? b : f;
}

/* Marks the readers of layer i: binary layers take bits, maxpools switch to
 * the bit table.  Only after bit_readers said yes. */
static mdfi_status mark_readers(mdfi_layer *net, int n, int i, const mdfi_bquant *q, int known,
                                mdfi_errbuf *err)
{
    for (int j = i + 1; j < n; ++j) {
        mdfi_layer *l = &net[j];
        if (l->n_in != 1 || l->in[0] != i)
            continue;
        if (l->ops == &mdfi_conv_xnor_ops) {
            ((xnor_params *)l->priv)->in_bits = 1;
            continue;
        }
        maxpool_bits_params *mp = l->priv;
        if (l->ops == &mdfi_maxpool_ops) {
            mp = calloc(1, sizeof *mp);
            if (!mp)
                return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
            free(l->priv);
            l->priv = mp;
            l->ops = &mdfi_maxpool_bits_ops;
        }
        mp->planes = q->planes;
        mp->mode = q->mode;
        mp->channels = l->out_c;
        l->out_bytes = out_size(q, l, known);
        MDFI_CHECK(mark_readers(net, n, j, q, known, err));
    }
    return MDFI_OK;
}

/* Undoes what an earlier (failed) prepare planned, so a new prepare starts
 * from the parsed network: readers back to float input, maxpools back to
 * the float table. */
static void unmark_readers(mdfi_layer *net, int n, int i)
{
    for (int j = i + 1; j < n; ++j) {
        mdfi_layer *l = &net[j];
        if (l->n_in != 1 || l->in[0] != i)
            continue;
        if (l->ops == &mdfi_conv_xnor_ops) {
            ((xnor_params *)l->priv)->in_bits = 0;
        } else if (l->ops == &mdfi_maxpool_bits_ops) {
            free(l->priv);
            l->priv = NULL;
            l->ops = &mdfi_maxpool_ops;
            l->out_bytes = 0;
            unmark_readers(net, n, j);
        }
    }
}

static void free_prepared(mdfi_layer *l, xnor_params *p)
{
    for (int g = 0; p->bc && g < p->groups; ++g)
        mdfi_bconv_free(&p->bc[g]);
    free(p->bc);
    free(p->alpha);
    free(p->beta);
    free(p->thr);
    free(p->dir);
    p->bc = NULL;
    p->alpha = p->beta = NULL;
    p->thr = NULL;
    p->dir = NULL;
    p->out_bits = 0;
    l->out_bytes = 0;
    unmark_readers(p->net, p->n_layers, l->index);
}

/* ---- prepare ------------------------------------------------------------------- */

static mdfi_status xnor_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    xnor_params *p = l->priv;
    char why[160] = "";
    const char *env = getenv("MDFI_BINARY_KERNEL");
    mdfi_bkind kind;
    if (env && *env && strcmp(env, "auto") && mdfi_bgemm_kind_parse(env, &kind))
        return mdfi_fail(err, MDFI_ERR_ARG, "MDFI_BINARY_KERNEL=%s is not a binary kernel (ref, "
                         "popcnt, avx2, avx512vpopcnt, neon or auto)", env);
    p->kern = mdfi_bgemm_kernel_select(ctx->isa, why, sizeof why);
    if (!p->kern)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: %s", l->index, why);
    free_prepared(l, p);
    if (!p->raw.weights)
        MDFI_CHECK(xnor_load(l, NULL, err));
    const int F = l->out_c;
    p->alpha = malloc((size_t)F * sizeof(float));
    p->beta = malloc((size_t)F * sizeof(float));
    p->bc = calloc((size_t)p->groups, sizeof *p->bc);
    unsigned char *wbits = malloc((size_t)F * p->k + 1);
    if (!p->alpha || !p->beta || !p->bc || !wbits) {
        free(wbits);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    }
    for (int f = 0; f < F; ++f) {
        const float *w = p->raw.weights + (size_t)f * p->k;
        float sum = 0.f;   /* Darknet: float32, in order */
        for (int j = 0; j < p->k; ++j) {
            sum += fabsf(w[j]);
            wbits[(size_t)f * p->k + j] = w[j] > 0.f;
        }
        float s = sum / (float)p->k, a = 1.f, b = p->raw.biases[f];
        if (p->bn) {
            a = p->raw.scales[f] / (sqrtf(p->raw.var[f]) + .000001f);
            b = p->raw.biases[f] - p->raw.mean[f] * a;
        }
        p->alpha[f] = s * p->inq.step * a;
        p->beta[f] = b;
    }
    mdfi_darknet_free(&p->raw);
    for (int g = 0; g < p->groups; ++g)
        if (mdfi_bconv_init(&p->bc[g], p->kern, p->inq.mode, &p->geom, p->m,
                            wbits + (size_t)g * p->m * p->k)) {
            free(wbits);
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                             l->index);
        }
    free(wbits);
    switch (p->act) {
    case MDFI_ACT_LINEAR: p->epi = MDFI_EPI_LINEAR; p->post_act = 0; break;
    case MDFI_ACT_RELU: p->epi = MDFI_EPI_RELU; p->post_act = 0; break;
    case MDFI_ACT_LEAKY: p->epi = MDFI_EPI_LEAKY; p->post_act = 0; break;
    default: p->epi = MDFI_EPI_LINEAR; p->post_act = 1; break;
    }
    l->param_bytes = 2 * (size_t)F * sizeof(float);
    for (int g = 0; g < p->groups; ++g)
        l->param_bytes += mdfi_bconv_param_bytes(&p->bc[g]);

    /* Fusion: thresholds for the readers' quantizer, if they all take bits. */
    int on = 0, known = 0, have_q = 0;
    MDFI_CHECK(fusion_enabled(ctx, &on, &known, err));
    mdfi_bquant q;
    if (on && bit_readers(p->net, p->n_layers, l->index, &q, &have_q, 0)) {
        const int L = q.levels, dmax = mdfi_bconv_dmax(&p->bc[0]);
        p->thr = malloc((size_t)F * (L - 1) * sizeof(int32_t));
        p->dir = malloc((size_t)F);
        if (!p->thr || !p->dir)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
        int ok = 1;
        for (int f = 0; f < F && ok; ++f)
            ok = !mdfi_bthresholds(dmax, p->alpha[f], p->beta[f], p->epi,
                                   p->post_act ? p->act : MDFI_ACT_LINEAR, &q, &p->dir[f],
                                   p->thr + (size_t)f * (L - 1));
        if (ok) {
            p->out_bits = 1;
            p->outq = q;
            l->out_bytes = out_size(&q, l, known);
            l->param_bytes += (size_t)F * ((L - 1) * sizeof(int32_t) + 1);
            MDFI_CHECK(mark_readers(p->net, p->n_layers, l->index, &q, known, err));
        } else {   /* e.g. a non-monotone activation: stay float */
            free(p->thr);
            free(p->dir);
            p->thr = NULL;
            p->dir = NULL;
        }
    }

    size_t ws = 0;
    for (int g = 0; g < p->groups; ++g) {
        size_t w = mdfi_bconv_workspace_size(&p->bc[g]);
        ws = w > ws ? w : ws;
    }
    /* the padded input (or none: bits that need no padding are used in place) */
    p->in_words = 0;
    if (!p->in_bits || mdfi_bconv_padded(&p->bc[0]))
        p->in_words = (size_t)p->groups * mdfi_bconv_input_words(&p->bc[0]);
    size_t need = ALIGN64(p->in_words * sizeof(uint64_t)) + ws;
    if (need > l->scratch_bytes)
        l->scratch_bytes = need;
    return MDFI_OK;
}

/* ---- forward ---------------------------------------------------------------------- */

typedef struct {
    const mdfi_layer *l;
    const xnor_params *p;
    mdfi_run_ctx *ctx;
    uint64_t *padded;    /* the shared padded input, or NULL */
    const uint64_t *in;  /* what the convolution reads */
    int N, chunk, tasks;
} xnor_job;

/* Rows of the padded input: quantized from floats, or copied from bits. */
static void input_task(void *arg, int task, int thread)
{
    (void)thread;
    const xnor_job *j = arg;
    const xnor_params *p = j->p;
    const int H = p->geom.in_h;
    int y0 = (int)((long long)H * task / j->tasks), y1 = (int)((long long)H * (task + 1) / j->tasks);
    if (y0 >= y1)
        return;
    const size_t gw = mdfi_bconv_input_words(&p->bc[0]);
    const size_t gin = (size_t)p->geom.channels * H * p->geom.in_w;
    for (int g = 0; g < p->groups; ++g) {
        if (p->in_bits)
            mdfi_bconv_copy_input(&p->bc[g], (const uint64_t *)j->ctx->in[0], j->padded, y0, y1);
        else
            mdfi_bconv_pack_input(&p->bc[g], &p->inq, j->ctx->in[0] + g * gin,
                                  j->padded + g * gw, y0, y1);
    }
}

static void conv_task(void *arg, int task, int thread)
{
    const xnor_job *j = arg;
    const xnor_params *p = j->p;
    const mdfi_layer *l = j->l;
    int n0 = task * j->chunk, n1 = n0 + j->chunk < j->N ? n0 + j->chunk : j->N;
    if (n0 >= n1)
        return;
    void *ws = (char *)j->ctx->scratch[thread] + ALIGN64(p->in_words * sizeof(uint64_t));
    const size_t gw = mdfi_bconv_input_words(&p->bc[0]);
    mdfi_bout o;
    memset(&o, 0, sizeof o);
    if (p->out_bits) {
        o.bits = (uint64_t *)j->ctx->out;
        o.q = &p->outq;
        o.out_words = mdfi_bwords(l->out_c);
        mdfi_bout_zero(&o, (size_t)j->N, n0, n1);
    } else {
        o.ldc = (size_t)j->N;
        o.act = p->epi;
    }
    for (int g = 0; g < p->groups; ++g) {
        size_t f0 = (size_t)g * p->m;
        if (p->out_bits) {
            o.thr = p->thr + f0 * (p->outq.levels - 1);
            o.dir = p->dir + f0;
            o.m0 = (int)f0;
        } else {
            o.out = j->ctx->out + f0 * j->N;
            o.alpha = p->alpha + f0;
            o.beta = p->beta + f0;
        }
        mdfi_bconv_run(&p->bc[g], j->in + g * gw, &o, n0, n1, ws);
    }
}

static void xnor_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const xnor_params *p = l->priv;
    int threads = mdfi_pool_threads(ctx->pool);
    xnor_job j = {l, p, ctx, NULL, NULL, l->out_h * l->out_w, 0, threads};
    if (p->in_words) {
        j.padded = ctx->scratch[0];   /* shared: every task reads all of it */
        j.in = j.padded;
        mdfi_pool_run(ctx->pool, threads, input_task, &j);
    } else {
        j.in = (const uint64_t *)ctx->in[0];
    }
    /* column chunks of whole 32-column panels; integer sums, so any split
     * gives identical results */
    j.chunk = (j.N + threads - 1) / threads;
    j.chunk = (j.chunk + 31) & ~31;
    int tasks = (j.N + j.chunk - 1) / j.chunk;
    mdfi_pool_run(ctx->pool, tasks, conv_task, &j);
    if (p->post_act && !p->out_bits)
        mdfi_activate(ctx->out, mdfi_layer_outputs(l), p->act);
}

static void xnor_destroy(mdfi_layer *l)
{
    xnor_params *p = l->priv;
    if (!p)
        return;
    mdfi_darknet_free(&p->raw);
    for (int g = 0; p->bc && g < p->groups; ++g)
        mdfi_bconv_free(&p->bc[g]);
    free(p->bc);
    free(p->alpha);
    free(p->beta);
    free(p->thr);
    free(p->dir);
    free(p);
    l->priv = NULL;   /* (readers' tables are freed by their own destroy) */
}

const mdfi_layer_ops mdfi_conv_xnor_ops = {
    "convolutional", xnor_parse, xnor_load, xnor_prepare, xnor_forward, xnor_destroy};

/* ---- [maxpool] on bits ---------------------------------------------------------------
 * Darknet's maxpool (out-of-image taps ignored) commutes with a monotone
 * quantizer, so pooling the level indices is exact:
 *   SIGN     OR of the bits
 *   TERNARY  pos = OR pos;  nz = pos | AND nz       (max of -1/0/+1)
 *   2BIT     b1 = OR b1;  b0 = b1 ? OR(b0 & b1) : OR b0
 * An empty window gives the lowest level, as -FLT_MAX would. */
static void maxpool_bits_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const maxpool_bits_params *mp = l->priv;
    const int off = -(l->pad / 2), W = mdfi_bwords(mp->channels);
    const size_t iplane = (size_t)l->in_h * l->in_w, oplane = (size_t)l->out_h * l->out_w;
    const uint64_t *in = (const uint64_t *)ctx->in[0];
    uint64_t *out = (uint64_t *)ctx->out;
    for (int w = 0; w < W; ++w) {
        int nch = mp->channels - 64 * w;
        const uint64_t cmask = nch >= 64 ? ~0ull : (1ull << nch) - 1;
        const uint64_t *s0 = in + (size_t)w * iplane, *s1 = in + ((size_t)W + w) * iplane;
        uint64_t *d0 = out + (size_t)w * oplane, *d1 = out + ((size_t)W + w) * oplane;
        for (int oy = 0; oy < l->out_h; ++oy)
            for (int ox = 0; ox < l->out_w; ++ox) {
                uint64_t or0 = 0, or1 = 0, and1 = ~0ull, or01 = 0;
                for (int ky = 0; ky < l->size; ++ky) {
                    int y = off + oy * l->stride + ky;
                    if (y < 0 || y >= l->in_h)
                        continue;
                    for (int kx = 0; kx < l->size; ++kx) {
                        int x = off + ox * l->stride + kx;
                        if (x < 0 || x >= l->in_w)
                            continue;
                        size_t i = (size_t)y * l->in_w + x;
                        or0 |= s0[i];
                        if (mp->planes > 1) {
                            or1 |= s1[i];
                            and1 &= s1[i];
                            or01 |= s0[i] & s1[i];
                        }
                    }
                }
                size_t o = (size_t)oy * l->out_w + ox;
                if (mp->mode == MDFI_BMODE_SIGN) {
                    d0[o] = or0;
                } else if (mp->mode == MDFI_BMODE_TERNARY) {
                    d0[o] = or0;
                    d1[o] = (or0 | and1) & cmask;
                } else {
                    d1[o] = or1;
                    d0[o] = (or1 & or01) | (~or1 & or0);
                }
            }
    }
}

static void maxpool_bits_destroy(mdfi_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const mdfi_layer_ops mdfi_maxpool_bits_ops = {"maxpool", NULL, NULL, NULL, maxpool_bits_forward,
                                              maxpool_bits_destroy};
