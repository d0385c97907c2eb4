"""MDFI beside ONNX Runtime, OpenVINO and ncnn on yolov3-tiny (issue 18; not a timed test).

    python benchmarks/peers.py [--rounds 25] [--threads 1 2] [--engines NAME ...]
                               [--kernels avx2 ...] [--work DIR] [--no-rss] [--json PATH]

yolov3-tiny 416x416, batch 1, fp32 and int8.  The engines (--engines, default all):

  mdfi-fp32   MDFI, the float model (the kernel the CPU picks; --kernels adds rows
              with a kernel forced, e.g. avx2 on an AVX-512 machine)
  mdfi-wino-fp32  MDFI fp32 with the transformed weights of Winograd F(4,3) stored
              in every layer the default takes it (winograd="fast": faster, but 4x
              the weights of those layers, where the default makes the large ones
              on the fly)
  mdfi-int8   MDFI, the `python -m mdfi.detect --int8` model (INT8_RECIPE: 8-bit
              weights with per-channel multipliers, 16-bit input in the layers
              where 8 bits cost most), cached beside the float model
  mdfi-w8a8   MDFI, all layers 8-bit weights and 8-bit activations, per-channel
              multipliers (quantize --weight-scale mult), on the same photos
  mdfi-w8a8p  the same with weights whose adjacent pairs sum to at most 128 in
              magnitude (--weight-scale mult-pair), which AVX2 multiplies with
              vpmaddubsw (the avx2-8p kernel; ONNX Runtime's reduce_range keeps
              all weights within 7 bits for the same reason)
  ort-fp32    ONNX Runtime, the ONNX model of MDFI's PyTorch bridge
  ort-int8    ONNX Runtime, that model through ONNX Runtime's static quantizer:
              QDQ, per-channel int8 weights, uint8 activations, MinMax ranges;
              the [yolo] layers and the first convolution stay float (with the
              first convolution quantized too, --quantize-first, the peers keep
              about half the golden hits)
  ov-fp32     OpenVINO on the same fp32 ONNX file (f32 inference precision)
  ov-int8     OpenVINO on the same int8 ONNX file
  ncnn-fp32   ncnn on the model pnnx converts from the fp32 ONNX file (fp16/bf16
              storage off, so fp32 throughout; ncnn's pip wheel has no int8 tool)

The ONNX model: weights_tools.torch.import_darknet, batch normalization folded
into the convolutions, the maxpools without a zero pad and the upsample as a
Resize (the bridge's modules for Darknet's general cases trace to Pad/Slice/Tile
chains that would penalize the peers), torch.onnx.export with the two [yolo]
outputs (layers 16 and 23), then ONNX Runtime's quantization pre-processing
(shape inference, constant folding).  Both int8 models calibrate on the photos
the --int8 recipe uses (weights_tools.quantize.calibration_photos), each photo
letterboxed as detection does (weights_tools.calibrate.load_input).

Timing: every engine in this one process, interleaved (one forward of each per
round, the order rotated each round, a short untimed pause between engines so
that spinning worker threads go idle), on the same preloaded input (the golden
dog photo), at each --threads count; median and min per engine, and the
median CPU time of the process per forward (less sensitive to other load on
a shared machine).  Ratios: each MDFI row's median over the fastest peer's
median of its precision (and the same for the minimums).

Agreement: each engine's [yolo] outputs on the four golden photos against
Darknet's (/work/shared/golden or $MDFI_GOLDEN): a pre-NMS hit is an (anchor,
cell, class) where objectness x class probability > 0.5 (what
get_network_boxes keeps at thresh 0.5); Darknet has 17; "kept" counts those the
engine also has, "extra" the engine's hits Darknet does not have.

Memory: each engine's peak RSS (VmHWM) in a fresh Python process (load, 5
forwards), and the same less that process's peak after importing numpy only;
for MDFI also the C program's `mdfi bench` peak RSS when `make` has built it, and for
its int8 models that with the image held as bytes (`--bytes`: the first, fixed-point
layer quantizes them, and no float copy of the image exists).

Peers that are not installed (`pip install '.[bench]'`) are skipped with the
reason printed.  Models are made in --work (kept and reused when given, else a
temporary folder).
"""
import argparse
import contextlib
import gc
import io
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))
GOLDEN_PHOTOS = ("dog", "eagle", "horses", "person")
HEADS = (16, 23)          # yolov3-tiny's [yolo] layers
SIZE = 416
THRESH = 0.5
ENGINES = ("mdfi-fp32", "mdfi-wino-fp32", "mdfi-int8", "mdfi-w8a8", "mdfi-w8a8p", "ort-fp32",
           "ort-int8", "ov-fp32", "ov-int8", "ncnn-fp32")
LABELS = {"mdfi-fp32": "MDFI fp32", "mdfi-wino-fp32": "MDFI fp32, Winograd stored",
          "mdfi-int8": "MDFI --int8 recipe",
          "mdfi-w8a8": "MDFI W8A8 (mult)", "mdfi-w8a8p": "MDFI W8A8 paired (mult-pair)",
          "ort-fp32": "ONNX Runtime fp32",
          "ort-int8": "ONNX Runtime int8 (QDQ)", "ov-fp32": "OpenVINO fp32",
          "ov-int8": "OpenVINO int8 (QDQ)", "ncnn-fp32": "ncnn fp32 (pnnx)"}
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_int8", "amx_bf16",
              "asimd", "asimddp", "i8mm", "bf16")


class Skip(Exception):
    """An engine this machine cannot run; the message says why."""


# ----------------------------------------------------------------------------- the machine

def cpu_info():
    """{'name', 'flags' (the SIMD ones), 'cores' (usable), 'load'}."""
    from mdfi.bench import cpu_name
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"name": cpu_name(), "machine": platform.machine(),
            "flags": [f for f in SIMD_FLAGS if f in flags], "cores": cores,
            "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def peak_rss_kb():
    """VmHWM of this process in KiB (Linux), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ----------------------------------------------------------------------------- golden agreement

def golden_inputs(golden=GOLDEN):
    """{photo: float32 [3, 416, 416]} of the golden letterboxed inputs."""
    return {n: np.ascontiguousarray(np.load(golden / "yolov3-tiny" / f"{n}.input.npy"),
                                    dtype=np.float32) for n in GOLDEN_PHOTOS}


def golden_heads(golden=GOLDEN):
    """{photo: (yolo16, yolo23)} of Darknet's [yolo] outputs."""
    return {n: tuple(np.load(golden / "yolov3-tiny" / f"{n}.yolo{layer}.npy") for layer in HEADS)
            for n in GOLDEN_PHOTOS}


def hits(head, anchors=3, thresh=THRESH):
    """Boolean [anchors, classes, h, w]: objectness x class probability > thresh
    (the class probabilities get_network_boxes keeps; the objectness is then
    > thresh too).  head: a [yolo] output [anchors * (5 + classes), h, w]."""
    a = np.asarray(head, dtype=np.float32)
    a = a.reshape(anchors, -1, *a.shape[-2:])
    return a[:, 4:5] * a[:, 5:] > thresh


def agreement(got, want, thresh=THRESH):
    """{'golden', 'kept', 'extra', 'max_abs_diff'} of the pre-NMS hits of
    got = {photo: heads} against want (Darknet's)."""
    golden = kept = extra = 0
    diff = 0.0
    for name, heads in want.items():
        for g, w in zip(got[name], heads):
            hg, hw = hits(g, thresh=thresh), hits(w, thresh=thresh)
            golden += int(hw.sum())
            kept += int((hg & hw).sum())
            extra += int((hg & ~hw).sum())
            diff = max(diff, float(np.abs(np.asarray(g, np.float32).reshape(w.shape) - w).max()))
    return {"golden": golden, "kept": kept, "extra": extra, "max_abs_diff": diff}


# ----------------------------------------------------------------------------- making the models

def tiny_model():
    from mdfi import models
    m = models.fetch("yolov3-tiny", quiet=True)
    return str(m["cfg"]), str(m["weights"])


def calibration_inputs():
    """(description, [float32 [3, 416, 416]]): the --int8 recipe's photos, letterboxed."""
    from weights_tools.calibrate import load_input
    from weights_tools.quantize import calibration_photos
    what, paths = calibration_photos()
    return what, [load_input(p, (3, SIZE, SIZE)) for p in paths]


def _export_ready(model):
    """The bridge's model with BN folded and export-friendly equivalents of
    Darknet's maxpool and upsample (same values; the maxpool's only where every
    window overlaps the input, as in yolov3-tiny)."""
    import types
    import torch
    import torch.nn.functional as F
    from weights_tools.torch.layers import DARKNET_BN_EPS, Conv, MaxPool, Upsample

    def pool(self, x):
        h, w = x.shape[-2:]
        lo = self.padding // 2
        right = max(0, (self._out(w) - 1) * self.stride + self.size - lo - int(w))
        bottom = max(0, (self._out(h) - 1) * self.stride + self.size - lo - int(h))
        if lo or right or bottom:
            # every window overlaps the input, so repeating the edge gives the same
            # maxima as Darknet's -FLT_MAX; a -FLT_MAX constant in the graph would
            # also enter the int8 calibration's ranges
            x = F.pad(x, (lo, right, lo, bottom), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)

    def upsample(self, x):
        y = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        return y if self.scale == 1 else y * self.scale

    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            if isinstance(layer, MaxPool):
                h, w = model.shapes[i - 1][1:] if i else model.input_shape[1:]
                lo = layer.padding // 2
                for n, o in ((h, layer._out(h)), (w, layer._out(w))):
                    if lo >= layer.size or (o - 1) * layer.stride - lo >= n:
                        raise Skip("layer %d: a maxpool window outside the input" % i)
            if isinstance(layer, Conv) and layer.bn is not None and not layer.xnor:
                bn = layer.bn
                k = bn.weight / (torch.sqrt(bn.running_var) + DARKNET_BN_EPS)
                layer.weight.mul_(k.view(-1, 1, 1, 1))
                layer.bias.sub_(bn.running_mean * k)
                layer.bn = None
            elif isinstance(layer, MaxPool):
                layer.forward = types.MethodType(pool, layer)
            elif isinstance(layer, Upsample):
                layer.forward = types.MethodType(upsample, layer)
    return model


def export_onnx(cfg, weights, path):
    """yolov3-tiny -> ONNX (input 'images', outputs 'yolo16', 'yolo23') via
    MDFI's PyTorch bridge, then ONNX Runtime's quantization pre-processing."""
    try:
        import torch
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise Skip("the ONNX export needs torch, onnx and onnxruntime (%s)" % e) from None
    from weights_tools.torch import import_darknet

    model = _export_ready(import_darknet(cfg, weights))

    class Heads(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return tuple(self.net(x, outputs=list(HEADS)))

    raw = str(path) + ".raw.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Heads(model).eval(), torch.zeros(1, 3, SIZE, SIZE), raw,
                          opset_version=17, dynamo=False, input_names=["images"],
                          output_names=["yolo%d" % h for h in HEADS])
    with contextlib.redirect_stdout(io.StringIO()):
        quant_pre_process(raw, str(path))
    os.remove(raw)


def quantize_onnx(fp32, path, calib, first=False):
    """ONNX Runtime's static quantizer: QDQ, per-channel int8 weights, uint8
    activations, MinMax calibration on calib (a list of inputs).  The [yolo]
    layers stay float, and the first convolution too unless `first`."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"images": x[None]}

    import onnx
    # the [yolo] layers (reshape, slice, sigmoid, concat) stay float, as in MDFI:
    # one 8-bit scale over raw tw/th and the probabilities loses every detection
    # and so does the first convolution: its per-tensor uint8 output (before the
    # leaky) costs half the golden hits (8 of 17 kept with it, 16 without)
    heads = tuple("/layers.%d/" % h for h in HEADS) + (() if first else ("/layers.0/",))
    exclude = [n.name for n in onnx.load(str(fp32)).graph.node if n.name.startswith("/net")
               and any(h in n.name for h in heads)]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=exclude)


def pnnx_executable():
    try:
        import pnnx
        if os.path.exists(pnnx.EXEC_PATH):
            return pnnx.EXEC_PATH
    except (ImportError, AttributeError):
        pass
    return shutil.which("pnnx")


def convert_ncnn(onnx_path, param, binary):
    """(tool) after writing the ncnn files: pnnx, else onnx2ncnn."""
    work = pathlib.Path(param).parent
    exe = pnnx_executable()
    if exe:
        stem = str(work / "pnnx-out")
        cmd = [exe, str(onnx_path), "inputshape=[1,3,%d,%d]" % (SIZE, SIZE),
               "ncnnparam=" + str(param), "ncnnbin=" + str(binary),
               "pnnxparam=%s.pnnx.param" % stem, "pnnxbin=%s.pnnx.bin" % stem,
               "pnnxpy=%s_pnnx.py" % stem, "pnnxonnx=%s.pnnx.onnx" % stem,
               "ncnnpy=%s_ncnn.py" % stem]
        tool = "pnnx"
    elif shutil.which("onnx2ncnn"):
        cmd, tool = ["onnx2ncnn", str(onnx_path), str(param), str(binary)], "onnx2ncnn"
    else:
        raise Skip("ncnn needs pnnx (or onnx2ncnn) to convert the ONNX model")
    res = subprocess.run(cmd, cwd=str(work), capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(param):
        raise Skip("%s failed: %s" % (tool, (res.stderr or res.stdout).strip()[-300:]))
    return tool


class Models:
    """The model files, made on first use in `work` (reused when present)."""

    def __init__(self, work, log=print, quantize_first=False):
        self.work = pathlib.Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.cfg, self.weights = tiny_model()
        self._calib = None
        self.notes = {}
        self.quantize_first = quantize_first

    def calib(self):
        if self._calib is None:
            what, xs = calibration_inputs()
            self.notes["calibration"] = "%s (%d)" % (what, len(xs))
            self._calib = xs
        return self._calib

    def _made(self, path, what, make):
        if not path.exists():
            t = time.perf_counter()
            tmp = path.with_name(path.name + ".tmp")
            make(tmp)
            os.replace(tmp, path)
            self.log("  made %s in %.1f s: %s" % (what, time.perf_counter() - t, path))
        return str(path)

    def mdfi_fp32(self):
        return self.cfg, self.weights

    def mdfi_int8(self):
        from weights_tools.quantize import cached_int8
        return cached_int8(self.cfg, self.weights, quiet=True)

    def mdfi_w8a8(self, scale="mult"):
        base = self.work / ("tiny-w8a8" if scale == "mult" else "tiny-w8a8p")
        if not (base.with_suffix(".cfg").exists() and base.with_suffix(".qweights").exists()):
            from weights_tools.quantize import calibration_photos, quantize
            _, photos = calibration_photos()
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                quantize(self.cfg, self.weights, photos, str(base), quiet=True,
                         check_images=False, weight_scale=scale)
            self.log("  made the MDFI %s model in %.1f s" % (base.name, time.perf_counter() - t))
        return str(base.with_suffix(".cfg")), str(base.with_suffix(".qweights"))

    def mdfi_w8a8p(self):
        return self.mdfi_w8a8("mult-pair")

    def onnx_fp32(self):
        return self._made(self.work / "tiny-fp32.onnx", "the fp32 ONNX model",
                          lambda p: export_onnx(self.cfg, self.weights, p))

    def onnx_int8(self):
        fp32 = self.onnx_fp32()
        name = "tiny-int8-qdq%s.onnx" % ("-first" if self.quantize_first else "")
        if "calibration" not in self.notes:
            from weights_tools.quantize import calibration_photos
            what, paths = calibration_photos()
            self.notes["calibration"] = "%s (%d)" % (what, len(paths))
        self.notes["onnx_int8"] = "QDQ, per-channel int8 weights, uint8 activations, MinMax; " \
            "float: the [yolo] layers%s" % ("" if self.quantize_first else
                                            " and the first convolution")
        return self._made(self.work / name, "the int8 QDQ ONNX model",
                          lambda p: quantize_onnx(fp32, p, self.calib(), self.quantize_first))

    def ncnn_fp32(self):
        param, binary = self.work / "tiny-fp32.ncnn.param", self.work / "tiny-fp32.ncnn.bin"
        if not (param.exists() and binary.exists()):
            t = time.perf_counter()
            tool = convert_ncnn(self.onnx_fp32(), param, binary)
            (self.work / "ncnn-tool.txt").write_text(tool)
            self.log("  made the ncnn model with %s in %.1f s" % (tool, time.perf_counter() - t))
        self.notes["ncnn_tool"] = (self.work / "ncnn-tool.txt").read_text().strip() \
            if (self.work / "ncnn-tool.txt").exists() else "?"
        return str(param), str(binary)


# ----------------------------------------------------------------------------- engines

def _need(module):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Skip("%s is not installed (pip install '.[bench]'): %s" % (module, e)) from None


class MdfiEngine:
    def __init__(self, files, threads, kernel=None, winograd=None):
        import mdfi
        self.net = mdfi.Network(*files, threads=threads, kernel=kernel, winograd=winograd)
        self.version = "MDFI %s, %s kernel" % (mdfi.__version__, self.net.kernel)

    def run(self, x):
        self.net.forward(x)

    def heads(self, x):
        self.net.forward(x)
        return tuple(self.net.layer_output(h).copy() for h in HEADS)

    def close(self):
        self.net.close()


class OrtEngine:
    def __init__(self, path, threads):
        ort = _need("onnxruntime")
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        self.names = ["yolo%d" % h for h in HEADS]
        self.version = "ONNX Runtime %s" % ort.__version__

    def run(self, x):
        self.sess.run(self.names, {"images": x[None]})

    def heads(self, x):
        return tuple(a[0] for a in self.sess.run(self.names, {"images": x[None]}))

    def close(self):
        del self.sess


class OvEngine:
    def __init__(self, path, threads, fp32):
        ov = _need("openvino")
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                  "PERFORMANCE_HINT": "LATENCY"}
        if fp32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.model = core.compile_model(core.read_model(path), "CPU", config)
        self.req = self.model.create_infer_request()
        self.outs = [self.model.output("yolo%d" % h) for h in HEADS]
        self.version = "OpenVINO %s" % ov.get_version().split("-")[0]

    def run(self, x):
        self.req.infer({0: x[None]})

    def heads(self, x):
        self.req.infer({0: x[None]})
        return tuple(self.req.get_tensor(o).data[0].copy() for o in self.outs)

    def close(self):
        del self.req, self.model


class NcnnEngine:
    def __init__(self, files, threads, tool):
        ncnn = _need("ncnn")
        self.ncnn = ncnn
        net = ncnn.Net()
        o = net.opt
        o.use_vulkan_compute = False
        o.num_threads = threads
        for k in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                  "use_bf16_storage", "use_bf16_packed"):
            if hasattr(o, k):
                setattr(o, k, False)
        if net.load_param(files[0]) or net.load_model(files[1]):
            raise Skip("ncnn cannot load %s" % files[0])
        self.net = net
        self.threads = threads
        self.mat = None
        self.version = "ncnn %s (%s)" % (getattr(ncnn, "__version__", "?"), tool)
        # the output blob of each head: out0/out1 in pnnx's order, told apart by size
        self.out_names = ["out0", "out1"]

    def _extract(self, x):
        if self.mat is None or self._x is not x:
            self._x, self.mat = x, self.ncnn.Mat(x)
        ex = self.net.create_extractor()
        ex.input("in0", self.mat)
        outs = []
        for name in self.out_names:
            ret, m = ex.extract(name)
            if ret:
                raise RuntimeError("ncnn: extracting %s failed (%d)" % (name, ret))
            outs.append(m)
        return outs

    def run(self, x):
        self._extract(x)

    def heads(self, x):
        arrays = [np.array(m) for m in self._extract(x)]
        arrays.sort(key=lambda a: a.size)          # 13x13 first: yolo16, then yolo23
        return tuple(a.reshape(255, *a.shape[-2:]) for a in arrays)

    def close(self):
        self.net.clear()


def open_engine(name, models, threads, kernel=None):
    """(label, engine) or raises Skip."""
    prec = name.split("-")[1]
    if name.startswith("mdfi"):
        files = {"fp32": models.mdfi_fp32, "wino": models.mdfi_fp32, "int8": models.mdfi_int8,
                 "w8a8": models.mdfi_w8a8, "w8a8p": models.mdfi_w8a8p}[prec]()
        label = LABELS[name] + (" [%s forced]" % kernel if kernel else "")
        try:
            return label, MdfiEngine(files, threads, kernel, "fast" if prec == "wino" else None)
        except Exception as e:   # an UnsupportedError for a kernel this CPU lacks
            if kernel:
                raise Skip("kernel %s: %s" % (kernel, e)) from None
            raise
    if name.startswith("ort"):
        _need("onnxruntime")
        path = models.onnx_fp32() if prec == "fp32" else models.onnx_int8()
        return LABELS[name], OrtEngine(path, threads)
    if name.startswith("ov"):
        _need("openvino")
        try:
            path = models.onnx_fp32() if prec == "fp32" else models.onnx_int8()
        except Skip as e:
            raise Skip("no ONNX model: %s" % e) from None
        return LABELS[name], OvEngine(path, threads, prec == "fp32")
    if name.startswith("ncnn"):
        _need("ncnn")
        files = models.ncnn_fp32()
        return LABELS[name], NcnnEngine(files, threads, models.notes.get("ncnn_tool", "?"))
    raise ValueError(name)


def precision(name):
    return "fp32" if name.endswith("fp32") else "int8"


# ----------------------------------------------------------------------------- measuring

def timed_rounds(engines, x, rounds, gap=0.02, warmup=2):
    """({key: [wall ms]}, {key: [CPU ms]}): `rounds` interleaved rounds over
    engines {key: engine}, the order rotated each round, with an untimed pause
    of `gap` s between engines.  CPU ms: this process's CPU time (all its
    threads) during the forward; on a shared machine it counts the work done,
    not the waits for a core (but spinning worker threads count as work)."""
    keys = list(engines)
    for k in keys:
        for _ in range(warmup):
            engines[k].run(x)
    times = {k: [] for k in keys}
    cpu = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
            if gap:
                time.sleep(gap)
            c = time.process_time()
            t = time.perf_counter()
            engines[k].run(x)
            times[k].append((time.perf_counter() - t) * 1e3)
            cpu[k].append((time.process_time() - c) * 1e3)
    return times, cpu


def rss_child(name, work, threads, kernel=None, quantize_first=False):
    """In a fresh process: {'peak_kb', 'base_kb'} of one engine (load, 5 forwards)."""
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--rss-child", name,
           "--work", str(work), "--threads", str(threads)]
    if kernel:
        cmd += ["--rss-kernel", kernel]
    if quantize_first:
        cmd += ["--quantize-first"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rss_child_main(name, work, threads, kernel, quantize_first):
    base = peak_rss_kb()     # Python + numpy only
    x = np.zeros((3, SIZE, SIZE), np.float32)
    models = Models(work, log=lambda *a: None, quantize_first=quantize_first)
    _, engine = open_engine(name, models, threads, kernel)
    for _ in range(5):
        engine.run(x)
    print(json.dumps({"peak_kb": peak_rss_kb(), "base_kb": base}))
    return 0


def program_rss(files, threads, kernel=None, as_bytes=False):
    """Peak RSS (KiB) of the mdfi program's `bench` (as_bytes: with 8-bit input,
    `--bytes`), if make has built it."""
    from mdfi.bench import native_program, program_bench
    exe = native_program()
    if exe is None:
        return None
    try:
        return program_bench(exe, *files, 3, threads, kernel, timeout=300,
                             as_bytes=as_bytes).get("peak_rss_kb")
    except RuntimeError:
        return None


# ----------------------------------------------------------------------------- the run

def measure(args, log=print):
    info = cpu_info()
    result = {"cpu": info, "model": "yolov3-tiny %dx%d, batch 1" % (SIZE, SIZE),
              "rounds": args.rounds, "threads": args.threads, "input": "golden dog.input.npy",
              "engines": {}, "skipped": {}}
    log("CPU: %s (%s), %d usable cores, load average %s" % (
        info["name"], info["machine"], info["cores"],
        " ".join("%.2f" % v for v in info["load"]) if info["load"] else "?"))
    log("SIMD flags: %s" % (" ".join(info["flags"]) or "none known"))
    if not GOLDEN.is_dir():
        raise SystemExit("golden data missing at %s (set MDFI_GOLDEN)" % GOLDEN)
    inputs = golden_inputs()
    want = golden_heads()
    x = inputs["dog"]
    tmp = None
    if args.work:
        work = pathlib.Path(args.work)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mdfi-peers-")
        work = pathlib.Path(tmp.name)
    models = Models(work, log=log, quantize_first=args.quantize_first)
    rows = [(n, None) for n in args.engines]
    rows += [(n, k) for k in args.kernels for n in args.engines if n.startswith("mdfi")]
    keyname = {(n, k): n + ("@" + k if k else "") for n, k in rows}
    try:
        log("preparing the models in %s" % work)
        for t in args.threads:
            engines, labels = {}, {}
            for n, k in rows:
                key = keyname[(n, k)]
                if key in result["skipped"]:
                    continue
                try:
                    labels[key], engines[key] = open_engine(n, models, t, k)
                except Skip as e:
                    result["skipped"][key] = str(e)
                    log("  skipped %s: %s" % (key, e))
                    continue
                entry = result["engines"].setdefault(key, {
                    "label": labels[key], "precision": precision(n),
                    "version": engines[key].version, "median_ms": {}, "min_ms": {}})
                if "golden" not in entry:
                    got = {p: engines[key].heads(v) for p, v in inputs.items()}
                    entry["golden"] = agreement(got, want)
            log("timing %d engine(s) at %d thread(s), %d rounds" % (len(engines), t, args.rounds))
            times, cpu = timed_rounds(engines, x, args.rounds, gap=args.gap)
            for key, ts in times.items():
                e = result["engines"][key]
                e["median_ms"][str(t)] = statistics.median(ts)
                e["min_ms"][str(t)] = min(ts)
                e.setdefault("cpu_median_ms", {})[str(t)] = statistics.median(cpu[key])
                e.setdefault("times_ms", {})[str(t)] = [round(v, 3) for v in ts]
            for e in engines.values():
                e.close()
            del engines
            gc.collect()
        if not args.no_rss:
            log("peak RSS, one fresh process per engine (%d thread(s))" % args.threads[0])
            for n, k in rows:
                key = keyname[(n, k)]
                if key not in result["engines"]:
                    continue
                r = rss_child(n, work, args.threads[0], k, args.quantize_first)
                if n.startswith("mdfi") and n != "mdfi-wino-fp32":
                    files = {"fp32": models.mdfi_fp32, "int8": models.mdfi_int8,
                             "w8a8": models.mdfi_w8a8,
                             "w8a8p": models.mdfi_w8a8p}[n.split("-")[1]]()
                    r["program_kb"] = program_rss(files, args.threads[0], k)
                    if n != "mdfi-fp32":   # a fixed-point first layer takes the bytes
                        r["program_bytes_kb"] = program_rss(files, args.threads[0], k, True)
                result["engines"][key]["rss"] = r
        result["notes"] = dict(models.notes)
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["ratios"] = ratios(result)
    result["load_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return result


def ratios(result):
    """{mdfi key: {threads: {'peer', 'median', 'min'}}}: MDFI over the fastest peer
    (by median) of the same precision."""
    out = {}
    eng = result["engines"]
    for t in map(str, result["threads"]):
        for key, e in eng.items():
            if not key.startswith("mdfi") or t not in e["median_ms"]:
                continue
            peers = [(p["median_ms"][t], pk) for pk, p in eng.items()
                     if not pk.startswith("mdfi") and p["precision"] == e["precision"]
                     and t in p["median_ms"]]
            if not peers:
                continue
            _, best = min(peers)
            out.setdefault(key, {})[t] = {
                "peer": best, "median": e["median_ms"][t] / eng[best]["median_ms"][t],
                "min": e["min_ms"][t] / eng[best]["min_ms"][t]}
    return out


def report(result, out=print):
    ts = [str(t) for t in result["threads"]]
    out("")
    out("%s, input %s, %d interleaved rounds; median / min ms" % (
        result["model"], result["input"], result["rounds"]))
    head = "| engine | " + " | ".join("%s thread%s" % (t, "s" if t != "1" else "") for t in ts) \
        + " | golden pre-NMS hits kept (extra) | max abs diff | peak RSS MB (less Python+numpy)" \
        " | version |"
    out(head)
    out("|" + " --- |" * (head.count("|") - 1))
    for key, e in result["engines"].items():
        cells = ["%.1f / %.1f" % (e["median_ms"][t], e["min_ms"][t]) if t in e["median_ms"]
                 else "-" for t in ts]
        g = e["golden"]
        r = e.get("rss")
        if r is None:
            rss = "-"
        elif "error" in r:
            rss = "failed: %s" % r["error"][:60]
        else:
            rss = "%.1f (%.1f)" % (r["peak_kb"] / 1024, (r["peak_kb"] - r["base_kb"]) / 1024)
            if r.get("program_kb"):
                rss += "; `mdfi bench` %.1f" % (r["program_kb"] / 1024)
            if r.get("program_bytes_kb"):
                rss += ", `--bytes` %.1f" % (r["program_bytes_kb"] / 1024)
        out("| %s | %s | %d of %d (%d) | %.2g | %s | %s |" % (
            e["label"], " | ".join(cells), g["kept"], g["golden"], g["extra"], g["max_abs_diff"],
            rss, e["version"]))
    for key, why in result["skipped"].items():
        name, _, kernel = key.partition("@")
        out("| %s%s | skipped: %s |" % (LABELS.get(name, name),
                                        " [%s forced]" % kernel if kernel else "", why))
    out("")
    out("CPU time per forward (this process, all threads; median ms at %s threads): "
        % "/".join(ts) + "; ".join(
        "%s %s" % (e["label"], " / ".join("%.1f" % e["cpu_median_ms"][t] for t in ts
                                          if t in e.get("cpu_median_ms", {})))
        for e in result["engines"].values()))
    if len(ts) > 1:
        out("")
        out("scaling, median at %s thread(s) / median at %s: " % (ts[0], ts[-1]) + "; ".join(
            "%s %.2fx" % (e["label"], e["median_ms"][ts[0]] / e["median_ms"][ts[-1]])
            for e in result["engines"].values()
            if ts[0] in e["median_ms"] and ts[-1] in e["median_ms"]))
    if result["ratios"]:
        out("")
        out("MDFI / fastest peer of the same precision (medians; mins in brackets):")
        for key, per in result["ratios"].items():
            label = result["engines"][key]["label"]
            out("  %-34s %s" % (label, "   ".join(
                "%s thr: %.2fx %s (%.2fx)" % (t, r["median"], result["engines"][r["peer"]]["label"],
                                              r["min"]) for t, r in per.items())))
    notes = result.get("notes", {})
    if notes:
        out("")
        for k, v in notes.items():
            out("%s: %s" % (k, v))
    c = result["cpu"]
    out("CPU: %s, %s, %d usable cores; flags: %s; load average before %s, after %s" % (
        c["name"], c["machine"], c["cores"], " ".join(c["flags"]),
        " ".join("%.2f" % v for v in c["load"] or []),
        " ".join("%.2f" % v for v in result.get("load_after") or [])))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--kernels", nargs="*", default=[],
                   help="also time the MDFI engines with these kernels forced (e.g. avx2)")
    p.add_argument("--gap", type=float, default=0.02,
                   help="untimed pause between engines, seconds (default 0.02)")
    p.add_argument("--work", help="folder for the converted models (kept and reused)")
    p.add_argument("--quantize-first", action="store_true",
                   help="ONNX Runtime's quantizer also quantizes the first convolution")
    p.add_argument("--no-rss", action="store_true", help="skip the peak RSS processes")
    p.add_argument("--json", help="also write the results as JSON here ('-': stdout only)")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    p.add_argument("--rss-kernel", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        return _rss_child_main(args.rss_child, args.work, args.threads[0], args.rss_kernel,
                               args.quantize_first)
    quiet = args.json == "-"
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if quiet else \
        (lambda *a: print(*a, flush=True))
    result = measure(args, log)
    if quiet:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        report(result)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
