"""--mixed: which convolutions get 16 bits, measured with the C engine."""
import math
import os
import tempfile

import numpy as np

from weights_tools import qweights as qwf
from weights_tools.calibrate import all_layers_network, load_input
from weights_tools.darknet_cfg import net_shape
from weights_tools.quantize.graph import GEMM_TYPES, gemm_macs, head_inputs, layer_weight_count
from weights_tools.quantize.plan import make_plan
from weights_tools.quantize.report import progress_line
from weights_tools.quantize.write import annotated_cfg, build_qweights


def choose_mixed(cfg, weights, cfg_text, sections, layers, w, cal, images, method, head_bits,
                 weight_scale, budget, threads=1, quiet=True, size_budget=None):
    """The layers --mixed raises to 16 bits.  Every convolutional/connected
    layer is raised to 16 bits alone (weights and input) and the noise at the
    heads' inputs is measured on calibration images with the C engine; layers
    are then taken by noise removed per multiply-accumulate while they fit in
    budget * all MACs.  A taken layer gets 16-bit weights while the .qweights
    file stays within size_budget * the float .weights file (its weights take
    2 bytes instead of 1), else it keeps 8-bit weights beside its 16-bit input.
    Returns ({layer: fraction of the all-8-bit output noise it removes},
    {layers that keep 8-bit weights})."""
    import tempfile
    outs = head_inputs(layers)
    xs = [load_input(p, net_shape(sections)) for p in images]
    ref = []
    with all_layers_network(cfg, weights, threads=threads, keep_outputs=True) as fnet:
        for x in xs:
            fnet.forward(x)
            ref.append([fnet.layer_output(i).astype(np.float64) for i in outs])
    signal = sum(float((r ** 2).sum()) for rs in ref for r in rs)

    def noise(gemm_bits, tmp):
        plans = make_plan(layers, w, cal, 8, method, head_bits, gemm_bits=gemm_bits,
                          weight_scale=weight_scale)
        qcfg, qpath = os.path.join(tmp, "m.cfg"), os.path.join(tmp, "m.qweights")
        with open(qcfg, "w", encoding="utf-8") as f:
            f.write(annotated_cfg(cfg_text, sections, plans, []))
        qwf.write(qpath, build_qweights(layers, plans))
        e = 0.0
        with all_layers_network(qcfg, qpath, threads=threads, keep_outputs=True) as qnet:
            for x, rs in zip(xs, ref):
                qnet.forward(x)
                for i, r in zip(outs, rs):
                    e += float(((qnet.layer_output(i) - r) ** 2).sum())
        return e

    gemm = [layer for layer in layers if layer.type in GEMM_TYPES]
    with tempfile.TemporaryDirectory(prefix="mdfi-mixed-") as tmp:
        base = noise({}, tmp)
        size = os.path.getsize(os.path.join(tmp, "m.qweights"))
        gains = {}
        for k, layer in enumerate(gemm):
            progress_line("--mixed: trying layer %d at 16 bits (%d/%d)"
                           % (layer.index, k + 1, len(gemm)), quiet)
            gains[layer.index] = (base - noise({layer.index: 16}, tmp)) / base if base else 0.0
    macs = {layer.index: gemm_macs(layer) for layer in gemm}
    extra = {layer.index: layer_weight_count(layer) for layer in gemm}
    max_size = math.inf if size_budget is None else size_budget * os.path.getsize(weights)
    total, used, chosen, narrow = sum(macs.values()), 0, {}, set()
    for i in sorted(gains, key=lambda i: -gains[i] / max(1, macs[i])):
        if gains[i] > 0 and used + macs[i] <= budget * total:
            chosen[i] = gains[i]
            used += macs[i]
            if size + extra[i] <= max_size:
                size += extra[i]
            else:
                narrow.add(i)
    progress_line("--mixed: 16-bit layers %s, of which %s keep 8-bit weights (%.1f%% of the "
                   "MACs, .qweights %.1f%% of the float file; %.1f dB at the heads' inputs with "
                   "all 8 bits)" % (sorted(chosen), sorted(narrow), 100.0 * used / total,
                      100.0 * size / os.path.getsize(weights),
                      10 * math.log10(signal / base) if base else math.inf), quiet)
    return chosen, narrow
