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
 * Fusion: when the network decides that every reader of this layer's output
 * takes bits of one quantizer (net/passes.c: l->bits_out, l->bits_q), this
 * layer folds its epilogue and that quantizer into integer thresholds on D
 * and writes bit planes; a layer whose producer writes bits (l->bits_in)
 * reads them as they are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/bgemm.h"
#include "layers/gemm_layer.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

typedef struct {
    mdfi_gemm_spec s;         /* the parsed spec, copied at bind (inq: the input's quantizer) */
    mdfi_darknet_arrays raw;  /* between load and prepare */
    /* prepared */
    const mdfi_bgemm_kernel *kern;
    mdfi_bconv *bc;           /* [groups] */
    float *alpha, *beta;      /* [filters] */
    mdfi_epilogue epi;
    int post_act;             /* activation left to a pass after the GEMM */
    int32_t *thr;             /* [filters][levels-1] (l->bits_out: thresholds on D) */
    signed char *dir;         /* [filters] */
    size_t in_words;          /* words of the packed input, all groups (float input) */
} xnor_params;

/* ---- bind / load ------------------------------------------------------------- */

static mdfi_status xnor_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    const mdfi_gemm_spec *c = l->spec;
    xnor_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    p->s = *c;
    l->priv = p;
    return MDFI_OK;
}

static mdfi_status xnor_load(mdfi_layer *l, mdfi_params *r, mdfi_errbuf *err)
{
    xnor_params *p = l->priv;
    size_t n = (size_t)l->out_c, nw = n * p->s.k;
    MDFI_CHECK(mdfi_darknet_alloc(&p->raw, l, n, p->s.bn, nw, 1, err));
    if (!r)
        return MDFI_OK;
    MDFI_CHECK(mdfi_darknet_read_head(&p->raw, r, n, p->s.bn, err));
    return mdfi_params_floats(r, p->raw.weights, nw, "weights", err);
}

static void free_prepared(xnor_params *p)
{
    for (int g = 0; p->bc && g < p->s.groups; ++g)
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
}

/* ---- prepare ------------------------------------------------------------------- */

static mdfi_status xnor_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    xnor_params *p = l->priv;
    if (ctx->binary_kind >= 0) {
        p->kern = mdfi_bgemm_kernel_get((mdfi_bkind)ctx->binary_kind);
        if (!p->kern)
            return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: this CPU/build cannot run the "
                             "binary kernel %s", l->index,
                             mdfi_bgemm_kind_name((mdfi_bkind)ctx->binary_kind));
    } else {
        p->kern = mdfi_bgemm_kernel_select(ctx->isa);
    }
    free_prepared(p);
    const int F = l->out_c;
    p->alpha = malloc((size_t)F * sizeof(float));
    p->beta = malloc((size_t)F * sizeof(float));
    p->bc = calloc((size_t)p->s.groups, sizeof *p->bc);
    unsigned char *wbits = malloc((size_t)F * p->s.k + 1);
    if (!p->alpha || !p->beta || !p->bc || !wbits) {
        free(wbits);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    }
    for (int f = 0; f < F; ++f) {
        const float *w = p->raw.weights + (size_t)f * p->s.k;
        float sum = 0.f;   /* Darknet: float32, in order */
        for (int j = 0; j < p->s.k; ++j) {
            sum += fabsf(w[j]);
            wbits[(size_t)f * p->s.k + j] = w[j] > 0.f;
        }
        float s = sum / (float)p->s.k, a = 1.f, b = p->raw.biases[f];
        if (p->s.bn) {
            a = p->raw.scales[f] / (sqrtf(p->raw.var[f]) + .000001f);
            b = p->raw.biases[f] - p->raw.mean[f] * a;
        }
        p->alpha[f] = s * p->s.inq.step * a;
        p->beta[f] = b;
    }
    mdfi_darknet_free(&p->raw);
    for (int g = 0; g < p->s.groups; ++g)
        if (mdfi_bconv_init(&p->bc[g], p->kern, p->s.inq.mode, &p->s.geom, p->s.m,
                            wbits + (size_t)g * p->s.m * p->s.k)) {
            free(wbits);
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                             l->index);
        }
    free(wbits);
    switch (p->s.act) {
    case MDFI_ACT_LINEAR: p->epi = MDFI_EPI_LINEAR; p->post_act = 0; break;
    case MDFI_ACT_RELU: p->epi = MDFI_EPI_RELU; p->post_act = 0; break;
    case MDFI_ACT_LEAKY: p->epi = MDFI_EPI_LEAKY; p->post_act = 0; break;
    default: p->epi = MDFI_EPI_LINEAR; p->post_act = 1; break;
    }
    l->param_bytes = 2 * (size_t)F * sizeof(float);
    for (int g = 0; g < p->s.groups; ++g)
        l->param_bytes += mdfi_bconv_param_bytes(&p->bc[g]);

    /* Bits for the readers (the network's decision): thresholds for their
     * quantizer. */
    if (l->bits_out) {
        const mdfi_bquant q = l->bits_q;
        const int L = q.levels, dmax = mdfi_bconv_dmax(&p->bc[0]);
        p->thr = malloc((size_t)F * (L - 1) * sizeof(int32_t));
        p->dir = malloc((size_t)F);
        if (!p->thr || !p->dir)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
        for (int f = 0; f < F; ++f)
            if (mdfi_bthresholds(dmax, p->alpha[f], p->beta[f], p->epi,
                                 p->post_act ? p->s.act : MDFI_ACT_LINEAR, &q, &p->dir[f],
                                 p->thr + (size_t)f * (L - 1)))
                return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: filter %d's output is "
                                 "not monotone in its integer sum, so it cannot write bits; "
                                 "turn binary fusion off", l->index, f);
        l->param_bytes += (size_t)F * ((L - 1) * sizeof(int32_t) + 1);
    }

    size_t ws = 0;
    for (int g = 0; g < p->s.groups; ++g) {
        size_t w = mdfi_bconv_workspace_size(&p->bc[g]);
        ws = w > ws ? w : ws;
    }
    /* the padded input (or none: bits that need no padding are used in place) */
    p->in_words = 0;
    if (!l->bits_in || mdfi_bconv_padded(&p->bc[0]))
        p->in_words = (size_t)p->s.groups * mdfi_bconv_input_words(&p->bc[0]);
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
    const int H = p->s.geom.in_h;
    int y0 = (int)((long long)H * task / j->tasks), y1 = (int)((long long)H * (task + 1) / j->tasks);
    if (y0 >= y1)
        return;
    const size_t gw = mdfi_bconv_input_words(&p->bc[0]);
    const size_t gin = (size_t)p->s.geom.channels * H * p->s.geom.in_w;
    for (int g = 0; g < p->s.groups; ++g) {
        if (j->l->bits_in)
            mdfi_bconv_copy_input(&p->bc[g], (const uint64_t *)j->ctx->in[0], j->padded, y0, y1);
        else
            mdfi_bconv_pack_input(&p->bc[g], &p->s.inq, j->ctx->in[0] + g * gin,
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
    if (l->bits_out) {
        o.bits = (uint64_t *)j->ctx->out;
        o.q = &l->bits_q;
        o.out_words = mdfi_bwords(l->out_c);
        mdfi_bout_zero(&o, (size_t)j->N, n0, n1);
    } else {
        o.ldc = (size_t)j->N;
        o.act = p->epi;
    }
    for (int g = 0; g < p->s.groups; ++g) {
        size_t f0 = (size_t)g * p->s.m;
        if (l->bits_out) {
            o.thr = p->thr + f0 * (l->bits_q.levels - 1);
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
    if (p->post_act && !l->bits_out)
        mdfi_activate(ctx->out, mdfi_layer_outputs(l), p->s.act);
}

static void xnor_destroy(mdfi_layer *l)
{
    xnor_params *p = l->priv;
    if (!p)
        return;
    mdfi_darknet_free(&p->raw);
    for (int g = 0; p->bc && g < p->s.groups; ++g)
        mdfi_bconv_free(&p->bc[g]);
    free(p->bc);
    free(p->alpha);
    free(p->beta);
    free(p->thr);
    free(p->dir);
    free(p);
    l->priv = NULL;
}

/* The binary variant of [convolutional] (xnor=1). */
const mdfi_layer_variant mdfi_convolutional_binary = {xnor_bind, xnor_load, xnor_prepare,
                                                      xnor_forward, xnor_destroy, NULL};
