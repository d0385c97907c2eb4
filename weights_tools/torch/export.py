"""PyTorch model -> Darknet .cfg text and .weights bytes.

export() takes either a `Darknet` model built from weights_tools.torch layers
(every layer maps one to one) or an `nn.Sequential` whose standard modules map
to Darknet sections without ambiguity:

    Conv2d [+ BatchNorm2d] [+ activation]     [convolutional]
    Linear [+ BatchNorm1d] [+ activation]     [connected]   (after Flatten)
    MaxPool2d                                 [maxpool]  only where Darknet's window
                                              placement gives the same windows
    AvgPool2d covering the whole input,
    AdaptiveAvgPool2d(1)                      [avgpool]
    Upsample(nearest, integer factor)         [upsample]
    Dropout, Dropout1d, Dropout2d             [dropout]  (identity at inference)
    Softmax over the flattened features       [softmax]
    Flatten, Identity                         nothing (Darknet memory is CHW already)

The activations after a Conv2d/Linear(/BN) are ReLU, LeakyReLU(0.1) (Darknet
"leaky"), LeakyReLU(0.01) ("relie"), Sigmoid, Tanh, ELU(alpha=1),
Hardtanh(-1, 1), ReLU6 ("relu6"), SiLU ("swish"), Mish ("mish") and Identity.
Nested nn.Sequential are walked; Darknet layers may be mixed in (except
Route/Shortcut/ScaleChannels/Sam, which need a Darknet model). Anything
else raises UnsupportedModuleError naming the module's path in the model.

PyTorch's BatchNorm (epsilon inside the square root) is converted to Darknet's
(1e-6 added to the standard deviation) by rescaling the BN scales, in float64:
    scales = gamma * (sqrt(var) + 1e-6) / sqrt(var + eps)
and a conv/linear bias in front of the BN is folded into rolling_mean. The
exported network computes the model's eval-mode function.
"""

import math

import torch
import torch.nn as nn

from weights_tools.darknet_cfg import Section, infer_layers, write_cfg
from weights_tools.darknet_weights import DarknetWeights, write_weights
from weights_tools.torch.layers import (DARKNET_BN_EPS, AvgPool, BridgeError, Conv, Connected,
                                        Cost, Darknet, DarknetLayer, Dropout, DtypeError, MaxPool,
                                        ShapeMismatchError, Softmax, UnsupportedModuleError,
                                        Upsample, check_tensor)

_NN_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Hardtanh, nn.Identity,
                   nn.SiLU, nn.Mish)   # nn.ReLU6 is a Hardtanh


def _describe(path, module):
    return "%s (%s)" % (path or "<model>", repr(module).split("\n")[0])


def _unsupported(path, module, why):
    return UnsupportedModuleError("%s: %s" % (_describe(path, module), why))


def _activation_name(path, m):
    """Darknet activation for a standard activation module, or raise."""
    if isinstance(m, nn.Identity):
        return "linear"
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.Sigmoid):
        return "logistic"
    if isinstance(m, nn.Tanh):
        return "tanh"
    if isinstance(m, nn.ReLU6):   # before Hardtanh, its base class
        return "relu6"
    if isinstance(m, nn.SiLU):
        return "swish"
    if isinstance(m, nn.Mish):
        return "mish"
    if isinstance(m, nn.LeakyReLU):
        if math.isclose(m.negative_slope, 0.1, rel_tol=1e-9):
            return "leaky"
        if math.isclose(m.negative_slope, 0.01, rel_tol=1e-9):
            return "relie"
        raise _unsupported(path, m, "Darknet's leaky ReLUs have slope 0.1 (leaky) or 0.01 (relie), "
                                    "not %g" % m.negative_slope)
    if isinstance(m, nn.ELU):
        if m.alpha == 1.0:
            return "elu"
        raise _unsupported(path, m, "Darknet's elu has alpha 1, not %g" % m.alpha)
    if isinstance(m, nn.Hardtanh):
        if (m.min_val, m.max_val) == (-1.0, 1.0):
            return "hardtan"
        raise _unsupported(path, m, "Darknet's hardtan clamps to [-1, 1], not [%g, %g]"
                                    % (m.min_val, m.max_val))
    raise _unsupported(path, m, "not an activation Darknet has")


def _pair(path, module, name, v):
    """An int from an int or a pair of equal ints."""
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise _unsupported(path, module, "%s=%s differs between height and width; Darknet uses "
                                             "one value for both" % (name, tuple(v)))
        v = v[0]
    return int(v)


def _f64(t, what):
    return check_tensor(t, what).detach().to("cpu", torch.float64)


def _working_dtype(t):
    """float64 for float64 models (so to_darknet() keeps their precision), else float32."""
    return torch.float64 if isinstance(t, torch.Tensor) and t.dtype == torch.float64 else torch.float32


def _set(param, value):
    with torch.no_grad():
        param.copy_(value.to(param.dtype))


def _apply_bn(path, bn, target, pre_bias, n):
    """Copy a PyTorch BatchNorm into the Darknet layer `target` (which has a bn)."""
    if bn.num_features != n:
        raise ShapeMismatchError("%s: %d features after a layer with %d outputs"
                                 % (_describe(path, bn), bn.num_features, n))
    if not bn.track_running_stats or bn.running_mean is None:
        raise _unsupported(path, bn, "without running statistics it normalises with batch "
                                     "statistics even in eval mode; Darknet uses rolling statistics")
    mean = _f64(bn.running_mean, path + ".running_mean")
    var = _f64(bn.running_var, path + ".running_var")
    gamma = _f64(bn.weight, path + ".weight") if bn.affine else torch.ones(n, dtype=torch.float64)
    beta = _f64(bn.bias, path + ".bias") if bn.affine else torch.zeros(n, dtype=torch.float64)
    if (var < 0).any():
        raise BridgeError("%s: negative running_var" % _describe(path, bn))
    scale = gamma * (torch.sqrt(var) + DARKNET_BN_EPS) / torch.sqrt(var + bn.eps)
    if pre_bias is not None:
        mean = mean - pre_bias  # BN(z + b) == BN'(z) with mean' = mean - b
    _set(target.bn.weight, scale)
    _set(target.bn.running_mean, mean)
    _set(target.bn.running_var, var)
    _set(target.bias, beta)


class _Walker:
    """Turns a flat list of (path, module) into Darknet layers, tracking the shape."""

    def __init__(self, items, input_shape):
        self.items = items
        self.shape = tuple(input_shape)
        self.flat = False  # a Flatten has been applied (PyTorch tensor is (N, features))
        self.layers = []
        self.paths = []

    def _add(self, layer, path, module):
        index = len(self.layers)
        try:
            out = tuple(layer.infer(index, self.shape, [None] * index))
        except ShapeMismatchError as e:
            raise ShapeMismatchError("%s: %s" % (_describe(path, module), e)) from None
        self.layers.append(layer)
        self.paths.append(path)
        self.shape = out

    def _peek(self, i, types):
        if i < len(self.items) and isinstance(self.items[i][1], types):
            return self.items[i]
        return None

    def _activation_after(self, i):
        """(darknet activation, next index) for an optional activation at i."""
        nxt = self._peek(i, _NN_ACTIVATIONS)
        if nxt is None:
            return "linear", i
        return _activation_name(*nxt), i + 1

    def run(self):
        i = 0
        while i < len(self.items):
            path, m = self.items[i]
            handler = None
            for types, fn in self.HANDLERS:
                if isinstance(m, types):
                    handler = fn
                    break
            if handler is None:
                if isinstance(m, _NN_ACTIVATIONS):
                    raise _unsupported(path, m, "an activation must follow a Conv2d, Linear or their "
                                                "BatchNorm: Darknet has no stand-alone activation layer")
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    raise _unsupported(path, m, "a BatchNorm must directly follow a Conv2d (2d) or a "
                                                "Linear (1d) to map to Darknet")
                raise _unsupported(path, m, "no exact Darknet counterpart")
            i = handler(self, i, path, m)
        return self.layers, self.paths

    # -- handlers: each returns the index of the next unconsumed item ----------
    def conv2d(self, i, path, m):
        if self.flat:
            raise ShapeMismatchError("%s: a Conv2d after Flatten" % _describe(path, m))
        if m.padding_mode != "zeros":
            raise _unsupported(path, m, "padding_mode=%r; Darknet pads with zeros" % m.padding_mode)
        dilation = _pair(path, m, "dilation", m.dilation)
        if isinstance(m, nn.ConvTranspose2d) or getattr(m, "transposed", False):
            raise _unsupported(path, m, "transposed convolution")
        size = _pair(path, m, "kernel_size", m.kernel_size)
        # AlexeyAB's stride_x / stride_y: (height, width) may differ
        sy, sx = (int(s) for s in (m.stride if isinstance(m.stride, (tuple, list))
                                   else (m.stride, m.stride)))
        if isinstance(m.padding, str):
            if m.padding == "valid":
                padding = 0
            elif size % 2 == 1:  # 'same' with stride 1 (PyTorch's rule) on an odd kernel
                padding = size // 2
            else:
                raise _unsupported(path, m, "padding='same' with an even kernel pads unevenly")
        else:
            padding = _pair(path, m, "padding", m.padding)
            if padding % dilation:
                raise _unsupported(path, m, "padding %d is not a multiple of dilation %d "
                                            "(Darknet pads by padding x dilation)"
                                            % (padding, dilation))
            padding //= dilation
        bn_item = self._peek(i + 1, nn.BatchNorm2d)
        j = i + 2 if bn_item else i + 1
        act, j = self._activation_after(j)
        layer = Conv(m.in_channels, m.out_channels, size, sx, activation=act, padding=padding,
                     groups=m.groups, batch_normalize=bn_item is not None, stride_y=sy,
                     dilation=dilation)
        layer.pad = padding == size // 2 and padding > 0
        layer.to(_working_dtype(m.weight))
        _set(layer.weight, _f64(m.weight, path + ".weight"))
        bias = _f64(m.bias, path + ".bias") if m.bias is not None else None
        if bn_item:
            _apply_bn(bn_item[0], bn_item[1], layer, bias, m.out_channels)
        else:
            _set(layer.bias, bias if bias is not None else torch.zeros(m.out_channels))
        self._add(layer, path, m)
        return j

    def linear(self, i, path, m):
        c, h, w = self.shape
        if not self.flat and (h, w) != (1, 1):
            raise ShapeMismatchError("%s: the input is %dx%dx%d (c x h x w); put an nn.Flatten() "
                                     "before the Linear" % (_describe(path, m), c, h, w))
        if not self.flat:
            raise ShapeMismatchError("%s: the input is still 4-D (N, %d, 1, 1); put an nn.Flatten() "
                                     "before the Linear" % (_describe(path, m), c))
        bn_item = self._peek(i + 1, nn.BatchNorm1d)
        j = i + 2 if bn_item else i + 1
        act, j = self._activation_after(j)
        layer = Connected(m.in_features, m.out_features, activation=act,
                          batch_normalize=bn_item is not None)
        layer.to(_working_dtype(m.weight))
        _set(layer.weight, _f64(m.weight, path + ".weight"))
        bias = _f64(m.bias, path + ".bias") if m.bias is not None else None
        if bn_item:
            _apply_bn(bn_item[0], bn_item[1], layer, bias, m.out_features)
        else:
            _set(layer.bias, bias if bias is not None else torch.zeros(m.out_features))
        self._add(layer, path, m)
        return j

    def maxpool(self, i, path, m):
        if self.flat:
            raise ShapeMismatchError("%s: a MaxPool2d after Flatten" % _describe(path, m))
        if m.return_indices:
            raise _unsupported(path, m, "return_indices=True")
        if _pair(path, m, "dilation", m.dilation) != 1:
            raise _unsupported(path, m, "dilation %s" % (m.dilation,))
        k = _pair(path, m, "kernel_size", m.kernel_size)
        s = _pair(path, m, "stride", m.stride if m.stride is not None else k)
        p = _pair(path, m, "padding", m.padding)
        _, h, w = self.shape

        def torch_out(n):
            num = n + 2 * p - k
            o = (-(-num // s) if m.ceil_mode else num // s) + 1
            if m.ceil_mode and (o - 1) * s >= n + p:
                o -= 1
            return o

        want = (torch_out(h), torch_out(w))
        # Darknet's windows start at stride*o - padding//2: that is PyTorch's when
        # padding//2 == p; the padding that also gives the same output size wins.
        for dp in (2 * p, 2 * p + 1):
            if tuple((n + dp - k) // s + 1 for n in (h, w)) == want and dp >= 0:
                self._add(MaxPool(k, s, dp), path, m)
                return i + 1
        raise _unsupported(path, m, "on a %dx%d input PyTorch gives %dx%d windows that Darknet's "
                                    "maxpool (window start stride*o - padding/2) cannot place"
                           % (w, h, want[1], want[0]))

    def avgpool(self, i, path, m):
        if self.flat:
            raise ShapeMismatchError("%s: pooling after Flatten" % _describe(path, m))
        _, h, w = self.shape
        if isinstance(m, nn.AdaptiveAvgPool2d):
            size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,) * 2
            if tuple(size) != (1, 1):
                raise _unsupported(path, m, "Darknet's avgpool is global: output_size must be 1")
        else:
            k = m.kernel_size if isinstance(m.kernel_size, (tuple, list)) else (m.kernel_size,) * 2
            p = m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,) * 2
            if tuple(p) != (0, 0) or tuple(k) != (h, w) or m.divisor_override is not None:
                raise _unsupported(path, m, "Darknet's avgpool averages the whole %dx%d input; this "
                                            "window is not global" % (w, h))
        self._add(AvgPool(), path, m)
        return i + 1

    def upsample(self, i, path, m):
        if m.mode != "nearest":
            raise _unsupported(path, m, "mode=%r; Darknet upsamples by nearest neighbour" % m.mode)
        if m.size is not None or m.scale_factor is None:
            raise _unsupported(path, m, "give an integer scale_factor, not a size")
        sf = m.scale_factor if isinstance(m.scale_factor, (tuple, list)) else (m.scale_factor,) * 2
        if len(set(sf)) != 1 or float(sf[0]) != int(sf[0]) or int(sf[0]) < 1:
            raise _unsupported(path, m, "scale_factor=%s; Darknet needs one integer factor" % (sf,))
        self._add(Upsample(int(sf[0])), path, m)
        return i + 1

    def dropout(self, i, path, m):
        self._add(Dropout(m.p), path, m)
        return i + 1

    def softmax(self, i, path, m):
        c, h, w = self.shape
        if self.flat:
            ok = m.dim in (1, -1)
        else:
            ok = (h, w) == (1, 1) and m.dim == 1
        if not ok:
            raise _unsupported(path, m, "Darknet's softmax runs over all %d features; use "
                                        "nn.Flatten() then nn.Softmax(dim=1)" % (c * h * w))
        self._add(Softmax(), path, m)
        return i + 1

    def flatten(self, i, path, m):
        if m.start_dim != 1 or m.end_dim != -1:
            raise _unsupported(path, m, "only Flatten(start_dim=1, end_dim=-1) keeps the batch "
                                        "dimension and Darknet's CHW order")
        self.flat = True
        return i + 1

    def identity(self, i, path, m):
        return i + 1

    def darknet_layer(self, i, path, m):
        if m.takes_outputs:
            raise _unsupported(path, m, "route/shortcut/scale_channels/sam refer to earlier "
                                        "layers by index; build the model as "
                                        "weights_tools.torch.Darknet(...)")
        if self.flat and not isinstance(m, (Connected, Softmax, Dropout, Cost)):
            raise ShapeMismatchError("%s: after Flatten the tensor is 2-D" % _describe(path, m))
        self._add(m, path, m)
        if isinstance(m, (Connected, Softmax)):
            self.flat = False  # Darknet layers return (N, n, 1, 1)
        return i + 1

    HANDLERS = [
        (DarknetLayer, darknet_layer),
        (nn.Conv2d, conv2d),
        (nn.Linear, linear),
        (nn.MaxPool2d, maxpool),
        ((nn.AvgPool2d, nn.AdaptiveAvgPool2d), avgpool),
        (nn.Upsample, upsample),
        ((nn.Dropout, nn.Dropout1d, nn.Dropout2d), dropout),
        (nn.Softmax, softmax),
        (nn.Flatten, flatten),
        (nn.Identity, identity),
    ]


def _flatten_sequential(module, prefix=""):
    for name, child in module.named_children():
        path = prefix + name
        if type(child) is nn.Sequential:
            yield from _flatten_sequential(child, path + ".")
        else:
            yield path, child


def _check_input_shape(input_shape):
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ShapeMismatchError("input_shape must be (c, h, w), got %r" % (input_shape,)) from None
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) <= 0:
        raise ShapeMismatchError("input_shape must be 3 positive ints (c, h, w), got %r"
                                 % (input_shape,))
    return shape


def to_darknet(model, input_shape=None):
    """The `Darknet` model equivalent to `model` (a Darknet model is returned
    as it is). Raises UnsupportedModuleError / ShapeMismatchError / DtypeError."""
    if isinstance(model, Darknet):
        if input_shape is not None and _check_input_shape(input_shape) != model.input_shape:
            raise ShapeMismatchError("input_shape %s differs from the model's %s"
                                     % (tuple(input_shape), model.input_shape))
        model.infer_shapes()
        return model
    if input_shape is None:
        raise ShapeMismatchError("input_shape (c, h, w) is needed to export a %s"
                                 % type(model).__name__)
    shape = _check_input_shape(input_shape)
    if isinstance(model, DarknetLayer):
        model = nn.Sequential(model)
    if type(model) is not nn.Sequential:
        raise UnsupportedModuleError(
            "<model> (%s): export() maps weights_tools.torch.Darknet models and nn.Sequential; "
            "a module with its own forward() cannot be mapped unambiguously" % type(model).__name__)
    items = list(_flatten_sequential(model))
    if not items:
        raise UnsupportedModuleError("<model>: the nn.Sequential is empty")
    layers, _ = _Walker(items, shape).run()
    if not layers:
        raise UnsupportedModuleError("<model>: no module of the nn.Sequential maps to a Darknet layer")
    net = Darknet(shape, layers)
    net.train(model.training)
    return net


def export(model, input_shape=None):
    """(cfg_text, weights_bytes) for `model` as Darknet files. input_shape is
    (c, h, w); it may be omitted for a Darknet model (which knows its own)."""
    net = to_darknet(model, input_shape)
    c, h, w = net.input_shape
    net_opts = {"width": str(w), "height": str(h), "channels": str(c)}
    for k, v in net.net_options.items():
        if k not in net_opts and k != "inputs":
            net_opts[k] = v
    sections = [Section("net", net_opts)]
    arrays = []
    for i, layer in enumerate(net.layers):
        sections.append(Section(layer.section, layer.cfg_options()))
        try:
            arrays.append(layer.darknet_arrays())
        except (DtypeError, ShapeMismatchError) as e:
            raise type(e)("layer %d (%s): %s" % (i, type(layer).__name__, e)) from None
    cfg_text = write_cfg(sections)
    layers = infer_layers(sections)  # numpy shape inference must agree with the modules'
    for layer, shape in zip(layers, net.shapes):
        if tuple(layer.out_shape) != tuple(shape):
            raise ShapeMismatchError("layer %d [%s]: the cfg gives output %s, the module %s"
                                     % (layer.index, layer.type, layer.out_shape, shape))
    weights = DarknetWeights(0, 2, 0, net.seen, arrays)
    return cfg_text, write_weights(layers, weights)


def save(model, prefix, input_shape=None):
    """Write PREFIX.cfg and PREFIX.weights; returns their paths."""
    import os
    cfg_text, weights = export(model, input_shape)
    prefix = os.fspath(prefix)
    for ext in (".cfg", ".weights"):
        if prefix.endswith(ext):
            prefix = prefix[:-len(ext)]
    with open(prefix + ".cfg", "w") as f:
        f.write(cfg_text)
    with open(prefix + ".weights", "wb") as f:
        f.write(weights)
    return prefix + ".cfg", prefix + ".weights"
