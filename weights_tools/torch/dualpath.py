"""[dualpath]: the dual-path binary convolution with a rounded BN output and an
adaptive output range (docs/dualpath.md has the design and the exact definition).

    z = round(range * (BN(binconv(Q(x))) + beta)) + round(source)

Q quantizes each input channel around a learned centre `shift` (1 bit: sign;
1.5 bits: ternary with a learned half-width `delta`); the weights are their
signs; BN is Darknet's; `range` (one scalar per layer) is the adaptive output
range; the second source (`from_`, by default the input) is added as integers,
its channels repeated when the layer has more filters.

Training mode uses straight-through estimators: the quantizer's gradient is
that of clamp((x - shift) / (2 delta), -1, 1) (1.5 bits) or of
clamp((x - shift) / window, -1, 1) (1 bit; `window` a fixed buffer), so
shift and delta learn; the weights' that of clamp(w, -1, 1); both roundings
pass the gradient unchanged.  Evaluation mode computes exactly what MDFI
computes: BN, range and the rounding folded into the fixed-point multiplier
of the definition, int64 arithmetic, the clamps.
"""

import torch
import torch.nn.functional as F
from torch import nn

from weights_tools.torch.layers import (DarknetBatchNorm, DarknetLayer, ShapeMismatchError, _absolute,
                                        _bn_arrays, _expect_names, _load_bn, _positive, from_array,
                                        to_array)

LIMIT = 1 << 24          # the stream's clamp: every integer up to it is a float32
ABITS = {1: "1", 1.5: "1.5"}


def _ste(hard, soft):
    """hard in the forward pass, soft's gradient in the backward pass."""
    return soft + (hard - soft).detach()


def _round_ste(x):
    return _ste(torch.round(x), x)


def fixed_point(a, b):
    """The definition's fold to (Mul, Off, S) from float32 tensors A, B
    (docs/dualpath.md); raises ValueError naming the first bad channel."""
    a64, b64 = a.double(), b.double()
    for name, t in (("A", a64), ("B", b64)):
        bad = ~torch.isfinite(t)
        if bad.any():
            raise ValueError("channel %d: the folded %s is not finite" % (int(bad.nonzero()[0]), name))
    big = b64.abs() >= LIMIT
    if big.any():
        raise ValueError("channel %d: the folded offset |B| = %g is >= 2^24"
                         % (int(big.nonzero()[0]), float(b64[big][0])))
    _, e = torch.frexp(a)
    s = torch.clamp(30 - e.long(), max=36)
    s = torch.where(a == 0, torch.zeros_like(s), s)
    if (s < 0).any():
        raise ValueError("channel %d: the folded multiplier |A| >= 2^30" % int((s < 0).nonzero()[0]))
    mul = torch.round(torch.ldexp(a64, s.double())).long()
    off = torch.round(torch.ldexp(b64, s.double())).long()
    return mul, off, s


def requantize(d, mul, off, s):
    """r = round(A D + B), half up, from integer D (int64), clamped (per-channel dim 1)."""
    view = (1, -1, 1, 1)
    v = d * mul.view(view) + off.view(view)
    half = torch.where(s > 0, torch.ones_like(s) << torch.clamp(s - 1, min=0), torch.zeros_like(s))
    r = torch.div(v + half.view(view), (torch.ones_like(s) << s).view(view), rounding_mode="floor")
    return torch.clamp(r, -LIMIT, LIMIT)


def integer_source(src):
    """rint(clamp(src, +-2^24)), NaN -> 0 (exact for the integer stream)."""
    src = torch.nan_to_num(src.float(), nan=0.0, posinf=float(LIMIT), neginf=-float(LIMIT))
    return torch.round(torch.clamp(src, -LIMIT, LIMIT))


def binary_shape(layer, index, in_shape, shapes, shortcut=True):
    """The output (filters, oh, ow) of a [dualpath] / [fracconv] module, checking
    its input channels and (with a shortcut) that from= fits the output."""
    c, h, w = in_shape
    if c != layer.in_channels:
        raise ShapeMismatchError("expects %d input channels, the input has %d"
                                 % (layer.in_channels, c))
    oh = (h + 2 * layer.padding - layer.size) // layer.stride + 1
    ow = (w + 2 * layer.padding - layer.size) // layer.stride + 1
    if shortcut:
        j = _absolute(index, layer.from_, "from", shapes)
        sc, sh, sw = shapes[j] if j < index else in_shape
        if (sh, sw) != (oh, ow) or layer.filters % sc:
            raise ShapeMismatchError("from=%d: layer %d (%dx%dx%d) does not fit the output %dx%dx%d "
                                     "(same height and width, channels dividing filters)"
                                     % (layer.from_, j, sc, sh, sw, layer.filters, oh, ow))
    return (layer.filters, oh, ow)


def geometry_options(layer):
    """filters, size, stride and pad / padding as cfg strings."""
    o = {"filters": str(layer.filters), "size": str(layer.size), "stride": str(layer.stride)}
    if layer.pad:
        o["pad"] = "1"
    else:
        o["padding"] = str(layer.padding)
    return o


def tiled_source(layer, outputs):
    """The second source (its references()' first), channels repeated to filters."""
    src = outputs[layer.references(len(outputs))[0]]
    reps = layer.filters // src.shape[1]
    return src.repeat(1, reps, 1, 1) if reps > 1 else src


class DualPath(DarknetLayer):
    """[dualpath] filters, size, stride, pad/padding, abits (1 or 1.5), from_."""

    section = "dualpath"
    takes_outputs = True

    def __init__(self, in_channels, filters, size=3, stride=1, *, pad=True, padding=0, abits=1.5,
                 from_=-1, range_init=4.0, delta_init=2.0, window=4.0):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("filters", filters), ("size", size),
                        ("stride", stride)):
            _positive(name, v)
        if abits not in ABITS:
            raise ValueError("abits must be 1 or 1.5, got %r" % (abits,))
        if not isinstance(from_, int):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        self.in_channels, self.filters, self.size, self.stride = in_channels, filters, size, stride
        self.pad = bool(pad)
        self.padding = size // 2 if pad else padding
        self.abits, self.from_ = abits, from_
        self.weight = nn.Parameter(torch.empty(filters, in_channels, size, size))
        self.bias = nn.Parameter(torch.zeros(filters))
        self.bn = DarknetBatchNorm(filters)
        self.shift = nn.Parameter(torch.zeros(in_channels))
        self.delta = nn.Parameter(torch.tensor(float(delta_init))) if abits == 1.5 else None
        self.range = nn.Parameter(torch.tensor(float(range_init)))
        self.register_buffer("window", torch.tensor(float(window)))
        nn.init.uniform_(self.weight, -0.05, 0.05)

    # ------------------------------------------------------------------ shapes and files
    def references(self, index):
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def infer(self, index, in_shape, shapes):
        return binary_shape(self, index, in_shape, shapes)

    def cfg_options(self):
        o = geometry_options(self)
        o["abits"] = ABITS[self.abits]
        o["from"] = str(self.from_)
        return o

    def darknet_arrays(self):
        a = {"biases": to_array(self.bias, "biases")}
        a.update(_bn_arrays(self.bn, ""))
        a["weights"] = to_array(self.weight, "weights")
        a["shift"] = to_array(self.shift, "shift")
        if self.delta is not None:
            a["delta"] = to_array(self.delta.reshape(1), "delta")
        a["range"] = to_array(self.range.reshape(1), "range")
        return a

    def load_darknet_arrays(self, arrays):
        names = ["biases", "scales", "rolling_mean", "rolling_variance", "weights", "shift", "range"]
        if self.delta is not None:
            names.append("delta")
        _expect_names(arrays, names, "[dualpath]")
        with torch.no_grad():
            self.bias.copy_(from_array(arrays["biases"], (self.filters,), "biases"))
            _load_bn(self.bn, arrays, "")
            self.weight.copy_(from_array(arrays["weights"], self.weight.shape, "weights"))
            self.shift.copy_(from_array(arrays["shift"], (self.in_channels,), "shift"))
            self.range.copy_(from_array(arrays["range"], (1,), "range")[0])
            if self.delta is not None:
                self.delta.copy_(from_array(arrays["delta"], (1,), "delta")[0])

    def extra_repr(self):
        return ("%d, %d, size=%d, stride=%d, padding=%d, abits=%s, from=%d"
                % (self.in_channels, self.filters, self.size, self.stride, self.padding,
                   ABITS[self.abits], self.from_))

    # ------------------------------------------------------------------ forward
    def constrain(self):
        """Keep the learned scales in their valid range (call after each step)."""
        with torch.no_grad():
            self.range.clamp_(min=0.05)
            if self.delta is not None:
                self.delta.clamp_(min=0.05)

    def thresholds(self):
        """float32 (lo, hi) per channel, as MDFI computes them (1 bit: hi = shift)."""
        if self.delta is None:
            return None, self.shift
        return self.shift - self.delta, self.shift + self.delta

    def quantize(self, x):
        view = (1, -1, 1, 1)
        lo, hi = self.thresholds()
        hi = hi.view(view)
        if lo is None:
            hard = torch.where(x > hi, 1.0, -1.0).to(x.dtype)
            if not self.training:
                return hard
            return _ste(hard, torch.clamp((x - self.shift.view(view)) / self.window, -1, 1))
        hard = (x > hi).to(x.dtype) - (x < lo.view(view)).to(x.dtype)
        if not self.training:
            return hard
        return _ste(hard, torch.clamp((x - self.shift.view(view)) / (2 * self.delta), -1, 1))

    def binary_weight(self):
        hard = torch.where(self.weight > 0, 1.0, -1.0).to(self.weight.dtype)
        return _ste(hard, torch.clamp(self.weight, -1, 1)) if self.training else hard

    def source(self, x, outputs):
        return tiled_source(self, outputs)

    def fold(self):
        """(Mul, Off, S) of the definition, from the float32 parameters."""
        with torch.no_grad():
            sd = torch.sqrt(self.bn.running_var.float()) + 1e-6
            g = self.bn.weight.float() / sd
            lam = self.range.float()
            a = lam * g
            b = lam * (self.bias.float() - self.bn.running_mean.float() * g)
            return fixed_point(a, b)

    def forward(self, x, outputs):
        d = F.conv2d(self.quantize(x), self.binary_weight(), None, self.stride, self.padding)
        src = self.source(x, outputs)
        if self.training:
            y = self.bn(d) + self.bias.view(1, -1, 1, 1)
            return _round_ste(self.range * y) + _round_ste(src)
        mul, off, s = self.fold()
        r = requantize(torch.round(d).long(), mul, off, s)
        z = torch.clamp(r + integer_source(src).long(), -LIMIT, LIMIT)
        return z.to(x.dtype)


def dualpath_layers(model):
    return [m for m in model.modules() if isinstance(m, DualPath)]


def constrain(model):
    """DualPath.constrain on every [dualpath] of model."""
    for m in dualpath_layers(model):
        m.constrain()


__all__ = ["DualPath", "binary_shape", "geometry_options", "tiled_source", "constrain", "dualpath_layers", "fixed_point", "requantize", "integer_source",
           "LIMIT"]
