/* Fixed-point [maxpool], [avgpool], [upsample], [route], [shortcut] and the
 * float heads [yolo] / [softmax] that dequantize their integer input (the
 * yolo head through a table of the logistic).
 * Shapes, keys and their checks come from the float layers' parse. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/activations.h"
#include "layers/fixed.h"
#include "layers/yolo.h"

/* Runs the float table's parse for the shape and checks, keeping no priv. */
static mdfi_status float_parse(const char *type, mdfi_layer *l, mdfi_cfg_section *s,
                               const mdfi_parse_ctx *ctx, mdfi_errbuf *err, int keep_priv)
{
    const mdfi_layer_ops *fl = mdfi_layer_find(type);
    mdfi_status st = fl->parse(l, s, ctx, err);
    if (!keep_priv || st != MDFI_OK) {
        if (fl->destroy)
            fl->destroy(l);
        else
            free(l->priv);
        l->priv = NULL;
    }
    return st;
}

/* Every input must be integer; sets q_in to in[0]'s format and reads fixed_out. */
static mdfi_status int_inputs(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    for (int k = 0; k < l->n_in; ++k)
        if (l->in[k] < 0 || !ctx->layers[l->in[k]].q_out.bits)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: its input (%s) is float; "
                             "only convolutional and connected layers quantize float input",
                             ctx->cfg->name, s->line, ctx->index, s->type,
                             l->in[k] < 0 ? "the network input" : "an earlier layer");
    l->q_in = ctx->layers[l->in[0]].q_out;
    mdfi_qfmt out;
    MDFI_CHECK(mdfi_fx_read_format(ctx->cfg, s, "fixed_out", &out, err));
    if (!out.bits)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] needs fixed_out",
                         ctx->cfg->name, s->line, ctx->index, s->type);
    if (mdfi_cfg_str(s, "fixed_w", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no weights: fixed_w is "
                         "not allowed", ctx->cfg->name, mdfi_cfg_line(s, "fixed_w"), ctx->index,
                         s->type);
    if (mdfi_cfg_str(s, "fixed_in", NULL))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: fixed_in is only for "
                         "convolutional and connected layers (others read their inputs' "
                         "formats)", ctx->cfg->name, mdfi_cfg_line(s, "fixed_in"), ctx->index,
                         s->type);
    mdfi_fx_set_output(l, out);
    return MDFI_OK;
}

/* Per-channel work split over the pool. */
typedef void (*channel_fn)(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c);
typedef struct {
    const mdfi_layer *l;
    const mdfi_run_ctx *ctx;
    channel_fn fn;
    int per;
} chan_job;

static void chan_task(void *arg, int task, int thread)
{
    const chan_job *j = arg;
    (void)thread;
    int c0 = task * j->per, c1 = c0 + j->per < j->l->out_c ? c0 + j->per : j->l->out_c;
    for (int c = c0; c < c1; ++c)
        j->fn(j->l, j->ctx, c);
}

static void by_channel(const mdfi_layer *l, mdfi_run_ctx *ctx, channel_fn fn)
{
    int threads = mdfi_pool_threads(ctx->pool);
    chan_job j = {l, ctx, fn, (l->out_c + threads - 1) / threads};
    mdfi_pool_run(ctx->pool, (l->out_c + j.per - 1) / j.per, chan_task, &j);
}

/* ---- [maxpool] ------------------------------------------------------------ */

static mdfi_status maxpool_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 mdfi_errbuf *err)
{
    MDFI_CHECK(float_parse("maxpool", l, s, ctx, err, 0));
    return int_inputs(l, s, ctx, err);
}

/* The max of each window, in the input's type T; windows are clipped to the
 * image (outside taps are ignored; Darknet's windows always hold one tap). */
#define MAXPOOL_PLANE(NAME, T, TMIN)                                                      \
    static void NAME(const mdfi_layer *l, const T *src, int32_t *row_max, T *dst, int same, \
                     int shift, int ob, void *out, size_t o)                             \
    {                                                                                     \
        const int off = -(l->pad / 2), st = l->stride, sz = l->size;                      \
        for (int oy = 0; oy < l->out_h; ++oy) {                                           \
            const int y0 = off + oy * st;                                                 \
            const int ya = y0 < 0 ? 0 : y0;                                               \
            const int yb = y0 + sz > l->in_h ? l->in_h : y0 + sz;                         \
            int ox = 0;                                                                   \
            if (sz == 2 && st == 2 && off == 0 && yb - ya == 2) { /* 2x2/2 inside */      \
                const T *r0 = src + (size_t)ya * l->in_w, *r1 = r0 + l->in_w;             \
                const int full = l->in_w / 2 < l->out_w ? l->in_w / 2 : l->out_w;         \
                for (; ox < full; ++ox) {                                                 \
                    T a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];      \
                    T b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];      \
                    row_max[ox] = a > b ? a : b;                                          \
                }                                                                         \
            }                                                                             \
            for (; ox < l->out_w; ++ox) {                                                 \
                const int x0 = off + ox * st;                                             \
                const int xa = x0 < 0 ? 0 : x0;                                           \
                const int xb = x0 + sz > l->in_w ? l->in_w : x0 + sz;                     \
                T m = TMIN; /* an empty window (odd padding) gives the type's minimum */  \
                for (int y = ya; y < yb; ++y) {                                           \
                    const T *r = src + (size_t)y * l->in_w;                               \
                    for (int x = xa; x < xb; ++x)                                         \
                        m = r[x] > m ? r[x] : m;                                          \
                }                                                                         \
                row_max[ox] = m;                                                          \
            }                                                                             \
            if (same) {                                                                   \
                for (int j = 0; j < l->out_w; ++j)                                        \
                    dst[(size_t)oy * l->out_w + j] = (T)row_max[j];                       \
            } else {                                                                      \
                for (int j = 0; j < l->out_w; ++j)                                        \
                    mdfi_fx_put(out, ob, o + (size_t)oy * l->out_w + j,                   \
                                mdfi_fx_requant(row_max[j], shift, ob));                  \
            }                                                                             \
        }                                                                                 \
    }
MAXPOOL_PLANE(maxpool_plane8, int8_t, INT8_MIN)
MAXPOOL_PLANE(maxpool_plane16, int16_t, INT16_MIN)

static void maxpool_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const int ib = l->q_in.bits, ob = l->q_out.bits;
    const int shift = l->q_in.frac - l->q_out.frac, same = ib == ob && shift == 0;
    const size_t plane = (size_t)l->in_h * l->in_w, o = (size_t)c * l->out_h * l->out_w;
    int32_t row_max[1024];
    if (l->out_w > 1024) {   /* very wide maps: the plain loop */
        const int off = -(l->pad / 2);
        for (int oy = 0; oy < l->out_h; ++oy)
            for (int ox = 0; ox < l->out_w; ++ox) {
                int32_t m = INT32_MIN;
                for (int y = off + oy * l->stride; y < off + oy * l->stride + l->size; ++y)
                    for (int x = off + ox * l->stride; x < off + ox * l->stride + l->size; ++x)
                        if (y >= 0 && y < l->in_h && x >= 0 && x < l->in_w) {
                            int32_t v = mdfi_fx_get(ctx->in[0], ib, c * plane +
                                                    (size_t)y * l->in_w + x);
                            m = v > m ? v : m;
                        }
                if (m == INT32_MIN)
                    m = ib == 8 ? INT8_MIN : INT16_MIN;
                mdfi_fx_put(ctx->out, ob, o + (size_t)oy * l->out_w + ox,
                            mdfi_fx_requant(m, shift, ob));
            }
        return;
    }
    if (ib == 8)
        maxpool_plane8(l, (const int8_t *)ctx->in[0] + c * plane, row_max,
                       (int8_t *)ctx->out + o, same, shift, ob, ctx->out, o);
    else
        maxpool_plane16(l, (const int16_t *)ctx->in[0] + c * plane, row_max,
                        (int16_t *)ctx->out + o, same, shift, ob, ctx->out, o);
}

static void maxpool_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    by_channel(l, ctx, maxpool_channel);
}

/* ---- [avgpool]: out = sat(floor((2 num + den) / (2 den))) ----------------- */

static mdfi_status avgpool_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 mdfi_errbuf *err)
{
    MDFI_CHECK(float_parse("avgpool", l, s, ctx, err, 0));
    MDFI_CHECK(int_inputs(l, s, ctx, err));
    int d = l->q_out.frac - l->q_in.frac;
    if (d > 16 || d < -16)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [avgpool]: fixed_out=%d:%d is more "
                         "than 16 bits of fraction away from its input's %d:%d", ctx->cfg->name,
                         mdfi_cfg_line(s, "fixed_out"), ctx->index, l->q_out.bits, l->q_out.frac,
                         l->q_in.bits, l->q_in.frac);
    return MDFI_OK;
}

static int64_t floor_div(int64_t a, int64_t b)   /* b > 0 */
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static void avgpool_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const size_t n = (size_t)l->in_h * l->in_w;
    int64_t sum = 0;
    for (size_t i = 0; i < n; ++i)
        sum += mdfi_fx_get(ctx->in[0], l->q_in.bits, (size_t)c * n + i);
    int up = l->q_out.frac - l->q_in.frac;
    /* |sum| < 2^46 and |up| <= 16 (checked at parse): no overflow */
    int64_t num = up > 0 ? sum * ((int64_t)1 << up) : sum;
    int64_t den = (int64_t)n * ((int64_t)1 << (up < 0 ? -up : 0));
    int64_t q = floor_div(2 * num + den, 2 * den);
    mdfi_fx_put(ctx->out, l->q_out.bits, (size_t)c, mdfi_fx_requant(q, 0, l->q_out.bits));
}

static void avgpool_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    by_channel(l, ctx, avgpool_channel);
}

/* ---- [upsample] ------------------------------------------------------------- */

static mdfi_status upsample_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  mdfi_errbuf *err)
{
    MDFI_CHECK(float_parse("upsample", l, s, ctx, err, 0));
    float scale;
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "scale", 1.f, &scale, err));
    if (scale != 1.f)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [upsample]: scale=%g has "
                         "no fixed-point form (only 1)", ctx->cfg->name,
                         mdfi_cfg_line(s, "scale"), ctx->index, (double)scale);
    return int_inputs(l, s, ctx, err);
}

static void upsample_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const int st = l->stride, ib = l->q_in.bits, ob = l->q_out.bits;
    const int shift = l->q_in.frac - l->q_out.frac;
    const size_t plane = (size_t)l->in_h * l->in_w;
    size_t o = (size_t)c * l->out_h * l->out_w;
    for (int y = 0; y < l->out_h; ++y) {
        size_t row = c * plane + (size_t)(y / st) * l->in_w;
        for (int x = 0; x < l->out_w; ++x, ++o)
            mdfi_fx_put(ctx->out, ob, o,
                        mdfi_fx_requant(mdfi_fx_get(ctx->in[0], ib, row + x / st), shift, ob));
    }
}

static void upsample_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    by_channel(l, ctx, upsample_channel);
}

/* ---- [route]: each input aligned to fixed_out, concatenated ----------------- */

typedef struct {
    mdfi_qfmt src[MDFI_MAX_INPUTS];
} route_spec;

static mdfi_status route_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_errbuf *err)
{
    MDFI_CHECK(float_parse("route", l, s, ctx, err, 0));
    MDFI_CHECK(int_inputs(l, s, ctx, err));
    route_spec *r = calloc(1, sizeof *r);
    if (!r)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    for (int k = 0; k < l->n_in; ++k)
        r->src[k] = ctx->layers[l->in[k]].q_out;
    l->priv = r;
    return MDFI_OK;
}

static void route_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const route_spec *r = l->priv;
    size_t o = 0;
    for (int i = 0; i < l->n_in; ++i) {
        size_t part = ctx->in_n[i] / (size_t)l->groups;
        const char *src = (const char *)ctx->in[i] + part * (size_t)l->pad * (r->src[i].bits / 8);
        mdfi_fx_convert(src, r->src[i], (char *)ctx->out + o * (l->q_out.bits / 8), l->q_out,
                        part);
        o += part;
    }
}

/* ---- [shortcut]: F = max(fa, fb); t = a 2^(F-fa) + b 2^(F-fb) --------------- */

typedef struct {
    mdfi_qfmt a, b;
    int act;     /* 0 linear, 1 relu, 2 leaky */
} shortcut_spec;

static mdfi_status shortcut_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  mdfi_errbuf *err)
{
    const char *name = ctx->cfg->name;
    MDFI_CHECK(float_parse("shortcut", l, s, ctx, err, 0));
    float alpha, beta;
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "alpha", 1.f, &alpha, err));
    MDFI_CHECK(mdfi_cfg_float(ctx->cfg, s, "beta", 1.f, &beta, err));
    if (alpha != 1.f || beta != 1.f)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [shortcut]: alpha and "
                         "beta must be 1 in fixed point", name, s->line, ctx->index);
    mdfi_activation act;
    (void)mdfi_activation_parse(mdfi_cfg_str(s, "activation", "linear"), &act);
    MDFI_CHECK(int_inputs(l, s, ctx, err));
    shortcut_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->priv = sp;
    sp->a = ctx->layers[l->in[0]].q_out;
    sp->b = ctx->layers[l->in[1]].q_out;
    if (act == MDFI_ACT_LINEAR)
        sp->act = 0;
    else if (act == MDFI_ACT_RELU)
        sp->act = 1;
    else if (act == MDFI_ACT_LEAKY)
        sp->act = 2;
    else
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [shortcut]: activation %s "
                         "has no integer form", name, mdfi_cfg_line(s, "activation"),
                         ctx->index, mdfi_activation_name(act));
    int f = sp->a.frac > sp->b.frac ? sp->a.frac : sp->b.frac;
    if (sp->a.bits - 1 + f - sp->a.frac > 30 || sp->b.bits - 1 + f - sp->b.frac > 30)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [shortcut]: inputs %d:%d and "
                         "%d:%d are too far apart to add in int32", name, s->line, ctx->index,
                         sp->a.bits, sp->a.frac, sp->b.bits, sp->b.frac);
    return MDFI_OK;
}

static void shortcut_channel(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c)
{
    const shortcut_spec *sp = l->priv;
    const int f = sp->a.frac > sp->b.frac ? sp->a.frac : sp->b.frac;
    const int sa = f - sp->a.frac, sb = f - sp->b.frac, s = f - l->q_out.frac;
    const size_t n = (size_t)l->out_h * l->out_w, o0 = (size_t)c * n;
    for (size_t i = o0; i < o0 + n; ++i) {
        int64_t t = (int64_t)mdfi_fx_get(ctx->in[0], sp->a.bits, i) * ((int64_t)1 << sa) +
                    (int64_t)mdfi_fx_get(ctx->in[1], sp->b.bits, i) * ((int64_t)1 << sb);
        mdfi_fx_put(ctx->out, l->q_out.bits, i,
                    mdfi_fx_requant(mdfi_fx_activate(t, sp->act), s, l->q_out.bits));
    }
}

static void shortcut_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    by_channel(l, ctx, shortcut_channel);
}

static void free_priv(mdfi_layer *l)
{
    free(l->priv);
}

/* ---- heads: dequantize, then the float layer ---------------------------------- */

static mdfi_status head_parse(const char *type, mdfi_layer *l, mdfi_cfg_section *s,
                              const mdfi_parse_ctx *ctx, mdfi_errbuf *err)
{
    MDFI_CHECK(float_parse(type, l, s, ctx, err, 1));
    l->q_in = ctx->layers[l->in[0]].q_out;
    return MDFI_OK;
}

/* The fixed [yolo] head: the spec first (the net decodes boxes through it as
 * an mdfi_yolo_spec), then the logistic of every integer the input format
 * can hold, made at prepare with the float layer's own function: a lookup
 * gives bit-identical floats to dequantizing and applying the logistic. */
typedef struct {
    mdfi_yolo_spec spec;
    float *logistic;     /* [2^bits], index q - qmin */
} fx_yolo;

static mdfi_status yolo_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                              mdfi_errbuf *err)
{
    MDFI_CHECK(head_parse("yolo", l, s, ctx, err));
    fx_yolo *y = calloc(1, sizeof *y);
    if (!y)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    y->spec = *(const mdfi_yolo_spec *)l->priv;
    free(l->priv);
    l->priv = y;
    return MDFI_OK;
}

static mdfi_status yolo_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    fx_yolo *y = l->priv;
    const size_t n = (size_t)1 << l->q_in.bits;
    const int32_t qmin = -(int32_t)(n / 2);
    free(y->logistic);
    if (!(y->logistic = malloc(n * sizeof *y->logistic)))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
    const float scale = ldexpf(1.f, -l->q_in.frac);
    for (size_t i = 0; i < n; ++i)
        y->logistic[i] = (float)(qmin + (int32_t)i) * scale;   /* as mdfi_fx_dequantize */
    mdfi_activate(y->logistic, n, MDFI_ACT_LOGISTIC);
    l->param_bytes = n * sizeof *y->logistic;
    return MDFI_OK;
}

static void yolo_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const fx_yolo *y = l->priv;
    const size_t plane = (size_t)l->out_h * l->out_w;
    const int bits = l->q_in.bits;
    const float *lut = y->logistic + ((size_t)1 << (bits - 1));   /* lut[q] for signed q */
    const int chans = y->spec.n_mask * (y->spec.classes + 5);
    for (int c = 0; c < chans; ++c) {
        const int k = c % (y->spec.classes + 5);
        const size_t at = (size_t)c * plane;
        float *out = ctx->out + at;
        if (k == 2 || k == 3) {          /* w, h stay raw */
            mdfi_fx_dequantize((const char *)ctx->in[0] + at * (size_t)(bits / 8), l->q_in, out,
                               plane);
        } else if (bits == 8) {
            const int8_t *q = (const int8_t *)ctx->in[0] + at;
            for (size_t i = 0; i < plane; ++i)
                out[i] = lut[q[i]];
        } else {
            const int16_t *q = (const int16_t *)ctx->in[0] + at;
            for (size_t i = 0; i < plane; ++i)
                out[i] = lut[q[i]];
        }
    }
}

static void yolo_destroy(mdfi_layer *l)
{
    fx_yolo *y = l->priv;
    if (y)
        free(y->logistic);
    free(y);
}

static mdfi_status softmax_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 mdfi_errbuf *err)
{
    return head_parse("softmax", l, s, ctx, err);
}

static void softmax_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    mdfi_fx_dequantize(ctx->in[0], l->q_in, ctx->out, mdfi_layer_outputs(l));
    mdfi_run_ctx c = *ctx;
    c.in[0] = ctx->out;   /* the float softmax runs in place */
    mdfi_layer_find("softmax")->forward(l, &c);
}

static void softmax_destroy(mdfi_layer *l)
{
    const mdfi_layer_ops *fl = mdfi_layer_find("softmax");
    if (fl->destroy)
        fl->destroy(l);
    else
        free(l->priv);
}

const mdfi_layer_ops mdfi_fixed_maxpool_ops = {"maxpool", maxpool_parse, NULL, NULL,
                                               maxpool_forward, NULL};
const mdfi_layer_ops mdfi_fixed_avgpool_ops = {"avgpool", avgpool_parse, NULL, NULL,
                                               avgpool_forward, NULL};
const mdfi_layer_ops mdfi_fixed_upsample_ops = {"upsample", upsample_parse, NULL, NULL,
                                                upsample_forward, NULL};
const mdfi_layer_ops mdfi_fixed_route_ops = {"route", route_parse, NULL, NULL, route_forward,
                                             free_priv};
const mdfi_layer_ops mdfi_fixed_shortcut_ops = {"shortcut", shortcut_parse, NULL, NULL,
                                                shortcut_forward, free_priv};
const mdfi_layer_ops mdfi_fixed_yolo_ops = {"yolo", yolo_parse, NULL, yolo_prepare,
                                            yolo_forward, yolo_destroy};
const mdfi_layer_ops mdfi_fixed_softmax_ops = {"softmax", softmax_parse, NULL, NULL,
                                               softmax_forward, softmax_destroy};

int mdfi_layer_is_yolo(const mdfi_layer *l)
{
    return l->ops == &mdfi_yolo_ops || l->ops == &mdfi_fixed_yolo_ops;
}
