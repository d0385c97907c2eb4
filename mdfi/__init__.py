"""MDFI: Micro Darknet For Inference — Darknet networks on a small C99 core.

The C extension is imported on first use of a name that needs it, so
`mdfi.models` and `mdfi.errors` work before (or without) a C build.
`mdfi.__version__` is the built core's MDFI_VERSION (csrc/include/mdfi.h), the
one place the version is written.
"""
import importlib

from .errors import (ArgumentError, CfgError, DatasetError, ImageError, MdfiError, MdfiIOError,
                     ModelFetchError, OutOfMemoryError, ShapeError, UnsupportedError,
                     WeightsError)

_LAZY = {
    "Image": ("image", "Image"),
    "letterbox": ("image", "letterbox"),
    "load_image": ("image", "load"),
    "Detection": ("network", "Detection"),
    "Detector": ("pipeline", "Detector"),
    "ExitInfo": ("network", "ExitInfo"),
    "ExitResult": ("network", "ExitResult"),
    "LayerInfo": ("network", "LayerInfo"),
    "Network": ("network", "Network"),
    "classify": ("pipeline", "classify"),
    "detect": ("pipeline", "detect"),
}


def __getattr__(name):
    if name == "__version__":   # one source: MDFI_VERSION in mdfi.h, as the C core was built
        from ._core import ffi, lib
        globals()[name] = ffi.string(lib.MDFI_VERSION).decode()
        return globals()[name]
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mdfi' has no attribute {name!r}")


__all__ = [
    "ArgumentError", "CfgError", "DatasetError", "ImageError", "MdfiError", "MdfiIOError", "ModelFetchError",
    "OutOfMemoryError", "ShapeError", "UnsupportedError", "WeightsError", *_LAZY,
]
