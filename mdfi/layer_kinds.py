"""Darknet layer kinds: one row per cfg section type.

The one list of them on the Python side: the cfg reader, the fixed-point and
binary references, the quantizer and the PyTorch bridge (weights_tools) read
it; tests/test_layer_kinds.py checks it against the C registry
(csrc/layers/registry.c).  It lives in the runtime so that both packages may
import it (the tools import the runtime, never the other way round).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str                    # canonical section name
    aliases: tuple = ()          # other section names Darknet accepts for it
    params: bool = False         # stores arrays in a .weights file
    gemm: bool = False           # a convolution or matrix product: quantized weights
    head: bool = False           # decodes the network's output; stays float in fixed point
    pass_through: bool = False   # fixed point: its output keeps its input's format
    identity: bool = False       # its output is its input at inference (C: an alias)
    fixed: bool = False          # has a fixed-point form (docs/fixed-point.md)
    binary: bool = False         # in a binary numpy reference (binary_ref.py, dualpath_ref.py)
    c: bool = False              # the C engine runs it (csrc/layers/registry.c)
    torch: bool = False          # has a module in weights_tools.torch


KINDS = (
    Kind("convolutional", ("conv",), params=True, gemm=True, fixed=True, binary=True, c=True,
         torch=True),
    Kind("connected", ("conn",), params=True, gemm=True, fixed=True, binary=True, c=True,
         torch=True),
    Kind("maxpool", ("max",), pass_through=True, fixed=True, binary=True, c=True, torch=True),
    Kind("avgpool", ("avg",), fixed=True, c=True, torch=True),
    Kind("route", fixed=True, c=True, torch=True),
    Kind("shortcut", fixed=True, c=True, torch=True),
    Kind("upsample", pass_through=True, fixed=True, c=True, torch=True),
    Kind("yolo", head=True, fixed=True, c=True, torch=True),
    Kind("dropout", pass_through=True, identity=True, fixed=True, binary=True, c=True,
         torch=True),
    Kind("softmax", ("soft",), head=True, fixed=True, binary=True, c=True, torch=True),
    Kind("region", head=True, c=True, torch=True),   # YOLOv2's head: C runs it in float
    # AlexeyAB's [yolo] with a sigma per coordinate (C: float)
    Kind("Gaussian_yolo", head=True, c=True, torch=True),
    # YOLOv1's head (C: float, csrc/layers/region.c); decoded as get_detection_detections
    Kind("detection", head=True, c=True, torch=True),
    # YOLOv1's locally connected layer: a bias per output value, filters per position (C: float)
    Kind("local", params=True, c=True, torch=True),
    # the cfg reader knows this one (shapes, .weights sizes); nothing runs it yet
    Kind("batchnorm", params=True),
    # space-to-depth (csrc/layers/reorg.c): float only; one torch module (Reorg) for both
    Kind("reorg", c=True, torch=True),
    Kind("reorg3d", c=True, torch=True),
    # test-time centre crop, x 2 - 1 (csrc/layers/crop.c): float only
    Kind("crop", c=True, torch=True),
    # a training loss; passes its input on at inference (Darknet's output skips it)
    Kind("cost", pass_through=True, identity=True, fixed=True, c=True, torch=True),
    # AlexeyAB's [maxpool] windows averaged over their pixels in the image (C: float)
    Kind("local_avgpool", c=True, torch=True),
    # AlexeyAB's contrastive loss: zeros at inference (its forward returns at once)
    Kind("contrastive", c=True, torch=True),
    # squeeze-and-excitation (AlexeyAB's darknet): no weights
    Kind("scale_channels", c=True, torch=True),   # C has fixed point too; not the quantizer
    # spatial attention: scale_channels per element (C: float, fixed)
    Kind("sam", c=True, torch=True),
    # an early exit (docs/early-exit.md): its predictors' arrays; C runs it in
    # float and fixed point, where it is a head (float output from its input's
    # integers, no fixed_* keys; the predictors stay float32)
    Kind("exit", params=True, head=True, fixed=True, c=True, torch=True),
    # dual-path binary layer (docs/dualpath.md): C runs it on the binary path
    # only; its numpy reference is weights_tools/dualpath_ref.py
    Kind("dualpath", params=True, binary=True, c=True, torch=True),
    # BN-free fractional binary convolution (docs/wsfracbnn.md): C runs it on
    # the binary path only; its numpy reference is weights_tools/fracconv_ref.py
    Kind("fracconv", params=True, binary=True, c=True, torch=True),
)
NET_NAMES = ("net", "network")   # the [net] section: not a layer

_BY_NAME = {n: k for k in KINDS for n in (k.name,) + k.aliases}


def kind(section):
    """The Kind of a section name (canonical or alias), or None."""
    return _BY_NAME.get(section)


def canonical(section):
    """The canonical name of a section name: 'conv' -> 'convolutional',
    'network' -> 'net'; unknown names are returned as they are."""
    if section in NET_NAMES:
        return "net"
    k = _BY_NAME.get(section)
    return k.name if k else section


def names(*flags):
    """Canonical names of the kinds with every one of flags, in table order."""
    return tuple(k.name for k in KINDS if all(getattr(k, f) for f in flags))


def section_names(*flags):
    """Every section name (canonical and aliases) of the kinds with flags."""
    return {n for k in KINDS if all(getattr(k, f) for f in flags) for n in (k.name,) + k.aliases}
