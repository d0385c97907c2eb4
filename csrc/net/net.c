/* Building a network from cfg text, loading weights, prepare, forward. */
#include "net/net.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "layers/fixed.h"
#include "layers/yolo.h"

/* Keys Darknet reads only for training: accepted without a warning. */
static const char *const training_keys[] = {
    "batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
    "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "step", "gamma",
    "power", "max_crop", "min_crop", "aspect", "flip", "mosaic", "letter_box", "adam", "B1",
    "B2", "eps", "clip", "center", "time_steps", "notruth", "random", "jitter",
    "ignore_thresh", "truth_thresh", "stopbackward", "noloss", "rescore", "max_delta",
    "smooth", "cutmix", "mixup", "blur", "track", "dontload", "dontloadscales", "flipped"};

mdfi_status mdfi_net_fail(mdfi_net *net, mdfi_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(net->err.msg, sizeof net->err.msg, fmt, ap);
    va_end(ap);
    return st;
}

static void warn(mdfi_net *net, const char *fmt, ...) MDFI_PRINTF(2, 3);
static void warn(mdfi_net *net, const char *fmt, ...)
{
    char line[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    if (net->warn_len + (size_t)n + 1 > net->warn_cap) {
        size_t cap = (net->warn_cap + (size_t)n + 1) * 2;
        char *w = realloc(net->warnings, cap);
        if (!w)
            return;   /* warnings are best effort */
        net->warnings = w;
        net->warn_cap = cap;
    }
    memcpy(net->warnings + net->warn_len, line, (size_t)n + 1);
    net->warn_len += (size_t)n;
}

mdfi_status mdfi_net_new(mdfi_net **out)
{
    if (!out)
        return MDFI_ERR_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return MDFI_ERR_NOMEM;
    (*out)->threads = 1;
    return MDFI_OK;
}

static void unprepare(mdfi_net *net)
{
    mdfi_pool_free(net->pool);
    net->pool = NULL;
    for (int t = 0; net->scratch && t < net->threads; ++t)
        mdfi_aligned_free(net->scratch[t]);
    free(net->scratch);
    net->scratch = NULL;
    mdfi_aligned_free(net->arena);
    net->arena = NULL;
    free(net->out);
    free(net->readable);
    net->out = NULL;
    net->readable = NULL;
    free(net->layer_ms);
    net->layer_ms = NULL;
    mdfi_net_free_detect(net);
    net->prepared = net->ran = 0;
}

static void free_layers(mdfi_net *net)
{
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].ops && net->layers[i].ops->destroy)
            net->layers[i].ops->destroy(&net->layers[i]);
        else
            free(net->layers[i].priv);
    free(net->layers);
    net->layers = NULL;
    net->n = 0;
}

void mdfi_net_free(mdfi_net *net)
{
    if (!net)
        return;
    unprepare(net);
    free_layers(net);
    mdfi_cfg_free(&net->cfg);
    free(net->weights_path);
    mdfi_qweights_free(net->qw);
    free(net->warnings);
    free(net);
}

const char *mdfi_net_last_error(const mdfi_net *net)
{
    return net ? net->err.msg : "no network";
}

const char *mdfi_net_warnings(const mdfi_net *net)
{
    return net && net->warnings ? net->warnings : "";
}

static int is_training_key(const char *key)
{
    for (size_t i = 0; i < sizeof training_keys / sizeof training_keys[0]; ++i)
        if (!strcmp(training_keys[i], key))
            return 1;
    return 0;
}

static void warn_unused(mdfi_net *net, const mdfi_cfg_section *s)
{
    for (int i = 0; i < s->n_kv; ++i)
        if (!s->kv[i].used && !is_training_key(s->kv[i].key))
            warn(net, "%s:%d: unknown key '%s' in [%s] ignored", net->cfg.name,
                 s->kv[i].line, s->kv[i].key, s->type);
}

static mdfi_status parse_net_section(mdfi_net *net, mdfi_cfg_section *s)
{
    const mdfi_cfg *cfg = &net->cfg;
    if (strcmp(s->type, "net") && strcmp(s->type, "network"))
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: the first section must be [net], "
                             "not [%s]", cfg->name, s->line, s->type);
    int inputs;
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "width", 0, &net->w, &net->err));
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "height", 0, &net->h, &net->err));
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "channels", 0, &net->c, &net->err));
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "inputs", net->w * net->h * net->c, &inputs, &net->err));
    if (net->w == 0 && net->h == 0 && net->c == 0 && inputs > 0) {
        net->c = inputs;   /* a non-image network: inputs x 1 x 1 */
        net->w = net->h = 1;
    }
    if (net->w < 1 || net->h < 1 || net->c < 1 || net->w > 65536 || net->h > 65536 ||
        net->c > 65536 || (long long)net->w * net->h * net->c > (1LL << 30))
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: [net] needs sane width, height and "
                             "channels (got %d x %d x %d)", cfg->name, s->line, net->w, net->h,
                             net->c);
    warn_unused(net, s);
    return MDFI_OK;
}

static mdfi_status build(mdfi_net *net)
{
    mdfi_cfg *cfg = &net->cfg;
    MDFI_CHECK(parse_net_section(net, &cfg->sec[0]));
    net->layers = calloc((size_t)cfg->n_sec, sizeof *net->layers);
    if (!net->layers)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    for (int i = 0; i + 1 < cfg->n_sec; ++i) {
        mdfi_cfg_section *s = &cfg->sec[i + 1];
        mdfi_layer *l = &net->layers[i];
        const mdfi_layer_ops *ops = mdfi_layer_find(s->type);
        if (!ops)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: unknown section [%s] (layer %d)",
                                 cfg->name, s->line, s->type, i);
        /* fixed_* keys (or a head reading integers) pick the fixed-point table */
        MDFI_CHECK(mdfi_fixed_select(cfg, s, net->layers, i, &ops, &net->err));
        net->n = i + 1;
        l->ops = ops;
        l->index = i;
        l->line = s->line;
        l->n_in = 1;
        l->in[0] = i - 1;
        l->activation = "";
        const mdfi_layer *prev = i ? &net->layers[i - 1] : NULL;
        l->in_c = prev ? prev->out_c : net->c;
        l->in_h = prev ? prev->out_h : net->h;
        l->in_w = prev ? prev->out_w : net->w;
        mdfi_parse_ctx ctx = {cfg, net->layers, i, net->c, net->h, net->w};
        MDFI_CHECK(ops->parse(l, s, &ctx, &net->err));
        MDFI_CHECK(mdfi_fixed_bind(cfg, s, net->layers, i, &net->err));
        warn_unused(net, s);
    }
    if (net->n == 0)
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s: no layers after [net]", cfg->name);
    return MDFI_OK;
}

mdfi_status mdfi_net_load_cfg_text(mdfi_net *net, const char *text, const char *name)
{
    if (!net || !text)
        return MDFI_ERR_ARG;
    if (net->n || net->cfg.n_sec)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "a cfg is already loaded on this network");
    MDFI_CHECK(mdfi_cfg_parse(text, name ? name : "<cfg>", &net->cfg, &net->err));
    mdfi_status st = build(net);
    if (st != MDFI_OK) {
        free_layers(net);
        mdfi_cfg_free(&net->cfg);
    }
    return st;
}

mdfi_status mdfi_net_load_cfg(mdfi_net *net, const char *path)
{
    if (!net || !path)
        return MDFI_ERR_ARG;
    char *text;
    MDFI_CHECK(mdfi_read_text_file(path, &text, &net->err));
    mdfi_status st = mdfi_net_load_cfg_text(net, text, path);
    free(text);
    return st;
}

/* Checks the file's size against the cfg now, so a mismatch is reported at
 * once and names the layer; the floats are read layer by layer in prepare. */
mdfi_status mdfi_net_load_weights(mdfi_net *net, const char *path)
{
    if (!net || !path)
        return MDFI_ERR_ARG;
    if (!net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "load a cfg before the weights");
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "weights must be loaded before prepare");
    int fixed = mdfi_fixed_net(net->layers, net->n);
    if (mdfi_qweights_sniff(path)) {
        /* quantized weights: checked whole (CRC, records against the cfg) now */
        mdfi_qweights *q;
        if (!fixed)
            return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s is a quantized weights file but "
                                 "%s has no fixed-point formats: load the cfg written with it "
                                 "by weights_tools quantize", path, net->cfg.name);
        MDFI_CHECK(mdfi_qweights_open(path, &q, &net->err));
        mdfi_status qst = mdfi_fixed_check_weights(net->layers, net->n, net->cfg.name, q,
                                                   &net->err);
        if (qst != MDFI_OK) {
            mdfi_qweights_free(q);
            return qst;
        }
        mdfi_qweights_free(net->qw);
        net->qw = q;
        free(net->weights_path);
        net->weights_path = NULL;
        return MDFI_OK;
    }
    if (fixed)
        return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s has fixed-point formats (fixed_* keys) "
                             "but %s is not a quantized weights file: load the .qweights written "
                             "by weights_tools quantize", net->cfg.name, path);
    mdfi_weights_reader r;
    mdfi_status st = mdfi_weights_open(&r, path, &net->err);
    long long need = r.pos;
    for (int i = 0; st == MDFI_OK && i < net->n; ++i) {
        need += (long long)net->layers[i].n_params * 4;
        if (need > r.size)
            st = mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s: too short for %s: %lld bytes, "
                               "ran out at layer %d [%s] (needs %lld bytes up to it)", path,
                               net->cfg.name, r.size, i, net->layers[i].ops->name, need);
    }
    if (st == MDFI_OK && need < r.size)
        st = mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s: too long for %s: %lld bytes left after "
                           "the last layer (wrong cfg for these weights?)", path,
                           net->cfg.name, r.size - need);
    mdfi_weights_close(&r);
    if (st != MDFI_OK)
        return st;
    char *p = malloc(strlen(path) + 1);
    if (!p)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    strcpy(p, path);
    free(net->weights_path);
    net->weights_path = p;
    mdfi_qweights_free(net->qw);
    net->qw = NULL;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_threads(mdfi_net *net, int threads)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set threads before prepare");
    if (threads < 1 || threads > 256)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "threads must be 1..256, got %d", threads);
#if !MDFI_THREADS
    threads = 1;
#endif
    net->threads = threads;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_kernel(mdfi_net *net, const char *isa)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set the kernel before prepare");
    if (!isa || !strcmp(isa, "auto")) {
        net->isa_forced = 0;
        return MDFI_OK;
    }
    if (mdfi_isa_parse(isa, &net->isa))
        return mdfi_net_fail(net, MDFI_ERR_ARG, "unknown kernel '%s' (ref, avx2, avx512, "
                             "neon or auto)", isa);
    net->isa_forced = 1;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_keep_outputs(mdfi_net *net, int keep)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set keep_outputs before prepare");
    net->keep_outputs = keep != 0;
    return MDFI_OK;
}

static mdfi_status choose_isa(mdfi_net *net)
{
    const char *env = getenv("MDFI_KERNEL");
    if (!net->isa_forced && env && *env && strcmp(env, "auto")) {
        if (mdfi_isa_parse(env, &net->isa))
            return mdfi_net_fail(net, MDFI_ERR_ARG, "MDFI_KERNEL=%s is not a kernel (ref, "
                                 "avx2, avx512, neon or auto)", env);
        net->isa_forced = 1;
    }
    if (!net->isa_forced)
        net->isa = mdfi_isa_best();
    if (!mdfi_isa_available(net->isa))
        return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "kernel '%s' is not available on "
                             "this CPU/build", mdfi_isa_name(net->isa));
    return MDFI_OK;
}

/* Marks the float convs whose output only the next layer, a [maxpool] with
 * disjoint windows, reads (and the caller cannot: not kept, last or a head)
 * to run fused with it (mdfi_layer.fused). */
static void mark_fused(mdfi_net *net)
{
    for (int i = 0; i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        int ok = !net->keep_outputs && i + 1 < net->n &&
                 l->ops == &mdfi_convolutional_ops && l[1].ops == &mdfi_maxpool_ops &&
                 l[1].stride >= l[1].size;   /* overlapping windows: bands would recompute */
        for (int j = i + 1; ok && j < net->n; ++j)
            for (int k = 0; k < net->layers[j].n_in; ++k)
                ok &= net->layers[j].in[k] != i || (j == i + 1 && net->layers[j].n_in == 1);
        l->fused = ok;
    }
}

/* Loads and prepares layer by layer, so only one layer's unpacked weights
 * are in memory at a time. */
static mdfi_status load_and_prepare(mdfi_net *net)
{
    mdfi_weights_reader r;
    mdfi_weights_reader *rp = NULL;
    mdfi_status st = MDFI_OK;
    if (net->weights_path) {
        st = mdfi_weights_open(&r, net->weights_path, &net->err);
        rp = &r;
    }
    mdfi_prepare_ctx ctx = {net->isa, net->threads, net->keep_outputs, rp};
    for (int i = 0; st == MDFI_OK && i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        if (rp) {
            r.layer = i;
            r.layer_type = l->ops->name;
        }
        if (mdfi_layer_is_fixed(l))
            st = mdfi_fixed_load(l, net->qw, &net->err);
        else if (l->ops->load)
            st = l->ops->load(l, rp, &net->err);
        if (st == MDFI_OK && l->ops->prepare)
            st = l->ops->prepare(l, &ctx, &net->err);
    }
    if (st == MDFI_OK && rp)
        st = mdfi_weights_finish(rp, &net->err);
    if (rp)
        mdfi_weights_close(rp);
    return st;
}

static mdfi_status alloc_scratch(mdfi_net *net)
{
    size_t bytes = 64;
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].scratch_bytes > bytes)
            bytes = net->layers[i].scratch_bytes;
    net->scratch = calloc((size_t)net->threads, sizeof *net->scratch);
    if (!net->scratch)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    for (int t = 0; t < net->threads; ++t)
        if (!(net->scratch[t] = mdfi_aligned_alloc(bytes)))
            return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory for %zu bytes of "
                                 "scratch", bytes);
    return MDFI_OK;
}

mdfi_status mdfi_net_prepare(mdfi_net *net)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (!net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "load a cfg before prepare");
    if (net->prepared)
        return MDFI_OK;
    mdfi_status st = choose_isa(net);
    mark_fused(net);
    if (st == MDFI_OK)
        st = load_and_prepare(net);
    if (st == MDFI_OK)
        st = mdfi_net_plan(net);
    if (st == MDFI_OK)
        st = alloc_scratch(net);
    if (st == MDFI_OK && !(net->layer_ms = calloc((size_t)net->n, sizeof *net->layer_ms)))
        st = mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    if (st == MDFI_OK)
        st = mdfi_pool_new(net->threads, &net->pool, &net->err);
    if (st == MDFI_OK)
        st = mdfi_net_prepare_detect(net);
    if (st != MDFI_OK) {
        unprepare(net);
        return st;
    }
    net->prepared = 1;
    return MDFI_OK;
}

mdfi_status mdfi_net_forward(mdfi_net *net, const float *input, size_t n)
{
    if (!net || !input)
        return MDFI_ERR_ARG;
    if (!net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "prepare the network before forward");
    if (n != mdfi_net_input_size(net))
        return mdfi_net_fail(net, MDFI_ERR_SHAPE, "input has %zu values, the network takes "
                             "%d x %d x %d = %zu", n, net->c, net->h, net->w,
                             mdfi_net_input_size(net));
    net->input = input;
    for (int i = 0; i < net->n; ++i) {
        const mdfi_layer *l = &net->layers[i];
        mdfi_run_ctx ctx;
        for (int k = 0; k < l->n_in; ++k) {
            int src = l->in[k];
            /* NULL: an alias of the caller's input (dropout first) */
            ctx.in[k] = src < 0 || !net->out[src] ? input : net->out[src];
            ctx.in_n[k] = src < 0 ? n : mdfi_layer_outputs(&net->layers[src]);
        }
        /* a fused conv writes its maxpool's output and stands for both */
        ctx.out = net->out[i + l->fused] ? net->out[i + l->fused] : (float *)ctx.in[0];
        ctx.scratch = net->scratch;
        ctx.pool = net->pool;
        if (net->profile) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            l->ops->forward(l, &ctx);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            net->layer_ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                               (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        } else {
            l->ops->forward(l, &ctx);
        }
        i += l->fused;
    }
    net->ran = 1;
    return MDFI_OK;
}

size_t mdfi_net_input_size(const mdfi_net *net)
{
    return net ? (size_t)net->c * net->h * net->w : 0;
}

mdfi_status mdfi_net_input_shape(const mdfi_net *net, mdfi_shape *shape)
{
    if (!net || !shape || !net->n)
        return MDFI_ERR_ARG;
    shape->c = net->c;
    shape->h = net->h;
    shape->w = net->w;
    return MDFI_OK;
}

const char *mdfi_net_kernel_name(const mdfi_net *net)
{
    return net && net->prepared ? mdfi_isa_name(net->isa) : "";
}

int mdfi_net_threads(const mdfi_net *net)
{
    return net ? net->threads : 0;
}

size_t mdfi_net_arena_bytes(const mdfi_net *net)
{
    return net ? net->arena_floats * sizeof(float) : 0;
}

size_t mdfi_net_weight_bytes(const mdfi_net *net)
{
    return net ? net->weight_bytes : 0;
}

int mdfi_net_num_layers(const mdfi_net *net)
{
    return net ? net->n : 0;
}

mdfi_status mdfi_net_layer_info(const mdfi_net *net, int index, mdfi_layer_info *info)
{
    if (!net || !info || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    const mdfi_layer *l = &net->layers[index];
    memset(info, 0, sizeof *info);
    info->type = l->ops->name;
    info->in_c = l->in_c;
    info->in_h = l->in_h;
    info->in_w = l->in_w;
    info->out_c = l->out_c;
    info->out_h = l->out_h;
    info->out_w = l->out_w;
    info->filters = l->filters;
    info->size = l->size;
    info->stride = l->stride;
    info->groups = l->groups;
    info->pad = l->pad;
    info->activation = l->activation ? l->activation : "";
    info->flops = l->flops;
    info->line = l->line;
    info->batch_normalize = l->batch_normalize;
    info->xnor = l->xnor;
    return MDFI_OK;
}

mdfi_status mdfi_net_layer_output(const mdfi_net *net, int index, const float **data,
                                  size_t *count)
{
    if (!net || !data || !count || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    if (!net->ran)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "no forward has run yet");
    if (!net->readable[index])
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d's buffer was reused; "
                             "set keep_outputs before prepare to read it", index);
    if (net->layers[index].q_out.bits)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d holds int%d fixed-point "
                             "values; read them with mdfi_net_layer_output_int", index,
                             net->layers[index].q_out.bits);
    if (net->layers[index].out_bytes)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d writes packed bits for "
                             "the next binary layer; set keep_outputs before prepare to read "
                             "it as floats", index);
    *data = net->out[index] ? net->out[index] : net->input;
    *count = mdfi_layer_outputs(&net->layers[index]);
    return MDFI_OK;
}

mdfi_status mdfi_net_output(const mdfi_net *net, const float **data, size_t *count)
{
    return mdfi_net_layer_output(net, net ? net->n - 1 : 0, data, count);
}

/* ---- fixed point and profiling ------------------------------------------- */

int mdfi_net_is_fixed(const mdfi_net *net)
{
    return net ? mdfi_fixed_net(net->layers, net->n) : 0;
}

mdfi_status mdfi_net_layer_format(const mdfi_net *net, int index, mdfi_layer_format *fmt)
{
    if (!net || !fmt || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    const mdfi_layer *l = &net->layers[index];
    int gemm = l->q_w.bits != 0;
    fmt->out_bits = l->q_out.bits;
    fmt->out_frac = l->q_out.frac;
    fmt->in_bits = l->q_in.bits;
    fmt->in_frac = l->q_in.frac;
    fmt->w_bits = gemm ? l->q_w.bits : 0;
    fmt->w_frac = gemm ? l->q_w.frac : 0;
    fmt->kernel = mdfi_fixed_kernel_name(l);
    fmt->w_scale = mdfi_fixed_weight_scale(l);
    return MDFI_OK;
}

mdfi_status mdfi_net_layer_output_int(const mdfi_net *net, int index, const void **data,
                                      size_t *count, int *bits, int *frac)
{
    if (!net || !data || !count || !bits || !frac || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    if (!net->ran)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "no forward has run yet");
    const mdfi_layer *l = &net->layers[index];
    if (!l->q_out.bits)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d [%s] has a float output; "
                             "read it with mdfi_net_layer_output", index, l->ops->name);
    if (!net->readable[index])
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d's buffer was reused; "
                             "set keep_outputs before prepare to read it", index);
    *data = net->out[index];
    *count = mdfi_layer_outputs(l);
    *bits = l->q_out.bits;
    *frac = l->q_out.frac;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_profile(mdfi_net *net, int on)
{
    if (!net)
        return MDFI_ERR_ARG;
    net->profile = on != 0;
    return MDFI_OK;
}

double mdfi_net_layer_time(const mdfi_net *net, int index)
{
    if (!net || !net->layer_ms || index < 0 || index >= net->n || !net->ran)
        return -1.0;
    return net->layer_ms[index];
}
