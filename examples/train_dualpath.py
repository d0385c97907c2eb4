"""Train the dual-path binary classifier and its baselines (docs/dualpath.md).

    python examples/train_dualpath.py --variant dual1.5     # the 1.5-bit dual-path network
    python examples/train_dualpath.py --variant dual1       # 1-bit activations
    python examples/train_dualpath.py --variant float       # the float network of the same shape
    python examples/train_dualpath.py --variant xnor        # XNOR-Net style (Darknet xnor=1)
    python examples/train_dualpath.py --variant dual1.5 --dataset mnist --epochs 10
    python examples/train_dualpath.py --dataset cifar10 --data ~/cifar-10-python.tar.gz
    python examples/train_dualpath.py --init-from examples/models/fmnist_dp_float \
        --teacher examples/models/fmnist_dp_float      # seeded by the float network

One shape for all four: a float 3x3 stem (BN) on the image, a 2x2 max pool,
two 3x3 layers of WIDTHS[0] filters, a max pool, two of WIDTHS[1], a global
average pool, a float [connected] to the classes and [softmax].

    dual*   the four body layers are [dualpath] (the stem's output is rounded
            by the first of them: the body carries integers)
    float   each body layer is a float conv (BN, linear) + [shortcut] to its
            input (channels repeated by a [route] where they double) + leaky:
            the same convolutions and shortcuts, in float
    xnor    each body layer is Darknet's xnor=1 conv (BN, leaky), no shortcuts:
            what MDFI's binary path ran before the dual-path layers

Validation = the last 500 training images of each class; the test split is
only measured.  Every epoch writes OUT.pt (resume with --resume).  At the end:
BN statistics re-estimated over --bn-recalibrate training batches, OUT.cfg /
OUT.weights, and OUT.json with the command, the split and the accuracies of
PyTorch and MDFI (and how many test predictions they agree on).
"""

import argparse
import json
import math
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
import torch.nn.functional as F  # noqa: E402

import mdfi  # noqa: E402
from weights_tools.torch import (AvgPool, Connected, Conv, Darknet, DualPath, MaxPool, Route,  # noqa: E402
                                 Shortcut, Softmax, XnorConv, import_darknet, save)
from weights_tools.torch.dualpath import constrain  # noqa: E402

WIDTHS = (64, 128)
STEM = 32
VARIANTS = ("dual1.5", "dual1", "float", "xnor")
FLIPS = ("fashion-mnist", "cifar10")   # datasets whose mirror images are images of the same class
BN_MOMENTUM = 0.1   # while training (Darknet's 0.01 lags a short run); recalibrated per epoch


def build(variant, input_shape, classes, widths=WIDTHS, stem=STEM):
    if variant not in VARIANTS:
        raise ValueError("variant must be one of %s" % (VARIANTS,))
    first = Conv(input_shape[0], stem, 3, pad=True, batch_normalize=True,
                 activation="leaky" if variant == "xnor" else "linear")
    if variant.startswith("dual"):
        with torch.no_grad():
            first.bn.weight.fill_(4.0)   # the stream's first integers: a few levels, not +-1
    layers, c = [first, MaxPool(2, 2)], stem
    for s, w in enumerate(widths):
        if s:
            layers.append(MaxPool(2, 2))
        for _ in range(2):
            if variant.startswith("dual"):
                layers.append(DualPath(c, w, 3, abits=1.5 if variant == "dual1.5" else 1))
            elif variant == "xnor":
                layers.append(XnorConv(c, w, 3, pad=True, batch_normalize=True, activation="leaky"))
            else:
                block_in = len(layers) - 1
                layers.append(Conv(c, w, 3, pad=True, batch_normalize=True, activation="linear"))
                if w != c:
                    layers.append(Route([block_in] * (w // c)))
                    layers.append(Shortcut(-2, activation="leaky"))
                else:
                    layers.append(Shortcut(-2, activation="leaky"))
            c = w
    layers += [AvgPool(), Connected(c, classes, activation="linear"), Softmax()]
    return Darknet(input_shape, layers)


def adopt_float(model, start, data):
    """--init-from: a model of the same kind and shape is loaded as it is; a
    float one of the same shape (--variant float) seeds a dual-path model (the
    real-to-binary start of Bi-Real Net and Martinez et al.): its stem and
    classifier, its body BN scales and biases, and each body convolution's
    weights as the latent weights, scaled to the mean magnitude of a fresh
    layer's (0.025) so that their signs are the float filters' and flip as
    easily.  g scales the stem's BN scale and bias so that their RMS scale is a
    fresh stem's 4 (the stream's first integers); each layer's range is g and
    the classifier's weights are divided by g.  The thresholds start fresh, and
    the seeded model's BN statistics are re-estimated.  Returns the share of 512
    training images on which the two models' top classes agree."""
    mine = [m for m in model.layers if isinstance(m, (Conv, DualPath))]
    if not any(isinstance(m, DualPath) for m in model.layers) or any(
            isinstance(m, DualPath) for m in start.layers):
        model.load_state_dict(start.state_dict())
    else:
        theirs = [m for m in start.layers if isinstance(m, Conv)]
        fc_mine = [m for m in model.layers if isinstance(m, Connected)]
        fc_theirs = [m for m in start.layers if isinstance(m, Connected)]
        if (len(mine) != len(theirs) or len(fc_mine) != 1 or len(fc_theirs) != 1 or
                any(a.weight.shape != b.weight.shape for a, b in zip(mine, theirs)) or
                fc_mine[0].weight.shape != fc_theirs[0].weight.shape):
            raise ValueError("its convolutions or classifier differ from this network's")
        with torch.no_grad():
            stem, fstem = mine[0], theirs[0]
            g = 4.0 / float(fstem.bn.weight.pow(2).mean().sqrt())
            stem.load_state_dict(fstem.state_dict())
            stem.bn.weight.mul_(g)
            stem.bias.mul_(g)
            for a, b in zip(mine[1:], theirs[1:]):
                a.weight.copy_(b.weight * (0.025 / float(b.weight.abs().mean())))
                a.bn.weight.copy_(b.bn.weight)
                a.bias.copy_(b.bias)
                a.range.fill_(g)
            fc_mine[0].weight.copy_(fc_theirs[0].weight / g)
            fc_mine[0].bias.copy_(fc_theirs[0].bias)
        recalibrate_bn(model, data.x_train, 20, 128, torch.Generator().manual_seed(0))
    x = data.x_train[:512]
    return float((predict(model, x) == predict(start, x)).mean())


def logits(model, x):
    return model(x, outputs=[-2])[0].flatten(1)   # the [connected] layer, before the softmax


def device_of(model):
    return next(model.parameters()).device


def predict(model, x, batch=500):
    model.eval()
    out, dev = [], device_of(model)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(logits(model, torch.from_numpy(x[i:i + batch]).to(dev)).argmax(1).cpu().numpy())
    return np.concatenate(out)


def recalibrate_bn(model, x_train, batches, batch_size, gen, momentum=0.01):
    """Running BN statistics as plain averages over `batches` training batches
    (then momentum again): the running statistics lag the weights, and the
    dual-path layers' folded thresholds depend on them."""
    from weights_tools.torch import DarknetBatchNorm
    bns = [m for m in model.modules() if isinstance(m, DarknetBatchNorm)]
    if not bns:
        return
    model.train()
    with torch.no_grad():
        for k in range(batches):
            for b in bns:
                b.momentum = 1.0 / (k + 1)
            idx = torch.randint(0, len(x_train), (batch_size,), generator=gen)
            model(torch.from_numpy(x_train[idx.numpy()]).to(device_of(model)))
    for b in bns:
        b.momentum = momentum
    model.eval()


def step_loss(model, x, y, penalty=None, teacher=None):
    """(logits, loss) of one training batch: cross entropy plus penalty(model) if any.
    With teacher = (model, alpha, temperature): (1 - alpha) * cross entropy + alpha *
    T^2 * KL(teacher's softened distribution || the student's) (Hinton et al.; ReActNet
    trains its binary networks on the float teacher's distribution alone, alpha = 1)."""
    z = logits(model, x)
    loss = F.cross_entropy(z, y)
    if teacher is not None:
        net, alpha, t = teacher
        with torch.no_grad():
            target = F.softmax(logits(net, x) / t, 1)
        kd = F.kl_div(F.log_softmax(z / t, 1), target, reduction="batchmean") * (t * t)
        loss = (1.0 - alpha) * loss + alpha * kd
    extra = penalty(model) if penalty else None
    return z, loss if extra is None else loss + extra


def learning_rate(schedule, lr, step, total):
    """The rate at `step` of `total`: "cosine" decays lr to 0 along half a cosine;
    "constant" holds it (with --ema, the average of the iterates at a constant
    rate is stochastic weight averaging's setting, Izmailov et al. 2018)."""
    if schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * step / total))


class WeightAverage:
    """An exponential moving average of a model's parameters (Polyak averaging; the
    decay warms up as (1 + n) / (10 + n) over the first steps n, so that a fresh
    average does not hold on to the starting weights).  It is the model that gets
    evaluated and saved: a binary layer takes the signs of its latent weights, and
    the average's signs flip less from step to step than the trained weights'.
    Buffers are copied from the trained model (BN statistics are then re-estimated
    for the average, as for any model here)."""

    def __init__(self, model, decay, steps=0):
        import copy
        if not 0.0 < decay < 1.0:
            raise ValueError("an average's decay must lie in (0, 1), got %r" % decay)
        self.model = copy.deepcopy(model)
        for q in self.model.parameters():
            q.requires_grad_(False)
        self.decay, self.steps = decay, steps

    def rate(self):
        """The decay of the next update."""
        return min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self, model):
        d = self.rate()
        for a, q in zip(self.model.parameters(), model.parameters()):
            a.mul_(d).add_(q.detach(), alpha=1.0 - d)
        for a, b in zip(self.model.buffers(), model.buffers()):
            a.copy_(b)
        self.steps += 1


def clip_unitwise(model, clip, eps=1e-3):
    """Adaptive gradient clipping (Brock et al. 2021, NF-Nets' companion to training
    without BN): each convolution filter's gradient is scaled down where its norm
    exceeds `clip` times the filter's own norm (at least `eps`), so that no step moves
    a filter by more than that fraction of itself.  Only the 4-d convolution weights
    are clipped (NF-Nets leave the classifier alone; the per-channel vectors are not
    weights of a unit).  Returns the share of filters clipped."""
    clipped, units = 0, 0
    with torch.no_grad():
        for q in model.parameters():
            if q.grad is None or q.dim() != 4:
                continue
            w = q.detach().flatten(1).norm(dim=1).clamp_min(eps)
            g = q.grad.flatten(1).norm(dim=1)
            limit = clip * w
            q.grad.mul_((limit / g.clamp_min(1e-12)).clamp(max=1.0).view(-1, 1, 1, 1))
            clipped += int((g > limit).sum())
            units += len(g)
    return clipped / max(units, 1)


def save_checkpoint(state, path):
    """torch.save to a temporary file renamed over `path`: a run killed while it
    writes (a machine taken back, a session's end) leaves the last whole
    checkpoint for --resume, never half of one."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(model, data, args, state, log=print, constrain=constrain, penalty=None, report=None,
          teacher=None):
    """The training loop: Adam, a cosine (or --lr-schedule constant) rate, shifted
    (and flipped) images; `constrain(model)` after each step, `penalty(model)` (a
    tensor or None) added to the loss, `report(model, data)` (a string) appended
    to each epoch's line.
    With args.ema, the weights' average (WeightAverage) is what each epoch
    validates and what is returned; else the model itself."""
    from train_classifier import augment
    dev = device_of(model)
    gen = torch.Generator().manual_seed(args.seed)
    x_all, y_all = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    per_epoch = math.ceil(len(x_all) / args.batch_size)
    total = args.epochs * per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state.get("optimizer"):
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
    lr_at = lambda step: learning_rate(args.lr_schedule, args.lr, step, total)  # noqa: E731
    from weights_tools.torch import DarknetBatchNorm
    for b in model.modules():
        if isinstance(b, DarknetBatchNorm):
            b.momentum = BN_MOMENTUM
    avg = None
    if args.ema:
        avg = WeightAverage(model, args.ema, state.get("ema_steps", 0))
        if state.get("ema"):
            avg.model.load_state_dict(state["ema"])
    t0 = time.time() - state.get("seconds", 0.0)
    for epoch in range(state.get("epoch", 0), args.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        seen, loss_sum, correct, clipped_sum = 0, 0.0, 0, 0.0
        for k, i in enumerate(range(0, len(order), args.batch_size)):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * per_epoch + k)
            idx = order[i:i + args.batch_size]
            x, y = augment(x_all[idx], 2, args.dataset in FLIPS, gen), y_all[idx]
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            z, loss = step_loss(model, x, y, penalty, teacher)
            opt.zero_grad()
            loss.backward()
            if args.agc:
                clipped_sum += clip_unitwise(model, args.agc)
            opt.step()
            constrain(model)
            if avg:
                avg.update(model)
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((z.argmax(1) == y).sum().item())
        recalibrate_bn(model, data.x_train, 20, args.batch_size, gen, BN_MOMENTUM)
        val = float((predict(model, data.x_val) == data.y_val).mean())
        line = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                "validation_accuracy": val}
        if args.agc:
            line["clipped_share"] = clipped_sum / (k + 1)
        shown = model
        if avg:
            recalibrate_bn(avg.model, data.x_train, 20, args.batch_size, gen, BN_MOMENTUM)
            line.update(validation_trained=val,
                        validation_accuracy=float((predict(avg.model, data.x_val) == data.y_val).mean()))
            state.update(ema=avg.model.state_dict(), ema_steps=avg.steps)
            shown = avg.model
        state.update(epoch=epoch + 1, seconds=time.time() - t0, model=model.state_dict(),
                     optimizer=opt.state_dict(), generator=gen.get_state())
        state.setdefault("history", []).append(line)
        save_checkpoint(state, args.output + ".pt")
        log("epoch %d/%d: loss %.4f, train %.2f%%, validation %.2f%%%s%s (%.0f s)%s"
            % (epoch + 1, args.epochs, loss_sum / seen, 100.0 * correct / seen,
               100 * line["validation_accuracy"],
               " (trained weights %.2f%%)" % (100 * val) if avg else "",
               ", filters clipped %.1f%%" % (100 * line["clipped_share"]) if args.agc else "",
               time.time() - t0, report(shown, data) if report else ""))
        if args.stop_after == epoch + 1:
            break
    if avg:
        model.load_state_dict(avg.model.state_dict())
    return state


def open_model(prefix):
    """The PyTorch model of PREFIX.cfg / PREFIX.weights (--init-from, --teacher)."""
    return import_darknet(prefix + ".cfg", prefix + ".weights")


def mdfi_predictions(cfg, weights, x):
    with mdfi.Network(cfg, weights, threads=1) as net:
        return np.array([int(np.argmax(net.forward(v))) for v in x])


def decay(text):
    """argparse type of --ema: a float in (0, 1)."""
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is None or not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError("a decay must lie in (0, 1), got %s" % text)
    return v


def positive(text):
    """argparse type of --agc: a float > 0."""
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is None or not 0.0 < v < float("inf"):     # NaN fails the compare too
        raise argparse.ArgumentTypeError("must be a number > 0, got %s" % text)
    return v


def channels(text):
    """argparse type of --stem (and of each --widths entry): a channel count."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 0 < v <= 4096:
        raise argparse.ArgumentTypeError("a channel count must lie in 1..4096, got %s" % text)
    return v


def widths(text):
    """argparse type of --widths: channel counts separated by commas (e.g. 64,128)."""
    return tuple(channels(t) for t in text.split(","))


def check_shape(variant, stem, widths):
    """Every variant but xnor adds each body layer's input to its output (float: a
    [shortcut], its channels repeated by a [route] where they grow; dual-path: the
    second source), so each width must be a multiple of the one before."""
    c = stem
    for w in widths:
        if variant != "xnor" and w % c:
            raise ValueError("the %s variant needs each width a multiple of the one before "
                             "(%d after %d): its layers add their input, its channels repeated"
                             % (variant, w, c))
        c = w


def parser(variants, default, description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--variant", choices=variants, default=default)
    ap.add_argument("--dataset", default="fashion-mnist",
                    help="fashion-mnist, mnist, digits or cifar10 (with --data)")
    ap.add_argument("--data", metavar="PATH", help="the CIFAR-10 tarball (cifar-10-python.tar.gz), "
                    "or a directory of the Fashion-MNIST IDX files")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--time-budget", type=float, metavar="SECONDS",
                    help="at most --epochs, and as many as fit in SECONDS of training, judged from "
                    "a short timed probe before the run (the record's command names the epochs)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda where PyTorch sees a GPU")
    ap.add_argument("--bn-recalibrate", type=int, default=50, metavar="BATCHES")
    ap.add_argument("--resume", action="store_true", help="go on from OUT.pt (--epochs may differ: "
                    "the cosine schedule is then the new one's from the next epoch)")
    ap.add_argument("--stop-after", type=int, metavar="EPOCH",
                    help="end the run after this epoch (its checkpoint kept), for a later --resume")
    ap.add_argument("--remeasure", action="store_true",
                    help="no training: run MDFI on the test split for OUT.cfg/OUT.weights and "
                    "write its accuracy and its agreement with the record's PyTorch predictions")
    ap.add_argument("--init-from", metavar="PREFIX",
                    help="start from PREFIX.cfg / PREFIX.weights, a trained model of the same shape "
                    "(fine-tuning; the cosine schedule starts again at --lr)")
    ap.add_argument("--teacher", metavar="PREFIX",
                    help="distil from PREFIX.cfg / PREFIX.weights (e.g. the float network): the loss "
                    "becomes (1 - alpha) * cross entropy + alpha * T^2 * KL(teacher || student)")
    ap.add_argument("--kd-alpha", type=float, default=1.0, metavar="ALPHA")
    ap.add_argument("--kd-temperature", type=float, default=1.0, metavar="T")
    ap.add_argument("--widths", type=widths, default=WIDTHS, metavar="A,B",
                    help="the body's widths, two 3x3 layers each (default %s)"
                         % ",".join(map(str, WIDTHS)))
    ap.add_argument("--stem", type=channels, default=STEM, metavar="C",
                    help="the stem's filters (default %d)" % STEM)
    ap.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                    help="the learning rate's course over the run (default cosine, to 0)")
    ap.add_argument("--ema", type=decay, metavar="DECAY",
                    help="validate and save an exponential moving average of the weights "
                         "(e.g. 0.999) instead of the last step's")
    ap.add_argument("--agc", type=positive, metavar="CLIP",
                    help="adaptive gradient clipping: scale each convolution filter's gradient "
                         "to at most CLIP times the filter's norm (NF-Nets; e.g. 0.1)")
    ap.add_argument("-o", "--output")
    return ap


def probe_epochs(model, data, args, penalty, steps=20):
    """Epochs that fit in args.time_budget: a few timed steps on a copy of the
    model (its result is thrown away), times the steps per epoch, plus a
    tenth for the per-epoch validation."""
    import copy
    m = copy.deepcopy(model)
    dev = device_of(m)
    opt = torch.optim.Adam(m.parameters(), lr=args.lr)
    x = torch.from_numpy(data.x_train[:args.batch_size]).to(dev)
    y = torch.from_numpy(data.y_train[:args.batch_size]).to(dev)
    m.train()
    for k in range(steps + 3):
        if k == 3:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        _, loss = step_loss(m, x, y, penalty)
        opt.zero_grad()
        loss.backward()
        if args.agc:
            clip_unitwise(m, args.agc)
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_epoch = (time.time() - t0) / steps * math.ceil(len(data.x_train) / args.batch_size) * 1.1
    return max(1, min(args.epochs, int(args.time_budget // per_epoch))), per_epoch


def command_line(script, argv, epochs=None):
    """The command as run; with --time-budget, as it reproduces: --epochs N instead."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if epochs is not None and a in ("--time-budget", "--epochs"):
            skip = True
            continue
        if epochs is not None and a.startswith(("--time-budget=", "--epochs=")):
            continue
        out.append(a)
    if epochs is not None:
        out += ["--epochs", str(epochs)]
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(script)] + out)


def remeasure(args, data, record_extra=None):
    with open(args.output + ".json") as f:
        record = json.load(f)
    pred = mdfi_predictions(args.output + ".cfg", args.output + ".weights", data.x_test)
    torch_pred = np.array([int(c) for c in record["pytorch"]["predictions"]])
    record["mdfi"] = {"n": len(data.y_test), "accuracy": float((pred == data.y_test).mean()),
                      "agree_with_pytorch": float((pred == torch_pred).mean())}
    if record_extra:
        record.update(record_extra(args, data))
    with open(args.output + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps({k: v for k, v in record.items() if k not in ("history", "pytorch")}, indent=1))
    return 0


def run(argv, *, script, variants, default, tag, build_fn, description, constrain_fn=constrain,
        penalty=None, report=None, record_extra=None, configure=None, prepare=None, adopt=None):
    """Parse argv, train (or --remeasure) one variant, write OUT.cfg/.weights/.json.
    Shared by train_dualpath.py and train_fracbnn.py."""
    sys.path.insert(0, HERE)
    from train_vgg import load
    name = os.path.basename(script).rsplit(".", 1)[0]
    ap = parser(variants, default, description)
    if configure:
        configure(ap)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    prefix = "fmnist" if args.dataset == "fashion-mnist" else args.dataset
    args.output = args.output or os.path.join(HERE, "models", "%s_%s_%s" % (
        prefix, tag, args.variant.replace(".", "").replace("-", "")))
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.allow_tf32 = False    # exact sums of +-1 products in evaluation
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        data = load(args.dataset, args.train_limit, args.data)
    except mdfi.MdfiError as e:     # DatasetError: no data file, a malformed one
        print("%s: error: %s" % (name, e), file=sys.stderr)
        return 2
    if args.remeasure:
        return remeasure(args, data, record_extra)
    dev = torch.device(args.device)
    try:
        check_shape(args.variant, args.stem, args.widths)
    except ValueError as e:
        ap.error(str(e))
    model = build_fn(args, data.input_shape, len(data.classes)).to(dev)
    state = {}
    if args.resume:
        state = torch.load(args.output + ".pt", weights_only=False, map_location="cpu")
        model.load_state_dict(state["model"])
    elif prepare and not args.init_from:
        prepare(model, data)
    teacher = None
    try:
        if args.init_from and not args.resume:
            start = open_model(args.init_from)
            try:
                if adopt:
                    print("%s: starting from %s (agreement with the file on 512 training images %.4f)"
                          % (name, args.init_from, adopt(model, start.to(dev), data)))
                else:
                    model.load_state_dict(start.state_dict())
            except (RuntimeError, ValueError) as e:   # another layer list or shape
                raise ValueError("%s.cfg is not a %s network of this shape (%s)" % (
                    args.init_from, args.variant, str(e).splitlines()[0])) from None
        if args.teacher:
            net = open_model(args.teacher).to(dev).eval()
            for q in net.parameters():
                q.requires_grad_(False)
            probe = torch.from_numpy(data.x_train[:1]).to(dev)
            try:
                fits = logits(net, probe).shape == logits(model.eval(), probe).shape
            except (RuntimeError, ValueError):   # another input shape
                fits = False
            if not fits:
                raise ValueError("%s.cfg does not take this dataset's images to its %d classes"
                                 % (args.teacher, len(data.classes)))
            teacher = (net, args.kd_alpha, args.kd_temperature)
    except (OSError, ValueError, mdfi.MdfiError) as e:   # a missing or malformed file
        print("%s: error: %s" % (name, e), file=sys.stderr)
        return 2
    if args.time_budget and not args.resume:
        args.epochs, per_epoch = probe_epochs(model, data, args, penalty)
        print("%s: about %.1f s an epoch: %d epochs" % (name, per_epoch, args.epochs))
    commands = state.get("commands", [])
    commands.append(command_line(script, argv, args.epochs if args.time_budget else None))
    state["commands"] = commands
    train(model, data, args, state, constrain=constrain_fn, penalty=penalty, report=report,
          teacher=teacher)
    if args.stop_after and state["epoch"] < args.epochs:
        return 0
    recalibrate_bn(model, data.x_train, args.bn_recalibrate, args.batch_size,
                   torch.Generator().manual_seed(args.seed + 1))
    save(model, args.output)
    torch_pred = predict(model, data.x_test)
    val_acc = float((predict(model, data.x_val) == data.y_val).mean())
    record = {
        "command": " && ".join(commands),
        "cfg": os.path.basename(args.output) + ".cfg",
        "weights": os.path.basename(args.output) + ".weights", "variant": args.variant,
        "dataset": args.dataset, "split": data.split, "epochs": args.epochs, "lr": args.lr,
        "lr_schedule": args.lr_schedule, "ema": args.ema, "agc": args.agc, "stem": args.stem,
        "widths": list(args.widths),
        "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "train_seconds": round(state.get("seconds", 0.0), 1), "torch_version": torch.__version__,
        "bn_recalibrate_batches": args.bn_recalibrate, "history": state.get("history", []),
        "validation_accuracy": val_acc,
        "pytorch": {"n": len(data.y_test), "accuracy": float((torch_pred == data.y_test).mean()),
                    "predictions": "".join(str(int(p)) for p in torch_pred)
                    if len(data.classes) <= 10 else None},
    }
    if record_extra:
        record.update(record_extra(args, data, model))
    try:
        pred = mdfi_predictions(args.output + ".cfg", args.output + ".weights", data.x_test)
        record["mdfi"] = {"n": len(data.y_test), "accuracy": float((pred == data.y_test).mean()),
                          "agree_with_pytorch": float((pred == torch_pred).mean())}
    except (mdfi.MdfiError, ImportError) as e:   # ImportError: no C build here (a GPU machine)
        record["mdfi"] = {"skipped": "%s (python %s --remeasure measures it)" % (e, os.path.relpath(script))}
    with open(args.output + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps({k: v for k, v in record.items() if k not in ("history", "pytorch")}, indent=1))
    return 0


def main(argv=None):
    return run(argv, script=__file__, variants=VARIANTS, default="dual1.5", tag="dp",
               build_fn=lambda args, shape, classes: build(args.variant, shape, classes,
                                                           args.widths, args.stem),
               description=__doc__.split("\n")[0], adopt=adopt_float)


if __name__ == "__main__":
    sys.exit(main())
