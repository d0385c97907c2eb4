"""Least-squares reconstruction of the layers that read a pruned group.

Removing channels shifts every layer that reads them: a BN + leaky channel is
not zero on average, and the shift grows through the rest of the network.
After a group's channels are chosen, each conv layer that reads the group is
refitted in closed form so that its pre-activation output, computed from
what the pruned student now feeds it, matches the teacher's (the unpruned
model's) on sampled positions of a few inputs:

    min_W,c  || A_teacher - (X_student W + c) ||^2 + ridge * || W - W_now ||^2

X_student holds the student's live input patches (channels that are zero on
every sample, i.e. removed, are left out and their weights set to zero), the
ridge pulls towards the current weights (a 13x13 map gives few samples per
image).  The constant c goes into the BN rolling mean (BN layers compute
BN(conv(x)) + bias) or the bias.  This is He et al.'s channel-pruning
reconstruction with the teacher's output as the target, so the error of
layers pruned earlier is corrected too; fine-tuning follows.

A layer whose output is what the loss compares (a detector's head) can be
fitted by weighted least squares instead: `weight(i, a)` gives, for the
teacher's pre-activation map a of layer i, a weight per output element (the
loss's curvature: tasks.yolo_curvature), and each output channel is solved
with its own row weights.  Plain least squares spends the fit on the
thousands of background anchors of a detector; the loss, and the
detections, care about the few where the teacher sees something.
"""

import torch
import torch.nn.functional as F

from weights_tools.torch.layers import Conv


def readers(graph, gid):
    """The conv/connected layers that read channels of group gid."""
    gid = graph.find(gid)
    return sorted(i for i in graph.reads if gid in graph.in_counts(i))


def _pre_activation(layer, x, weight=None):
    y = F.conv2d(x, layer.weight if weight is None else weight, None, layer.stride,
                 layer.padding, 1, layer.groups)
    if layer.bn is not None:
        y = layer.bn(y)
    return y + layer.bias.view(1, -1, 1, 1)


class _Enough(Exception):
    pass


def _collect(student, teacher, i, inputs, per_image, gen, weight=None):
    """Rows (student patches [P, Cin*k*k], teacher pre-activations [P, Cout],
    row weights [P, Cout] or None)."""
    s_layer, t_layer = student.layers[i], teacher.layers[i]
    got = {}

    def grab(key):
        def pre(module, args):
            got[key] = args[0].detach()
            raise _Enough      # the rest of the network is not needed
        return pre
    hooks = [s_layer.register_forward_pre_hook(grab("s")),
             t_layer.register_forward_pre_hook(grab("t"))]
    xs, ys, ws = [], [], []
    try:
        with torch.no_grad():
            for x in inputs:
                for model in (student, teacher):
                    try:
                        model(x)
                    except _Enough:
                        pass
                a_map = _pre_activation(t_layer, got["t"])
                a = a_map.flatten(2)                                         # [n, Cout, L]
                wt = None if weight is None else weight(i, a_map)
                wt = None if wt is None else wt.flatten(2)
                cols = F.unfold(got["s"], s_layer.size, padding=s_layer.padding,
                                stride=s_layer.stride)                      # [n, Cin*k*k, L]
                n, _, length = cols.shape
                take = min(per_image, length)
                for b in range(n):
                    idx = torch.randperm(length, generator=gen)[:take]
                    xs.append(cols[b][:, idx].T.double())
                    ys.append(a[b][:, idx].T.double())
                    if wt is not None:
                        ws.append(wt[b][:, idx].T.double())
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(xs), torch.cat(ys), torch.cat(ws) if ws else None


def _solve_rows(xa, target, r, w0, ridge):
    """(W [J, D], c [J]) minimizing sum_p r_p ||target_p - W x_p - c||^2 +
    lam ||W - w0||^2 for row weights r summing to 1, lam = ridge x the mean
    diagonal of the (weighted) centred Gram."""
    mean_x = r @ xa
    xc = xa - mean_x
    gram = xc.T @ (xc * r[:, None])
    lam = ridge * float(gram.diagonal().mean())
    gram += lam * torch.eye(len(gram), dtype=gram.dtype)
    mean_t = r @ target
    w = torch.linalg.solve(gram, xc.T @ (r[:, None] * (target - mean_t)) + lam * w0.T).T
    return w, mean_t - mean_x @ w.T


def _solve(xa, target, w0, ridge):
    """_solve_rows with every row weighing the same, for all output channels."""
    return _solve_rows(xa, target, torch.full((len(xa),), 1.0 / len(xa), dtype=xa.dtype), w0,
                       ridge)


def _solve_weighted(xa, target, rows, w0, ridge):
    """_solve with row weights per output channel (rows [P, Cout]): one
    weighted problem per distinct column of weights (a detector's head shares
    one per anchor)."""
    w = torch.empty_like(w0)
    c = torch.empty(len(w0), dtype=xa.dtype)
    columns, which = torch.unique(rows.T, dim=0, return_inverse=True)
    for u, col in enumerate(columns):
        js = (which == u).nonzero().flatten()
        w[js], c[js] = _solve_rows(xa, target[:, js], col / col.sum().clamp(min=1e-300),
                                   w0[js], ridge)
    return w, c


def reconstruct(student, teacher, graph, gid, inputs, per_image=256, ridge=1e-2, seed=0,
                weight=None):
    """Refits every (ungrouped) conv reader of group gid in `student` (in
    place; gates hooked on the student apply).  inputs: a list of batches.
    weight(i, teacher pre-activation map) -> per-element weights (or None)
    for layer i; None: plain least squares (see the module's text).
    Returns {layer: (relative error before, after)} on the samples (weighted
    where weights were given)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    was = student.training
    student.eval()
    for i in readers(graph, gid):
        layer = student.layers[i]
        if not isinstance(layer, Conv) or layer.groups != 1:
            continue
        x, a, rows = _collect(student, teacher, i, inputs, per_image, gen, weight)
        k2 = layer.size * layer.size
        alive = (x.view(len(x), -1, k2).abs().amax((0, 2)) > 0)           # input channels
        cols = alive.repeat_interleave(k2)
        w_now = layer.weight.detach().double().flatten(1)                  # [Cout, Cin*k*k]
        with torch.no_grad():
            # the student's pre-activation is BN(z) + bias with z = X W^T: map
            # the teacher's pre-activation into z-space
            if layer.bn is not None:
                bn = layer.bn
                std = torch.sqrt(bn.running_var.double()) + 1e-6          # DARKNET_BN_EPS
                scale = bn.weight.detach().double()
                target = (a - layer.bias.detach().double()) * std / scale + bn.running_mean.double()
            else:
                target = a - layer.bias.detach().double()
            xa = x[:, cols]
            w0 = w_now[:, cols]
            if rows is None:
                w, c = _solve(xa, target, w0, ridge)
                rows = torch.ones_like(target)
            else:
                w, c = _solve_weighted(xa, target, rows, w0, ridge)

            def error(pred):
                # relative to the spread of the target about its (weighted) mean
                mean = (rows * target).sum(0) / rows.sum(0).clamp(min=1e-300)
                spread = (rows * (target - mean) ** 2).sum()
                return float((rows * (pred - target) ** 2).sum() / spread.clamp(min=1e-300))
            before = error(xa @ w0.T)
            after = error(xa @ w.T + c)
            new = torch.zeros_like(w_now)
            new[:, cols] = w
            layer.weight.copy_(new.view_as(layer.weight).to(layer.weight.dtype))
            if layer.bn is not None:
                layer.bn.running_mean.sub_(c.to(layer.bn.running_mean.dtype))
            else:
                layer.bias.add_(c.to(layer.bias.dtype))
        out[i] = (before, after)
    student.train(was)
    return out
