/* [exit]: an early exit (docs/early-exit.md).  The section holds the branch's
 * extent, its thresholds and its light predictors; the branch layers follow
 * it in the cfg and are ordinary layers.  This layer's own forward runs the
 * predictors the network asks for (spec->run) on the branch point, average-
 * pooled, and writes their values (out[0] entropy, out[1] exit; -1 when not
 * run).  Which branch runs and which exit fires is the network's decision
 * (net/forward.c).  In fixed point the pooled features are dequantized from
 * the branch point's integers and the predictors run in float. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/exit.h"
#include "layers/fixed.h"
#include "layers/layer.h"

static const char pred_names[MDFI_PREDICTORS][8] = {"entropy", "exit"};

float mdfi_exit_entropy(const float *p, int n)
{
    double h = 0;
    for (int i = 0; i < n; ++i)
        if (p[i] > 0)
            h -= (double)p[i] * log((double)p[i]);
    return n > 1 ? (float)(h / log((double)n)) : 0.f;
}

/* predictors=entropy,exit: a comma list of predictor names. */
static mdfi_status parse_predictors(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                    mdfi_exit_spec *sp, mdfi_errbuf *err)
{
    const char *v = mdfi_cfg_str(s, "predictors", "");
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            ++v;
        size_t n = 0;
        while (v[n] && v[n] != ',' && v[n] != ' ' && v[n] != '\t')
            ++n;
        if (!n)
            break;
        int k = -1;
        for (int p = 0; p < MDFI_PREDICTORS; ++p)
            if (strlen(pred_names[p]) == n && !strncmp(v, pred_names[p], n))
                k = p;
        if (k < 0 || sp->has[k])
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: predictors=%s: each "
                             "of entropy and exit at most once", ctx->cfg->name,
                             mdfi_cfg_line(s, "predictors"), ctx->index,
                             mdfi_cfg_str(s, "predictors", ""));
        sp->has[k] = 1;
        v += n;
    }
    return MDFI_OK;
}

static mdfi_status check_unit(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s, const char *key,
                              float v, int open_low, mdfi_errbuf *err)
{
    if (v > 1.f || v < 0.f || (open_low && v == 0.f) || v != v)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: %s=%g is out of range "
                         "(%s, 1]: entropies are normalized to [0, 1]", ctx->cfg->name,
                         mdfi_cfg_line(s, key), ctx->index, key, (double)v,
                         open_low ? "(0" : "[0");
    return MDFI_OK;
}

mdfi_status mdfi_exit_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                            mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    mdfi_exit_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    int from;
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "from", -1, &from, err));
    MDFI_CHECK(mdfi_layer_ref(ctx, s, "from", from, &sp->from, err));
    MDFI_CHECK(mdfi_cfg_int_required(ctx->cfg, s, "layers", &sp->layers, err));
    if (sp->layers < 1 || sp->layers > MDFI_LIMIT_EXIT_LAYERS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: layers=%d must be 1.."
                         MDFI_LIMIT_STR(MDFI_LIMIT_EXIT_LAYERS) " (the branch layers after "
                         "this section)", name, mdfi_cfg_line(s, "layers"), ctx->index,
                         sp->layers);
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "threshold", 0.5f, &sp->threshold, err));
    MDFI_CHECK(check_unit(ctx, s, "threshold", sp->threshold, 1, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "entropy_gate", sp->threshold,
                              &sp->gate[MDFI_PRED_ENTROPY], err));
    MDFI_CHECK(check_unit(ctx, s, "entropy_gate", sp->gate[MDFI_PRED_ENTROPY], 0, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "exit_gate", 0.5f, &sp->gate[MDFI_PRED_EXIT], err));
    MDFI_CHECK(check_unit(ctx, s, "exit_gate", sp->gate[MDFI_PRED_EXIT], 0, err));
    MDFI_CHECK(parse_predictors(ctx, s, sp, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "pool", 1, &sp->pool, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "hidden", 0, &sp->hidden, err));
    const mdfi_layer *f = &ctx->layers[sp->from];
    l->in[0] = sp->from;
    l->in_c = f->out_c;
    l->in_h = f->out_h;
    l->in_w = f->out_w;
    if (sp->pool < 1 || sp->pool > MDFI_LIMIT_EXIT_POOL || sp->pool > l->in_h ||
        sp->pool > l->in_w)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: pool=%d must be 1.."
                         MDFI_LIMIT_STR(MDFI_LIMIT_EXIT_POOL) " and fit the branch point's "
                         "%d x %d map", name, mdfi_cfg_line(s, "pool"), ctx->index, sp->pool,
                         l->in_h, l->in_w);
    if (sp->hidden < 0 || sp->hidden > MDFI_LIMIT_EXIT_HIDDEN)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: hidden=%d must be 0.."
                         MDFI_LIMIT_STR(MDFI_LIMIT_EXIT_HIDDEN), name, mdfi_cfg_line(s, "hidden"),
                         ctx->index, sp->hidden);
    if ((long long)l->in_c * sp->pool * sp->pool * (sp->hidden ? sp->hidden : 1) >
        MDFI_LIMIT_EXIT_WEIGHTS)
        return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [exit]: a predictor of %d x %d x "
                         "%d features and %d hidden units is not light", name, s->line,
                         ctx->index, l->in_c, sp->pool, sp->pool, sp->hidden);
    const int d = l->in_c * sp->pool * sp->pool, h = sp->hidden;
    sp->features = d;
    sp->predictor_macs = (double)l->in_c * l->in_h * l->in_w +
                         (h ? (double)d * h + h : (double)d);
    size_t per = h ? (size_t)h + (size_t)h * d + 1 + (size_t)h : 1 + (size_t)d;
    l->n_params = per * (size_t)(sp->has[0] + sp->has[1]);
    l->out_c = MDFI_PREDICTORS;
    l->out_h = l->out_w = 1;
    l->size = sp->pool;
    l->filters = h;
    return mdfi_layer_check_shape(ctx, s, l->out_c, 1, 1, err);
}

/* ---- the predictors ------------------------------------------------------------ */

typedef struct {
    float *w1, *b1, *w2, *b2;  /* hidden 0: w1 [1][D], b1 [1]; w2, b2 unused */
} predictor;

typedef struct {
    predictor p[MDFI_PREDICTORS];
    float *block;
} exit_state;

static mdfi_status alloc_state(mdfi_layer *l, mdfi_errbuf *err)
{
    const mdfi_exit_spec *sp = l->spec;
    exit_state *st = l->priv;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
        l->priv = st;
    }
    if (st->block)
        return MDFI_OK;
    const size_t d = (size_t)sp->features, h = (size_t)sp->hidden;
    const size_t per = h ? h * d + h + h + 1 : d + 1;
    st->block = calloc(per * MDFI_PREDICTORS, sizeof *st->block);
    if (!st->block)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory for layer %d's predictors",
                         l->index);
    float *at = st->block;
    for (int k = 0; k < MDFI_PREDICTORS; ++k) {
        predictor *p = &st->p[k];
        p->w1 = at;
        at += h ? h * d : d;
        p->b1 = at;
        at += h ? h : 1;
        p->w2 = at;
        at += h;
        p->b2 = at;
        at += h ? 1 : 0;
    }
    l->param_bytes = per * (size_t)(sp->has[0] + sp->has[1]) * sizeof(float);
    return MDFI_OK;
}

/* The predictors' arrays in file order: from a Darknet file (float32 in
 * order) or, with records, from the layer's kind-3 .qweights record of float32
 * arrays named entropy_b1, entropy_w1, entropy_b2, entropy_w2 (entropy_b,
 * entropy_w without a hidden layer), and the same for exit_. */
static mdfi_status load_from(mdfi_layer *l, mdfi_params *src, int records, mdfi_errbuf *err)
{
    const mdfi_exit_spec *sp = l->spec;
    MDFI_CHECK(alloc_state(l, err));
    exit_state *st = l->priv;
    const size_t d = (size_t)sp->features, h = (size_t)sp->hidden;
    for (int k = 0; k < MDFI_PREDICTORS && src; ++k) {
        if (!sp->has[k])
            continue;
        predictor *p = &st->p[k];
        struct { const char *suffix; float *dst; size_t n; } arr[4] = {
            {h ? "b1" : "b", p->b1, h ? h : 1}, {h ? "w1" : "w", p->w1, h ? h * d : d},
            {"b2", p->b2, 1}, {"w2", p->w2, h}};
        for (int a = 0; a < (h ? 4 : 2); ++a) {
            char name[MDFI_QW_NAME_BYTES];
            snprintf(name, sizeof name, "%s_%s", pred_names[k], arr[a].suffix);
            MDFI_CHECK(records ? mdfi_params_read_array(src, l->index, name, MDFI_QW_FLOAT32,
                                                        arr[a].n, arr[a].dst, err)
                               : mdfi_params_floats(src, arr[a].dst, arr[a].n, name, err));
        }
    }
    return MDFI_OK;
}

static mdfi_status float_load(mdfi_layer *l, mdfi_params *src, mdfi_errbuf *err)
{
    return load_from(l, src, 0, err);
}

static mdfi_status fixed_load(mdfi_layer *l, mdfi_params *src, mdfi_errbuf *err)
{
    return load_from(l, src, 1, err);
}

static mdfi_status prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    (void)err;
    const mdfi_exit_spec *sp = l->spec;
    size_t need = ((size_t)sp->features + (size_t)sp->hidden) * sizeof(float);
    if (need > l->scratch_bytes)
        l->scratch_bytes = need;
    return MDFI_OK;
}

static void destroy(mdfi_layer *l)
{
    exit_state *st = l->priv;
    if (st)
        free(st->block);
    free(st);
    l->priv = NULL;
}

/* Cell i of an axis of n split in p: [floor(i n / p), ceil((i + 1) n / p)),
 * PyTorch's adaptive_avg_pool2d. */
static void cell(int i, int n, int p, int *a, int *b)
{
    *a = (int)((long long)i * n / p);
    *b = (int)(((long long)(i + 1) * n + p - 1) / p);
}

/* Sum of rows [y0, y1) x columns [x0, x1) of one channel (row stride w). */
static float cell_sum_float(const float *ch, int w, int y0, int y1, int x0, int x1)
{
    float sum = 0;
    for (int y = y0; y < y1; ++y) {
        const float *row = ch + (size_t)y * (size_t)w;
        for (int x = x0; x < x1; ++x)
            sum += row[x];
    }
    return sum;
}

static int64_t cell_sum_int(const void *in, int bits, size_t ch, int w, int y0, int y1, int x0,
                            int x1)
{
    int64_t sum = 0;
    for (int y = y0; y < y1; ++y) {
        size_t row = ch + (size_t)y * (size_t)w;
        if (bits == 8)
            for (int x = x0; x < x1; ++x)
                sum += ((const int8_t *)in)[row + (size_t)x];
        else
            for (int x = x0; x < x1; ++x)
                sum += ((const int16_t *)in)[row + (size_t)x];
    }
    return sum;
}

/* f[c][py][px]: the mean of each cell, from floats (q.bits 0) or integers. */
static void pool_features(const mdfi_layer *l, const void *in, mdfi_qfmt q, float *f)
{
    const mdfi_exit_spec *sp = l->spec;
    const int p = sp->pool, h = l->in_h, w = l->in_w;
    const double unit = q.bits ? ldexp(1.0, -q.frac) : 1.0;
    for (int c = 0; c < l->in_c; ++c) {
        const size_t ch = (size_t)c * (size_t)h * (size_t)w;
        for (int py = 0; py < p; ++py)
            for (int px = 0; px < p; ++px) {
                int y0, y1, x0, x1;
                cell(py, h, p, &y0, &y1);
                cell(px, w, p, &x0, &x1);
                float sum = q.bits ? (float)((double)cell_sum_int(in, q.bits, ch, w, y0, y1, x0,
                                                                   x1) * unit)
                                   : cell_sum_float((const float *)in + ch, w, y0, y1, x0, x1);
                f[((size_t)c * p + (size_t)py) * (size_t)p + (size_t)px] =
                    sum / (float)((y1 - y0) * (x1 - x0));
            }
    }
}

static float predict(const predictor *p, int d, int h, const float *f, float *hid)
{
    float y;
    if (h) {
        for (int j = 0; j < h; ++j) {
            const float *w = p->w1 + (size_t)j * d;
            float a = p->b1[j];
            for (int i = 0; i < d; ++i)
                a += w[i] * f[i];
            hid[j] = a > 0 ? a : 0;
        }
        y = p->b2[0];
        for (int j = 0; j < h; ++j)
            y += p->w2[j] * hid[j];
    } else {
        y = p->b1[0];
        for (int i = 0; i < d; ++i)
            y += p->w1[i] * f[i];
    }
    return 1.f / (1.f + expf(-y));
}

static void forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const mdfi_exit_spec *sp = l->spec;
    const exit_state *st = l->priv;
    float *f = ctx->scratch[0], *hid = f + sp->features;
    ctx->out[0] = ctx->out[1] = -1.f;
    if (!(sp->run & ((unsigned)sp->has[0] | (unsigned)sp->has[1] << 1)))
        return;
    pool_features(l, ctx->in[0], l->q_in, f);
    for (int k = 0; k < MDFI_PREDICTORS; ++k)
        if (sp->has[k] && (sp->run >> k & 1u))
            ctx->out[k] = predict(&st->p[k], sp->features, sp->hidden, f, hid);
}

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    (void)err;
    l->q_in = ctx->layers[l->in[0]].q_out;
    return MDFI_OK;
}

const mdfi_layer_variant mdfi_exit_float = {NULL, float_load, prepare, forward, destroy, NULL};
const mdfi_layer_variant mdfi_exit_fixed = {fixed_bind, fixed_load, prepare, forward, destroy,
                                            NULL};
