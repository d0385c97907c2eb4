"""Planning: the format of every tensor and the width of every layer."""
import dataclasses

import numpy as np

from weights_tools.darknet_cfg import CfgError
from weights_tools.fixed_ref import HEAD_TYPES, IDENTITY_TYPES, INT_ACTIVATIONS, Fmt, exit_arrays
from weights_tools.quantize.formats import RangeOverflowError, choose_frac, frac_maxabs
from weights_tools.quantize.graph import (FIXED_TYPES, GEMM_TYPES, PASS_THROUGH, fold_bn,
                                          gemm_macs, layer_inputs)
from weights_tools.quantize.weights import WEIGHT_SCALES


@dataclasses.dataclass
class LayerPlan:
    index: int
    type: str
    out: Fmt = None          # None: float output (heads)
    fin: Fmt = None          # conv/connected operand format
    w: Fmt = None
    bias_q: np.ndarray = None
    w_q: np.ndarray = None
    notes: list = dataclasses.field(default_factory=list)
    w_sqnr: dict = None      # method -> (F, dB)
    a_sqnr: dict = None      # output: method -> (F, dB)
    macs: int = 0
    gain: float = None       # --mixed: output noise removed by raising it to 16 bits
    w_fracs: np.ndarray = None   # per-channel weight fractions (fixed_w=BITS:ch / BITS:mul)
    mults: np.ndarray = None     # per-channel multipliers (fixed_w=BITS:mul)
    arrays: dict = None          # [exit]: its predictors' float32 arrays by .qweights name

    def w_key(self):
        if self.mults is not None:
            return "%d:mul" % self.w.bits
        return "%d:ch" % self.w.bits if self.w_fracs is not None else str(self.w)

    def acc_scale(self):
        """log2 of the accumulator's scale (acc * 2^-scale is the real value),
        per output channel (array) or scalar."""
        if self.w_fracs is None:
            return self.fin.frac + self.w.frac
        s = self.fin.frac + self.w_fracs.astype(np.int64)
        return s - np.log2(self.mults.astype(np.float64)) if self.mults is not None else s


W8A16_MAX_LOSS_DB = 6.0   # weight SQNR a 16-bit input may cost 8-bit weights (one bit)


def _w8_fits_16bit_input(layer, src, folded, quantize_gemm, method):
    """Whether 8-bit weights keep (nearly) their own scale beside a 16-bit
    input: the accumulator bound sum|w_q| * 2^15 + |bias| < 2^31 may coarsen
    them; more than W8A16_MAX_LOSS_DB of weight SQNR lost is not worth it."""
    def weight_db(in_bits):
        p = LayerPlan(layer.index, layer.type)
        p.fin = Fmt(in_bits, frac_maxabs(src.max_abs, in_bits, "layer %d input" % layer.index))
        p.w = Fmt(8, 0)
        quantize_gemm(p, *folded, method)
        return p.w_sqnr.get("chosen", p.w_sqnr[method])[1]
    return weight_db(16) >= weight_db(8) - W8A16_MAX_LOSS_DB


def make_plan(layers, weights, calib, bits=8, method="maxabs", head_bits=16, gemm_bits=None,
              tensor_bits=None, weight_scale="layer", weight_bits=None):
    """Chooses every format; returns [LayerPlan].  gemm_bits / tensor_bits:
    {layer: 8|16} forcing a layer's operand width (its input is widened to
    match) / its output width; weight_bits: {layer: 8} keeps the weights of
    a 16-bit operand layer at 8 bits (fixed_in=16:F, fixed_w=8:...).
    weight_scale: "layer" (one power of two per layer), "channel" (one power
    of two per output channel) or "mult" (a multiplier and a shift per output
    channel)."""
    quantize_gemm = WEIGHT_SCALES[weight_scale]
    n = len(layers)
    inputs = [layer_inputs(layer) for layer in layers]
    consumers = [[] for _ in range(n)]
    for i in range(n):
        for j in inputs[i]:
            if j >= 0:
                consumers[j].append(i)
    plans = [LayerPlan(i, layers[i].type) for i in range(n)]
    folded = {}
    for layer in layers:
        if layer.type in GEMM_TYPES:
            if layer.section.get_int("xnor", 0):
                raise CfgError("layer %d [%s]: xnor convolutions have no fixed-point form"
                               % (layer.index, layer.type), layer.section.file,
                               layer.section.line)
            act = layer.section.get_str("activation", "logistic")
            if act not in INT_ACTIVATIONS:
                raise CfgError("layer %d [%s]: activation %s has no integer form (linear, relu, "
                               "leaky)" % (layer.index, layer.type, act), layer.section.file,
                               layer.section.line)
            folded[layer.index] = fold_bn(layer, weights.layers[layer.index], weights.transpose)
            plans[layer.index].macs = gemm_macs(layer)
        elif layer.type not in FIXED_TYPES:
            raise CfgError("layer %d [%s] has no fixed-point form" % (layer.index, layer.type),
                           layer.section.file, layer.section.line)

    def tensor(j):
        return calib.input if j < 0 else calib.layers[j]

    def only_heads(j):
        cs = consumers[j]
        return bool(cs) and all(layers[c].type in HEAD_TYPES or
                                (layers[c].type in IDENTITY_TYPES and only_heads(c)) for c in cs)

    # bits of every tensor; -1 is the network input (float)
    forced, gemm_bits = gemm_bits or {}, {i: bits for i in folded}
    gemm_bits.update({i: b for i, b in forced.items() if i in gemm_bits})
    weight_bits = dict(weight_bits or {})
    kept8 = []
    for i in sorted(weight_bits):
        # 16-bit input with 8-bit weights only where the int32 accumulator bound
        # leaves the weights (nearly) their 8-bit scale; else 8-bit input
        if gemm_bits.get(i) == 16 and weight_bits[i] == 8 and \
                not _w8_fits_16bit_input(layers[i], tensor(inputs[i][0]), folded[i],
                                         quantize_gemm, method):
            gemm_bits[i] = 8
            del weight_bits[i]
            kept8.append(i)
    out_bits = [bits] * n

    def widen(j):
        if j < 0 or out_bits[j] == 16:
            return
        out_bits[j] = 16
        if layers[j].type in PASS_THROUGH + ("route",):
            for s in inputs[j]:
                widen(s)
    for i, b in gemm_bits.items():
        if b == 16:
            widen(inputs[i][0])
    for j in range(n):
        if only_heads(j):
            out_bits[j] = max(out_bits[j], head_bits)
    for j, b in (tensor_bits or {}).items():
        out_bits[j] = b

    for i, layer in enumerate(layers):
        p = plans[i]
        kind = layer.type
        if kind in HEAD_TYPES:
            p.out = None
            if kind == "exit":   # its predictors stay float (docs/early-exit.md)
                got = weights.layers[i]
                p.arrays = {q: np.asarray(got[name], np.float32).ravel()
                            for (q, _), (name, _) in zip(exit_arrays(layer), layer.params)}
            continue
        srcs = [plans[j].out if j >= 0 else None for j in inputs[i]]
        st = calib.layers[i]
        what = "layer %d [%s] output" % (i, kind)
        if st.nonfinite:
            raise RangeOverflowError("%s: %d inf/NaN values in the float network"
                                     % (what, st.nonfinite))
        if kind in IDENTITY_TYPES:
            p.out = srcs[0]
            continue
        if kind in PASS_THROUGH and srcs[0] is not None and srcs[0].bits == out_bits[i]:
            p.out = srcs[0]
        elif kind == "route" and srcs and all(s == srcs[0] for s in srcs) and \
                srcs[0].bits == out_bits[i]:
            p.out = srcs[0]
        else:
            f, p.a_sqnr = choose_frac(st.sample(), st.max_abs, out_bits[i], method, what)
            p.out = Fmt(out_bits[i], f)
        if kind in GEMM_TYPES:
            wb = gemm_bits[i]
            src = srcs[0]
            if src is not None and src.bits == wb:
                p.fin = src
            elif src is not None and src.bits < wb:
                p.fin = Fmt(wb, src.frac)    # exact widening
            else:
                s_in = tensor(inputs[i][0])
                f, _ = choose_frac(s_in.sample(), s_in.max_abs, wb, method,
                                   "layer %d input" % i)
                p.fin = Fmt(wb, f)
            p.w = Fmt(min(wb, weight_bits.get(i, wb)), 0)
            quantize_gemm(p, *folded[i], method)
        if kind == "shortcut":
            fa, fb = srcs
            f = max(fa.frac, fb.frac)
            for s in srcs:
                if s.bits - 1 + f - s.frac > 30:
                    raise RangeOverflowError("layer %d [shortcut]: inputs %s and %s are too far "
                                             "apart to add in int32" % (i, fa, fb))
    for i in kept8:
        plans[i].notes.append("kept at 8-bit input: with 16-bit input the int32 accumulator "
                              "would cost its 8-bit weights over %g dB" % W8A16_MAX_LOSS_DB)
    return plans
