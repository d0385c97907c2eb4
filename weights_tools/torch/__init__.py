"""PyTorch bridge: Darknet layers as PyTorch modules, export to and import from
Darknet .cfg/.weights. Needs the optional PyTorch extra: pip install '.[torch]'.

    from weights_tools.torch import Darknet, Conv, MaxPool, Connected, Softmax, export
    model = Darknet((1, 28, 28), [
        Conv(1, 16, 3, pad=True, batch_normalize=True, activation="leaky"),
        MaxPool(2, 2),
        Connected(16 * 14 * 14, 10, activation="linear"),
        Softmax(),
    ])
    cfg_text, weights_bytes = export(model)          # or export(nn.Sequential(...), (c, h, w))
    again = import_darknet(cfg_text, weights_bytes)  # a Darknet model, eval mode

Command lines: python -m weights_tools from-torch MODEL.pt -o PREFIX
               python -m weights_tools to-torch --cfg CFG --weights W -o MODEL.pt
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("weights_tools.torch needs PyTorch: pip install '.[torch]'") from e

from weights_tools.torch.binary import XnorConv, binarize_input, binarize_weights
from weights_tools.torch.dualpath import DualPath
from weights_tools.torch.fracconv import FracConv
from weights_tools.torch.export import export, save, to_darknet
from weights_tools.torch.importer import import_darknet
from weights_tools.torch.layers import (ACTIVATIONS, DARKNET_BN_EPS, AvgPool, BridgeError, Connected,
                                        Contrastive, Conv, Cost, Crop, Darknet, DarknetBatchNorm, DarknetLayer,
                                        Dropout, DtypeError, Exit, ExitPredictor, GaussianYolo,
                                        Detection, Local, LocalAvgPool,
                                        MaxPool, Region,
                                        Reorg, Route, Sam, ScaleChannels, ShapeMismatchError,
                                        Shortcut, Softmax, UnsupportedModuleError, Upsample, Yolo,
                                        activate)

__all__ = ["Darknet", "DarknetLayer", "DarknetBatchNorm", "Conv", "XnorConv", "DualPath", "FracConv", "Connected",
           "MaxPool", "AvgPool", "Route", "Shortcut", "ScaleChannels", "Upsample", "Dropout",
           "Softmax", "Yolo", "GaussianYolo", "Region", "Reorg", "Crop", "Cost", "Sam", "LocalAvgPool",
           "Local", "Detection",
           "Contrastive", "Exit", "ExitPredictor",
           "ACTIVATIONS", "DARKNET_BN_EPS", "activate", "binarize_input",
           "binarize_weights", "export", "save", "to_darknet", "import_darknet", "BridgeError",
           "ShapeMismatchError", "UnsupportedModuleError", "DtypeError"]
