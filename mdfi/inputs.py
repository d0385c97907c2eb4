"""What the Python calls accept as an image, turned into an mdfi.Image.

    a path (str or os.PathLike)   read by mdfi.image.load (JPEG/PNM by the C core)
    an mdfi.Image                 used as it is
    a PIL image, any mode         converted to RGB (Pillow is never imported here:
                                  a PIL object is recognised by its attributes)
    a numpy array                 uint8 H x W x 3 (channels="rgb" or "bgr"),
                                  uint8 H x W x 1 or H x W (grey),
                                  float32/float64 3 x H x W (Darknet's CHW, byte/255)

Anything else, or an array of the wrong dtype, rank or channel count, or an
empty one, raises ImageError saying what was wrong.
"""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from . import errors
from .image import Image, from_pixels, load

CHANNEL_ORDERS = ("rgb", "bgr")

# what the public calls' `image` argument may be (PIL images and arrays are Any
# here so that neither Pillow nor numpy's typing is needed to read the hint)
ImageInput = Union[str, os.PathLike, Image, np.ndarray, Any]


def is_pil_image(obj: Any) -> bool:
    """True for a PIL.Image.Image, told by duck typing so that PIL is not imported."""
    return (type(obj).__module__.split(".")[0] == "PIL" and hasattr(obj, "mode")
            and hasattr(obj, "convert") and hasattr(obj, "size"))


def from_array(arr: np.ndarray, channels: str = "rgb") -> Image:
    """A numpy array (see the module's table) -> Image."""
    if arr.size == 0:
        raise errors.ImageError(f"the image array is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
            return from_pixels(arr)
        if arr.ndim != 3:
            raise errors.ImageError(f"a uint8 image array must be H x W x 3 (or H x W grey), "
                                    f"not {arr.ndim}-dimensional {arr.shape}")
        if arr.shape[2] != 3:
            raise errors.ImageError(f"a uint8 image array must have 3 channels (or 1) in its "
                                    f"last axis, not {arr.shape[2]} (shape {arr.shape})")
        return from_pixels(arr[:, :, ::-1] if channels == "bgr" else arr)
    if arr.dtype in (np.float32, np.float64):
        if arr.ndim != 3 or arr.shape[0] != 3:
            raise errors.ImageError(f"a float image array must be 3 x H x W (Darknet's CHW, "
                                    f"values 0..1), not shape {arr.shape}")
        if channels == "bgr":
            arr = arr[::-1]
        return Image(np.ascontiguousarray(arr, dtype=np.float32), "array")
    raise errors.ImageError(f"an image array must be uint8 (H x W x 3) or float32 "
                            f"(3 x H x W), not {arr.dtype}")


def to_image(image: ImageInput, channels: str = "rgb") -> Image:
    """Any accepted input -> Image.  channels: the order of a 3-channel array's
    channels, "rgb" (the default; Pillow, scikit-image, imageio) or "bgr"
    (OpenCV); it applies to numpy arrays only."""
    if channels not in CHANNEL_ORDERS:
        raise errors.ArgumentError(f"channels={channels!r}: use 'rgb' or 'bgr'")
    if isinstance(image, Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load(image)
    if isinstance(image, np.ndarray):
        return from_array(image, channels)
    if is_pil_image(image):
        out = from_pixels(np.asarray(image.convert("RGB")))
        out.decoder = "pil"
        return out
    raise errors.ImageError(f"cannot use a {type(image).__module__}.{type(image).__qualname__} "
                            f"as an image: give a path, an mdfi.Image, a PIL image or a numpy "
                            f"array")
