/* The parts [dualpath] and [fracconv] share (layers/dp_common.h). */
#include "layers/dp_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

#define LIM24 16777216.0f   /* 2^24: |B| must stay below */

mdfi_status mdfi_dp_parse_start(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                size_t size, const char *refused, const char *why,
                                mdfi_errbuf *err)
{
    if (!(l->spec = calloc(1, size)))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    for (int k = 0; k < s->n_kv; ++k)
        if (mdfi_cfg_word_in(refused, s->kv[k].key))
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: %s is not a key of [%s] "
                             "(%s)", ctx->cfg->name, s->kv[k].line, ctx->index, s->type,
                             s->kv[k].key, s->type, why);
    const char *act = mdfi_cfg_str(s, "activation", "linear");
    if (strcmp(act, "linear"))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: activation=%s; a [%s] layer "
                         "has no activation (linear): the next layer's quantizer is the "
                         "non-linearity", ctx->cfg->name, mdfi_cfg_line(s, "activation"),
                         ctx->index, s->type, act, s->type);
    return MDFI_OK;
}

mdfi_status mdfi_dp_parse_geom(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_dp_geom *g, mdfi_errbuf *err)
{
    int pad;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "filters", 1, &g->filters, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "size", 1, &g->size, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "stride", 1, &g->stride, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pad", 0, &pad, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "padding", 0, &g->padding, err));
    if (g->filters < 1 || g->size < 1 || g->stride < 1 || g->padding < 0 ||
        g->filters > MDFI_LIMIT_FILTERS || g->size > MDFI_LIMIT_KERNEL ||
        g->stride > MDFI_LIMIT_KERNEL || g->padding > MDFI_LIMIT_KERNEL)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: bad filters=%d size=%d "
                         "stride=%d padding=%d", ctx->cfg->name, s->line, ctx->index, s->type,
                         g->filters, g->size, g->stride, g->padding);
    if (pad)
        g->padding = g->size / 2;
    g->out_h = (l->in_h + 2 * g->padding - g->size) / g->stride + 1;
    g->out_w = (l->in_w + 2 * g->padding - g->size) / g->stride + 1;
    if (l->in_h + 2 * g->padding < g->size || l->in_w + 2 * g->padding < g->size)
        g->out_h = g->out_w = 0;
    return mdfi_layer_check_shape(ctx, s, g->filters, g->out_h, g->out_w, err);
}

mdfi_status mdfi_dp_parse_source(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 const mdfi_dp_geom *g, int *src_c, mdfi_errbuf *err)
{
    int from;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "from", -1, &from, err));
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
    if (sh != g->out_h || sw != g->out_w || g->filters % sc)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [%s]: from=%d (%s %d, "
                         "%d x %d x %d) does not fit an output of %d x %d x %d: the second "
                         "source needs the output's height and width, and channels that "
                         "divide filters", ctx->cfg->name, mdfi_cfg_line(s, "from"), ctx->index,
                         s->type, from, l->in[1] < 0 ? "the network input" : "layer",
                         l->in[1] < 0 ? -1 : l->in[1], sc, sh, sw, g->filters, g->out_h,
                         g->out_w);
    *src_c = sc;
    return MDFI_OK;
}

void mdfi_dp_padded_rows(const mdfi_bconv *bc, int y0, int y1, int *r0, int *r1)
{
    *r0 = y0 == 0 ? 0 : y0 + bc->g.pad;
    *r1 = y1 == bc->g.in_h ? bc->ph : y1 + bc->g.pad;
}

void mdfi_dp_zero_rows(const mdfi_bconv *bc, int planes, uint64_t *out, int y0, int y1)
{
    const size_t plane = (size_t)bc->ph * bc->pw;
    int r0, r1;
    mdfi_dp_padded_rows(bc, y0, y1, &r0, &r1);
    for (int wp = 0; wp < planes * bc->words; ++wp)
        memset(out + wp * plane + (size_t)r0 * bc->pw, 0,
               (size_t)(r1 - r0) * bc->pw * sizeof(uint64_t));
}

void mdfi_dp_describe(mdfi_layer *l, const mdfi_dp_geom *g)
{
    l->out_c = l->filters = g->filters;
    l->out_h = g->out_h;
    l->out_w = g->out_w;
    l->size = g->size;
    l->stride = g->stride;
    l->pad = g->padding;
    l->groups = 1;
    l->xnor = 1;   /* the binary path (net/passes.c) */
    l->activation = "linear";
}

int mdfi_dp_fixed_alloc(mdfi_dp_fixed *f, int M)
{
    mdfi_dp_fixed_free(f);
    const size_t n = (size_t)M;
    /* one block: rq, one, zero */
    char *b = malloc(n * (sizeof(mdfi_dpath_rq) + 2 * sizeof(float)));
    if (!b)
        return -1;
    f->M = M;
    f->rq = (mdfi_dpath_rq *)b;
    f->one = (float *)(f->rq + n);
    f->zero = f->one + n;
    for (size_t m = 0; m < n; ++m) {
        f->one[m] = 1.f;
        f->zero[m] = 0.f;
    }
    return 0;
}

void mdfi_dp_fixed_free(mdfi_dp_fixed *f)
{
    free(f->rq);   /* the block */
    f->rq = NULL;
    f->one = f->zero = NULL;
}

size_t mdfi_dp_fixed_bytes(const mdfi_dp_fixed *f)
{
    return (size_t)f->M * (sizeof(mdfi_dpath_rq) + 2 * sizeof(float));
}

mdfi_status mdfi_dp_fixed_set(mdfi_dp_fixed *f, int m, float A, float B, const mdfi_layer *l,
                              const char *type, mdfi_errbuf *err)
{
    if (!isfinite(A) || !isfinite(B))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s]: channel %d folds to a "
                         "non-finite multiplier or offset (A = %g, B = %g)", l->index, type, m,
                         (double)A, (double)B);
    int S = 0, e = 0;
    if (A != 0.f) {
        (void)frexp((double)A, &e);
        S = 30 - e < 36 ? 30 - e : 36;
        if (S < 0)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s]: channel %d's multiplier "
                             "|A| = %g is too large (must be < 2^30)", l->index, type, m,
                             (double)fabsf(A));
    }
    if (fabsf(B) >= LIM24)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s]: channel %d's offset |B| = %g "
                         "is too large (must be < 2^24)", l->index, type, m, (double)fabsf(B));
    mdfi_dpath_rq *q = &f->rq[m];
    q->s = S;
    q->mul = (int64_t)rint(ldexp((double)A, S));
    q->off = (int64_t)rint(ldexp((double)B, S)) + (S > 0 ? (int64_t)1 << (S - 1) : 0);
    mdfi_dpath_rq_split(q);
    return MDFI_OK;
}

mdfi_status mdfi_dp_check_range(float lambda, const mdfi_layer *l, const char *type,
                                mdfi_errbuf *err)
{
    if (!(lambda > 0.f) || !isfinite(lambda))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s]: range = %g must be a positive "
                         "number", l->index, type, (double)lambda);
    return MDFI_OK;
}

unsigned char *mdfi_dp_weight_signs(const float *w, size_t n)
{
    unsigned char *b = malloc(n + 1);
    for (size_t j = 0; b && j < n; ++j)
        b[j] = w[j] > 0.f;
    return b;
}

void mdfi_dp_requant_columns(const mdfi_dpath_loops *loops, const mdfi_dp_fixed *f, float *out,
                             const float *d0, const float *src, int src_c, size_t N, int n0,
                             int n1)
{
    for (int m = 0; m < f->M; ++m)
        loops->requant(out + (size_t)m * N + n0, d0 ? d0 + (size_t)m * N + n0 : NULL,
                       src + (size_t)(m % src_c) * N + n0, (size_t)(n1 - n0), &f->rq[m]);
}

mdfi_status mdfi_dp_kernel(const mdfi_layer *l, const mdfi_prepare_ctx *ctx, const char *type,
                           const mdfi_bgemm_kernel **kern, mdfi_errbuf *err)
{
    if (l->bits_in || l->bits_out || l->fused)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d [%s]: takes and writes float "
                         "tensors only", l->index, type);
    if (ctx->binary_kind < 0) {
        *kern = mdfi_bgemm_kernel_select(ctx->isa);
        return MDFI_OK;
    }
    *kern = mdfi_bgemm_kernel_get((mdfi_bkind)ctx->binary_kind);
    if (!*kern)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: this CPU/build cannot run the "
                         "binary kernel %s", l->index,
                         mdfi_bgemm_kind_name((mdfi_bkind)ctx->binary_kind));
    return MDFI_OK;
}

void mdfi_dp_bout(mdfi_bout *o, float *out, size_t N, const mdfi_dp_fixed *f)
{
    memset(o, 0, sizeof *o);
    o->out = out;
    o->ldc = N;
    o->alpha = f->one;
    o->beta = f->zero;
    o->act = MDFI_EPI_LINEAR;
}

void mdfi_dp_run(mdfi_pool *pool, int N, mdfi_task_fn rows, mdfi_task_fn cols, void *job)
{
    mdfi_dp_split *s = job;
    const int threads = mdfi_pool_threads(pool);
    s->N = N;
    s->tasks = threads;
    mdfi_pool_run(pool, threads, rows, job);
    s->chunk = (N + threads - 1) / threads;
    s->chunk = (s->chunk + 31) & ~31;
    mdfi_pool_run(pool, (N + s->chunk - 1) / s->chunk, cols, job);
}

int mdfi_dp_rows(const mdfi_dp_split *s, int H, int task, int *y0, int *y1)
{
    *y0 = (int)((long long)H * task / s->tasks);
    *y1 = (int)((long long)H * (task + 1) / s->tasks);
    return *y0 < *y1;
}

int mdfi_dp_cols(const mdfi_dp_split *s, int task, int *n0, int *n1)
{
    *n0 = task * s->chunk;
    *n1 = *n0 + s->chunk < s->N ? *n0 + s->chunk : s->N;
    return *n0 < *n1;
}
