"""Zoo cfgs against OpenCV's DNN module, fp32, one thread (not a timed test).

    python benchmarks/zoo_bench.py [--cfg ab/yolov4-tiny.cfg:416 ...] [--rounds 8]

Each cfg comes from tests/data/darknet-cfgs.tar.gz, resized to the given input size,
with weights made by tests/data/gen_weights.py (seed 1); MDFI and OpenCV run the same
random input in turns, in this one process.  Printed per cfg: the median and minimum of
each and the ratio of the minima (MDFI / OpenCV; below 1, MDFI is faster).  The CPU is
printed first: figures from different machines do not compare.
"""
import argparse
import pathlib
import platform
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

import mdfi

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "tests" / "data" / "darknet-cfgs.tar.gz"
GEN = ROOT / "tests" / "data" / "gen_weights.py"
DEFAULT = ["ab/yolov4-tiny.cfg:416", "ab/yolov4-csp-s-mish.cfg:416", "ab/efficientnet_b0.cfg:224"]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def prepare(tmp, name, size):
    with tarfile.open(ARCHIVE) as tar:
        text = tar.extractfile(name).read().decode()
    lines, seen = text.splitlines(), set()
    for i, line in enumerate(lines):
        key = line.split("=")[0].strip()
        if key in ("width", "height") and key not in seen:
            lines[i] = f"{key}={size}"
            seen.add(key)
    cfg = tmp / pathlib.Path(name).name
    cfg.write_text("\n".join(lines) + "\n")
    weights = cfg.with_suffix(".weights")
    subprocess.run([sys.executable, str(GEN), str(cfg), "1", str(weights)], check=True,
                   capture_output=True)
    return cfg, weights


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfg", nargs="+", default=DEFAULT, metavar="NAME:SIZE")
    p.add_argument("--rounds", type=int, default=8)
    a = p.parse_args(argv)
    import cv2
    cv2.setNumThreads(1)
    print(f"CPU: {cpu_name()}; OpenCV {cv2.__version__}; MDFI {mdfi.__version__}, 1 thread")
    with tempfile.TemporaryDirectory() as d:
        for spec in a.cfg:
            name, size = spec.rsplit(":", 1)
            cfg, weights = prepare(pathlib.Path(d), name, int(size))
            with mdfi.Network(cfg, weights, threads=1) as net:
                cv = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
                cv.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
                outs = cv.getUnconnectedOutLayersNames()
                x = np.random.default_rng(0).random(net.layers[0].input_shape, dtype=np.float32)
                tm, tc = [], []
                for _ in range(a.rounds):
                    t = time.perf_counter()
                    net.forward(x)
                    tm.append(time.perf_counter() - t)
                    cv.setInput(x[None])
                    t = time.perf_counter()
                    cv.forward(outs)
                    tc.append(time.perf_counter() - t)
                print(f"{name} @{size} ({net.kernel}): MDFI median {1e3 * np.median(tm):.1f} ms, "
                      f"min {1e3 * min(tm):.1f} | OpenCV median {1e3 * np.median(tc):.1f}, "
                      f"min {1e3 * min(tc):.1f} | MDFI/OpenCV {min(tm) / min(tc):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
