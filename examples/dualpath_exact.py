"""Checks a [dualpath] or [fracconv] model in MDFI against the numpy reference, layer by layer.

    python examples/dualpath_exact.py examples/models/fmnist_dp_dual15 --dataset fashion-mnist --n 1000

For each test image MDFI runs the network keeping every layer's output; the
reference (weights_tools/dualpath_ref.py and fracconv_ref.py, written from
docs/dualpath.md and docs/wsfracbnn.md) then computes every layer from MDFI's
own inputs to it.  The integer body ([dualpath], [fracconv], [maxpool],
[route]) must be equal bit for bit; the float stem and
head (float64 in the reference) are compared by prediction.  Prints a JSON
summary (--record: also stored in PREFIX.json as "numpy_reference"); exits 1
if any body layer differs.
"""
import argparse
import json
import sys
import time

import numpy as np

import mdfi
from mdfi import datasets
from weights_tools import dualpath_ref
from weights_tools.darknet_cfg import layers_of
from weights_tools.darknet_weights import read_weights

BODY = ("dualpath", "fracconv", "maxpool", "route")


def check(cfg, weights, x, y=None, log=None):
    """{'n', 'body_layers', 'body_mismatches', 'predictions_agree', 'mdfi_accuracy'}
    over images x (labels y)."""
    layers = layers_of(cfg)
    arrays = read_weights(layers, weights)
    body = [layer.index for layer in layers if layer.type in BODY]
    mismatches, agree, correct = 0, 0, 0
    t0 = time.time()
    with mdfi.Network(cfg, weights, threads=1, keep_outputs=True) as net:
        for k, img in enumerate(x):
            out = net.forward(img)
            got = [net.layer_output(i) for i in range(len(layers))]
            ref = dualpath_ref.run(layers, arrays, img, given=got)
            mismatches += sum(not np.array_equal(ref[i], got[i]) for i in body)
            agree += int(np.argmax(ref[-1]) == np.argmax(out))
            correct += int(y is not None and np.argmax(out) == y[k])
            if log and (k + 1) % 100 == 0:
                log("%d/%d images, %d body mismatches (%.0f s)" % (k + 1, len(x), mismatches,
                                                                  time.time() - t0))
    return {"n": len(x), "body_layers": len(body), "body_mismatches": mismatches,
            "predictions_agree": agree / max(len(x), 1),
            "mdfi_accuracy": correct / max(len(x), 1) if y is not None else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="the model, without .cfg/.weights")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, help="the first N test images (default: all)")
    ap.add_argument("--record", action="store_true", help="store the summary in PREFIX.json")
    args = ap.parse_args(argv)
    data = datasets.load(args.dataset, train=False)
    n = args.n or len(data.y_test)
    res = check(args.prefix + ".cfg", args.prefix + ".weights", data.x_test[:n], data.y_test[:n],
                log=lambda s: print(s, file=sys.stderr))
    res["command"] = "python examples/dualpath_exact.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(json.dumps(res, indent=1))
    if args.record:
        with open(args.prefix + ".json") as f:
            record = json.load(f)
        record["numpy_reference"] = res
        with open(args.prefix + ".json", "w") as f:
            json.dump(record, f, indent=1)
    return 1 if res["body_mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
