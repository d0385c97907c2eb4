"""Accuracy of MDFI's fixed-point models against the float models.

    python benchmarks/int8_accuracy.py [--skip-synthetic] [--work DIR]

1. yolov3-tiny (the real weights) on the golden photos plus every photo that
   scikit-image and scikit-learn ship (weights_tools/evaluate.py), with 2-fold
   cross-calibration: the photos are split alternately in two halves and each
   half is evaluated with models calibrated on the other half only.  The float
   model at thresh 0.5 is the ground truth: "kept" is the share of its
   detections the quantized model also reports (same class, IoU >= 0.5, thresh
   0.5), mAP@0.5 ranks the quantized detections at thresh 0.005.  Variants:
   8-bit (the default), 8-bit with per-channel weight fractions, 8-bit with
   per-channel multipliers (and the same with paired weights, mult-pair), 8-bit with
   mean-square-error fractions, mixed 8/16
   (the default budgets: at most 50 % of the MACs at 16 bits and a file at
   most 30 % of the float one), the same with per-channel weight fractions and
   with multipliers, the --int8 recipe (paired multiplier weights, 30 % of the
   MACs at 16 bits; the same unpaired, and with 60 %, the recipe before),
   8-bit weights with 16-bit activations everywhere (multipliers), mixed with
   per-channel fractions at 75 % of the MACs and no size limit, and 16-bit.  Then the model
   `mdfi.detect --int8` uses (calibrated on all of scikit-image's photos) on
   the photos it was not calibrated on.
2. Full yolov3 and alexnet with generated weights (the golden generator):
   output SQNR of every layer, 8-bit / mixed 8/16 (alexnet) / 8-bit weights
   with multipliers and 16-bit activations / 16-bit,
   calibrated on 4 scikit-image photos, measured on the 4 golden photos and
   the golden synthetic input.
"""
import argparse
import contextlib
import io
import math
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))

import mdfi  # noqa: E402
from mdfi import models  # noqa: E402
from weights_tools import evaluate as ev  # noqa: E402
from weights_tools.quantize import (INT8_RECIPE, cached_int8, compare, head_inputs,  # noqa: E402
                                    quantize)
from weights_tools import infer_layers, parse_cfg  # noqa: E402

VARIANTS = [
    ("8-bit", {}),
    ("8-bit per-channel", dict(per_channel=True)),
    ("8-bit multiplier", dict(weight_scale="mult")),
    ("8-bit multiplier, paired weights", dict(weight_scale="mult-pair")),
    ("8-bit mse", dict(method="mse")),
    ("mixed 8/16", dict(mixed=True)),
    ("mixed 8/16 per-channel", dict(mixed=True, per_channel=True)),
    ("mixed 8/16 multiplier", dict(mixed=True, weight_scale="mult")),
    ("--int8 recipe", INT8_RECIPE),
    ("--int8 recipe, unpaired weights", dict(INT8_RECIPE, weight_scale="mult")),
    ("--int8 recipe, 60% of the MACs", dict(INT8_RECIPE, mixed_budget=0.6)),
    ("w8a16 multiplier", dict(act_bits=16, weight_scale="mult")),
    ("mixed 75% per-channel", dict(mixed=True, mixed_budget=0.75, mixed_size=1.0,
                                   per_channel=True)),
    ("16-bit", dict(bits=16)),
]


def q(cfg, weights, calib, out, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return quantize(str(cfg), str(weights), calib, str(out), quiet=True,
                        check_images=False, **kw)


def db(v):
    return "inf" if v == math.inf else "%.1f" % v


def tiny_table(work, variants):
    m = models.fetch("yolov3-tiny", quiet=True)
    photos = ev.photos_shipped(GOLDEN if GOLDEN.is_dir() else None)
    folds = [photos[0::2], photos[1::2]]
    heads = head_inputs(infer_layers(parse_cfg(str(m["cfg"]))))
    print("yolov3-tiny on %d photos (%d golden, %d scikit-image, %d scikit-learn), 2-fold "
          "cross-calibration" % (len(photos), 4 if GOLDEN.is_dir() else 0,
                                 len(ev.skimage_photos()), len(ev.sklearn_photos())))
    print("%-20s %6s %6s %8s %8s %12s %9s" % ("variant", "float", "kept", "kept %", "mAP@0.5",
                                            "head SQNR dB", "size %"))
    fnet = mdfi.Network(m["cfg"], m["weights"])
    rows = []
    for name, kw in variants:
        refs, tests, sq, size = [], [], [], 0
        for k in range(2):
            r = q(m["cfg"], m["weights"], folds[1 - k], work / ("tiny-%s-%d" % (
                name.replace(" ", "_").replace("/", ""), k)), **kw)
            with mdfi.Network(r["cfg"], r["qweights"]) as qnet:
                c = ev.compare_detectors(fnet, qnet, folds[k])
            refs += c["ref"]
            tests += c["test"]
            s, _ = compare(m["cfg"], m["weights"], r["cfg"], r["qweights"], folds[k][:6], "c")
            sq.append(min(s[i] for i in heads))
            size = os.path.getsize(r["qweights"]) / os.path.getsize(m["weights"])
        n = sum(len(r_) for r_ in refs)
        kept = sum(ev.match(r_, t_) for r_, t_ in zip(refs, tests))
        lost = ["class %d %.3f -> %.3f" % (d.class_id, d.prob, ev.best_match_prob(d, t_))
                for r_, t_ in zip(refs, tests) for d in r_ if ev.match([d], t_) == 0]
        row = (name, n, kept, 100.0 * kept / n, ev.mean_ap(refs, tests), min(sq), 100 * size)
        rows.append(row)
        print("%-20s %6d %6d %7.1f%% %8.3f %12s %8.1f%%" % (*row[:5], db(row[5]), row[6]),
              flush=True)
        if lost:
            print("%20s lost (float -> quantized prob): %s" % ("", "; ".join(lost)))
    # the --int8 model: calibrated on scikit-image's photos; evaluated on the others
    qcfg, qw = cached_int8(m["cfg"], m["weights"], quiet=True)
    others = [p for p in photos if p not in ev.skimage_photos()]
    with mdfi.Network(qcfg, qw) as qnet:
        c = ev.compare_detectors(fnet, qnet, others)
    print("--int8 model (calibrated on scikit-image's %d photos) on the %d other photos: "
          "kept %d/%d, mAP@0.5 %.3f" % (len(ev.skimage_photos()), len(others), c["kept"],
                                       c["float"], c["map50"]))
    fnet.close()
    return rows


def synthetic_tables(work, names):
    gen = GOLDEN / "synthetic" / "gen_weights.py"
    calib = ev.skimage_photos()[:4]
    checks = [str(GOLDEN / "images" / (n + ".ppm")) for n in ev.GOLDEN_PHOTOS]
    for name in names:
        cfg = GOLDEN / "synthetic" / (name + ".cfg")
        weights = work / (name + ".weights")
        if not weights.exists():
            print("generating %s (golden generator, seed 1) ..." % weights.name, flush=True)
            subprocess.run([sys.executable, str(gen), str(cfg), "1", str(weights)], check=True,
                           capture_output=True)
        inp = work / (name + ".input.npy")
        if not inp.exists():
            import numpy as np
            np.save(inp, np.load(GOLDEN / "synthetic" / (name + ".input.npy")))
        variants = [("8-bit", dict(bias_images=2))]
        if name == "alexnet":
            variants.append(("mixed", dict(mixed=True, bias_images=2)))
        variants.append(("w8a16", dict(act_bits=16, weight_scale="mult", bias_images=2)))
        variants.append(("16-bit", dict(bits=16, bias_images=2)))
        cols = []
        for vname, kw in variants:
            r = q(cfg, weights, calib, work / ("%s-%s" % (name, vname)), **kw)
            s, _ = compare(cfg, weights, r["cfg"], r["qweights"], checks + [str(inp)], "c")
            cols.append((vname, s))
        layers = infer_layers(parse_cfg(str(cfg)))
        print("\n%s (generated weights): output SQNR per layer in dB, calibrated on 4 "
              "scikit-image photos, measured on the 4 golden photos + the synthetic input"
              % name)
        print("%5s %-14s" % ("layer", "type") + "".join("%10s" % c[0] for c in cols))
        for layer in layers:
            print("%5d %-14s" % (layer.index, layer.type) +
                  "".join("%10s" % db(c[1][layer.index]) for c in cols))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", help="folder for models and generated weights (default: temp)")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--synthetic", nargs="+", default=["alexnet", "yolov3"])
    p.add_argument("--variants", nargs="+", help="subset of: " +
                   ", ".join(v[0] for v in VARIANTS))
    args = p.parse_args(argv)
    variants = [v for v in VARIANTS if not args.variants or v[0] in args.variants]
    with tempfile.TemporaryDirectory(prefix="mdfi-int8-acc-") as tmp:
        work = pathlib.Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        tiny_table(work, variants)
        if not args.skip_synthetic and GOLDEN.is_dir():
            synthetic_tables(work, args.synthetic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
