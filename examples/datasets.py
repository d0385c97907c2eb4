"""The example classifiers' data: the loaders live in the runtime now
(mdfi/datasets.py, which documents every dataset and its fixed split); this
module re-exports them so that train_classifier.py and its records keep their
names.  Same splits, the same arrays bit for bit."""

from mdfi.datasets import (CIFAR10_CLASSES, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR,  # noqa: F401
                           NAMES, Dataset, DatasetError, load, load_cifar10, load_digits,
                           load_fashion_mnist, load_mnist, mnist_raw, read_idx,
                           split_last_per_class, validation)
