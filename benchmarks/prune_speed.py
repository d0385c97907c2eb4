"""Pruned models against the model they were pruned from: the engine's speed-up
beside the FLOPs ratio (issue 14: pruning must turn into time), in one run.

    python benchmarks/prune_speed.py [--rounds 15] [--runs 200] [--json OUT]
        [--models examples/models/fmnist_vgg examples/models/fmnist_vgg_c2s2 ...]

The first model is the unpruned one (default: examples/models/fmnist_vgg
and its committed 3x pruned versions).  Every model is timed in C, one
thread, MDFI's default kernels for this CPU: the models take turns, --rounds
rounds of the mdfi program's `bench` (--runs forwards each, timed inside the
program); the median of the rounds' medians is each model's time, and the
median of the rounds' minima a second figure that bursts of load on a shared
machine move less (a burst over half a round moves its median, not its
minimum).  The same through Python (`Network.forward`, in turns) is printed beside it: its
per-call cost (argument checks, copies in and out, some 10 us) is a larger
share of a smaller model's time, so it understates the engine's speed-up.

Prints per model its FLOPs (weights_tools.prune.costs.layer_flops),
the FLOPs ratio, the speed-up, and the speed-up as a share of the FLOPs
ratio.  Ratios compare models timed in the same run; name the CPU beside any
figure you quote.  Needs the mdfi program (make) and PyTorch (the FLOPs).
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mdfi  # noqa: E402
from mdfi.bench import cpu_name, native_program, program_ms  # noqa: E402

DEFAULT = [str(ROOT / "examples" / "models" / n)
           for n in ("fmnist_vgg", "fmnist_vgg_c2s2", "fmnist_vgg_l1", "fmnist_vgg_slimming")]


def flops_of(prefix):
    from weights_tools.prune.costs import layer_flops
    from weights_tools.torch import import_darknet
    return float(sum(layer_flops(import_darknet(prefix + ".cfg"))))


def python_ms(prefixes, rounds, runs):
    """Median ms per forward through Python, the models in turns."""
    nets = [mdfi.Network(p + ".cfg", p + ".weights", threads=1) for p in prefixes]
    try:
        x = np.random.default_rng(0).random(nets[0].input_shape, dtype=np.float32)
        times = [[] for _ in nets]
        for net in nets:
            for _ in range(5):
                net.forward(x)
        for _ in range(rounds):
            for net, t in zip(nets, times):
                t0 = time.perf_counter()
                for _ in range(runs):
                    net.forward(x)
                t.append(1e3 * (time.perf_counter() - t0) / runs)
        return [statistics.median(t) for t in times]
    finally:
        for net in nets:
            net.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=DEFAULT,
                    help="cfg/weights prefixes, the unpruned model first")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=200, help="forwards per model per round")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if len(args.models) < 2:
        ap.error("give the unpruned model and at least one pruned one")
    exe = native_program()
    if exe is None:
        print("prune_speed: error: the mdfi program is not built (run make)", file=sys.stderr)
        return 2
    flops = [flops_of(p) for p in args.models]
    rounds = [[] for _ in args.models]
    minima = [[] for _ in args.models]
    for _ in range(args.rounds):
        for p, r, m in zip(args.models, rounds, minima):
            med, lo = program_ms(exe, p + ".cfg", p + ".weights", args.runs)
            r.append(med)
            m.append(lo)
    c_ms = [statistics.median(r) for r in rounds]
    c_min = [statistics.median(m) for m in minima]
    py_ms = python_ms(args.models, args.rounds, args.runs)
    print("CPU: %s; one thread; %d rounds of %d forwards, models in turns; in C (%s bench)"
          % (cpu_name(), args.rounds, args.runs, os.path.relpath(exe, ROOT)))
    print("%-20s %7s %7s %8s %7s %8s | %8s %7s %8s | %9s %7s"
          % ("model", "MFLOPs", "fewer", "C ms", "faster", "of FLOPs", "C min", "faster",
             "of FLOPs", "Python ms", "faster"))
    rows = []
    for p, f, c, lo, q in zip(args.models, flops, c_ms, c_min, py_ms):
        row = {"model": os.path.relpath(p, ROOT), "flops": f, "flops_ratio": flops[0] / f,
               "c_ms": c, "speedup": c_ms[0] / c, "c_min_ms": lo,
               "speedup_min": c_min[0] / lo, "python_ms": q, "python_speedup": py_ms[0] / q}
        row["speedup_of_flops_ratio"] = row["speedup"] / row["flops_ratio"]
        row["speedup_min_of_flops_ratio"] = row["speedup_min"] / row["flops_ratio"]
        rows.append(row)
        print("%-20s %7.2f %6.2fx %8.4f %6.2fx %7.0f%% | %8.4f %6.2fx %7.0f%% | %9.4f %6.2fx"
              % (os.path.basename(p), f / 1e6, row["flops_ratio"], c, row["speedup"],
                 100 * row["speedup_of_flops_ratio"], lo, row["speedup_min"],
                 100 * row["speedup_min_of_flops_ratio"], q, row["python_speedup"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "rounds": args.rounds, "runs": args.runs,
                       "command": "python benchmarks/prune_speed.py " + " ".join(
                           argv if argv is not None else sys.argv[1:]),
                       "per_round_c_ms": {os.path.basename(p): r
                                          for p, r in zip(args.models, rounds)},
                       "per_round_c_min_ms": {os.path.basename(p): m
                                              for p, m in zip(args.models, minima)},
                       "models": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
