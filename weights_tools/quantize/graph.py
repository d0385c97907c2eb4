"""What the quantizer asks of the layer graph: inputs, folded BN, sizes, heads."""
import math

import numpy as np

from mdfi.layer_kinds import names
from weights_tools.fixed_ref import HEAD_TYPES

GEMM_TYPES = names("gemm")
PASS_THROUGH = names("pass_through")
FIXED_TYPES = names("fixed")


def layer_inputs(layer):
    """The layers a layer reads (-1: the network input), from the cfg reader:
    an [exit]'s branch and the layer after it read the branch point."""
    return list(layer.inputs)


def fold_bn(layer, arrays, transpose=False):
    """(W [M, K], b [M]) float64 with Darknet's BN folded in."""
    w = np.asarray(arrays["weights"], dtype=np.float64)
    m = layer.out_shape[0]
    if layer.type == "connected" and transpose:
        w = w.T
    w = w.reshape(m, -1).copy()
    b = np.asarray(arrays["biases"], dtype=np.float64).copy()
    if "scales" in arrays:
        s = np.asarray(arrays["scales"], np.float64) / (
            np.sqrt(np.asarray(arrays["rolling_variance"], np.float64)) + 1e-6)
        b = b - np.asarray(arrays["rolling_mean"], np.float64) * s
        w *= s[:, None]
    return w, b


def layer_weight_count(layer):
    """Number of weights of a convolutional/connected layer (what 16 bits doubles)."""
    return math.prod(next((shape for name, shape in layer.params if name == "weights"), (0,)))


def gemm_macs(layer):
    c, h, w = layer.in_shape
    m, oh, ow = layer.out_shape
    if layer.type == "connected":
        return c * h * w * m
    sec = layer.section
    size = sec.get_int("size", 1)
    return m * (c // sec.get_int("groups", 1)) * size * size * oh * ow


def head_inputs(layers):
    """Layers whose outputs the float heads read (or the last layer): where the
    network's accuracy is measured.  An [exit] is a head too (float, it reads
    integers) but measures nothing: its branch's [softmax] is the head there."""
    heads = [layer.inputs[0] for layer in layers
             if layer.type in HEAD_TYPES and layer.type != "exit"]
    return sorted(set(heads)) or [len(layers) - 1]
