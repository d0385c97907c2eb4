/* The network's passes: every decision that involves more than one layer.
 *
 * select (build time, after each layer's parse): the numeric path of the
 *   layer, from its section and its inputs, then its variant's bind;
 * fuse (prepare time, from the options): which float convs compute their
 *   maxpool reader's output in row bands, and which binary layers hand bit
 *   planes to their readers.  The decisions are written into the layers
 *   (fused + pool, bits_in / bits_out / bits_q, the bits variant of a
 *   maxpool between binary layers); after this no layer looks at another. */
#include <string.h>

#include "kernels/activations.h"
#include "net/net.h"

static const char *const fixed_keys[] = {"fixed_in", "fixed_w", "fixed_out"};

static int has_fixed_keys(const mdfi_cfg_section *s)
{
    for (int i = 0; i < s->n_kv; ++i)
        for (size_t k = 0; k < sizeof fixed_keys / sizeof fixed_keys[0]; ++k)
            if (!strcmp(s->kv[i].key, fixed_keys[k]))
                return 1;
    return 0;
}

/* The first input that is an integer layer, or -1. */
static int integer_input(const mdfi_net *net, const mdfi_layer *l)
{
    for (int k = 0; k < l->n_in; ++k)
        if (l->in[k] >= 0 && net->layers[l->in[k]].q_out.bits)
            return l->in[k];
    return -1;
}

static mdfi_status choose_path(mdfi_net *net, mdfi_cfg_section *s, mdfi_layer *l)
{
    const mdfi_cfg *cfg = &net->cfg;
    const int i = l->index;
    const unsigned kind = l->type->kind;
    const int ints = integer_input(net, l);
    if (has_fixed_keys(s)) {
        if (!l->type->path[MDFI_PATH_FIXED] || (kind & (MDFI_KIND_HEAD | MDFI_KIND_ALIAS))) {
            char names[256];
            mdfi_layer_types_with(MDFI_PATH_FIXED, names, sizeof names);
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no fixed-point "
                                 "form (fixed_* keys are for %s)", cfg->name, s->line, i,
                                 s->type, names);
        }
        if (l->xnor)
            return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d: xnor "
                                 "convolutions have no fixed-point form", cfg->name,
                                 mdfi_cfg_line(s, "xnor"), i);
        l->path = MDFI_PATH_FIXED;
    } else if (kind & MDFI_KIND_ALIAS) {
        l->path = ints >= 0 ? MDFI_PATH_FIXED : MDFI_PATH_FLOAT;
    } else if ((kind & MDFI_KIND_HEAD) && ints >= 0) {
        l->path = MDFI_PATH_FIXED;   /* a float head that dequantizes */
    } else if (ints >= 0) {
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [%s] has no fixed_* keys but "
                             "reads layer %d, which is fixed-point: every layer of a quantized "
                             "cfg needs its formats (re-run weights_tools quantize)", cfg->name,
                             s->line, i, s->type, ints);
    } else {
        l->path = l->xnor ? MDFI_PATH_BINARY : MDFI_PATH_FLOAT;
    }
    l->run = l->type->path[l->path];
    if (!l->run)
        return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "%s:%d: layer %d [%s] has no %s form",
                             cfg->name, s->line, i, s->type,
                             l->path == MDFI_PATH_BINARY ? "binary" :
                             l->path == MDFI_PATH_FIXED ? "fixed-point" : "float");
    return MDFI_OK;
}

mdfi_status mdfi_pass_select(mdfi_net *net, mdfi_cfg_section *s, int index)
{
    mdfi_layer *l = &net->layers[index];
    MDFI_CHECK(choose_path(net, s, l));
    if (l->type->kind & MDFI_KIND_ALIAS) {
        if (l->in[0] >= 0)
            l->q_out = net->layers[l->in[0]].q_out;
        return MDFI_OK;
    }
    if (!l->run->bind)
        return MDFI_OK;
    mdfi_bind_ctx ctx = {&net->cfg, s, net->layers, index};
    return l->run->bind(l, &ctx, &net->err);
}

/* ---- conv -> maxpool band fusion --------------------------------------------- */

/* Layer i is read by layer j alone, and not by the caller (l->keep covers
 * keep_outputs and marked outputs). */
static int only_reader(const mdfi_net *net, int i, int j)
{
    const mdfi_layer *l = &net->layers[i];
    if (l->keep || i == net->n - 1 || mdfi_layer_has_kind(l, MDFI_KIND_HEAD))
        return 0;
    for (int r = i + 1; r < net->n; ++r)
        for (int k = 0; k < net->layers[r].n_in; ++k)
            if (net->layers[r].in[k] == i && (r != j || net->layers[r].n_in != 1))
                return 0;
    return 1;
}

static int same_fmt(mdfi_qfmt a, mdfi_qfmt b)
{
    return a.bits == b.bits && a.frac == b.frac;
}

/* A conv whose only reader is the next layer, a [maxpool] on the same path
 * with disjoint windows (overlapping ones would make bands recompute rows):
 * float, or fixed point where the pool keeps the conv's format (no
 * requantization) and is at most 1024 wide (mdfi_fx_maxpool_band). */
static void fuse_pools(mdfi_net *net)
{
    for (int i = 0; i + 1 < net->n; ++i) {
        mdfi_layer *l = &net->layers[i], *mp = &net->layers[i + 1];
        int fixed = l->path == MDFI_PATH_FIXED;
        if (!net->fuse_pool || (l->path != MDFI_PATH_FLOAT && !fixed) ||
            !mdfi_layer_has_kind(l, MDFI_KIND_CONV) || mp->path != l->path ||
            !mdfi_layer_has_kind(mp, MDFI_KIND_MAXPOOL) || mp->stride < mp->size ||
            !only_reader(net, i, i + 1) ||
            (fixed && (!same_fmt(l->q_out, mp->q_in) || !same_fmt(mp->q_in, mp->q_out) ||
                       mp->out_w > 1024)))
            continue;
        l->fused = 1;
        l->pool = (mdfi_pool2d){mp->size, mp->stride, mp->pad, mp->in_h, mp->in_w, mp->out_h,
                                mp->out_w, mp->out_c};
    }
}

/* ---- bit tensors between binary layers ------------------------------------------ */

static int same_quant(const mdfi_bquant *a, const mdfi_bquant *b)
{
    return a->mode == b->mode && a->step == b->step;
}

/* The input quantizer of a binary convolution ([convolutional] xnor=1; a
 * binary layer of another kind, [dualpath], quantizes its input its own way
 * and never takes bits). */
static const mdfi_bquant *input_quant(const mdfi_layer *l)
{
    return l->path == MDFI_PATH_BINARY && l->groups == 1 &&
                   mdfi_layer_has_kind(l, MDFI_KIND_CONV) ? &l->in_q : NULL;
}

/* Whether every reader of layer i takes it as bits of one quantizer (*q, set
 * by the first binary reader): binary convs without groups, or float
 * maxpools whose own readers all qualify. */
static int bit_readers(const mdfi_net *net, int i, mdfi_bquant *q, int *have_q, int depth)
{
    int readers = 0;
    if (i >= net->n - 1 || depth > 16 || net->marked[i])
        return 0;   /* the output layer and outputs the caller reads stay float */
    for (int j = i + 1; j < net->n; ++j) {
        const mdfi_layer *l = &net->layers[j];
        int reads = 0;
        for (int k = 0; k < l->n_in; ++k)
            reads |= l->in[k] == i;
        if (!reads)
            continue;
        ++readers;
        if (l->n_in != 1 || mdfi_layer_has_kind(l, MDFI_KIND_ALIAS))
            return 0;
        const mdfi_bquant *lq = input_quant(l);
        if (lq) {
            if (*have_q && !same_quant(q, lq))
                return 0;
            *q = *lq;
            *have_q = 1;
        } else if (mdfi_layer_has_kind(l, MDFI_KIND_MAXPOOL) && l->path != MDFI_PATH_FIXED) {
            if (!bit_readers(net, j, q, have_q, depth + 1))
                return 0;
        } else {
            return 0;
        }
    }
    return readers > 0 && *have_q;
}

/* Output bytes of a layer that writes bits: exact when we know no one reads
 * it as floats, else at least the float size (so a float reader of a forced
 * fusion reads the wrong values but never past the buffer). */
static size_t bits_out_bytes(const mdfi_bquant *q, const mdfi_layer *l, int known)
{
    size_t b = mdfi_btensor_words(q->planes, l->out_c, l->out_h, l->out_w) * sizeof(uint64_t);
    size_t f = mdfi_layer_outputs(l) * sizeof(float);
    return known || b > f ? b : f;
}

/* Marks the readers of layer i: binary convs take bits, maxpools run on bits. */
static void mark_readers(mdfi_net *net, int i, const mdfi_bquant *q, int known)
{
    for (int j = i + 1; j < net->n; ++j) {
        mdfi_layer *l = &net->layers[j];
        if (l->n_in != 1 || l->in[0] != i)
            continue;
        l->bits_in = 1;
        if (input_quant(l))
            continue;
        l->run = l->type->path[MDFI_PATH_BINARY];   /* its path stays the built one */
        l->bits_out = 1;
        l->bits_q = *q;
        l->out_bytes = bits_out_bytes(q, l, known);
        mark_readers(net, j, q, known);
    }
}

/* A binary conv writes bits when its activation is monotone (every Darknet
 * activation is: then the thresholds exist) and every reader takes bits. */
static void fuse_bits(mdfi_net *net)
{
    if (net->binary_fuse == 0)
        return;
    const int known = net->binary_fuse < 0;
    if (known && net->keep_outputs)
        return;   /* a fused output holds bit planes, not floats */
    for (int i = 0; i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        mdfi_bquant q;
        int have_q = 0;
        if (l->path != MDFI_PATH_BINARY || !mdfi_layer_has_kind(l, MDFI_KIND_CONV) ||
            !bit_readers(net, i, &q, &have_q, 0))
            continue;
        l->bits_out = 1;
        l->bits_q = q;
        l->out_bytes = bits_out_bytes(&q, l, known);
        mark_readers(net, i, &q, known);
    }
}

mdfi_status mdfi_pass_fuse(mdfi_net *net)
{
    /* start from the build's decisions: a failed prepare may be retried */
    for (int i = 0; i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        l->run = l->type->path[l->path];
        if (l->bits_out)
            l->out_bytes = 0;
        l->fused = l->bits_in = l->bits_out = 0;
        /* the caller reads an exit's classifier and predictor values after forward */
        l->keep = net->keep_outputs || net->marked[i] || mdfi_exits_branch_end(net, i) >= 0 ||
                  mdfi_layer_has_kind(l, MDFI_KIND_EXIT);
    }
    fuse_pools(net);
    fuse_bits(net);
    return MDFI_OK;
}
