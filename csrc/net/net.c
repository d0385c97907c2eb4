/* Building a network from cfg text, the parameter source, options, prepare
 * and the queries on a built network.  (Passes: passes.c; memory plan:
 * plan.c; running: forward.c; boxes: net_detect.c.) */
#include "net/net.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "layers/fixed.h"

/* Keys Darknet reads only for training: accepted without a warning. */
static const char training_keys[] =
    "batch subdivisions momentum decay angle saturation exposure hue learning_rate burn_in "
    "max_batches policy steps scales step gamma power max_crop min_crop aspect flip mosaic "
    "letter_box adam B1 B2 eps clip center time_steps notruth random jitter ignore_thresh "
    "truth_thresh stopbackward noloss rescore max_delta smooth cutmix mixup blur track "
    "dontload dontloadscales flipped ema_alpha label_smooth_eps seen scale uc_normalizer beta1 "
    "onlyforward contrastive contrastive_jit_flip contrastive_color sgdr_cycle sgdr_mult "
    "max_epochs "
    /* AlexeyAB's xnor conv feeding another: its activation is dropped, which the
       reader's sign() cannot see */
    "bin_output";

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
    (*out)->binary_fuse = -1;
    (*out)->binary_kind = -1;
    (*out)->fuse_pool = 1;
    (*out)->winograd = -1;
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
    free(net->last);
    net->out = NULL;
    net->last = NULL;
    free(net->layer_ms);
    net->layer_ms = NULL;
    mdfi_net_free_detect(net);
    net->prepared = net->ran = net->done = 0;
}

static void free_layers(mdfi_net *net)
{
    for (int i = 0; i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        if (l->run && l->run->destroy)
            l->run->destroy(l);
        if (l->type && l->type->free_spec)
            l->type->free_spec(l->spec);
        else
            free(l->spec);
    }
    free(net->layers);
    free(net->marked);
    free(net->branch);
    free(net->exits);
    free(net->ran_in);
    net->layers = NULL;
    net->marked = NULL;
    net->branch = net->exits = NULL;
    net->ran_in = NULL;
    net->n = net->n_exits = 0;
}

void mdfi_net_free(mdfi_net *net)
{
    if (!net)
        return;
    unprepare(net);
    free_layers(net);
    mdfi_cfg_free(&net->cfg);
    free(net->weights_path);
    mdfi_params_close(net->params);
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

/* Darknet's recurrent layer types: out of scope, said so by name. */
static const char recurrent[] = "rnn gru lstm crnn conv_lstm";

static void warn_unused(mdfi_net *net, const mdfi_cfg_section *s)
{
    for (int i = 0; i < s->n_kv; ++i)
        if (s->kv[i].used <= 0 &&
            !mdfi_cfg_word_in(training_keys, s->kv[i].key))
            warn(net, "%s:%d: %s key '%s' in [%s] ignored%s", net->cfg.name, s->kv[i].line,
                 s->kv[i].used ? "repeated" : "unknown", s->kv[i].key, s->type,
                 s->kv[i].used ? " (the first counts, as in Darknet)" : "");
}

static mdfi_status parse_net_section(mdfi_net *net, mdfi_cfg_section *s)
{
    const mdfi_cfg *cfg = &net->cfg;
    if (strcmp(s->type, "net") && strcmp(s->type, "network"))
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: the first section must be [net], "
                             "not [%s]", cfg->name, s->line, s->type);
    int inputs;
    /* names= (the class names file) is read by the mdfi program (cli/names.c) */
    (void)mdfi_cfg_str(s, "names", NULL);
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "width", 0, &net->w, &net->err));
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "height", 0, &net->h, &net->err));
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "channels", 0, &net->c, &net->err));
    /* inputs counts only without an image shape, where Darknet's default h*w*c is 0
       (that product of unchecked values could overflow) */
    MDFI_CHECK(mdfi_cfg_int(cfg, s, "inputs", 0, &inputs, &net->err));
    if (net->w == 0 && net->h == 0 && net->c == 0 && inputs > 0) {
        net->c = inputs;   /* a non-image network: inputs x 1 x 1 */
        net->w = net->h = 1;
    }
    if (net->w < 1 || net->h < 1 || net->c < 1 || net->w > MDFI_LIMIT_NET_DIM ||
        net->h > MDFI_LIMIT_NET_DIM || net->c > MDFI_LIMIT_NET_DIM ||
        (long long)net->w * net->h * net->c > MDFI_LIMIT_TENSOR)
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
    net->marked = calloc((size_t)cfg->n_sec, 1);
    net->branch = calloc((size_t)cfg->n_sec, sizeof *net->branch);
    net->exits = calloc((size_t)cfg->n_sec, sizeof *net->exits);
    net->ran_in = calloc((size_t)cfg->n_sec, sizeof *net->ran_in);
    if (!net->layers || !net->marked || !net->branch || !net->exits || !net->ran_in)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    for (int i = 0; i + 1 < cfg->n_sec; ++i) {
        mdfi_cfg_section *s = &cfg->sec[i + 1];
        mdfi_layer *l = &net->layers[i];
        const mdfi_layer_type *type = mdfi_layer_type_find(s->type);
        if (!type) {
            int rec = mdfi_cfg_word_in(recurrent, s->type);
            return mdfi_net_fail(net, rec ? MDFI_ERR_UNSUPPORTED : MDFI_ERR_CFG, "%s:%d: %s "
                                 "section [%s] (layer %d)", cfg->name, s->line,
                                 rec ? "recurrent layers are not supported:" : "unknown",
                                 s->type, i);
        }
        net->n = i + 1;
        l->type = type;
        l->index = i;
        l->line = s->line;
        l->n_in = 1;
        l->in[0] = mdfi_exits_default_input(net, i);
        l->activation = "";
        const mdfi_layer *prev = l->in[0] >= 0 ? &net->layers[l->in[0]] : NULL;
        l->in_c = prev ? prev->out_c : net->c;
        l->in_h = prev ? prev->out_h : net->h;
        l->in_w = prev ? prev->out_w : net->w;
        mdfi_parse_ctx ctx = {cfg, net->layers, i, net->c, net->h, net->w};
        MDFI_CHECK(type->parse(l, s, &ctx, &net->err));
        if (!l->macs)   /* a float layer */
            l->macs = l->flops / 2;
        MDFI_CHECK(mdfi_exits_track(net, i));
        MDFI_CHECK(mdfi_pass_select(net, s, i));
        warn_unused(net, s);
    }
    if (net->n == 0)
        return mdfi_net_fail(net, MDFI_ERR_CFG, "%s: no layers after [net]", cfg->name);
    return mdfi_exits_check(net);
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

static int is_fixed(const mdfi_net *net)
{
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].path == MDFI_PATH_FIXED)
            return 1;
    return 0;
}

/* A Darknet file's size must be the cfg's floats exactly: a mismatch is
 * reported at once and names the layer. */
static mdfi_status check_darknet(mdfi_net *net, const mdfi_params *src, const char *path)
{
    const long long size = mdfi_params_bytes_left(src);
    long long need = 0;
    for (int i = 0; i < net->n; ++i) {
        need += (long long)net->layers[i].n_params * 4;
        if (need > size)
            return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s: too short for %s: %lld bytes, "
                                 "ran out at layer %d [%s] (needs %lld bytes up to it)", path,
                                 net->cfg.name, size, i, net->layers[i].type->name, need);
    }
    if (need < size)
        return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s: too long for %s: %lld bytes left "
                             "after the last layer (wrong cfg for these weights?)", path,
                             net->cfg.name, size - need);
    return MDFI_OK;
}

/* A .qweights file was made for this cfg: its layer count, and a record
 * only for layers whose variant loads one (each checks its own in load). */
static mdfi_status check_qweights(mdfi_net *net, const mdfi_params *src, const char *path)
{
    if (mdfi_params_layers(src) != net->n)
        return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s was made for a cfg of %d layers; %s has "
                             "%d", path, mdfi_params_layers(src), net->cfg.name, net->n);
    for (int i = 0; i < mdfi_params_records(src); ++i) {
        const int at = mdfi_params_record_at(src, i)->layer;
        const mdfi_layer *l = &net->layers[at];
        if (l->path != MDFI_PATH_FIXED || !l->run->load)
            return mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s has weights for layer %d, but in %s "
                                 "layer %d is a %s%s layer", path, at, net->cfg.name, at,
                                 l->path == MDFI_PATH_FIXED ? "fixed-point " : "float ",
                                 l->type->name);
    }
    return MDFI_OK;
}

/* Opens the parameter source once and checks it against the cfg; prepare
 * reads it layer by layer and closes it. */
mdfi_status mdfi_net_load_weights(mdfi_net *net, const char *path)
{
    if (!net || !path)
        return MDFI_ERR_ARG;
    if (!net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "load a cfg before the weights");
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "weights must be loaded before prepare");
    mdfi_params *src;
    MDFI_CHECK(mdfi_params_open(path, &src, &net->err));
    const int fixed = is_fixed(net);
    mdfi_status st = MDFI_OK;
    if (mdfi_params_kind_of(src) == MDFI_PARAMS_QWEIGHTS)
        st = !fixed ? mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s is a quantized weights file but "
                                    "%s has no fixed-point formats: load the cfg written with "
                                    "it by weights_tools quantize", path, net->cfg.name)
                    : check_qweights(net, src, path);
    else
        st = fixed ? mdfi_net_fail(net, MDFI_ERR_WEIGHTS, "%s has fixed-point formats (fixed_* "
                                   "keys) but %s is not a quantized weights file: load the "
                                   ".qweights written by weights_tools quantize", net->cfg.name,
                                   path)
                   : check_darknet(net, src, path);
    char *p = st == MDFI_OK ? mdfi_strdup(path) : NULL;
    if (st == MDFI_OK && !p)
        st = mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    if (st != MDFI_OK) {
        mdfi_params_close(src);
        return st;
    }
    free(net->weights_path);
    net->weights_path = p;
    mdfi_params_close(net->params);
    net->params = src;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_threads(mdfi_net *net, int threads)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set threads before prepare");
    if (threads < 1 || threads > MDFI_LIMIT_THREADS)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "threads must be 1.."
                             MDFI_LIMIT_STR(MDFI_LIMIT_THREADS) ", got %d", threads);
#if !MDFI_THREADS
    threads = 1;
#endif
    net->threads = threads;
    return MDFI_OK;
}

void mdfi_options_default(mdfi_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->threads = 1;
    opt->binary_fuse = -1;
    opt->fuse_pool = 1;
    opt->winograd = -1;
}

static mdfi_status parse_kernel(mdfi_net *net, const char *isa, int *forced, mdfi_isa *out)
{
    *forced = 0;
    if (!isa || !*isa || !strcmp(isa, "auto"))
        return MDFI_OK;
    if (mdfi_isa_parse(isa, out))
        return mdfi_net_fail(net, MDFI_ERR_ARG, "unknown kernel '%s' (ref, avx2, avx512, neon "
                             "or auto)", isa);
    *forced = 1;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_options(mdfi_net *net, const mdfi_options *opt)
{
    if (!net || !opt)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set options before prepare");
    int forced, bkind = -1;
    mdfi_isa isa = net->isa;
    MDFI_CHECK(parse_kernel(net, opt->kernel, &forced, &isa));
    if (opt->binary_kernel && *opt->binary_kernel && strcmp(opt->binary_kernel, "auto")) {
        mdfi_bkind k;
        if (mdfi_bgemm_kind_parse(opt->binary_kernel, &k))
            return mdfi_net_fail(net, MDFI_ERR_ARG, "unknown binary kernel '%s' (ref, popcnt, "
                                 "avx2, avx512vpopcnt, neon or auto)", opt->binary_kernel);
        bkind = (int)k;
    }
    if (opt->binary_fuse < -1 || opt->binary_fuse > 1 || opt->fuse_pool < 0 ||
        opt->fuse_pool > 1 || opt->winograd < -1 || opt->winograd > 3)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "binary_fuse must be -1, 0 or 1, winograd -1, "
                             "0, 1 or 2 and fuse_pool 0 or 1 (got %d, %d, %d)", opt->binary_fuse,
                             opt->winograd, opt->fuse_pool);
    MDFI_CHECK(mdfi_net_set_threads(net, opt->threads));
    net->isa_forced = forced;
    net->isa = isa;
    net->binary_kind = bkind;
    net->binary_fuse = opt->binary_fuse;
    net->fuse_pool = opt->fuse_pool;
    net->winograd = opt->winograd;
    net->keep_outputs = opt->keep_outputs != 0;
    return MDFI_OK;
}

mdfi_status mdfi_net_get_options(const mdfi_net *net, mdfi_options *opt)
{
    if (!net || !opt)
        return MDFI_ERR_ARG;
    mdfi_options_default(opt);
    opt->threads = net->threads;
    opt->kernel = net->isa_forced ? mdfi_isa_name(net->isa) : "auto";
    opt->binary_kernel =
        net->binary_kind >= 0 ? mdfi_bgemm_kind_name((mdfi_bkind)net->binary_kind) : "auto";
    opt->binary_fuse = net->binary_fuse;
    opt->fuse_pool = net->fuse_pool;
    opt->winograd = net->winograd;
    opt->keep_outputs = net->keep_outputs;
    return MDFI_OK;
}

mdfi_status mdfi_net_set_kernel(mdfi_net *net, const char *isa)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "set the kernel before prepare");
    return parse_kernel(net, isa, &net->isa_forced, &net->isa);
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

mdfi_status mdfi_net_mark_output(mdfi_net *net, int index)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "mark outputs before prepare");
    if (index < 0 || index >= net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "no layer %d (the network has %d)", index,
                             net->n);
    net->marked[index] = 1;
    return MDFI_OK;
}

static mdfi_status choose_isa(mdfi_net *net)
{
    if (!net->isa_forced)
        net->isa = mdfi_isa_best();
    if (!mdfi_isa_available(net->isa))
        return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "kernel '%s' is not available on "
                             "this CPU/build", mdfi_isa_name(net->isa));
    return MDFI_OK;
}

/* Loads and prepares layer by layer, so only one layer's unpacked weights
 * are in memory at a time. */
static mdfi_status load_and_prepare(mdfi_net *net)
{
    mdfi_status st = MDFI_OK;
    if (!net->params && net->weights_path)   /* a retry after a failed prepare */
        st = mdfi_params_open(net->weights_path, &net->params, &net->err);
    mdfi_params *src = net->params;
    mdfi_prepare_ctx ctx = {net->isa,      net->threads,    net->binary_kind,
                            net->winograd, net->isa_forced, src};
    /* where each layer's floats start: a share_index layer reads its source's again */
    long long *at = calloc((size_t)net->n, sizeof *at), back = 0;
    if (!at)
        st = mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MDFI_OK && i < net->n; ++i) {
        mdfi_layer *l = &net->layers[i];
        if (src) {
            mdfi_params_at(src, i, l->type->name);
            back = at[i] = mdfi_params_tell(src);
            if (l->share_from)
                st = mdfi_params_seek(src, at[l->share_from - 1], &net->err);
        }
        if (st == MDFI_OK && l->run->load)
            st = l->run->load(l, src, &net->err);
        if (st == MDFI_OK && l->run->prepare)
            st = l->run->prepare(l, &ctx, &net->err);
        if (st == MDFI_OK && src && l->share_from)
            st = mdfi_params_seek(src, back, &net->err);
    }
    free(at);
    if (st == MDFI_OK && src && mdfi_params_kind_of(src) == MDFI_PARAMS_DARKNET)
        st = mdfi_params_finish(src, &net->err);   /* every float read, none left */
    mdfi_params_close(net->params);   /* read once */
    net->params = NULL;
    return st;
}

static mdfi_status alloc_scratch(mdfi_net *net)
{
    size_t bytes = 64, lead = 0;   /* every thread's block; the calling thread's */
    for (const mdfi_layer *l = net->layers; l < net->layers + net->n; ++l) {
        if (l->scratch_bytes > bytes)
            bytes = l->scratch_bytes;
        if (l->scratch_bytes + l->lead_bytes > lead)
            lead = l->scratch_bytes + l->lead_bytes;
    }
    net->scratch = calloc((size_t)net->threads, sizeof *net->scratch);
    if (!net->scratch)
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory");
    for (int t = 0; t < net->threads; ++t)
        if (!(net->scratch[t] = mdfi_aligned_alloc(t || lead < bytes ? bytes : lead)))
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
    if (st == MDFI_OK)
        st = mdfi_pass_fuse(net);
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
    info->type = l->type->name;
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
    info->bops = l->bops;
    info->macs = l->macs;
    info->gate = l->gate;
    info->line = l->line;
    info->batch_normalize = l->batch_normalize;
    info->xnor = l->xnor;
    return MDFI_OK;
}

/* ---- fixed point and profiling ------------------------------------------- */

int mdfi_net_is_fixed(const mdfi_net *net)
{
    return net ? is_fixed(net) : 0;
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
    const int fixed = l->path == MDFI_PATH_FIXED;
    fmt->kernel = fixed && l->run->kernel_name ? l->run->kernel_name(l) : "";
    fmt->w_scale = fixed ? mdfi_fixed_weight_scale(l) : 0;
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
