"""MDFI: Micro Darknet For Inference — Darknet networks on a small C99 core.

The C extension is imported on first use of a name that needs it, so
`mdfi.models` and `mdfi.errors` work before (or without) a C build.
"""
import importlib

from .errors import (ArgumentError, CfgError, ImageError, MdfiError, MdfiIOError,
                     ModelFetchError, OutOfMemoryError, ShapeError, UnsupportedError,
                     WeightsError)

__version__ = "0.1.0"

_LAZY = {
    "Image": ("image", "Image"),
    "letterbox": ("image", "letterbox"),
    "load_image": ("image", "load"),
    "Detection": ("network", "Detection"),
    "LayerInfo": ("network", "LayerInfo"),
    "Network": ("network", "Network"),
    "classify": ("pipeline", "classify"),
    "detect": ("pipeline", "detect"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mdfi' has no attribute {name!r}")


__all__ = [
    "ArgumentError", "CfgError", "ImageError", "MdfiError", "MdfiIOError", "ModelFetchError",
    "OutOfMemoryError", "ShapeError", "UnsupportedError", "WeightsError", *_LAZY,
]
