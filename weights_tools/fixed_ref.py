"""Bit-exact numpy reference of MDFI's fixed-point (integer) pipeline.

It follows docs/fixed-point.md line by line; the C layers (csrc/layers/fixed_*.c)
must give the same integers for every layer.  Integer convolutions run as
float64 matrix products: every product and every partial sum is an integer
below 2^53, so BLAS computes them exactly whatever its summation order.

    net = FixedNet("net.q8.cfg", "net.q8.qweights")
    outs = net.forward(x)        # x: float32 [c, h, w]; one entry per layer
    outs[3].q, outs[3].fmt       # integer array and its Fmt(bits, frac)
    outs[16].value               # float32 (dequantized, or a float head's output)

A network with [exit] layers runs every branch (MDFI's policy "all"): the
branch layers are integer layers like any other, the [exit] itself is a float
head whose predictors read its branch point's integers (docs/early-exit.md).
"""

import dataclasses
import math
import re

import numpy as np
from numpy.lib.stride_tricks import as_strided

from mdfi.layer_kinds import names
from weights_tools import qweights as qwf
from weights_tools.darknet_cfg import CfgError, exit_options, infer_layers, parse_cfg

LEAKY_MULT = 3277     # leaky slope 3277 / 2^15 = 0.100006103515625
LEAKY_SHIFT = 15
FRAC_MIN, FRAC_MAX = -16, 31
FIXED_KEYS = ("fixed_in", "fixed_w", "fixed_out")
INT_ACTIVATIONS = ("linear", "relu", "leaky")
HEAD_TYPES = names("head", "fixed")
IDENTITY_TYPES = names("identity")   # dropout, cost: the output is the input
GEMM_TYPES = names("gemm")


@dataclasses.dataclass(frozen=True)
class Fmt:
    """A fixed-point format: `bits`-bit two's complement, value = q * 2^-frac."""
    bits: int
    frac: int

    def __str__(self):
        return "%d:%d" % (self.bits, self.frac)

    @property
    def qmin(self):
        return -(1 << (self.bits - 1))

    @property
    def qmax(self):
        return (1 << (self.bits - 1)) - 1

    @property
    def dtype(self):
        return np.int8 if self.bits == 8 else np.int16

    @property
    def step(self):
        return 2.0 ** -self.frac

    @property
    def max_value(self):
        return self.qmax * self.step


def parse_fmt(text, where="format"):
    """'8:7' -> Fmt(8, 7)."""
    m = re.fullmatch(r"(8|16):(-?\d+)", text or "")
    if not m:
        raise CfgError("%s: '%s' is not BITS:FRAC with BITS 8 or 16 (e.g. 8:7)" % (where, text))
    f = Fmt(int(m.group(1)), int(m.group(2)))
    if not FRAC_MIN <= f.frac <= FRAC_MAX:
        raise CfgError("%s: fractional length %d is outside %d..%d"
                       % (where, f.frac, FRAC_MIN, FRAC_MAX))
    return f


# ----------------------------------------------------------------------------- the arithmetic

def rshift_round(x, s):
    """floor(x / 2^s + 1/2) for s > 0 (round half up); x * 2^-s for s <= 0.

    Every caller saturates the result to 8 or 16 bits, so (as in C) huge
    shifts are clamped where the saturated result cannot change: |x| < 2^47
    gives 0 for s >= 48, and a left shift of a nonzero |x| by 20 saturates."""
    x = np.asarray(x, dtype=np.int64)
    if s > 0:
        s = min(s, 48)
        return (x + (np.int64(1) << np.int64(s - 1))) >> np.int64(s)
    return np.clip(x, -(1 << 24), 1 << 24) << np.int64(min(-s, 20))


def saturate(x, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(x, lo, hi).astype(np.int8 if bits == 8 else np.int16)


def align(q, src_frac, dst):
    """Integer q at src_frac -> format dst: rounding shift, then saturation."""
    return saturate(rshift_round(q, src_frac - dst.frac), dst.bits)


def quantize_float(x, fmt):
    """float32 -> fmt: floor(x * 2^frac + 0.5) in double, saturated; NaN -> 0."""
    y = np.floor(np.asarray(x, dtype=np.float64) * 2.0 ** fmt.frac + 0.5)
    y = np.nan_to_num(y, nan=0.0, posinf=fmt.qmax, neginf=fmt.qmin)
    return saturate(np.clip(y, fmt.qmin, fmt.qmax).astype(np.int64), fmt.bits)


def dequantize(q, frac):
    return (np.asarray(q, dtype=np.float64) * 2.0 ** -frac).astype(np.float32)


def activate_int(acc, act):
    acc = np.asarray(acc, dtype=np.int64)
    if act == "linear":
        return acc
    if act == "relu":
        return np.maximum(acc, 0)
    if act == "leaky":
        return np.where(acc >= 0, acc, (acc * LEAKY_MULT) >> LEAKY_SHIFT)
    raise ValueError("activation %s has no integer form" % act)


def conv_acc(x, w, bias, size, stride, pad, groups):
    """int64 accumulators [M, oh, ow] of a zero-padded convolution on integers."""
    c, h, wd = x.shape
    m, k = w.shape
    oh = (h + 2 * pad - size) // stride + 1
    ow = (wd + 2 * pad - size) // stride + 1
    xp = np.zeros((c, h + 2 * pad, wd + 2 * pad), dtype=np.float64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    s0, s1, s2 = xp.strides
    patches = as_strided(xp, shape=(c, size, size, oh, ow),
                         strides=(s0, s1, s2, s1 * stride, s2 * stride), writeable=False)
    cg, mg = c // groups, m // groups
    out = np.empty((m, oh * ow), dtype=np.int64)
    rows = max(1, (1 << 22) // max(1, cg * size * size * ow))   # bound the patch copy
    for g in range(groups):
        wg = w[g * mg:(g + 1) * mg].astype(np.float64)
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            p = patches[g * cg:(g + 1) * cg, :, :, r0:r1, :].reshape(cg * size * size, -1)
            out[g * mg:(g + 1) * mg, r0 * ow:r1 * ow] = (wg @ p).astype(np.int64)
    out += np.asarray(bias, dtype=np.int64)[:, None]
    return out.reshape(m, oh, ow)


def maxpool_nd(x, size, stride, padding, fill):
    """Darknet's max pool on any dtype: windows from -(padding/2), outside taps ignored."""
    c, h, w = x.shape
    oh = (h + padding - size) // stride + 1
    ow = (w + padding - size) // stride + 1
    off = padding // 2
    ph = max(h + off, (oh - 1) * stride + size)
    pw = max(w + off, (ow - 1) * stride + size)
    big = np.full((c, ph, pw), fill, dtype=x.dtype)
    big[:, off:off + h, off:off + w] = x
    out = None
    for ky in range(size):
        for kx in range(size):
            v = big[:, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
            out = v.copy() if out is None else np.maximum(out, v)
    return out


def upsample_nd(x, stride):
    return np.repeat(np.repeat(x, stride, axis=1), stride, axis=2)


def logistic(x):
    return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))).astype(np.float32)


def yolo_head(x, n_mask, classes):
    """Darknet's [yolo] forward on float32 [c, h, w]."""
    out = np.array(x, dtype=np.float32, copy=True)
    per = classes + 5
    for a in range(n_mask):
        b = a * per
        out[b:b + 2] = logistic(out[b:b + 2])
        out[b + 4:b + per] = logistic(out[b + 4:b + per])
    return out


def softmax_head(x, groups=1, temperature=1.0):
    flat = np.asarray(x, dtype=np.float32).ravel()
    n = flat.size // groups
    out = np.empty_like(flat)
    t = np.float32(temperature)
    for g in range(groups):
        v = flat[g * n:(g + 1) * n]
        e = np.exp((v / t - v.max() / t).astype(np.float64)).astype(np.float32)
        out[g * n:(g + 1) * n] = e / e.sum(dtype=np.float32)
    return out.reshape(-1, 1, 1)


def exit_arrays(layer):
    """(name, shape) of an [exit]'s float32 arrays in its .qweights record:
    the .weights arrays (entropy first, then exit) under lower-case names,
    entropy_b1, entropy_w1, entropy_b2, entropy_w2 (entropy_b, entropy_w with
    hidden=0), and the same with exit_."""
    return [(name.lower(), shape) for name, shape in layer.params]


def adaptive_pool(x, p):
    """PyTorch's adaptive_avg_pool2d of float64 [c, h, w] to [c, p, p], flat:
    cell i of an axis of n covers [floor(i n / p), ceil((i + 1) n / p))."""
    c, h, w = x.shape
    out = np.empty((c, p, p), np.float64)
    for i in range(p):
        for j in range(p):
            y0, y1 = i * h // p, -(-(i + 1) * h // p)
            x0, x1 = j * w // p, -(-(j + 1) * w // p)
            out[:, i, j] = x[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return out.ravel()


def exit_head(x, spec):
    """An [exit]'s output [2, 1, 1]: the entropy and exit predictors' values on
    its branch point x (float, dequantized), -1 for one it lacks.  Computed in
    float64; the C engine's float32 agrees to rounding."""
    f = adaptive_pool(np.asarray(x, np.float64), spec["pool"])
    out = np.full((2, 1, 1), -1.0, np.float32)
    for k, name in enumerate(("entropy", "exit")):
        if name not in spec["predictors"]:
            continue
        a = {n[len(name) + 1:]: v.astype(np.float64) for n, v in spec["arrays"].items()
             if n.startswith(name + "_")}
        if spec["hidden"]:
            y = a["w2"].reshape(1, -1) @ np.maximum(a["w1"].reshape(spec["hidden"], -1) @ f +
                                                    a["b1"], 0) + a["b2"]
        else:
            y = a["w"].reshape(1, -1) @ f + a["b"]
        out[k] = 1.0 / (1.0 + np.exp(-y[0]))
    return out


# ----------------------------------------------------------------------------- the network

@dataclasses.dataclass
class Output:
    """One layer's output: integers q in fmt, or float (fmt None)."""
    q: np.ndarray = None
    fmt: Fmt = None
    f: np.ndarray = None

    @property
    def value(self):
        return self.f if self.fmt is None else dequantize(self.q, self.fmt.frac)


WIDTHS = ((8, 8), (16, 16), (16, 8))   # (operand, weight) bits of a GEMM layer


def section_formats(sec):
    """{'in': Fmt, 'w': Fmt, 'out': Fmt} for the fixed_* keys present in a section;
    fixed_w=BITS:ch (one fraction per output channel, kept in the weights file)
    gives 'w': Fmt(BITS, 0) and 'w_channel': 1; fixed_w=BITS:mul (a multiplier
    and a fraction per output channel) gives 'w_channel': 2, the record mode."""
    out = {}
    for key in FIXED_KEYS:
        if key in sec.options:
            v = sec.options[key]
            m = re.fullmatch(r"(8|16):(ch|mul)", v) if key == "fixed_w" else None
            if m:
                out["w"], out["w_channel"] = Fmt(int(m.group(1)), 0), 1 if m.group(2) == "ch" else 2
                continue
            out[key[6:]] = parse_fmt(v, "%s:%d: %s" % (
                sec.file or "<cfg>", sec.key_lines.get(key, sec.line), key))
    return out


def is_fixed_cfg(sections):
    return any(k in s.options for s in sections[1:] for k in FIXED_KEYS)


class FixedNet:
    """A quantized network (annotated cfg + .qweights) run by the reference."""

    def __init__(self, cfg, qweights=None):
        self.sections = cfg if isinstance(cfg, list) else parse_cfg(cfg)
        self.layers = infer_layers(self.sections)
        if isinstance(qweights, qwf.QWeights) or qweights is None:
            self.qw = qweights
        else:
            self.qw = qwf.read(qweights)
        self.specs = []
        for layer in self.layers:
            self.specs.append(self._spec(layer))

    def _err(self, layer, msg):
        sec = layer.section
        return CfgError("layer %d [%s]: %s" % (layer.index, sec.type, msg), sec.file, sec.line)

    def _input_fmt(self, index):
        return None if index < 0 else self.specs[index]["out"]

    def _spec(self, layer):
        sec, i = layer.section, layer.index
        fm = section_formats(sec)
        kind = layer.type
        prev = layer.inputs[0]
        spec = {"type": kind, "inputs": list(layer.inputs), "out": fm.get("out")}
        if kind in HEAD_TYPES or kind in IDENTITY_TYPES:
            if fm:
                raise self._err(layer, "takes no fixed_* keys")
            spec["out"] = None if kind in HEAD_TYPES else self._input_fmt(prev)
            if kind == "exit":
                o = exit_options(sec)
                spec.update(pool=o["pool"], hidden=o["hidden"], predictors=o["predictors"],
                            arrays=self._exit_arrays(layer))
            if kind == "yolo":
                classes = sec.get_int("classes", 20)
                n_mask = len(sec.get_ints("mask")) if "mask" in sec.options else sec.get_int("num", 1)
                spec.update(classes=classes, n_mask=n_mask)
            elif kind == "softmax":
                spec.update(groups=sec.get_int("groups", 1),
                            temperature=float(sec.options.get("temperature", "1")))
            return spec
        if "out" not in fm:
            raise self._err(layer, "has no fixed_out key (every layer of a quantized cfg needs "
                            "its formats)")
        if kind in GEMM_TYPES:
            if "in" not in fm or "w" not in fm:
                raise self._err(layer, "needs fixed_in, fixed_w and fixed_out")
            if (fm["in"].bits, fm["w"].bits) not in WIDTHS:
                raise self._err(layer, "fixed_in and fixed_w must be 8 and 8, 16 and 16, or 16 "
                                "and 8 bits")
            act = sec.get_str("activation", "logistic")
            if act not in INT_ACTIVATIONS:
                raise self._err(layer, "activation %s has no integer form" % act)
            spec.update(fin=fm["in"], w=fm["w"], act=act, w_fracs=None, mults=None)
            if kind == "convolutional":
                size = sec.get_int("size", 1)
                spec.update(size=size, stride=sec.get_int("stride", 1),
                            pad=size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0),
                            groups=sec.get_int("groups", 1))
            rec = self.qw.records.get(i) if self.qw else None
            c, h, w = layer.in_shape
            k = (c // spec.get("groups", 1)) * spec.get("size", 1) ** 2 if kind == "convolutional" \
                else c * h * w
            m = layer.out_shape[0]
            if self.qw is not None:
                if rec is None:
                    raise self._err(layer, "the quantized weights file has no record for it")
                if (rec.outputs, rec.k) != (m, k) or tuple(rec.in_fmt) != (fm["in"].bits, fm["in"].frac) \
                        or tuple(rec.w_fmt) != (fm["w"].bits, fm["w"].frac) \
                        or rec.mode != fm.get("w_channel", 0):
                    raise self._err(layer, "cfg formats / shape do not match the weights record")
                spec.update(weights=rec.weights, bias=rec.bias,
                            w_fracs=rec.w_fracs.astype(np.int64) if rec.mode else None,
                            mults=rec.mults.astype(np.int64) if rec.mode == 2 else None)
            else:
                spec.update(weights=np.zeros((m, k), fm["w"].dtype), bias=np.zeros(m, np.int32))
        elif kind == "maxpool":
            stride = sec.get_int("stride", 1)
            size = sec.get_int("size", stride)
            spec.update(size=size, stride=stride, padding=sec.get_int("padding", size - 1))
        elif kind == "upsample":
            if float(sec.options.get("scale", "1")) != 1.0:
                raise self._err(layer, "scale must be 1 in fixed point")
            spec.update(stride=sec.get_int("stride", 2))
        elif kind == "route":
            spec.update(groups=sec.get_int("groups", 1), group_id=sec.get_int("group_id", 0))
        elif kind == "shortcut":
            act = sec.get_str("activation", "linear")
            if act not in INT_ACTIVATIONS:
                raise self._err(layer, "activation %s has no integer form" % act)
            if float(sec.options.get("alpha", "1")) != 1 or float(sec.options.get("beta", "1")) != 1:
                raise self._err(layer, "alpha and beta must be 1 in fixed point")
            spec["act"] = act
        elif kind == "avgpool":
            pass
        else:
            raise self._err(layer, "has no fixed-point form")
        for j in spec["inputs"]:
            if kind not in GEMM_TYPES and self._input_fmt(j) is None:
                raise self._err(layer, "its input (layer %d) is float; only convolutional and "
                                "connected layers take float input" % j)
        return spec

    def _exit_arrays(self, layer):
        """An [exit]'s predictor arrays from its kind-3 record ({} without a
        weights file or without predictors)."""
        want = exit_arrays(layer)
        if self.qw is None or not want:
            return {}
        rec = self.qw.records.get(layer.index)
        if not isinstance(rec, qwf.QArrays):
            raise self._err(layer, "the quantized weights file has no arrays record for its "
                            "predictors (%s)" % ", ".join(n for n, _ in want))
        out = {}
        for name, shape in want:
            a = rec.arrays.get(name)
            if a is None:
                raise self._err(layer, "its arrays record lacks %s" % name)
            if a.dtype != np.float32 or a.size != math.prod(shape):
                raise self._err(layer, "array %s is %d %s values, needs %d float32"
                                % (name, a.size, a.dtype, math.prod(shape)))
            out[name] = a.reshape(shape)
        return out

    # -- forward ---------------------------------------------------------------
    def operand(self, spec, src):
        """A conv/connected input converted to its operand format fin."""
        if src.fmt is None:
            return quantize_float(src.f, spec["fin"])
        if src.fmt == spec["fin"]:
            return src.q
        return align(src.q, src.fmt.frac, spec["fin"])

    def accumulate(self, i, ins):
        """The int64 accumulators (bias included) of conv/connected layer i."""
        spec = self.specs[i]
        x = self.operand(spec, ins[0])
        if spec["type"] == "connected":
            return conv_acc(x.reshape(-1, 1, 1), spec["weights"], spec["bias"], 1, 1, 0, 1)
        return conv_acc(x, spec["weights"], spec["bias"], spec["size"], spec["stride"],
                        spec["pad"], spec["groups"])

    def run_layer(self, i, ins, acc=None):
        """Layer i's Output from its inputs' Outputs (acc: precomputed accumulators)."""
        spec = self.specs[i]
        kind = spec["type"]
        out = spec["out"]
        layer = self.layers[i]
        if kind in GEMM_TYPES:
            if acc is None:
                acc = self.accumulate(i, ins)
            a = activate_int(acc, spec["act"])
            if spec["w_fracs"] is None:
                q = saturate(rshift_round(a, spec["fin"].frac + spec["w"].frac - out.frac), out.bits)
            else:
                shifts = spec["fin"].frac + spec["w_fracs"] - out.frac
                if spec["mults"] is not None:   # |a| < 2^31, mult < 2^15: exact in int64
                    a = a.astype(np.int64) * spec["mults"].reshape((-1,) + (1,) * (a.ndim - 1))
                q = np.empty(a.shape, out.dtype)
                for s in np.unique(shifts):
                    sel = shifts == s
                    q[sel] = saturate(rshift_round(a[sel], int(s)), out.bits)
            return Output(q.reshape(layer.out_shape), out)
        if kind == "maxpool":
            src = ins[0]
            m = maxpool_nd(src.q, spec["size"], spec["stride"], spec["padding"],
                           np.iinfo(src.q.dtype).min)
            return Output(align(m, src.fmt.frac, out), out)
        if kind == "upsample":
            src = ins[0]
            return Output(align(upsample_nd(src.q, spec["stride"]), src.fmt.frac, out), out)
        if kind == "route":
            parts = []
            for src in ins:
                n = src.q.shape[0] // spec["groups"]
                parts.append(align(src.q[n * spec["group_id"]:n * (spec["group_id"] + 1)],
                                   src.fmt.frac, out))
            return Output(np.concatenate(parts, axis=0), out)
        if kind == "shortcut":
            a, b = ins
            f = max(a.fmt.frac, b.fmt.frac)
            t = (a.q.astype(np.int64) << (f - a.fmt.frac)) + (b.q.astype(np.int64) << (f - b.fmt.frac))
            t = activate_int(t, spec["act"])
            return Output(saturate(rshift_round(t, f - out.frac), out.bits), out)
        if kind == "avgpool":
            src = ins[0]
            s = src.q.astype(np.int64).reshape(src.q.shape[0], -1).sum(axis=1)
            n = src.q.shape[1] * src.q.shape[2]
            num = s << max(0, out.frac - src.fmt.frac)
            den = n << max(0, src.fmt.frac - out.frac)
            q = np.floor_divide(2 * num + den, 2 * den)
            return Output(saturate(q, out.bits).reshape(-1, 1, 1), out)
        if kind in IDENTITY_TYPES:
            return ins[0]
        x = ins[0].value
        if kind == "yolo":
            return Output(f=yolo_head(x, spec["n_mask"], spec["classes"]))
        if kind == "softmax":
            return Output(f=softmax_head(x, spec["groups"], spec["temperature"]))
        if kind == "exit":
            return Output(f=exit_head(x, spec))
        raise AssertionError(kind)

    def forward(self, x):
        """Every layer's Output for a float32 [c, h, w] input (every branch
        runs: MDFI's exit policy "all")."""
        x = np.asarray(x, dtype=np.float32)
        outs = []
        netin = Output(f=x)
        for i, spec in enumerate(self.specs):
            ins = [netin if j < 0 else outs[j] for j in spec["inputs"]]
            outs.append(self.run_layer(i, ins))
        return outs


def sqnr_db(ref, test):
    """10 log10(sum ref^2 / sum (ref - test)^2); inf when equal."""
    ref = np.asarray(ref, dtype=np.float64).ravel()
    err = ref - np.asarray(test, dtype=np.float64).ravel()
    e = float(np.dot(err, err))
    s = float(np.dot(ref, ref))
    if e == 0:
        return math.inf
    if s == 0:
        return -math.inf
    return 10 * math.log10(s / e)
