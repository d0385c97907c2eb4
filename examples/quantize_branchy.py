"""Quantize a branchy model to int8 and measure how its exit decisions follow the
float model's, on the test split, in MDFI.

    python examples/quantize_branchy.py examples/models/fmnist_branchy_lenet \
        --dataset fashion-mnist [--calib-count 500] [--data PATH]

It runs `python -m weights_tools quantize PREFIX.cfg PREFIX.weights --calib-dataset
DATASET --calib-count N -o PREFIX_int8` (calibration images come from the
training split only), then, for every policy the model has (branchy and the
predictor policies; the cfg's thresholds and gates), runs the float and the int8
networks on every test image and counts how often they take the same exit and
give the same class.  It also measures the int8 model with `mdfi.evaluate`
(the policy beside `none`, one thread).  It writes PREFIX_int8.json (the
command, the figures) beside PREFIX_int8.cfg and PREFIX_int8.qweights.
"""
import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

import mdfi
from mdfi import datasets
from mdfi.evaluate import evaluate, exit_policies


def decisions(net, x, policy):
    """(exit, class) of every image under policy."""
    net.exit_policy = policy
    exits = np.empty(len(x), np.int64)
    classes = np.empty(len(x), np.int64)
    for i, xi in enumerate(x):
        classes[i] = int(np.argmax(net.forward(xi)))
        exits[i] = net.last_exit.exit
    return exits, classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="the float model, without .cfg/.weights")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data")
    ap.add_argument("--calib-count", type=int, default=500)
    ap.add_argument("--limit", type=int, help="the first N test images only")
    args = ap.parse_args(argv)
    prefix = pathlib.Path(args.prefix)
    out = prefix.with_name(prefix.name + "_int8")
    quant = [sys.executable, "-m", "weights_tools", "quantize", f"{prefix}.cfg",
             f"{prefix}.weights", "--calib-dataset", args.dataset, "--calib-count",
             str(args.calib_count), "-o", str(out), "--quiet"]
    if args.data:
        quant += ["--dataset-path", args.data]
    subprocess.run(quant, check=True)
    data = datasets.load(args.dataset, args.data, train=False)
    x = np.ascontiguousarray(data.x_test[:args.limit], np.float32)
    y = np.asarray(data.y_test[:args.limit])
    record = {"model": out.name, "float_model": prefix.name, "dataset": args.dataset,
              "split": "test", "n": len(y), "calibration": f"{args.calib_count} images of the "
              "training split, spread evenly (weights_tools quantize --calib-dataset)",
              "quantize_command": "python -m weights_tools quantize " + " ".join(quant[4:]),
              "command": "python examples/quantize_branchy.py " +
              " ".join(sys.argv[1:] if argv is None else argv),
              "cfg": out.name + ".cfg", "weights": out.name + ".qweights", "policies": {}}
    with mdfi.Network(f"{prefix}.cfg", f"{prefix}.weights") as fnet, \
            mdfi.Network(f"{out}.cfg", f"{out}.qweights") as qnet:
        record["kernel"] = qnet.kernel
        for policy in exit_policies(fnet):
            fe, fc = decisions(fnet, x, policy)
            qe, qc = decisions(qnet, x, policy)
            r = evaluate(qnet, data, policy=policy, limit=args.limit)
            record["policies"][policy] = {
                "float_accuracy": float(np.mean(fc == y)), "int8_accuracy": float(np.mean(qc == y)),
                "same_exit": float(np.mean(fe == qe)), "same_class": float(np.mean(fc == qc)),
                "float_shares": [float(np.mean(fe == k)) for k in [*range(len(fnet.exits)), -1]],
                "int8_shares": [float(np.mean(qe == k)) for k in [*range(len(qnet.exits)), -1]],
                "int8_macs_per_image": r["macs_per_image"],
                "int8_ms_per_image": r["ms_per_image"],
                "int8_none_ms_per_image": r["none"]["ms_per_image"],
                "int8_none_accuracy": r["none"]["accuracy"],
                "int8_speedup_vs_none": r["speedup_vs_none"]}
            p = record["policies"][policy]
            print(f"{policy:18s} float {p['float_accuracy']:.4f} int8 {p['int8_accuracy']:.4f} "
                  f"same exit {p['same_exit']:.4f} same class {p['same_class']:.4f} "
                  f"int8 x{p['int8_speedup_vs_none']:.2f} vs none")
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
