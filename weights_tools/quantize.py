"""Darknet float weights -> MDFI fixed point: formats, quantized weights, annotated cfg.

    python -m weights_tools quantize --cfg C --weights W --calib IMAGES_OR_DIR
                                     [--bits 8] [--mixed] -o OUT

writes OUT.cfg (the cfg with fixed_in/fixed_w/fixed_out keys) and OUT.qweights.
The pipeline itself is specified in docs/fixed-point.md; weights_tools/fixed_ref.py
is its bit-exact reference.

How formats are chosen
  * BN is folded into weights and bias (float64) before anything is quantized.
  * Every tensor (network input, each layer output) and every layer's weights
    get a fractional length F from their range: "maxabs" takes the largest F
    that does not clip the largest |value|; "mse" tries maxabs .. maxabs+3
    and keeps the one with the smallest squared error on the calibration
    sample (it may clip rare outliers).  Both are reported; --method picks,
    maxabs by default: mse gains SQNR but clips exactly the strong activations
    of confident detections, and loses more of them.
  * --per-channel: one power-of-two weight fraction per output channel
    (still shifts only: the requantization shift is per channel).
  * maxpool/upsample/dropout keep their input's format (no requantization).
  * Layers read only by float heads ([yolo], [softmax]) output --head-bits
    (16 by default): the head dequantizes them anyway and they are tiny.
  * 16-bit convolutions keep the int32 accumulator safe: their weight F is
    lowered until sum|w_q| * 2^15 + |bias_q| < 2^31 for every output channel.
  * Bias correction (--bias-images): layer by layer, the integer bias moves so
    that each channel's mean pre-activation in the quantized network (the
    bit-exact reference, on calibration images) equals the float network's.
  * --mixed raises to 16 bits (weights and input) the convolutions where
    8 bits cost most: each is raised alone and the noise it removes at the
    heads' inputs is measured (C engine, calibration images); layers are
    taken by noise removed per multiply-accumulate while they fit in
    --mixed-budget of all MACs (speed) and --mixed-size of the float file (size).
"""

import contextlib
import dataclasses
import io
import math
import os
import sys

import numpy as np

from weights_tools import qweights as qwf
from weights_tools.calibrate import (CalibrationError, calibrate, find_images, gain_positions,
                                     load_input)
from weights_tools.darknet_cfg import CfgError, infer_layers, net_shape, parse_cfg
from weights_tools.darknet_weights import read_weights
from weights_tools.fixed_ref import (FIXED_KEYS, FRAC_MAX, FRAC_MIN, HEAD_TYPES,
                                     INT_ACTIVATIONS, FixedNet, Fmt, dequantize,
                                     quantize_float)
from weights_tools.fixed_ref import Output as FixedOutput

PASS_THROUGH = ("maxpool", "upsample", "dropout")
GEMM_TYPES = ("convolutional", "connected")
INT32_MAX = (1 << 31) - 1


class RangeOverflowError(ValueError):
    """A range that no format of the chosen width can hold."""


# ----------------------------------------------------------------------------- numbers

def round_half_away(x):
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_weights(w, fmt):
    q = round_half_away(np.asarray(w, dtype=np.float64) * 2.0 ** fmt.frac)
    return np.clip(q, fmt.qmin, fmt.qmax).astype(fmt.dtype)


def frac_maxabs(max_abs, bits, what="range"):
    """Largest F (within FRAC_MIN..FRAC_MAX) with round(max_abs * 2^F) <= 2^(bits-1) - 1."""
    qmax = (1 << (bits - 1)) - 1
    if not math.isfinite(max_abs):
        raise RangeOverflowError("%s is not finite (inf/NaN in the float network?)" % what)
    if max_abs <= 0:
        return min(FRAC_MAX, bits - 1)
    f = math.floor(math.log2((qmax + 0.5) / max_abs)) + 1
    while f > FRAC_MIN and math.floor(max_abs * 2.0 ** f + 0.5) > qmax:
        f -= 1
    if math.floor(max_abs * 2.0 ** f + 0.5) > qmax:
        raise RangeOverflowError("%s: max |value| %.4g overflows %d-bit fixed point even with "
                                 "fractional length %d (the smallest allowed)"
                                 % (what, max_abs, bits, FRAC_MIN))
    return min(f, FRAC_MAX)


def quant_error(x, fmt, weights=False):
    """Sum of squared errors of quantizing x into fmt."""
    x = np.asarray(x, dtype=np.float64)
    if weights:
        back = quantize_weights(x, fmt).astype(np.float64) * fmt.step
    else:
        back = dequantize(quantize_float(x, fmt), fmt.frac).astype(np.float64)
    d = x - back
    return float(np.dot(d.ravel(), d.ravel()))


def choose_frac(x, max_abs, bits, method, what, weights=False):
    """(chosen F, {method: (F, SQNR dB)}) for data x (a sample) of known max |x|."""
    f0 = frac_maxabs(max_abs, bits, what)
    x = np.asarray(x, dtype=np.float64).ravel()
    energy = float(np.dot(x, x))

    def sq(f):
        e = quant_error(x, Fmt(bits, f), weights)
        return math.inf if e == 0 else (10 * math.log10(energy / e) if energy else -math.inf)
    options = {"maxabs": (f0, sq(f0))}
    best = (f0, options["maxabs"][1])
    for f in range(f0 + 1, min(FRAC_MAX, f0 + 3) + 1):
        s = sq(f)
        if s > best[1] + 1e-9:
            best = (f, s)
    options["mse"] = best
    return options[method][0], options


# ----------------------------------------------------------------------------- the graph

def layer_inputs(layer):
    sec, i = layer.section, layer.index
    if layer.type == "route":
        return [r + i if r < 0 else r for r in sec.get_ints("layers")]
    if layer.type == "shortcut":
        f = sec.get_int("from", 0)
        return [i - 1, f + i if f < 0 else f]
    return [i - 1]


def fold_bn(layer, arrays, transpose=False):
    """(W [M, K], b [M]) float64 with Darknet's BN folded in."""
    w = np.asarray(arrays["weights"], dtype=np.float64)
    m = layer.out_shape[0]
    if layer.type == "connected" and transpose:
        w = w.T
    w = w.reshape(m, -1).copy()
    b = np.asarray(arrays["biases"], dtype=np.float64).copy()
    if "scales" in arrays:
        s = np.asarray(arrays["scales"], np.float64) / (
            np.sqrt(np.asarray(arrays["rolling_variance"], np.float64)) + 1e-6)
        b = b - np.asarray(arrays["rolling_mean"], np.float64) * s
        w *= s[:, None]
    return w, b


def layer_weight_count(layer):
    """Number of weights of a convolutional/connected layer (what 16 bits doubles)."""
    return math.prod(next((shape for name, shape in layer.params if name == "weights"), (0,)))


def gemm_macs(layer):
    c, h, w = layer.in_shape
    m, oh, ow = layer.out_shape
    if layer.type == "connected":
        return c * h * w * m
    sec = layer.section
    size = sec.get_int("size", 1)
    return m * (c // sec.get_int("groups", 1)) * size * size * oh * ow


# ----------------------------------------------------------------------------- the plan

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


def _row_bounds(w_q, b_q, in_bits):
    """Per output channel: sum|w_q| * 2^(in_bits-1) + |b_q| (docs/fixed-point.md)."""
    return (np.abs(w_q.astype(np.int64)).sum(axis=1) << (in_bits - 1)) + \
        np.abs(np.asarray(b_q, dtype=np.int64))


def _acc_bound(w_q, b_q, in_bits):
    return int(_row_bounds(w_q, b_q, in_bits).max()) if w_q.size else 0


def _set_channel_weights(plan, w, w_q, b_q, fr, mults=None):
    """Stores per-channel weights (fixed_w=B:ch, or B:mul with mults) and their SQNR."""
    scale = 2.0 ** -fr if mults is None else mults * 2.0 ** -fr
    e = float(((w - w_q.astype(np.float64) * scale[:, None]) ** 2).sum())
    energy = float((w ** 2).sum())
    db = math.inf if e == 0 else 10 * math.log10(energy / e) if energy else -math.inf
    plan.w_sqnr = {"maxabs": (None, db), "mse": (None, db)}
    plan.w = Fmt(plan.w.bits, 0)
    plan.w_fracs = fr.astype(np.int8)
    plan.mults = None if mults is None else mults.astype(np.int32)
    plan.w_q = w_q
    plan.bias_q = b_q.astype(np.int32)


def _quantize_gemm_channels(plan, w, b, method):
    """Per-channel power-of-two weight fractions (fixed_w=BITS:ch)."""
    bits = plan.w.bits
    m = w.shape[0]
    fr = np.zeros(m, np.int64)
    w_q = np.zeros(w.shape, Fmt(bits, 0).dtype)
    b_q = np.zeros(m, np.int64)
    lowered = 0
    for r in range(m):
        f, _ = choose_frac(w[r], float(np.abs(w[r]).max()) if w.shape[1] else 0.0, bits, method,
                           "layer %d weights, channel %d" % (plan.index, r), weights=True)
        f0 = f
        while True:
            wr = quantize_weights(w[r], Fmt(bits, f))
            br = round_half_away(b[r] * 2.0 ** (plan.fin.frac + f))
            if abs(br) <= INT32_MAX and \
                    int(_row_bounds(wr[None], [br], plan.fin.bits)[0]) <= INT32_MAX:
                break
            if f <= FRAC_MIN:
                raise RangeOverflowError("layer %d channel %d: the int32 accumulator overflows for "
                                         "any weight format with input %s" % (plan.index, r, plan.fin))
            f -= 1
        lowered += f != f0
        fr[r], w_q[r], b_q[r] = f, wr, br
    if lowered:
        plan.notes.append("%d channels' weight F lowered for the int32 accumulator" % lowered)
    _set_channel_weights(plan, w, w_q, b_q, fr)


MULT_BITS = 15   # multipliers are 2^14 .. 2^15-1: a 16-bit signed operand in hardware


def mult_scale(scale):
    """(mult, frac) with mult * 2^-frac ~ scale, mult in [2^14, 2^15) and
    frac <= FRAC_MAX (smaller multipliers below that); (1, FRAC_MAX) for 0."""
    if not scale > 0:
        return 1, FRAC_MAX
    e = math.floor(math.log2(scale))
    f = MULT_BITS - 1 - e
    m = int(round_half_away(scale * 2.0 ** f))
    if m >= 1 << MULT_BITS:
        m, f = m >> 1, f - 1
    if f > FRAC_MAX:
        f = FRAC_MAX
        m = max(1, int(round_half_away(scale * 2.0 ** f)))
    if f < FRAC_MIN:
        raise RangeOverflowError("weight scale %.4g needs a fractional length below %d"
                                 % (scale, FRAC_MIN))
    return m, f


def _quantize_gemm_mult(plan, w, b, method):
    """Per-channel multiplier + shift (fixed_w=BITS:mul): channel m's weights
    are w_q * mult[m] * 2^-w_frac[m], so its largest weight maps to the top
    code (max-abs) or to the scale with the least squared error among
    max-abs * 2^(-j/4), j = 0..8 (mse)."""
    bits = plan.w.bits
    qmax = (1 << (bits - 1)) - 1
    m_out = w.shape[0]
    fr = np.zeros(m_out, np.int64)
    mu = np.ones(m_out, np.int64)
    w_q = np.zeros(w.shape, Fmt(bits, 0).dtype)
    b_q = np.zeros(m_out, np.int64)
    raised = 0

    def quant(row, mult, f):
        return np.clip(round_half_away(row * 2.0 ** f / mult), -qmax - 1, qmax)
    for r in range(m_out):
        row = w[r].astype(np.float64)
        top = float(np.abs(row).max()) if row.size else 0.0
        scales = [top / qmax]
        if method == "mse" and top > 0:
            scales += [top / qmax * 2.0 ** (-j / 4) for j in range(1, 9)]
        best = None
        for sc in scales:
            mult, f = mult_scale(sc)
            e = float(((row - quant(row, mult, f) * mult * 2.0 ** -f) ** 2).sum())
            if best is None or e < best[0] - 1e-18:
                best = (e, mult, f)
        _, mult, f = best
        grow = 0
        while True:
            wr = quant(row, mult, f)
            br = round_half_away(b[r] * 2.0 ** (plan.fin.frac + f) / mult)
            if abs(br) <= INT32_MAX and \
                    int(_row_bounds(wr[None].astype(np.int64), [br], plan.fin.bits)[0]) <= INT32_MAX:
                break
            if f <= FRAC_MIN:
                raise RangeOverflowError("layer %d channel %d: the int32 accumulator overflows for "
                                         "any weight scale with input %s" % (plan.index, r, plan.fin))
            f -= 1     # a coarser scale: halves sum|w_q|
            grow = 1
        raised += grow
        fr[r], mu[r], w_q[r], b_q[r] = f, mult, wr, br
    if raised:
        plan.notes.append("%d channels' weight scale raised for the int32 accumulator" % raised)
    _set_channel_weights(plan, w, w_q, b_q, fr, mu)


def _quantize_gemm(plan, w, b, method):
    """Weights and bias for plan.fin and plan.w.bits; lowers the weight F if the
    accumulator or the bias would overflow int32."""
    bits = plan.w.bits
    what = "layer %d weights" % plan.index
    f, options = choose_frac(w, float(np.abs(w).max()) if w.size else 0.0, bits, method, what,
                             weights=True)
    plan.w_sqnr = options
    while True:
        fmt = Fmt(bits, f)
        w_q = quantize_weights(w, fmt)
        scale = 2.0 ** (plan.fin.frac + f)
        b_q = round_half_away(b * scale)
        if np.abs(b_q).max(initial=0) <= INT32_MAX and \
                _acc_bound(w_q, b_q, plan.fin.bits) <= INT32_MAX:
            break
        if f <= FRAC_MIN:
            raise RangeOverflowError("layer %d: the int32 accumulator overflows for any weight "
                                     "format with input %s" % (plan.index, plan.fin))
        f -= 1
    if f != options[method][0]:
        plan.notes.append("weights F lowered %d -> %d for the int32 accumulator"
                          % (options[method][0], f))
        energy = float(np.dot(w.ravel(), w.ravel()))
        e = quant_error(w, fmt, weights=True)
        plan.w_sqnr = dict(options, chosen=(f, math.inf if e == 0 else 10 * math.log10(energy / e)))
    plan.w = fmt
    plan.w_q = w_q
    plan.bias_q = b_q.astype(np.int32)


WEIGHT_SCALES = {"layer": _quantize_gemm, "channel": _quantize_gemm_channels,
                 "mult": _quantize_gemm_mult}


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
        elif layer.type not in PASS_THROUGH + HEAD_TYPES + ("route", "shortcut", "avgpool"):
            raise CfgError("layer %d [%s] has no fixed-point form" % (layer.index, layer.type),
                           layer.section.file, layer.section.line)

    def tensor(j):
        return calib.input if j < 0 else calib.layers[j]

    def only_heads(j):
        cs = consumers[j]
        return bool(cs) and all(layers[c].type in HEAD_TYPES or
                                (layers[c].type == "dropout" and only_heads(c)) for c in cs)

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
            continue
        srcs = [plans[j].out if j >= 0 else None for j in inputs[i]]
        st = calib.layers[i]
        what = "layer %d [%s] output" % (i, kind)
        if st.nonfinite:
            raise RangeOverflowError("%s: %d inf/NaN values in the float network"
                                     % (what, st.nonfinite))
        if kind == "dropout":
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


# ----------------------------------------------------------------------------- --mixed

def head_inputs(layers):
    """Layers whose outputs the float heads read (or the last layer): where the
    network's accuracy is measured."""
    heads = [layer.index - 1 for layer in layers if layer.type in HEAD_TYPES]
    return sorted(set(heads)) or [len(layers) - 1]


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
    import mdfi
    outs = head_inputs(layers)
    xs = [load_input(p, net_shape(sections)) for p in images]
    ref = []
    with mdfi.Network(cfg, weights, threads=threads, keep_outputs=True) as fnet:
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
        with mdfi.Network(qcfg, qpath, threads=threads, keep_outputs=True) as qnet:
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
            _progress_line("--mixed: trying layer %d at 16 bits (%d/%d)"
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
    _progress_line("--mixed: 16-bit layers %s, of which %s keep 8-bit weights (%.1f%% of the "
                   "MACs, .qweights %.1f%% of the float file; %.1f dB at the heads' inputs with "
                   "all 8 bits)" % (sorted(chosen), sorted(narrow), 100.0 * used / total,
                      100.0 * size / os.path.getsize(weights),
                      10 * math.log10(signal / base) if base else math.inf), quiet)
    return chosen, narrow


# ----------------------------------------------------------------------------- bias correction

GAIN_LIMITS = (0.8, 1.25)   # a per-channel gain outside this is noise, not shrinkage
GAIN_MIN_SAMPLES = 256      # values per channel a slope is measured on (a connected layer
                            # has one per image: its gains are left alone)


def _correct_gain(p, i, acc, float_pre):
    """fixed_w=B:mul layers: per output channel, the slope of the quantized
    pre-activation against the float one (least squares over the calibration
    inputs) is divided out of the multiplier, so quantization does not shrink
    the channel's signal.  Updates p.mults and p.w_fracs (a multiplier that
    outgrows 15 bits is halved with its fraction)."""
    s = p.acc_scale()
    fs, qs = [], []
    for a, f in zip(acc, float_pre):
        a = a.reshape(a.shape[0], -1)
        fs.append(f[i].astype(np.float64))
        qs.append(a[:, gain_positions(a.shape[1], i)] * 2.0 ** -s[:, None])
    f = np.concatenate(fs, axis=1)
    q = np.concatenate(qs, axis=1)
    if f.shape[1] < GAIN_MIN_SAMPLES:
        return
    fc = f - f.mean(axis=1, keepdims=True)
    qc = q - q.mean(axis=1, keepdims=True)
    num = (fc * qc).sum(axis=1)
    den = (fc * fc).sum(axis=1)
    gain = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    gain = np.where((gain >= GAIN_LIMITS[0]) & (gain <= GAIN_LIMITS[1]), gain, 1.0)
    mult = np.maximum(round_half_away(p.mults / gain).astype(np.int64), 1)
    frac = p.w_fracs.astype(np.int64)
    big = (mult > qwf.MULT_MAX) & (frac > FRAC_MIN)
    mult[big] = round_half_away(mult[big] / 2.0)
    frac[big] -= 1
    mult = np.minimum(mult, qwf.MULT_MAX)   # only at the smallest fraction
    p.mults = mult.astype(np.int32)
    p.w_fracs = frac.astype(np.int8)


def correct_biases(layers, plans, sections_q, qw, calib, inputs, quiet=True, float_pre=None):
    """Empirical bias correction, layer by layer in network order.

    The quantized network (bit-exact reference) runs on the calibration
    inputs; at each [convolutional]/[connected] layer with a leaky or linear
    activation the mean pre-activation of every output channel is compared
    with the float network's (calib.pre_means) and the integer bias moves by
    the difference, so quantization errors do not add up to a drift of the
    channel means.  With float_pre (calib.pre_samples) and per-channel
    multipliers, each channel's gain is corrected first (_correct_gain).
    Later layers see the corrected outputs.  Returns the number of layers
    corrected."""
    net = FixedNet(sections_q, qw)
    outs = [[] for _ in inputs]
    done = 0
    for i, spec in enumerate(net.specs):
        p = plans[i]
        acc = [None] * len(inputs)
        gain = float_pre is not None and p.mults is not None and i in float_pre[0]
        if (i in calib.pre_means or gain) and p.fin is not None:
            for k, x in enumerate(inputs):
                ins = [FixedOutput(f=x) if j < 0 else outs[k][j] for j in spec["inputs"]]
                acc[k] = net.accumulate(i, ins)
        if gain:
            _correct_gain(p, i, acc, float_pre)
            spec["mults"], spec["w_fracs"] = p.mults.astype(np.int64), p.w_fracs.astype(np.int64)
            qw.records[i].mults, qw.records[i].w_fracs = p.mults, p.w_fracs
        if i in calib.pre_means and p.fin is not None:
            s = p.acc_scale()
            qmean = sum(a.reshape(a.shape[0], -1).mean(axis=1) for a in acc)
            qmean = qmean / len(inputs) * 2.0 ** -s
            dq = round_half_away((calib.pre_means[i] - qmean) * 2.0 ** s).astype(np.int64)
            new = p.bias_q.astype(np.int64) + dq
            if np.abs(new).max() <= INT32_MAX and \
                    _acc_bound(p.w_q, new, p.fin.bits) <= INT32_MAX:
                p.bias_q = new.astype(np.int32)
                spec["bias"] = p.bias_q
                qw.records[i].bias = p.bias_q
                acc = [a + dq[:, None, None] if a is not None else None for a in acc]
                done += 1
        for k, x in enumerate(inputs):
            ins = [FixedOutput(f=x) if j < 0 else outs[k][j] for j in spec["inputs"]]
            outs[k].append(net.run_layer(i, ins, acc[k]))
        if not quiet and p.fin is not None:
            _progress_line("bias correction: layer %d" % i, quiet)
    return done


# ----------------------------------------------------------------------------- outputs

def annotated_cfg(cfg_text, sections, plans, header):
    """The cfg text with fixed_* keys right after each section header."""
    lines = cfg_text.split("\n")
    inserts = {}
    for sec, p in zip(sections[1:], plans):
        add = []
        if p.fin is not None:
            add.append("fixed_in=%s" % p.fin)
            add.append("fixed_w=%s" % p.w_key())
        if p.out is not None and p.type not in HEAD_TYPES + ("dropout",):
            add.append("fixed_out=%s" % p.out)
        if add:
            inserts[sec.line] = add
    out = list(header)
    for no, line in enumerate(lines, start=1):
        out.append(line)
        if no in inserts:
            out.extend(inserts[no])
    return "\n".join(out)


def build_qweights(layers, plans):
    qw = qwf.QWeights(len(layers))
    for layer, p in zip(layers, plans):
        if p.fin is None:
            continue
        kind = qwf.KIND_CONV if layer.type == "convolutional" else qwf.KIND_CONNECTED
        groups = layer.section.get_int("groups", 1) if kind == qwf.KIND_CONV else 1
        qw.records[layer.index] = qwf.QRecord(
            layer.index, kind, groups, (p.fin.bits, p.fin.frac), (p.w.bits, p.w.frac),
            (p.out.bits, p.out.frac), p.bias_q, p.w_q,
            0 if p.w_fracs is None else 2 if p.mults is not None else 1, p.w_fracs, p.mults)
    return qw


def output_paths(out):
    base = out[:-4] if out.endswith(".cfg") else out
    return base + ".cfg", base + ".qweights"


# ----------------------------------------------------------------------------- verification

def compare(cfg, weights, qcfg, qweights, images, engine="auto", threads=1, quiet=True):
    """Per-layer SQNR (dB) of the quantized net against the float net over images,
    and the engine used ('c' or 'ref')."""
    import mdfi
    sig = None
    with mdfi.Network(cfg, weights, threads=threads, keep_outputs=True) as fnet:
        qnet, used = None, engine
        if engine in ("auto", "c"):
            try:
                qnet = mdfi.Network(qcfg, qweights, threads=threads, keep_outputs=True)
                used = "c"
            except mdfi.MdfiError:
                if engine == "c":
                    raise
                used = "ref"
        ref = FixedNet(qcfg, qweights) if used == "ref" else None
        try:
            n = len(fnet.layers)
            sig, noise = np.zeros(n), np.zeros(n)
            for k, path in enumerate(images):
                _progress_line("checking %d/%d: %s" % (k + 1, len(images), os.path.basename(path)),
                               quiet)
                x = load_input(path, fnet.input_shape)
                fnet.forward(x)
                if qnet is not None:
                    qnet.forward(x)
                    qouts = [qnet.layer_output(i) for i in range(n)]
                else:
                    qouts = [o.value for o in ref.forward(x)]
                for i in range(n):
                    f = fnet.layer_output(i).astype(np.float64).ravel()
                    d = f - np.asarray(qouts[i], np.float64).ravel()
                    sig[i] += float(np.dot(f, f))
                    noise[i] += float(np.dot(d, d))
        finally:
            if qnet is not None:
                qnet.close()
    db = [math.inf if e == 0 else (10 * math.log10(s / e) if s else -math.inf)
          for s, e in zip(sig, noise)]
    return db, used


def _progress_line(msg, quiet):
    if not quiet:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def _fmt_db(v):
    if v is None:
        return "-"
    return "inf" if v == math.inf else "%.1f" % v


def report_table(layers, plans, e2e=None, file=sys.stdout):
    print("%5s %-14s %-7s %-7s %-7s %13s %13s %8s  %s" % (
        "layer", "type", "in", "weights", "out", "w SQNR max/mse", "a SQNR max/mse",
        "net SQNR", "notes"), file=file)
    for layer, p in zip(layers, plans):
        w = "%s/%s" % (_fmt_db(p.w_sqnr["maxabs"][1]), _fmt_db(p.w_sqnr["mse"][1])) \
            if p.w_sqnr else "-"
        if p.w_sqnr and "chosen" in p.w_sqnr:
            w = "%s>%s" % (w, _fmt_db(p.w_sqnr["chosen"][1]))
        a = "%s/%s" % (_fmt_db(p.a_sqnr["maxabs"][1]), _fmt_db(p.a_sqnr["mse"][1])) \
            if p.a_sqnr else "-"
        print("%5d %-14s %-7s %-7s %-7s %13s %13s %8s  %s" % (
            layer.index, layer.type, p.fin or "", p.w_key() if p.w else "", p.out or "float", w, a,
            _fmt_db(e2e[layer.index]) if e2e else "-", "; ".join(p.notes)), file=file)


def quantize(cfg, weights, calib, out, bits=8, mixed=False, method="maxabs", head_bits=16,
             mixed_budget=0.5, mixed_size=0.30, check_images=None, threads=1, engine="auto", quiet=False,
             report=True, samples=200_000, bias_images=8, per_channel=False,
             mixed_layers=None, weight_scale=None, gain=True, narrow_layers=None, act_bits=None):
    """Calibrates, chooses formats, writes OUT.cfg and OUT.qweights.
    weight_scale: "layer" (default), "channel" (per_channel=True says the
    same) or "mult".  Returns a dict: paths, plans, per-layer SQNR."""
    if weight_scale is None:
        weight_scale = "channel" if per_channel else "layer"
    elif per_channel and weight_scale != "channel":
        raise ValueError("--per-channel contradicts --weight-scale %s" % weight_scale)
    if weight_scale not in WEIGHT_SCALES:
        raise ValueError("--weight-scale must be one of %s, not %r"
                         % (", ".join(WEIGHT_SCALES), weight_scale))
    if bits not in (8, 16):
        raise ValueError("--bits must be 8 or 16, not %d" % bits)
    if method not in ("mse", "maxabs"):
        raise ValueError("--method must be mse or maxabs")
    if not mixed_budget > 0 or not mixed_size > 0:
        raise ValueError("--mixed-budget and --mixed-size must be positive fractions, got %r "
                         "and %r" % (mixed_budget, mixed_size))
    with open(cfg, "rb") as f:
        cfg_text = f.read().decode("utf-8", "replace")
    sections = parse_cfg(cfg_text)
    for s in sections[1:]:
        if any(k in s.options for k in FIXED_KEYS):
            raise CfgError("%s is already quantized (it has fixed_* keys)" % cfg)
    for s in sections:
        s.file = os.fspath(cfg)
    layers = infer_layers(sections)
    if act_bits not in (None, bits, 16):
        raise ValueError("--act-bits must be 16 (with --bits 8) or equal --bits")
    if act_bits == 16 and bits == 8:   # every layer: 16-bit input, 8-bit weights
        if mixed or mixed_layers is not None:
            raise ValueError("--act-bits 16 already raises every layer; drop --mixed")
        mixed_layers = narrow_layers = [layer.index for layer in layers
                                        if layer.type in GEMM_TYPES]
    raised, narrow = {}, set(narrow_layers or ())
    if narrow and (bits != 8 or mixed_layers is None):
        raise ValueError("--mixed-narrow needs 8 bits and --mixed-layers")
    if not narrow <= set(mixed_layers or ()):
        raise ValueError("--mixed-narrow: %s are not in --mixed-layers"
                         % sorted(narrow - set(mixed_layers or ())))
    w = read_weights(layers, weights)
    images = find_images(calib)
    acts = {layer.index: layer.section.get_str("activation", "logistic") for layer in layers
            if layer.type in GEMM_TYPES} if bias_images else None
    cal = calibrate(cfg, weights, images, samples=samples, threads=threads, quiet=quiet,
                    activations=acts, mean_images=bias_images,
                    pre_samples=bool(gain and weight_scale == "mult"))
    if mixed_layers is not None and bits == 8:
        bad = [i for i in mixed_layers if not 0 <= i < len(layers) or
               layers[i].type not in GEMM_TYPES]
        if bad:
            raise ValueError("--mixed-layers: %s are not convolutional/connected layers" % bad)
        raised = {i: math.nan for i in mixed_layers}
        mixed = True
    elif mixed and bits == 8:
        raised, narrow = choose_mixed(cfg, weights, cfg_text, sections, layers, w, cal,
                                      images[:4], method, head_bits, weight_scale, mixed_budget,
                                      threads, quiet, mixed_size)
    plans = make_plan(layers, w, cal, bits, method, head_bits,
                      gemm_bits={i: 16 for i in raised}, weight_scale=weight_scale,
                      weight_bits={i: 8 for i in narrow})
    for i, g in raised.items():
        if plans[i].fin.bits != 16:
            continue     # kept at 8 bits (make_plan says why)
        plans[i].notes.append("raised to 16 bits%s (%s%s)" % (
            ", weights kept at 8" if i in narrow else "",
            "--act-bits 16" if act_bits == 16 else "--mixed",
            "" if math.isnan(g) else "; output noise -%.1f%%" % (100 * g)))
    qcfg, qpath = output_paths(os.fspath(out))
    mode = "%d-bit%s" % (bits, " weights, 16-bit activations" if act_bits == 16 and bits == 8
                         else " mixed 8/16" if mixed else "")
    header = ["# Quantized by `python -m weights_tools quantize` (%s, %s formats, %d calibration "
              "images)." % (mode, method, len(images)),
              "# fixed_in / fixed_w / fixed_out = BITS:FRAC (value = integer * 2^-FRAC); see "
              "docs/fixed-point.md.",
              "# Weights: %s" % os.path.basename(qpath), ""]
    text = annotated_cfg(cfg_text, sections, plans, header)
    qw = build_qweights(layers, plans)
    n_corrected = 0
    if bias_images:
        shape = net_shape(sections)
        inputs = [load_input(p, shape) for p in images[:bias_images]]
        qsec = parse_cfg(text)
        for s in qsec:
            s.file = qcfg
        n_corrected = correct_biases(layers, plans, qsec, qw, cal, inputs, quiet,
                                     cal.pre_samples or None)
    os.makedirs(os.path.dirname(os.path.abspath(qcfg)), exist_ok=True)
    with open(qcfg, "w", encoding="utf-8") as f:
        f.write(text)
    size = qwf.write(qpath, qw)
    e2e, used = None, None
    if check_images is not False:
        imgs = find_images(check_images) if check_images else images[:4]
        e2e, used = compare(cfg, weights, qcfg, qpath, imgs, engine, threads, quiet)
    if report:
        out_f = sys.stdout
        print("%s: %s, %s; %d calibration images; bias correction on %d layers"
              % (qcfg, mode, method, len(images), n_corrected), file=out_f)
        report_table(layers, plans, e2e, out_f)
        fsize = os.path.getsize(weights)
        print("wrote %s and %s (%d bytes, %.1f%% of the float weights)%s"
              % (qcfg, qpath, size, 100.0 * size / fsize,
                 "; net SQNR from the %s engine" % used if used else ""), file=out_f)
    return {"cfg": qcfg, "qweights": qpath, "plans": plans, "sqnr": e2e, "engine": used,
            "images": images}


# ----------------------------------------------------------------------------- command line

def add_arguments(p):
    p.add_argument("--cfg", required=True, help="Darknet .cfg")
    p.add_argument("--weights", required=True, help="Darknet float .weights")
    p.add_argument("--calib", required=True, nargs="+", metavar="IMAGES_OR_DIR",
                   help="calibration images or folders of images (.npy: letterboxed inputs)")
    p.add_argument("--bits", type=int, default=8, choices=(8, 16),
                   help="width of weights and activations (default 8)")
    p.add_argument("--act-bits", type=int, choices=(8, 16),
                   help="16 with --bits 8: 16-bit activations and 8-bit weights in every layer "
                        "(the file stays 8-bit)")
    p.add_argument("--mixed", action="store_true",
                   help="raise the convolutions where 8 bits cost most to 16 bits")
    p.add_argument("--mixed-budget", type=float, default=0.5,
                   help="with --mixed: at most this fraction of all MACs at 16 bits (0.5)")
    p.add_argument("--mixed-size", type=float, default=0.30,
                   help="with --mixed: the .qweights file at most this fraction of the float "
                        ".weights file (0.30)")
    p.add_argument("--mixed-layers", metavar="I,J,...",
                   type=lambda s: [int(v) for v in s.split(",") if v.strip()],
                   help="raise exactly these layers to 16 bits (instead of measuring)")
    p.add_argument("--mixed-narrow", metavar="I,J,...",
                   type=lambda s: [int(v) for v in s.split(",") if v.strip()],
                   help="of --mixed-layers, these keep 8-bit weights (16-bit input)")
    p.add_argument("--method", choices=("mse", "maxabs"), default="maxabs",
                   help="fractional length choice (default maxabs; both are reported)")
    p.add_argument("--weight-scale", choices=tuple(WEIGHT_SCALES), default=None,
                   help="weight scales: one power of two per layer (layer, the default), one "
                        "per output channel (channel: fixed_w=B:ch) or a multiplier and a "
                        "shift per output channel (mult: fixed_w=B:mul)")
    p.add_argument("--per-channel", action="store_true",
                   help="the same as --weight-scale channel")
    p.add_argument("--bias-images", type=int, default=8,
                   help="calibration images for the bias correction (0: none; default 8)")
    p.add_argument("--head-bits", type=int, choices=(8, 16), default=16,
                   help="output width of layers read only by [yolo]/[softmax] (16)")
    p.add_argument("--check", nargs="*", metavar="IMAGE",
                   help="images for the end-to-end SQNR column (default: the first 4 "
                        "calibration images; --check with nothing: skip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("-o", "--out", required=True,
                   help="output prefix: writes OUT.cfg and OUT.qweights")


def run_from_args(args):
    from mdfi import errors
    check = args.check
    if check is not None and len(check) == 0:
        check = False
    try:
        quantize(args.cfg, args.weights, args.calib, args.out, bits=args.bits, mixed=args.mixed,
                 method=args.method, head_bits=args.head_bits, mixed_budget=args.mixed_budget,
                 mixed_size=args.mixed_size,
                 check_images=check, threads=args.threads, quiet=args.quiet,
                 per_channel=args.per_channel, weight_scale=args.weight_scale,
                 bias_images=args.bias_images,
                 mixed_layers=args.mixed_layers, narrow_layers=args.mixed_narrow,
                 act_bits=args.act_bits)
    except (CfgError, CalibrationError, RangeOverflowError, qwf.QWeightsError, ValueError,
            OSError, errors.MdfiError) as e:
        print("weights_tools quantize: error: %s" % e, file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- a cached int8 model

INT8_CACHE_TAG = "int8-v2"
# --int8: 8-bit weights with per-channel multipliers; the layers where 8-bit
# activations cost most (up to 60 % of the MACs) take 16-bit input, keeping
# 8-bit weights once the file reaches 30 % of the float one.  This keeps all
# the float detections in benchmarks/int8_accuracy.py at ~0.31x OpenCV fp32
# (docs/fixed-point.md); the all-8-bit power-of-two model keeps 80 %.
INT8_RECIPE = dict(mixed=True, mixed_budget=0.6, weight_scale="mult")


def calibration_photos():
    """(description, [paths]) of the photos --int8 models are calibrated on:
    scikit-image's photos, or scikit-learn's two if scikit-image is missing."""
    from weights_tools.evaluate import sklearn_photos, skimage_photos
    for name, fn in (("the photos scikit-image ships", skimage_photos),
                     ("the photos scikit-learn ships", sklearn_photos)):
        try:
            paths = fn()
        except ImportError:
            continue
        if paths:
            return name, paths
    raise CalibrationError("--int8 calibrates on the photos scikit-image (or scikit-learn) "
                           "ships; install scikit-image")


def cached_int8(cfg, weights, quiet=False):
    """(cfg, qweights) of the 8-bit model (INT8_RECIPE) of a fetched float
    model, made on first use and kept beside it (NAME.int8-v2.cfg / .qweights)."""
    base = os.path.splitext(os.fspath(weights))[0] + "." + INT8_CACHE_TAG
    qcfg, qpath = base + ".cfg", base + ".qweights"
    if os.path.exists(qcfg) and os.path.exists(qpath):
        return qcfg, qpath
    what, photos = calibration_photos()
    if not quiet:
        sys.stderr.write("quantizing %s to int8, calibrated on %s (%d images); cached as %s\n"
                         % (os.path.basename(os.fspath(weights)), what, len(photos), qpath))
    tmp = "%s.tmp%d" % (base, os.getpid())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize(cfg, weights, photos, tmp, quiet=True, check_images=False, **INT8_RECIPE)
        # the cfg names its weights file: point it at the final name
        with open(tmp + ".cfg", encoding="utf-8") as f:
            text = f.read().replace(os.path.basename(tmp) + ".qweights",
                                    os.path.basename(qpath))
        with open(tmp + ".cfg", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp + ".qweights", qpath)
        os.replace(tmp + ".cfg", qcfg)
    finally:
        for p in (tmp + ".cfg", tmp + ".qweights"):
            if os.path.exists(p):
                os.remove(p)
    return qcfg, qpath
