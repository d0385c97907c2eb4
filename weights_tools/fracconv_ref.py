"""Numpy reference of the [fracconv] layer (docs/wsfracbnn.md, issue 16).

Written from the document, independently of the C layer
(csrc/layers/fracconv.c), so that tests can compare them bit for bit:

* ``stream_planes``: the 2-bit quantizer of the integer stream as two sign
  planes, s1 = [x > shift_c], s0 = [x > hi_c or (x > lo_c and x <= shift_c)]
  with hi/lo = fl32(shift_c +- step) (float32 compares; +1 / -1);
* ``thermometer``: T sign bits per image channel, bit k = [x_c > t_k],
  t_k = fl32((2k + 1) / (2T));
* ``parts``: the integer sign convolutions D1, D0 (binary_ref.conv_levels,
  padding contributing 0), the gate g = [2 D1 > floor(gate_m)] and
  P = 2 D1 + g D0 (thermometer: P = D1);
* ``fold``: A = range scale_m, B = range bias_m in float32, then dualpath_ref's
  fixed point, requantization and second source;
* ``fracconv``: one layer.  Whole cfgs run through dualpath_ref.run, which
  calls ``fracconv`` for every [fracconv] section (``run`` here is the same).

Everything here is numpy only.
"""

import numpy as np

from weights_tools import binary_ref as br
from weights_tools import dualpath_ref as dr

F32 = np.float32
LIM = dr.LIM
run = dr.run


class FracconvError(dr.DualpathError):
    """Parameters [fracconv] refuses (docs/wsfracbnn.md)."""


def _where(layer):
    return "layer %s: " % layer if layer is not None else ""


def stream_planes(x, shift, step):
    """(s1, s0) int64 [C,H,W] of +1 / -1 from float32 x [C,H,W]: the level
    q = 2 s1 + s0 is 3, 1, -1, -3 from the top band down (NaN: -3)."""
    x = np.asarray(x, F32)
    shift = np.asarray(shift, F32)
    hi = (shift + F32(step)).astype(F32)[:, None, None]
    lo = (shift - F32(step)).astype(F32)[:, None, None]
    mid = shift[:, None, None]
    s1 = np.where(x > mid, 1, -1)
    s0 = np.where((x > hi) | ((x > lo) & (x <= mid)), 1, -1)
    return s1.astype(np.int64), s0.astype(np.int64)


def thermometer_thresholds(T):
    """t_k = fl32((2k + 1) / (2T)), k < T."""
    return np.array([(2 * k + 1) / (2 * T) for k in range(T)], np.float64).astype(F32)


def thermometer(x, T):
    """[C T, H, W] int64 +1 / -1: channel c T + k is +1 where x_c > t_k."""
    x = np.asarray(x, F32)
    t = thermometer_thresholds(T)
    bits = x[:, None, :, :] > t[None, :, None, None]
    return np.where(bits, 1, -1).reshape(-1, x.shape[1], x.shape[2]).astype(np.int64)


def gate_thresholds(gate, layer=None):
    """G_m = floor(gate_m) in double; a non-finite gate is refused."""
    gate = np.asarray(gate, F32).astype(np.float64).ravel()
    for m in np.nonzero(~np.isfinite(gate))[0]:
        raise FracconvError("%schannel %d's gate = %g is not a finite number"
                            % (_where(layer), m, gate[m]))
    return np.floor(gate)


def fold(scales, biases, lam):
    """(A, B) float32: A = range scale_m, B = range bias_m (one float32 product)."""
    lam = F32(lam)
    with np.errstate(all="ignore"):
        A = (lam * np.asarray(scales, F32)).astype(F32)
        B = (lam * np.asarray(biases, F32)).astype(F32)
    return A, B


def _scalar(arrays, name):
    return float(np.asarray(arrays[name], F32).ravel()[0])


def check_params(arrays, input="stream", layer=None):
    """The refusals before the fold: range <= 0 or not finite, step < 0 or NaN."""
    lam = _scalar(arrays, "range")
    if not (lam > 0) or not np.isfinite(lam):
        raise FracconvError("%srange = %g must be a positive number" % (_where(layer), lam))
    if input == "stream":
        step = _scalar(arrays, "step")
        if not step >= 0:
            raise FracconvError("%sstep = %g must be >= 0" % (_where(layer), step))


def parts(x, arrays, *, input="stream", levels=1, gate=1, stride=1, pad=0, layer=None):
    """The integers of one layer: {"D1", "D0", "g", "P"}, each [M,oh,ow] int64
    (thermometer: D0 = 0 and g = 0; gate=0: g = 1)."""
    ws = br.weight_signs(arrays["weights"])
    if input == "thermometer":
        D1 = br.conv_levels(thermometer(x, levels), ws, stride, pad)
        zero = np.zeros_like(D1)
        return {"D1": D1, "D0": zero, "g": zero, "P": D1}
    s1, s0 = stream_planes(x, arrays["shift"], _scalar(arrays, "step"))
    D1 = br.conv_levels(s1, ws, stride, pad)
    D0 = br.conv_levels(s0, ws, stride, pad)
    if gate:
        G = gate_thresholds(arrays["gate"], layer)
        g = (2 * D1 > G[:, None, None]).astype(np.int64)
    else:
        g = np.ones_like(D1)
    return {"D1": D1, "D0": D0, "g": g, "P": 2 * D1 + g * D0}


def fracconv(x, src, arrays, *, input="stream", levels=1, gate=1, shortcut=1, stride=1, pad=0,
             layer=None):
    """One [fracconv] layer: x [C,H,W] float32, src the second source
    [C_src,oh,ow] (ignored with shortcut=0), arrays: biases, scales, weights,
    [shift, step, [gate]], range.  Returns z [M,oh,ow] float32 (exact integers)."""
    check_params(arrays, input, layer)
    P = parts(x, arrays, input=input, levels=levels, gate=gate, stride=stride, pad=pad,
              layer=layer)["P"]
    A, B = fold(arrays["scales"], arrays["biases"], _scalar(arrays, "range"))
    Mul, Off, S = dr.fixed_point(A, B, layer, error=FracconvError)
    r = dr.requantize(P, Mul, Off, S)
    if shortcut:
        s = dr.second_source(src, P.shape[0])
        if s.shape[1:] != P.shape[1:]:
            raise ValueError("second source %s does not fit the output %s" % (s.shape, P.shape))
        r = r + s
    return np.clip(r, -LIM, LIM).astype(F32)
