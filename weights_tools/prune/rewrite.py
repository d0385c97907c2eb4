"""A physically smaller model: the channels a mask drops are removed from their
producers and from every layer that reads them (see graph.py)."""

import copy

import numpy as np
import torch

from weights_tools.prune.graph import ChannelGraph, PruneError
from weights_tools.torch.layers import Connected, Conv, Darknet


def full_keep(graph):
    """{group id: every channel} for the prunable groups."""
    return {g.id: np.arange(g.n) for g in graph.prunable()}


def check_keep(graph, keep):
    """keep: {group id: channel indices to keep}.  Returns it with sorted unique
    int arrays; raises PruneError for a fixed group or a group left empty."""
    out = {}
    for gid, idx in keep.items():
        grp = graph.group(gid)
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        where = "layer %d ([%s])" % (grp.producers[0], graph.model.layers[grp.producers[0]].section)
        if len(idx) == 0:
            raise PruneError("%s would lose all its %d channels" % (where, grp.n))
        if idx[0] < 0 or idx[-1] >= grp.n:
            raise PruneError("%s has channels 0..%d, a mask names %d"
                             % (where, grp.n - 1, int(idx[-1] if idx[-1] >= grp.n else idx[0])))
        if grp.fixed is not None and len(idx) != grp.n:
            raise PruneError("%s cannot lose channels: %s" % (where, grp.fixed))
        out[grp.id] = idx
    return out


def kept_positions(graph, origins, keep):
    """Indices into `origins` (a list of (group, channel)) that survive `keep`."""
    sets = {g: set(idx.tolist()) for g, idx in keep.items()}
    pos = []
    for j, (g, k) in enumerate(origins):
        s = sets.get(graph.find(g))
        if s is None or k in s:
            pos.append(j)
    return np.asarray(pos, dtype=np.int64)


def _slice_bn(bn, rows):
    bn.num_features = len(rows)
    bn.weight = torch.nn.Parameter(bn.weight.detach()[rows].clone())
    bn.running_mean = bn.running_mean[rows].clone()
    bn.running_var = bn.running_var[rows].clone()


def prune_model(model, keep, graph=None):
    """A new Darknet model with only the kept channels (model is unchanged).
    keep: {group id: channel indices}; groups not named keep every channel."""
    graph = graph or ChannelGraph(model)
    keep = check_keep(graph, keep)
    layers = []
    for i, layer in enumerate(model.layers):
        new = copy.deepcopy(layer)
        if isinstance(layer, (Conv, Connected)):
            rows = torch.from_numpy(kept_positions(graph, graph.origin[i], keep))
            reads = graph.reads[i]
            if reads is None or getattr(layer, "groups", 1) != 1:   # image, or fixed by groups
                cols = torch.arange(layer.weight.shape[1])
            else:
                cols = torch.from_numpy(kept_positions(graph, reads, keep))
            if isinstance(layer, Connected):
                c, h, w = model.shapes[i - 1]
                cols = (cols[:, None] * (h * w) + torch.arange(h * w)[None]).reshape(-1)
            with torch.no_grad():
                new.weight = torch.nn.Parameter(layer.weight.detach()[rows][:, cols].clone())
                new.bias = torch.nn.Parameter(layer.bias.detach()[rows].clone())
            if new.bn is not None:
                _slice_bn(new.bn, rows)
            if isinstance(layer, Conv):
                new.in_channels = len(cols) * layer.groups
                new.filters = len(rows)
            else:
                new.inputs, new.outputs = len(cols), len(rows)
        layers.append(new)
    out = Darknet(model.input_shape, layers, model.net_options, model.seen)
    return out.train(model.training)


def keep_from_masks(graph, masks):
    """{group id: channel indices} from {group id: 0/1 vector}."""
    return {g: np.flatnonzero(np.asarray(m) > 0) for g, m in masks.items()}
