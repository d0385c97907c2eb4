"""mdfi.Network: a Darknet network run by the C core."""
import dataclasses
import functools
import os
import threading

import numpy as np

from . import errors
from ._core import ffi, lib, raise_for


# byte v -> (float)(v / 255.0), the floats images load as (uint8 input to a
# network that reads floats)
_UNIT = (np.arange(256) / 255.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """A layer as the C core built it.  Operation counts of one forward
    (docs/wsfracbnn.md, Operation counts): flops = float multiply-adds x 2;
    bops = binary multiply-adds, one per weight bit per output per bit plane
    of the input (a gated layer: its first plane; Network.gates gives the
    second plane's share); macs = multiply-accumulates, float and binary (one
    per weight per output whatever the bit planes).  gate: a [fracconv]
    gate=1 layer."""
    index: int
    type: str
    input_shape: tuple
    output_shape: tuple
    filters: int
    size: int
    stride: int
    groups: int
    pad: int
    activation: str
    flops: float
    line: int
    batch_normalize: bool
    xnor: bool
    bops: float = 0.0
    macs: float = 0.0
    gate: bool = False


@dataclasses.dataclass(frozen=True)
class LayerFormat:
    """A layer's fixed-point formats as (bits, frac) pairs (value = q * 2^-frac);
    None where the layer has none (float output, no weights).  With per-channel
    weight scales (weight_scale "channel" or "mult") the weights' frac is 0 and
    the per-channel scales live in the .qweights file."""
    output: tuple
    input: tuple
    weights: tuple
    kernel: str     # integer GEMM variant ("" for layers without one)
    weight_scale: str = ""   # "layer", "channel" or "mult" for weighted layers


@dataclasses.dataclass(frozen=True)
class Detection:
    """One (box, class) above the threshold, as Darknet prints them."""
    det_index: int
    class_id: int
    label: str
    prob: float
    objectness: float
    box: tuple      # relative (x, y, w, h), centre and size
    bbox: tuple     # pixel (left, top, right, bottom) as Darknet draws it

    def to_json(self) -> dict:
        """The fields `python -m mdfi.detect --json` prints."""
        return {"class_id": self.class_id, "label": self.label, "prob": self.prob,
                "box": list(self.box), "bbox": list(self.bbox)}

    def to_dict(self) -> dict:
        """Every field, as plain Python values (json.dumps takes it)."""
        return {"det_index": int(self.det_index), "class_id": int(self.class_id),
                "label": str(self.label), "prob": float(self.prob),
                "objectness": float(self.objectness), "box": [float(v) for v in self.box],
                "bbox": [int(v) for v in self.bbox]}


@dataclasses.dataclass(frozen=True)
class ExitInfo:
    """An early exit (docs/early-exit.md): the [exit] layer, its branch point
    (from_layer), its branch's layers first..last (last: its [softmax]), the
    current thresholds, its predictors, and MACs: of the branch, of one
    predictor run, and of the path main-to-branch-point plus branch."""
    index: int
    layer: int
    from_layer: int
    first: int
    last: int
    threshold: float
    entropy_gate: float
    exit_gate: float
    predictors: tuple
    branch_macs: float
    predictor_macs: float
    path_macs: float


@dataclasses.dataclass(frozen=True)
class ExitResult:
    """Where the last forward ended: exit k, or -1 for the main path's end; the
    layer holding the result, its normalized entropy (-1: not a classifier)
    and the multiply-accumulates, float and binary operations the forward
    spent (bops: a gated layer's first plane plus the second plane of the
    outputs it gated)."""
    exit: int
    layer: int
    entropy: float
    macs: float
    flops: float = 0.0
    bops: float = 0.0


EXIT_POLICIES = ("none", "all", "branchy", "entropy-predictor", "exit-predictor")

def _locked(method):
    """Runs method holding the network's lock: the C core releases the GIL, and
    one network's buffers serve one forward at a time, so two threads sharing a
    Network take turns (a forward and the reading of its result are one turn)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run


_FUSE = {None: -1, "auto": -1, False: 0, "0": 0, True: 1, "1": 1}
# winograd: 1 stores the transformed weights (4x), 2 ("otf") makes them per call
# 3 ("fast"): auto's layers, transformed weights stored however large
_WINOGRAD = dict(_FUSE, otf=2, fast=3, **{"2": 2, "3": 3})


def _env_choice(value, env):
    """An explicit value, else the environment variable's (None if unset or auto)."""
    if value is None:
        value = os.environ.get(env) or None
    return None if value == "auto" else value


def _options(threads, kernel, keep_outputs, binary_kernel, binary_fuse, fuse_pool,
             winograd=None):
    """The C build options, from the arguments and MDFI_KERNEL, MDFI_BINARY_KERNEL,
    MDFI_BINARY_FUSE, MDFI_WINOGRAD (the C library reads no environment).  Returns the struct,
    the strings it points to (kept alive with it) and where each string came
    from ({value: "name=value"}, for messages; C checks the names)."""
    opt = ffi.new("mdfi_options *")
    lib.mdfi_options_default(opt)
    keep, origin = [], {}
    for field, arg, env in (("kernel", kernel, "MDFI_KERNEL"),
                            ("binary_kernel", binary_kernel, "MDFI_BINARY_KERNEL")):
        value = _env_choice(arg, env)
        if value is not None:
            keep.append(ffi.new("char[]", str(value).encode()))
            setattr(opt, field, keep[-1])
            origin[str(value)] = f"{field if arg is not None else env}={value}"
    fuse = binary_fuse if binary_fuse is not None else os.environ.get("MDFI_BINARY_FUSE") or None
    if fuse not in _FUSE:
        src = "binary_fuse" if binary_fuse is not None else "MDFI_BINARY_FUSE"
        raise errors.ArgumentError(f"{src}={fuse}: use 0, 1 or auto")
    wino = winograd if winograd is not None else os.environ.get("MDFI_WINOGRAD") or None
    if wino not in _WINOGRAD:
        src = "winograd" if winograd is not None else "MDFI_WINOGRAD"
        raise errors.ArgumentError(f"{src}={wino}: use 0, 1, 2 (\"otf\"), 3 (\"fast\") or auto")
    opt.threads = int(threads)
    opt.binary_fuse = _FUSE[fuse]
    opt.winograd = _WINOGRAD[wino]
    opt.fuse_pool = 1 if fuse_pool else 0
    opt.keep_outputs = 1 if keep_outputs else 0
    return opt, keep, origin


class Network:
    """A Darknet cfg (+ weights) prepared for inference.

    >>> with mdfi.Network("yolov3-tiny.cfg", "yolov3-tiny.weights") as net:
    ...     out = net.forward(x)        # x: float32 [c, h, w]
    """

    def __init__(self, cfg, weights=None, *, threads=1, kernel=None, keep_outputs=False,
                 binary_kernel=None, binary_fuse=None, fuse_pool=True, outputs=(),
                 exit_policy=None, winograd=None):
        """kernel / binary_kernel: force a kernel path (default: $MDFI_KERNEL /
        $MDFI_BINARY_KERNEL, else the best this CPU runs); binary_fuse: True,
        False or None (default: $MDFI_BINARY_FUSE, else fuse unless keep_outputs);
        winograd: 3x3 stride-1 float convolutions by Winograd F(4,3), True (wherever
        the shape allows, the transformed weights stored: 4x the memory), "otf"
        (wherever the shape allows, transformed on the fly), "fast" (auto's layers,
        the transformed weights stored however large: speed before memory), False
        (the exact direct path) or None (default: $MDFI_WINOGRAD, else auto: per
        layer, where it is faster, stored where small);
        outputs: layer indices whose outputs stay readable after forward;
        exit_policy: for a network with [exit] layers (default "branchy")."""
        self._lock = threading.RLock()
        opts = _options(threads, kernel, keep_outputs, binary_kernel, binary_fuse, fuse_pool,
                        winograd)
        pp = ffi.new("mdfi_net **")
        raise_for(lib.mdfi_net_new(pp), "cannot create a network")
        self._net = pp[0]
        self._input = None
        try:
            self._call(lib.mdfi_net_load_cfg(self._net, os.fsencode(cfg)))
            if weights is not None:
                self._call(lib.mdfi_net_load_weights(self._net, os.fsencode(weights)))
            try:
                self._call(lib.mdfi_net_set_options(self._net, opts[0]))
            except errors.ArgumentError as exc:   # say which argument or variable it was
                named = [o for v, o in opts[2].items() if f"'{v}'" in str(exc)]
                if not named:
                    raise
                raise errors.ArgumentError(f"{named[0]}: {exc}") from None
            for i in outputs:
                self._call(lib.mdfi_net_mark_output(self._net, int(i)))
            self._call(lib.mdfi_net_prepare(self._net))
            if exit_policy is not None:
                self.exit_policy = exit_policy
        except BaseException:
            self.close()
            raise
        shape = ffi.new("mdfi_shape *")
        lib.mdfi_net_input_shape(self._net, shape)
        self.input_shape = (shape.c, shape.h, shape.w)
        self.warnings = ffi.string(lib.mdfi_net_warnings(self._net)).decode().splitlines()
        self.kernel = ffi.string(lib.mdfi_net_kernel_name(self._net)).decode()
        self.threads = lib.mdfi_net_threads(self._net)
        self.layers = [self._layer_info(i) for i in range(lib.mdfi_net_num_layers(self._net))]
        self.is_fixed = bool(lib.mdfi_net_is_fixed(self._net))
        self._ran = False
        self._has_exits = lib.mdfi_net_num_exits(self._net) > 0
        self._result = ffi.new("mdfi_exit_result *")
        self._data = ffi.new("const float **")
        self._count = ffi.new("size_t *")

    # -- lifetime --------------------------------------------------------------
    @_locked
    def close(self):
        if getattr(self, "_net", None) is not None:
            lib.mdfi_net_free(self._net)
            self._net = None

    @property
    def closed(self):
        return getattr(self, "_net", None) is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if hasattr(self, "_lock"):
            self.close()

    def _handle(self):
        if self._net is None:
            raise errors.ArgumentError("the network is closed")
        return self._net

    def _call(self, status):
        if status != lib.MDFI_OK:
            raise_for(status, ffi.string(lib.mdfi_net_last_error(self._net)).decode(
                "utf-8", "replace"))

    # -- info ------------------------------------------------------------------
    def _layer_info(self, i):
        li = ffi.new("mdfi_layer_info *")
        self._call(lib.mdfi_net_layer_info(self._net, i, li))
        return LayerInfo(i, ffi.string(li.type).decode(), (li.in_c, li.in_h, li.in_w),
                         (li.out_c, li.out_h, li.out_w), li.filters, li.size, li.stride,
                         li.groups, li.pad, ffi.string(li.activation).decode(), li.flops,
                         li.line, bool(li.batch_normalize), bool(li.xnor), li.bops, li.macs,
                         bool(li.gate))

    def layer_format(self, index):
        """The fixed-point formats of layer `index` (docs/fixed-point.md)."""
        f = ffi.new("mdfi_layer_format *")
        self._call(lib.mdfi_net_layer_format(self._handle(), index % len(self.layers), f))
        pair = lambda b, q: (b, q) if b else None  # noqa: E731
        return LayerFormat(pair(f.out_bits, f.out_frac), pair(f.in_bits, f.in_frac),
                           pair(f.w_bits, f.w_frac), ffi.string(f.kernel).decode(),
                           ("layer", "channel", "mult")[f.w_scale] if f.w_bits else "")

    @property
    def arena_bytes(self):
        return lib.mdfi_net_arena_bytes(self._handle())

    @property
    def weight_bytes(self):
        return lib.mdfi_net_weight_bytes(self._handle())

    # -- early exits -----------------------------------------------------------
    @property
    @_locked
    def exits(self):
        """The network's early exits (ExitInfo), in layer order; [] if none."""
        net = self._handle()
        out = []
        info = ffi.new("mdfi_exit_info *")
        for k in range(lib.mdfi_net_num_exits(net)):
            self._call(lib.mdfi_net_exit_info(net, k, info))
            preds = tuple(n for n, on in (("entropy", info.entropy_predictor),
                                          ("exit", info.exit_predictor)) if on)
            out.append(ExitInfo(k, info.layer, info.from_layer,
                                info.first, info.last, info.threshold, info.entropy_gate,
                                info.exit_gate, preds, info.branch_macs, info.predictor_macs,
                                info.path_macs))
        return out

    @property
    def exit_policy(self):
        """none, all, branchy, entropy-predictor or exit-predictor; settable
        between forwards (an UnsupportedError if an exit lacks the predictor)."""
        return ffi.string(lib.mdfi_net_exit_policy(self._handle())).decode()

    @exit_policy.setter
    @_locked
    def exit_policy(self, policy):
        if policy not in EXIT_POLICIES:
            raise errors.ArgumentError(f"unknown exit policy {policy!r} "
                                       f"({', '.join(EXIT_POLICIES)})")
        self._call(lib.mdfi_net_set_exit_policy(self._handle(), policy.encode()))

    @_locked
    def set_exit_thresholds(self, k, threshold=None, entropy_gate=None, exit_gate=None):
        """Changes exit k's threshold and gates (None keeps one)."""
        keep = lambda v: -1.0 if v is None else float(v)  # noqa: E731
        if not -len(self.exits) <= k < len(self.exits):
            raise errors.ArgumentError(f"no exit {k} (the network has {len(self.exits)})")
        self._call(lib.mdfi_net_set_exit_thresholds(self._handle(), k % len(self.exits),
                                                    keep(threshold), keep(entropy_gate),
                                                    keep(exit_gate)))

    @property
    @_locked
    def last_exit(self):
        """Where the last (complete) forward ended: an ExitResult."""
        r = ffi.new("mdfi_exit_result *")
        self._call(lib.mdfi_net_exit_result(self._handle(), r))
        return ExitResult(r.exit, r.layer, r.entropy, r.macs, r.flops, r.bops)

    @_locked
    def gates(self, layer):
        """(gated, total) of a gated layer ([fracconv] gate=1) in the last
        forward: the outputs whose precision gate fired (their second bit
        plane ran) and all its outputs; (0, 0) if it did not run in it.  An
        ArgumentError for a layer without a gate."""
        if not -len(self.layers) <= layer < len(self.layers):
            raise errors.ArgumentError(f"no layer {layer} (the network has {len(self.layers)})")
        g, t = ffi.new("long long *"), ffi.new("long long *")
        self._call(lib.mdfi_net_layer_gates(self._handle(), layer % len(self.layers), g, t))
        return int(g[0]), int(t[0])

    @property
    def takes_bytes(self):
        """Whether uint8 input runs as it is: the layers that read the input
        are fixed point and quantize the bytes through a table, with no float
        copy of the image (else `forward` converts it to float32 first)."""
        return bool(lib.mdfi_net_takes_bytes(self._handle()))

    @property
    def main_macs(self):
        """Multiply-accumulates of the main path alone (policy none)."""
        return lib.mdfi_net_main_macs(self._handle())

    # -- running ---------------------------------------------------------------
    @_locked
    def forward(self, x):
        """Runs the network on float32 CHW input, or uint8 CHW pixels (v for
        v / 255, as images load: see `takes_bytes`); returns the result: the
        last layer's output, or the classifier of the exit the input took."""
        self.forward_until(x, -1)
        last = len(self.layers) - 1
        if self._has_exits:
            self._call(lib.mdfi_net_exit_result(self._net, self._result))
            last = self._result.layer
        if self.is_fixed:
            return self.layer_output(last)
        # the common case without the checks of layer_output (one C call, one copy)
        self._call(lib.mdfi_net_layer_output(self._net, last, self._data, self._count))
        arr = np.frombuffer(ffi.buffer(self._data[0], self._count[0] * 4), np.float32).copy()
        return arr.reshape(self.layers[last].output_shape)

    @_locked
    def forward_until(self, x, last):
        """Runs layers 0..last on float32 CHW input (or uint8, as `forward`) and
        stops; `resume` continues without recomputing.  Returns the number of
        layers run."""
        net = self._handle()
        x = self._checked_input(x)
        self._input = x   # the C core reads it again when a later layer reads the input
        if x.dtype == np.uint8:
            self._call(lib.mdfi_net_forward_bytes(net, ffi.cast("unsigned char *",
                                                                ffi.from_buffer(x)),
                                                  x.size, int(last)))
        else:
            self._call(lib.mdfi_net_forward_until(net, ffi.cast("float *", ffi.from_buffer(x)),
                                                  x.size, int(last)))
        self._ran = True
        return lib.mdfi_net_done(net)

    @_locked
    def resume(self, last=-1):
        """Continues a stopped forward up to layer `last` (-1: the end); returns
        the number of layers run so far."""
        net = self._handle()
        self._call(lib.mdfi_net_resume(net, int(last)))
        return lib.mdfi_net_done(net)

    def _checked_input(self, x):
        if type(x) is np.ndarray and x.dtype == np.float32 and x.shape == self.input_shape \
                and x.flags.c_contiguous:
            return x   # the common case, checked in one line
        x = np.asarray(x)
        if x.dtype == np.uint8 and not self.takes_bytes:
            x = _UNIT[x]   # as images load: (float)(v / 255.0), with no float64 copy
        if x.dtype not in (np.float32, np.uint8):
            raise errors.ShapeError(f"input must be float32 (or uint8 pixels), not {x.dtype}")
        if x.shape != self.input_shape and x.size == np.prod(self.input_shape):
            raise errors.ShapeError(f"input shape {x.shape} is not {self.input_shape}")
        if x.shape != self.input_shape:
            raise errors.ShapeError(f"input shape {x.shape} is not the network's "
                                    f"{self.input_shape} (c, h, w)")
        return np.ascontiguousarray(x)

    @_locked
    def layer_output(self, index):
        """A copy of layer `index`'s output after the last forward, shaped (c, h, w)."""
        net = self._handle()
        if not -len(self.layers) <= index < len(self.layers):
            raise errors.ArgumentError(f"no layer {index} (the network has {len(self.layers)})")
        index %= len(self.layers)
        if self.is_fixed and self.layer_format(index).output is not None:
            q, frac = self.layer_output_int(index)
            return (q.astype(np.float64) * 2.0 ** -frac).astype(np.float32)
        data = ffi.new("const float **")
        count = ffi.new("size_t *")
        self._call(lib.mdfi_net_layer_output(net, index, data, count))
        arr = np.frombuffer(ffi.buffer(data[0], count[0] * 4), dtype=np.float32).copy()
        return arr.reshape(self.layers[index].output_shape)

    @_locked
    def layer_output_int(self, index):
        """(int8/int16 array shaped (c, h, w), frac) of a fixed-point layer's output:
        the real values are q * 2^-frac."""
        net = self._handle()
        if not -len(self.layers) <= index < len(self.layers):
            raise errors.ArgumentError(f"no layer {index} (the network has {len(self.layers)})")
        index %= len(self.layers)
        data = ffi.new("const void **")
        count = ffi.new("size_t *")
        bits = ffi.new("int *")
        frac = ffi.new("int *")
        self._call(lib.mdfi_net_layer_output_int(net, index, data, count, bits, frac))
        dt = np.int8 if bits[0] == 8 else np.int16
        arr = np.frombuffer(ffi.buffer(data[0], count[0] * (bits[0] // 8)), dtype=dt).copy()
        return arr.reshape(self.layers[index].output_shape), frac[0]

    @_locked
    def set_profile(self, on=True):
        """Time every layer of the following forwards (see layer_times)."""
        self._call(lib.mdfi_net_set_profile(self._handle(), 1 if on else 0))

    @_locked
    def layer_times(self):
        """Milliseconds per layer of the last forward run with profiling on."""
        net = self._handle()
        return [lib.mdfi_net_layer_time(net, i) for i in range(len(self.layers))]

    @_locked
    def detect(self, image_size, thresh=0.5, nms=0.45, names=None):
        """Boxes from the [yolo] layers of the last forward (a letterboxed image of
        `image_size` = (width, height)); Darknet's get_network_boxes + do_nms_sort."""
        net = self._handle()
        w, h = image_size
        dets = ffi.new("const mdfi_detection **")
        count = ffi.new("int *")
        self._call(lib.mdfi_net_detect(net, int(w), int(h), float(thresh), float(nms), dets,
                                       count))
        out = []
        for i in range(count[0]):
            d = dets[0][i]
            label = names[d.class_id] if names and d.class_id < len(names) else \
                f"class_{d.class_id}"
            out.append(Detection(d.det_index, d.class_id, label, d.prob, d.objectness,
                                 (d.x, d.y, d.w, d.h), (d.left, d.top, d.right, d.bottom)))
        return out
