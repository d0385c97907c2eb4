"""What a channel costs: per-layer costs (FLOPs, or milliseconds measured by
MDFI's profiler on this CPU) and the cost of the whole network after keeping
a fraction of each group's channels.

The model is bilinear: a conv/connected layer's cost scales with the fraction
of its input channels kept times the fraction of its output channels kept;
pooling, upsample, route and shortcut layers scale with the fraction of the
channels they carry.  A group merged by a shortcut counts once, with the cost
of every producer and every reader of its channels; a route reader's cost
falls on each of its sources in proportion to the channels it takes from them.
"""

import os
import tempfile
import time

import numpy as np

from weights_tools.torch.layers import Connected, Conv


def layer_flops(model):
    """Floating-point operations per layer (2 x multiply-adds, as MDFI counts)."""
    return [2.0 * m for m in model.layer_macs()]


class CostModel:
    def __init__(self, graph, layer_cost):
        self.graph = graph
        self.layer_cost = [float(c) for c in layer_cost]
        model = graph.model
        self._terms = []   # (cost, {gid: count} in or None, total in, {gid: count} out, total out, bilinear)
        for i, layer in enumerate(model.layers):
            out = graph.out_counts(i)
            n_out = sum(out.values())
            if isinstance(layer, (Conv, Connected)):
                inc = graph.in_counts(i)
                self._terms.append((self.layer_cost[i], inc, sum(inc.values()), out, n_out))
            else:
                self._terms.append((self.layer_cost[i], {}, 0, out, n_out))

    def total(self, ratios=None):
        """Cost with group g keeping ratios[g] of its channels (others all)."""
        ratios = ratios or {}
        find = self.graph.find
        total = 0.0
        for cost, inc, n_in, out, n_out in self._terms:
            if not cost:
                continue
            f_in = 1.0 if not n_in else sum(c * ratios.get(find(g), 1.0) for g, c in inc.items()) / n_in
            f_out = 1.0 if not n_out else sum(c * ratios.get(find(g), 1.0) for g, c in out.items()) / n_out
            total += cost * f_in * f_out
        return total

    def per_channel(self):
        """{gid: cost saved by removing one channel of the group, from full size}."""
        base = self.total()
        out = {}
        for grp in self.graph.prunable():
            out[grp.id] = (base - self.total({grp.id: 1.0 - 1.0 / grp.n})) if grp.n > 1 else 0.0
        return out


def _forward_ms(net, x, repeats):
    """ms of the fastest of `repeats` forwards.  Another process taking the CPU
    only ever slows a forward down, so the fastest is the steadiest estimate
    of the network's own time (the profile's per-layer times are taken the
    same way)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        net.forward(x)
        best = min(best, time.perf_counter() - t)
    return 1000.0 * best


PATHS = ("float", "int8")


def _int8_files(cfg, weights, tmp, x):
    """MDFI's int8 model of cfg/weights, calibrated on x (only the timing is
    used, so a few inputs do)."""
    from weights_tools.quantize import quantize
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, x)
    quantize(cfg, weights, [calib], os.path.join(tmp, "q"), quiet=True, report=False,
             check_images=False, bias_images=0)
    return os.path.join(tmp, "q.cfg"), os.path.join(tmp, "q.qweights")


def _files(model, tmp, name, path, calib, rng):
    """cfg, weights of `model` written under tmp, quantized when path is int8."""
    from weights_tools.torch.export import save
    cfg, weights = save(model, os.path.join(tmp, name))
    if path == "int8":
        if calib is None:
            calib = rng.random((4,) + tuple(model.input_shape), dtype=np.float32)
        sub = os.path.join(tmp, name + "-q")
        os.makedirs(sub)
        cfg, weights = _int8_files(cfg, weights, sub, np.asarray(calib, np.float32))
    return cfg, weights


def relative_ms(reference, model, repeats=45, warmup=3, threads=1, kernel=None, seed=0,
                path="float", calib=None):
    """MDFI's time for a forward of `model` over that of `reference`, the two
    run in turns (the fastest of `repeats` forwards each): a machine that slows
    down or speeds up between two measurements moves both alike, so the ratio
    holds where two separate measurements drift apart (on the build machine,
    one architecture measured alone ranged over 0.57-0.80 ms in a minute)."""
    import mdfi
    if path not in PATHS:
        raise ValueError("path must be one of %s, not %r" % (", ".join(PATHS), path))
    rng = np.random.default_rng(seed)
    x = rng.random(reference.input_shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        files = [_files(m, tmp, n, path, calib, rng) for m, n in ((reference, "a"), (model, "b"))]
        nets = [mdfi.Network(c, w, threads=threads, kernel=kernel) for c, w in files]
        try:
            for net in nets:
                for _ in range(warmup):
                    net.forward(x)
            best = [float("inf")] * 2
            for _ in range(repeats):
                for k, net in enumerate(nets):
                    t = time.perf_counter()
                    net.forward(x)
                    best[k] = min(best[k], time.perf_counter() - t)
        finally:
            for net in nets:
                net.close()
    return best[1] / best[0]


def measure_ms(model, repeats=15, warmup=3, threads=1, kernel=None, seed=0, path="float",
               calib=None):
    """(per-layer ms, whole-forward ms) of `model` run by MDFI on this CPU, in
    float or (path="int8") as `weights_tools quantize` makes it, calibrated on
    `calib` (N x C x H x W; default: random inputs): each layer's fastest time
    in MDFI's profiler over `repeats` runs (as _forward_ms, the fastest is the
    least disturbed by other processes), and the time of a forward without
    profiling (_forward_ms)."""
    import mdfi

    if path not in PATHS:
        raise ValueError("path must be one of %s, not %r" % (", ".join(PATHS), path))
    rng = np.random.default_rng(seed)
    x = rng.random(model.input_shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, weights = _files(model, tmp, "m", path, calib, rng)
        with mdfi.Network(cfg, weights, threads=threads, kernel=kernel) as net:
            for _ in range(warmup):
                net.forward(x)
            whole = _forward_ms(net, x, 3 * repeats)
            net.set_profile(True)
            per = []
            for _ in range(repeats):
                net.forward(x)
                per.append(net.layer_times())
            net.set_profile(False)
    return [min(col) for col in zip(*per)], whole
