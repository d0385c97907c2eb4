"""Numpy reference of the [dualpath] layer (docs/dualpath.md).

Written from the document, independently of the C layer
(csrc/layers/dualpath.c), so that tests can compare them bit for bit:

* ``quantize``: float32 input -> integer levels with per-channel thresholds
  (float32 compares; abits "1": +-1, "1.5": -1/0/+1);
* ``conv_levels`` (from binary_ref): the exact integer convolution D with the
  signs of the weights, zero padding contributing 0;
* ``fold``: A_m, B_m with numpy float32 operations in the document's order;
* ``fixed_point``: Mul_m, Off_m, S_m from frexp, in double, with the
  document's refusals (``DualpathError``);
* ``requantize``: r = floor((Mul D + Off + 2^(S-1)) / 2^S) in int64, clamped;
* ``second_source``: rint(clamp(src)), NaN -> 0, channel m mod C_src;
* ``dualpath``: one layer; ``run``: a whole cfg of [convolutional] (float or
  xnor, via binary_ref), [dualpath], [fracconv] (weights_tools/fracconv_ref.py),
  [maxpool], [route], [avgpool], [connected], [dropout] and [softmax].
  [dualpath], [fracconv], [maxpool] and [route] are exact; the float layers
  follow binary_ref (float64 Darknet semantics).

Everything here is numpy only.
"""

import numpy as np

from weights_tools import binary_ref as br
from weights_tools.darknet_cfg import dualpath_abits, fracconv_options, layers_of
from weights_tools.darknet_weights import read_weights

F32 = np.float32
LIM = 1 << 24          # the clamp of r, of the second source and of the output


class DualpathError(ValueError):
    """Parameters the fold refuses (docs/dualpath.md)."""


def thresholds(shift, abits, delta=0.0):
    """(hi, lo) float32 per input channel: sign compares x > shift (hi = lo =
    shift); ternary +1 above hi = fl32(shift + delta), -1 below lo =
    fl32(shift - delta)."""
    shift = np.asarray(shift, F32)
    if abits == "1":
        return shift, shift
    d = F32(delta)
    return (shift + d).astype(F32), (shift - d).astype(F32)


def quantize(x, shift, abits, delta=0.0):
    """Integer levels [C,H,W] of float32 x: abits "1": +1 where x > shift_c else
    -1 (NaN -> -1); "1.5": +1 above hi_c, -1 below lo_c, else 0 (NaN -> 0)."""
    x = np.asarray(x, F32)
    hi, lo = thresholds(shift, abits, delta)
    hi, lo = hi[:, None, None], lo[:, None, None]
    if abits == "1":
        return np.where(x > hi, 1, -1).astype(np.int64)
    return (x > hi).astype(np.int64) - (x < lo).astype(np.int64)


def fold(biases, scales, mean, var, lam):
    """(A, B) float32 per output channel, float32 operations in this order:
    sd = sqrt(var) + 1e-6; g = scale / sd; A = lam g; B = lam (bias - mean g)."""
    biases, scales, mean, var = (np.asarray(v, F32) for v in (biases, scales, mean, var))
    lam = F32(lam)
    with np.errstate(all="ignore"):
        sd = (np.sqrt(var) + F32(1e-6)).astype(F32)
        g = (scales / sd).astype(F32)
        A = (lam * g).astype(F32)
        B = (lam * (biases - (mean * g).astype(F32)).astype(F32)).astype(F32)
    return A, B


def fixed_point(A, B, layer=None, error=DualpathError):
    """(Mul, Off, S) int64 per channel: A = f 2^e (frexp), S = min(30 - e, 36)
    (0 for A = 0), Mul = rint(A 2^S), Off = rint(B 2^S) in double.  Refuses
    (raising error) non-finite A or B, |A| >= 2^30 (S < 0) and |B| >= 2^24."""
    A = np.asarray(A, F32).astype(np.float64)
    B = np.asarray(B, F32).astype(np.float64)
    where = "layer %s: " % layer if layer is not None else ""
    for m in range(len(A)):
        if not (np.isfinite(A[m]) and np.isfinite(B[m])):
            raise error("%schannel %d folds to a non-finite multiplier or offset "
                                "(A = %g, B = %g)" % (where, m, A[m], B[m]))
    _, e = np.frexp(A)
    S = np.where(A == 0, 0, np.minimum(30 - e.astype(np.int64), 36)).astype(np.int64)
    for m in np.nonzero(S < 0)[0]:
        raise error("%schannel %d's multiplier |A| = %g is too large (must be < 2^30)"
                            % (where, m, abs(A[m])))
    for m in np.nonzero(np.abs(B) >= LIM)[0]:
        raise error("%schannel %d's offset |B| = %g is too large (must be < 2^24)"
                            % (where, m, abs(B[m])))
    Mul = np.rint(np.ldexp(A, S)).astype(np.int64)
    Off = np.rint(np.ldexp(B, S)).astype(np.int64)
    return Mul, Off, S


def requantize(D, Mul, Off, S):
    """r = floor((Mul D + Off + 2^(S-1)) / 2^S) in int64 (no rounding term for
    S = 0), clamped to [-2^24, 2^24]; D [M,H,W]."""
    D = np.asarray(D, np.int64)
    Mul, Off, S = (np.asarray(v, np.int64)[:, None, None] for v in (Mul, Off, S))
    half = np.where(S > 0, np.left_shift(np.int64(1), np.maximum(S - 1, 0)), 0)
    r = np.floor_divide(Mul * D + Off + half, np.left_shift(np.int64(1), S))
    return np.clip(r, -LIM, LIM)


def second_source(src, M):
    """s [M,H,W] int64: rint(clamp(src, -2^24, 2^24)) (half to even, NaN -> 0)
    of source channel m mod C_src."""
    src = np.asarray(src, F32)
    v = np.clip(np.where(np.isnan(src), F32(0), src), F32(-LIM), F32(LIM))
    s = np.rint(v).astype(np.int64)
    return s[np.arange(M) % s.shape[0]]


def params_of(arrays, abits):
    """The fold's inputs from a layer's arrays (names as in the .weights order)."""
    delta = float(np.asarray(arrays["delta"], F32).ravel()[0]) if abits == "1.5" else 0.0
    return delta, float(np.asarray(arrays["range"], F32).ravel()[0])


def check_params(arrays, abits, layer=None):
    """The refusals that come before the fold: negative variance, range <= 0,
    delta < 0 (NaN counts as neither positive nor >= 0)."""
    where = "layer %s: " % layer if layer is not None else ""
    delta, lam = params_of(arrays, abits)
    if not (lam > 0) or not np.isfinite(lam):
        raise DualpathError("%srange = %g must be a positive number" % (where, lam))
    if abits == "1.5" and not delta >= 0:
        raise DualpathError("%sdelta = %g must be >= 0" % (where, delta))
    var = np.asarray(arrays["rolling_variance"], F32)
    for m in np.nonzero(var < 0)[0]:
        raise DualpathError("%schannel %d has a negative rolling_variance (%g)" % (where, m, var[m]))


def dualpath(x, src, arrays, *, abits="1", stride=1, pad=0, layer=None):
    """One [dualpath] layer: x [C,H,W] float32 (source 1), src [C_src,oh,ow]
    (source 2), arrays: biases, scales, rolling_mean, rolling_variance, weights,
    shift, [delta], range.  Returns z [M,oh,ow] float32 (exact integers)."""
    abits = str(abits)
    check_params(arrays, abits, layer)
    delta, lam = params_of(arrays, abits)
    levels = quantize(x, arrays["shift"], abits, delta)
    D = br.conv_levels(levels, br.weight_signs(arrays["weights"]), stride, pad)
    A, B = fold(arrays["biases"], arrays["scales"], arrays["rolling_mean"],
                arrays["rolling_variance"], lam)
    Mul, Off, S = fixed_point(A, B, layer)
    r = requantize(D, Mul, Off, S)
    s = second_source(src, D.shape[0])
    if s.shape[1:] != D.shape[1:]:
        raise ValueError("second source %s does not fit the output %s" % (s.shape, D.shape))
    return np.clip(r + s, -LIM, LIM).astype(F32)


def route(srcs, groups=1, group_id=0):
    """[route]: slice group_id of groups of each source's channels, concatenated."""
    parts = []
    for s in srcs:
        n = s.shape[0] // groups
        parts.append(s[group_id * n:(group_id + 1) * n])
    return np.concatenate(parts, axis=0).astype(F32)


def avgpool(x):
    """[avgpool]: the global mean of each channel (float64), [C,1,1] float32."""
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], -1).mean(axis=1).astype(F32).reshape(-1, 1, 1)


def conv_geometry(sec):
    """(stride, pad) of a [dualpath] / [fracconv] section (pad=1: size // 2)."""
    size = sec.get_int("size", 1)
    pad = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    return sec.get_int("stride", 1), pad


def run(cfg, weights, x, given=None):
    """Every layer's output for float32 input x [c,h,w]: a list of arrays.
    cfg: anything weights_tools.layers_of takes; weights: a path, bytes or
    DarknetWeights.  given: a list of outputs (e.g. MDFI's own) that each
    layer reads instead of this reference's, so that each layer is checked
    on the same inputs."""
    layers = layers_of(cfg)
    if not hasattr(weights, "layers"):
        weights = read_weights(layers, weights)
    x = np.asarray(x, F32)
    outs = []

    def read(j):
        if j < 0:
            return x
        return np.asarray(given[j], F32) if given is not None else outs[j]

    for layer, arrays in zip(layers, weights.layers):
        sec = layer.section
        cur = read(layer.inputs[0]) if layer.inputs else x
        if layer.type == "dualpath":
            stride, pad = conv_geometry(sec)
            y = dualpath(cur, read(layer.inputs[1]), arrays, abits=dualpath_abits(sec),
                         stride=stride, pad=pad, layer=layer.index)
        elif layer.type == "fracconv":
            from weights_tools import fracconv_ref
            stride, pad = conv_geometry(sec)
            src = read(layer.inputs[1]) if len(layer.inputs) > 1 else None
            y = fracconv_ref.fracconv(cur, src, arrays, **fracconv_options(sec), stride=stride,
                                      pad=pad, layer=layer.index)
        elif layer.type == "convolutional":
            stride, pad = conv_geometry(sec)
            kw = dict(stride=stride, pad=pad, groups=sec.get_int("groups", 1),
                      act=sec.get_str("activation", "logistic"))
            bn = br._bn(arrays)
            if sec.get_int("xnor", 0):
                y = br.binary_conv(cur, arrays["weights"], arrays["biases"], bn,
                                   abits=sec.get_str("abits", "1"),
                                   astep=float(sec.get_str("astep", "1")), **kw)
            else:
                y = br.float_conv(cur, arrays["weights"], arrays["biases"], bn, **kw)
        elif layer.type == "maxpool":
            stride = sec.get_int("stride", 1)
            size = sec.get_int("size", stride)
            y = br.maxpool(cur, size, stride, sec.get_int("padding", size - 1))
        elif layer.type == "route":
            y = route([read(j) for j in layer.inputs], sec.get_int("groups", 1),
                      sec.get_int("group_id", 0))
        elif layer.type == "avgpool":
            y = avgpool(cur)
        elif layer.type == "connected":
            y = br.connected(cur, arrays, sec.get_str("activation", "logistic"))
        elif layer.type == "dropout":
            y = cur
        elif layer.type == "softmax":
            y = br.softmax(cur)
        else:
            raise ValueError("layer %d [%s] is not in the dualpath reference"
                             % (layer.index, layer.type))
        outs.append(y)
    return outs
