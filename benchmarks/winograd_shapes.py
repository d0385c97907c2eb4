"""Winograd F(4,3) against the direct GEMM on single 3x3 convolutions, per shape: the
measurements behind the auto choice (`use_winograd` in csrc/layers/gemm_layer.c,
docs/architecture.md).  A benchmark, not a timed test.

    python benchmarks/winograd_shapes.py --cin 3 8 16 24 --cout 8 16 32 --size 7 14 28

For each shape, a one-layer network (BN, leaky, random weights) is run with
winograd=False, True and auto in turns, --runs forwards each; the minimum of the
layer's profiled time is kept.  Prints direct ms, Winograd ms, their ratio (> 1:
Winograd faster) and what auto chose (the path whose output bits auto's equal: the
two paths round differently).  Name the CPU
beside any figure you quote; absolute times do not compare across machines.
"""
import argparse
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import mdfi  # noqa: E402
from mdfi.bench import cpu_name  # noqa: E402

CFG = ("[net]\nwidth={s}\nheight={s}\nchannels={c}\n\n[convolutional]\nbatch_normalize=1\n"
       "filters={m}\nsize=3\nstride=1\npad=1\nactivation=leaky\n")


def write_weights(path, c, m, rng):
    """A Darknet .weights file for CFG: header, then BN biases, scales, means,
    variances and the filters."""
    with open(path, "wb") as f:
        np.array([0, 2, 0], np.int32).tofile(f)
        np.array([0], np.uint64).tofile(f)
        for a in (rng.uniform(-.1, .1, m), np.ones(m), np.zeros(m), np.ones(m),
                  rng.uniform(-.2, .2, m * c * 9)):
            a.astype(np.float32).tofile(f)


def layer_ms(cfg, weights, x, runs):
    """({False: direct ms, True: Winograd ms, None: auto ms}, minima over interleaved
    runs; the path auto took)."""
    nets = {w: mdfi.Network(cfg, weights, threads=1, winograd=w) for w in (False, True, None)}
    times = {w: [] for w in nets}
    try:
        out = {w: net.forward(x).copy() for w, net in nets.items()}
        for net in nets.values():
            for _ in range(5):
                net.forward(x)
            net.set_profile(True)
        for _ in range(runs):
            for w, net in nets.items():
                net.forward(x)
                times[w].append(net.layer_times()[0])
    finally:
        for net in nets.values():
            net.close()
    if np.array_equal(out[False], out[True]):
        raise RuntimeError("the two paths gave the same bits: cannot tell auto's choice")
    return ({w: min(t) for w, t in times.items()},
            "winograd" if np.array_equal(out[None], out[True]) else "direct")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cin", type=int, nargs="+", default=[3, 8, 12, 16, 24, 32])
    ap.add_argument("--cout", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--size", type=int, nargs="+", default=[7, 14, 28, 56])
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args(argv)
    print("CPU: %s, one thread, minimum of %d interleaved forwards" % (cpu_name(), args.runs))
    print("%5s %5s %5s %10s %10s %7s %s" % ("size", "cin", "cout", "direct ms", "wino ms",
                                          "ratio", "auto"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg, weights = os.path.join(tmp, "conv.cfg"), os.path.join(tmp, "conv.weights")
        rng = np.random.default_rng(0)
        for s in args.size:
            for c in args.cin:
                for m in args.cout:
                    with open(cfg, "w") as f:
                        f.write(CFG.format(s=s, c=c, m=m))
                    write_weights(weights, c, m, rng)
                    x = rng.random((c, s, s), dtype=np.float32)
                    t, auto = layer_ms(cfg, weights, x, args.runs)
                    print("%5d %5d %5d %10.4f %10.4f %7.2f %s"
                          % (s, c, m, t[False], t[True], t[False] / t[True], auto), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
