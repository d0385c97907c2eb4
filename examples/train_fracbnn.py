"""Train the BN-free fractional binary classifier (WSFracBNN) and its baselines (docs/wsfracbnn.md).

    python examples/train_fracbnn.py --variant ws          # WSFracBNN: scaled WS, no BN, gated 2-bit
    python examples/train_fracbnn.py --variant ws-dense    # the same with 2-bit activations everywhere
    python examples/train_fracbnn.py --variant bn          # the BN baseline: BN instead of WS, gated
    python examples/train_fracbnn.py --variant float       # the float network of the same shape
    python examples/train_fracbnn.py --variant ws --dataset mnist --epochs 30
    python examples/train_fracbnn.py --variant ws --device cuda --time-budget 400

One shape for all (that of train_dualpath.py): a 3x3 layer of STEM filters on
the image, a 2x2 max pool, two 3x3 layers of WIDTHS[0] filters, a max pool, two
of WIDTHS[1], a global average pool, a float [connected] to the classes and
[softmax].

    ws, ws-dense, bn   the first layer is a [fracconv] on LEVELS thermometer
                       bits of the image (no shortcut), the four body layers
                       [fracconv] on the integer stream with shortcuts
                       (channels repeated where they double); ws and bn gate
                       the second bit (gate=1), ws-dense computes it everywhere
    float              train_dualpath.py's float network (a float stem, float
                       convolutions with BN and shortcuts)

The gated variants add --gate-weight x max(0, share - --gate-target) to the
loss, share being the mean soft share of gated outputs (the gate's
surrogate), so the gate fires on about --gate-target of the outputs at most;
with --gate-floor F also --gate-weight x the mean over the gated layers of
max(0, F - the layer's soft share), so that every layer's gate fires on about
F at least (the task loss alone may settle lower); with --gate-ceiling C also
--gate-weight x the mean over the gated layers of max(0, the layer's soft
share - C), so that no one layer fires on much more than C (the target bounds
the mean over the layers: one layer may sit above it).  Each epoch's line
shows the validation split's measured (hard) gated share.

Validation = the last 500 training images of each class; the test split is
only measured.  Every epoch writes OUT.pt (resume with --resume).  At the end:
OUT.cfg / OUT.weights, and OUT.json with the command, the split, the accuracies
of PyTorch and MDFI, their agreement, and the gated share per layer on the test
split (PyTorch's count).  On a machine without MDFI's C build (a GPU machine),
--remeasure afterwards adds MDFI's figures.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_dualpath as tdp  # noqa: E402
import torch  # noqa: E402

from weights_tools.torch import AvgPool, Connected, Darknet, MaxPool, Softmax  # noqa: E402
from weights_tools.torch.fracconv import (FracConv, adopt_folded, constrain,  # noqa: E402
                                           layer_shares)

VARIANTS = ("ws", "ws-dense", "bn", "float")
LEVELS = 16


def build(variant, input_shape, classes, widths=tdp.WIDTHS, stem=tdp.STEM, levels=LEVELS):
    if variant == "float":
        return tdp.build("float", input_shape, classes, widths, stem)
    if variant not in VARIANTS:
        raise ValueError("variant must be one of %s" % (VARIANTS,))
    norm = "bn" if variant == "bn" else "ws"
    gate = variant != "ws-dense"
    layers = [FracConv(input_shape[0], stem, 3, input="thermometer", levels=levels, norm=norm),
              MaxPool(2, 2)]
    c = stem
    for s, w in enumerate(widths):
        if s:
            layers.append(MaxPool(2, 2))
        for _ in range(2):
            layers.append(FracConv(c, w, 3, norm=norm, gate=gate))
            c = w
    layers += [AvgPool(), Connected(c, classes, activation="linear"), Softmax()]
    return Darknet(input_shape, layers)


def measured_shares(model, x, batch=500):
    """Per gated layer (by index), the share of its outputs whose gate fires on x
    (evaluation mode: the hard gate of the definition)."""
    layers = [(i, m) for i, m in enumerate(model.layers) if isinstance(m, FracConv) and m.gated]
    if not layers:
        return {}
    counts = {i: [0, 0] for i, _ in layers}
    dev = tdp.device_of(model)
    hooks = []
    for i, m in layers:
        def hook(mod, inputs, out, i=i):
            x_in = inputs[0]
            s1, _ = mod.planes(x_in)
            d1 = mod._conv(s1, mod.binary_weight())
            g = 2 * d1.double() > torch.floor(mod.gate().double()).view(1, -1, 1, 1)
            counts[i][0] += int(g.sum().item())
            counts[i][1] += g.numel()
        hooks.append(m.register_forward_hook(hook))
    model.eval()
    try:
        with torch.no_grad():
            for k in range(0, len(x), batch):
                model(torch.from_numpy(x[k:k + batch]).to(dev))
    finally:
        for h in hooks:
            h.remove()
    return {str(i): c[0] / c[1] for i, c in counts.items()}


def share(text):
    """argparse type: a share in [0, 1)."""
    v = float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError("a share must lie in [0, 1), got %s" % text)
    return v


def gate_penalty(model, target, floor=0.0, weight=1.0, ceiling=None):
    """weight x (max(0, share - target) + the mean over the gated layers of
    max(0, floor - the layer's share) + the mean over them of max(0, the
    layer's share - ceiling)), on the soft shares of the last training forward
    (share: their mean); None where the model has no gate or weight is 0."""
    shares = layer_shares(model)
    if not shares or weight == 0:
        return None
    shares = torch.stack(shares)
    p = torch.relu(shares.mean() - target)
    if floor > 0:
        p = p + torch.relu(floor - shares).mean()
    if ceiling is not None:
        p = p + torch.relu(shares - ceiling).mean()
    return weight * p


def main(argv=None):
    def configure(ap):
        ap.add_argument("--gate-target", type=float, default=0.2,
                        help="the soft gated share above which the penalty acts (default 0.2)")
        ap.add_argument("--gate-floor", type=share, default=0.0,
                        help="the soft gated share per layer below which a penalty acts "
                             "(default 0: none)")
        ap.add_argument("--gate-ceiling", type=share, default=None,
                        help="the soft gated share per layer above which a penalty acts "
                             "(default: none)")
        ap.add_argument("--gate-weight", type=float, default=1.0,
                        help="the penalties' weight (0: none)")
        ap.set_defaults(variant="ws", bn_recalibrate=50)

    holder = {}

    def penalty(model):
        a = holder["args"]
        return gate_penalty(model, a.gate_target, a.gate_floor, a.gate_weight, a.gate_ceiling)

    def build_fn(args, shape, classes):
        holder["args"] = args
        return build(args.variant, shape, classes, args.widths, args.stem)

    def report(model, data):
        shares = measured_shares(model, data.x_val[:1000])
        if not shares:
            return ""
        return ", gated %s" % " ".join("%.1f%%" % (100 * v) for v in shares.values())

    def record_extra(args, data, model=None):
        out = {"levels": LEVELS}
        if args.variant != "float":
            out.update(gate_target=args.gate_target, gate_weight=args.gate_weight)
            if args.gate_floor > 0:
                out["gate_floor"] = args.gate_floor
            if args.gate_ceiling is not None:
                out["gate_ceiling"] = args.gate_ceiling
        if model is not None:
            out["pytorch_gated_share"] = measured_shares(model, data.x_test)
        return out

    def prepare(model, data):
        """The layers' data-dependent start (FracConv), then the classifier's weights
        scaled so that its outputs start with a spread of 1: the integer stream's
        spread is that of its levels (tens), not 1."""
        if args_variant() == "float":
            return
        dev = tdp.device_of(model)
        x = torch.from_numpy(data.x_train[:256]).to(dev)
        model.train()
        with torch.no_grad():
            z = tdp.logits(model, x)
            head = model.layers[-2]
            head.weight.mul_(1.0 / (float(z.std()) + 1e-6))

    def adopt(model, start, data):
        """--init-from a .weights file: its folded layers into this variant's (float: as is)."""
        if args_variant() == "float":
            model.load_state_dict(start.state_dict())
            return 1.0
        x = torch.from_numpy(data.x_train[:512]).to(tdp.device_of(model))
        # a dense start (gate=0) opens its gates on --gate-target of the outputs
        return adopt_folded(model, start, x, gate_share=holder["args"].gate_target)

    def args_variant():
        return holder["args"].variant

    return tdp.run(argv, script=__file__, variants=VARIANTS, default="ws", tag="frac",
                   build_fn=build_fn, description=__doc__.split("\n")[0], constrain_fn=constrain,
                   penalty=penalty, report=report, record_extra=record_extra, configure=configure,
                   prepare=prepare, adopt=adopt)


if __name__ == "__main__":
    sys.exit(main())
