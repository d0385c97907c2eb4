/* Running a prepared network: the whole forward, or a part of it that a
 * later call resumes (early exits need both), and reading the outputs. */
#include <time.h>

#include "net/net.h"

/* Layers [from, to] of the current run. */
static void run_layers(mdfi_net *net, int from, int to)
{
    const float *input = net->input;
    for (int i = from; i <= to; ++i) {
        const mdfi_layer *l = &net->layers[i];
        mdfi_run_ctx ctx;
        for (int k = 0; k < l->n_in; ++k) {
            int src = l->in[k];
            /* NULL: an alias of the caller's input (dropout first) */
            ctx.in[k] = src < 0 || !net->out[src] ? input : net->out[src];
            ctx.in_n[k] = src < 0 ? mdfi_net_input_size(net)
                                  : mdfi_layer_outputs(&net->layers[src]);
        }
        /* a fused conv writes its maxpool's output and stands for both */
        ctx.out = net->out[i + l->fused] ? net->out[i + l->fused] : (float *)ctx.in[0];
        ctx.scratch = net->scratch;
        ctx.pool = net->pool;
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
        i += l->fused;
        net->done = i + 1;
    }
}

mdfi_status mdfi_net_forward_until(mdfi_net *net, const float *input, size_t n, int last)
{
    if (!net || !input)
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
    net->input = input;
    net->done = 0;
    run_layers(net, 0, last < 0 ? net->n - 1 : last);
    net->ran = 1;
    return MDFI_OK;
}

mdfi_status mdfi_net_forward(mdfi_net *net, const float *input, size_t n)
{
    return mdfi_net_forward_until(net, input, n, -1);
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
    if (index >= net->done)
        return mdfi_net_fail(m, MDFI_ERR_ARG, "layer %d has not run yet: this forward stopped "
                             "after layer %d", index, net->done - 1);
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
    return mdfi_net_layer_output(net, net ? net->n - 1 : 0, data, count);
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

