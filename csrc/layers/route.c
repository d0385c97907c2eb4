/* [route]: concatenates the listed layers' outputs along channels (negative
 * indices are relative).  groups/group_id take one channel slice of each. */
#include <string.h>

#include "base/error.h"
#include "layers/layer.h"

static mdfi_status route_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_errbuf *err)
{
    int refs[MDFI_MAX_INPUTS], n, groups, group_id;
    MDFI_CHECK(mdfi_cfg_int_list(ctx->cfg, s, "layers", refs, MDFI_MAX_INPUTS, &n, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "groups", 1, &groups, err));
    MDFI_CHECK(mdfi_cfg_int(ctx->cfg, s, "group_id", 0, &group_id, err));
    if (n == 0)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [route] needs layers=...",
                         ctx->cfg->name, s->line, ctx->index);
    if (groups < 1 || group_id < 0 || group_id >= groups)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: layer %d [route]: bad groups=%d "
                         "group_id=%d", ctx->cfg->name, s->line, ctx->index, groups, group_id);
    l->n_in = n;
    l->groups = groups;
    l->pad = group_id;   /* kept in a spare field: the slice to take */
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

static void route_forward(const mdfi_layer *l, mdfi_run_ctx *ctx)
{
    float *out = ctx->out;
    for (int i = 0; i < l->n_in; ++i) {
        size_t part = ctx->in_n[i] / (size_t)l->groups;
        memcpy(out, ctx->in[i] + part * (size_t)l->pad, part * sizeof(float));
        out += part;
    }
}

const mdfi_layer_ops mdfi_route_ops = {"route", route_parse, NULL, NULL, route_forward, NULL};
