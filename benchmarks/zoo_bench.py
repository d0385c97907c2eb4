"""Zoo cfgs against OpenCV's DNN module and ONNX Runtime, one thread (not a timed test).

    python benchmarks/zoo_bench.py [--cfg ab/yolov4-tiny.cfg:416 ...] [--rounds 8]
                                   [--calib IMAGES_OR_DIR ...]

Each cfg comes from tests/data/darknet-cfgs.tar.gz, resized to the given input size,
with weights made by tests/data/gen_weights.py (seed 1).  The engines run the same
random input in turns, in this one process: MDFI fp32; MDFI int8 (`python -m
weights_tools quantize --weight-scale mult`, calibrated on --calib, only when given);
OpenCV fp32 (it reads the Darknet files itself); ONNX Runtime fp32 (when installed: the
model exported by MDFI's PyTorch bridge, import_darknet then torch.onnx.export).
Printed per cfg and engine: the median and minimum, and each minimum over MDFI fp32's.
The CPU is printed first: figures from different machines do not compare.
"""
import argparse
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings

import numpy as np

import mdfi
from mdfi.bench import cpu_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "tests" / "data" / "darknet-cfgs.tar.gz"
GEN = ROOT / "tests" / "data" / "gen_weights.py"
DEFAULT = ["ab/yolov4-tiny.cfg:416", "ab/yolov4-csp-s-mish.cfg:416", "ab/efficientnet_b0.cfg:224"]



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
    p.add_argument("--calib", nargs="+", help="images for MDFI's int8 calibration")
    a = p.parse_args(argv)
    import cv2
    cv2.setNumThreads(1)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    print(f"CPU: {cpu_name()}; MDFI {mdfi.__version__}; OpenCV {cv2.__version__}; ONNX Runtime "
          f"{ort.__version__ if ort else 'not installed'}; 1 thread")
    with tempfile.TemporaryDirectory() as d:
        for spec in a.cfg:
            name, size = spec.rsplit(":", 1)
            cfg, weights = prepare(pathlib.Path(d), name, int(size))
            engines = engines_for(cfg, weights, a.calib, cv2, ort)
            x = np.random.default_rng(0).random(engines[0][2], dtype=np.float32)
            times = {e[0]: [] for e in engines}
            for _ in range(a.rounds):
                for label, run, _ in engines:
                    t = time.perf_counter()
                    run(x)
                    times[label].append(time.perf_counter() - t)
            base = min(times["MDFI fp32"])
            print(f"{name} @{size}:")
            for label, ts in times.items():
                print(f"  {label:<18} median {1e3 * np.median(ts):7.1f} ms, min {1e3 * min(ts):7.1f}"
                      f"  ({min(ts) / base:.2f} x MDFI fp32)")
            for label, run, _ in engines:
                getattr(run, "close", lambda: None)()
    return 0


class _Mdfi:
    def __init__(self, cfg, weights):
        self.net = mdfi.Network(cfg, weights, threads=1)

    def __call__(self, x):
        self.net.forward(x)

    def close(self):
        self.net.close()


def engines_for(cfg, weights, calib, cv2, ort):
    """(label, run(x), input shape) for each engine this machine has."""
    fp32 = _Mdfi(cfg, weights)
    shape = fp32.net.layers[0].input_shape
    out = [("MDFI fp32", fp32, shape)]
    if calib:
        q = cfg.with_name(cfg.stem + "_int8")
        res = subprocess.run([sys.executable, "-m", "weights_tools", "quantize", str(cfg),
                              str(weights), "--weight-scale", "mult", "--quiet", "--calib",
                              *calib, "-o", str(q)], capture_output=True, text=True)
        if res.returncode == 0:
            out.append(("MDFI int8", _Mdfi(q.with_suffix(".cfg"), q.with_suffix(".qweights")),
                        shape))
        else:   # e.g. mish and swish have no fixed-point form
            print(f"  (no int8: {(res.stderr.strip().splitlines() or ['?'])[-1]})")
    cv = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    cv.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    names = cv.getUnconnectedOutLayersNames()

    def run_cv(x):
        cv.setInput(x[None])
        cv.forward(names)
    out.append(("OpenCV fp32", run_cv, shape))
    if ort is not None:
        import torch
        from weights_tools.torch.importer import import_darknet
        model = import_darknet(str(cfg), str(weights)).eval()
        onnx = cfg.with_suffix(".onnx")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the exporter's notes on constant folding
            torch.onnx.export(model, torch.zeros((1, *shape)), str(onnx), opset_version=17,
                              dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
        feed = sess.get_inputs()[0].name
        out.append(("ONNX Runtime fp32", lambda x: sess.run(None, {feed: x[None]}), shape))
    return out


if __name__ == "__main__":
    sys.exit(main())
