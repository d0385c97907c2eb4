"""Train the VGG-style Fashion-MNIST classifier that examples/prune_vgg.py prunes.

    python examples/train_vgg.py                       # Fashion-MNIST, 8 epochs
    python examples/train_vgg.py --dataset mnist --epochs 4 -o /tmp/mnist_vgg

The network: six 3x3 convolutions (32, 32, 64, 64, 128, 128 filters, Darknet
BN, leaky), a 2x2/2 maxpool after the second and the fourth, a global average
pool, a [connected] layer to the classes and [softmax]. The last 500 training
images of each class are held out as validation data (the pruner chooses on
them); the test split is only measured.  Writes OUT.cfg / OUT.weights and
OUT.json (the command, the PyTorch and MDFI test accuracy, the time).
"""

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import weights_tools  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.append(os.path.dirname(HERE))

import torch  # noqa: E402

import mdfi  # noqa: E402
from mdfi import datasets  # noqa: E402
from weights_tools.torch import AvgPool, Connected, Conv, Darknet, MaxPool, Softmax, save  # noqa: E402

WIDTHS = (32, 32, "M", 64, 64, "M", 128, 128)
VALIDATION_PER_CLASS = 500


def build_vgg(input_shape, classes, widths=WIDTHS):
    c = input_shape[0]
    layers = []
    for w in widths:
        if w == "M":
            layers.append(MaxPool(2, 2))
            continue
        layers.append(Conv(c, w, 3, activation="leaky", pad=True, batch_normalize=True))
        c = w
    layers += [AvgPool(), Connected(c, classes, activation="linear"), Softmax()]
    return Darknet(input_shape, layers)


def load(dataset, limit=None, path=None):
    """The dataset with its validation images carved out: the last 500 training
    images of each class (fewer for a small dataset: a tenth of the rarest class).
    path: as mdfi.datasets.load (the CIFAR-10 tarball, the Fashion-MNIST directory)."""
    data = datasets.load(dataset, path)
    per = min(VALIDATION_PER_CLASS, int(np.bincount(data.y_train).min()) // 10)
    data = datasets.validation(data, per)
    if limit:
        data.x_train, data.y_train = data.x_train[:limit], data.y_train[:limit]
    return data


def main(argv=None):
    sys.path.insert(0, HERE)
    from train_classifier import predict, train
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--bn-recalibrate", type=int, default=0, metavar="BATCHES",
                    help="re-estimate the BN statistics over this many training batches after "
                    "training (needed after short runs: Darknet's BN moves them 1 %% a step)")
    ap.add_argument("-o", "--output", default=os.path.join(HERE, "models", "fmnist_vgg"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load(args.dataset, args.train_limit)
    model = build_vgg(data.input_shape, len(data.classes))
    t0 = time.time()
    train(model, data, args.epochs, args.lr, shift=2, flip=args.dataset == "fashion-mnist",
          batch_size=args.batch_size, seed=args.seed)
    if args.bn_recalibrate:
        from weights_tools.prune.methods import recalibrate_bn
        from weights_tools.prune.tasks import LabelledTask
        recalibrate_bn(model, LabelledTask(data.x_train, data.y_train, data.x_val, data.y_val,
                                           min(args.batch_size, len(data.y_train))),
                       args.bn_recalibrate)
    seconds = time.time() - t0
    save(model, args.output)
    torch_acc = float((predict(model, data.x_test) == data.y_test).mean())
    val_acc = float((predict(model, data.x_val) == data.y_val).mean())
    with mdfi.Network(args.output + ".cfg", args.output + ".weights") as net:
        pred = np.array([int(np.argmax(net.forward(x))) for x in data.x_test])
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + (argv or sys.argv[1:])),
        "cfg": os.path.basename(args.output) + ".cfg",
        "weights": os.path.basename(args.output) + ".weights", "variant": "float",
        "dataset": args.dataset, "split": data.split, "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "seed": args.seed, "train_seconds": round(seconds, 1),
        "validation_accuracy": val_acc,
        "pytorch": {"n": len(data.y_test), "accuracy": torch_acc},
        "mdfi_float": {"n": len(data.y_test), "accuracy": float((pred == data.y_test).mean()),
                       "agree_with_pytorch": float((pred == predict(model, data.x_test)).mean())},
    }
    with open(args.output + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
