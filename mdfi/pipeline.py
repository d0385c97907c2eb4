"""High-level calls: image file in, detections or class scores out."""
import os

import numpy as np

from . import image as _image
from .network import Network


def read_names(path):
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


class Detector:
    """A prepared detection network that can be run on many images."""

    def __init__(self, cfg, weights, names=None, threads=1, kernel=None):
        self.net = Network(cfg, weights, threads=threads, kernel=kernel)
        self.names = read_names(names) if names else None

    def close(self):
        self.net.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, img, thresh=0.5, nms=0.45):
        """img: a path or mdfi.Image -> (Image, [Detection])."""
        if not isinstance(img, _image.Image):
            img = _image.load(img)
        c, h, w = self.net.input_shape
        self.net.forward(_image.letterbox(img, w, h))
        return img, self.net.detect((img.width, img.height), thresh, nms, self.names)


def detect(image, model="yolov3-tiny", cfg=None, weights=None, names=None, thresh=0.5,
           nms=0.45, threads=1, kernel=None):
    """Detections for one image (path or mdfi.Image)."""
    cfg, weights, names = resolve_model(model, cfg, weights, names, quiet=True)
    with Detector(cfg, weights, names, threads, kernel) as d:
        return d.run(image, thresh, nms)[1]


def classify_result(image, cfg, weights, names=None, top=5, threads=1, kernel=None,
                    policy=None):
    """(top, exit): [(class_id, label, prob)] of the top classes for one image
    (path or mdfi.Image), and where the forward ended (an ExitResult) for a
    network with [exit] layers (policy: its exit policy), else None.  A grey
    network (1 input channel) reads the mean of the letterboxed channels."""
    with Network(cfg, weights, threads=threads, kernel=kernel, exit_policy=policy) as net:
        img = image if isinstance(image, _image.Image) else _image.load(image)
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


def classify(image, cfg, weights, names=None, top=5, threads=1, kernel=None, policy=None):
    """[(class_id, label, prob)] of the top classes for one image."""
    return classify_result(image, cfg, weights, names, top, threads, kernel, policy)[0]


def default_out_path(image_path, several):
    stem = os.path.splitext(os.path.basename(os.fspath(image_path)))[0]
    return f"predictions_{stem}.jpg" if several else "predictions.jpg"
