"""Darknet .cfg (+ .weights) -> a `Darknet` PyTorch model with the same output.

    model = import_darknet("yolov3-tiny.cfg", "yolov3-tiny.weights")
    y = model(x)                      # x: (N, 3, 416, 416) float32

The model is returned in eval mode, where every layer computes Darknet's
inference formula (Darknet BN included), so its output equals MDFI's float
output up to float32 rounding. Call model.train() to fine-tune it, then
export() it back.
"""

import os

from weights_tools.darknet_cfg import (CfgError, conv_strides, crop_shape, exit_options,
                                       infer_layers, net_shape, parse_cfg, pool_geometry,
                                       reorg_shapes)
from weights_tools.darknet_weights import DarknetWeights, WeightsError, read_weights
from weights_tools.torch.binary import XnorConv
from weights_tools.torch.dualpath import DualPath
from weights_tools.torch.fracconv import FracConv
from weights_tools.torch.layers import (ACTIVATIONS, AvgPool, BridgeError, Contrastive, Conv,
                                        Connected, Cost, GaussianYolo, LocalAvgPool,
                                        Crop, Darknet, Detection, Dropout, Exit, Local, MaxPool, Region,
                                        Reorg, Route,
                                        Sam, ScaleChannels, ShapeMismatchError, Shortcut, Softmax,
                                        UnsupportedModuleError, Upsample, Yolo)

_NET_SHAPE_KEYS = ("width", "height", "channels", "inputs")


def _where(layer):
    sec = layer.section
    where = "%s:%d: " % (sec.file or "<cfg>", sec.line) if sec.line else ""
    return "%slayer %d [%s]" % (where, layer.index, sec.type)


def _unsupported(layer, msg):
    return UnsupportedModuleError("%s: %s" % (_where(layer), msg))


def _activation(layer, default):
    name = layer.section.get_str("activation", default)
    if name not in ACTIVATIONS:
        raise _unsupported(layer, "activation %r is not a Darknet activation" % name)
    return name


def _float(layer, key, default):
    value = layer.section.get_str(key)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise layer.section.error("%s=%s is not a number" % (key, value), key) from None


def _conv(layer):
    sec = layer.section
    c = layer.in_shape[0]
    stride, stride_y = conv_strides(sec)
    dilation = sec.get_int("dilation", 1)
    if sec.get_int("xnor", 0) and (stride_y != stride or dilation != 1 or
                                   sec.get_str("share_index") is not None):
        raise _unsupported(layer, "dilation, stride_y unlike stride_x and share_index are not "
                                  "supported on the binary path")
    if sec.get_int("binary", 0):
        raise _unsupported(layer, "binary=1 is ambiguous: Darknet's CPU forward ignores it, its GPU "
                                  "forward binarises the weights; use xnor=1")
    if sec.get_int("dontload", 0) or sec.get_int("dontloadscales", 0):
        raise _unsupported(layer, "dontload/dontloadscales are not supported")
    cls = XnorConv if sec.get_int("xnor", 0) else Conv
    return cls(c, sec.get_int("filters", 1), sec.get_int("size", 1), stride,
               activation=_activation(layer, "logistic"), pad=bool(sec.get_int("pad", 0)),
               padding=sec.get_int("padding", 0), groups=sec.get_int("groups", 1),
               batch_normalize=bool(sec.get_int("batch_normalize", 0)), stride_y=stride_y,
               dilation=dilation)


def _share(layers, modules):
    """AlexeyAB's share_index: the layer uses an earlier convolution's parameters (the very
    tensors: Darknet points at them), of the same shape."""
    for layer, module in zip(layers, modules):
        value = layer.section.get_str("share_index")
        if value is None:
            continue
        i = layer.section.get_int("share_index", 0)
        i = i if i >= 0 else layer.index + i
        src = modules[i] if 0 <= i < layer.index else None
        if src is not None and src.share_index is not None:
            i, src = src.share_index, modules[src.share_index]
        if not isinstance(src, Conv) or (src.weight.shape, src.groups, src.bn is None) != \
                (module.weight.shape, module.groups, module.bn is None):
            raise layer.section.error("share_index=%s: layer %d is not a convolution of this "
                                      "shape" % (value, i), "share_index")
        module.share_index = i
        module.weight, module.bias, module.bn = src.weight, src.bias, src.bn


def _dualpath(layer):
    sec = layer.section
    abits = sec.get_str("abits", "1")
    return DualPath(layer.in_shape[0], sec.get_int("filters", 1), sec.get_int("size", 1),
                    sec.get_int("stride", 1), pad=bool(sec.get_int("pad", 0)),
                    padding=sec.get_int("padding", 0), abits=1.5 if abits == "1.5" else int(abits),
                    from_=sec.get_int("from", -1))


def _fracconv(layer):
    from weights_tools.darknet_cfg import fracconv_options
    sec = layer.section
    o = fracconv_options(sec)
    return FracConv(layer.in_shape[0], sec.get_int("filters", 1), sec.get_int("size", 1),
                    sec.get_int("stride", 1), pad=bool(sec.get_int("pad", 0)),
                    padding=sec.get_int("padding", 0), input=o["input"], levels=o["levels"],
                    gate=bool(o["gate"]), shortcut=bool(o["shortcut"]),
                    from_=sec.get_int("from", -1), norm="fixed")


def _connected(layer):
    sec = layer.section
    if sec.get_int("dontload", 0) or sec.get_int("dontloadscales", 0):
        raise _unsupported(layer, "dontload/dontloadscales are not supported")
    c, h, w = layer.in_shape
    return Connected(c * h * w, sec.get_int("output", 1), activation=_activation(layer, "logistic"),
                     batch_normalize=bool(sec.get_int("batch_normalize", 0)))


def _maxpool(layer):
    size, sx, sy, padding = pool_geometry(layer.section)
    if sx != sy:
        raise _unsupported(layer, "stride_y unlike stride_x is not supported")
    return MaxPool(size, sx, padding)


def _route(layer):
    sec = layer.section
    return Route(sec.get_ints("layers"), sec.get_int("groups", 1), sec.get_int("group_id", 0))


def _shortcut(layer):
    sec = layer.section
    return Shortcut(sec.get_int("from", 0), _activation(layer, "linear"),
                    _float(layer, "alpha", 1.0), _float(layer, "beta", 1.0))


def _scale_channels(layer):
    sec = layer.section
    return ScaleChannels(sec.get_int("from", 0), bool(sec.get_int("scale_wh", 0)),
                         _activation(layer, "linear"))


def _upsample(layer):
    stride = layer.section.get_int("stride", 2)
    if stride < 1:
        raise _unsupported(layer, "stride=%d (downsampling) is not supported" % stride)
    return Upsample(stride, _float(layer, "scale", 1.0))


def _yolo(layer):
    sec = layer.section
    if sec.type == "Gaussian_yolo" and sec.get_str("yolo_point", "center") in ("left_top",
                                                                             "right_bottom"):
        raise _unsupported(layer, "yolo_point other than center is not supported")
    num = sec.get_int("num", 1)
    mask = sec.get_ints("mask") if "mask" in sec.options else list(range(num))
    anchors = ([float(v) for v in sec.get_str("anchors").split(",")]
               if sec.get_str("anchors") else [0.5] * (2 * num))
    rest = {k: v for k, v in sec.options.items() if k not in ("mask", "anchors", "classes", "num")}
    try:
        cls = GaussianYolo if sec.type == "Gaussian_yolo" else Yolo
        return cls(mask, anchors, sec.get_int("classes", 20), num, rest)
    except UnsupportedModuleError as e:   # scale_x_y, new_coords
        raise _unsupported(layer, str(e)) from None


def _anchors(layer, num):
    sec = layer.section
    return ([_number(layer, "anchors", v) for v in sec.get_str("anchors").split(",")]
            if sec.get_str("anchors") else [0.5] * (2 * num))


def _number(layer, key, value):
    try:
        return float(value)
    except ValueError:
        raise layer.section.error("%s=%s is not a number" % (key, value), key) from None


def _region(layer):
    sec = layer.section
    num = sec.get_int("num", 1)
    if "tree" in sec.options:
        raise _unsupported(layer, "tree= (YOLO9000's hierarchical softmax) is not supported")
    if sec.get_int("coords", 4) != 4 or sec.get_int("background", 0) != 0:
        raise _unsupported(layer, "only coords=4 and background=0 are supported")
    anchors = _anchors(layer, num)
    if len(anchors) != 2 * num:
        raise _unsupported(layer, "%d anchor values for num=%d (need %d)"
                           % (len(anchors), num, 2 * num))
    rest = {k: v for k, v in sec.options.items()
            if k not in ("anchors", "classes", "num", "softmax")}
    return Region(anchors, sec.get_int("classes", 20), num, bool(sec.get_int("softmax", 0)), rest)


def _local(layer):
    sec = layer.section
    return Local(layer.in_shape, sec.get_int("filters", 1), sec.get_int("size", 1),
                 sec.get_int("stride", 1), sec.get_int("pad", 0),
                 activation=_activation(layer, "logistic"))


def _yolov1(layer):
    sec = layer.section
    rest = {k: v for k, v in sec.options.items() if k not in ("classes", "num", "side", "softmax")}
    return Detection(sec.get_int("classes", 1), sec.get_int("num", 1), sec.get_int("side", 7),
                     bool(sec.get_int("softmax", 0)), rest)


def _reorg(layer):
    sec = layer.section
    stride, reverse, _, _ = reorg_shapes(sec, *layer.in_shape)
    if layer.type == "reorg3d":
        return Reorg(stride, reverse, reorg3d=True)
    return Reorg(stride, reverse, flatten=bool(sec.get_int("flatten", 0)),
                 extra=sec.get_int("extra", 0))


def _crop(layer):
    sec = layer.section
    _, ch, cw = crop_shape(sec, *layer.in_shape)
    rest = {k: v for k, v in sec.options.items()
            if k not in ("crop_height", "crop_width", "noadjust")}
    return Crop(ch, cw, bool(sec.get_int("noadjust", 0)), rest)


def _softmax(layer):
    return Softmax(layer.section.get_int("groups", 1), _float(layer, "temperature", 1.0))


def _exit(layer):
    o = exit_options(layer.section)
    return Exit(o["from"], layers=o["layers"], threshold=o["threshold"], predictors=o["predictors"],
                pool=o["pool"], hidden=o["hidden"], entropy_gate=o["entropy_gate"],
                exit_gate=o["exit_gate"], channels=layer.in_shape[0])


_BUILDERS = {
    "convolutional": _conv,
    "connected": _connected,
    "maxpool": _maxpool,
    "avgpool": lambda layer: AvgPool(),
    "route": _route,
    "shortcut": _shortcut,
    "upsample": _upsample,
    "scale_channels": _scale_channels,
    "yolo": _yolo,
    "Gaussian_yolo": _yolo,
    "dropout": lambda layer: Dropout(_float(layer, "probability", 0.5)),
    "softmax": _softmax,
    "region": _region,
    "local": _local,
    "detection": _yolov1,
    "reorg": _reorg,
    "reorg3d": _reorg,
    "crop": _crop,
    "cost": lambda layer: Cost(dict(layer.section.options)),
    "contrastive": lambda layer: Contrastive(dict(layer.section.options)),
    "local_avgpool": lambda layer: LocalAvgPool(*pool_geometry(layer.section)),
    "sam": lambda layer: Sam(layer.section.get_int("from", 0), _activation(layer, "linear")),
    "exit": _exit,
    "dualpath": _dualpath,
    "fracconv": _fracconv,
}


def _sections(cfg):
    if isinstance(cfg, list):
        return cfg
    if isinstance(cfg, os.PathLike):
        cfg = os.fspath(cfg)
    return parse_cfg(cfg)


def import_darknet(cfg, weights=None):
    """A `Darknet` model (eval mode) for cfg (text, bytes or path) with weights
    (a path, bytes, a DarknetWeights, or None for PyTorch's initialisation).
    Raises CfgError/WeightsError for malformed files and
    UnsupportedModuleError for layers or options without a PyTorch module."""
    sections = _sections(cfg)
    layers = infer_layers(sections)
    modules = []
    for layer in layers:
        build = _BUILDERS.get(layer.type)
        if build is None:
            raise _unsupported(layer, "layer type [%s] has no PyTorch module here" % layer.type)
        try:
            modules.append(build(layer))
        except (ValueError, ShapeMismatchError) as e:
            if isinstance(e, (BridgeError, CfgError)):
                raise
            raise _unsupported(layer, str(e)) from None
    _share(layers, modules)
    net_options = {k: v for k, v in sections[0].options.items() if k not in _NET_SHAPE_KEYS}
    model = Darknet(net_shape(sections), modules, net_options)
    if weights is not None:
        if isinstance(weights, DarknetWeights):
            w = weights
            if len(w.layers) != len(layers):
                raise WeightsError("%d layer entries for a cfg with %d layers"
                                   % (len(w.layers), len(layers)))
        else:
            if isinstance(weights, os.PathLike):
                weights = os.fspath(weights)
            w = read_weights(layers, weights)
        model.seen = w.seen
        for layer, module, arrays in zip(layers, modules, w.layers):
            arrays = dict(arrays)
            if w.transpose and layer.type == "connected" and "weights" in arrays:
                arrays["weights"] = arrays["weights"].T  # stored [inputs][outputs]
            try:
                module.load_darknet_arrays(arrays)
            except BridgeError as e:
                raise type(e)("%s: %s" % (_where(layer), e)) from None
    return model.eval()
