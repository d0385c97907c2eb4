"""The pruning procedures: C2S2 and two baselines, all under one training budget.

Budget (optimizer steps): every method gets the same total.
    (fisher    as L1-norm, keeping the channels of largest Fisher importance)
    C2S2       per pruned group: `select` steps of phase 1 + `tune` steps of phase 2,
               then `final` steps of fine-tuning
    L1-norm    prunes at once, then fine-tunes for the whole budget
    slimming   L1 on the BN scales for the C2S2 selection share of the
               budget, prunes, fine-tunes for the rest

C2S2 (after the thesis' abstract; docs/pruning.md says what was chosen and why):
- a pruning layer (gates.ChannelGate) after every prunable producer, real-valued
  and binary at once;
- progressively, group by group in network order, two phases:
  1. the gate's real values train (alone, the weights and BN statistics
     staying as they are; or with Budget.joint, together with the weights),
     under the task loss plus a sparsity term lam * sum(s).  lam
     starts at budget.lam x the group's relative cost of a channel x the mean
     |task gradient| of the gate (measured before the phase), grows 20 % a
     step while more gates are open than the group may keep and eases 10 %
     while fewer are: it favours
     switching channels off, and a channel stays on only while the task
     gradient that reaches it through the straight-through mask outweighs the
     pull, so the channels still open last are those the loss defends most;
     then the `keep` largest real values become the binary mask (frozen);
  2. with the mask fixed, every weight trains (the network adapts to the loss);
- the number kept per group comes from the cost-aware rates (rates.allocate).
"""

import math
import time

import numpy as np
import torch

from weights_tools.prune.gates import Gates, masked
from weights_tools.prune.graph import ChannelGraph, PruneError
from weights_tools.prune.rewrite import prune_model
from weights_tools.prune.tasks import head_layers
from weights_tools.torch.layers import DarknetBatchNorm


class Budget:
    """Optimizer steps and rates.  joint: C2S2's phase 1 trains the weights
    together with the gates (the real form optimized end to end with the
    network), instead of the gates alone; every step of the budget then
    trains the weights, as the baselines' steps do."""

    def __init__(self, select=100, tune=100, final=1000, lr=1e-3, gate_lr=0.1, lam=0.2,
                 joint=True):
        self.select, self.tune, self.final = int(select), int(tune), int(final)
        self.lr, self.gate_lr, self.lam = float(lr), float(gate_lr), float(lam)
        self.joint = bool(joint)
        if min(self.select, self.tune, self.final) < 0:
            raise PruneError("training steps must be >= 0")

    def total(self, n_groups):
        return n_groups * (self.select + self.tune) + self.final


def _weights(model):
    return [p for p in model.parameters() if p.requires_grad]


def train_steps(model, task, steps, params, lr, log=None, what="fine-tune", cosine=True,
                extra=None, train_mode=True):
    """`steps` Adam steps on task.loss (+ extra(step) if given) over `params`."""
    if steps <= 0 or not params:
        return
    opt = torch.optim.Adam(params, lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
             if cosine else None)
    t0, running = time.time(), None
    every = max(1, steps // 5)
    for step in range(steps):
        model.train(train_mode)
        loss = task.loss(model, task.batch())
        if extra is not None:
            loss = loss + extra(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if log and ((step + 1) % every == 0 or step + 1 == steps):
            log("  %s: step %d/%d, loss %.4f (%.0f s)" % (what, step + 1, steps, running,
                                                        time.time() - t0))
    model.eval()


def _gate_gradient(model, task, gate, batches=4):
    """Mean |d task loss / d s| over a few batches with every channel on: the
    scale the sparsity pull is measured in (so `lam` means the same thing in
    every layer and every network)."""
    model.eval()
    total = 0.0
    for _ in range(batches):
        gate.s.grad = None
        task.loss(model, task.batch()).backward()
        total += float(gate.s.grad.abs().mean())
    gate.s.grad = None
    return total / batches


def recalibrate_bn(model, task, batches=20):
    """Re-estimates every BN layer's running mean and variance as plain averages
    over `batches` training batches (no gradient).  Darknet's BN moves its
    running statistics by 1 % a step, so after a few hundred steps of phase 2
    or fine-tuning they still mix in older weights' statistics; the gates of
    the next phase and the score are measured in eval mode, on these."""
    bns = [m for m in model.modules() if isinstance(m, DarknetBatchNorm)]
    if not bns or batches <= 0 or getattr(task, "freeze_bn", False):
        return   # a task that freezes BN (TeacherTask) keeps the teacher's statistics
    saved = [b.momentum for b in bns]
    model.train()
    try:
        with torch.no_grad():
            for k in range(batches):
                for b in bns:
                    b.momentum = 1.0 / (k + 1)
                model(task.batch()[0], outputs=head_layers(model))
    finally:
        for b, m in zip(bns, saved):
            b.momentum = m
        model.eval()


def _order(graph, counts):
    groups = [g for g in graph.prunable() if counts.get(g.id, g.n) < g.n]
    return sorted(groups, key=lambda g: g.producers[0])


def c2s2(model, task, counts, budget, cost_weight=None, log=print):
    """Prunes `model` to counts {gid: channels to keep}; returns ({gid: kept
    channel indices}, the pruned and fine-tuned model); `model` is trained in
    place.  cost_weight {gid: relative cost of one channel} scales each
    group's sparsity pull (cost-aware)."""
    graph = ChannelGraph(model)
    order = _order(graph, counts)
    gates = Gates(graph, order)
    keep = {}
    weights = _weights(model)
    for n, grp in enumerate(order, 1):
        gate, k = gates.gates[grp.id], counts[grp.id]
        where = "layer %d" % grp.producers[0]
        log("[%d/%d] %s: %d -> %d channels" % (n, len(order), where, grp.n, k))
        # phase 1: the gate learns (alone, or with the weights when joint)
        for p in weights:
            p.requires_grad_(False)
        w = 1.0 if cost_weight is None else cost_weight.get(grp.id, 1.0)
        state = {"lam": budget.lam * w * _gate_gradient(model, task, gate)}

        def pull(step, gate=gate, k=k, state=state):
            # the pull grows 20 % a step while more than k gates are open and
            # eases 10 % while fewer are (the loss may then reopen a channel)
            if step:
                n_open = int((gate.s.detach() > 0.5).sum())
                state["lam"] *= 1.2 if n_open > k else 0.9 if n_open < k else 1.0
            return state["lam"] * gate.s.clamp(min=0).sum()

        for p in weights:
            p.requires_grad_(budget.joint)
        params = [{"params": [gate.s], "lr": budget.gate_lr}]
        if budget.joint:
            params.append({"params": weights, "lr": budget.lr})
        train_steps(model, task, budget.select, params, budget.gate_lr, log=log,
                    what="phase 1 (gate%s)" % (" and weights" if budget.joint else ""),
                    cosine=False, extra=pull, train_mode=budget.joint)
        for p in weights:
            p.requires_grad_(True)
        if budget.joint:
            recalibrate_bn(model, task)
        s = gate.s.detach().numpy()
        chosen = np.sort(np.argsort(-s, kind="stable")[:k])
        mask = np.zeros(grp.n, np.float32)
        mask[chosen] = 1
        gate.freeze(mask)
        keep[grp.id] = chosen
        log("  chosen: %d kept; %d gates were still open at the end of phase 1"
            % (k, int((s > 0.5).sum())))
        if hasattr(task, "after_select"):   # e.g. TeacherTask's least-squares reconstruction
            task.after_select(model, graph, grp.id, log)
        # phase 2: the weights adapt to the mask
        train_steps(model, task, budget.tune, weights, budget.lr, log=log, what="phase 2 (weights)",
                    cosine=False)
        recalibrate_bn(model, task)
    gates.detach()
    return keep, _fine_tune(model, graph, keep, task, budget.final, budget.lr, log)


def _fine_tune(model, graph, keep, task, steps, lr, log):
    """The pruned model (channels removed: the same function as the masked one,
    at a fraction of the cost) after `steps` of fine-tuning."""
    pruned = prune_model(model, keep, graph)
    train_steps(pruned, task, steps, _weights(pruned), lr, log=log, what="fine-tune")
    recalibrate_bn(pruned, task)
    return pruned


def _norms(model, grp, kind):
    total = None
    for p in grp.producers:
        layer = model.layers[p]
        if kind == "bn" and getattr(layer, "bn", None) is not None:
            v = layer.bn.weight.detach().abs().numpy()
        else:
            v = layer.weight.detach().abs().flatten(1).sum(1).numpy()
        total = v if total is None else total + v
    return total


def _refit(model, graph, keep, task, log):
    """A task's after_select (TeacherTask's least-squares reconstruction) for
    every group of a one-shot selection, in network order, with all the
    masks on: each group's readers are refitted to what the pruned layers
    before them now feed them, as C2S2 does layer by layer."""
    if not hasattr(task, "after_select"):
        return
    gates = masked(graph, keep)
    try:
        for gid in sorted(keep, key=lambda g: graph.group(g).producers[0]):
            task.after_select(model, graph, gid, log)
    finally:
        gates.detach()


def _one_shot(model, task, counts, budget, n_groups, score, log):
    graph = ChannelGraph(model)
    keep = {}
    for grp in _order(graph, counts):
        keep[grp.id] = np.sort(np.argsort(-score(graph, grp), kind="stable")[:counts[grp.id]])
    _refit(model, graph, keep, task, log)
    return keep, _fine_tune(model, graph, keep, task, budget.total(n_groups), budget.lr, log)


def l1_norm(model, task, counts, budget, n_groups, log=print):
    """Li et al.: in every group keep the filters with the largest L1 norm
    (summed over a merged group's producers), then fine-tune the whole budget."""
    return _one_shot(model, task, counts, budget, n_groups,
                     lambda graph, grp: _norms(model, grp, "l1"), log)


def fisher_select(model, task, counts, importance, budget, n_groups, log=print):
    """Theis et al.'s Fisher pruning, one shot: in every group keep the
    channels of largest Fisher importance (importance.fisher: {gid: per
    channel}), then fine-tune the whole budget.  For a teacher task the
    importance is the teacher's output sensitivity (TeacherTask.sensitivity),
    which needs no labels."""
    return _one_shot(model, task, counts, budget, n_groups,
                     lambda graph, grp: importance[grp.id], log)


def slimming(model, task, target_fn, budget, n_groups, sparsity=1e-4, max_prune=0.9, log=print):
    """Liu et al. (network slimming): L1 on the BN scales while training (the
    C2S2 selection share of the budget), then one global threshold on |scale|
    chosen so that target_fn(counts) holds (the cost target), at least one
    channel per group and at most max_prune of it removed; then fine-tune."""
    graph = ChannelGraph(model)
    groups = graph.prunable()
    scales = [model.layers[p].bn.weight for g in groups for p in g.producers
              if getattr(model.layers[p], "bn", None) is not None]
    if not scales:
        raise PruneError("network slimming needs batch-normalized layers; this network has none")
    sparse_steps = n_groups * budget.select
    train_steps(model, task, sparse_steps, _weights(model), budget.lr, log=log,
                what="sparsity training", extra=lambda step: sparsity * sum(s.abs().sum() for s in scales))
    norms = {g.id: _norms(model, g, "bn") for g in groups}
    values = np.sort(np.concatenate(list(norms.values())))

    def counts_at(t):
        out = {}
        for g in groups:
            k = int((norms[g.id] > t).sum())
            out[g.id] = min(g.n, max(k, 1, math.ceil(g.n * (1 - max_prune))))
        return out

    lo, hi = 0, len(values) - 1
    if not target_fn(counts_at(values[hi])):
        raise PruneError("network slimming cannot reach the target with at most %.0f%% of each "
                         "layer pruned" % (100 * max_prune))
    while lo < hi:   # the smallest threshold that meets the target
        mid = (lo + hi) // 2
        if target_fn(counts_at(values[mid])):
            hi = mid
        else:
            lo = mid + 1
    counts = counts_at(values[lo])
    keep = {}
    for g in groups:
        keep[g.id] = np.sort(np.argsort(-norms[g.id], kind="stable")[:counts[g.id]])
    return keep, _fine_tune(model, graph, keep, task, budget.total(n_groups) - sparse_steps,
                            budget.lr, log)
