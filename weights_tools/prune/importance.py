"""What a channel is worth to the loss: per-channel Fisher importance.

For a mask m_c multiplying channel c of a producer's output (1 = kept), the
loss rises by about F_c = 1/2 E[(dL_n/dm_c)^2] when m_c goes from 1 to 0
(Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher
pruning"): the expectation is over single images n, so the gradients are
taken per image, through a (batch, channels) mask of ones hooked after every
producer of the group.  The estimate is in units of the loss, the same in
every layer, which is what lets rates.allocate_importance weigh a channel of
one layer against a channel of another.  A group merged by a shortcut sums
its producers' gradients (one channel, one mask).

A task that learns from a teacher (tasks.TeacherTask) starts where its loss
and the loss's gradient are zero, so it supplies `sensitivity`: a random
projection of the head outputs, scaled by the loss's curvature, whose squared
gradient estimates the same rise in the loss (the Fisher information of the
teacher's outputs).
"""

import numpy as np
import torch

from weights_tools.prune.graph import PruneError


def fisher(model, task, graph, groups=None, batches=16):
    """{gid: float64 array of each channel's Fisher importance} over `batches`
    training batches of `task`, the model in eval mode (BN on its running
    statistics, as C2S2's phase 1 sees it)."""
    groups = list(groups if groups is not None else graph.prunable())
    if batches <= 0:
        raise PruneError("importance needs at least one batch, got %d" % batches)
    total = {g.id: np.zeros(g.n) for g in groups}
    masks, hooks = {}, []

    def hook(gid, p):
        def apply(module, inp, out):
            m = torch.ones(out.shape[0], out.shape[1], 1, 1, requires_grad=True)
            masks[(gid, p)] = m
            return out * m
        return apply

    for g in groups:
        for p in g.producers:
            hooks.append(graph.model.layers[p].register_forward_hook(hook(g.id, p)))
    was_training = model.training
    model.eval()
    seen = 0
    gen = torch.Generator().manual_seed(0)
    try:
        for _ in range(batches):
            masks.clear()
            x = task.batch()
            loss = (task.sensitivity(model, x, gen) if hasattr(task, "sensitivity")
                    else task.loss(model, x))
            n = len(x[0])
            grads = torch.autograd.grad(loss, list(masks.values()), allow_unused=True)
            per = {}
            for (gid, _), gr in zip(masks.keys(), grads):
                if gr is None:
                    continue
                gr = gr.detach().reshape(n, -1).double().numpy() * n   # the mean's 1/n undone
                per[gid] = per[gid] + gr if gid in per else gr
            for gid, gr in per.items():
                total[gid] += 0.5 * (gr ** 2).sum(0)
            seen += n
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {gid: t / max(1, seen) for gid, t in total.items()}
