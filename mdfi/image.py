"""Images in Darknet's form: float32 CHW, values byte/255, 3 channels.

The C core decodes binary PNM and JPEG itself, JPEG to exactly the pixels
Darknet's stb_image gives (libjpeg, which Pillow uses, differs by a few
levels).  Only other formats (PNG, BMP, ...) go through Pillow.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from . import errors
from ._core import check_errbuf, ffi, lib

SNIFF_BYTES = 16


class Image:
    """A decoded image: `data` is float32 [3, h, w]; `decoder` says who decoded it."""

    def __init__(self, data: np.ndarray, decoder: str, path: Optional[str] = None) -> None:
        self.data = data
        self.decoder = decoder
        self.path = path

    @property
    def width(self) -> int:
        return self.data.shape[2]

    @property
    def height(self) -> int:
        return self.data.shape[1]


def _from_c(img):
    try:
        n = img.c * img.h * img.w
        arr = np.frombuffer(ffi.buffer(img.data, n * 4), dtype=np.float32).copy()
        return arr.reshape(img.c, img.h, img.w)
    finally:
        lib.mdfi_image_free(img)


def from_pixels(pixels: np.ndarray) -> Image:
    """uint8 HxW or HxWx{1,3} pixels -> Image (Darknet's byte/255.0)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8:
        raise errors.ImageError(f"pixels must be uint8, not {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise errors.ImageError(f"pixels must be HxW, HxWx1 or HxWx3, not {pixels.shape}")
    h, w, c = pixels.shape
    img = ffi.new("mdfi_image *")
    err = ffi.new("mdfi_errbuf *")
    check_errbuf(lib.mdfi_image_from_bytes(ffi.from_buffer("unsigned char[]", pixels), w, h, c,
                                           img, err), err)
    return Image(_from_c(img), "array")


def sniff(head):
    """The C decoder for a file starting with `head`: "mdfi-jpeg", "mdfi-pnm" or None."""
    name = lib.mdfi_image_sniff(head, len(head))
    return ffi.string(name).decode() if name != ffi.NULL else None


def load(path: Union[str, os.PathLike]) -> Image:
    """Reads an image file: PNM and JPEG by the C core, anything else by Pillow.

    `Image.decoder` says which: "mdfi-jpeg", "mdfi-pnm" or "pillow"."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise errors.MdfiIOError(f"{path}: cannot open: {exc.strerror}") from exc
    decoder = sniff(head)
    if decoder:
        img = ffi.new("mdfi_image *")
        err = ffi.new("mdfi_errbuf *")
        check_errbuf(lib.mdfi_image_read(path.encode(), img, err), err)
        return Image(_from_c(img), decoder, path)
    try:
        from PIL import Image as PILImage, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover
        raise errors.ImageError(f"{path}: not PNM or JPEG, and Pillow is not installed") \
            from exc
    try:
        with PILImage.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise errors.ImageError(f"{path}: cannot decode image: {exc}") from exc
    out = from_pixels(rgb)
    out.decoder, out.path = "pillow", path
    return out


def decode_pixels(data, name="<memory>"):
    """The C core's 8-bit pixels of a PNM or JPEG file's bytes: uint8 HxWxC (C = 1 or 3),
    before Darknet's float conversion."""
    data = bytes(data)
    px = ffi.new("unsigned char **")
    w, h, c = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
    err = ffi.new("mdfi_errbuf *")
    check_errbuf(lib.mdfi_image_decode_pixels(data, len(data), name.encode(), px, w, h, c, err),
                 err)
    try:
        n = w[0] * h[0] * c[0]
        return np.frombuffer(ffi.buffer(px[0], n), dtype=np.uint8).copy().reshape(h[0], w[0], c[0])
    finally:
        lib.mdfi_pixels_free(px[0])


def letterbox(image, net_w, net_h):
    """Darknet's letterbox_image: float32 [3, net_h, net_w]."""
    data = np.ascontiguousarray(image.data if isinstance(image, Image) else image,
                                dtype=np.float32)
    if data.ndim != 3 or data.shape[0] != 3:
        raise errors.ShapeError(f"letterbox takes a [3, h, w] image, not {data.shape}")
    img = ffi.new("mdfi_image *", {"w": data.shape[2], "h": data.shape[1], "c": 3,
                                   "data": ffi.cast("float *", ffi.from_buffer(data))})
    out = np.empty((3, net_h, net_w), dtype=np.float32)
    err = ffi.new("mdfi_errbuf *")
    check_errbuf(lib.mdfi_letterbox(img, net_w, net_h, ffi.cast("float *", ffi.from_buffer(out)),
                                    err), err)
    return out
