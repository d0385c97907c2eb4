"""Pure-numpy tools for Darknet .cfg and .weights files.

    sections = parse_cfg("yolov3-tiny.cfg")
    layers = infer_layers(sections)          # shapes and weight arrays per layer
    w = read_weights(sections, "yolov3-tiny.weights")
    assert write_weights(sections, w) == open("yolov3-tiny.weights", "rb").read()

Command line: python -m weights_tools info --cfg CFG [--weights WEIGHTS]
"""

from weights_tools.darknet_cfg import (CfgError, Layer, Section, infer_layers, layers_of,
                                       net_shape, parse_cfg, write_cfg)
from weights_tools.darknet_weights import (DarknetWeights, WeightsError, check_size, expected_size,
                                           read_header, read_weights, seen_size, write_weights)

__all__ = ["CfgError", "WeightsError", "Section", "Layer", "DarknetWeights", "parse_cfg",
           "write_cfg", "net_shape", "infer_layers", "layers_of", "read_weights", "write_weights",
           "read_header", "check_size", "expected_size", "seen_size"]
