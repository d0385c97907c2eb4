"""How the --int8 recipe's 16-bit budget was chosen: on the calibration photos alone.

    python benchmarks/int8_budget.py [--budgets 0 0.1 0.2 0.3 0.4 0.5 0.6] [--thresh 0.1]
                                     [--work DIR]

The recipe (weights_tools.quantize.INT8_RECIPE) raises to 16-bit input the
layers where 8 bits cost most, while they take at most a budget of the MACs; a
16-bit layer runs at half the 8-bit rate, so the budget is most of the
recipe's time beyond the all-8-bit model's.  The photos the recipe is
calibrated on (scikit-image's) are split alternately in two folds; each fold
is measured with models calibrated on the other only.  The measure is the one
benchmarks/peers.py applies to Darknet's golden outputs: the pre-NMS hits
(objectness x class probability > thresh, per anchor, class and cell) of the
float model that the quantized one also has.  At 0.5 these photos have 2 hits,
so the default threshold is 0.1 (54 hits).  The golden photos and the other
held-out photos of benchmarks/int8_accuracy.py are not read: they stay the test.
The recipe takes the budget that keeps the most hits, the smallest on ties.
"""
import argparse
import contextlib
import io
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import mdfi  # noqa: E402
import peers  # noqa: E402
from weights_tools.calibrate import load_input  # noqa: E402
from weights_tools.quantize import INT8_RECIPE, calibration_photos, quantize  # noqa: E402


def heads(net, x):
    net.forward(x)
    return tuple(net.layer_output(i).copy() for i in peers.HEADS)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", nargs="+", type=float,
                   default=[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    p.add_argument("--thresh", type=float, default=0.1)
    p.add_argument("--work", help="folder for the models (default: temp)")
    args = p.parse_args(argv)
    cfg, weights = peers.tiny_model()
    what, photos = calibration_photos()
    folds = [photos[0::2], photos[1::2]]
    xs = {ph: load_input(ph, (3, peers.SIZE, peers.SIZE)) for ph in photos}
    with mdfi.Network(cfg, weights) as fnet:
        ref = {ph: heads(fnet, x) for ph, x in xs.items()}
    print("yolov3-tiny, %s (%d), 2 folds; pre-NMS hits at %g against the float model"
          % (what, len(photos), args.thresh))
    print("| 16-bit budget (of the MACs) | hits kept | extra |\n| --- | --- | --- |")
    best = None
    with tempfile.TemporaryDirectory(prefix="mdfi-int8-budget-") as tmp:
        work = pathlib.Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for b in args.budgets:
            kw = dict(INT8_RECIPE, mixed_budget=b) if b > 0 else \
                {k: v for k, v in INT8_RECIPE.items() if not k.startswith("mixed")}
            tot = {"golden": 0, "kept": 0, "extra": 0}
            for k in range(2):
                base = str(work / ("b%g-%d" % (b, k)))
                with contextlib.redirect_stdout(io.StringIO()):
                    quantize(cfg, weights, folds[1 - k], base, quiet=True, check_images=False,
                             **kw)
                with mdfi.Network(base + ".cfg", base + ".qweights") as qnet:
                    got = {ph: heads(qnet, xs[ph]) for ph in folds[k]}
                a = peers.agreement(got, {ph: ref[ph] for ph in folds[k]}, thresh=args.thresh)
                for key in tot:
                    tot[key] += a[key]
            print("| %g | %d of %d (%.1f %%) | %d |" % (b, tot["kept"], tot["golden"],
                                                    100.0 * tot["kept"] / max(1, tot["golden"]),
                                                    tot["extra"]), flush=True)
            if best is None or tot["kept"] > best[1]:
                best = (b, tot["kept"])
    print("most hits kept, smallest budget: %g (the recipe has %g)"
          % (best[0], INT8_RECIPE["mixed_budget"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
