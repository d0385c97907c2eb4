"""MDFI int8 yolov3-tiny against OpenCV DNN fp32 and MDFI fp32, in the same run.

    python benchmarks/int8_bench.py [--runs 30] [--threads 1] [--variants int8 mixed 16]

The engines are timed in interleaved rounds (one forward of each per round), so
that load from other processes on a shared machine hits them alike; medians are
reported.  Then the per-layer times of the int8 network (its top layers) and the
int8 multiply-accumulates per cycle, at the clock /proc/cpuinfo reports (or --ghz).

The int8 model is the one `python -m mdfi.detect --int8` uses (made on first use,
calibrated on scikit-image's photos: 8-bit weights with multipliers, 16-bit
input in the layers --mixed picks, up to 60 % of the MACs); the others are
quantized here on the same photos: 8bit (the quantize default: all 8-bit,
power-of-two scales), mult (all 8-bit, multipliers), mixed (the default
budgets: <= 50 % of the MACs at 16 bits, file <= 30 % of the float one),
mixed-pc / mixed-mult (the same with per-channel powers of two / multipliers),
mixed75-pc (75 % of the MACs, no size limit, per-channel), w8a16-mult (8-bit
weights with multipliers, 16-bit activations everywhere) and 16-bit.  The
per-layer table is for the first variant listed.
"""
import argparse
import contextlib
import io
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mdfi  # noqa: E402
from mdfi import models  # noqa: E402
from weights_tools.quantize import calibration_photos, cached_int8, gemm_macs, quantize  # noqa: E402
from weights_tools import infer_layers, parse_cfg  # noqa: E402


def cpu_ghz():
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1e3 if mhz else None
    except OSError:
        return None


def make_variant(name, cfg, weights, tmp):
    if name == "int8":
        return cached_int8(cfg, weights)
    _, photos = calibration_photos()
    kw = {"8bit": {}, "mixed": dict(mixed=True), "16": dict(bits=16),
          "mixed-pc": dict(mixed=True, per_channel=True),
          "mixed75-pc": dict(mixed=True, mixed_budget=0.75, mixed_size=1.0, per_channel=True),
          "mult": dict(weight_scale="mult"),
          "mult-pair": dict(weight_scale="mult-pair"),
          "mixed-mult": dict(mixed=True, weight_scale="mult"),
          "w8a16-mult": dict(act_bits=16, weight_scale="mult")}[name]
    with contextlib.redirect_stdout(io.StringIO()):
        r = quantize(cfg, weights, photos, os.path.join(tmp, name), quiet=True,
                     check_images=False, **kw)
    return r["cfg"], r["qweights"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=["int8"],
                   choices=("int8", "8bit", "mult", "mult-pair", "mixed", "mixed-pc", "mixed-mult",
                            "mixed75-pc", "w8a16-mult", "16"))
    p.add_argument("--top", type=int, default=8, help="layers in the per-layer table")
    p.add_argument("--ghz", type=float, help="CPU clock for MACs/cycle (default /proc/cpuinfo)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    m = models.fetch("yolov3-tiny", quiet=True)
    cfg, weights = str(m["cfg"]), str(m["weights"])
    layers = infer_layers(parse_cfg(cfg))
    x = np.load(ROOT.parent / "shared" / "golden" / "yolov3-tiny" / "dog.input.npy") \
        if (ROOT.parent / "shared" / "golden").is_dir() else \
        mdfi.letterbox(mdfi.load_image(str(ROOT / "examples" / "dog.jpg")), 416, 416)
    x = np.ascontiguousarray(x, dtype=np.float32)

    engines = {}
    with tempfile.TemporaryDirectory(prefix="mdfi-int8-bench-") as tmp:
        for v in args.variants:
            qcfg, qw = make_variant(v, cfg, weights, tmp)
            engines["MDFI " + v] = mdfi.Network(qcfg, qw, threads=args.threads)
        engines["MDFI fp32"] = mdfi.Network(cfg, weights, threads=args.threads)
        try:
            import cv2
            cv2.setNumThreads(args.threads)
            cvnet = cv2.dnn.readNetFromDarknet(cfg, weights)
            cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            outs = cvnet.getUnconnectedOutLayersNames()

            class CV:
                kernel = "OpenCV %s" % cv2.__version__

                def forward(self, a):
                    cvnet.setInput(a[None])
                    cvnet.forward(outs)
            engines["OpenCV fp32"] = CV()
        except ImportError:
            print("OpenCV is not installed: no OpenCV column")
        times = {k: [] for k in engines}
        for e in engines.values():
            e.forward(x)   # warm-up
        for _ in range(args.runs):
            for k, e in engines.items():
                t0 = time.perf_counter()
                e.forward(x)
                times[k].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med.get("OpenCV fp32")
        print("yolov3-tiny 416x416, %d thread(s), %d interleaved runs (median / min ms):"
              % (args.threads, args.runs))
        for k in engines:
            kern = getattr(engines[k], "kernel", "")
            ratio = " | %.2fx OpenCV fp32" % (med[k] / base) if base else ""
            print("  %-16s %8.2f / %8.2f ms  (%s)%s" % (k, med[k], min(times[k]), kern, ratio))

        # per-layer profile of the first variant
        key = "MDFI " + args.variants[0]
        net = engines[key]
        net.set_profile(True)
        prof = np.zeros(len(net.layers))
        for _ in range(max(5, args.runs // 3)):
            net.forward(x)
            prof += np.array(net.layer_times())
        prof /= max(5, args.runs // 3)
        ghz = args.ghz or cpu_ghz()
        macs = np.array([gemm_macs(layer) if layer.type in ("convolutional", "connected") else 0
                         for layer in layers], dtype=np.float64)
        print("\n%s per layer (mean of profiled forwards; top %d of %.2f ms):"
              % (key, args.top, prof.sum()))
        print("  %5s %-14s %-16s %-14s %8s %7s %8s" % ("layer", "type", "output", "kernel",
                                                    "ms", "GMAC/s", "MAC/cyc"))
        for i in np.argsort(-prof)[:args.top]:
            li, fmt = net.layers[i], net.layer_format(i)
            gmacs = macs[i] / prof[i] / 1e6 if macs[i] and prof[i] > 0 else 0
            print("  %5d %-14s %-16s %-14s %8.3f %7.1f %8s" % (
                i, li.type, "x".join(map(str, li.output_shape)), fmt.kernel or "-", prof[i],
                gmacs, "%.1f" % (gmacs / ghz) if gmacs and ghz else "-"))
        gemm_ms = sum(prof[i] for i in range(len(prof)) if macs[i])
        total_macs = macs.sum()
        summary = {"threads": args.threads, "runs": args.runs, "median_ms": med,
                   "ratio_to_opencv": {k: med[k] / base for k in med} if base else None,
                   "ghz": ghz, "gemm_macs": total_macs, "gemm_ms": gemm_ms,
                   "layer_ms": prof.tolist()}
        if ghz:
            whole = total_macs / (med[key] * 1e-3) / (ghz * 1e9)
            conv = total_macs / (gemm_ms * 1e-3) / (ghz * 1e9)
            summary.update(macs_per_cycle_whole=whole, macs_per_cycle_gemm=conv)
            print("\n%s: %.2f G integer MACs; %.1f MACs/cycle over the whole forward, %.1f in the "
                  "conv layers (at %.2f GHz, %d thread(s))"
                  % (key, total_macs / 1e9, whole, conv, ghz, args.threads))
        for e in engines.values():
            if hasattr(e, "close"):
                e.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
