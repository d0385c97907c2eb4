"""PyTorch modules that compute what Darknet's layers compute.

Every module here corresponds to one cfg section and stores its parameters
under Darknet's names, so a model built from them exports to a .cfg/.weights
pair without any guessing, and a cfg imports into them without any loss:

    Conv          [convolutional]   conv, optional Darknet BN, bias, activation
    Connected     [connected]       W x over the CHW-flattened input, BN, bias, activation
    MaxPool       [maxpool]         Darknet's padding rule (window offset -padding/2)
    AvgPool       [avgpool]         global average per channel
    Route         [route]           channel concatenation of earlier layers
    Shortcut      [shortcut]        alpha*previous + beta*from, activation
    ScaleChannels [scale_channels]  from's output scaled per channel (or position) by previous
    Upsample      [upsample]        nearest neighbour times `scale`
    Dropout       [dropout]         identity at inference
    Softmax       [softmax]         over all inputs (or `groups` contiguous groups)
    Yolo          [yolo]            logistic on x, y, objectness and the class scores
    Region        [region]          YOLOv2's head: logistic on x, y, objectness; class softmax
    Reorg         [reorg] [reorg3d] Darknet's reorg_cpu given the input's (output's) shape
    Crop          [crop]            the centre crop_height x crop_width, x*2 - 1
    Cost          [cost]            identity at inference
    Sam           [sam]             previous * from, elementwise, activation
    XnorConv      [convolutional] xnor=1   (weights_tools.torch.binary)

`Darknet` holds a list of them in cfg order and runs them like Darknet does:
route, shortcut, scale_channels and sam refer to earlier layers by index.
Tensors are NCHW; every layer output stays 4-D, so a [connected] output is
(N, outputs, 1, 1), as Darknet's own shapes say.

Batch normalisation (`DarknetBatchNorm`). In eval mode it is Darknet's formula
exactly: y = (x - rolling_mean) / (sqrt(rolling_variance) + 1e-6) * scale.
PyTorch's BatchNorm puts its epsilon inside the square root instead. In
training mode it normalises with the batch statistics, as Darknet's training
does: the mean and the unbiased variance over (N, H, W), with the same
"+1e-6 on the standard deviation" (the variance is clamped at 1e-12 first so
that the square root keeps a finite gradient for a constant channel), and it
moves the rolling statistics by `momentum` (Darknet: 0.01).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from weights_tools.darknet_cfg import EXIT_PREDICTORS, exit_params


class BridgeError(ValueError):
    """Base class of the errors the PyTorch bridge raises on purpose."""


class ShapeMismatchError(BridgeError):
    """Shapes that do not fit: input size, channels, parameter arrays, layer references."""


class UnsupportedModuleError(BridgeError):
    """A module or cfg option with no exact Darknet (or PyTorch) counterpart."""


class DtypeError(BridgeError, TypeError):
    """A tensor or array whose dtype, layout or device cannot be used."""


DARKNET_BN_EPS = 1e-6  # added to the standard deviation, not to the variance


# ----------------------------------------------------------------------------- activations

def _plse(x):
    return torch.where(x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))


def _lhtan(x):
    return torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x))


def _stair(x):
    n = torch.floor(x)
    half = torch.floor(x / 2)
    return torch.where(torch.remainder(n, 2) == 0, half, (x - n) + half)


def _selu(x):
    return torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * torch.expm1(torch.clamp(x, max=0)))


def _mish(x):
    """AlexeyAB's mish: x tanh(softplus(x)), softplus x above 20 and e^x below -20, its tanh
    written 2/(1 + e^-2y) - 1. The clamps keep the unused branches finite for gradients."""
    e = torch.exp(torch.clamp(x, max=20))
    sp = torch.where(x > 20, x, torch.where(x < -20, e, torch.log(e + 1)))
    return x * (2 / (1 + torch.exp(-2 * sp)) - 1)


ACTIVATIONS = {
    "logistic": torch.sigmoid,
    "relu": F.relu,
    "relie": lambda x: F.leaky_relu(x, 0.01),
    "linear": lambda x: x,
    "ramp": lambda x: F.relu(x) + 0.1 * x,
    "tanh": torch.tanh,
    "plse": _plse,
    "leaky": lambda x: F.leaky_relu(x, 0.1),
    "elu": F.elu,
    "loggy": lambda x: 2 * torch.sigmoid(x) - 1,
    "stair": _stair,
    "hardtan": lambda x: torch.clamp(x, -1, 1),
    "lhtan": _lhtan,
    "selu": _selu,
    # AlexeyAB's
    "relu6": lambda x: torch.clamp(x, 0, 6),
    "swish": lambda x: x * torch.sigmoid(x),
    "mish": _mish,
}


def activate(x, name):
    """Darknet activation `name` applied to x."""
    return ACTIVATIONS[name](x)


def _check_activation(name):
    if name not in ACTIVATIONS:
        raise UnsupportedModuleError("unknown Darknet activation %r (known: %s)"
                                     % (name, ", ".join(sorted(ACTIVATIONS))))
    return name


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError("%s must be a positive int, got %r" % (name, value))
    return value


def _f32(v):
    """v rounded to float32, as a Python float."""
    return float(torch.tensor(v, dtype=torch.float32))


def _fmt(v):
    """A number as a cfg value: ints plainly, floats with round-trip precision."""
    if isinstance(v, float):
        return repr(float(v)) if v != int(v) else str(int(v))
    return str(v)


# ----------------------------------------------------------------------------- tensors <-> arrays

def check_tensor(t, what):
    """Raise DtypeError unless t is a dense floating-point tensor with data."""
    if not isinstance(t, torch.Tensor):
        raise DtypeError("%s is a %s, not a tensor" % (what, type(t).__name__))
    if t.layout != torch.strided:
        raise DtypeError("%s has layout %s; only dense (strided) tensors can be exported"
                         % (what, t.layout))
    if t.is_meta:
        raise DtypeError("%s is on the meta device and holds no values" % what)
    if t.is_quantized or not t.is_floating_point():
        raise DtypeError("%s has dtype %s; Darknet weights are float32, so only floating-point "
                         "tensors can be exported (dequantize or convert it first)" % (what, t.dtype))
    return t


def to_array(t, what):
    """float32 numpy copy of a parameter (any float dtype, any strides, any device)."""
    import numpy as np
    check_tensor(t, what)
    a = t.detach().to("cpu", torch.float32).contiguous().numpy().copy()
    if not np.isfinite(a).all():
        raise DtypeError("%s holds %d non-finite values (NaN/inf); Darknet would load them, but "
                         "they are almost surely a training failure" % (what, (~np.isfinite(a)).sum()))
    return a


def from_array(a, shape, what):
    """A float32 tensor from a numpy array of exactly `shape`."""
    import numpy as np
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise DtypeError("%s has dtype %s; Darknet arrays are float32" % (what, a.dtype))
    if tuple(a.shape) != tuple(shape):
        raise ShapeMismatchError("%s has shape %s, expected %s" % (what, tuple(a.shape), tuple(shape)))
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32).copy())


# ----------------------------------------------------------------------------- base class

class DarknetLayer(nn.Module):
    """One Darknet layer. Subclasses set `section` and override what they need."""

    section = None
    takes_outputs = False   # forward(x, outputs): reads earlier layers' outputs by index

    def infer(self, index, in_shape, shapes):
        """Output (c, h, w) for an input of in_shape; `shapes` are the earlier layers'."""
        return tuple(in_shape)

    def references(self, index):
        """Absolute indices of earlier layers this one reads (route, shortcut)."""
        return []

    def cfg_options(self):
        """The cfg section's key=value pairs, as an ordered dict of strings."""
        return {}

    def darknet_arrays(self):
        """name -> float32 numpy array, with the names weights_tools uses."""
        return {}

    def load_darknet_arrays(self, arrays):
        """Set the parameters from darknet_arrays()-style arrays."""
        if arrays:
            raise ShapeMismatchError("[%s] has no parameters, got %s" % (self.section, sorted(arrays)))


class DarknetBatchNorm(nn.Module):
    """Darknet's batch normalisation without the bias (Darknet adds the layer's
    `biases` after it). Parameter `weight` = scales; buffers running_mean =
    rolling_mean and running_var = rolling_variance. See the module docstring
    for the training-mode behaviour."""

    def __init__(self, num_features, momentum=0.01):
        super().__init__()
        self.num_features = _positive("num_features", num_features)
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        view = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            count = x.numel() // x.shape[1]
            if count < 2:
                raise ShapeMismatchError("batch normalisation in training mode needs more than one "
                                         "value per channel (got input %s)" % (tuple(x.shape),))
            mean = x.mean(dims)
            var = x.var(dims, correction=1)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach())
            std = torch.sqrt(torch.clamp(var, min=1e-12)) + DARKNET_BN_EPS
        else:
            mean, std = self.running_mean, torch.sqrt(self.running_var) + DARKNET_BN_EPS
        return (x - mean.view(view)) / std.view(view) * self.weight.view(view)

    def extra_repr(self):
        return "%d, momentum=%g, eps=1e-6 on the std" % (self.num_features, self.momentum)


def _bn_arrays(bn, what):
    return {"scales": to_array(bn.weight, what + " scales"),
            "rolling_mean": to_array(bn.running_mean, what + " rolling_mean"),
            "rolling_variance": to_array(bn.running_var, what + " rolling_variance")}


def _load_bn(bn, arrays, what):
    n = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(from_array(arrays["scales"], (n,), what + " scales"))
        bn.running_mean.copy_(from_array(arrays["rolling_mean"], (n,), what + " rolling_mean"))
        bn.running_var.copy_(from_array(arrays["rolling_variance"], (n,), what + " rolling_variance"))


def _expect_names(arrays, names, what):
    if sorted(arrays) != sorted(names):
        raise ShapeMismatchError("%s: arrays %s, expected %s" % (what, sorted(arrays), list(names)))


# ----------------------------------------------------------------------------- layers with weights

class Conv(DarknetLayer):
    """[convolutional]: y = act(BN(conv(x, weight)) + bias), or act(conv + bias)
    without BN. `pad=True` means Darknet's pad=1 (padding = size//2); otherwise
    `padding` pixels of zeros on every side.  AlexeyAB's keys: `stride` is the
    horizontal stride and `stride_y` (None: the same) the vertical one; `dilation`
    spaces the taps and multiplies the padding, with Darknet's output size (which
    ignores it: the module refuses the shapes where that is not the dilated
    convolution's).  `share_index` (set by the importer, with the source's
    parameters) marks a layer whose parameters are another's: none in the file."""

    section = "convolutional"
    xnor = False
    share_index = None

    def __init__(self, in_channels, filters, size=1, stride=1, *, activation, pad=False, padding=0,
                 groups=1, batch_normalize=False, stride_y=None, dilation=1):
        super().__init__()
        stride_y = stride if stride_y is None else stride_y
        for name, v in (("in_channels", in_channels), ("filters", filters), ("size", size),
                        ("stride", stride), ("stride_y", stride_y), ("dilation", dilation),
                        ("groups", groups)):
            _positive(name, v)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError("padding must be an int >= 0, got %r" % (padding,))
        if in_channels % groups or filters % groups:
            raise ShapeMismatchError("groups=%d must divide in_channels=%d and filters=%d"
                                     % (groups, in_channels, filters))
        self.in_channels, self.filters, self.size, self.stride = in_channels, filters, size, stride
        self.stride_y, self.dilation = stride_y, dilation if size > 1 else 1
        self.groups = groups
        self.pad = bool(pad)
        self.padding = size // 2 if pad else padding
        self.activation = _check_activation(activation)
        self.weight = nn.Parameter(torch.empty(filters, in_channels // groups, size, size))
        self.bias = nn.Parameter(torch.empty(filters))
        self.bn = DarknetBatchNorm(filters) if batch_normalize else None
        self.reset_parameters()

    @property
    def batch_normalize(self):
        return self.bn is not None

    def reset_parameters(self):
        # the same initialisation nn.Conv2d uses
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.bias, -bound, bound)
        if self.bn is not None:
            nn.init.zeros_(self.bias)

    def infer(self, index, in_shape, shapes):
        c, h, w = in_shape
        if c != self.in_channels:
            raise ShapeMismatchError("expects %d input channels, the input has %d (shape %s)"
                                     % (self.in_channels, c, tuple(in_shape)))
        oh, ow = h + 2 * self.padding - self.size, w + 2 * self.padding - self.size
        if oh < 0 or ow < 0:
            raise ShapeMismatchError("kernel %d with padding %d does not fit the %dx%d input"
                                     % (self.size, self.padding, w, h))
        out = (self.filters, oh // self.stride_y + 1, ow // self.stride + 1)
        d = self.dilation
        ext = 2 * self.padding * d - d * (self.size - 1)
        if (d > 1 and out[1:] != ((h + ext - 1) // self.stride_y + 1, (w + ext - 1) // self.stride + 1)) \
                or (self.size == 1 and self.stride == 1 and self.stride_y != 1):
            raise ShapeMismatchError("dilation=%d, stride_y=%d: Darknet's output size and the "
                                     "columns its im2col makes differ" % (d, self.stride_y))
        return out

    def conv_weight(self):
        return self.weight

    def conv_input(self, x):
        return x

    def forward(self, x):
        y = F.conv2d(self.conv_input(x), self.conv_weight(), None, (self.stride_y, self.stride),
                     self.padding * self.dilation, self.dilation, self.groups)
        if self.bn is not None:
            y = self.bn(y)
        return activate(y + self.bias.view(1, -1, 1, 1), self.activation)

    def cfg_options(self):
        o = {"filters": str(self.filters), "size": str(self.size), "stride": str(self.stride)}
        if self.stride_y != self.stride:
            o["stride_x"], o["stride_y"] = str(self.stride), str(self.stride_y)
        if self.dilation != 1:
            o["dilation"] = str(self.dilation)
        if self.share_index is not None:
            o["share_index"] = str(self.share_index)
        if self.pad:
            o["pad"] = "1"
        else:
            o["padding"] = str(self.padding)
        if self.groups != 1:
            o["groups"] = str(self.groups)
        if self.bn is not None:
            o["batch_normalize"] = "1"
        if self.xnor:
            o["xnor"] = "1"
        o["activation"] = self.activation
        return o

    def darknet_arrays(self):
        if self.share_index is not None:
            return {}
        arrays = {"biases": to_array(self.bias, "biases")}
        if self.bn is not None:
            arrays.update(_bn_arrays(self.bn, ""))
        arrays["weights"] = to_array(self.weight, "weights")
        return arrays

    def load_darknet_arrays(self, arrays):
        if self.share_index is not None:   # the source's parameters, loaded with it
            _expect_names(arrays, [], "[%s] share_index" % self.section)
            return
        names = ["biases", "weights"] + (["scales", "rolling_mean", "rolling_variance"] if self.bn else [])
        _expect_names(arrays, names, "[%s]" % self.section)
        with torch.no_grad():
            self.bias.copy_(from_array(arrays["biases"], (self.filters,), "biases"))
            self.weight.copy_(from_array(arrays["weights"], self.weight.shape, "weights"))
            if self.bn is not None:
                _load_bn(self.bn, arrays, "")

    def extra_repr(self):
        extra = ", stride_y=%d" % self.stride_y if self.stride_y != self.stride else ""
        extra += ", dilation=%d" % self.dilation if self.dilation != 1 else ""
        return ("%d, %d, size=%d, stride=%d%s, padding=%d%s%s, activation=%s"
                % (self.in_channels, self.filters, self.size, self.stride, extra, self.padding,
                   ", groups=%d" % self.groups if self.groups != 1 else "",
                   ", batch_normalize" if self.bn is not None else "", self.activation))


class Connected(DarknetLayer):
    """[connected]: y = act(BN(W x) + b) with x the input flattened in CHW order.
    The output is (N, outputs, 1, 1)."""

    section = "connected"

    def __init__(self, inputs, outputs, *, activation, batch_normalize=False):
        super().__init__()
        self.inputs, self.outputs = _positive("inputs", inputs), _positive("outputs", outputs)
        self.activation = _check_activation(activation)
        self.weight = nn.Parameter(torch.empty(outputs, inputs))
        self.bias = nn.Parameter(torch.empty(outputs))
        self.bn = DarknetBatchNorm(outputs) if batch_normalize else None
        self.reset_parameters()

    @property
    def batch_normalize(self):
        return self.bn is not None

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.inputs)
        nn.init.uniform_(self.bias, -bound, bound)
        if self.bn is not None:
            nn.init.zeros_(self.bias)

    def infer(self, index, in_shape, shapes):
        n = math.prod(in_shape)
        if n != self.inputs:
            raise ShapeMismatchError("expects %d inputs, the input %s has %d"
                                     % (self.inputs, tuple(in_shape), n))
        return (self.outputs, 1, 1)

    def forward(self, x):
        y = F.linear(x.reshape(x.shape[0], -1), self.weight).view(x.shape[0], self.outputs, 1, 1)
        if self.bn is not None:
            y = self.bn(y)
        return activate(y + self.bias.view(1, -1, 1, 1), self.activation)

    def cfg_options(self):
        o = {"output": str(self.outputs)}
        if self.bn is not None:
            o["batch_normalize"] = "1"
        o["activation"] = self.activation
        return o

    def darknet_arrays(self):
        arrays = {"biases": to_array(self.bias, "biases"), "weights": to_array(self.weight, "weights")}
        if self.bn is not None:
            arrays.update(_bn_arrays(self.bn, ""))  # written after the weights, unlike conv
        return arrays

    def load_darknet_arrays(self, arrays):
        names = ["biases", "weights"] + (["scales", "rolling_mean", "rolling_variance"] if self.bn else [])
        _expect_names(arrays, names, "[connected]")
        with torch.no_grad():
            self.bias.copy_(from_array(arrays["biases"], (self.outputs,), "biases"))
            self.weight.copy_(from_array(arrays["weights"], self.weight.shape, "weights"))
            if self.bn is not None:
                _load_bn(self.bn, arrays, "")

    def extra_repr(self):
        return "%d, %d%s, activation=%s" % (self.inputs, self.outputs,
                                            ", batch_normalize" if self.bn is not None else "",
                                            self.activation)


class Local(DarknetLayer):
    """[local] (pjreddie's locally connected layer, YOLOv1): a convolution with its own
    filters at every output position (weight [positions][filters][c][size][size]) and
    a bias per output value; im2col pads by `pad` pixels, and the output is
    ((h - (pad ? 1 : size)) // stride + 1) wide likewise, so pad > 0 needs
    size = 2 pad + 1."""

    section = "local"

    def __init__(self, in_shape, filters, size=1, stride=1, pad=0, *, activation="logistic"):
        super().__init__()
        c, h, w = in_shape
        self.filters, self.size = _positive("filters", filters), _positive("size", size)
        self.stride, self.pad = _positive("stride", stride), int(pad)
        if pad < 0 or (size != 2 * pad + 1 if pad else h < size or w < size):
            raise ShapeMismatchError("size=%d pad=%d do not fit a %dx%d input (pad > 0 needs "
                                     "size = 2 pad + 1)" % (size, pad, w, h))
        self.activation = _check_activation(activation)
        self.in_shape = (c, h, w)
        self.out_hw = ((h - (1 if pad else size)) // stride + 1,
                       (w - (1 if pad else size)) // stride + 1)
        positions = self.out_hw[0] * self.out_hw[1]
        self.weight = nn.Parameter(torch.empty(positions, filters, c, size, size))
        self.bias = nn.Parameter(torch.empty(filters, *self.out_hw))
        bound = 1 / math.sqrt(c * size * size)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def infer(self, index, in_shape, shapes):
        if tuple(in_shape) != self.in_shape:
            raise ShapeMismatchError("built for a %s input, got %s" % (self.in_shape,
                                                                      tuple(in_shape)))
        return (self.filters,) + self.out_hw

    def forward(self, x):
        cols = F.unfold(x, self.size, padding=self.pad, stride=self.stride)   # (N, c k k, P)
        w = self.weight.reshape(self.weight.shape[0], self.filters, -1)
        y = torch.einsum("pfk,nkp->nfp", w, cols).reshape(x.shape[0], self.filters, *self.out_hw)
        return activate(y + self.bias, self.activation)

    def cfg_options(self):
        return {"filters": str(self.filters), "size": str(self.size), "stride": str(self.stride),
                "pad": str(self.pad), "activation": self.activation}

    def darknet_arrays(self):
        return {"biases": to_array(self.bias, "biases"), "weights": to_array(self.weight, "weights")}

    def load_darknet_arrays(self, arrays):
        _expect_names(arrays, ["biases", "weights"], "[local]")
        with torch.no_grad():
            self.bias.copy_(from_array(arrays["biases"], self.bias.shape, "biases"))
            self.weight.copy_(from_array(arrays["weights"], self.weight.shape, "weights"))

    def extra_repr(self):
        return "%d, size=%d, stride=%d, pad=%d, activation=%s" % (
            self.filters, self.size, self.stride, self.pad, self.activation)


# ----------------------------------------------------------------------------- layers without weights

class MaxPool(DarknetLayer):
    """[maxpool] with Darknet's defaults: size = stride, padding = size - 1.
    out = (in + padding - size) // stride + 1; window o starts at
    stride*o - padding//2; positions outside the input are ignored (a window
    entirely outside gives -FLT_MAX, as in Darknet)."""

    section = "maxpool"

    def __init__(self, size=None, stride=1, padding=None):
        super().__init__()
        self.stride = _positive("stride", stride)
        self.size = _positive("size", stride if size is None else size)
        self.padding = self.size - 1 if padding is None else padding
        if not isinstance(self.padding, int) or self.padding < 0:
            raise ValueError("padding must be an int >= 0, got %r" % (padding,))

    def _out(self, n):
        return (n + self.padding - self.size) // self.stride + 1

    def infer(self, index, in_shape, shapes):
        c, h, w = in_shape
        if h + self.padding < self.size or w + self.padding < self.size:
            raise ShapeMismatchError("window %d does not fit the %dx%d input" % (self.size, w, h))
        return (c, self._out(h), self._out(w))

    def forward(self, x):
        h, w = x.shape[-2:]
        oh, ow = self._out(h), self._out(w)
        lo = self.padding // 2
        right = max(0, (ow - 1) * self.stride + self.size - lo - w)
        bottom = max(0, (oh - 1) * self.stride + self.size - lo - h)
        xp = F.pad(x, (lo, right, lo, bottom), value=torch.finfo(x.dtype).min)
        return F.max_pool2d(xp, self.size, self.stride)[..., :oh, :ow]

    def cfg_options(self):
        return {"size": str(self.size), "stride": str(self.stride), "padding": str(self.padding)}

    def extra_repr(self):
        return "size=%d, stride=%d, padding=%d" % (self.size, self.stride, self.padding)


class AvgPool(DarknetLayer):
    """[avgpool]: the mean of each channel; output (N, C, 1, 1)."""

    section = "avgpool"

    def infer(self, index, in_shape, shapes):
        return (in_shape[0], 1, 1)

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


def _absolute(index, ref, key, shapes):
    j = index + ref if ref < 0 else ref
    if not 0 <= j < index:
        raise ShapeMismatchError("%s=%d refers to layer %d, which is not an earlier layer of layer %d"
                                 % (key, ref, j, index))
    return j


class Route(DarknetLayer):
    """[route]: the listed earlier layers' outputs concatenated along channels
    (negative = relative to this layer). With groups=g, group_id=k it takes
    the k-th of g equal channel slices of each input."""

    section = "route"
    takes_outputs = True

    def __init__(self, layers, groups=1, group_id=0):
        super().__init__()
        layers = [layers] if isinstance(layers, int) else list(layers)
        if not layers or not all(isinstance(v, int) for v in layers):
            raise ValueError("layers must be a non-empty list of ints, got %r" % (layers,))
        self.layers = layers
        self.groups = _positive("groups", groups)
        if not 0 <= group_id < groups:
            raise ValueError("group_id must be in 0..%d, got %r" % (groups - 1, group_id))
        self.group_id = group_id

    def references(self, index):
        return [index + v if v < 0 else v for v in self.layers]

    def infer(self, index, in_shape, shapes):
        srcs = [_absolute(index, v, "layers", shapes) for v in self.layers]
        _, h, w = shapes[srcs[0]]
        c = 0
        for j in srcs:
            sc, sh, sw = shapes[j]
            if (sh, sw) != (h, w):
                raise ShapeMismatchError("layers %d %s and %d %s differ in height/width"
                                         % (srcs[0], shapes[srcs[0]], j, shapes[j]))
            if sc % self.groups:
                raise ShapeMismatchError("groups=%d does not divide the %d channels of layer %d"
                                         % (self.groups, sc, j))
            c += sc // self.groups
        return (c, h, w)

    def forward(self, x, outputs):
        parts = []
        for j in self.references(len(outputs)):
            t = outputs[j]
            n = t.shape[1] // self.groups
            parts.append(t[:, n * self.group_id:n * (self.group_id + 1)] if self.groups > 1 else t)
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def cfg_options(self):
        o = {"layers": ",".join(map(str, self.layers))}
        if self.groups != 1:
            o["groups"], o["group_id"] = str(self.groups), str(self.group_id)
        return o

    def extra_repr(self):
        return "layers=%s" % (self.layers,)


class Shortcut(DarknetLayer):
    """[shortcut]: act(alpha * previous + beta * output of layer `from_`). Of
    unequal shapes as pjreddie's shortcut_cpu: the output starts as the
    previous layer's; over the smaller channel count and map, `from_` is read
    every stride = w_from / w_out pixels and written every sample = w_out /
    w_from pixels (the same integer ratios for the heights, else an error)."""

    section = "shortcut"
    takes_outputs = True

    def __init__(self, from_, activation="linear", alpha=1.0, beta=1.0):
        super().__init__()
        if not isinstance(from_, int):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        self.from_ = from_
        self.activation = _check_activation(activation)
        self.alpha, self.beta = float(alpha), float(beta)

    def references(self, index):
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def infer(self, index, in_shape, shapes):
        j = _absolute(index, self.from_, "from", shapes)
        _, fh, fw = shapes[j]
        _, h, w = in_shape
        if tuple(shapes[j]) != tuple(in_shape) and (fw // w != fh // h or w // fw != h // fh):
            raise ShapeMismatchError("from=%d: layer %d has shape %s, the previous layer %s; "
                                     "their maps are not an integer ratio of each other"
                                     % (self.from_, j, shapes[j], tuple(in_shape)))
        return tuple(in_shape)

    def forward(self, x, outputs):
        other = outputs[self.references(len(outputs))[0]]
        if other.shape == x.shape:
            a = x if self.alpha == 1 else self.alpha * x
            b = other if self.beta == 1 else self.beta * other
            return activate(a + b, self.activation)
        (c, h, w), (fc, fh, fw) = x.shape[1:], other.shape[1:]
        stride, sample = max(fw // w, 1), max(w // fw, 1)
        mc, mh, mw = min(c, fc), min(h, fh), min(w, fw)
        dst = (slice(None), slice(mc), slice(0, mh * sample, sample), slice(0, mw * sample, sample))
        src = other[:, :mc, :mh * stride:stride, :mw * stride:stride]
        y = x.clone()
        y[dst] = self.alpha * x[dst] + self.beta * src
        return activate(y, self.activation)

    def cfg_options(self):
        o = {"from": str(self.from_), "activation": self.activation}
        if self.alpha != 1:
            o["alpha"] = _fmt(self.alpha)
        if self.beta != 1:
            o["beta"] = _fmt(self.beta)
        return o

    def extra_repr(self):
        return "from=%d, activation=%s" % (self.from_, self.activation)


class ScaleChannels(DarknetLayer):
    """[scale_channels] (squeeze-and-excitation): act(previous * output of layer
    `from_`), the previous output (N, C, 1, 1) scaling each channel, or with
    scale_wh (N, 1, H, W) scaling each position.  No parameters."""

    section = "scale_channels"
    takes_outputs = True

    def __init__(self, from_, scale_wh=False, activation="linear"):
        super().__init__()
        if not isinstance(from_, int):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        self.from_ = from_
        self.scale_wh = bool(scale_wh)
        self.activation = _check_activation(activation)

    def references(self, index):
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def infer(self, index, in_shape, shapes):
        j = _absolute(index, self.from_, "from", shapes)
        c, h, w = shapes[j]
        want = (1, h, w) if self.scale_wh else (c, 1, 1)
        if tuple(in_shape) != want:
            raise ShapeMismatchError("from=%d: layer %d has shape %s, so the previous layer must "
                                     "be %s, not %s" % (self.from_, j, shapes[j], want,
                                                        tuple(in_shape)))
        return tuple(shapes[j])

    def forward(self, x, outputs):
        other = outputs[self.references(len(outputs))[0]]
        return activate(x * other, self.activation)    # broadcasts over H, W (or C)

    def cfg_options(self):
        o = {"from": str(self.from_)}
        if self.scale_wh:
            o["scale_wh"] = "1"
        if self.activation != "linear":
            o["activation"] = self.activation
        return o

    def extra_repr(self):
        return "from=%d, scale_wh=%d, activation=%s" % (self.from_, self.scale_wh, self.activation)


class Upsample(DarknetLayer):
    """[upsample]: nearest neighbour by an integer `stride`, times `scale`."""

    section = "upsample"

    def __init__(self, stride=2, scale=1.0):
        super().__init__()
        self.stride = _positive("stride", stride)
        self.scale = float(scale)

    def infer(self, index, in_shape, shapes):
        c, h, w = in_shape
        return (c, h * self.stride, w * self.stride)

    def forward(self, x):
        y = x.repeat_interleave(self.stride, 2).repeat_interleave(self.stride, 3)
        return y if self.scale == 1 else y * self.scale

    def cfg_options(self):
        o = {"stride": str(self.stride)}
        if self.scale != 1:
            o["scale"] = _fmt(self.scale)
        return o

    def extra_repr(self):
        return "stride=%d" % self.stride


class Dropout(DarknetLayer):
    """[dropout]: identity in eval mode; in training mode it zeroes inputs with
    `probability` and scales the others by 1/(1-probability), as Darknet does."""

    section = "dropout"

    def __init__(self, probability=0.5):
        super().__init__()
        if not 0 <= probability < 1:
            raise ValueError("probability must be in [0, 1), got %r" % (probability,))
        self.probability = float(probability)

    def forward(self, x):
        return F.dropout(x, self.probability, self.training)

    def cfg_options(self):
        return {"probability": _fmt(self.probability)}

    def extra_repr(self):
        return "probability=%g" % self.probability


class Softmax(DarknetLayer):
    """[softmax]: exp(x/t - max/t)/sum over all inputs in CHW order (or over
    each of `groups` contiguous groups). Output (N, inputs, 1, 1)."""

    section = "softmax"

    def __init__(self, groups=1, temperature=1.0):
        super().__init__()
        self.groups = _positive("groups", groups)
        if temperature == 0:
            raise ValueError("temperature must not be 0")
        self.temperature = float(temperature)

    def infer(self, index, in_shape, shapes):
        n = math.prod(in_shape)
        if n % self.groups:
            raise ShapeMismatchError("groups=%d does not divide the %d inputs" % (self.groups, n))
        return (n, 1, 1)

    def forward(self, x):
        n = x.shape[0]
        flat = x.reshape(n, self.groups, -1)
        if self.temperature != 1:
            flat = flat / self.temperature
        return torch.softmax(flat, dim=2).reshape(n, -1, 1, 1)

    def cfg_options(self):
        o = {}
        if self.groups != 1:
            o["groups"] = str(self.groups)
        if self.temperature != 1:
            o["temperature"] = _fmt(self.temperature)
        return o


class Yolo(DarknetLayer):
    """[yolo]: logistic on entries 0, 1 and 4.. of each anchor's (5 + classes)
    channels; tw, th (2, 3) stay raw. AlexeyAB's options: scale_x_y = s maps
    x, y to x s - (s - 1)/2 after the logistic; new_coords=1 applies no
    logistic (the conv before has it). Box decoding is not part of forward.
    Options other than mask/anchors/classes/num are kept for export."""

    section = "yolo"

    def __init__(self, mask, anchors, classes=20, num=None, options=None):
        super().__init__()
        self.mask = [int(m) for m in mask]
        self.anchors = [float(a) for a in anchors]
        self.classes = _positive("classes", classes)
        self.num = len(self.anchors) // 2 if num is None else num
        self.options = dict(options or {})
        try:
            self.scale_x_y = float(self.options.get("scale_x_y", 1))
            self.new_coords = int(self.options.get("new_coords", 0))
        except ValueError as e:
            raise UnsupportedModuleError("[yolo] %s" % e) from None
        if not self.scale_x_y > 0 or self.new_coords not in (0, 1):
            raise UnsupportedModuleError("[yolo] scale_x_y=%s new_coords=%s: scale_x_y must be "
                                         "above 0 and new_coords 0 or 1"
                                         % (self.options.get("scale_x_y"),
                                            self.options.get("new_coords")))

    box_channels = 5   # per anchor, besides the classes: x, y, w, h, objectness

    def infer(self, index, in_shape, shapes):
        need = len(self.mask) * (self.classes + self.box_channels)
        if in_shape[0] != need:
            raise ShapeMismatchError("expects %d input channels (%d anchors x (%d classes + %d)), "
                                     "got %d" % (need, len(self.mask), self.classes,
                                                 self.box_channels, in_shape[0]))
        return tuple(in_shape)

    def forward(self, x):
        n, c, h, w = x.shape
        v = x.reshape(n, len(self.mask), self.classes + 5, h, w)
        xy, rest = (v[:, :, :2], v[:, :, 4:]) if self.new_coords else \
            (torch.sigmoid(v[:, :, :2]), torch.sigmoid(v[:, :, 4:]))
        s = self.scale_x_y
        if s != 1:   # in float32 as Darknet's scal_add_cpu
            xy = xy * _f32(s) + _f32(-0.5 * (s - 1))
        return torch.cat([xy, v[:, :, 2:4], rest], 2).reshape(n, c, h, w)

    def cfg_options(self):
        o = {"mask": ",".join(map(str, self.mask)),
             "anchors": ",".join(_fmt(a) for a in self.anchors),
             "classes": str(self.classes), "num": str(self.num)}
        for k, v in self.options.items():
            o.setdefault(k, v)
        return o

    def extra_repr(self):
        return "mask=%s, classes=%d" % (self.mask, self.classes)


class GaussianYolo(Yolo):
    """[Gaussian_yolo] (AlexeyAB's forward_gaussian_yolo_layer): each anchor's 9 + classes
    channels are x, sigma x, y, sigma y, w, sigma w, h, sigma h, objectness, classes; the
    logistic on all but w and h, scale_x_y on x, y and their sigmas."""

    section = "Gaussian_yolo"

    def __init__(self, mask, anchors, classes=20, num=None, options=None):
        super().__init__(mask, anchors, classes, num,
                         {k: v for k, v in (options or {}).items() if k != "new_coords"})
        self.options = dict(options or {})

    box_channels = 9   # the four sigmas besides Yolo's five (Yolo.infer checks the count)

    def forward(self, x):
        n, c, h, w = x.shape
        v = x.reshape(n, len(self.mask), self.classes + 9, h, w)
        sig = torch.sigmoid(v)
        xy = sig[:, :, :4]
        s = self.scale_x_y
        if s != 1:
            xy = xy * _f32(s) + _f32(-0.5 * (s - 1))
        return torch.cat([xy, v[:, :, 4:5], sig[:, :, 5:6], v[:, :, 6:7], sig[:, :, 7:]],
                         2).reshape(n, c, h, w)


class Region(DarknetLayer):
    """[region] (YOLOv2's head, as pjreddie's forward_region_layer): for each of
    `num` anchors, the logistic on x, y and objectness (entries 0, 1, 4), tw, th
    raw, and a softmax over each cell's classes (softmax=True) or the logistic.
    Only coords=4 and background=0; YOLO9000's tree= is refused. Options other
    than anchors/classes/num/softmax are kept for export."""

    section = "region"

    def __init__(self, anchors, classes=20, num=None, softmax=False, options=None):
        super().__init__()
        self.anchors = [float(a) for a in anchors]
        self.classes = _positive("classes", classes)
        self.num = _positive("num", len(self.anchors) // 2 if num is None else num)
        self.softmax = bool(softmax)
        self.options = dict(options or {})
        if "tree" in self.options:
            raise UnsupportedModuleError("[region] tree= (YOLO9000's hierarchical softmax) is "
                                         "not supported")
        if str(self.options.get("coords", 4)) != "4" or \
                str(self.options.get("background", 0)) != "0":
            raise UnsupportedModuleError("[region] only coords=4 and background=0 are supported")

    def infer(self, index, in_shape, shapes):
        need = self.num * (self.classes + 5)
        if in_shape[0] != need:
            raise ShapeMismatchError("expects %d input channels (%d anchors x (%d classes + 5)), "
                                     "got %d" % (need, self.num, self.classes, in_shape[0]))
        return tuple(in_shape)

    def forward(self, x):
        n, c, h, w = x.shape
        v = x.reshape(n, self.num, self.classes + 5, h, w)
        scores = v[:, :, 5:]
        scores = torch.softmax(scores, 2) if self.softmax else torch.sigmoid(scores)
        y = torch.cat([torch.sigmoid(v[:, :, :2]), v[:, :, 2:4], torch.sigmoid(v[:, :, 4:5]),
                       scores], 2)
        return y.reshape(n, c, h, w)

    def cfg_options(self):
        o = {"anchors": ",".join(_fmt(a) for a in self.anchors), "classes": str(self.classes),
             "num": str(self.num)}
        if self.softmax:
            o["softmax"] = "1"
        for k, v in self.options.items():
            o.setdefault(k, v)
        return o

    def extra_repr(self):
        return "num=%d, classes=%d, softmax=%d" % (self.num, self.classes, self.softmax)


class Detection(DarknetLayer):
    """[detection] (YOLOv1's head, forward_detection_layer): the input as it is, in
    Darknet's flat order (each cell's classes, then each cell's num confidences, then
    their boxes), seen as (5 num + classes) x side x side; softmax=True: Darknet's
    softmax over each cell's classes. Other options are kept for export."""

    section = "detection"

    def __init__(self, classes, num, side, softmax=False, options=None):
        super().__init__()
        self.classes, self.num = _positive("classes", classes), _positive("num", num)
        self.side, self.softmax = _positive("side", side), bool(softmax)
        self.options = dict(options or {})

    def infer(self, index, in_shape, shapes):
        need = self.side * self.side * (5 * self.num + self.classes)
        if math.prod(in_shape) != need:
            raise ShapeMismatchError("expects %d inputs, got %s" % (need, tuple(in_shape)))
        return (5 * self.num + self.classes, self.side, self.side)

    def forward(self, x):
        n, cells = x.shape[0], self.side * self.side
        flat = x.reshape(n, -1)
        if self.softmax:
            scores = torch.softmax(flat[:, :cells * self.classes].reshape(n, cells, -1), 2)
            flat = torch.cat([scores.reshape(n, -1), flat[:, cells * self.classes:]], 1)
        return flat.reshape(n, 5 * self.num + self.classes, self.side, self.side)

    def cfg_options(self):
        o = {"classes": str(self.classes), "num": str(self.num), "side": str(self.side),
             "softmax": str(int(self.softmax))}
        for k, v in self.options.items():
            o.setdefault(k, v)
        return o

    def extra_repr(self):
        return "classes=%d, num=%d, side=%d, softmax=%d" % (self.classes, self.num, self.side,
                                                             self.softmax)


class Reorg(DarknetLayer):
    """[reorg] and [reorg3d]: Darknet's reorg_cpu(x, w, h, c, stride, forward),
    a fixed permutation of the values. [reorg] (reorg3d=False) gives it the
    input's shape (what YOLOv2 was trained with, not the usual space-to-depth),
    [reorg3d] the output's (the usual space-to-depth). The output is
    c*stride^2 x h/stride x w/stride, or with reverse=True the other way.
    pjreddie's [reorg] forms (the Go cfgs): flatten=True, that shape holding the
    input's CHW values as HWC (reverse: HWC back to CHW); extra=N, the input flat and N
    zeros, (c h w + N) x 1 x 1."""

    section = "reorg"
    sections = ("reorg", "reorg3d")   # the one class builds both

    def __init__(self, stride=1, reverse=False, reorg3d=False, flatten=False, extra=0):
        super().__init__()
        self.stride = _positive("stride", stride)
        self.reverse = bool(reverse)
        self.section = "reorg3d" if reorg3d else "reorg"
        self.flatten, self.extra = bool(flatten), int(extra)
        if (self.flatten or self.extra) and reorg3d or self.extra < 0 or \
                (self.extra and self.flatten):
            raise ValueError("flatten=%d extra=%d: [reorg] only, extra >= 0, not both"
                             % (self.flatten, self.extra))

    def _shapes(self, c, h, w):
        """(the output's shape, the shape reorg_cpu is given)."""
        st, s2 = self.stride, self.stride ** 2
        if self.extra:
            return (c * h * w + self.extra, 1, 1), (c, h, w)
        if c % s2 if self.reverse else h % st or w % st:
            raise ShapeMismatchError("stride=%d does not divide the input %dx%dx%d"
                                     % (st, c, h, w))
        out = (c // s2, h * st, w * st) if self.reverse else (c * s2, h // st, w // st)
        given = out if self.section == "reorg3d" else (c, h, w)
        if given[0] % s2 and not self.flatten:
            raise ShapeMismatchError("%d channels are not a multiple of stride^2 = %d"
                                     % (given[0], s2))
        return out, given

    def infer(self, index, in_shape, shapes):
        return self._shapes(*in_shape)[0]

    def index(self, c, h, w, device=None):
        """The flat input index of each flat output value, for a c x h x w input."""
        out, (gc, gh, gw) = self._shapes(c, h, w)
        if self.flatten:   # blas.c's flatten: CHW index k*h*w + p <-> HWC index p*c + k
            hwc = torch.arange(gc * gh * gw, device=device).reshape(gh * gw, gc).t().reshape(-1)
            if self.reverse:                 # out (CHW) at k*h*w + p reads x (HWC) at p*c + k
                return hwc, out
            near = torch.empty_like(hwc)     # out (HWC) at p*c + k reads x at k*h*w + p
            near[hwc] = torch.arange(hwc.numel(), device=device)
            return near, out
        st = self.stride
        k, j, i = torch.meshgrid(torch.arange(gc, device=device), torch.arange(gh, device=device),
                                 torch.arange(gw, device=device), indexing="ij")
        in_c = gc // (st * st)
        c2, offset = k % in_c, k // in_c
        far = (i * st + offset % st) + gw * st * ((j * st + offset // st) + gh * st * c2)
        far = far.reshape(-1)
        if not self.reverse:           # out[near] = x[far]; near counts 0, 1, ...
            return far, out
        near = torch.empty_like(far)   # out[far] = x[near]: the inverse permutation
        near[far] = torch.arange(far.numel(), device=device)
        return near, out

    def forward(self, x):
        n = x.shape[0]
        if self.extra:
            return torch.cat([x.reshape(n, -1), x.new_zeros(n, self.extra)], 1)[:, :, None, None]
        index, out = self.index(*x.shape[1:], device=x.device)
        return x.reshape(n, -1)[:, index].reshape((n,) + out)

    def cfg_options(self):
        o = {"stride": str(self.stride)}
        if self.reverse:
            o["reverse"] = "1"
        if self.flatten:
            o["flatten"] = "1"
        if self.extra:
            o["extra"] = str(self.extra)
        return o

    def extra_repr(self):
        return "%s, stride=%d%s" % (self.section, self.stride, ", reverse" if self.reverse else "")


class Crop(DarknetLayer):
    """[crop] at inference (Darknet's forward_crop_layer with train=0): the centre
    crop_height x crop_width of every channel, mapped to x*2 - 1 unless noadjust.
    Options other than those (flip, angle, ... act only in training) are kept
    for export."""

    section = "crop"

    def __init__(self, crop_height=1, crop_width=1, noadjust=False, options=None):
        super().__init__()
        self.crop_height = _positive("crop_height", crop_height)
        self.crop_width = _positive("crop_width", crop_width)
        self.noadjust = bool(noadjust)
        self.options = dict(options or {})

    def infer(self, index, in_shape, shapes):
        c, h, w = in_shape
        if self.crop_height > h or self.crop_width > w:
            raise ShapeMismatchError("crop %dx%d does not fit the %dx%d input"
                                     % (self.crop_width, self.crop_height, w, h))
        return (c, self.crop_height, self.crop_width)

    def forward(self, x):
        h, w = x.shape[2:]
        dh, dw = (h - self.crop_height) // 2, (w - self.crop_width) // 2
        y = x[:, :, dh:dh + self.crop_height, dw:dw + self.crop_width]
        return y if self.noadjust else y * 2 - 1

    def cfg_options(self):
        o = {"crop_height": str(self.crop_height), "crop_width": str(self.crop_width)}
        if self.noadjust:
            o["noadjust"] = "1"
        for k, v in self.options.items():
            o.setdefault(k, v)
        return o

    def extra_repr(self):
        return "%dx%d%s" % (self.crop_height, self.crop_width,
                            ", noadjust" if self.noadjust else "")


class LocalAvgPool(DarknetLayer):
    """[local_avgpool] (AlexeyAB): [maxpool]'s windows (size, stride_x, stride_y, padding
    with windows starting at stride*o - padding//2), each output the mean of the window's
    positions inside the input."""

    section = "local_avgpool"

    def __init__(self, size, stride_x, stride_y, padding):
        super().__init__()
        self.size, self.stride_x = _positive("size", size), _positive("stride_x", stride_x)
        self.stride_y = _positive("stride_y", stride_y)
        if not isinstance(padding, int) or padding < 0 or (padding + 1) // 2 >= size:
            raise ValueError("padding=%r leaves windows of size %d outside the input"
                             % (padding, size))
        self.padding = padding

    def infer(self, index, in_shape, shapes):
        c, h, w = in_shape
        if h + self.padding < self.size or w + self.padding < self.size:
            raise ShapeMismatchError("window %d does not fit the %dx%d input" % (self.size, w, h))
        return (c, (h + self.padding - self.size) // self.stride_y + 1,
                (w + self.padding - self.size) // self.stride_x + 1)

    def forward(self, x):
        _, oh, ow = self.infer(0, x.shape[1:], None)
        h, w = x.shape[-2:]
        lo = self.padding // 2
        pad = (lo, max(0, (ow - 1) * self.stride_x + self.size - lo - w),
               lo, max(0, (oh - 1) * self.stride_y + self.size - lo - h))
        stride = (self.stride_y, self.stride_x)
        sums = F.avg_pool2d(F.pad(x, pad), self.size, stride, divisor_override=1)
        ones = F.pad(torch.ones((1, 1, h, w), dtype=x.dtype, device=x.device), pad)
        counts = F.avg_pool2d(ones, self.size, stride, divisor_override=1)
        return (sums / counts)[..., :oh, :ow]

    def cfg_options(self):
        return {"size": str(self.size), "stride_x": str(self.stride_x),
                "stride_y": str(self.stride_y), "padding": str(self.padding)}


class Contrastive(DarknetLayer):
    """[contrastive] (AlexeyAB): a training loss; at inference its forward returns at once,
    leaving its output zeros. Its keys are kept for export."""

    section = "contrastive"

    def __init__(self, options=None):
        super().__init__()
        self.options = dict(options or {})

    def forward(self, x):
        return torch.zeros_like(x)

    def cfg_options(self):
        return dict(self.options)


class Cost(DarknetLayer):
    """[cost]: a training loss; at inference its input passes on. Its keys
    (type, scale, ...) are training keys, kept for export."""

    section = "cost"

    def __init__(self, options=None):
        super().__init__()
        self.options = dict(options or {})

    def forward(self, x):
        return x

    def cfg_options(self):
        return dict(self.options)


class Sam(DarknetLayer):
    """[sam] (AlexeyAB's spatial attention): act(previous * output of layer
    `from_`), elementwise; the two have one shape. No parameters."""

    section = "sam"
    takes_outputs = True

    def __init__(self, from_, activation="linear"):
        super().__init__()
        if not isinstance(from_, int) or isinstance(from_, bool):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        self.from_ = from_
        self.activation = _check_activation(activation)

    def references(self, index):
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def infer(self, index, in_shape, shapes):
        j = _absolute(index, self.from_, "from", shapes)
        if tuple(shapes[j]) != tuple(in_shape):
            raise ShapeMismatchError("from=%d: layer %d has shape %s, the previous layer %s; "
                                     "they must be equal" % (self.from_, j, shapes[j],
                                                             tuple(in_shape)))
        return tuple(in_shape)

    def forward(self, x, outputs):
        return activate(x * outputs[self.references(len(outputs))[0]], self.activation)

    def cfg_options(self):
        o = {"from": str(self.from_)}
        if self.activation != "linear":
            o["activation"] = self.activation
        return o

    def extra_repr(self):
        return "from=%d, activation=%s" % (self.from_, self.activation)


# ----------------------------------------------------------------------------- early exits



class ExitPredictor(nn.Module):
    """One predictor of an [exit] (docs/early-exit.md): the branch point pooled
    to pool x pool per channel and flattened (D values), then
    logistic(W2 relu(W1 f + b1) + b2), or logistic(W f + b) with hidden=0.
    forward() returns the logit (before the logistic), for training losses."""

    def __init__(self, features, hidden=0):
        super().__init__()
        self.features = _positive("features", features)
        if not isinstance(hidden, int) or hidden < 0:
            raise ValueError("hidden must be an int >= 0, got %r" % (hidden,))
        self.hidden = hidden
        if hidden:
            self.w1 = nn.Parameter(torch.empty(hidden, features))
            self.b1 = nn.Parameter(torch.empty(hidden))
        self.w2 = nn.Parameter(torch.empty(1, hidden or features))
        self.b2 = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self):
        pairs = [(self.w1, self.b1)] if self.hidden else []
        for w, b in pairs + [(self.w2, self.b2)]:
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            nn.init.uniform_(b, -1 / math.sqrt(w.shape[1]), 1 / math.sqrt(w.shape[1]))

    def forward(self, f):
        if self.hidden:
            f = F.relu(F.linear(f, self.w1, self.b1))
        return F.linear(f, self.w2, self.b2).reshape(-1)

    def macs(self):
        """Multiply-adds of the two products (the pooling is counted by the exit)."""
        return self.features * self.hidden + self.hidden if self.hidden else self.features

    def darknet_arrays(self, prefix):
        if self.hidden:
            return {prefix + "b1": to_array(self.b1, prefix + "b1"),
                    prefix + "W1": to_array(self.w1, prefix + "W1"),
                    prefix + "b2": to_array(self.b2, prefix + "b2"),
                    prefix + "W2": to_array(self.w2, prefix + "W2")}
        return {prefix + "b": to_array(self.b2, prefix + "b"),
                prefix + "W": to_array(self.w2, prefix + "W")}

    def load_darknet_arrays(self, arrays, prefix):
        with torch.no_grad():
            if self.hidden:
                self.b1.copy_(from_array(arrays[prefix + "b1"], self.b1.shape, prefix + "b1"))
                self.w1.copy_(from_array(arrays[prefix + "W1"], self.w1.shape, prefix + "W1"))
                self.b2.copy_(from_array(arrays[prefix + "b2"], (1,), prefix + "b2"))
                self.w2.copy_(from_array(arrays[prefix + "W2"], self.w2.shape, prefix + "W2"))
            else:
                self.b2.copy_(from_array(arrays[prefix + "b"], (1,), prefix + "b"))
                self.w2.copy_(from_array(arrays[prefix + "W"], self.w2.shape, prefix + "W"))


class Exit(DarknetLayer):
    """[exit]: an early exit (docs/early-exit.md). It marks the branch point
    (layer from_, default the previous one) and owns the `layers` sections that
    follow it: the branch, which reads the branch point and ends in a
    [softmax]. The layer after the branch reads the branch point again, so the
    main path goes on where it left. The [exit] reads the branch point; its output is its predictors' values (entropy, exit; -1 for one it
    lacks), 2 x 1 x 1, as in MDFI.

    Exit(from_=-1, branch=[Conv(...), ..., Softmax()], threshold=0.3,
         predictors=("entropy", "exit"), pool=2, hidden=16)
    Given to Darknet(), the branch layers are put right after the Exit in the
    layer list (indices count every section, as Darknet does). An Exit read
    from a cfg is built with `layers=n` and no branch: its n layers are
    already in the list. The predictors are built once the branch point's
    channels are known (Darknet() does it) unless `channels` is given."""

    section = "exit"
    takes_outputs = True

    def __init__(self, from_=-1, branch=None, *, layers=None, threshold=0.5, predictors=(), pool=1,
                 hidden=0, entropy_gate=None, exit_gate=0.5, channels=None):
        super().__init__()
        if not isinstance(from_, int) or isinstance(from_, bool):
            raise ValueError("from_ must be an int layer index, got %r" % (from_,))
        branch = list(branch or [])
        if branch and layers is not None and layers != len(branch):
            raise ValueError("layers=%r but a branch of %d layers" % (layers, len(branch)))
        self.from_ = from_
        self.n_layers = _positive("layers", len(branch) if branch else layers)
        self._pending = branch  # handed to Darknet(), not registered here
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1], got %r" % (threshold,))
        if isinstance(predictors, str):
            predictors = [p for p in predictors.split(",") if p]
        for p in predictors:
            if p not in EXIT_PREDICTORS:
                raise ValueError("unknown predictor %r (entropy, exit)" % (p,))
        if len(set(predictors)) != len(predictors):
            raise ValueError("predictors %r lists one twice" % (list(predictors),))
        if not isinstance(pool, int) or not 1 <= pool <= 16:
            raise ValueError("pool must be an int in 1..16, got %r" % (pool,))
        if not isinstance(hidden, int) or not 0 <= hidden <= 4096:
            raise ValueError("hidden must be an int in 0..4096, got %r" % (hidden,))
        self.threshold = float(threshold)
        self.predictors = tuple(p for p in EXIT_PREDICTORS if p in predictors)
        self._written_order = tuple(predictors)  # the cfg keeps the order it was given
        self.pool, self.hidden = pool, hidden
        self.entropy_gate = self.threshold if entropy_gate is None else float(entropy_gate)
        self.exit_gate = float(exit_gate)
        for name, v in (("entropy_gate", self.entropy_gate), ("exit_gate", self.exit_gate)):
            if not 0 <= v <= 1:
                raise ValueError("%s must be in [0, 1], got %r" % (name, v))
        self.channels = None
        self.predictor = nn.ModuleDict()
        if channels is not None:
            self._build(channels)

    def take_branch(self):
        branch, self._pending = self._pending, []
        return branch

    def _build(self, channels):
        if self.channels == channels:
            return
        if self.channels is not None:
            raise ShapeMismatchError("the predictors were built for %d channels, the branch point "
                                     "has %d" % (self.channels, channels))
        self.channels = channels
        d = channels * self.pool * self.pool
        for p in self.predictors:
            self.predictor[p] = ExitPredictor(d, self.hidden)

    @property
    def features(self):
        return None if self.channels is None else self.channels * self.pool * self.pool

    def references(self, index):
        return [index + self.from_ if self.from_ < 0 else self.from_]

    def span(self, index):
        """(branch point, first branch layer, last branch layer) for the Exit at index."""
        return self.references(index)[0], index + 1, index + self.n_layers

    def infer(self, index, in_shape, shapes):
        j = _absolute(index, self.from_, "from", shapes)
        self._build(shapes[j][0])
        return (len(EXIT_PREDICTORS), 1, 1)

    def forward(self, x, outputs):
        """The predictors' values (N, 2, 1, 1): entropy, exit; -1 for one the exit lacks."""
        point = outputs[self.references(len(outputs))[0]]
        values = self.predict(point) if self.predictors else {}
        fill = point.new_full((point.shape[0],), -1.0)
        return torch.stack([values.get(p, fill) for p in EXIT_PREDICTORS], 1).view(-1, 2, 1, 1)

    def pooled(self, point):
        """The predictors' input: the branch point (N, C, H, W) average-pooled to
        pool x pool per channel, flattened channel-major: (N, C*pool*pool)."""
        return F.adaptive_avg_pool2d(point, self.pool).flatten(1)

    def predict(self, point):
        """name -> predicted value in [0, 1] for each predictor, from the branch point."""
        f = self.pooled(point)
        return {p: torch.sigmoid(m(f)) for p, m in self.predictor.items()}

    def predictor_macs(self, point_shape):
        """MACs of one predictor run: the pooling's adds plus the products."""
        c, h, w = point_shape
        m = next(iter(self.predictor.values()), None)
        return c * h * w + (m.macs() if m is not None else 0)

    def cfg_options(self):
        o = {"from": str(self.from_), "layers": str(self.n_layers), "threshold": _fmt(self.threshold)}
        if self.predictors:
            o["predictors"] = ",".join(self._written_order)
            o["pool"] = str(self.pool)
            o["hidden"] = str(self.hidden)
            o["entropy_gate"] = _fmt(self.entropy_gate)
            o["exit_gate"] = _fmt(self.exit_gate)
        return o

    def darknet_arrays(self):
        arrays = {}
        for p in self.predictors:
            arrays.update(self.predictor[p].darknet_arrays(p + "_"))
        return arrays

    def load_darknet_arrays(self, arrays):
        names = [n for n, _ in exit_params(self.predictors, self.hidden, self.features or 1)]
        _expect_names(arrays, names, "[exit]")
        for p in self.predictors:
            self.predictor[p].load_darknet_arrays(arrays, p + "_")

    def extra_repr(self):
        return ("from=%d, layers=%d, threshold=%g, predictors=%s, pool=%d, hidden=%d"
                % (self.from_, self.n_layers, self.threshold, ",".join(self.predictors) or "none",
                   self.pool, self.hidden))


# ----------------------------------------------------------------------------- the network

class Darknet(nn.Module):
    """Darknet layers in cfg order, run as Darknet runs them.

    input_shape: (c, h, w) of one input. forward(x) takes (N, c, h, w) and
    returns the last layer's output; forward(x, outputs=[i, j]) returns the
    outputs of those layers instead (negative indices count from the end).
    `net_options` are extra [net] keys kept for export (batch, anchors, ...).
    """

    def __init__(self, input_shape, layers, net_options=None, seen=0):
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ShapeMismatchError("input_shape must be 3 positive ints (c, h, w), got %r"
                                     % (input_shape,))
        flat = []
        for layer in layers:
            flat.append(layer)
            if isinstance(layer, Exit):
                flat.extend(layer.take_branch())  # the branch follows its [exit]
        layers = flat
        for i, layer in enumerate(layers):
            if not isinstance(layer, DarknetLayer):
                raise UnsupportedModuleError(
                    "layer %d is a %s; a Darknet() model holds only weights_tools.torch layers "
                    "(export() converts an nn.Sequential of standard modules)" % (i, type(layer).__name__))
        if not layers:
            raise ShapeMismatchError("a Darknet model needs at least one layer")
        self.input_shape = shape
        self.layers = nn.ModuleList(layers)
        self.net_options = dict(net_options or {})
        self.seen = int(seen)
        self.infer_shapes()

    def infer_shapes(self):
        """Every layer's output (c, h, w); raises ShapeMismatchError naming the layer."""
        self.exit_spans = self._exit_spans()
        resume = self._reads_branch_point()
        shapes = []
        for i, layer in enumerate(self.layers):
            in_shape = shapes[resume[i]] if i in resume else shapes[-1] if shapes else self.input_shape
            try:
                shapes.append(tuple(layer.infer(i, in_shape, shapes)))
            except ShapeMismatchError as e:
                raise ShapeMismatchError("layer %d (%s, [%s]): %s"
                                         % (i, type(layer).__name__, layer.section, e)) from None
        self.shapes = shapes
        return shapes

    def _reads_branch_point(self):
        """index -> branch point, for the first layer of each branch and the layer after it."""
        resume = {}
        for _, point, first, last in self.exit_spans:
            resume[first] = resume[last + 1] = point
        return resume

    def _exit_spans(self):
        """(exit, branch point, first, last) of every [exit], checking the wiring
        rules of docs/early-exit.md."""
        n = len(self.layers)
        spans, owner = [], {}
        for e, layer in enumerate(self.layers):
            if not isinstance(layer, Exit):
                continue
            point, first, last = layer.span(e)
            where = "layer %d ([exit])" % e
            if not 0 <= point < e:
                raise ShapeMismatchError("%s: from=%d refers to layer %d, not an earlier layer"
                                         % (where, layer.from_, point))
            if point in owner:
                raise ShapeMismatchError("%s: the branch point %d is inside the branch of the "
                                         "[exit] at layer %d" % (where, point, owner[point]))
            if e in owner:
                raise ShapeMismatchError("%s: an [exit] inside the branch of the [exit] at layer %d"
                                         % (where, owner[e]))
            if last + 1 >= n:
                raise ShapeMismatchError("%s: layers=%d, but the network must go on after the "
                                         "branch (it has layers 0..%d)" % (where, layer.n_layers, n - 1))
            if not isinstance(self.layers[last], Softmax):
                raise ShapeMismatchError("%s: the branch must end with a [softmax], layer %d is [%s]"
                                         % (where, last, self.layers[last].section))
            for j in range(first, last + 1):
                owner[j] = e
            spans.append((e, point, first, last))
        for i, layer in enumerate(self.layers):
            for j in layer.references(i):
                if j in owner and owner.get(i) != owner[j]:
                    raise ShapeMismatchError("layer %d ([%s]) reads layer %d inside the branch of "
                                             "the [exit] at layer %d" % (i, layer.section, j, owner[j]))
        return spans

    @property
    def exits(self):
        """The Exit modules, in layer order."""
        return [self.layers[e] for e, _, _, _ in self.exit_spans]

    def layer_macs(self):
        """Multiply-adds of each layer, as MDFI counts them (LayerInfo.macs: one per
        weight per output, binary layers too; flops / 2 for the float ones)."""
        macs = []
        for i, layer in enumerate(self.layers):
            c, h, w = self.shapes[i]
            if isinstance(layer, Conv):
                macs.append(layer.filters * (layer.in_channels // layer.groups) * layer.size ** 2 * h * w)
            elif isinstance(layer, Connected):
                macs.append(layer.inputs * layer.outputs)
            elif isinstance(layer, (Shortcut, ScaleChannels, Sam)):
                macs.append(c * h * w / 2)
            else:
                macs.append(0)
        return macs

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise DtypeError("input is a %s, not a torch.Tensor" % type(x).__name__)
        if not x.is_floating_point():
            raise DtypeError("input has dtype %s; the network computes in floating point "
                             "(scale images to [0, 1] and use x.float())" % x.dtype)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeMismatchError("input shape %s is not (N, %d, %d, %d), the network's input"
                                     % ((tuple(x.shape),) + self.input_shape))

    def forward(self, x, outputs=None, exits=False):
        """The last layer's output (the main path: branches are skipped), or the
        outputs of the layers listed in `outputs` (branches holding one of them
        run), or with exits=True the list [each branch's output..., the last
        layer's output] (every branch runs; for training all exits)."""
        self.check_input(x)
        n = len(self.layers)
        wanted = None if outputs is None else [i % n if -n <= i < n else i for i in outputs]
        if wanted is not None and not all(isinstance(i, int) and 0 <= i < n for i in wanted):
            raise ShapeMismatchError("outputs=%r: the network has layers 0..%d" % (outputs, n - 1))
        if exits and wanted is not None:
            raise ValueError("give either outputs= or exits=True")
        keep = set(wanted or [])
        for i, layer in enumerate(self.layers):
            keep.update(layer.references(i))
        skip, resume = set(), self._reads_branch_point()
        for _, point, first, last_b in self.exit_spans:
            if exits:
                keep.add(last_b)
            elif not any(first <= i <= last_b for i in keep):
                skip.update(range(first, last_b + 1))
        last = n - 1 if wanted is None else max(wanted)
        results = []
        for i, layer in enumerate(self.layers[:last + 1]):
            if i in skip:
                results.append(None)
                continue
            if i in resume:
                x = results[resume[i]]
            x = layer(x, results) if layer.takes_outputs else layer(x)
            results.append(x if i in keep or i == n - 1 else None)
        if exits:
            return [results[last_b] for _, _, _, last_b in self.exit_spans] + [results[-1]]
        if wanted is None:
            return results[-1]
        return [results[i] for i in wanted]

    def extra_repr(self):
        return "input_shape=%s" % (self.input_shape,)
