"""Darknet .cfg reading, writing and shape inference (pure Python).

The syntax follows Darknet's read_cfg(): every whitespace character is removed
from a line, lines that are empty or start with '#' or ';' are skipped, a line
starting with '[' opens a section and anything else is key=value. Where
Darknet is lenient (atoi("3x") == 3, a line without '=') we raise CfgError
with file:line instead, because such a line is almost always a typo. One
exception, as in MDFI: a number followed by '#' (AlexeyAB's cfgs write
`filters=40 #32`) is the number, as Darknet's atoi/atof read it.

Shape inference walks the layers like Darknet's parse_network_cfg() just far
enough to know every layer's (c, h, w) and the arrays it stores in a .weights
file, in file order.
"""

import math
import os
import re
import warnings
from dataclasses import dataclass, field

from mdfi.layer_kinds import canonical


class CfgError(ValueError):
    """A malformed cfg, or one that describes an impossible network."""

    def __init__(self, msg, file=None, line=None):
        where = "%s:%s: " % (file or "<cfg>", line) if line else ("%s: " % file if file else "")
        super().__init__(where + msg)
        self.file, self.line = file, line


class Section:
    """One [type] block: options in file order and the line of every key."""

    def __init__(self, type, options=None, line=0, key_lines=None, file=None):
        self.type = type  # without brackets, as written: 'convolutional', 'conv', ...
        self.options = dict(options or {})
        self.line = line
        self.key_lines = dict(key_lines or {})
        self.file = file

    def __repr__(self):
        return "Section(%r, %r, line=%d)" % (self.type, self.options, self.line)

    def __eq__(self, other):
        return isinstance(other, Section) and (self.type, self.options) == (other.type, other.options)

    def error(self, msg, key=None):
        return CfgError("[%s]: %s" % (self.type, msg), self.file, self.key_lines.get(key, self.line))

    def get_str(self, key, default=None):
        return self.options.get(key, default)

    def get_int(self, key, default):
        if key not in self.options:
            return default
        try:
            return int(self.options[key], 10)
        except ValueError:
            raise self.error("%s=%s is not an integer" % (key, self.options[key]), key) from None

    def get_ints(self, key):
        """A comma separated list of integers, e.g. route layers=-1,8."""
        value = self.options.get(key)
        if value is None:
            raise self.error("missing %s=" % key)
        try:
            return [int(v, 10) for v in value.split(",")]
        except ValueError:
            raise self.error("%s=%s is not a list of integers" % (key, value), key) from None


def _read_source(src):
    """(text, name for messages) from cfg text, bytes or a path."""
    if isinstance(src, (bytes, bytearray)):
        return bytes(src).decode("utf-8", "replace"), "<cfg>"
    if isinstance(src, str) and ("\n" in src or src.lstrip().startswith(("[", "#", ";")) or not src):
        return src, "<cfg>"
    with open(src, "rb") as f:  # str without a newline, or os.PathLike: a file name
        return f.read().decode("utf-8", "replace"), os.fspath(src)


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _cut_comment(value):
    """A number followed by '#...' -> the number; any other value as it is."""
    head, hash_, _ = value.partition("#")
    return head if hash_ and _NUMBER.fullmatch(head) else value


def parse_cfg(src):
    """Sections of a cfg given as text, bytes or a path. Raises CfgError."""
    text, name = _read_source(src)
    sections = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = "".join(raw.split())  # Darknet removes whitespace inside the line too
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3 or "]" in line[1:-1]:
                raise CfgError("bad section header %r" % raw.strip(), name, lineno)
            sections.append(Section(line[1:-1], line=lineno, file=name))
            continue
        if not sections:
            raise CfgError("%r before the first [section]" % raw.strip(), name, lineno)
        key, eq, value = line.partition("=")
        if not eq or not key or not value:
            raise CfgError("expected key=value, got %r" % raw.strip(), name, lineno)
        value = _cut_comment(value)
        sec = sections[-1]
        if key in sec.options:  # Darknet's option_find() uses the first one
            warnings.warn("%s:%d: duplicate key %s in [%s] ignored (first value %s is used)"
                          % (name, lineno, key, sec.type, sec.options[key]), stacklevel=2)
            continue
        sec.options[key] = value
        sec.key_lines[key] = lineno
    return sections


def write_cfg(sections):
    """Cfg text for sections; parse_cfg(write_cfg(s)) == s."""
    blocks = []
    for sec in sections:
        lines = ["[%s]" % sec.type] + ["%s=%s" % kv for kv in sec.options.items()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


# ----------------------------------------------------------------------------- shapes and parameters



@dataclass
class Layer:
    """A cfg layer after shape inference. `params` lists the arrays the layer
    stores in a .weights file as (name, shape), in file order. `inputs` are
    the layers it reads (-1: the network input), as the engine wires them:
    route's layers, shortcut's previous layer and from, an [exit]'s branch
    point, which the first layer of its branch and the first layer after the
    branch read too. `exit` is the [exit] whose branch holds the layer (None
    on the main path)."""
    index: int
    type: str  # canonical: 'convolutional', 'connected', 'maxpool', ...
    section: Section
    in_shape: tuple  # (c, h, w)
    out_shape: tuple
    params: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    exit: int = None

    @property
    def n_params(self):
        return sum(math.prod(shape) for _, shape in self.params)


def _bn_arrays(n):
    return [("scales", (n,)), ("rolling_mean", (n,)), ("rolling_variance", (n,))]


def _conv(sec, c, h, w):
    n = sec.get_int("filters", 1)
    size = sec.get_int("size", 1)
    stride_x, stride_y = conv_strides(sec)
    groups = sec.get_int("groups", 1)
    padding = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    for key, v in (("filters", n), ("size", size), ("stride", min(stride_x, stride_y)),
                   ("groups", groups)):
        if v <= 0:
            raise sec.error("%s must be positive, got %d" % (key, v), key)
    if c % groups or n % groups:
        raise sec.error("groups=%d must divide the %d input channels and %d filters"
                        % (groups, c, n), "groups")
    oh, ow = (h + 2 * padding - size), (w + 2 * padding - size)
    if oh < 0 or ow < 0:
        raise sec.error("kernel %d with padding %d does not fit the %dx%d input" % (size, padding, w, h))
    params = []
    # share_index: another layer's parameters (AlexeyAB), none in the file
    if not sec.get_int("dontload", 0) and sec.get_str("share_index") is None:
        params.append(("biases", (n,)))
        if sec.get_int("batch_normalize", 0) and not sec.get_int("dontloadscales", 0):
            params += _bn_arrays(n)
        params.append(("weights", (n, c // groups, size, size)))
    # AlexeyAB's output size, which dilation= does not change
    return (n, oh // stride_y + 1, ow // stride_x + 1), params


def conv_strides(sec):
    """(stride_x, stride_y) of a [convolutional]: AlexeyAB's keys, each below 1 taking
    stride's value."""
    stride = sec.get_int("stride", 1)
    sx, sy = sec.get_int("stride_x", -1), sec.get_int("stride_y", -1)
    return (sx if sx >= 1 else stride), (sy if sy >= 1 else stride)


def _connected(sec, c, h, w):
    out = sec.get_int("output", 1)
    if out <= 0:
        raise sec.error("output must be positive, got %d" % out, "output")
    params = []
    if not sec.get_int("dontload", 0):
        params = [("biases", (out,)), ("weights", (out, c * h * w))]
        if sec.get_int("batch_normalize", 0) and not sec.get_int("dontloadscales", 0):
            params += _bn_arrays(out)  # after the weights, unlike conv
    return (out, 1, 1), params


def _local(sec, c, h, w):
    """[local] (pjreddie's locally connected layer, YOLOv1): a bias per output value, then
    each output position's filters; pad > 0 needs size = 2 pad + 1, as in MDFI."""
    n, size = sec.get_int("filters", 1), sec.get_int("size", 1)
    stride, pad = sec.get_int("stride", 1), sec.get_int("pad", 0)
    if n < 1 or size < 1 or stride < 1 or pad < 0 or \
            (size != 2 * pad + 1 if pad else h < size or w < size):
        raise sec.error("filters=%d size=%d stride=%d pad=%d do not fit the %dx%dx%d input "
                        "(pad > 0 needs size = 2 pad + 1)" % (n, size, stride, pad, c, h, w))
    oh, ow = (h - (1 if pad else size)) // stride + 1, (w - (1 if pad else size)) // stride + 1
    params = []
    if not sec.get_int("dontload", 0):
        params = [("biases", (n, oh, ow)), ("weights", (oh * ow, n, c, size, size))]
    return (n, oh, ow), params


def _yolov1(sec, c, h, w):
    """[detection] (YOLOv1's head): side^2 x (5 num + classes) inputs, seen as
    (5 num + classes) x side x side, Darknet's flat order kept."""
    side, num = sec.get_int("side", 7), sec.get_int("num", 1)
    classes, coords = sec.get_int("classes", 1), sec.get_int("coords", 1)
    if coords != 4 or side < 1 or num < 1 or classes < 1 or \
            side * side * (5 * num + classes) != c * h * w:
        raise sec.error("side=%d num=%d classes=%d coords=%d (4 only) do not fit its %d inputs"
                        % (side, num, classes, coords, c * h * w))
    return (5 * num + classes, side, side)


def pool_geometry(sec):
    """(size, stride_x, stride_y, padding) of a [maxpool] or [local_avgpool], as AlexeyAB
    reads them: stride_x and stride_y default to stride, size to stride, padding to
    size - 1 (windows start at -padding/2)."""
    stride = sec.get_int("stride", 1)
    sx, sy = sec.get_int("stride_x", stride), sec.get_int("stride_y", stride)
    size = sec.get_int("size", stride)
    return size, sx, sy, sec.get_int("padding", size - 1)


def _maxpool(sec, c, h, w):
    size, sx, sy, padding = pool_geometry(sec)
    if sx <= 0 or sy <= 0 or size <= 0:
        raise sec.error("size and stride must be positive")
    oh, ow = h + padding - size, w + padding - size
    if oh < 0 or ow < 0:
        raise sec.error("window %d does not fit the %dx%d input" % (size, w, h))
    return (c, oh // sy + 1, ow // sx + 1), []


def _relative(sec, layers, value, key):
    """Darknet layer reference: negative means relative to the current layer."""
    index = len(layers)
    j = index + value if value < 0 else value
    if not 0 <= j < index:
        raise sec.error("%s=%d refers to layer %d, not an earlier layer" % (key, value, j), key)
    return layers[j]


def _scale_channels(sec, layers, shape):
    """[scale_channels] (squeeze-and-excitation, AlexeyAB's darknet): layer
    from='s output, each channel scaled by the previous layer's C x 1 x 1, or
    with scale_wh=1 each position by its 1 x H x W.  Output: from's shape."""
    if "from" not in sec.options:
        raise sec.error("missing from=")
    src = _relative(sec, layers, sec.get_int("from", 0), "from")
    c, h, w = shape
    fc, fh, fw = src.out_shape
    if sec.get_int("scale_wh", 0):
        if c != 1 or (h, w) != (fh, fw):
            raise sec.error("scale_wh=1: the previous layer must be 1x%dx%d (layer %d's height "
                            "and width), not %dx%dx%d" % (fh, fw, src.index, c, h, w))
    elif (h, w) != (1, 1) or c != fc:
        raise sec.error("the previous layer must be %dx1x1 (layer %d's channels), not %dx%dx%d"
                        % (fc, src.index, c, h, w))
    return src.out_shape


def _sam(sec, layers, shape):
    """[sam] (AlexeyAB's spatial attention): the previous layer times layer
    from='s output, elementwise; the two have one shape, the output's."""
    if "from" not in sec.options:
        raise sec.error("missing from=")
    src = _relative(sec, layers, sec.get_int("from", 0), "from")
    if tuple(src.out_shape) != tuple(shape):
        raise sec.error("layer %d is %dx%dx%d and the previous layer %dx%dx%d; they must be equal"
                        % ((src.index,) + tuple(src.out_shape) + tuple(shape)), "from")
    return tuple(shape)


def reorg_shapes(sec, c, h, w):
    """([reorg]/[reorg3d]) (stride, reverse, the output's shape, the shape Darknet
    gives reorg_cpu: the input's for [reorg], the output's for [reorg3d])."""
    stride, reverse = sec.get_int("stride", 1), sec.get_int("reverse", 0)
    flatten = extra = 0
    if canonical(sec.type) == "reorg":   # pjreddie's Go forms (AlexeyAB's [reorg3d]: neither)
        flatten, extra = sec.get_int("flatten", 0), sec.get_int("extra", 0)
    if extra < 0 or (extra and flatten):
        raise sec.error("extra=%d must be >= 0 and without flatten= (Darknet reads past its "
                        "input)" % extra, "extra")
    if extra:   # the input flat, then extra zeros; stride and reverse unused
        return stride, bool(reverse), (c * h * w + extra, 1, 1), (c, h, w)
    s2 = stride * stride
    if stride < 1 or (c % s2 if reverse else h % stride or w % stride):
        raise sec.error("stride=%d does not divide the input %dx%dx%d" % (stride, c, h, w),
                        "stride")
    out = (c // s2, h * stride, w * stride) if reverse else (c * s2, h // stride, w // stride)
    given = out if canonical(sec.type) == "reorg3d" else (c, h, w)
    if given[0] % s2 and not flatten:
        raise sec.error("%d channels are not a multiple of stride^2 = %d" % (given[0], s2))
    return stride, bool(reverse), out, given


def crop_shape(sec, c, h, w):
    """[crop]: Darknet's test-time centre crop, crop_height x crop_width."""
    ch, cw = sec.get_int("crop_height", 1), sec.get_int("crop_width", 1)
    if not (1 <= ch <= h and 1 <= cw <= w):
        raise sec.error("crop %dx%d does not fit the %dx%d input" % (cw, ch, w, h))
    return (c, ch, cw)


DUALPATH_REFUSED = ("astep", "xnor", "binary", "groups", "dilation")


def dualpath_abits(sec):
    """A [dualpath]'s abits as a string, "1" (sign) or "1.5" (ternary)."""
    value = sec.get_str("abits", "1")
    try:
        v = float(value)
    except ValueError:
        v = None
    if v not in (1.0, 1.5):
        raise sec.error("abits=%s; the activation bits of a [dualpath] layer are 1 (sign) or 1.5 "
                        "(ternary)" % value, "abits")
    return "1" if v == 1.0 else "1.5"


def _binary_geometry(sec, shape):
    """filters, size and the output shape of a [dualpath] / [fracconv] section."""
    c, h, w = shape
    n = sec.get_int("filters", 1)
    size = sec.get_int("size", 1)
    stride = sec.get_int("stride", 1)
    padding = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    for key, v in (("filters", n), ("size", size), ("stride", stride)):
        if v <= 0:
            raise sec.error("%s must be positive, got %d" % (key, v), key)
    if padding < 0:
        raise sec.error("padding must not be negative, got %d" % padding, "padding")
    oh, ow = (h + 2 * padding - size), (w + 2 * padding - size)
    if oh < 0 or ow < 0:
        raise sec.error("kernel %d with padding %d does not fit the %dx%d input" % (size, padding, w, h))
    return n, size, (n, oh // stride + 1, ow // stride + 1)


def _second_source(sec, layers, shape, out):
    """from= (default -1: the layer's input) must have the output's height and
    width and channels that divide filters."""
    frm = sec.get_int("from", -1)
    src = shape if frm == -1 else _relative(sec, layers, frm, "from").out_shape
    if src[1:] != out[1:] or out[0] % src[0]:
        raise sec.error("from=%d (%dx%dx%d) does not fit the output %dx%dx%d: the second source "
                        "needs the output's height and width, and channels that divide filters"
                        % ((frm,) + tuple(src) + out), "from")


def _refuse_keys(sec, keys):
    for key in keys:
        if key in sec.options:
            raise sec.error("%s is not a key of [%s]" % (key, sec.type), key)
    if sec.get_str("activation", "linear") != "linear":
        raise sec.error("activation=%s; a [%s] layer has no activation (linear)"
                        % (sec.get_str("activation"), sec.type), "activation")


def _dualpath(sec, layers, shape):
    """[dualpath] (docs/dualpath.md): a binary convolution of the input quantized
    with learned per-channel thresholds, BN and the range folded, plus the
    second source from= (default -1: the layer's input), whose height and width
    must be the output's and whose channels must divide filters (channel m reads
    channel m mod C_src).  Arrays: the conv-with-BN ones, then shift (C), delta
    (abits=1.5 only) and range."""
    _refuse_keys(sec, DUALPATH_REFUSED)
    if sec.get_int("batch_normalize", 1) != 1:
        raise sec.error("batch_normalize=%s; a [dualpath] layer always has BN"
                        % sec.get_str("batch_normalize"), "batch_normalize")
    abits = dualpath_abits(sec)
    c = shape[0]
    n, size, out = _binary_geometry(sec, shape)
    if c * size * size > 1 << 24:
        raise sec.error("%d channels x %dx%d taps is too large for a binary convolution"
                        % (c, size, size))
    _second_source(sec, layers, shape, out)
    params = [("biases", (n,))] + _bn_arrays(n) + [("weights", (n, c, size, size)),
                                                   ("shift", (c,))]
    if abits == "1.5":
        params.append(("delta", (1,)))
    params.append(("range", (1,)))
    return out, params


FRACCONV_REFUSED = ("abits", "astep", "xnor", "binary", "groups", "dilation", "batch_normalize")


def _flag(sec, key, default):
    v = sec.get_int(key, default)
    if v not in (0, 1):
        raise sec.error("%s=%d; it is 0 or 1" % (key, v), key)
    return v


def fracconv_options(sec):
    """A [fracconv]'s input mode and flags (docs/wsfracbnn.md), checked:
    {"input": "stream" | "thermometer", "levels": T (1 for stream),
    "gate": 0 | 1 (0 for thermometer), "shortcut": 0 | 1}."""
    _refuse_keys(sec, FRACCONV_REFUSED)
    mode = sec.get_str("input", "stream")
    if mode not in ("stream", "thermometer"):
        raise sec.error("input=%s; it is stream or thermometer" % mode, "input")
    thermo = mode == "thermometer"
    other = "gate" if thermo else "levels"
    if other in sec.options:
        raise sec.error("%s is a key of input=%s only" % (other, "stream" if thermo else
                                                            "thermometer"), other)
    levels = sec.get_int("levels", 0) if thermo else 1
    if not 1 <= levels <= 256:
        raise sec.error("input=thermometer needs levels=T with 1 <= T <= 256 (got %s)"
                        % sec.get_str("levels", "none"), "levels")
    gate = 0 if thermo else _flag(sec, "gate", 1)
    shortcut = _flag(sec, "shortcut", 0 if thermo else 1)
    if thermo and shortcut:
        raise sec.error("shortcut=1 with input=thermometer; a thermometer layer has no "
                        "shortcut", "shortcut")
    if not shortcut and "from" in sec.options:
        raise sec.error("from= with shortcut=0; from= names the shortcut's source", "from")
    return {"input": mode, "levels": levels, "gate": gate, "shortcut": shortcut}


def _fracconv(sec, layers, shape):
    """[fracconv] (docs/wsfracbnn.md): a BN-free binary convolution of the
    input as two sign planes (input=stream) or T thermometer bits per channel,
    scale and bias times the range folded, plus the second source from= unless
    shortcut=0.  Arrays: biases, scales, weights (C' = C T input channels),
    shift (C) and step (1) for stream, gate (M) for stream with gate=1, range."""
    o = fracconv_options(sec)
    c = shape[0] * o["levels"]
    n, size, out = _binary_geometry(sec, shape)
    if c * size * size > 1 << 22 or c > 65535:
        raise sec.error("%d channels x %dx%d taps is too large (at most 2^22)" % (c, size, size))
    if o["shortcut"]:
        _second_source(sec, layers, shape, out)
    params = [("biases", (n,)), ("scales", (n,)), ("weights", (n, c, size, size))]
    if o["input"] == "stream":
        params += [("shift", (shape[0],)), ("step", (1,))]
        if o["gate"]:
            params.append(("gate", (n,)))
    params.append(("range", (1,)))
    return out, params


def _route(sec, layers):
    srcs = [_relative(sec, layers, v, "layers") for v in sec.get_ints("layers")]
    _, h, w = srcs[0].out_shape
    for s in srcs[1:]:
        if s.out_shape[1:] != (h, w):
            raise sec.error("layers %d %s and %d %s differ in height/width"
                            % (srcs[0].index, srcs[0].out_shape, s.index, s.out_shape), "layers")
    groups = sec.get_int("groups", 1)
    group_id = sec.get_int("group_id", 0)
    if groups < 1 or not 0 <= group_id < groups:
        raise sec.error("bad groups=%d group_id=%d" % (groups, group_id), "groups")
    for s in srcs:
        if s.out_shape[0] % groups:
            raise sec.error("groups=%d does not divide layer %d's %d channels"
                            % (groups, s.index, s.out_shape[0]), "groups")
    # each input contributes its channel slice group_id of groups (as MDFI does)
    return (sum(s.out_shape[0] // groups for s in srcs), h, w)


def _upsample(sec, c, h, w):
    stride = sec.get_int("stride", 2)
    if stride == 0:
        raise sec.error("stride must not be 0", "stride")
    if stride < 0:  # Darknet: a negative stride downsamples
        return (c, h // -stride, w // -stride)
    return (c, h * stride, w * stride)


def _detection(sec, c, h, w, per_anchor):
    classes = sec.get_int("classes", 20)
    num = sec.get_int("num", 1)
    if sec.type in ("yolo", "Gaussian_yolo") and "mask" in sec.options:
        num = len(sec.get_ints("mask"))
    need = num * (classes + per_anchor)
    if c != need:
        raise sec.error("expects %d input channels (%d anchors x (%d classes + %d)), got %d"
                        % (need, num, classes, per_anchor, c))
    return (c, h, w)


EXIT_PREDICTORS = ("entropy", "exit")   # their parameters' order in a .weights file


def exit_params(predictors, hidden, features):
    """(name, shape) of an [exit]'s arrays in .weights order (docs/early-exit.md):
    for each predictor present, entropy first, then exit, whatever the order
    of the cfg's list: b1[hidden], W1[hidden][D], b2[1], W2[1][hidden], or
    b[1], W[1][D] with hidden=0."""
    out = []
    for p in EXIT_PREDICTORS:
        if p in predictors:
            if hidden:
                out += [(p + "_b1", (hidden,)), (p + "_W1", (hidden, features)),
                        (p + "_b2", (1,)), (p + "_W2", (1, hidden))]
            else:
                out += [(p + "_b", (1,)), (p + "_W", (1, features))]
    return out


def _float_key(sec, key, default, lo, hi, lo_open=False):
    value = sec.get_str(key)
    if value is None:
        return default
    try:
        v = float(value)
    except ValueError:
        raise sec.error("%s=%s is not a number" % (key, value), key) from None
    if not (lo < v if lo_open else lo <= v) or not v <= hi:
        raise sec.error("%s=%s is outside %s%g, %g]" % (key, value, "(" if lo_open else "[", lo, hi),
                        key)
    return v


def exit_options(sec):
    """The keys of an [exit] with their defaults, checked: a dict with from,
    layers, threshold, predictors (a tuple in the cfg's order), pool, hidden,
    entropy_gate, exit_gate."""
    if "layers" not in sec.options:
        raise sec.error("missing layers= (the number of branch sections after [exit])")
    o = {"from": sec.get_int("from", -1), "layers": sec.get_int("layers", 0)}
    if o["layers"] < 1:
        raise sec.error("layers must be >= 1, got %d" % o["layers"], "layers")
    o["threshold"] = _float_key(sec, "threshold", 0.5, 0.0, 1.0, lo_open=True)
    names = [p for p in sec.get_str("predictors", "").split(",") if p]
    for p in names:
        if p not in EXIT_PREDICTORS:
            raise sec.error("unknown predictor %r (entropy, exit)" % p, "predictors")
    if len(set(names)) != len(names):
        raise sec.error("predictors=%s lists one twice" % sec.get_str("predictors"), "predictors")
    o["predictors"] = tuple(names)
    o["pool"] = sec.get_int("pool", 1)
    if not 1 <= o["pool"] <= 16:
        raise sec.error("pool must be in 1..16, got %d" % o["pool"], "pool")
    o["hidden"] = sec.get_int("hidden", 0)
    if not 0 <= o["hidden"] <= 4096:
        raise sec.error("hidden must be in 0..4096, got %d" % o["hidden"], "hidden")
    o["entropy_gate"] = _float_key(sec, "entropy_gate", o["threshold"], 0.0, 1.0)
    o["exit_gate"] = _float_key(sec, "exit_gate", 0.5, 0.0, 1.0)
    return o


def net_shape(sections):
    """(c, h, w) of the network input, from the first section, [net]."""
    if not sections or canonical(sections[0].type) != "net":
        raise CfgError("the first section must be [net]",
                       sections[0].file if sections else None, sections[0].line if sections else None)
    net = sections[0]
    h, w, c = net.get_int("height", 0), net.get_int("width", 0), net.get_int("channels", 0)
    if h > 0 and w > 0 and c > 0:
        return (c, h, w)
    inputs = net.get_int("inputs", 0)
    if inputs > 0:
        return (inputs, 1, 1)
    raise net.error("needs width, height and channels (or inputs)")


def infer_layers(sections):
    """Layers (without [net]) with their shapes and weight arrays. Raises CfgError."""
    shape = net_shape(sections)
    layers = []
    resume = {}   # index of a branch's first layer, or of the one after it -> branch point
    branch = {}   # index of a branch layer -> its [exit]
    for sec in sections[1:]:
        kind = canonical(sec.type)
        index = len(layers)
        if index in resume:  # a branch starts, or the main path goes on, at the branch point
            shape = layers[resume[index]].out_shape
        c, h, w = shape
        params = []
        if sec.get_int("numload", 0):
            raise sec.error("numload is not supported", "numload")
        if kind == "convolutional":
            out, params = _conv(sec, c, h, w)
        elif kind == "connected":
            out, params = _connected(sec, c, h, w)
        elif kind == "local":
            out, params = _local(sec, c, h, w)
        elif kind == "detection":
            out = _yolov1(sec, c, h, w)
        elif kind in ("maxpool", "local_avgpool"):
            out, params = _maxpool(sec, c, h, w)
        elif kind == "avgpool":
            out = (c, 1, 1)
        elif kind == "route":
            out = _route(sec, layers)
        elif kind == "shortcut":
            if "from" not in sec.options:
                raise sec.error("missing from=")
            _relative(sec, layers, sec.get_int("from", 0), "from")
            out = shape
        elif kind == "upsample":
            out = _upsample(sec, c, h, w)
        elif kind == "scale_channels":
            out = _scale_channels(sec, layers, shape)
        elif kind == "sam":
            out = _sam(sec, layers, shape)
        elif kind in ("reorg", "reorg3d"):
            out = reorg_shapes(sec, c, h, w)[2]
        elif kind == "crop":
            out = crop_shape(sec, c, h, w)
        elif kind == "dualpath":
            out, params = _dualpath(sec, layers, shape)
        elif kind == "fracconv":
            out, params = _fracconv(sec, layers, shape)
        elif kind == "yolo":
            out = _detection(sec, c, h, w, 5)
        elif kind == "Gaussian_yolo":   # x, y, w, h each with a sigma
            out = _detection(sec, c, h, w, 9)
        elif kind == "region":
            out = _detection(sec, c, h, w, sec.get_int("coords", 4) + 1)
        elif kind == "batchnorm":
            out = shape
            if not sec.get_int("dontload", 0):
                params = _bn_arrays(c)
        elif kind in ("dropout", "cost", "contrastive"):
            out = shape
        elif kind == "softmax":
            out = (c * h * w, 1, 1)  # Darknet flattens; its out_c/h/w stay 0
        elif kind == "exit":
            shape, out, params = _exit(sec, layers, index, resume, branch)  # reads the point
        else:
            raise sec.error("layer type [%s] is not supported" % sec.type)
        if min(out) <= 0:
            raise sec.error("output shape %s is empty" % (out,))
        layers.append(Layer(len(layers), kind, sec, shape, out, params,
                            _inputs(sec, kind, layers, resume), branch.get(index)))
        if index in branch and index + 1 in resume and kind != "softmax":
            raise sec.error("the branch of the [exit] at layer %d must end with a [softmax], "
                            "not [%s]" % (branch[index], sec.type))
        shape = out
    if any(i >= len(layers) for i in resume):
        e = max(branch.values())
        raise sections[e + 1].error("the network must go on after the branch of this [exit]")
    return layers


def _exit(sec, layers, index, resume, branch):
    """[exit] (docs/early-exit.md): it reads the branch point (from=) and outputs
    its predictors' values (2 x 1 x 1, as MDFI); the next `layers` sections are
    its branch, whose first layer reads the branch point, as does the layer
    after the branch. Its arrays: the predictors'."""
    o = exit_options(sec)
    if index in branch:
        raise sec.error("an [exit] inside the branch of the [exit] at layer %d" % branch[index])
    point = _relative(sec, layers, o["from"], "from")
    if point.index in branch:
        raise sec.error("from=%d: layer %d is inside the branch of the [exit] at layer %d"
                        % (o["from"], point.index, branch[point.index]), "from")
    for j in range(index + 1, index + 1 + o["layers"]):
        branch[j] = index
    resume[index + 1] = resume[index + 1 + o["layers"]] = point.index
    c = point.out_shape[0]
    return (point.out_shape, (len(EXIT_PREDICTORS), 1, 1),
            exit_params(o["predictors"], o["hidden"], c * o["pool"] ** 2))


def _inputs(sec, kind, layers, resume):
    """The layers a new layer reads (see Layer.inputs); the references were
    checked by its shape rule."""
    index = len(layers)
    prev = resume.get(index, index - 1)
    if prev >= 0 and layers[prev].type == "exit":   # the first layer of a branch
        prev = layers[prev].inputs[0]
    absolute = lambda v: index + v if v < 0 else v  # noqa: E731
    if kind == "route":
        return [absolute(v) for v in sec.get_ints("layers")]
    if kind in ("shortcut", "scale_channels", "sam"):
        return [prev, absolute(sec.get_int("from", 0))]
    if kind == "dualpath" or (kind == "fracconv" and fracconv_options(sec)["shortcut"]):
        frm = sec.get_int("from", -1)   # -1 (the default) is the layer's own input
        return [prev, prev if frm == -1 else absolute(frm)]
    if kind == "exit":
        return [absolute(sec.get_int("from", -1))]
    return [prev]


def layers_of(cfg):
    """Accept cfg text/path, a list of Sections or already inferred Layers."""
    if isinstance(cfg, list) and cfg and isinstance(cfg[0], Layer):
        return cfg
    sections = cfg if isinstance(cfg, list) else parse_cfg(cfg)
    return infer_layers(sections)
