"""Per-layer benchmark of the binary convolutions (not a timed test).

    python benchmarks/binary_bench.py [--repeat N] [--quick] [--isa ISA] [--json OUT]

1. Kernel level, from the C driver (tests/c/test_bgemm.c --bench): 3x3,
   stride-1 convolutions with C = M = 64..512 input/output channels at
   13, 26 and 52 px, one thread: MDFI's fp32 GEMM, its int8 GEMM (if the
   build has it), and the binary kernel with float output and with bit output
   (a fused binary -> binary layer).  The binary time is a whole
   mdfi_bconv_run over the padded bit input, as a layer calls it: B packing,
   padding correction and the epilogue included (leaky, with BN-like alpha
   and beta).  The input is already bits, as in a fused chain; an unfused
   layer also packs its float input (the driver's pack% column, and part 2).
   The driver runs --repeat times and every cell keeps its best time, since
   the machine may be shared.  Reported: the ratios, and binary
   multiply-accumulates per core cycle (one MAC = one XNOR + popcount bit;
   binary ops = 2 x MACs).
2. Layer level, through mdfi.Network: a one-layer net of each shape, float
   input, the same conv as a float layer and as xnor=1 (which includes
   quantizing the float input to bits), median of the layer's time (the
   core's per-layer profile).

--isa avx2 takes every kernel of both parts from that ISA (fp32, int8 and
binary), e.g. to measure an AVX2-only CPU's paths on an AVX-512 machine.

Numbers depend on the CPU; docs/binary.md records a run.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

# numpy's BLAS threads spin between calls and steal the cores being measured
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ROW = re.compile(r"^(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s", re.M)
CLOCK = re.compile(r"^clock ([\d.]+) GHz \(([^)]*)\); binary (\S+), fp32 (\S+), int8 (\S+);", re.M)


def kernel_level(exe, repeat, quick, isa=None):
    best, info, ghz = {}, None, 0.0
    for _ in range(repeat):
        out = subprocess.run([str(exe), "--bench"] + (["--quick"] if quick else []) +
                             (["--isa", isa] if isa else []),
                             capture_output=True, text=True, check=True).stdout
        m = CLOCK.search(out)
        ghz = max(ghz, float(m.group(1)))
        info = m.groups()[2:]
        for r in ROW.findall(out):
            key = tuple(int(v) for v in r[:3])
            vals = [float(v) for v in r[3:]]
            old = best.get(key)
            best[key] = vals if old is None else [min(a, b) if b > 0 else a for a, b in zip(vals, old)]
    return best, info, ghz


def layer_level(shapes, repeat, isa=None):
    import numpy as np

    import mdfi
    import weights_tools as wt
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c, hw in shapes:
            times = {}
            for kind in ("float", "xnor"):
                cfg = pathlib.Path(tmp) / f"{kind}{c}_{hw}.cfg"
                cfg.write_text(f"[net]\nwidth={hw}\nheight={hw}\nchannels={c}\n"
                               f"[convolutional]\nfilters={c}\nsize=3\npad=1\nbatch_normalize=1\n"
                               f"activation=leaky\n" + ("xnor=1\n" if kind == "xnor" else ""))
                rng = np.random.default_rng(c + hw)
                layers = wt.layers_of(cfg)
                arrays = {n: rng.uniform(0.5, 1.5, shp).astype(np.float32)
                          for n, shp in layers[0].params}
                arrays["weights"] -= 1.0     # both signs
                weights = pathlib.Path(tmp) / f"{kind}{c}_{hw}.weights"
                weights.write_bytes(wt.write_weights(layers, wt.DarknetWeights(layers=[arrays])))
                x = rng.uniform(-1, 1, (c, hw, hw)).astype(np.float32)
                with mdfi.Network(cfg, weights, threads=1, kernel=isa) as net:
                    net.forward(x)
                    # the layer's own time when the core can profile, else the forward call
                    profile = hasattr(net, "set_profile")
                    if profile:
                        net.set_profile(True)
                    ts = []
                    for _ in range(max(9, 5 * repeat)):
                        t0 = time.perf_counter()
                        net.forward(x)
                        ts.append(net.layer_times()[0] * 1e-3 if profile
                                  else time.perf_counter() - t0)
                    times[kind] = sorted(ts)[len(ts) // 2]
                    if kind == "xnor":
                        times["xnor_weight_bytes"] = net.weight_bytes
            res[(c, hw)] = times
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="driver runs; best time per cell")
    ap.add_argument("--quick", action="store_true", help="two shapes, short timings")
    ap.add_argument("--isa", help="every kernel from this ISA (ref, avx2, avx512, neon)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    from cbuild import build
    exe = build(targets=("tests",)) / "tests" / "test_bgemm"
    best, info, ghz = kernel_level(exe, args.repeat, args.quick, args.isa)
    binary, fp32, int8 = info
    print(f"kernel level, one thread, best of {args.repeat} runs; core clock {ghz:.2f} GHz; "
          f"binary {binary}, fp32 {fp32}, int8 {int8}")
    print(f"{'C=M':>4} {'px':>3} {'fp32 ms':>9} {'int8 ms':>9} {'bin ms':>8} {'bits ms':>8} "
          f"{'x fp32':>7} {'x int8':>7} {'bits x fp32':>11} {'MAC/cycle':>9} {'ops/cycle':>9}")
    rows = []
    for (c, m, hw), (tf, tq, tb, tbb) in sorted(best.items()):
        macs = m * c * 9 * hw * hw
        mpc = macs / (tb * 1e-3) / (ghz * 1e9)
        rows.append({"C": c, "M": m, "hw": hw, "fp32_ms": tf, "int8_ms": tq, "binary_ms": tb,
                     "binary_bits_ms": tbb, "x_fp32": tf / tb, "x_int8": tq / tb if tq else None,
                     "bits_x_fp32": tf / tbb, "mac_per_cycle": mpc})
        print(f"{c:>4} {hw:>3} {tf:>9.3f} {tq:>9.3f} {tb:>8.3f} {tbb:>8.3f} {tf / tb:>7.1f} "
              f"{(tq / tb if tq else 0):>7.1f} {tf / tbb:>11.1f} {mpc:>9.0f} {2 * mpc:>9.0f}")
    big = [r for r in rows if r["C"] >= 128]
    if big:
        print(f"C >= 128: binary / fp32 speed-up {min(r['x_fp32'] for r in big):.1f}x .. "
              f"{max(r['x_fp32'] for r in big):.1f}x (float output), "
              f"{min(r['bits_x_fp32'] for r in big):.1f}x .. {max(r['bits_x_fp32'] for r in big):.1f}x "
              f"(bit output)")
    shapes = sorted({(r["C"], r["hw"]) for r in rows})
    lay = layer_level(shapes, args.repeat, args.isa)
    print("\nlayer level (mdfi.Network layer time, float in, float out, one thread, median)")
    print(f"{'C=M':>4} {'px':>3} {'float ms':>9} {'xnor ms':>9} {'x':>6} {'xnor weights B':>15} "
          f"{'float weights B':>16}")
    for (c, hw), t in sorted(lay.items()):
        fb = c * c * 9 * 4
        print(f"{c:>4} {hw:>3} {t['float'] * 1e3:>9.3f} {t['xnor'] * 1e3:>9.3f} "
              f"{t['float'] / t['xnor']:>6.1f} {t['xnor_weight_bytes']:>15d} {fb:>16d}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clock_ghz": ghz, "binary": binary, "fp32": fp32, "int8": int8,
                       "isa": args.isa,
                       "kernel": rows,
                       "layer": [{"C": c, "hw": hw, **t} for (c, hw), t in sorted(lay.items())]},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
