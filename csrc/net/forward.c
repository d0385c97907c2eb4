/* Running a prepared network: the whole forward, or a part of it that a
 * later call resumes (early exits need both), and reading the outputs. */
#include <time.h>

#include "layers/exit.h"
#include "net/net.h"

/* Runs layer i (and the maxpool a fused conv stands for). */
static void run_one(mdfi_net *net, int i)
{
    const float *input = net->input;
    const mdfi_layer *l = &net->layers[i];
    mdfi_run_ctx ctx;
    ctx.in_bytes = NULL;
    for (int k = 0; k < l->n_in; ++k) {
        int src = l->in[k];
        if (src < 0)
            ctx.in_bytes = net->input_bytes;
        /* NULL: an alias of the caller's input (dropout first) */
        ctx.in[k] = src < 0 || !net->out[src] ? input : net->out[src];
        ctx.in_n[k] = src < 0 ? mdfi_net_input_size(net) : mdfi_layer_outputs(&net->layers[src]);
    }
    /* a fused conv writes its maxpool's output and stands for both */
    ctx.out = net->out[i + l->fused] ? net->out[i + l->fused] : (float *)ctx.in[0];
    ctx.scratch = net->scratch;
    ctx.pool = net->pool;
    ctx.gated = 0;
    if (net->profile) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        l->run->forward(l, &ctx);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        net->layer_ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                           (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    } else {
        l->run->forward(l, &ctx);
    }
    /* a gated output's second plane: bops / outputs (the first plane's
     * binary multiply-adds of one output) */
    net->layers[i].gated = ctx.gated;
    if (ctx.gated)
        net->bops += (double)ctx.gated * (l->bops / (double)mdfi_layer_outputs(l));
    for (int j = i; j <= i + l->fused; ++j) {
        net->ran_in[j] = net->run_id;
        net->macs += net->layers[j].macs;
        net->flops += net->layers[j].flops;
        net->bops += net->layers[j].bops;
    }
}

/* After an [exit] ran: its predictors' cost, and whether its branch runs. */
static int branch_runs(mdfi_net *net, const mdfi_layer *l)
{
    const mdfi_exit_spec *sp = l->spec;
    const float *v = net->out[l->index];
    for (int k = 0; k < MDFI_PREDICTORS; ++k)
        if (sp->has[k] && (sp->run >> k & 1u)) {
            net->macs += sp->predictor_macs;
            net->flops += 2 * sp->predictor_macs;
        }
    switch (net->policy) {
    case MDFI_POLICY_ENTROPY:
        return v[MDFI_PRED_ENTROPY] < sp->gate[MDFI_PRED_ENTROPY];
    case MDFI_POLICY_EXIT:
        return v[MDFI_PRED_EXIT] > sp->gate[MDFI_PRED_EXIT];
    default:
        return 1;   /* all, branchy (none never runs an [exit]) */
    }
}

/* After branch k's classifier ran: whether its exit fires. */
static int exit_fires(const mdfi_net *net, int k, int i)
{
    if (net->policy == MDFI_POLICY_ALL)
        return 0;
    const mdfi_exit_spec *sp = net->layers[net->exits[k]].spec;
    const float h = mdfi_exit_entropy(net->out[i], (int)mdfi_layer_outputs(&net->layers[i]));
    return h < sp->threshold;
}

/* Layers [from, to] of the current run, taking the exits the policy says. */
static void run_layers(mdfi_net *net, int from, int to)
{
    for (int i = from; i <= to; ++i) {
        const mdfi_layer *l = &net->layers[i];
        const int is_exit = mdfi_layer_has_kind(l, MDFI_KIND_EXIT);
        if (is_exit && net->policy == MDFI_POLICY_NONE) {
            i = mdfi_exits_branch_last(net, i);   /* not even the predictors */
            net->done = i + 1;
            continue;
        }
        run_one(net, i);
        if (is_exit && !branch_runs(net, l))
            i = mdfi_exits_branch_last(net, i);
        const int k = is_exit ? -1 : mdfi_exits_branch_end(net, i);
        if (k >= 0 && exit_fires(net, k, i)) {
            net->fired = k;
            net->done = net->n;   /* nothing is left to resume */
            return;
        }
        i += l->fused;
        net->done = i + 1;
    }
}

/* The first layer that reads the network's input as floats, or -1. */
static int float_reader(const mdfi_net *net)
{
    for (int i = 0; i < net->n; ++i)
        for (int k = 0; k < net->layers[i].n_in; ++k)
            if (net->layers[i].in[k] < 0 && !net->layers[i].takes_bytes)
                return i;
    return -1;
}

int mdfi_net_takes_bytes(const mdfi_net *net)
{
    return net && net->prepared && float_reader(net) < 0;
}

static mdfi_status start(mdfi_net *net, const float *input, const unsigned char *bytes, size_t n,
                         int last)
{
    if (!net || !(input || bytes))
        return MDFI_ERR_ARG;
    if (!net->prepared)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "prepare the network before forward");
    if (n != mdfi_net_input_size(net))
        return mdfi_net_fail(net, MDFI_ERR_SHAPE, "input has %zu values, the network takes "
                             "%d x %d x %d = %zu", n, net->c, net->h, net->w,
                             mdfi_net_input_size(net));
    if (last < -1 || last >= net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "forward until layer %d: the network has "
                             "layers 0..%d", last, net->n - 1);
    int i = bytes ? float_reader(net) : -1;
    if (i >= 0)
        return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "8-bit input: layer %d [%s] reads the "
                             "input as floats (a fixed-point first layer takes bytes)", i,
                             net->layers[i].type->name);
    net->input = input;
    net->input_bytes = bytes;
    net->done = 0;
    net->fired = -1;
    net->macs = net->flops = net->bops = 0;
    ++net->run_id;
    run_layers(net, 0, last < 0 ? net->n - 1 : last);
    net->ran = 1;
    return MDFI_OK;
}

mdfi_status mdfi_net_forward_until(mdfi_net *net, const float *input, size_t n, int last)
{
    return start(net, input, NULL, n, last);
}

mdfi_status mdfi_net_forward_bytes(mdfi_net *net, const unsigned char *input, size_t n, int last)
{
    return start(net, NULL, input, n, last);
}

mdfi_status mdfi_net_forward(mdfi_net *net, const float *input, size_t n)
{
    return start(net, input, NULL, n, -1);
}

mdfi_status mdfi_net_resume(mdfi_net *net, int last)
{
    if (!net)
        return MDFI_ERR_ARG;
    if (!net->ran)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "resume: no forward has run yet");
    if (last < 0 && net->done == net->n)
        return MDFI_OK;   /* to the end: nothing left */
    if (last < 0)
        last = net->n - 1;
    if (last >= net->n)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "resume until layer %d: the network has "
                             "layers 0..%d", last, net->n - 1);
    if (net->fired >= 0)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "resume until layer %d: the forward ended at "
                             "exit %d (layer %d)", last, net->fired, net->exits[net->fired]);
    if (last < net->done)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "resume until layer %d: layers 0..%d have "
                             "run already", last, net->done - 1);
    run_layers(net, net->done, last);
    return MDFI_OK;
}

int mdfi_net_done(const mdfi_net *net)
{
    return net && net->ran ? net->done : 0;
}

/* Whether layer index's output can be read now, else why not. */
static mdfi_status readable(const mdfi_net *net, int index)
{
    mdfi_net *m = (mdfi_net *)net;   /* only the error message changes */
    if (!net->ran)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "no forward has run yet");
    if (index >= net->done && net->fired < 0)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "layer %d has not run yet: this forward stopped "
                             "after layer %d", index, net->done - 1);
    if (net->ran_in[index] != net->run_id)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "layer %d did not run in the last forward: %s",
                             index, net->fired >= 0 ? "it left the network at an exit before it, "
                             "or its branch was skipped" : "its branch was skipped");
    if (net->layers[index].fused)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "layer %d is computed with the maxpool after it "
                             "and never stored; mark it as an output or set keep_outputs "
                             "before prepare to read it", index);
    /* after a whole run: outputs live to the end; after a part: those still
     * live at the step where it stopped */
    int ok = net->done == net->n ? net->last[index] == net->n
                                 : net->last[index] >= net->done - 1;
    if (!ok)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "layer %d's buffer was reused; set keep_outputs "
                             "before prepare to read it", index);
    return MDFI_OK;
}

mdfi_status mdfi_net_layer_output(const mdfi_net *net, int index, const float **data,
                                  size_t *count)
{
    if (!net || !data || !count || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    MDFI_CHECK(readable(net, index));
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
    if (!net)
        return MDFI_ERR_ARG;
    return mdfi_net_layer_output(net, mdfi_exits_result_layer(net), data, count);
}

mdfi_status mdfi_net_layer_gates(const mdfi_net *net, int index, long long *gated,
                                 long long *total)
{
    if (!net || !gated || !total || index < 0 || index >= net->n)
        return MDFI_ERR_ARG;
    const mdfi_layer *l = &net->layers[index];
    *gated = *total = 0;
    if (!l->gate)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "layer %d [%s] has no precision "
                             "gate (a [fracconv] with gate=1 has)", index, l->type->name);
    if (net->ran && net->ran_in[index] == net->run_id) {
        *gated = l->gated;
        *total = (long long)mdfi_layer_outputs(l);
    }
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
                             "read it with mdfi_net_layer_output", index, l->type->name);
    MDFI_CHECK(readable(net, index));
    *data = net->out[index];
    *count = mdfi_layer_outputs(l);
    *bits = l->q_out.bits;
    *frac = l->q_out.frac;
    return MDFI_OK;
}

