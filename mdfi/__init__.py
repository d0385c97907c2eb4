"""MDFI: Micro Darknet For Inference — Darknet networks on a small C99 core."""
from .errors import (ArgumentError, CfgError, ImageError, MdfiError, MdfiIOError,
                     ModelFetchError, OutOfMemoryError, ShapeError, UnsupportedError,
                     WeightsError)
from .image import Image, letterbox, load as load_image
from .network import Detection, LayerInfo, Network
from .pipeline import classify, detect

__version__ = "0.1.0"
__all__ = [
    "ArgumentError", "CfgError", "Detection", "Image", "ImageError", "LayerInfo",
    "MdfiError", "MdfiIOError", "ModelFetchError", "Network", "OutOfMemoryError",
    "ShapeError", "UnsupportedError", "WeightsError", "classify", "detect", "letterbox",
    "load_image",
]
