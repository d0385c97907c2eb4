/* [route]: concatenates the listed layers' outputs along channels (negative
 * indices are relative).  groups/group_id take one channel slice of each. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "layers/fixed.h"
#include "layers/layer.h"

typedef struct {
    int group_id;   /* the channel slice of each input to take (groups slices) */
} route_spec;

mdfi_status mdfi_route_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_errbuf *err)
{
    int refs[MDFI_LIMIT_INPUTS], n, groups, group_id;
    MDFI_CHECK(mdfi_cfg_int_list(ctx->cfg, s, "layers", refs, MDFI_LIMIT_INPUTS, &n, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "groups", 1, &groups, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "group_id", 0, &group_id, err));
    if (n == 0)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [route] needs layers=...",
                         ctx->cfg->name, s->line, ctx->index);
    if (groups < 1 || group_id < 0 || group_id >= groups)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [route]: bad groups=%d "
                         "group_id=%d", ctx->cfg->name, s->line, ctx->index, groups, group_id);
    route_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    l->spec = sp;
    sp->group_id = group_id;
    l->n_in = n;
    l->groups = groups;
    l->out_c = 0;
    for (int i = 0; i < n; ++i) {
        MDFI_CHECK(mdfi_layer_ref(ctx, s, "layers", refs[i], &l->in[i], err));
        const mdfi_layer *src = &ctx->layers[l->in[i]];
        if (i == 0) {
            l->out_h = src->out_h;
            l->out_w = src->out_w;
        } else if (src->out_h != l->out_h || src->out_w != l->out_w) {
            return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [route]: layer %d is "
                             "%dx%d but layer %d is %dx%d; route needs equal sizes",
                             ctx->cfg->name, mdfi_cfg_line(s, "layers"), ctx->index,
                             l->in[i], src->out_w, src->out_h, l->in[0], l->out_w, l->out_h);
        }
        if (src->out_c % groups)
            return mdfi_fail(err, MDFI_ERR_SHAPE, "%s:%d: layer %d [route]: groups=%d does "
                             "not divide layer %d's %d channels", ctx->cfg->name, s->line,
                             ctx->index, groups, l->in[i], src->out_c);
        l->out_c += src->out_c / groups;
    }
    return mdfi_layer_check_shape(ctx, s, l->out_c, l->out_h, l->out_w, err);
}

static void float_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const int group_id = ((const route_spec *)l->spec)->group_id;
    float *out = ctx->out;
    for (int i = 0; i < l->n_in; ++i) {
        size_t part = ctx->in_n[i] / (size_t)l->groups;
        memcpy(out, ctx->in[i] + part * (size_t)group_id, part * sizeof(float));
        out += part;
    }
}

/* ---- fixed point: each input aligned to fixed_out, concatenated ----------------- */

typedef struct {
    mdfi_qfmt src[MDFI_LIMIT_INPUTS];
} fx_route;

static mdfi_status fixed_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err)
{
    MDFI_CHECK(mdfi_fx_bind_int_inputs(l, ctx, err));
    fx_route *r = calloc(1, sizeof *r);
    if (!r)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    for (int k = 0; k < l->n_in; ++k)
        r->src[k] = ctx->layers[l->in[k]].q_out;
    l->priv = r;
    return MDFI_OK;
}

static void fixed_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    const fx_route *r = l->priv;
    const int group_id = ((const route_spec *)l->spec)->group_id;
    size_t o = 0;
    for (int i = 0; i < l->n_in; ++i) {
        size_t part = ctx->in_n[i] / (size_t)l->groups;
        const char *src = (const char *)ctx->in[i] + part * (size_t)group_id * (r->src[i].bits / 8);
        mdfi_fx_convert(src, r->src[i], (char *)ctx->out + o * (l->q_out.bits / 8), l->q_out,
                        part);
        o += part;
    }
}

static void fixed_destroy(mdfi_layer *l)
{
    free(l->priv);
}

const mdfi_layer_variant mdfi_route_float = {NULL, NULL, NULL, float_forward, NULL, NULL};
const mdfi_layer_variant mdfi_route_fixed = {fixed_bind, NULL, NULL, fixed_forward, fixed_destroy,
                                             NULL};
