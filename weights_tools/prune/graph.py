"""Which channels of a Darknet model can be removed together, and who reads them.

Every [convolutional] / [connected] layer makes a *group* of output channels.
The other layers move channels without mixing them (maxpool, avgpool,
upsample, dropout: one to one; route: concatenation), so every layer's output
channel can be traced back to (group, channel).  Removing channel k of a group
removes it from its producer (filter k, bias k, BN k) and from every reader
(the input column block of each conv/connected layer that sees it).

Layers that tie channels of several producers together:
- [shortcut]: previous + from, channel by channel.  Both sides must be whole
  groups of the same size in the same order; the two groups are then merged
  into one (one mask for both producers).  Anything else fixes them.
- [scale_channels]: from's channel k scaled by previous's channel k: merged
  the same way (scale_wh=1 fixes the 1-channel scale map instead).
- grouped convolutions (groups > 1) and [route] groups= slices: a channel's
  position decides its group, so the producers involved are fixed (kept whole).
Layers whose channel layout is their meaning fix what they read: [yolo],
[softmax], and the network's last layer.  [exit] branches and layer types not
listed here are refused (PruneError naming the layer).
"""

import torch

from weights_tools.prune.errors import PruneError
from weights_tools.torch.layers import (AvgPool, Connected, Conv, Dropout, Exit, MaxPool, Route,
                                        ScaleChannels, Shortcut, Softmax, Upsample, Yolo, activate)


def _where(model, i):
    return "layer %d ([%s])" % (i, model.layers[i].section)


def _zero_preserving(name):
    """True when activation(0) == 0, so a removed (zero) channel stays zero."""
    return float(activate(torch.zeros(1), name)[0]) == 0.0


class Group:
    """Output channels of one producer (or of producers merged by a shortcut)."""

    def __init__(self, gid, producer, n):
        self.id = gid
        self.producers = [producer]
        self.n = n
        self.fixed = None            # why it must be kept whole, or None

    def __repr__(self):
        return "Group(%d, producers=%s, n=%d%s)" % (self.id, self.producers, self.n,
                                                   ", fixed: " + self.fixed if self.fixed else "")


class ChannelGraph:
    """The groups of `model` (a weights_tools.torch.Darknet) and, for every
    layer, where its input and output channels come from.

    groups        the merged groups (representatives), in producer order
    group_of[i]   the group made by layer i (conv/connected), else None
    origin[i]     layer i's output channels as a list of (group id, channel)
    reads[i]      for conv/connected layers, the origin list of their input
    """

    def __init__(self, model):
        self.model = model
        self._parent = {}
        self._groups = {}
        self.group_of = {}
        self.origin = []
        self.reads = {}
        shapes = model.shapes
        for i, layer in enumerate(model.layers):
            prev = self.origin[i - 1] if i else None
            self.origin.append(self._trace(i, layer, prev, shapes))
        self._fix_origins(self.origin[-1], "it is the network's output (%s)"
                          % _where(model, len(model.layers) - 1))
        self.groups = [self._groups[g] for g in sorted({self.find(g) for g in self._groups})]

    # -- union-find over group ids
    def find(self, g):
        while self._parent[g] != g:
            self._parent[g] = self._parent[self._parent[g]]
            g = self._parent[g]
        return g

    def group(self, gid):
        return self._groups[self.find(gid)]

    def _new(self, producer, n):
        gid = len(self._groups)
        self._groups[gid] = Group(gid, producer, n)
        self._parent[gid] = gid
        return [(gid, k) for k in range(n)]

    def _merge(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ga, gb = self._groups[ra], self._groups[rb]
        lo, hi = (ga, gb) if ra < rb else (gb, ga)
        self._parent[hi.id] = lo.id
        lo.producers = sorted(lo.producers + hi.producers)
        if hi.fixed and not lo.fixed:
            lo.fixed = hi.fixed

    def _fix_origins(self, origins, why):
        for g in {g for g, _ in origins or []}:
            grp = self.group(g)
            if grp.fixed is None:
                grp.fixed = why

    def _whole(self, origins):
        """The group id if `origins` is one whole group in order, else None."""
        if not origins:
            return None
        g = self.find(origins[0][0])
        if len(origins) != self.group(g).n:
            return None
        if any(self.find(o) != g or k != j for j, (o, k) in enumerate(origins)):
            return None
        return g

    def _trace(self, i, layer, prev, shapes):
        model = self.model
        where = _where(model, i)
        if isinstance(layer, Exit):
            raise PruneError("%s: the pruner cannot rewrite early-exit branches yet; prune the "
                             "network without its [exit] sections" % where)
        if isinstance(layer, Conv):
            self.reads[i] = prev
            if layer.groups != 1:
                why = "%s is a grouped convolution (groups=%d)" % (where, layer.groups)
                self._fix_origins(prev, why)
                out = self._new(i, layer.filters)
                self.group(out[0][0]).fixed = why
            else:
                out = self._new(i, layer.filters)
            self.group_of[i] = out[0][0]
            return out
        if isinstance(layer, Connected):
            self.reads[i] = prev
            out = self._new(i, layer.outputs)
            self.group_of[i] = out[0][0]
            return out
        if isinstance(layer, (MaxPool, AvgPool, Upsample, Dropout)):
            return prev
        if isinstance(layer, Route):
            parts = []
            for j in layer.references(i):
                src = self.origin[j]
                if layer.groups > 1:
                    self._fix_origins(src, "%s takes channel slices (groups=%d)"
                                      % (where, layer.groups))
                    n = len(src) // layer.groups
                    src = src[n * layer.group_id:n * (layer.group_id + 1)]
                parts.extend(src)
            return parts
        if isinstance(layer, (Shortcut, ScaleChannels)):
            other = self.origin[layer.references(i)[0]]
            if isinstance(layer, ScaleChannels) and layer.scale_wh:
                self._fix_origins(prev, "%s scales by a one-channel map" % where)
                return other
            ga, gb = self._whole(prev), self._whole(other)
            if not _zero_preserving(layer.activation):
                why = "%s: activation %s does not keep zero at zero" % (where, layer.activation)
                self._fix_origins(prev, why)
                self._fix_origins(other, why)
            elif ga is None or gb is None or self.group(ga).n != self.group(gb).n:
                why = "%s adds channels that are not two whole layers' outputs" % where
                self._fix_origins(prev, why)
                self._fix_origins(other, why)
            else:
                self._merge(ga, gb)
            return other if isinstance(layer, ScaleChannels) else prev
        if isinstance(layer, (Softmax, Yolo)):
            self._fix_origins(prev, "%s reads it" % where)
            if isinstance(layer, Yolo):
                return prev
            out = self._new(i, shapes[i][0])
            self.group(out[0][0]).fixed = "%s output" % where
            return out
        raise PruneError("%s: the pruner cannot rewrite this layer type" % where)

    # -- queries
    def prunable(self):
        """The groups that may lose channels."""
        return [g for g in self.groups if g.fixed is None]

    def in_counts(self, i):
        """{group id: number of input channels of layer i from that group}."""
        counts = {}
        for g, _ in self.reads.get(i) or []:
            g = self.find(g)
            counts[g] = counts.get(g, 0) + 1
        return counts

    def out_counts(self, i):
        counts = {}
        for g, _ in self.origin[i]:
            g = self.find(g)
            counts[g] = counts.get(g, 0) + 1
        return counts
