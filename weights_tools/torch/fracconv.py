"""[fracconv]: the BN-free fractional binary convolution of WSFracBNN
(docs/wsfracbnn.md has the design and the exact definition).

    z = round(range * (scale * P + bias)) + round(source)
    P = 2 D1 + g D0,  g = [2 D1 > gate]          (input=stream)
    P = D1                                       (input=thermometer)

D1, D0 are the sign convolutions of the two bit planes of the 2-bit input
level q = 2 s1 + s0 (thresholds shift - step, shift, shift + step per
channel) or of the thermometer bits of the image; the weights are signs.

`norm` says where `scale` and `bias` come from while training:

* ``"ws"`` (WSFracBNN): scaled weight standardization, W^ = gain (W - mean W)
  / (std W sqrt(fan_in)); the binary weight is sign(W^) and the scale is
  mean |W^| (divided by 3 on the stream, whose levels are 3 x the fractional
  activation {+-1/3, +-1}); no batch normalization anywhere;
* ``"bn"`` (the baseline): plain latent weights, Darknet BN on P, folded into
  scale and bias at export;
* ``"fixed"``: scale and bias are plain parameters (what import_darknet builds
  from a .weights file).

Training uses straight-through estimators: the planes' gradients are those of
clamp(u, -1, 1) (s1) and clamp(2u, -3, 3) (the 2-bit level), u = (x - shift) /
step; the weights' that of the latent weights (clamped to +-1 for "bn"/"fixed");
the gate's that of sigmoid((2 D1 - gate) / tau), tau = sqrt(fan_in); both
roundings pass the gradient unchanged.  `gated_share()` after a training
forward is the differentiable share of gated outputs (for a penalty).
Evaluation mode computes exactly what MDFI computes: the fold of
docs/dualpath.md, int64 arithmetic, the clamps.

On the first training forward each layer sets its own starting point from the
batch it sees (shift = channel means, step = the input's standard deviation,
range so that the layer adds `alpha` times its input's spread to the stream,
as NF-Nets' residual scaling; a thermometer layer's output spread is
`first_spread` integer levels).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from weights_tools.torch.dualpath import (LIMIT, _round_ste, _ste, binary_shape, fixed_point,
                                          geometry_options, integer_source, requantize, tiled_source)
from weights_tools.torch.layers import (DarknetBatchNorm, DarknetLayer, ShapeMismatchError, _expect_names,
                                        _positive, from_array, to_array)

NORMS = ("ws", "bn", "fixed")
INPUTS = ("stream", "thermometer")


def thermometer_thresholds(levels, dtype=torch.float32):
    """t_k = fl32((2k + 1) / (2T)), k < T (the definition's float32 thresholds)."""
    return torch.tensor([(2 * k + 1) / (2 * levels) for k in range(levels)], dtype=torch.float64).to(dtype)


def thermometer(x, levels):
    """[N, C T, H, W] of +1 / -1: channel c T + k is +1 where x_c > t_k."""
    t = thermometer_thresholds(levels).to(x.device).view(1, 1, -1, 1, 1)
    n, c, h, w = x.shape
    bits = x.float().unsqueeze(2) > t
    return torch.where(bits, 1.0, -1.0).reshape(n, c * levels, h, w).to(x.dtype)


class FracConv(DarknetLayer):
    """[fracconv] filters, size, stride, pad/padding, input ("stream" or
    "thermometer"), levels (thermometer), gate (stream), shortcut, from_."""

    section = "fracconv"
    takes_outputs = True

    def __init__(self, in_channels, filters, size=3, stride=1, *, pad=True, padding=0, input="stream",
                 levels=16, gate=True, shortcut=None, from_=-1, norm="ws", alpha=0.5,
                 first_spread=8.0, gate_init=1.5):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("filters", filters), ("size", size),
                        ("stride", stride)):
            _positive(name, v)
        if input not in INPUTS:
            raise ValueError("input must be one of %s, got %r" % (INPUTS, input))
        if norm not in NORMS:
            raise ValueError("norm must be one of %s, got %r" % (NORMS, norm))
        thermo = input == "thermometer"
        shortcut = (not thermo) if shortcut is None else bool(shortcut)
        if thermo and shortcut:
            raise ValueError("a thermometer [fracconv] has no shortcut")
        if thermo and not 1 <= levels <= 256:
            raise ValueError("levels must be 1..256, got %r" % (levels,))
        if not isinstance(from_, int):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        self.in_channels, self.filters, self.size, self.stride = in_channels, filters, size, stride
        self.pad = bool(pad)
        self.padding = size // 2 if pad else padding
        self.input, self.levels = input, levels if thermo else 1
        self.gated = bool(gate) and not thermo
        self.shortcut, self.from_, self.norm = shortcut, from_, norm
        self.alpha, self.first_spread = float(alpha), float(first_spread)
        cin = in_channels * self.levels
        self.fan_in = cin * size * size
        self.weight = nn.Parameter(torch.empty(filters, cin, size, size))
        nn.init.normal_(self.weight, 0.0, 1.0 / math.sqrt(self.fan_in))
        self.bias = nn.Parameter(torch.zeros(filters))
        self.gain = nn.Parameter(torch.ones(filters)) if norm == "ws" else None
        self.bn = DarknetBatchNorm(filters) if norm == "bn" else None
        self.scale = nn.Parameter(torch.ones(filters)) if norm == "fixed" else None
        if not thermo:
            self.shift = nn.Parameter(torch.zeros(in_channels))
            self.step = nn.Parameter(torch.tensor(1.0))
        else:
            self.shift = self.step = None
        # the gate in units of tau = sqrt(fan_in), so that one optimizer step moves it as far
        # in every layer; the threshold itself is fl32(gate_raw * tau)
        self.register_buffer("tau", torch.tensor(math.sqrt(self.fan_in)))
        self.gate_raw = nn.Parameter(torch.full((filters,), float(gate_init))) if self.gated else None
        self.range = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(norm == "fixed"))
        self._soft_share = None

    # ------------------------------------------------------------------ shapes and files
    def references(self, index):
        if not self.shortcut:
            return []
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def infer(self, index, in_shape, shapes):
        return binary_shape(self, index, in_shape, shapes, self.shortcut)

    def cfg_options(self):
        o = geometry_options(self)
        o["input"] = self.input
        if self.input == "thermometer":
            o["levels"] = str(self.levels)
        else:
            o["gate"] = "1" if self.gated else "0"
            o["shortcut"] = "1" if self.shortcut else "0"
            if self.shortcut:
                o["from"] = str(self.from_)
        return o

    def darknet_arrays(self):
        with torch.no_grad():
            scale, bias = self.folded()
            a = {"biases": to_array(bias, "biases"), "scales": to_array(scale, "scales"),
                 "weights": to_array(self.signed_weight(), "weights")}
            if self.input == "stream":
                a["shift"] = to_array(self.shift, "shift")
                a["step"] = to_array(self.step.reshape(1), "step")
                if self.gated:
                    a["gate"] = to_array(self.gate(), "gate")
            a["range"] = to_array(self.range.reshape(1), "range")
        return a

    def load_darknet_arrays(self, arrays):
        if self.norm != "fixed":
            raise ShapeMismatchError("[fracconv] loads .weights arrays only with norm='fixed' "
                                     "(the file holds the folded scale and bias)")
        names = ["biases", "scales", "weights", "range"]
        if self.input == "stream":
            names += ["shift", "step"] + (["gate"] if self.gated else [])
        _expect_names(arrays, names, "[fracconv]")
        with torch.no_grad():
            self.bias.copy_(from_array(arrays["biases"], (self.filters,), "biases"))
            self.scale.copy_(from_array(arrays["scales"], (self.filters,), "scales"))
            self.weight.copy_(from_array(arrays["weights"], self.weight.shape, "weights"))
            self.range.copy_(from_array(arrays["range"], (1,), "range")[0])
            if self.input == "stream":
                self.shift.copy_(from_array(arrays["shift"], (self.in_channels,), "shift"))
                self.step.copy_(from_array(arrays["step"], (1,), "step")[0])
                if self.gated:
                    # the file's thresholds exactly: gate_raw * tau rounds back to them
                    self.tau.fill_(1.0)
                    self.gate_raw.copy_(from_array(arrays["gate"], (self.filters,), "gate"))
            self.initialized.fill_(True)

    def extra_repr(self):
        return ("%d, %d, size=%d, stride=%d, padding=%d, input=%s%s, norm=%s"
                % (self.in_channels, self.filters, self.size, self.stride, self.padding, self.input,
                   ", gate=%d" % self.gated if self.input == "stream" else ", levels=%d" % self.levels,
                   self.norm))

    # ------------------------------------------------------------------ parameters
    def signed_weight(self):
        """The latent weights whose signs are the binary weights (W^ for "ws")."""
        if self.norm != "ws":
            return self.weight
        w = self.weight.flatten(1)
        mean = w.mean(1, keepdim=True)
        std = w.std(1, keepdim=True, unbiased=False) + 1e-5
        w_hat = self.gain.view(-1, 1) * (w - mean) / (std * math.sqrt(self.fan_in))
        return w_hat.view_as(self.weight)

    def level_unit(self):
        """The stream's 2-bit levels are 3 x the fractional activation; thermometer bits 1 x."""
        return 3.0 if self.input == "stream" else 1.0

    def folded(self):
        """(scale, bias) per output channel, float32, as [fracconv] stores them."""
        if self.norm == "fixed":
            return self.scale.float(), self.bias.float()
        if self.norm == "ws":
            alpha = self.signed_weight().flatten(1).abs().mean(1)
            return (alpha / self.level_unit()).float(), self.bias.float()
        sd = torch.sqrt(self.bn.running_var.float()) + 1e-6
        g = self.bn.weight.float() / sd
        return g, self.bias.float() - self.bn.running_mean.float() * g

    def gate(self):
        """The gate thresholds on 2 D1, float32 (what the file stores)."""
        return (self.gate_raw.float() * self.tau.float()).float()

    def constrain(self):
        """Keep the learned scales in their valid range (call after each step)."""
        with torch.no_grad():
            self.range.clamp_(min=0.05)
            if self.step is not None:
                self.step.clamp_(min=0.05)

    def gated_share(self):
        """The last training forward's soft share of gated outputs (None if not gated)."""
        return self._soft_share

    # ------------------------------------------------------------------ forward
    def planes(self, x):
        """(s1, q): the MSB plane and the 2-bit level 2 s1 + s0 (hard; STE in training)."""
        view = (1, -1, 1, 1)
        shift = self.shift.view(view)
        hi = (self.shift + self.step).view(view)
        lo = (self.shift - self.step).view(view)
        s1 = torch.where(x > shift, 1.0, -1.0).to(x.dtype)
        s0 = torch.where((x > hi) | ((x > lo) & (x <= shift)), 1.0, -1.0).to(x.dtype)
        q = 2 * s1 + s0
        if not self.training:
            return s1, q
        u = (x - shift) / self.step
        return _ste(s1, torch.clamp(u, -1, 1)), _ste(q, torch.clamp(2 * u, -3, 3))

    def binary_weight(self):
        w = self.signed_weight()
        hard = torch.where(w > 0, 1.0, -1.0).to(w.dtype)
        if not self.training:
            return hard
        soft = w * math.sqrt(self.fan_in) if self.norm == "ws" else torch.clamp(w, -1, 1)
        return _ste(hard, soft)

    def source(self, outputs):
        return tiled_source(self, outputs)

    def _conv(self, x, w):
        return F.conv2d(x, w, None, self.stride, self.padding)

    def products(self, x):
        """P of the definition (float, exact integers in evaluation mode)."""
        w = self.binary_weight()
        if self.input == "thermometer":
            return self._conv(thermometer(x, self.levels), w)
        s1, q = self.planes(x)
        d1 = self._conv(s1, w)
        if not self.gated:
            return self._conv(q, w)
        if not self.training:
            g = (2 * d1.double() > torch.floor(self.gate().double()).view(1, -1, 1, 1)).to(d1.dtype)
            d0 = self._conv(q - 2 * s1, w)
            return 2 * d1 + g * d0
        dq = self._conv(q, w)
        z = (2 * d1 - self.gate().view(1, -1, 1, 1)) / self.tau
        soft = torch.sigmoid(z)
        self._soft_share = soft.mean()
        g = _ste((z > 0).to(d1.dtype), soft)
        return g * dq + (1 - g) * 2 * d1

    @torch.no_grad()
    def _initialize(self, x, outputs):
        """Data-dependent start: shift, step, range (see the module docstring)."""
        if self.input == "stream":
            self.shift.copy_(x.mean((0, 2, 3)))
            self.step.fill_(float(x.std()) + 1e-3)
        self.range.fill_(1.0)
        self.initialized.fill_(True)
        y = self._linear(self.products(x))
        spread = float(y.std()) + 1e-6
        target = self.first_spread if not self.shortcut else self.alpha * float(self.source(outputs).std())
        self.range.fill_(max(target, 0.5) / spread)

    def _linear(self, p):
        if self.norm == "bn":
            return self.bn(p) + self.bias.view(1, -1, 1, 1)
        scale, bias = self.folded()
        return scale.view(1, -1, 1, 1) * p + bias.view(1, -1, 1, 1)

    def forward(self, x, outputs):
        if self.training and not bool(self.initialized):
            self._initialize(x, outputs)
        p = self.products(x)
        if self.training:
            y = _round_ste(self.range * self._linear(p))
            return y + _round_ste(self.source(outputs)) if self.shortcut else y
        scale, bias = self.folded()
        lam = self.range.float()
        mul, off, s = fixed_point((lam * scale).float(), (lam * bias).float())
        r = requantize(torch.round(p).long(), mul, off, s)
        if self.shortcut:
            r = r + integer_source(self.source(outputs)).long()
        return torch.clamp(r, -LIMIT, LIMIT).to(x.dtype)


def fracconv_layers(model):
    return [m for m in model.modules() if isinstance(m, FracConv)]


def layer_shares(model):
    """The soft gated share of each gated layer in the last training forward
    (tensors, for a penalty); empty if the model has none."""
    return [m.gated_share() for m in fracconv_layers(model) if m.gated_share() is not None]


def gated_share(model):
    """The mean soft gated share over the gated layers of the last training
    forward (a tensor, for a penalty), or None if the model has none."""
    shares = layer_shares(model)
    return torch.stack(shares).mean() if shares else None


def constrain(model):
    """FracConv.constrain on every [fracconv] of model."""
    for m in fracconv_layers(model):
        m.constrain()


@torch.no_grad()
def keep_signs(m, want, tries=4):
    """A "ws" layer whose latent weights are a file's W^: the gain that reproduces
    them, and the binary weights `want` (True for +1) kept.  WS subtracts the mean
    again, and W^'s own mean is rounding noise (about 1e-9) that a weight nearer
    0 than it would cross: such weights are moved to 1e-5 standard deviations
    from their filter's mean, on the file's side (mean |W^|, the scale, moves by
    about a float32 ulp), until no sign differs.  Returns whether they all are
    kept: False for weights that are not of mean 0 (not a "ws" export)."""
    w = m.weight.flatten(1)
    if not bool((w.mean(1).abs() <= 1e-4 * w.std(1, unbiased=False)).all()):
        return False
    for _ in range(tries):     # w is a view: the moves below are m.weight's
        std = w.std(1, unbiased=False)
        m.gain.copy_((std + 1e-5) * math.sqrt(m.fan_in))
        wrong = (m.signed_weight() > 0) != want
        if not wrong.any():
            return True
        step = (1e-5 * std).view(-1, 1).expand_as(w)
        moved = w.mean(1, keepdim=True).expand_as(w) + torch.where(want.flatten(1), step, -step)
        w[wrong.flatten(1)] = moved[wrong.flatten(1)]
    return False


@torch.no_grad()
def adopt_folded(model, folded, x, gate_share=None):
    """Make `model` (FracConv layers of norm "ws" or "bn") compute what `folded`
    computes: the same network imported from a .weights file (norm "fixed"), so
    that training goes on from a file (train_fracbnn.py --init-from).

    Every parameter the two share is copied.  A "ws" layer takes the file's
    weights as its latent weights (they are W^, of mean 0) and the gain that
    reproduces them; its scale, mean |W^|, must then be the file's, else the file
    is not a "ws" export and ValueError says which layer.  A "bn" layer takes
    the statistics of its products P on x (a batch of training images, run
    through `folded` in evaluation mode) as running statistics, with the BN
    weight and bias that fold back to the file's scale and bias.  The gates go
    back to units of tau.  A gated layer adopted from a dense one (gate=0: 2 bits
    everywhere, P = 2 D1 + D0) gets the gates that pass `gate_share` of its
    outputs on x, layer by layer (`dense_gates`); gate_share None refuses that.
    Returns the share of x on which the two models' top classes agree
    (evaluation mode)."""
    layers, theirs_layers = fracconv_layers(model), fracconv_layers(folded)
    if len(layers) != len(theirs_layers):
        raise ValueError("the networks have different numbers of [fracconv] layers")
    pairs = list(zip(layers, theirs_layers))
    products = {}
    hooks = []
    for k, (m, f) in enumerate(pairs):
        if f.norm != "fixed" or m.norm not in ("ws", "bn"):
            raise ValueError("[fracconv] %d: adopting needs a folded layer (norm 'fixed') into a "
                             "'ws' or 'bn' one, got %r into %r" % (k, f.norm, m.norm))
        if m.norm == "bn":
            hooks.append(f.register_forward_hook(
                lambda mod, inputs, out, k=k: products.__setitem__(k, mod.products(inputs[0]))))
    folded.eval()
    try:
        ref = folded(x).flatten(1)
    finally:
        for h in hooks:
            h.remove()
    theirs = folded.state_dict()
    mine = model.state_dict()
    densed = [k for k, (m, f) in enumerate(pairs) if m.gated and not f.gated]
    if densed and gate_share is None:
        raise ValueError("[fracconv] %d: the file's layer is dense (gate=0); its gates need a "
                         "starting share" % densed[0])
    missing = [key for key in mine if key not in theirs and ".gain" not in key and ".bn." not in key
               and not (key.endswith(".gate_raw") and densed)]
    if missing:
        raise ValueError("the file's network lacks %s" % ", ".join(missing))
    for key, v in theirs.items():
        if key in mine:
            if mine[key].shape != v.shape:
                raise ValueError("%s: shape %s in the file, %s in the network"
                                 % (key, tuple(v.shape), tuple(mine[key].shape)))
            mine[key].copy_(v)
    for k, (m, f) in enumerate(pairs):
        scale, bias = f.scale.float(), f.bias.float()
        if m.norm == "ws":
            kept = keep_signs(m, f.weight > 0)
            got = m.folded()[0]
            if not kept or not torch.allclose(got, scale, rtol=1e-3, atol=0.0):
                raise ValueError("[fracconv] %d: the file's weights are not of mean 0 with scales "
                                 "mean |W| / %g, so it is not a 'ws' export" % (k, m.level_unit()))
        else:
            p = products[k].double()
            mean = p.mean((0, 2, 3))
            var = p.var((0, 2, 3), correction=1)
            sd = torch.sqrt(var) + 1e-6
            m.bn.running_mean.copy_(mean.float())
            m.bn.running_var.copy_(var.float())
            m.bn.weight.copy_((scale.double() * sd).float())
            m.bias.copy_((bias.double() + mean * scale.double()).float())
        if m.gated:
            m.tau.fill_(math.sqrt(m.fan_in))
            if f.gated:
                m.gate_raw.copy_(f.gate() / m.tau)
        m.initialized.fill_(True)
    if densed:
        dense_gates(model, [layers[k] for k in densed], x, gate_share)
    model.eval()
    return float((model(x).flatten(1).argmax(1) == ref.argmax(1)).float().mean())


@torch.no_grad()
def dense_gates(model, gated, x, share):
    """Set the gates of the layers `gated` of `model` so that each passes at most
    `share` of its outputs on x: per channel, the value of 2 D1 that `share` of
    them exceed.  Layer by layer in order, each with the gates before it set
    (the later layers' inputs depend on them).  Starts a gated network from its
    dense twin."""
    if not 0.0 < share < 1.0:
        raise ValueError("the starting gated share must lie in (0, 1), got %g" % share)
    model.eval()
    for m in gated:
        m.gate_raw.fill_(float("inf"))          # closed until set: the next forwards see P = 2 D1
    for m in gated:
        seen = {}
        hook = m.register_forward_hook(lambda mod, inputs, out: seen.__setitem__("x", inputs[0]))
        try:
            model(x)
        finally:
            hook.remove()
        s1, _ = m.planes(seen["x"])
        d2 = 2 * m._conv(s1, m.binary_weight()).double()
        per = d2.transpose(0, 1).flatten(1)
        k = min(per.shape[1] - 1, max(0, int(math.floor((1.0 - share) * per.shape[1]))))
        g = per.sort(dim=1).values[:, k] + 0.5   # 2 D1 is an integer: "> g" passes at most share
        m.gate_raw.copy_((g / m.tau.double()).float())


__all__ = ["FracConv", "adopt_folded", "dense_gates", "constrain", "fracconv_layers", "gated_share",
           "thermometer",
           "thermometer_thresholds"]

