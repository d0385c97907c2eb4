#include "layers/gemm_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

/* Conv outputs per band of a fused conv -> maxpool (per thread). */
#define FUSE_BAND_FLOATS 65536

size_t mdfi_fuse_band(const mdfi_layer *l, size_t elem, int *band)
{
    const mdfi_pool2d *mp = &l->pool;
    size_t row = (size_t)l->out_c * mp->stride * l->out_w;
    int b = row < FUSE_BAND_FLOATS ? (int)(FUSE_BAND_FLOATS / row) : 1;
    *band = b = b > mp->out_h ? mp->out_h : b;
    return (size_t)l->out_c * l->out_w * ((b - 1) * mp->stride + mp->size) * elem;
}

mdfi_fuse_span mdfi_fuse_rows(const mdfi_layer *l, int band, int task)
{
    const mdfi_pool2d *mp = &l->pool;
    int py0 = task * band, py1 = py0 + band < mp->out_h ? py0 + band : mp->out_h;
    int off = -(mp->pad / 2), cy0 = off + py0 * mp->stride;
    int cy1 = off + (py1 - 1) * mp->stride + mp->size;
    return (mdfi_fuse_span){py0, py1, cy0 < 0 ? 0 : cy0, cy1 > l->out_h ? l->out_h : cy1};
}

mdfi_status mdfi_darknet_alloc(mdfi_darknet_arrays *a, const mdfi_layer *l, size_t n, int bn,
                               size_t nw, int with_weights, mdfi_errbuf *err)
{
    mdfi_darknet_free(a);
    a->biases = calloc(n, sizeof(float));
    if (with_weights)
        a->weights = calloc(nw ? nw : 1, sizeof(float));
    if (bn) {
        a->scales = malloc(n * sizeof(float));
        a->mean = calloc(n, sizeof(float));
        a->var = malloc(n * sizeof(float));
    }
    if (!a->biases || (with_weights && !a->weights) || (bn && (!a->scales || !a->mean || !a->var)))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory for %zu weights",
                         l->index, nw);
    for (size_t i = 0; bn && i < n; ++i)
        a->scales[i] = a->var[i] = 1.f;
    return MDFI_OK;
}

mdfi_status mdfi_darknet_read_head(mdfi_darknet_arrays *a, mdfi_params *src, size_t n,
                                   int bn, mdfi_errbuf *err)
{
    MDFI_CHECK(mdfi_params_floats(src, a->biases, n, "biases", err));
    if (bn) {
        MDFI_CHECK(mdfi_params_floats(src, a->scales, n, "scales", err));
        MDFI_CHECK(mdfi_params_floats(src, a->mean, n, "rolling_mean", err));
        MDFI_CHECK(mdfi_params_floats(src, a->var, n, "rolling_variance", err));
    }
    return MDFI_OK;
}

void mdfi_darknet_free(mdfi_darknet_arrays *a)
{
    free(a->biases);
    free(a->scales);
    free(a->mean);
    free(a->var);
    free(a->weights);
    a->biases = a->scales = a->mean = a->var = a->weights = NULL;
}

mdfi_status mdfi_gemm_alloc(mdfi_layer *l, mdfi_gemm_params *p, mdfi_errbuf *err)
{
    return mdfi_darknet_alloc(&p->raw, l, (size_t)l->out_c, p->s.bn,
                              (size_t)p->s.groups * (size_t)p->s.m * (size_t)p->s.k, !p->stream, err);
}

void mdfi_gemm_destroy(mdfi_layer *l)
{
    mdfi_gemm_params *p = l->priv;
    if (p) {
        mdfi_darknet_free(&p->raw);
        free(p->bias);
        mdfi_aligned_free(p->packed);
    }
    free(p);
    l->priv = NULL;
}

size_t mdfi_gemm_param_count(const mdfi_gemm_spec *s)
{
    const size_t outputs = (size_t)s->groups * s->m;
    return outputs * (s->bn ? 4 : 1) + outputs * (size_t)s->k;
}

mdfi_status mdfi_gemm_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    (void)ctx;
    const mdfi_gemm_spec *s = l->spec;
    mdfi_gemm_params *p = calloc(1, sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    p->s = *s;
    l->priv = p;
    return MDFI_OK;
}

/* Folding BN into the weights turns the conv into one GEMM plus bias:
 * y = (x - mean) / (sqrt(var) + 1e-6) * scale + bias  (Darknet's epsilon is
 * added to the standard deviation).  Returns output o's weight scale and
 * sets its bias. */
static float fold_bn(mdfi_gemm_params *p, int o)
{
    float s = 1.f, b = p->raw.biases[o];
    if (p->s.bn) {
        s = p->raw.scales[o] / (sqrtf(p->raw.var[o]) + .000001f);
        b = p->raw.biases[o] - p->raw.mean[o] * s;
    }
    p->bias[o] = b;
    return s;
}

/* Packs the weights panel by panel (MR rows, the packing unit): each panel's
 * rows are taken from p->raw.weights or, when streamed, read from the file into a
 * panel-sized buffer, scaled by BN and packed into place, so a streamed
 * layer's raw weights never exist whole. */
static mdfi_status pack_weights(mdfi_layer *l, mdfi_gemm_params *p, mdfi_params *r,
                                mdfi_errbuf *err)
{
    const int mr = mdfi_sgemm_pack_mr(p->kern, p->s.m), k = p->s.k;
    float *buf = NULL;
    if (!p->raw.weights) {   /* zeros when there is no file */
        if (!(buf = calloc((size_t)mr * k + 1, sizeof(float))))
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory", l->index);
        if (r && mdfi_params_check_floats(r, (size_t)l->out_c * k, "weights", err) != MDFI_OK) {
            free(buf);
            return MDFI_ERR_WEIGHTS;
        }
    }
    mdfi_status st = MDFI_OK;
    for (int g = 0; g < p->s.groups; ++g)
        for (int i0 = 0; i0 < p->s.m && st == MDFI_OK; i0 += mr) {
            int rows = p->s.m - i0 < mr ? p->s.m - i0 : mr, o0 = g * p->s.m + i0;
            float *w = buf ? buf : p->raw.weights + (size_t)o0 * k;
            if (buf && r)
                st = mdfi_params_floats(r, buf, (size_t)rows * k, "weights", err);
            for (int i = 0; i < rows; ++i) {
                float s = fold_bn(p, o0 + i);
                for (int j = 0; j < k && s != 1.f; ++j)
                    w[(size_t)i * k + j] *= s;
            }
            if (p->wino_on)
                mdfi_wino_pack_rows(&p->wino, i0, rows, w, p->packed);
            else
                mdfi_sgemm_pack_a_rows(p->kern, p->s.m, k, i0, i0 + rows, w,
                                       p->packed + (size_t)g * p->packed_floats);
        }
    free(buf);
    return st;
}

/* Winograd in a fused band: a batch of n tiles runs as batches of this many
 * (multiples of 16 columns: whole AVX-512 half panels), at most w->batch. */
static int wino_step(const mdfi_wino *w, int n)
{
    int nb = (n + w->batch - 1) / w->batch, s = ((n + nb - 1) / nb + 15) & ~15;
    return s < w->batch ? s : w->batch;
}

/* GEMM columns computed for n tiles, batch by batch. */
static int wino_cols(const mdfi_wino *w, int n)
{
    int s = wino_step(w, n);
    return n / s * ((s + 15) & ~15) + ((n % s + 15) & ~15);
}

/* A 2x2/2 pool's band (pool rows) for a Winograd conv: from the default up
 * to three times it, the one whose tiles (band/2 tile rows) leave the fewest
 * GEMM columns idle, if that is at least 4 % fewer.  13 tiles a row (52
 * wide) pad 26 to 32; 78 in 80 (yolov3-tiny's layer 6: 2.03 -> 1.65 ms). */
static MDFI_COLD size_t wino_band(const mdfi_layer *l, const mdfi_wino *w, int *band, size_t bytes)
{
    const mdfi_pool2d *mp = &l->pool;
    int b0 = *band, best = b0;
    if (mp->size != 2 || mp->stride != 2 || mp->pad / 2 || b0 % 2)   /* rows 2 py0, 2 py0 + 1 */
        return bytes;
    double cost = (double)wino_cols(w, b0 / 2 * w->tiles_x) / b0 * 0.96;
    for (int b = b0 + 2; b <= 3 * b0 && b <= mp->out_h; b += 2) {
        double c = (double)wino_cols(w, b / 2 * w->tiles_x) / b;
        if (c < cost) {
            cost = c;
            best = b;
        }
    }
    *band = best;
    return bytes / (2 * (size_t)b0) * (2 * (size_t)best);
}

/* Winograd F(4,3) for a 3x3 stride-1 float conv (kernels/winograd.h): 0 no,
 * 1 with U stored, 2 with U made on the fly.  Forced (winograd=1 or 2)
 * wherever the shape allows; winograd=3 as auto, but with U stored however
 * large (speed before memory); or by default (-1) where it measured faster
 * (docs/architecture.md):
 *   - 32+ input and output channels and outputs of 12 x 12 or more: stored
 *     while U (4x the direct path's weights) stays within WINO_AUTO_BYTES,
 *     else on the fly; on the fly too for 32 or fewer input channels over
 *     64 x 64 or more outputs (its larger batches of tiles: yolov3-tiny's
 *     layer 4 2.9 -> 2.6 ms);
 *   - 16 to 31 input channels, 16 to 4 x (input channels) filters, outputs
 *     of 14 x 14 or more: stored up to 56 x 56 outputs, on the fly above
 *     (layer 2 4.5 -> 3.8 ms, where stored batches were too small to beat
 *     the direct GEMM), or stored from 24 input channels. */
#define WINO_AUTO_BYTES (2 << 20)

static MDFI_COLD int use_winograd(const mdfi_layer *l, const mdfi_gemm_params *p,
                                  const mdfi_prepare_ctx *ctx)
{
    const mdfi_conv_geom *g = &p->s.geom;
    const int c = g->channels, m = l->out_c, h = g->out_h, w = g->out_w;
    if (ctx->winograd == 0 || p->s.connected || p->s.groups != 1 || !mdfi_wino_shape_ok(g))
        return 0;
    if (ctx->winograd == 1 || ctx->winograd == 2)
        return ctx->winograd;
    const int stored = ctx->winograd == 3;
    const int big = 36.0 * c * m * sizeof(float) > WINO_AUTO_BYTES;
    const int many = (long)h * w >= 64 * 64;
    if (c >= 32 && m >= 32) {
        if (h < 12 || w < 12)
            return 0;
        return (c <= 32 && many) || (big && !stored) ? 2 : 1;
    }
    if ((big && !stored) || h < 14 || w < 14 || m < 16 || m > 4 * c || c < 16)
        return 0;
    return c < 24 && (long)h * w > 56 * 56 ? 2 : 1;
}

/* The GEMM kernel of a Winograd layer: the layer's, but where the CPU runs
 * 512-bit operations as two halves and the kernel path is the best one (not
 * forced), the AVX2 kernel for 64 tiles or fewer: its 16-column tiles ran
 * the small maps' GEMMs faster (yolov3-tiny's layers 8-21 on an AMD EPYC
 * with AVX-512, 20.8 -> 19.7 ms), the larger ones no faster.  The results
 * are the same bits (both kernels keep one multiply-add chain per element). */
static MDFI_COLD const mdfi_sgemm_kernel *wino_kernel(const mdfi_gemm_params *p,
                                                      const mdfi_prepare_ctx *ctx)
{
    const mdfi_conv_geom *g = &p->s.geom;
    const long tiles = (long)((g->out_h + 3) / 4) * ((g->out_w + 3) / 4);
    const mdfi_sgemm_kernel *avx2 = mdfi_sgemm_kernel_for(MDFI_ISA_AVX2);
    if (ctx->isa == MDFI_ISA_AVX512 && !ctx->isa_forced && tiles <= 64 && avx2 &&
        (mdfi_cpu_features() & MDFI_CPU_ZMM_HALVES))
        return avx2;
    return p->kern;
}

mdfi_status mdfi_gemm_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    mdfi_gemm_params *p = l->priv;
    p->kern = mdfi_sgemm_kernel_for(ctx->isa);
    if (!p->kern)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: no fp32 GEMM for kernel %s",
                         l->index, mdfi_isa_name(ctx->isa));
    int outputs = l->out_c;
    p->bias = malloc((size_t)outputs * sizeof(float));
    size_t bytes = mdfi_sgemm_packed_a_size(p->kern, p->s.m, p->s.k);
    p->packed_floats = (bytes + sizeof(float) - 1) / sizeof(float);
    p->wino_on = use_winograd(l, p, ctx);
    if (p->wino_on) {
        MDFI_CHECK(mdfi_wino_plan(&p->wino, wino_kernel(p, ctx), 4, p->s.m, &p->s.geom,
                                  p->wino_on == 2, err));
        p->packed_floats = mdfi_wino_packed_floats(&p->wino);
    }
    p->packed_floats = (p->packed_floats + 15) & ~(size_t)15;   /* keep groups 64-byte aligned */
    p->packed = mdfi_aligned_alloc((size_t)p->s.groups * p->packed_floats * sizeof(float));
    if (!p->bias || !p->packed)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                         l->index);
    if (p->wino_on)   /* packed element by element: its padding must be zeros */
        memset(p->packed, 0, p->packed_floats * sizeof(float));
    MDFI_CHECK(pack_weights(l, p, p->stream ? ctx->params : NULL, err));
    mdfi_darknet_free(&p->raw);
    l->param_bytes = (size_t)outputs * sizeof(float) +
                     (size_t)p->s.groups * p->packed_floats * sizeof(float);
    /* the epilogue fuses these; the others run after it, on this path's loop */
    p->act = NULL;
    switch (p->s.act) {
    case MDFI_ACT_LINEAR: p->epi = MDFI_EPI_LINEAR; break;
    case MDFI_ACT_RELU: p->epi = MDFI_EPI_RELU; break;
    case MDFI_ACT_LEAKY: p->epi = MDFI_EPI_LEAKY; break;
    default: p->epi = MDFI_EPI_LINEAR; p->act = mdfi_activate_for(ctx->isa, p->s.act); break;
    }
    size_t ws = p->wino_on ? p->wino.ws_bytes
                           : mdfi_sgemm_workspace_size(p->kern, p->s.m, &p->s.geom);
    p->ws_bytes = ws = (ws + 63) & ~(size_t)63;
    if (l->fused) {
        size_t bw = mdfi_fuse_band(l, sizeof(float), &p->band);
        if (p->wino_on)
            bw = wino_band(l, &p->wino, &p->band, bw);
        ws += bw;
    }
    if (ws > l->scratch_bytes)
        l->scratch_bytes = ws;
    return MDFI_OK;
}

typedef struct {
    const mdfi_layer *l;
    const mdfi_gemm_params *p;
    mdfi_run_ctx *ctx;
    int n, chunk;
    int split;             /* Winograd: tasks per batch of tiles, each a range of blocks */
} gemm_job;

/* Fused conv -> maxpool, one task: maxpool output rows [py0, py1) from conv
 * rows [cy0, cy1), computed into the thread's band (channel stride
 * (cy1 - cy0) * out_w).  Each conv output is the same GEMM sum as unfused. */
static void fused_task(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    const mdfi_layer *l = j->l;
    const mdfi_gemm_params *p = j->p;
    const mdfi_fuse_span r = mdfi_fuse_rows(l, p->band, task);
    const int py0 = r.py0, py1 = r.py1, cy0 = r.cy0, cy1 = r.cy1;
    size_t ldc = cy1 > cy0 ? (size_t)(cy1 - cy0) * l->out_w : 0;
    int n0 = cy0 * l->out_w, n1 = cy1 * l->out_w;
    size_t in_group = (size_t)p->s.geom.channels * p->s.geom.in_h * p->s.geom.in_w;
    char *ws = j->ctx->scratch[thread];
    float *band = (float *)(ws + p->ws_bytes);
    if (p->wino_on && ldc) {   /* the tile rows that cover [cy0, cy1) */
        const mdfi_wino *w = &p->wino;
        int t0 = cy0 / w->m * w->tiles_x, t1 = (cy1 + w->m - 1) / w->m * w->tiles_x;
        const int step = wino_step(w, t1 - t0);
        for (int t = t0; t < t1; t += step)
            mdfi_wino_run(w, p->packed, j->ctx->in[0], p->bias, p->epi, band, ldc, cy0, cy1, t,
                          t + step < t1 ? t + step : t1, 0, w->nmb, ws);
    } else {
        for (int g = 0; g < p->s.groups && ldc; ++g)
            mdfi_sgemm_conv(p->kern, p->s.m, &p->s.geom,
                            p->packed + (size_t)g * p->packed_floats, j->ctx->in[0] + g * in_group,
                            p->bias + (size_t)g * p->s.m, p->epi,
                            band + (size_t)g * p->s.m * ldc, ldc, n0, n1, ws);
    }
    if (p->act && ldc)
        p->act(band, (size_t)l->out_c * ldc, p->s.act);
    mdfi_maxpool_band(&l->pool, band, cy0, cy1, py0, py1, j->ctx->out);
}

/* Winograd, one task: a batch of tiles for a range of output blocks (its
 * input transform made once for them). */
static void wino_task(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    const mdfi_gemm_params *p = j->p;
    const mdfi_wino *w = &p->wino;
    const int t0 = task / j->split * w->batch, t1 = mdfi_wino_tiles(w), s = task % j->split;
    mdfi_wino_run(w, p->packed, j->ctx->in[0], p->bias, p->epi, j->ctx->out, (size_t)j->n, 0,
                  w->out_h, t0, t0 + w->batch < t1 ? t0 + w->batch : t1, s * w->nmb / j->split,
                  (s + 1) * w->nmb / j->split, j->ctx->scratch[thread]);
}

static void gemm_task(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    const mdfi_gemm_params *p = j->p;
    int n0 = task * j->chunk;
    int n1 = n0 + j->chunk < j->n ? n0 + j->chunk : j->n;
    if (n0 >= n1)
        return;
    size_t in_group = (size_t)p->s.geom.channels * p->s.geom.in_h * p->s.geom.in_w;
    size_t out_group = (size_t)p->s.m * j->n;
    for (int g = 0; g < p->s.groups; ++g)
        mdfi_sgemm_conv(p->kern, p->s.m, &p->s.geom, p->packed + (size_t)g * p->packed_floats,
                        j->ctx->in[0] + g * in_group, p->bias + (size_t)g * p->s.m, p->epi,
                        j->ctx->out + g * out_group + n0, (size_t)j->n, n0, n1,
                        j->ctx->scratch[thread]);
}

void mdfi_gemm_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const mdfi_gemm_params *p = l->priv;
    int threads = mdfi_pool_threads(ctx->pool);
    gemm_job j = {l, p, ctx, p->s.geom.out_h * p->s.geom.out_w, 0, 1};
    if (l->fused) {
        mdfi_pool_run(ctx->pool, (l->pool.out_h + p->band - 1) / p->band, fused_task, &j);
        return;
    }
    if (p->wino_on) {
        const mdfi_wino *w = &p->wino;
        const int batches = (mdfi_wino_tiles(w) + w->batch - 1) / w->batch;
        /* split the blocks only as far as the threads need tasks */
        j.split = threads > batches ? (threads + batches - 1) / batches : 1;
        j.split = j.split < w->nmb ? j.split : w->nmb;
        mdfi_pool_run(ctx->pool, batches * j.split, wino_task, &j);
        if (p->act)
            p->act(ctx->out, mdfi_layer_outputs(l), p->s.act);
        return;
    }
    /* Column chunks are whole multiples of 32 (the widest B panel) so every
     * tile but the last is full. */
    j.chunk = (j.n + threads - 1) / threads;
    j.chunk = (j.chunk + 31) & ~31;
    int tasks = (j.n + j.chunk - 1) / j.chunk;
    mdfi_pool_run(ctx->pool, tasks, gemm_task, &j);
    if (p->act)
        p->act(ctx->out, mdfi_layer_outputs(l), p->s.act);
}
