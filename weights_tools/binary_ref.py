"""Numpy reference of MDFI's binary convolutions (docs/binary.md).

Written from the specification, independently of the C kernels, so tests can
compare them:

* ``quantize`` turns float32 activations into integer levels exactly as the
  C quantizers do (the same float32 thresholds and compares):
  abits 1 (Darknet's ``x > 0 -> +1 else -1``), 1.5 (ternary -1/0/+1, step
  ``astep``) and 2 (levels 0..3, step ``astep``).
* ``conv_levels`` is the exact integer convolution D of those levels with
  binary weights (``w > 0 -> +1 else -1``), zero padding contributing 0.
* ``epilogue`` emulates MDFI's float epilogue bit for bit in float32:
  ``act(float32(D) * alpha + beta)`` with a separate multiply and add, and
  ``alpha = (mean|w| * astep) * bn_scale`` computed in float32 in MDFI's order.
* ``run`` runs a whole cfg made of [convolutional] (xnor or float), [maxpool],
  [connected], [dropout] and [softmax].  Binary layers and maxpools are exact
  float32 emulations; float convolutions and connected layers are computed in
  float64 (Darknet semantics, not bit-exact).

Everything here is numpy only.
"""

import numpy as np

from weights_tools.darknet_cfg import layers_of
from weights_tools.darknet_weights import read_weights

F32 = np.float32

ABITS = {"1": "sign", "1.5": "ternary", "ternary": "ternary", "2": "2bit"}


def thresholds(mode, step=1.0):
    """The quantizer's float32 thresholds: level index = #(x > t)."""
    step = F32(step)
    if mode == "sign":
        return np.array([0.0], F32)
    if mode == "ternary":
        hi = F32(0.5) * step
        return np.array([np.nextafter(-hi, F32(-np.inf)), hi], F32)
    if mode == "2bit":
        return np.array([F32(0.5) * step, F32(1.5) * step, F32(2.5) * step], F32)
    raise ValueError("unknown activation mode %r" % (mode,))


def quantize(x, mode, step=1.0):
    """Integer levels of float32 x: sign -1/+1, ternary -1/0/+1, 2bit 0..3."""
    x = np.asarray(x, F32)
    idx = np.zeros(x.shape, np.int64)
    for t in thresholds(mode, step):
        idx += x > t
    if mode == "sign":
        return 2 * idx - 1
    if mode == "ternary":
        return idx - 1
    return idx


def weight_signs(w):
    """Binary weights: +1 where w > 0, else -1 (so w == 0 gives -1, as Darknet)."""
    return np.where(np.asarray(w) > 0, 1, -1).astype(np.int64)


def weight_scale(w):
    """Per-filter mean |w|: a float32 sum in order, divided by the count (Darknet)."""
    w = np.asarray(w, F32).reshape(len(w), -1)
    total = np.cumsum(np.abs(w), axis=1, dtype=F32)[:, -1]
    return (total / F32(w.shape[1])).astype(F32)


def conv_levels(levels, wsign, stride=1, pad=0, groups=1):
    """Exact integer convolution: levels [C,H,W] (ints), wsign [M,C/groups,k,k]
    (+-1) -> D [M,oh,ow] int64.  Taps outside the image contribute 0."""
    levels = np.asarray(levels, np.int64)
    wsign = np.asarray(wsign, np.int64)
    C, H, W = levels.shape
    M, cg, k, _ = wsign.shape
    padded = np.zeros((C, H + 2 * pad, W + 2 * pad), np.int64)
    padded[:, pad:pad + H, pad:pad + W] = levels
    oh = (H + 2 * pad - k) // stride + 1
    ow = (W + 2 * pad - k) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    win = win[:, ::stride, ::stride][:, :oh, :ow]          # C, oh, ow, k, k
    mg = M // groups
    out = np.empty((M, oh, ow), np.int64)
    # float64 sums of integers are exact below 2^53: then a BLAS product
    # (~10x faster than an int64 einsum); otherwise int64 throughout.
    bound = (int(np.abs(levels).max(initial=0)) * int(np.abs(wsign).max(initial=0))
             * cg * k * k)
    for g in range(groups):
        xs = win[g * cg:(g + 1) * cg]
        ws = wsign[g * mg:(g + 1) * mg]
        if bound < 2 ** 53:
            cols = xs.transpose(1, 2, 0, 3, 4).reshape(oh * ow, cg * k * k).astype(np.float64)
            prod = ws.reshape(mg, cg * k * k).astype(np.float64) @ cols.T
            out[g * mg:(g + 1) * mg] = prod.reshape(mg, oh, ow).astype(np.int64)
        else:
            out[g * mg:(g + 1) * mg] = np.einsum("chwyx,mcyx->mhw", xs, ws)
    return out


def fold(weights, biases, bn=None, step=1.0):
    """(alpha, beta) float32 per filter: y = float32(D) * alpha + beta.
    bn: (scales, rolling_mean, rolling_variance) or None."""
    s = weight_scale(weights)
    b = np.asarray(biases, F32)
    if bn is None:
        a = np.ones_like(s)
        beta = b
    else:
        scales, mean, var = (np.asarray(v, F32) for v in bn)
        a = (scales / (np.sqrt(var) + F32(0.000001))).astype(F32)
        beta = (b - mean * a).astype(F32)
    alpha = ((s * F32(step)) * a).astype(F32)
    return alpha, beta


def activate(v, act):
    """Darknet's activations on float32 (linear, relu, leaky exactly as MDFI)."""
    v = np.asarray(v, F32)
    if act == "linear":
        return v
    if act == "relu":
        return np.where(v > 0, v, F32(0)).astype(F32)
    if act == "leaky":
        return np.where(v > 0, v, (v.astype(np.float64) * 0.1).astype(F32)).astype(F32)
    d = v.astype(np.float64)
    if act == "logistic":
        return (1.0 / (1.0 + np.exp(-d))).astype(F32)
    if act == "tanh":
        return ((np.exp(2 * d) - 1) / (np.exp(2 * d) + 1)).astype(F32)
    raise ValueError("activation %r is not in the numpy reference" % (act,))


def epilogue(D, alpha, beta, act):
    """act(float32(D) * alpha + beta): a float32 multiply, then an add."""
    prod = np.asarray(D).astype(F32) * np.asarray(alpha, F32)[:, None, None]
    return activate(prod + np.asarray(beta, F32)[:, None, None], act)


def binary_conv(x, weights, biases, bn=None, *, stride=1, pad=0, groups=1, act="logistic",
                abits="1", astep=1.0):
    """One [convolutional] xnor=1 layer on float32 x [C,H,W], as MDFI computes it."""
    mode = ABITS[str(abits)]
    step = 1.0 if mode == "sign" else astep
    D = conv_levels(quantize(x, mode, step), weight_signs(weights), stride, pad, groups)
    alpha, beta = fold(weights, biases, bn, step)
    return epilogue(D, alpha, beta, act)


def float_conv(x, weights, biases, bn=None, *, stride=1, pad=0, groups=1, act="logistic"):
    """A float [convolutional] in float64 (Darknet semantics, approximate)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(weights, np.float64)
    C, H, W = x.shape
    M, cg, k, _ = w.shape
    padded = np.zeros((C, H + 2 * pad, W + 2 * pad))
    padded[:, pad:pad + H, pad:pad + W] = x
    oh = (H + 2 * pad - k) // stride + 1
    ow = (W + 2 * pad - k) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    win = win[:, ::stride, ::stride][:, :oh, :ow]
    mg = M // groups
    y = np.empty((M, oh, ow))
    for g in range(groups):
        y[g * mg:(g + 1) * mg] = np.einsum("chwyx,mcyx->mhw", win[g * cg:(g + 1) * cg],
                                           w[g * mg:(g + 1) * mg])
    if bn is not None:
        scales, mean, var = (np.asarray(v, np.float64) for v in bn)
        y = (y - mean[:, None, None]) / (np.sqrt(var)[:, None, None] + 1e-6) * scales[:, None, None]
    y += np.asarray(biases, np.float64)[:, None, None]
    return activate(y.astype(F32), act)


def maxpool(x, size, stride, padding):
    """Darknet's maxpool: windows at -(padding//2) + stride*o, outside taps ignored
    (an empty window gives -FLT_MAX)."""
    x = np.asarray(x, F32)
    C, H, W = x.shape
    oh = (H + padding - size) // stride + 1
    ow = (W + padding - size) // stride + 1
    off = padding // 2
    ph, pw = max(off + H, (oh - 1) * stride + size), max(off + W, (ow - 1) * stride + size)
    padded = np.full((C, ph, pw), -np.inf, F32)
    padded[:, off:off + H, off:off + W] = x
    win = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    out = win[:, ::stride, ::stride][:, :oh, :ow].max(axis=(3, 4))
    return np.where(np.isneginf(out), -np.finfo(F32).max, out).astype(F32)


def connected(x, arrays, act="logistic"):
    """A [connected] layer on the flattened x in float64 (Darknet semantics):
    arrays holds biases, weights and, with BN, scales / rolling_mean /
    rolling_variance.  Returns [out, 1, 1] float32."""
    y = np.asarray(arrays["weights"], np.float64) @ np.asarray(x, np.float64).ravel()
    bn = _bn(arrays)
    if bn is not None:
        scales, mean, var = (np.asarray(v, np.float64) for v in bn)
        y = (y - mean) / (np.sqrt(var) + 1e-6) * scales
    y += arrays["biases"]
    return activate(y.astype(F32), act).reshape(-1, 1, 1)


def softmax(x):
    """[softmax] over the flattened x (float64), as [n, 1, 1] float32."""
    v = np.asarray(x, np.float64).ravel()
    e = np.exp(v - v.max())
    return (e / e.sum()).astype(F32).reshape(-1, 1, 1)


def _bn(arrays):
    if "scales" not in arrays:
        return None
    return arrays["scales"], arrays["rolling_mean"], arrays["rolling_variance"]


def run(cfg, weights, x):
    """Every layer's output for float32 input x [c,h,w]: a list of arrays.
    cfg: anything weights_tools.layers_of takes; weights: a path, bytes or
    DarknetWeights."""
    layers = layers_of(cfg)
    if not hasattr(weights, "layers"):
        weights = read_weights(layers, weights)
    outs = []
    cur = np.asarray(x, F32)
    for layer, arrays in zip(layers, weights.layers):
        sec = layer.section
        if layer.type == "convolutional":
            size = sec.get_int("size", 1)
            pad = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
            kw = dict(stride=sec.get_int("stride", 1), pad=pad, groups=sec.get_int("groups", 1),
                      act=sec.get_str("activation", "logistic"))
            if sec.get_int("xnor", 0):
                cur = binary_conv(cur, arrays["weights"], arrays["biases"], _bn(arrays),
                                  abits=sec.get_str("abits", "1"),
                                  astep=float(sec.get_str("astep", "1")), **kw)
            else:
                cur = float_conv(cur, arrays["weights"], arrays["biases"], _bn(arrays), **kw)
        elif layer.type == "maxpool":
            stride = sec.get_int("stride", 1)
            size = sec.get_int("size", stride)
            cur = maxpool(cur, size, stride, sec.get_int("padding", size - 1))
        elif layer.type == "connected":
            cur = connected(cur, arrays, sec.get_str("activation", "logistic"))
        elif layer.type == "dropout":
            pass
        elif layer.type == "softmax":
            cur = softmax(cur)
        else:
            raise ValueError("layer %d [%s] is not in the numpy reference" % (layer.index, layer.type))
        outs.append(cur)
    return outs
