/* Fixed-point [convolutional] (grouped too) and [connected]:
 *
 *   X   = the input in the operand format fixed_in (converted if the
 *         producer's format differs; quantized if it is float)
 *   acc = bias_q[m] + sum_k W_q[m][k] * X[k][n]          int32, exact
 *   out = sat(rshift_round(act(acc), in_frac + w_frac - out_frac))
 *         (fixed_w=B:mul: sat(rshift_round(act(acc) * mult[m], in_frac +
 *          w_frac[m] - out_frac)), the product in 64 bits)
 *
 * on the integer GEMM (kernels/qgemm.h).  The spec comes from the type's
 * parse; the formats from the fixed_* keys; weights from a .qweights record.
 * A conv read only by a [maxpool] of its own format computes the pool's
 * output in bands of rows, as the float path does (net/passes.c): its own
 * output, the network's largest, is never stored. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "kernels/qgemm.h"
#include "layers/fixed.h"
#include "layers/gemm_layer.h"

/* A cg conversion task's input rows (G channels at a time) take at most this
 * much of its scratch. */
#define CG_TMP_BYTES (16 * 1024)

typedef struct {
    mdfi_gemm_spec s;          /* the parsed spec, copied at bind */
    mdfi_qact act;             /* the integer form of s.act */
    mdfi_qfmt src;             /* the producer's format (bits 0: float) */
    int per_channel;           /* the record mode: 1 fixed_w=BITS:ch (a weight fraction per
                                  output), 2 fixed_w=BITS:mul (and a multiplier), 0 neither */
    int8_t *w_frac;            /* [groups*m] with per_channel */
    int32_t *mult;             /* [groups*m] with per_channel 2, else NULL */
    void *weights;             /* [groups*m][k], load to prepare */
    int32_t *bias;             /* [groups*m] */
    const mdfi_qgemm_kernel *kern;
    void *packed;              /* groups * packed_bytes */
    size_t packed_bytes;
    int8_t *shift;             /* [groups*m] */
    size_t stage_at;           /* the input in the operand format, when converted, or
                                  with cg always, X: at scratch[0] + stage_at
                                  (lead_bytes); 0: neither */
    int cg;                    /* the GEMM reads X (mdfi_qgemm_conv_cg): B panels are
                                  copies, not im2col rows interleaved per call */
    int cg_rows;               /* cg: input rows a conversion task takes */
    int cg_flat;               /* cg, unpadded, a whole plane a task: X's rows of a
                                  group follow each other as the plane's do, so it is
                                  put as one long row (flat: its geometry); a 13x13
                                  map's 13 short rows cost more than their copy */
    mdfi_conv_geom flat;
    int band;                  /* fused: maxpool output rows per task */
    int pool_sums;             /* fused, epilogue monotone: pool the int32 sums, then
                                  requantize a quarter as many (2x2 / 2) */
    int pool_pairs;            /* pool_sums, 2x2 / 2 from 0 over an even width: the GEMM
                                  keeps each column pair's larger sum (half the band) */
    int ldp;                   /* pool_sums: a channel's pooled rows in the band (ints) */
    size_t pooled_at;          /* pool_sums: the pooled band in the thread's scratch */
    size_t ws_bytes;           /* GEMM workspace; a fused conv's band follows it (with
                                  pool_sums the pooled band after that) */
} fx_gemm;

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    const mdfi_gemm_spec *sp = l->spec;
    mdfi_cfg_section *s = ctx->sec;
    fx_gemm g;
    memset(&g, 0, sizeof g);
    g.s = *sp;
    const char *name = ctx->cfg->name;
    /* the integer GEMM's im2col has one stride and no dilation */
    if (sp->geom.dilation != 1 || sp->geom.stride_y != sp->geom.stride || l->share_from)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [convolutional]: dilation, "
                         "stride_y unlike stride_x and share_index are not supported on the "
                         "%s path", name, l->line, l->index, "fixed-point");
    int act;
    MDFI_CHECK(mdfi_fx_bind_act(ctx, sp->act, &act, err));
    g.act = (mdfi_qact)act;
    mdfi_qfmt out;
    MDFI_CHECK(mdfi_fx_read_format(ctx->cfg, s, "fixed_in", &l->q_in, err));
    const char *wv = mdfi_cfg_str(s, "fixed_w", NULL);
    const char *mode = wv ? strchr(wv, ':') : NULL;
    if (mode && (!strcmp(mode, ":ch") || !strcmp(mode, ":mul")) &&
        (!strncmp(wv, "8:", 2) || !strncmp(wv, "16:", 3))) {
        l->q_w.bits = wv[0] == '8' ? 8 : 16;
        l->q_w.frac = 0;
        g.per_channel = mode[1] == 'c' ? 1 : 2;
    } else {
        MDFI_CHECK(mdfi_fx_read_format(ctx->cfg, s, "fixed_w", &l->q_w, err));
    }
    MDFI_CHECK(mdfi_fx_read_format(ctx->cfg, s, "fixed_out", &out, err));
    if (!l->q_in.bits || !l->q_w.bits || !out.bits)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s] needs all of fixed_in, "
                         "fixed_w and fixed_out", name, s->line, ctx->index, s->type);
    if (l->q_in.bits < l->q_w.bits)   /* 8/8, 16/16, or 16-bit input with 8-bit weights */
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [%s]: fixed_w (%d bits) may not be "
                         "wider than fixed_in (%d bits)", name, mdfi_cfg_line(s, "fixed_w"),
                         ctx->index, s->type, l->q_w.bits, l->q_in.bits);
    if (l->in[0] >= 0)
        g.src = ctx->layers[l->in[0]].q_out;
    fx_gemm *p = malloc(sizeof *p);
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    *p = g;
    l->priv = p;
    mdfi_fx_set_output(l, out);
    return MDFI_OK;
}

static const char mode_names[][27] = {"", " (per channel)", " (per-channel multipliers)"};

/* The record must be this layer's, with its shape and formats. */
static mdfi_status check_record(const mdfi_layer *l, const fx_gemm *p, const mdfi_qrecord *r,
                                const char *path, mdfi_errbuf *err)
{
    const char *type = l->type->name;
    if (!r)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s has no weights for layer %d [%s] (cfg "
                         "line %d)", path, l->index, type, l->line);
    int kind = p->s.connected ? MDFI_QW_CONNECTED : MDFI_QW_CONV;
    if (r->kind != kind || r->outputs != p->s.groups * p->s.m || r->k != p->s.k ||
        r->groups != p->s.groups)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d's record is %s %d x %d "
                         "(groups %d) but cfg line %d makes it %s %d x %d (groups %d)",
                         path, l->index,
                         r->kind == MDFI_QW_CONV        ? "convolutional"
                         : r->kind == MDFI_QW_CONNECTED ? "connected"
                                                        : "an arrays record",
                         r->outputs, r->k, r->groups, l->line, type, p->s.groups * p->s.m, p->s.k,
                         p->s.groups);
    if (r->in_bits != l->q_in.bits || r->in_frac != l->q_in.frac || r->w_bits != l->q_w.bits ||
        r->w_frac != l->q_w.frac || r->mode != p->per_channel || r->out_bits != l->q_out.bits ||
        r->out_frac != l->q_out.frac)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s] (cfg line %d): the cfg says "
                         "fixed_in=%d:%d fixed_w=%d:%d%s fixed_out=%d:%d but %s was "
                         "quantized for %d:%d %d:%d%s %d:%d: cfg and weights do not belong "
                         "together", l->index, type, l->line, l->q_in.bits, l->q_in.frac,
                         l->q_w.bits, l->q_w.frac, mode_names[p->per_channel], l->q_out.bits,
                         l->q_out.frac, path, r->in_bits, r->in_frac, r->w_bits, r->w_frac,
                         mode_names[r->mode], r->out_bits, r->out_frac);
    return MDFI_OK;
}

/* Integer parameters from the layer's .qweights record (src NULL: zeros). */
static mdfi_status fixed_load(mdfi_layer *l, mdfi_params *src, mdfi_errbuf *err)
{
    fx_gemm *p = l->priv;
    size_t m = (size_t)p->s.groups * p->s.m, nw = m * (size_t)p->s.k;
    free(p->bias);
    free(p->weights);
    free(p->w_frac);
    free(p->mult);
    p->mult = NULL;
    p->bias = calloc(m, sizeof *p->bias);
    p->weights = calloc(nw ? nw : 1, (size_t)l->q_w.bits / 8);
    p->w_frac = calloc(m, 1);
    if (p->per_channel == 2 && (p->mult = malloc(m * sizeof *p->mult)))
        for (size_t o = 0; o < m; ++o)   /* until loaded: weights 0, scale 1 */
            p->mult[o] = 1;
    if (!p->bias || !p->weights || !p->w_frac || (p->per_channel == 2 && !p->mult))
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory for %zu weights",
                         l->index, nw);
    if (!src)
        return MDFI_OK;
    const char *path = mdfi_params_path(src);
    if (mdfi_params_kind_of(src) != MDFI_PARAMS_QWEIGHTS)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s is not a quantized weights file: layer %d "
                         "has fixed-point formats", path, l->index);
    const mdfi_qrecord *r = mdfi_params_record(src, l->index);
    MDFI_CHECK(check_record(l, p, r, path, err));
    MDFI_CHECK(mdfi_params_read_gemm(src, r, p->bias, p->weights,
                                     p->per_channel ? p->w_frac : NULL, p->mult, err));
    for (size_t o = 0; p->mult && o < m; ++o)
        if (p->mult[o] < 1 || p->mult[o] > MDFI_FX_MULT_MAX)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: layer %d: output %zu's multiplier %ld "
                             "is outside 1..%d", path, l->index, o, (long)p->mult[o],
                             MDFI_FX_MULT_MAX);
    return MDFI_OK;
}

static mdfi_status gemm_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err)
{
    fx_gemm *p = l->priv;
    const int bits = l->q_w.bits;
    const int M = p->s.groups * p->s.m;
    /* The accumulator bound of docs/fixed-point.md, per output channel. */
    const int64_t in_max = (int64_t)1 << (l->q_in.bits - 1);
    for (int o = 0; o < M; ++o) {
        int64_t sum = 0;
        for (int j = 0; j < p->s.k; ++j) {
            int32_t w = mdfi_fx_get(p->weights, bits, (size_t)o * p->s.k + j);
            sum += w < 0 ? -(int64_t)w : w;
        }
        int64_t bound = sum * in_max + (p->bias[o] < 0 ? -(int64_t)p->bias[o] : p->bias[o]);
        if (bound > INT32_MAX)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d [%s]: the int32 accumulator can "
                             "overflow: output %d has sum|w| * 2^%d + |bias| = %lld > 2^31-1 "
                             "(fixed_w=%d:%d with fixed_in=%d:%d is too fine; re-quantize)",
                             l->index, l->type->name, o, l->q_in.bits - 1, (long long)bound,
                             l->q_w.bits, l->q_w.frac, l->q_in.bits, l->q_in.frac);
    }
    /* The GEMM runs at the operand width; 8-bit weights of a 16-bit layer
     * are widened (exactly) before packing. */
    const int gbits = l->q_in.bits;
    p->kern = mdfi_qgemm_kernel_for_a(ctx->isa, gbits, p->weights, M, p->s.k);
    if (!p->kern)   /* this ISA has no variant of this width: the reference is exact too */
        p->kern = mdfi_qgemm_kernel_for(MDFI_ISA_REF, gbits);
    if (!p->kern)
        return mdfi_fail(err, MDFI_ERR_UNSUPPORTED, "layer %d: no %d-bit integer GEMM",
                         l->index, gbits);
    if (gbits != bits) {
        size_t nw = (size_t)M * p->s.k;
        int16_t *wide = malloc((nw ? nw : 1) * sizeof *wide);
        if (!wide)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory widening weights",
                             l->index);
        for (size_t j = 0; j < nw; ++j)
            wide[j] = ((const int8_t *)p->weights)[j];
        free(p->weights);
        p->weights = wide;
    }
    /* Channel-grouped input where the kernel and shape take it and the zero
     * channels it pads with add at most 1/8 of the work (yolov3-tiny's first
     * layer, 3 channels of 4, ran 1.53 ms with it, 1.48 without, and its X
     * was the largest scratch): the weights reordered to its K' (qgemm.h). */
    const mdfi_conv_geom cgeom = mdfi_qgemm_cg_geom(p->kern, &p->s.geom);
    p->cg = p->s.groups == 1 && !p->s.connected && mdfi_qgemm_cg_ok(p->kern, &p->s.geom) &&
            (long)cgeom.channels * 8 <= (long)p->s.geom.channels * 9;
    const int K2 = p->cg ? cgeom.channels * cgeom.ksize * cgeom.ksize : p->s.k;
    if (p->cg) {
        void *a2 = malloc(((size_t)M * K2 + 1) * (size_t)(gbits / 8));
        if (!a2)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory ordering weights",
                             l->index);
        mdfi_qgemm_cg_order(p->kern, &p->s.geom, M, p->weights, a2);
        free(p->weights);
        p->weights = a2;
    }
    mdfi_aligned_free(p->packed);
    free(p->shift);
    size_t pa = mdfi_qgemm_packed_a_size(p->kern, p->s.m, K2);
    p->packed_bytes = (pa + 63) & ~(size_t)63;
    p->packed = mdfi_aligned_alloc((size_t)p->s.groups * p->packed_bytes);
    p->shift = malloc((size_t)M);
    if (!p->packed || !p->shift)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "layer %d: out of memory packing weights",
                         l->index);
    size_t eb = (size_t)gbits / 8;
    for (int g = 0; g < p->s.groups; ++g)
        mdfi_qgemm_pack_a(p->kern, p->s.m, K2,
                          (const char *)p->weights + (size_t)g * p->s.m * K2 * eb,
                          (char *)p->packed + (size_t)g * p->packed_bytes);
    free(p->weights);
    p->weights = NULL;
    for (int o = 0; o < M; ++o) {
        int wf = p->per_channel ? p->w_frac[o] : l->q_w.frac;
        if (wf < MDFI_FX_FRAC_MIN || wf > MDFI_FX_FRAC_MAX)
            return mdfi_fail(err, MDFI_ERR_WEIGHTS, "layer %d: output %d's weight fraction %d "
                             "is outside %d..%d", l->index, o, wf, MDFI_FX_FRAC_MIN,
                             MDFI_FX_FRAC_MAX);
        p->shift[o] = (int8_t)(l->q_in.frac + wf - l->q_out.frac);
    }
    l->param_bytes = (size_t)M * (sizeof(int32_t) * (p->mult ? 2 : 1) + 1) +
                     (size_t)p->s.groups * p->packed_bytes;
    size_t ws = mdfi_qgemm_workspace_size(p->kern, p->s.m, p->cg ? &cgeom : &p->s.geom);
    p->ws_bytes = ws = (ws + 63) & ~(size_t)63;
    if (p->cg) {   /* a conversion task's input rows, G channels at a time */
        const mdfi_conv_geom *g = &p->s.geom;   /* (a [connected]: K x 1 x 1) */
        const size_t row = (size_t)mdfi_qgemm_kgroup(p->kern) * g->in_w * (size_t)(gbits / 8);
        p->cg_rows = row * (size_t)g->in_h <= CG_TMP_BYTES ? g->in_h
                     : CG_TMP_BYTES / row > 0 ? (int)(CG_TMP_BYTES / row) : 1;
        if (row * (size_t)p->cg_rows > ws)
            ws = row * (size_t)p->cg_rows;
        p->cg_flat = !g->pad && p->cg_rows == g->in_h;
        p->flat = *g;
        p->flat.in_w *= g->in_h;
        p->flat.in_h = 1;
    }
    p->pool_sums = 0;
    if (l->fused) {
        /* the epilogue of every group (they share act and leaky slope) */
        mdfi_qepilogue e = {NULL, p->mult, p->shift, p->act, MDFI_FX_LEAKY_MULT,
                            MDFI_FX_LEAKY_SHIFT, l->q_out.bits, 0};
        p->pool_sums = mdfi_qgemm_monotone(&e, M);
        const mdfi_pool2d *mp = &l->pool;
        p->pool_pairs = p->pool_sums && mp->size == 2 && mp->stride == 2 && mp->pad / 2 == 0 &&
                        l->out_w % 2 == 0 && mp->out_w == l->out_w / 2;
        ws += mdfi_fuse_band(l, p->pool_sums ? sizeof(int32_t) : (size_t)l->q_out.bits / 8,
                             &p->band);
        p->ldp = ((p->band * l->pool.out_w) + 15) & ~15;
        p->pooled_at = (ws + 63) & ~(size_t)63;
        if (p->pool_sums)
            ws = p->pooled_at + (size_t)l->out_c * p->ldp * sizeof(int32_t);
    }
    if (ws > l->scratch_bytes)
        l->scratch_bytes = ws;
    /* a converted input is written once, before the tasks, and read by all */
    p->stage_at = 0;
    l->lead_bytes = 0;
    if (p->cg || p->src.bits != l->q_in.bits || p->src.frac != l->q_in.frac) {
        p->stage_at = (l->scratch_bytes + 127) & ~(size_t)63;   /* > 0 */
        l->lead_bytes = p->stage_at - l->scratch_bytes +
                        (p->cg ? mdfi_qgemm_cg_bytes(p->kern, &p->s.geom)
                               : (size_t)l->in_c * l->in_h * l->in_w * (size_t)l->q_in.bits / 8);
        l->takes_bytes = p->src.bits == 0;
    }
    return MDFI_OK;
}

typedef struct {
    const mdfi_layer *l;
    const fx_gemm *p;
    const void *input;
    mdfi_run_ctx *ctx;
    int n, chunk;
} gemm_job;

/* Group g's epilogue, to out_bits bits (32: the sums; pairs: see qgemm.h). */
static mdfi_qepilogue group_epi(const fx_gemm *p, int g, int out_bits, int pairs)
{
    const size_t o = (size_t)g * p->s.m;
    mdfi_qepilogue e = {p->bias + o, p->mult ? p->mult + o : NULL, p->shift + o, p->act,
                        MDFI_FX_LEAKY_MULT, MDFI_FX_LEAKY_SHIFT, out_bits, pairs};
    return e;
}

/* Columns [n0, n1) of every group into out (column n0 of group 0's row 0;
 * row stride ldc, group g at g * m * ldc), out_bits bits each (pairs: the
 * column pairs' larger sums). */
static void conv_cols(const gemm_job *j, char *out, size_t ldc, int n0, int n1, int out_bits,
                      int pairs, int thread)
{
    const fx_gemm *p = j->p;
    const mdfi_layer *l = j->l;
    const size_t ib = (size_t)l->q_in.bits / 8, ob = (size_t)out_bits / 8;
    const size_t in_group = (size_t)p->s.geom.channels * p->s.geom.in_h * p->s.geom.in_w;
    for (int g = 0; g < p->s.groups; ++g) {
        const mdfi_qepilogue e = group_epi(p, g, out_bits, pairs);
        (p->cg ? mdfi_qgemm_conv_cg : mdfi_qgemm_conv)(
                        p->kern, p->s.m, &p->s.geom, (const char *)p->packed + g * p->packed_bytes,
                        (const char *)j->input + g * in_group * ib, &e,
                        out + (size_t)g * p->s.m * ldc * ob, ldc, n0, n1,
                        j->ctx->scratch[thread]);
    }
}

static void gemm_task(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    int n0 = task * j->chunk;
    int n1 = n0 + j->chunk < j->n ? n0 + j->chunk : j->n;
    if (n0 < n1)
        conv_cols(j, (char *)j->ctx->out + (size_t)n0 * (j->l->q_out.bits / 8), (size_t)j->n,
                  n0, n1, j->l->q_out.bits, 0, thread);
}

/* Fused conv -> maxpool, one task: the pool's rows [py0, py1) from the conv
 * rows [cy0, cy1) they read, computed into the thread's band (the same
 * integers as unfused: each column's sum and epilogue do not depend on the
 * range computed).  With pool_sums the band holds the int32 sums, pooled
 * before the epilogue: where it never decreases, the max of the finished
 * values is the finished max, and a 2x2 / 2 pool finishes a quarter as many
 * (yolov3-tiny W8A8: 18.5 -> 18.0 ms, AMD EPYC with AVX-512). */
static void fused_task(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    const mdfi_layer *l = j->l;
    const fx_gemm *p = j->p;
    const mdfi_fuse_span r = mdfi_fuse_rows(l, p->band, task);
    if (r.cy1 <= r.cy0)
        return;
    char *band = (char *)j->ctx->scratch[thread] + p->ws_bytes;
    const size_t ldc = (size_t)(r.cy1 - r.cy0) * l->out_w;
    if (!p->pool_sums) {
        conv_cols(j, band, ldc, r.cy0 * l->out_w, r.cy1 * l->out_w, l->q_out.bits, 0, thread);
        mdfi_fx_maxpool_band(&l->pool, l->q_out.bits, band, r.cy0, r.cy1, r.py0, r.py1,
                             j->ctx->out);
        return;
    }
    int32_t *pooled = (int32_t *)((char *)j->ctx->scratch[thread] + p->pooled_at);
    if (p->pool_pairs) {   /* half the band: the column pairs' larger sums */
        conv_cols(j, band, ldc / 2, r.cy0 * l->out_w, r.cy1 * l->out_w, 32, 1, thread);
        mdfi_fx_maxpool_pairs32(&l->pool, (const int32_t *)band, r.cy0, r.cy1, r.py0, r.py1,
                                pooled, (size_t)p->ldp);
    } else {
        conv_cols(j, band, ldc, r.cy0 * l->out_w, r.cy1 * l->out_w, 32, 0, thread);
        mdfi_fx_maxpool_band32(&l->pool, (const int32_t *)band, r.cy0, r.cy1, r.py0, r.py1,
                               pooled, (size_t)p->ldp);
    }
    const size_t pw = (size_t)l->pool.out_w, plane = (size_t)l->pool.out_h * pw;
    const size_t ob = (size_t)l->q_out.bits / 8;
    for (int g = 0; g < p->s.groups; ++g) {
        const mdfi_qepilogue e = group_epi(p, g, l->q_out.bits, 0);
        const size_t c0 = (size_t)g * p->s.m;
        mdfi_qgemm_requant_rows(p->kern, &e, pooled + c0 * p->ldp, p->ldp, p->s.m,
                                (int)((size_t)(r.py1 - r.py0) * pw),
                                (char *)j->ctx->out + (c0 * plane + (size_t)r.py0 * pw) * ob,
                                plane);
    }
}

typedef struct {
    const mdfi_layer *l;
    const mdfi_run_ctx *ctx;
    void *stage;
    size_t chunk;
} stage_job;

/* Values [i0, i0 + k) of the input into the operand format at to. */
static void stage_values(const mdfi_layer *l, const mdfi_run_ctx *ctx, size_t i0, size_t k,
                         void *to)
{
    const fx_gemm *p = l->priv;
    if (ctx->in_bytes)
        mdfi_fx_quantize_bytes(ctx->in_bytes + i0, to, l->q_in, k);
    else if (p->src.bits == 0)
        mdfi_fx_quantize(ctx->in[0] + i0, to, l->q_in, k);
    else
        mdfi_fx_convert((const char *)ctx->in[0] + i0 * (size_t)(p->src.bits / 8), p->src, to,
                        l->q_in, k);
}

/* The input into the operand format, values [i0, i0 + chunk) of it. */
static void stage_task(void *arg, int task, int thread)
{
    (void)thread;
    const stage_job *j = arg;
    const mdfi_layer *l = j->l;
    const size_t n = (size_t)l->in_c * l->in_h * l->in_w, i0 = (size_t)task * j->chunk;
    const size_t k = n - i0 < j->chunk ? n - i0 : j->chunk;
    stage_values(l, j->ctx, i0, k, (char *)j->stage + i0 * (size_t)(l->q_in.bits / 8));
}

/* cg: rows [y0, y0 + cg_rows) of channel group q into X (task = q * chunks
 * + the chunk), converted into the thread's scratch first where the input
 * is not in the operand format; group q's padding rows with its first. */
static void cg_task(void *arg, int task, int thread)
{
    const stage_job *j = arg;
    const mdfi_layer *l = j->l;
    const fx_gemm *p = l->priv;
    const mdfi_conv_geom *g = &p->s.geom;   /* (a [connected]: K x 1 x 1) */
    const int G = mdfi_qgemm_kgroup(p->kern), H = g->in_h, W = g->in_w;
    const int chunks = (H + p->cg_rows - 1) / p->cg_rows, q = task / chunks;
    const int y0 = task % chunks * p->cg_rows, y1 = y0 + p->cg_rows < H ? y0 + p->cg_rows : H;
    const size_t ib = (size_t)l->q_in.bits / 8, n = (size_t)(y1 - y0) * W;
    const int direct = !j->ctx->in_bytes && p->src.bits == l->q_in.bits &&
                       p->src.frac == l->q_in.frac;
    char *tmp = j->ctx->scratch[thread];
    const char *plane[4];   /* G <= 4 */
    for (int t = 0; t < G; ++t) {
        const int c = q * G + t;
        char *mine = tmp + (size_t)t * n * ib;
        if (c >= g->channels) {
            memset(mine, 0, n * ib);
            plane[t] = mine;
        } else if (direct) {
            plane[t] = (const char *)j->ctx->in[0] + ((size_t)c * H + y0) * W * ib;
        } else {
            stage_values(l, j->ctx, ((size_t)c * H + y0) * W, n, mine);
            plane[t] = mine;
        }
    }
    for (int y = y0; y < (p->cg_flat ? 1 : y1); ++y) {
        const void *rows[4];
        for (int t = 0; t < G; ++t)
            rows[t] = plane[t] + (size_t)(y - y0) * W * ib;
        mdfi_qgemm_cg_put_row(p->kern, p->cg_flat ? &p->flat : g, rows, j->stage, q, y);
    }
    if (y0 == 0)
        mdfi_qgemm_cg_pad_rows(p->kern, &p->s.geom, j->stage, q);
}

static void gemm_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const fx_gemm *p = l->priv;
    const void *input = ctx->in[0];
    if (p->cg) {   /* X, split over the threads by channel groups and rows */
        const int G = mdfi_qgemm_kgroup(p->kern);
        stage_job s = {l, ctx, (char *)ctx->scratch[0] + p->stage_at, 0};
        const mdfi_conv_geom *g = &p->s.geom;
        const int tasks = (g->channels + G - 1) / G * ((g->in_h + p->cg_rows - 1) / p->cg_rows);
        mdfi_pool_run(ctx->pool, tasks, cg_task, &s);
        input = s.stage;
    } else if (p->stage_at) {   /* split over the threads, in whole cache lines */
        const size_t n = (size_t)l->in_c * l->in_h * l->in_w;
        const int threads = mdfi_pool_threads(ctx->pool);
        stage_job s = {l, ctx, (char *)ctx->scratch[0] + p->stage_at,
                       ((n + (size_t)threads - 1) / (size_t)threads + 63) & ~(size_t)63};
        mdfi_pool_run(ctx->pool, (int)((n + s.chunk - 1) / s.chunk), stage_task, &s);
        input = s.stage;
    }
    int threads = mdfi_pool_threads(ctx->pool);
    gemm_job j = {l, p, input, ctx, p->s.geom.out_h * p->s.geom.out_w, 0};
    if (l->fused) {
        mdfi_pool_run(ctx->pool, (l->pool.out_h + p->band - 1) / p->band, fused_task, &j);
        return;
    }
    /* Column chunks of whole 16-column panels (AVX2's and NEON's NR, AVX-512's
     * half panel): on a 13x13 map (169 columns) two threads get 96 and 73, where
     * 64-column chunks gave them 128 and 41. */
    j.chunk = (j.n + threads - 1) / threads;
    j.chunk = (j.chunk + 15) & ~15;
    int tasks = (j.n + j.chunk - 1) / j.chunk;
    mdfi_pool_run(ctx->pool, tasks, gemm_task, &j);
}

static void gemm_destroy(mdfi_layer *l)
{
    fx_gemm *p = l->priv;
    if (p) {
        free(p->weights);
        free(p->bias);
        free(p->w_frac);
        free(p->mult);
        free(p->shift);
        mdfi_aligned_free(p->packed);
    }
    free(p);
}

int mdfi_fixed_weight_scale(const mdfi_layer *l)
{
    return mdfi_layer_has_kind(l, MDFI_KIND_GEMM) && l->path == MDFI_PATH_FIXED && l->priv
               ? ((const fx_gemm *)l->priv)->per_channel
               : 0;
}

static const char *kernel_name(const mdfi_layer *l)
{
    const fx_gemm *p = l->priv;
    return p && p->kern ? mdfi_qgemm_kernel_name(p->kern) : "";
}

/* The fixed-point variant of [convolutional] and [connected]. */
const mdfi_layer_variant mdfi_gemm_fixed = {fixed_bind, fixed_load, gemm_prepare, gemm_forward,
                                            gemm_destroy, kernel_name};
