"""Storage and speed of the dual-path binary network against its float and
XNOR versions, in one run (a benchmark, not a timed test; docs/dualpath.md).

    python benchmarks/dualpath_bench.py [--rounds 15] [--images 50] [--json OUT]
        [--prefix fmnist_dp_ [--stem 32 --widths 64,128]]

The four networks of examples/train_dualpath.py (float, xnor, dual1, dual1.5),
from examples/models/PREFIX*.cfg/.weights where trained (PREFIX fmnist_dp_:
fmnist_dp_float, fmnist_dp_dual15, ...), else exported from freshly
initialised PyTorch models of the shape --stem / --widths give (the time does
not depend on the values; give the trained models' shape).  For each:

- storage: the .weights file; the packed file (python -m weights_tools.xnor_pack:
  one bit per binary weight); the binary body's weights packed against the
  same convolutions' float32 weights;
- time per image, one thread, MDFI's default kernels for this CPU, in C:
  the networks take turns, --rounds rounds of the mdfi program's `bench`
  (--images forwards each, timed inside the program), median and min over
  rounds; ratio float / network.  Where the program is not built, and
  beside it in any case: the same through Python (`Network.forward` per
  image, --images images a round), whose per-call cost (argument checks,
  the copies in and out) weighs more on the faster networks;
- the share of the time spent outside the binary layers (stem, pooling, head),
  and each body layer's time, from the core's per-layer profile: one
  profiled pass a round per network, the median over the rounds, and the
  range of each layer's ratio to float over the rounds.

Ratios compare networks timed in the same process, in turns; absolute times
do not compare across machines.  Name the CPU beside any figure you quote.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import numpy as np  # noqa: E402

import mdfi  # noqa: E402
from mdfi.bench import cpu_name, native_program, program_ms  # noqa: E402
from weights_tools import xnor_pack  # noqa: E402
from weights_tools.darknet_cfg import layers_of  # noqa: E402

VARIANTS = ("float", "xnor", "dual1", "dual1.5")
BINARY_TYPES = ("dualpath",)



def model_files(variant, tmp, name="fmnist_dp_", shape=None):
    """(cfg, weights, "trained") of examples/models/NAME + variant, or a freshly
    initialised network of that variant exported to tmp; shape: the builder's
    keyword arguments (stem, widths), its defaults where None."""
    prefix = ROOT / "examples" / "models" / (name + variant.replace(".", ""))
    if prefix.with_suffix(".cfg").exists() and prefix.with_suffix(".weights").exists():
        return str(prefix) + ".cfg", str(prefix) + ".weights", "trained"
    import torch
    from train_dualpath import build
    from weights_tools.torch import save
    torch.manual_seed(0)
    net = build(variant, (1, 28, 28), 10, **(shape or {})).eval()
    cfg, weights = save(net, os.path.join(tmp, variant))
    return cfg, weights, "initialised"


def is_binary(layer):
    return layer.type in BINARY_TYPES or (layer.type == "convolutional"
                                          and layer.section.get_int("xnor", 0))


def storage(cfg, weights):
    layers = layers_of(cfg)
    packed, rep = xnor_pack.pack(cfg, weights)
    body_float = sum(4 * int(np.prod(dict(layer.params)["weights"])) for layer in layers
                     if is_binary(layer))
    return {"weights_file": os.path.getsize(weights), "packed_file": len(packed),
            "binary_body_float32_bytes": body_float,
            "binary_body_packed_bytes": rep["total"]["packed_bytes"]}


def count(text, most=4096):
    """argparse type: a whole number in 1..most (rounds, images, channels)."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 0 < v <= most:
        raise argparse.ArgumentTypeError("expected a whole number in 1..%d, got %r" % (most, text))
    return v


def widths(text):
    """argparse type of --widths: two channel counts, A,B, B a multiple of A (each
    dual-path and float layer adds its input, its channels repeated)."""
    parts = text.split(",")
    w = tuple(count(t) for t in parts)
    if len(w) != 2 or w[1] % w[0]:
        raise argparse.ArgumentTypeError("expected A,B with B a multiple of A, got %r" % text)
    return w


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=lambda t: count(t, 10 ** 6), default=15)
    ap.add_argument("--images", type=lambda t: count(t, 10 ** 6), default=50)
    ap.add_argument("--json")
    ap.add_argument("--prefix", default="fmnist_dp_",
                    help="the trained models' names before the variant (default fmnist_dp_)")
    ap.add_argument("--stem", type=count, help="the untrained stand-ins' stem filters")
    ap.add_argument("--widths", type=widths, metavar="A,B",
                    help="the untrained stand-ins' widths (A a multiple of the stem)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    shape = {}
    if args.stem:
        shape["stem"] = args.stem
    if args.widths:
        shape["widths"] = args.widths
    stem, first = args.stem or 32, (args.widths or (64,))[0]   # train_dualpath's defaults
    if first % stem:
        ap.error("the first width (%d) must be a multiple of the stem's %d filters" % (first, stem))
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 1, 28, 28), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:   # the stand-ins' files, read to the end
        return run(args, x, tmp, shape)


def run(args, x, tmp, shape):
    files = {v: model_files(v, tmp, args.prefix, shape) for v in VARIANTS}
    nets = {v: mdfi.Network(files[v][0], files[v][1], threads=1) for v in VARIANTS}
    store = {v: storage(*files[v][:2]) for v in VARIANTS}
    times = {v: [] for v in VARIANTS}     # through Python
    ctimes = {v: [] for v in VARIANTS}    # in C: (median, min) of each round's program run
    exe = native_program()
    for net in nets.values():            # warm up
        for img in x[:5]:
            net.forward(img)
    per_round = {v: [] for v in VARIANTS}   # each round's profiled ms per layer (mean over x)
    for _ in range(args.rounds):
        for v, net in nets.items():
            if exe:
                ctimes[v].append(program_ms(exe, files[v][0], files[v][1], args.images))
            t0 = time.perf_counter()
            for img in x:
                net.forward(img)
            times[v].append((time.perf_counter() - t0) * 1e3 / len(x))
            # one profiled pass per round too: a single pass moved a layer's ratio by 10 %
            net.set_profile(True)
            per = np.zeros(len(net.layers))
            for img in x:
                net.forward(img)
                per += np.array(net.layer_times())
            net.set_profile(False)
            per_round[v].append(per / len(x))
    shares, body_ms, body_rounds = {}, {}, {}
    for v, net in nets.items():
        per = np.median(np.array(per_round[v]), axis=0)
        binary = [i for i, layer in enumerate(net.layers)
                  if layer.type in BINARY_TYPES or layer.xnor]
        shares[v] = {"non_binary_share": float(1 - per[binary].sum() / per.sum()) if binary else 1.0}
        # the four body convolutions, in order (the float net's first conv is the stem)
        convs = [i for i, layer in enumerate(net.layers)
                 if layer.type in ("dualpath", "convolutional")][1:]
        body_ms[v] = [(net.layers[i].input_shape, net.layers[i].output_shape, per[i])
                      for i in convs]
        body_rounds[v] = np.array(per_round[v])[:, convs]
    pmed = {v: statistics.median(t) for v, t in times.items()}
    if exe:
        med = {v: statistics.median(m for m, _ in t) for v, t in ctimes.items()}
        low = {v: min(m for _, m in t) for v, t in ctimes.items()}
        where = "in C (%s bench)" % os.path.relpath(exe, ROOT)
    else:
        med, low = pmed, {v: min(t) for v, t in times.items()}
        where = "through Python (the mdfi program is not built)"
    print("CPU: %s, one thread, %d rounds x %d images, timed %s"
          % (cpu_name(), args.rounds, args.images, where))
    print("%-8s %-11s %9s %9s %9s %10s %9s %12s %10s %12s"
          % ("network", "weights", "median ms", "min ms", "x float", "python ms", "x float",
             "non-binary %", "file B", "packed B"))
    rows = []
    for v in VARIANTS:
        row = {"variant": v, "weights": files[v][2], "timed": "c" if exe else "python",
               "median_ms": med[v], "min_ms": low[v], "speedup_vs_float": med["float"] / med[v],
               "python_median_ms": pmed[v], "python_speedup_vs_float": pmed["float"] / pmed[v],
               **shares[v], **store[v]}
        rows.append(row)
        print("%-8s %-11s %9.4f %9.4f %9.2f %10.4f %9.2f %12.1f %10d %12d"
              % (v, files[v][2], med[v], low[v], row["speedup_vs_float"], pmed[v],
                 row["python_speedup_vs_float"], 100 * row["non_binary_share"],
                 row["weights_file"], row["packed_file"]))
    for v in VARIANTS[1:]:
        s = store[v]
        print("%s: binary body %d float32 bytes -> %d packed (1/%.1f); whole file 1/%.1f of float's"
              % (v, s["binary_body_float32_bytes"], s["binary_body_packed_bytes"],
                 s["binary_body_float32_bytes"] / max(s["binary_body_packed_bytes"], 1),
                 store["float"]["weights_file"] / s["packed_file"]))
    print("body layers (profiled ms, mean over the images, median over the rounds): float / "
          "binary (x float, and its range over the rounds)")
    spread = {v: body_rounds["float"] / body_rounds[v] for v in VARIANTS[1:]}   # rounds x layers
    for k, (ins, outs, f) in enumerate(body_ms["float"]):
        print("  %s -> %s: float %.4f ms; %s" % (ins, outs, f, ", ".join(
            "%s %.4f (%.1fx, %.1f-%.1f)" % (v, body_ms[v][k][2], f / body_ms[v][k][2],
                                            spread[v][:, k].min(), spread[v][:, k].max())
            for v in VARIANTS[1:])))
    for row in rows:
        row["body_layers_ms"] = [ms for _, _, ms in body_ms[row["variant"]]]
        if row["variant"] != "float":
            row["body_layers_speedup_range"] = [[float(spread[row["variant"]][:, k].min()),
                                                 float(spread[row["variant"]][:, k].max())]
                                                for k in range(len(body_ms["float"]))]
    for net in nets.values():
        net.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "rounds": args.rounds, "images": args.images,
                       "command": " ".join(["python benchmarks/dualpath_bench.py"] +
                                           args.argv),
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
