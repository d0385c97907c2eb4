"""Calibration: run the float engine over images and record every layer's range.

For each layer output (and the network input) it keeps the exact maximum
|value| and a fixed-size random sample of the values, enough to compare
fractional lengths by their quantization error.  Images go through Darknet's
letterbox exactly as detection does.  Classifiers calibrate on ready inputs
instead: a .npy file of one input (C x H x W) or of a batch (N x C x H x W,
float32, e.g. a slice of the training set).  A network with [exit] layers
runs every branch (policy "all"), so every branch layer is calibrated.
"""

import dataclasses
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".bmp", ".gif", ".tif",
                    ".tiff", ".webp")


class CalibrationError(ValueError):
    """No usable calibration images, or one that cannot be read."""


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """Input `index` of a .npy batch (N x C x H x W), or of `array` when the
    batch is in memory (a dataset's training split; `path` names it)."""
    path: str
    index: int
    array: np.ndarray = dataclasses.field(default=None, compare=False, repr=False)

    def __str__(self):
        return "%s[%d]" % (os.path.basename(self.path), self.index)


def _npy_items(path):
    """A .npy file's inputs: [path] for one input (C x H x W), a BatchItem per
    input of a batch (N x C x H x W)."""
    try:
        a = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise CalibrationError("%s: cannot read: %s" % (path, exc)) from None
    if a.ndim == 4:
        if not a.shape[0]:
            raise CalibrationError("%s: an empty batch %s" % (path, a.shape))
        return [BatchItem(path, k) for k in range(a.shape[0])]
    return [path]


def find_images(paths):
    """Image files named by `paths` (files or directories, not recursive), sorted per dir.

    .npy files are taken as already letterboxed float32 inputs: [c, h, w] one
    input, [n, c, h, w] a batch of n (one BatchItem each)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for p in paths:
        if isinstance(p, BatchItem):
            found.append(p)
            continue
        p = os.fspath(p)
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p)
                           if n.lower().endswith(IMAGE_EXTENSIONS + (".npy",)))
            for n in names:
                f = os.path.join(p, n)
                if os.path.isfile(f):
                    found += _npy_items(f) if n.lower().endswith(".npy") else [f]
        elif os.path.exists(p):
            found += _npy_items(p) if p.lower().endswith(".npy") else [p]
        else:
            raise CalibrationError("calibration image %s does not exist" % p)
    if not found:
        raise CalibrationError("no calibration images in %s (looked for %s and .npy)"
                               % (", ".join(map(os.fspath, paths)) or "(nothing given)",
                                  " ".join(IMAGE_EXTENSIONS)))
    return found


def load_input(path, shape):
    """A network input (float32 [c, h, w]) from an image file or an .npy input."""
    from mdfi import errors
    from mdfi.image import letterbox, load
    c, h, w = shape
    if isinstance(path, BatchItem):
        x = path.array if path.array is not None else np.load(path.path, mmap_mode="r")
        if x.shape[1:] != tuple(shape):
            raise CalibrationError("%s: inputs of shape %s are not the network's %s"
                                   % (path.path, x.shape[1:], tuple(shape)))
        return np.array(x[path.index], dtype=np.float32)
    if path.lower().endswith(".npy"):
        try:
            x = np.load(path).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise CalibrationError("%s: cannot read: %s" % (path, exc)) from None
        if x.shape != tuple(shape):
            raise CalibrationError("%s: input shape %s is not the network's %s"
                                   % (path, x.shape, tuple(shape)))
        return x
    try:
        img = load(path)
    except errors.MdfiError as exc:
        raise CalibrationError("calibration image %s is unreadable: %s" % (path, exc)) from None
    x = letterbox(img, w, h)
    if c != 3:
        raise CalibrationError("images give 3 channels but the network takes %d; pass .npy "
                               "inputs" % c)
    return x


@dataclasses.dataclass
class TensorStats:
    max_abs: float = 0.0
    samples: list = dataclasses.field(default_factory=list)
    count: int = 0
    nonfinite: int = 0

    def add(self, x, n_keep, rng):
        x = np.asarray(x, dtype=np.float32).ravel()
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite += int((~finite).sum())
            x = x[finite]
        if x.size == 0:
            return
        self.max_abs = max(self.max_abs, float(np.abs(x).max()))
        self.count += x.size
        if x.size <= n_keep:
            self.samples.append(x.copy())
        else:
            self.samples.append(x[rng.integers(0, x.size, n_keep)])

    def sample(self):
        return np.concatenate(self.samples) if self.samples else np.zeros(0, np.float32)


@dataclasses.dataclass
class Calibration:
    images: list
    input: TensorStats
    layers: list            # TensorStats per layer
    pre_means: dict = dataclasses.field(default_factory=dict)
    # layer -> per-channel mean of the pre-activation values (leaky layers,
    # whose activation can be inverted), over the first mean_images images
    pre_samples: list = dataclasses.field(default_factory=list)
    # per image of those, {layer: float32 [M, positions]}: leaky and linear
    # layers' pre-activations at gain_positions (with pre_samples=True)


GAIN_POSITIONS = 256   # positions per layer and image the gain correction compares


def gain_positions(n, layer):
    """The (sorted) output positions of a layer the gain correction samples."""
    if n <= GAIN_POSITIONS:
        return np.arange(n)
    return np.sort(np.random.default_rng(layer).choice(n, GAIN_POSITIONS, replace=False))


def pre_activation(y, act):
    """The value before a leaky or linear activation, from its output."""
    if act == "leaky":
        return np.where(y >= 0, y, y * np.float32(10))
    return y


def dataset_inputs(name, count=500, path=None):
    """`count` inputs of mdfi.datasets' dataset `name`, from its training split
    only (the test split is never calibrated on), spread evenly over it: a
    BatchItem each.  path: the dataset's files where the loader needs them."""
    from mdfi import datasets
    try:
        data = datasets.load(name, path)
    except datasets.DatasetError as exc:
        raise CalibrationError("--calib-dataset %s: %s" % (name, exc)) from None
    n = len(data.x_train)
    if count < 1:
        raise CalibrationError("--calib-count must be at least 1, not %d" % count)
    picked = np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(np.int64))
    x = np.ascontiguousarray(data.x_train[picked], dtype=np.float32)
    return [BatchItem("%s-train" % name, k, x) for k in range(len(x))]


def input_name(path):
    """How progress lines name an input: a file's base name, or batch.npy[k]."""
    return str(path) if isinstance(path, BatchItem) else os.path.basename(path)


def all_layers_network(cfg, weights, **options):
    """An mdfi.Network (float or quantized) in which every layer runs: a
    network with [exit] layers gets the policy "all" (every branch and
    predictor runs, no input leaves early), so no layer's output is skipped
    or left from an earlier input."""
    import mdfi
    net = mdfi.Network(cfg, weights, **options)
    if net.exits:
        net.exit_policy = "all"
    return net


def _progress(msg, quiet):
    if not quiet:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def calibrate(cfg, weights, paths, samples=200_000, threads=1, quiet=False, seed=0,
              activations=None, mean_images=None, pre_samples=False):
    """Runs the float network on every image and returns a Calibration.
    activations: {layer: activation} of the layers whose pre-activation means
    (leaky) and, with pre_samples, samples (leaky and linear) to record, over
    the first mean_images images (all if None)."""
    images = find_images(paths)
    rng = np.random.default_rng(seed)
    with all_layers_network(cfg, weights, threads=threads, keep_outputs=True) as net:
        n = len(net.layers)
        stats = [TensorStats() for _ in range(n)]
        instats = TensorStats()
        per_image = max(1000, samples // len(images))
        sums, pre_kept = {}, []
        n_mean = len(images) if mean_images is None else min(mean_images, len(images))
        for k, path in enumerate(images):
            _progress("calibrating %d/%d: %s" % (k + 1, len(images), input_name(path)), quiet)
            x = load_input(path, net.input_shape)
            net.forward(x)
            instats.add(x, per_image, rng)
            picked = {}
            for i in range(n):
                y = net.layer_output(i)
                stats[i].add(y, per_image, rng)
                act = activations.get(i) if activations and k < n_mean else None
                if act not in ("leaky", "linear"):
                    continue
                pre = pre_activation(y, act)
                pre = pre.reshape(pre.shape[0], -1)
                if act == "leaky":
                    sums[i] = sums.get(i, 0) + pre.astype(np.float64).mean(axis=1)
                if pre_samples:
                    picked[i] = pre[:, gain_positions(pre.shape[1], i)].astype(np.float32)
            if pre_samples and k < n_mean:
                pre_kept.append(picked)
    pre_means = {i: s / n_mean for i, s in sums.items()}
    return Calibration(images, instats, stats, pre_means, pre_kept)
