"""C2S2's pruning layer: a 1x1 depth-wise kernel (one scalar per channel) after a
producer, kept in two forms.

- real form `s` (trainable): what gradient descent moves;
- binary form m = [s > 0.5]: the channel mask the forward pass uses.

The forward multiplies the producer's output by m, so the network computes
exactly what the pruned network will compute; the backward passes the
gradient of m straight through to s (clipped to |s| <= 2, as BinaryConnect
does), so a channel whose removal hurts gets pushed back above 0.5.  Starting
at s = 1 every channel is on.  A group merged by a shortcut has one gate used
after each of its producers.

Gates are attached with forward hooks, so the model and its export code are
unchanged; `detach()` removes them.
"""

import torch
import torch.nn as nn

THRESHOLD = 0.5


class _BinarizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s):
        ctx.save_for_backward(s)
        return (s > THRESHOLD).to(s.dtype)

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * (s.abs() <= 2).to(grad.dtype)


class ChannelGate(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.s = nn.Parameter(torch.ones(n))
        self.register_buffer("frozen", torch.zeros(0))   # a fixed 0/1 mask once chosen

    def freeze(self, mask):
        self.frozen = torch.as_tensor(mask, dtype=torch.float32).clone()
        self.s.requires_grad_(False)

    def mask(self):
        if self.frozen.numel():
            return self.frozen
        return _BinarizeSTE.apply(self.s)

    def forward(self, x):
        return x * self.mask().view(1, -1, 1, 1)


class Gates:
    """ChannelGates for the given groups of `graph`, hooked onto their producers.
    gates[gid] is the gate of group gid."""

    def __init__(self, graph, groups=None):
        self.graph = graph
        self.gates = {}
        self._hooks = []
        for grp in groups if groups is not None else graph.prunable():
            gate = ChannelGate(grp.n)
            self.gates[grp.id] = gate
            for p in grp.producers:
                hook = graph.model.layers[p].register_forward_hook(
                    lambda m, inp, out, gate=gate: gate(out))
                self._hooks.append(hook)

    def parameters(self):
        return [g.s for g in self.gates.values()]

    def masks(self):
        with torch.no_grad():
            return {gid: g.mask().numpy().copy() for gid, g in self.gates.items()}

    def detach(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []


def masked(graph, keep):
    """Hook fixed masks that zero every channel `keep` drops; returns the Gates
    (call .detach() to remove them).  For checking a pruned model against the
    unpruned one."""
    import numpy as np
    gates = Gates(graph, [graph.group(g) for g in keep])
    for gid, idx in keep.items():
        m = np.zeros(graph.group(gid).n, np.float32)
        m[np.asarray(idx)] = 1
        gates.gates[graph.find(gid)].freeze(m)
    return gates
