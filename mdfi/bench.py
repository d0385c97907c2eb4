"""python -m mdfi.bench: MDFI vs OpenCV DNN on the same network and input, same run.

Prints the median and min forward time of each at every thread count, and their
ratio (MDFI / OpenCV: below 1 is faster).  With the mdfi program built (make), also
reports its peak RSS from `mdfi bench`.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from .network import Network
from .pipeline import resolve_model

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cpu_name():
    """The CPU's model name (Linux), else what platform knows: the benchmarks and the
    example records print it beside every time."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def timed(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def native_program():
    """The mdfi program `make` built for this machine (path), or None: not a cross
    build for another CPU beside it (build/aarch64-linux-gnu/ on an x86 machine),
    not the sanitizer build (build/*-san/)."""
    machine = platform.machine()
    prefix = "arm" if machine.startswith("arm") else machine   # armv7l: arm-linux-gnueabihf
    for exe in sorted(ROOT.glob("build/*/mdfi")):
        name = exe.parent.name
        if name.startswith(prefix + "-") and not name.endswith("-san") and exe.is_file() \
                and os.access(exe, os.X_OK):
            return str(exe)
    return None


def program_bench(exe, cfg, weights, runs=3, threads=1, kernel=None, timeout=None,
                  as_bytes=False):
    """The JSON report of `exe bench CFG WEIGHTS --json` (the mdfi program:
    median_ms, min_ms, peak_rss_kb, ...); as_bytes: the input as 8-bit pixels
    (`--bytes`, fixed-point first layers only).  RuntimeError with its message
    if it fails."""
    cmd = [exe, "bench", str(cfg), str(weights), "--runs", str(runs), "--threads",
           str(threads), "--json"]
    if kernel:
        cmd += ["--kernel", kernel]
    if as_bytes:
        cmd.append("--bytes")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError("%s bench %s: %s" % (exe, cfg, res.stderr.strip()))
    return json.loads(res.stdout)


def program_ms(exe, cfg, weights, runs, threads=1):
    """(median, min) ms per forward of `exe bench CFG WEIGHTS` (the mdfi
    program): the engine's time in C, without Python's per-call cost."""
    r = program_bench(exe, cfg, weights, runs, threads)
    return r["median_ms"], r["min_ms"]


def program_rss(cfg, weights, threads):
    """Peak RSS of the mdfi program's bench, if the program is built."""
    exe = native_program()
    if exe is None:
        return None
    try:
        return program_bench(exe, cfg, weights, 3, threads)
    except RuntimeError:
        return None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mdfi.bench", description=__doc__)
    p.add_argument("--model", default="yolov3-tiny")
    p.add_argument("--cfg")
    p.add_argument("--weights")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--kernel", help="force an MDFI kernel path")
    p.add_argument("--no-opencv", action="store_true")
    args = p.parse_args(argv)
    cfg, weights, _ = resolve_model(args.model, args.cfg, args.weights)
    cv2 = None
    if not args.no_opencv:
        try:
            import cv2
        except ImportError:
            print("OpenCV not installed (pip install 'opencv-python-headless<5'): MDFI only")
    rng = np.random.default_rng(0)
    rows = []
    for threads in args.threads:
        with Network(cfg, weights, threads=threads, kernel=args.kernel) as net:
            x = rng.random(net.input_shape, dtype=np.float32)
            med, mn = timed(lambda: net.forward(x), args.runs)
            kernel = net.kernel
        row = {"threads": threads, "kernel": kernel, "mdfi_median_ms": med, "mdfi_min_ms": mn}
        if cv2 is not None:
            cv2.setNumThreads(threads)
            cvnet = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
            cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            outs = cvnet.getUnconnectedOutLayersNames()

            def cv_forward():
                cvnet.setInput(x[None])
                cvnet.forward(outs)
            cmed, cmn = timed(cv_forward, args.runs)
            row.update(opencv_median_ms=cmed, opencv_min_ms=cmn, ratio=med / cmed)
        rss = program_rss(cfg, weights, threads)
        if rss:
            row["program_peak_rss_mb"] = rss["peak_rss_kb"] / 1024
        rows.append(row)
        line = (f"threads {threads}: MDFI ({kernel}) median {med:.1f} ms (min {mn:.1f})")
        if "ratio" in row:
            line += (f" | OpenCV {cv2.__version__} median {row['opencv_median_ms']:.1f} ms "
                     f"(min {row['opencv_min_ms']:.1f}) | ratio MDFI/OpenCV {row['ratio']:.2f}")
        if rss:
            line += f" | mdfi program peak RSS {row['program_peak_rss_mb']:.1f} MB"
        print(line, flush=True)
    print(json.dumps({"model": str(cfg), "runs": args.runs, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
