"""High-level calls: an image in (path, mdfi.Image, PIL image or numpy array;
see mdfi.inputs), detections or class scores out."""
from __future__ import annotations

import dataclasses
import os
import threading
from typing import ClassVar, Dict, List, Optional, Tuple, Union

import numpy as np

from . import errors
from . import image as _image
from .inputs import ImageInput, to_image
from .network import Detection, ExitResult, Network

PathArg = Union[str, os.PathLike]   # a file name


def read_names(path) -> List[str]:
    """Class names, one per line (Darknet's .names files)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def resolve_model(model=None, cfg=None, weights=None, names=None, quiet=False):
    """(cfg, weights, names) paths from either a model name or explicit files."""
    if cfg or weights:
        if not (cfg and weights):
            raise ValueError("--cfg and --weights go together")
        return cfg, weights, names
    from . import models
    paths = models.fetch(model or "yolov3-tiny", quiet=quiet)
    return paths["cfg"], paths["weights"], names or paths.get("names")


def int8_model(model: str, weights) -> Tuple[str, str]:
    """(cfg, qweights) of the cached 8-bit form of a fetched model.  The runtime
    never quantizes (that is weights_tools, a tool): the files must have been
    made once, e.g. by `python -m mdfi.detect --int8`."""
    from . import models
    qcfg, qweights = models.int8_paths(weights)
    if not (os.path.exists(qcfg) and os.path.exists(qweights)):
        raise errors.ArgumentError(
            f"the int8 model of {model} is not made yet (it would be {qweights}); make it once "
            f"with `python -m mdfi.detect --int8 --model {model} --no-out IMAGE` (it needs "
            f"scikit-image for the calibration photos), then from_model(int8=True) loads it")
    return qcfg, qweights


class Detector:
    """A prepared detection network that can be run on many images.

    Detector(cfg, weights, names) loads files; Detector.from_model(name) returns
    a process-wide cached one.  run() may be called from several threads: the
    calls take turns (one network's buffers serve one image at a time)."""

    _cache: ClassVar[Dict[tuple, "Detector"]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cfg: PathArg, weights: PathArg,
                 names: Optional[PathArg] = None, threads: int = 1,
                 kernel: Optional[str] = None) -> None:
        self.net = Network(cfg, weights, threads=threads, kernel=kernel)
        self.names: Optional[List[str]] = read_names(names) if names else None
        self._run_lock = threading.Lock()

    @classmethod
    def from_model(cls, model: str = "yolov3-tiny", int8: bool = False, threads: int = 1,
                   kernel: Optional[str] = None) -> "Detector":
        """The Detector of a known model (mdfi.models), fetched and prepared on the
        first call and cached for the process: later calls with the same
        (model, int8, threads, kernel, $MDFI_WINOGRAD) return the same object.  int8=True loads
        the cached 8-bit model (see int8_model); it is never made here.  Closing
        a cached Detector drops it from the cache."""
        kernel = kernel or os.environ.get("MDFI_KERNEL") or None
        # the Network reads MDFI_WINOGRAD itself: a different value is another net
        key = (model, bool(int8), int(threads), kernel, os.environ.get("MDFI_WINOGRAD") or None)
        with cls._cache_lock:
            det = cls._cache.get(key)
            if det is not None and not det.closed:
                return det
            cfg, weights, names = resolve_model(model, quiet=True)
            if int8:
                cfg, weights = int8_model(model, weights)
            det = cls(cfg, weights, names, threads, kernel)
            cls._cache[key] = det
            return det

    @property
    def closed(self) -> bool:
        return self.net.closed

    def close(self) -> None:
        self.net.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, img: ImageInput, thresh: float = 0.5, nms: float = 0.45,
            channels: str = "rgb") -> Tuple[_image.Image, List[Detection]]:
        """img: a path, mdfi.Image, PIL image or numpy array (mdfi.inputs;
        channels: "rgb" or "bgr" for a 3-channel array) -> (Image, [Detection])."""
        img = to_image(img, channels)
        c, h, w = self.net.input_shape
        x = _image.letterbox(img, w, h)
        with self._run_lock:
            self.net.forward(x)
            dets = self.net.detect((img.width, img.height), thresh, nms, self.names)
        return img, dets


def detect(image: ImageInput, model: str = "yolov3-tiny", cfg: Optional[PathArg] = None,
           weights: Optional[PathArg] = None, names: Optional[PathArg] = None,
           thresh: float = 0.5, nms: float = 0.45, threads: int = 1,
           kernel: Optional[str] = None, channels: str = "rgb",
           int8: bool = False) -> List[Detection]:
    """Detections for one image (a path, mdfi.Image, PIL image or numpy array;
    channels: "rgb" (default) or "bgr" for a 3-channel uint8 array).  With a
    model name the network comes from Detector.from_model's cache, so repeated
    calls do not reload it; cfg/weights files are loaded for this call only."""
    if cfg or weights:
        if int8:
            raise errors.ArgumentError("int8=True takes a model name, not cfg/weights files")
        cfg, weights, names = resolve_model(model, cfg, weights, names)
        with Detector(cfg, weights, names, threads, kernel) as d:
            return d.run(image, thresh, nms, channels)[1]
    det = Detector.from_model(model, int8=int8, threads=threads, kernel=kernel)
    if names:
        return [_relabel(d, read_names(names)) for d in det.run(image, thresh, nms, channels)[1]]
    return det.run(image, thresh, nms, channels)[1]


def _relabel(d: Detection, names: List[str]) -> Detection:
    label = names[d.class_id] if d.class_id < len(names) else f"class_{d.class_id}"
    return dataclasses.replace(d, label=label)


def classify_result(image: ImageInput, cfg: PathArg,
                    weights: Optional[PathArg],
                    names: Optional[PathArg] = None, top: int = 5,
                    threads: int = 1, kernel: Optional[str] = None,
                    policy: Optional[str] = None, channels: str = "rgb"
                    ) -> Tuple[List[Tuple[int, str, float]], Optional[ExitResult]]:
    """(top, exit): [(class_id, label, prob)] of the top classes for one image
    (a path, mdfi.Image, PIL image or numpy array, as for detect), and where the
    forward ended (an ExitResult) for a network with [exit] layers (policy: its
    exit policy), else None.  A grey network (1 input channel) reads the mean
    of the letterboxed channels."""
    img = to_image(image, channels)
    with Network(cfg, weights, threads=threads, kernel=kernel, exit_policy=policy) as net:
        c, h, w = net.input_shape
        x = _image.letterbox(img, w, h)
        if c == 1:
            x = x.mean(axis=0, keepdims=True, dtype=np.float32)
        out = net.forward(x).ravel()
        exit_ = net.last_exit if net.exits else None
    labels = read_names(names) if names else None
    order = sorted(range(out.size), key=lambda i: -out[i])[:top]
    return [(i, labels[i] if labels and i < len(labels) else f"class_{i}", float(out[i]))
            for i in order], exit_


def classify(image: ImageInput, cfg: PathArg,
             weights: Optional[PathArg],
             names: Optional[PathArg] = None, top: int = 5, threads: int = 1,
             kernel: Optional[str] = None, policy: Optional[str] = None,
             channels: str = "rgb") -> List[Tuple[int, str, float]]:
    """[(class_id, label, prob)] of the top classes for one image (see classify_result)."""
    return classify_result(image, cfg, weights, names, top, threads, kernel, policy,
                           channels)[0]


def default_out_path(image_path, several):
    stem = os.path.splitext(os.path.basename(os.fspath(image_path)))[0]
    return f"predictions_{stem}.jpg" if several else "predictions.jpg"
