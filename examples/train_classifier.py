"""Train a small Darknet-style CNN in PyTorch on real data, export it, run it in MDFI.

    python examples/train_classifier.py --dataset mnist                 # float CNN
    python examples/train_classifier.py --dataset mnist --xnor          # XNOR convs except the first
    python examples/train_classifier.py --dataset digits
    python examples/train_classifier.py --dataset cifar10 --cifar ~/cifar-10-python.tar.gz

The network (weights_tools.torch modules, so it exports without guessing):
    3x3 convs of 32, 64, 128 filters, each with Darknet BN and leaky, each
    followed by a 2x2/2 maxpool while the map is larger than 4x4; dropout;
    [connected] to the classes; [softmax]. With --xnor every conv but the
    first is an xnor=1 conv (binary inputs and weights, straight-through
    gradients).

After training it reports the test accuracy of the PyTorch model, writes
OUT.cfg / OUT.weights (Darknet files) and OUT.json (the results), and runs
the exported files in MDFI: float, and int8 through `weights_tools quantize`
when that path is available. It reports how many test predictions MDFI and
PyTorch agree on. A path MDFI cannot run yet (xnor=1 before the binary
kernels, int8 before the fixed-point engine) is reported as skipped with the
reason.
"""

import argparse
import importlib.util
import json
import math
import os
import shlex
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import weights_tools  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.append(os.path.dirname(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from weights_tools.torch import (Connected, Conv, Darknet, Dropout, MaxPool, Softmax,  # noqa: E402
                                 XnorConv, import_darknet, save)


def _local(name):
    """examples/NAME.py as a module (by path: `datasets` is also a PyPI name)."""
    key = "mdfi_examples_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(HERE, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


datasets = _local("datasets")

DEFAULTS = {  # epochs, learning rate, augmentation shift (pixels), horizontal flips
    "mnist": (15, 3e-3, 2, False),
    "digits": (40, 3e-3, 1, False),
    "cifar10": (10, 3e-3, 4, True),
}


def build_model(input_shape, classes, xnor=False, widths=(32, 64, 128), dropout=0.2):
    c, h, w = input_shape
    layers = []
    for i, width in enumerate(widths):
        cls = XnorConv if xnor and i > 0 else Conv
        layers.append(cls(c, width, 3, activation="leaky", pad=True, batch_normalize=True))
        c = width
        if h > 4 and w > 4:
            layers.append(MaxPool(2, 2))
            h, w = (h + 1) // 2, (w + 1) // 2
    if dropout:
        layers.append(Dropout(dropout))
    layers += [Connected(c * h * w, classes, activation="linear"), Softmax()]
    return Darknet(input_shape, layers)


def augment(x, shift, flip, gen):
    """Random translation by up to `shift` pixels (zero fill) and optional flips."""
    n, _, h, w = x.shape
    if shift:
        padded = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        out = torch.empty_like(x)
        for oy in range(2 * shift + 1):  # one slice per offset, not per image
            for ox in range(2 * shift + 1):
                sel = (dy == oy) & (dx == ox)
                if sel.any():
                    out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
        x = out
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)
    return x


def logits(model, x):
    return model(x, outputs=[-2])[0].flatten(1)  # the [connected] layer, before the softmax


def predict(model, x, batch=500):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i:i + batch])).flatten(1).argmax(1).numpy())
    return np.concatenate(out)


def train(model, data, epochs, lr, shift, flip, batch_size=64, seed=0, max_steps=None, log=print):
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    steps_per_epoch = math.ceil(len(x_all) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1))
    step, t0 = 0, time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        seen, loss_sum, correct = 0, 0.0, 0
        for i in range(0, len(order), batch_size):
            if step >= total:
                break
            idx = order[i:i + batch_size]
            x, y = augment(x_all[idx], shift, flip, gen), y_all[idx]
            z = logits(model, x)
            loss = F.cross_entropy(z, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((z.argmax(1) == y).sum())
        if seen:
            log("epoch %d/%d: loss %.4f, train accuracy %.2f%% (%.0f s)"
                % (epoch + 1, epochs, loss_sum / seen, 100.0 * correct / seen, time.time() - t0))
        if step >= total:
            break
    model.eval()
    return step


def mdfi_predictions(cfg, weights, x):
    """Class predictions of MDFI on every image, or raise mdfi.MdfiError."""
    import mdfi
    with mdfi.Network(cfg, weights) as net:
        return np.array([int(np.argmax(net.forward(img))) for img in x])


def _scores(pred, labels, reference):
    return {"accuracy": float(np.mean(pred == labels)),
            "agreement_with_pytorch": float(np.mean(pred == reference)),
            "n": int(len(labels))}


def run_float(cfg, weights, data, torch_pred):
    import mdfi
    try:
        pred = mdfi_predictions(cfg, weights, data.x_test)
    except mdfi.UnsupportedError as e:
        return {"skipped": "MDFI cannot run this network yet: %s" % e}
    return _scores(pred, data.y_test, torch_pred)


def run_int8(cfg, weights, data, torch_pred, n_calib=200):
    """int8 through weights_tools quantize + MDFI, where both exist."""
    import mdfi
    try:
        from weights_tools.quantize import quantize
    except ImportError as e:
        return {"skipped": "no fixed-point tools in this checkout (%s)" % e}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(min(n_calib, len(data.x_train))):
            np.save(os.path.join(tmp, "calib%04d.npy" % i), data.x_train[i])
        out = os.path.join(tmp, "q")
        try:
            q = quantize(cfg, weights, tmp, out, bits=8, quiet=True, report=False,
                         check_images=False)
            pred = mdfi_predictions(q["cfg"], q["qweights"], data.x_test)
        except mdfi.MdfiError as e:
            return {"skipped": "MDFI cannot run the int8 network yet: %s" % e}
        except ValueError as e:  # CfgError, CalibrationError, ...: e.g. xnor layers
            return {"skipped": "weights_tools quantize: %s" % e}
    return _scores(pred, data.y_test, torch_pred)


def remeasure(out, data, args, argv, log):
    """MDFI's results for the files at OUT, against the predictions of the
    same files imported into PyTorch; the training record is kept."""
    with open(out + ".json") as f:
        results = json.load(f)
    cfg, weights = out + ".cfg", out + ".weights"
    torch_pred = predict(import_darknet(cfg, weights), data.x_test)
    measure_mdfi(results, cfg, weights, data, torch_pred, args.no_int8, log)
    results["remeasure_command"] = "python examples/train_classifier.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    write_record(out, results)
    return 0


def measure_mdfi(results, cfg, weights, data, torch_pred, no_int8, log):
    """results["mdfi_float"] and ["mdfi_int8"]: the exported files run in MDFI."""
    results["mdfi_float"] = run_float(cfg, weights, data, torch_pred)
    results["mdfi_int8"] = ({"skipped": "--no-int8"} if no_int8
                            else run_int8(cfg, weights, data, torch_pred))
    for key in ("mdfi_float", "mdfi_int8"):
        r = results[key]
        if "skipped" in r:
            log("%s: skipped (%s)" % (key, r["skipped"]))
        else:
            log("%s: test accuracy %.2f%%, same prediction as PyTorch on %.2f%% of the images"
                % (key, 100 * r["accuracy"], 100 * r["agreement_with_pytorch"]))


def write_record(out, results):
    with open(out + ".json", "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DEFAULTS),
                    help="default: mnist, or cifar10 when --cifar is given")
    ap.add_argument("--cifar", metavar="PATH", help="cifar-10-python.tar.gz (for --dataset cifar10; "
                    "given alone it selects cifar10)")
    ap.add_argument("--xnor", action="store_true", help="xnor convolutions except the first layer")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke tests)")
    ap.add_argument("--train-limit", type=int, help="use only the first N training images")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-o", "--output", metavar="PREFIX",
                    help="writes PREFIX.cfg, PREFIX.weights, PREFIX.json "
                         "(default examples/models/DATASET_float or _xnor)")
    ap.add_argument("--no-mdfi", action="store_true", help="only train and export")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 run")
    ap.add_argument("--remeasure", action="store_true",
                    help="no training: run MDFI again on the model already at OUT and update "
                         "its mdfi_float / mdfi_int8 results in OUT.json (the rest is kept)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.dataset is None:
        args.dataset = "cifar10" if args.cifar else "mnist"
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    try:
        data = datasets.load(args.dataset, args.cifar)
    except datasets.DatasetError as e:
        print("train_classifier: error: %s" % e, file=sys.stderr)
        return 2
    if args.train_limit:
        data.x_train, data.y_train = data.x_train[:args.train_limit], data.y_train[:args.train_limit]
    epochs, lr, shift, flip = DEFAULTS[args.dataset]
    epochs = args.epochs or epochs
    lr = args.lr or lr
    variant = "xnor" if args.xnor else "float"
    out = args.output or os.path.join(HERE, "models", "%s_%s" % (args.dataset, variant))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    log("%s: %d train / %d test images %s; split: %s"
        % (args.dataset, len(data.y_train), len(data.y_test), data.input_shape, data.split))

    if args.remeasure:
        return remeasure(out, data, args, argv, log)
    model = build_model(data.input_shape, len(data.classes), xnor=args.xnor)
    t0 = time.time()
    steps = train(model, data, epochs, lr, shift, flip, args.batch_size, args.seed, args.max_steps, log)
    train_seconds = time.time() - t0
    torch_pred = predict(model, data.x_test)
    torch_acc = float(np.mean(torch_pred == data.y_test))
    log("PyTorch test accuracy: %.2f%% (%d images)" % (100 * torch_acc, len(data.y_test)))

    cfg, weights = save(model, out)
    # the files, read back, are the model: same predictions from the imported copy
    again = predict(import_darknet(cfg, weights), data.x_test)
    results = {
        "dataset": args.dataset, "variant": variant, "split": data.split,
        "input_shape": list(data.input_shape), "classes": data.classes,
        "epochs": epochs, "steps": steps, "lr": lr, "batch_size": args.batch_size, "seed": args.seed,
        "train_images": int(len(data.y_train)), "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "command": "python examples/train_classifier.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "cfg": os.path.basename(cfg), "weights": os.path.basename(weights),
        "weights_bytes": os.path.getsize(weights),
        "pytorch": {"accuracy": torch_acc, "n": int(len(data.y_test)),
                    "imported_files_agree": float(np.mean(again == torch_pred))},
    }
    if not args.no_mdfi:
        measure_mdfi(results, cfg, weights, data, torch_pred, args.no_int8, log)
    write_record(out, results)
    log("wrote %s, %s (%d bytes) and %s" % (cfg, weights, results["weights_bytes"], out + ".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
