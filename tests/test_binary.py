"""Binary convolutions (xnor=1, and the abits/astep multi-bit activations).

* Darknet's golden xnor-small / xnor-cifar, every layer and the output, with
  every binary kernel variant the CPU runs, fused and unfused, 1 and 2 threads.
* The numpy reference (weights_tools/binary_ref.py) against the golden data,
  and MDFI against the numpy reference bit for bit: every xnor layer of the
  golden nets, and random nets of sign / ternary / 2-bit layers, grouped,
  strided, 1x1, odd sizes, with maxpools between (exact: integer sums and the
  same float32 epilogue).
* Fusion (binary layers writing bits, maxpool on bits) identical to unfused.
* The C driver tests/c/test_bgemm.c natively and, for aarch64 / armhf, under
  qemu (skipped without the tools unless MDFI_REQUIRE_CROSS=1).
* The bit-packed weights format, and clear errors for bad input.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mdfi
import weights_tools as wt
from cbuild import build, run_driver, variants_ok
from conftest import load_npy
from layer_stats import compare_layer
from weights_tools import binary_ref as br
from weights_tools import xnor_pack

NETS = ["xnor-small", "xnor-cifar"]
VARIANTS = ["ref", "popcnt", "avx2", "avx512vpopcnt", "neon"]
CROSS = {"aarch64": ("aarch64-linux-gnu-", "qemu-aarch64"),
         "armhf": ("arm-linux-gnueabihf-", "qemu-arm")}

TINY_XNOR = "[net]\nwidth=5\nheight=5\nchannels=3\n[convolutional]\nxnor=1\nfilters=2\nsize=3\npad=1\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("MDFI_BINARY_KERNEL", "MDFI_BINARY_FUSE", "MDFI_KERNEL"):
        monkeypatch.delenv(k, raising=False)


_AVAILABLE = None


def variants():
    """The binary kernel variants this CPU and build run."""
    global _AVAILABLE
    if _AVAILABLE is None:
        path = os.path.join(os.path.dirname(__file__), "..", "build", "binary_probe.cfg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(TINY_XNOR)
        _AVAILABLE = []
        old = os.environ.get("MDFI_BINARY_KERNEL")
        try:
            for v in VARIANTS:
                os.environ["MDFI_BINARY_KERNEL"] = v
                try:
                    mdfi.Network(path).close()
                    _AVAILABLE.append(v)
                except mdfi.UnsupportedError:
                    pass
        finally:
            if old is None:
                os.environ.pop("MDFI_BINARY_KERNEL", None)
            else:
                os.environ["MDFI_BINARY_KERNEL"] = old
    return _AVAILABLE


def run_net(cfg, weights, x, *, kernel=None, fuse=None, threads=1, keep=False):
    """(final output, [every layer] if keep) with the environment set for the call."""
    saved = {k: os.environ.get(k) for k in ("MDFI_BINARY_KERNEL", "MDFI_BINARY_FUSE")}
    try:
        for k, v in (("MDFI_BINARY_KERNEL", kernel), ("MDFI_BINARY_FUSE", fuse)):
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with mdfi.Network(cfg, weights, threads=threads, keep_outputs=keep) as net:
            out = net.forward(x)
            layers = [net.layer_output(i) for i in range(len(net.layers))] if keep else None
        return out, layers
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def rel_err(got, want):
    want = np.asarray(want, np.float32).ravel()
    return float(np.abs(np.asarray(got).ravel() - want).max() / max(np.abs(want).max(), 1e-6))


# ---- Darknet golden data -----------------------------------------------------------

@pytest.mark.parametrize("name", NETS)
def test_golden_every_layer(golden, name):
    syn = golden / "synthetic"
    x = np.load(syn / f"{name}.input.npy")
    ref = json.loads((syn / f"{name}.layers.json").read_text())
    out, layers = run_net(syn / f"{name}.cfg", syn / f"{name}.weights", x, threads=2, keep=True)
    problems = []
    for entry in ref["layers"]:
        i = entry["index"]
        problems += compare_layer(layers[i], entry)
        want = load_npy(syn / f"{name}.layers" / f"{i:02d}.npy")
        if rel_err(layers[i], want) > 1e-4:
            problems.append(f"layer {i}: max relative difference {rel_err(layers[i], want):.3g}")
    assert not problems, "\n".join(problems[:20])
    assert rel_err(out, load_npy(syn / f"{name}.output.npy")) <= 1e-4


@pytest.mark.parametrize("name", NETS)
def test_golden_every_variant_fused_and_threads(golden, name):
    """Every variant, fused or not, 1 or 2 threads: the golden output, all bit-identical."""
    syn = golden / "synthetic"
    x = np.load(syn / f"{name}.input.npy")
    want = load_npy(syn / f"{name}.output.npy")
    first = None
    for v in variants():
        for fuse in ("0", "1"):
            for threads in (1, 2):
                out, _ = run_net(syn / f"{name}.cfg", syn / f"{name}.weights", x, kernel=v,
                                 fuse=fuse, threads=threads)
                assert rel_err(out, want) <= 1e-4, (v, fuse, threads)
                if first is None:
                    first = out
                assert np.array_equal(out, first), (v, fuse, threads)
    assert "ref" in variants()


@pytest.mark.parametrize("name", NETS)
def test_numpy_reference_matches_golden(golden, name):
    syn = golden / "synthetic"
    x = np.load(syn / f"{name}.input.npy")
    outs = br.run(syn / f"{name}.cfg", syn / f"{name}.weights", x)
    for i, o in enumerate(outs):
        assert rel_err(o, load_npy(syn / f"{name}.layers" / f"{i:02d}.npy")) <= 1e-4, i


@pytest.mark.parametrize("name", NETS)
def test_xnor_layers_equal_numpy_exactly(golden, name):
    """Each xnor layer, fed MDFI's own previous output, equals the numpy
    reference bit for bit."""
    syn = golden / "synthetic"
    x = np.load(syn / f"{name}.input.npy")
    _, layers = run_net(syn / f"{name}.cfg", syn / f"{name}.weights", x, keep=True)
    cfg_layers = wt.layers_of(syn / f"{name}.cfg")
    w = wt.read_weights(cfg_layers, syn / f"{name}.weights")
    checked = 0
    for layer, arrays in zip(cfg_layers, w.layers):
        sec = layer.section
        if layer.type != "convolutional" or not sec.get_int("xnor", 0):
            continue
        size = sec.get_int("size", 1)
        pad = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
        inp = layers[layer.index - 1] if layer.index else x
        bn = (arrays["scales"], arrays["rolling_mean"], arrays["rolling_variance"])
        want = br.binary_conv(inp, arrays["weights"], arrays["biases"], bn,
                              stride=sec.get_int("stride", 1), pad=pad,
                              act=sec.get_str("activation", "logistic"))
        assert np.array_equal(layers[layer.index], want), layer.index
        checked += 1
    assert checked >= 5


# ---- random nets against the numpy reference ----------------------------------------

def make_net(tmp_path, name, shape, specs, rng, unit=False):
    """A cfg of xnor convolutions / maxpools from specs, random weights
    (unit: weights exactly +-1, no BN, zero bias).  Returns (cfg, weights)."""
    c, h, w = shape
    lines = [f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"]
    for s in specs:
        if s[0] == "max":
            lines.append(f"[maxpool]\nsize={s[1]}\nstride={s[2]}\n")
            continue
        _, filters, size, stride, pad, groups, abits, astep, act, bn = s
        sec = (f"[convolutional]\nxnor=1\nfilters={filters}\nsize={size}\nstride={stride}\n"
               f"padding={pad}\ngroups={groups}\nactivation={act}\n")
        if bn:
            sec += "batch_normalize=1\n"
        if abits != "1":
            sec += f"abits={abits}\nastep={astep}\n"
        lines.append(sec)
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text("\n".join(lines))
    layers = wt.layers_of(cfg)
    dw = wt.DarknetWeights()
    for layer in layers:
        arrays = {}
        for pname, pshape in layer.params:
            if pname == "weights":
                a = rng.uniform(-1, 1, pshape)
                a[rng.random(pshape) < 0.05] = 0.0      # exact zeros binarize to -1
                if unit:
                    a = np.where(a > 0, 1.0, -1.0)
            elif pname in ("scales", "rolling_variance"):
                a = rng.uniform(0.5, 1.5, pshape)
            else:
                a = rng.uniform(-0.2, 0.2, pshape) if not unit else np.zeros(pshape)
            if pname == "scales":
                a *= np.where(rng.random(pshape) < 0.25, -1, 1)   # negative BN scales
            arrays[pname] = a.astype(np.float32)
        dw.layers.append(arrays)
    weights = tmp_path / f"{name}.weights"
    weights.write_bytes(wt.write_weights(layers, dw))
    return cfg, weights


def make_input(shape, rng, steps=(1.0,)):
    x = rng.uniform(-2, 2, shape).astype(np.float32)
    specials = [0.0, -0.0] + [m * s for s in steps for m in (0.5, -0.5, 1.5, 2.5)]
    mask = rng.random(shape) < 0.3
    x[mask] = rng.choice(np.array(specials, np.float32), mask.sum())
    return x


NETS_RANDOM = {
    # name: (input shape, layers); conv: ("conv", filters, size, stride, pad, groups, abits, astep, act, bn)
    "sign-odd": ((5, 11, 9), [("conv", 7, 3, 1, 1, 1, "1", 1, "leaky", 1),
                              ("conv", 65, 3, 2, 1, 1, "1", 1, "relu", 1),
                              ("conv", 9, 1, 1, 0, 1, "1", 1, "linear", 0)]),
    "ternary": ((70, 9, 10), [("conv", 33, 3, 1, 1, 1, "1.5", 0.5, "leaky", 1),
                              ("max", 2, 2),
                              ("conv", 17, 3, 1, 1, 1, "1.5", 0.75, "linear", 1),
                              ("conv", 8, 5, 1, 2, 1, "1.5", 1, "relu", 0)]),
    "2bit": ((64, 8, 7), [("conv", 40, 3, 1, 1, 1, "2", 0.5, "relu", 1),
                          ("conv", 24, 3, 2, 0, 1, "2", 0.25, "leaky", 1),
                          ("conv", 6, 1, 1, 0, 1, "2", 1, "linear", 0)]),
    "mixed-chain": ((3, 13, 12), [("conv", 16, 3, 1, 1, 1, "1", 1, "leaky", 1),
                                  ("conv", 70, 3, 1, 1, 1, "1", 1, "relu", 1),
                                  ("max", 2, 2),
                                  ("conv", 20, 3, 1, 1, 1, "1.5", 0.5, "linear", 1),
                                  ("conv", 12, 1, 1, 0, 1, "2", 0.5, "leaky", 1),
                                  ("max", 3, 1),
                                  ("conv", 130, 3, 1, 1, 1, "1", 1, "leaky", 1),
                                  ("conv", 5, 3, 2, 1, 1, "2", 1, "linear", 1)]),
    "groups": ((24, 7, 9), [("conv", 12, 3, 1, 1, 3, "1", 1, "leaky", 1),
                            ("conv", 8, 3, 1, 1, 2, "1.5", 0.5, "relu", 1),
                            ("conv", 4, 1, 1, 0, 4, "2", 0.5, "linear", 1)]),
}


@pytest.mark.parametrize("name", sorted(NETS_RANDOM))
def test_random_nets_equal_numpy_exactly(tmp_path, name):
    """Every layer, every variant, fused and not: bit-identical to the numpy reference."""
    rng = np.random.default_rng(sum(name.encode()))
    shape, specs = NETS_RANDOM[name]
    cfg, weights = make_net(tmp_path, name, shape, specs, rng)
    steps = sorted({float(s[7]) for s in specs if s[0] == "conv"})
    x = make_input(shape, rng, steps)
    want = br.run(cfg, weights, x)
    for v in variants():
        _, layers = run_net(cfg, weights, x, kernel=v, fuse="0", keep=True)
        for i, (got, ref) in enumerate(zip(layers, want)):
            assert np.array_equal(got, ref), (v, i, rel_err(got, ref))
        for fuse in ("0", "1"):
            for threads in (1, 2):
                out, _ = run_net(cfg, weights, x, kernel=v, fuse=fuse, threads=threads)
                assert np.array_equal(out, want[-1]), (v, fuse, threads)


@pytest.mark.parametrize("abits,astep", [("1", 1), ("1.5", 1), ("2", 1)])
def test_integer_sums_exact(tmp_path, abits, astep):
    """Unit weights (+-1, mean |w| = 1), no BN, zero bias, linear: the output is
    the integer sum D itself, equal to numpy's integer convolution."""
    rng = np.random.default_rng(7)
    shape = (97, 10, 11)
    spec = [("conv", 37, 3, 1, 1, 1, abits, astep, "linear", 0)]
    cfg, weights = make_net(tmp_path, "unit" + abits, shape, spec, rng, unit=True)
    x = make_input(shape, rng)
    w = wt.read_weights(cfg, weights).layers[0]["weights"]
    mode = br.ABITS[abits]
    D = br.conv_levels(br.quantize(x, mode, astep), br.weight_signs(w), 1, 1)
    for v in variants():
        out, _ = run_net(cfg, weights, x, kernel=v)
        assert np.array_equal(out.astype(np.int64), D) and np.all(out == np.round(out)), v


# ---- Darknet options ---------------------------------------------------------------------

def test_binary_weights_only_runs_as_float_conv(tmp_path):
    """binary=1 (without xnor) is not honoured by Darknet's CPU forward: a float conv."""
    rng = np.random.default_rng(3)
    base = "[net]\nwidth=9\nheight=8\nchannels=4\n[convolutional]\nfilters=6\nsize=3\npad=1\n" \
           "batch_normalize=1\nactivation=leaky\n"
    a, b = tmp_path / "a.cfg", tmp_path / "b.cfg"
    a.write_text(base)
    b.write_text(base + "binary=1\n")
    layers = wt.layers_of(a)
    dw = wt.DarknetWeights(layers=[{n: rng.uniform(0.5, 1.5, s).astype(np.float32)
                                    for n, s in layers[0].params}])
    weights = tmp_path / "w.weights"
    weights.write_bytes(wt.write_weights(layers, dw))
    x = rng.uniform(-1, 1, (4, 8, 9)).astype(np.float32)
    with mdfi.Network(a, weights) as na, mdfi.Network(b, weights) as nb:
        assert np.array_equal(na.forward(x), nb.forward(x))
        assert not nb.layers[0].xnor


# ---- errors --------------------------------------------------------------------------------

BAD = [
    ("abits=2\n", mdfi.CfgError, r"abits/astep .* need xnor=1"),
    ("xnor=1\nabits=3\n", mdfi.CfgError, r"abits=3.*1 \(sign.*1\.5.*2"),
    ("xnor=1\nastep=0.5\n", mdfi.CfgError, r"astep applies to abits=1\.5 or 2"),
    ("xnor=1\nabits=2\nastep=0\n", mdfi.CfgError, r"astep=0 must be a positive"),
    ("xnor=1\nabits=1.5\nastep=x\n", mdfi.CfgError, r"astep=x is not a number"),
    ("xnor=2\n", mdfi.CfgError, r"xnor must be 0 or 1"),
    ("xnor=1\ndilation=2\n", mdfi.UnsupportedError, r"dilation"),
    ("xnor=1\ngroups=2\n", mdfi.ShapeError, r"groups=2 must divide"),
]


@pytest.mark.parametrize("extra,exc,pattern", BAD)
def test_bad_binary_options(tmp_path, extra, exc, pattern):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("[net]\nwidth=6\nheight=6\nchannels=3\n[convolutional]\nfilters=4\nsize=3\n"
                   "pad=1\n" + extra)
    with pytest.raises(exc, match=pattern) as e:
        mdfi.Network(cfg)
    assert "bad.cfg:" in str(e.value)


def test_bad_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "t.cfg"
    cfg.write_text(TINY_XNOR)
    monkeypatch.setenv("MDFI_BINARY_KERNEL", "sse9")
    with pytest.raises(mdfi.ArgumentError, match="MDFI_BINARY_KERNEL=sse9"):
        mdfi.Network(cfg)
    monkeypatch.delenv("MDFI_BINARY_KERNEL")
    monkeypatch.setenv("MDFI_BINARY_FUSE", "yes")
    with pytest.raises(mdfi.ArgumentError, match="MDFI_BINARY_FUSE=yes"):
        mdfi.Network(cfg)
    monkeypatch.setenv("MDFI_BINARY_FUSE", "auto")
    missing = [v for v in VARIANTS if v not in variants()]
    if missing:
        monkeypatch.setenv("MDFI_BINARY_KERNEL", missing[0])
        with pytest.raises(mdfi.UnsupportedError, match="cannot run the binary kernel"):
            mdfi.Network(cfg)


# ---- memory / packed weights -----------------------------------------------------------------

def test_prepared_weights_packed(tmp_path):
    """In memory, a 3x3 xnor conv of 128 -> 128 channels keeps <= 1/25 of the float bytes."""
    text = "[net]\nwidth=6\nheight=6\nchannels=128\n[convolutional]\nfilters=128\nsize=3\npad=1\n" \
           "batch_normalize=1\nactivation=leaky\n"
    f, b = tmp_path / "f.cfg", tmp_path / "b.cfg"
    f.write_text(text)
    b.write_text(text + "xnor=1\n")
    with mdfi.Network(f) as nf, mdfi.Network(b) as nb:
        float_bytes = 128 * 128 * 9 * 4
        assert nf.weight_bytes >= float_bytes
        assert nb.weight_bytes * 25 <= float_bytes, nb.weight_bytes


@pytest.mark.parametrize("name", NETS)
def test_packed_weights_file(golden, tmp_path, name):
    syn = golden / "synthetic"
    data, report = xnor_pack.pack(syn / f"{name}.cfg", syn / f"{name}.weights")
    t = report["total"]
    assert t["packed_bytes"] * 25 <= t["float_bytes"], t
    for r in report["layers"]:
        if r["k"] >= 144:   # one bit per weight + a float per filter: 32k / (k + 32)
            assert r["packed_bytes"] * 25 <= r["float_bytes"], r
    back = xnor_pack.unpack(syn / f"{name}.cfg", data)
    unpacked = tmp_path / "u.weights"
    unpacked.write_bytes(wt.write_weights(syn / f"{name}.cfg", back))
    x = np.load(syn / f"{name}.input.npy")
    a, _ = run_net(syn / f"{name}.cfg", syn / f"{name}.weights", x)
    b, _ = run_net(syn / f"{name}.cfg", unpacked, x)
    assert np.array_equal(a, b)    # lossless for inference
    bad = bytearray(data)
    bad[40] ^= 1
    with pytest.raises(wt.WeightsError, match="CRC"):
        xnor_pack.unpack(syn / f"{name}.cfg", bytes(bad))


def test_packed_weights_cli(golden, tmp_path):
    syn = golden / "synthetic"
    out = tmp_path / "s.bweights"
    res = subprocess.run([sys.executable, "-m", "weights_tools.xnor_pack", "pack",
                          str(syn / "xnor-small.cfg"), str(syn / "xnor-small.weights"), str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert re.search(r"binary weights: \d+ float bytes -> \d+ packed bytes \(1/\d", res.stdout)
    back = tmp_path / "s.weights"
    res = subprocess.run([sys.executable, "-m", "weights_tools.xnor_pack", "unpack",
                          str(syn / "xnor-small.cfg"), str(out), str(back)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and back.stat().st_size == (syn / "xnor-small.weights").stat().st_size


# ---- the C driver ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native_driver():
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    return build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_bgemm"


def test_c_driver_native(native_driver):
    quick = ["--quick"] if os.environ.get("MDFI_SANITIZE") == "1" else []
    out = run_driver([str(native_driver), *quick], timeout=300)
    assert set(variants()) <= variants_ok(out), out
    assert "fusion plan    ok" in out and "thresholds     ok" in out


def test_c_driver_bench_mode(native_driver):
    res = subprocess.run([str(native_driver), "--bench", "--quick"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = re.findall(r"^(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", res.stdout, re.M)
    assert len(rows) >= 2 and all(float(r[5]) > 0 for r in rows), res.stdout


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_c_driver_under_qemu(arch):
    cross, qemu = CROSS[arch]
    if not (shutil.which(cross + "gcc") and shutil.which(qemu)):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {cross}gcc or {qemu} is missing")
        pytest.skip(f"no {cross}gcc or {qemu}")
    exe = build(cross=cross, targets=("tests",)) / "tests" / "test_bgemm"
    out = run_driver([qemu, str(exe), "--quick"], timeout=300)
    assert {"ref", "neon"} <= variants_ok(out), out
