/* Early exits: the branch wiring checked at build, the policies, and the
 * queries on exits and on the exit a forward took (docs/early-exit.md).  The
 * decisions themselves are made while running (net/forward.c). */
#include <string.h>

#include "layers/exit.h"
#include "net/net.h"

static const char policy_names[][18] = {"none", "all", "branchy", "entropy-predictor",
                                        "exit-predictor"};
#define N_POLICIES (int)(sizeof policy_names / sizeof policy_names[0])

static const mdfi_exit_spec *spec_at(const mdfi_net *net, int layer)
{
    return net->layers[layer].spec;
}

static int is_exit(const mdfi_net *net, int i)
{
    return mdfi_layer_has_kind(&net->layers[i], MDFI_KIND_EXIT);
}

int mdfi_exits_branch_last(const mdfi_net *net, int e)
{
    return e + spec_at(net, e)->layers;
}

int mdfi_exits_default_input(const mdfi_net *net, int i)
{
    const int p = i - 1;
    if (p < 0)
        return -1;
    if (is_exit(net, p))
        return spec_at(net, p)->from;
    const int e = net->branch[p];
    if (e >= 0 && p == mdfi_exits_branch_last(net, e))
        return spec_at(net, e)->from;
    return p;
}

int mdfi_exits_branch_end(const mdfi_net *net, int i)
{
    const int e = net->branch ? net->branch[i] : -1;
    if (e < 0 || e == i || i != mdfi_exits_branch_last(net, e))
        return -1;
    for (int k = 0; k < net->n_exits; ++k)
        if (net->exits[k] == e)
            return k;
    return -1;
}

int mdfi_exits_result_layer(const mdfi_net *net)
{
    if (!net->ran || net->fired < 0)
        return net->n - 1;
    return mdfi_exits_branch_last(net, net->exits[net->fired]);
}

mdfi_status mdfi_exits_track(mdfi_net *net, int i)
{
    const mdfi_layer *l = &net->layers[i];
    const char *name = net->cfg.name;
    int owner = -1;
    if (i > 0 && net->branch[i - 1] >= 0 &&
        i <= mdfi_exits_branch_last(net, net->branch[i - 1]))
        owner = net->branch[i - 1];
    if (is_exit(net, i)) {
        const int from = spec_at(net, i)->from;
        if (owner >= 0)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [exit] is inside the "
                                 "branch of the exit at layer %d: branches do not nest", name,
                                 l->line, i, owner);
        if (net->branch[from] >= 0)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: from=%d is in the "
                                 "branch of the exit at layer %d; a branch point must be on the "
                                 "main path", name, l->line, i, from, net->branch[from]);
        owner = i;
        net->exits[net->n_exits++] = i;
    }
    net->branch[i] = owner;
    for (int k = 0; k < l->n_in; ++k) {
        const int src = l->in[k];
        if (src >= 0 && net->branch[src] >= 0 && net->branch[src] != owner)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [%s] reads layer %d, which "
                                 "belongs to the exit at layer %d: %s", name, l->line, i,
                                 l->type->name, src, net->branch[src],
                                 owner < 0 ? "the main path cannot read a branch"
                                           : "a branch cannot read another branch");
    }
    return MDFI_OK;
}

mdfi_status mdfi_exits_check(mdfi_net *net)
{
    for (int k = 0; k < net->n_exits; ++k) {
        const int e = net->exits[k];
        const mdfi_exit_spec *sp = spec_at(net, e);
        const int end = mdfi_exits_branch_last(net, e);
        if (end >= net->n - 1)
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: layers=%d, but "
                                 "%d layers follow it: the branch and then the rest of the "
                                 "main path must come after it", net->cfg.name,
                                 net->layers[e].line, e, sp->layers, net->n - 1 - e);
        const mdfi_layer *last = &net->layers[end];
        if (!mdfi_layer_has_kind(last, MDFI_KIND_HEAD) ||
            mdfi_layer_has_kind(last, MDFI_KIND_YOLO | MDFI_KIND_EXIT))
            return mdfi_net_fail(net, MDFI_ERR_CFG, "%s:%d: layer %d [exit]: its branch (layers "
                                 "%d..%d) must end with [softmax], not [%s] (layer %d)",
                                 net->cfg.name, net->layers[e].line, e, e + 1, end,
                                 last->type->name, end);
    }
    net->policy = net->n_exits ? MDFI_POLICY_BRANCHY : MDFI_POLICY_NONE;
    return MDFI_OK;
}

/* ---- policies and thresholds --------------------------------------------------- */

static unsigned predictors_run(int policy)
{
    return policy == MDFI_POLICY_ENTROPY ? 1u << MDFI_PRED_ENTROPY
         : policy == MDFI_POLICY_EXIT    ? 1u << MDFI_PRED_EXIT
         : policy == MDFI_POLICY_ALL     ? (1u << MDFI_PRED_ENTROPY) | (1u << MDFI_PRED_EXIT)
                                         : 0u;
}

mdfi_status mdfi_net_set_exit_policy(mdfi_net *net, const char *policy)
{
    if (!net || !policy)
        return MDFI_ERR_ARG;
    int p = -1;
    for (int i = 0; i < N_POLICIES; ++i)
        if (!strcmp(policy, policy_names[i]))
            p = i;
    if (p < 0)
        return mdfi_net_fail(net, MDFI_ERR_ARG, "unknown exit policy '%s' (none, all, branchy, "
                             "entropy-predictor or exit-predictor)", policy);
    if (p != MDFI_POLICY_NONE && !net->n_exits)
        return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "exit policy %s: %s has no [exit] "
                             "layers (only policy none)", policy, net->cfg.name);
    const int need = p == MDFI_POLICY_ENTROPY ? MDFI_PRED_ENTROPY
                   : p == MDFI_POLICY_EXIT    ? MDFI_PRED_EXIT
                                              : -1;
    for (int k = 0; need >= 0 && k < net->n_exits; ++k) {
        const mdfi_layer *l = &net->layers[net->exits[k]];
        if (!spec_at(net, l->index)->has[need])
            return mdfi_net_fail(net, MDFI_ERR_UNSUPPORTED, "exit policy %s: the exit at layer "
                                 "%d (%s:%d) has no %s predictor (its predictors= key)", policy,
                                 l->index, net->cfg.name, l->line,
                                 need == MDFI_PRED_ENTROPY ? "entropy" : "exit");
    }
    net->policy = p;
    for (int k = 0; k < net->n_exits; ++k) {
        mdfi_exit_spec *sp = net->layers[net->exits[k]].spec;
        sp->run = predictors_run(p);
    }
    return MDFI_OK;
}

const char *mdfi_net_exit_policy(const mdfi_net *net)
{
    return net ? policy_names[net->policy] : "none";
}

int mdfi_net_num_exits(const mdfi_net *net)
{
    return net ? net->n_exits : 0;
}

static mdfi_status check_k(const mdfi_net *net, int k)
{
    if (k < 0 || k >= net->n_exits)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "exit %d: %s has %d exits", k,
                             net->cfg.name, net->n_exits);
    return MDFI_OK;
}

mdfi_status mdfi_net_set_exit_thresholds(mdfi_net *net, int k, float threshold,
                                         float entropy_gate, float exit_gate)
{
    if (!net)
        return MDFI_ERR_ARG;
    MDFI_CHECK(check_k(net, k));
    const float v[3] = {threshold, entropy_gate, exit_gate};
    static const char *const what[3] = {"threshold", "entropy_gate", "exit_gate"};
    for (int i = 0; i < 3; ++i)
        if (v[i] == v[i] && v[i] >= 0.f && (v[i] > 1.f || (i == 0 && v[i] == 0.f)))
            return mdfi_net_fail(net, MDFI_ERR_ARG, "exit %d: %s=%g is out of range (%s, 1]; "
                                 "a negative value keeps the current one", k, what[i],
                                 (double)v[i], i == 0 ? "(0" : "[0");
    mdfi_exit_spec *sp = net->layers[net->exits[k]].spec;
    if (threshold >= 0.f)
        sp->threshold = threshold;
    if (entropy_gate >= 0.f)
        sp->gate[MDFI_PRED_ENTROPY] = entropy_gate;
    if (exit_gate >= 0.f)
        sp->gate[MDFI_PRED_EXIT] = exit_gate;
    return MDFI_OK;
}

/* ---- queries ---------------------------------------------------------------------- */

static double layer_macs(const mdfi_net *net, int i)
{
    return net->layers[i].macs;
}

double mdfi_net_main_macs(const mdfi_net *net)
{
    double m = 0;
    for (int i = 0; net && i < net->n; ++i)
        if (!net->branch || net->branch[i] < 0)
            m += layer_macs(net, i);
    return m;
}

mdfi_status mdfi_net_exit_info(const mdfi_net *net, int k, mdfi_exit_info *info)
{
    if (!net || !info)
        return MDFI_ERR_ARG;
    MDFI_CHECK(check_k(net, k));
    const int e = net->exits[k];
    const mdfi_exit_spec *sp = spec_at(net, e);
    memset(info, 0, sizeof *info);
    info->layer = e;
    info->from_layer = sp->from;
    info->first = e + 1;
    info->last = mdfi_exits_branch_last(net, e);
    info->threshold = sp->threshold;
    info->entropy_gate = sp->gate[MDFI_PRED_ENTROPY];
    info->exit_gate = sp->gate[MDFI_PRED_EXIT];
    info->entropy_predictor = sp->has[MDFI_PRED_ENTROPY];
    info->exit_predictor = sp->has[MDFI_PRED_EXIT];
    info->predictor_macs = sp->predictor_macs;
    for (int i = info->first; i <= info->last; ++i)
        info->branch_macs += layer_macs(net, i);
    for (int i = 0; i < e; ++i)
        if (net->branch[i] < 0)
            info->path_macs += layer_macs(net, i);
    info->path_macs += info->branch_macs;
    return MDFI_OK;
}

mdfi_status mdfi_net_exit_result(const mdfi_net *net, mdfi_exit_result *r)
{
    if (!net || !r)
        return MDFI_ERR_ARG;
    if (!net->ran)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "no forward has run yet");
    if (net->fired < 0 && net->done < net->n)
        return mdfi_net_fail((mdfi_net *)net, MDFI_ERR_ARG, "the forward stopped after layer %d "
                             "and has no result yet (resume it)", net->done - 1);
    r->exit = net->fired;
    r->layer = mdfi_exits_result_layer(net);
    r->macs = net->macs;
    r->flops = net->flops;
    r->bops = net->bops;
    const mdfi_layer *l = &net->layers[r->layer];
    r->entropy = -1.f;
    if (mdfi_layer_has_kind(l, MDFI_KIND_HEAD) &&
        !mdfi_layer_has_kind(l, MDFI_KIND_YOLO | MDFI_KIND_EXIT) && net->out[r->layer])
        r->entropy = mdfi_exit_entropy(net->out[r->layer], (int)mdfi_layer_outputs(l));
    return MDFI_OK;
}
