"""Speed of the gated [fracconv] network against its dense twin, in one run
(a benchmark, not a timed test; docs/wsfracbnn.md, issue 16).

    python benchmarks/fracconv_bench.py [--shares 10,20,30] [--rounds 15] [--images 50]
                                        [--cfg C --weights W ...] [--clock cpu|wall]
                                        [--no-dualpath] [--no-bounds] [--keep DIR]
                                        [--json OUT]

The network (Fashion-MNIST's shape, 1 x 28 x 28): a [fracconv]
input=thermometer levels=8 stem of 32 filters (shortcut=0), a 2x2 max pool,
two [fracconv] stream layers of 64 filters (from=-1: the 32 channels tiled,
as [dualpath] does), a max pool, two of 128, a global average pool,
[connected] 10, [softmax]; once with gate=1 and once with gate=0 (the dense
twin: weights_tools.fracconv_dense).

No trained model of that shape is needed: the weights are set layer by
layer on Fashion-MNIST training images (mdfi.datasets; random images where
the data is missing) so that the stream is realistic:

- latent weights uniform in +-1 (only their signs count);
- shift_c = the median of input channel c, step = the median over the
  channels of half the distance between the quartiles (so the four levels
  2 s1 + s0 are about equally used);
- scale and bias make r = round(range (scale P + bias)) centred with a
  spread of about half the input stream's (range 1);
- for each --shares value s: every gated layer's gate_m is set, in layer
  order on the gated network's own inputs, to the smallest value of 2 D1
  (weights_tools.fracconv_ref.parts) with at most s of channel m's outputs
  above it.

The share reported is the one measured on the timed images (Fashion-MNIST
test images), over all outputs of the gated layers.

--cfg/--weights (repeatable, in pairs) add trained models, each with its
dense twin written by weights_tools.fracconv_dense.  The [dualpath]
networks of docs/dualpath.md (examples/models/fmnist_dp_dual15 / dual1,
float stem) are timed beside them when present, and so (unless --no-bounds)
is the same shape as Darknet binary convolutions with generated weights
(a float stem, [convolutional] xnor=1 abits=2 and abits=1): MDFI's one-pass
2-bit kernel and its sign kernel, each with its fused epilogue, on the
body's layers -- what a dense 2-bit body and an MSB pass alone cost with
those kernels.  Each network's body time (the layers between the stem and
the head) is printed and recorded.

Time per image, one thread, MDFI's default kernels for this CPU (or
--kernel): the networks take turns, --rounds rounds of --images images,
median and min over rounds, by the thread's CPU time (--clock cpu, the
default: it leaves out the time the thread waits while other work has the
core; on a quiet machine it equals the wall clock, which is recorded too).
The ratio gated / dense is given as the ratio of the medians and as the
median of the ratios within a round.  Then a per-layer profile (the core's
layer times, wall clock, median over the images) of each network.  Ratios
compare networks timed in the same process, in turns; absolute times do not
compare across machines.  Name the CPU beside any figure you quote.
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

import numpy as np  # noqa: E402

import mdfi  # noqa: E402
from mdfi.bench import cpu_name  # noqa: E402
import weights_tools as wt  # noqa: E402
from weights_tools import fracconv_ref as fr  # noqa: E402
from weights_tools.darknet_cfg import fracconv_options  # noqa: E402
from weights_tools.dualpath_ref import conv_geometry  # noqa: E402
from weights_tools.fracconv_dense import write_dense_twin  # noqa: E402

F32 = np.float32
DUALPATH = ("dual15", "dual1")



def network_cfg(gate):
    """The benchmark network, gate=1 or gate=0 on every stream layer."""
    def fc(filters):
        return "[fracconv]\nfilters=%d\nsize=3\nstride=1\npad=1\ninput=stream\ngate=%d\n" \
               "from=-1\n" % (filters, gate)
    pool = "[maxpool]\nsize=2\nstride=2\n"
    return "\n".join([
        "[net]\nwidth=28\nheight=28\nchannels=1\n",
        "[fracconv]\nfilters=32\nsize=3\nstride=1\npad=1\ninput=thermometer\nlevels=8\n"
        "shortcut=0\n",
        pool, fc(64), fc(64), pool, fc(128), fc(128),
        "[avgpool]\n", "[connected]\noutput=10\nactivation=linear\n", "[softmax]\n"])


def xnor_cfg(abits):
    """The same shape as Darknet binary convolutions (a float stem, then
    [convolutional] xnor=1 abits=A, batch-normalized): MDFI's one-pass binary
    kernels with their fused epilogue on the body's layers (--no-bounds)."""
    def conv(filters, binary):
        return ("[convolutional]\nfilters=%d\nsize=3\nstride=1\npad=1\nbatch_normalize=1\n"
                "activation=linear\n" % filters) + ("xnor=1\nabits=%s\n" % abits if binary else "")
    pool = "[maxpool]\nsize=2\nstride=2\n"
    return "\n".join([
        "[net]\nwidth=28\nheight=28\nchannels=1\n", conv(32, False), pool, conv(64, True),
        conv(64, True), pool, conv(128, True), conv(128, True),
        "[avgpool]\n", "[connected]\noutput=10\nactivation=linear\n", "[softmax]\n"])


def body_ms(layers, times):
    """The time of the layers between the stem and the head (the body's
    binary layers and its pools)."""
    end = next(i for i, layer in enumerate(layers) if layer.type == "avgpool")
    return float(sum(times[1:end]))


# ---- images ---------------------------------------------------------------------------------

def images(n_cal, n_time, seed=0):
    """(calibration images from the training split, timed images from the test
    split, where they come from), float32 [n, 1, 28, 28] in [0, 1]."""
    try:
        from mdfi import datasets
        d = datasets.load("fashion-mnist", train=True)
        x_cal = np.asarray(d.x_train[:n_cal], F32).reshape(-1, 1, 28, 28)
        x_time = np.asarray(d.x_test[:n_time], F32).reshape(-1, 1, 28, 28)
        return x_cal, x_time, "Fashion-MNIST"
    except Exception as e:   # noqa: BLE001 - any missing or unreadable data set
        print("no Fashion-MNIST (%s): random images" % e, file=sys.stderr)
        rng = np.random.default_rng(seed)
        return (rng.random((n_cal, 1, 28, 28), dtype=F32),
                rng.random((n_time, 1, 28, 28), dtype=F32), "random")


# ---- weights --------------------------------------------------------------------------------

def write_arrays(path, cfg, arrays):
    layers = wt.layers_of(cfg)
    dw = wt.DarknetWeights(layers=[{n: np.asarray(a[n], F32).reshape(s) for n, s in layer.params}
                                   for layer, a in zip(layers, arrays)])
    pathlib.Path(path).write_bytes(wt.write_weights(layers, dw))


def layer_inputs(cfg, weights, x, index):
    """The input of layer `index` (one layer: its first input) for every image."""
    layer = wt.layers_of(cfg)[index]
    src = layer.inputs[0]
    if src < 0:
        return [img for img in x]
    with mdfi.Network(cfg, weights, threads=1, outputs=[src]) as net:
        out = []
        for img in x:
            net.forward(img)
            out.append(net.layer_output(src).copy())
    return out


def geometry(layer):
    o = fracconv_options(layer.section)
    stride, pad = conv_geometry(layer.section)
    return o, dict(input=o["input"], levels=o["levels"], stride=stride, pad=pad)


def all_parts(arrays, xs, layer, gate):
    o, geo = geometry(layer)
    return [fr.parts(x, arrays, gate=gate, **geo) for x in xs]


def generated(cfg, path, rng):
    """Weights for a [convolutional] network: normal weights and biases, BN
    scales and variances 1, means 0 (only the binary layers' signs and the
    shapes matter for the time)."""
    arrays = [{n: (np.ones(s, F32) if n in ("scales", "rolling_variance") else
                   np.zeros(s, F32) if n == "rolling_mean" else
                   rng.standard_normal(s).astype(F32)) for n, s in layer.params}
              for layer in wt.layers_of(cfg)]
    write_arrays(path, cfg, arrays)
    return path


def calibrate(cfg, x, path, rng):
    """Weights for the gated cfg with the stream calibrated on x (gates set so
    that nothing is gated; set_gates sets them)."""
    layers = wt.layers_of(cfg)
    arrays = []
    for layer in layers:                 # placeholders: every array, right shape
        a = {n: np.zeros(s, F32) for n, s in layer.params}
        if layer.type == "fracconv":
            a["weights"] = rng.uniform(-1, 1, a["weights"].shape)
            a["scales"][:] = 1
            a["range"][:] = 1
            if "gate" in a:
                a["gate"][:] = 1e30
        elif layer.type == "connected":
            a["weights"] = rng.uniform(-1, 1, a["weights"].shape) / 64
        arrays.append(a)
    write_arrays(path, cfg, arrays)
    for layer in layers:
        if layer.type != "fracconv":
            continue
        a = arrays[layer.index]
        xs = layer_inputs(cfg, path, x, layer.index)
        o, geo = geometry(layer)
        spread = 4.0                    # the stem: r spans about +-8 levels
        if o["input"] == "stream":
            v = np.stack(xs)            # n, C, H, W
            per_c = v.transpose(1, 0, 2, 3).reshape(v.shape[1], -1)
            q25, q50, q75 = np.quantile(per_c, [0.25, 0.5, 0.75], axis=1)
            a["shift"] = q50.astype(F32)
            a["step"] = np.array([max(0.5, float(np.median((q75 - q25) / 2)))], F32)
            spread = max(1.0, 0.5 * float(np.std(v)))
        P = np.stack([p["P"] for p in all_parts(a, xs, layer, gate=0)])   # n, M, h, w
        P = P.transpose(1, 0, 2, 3).reshape(P.shape[1], -1).astype(np.float64)
        sd = np.maximum(P.std(axis=1), 1.0)
        a["scales"] = (spread / sd).astype(F32)
        a["biases"] = (-a["scales"] * P.mean(axis=1) + rng.uniform(-0.5, 0.5, len(sd))).astype(F32)
        write_arrays(path, cfg, arrays)
    return arrays


def set_gates(cfg, arrays, x, share, path):
    """Each gated layer's gate_m, in layer order: the smallest value of 2 D1
    on x with at most `share` of channel m's outputs above it."""
    arrays = [{n: np.array(a, copy=True) for n, a in d.items()} for d in arrays]
    layers = wt.layers_of(cfg)
    write_arrays(path, cfg, arrays)
    for layer in layers:
        if layer.type != "fracconv" or not fracconv_options(layer.section)["gate"]:
            continue
        a = arrays[layer.index]
        xs = layer_inputs(cfg, path, x, layer.index)
        d1 = np.stack([p["D1"] for p in all_parts(a, xs, layer, gate=0)])
        d1 = 2 * d1.transpose(1, 0, 2, 3).reshape(d1.shape[1], -1)
        gate = np.empty(len(d1), F32)
        for m, v in enumerate(d1):
            vals = np.unique(v)
            above = np.array([(v > t).mean() for t in vals])
            gate[m] = vals[np.argmax(above <= share)]   # above[-1] = 0: always found
        a["gate"] = gate
        write_arrays(path, cfg, arrays)
    return arrays


def gated_share(cfg, weights, x):
    """Gated outputs / outputs of the gated layers on x (the reference's g,
    fed MDFI's inputs)."""
    fired = total = 0
    dw = wt.read_weights(cfg, weights)
    for layer in wt.layers_of(cfg):
        if layer.type != "fracconv" or not fracconv_options(layer.section)["gate"]:
            continue
        xs = layer_inputs(cfg, weights, x, layer.index)
        for p in all_parts(dw.layers[layer.index], xs, layer, gate=1):
            fired += int(p["g"].sum())
            total += p["g"].size
    return fired / total if total else 0.0


# ---- timing ---------------------------------------------------------------------------------

def time_networks(nets, x, rounds):
    """{name: [ms per image of each round]} by the wall clock and by this
    thread's CPU time (which leaves out the time the thread waits while other
    work has the core)."""
    wall = {k: [] for k in nets}
    cpu = {k: [] for k in nets}
    for net in nets.values():            # warm up
        for img in x[:5]:
            net.forward(img)
    for _ in range(rounds):
        for k, net in nets.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            for img in x:
                net.forward(img)
            c1, t1 = time.thread_time(), time.perf_counter()
            wall[k].append((t1 - t0) * 1e3 / len(x))
            cpu[k].append((c1 - c0) * 1e3 / len(x))
    return wall, cpu


def profile(net, x, repeat=3):
    """Each layer's median time (ms) over `repeat` forwards of every image, from
    the core's per-layer profile (wall clock: the median leaves out the
    forwards that other work interrupted)."""
    net.set_profile(True)
    per = []
    for _ in range(repeat):
        for img in x:
            net.forward(img)
            per.append(net.layer_times())
    net.set_profile(False)
    return np.median(np.array(per), axis=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shares", default="10,20,30",
                    help="gated shares in percent to set the gates for (default 10,20,30)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--calib", type=int, default=100, help="calibration images")
    ap.add_argument("--cfg", action="append", default=[], help="a gated model's cfg (repeatable)")
    ap.add_argument("--weights", action="append", default=[],
                    help="its weights, one per --cfg")
    ap.add_argument("--no-dualpath", action="store_true", help="leave the [dualpath] networks out")
    ap.add_argument("--no-bounds", action="store_true",
                    help="leave out the same shape as [convolutional] xnor=1 abits=1 and 2")
    ap.add_argument("--kernel", help="force the binary kernel variant (default: the CPU's best)")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the generated cfg and weights files to DIR (kept)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="time by the thread's CPU time (default) or the wall clock; both "
                         "are recorded")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if len(args.cfg) != len(args.weights):
        ap.error("--cfg and --weights come in pairs")
    shares = [float(s) / 100 for s in args.shares.split(",") if s]
    if not shares:
        ap.error("--shares needs at least one share")
    rng = np.random.default_rng(0)
    x_cal, x, data = images(args.calib, args.images)
    rows = {}      # name -> (cfg, weights, kind, dense partner or None)
    groups = []    # names whose per-layer profiles are printed side by side
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            tmp = args.keep
        cfg1 = os.path.join(tmp, "frac.cfg")
        pathlib.Path(cfg1).write_text(network_cfg(1))
        base = calibrate(cfg1, x_cal, os.path.join(tmp, "cal.weights"), rng)
        for s in shares:
            w = os.path.join(tmp, "gate%g.weights" % (100 * s))
            set_gates(cfg1, base, x_cal, s, w)
            rows["gate1@%g%%" % (100 * s)] = (cfg1, w, "synthetic", "gate0")
        dense = write_dense_twin(cfg1, w, os.path.join(tmp, "dense"))
        rows["gate0"] = dense + ("synthetic", None)
        groups.append(list(rows))
        for k, (c, ww) in enumerate(zip(args.cfg, args.weights)):
            name = pathlib.Path(c).stem
            d = write_dense_twin(c, ww, os.path.join(tmp, "dense%d" % k))
            rows[name] = (c, ww, "given", name + ":gate0")
            rows[name + ":gate0"] = d + ("given", None)
            groups.append([name, name + ":gate0"])
        if not args.no_dualpath:
            for v in DUALPATH:
                prefix = ROOT / "examples" / "models" / ("fmnist_dp_" + v)
                if prefix.with_suffix(".cfg").exists() and prefix.with_suffix(".weights").exists():
                    rows["dualpath " + v] = (str(prefix) + ".cfg", str(prefix) + ".weights",
                                             "trained", None)
        if not args.no_bounds:
            for ab in ("1", "2"):
                c = os.path.join(tmp, "xnor%s.cfg" % ab)
                pathlib.Path(c).write_text(xnor_cfg(ab))
                rows["xnor abits=" + ab] = (c, generated(c, os.path.join(tmp, "xnor%s.weights" % ab),
                                                         rng), "bound", None)
        share = {k: gated_share(r[0], r[1], x) for k, r in rows.items() if r[3]}
        nets = {k: mdfi.Network(r[0], r[1], threads=1, binary_kernel=args.kernel)
                for k, r in rows.items()}
    wall, cpu_t = time_networks(nets, x, args.rounds)
    times = cpu_t if args.clock == "cpu" else wall
    per = {k: profile(net, x) for k, net in nets.items()}
    med = {k: statistics.median(t) for k, t in times.items()}
    cpu = cpu_name()
    isa = next(iter(nets.values())).kernel   # the path the core took (MDFI_KERNEL forces one)
    print("CPU: %s, one thread, %d rounds x %d %s images, kernels %s, binary kernel %s, %s time"
          % (cpu, args.rounds, args.images, data, isa, args.kernel or "default",
             "thread CPU" if args.clock == "cpu" else "wall-clock"))
    print("%-22s %9s %9s %8s %9s %9s" % ("network", "median ms", "min ms", "gated %",
                                          "/ dense", "(rounds)"))
    out = []
    for k, r in rows.items():
        row = {"network": k, "weights": r[2], "median_ms": med[k], "min_ms": min(times[k]),
               "wall_median_ms": statistics.median(wall[k]), "wall_min_ms": min(wall[k]),
               "cpu_median_ms": statistics.median(cpu_t[k]), "cpu_min_ms": min(cpu_t[k]),
               "layers": ["%s %s" % (layer.type, "x".join(map(str, layer.output_shape)))
                          for layer in nets[k].layers],
               "layers_ms": [float(v) for v in per[k]],
               "body_ms": body_ms(nets[k].layers, per[k])}
        if r[3]:
            # the ratio of the medians, and the median of the ratios within a
            # round (steadier where other work shares the machine)
            row["gated_share"] = share[k]
            row["dense"] = r[3]
            row["ratio_to_dense"] = med[k] / med[r[3]]
            row["ratio_to_dense_per_round"] = statistics.median(
                a / b for a, b in zip(times[k], times[r[3]]))
        out.append(row)
        print("%-22s %9.4f %9.4f %8s %9s %9s" % (
            k, med[k], min(times[k]), "%.1f" % (100 * share[k]) if r[3] else "",
            "%.3f" % row["ratio_to_dense"] if r[3] else "",
            "%.3f" % row["ratio_to_dense_per_round"] if r[3] else ""))
    for k in (k for k in rows if k.startswith("dualpath")):
        print("against %s: %s" % (k, ", ".join("%s %.2fx" % (n, med[n] / med[k]) for n in rows
                                               if not n.startswith("dualpath"))))
    print("the body (the layers between the stem and the head, profiled ms): "
          + ", ".join("%s %.4f" % (k, r["body_ms"]) for k, r in zip(rows, out)))
    print("per layer (profiled ms, wall clock, median over the images):")
    for names in groups:
        print("  %-24s " % "layer" + " ".join("%12s" % n[-12:] for n in names))
        for i, layer in enumerate(nets[names[0]].layers):
            print("  %-24s " % ("%d %s %s" % (i, layer.type, "x".join(map(str, layer.output_shape))))
                  + " ".join("%12.4f" % per[n][i] for n in names))
    for net in nets.values():
        net.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "rounds": args.rounds, "images": args.images, "data": data,
                       "kernel": isa, "binary_kernel": args.kernel or "default",
                       "clock": args.clock,
                       "command": "python benchmarks/fracconv_bench.py " + " ".join(
                           argv if argv is not None else sys.argv[1:]),
                       "rows": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
