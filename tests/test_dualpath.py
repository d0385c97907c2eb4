"""The [dualpath] layer (docs/dualpath.md): csrc/layers/dualpath.c against the
independent numpy reference weights_tools/dualpath_ref.py, bit for bit.

* Random networks: a float stem, [dualpath] layers of abits 1 and 1.5, 1x1 and
  3x3 kernels, stride 2, 65 and 130 channels (across the 64-bit words), odd
  image sizes, from=-1 and from= an earlier layer, channel tiling (filters =
  2 x the source's channels), maxpools and routes between, float heads.
  Every [dualpath], [maxpool] and [route] output of MDFI equals the reference
  fed MDFI's own inputs, for every binary kernel variant this CPU runs and 1
  and 3 threads (all runs bit-identical); a network whose body starts at the
  input is equal end to end without feeding.
* Inputs exactly on the thresholds, NaN / infinite / huge second sources,
  parameters that hit every clamp; two examples computed by hand.
* An xnor [convolutional] next to [dualpath] layers: binary fusion on or off
  gives the same output (a [dualpath] never takes or hands over bits).
* Bad cfgs and parameters: typed errors naming file:line / layer / channel,
  the same refusals in the Python cfg reader and reference.
* The C driver tests/c/test_dualpath.c (natively, MDFI_SANITIZE=1: under
  ASan/UBSan) and, for aarch64 / armhf (NEON), under qemu.
"""
import functools
import os
import shutil
import subprocess

import numpy as np
import pytest

import mdfi
import weights_tools as wt
from cbuild import build
from weights_tools import dualpath_ref as dr

VARIANTS = ["ref", "popcnt", "avx2", "avx512vpopcnt", "neon"]
CROSS = {"aarch64": ("aarch64-linux-gnu-", "qemu-aarch64"),
         "armhf": ("arm-linux-gnueabihf-", "qemu-arm")}
EXACT = ("dualpath", "fracconv", "maxpool", "route")   # exact integers (test_fracconv too)
F32 = np.float32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("MDFI_BINARY_KERNEL", "MDFI_BINARY_FUSE", "MDFI_KERNEL"):
        monkeypatch.delenv(k, raising=False)


_AVAILABLE = None


def variants():
    """The binary kernel variants this CPU and build run."""
    global _AVAILABLE
    if _AVAILABLE is None:
        path = os.path.join(os.path.dirname(__file__), "..", "build", "dualpath_probe.cfg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("[net]\nwidth=3\nheight=3\nchannels=2\n[dualpath]\nfilters=2\n")
        _AVAILABLE = []
        for v in VARIANTS:
            try:
                mdfi.Network(path, binary_kernel=v).close()
                _AVAILABLE.append(v)
            except mdfi.UnsupportedError:
                pass
    return _AVAILABLE


def run_all(cfg, weights, x, *, kernel=None, threads=1, isa=None):
    """Every layer's output (keep_outputs)."""
    with mdfi.Network(cfg, weights, threads=threads, keep_outputs=True,
                      binary_kernel=kernel, kernel=isa) as net:
        net.forward(x)
        return [net.layer_output(i) for i in range(len(net.layers))]


# ---- networks and parameters -------------------------------------------------------------

def grid(rng, shape, lo=-3, hi=3):
    """Integers and half-integers in [lo, hi]."""
    return (rng.integers(2 * lo, 2 * hi + 1, shape) / 2).astype(F32)


def dualpath_arrays(rng, layer, *, big=False):
    """Random [dualpath] parameters: negative and zero BN scales, zero
    variances, zero weights, thresholds on the integer / half-integer grid and
    off it.  big: a range that makes r hit its clamp."""
    M = layer.out_shape[0]
    C = layer.in_shape[0]
    a = {}
    a["biases"] = rng.uniform(-4, 4, M)
    a["scales"] = rng.uniform(0.2, 2.5, M) * np.where(rng.random(M) < 0.3, -1, 1)
    a["scales"][rng.random(M) < 0.05] = 0.0                         # A = 0: S = 0
    a["rolling_mean"] = rng.uniform(-3, 3, M)
    a["rolling_variance"] = rng.uniform(0.05, 4, M)
    zero = rng.random(M) < (0 if big else 0.1)                       # sd = 1e-6: large A
    a["rolling_variance"][zero] = 0.0
    a["rolling_mean"][zero] = 0.0
    a["biases"][zero] = rng.uniform(-2, 2, zero.sum())
    a["rolling_variance"][rng.random(M) < 0.1] = 1.0
    w = rng.uniform(-1, 1, (M,) + layer.params[4][1][1:])
    w[rng.random(w.shape) < 0.05] = 0.0                              # w == 0 -> -1
    a["weights"] = w
    shift = grid(rng, C, -2, 2)
    off = rng.random(C) < 0.3
    shift[off] = rng.uniform(-2, 2, off.sum())
    a["shift"] = shift
    if any(n == "delta" for n, _ in layer.params):
        a["delta"] = np.array([rng.choice([0.0, 0.5, 1.0, 1.5])])
    a["range"] = np.array([rng.uniform(200, 2000) if big else rng.uniform(0.3, 3)])
    return a


def make_weights(path, cfg, rng, big=(), special=None):
    """Random weights for every layer of cfg (float layers: as test_binary);
    special: {type: function(rng, layer, big=...)} for the integer-stream
    layers (default: [dualpath])."""
    special = special or {"dualpath": dualpath_arrays}
    layers = wt.layers_of(cfg)
    dw = wt.DarknetWeights()
    for layer in layers:
        if layer.type in special:
            arrays = special[layer.type](rng, layer, big=layer.index in big)
        else:
            arrays = {}
            for name, shape in layer.params:
                if name == "weights":
                    a = rng.uniform(-1, 1, shape)
                elif name in ("scales", "rolling_variance"):
                    a = rng.uniform(0.5, 1.5, shape)
                else:
                    a = rng.uniform(-0.5, 0.5, shape)
                arrays[name] = a
        dw.layers.append({n: np.asarray(arrays[n], F32).reshape(s) for n, s in layer.params})
    path.write_bytes(wt.write_weights(layers, dw))
    return path


def body_input(rng, shape, specials=True):
    """Integers and half-integers (on the thresholds), with NaN, infinities,
    huge values and halves that round to even."""
    x = grid(rng, shape, -4, 4)
    if specials:
        sp = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 2.0 ** 24 + 2, -(2.0 ** 24) - 2,
                       2.5, -2.5, 0.5, -0.5, 3.5], F32)
        mask = rng.random(shape) < 0.08
        x[mask] = rng.choice(sp, mask.sum())
    return x


STEM = """[net]
width=7
height=5
channels=3

[convolutional]
filters=65
size=3
pad=1
batch_normalize=1
activation=linear

[dualpath]
filters=65
size=3
pad=1
abits=1

[dualpath]
filters=130
size=1
abits=1.5

[dualpath]
filters=130
size=3
pad=1
abits=1
from=1

[maxpool]
size=2
stride=2

[dualpath]
filters=130
size=3
pad=1
abits=1.5

[route]
layers=3

[dualpath]
filters=130
size=3
stride=2
pad=1
abits=1
from=4

[route]
layers=5,7

[dualpath]
filters=260
size=1
abits=1.5
from=-1

[avgpool]

[connected]
output=10
activation=linear

[softmax]
"""

BODY = """[net]
width=7
height=5
channels=65

[dualpath]
filters=65
size=3
pad=1
abits=1.5

[dualpath]
filters=130
size=1
abits=1
from=-1

[maxpool]
size=3
stride=1

[dualpath]
filters=130
size=3
pad=1
abits=1.5
from=1

[maxpool]
size=2
stride=2

[route]
layers=3

[dualpath]
filters=130
size=1
stride=2
abits=1
from=4

[dualpath]
filters=260
size=3
pad=1
abits=1
from=4

[convolutional]
filters=7
size=1
activation=leaky
"""

CLAMPS = """[net]
width=5
height=5
channels=130

[dualpath]
filters=130
size=3
pad=1
abits=1

[dualpath]
filters=130
size=3
pad=1
abits=1.5

[dualpath]
filters=130
size=1
abits=1
"""

XNOR_MIX = """[net]
width=9
height=6
channels=3

[convolutional]
filters=16
size=3
pad=1
batch_normalize=1
activation=linear

[convolutional]
xnor=1
filters=16
size=3
pad=1
batch_normalize=1
activation=leaky

[dualpath]
filters=16
size=3
pad=1
abits=1.5

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
filters=32
size=3
pad=1
batch_normalize=1
activation=relu

[dualpath]
filters=32
size=1
abits=1

[convolutional]
xnor=1
filters=8
size=1
batch_normalize=1
activation=linear

[convolutional]
filters=4
size=1
activation=linear
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def check_against_reference(cfg, weights, x, got, exact_end_to_end=False):
    """got: MDFI's every-layer outputs.  Exact layers equal the reference fed
    MDFI's inputs; float layers are close."""
    layers = wt.layers_of(cfg)
    fed = dr.run(cfg, weights, x, given=got)
    for layer, g, want in zip(layers, got, fed):
        assert g.shape == want.shape, (layer.index, g.shape, want.shape)
        if layer.type in EXACT:
            assert np.array_equal(g, want), (layer.index, layer.type,
                                             np.argwhere(g != want)[:5].tolist())
        else:
            assert np.allclose(g, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max())), \
                layer.index
    if exact_end_to_end:
        alone = dr.run(cfg, weights, x)
        for layer, g, want in zip(layers, got, alone):
            if layer.type in EXACT:
                assert np.array_equal(g, want), (layer.index, "end to end")
    n_dp = sum(layer.type in ("dualpath", "fracconv") for layer in layers)
    assert n_dp >= 3
    return fed


# A max pool whose first and last windows lie wholly outside its input
# (padding=6: windows start at -3) gives -FLT_MAX there: a second source the
# requantization must clamp; the pool after the second layer (windows
# inside) passes the stream on.
EMPTY_WINDOWS = """[net]
width=5
height=5
channels=64

[dualpath]
filters=64
size=3
pad=1
abits=1.5

[maxpool]
size=2
stride=2
padding=6

[dualpath]
filters=128
size=3
pad=1
abits=1.5
from=-1

[maxpool]
size=3
stride=1

[dualpath]
filters=128
size=3
pad=1
abits=1
from=-1
"""

NETS = {
    # name: (cfg text, input maker, layers with a big range, exact end to end)
    "stem": (STEM, lambda rng: rng.uniform(-2, 2, (3, 5, 7)).astype(F32), (), False),
    "body": (BODY, lambda rng: body_input(rng, (65, 5, 7)), (), True),
    "clamps": (CLAMPS, lambda rng: body_input(rng, (130, 5, 5)), (0, 2), True),
    "empty_windows": (EMPTY_WINDOWS, lambda rng: body_input(rng, (64, 5, 5)), (), True),
}


def runs_agree(cfg, weights, x, end_to_end):
    """Every variant and 1 and 3 threads give the same outputs, the first run
    checked against the reference; the ISA's forms of the integer loops (ref
    or the best) agree on the exact layers.  Returns the first run."""
    first = None
    assert {"ref"} <= set(variants())
    for v in variants():
        for threads in (1, 3):
            got = run_all(cfg, weights, x, kernel=v, threads=threads)
            if first is None:
                first = got
                check_against_reference(cfg, weights, x, got, end_to_end)
            for i, (a, b) in enumerate(zip(got, first)):
                assert np.array_equal(a, b, equal_nan=True), (v, threads, i)
    # the requantization loop has a portable and an AVX2 form, chosen by the ISA
    # (which also picks the float layers' kernels: only the integer body must agree)
    body = [layer.index for layer in wt.layers_of(cfg) if layer.type in EXACT]
    for isa in ("ref", None) if end_to_end else ():
        got = run_all(cfg, weights, x, isa=isa)
        for i in body:
            assert np.array_equal(got[i], first[i], equal_nan=True), (isa, i)
    return first


def net_runs(tmp_path, nets, name, make, seed):
    """(cfg, weights, x, outputs) of nets[name] = (cfg text, input maker,
    layers with a big range, exact end to end), weights by make, checked by
    runs_agree."""
    text, make_x, big, end_to_end = nets[name]
    rng = np.random.default_rng(sum(name.encode()) + seed)
    cfg = write(tmp_path, name + ".cfg", text)
    weights = make(tmp_path / (name + ".weights"), cfg, rng, big=big)
    x = make_x(rng)
    return cfg, weights, x, runs_agree(cfg, weights, x, end_to_end)


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_layer_equals_the_reference(tmp_path, name):
    cfg, _, _, first = net_runs(tmp_path, NETS, name, make_weights, 1)
    layers = wt.layers_of(cfg)
    dp = [first[layer.index] for layer in layers if layer.type == "dualpath"]
    for z in dp:   # integers within the clamp, and the run is not trivial
        assert np.all(z == np.rint(z)) and np.abs(z).max() <= 2 ** 24
    if name == "clamps":
        assert any((np.abs(z) == 2 ** 24).any() for z in dp)


def fusable_arrays(rng, layer, *, big=False):
    """dualpath_arrays without the channels (BN scale 0, variance 0) whose
    multiplier has no int32 split: a layer of such channels only is
    requantized by the binary kernel itself where it can (mdfi_bout's rq:
    AVX2 and AVX-512), as trained networks are."""
    a = dualpath_arrays(rng, layer, big=big)
    a["scales"][a["scales"] == 0] = 0.7
    a["rolling_variance"][a["rolling_variance"] == 0] = 0.5
    return a


@pytest.mark.parametrize("name", ["body", "empty_windows"])
def test_fused_requantization_equals_the_reference(tmp_path, name):
    """The kernels' own requantization (mdfi_bout's rq) on every layer, with
    second sources from the stream, from max pools of it and clamped: the
    same integers as the reference and every other kernel.  (The weights of
    NETS leave it to layer 0, since a channel without the split anywhere in
    a layer makes the layer requantize in a pass of its own.)"""
    make = functools.partial(make_weights, special={"dualpath": fusable_arrays})
    net_runs(tmp_path, NETS, name, make, 2)


@pytest.mark.parametrize("abits", ["1", "1.5"])
def test_thresholds_hit_exactly(tmp_path, abits):
    """Inputs equal to shift, shift + delta and shift - delta: the strict
    compares decide (ternary: x == hi and x == lo give 0; sign: x == shift
    gives -1), and one float32 step beyond them does not."""
    text = "[net]\nwidth=6\nheight=1\nchannels=2\n[dualpath]\nfilters=2\nsize=1\nabits=%s\n" % abits
    cfg = write(tmp_path, "t.cfg", text)
    arrays = {"biases": [0, 0], "scales": [1, 1], "rolling_mean": [0, 0],
              "rolling_variance": [1, 1], "weights": [[1, 0], [0, 1]], "shift": [0.5, -1.0],
              "delta": [0.5], "range": [1]}
    weights = write_arrays(tmp_path, cfg, [arrays])
    x = np.array([[[0, 1, 0.5, -0.5, 2, 1.0000001]],
                  [[-0.5, -1.5, -1, -1.4999999, -2, -0.4999999]]], F32)
    levels = dr.quantize(x, [0.5, -1.0], abits, 0.5)
    if abits == "1.5":   # channel 0: hi 1, lo 0; channel 1: hi -0.5, lo -1.5
        assert levels.tolist() == [[[0, 0, 0, -1, 1, 1]], [[0, 0, 0, 0, -1, 1]]]
    else:                # x > shift
        assert levels.tolist() == [[[-1, 1, -1, -1, 1, 1]], [[1, -1, -1, -1, -1, 1]]]
    want = dr.run(cfg, weights, x)[0]
    for v in variants():
        assert np.array_equal(run_all(cfg, weights, x, kernel=v)[0], want), v


def test_hand_computed_ternary(tmp_path):
    """1 channel, 3x3 image, 1x1 kernel of weight +1, shift 1, delta 0.5
    (hi 1.5, lo 0.5), range 2, unit BN: A = 2/(1 + 1e-6), B = 0, so r = 2a;
    s = rint(x) (half to even), NaN -> 0."""
    cfg = write(tmp_path, "h.cfg", "[net]\nwidth=3\nheight=3\nchannels=1\n[dualpath]\nfilters=1\n"
                                   "size=1\nabits=1.5\n")
    arrays = {"biases": [0], "scales": [1], "rolling_mean": [0], "rolling_variance": [1],
              "weights": [1], "shift": [1], "delta": [0.5], "range": [2]}
    weights = write_arrays(tmp_path, cfg, [arrays])
    x = np.array([[[0, 1, 2], [3, -1, 0.5], [1.5, np.nan, 4]]], F32)
    want = np.array([[[-2, 1, 4], [5, -3, 0], [2, 0, 6]]], F32)
    for v in variants():
        for threads in (1, 3):
            assert np.array_equal(run_all(cfg, weights, x, kernel=v, threads=threads)[0], want)
    assert np.array_equal(dr.run(cfg, weights, x)[0], want)


def test_hand_computed_half_up(tmp_path):
    """A = 1 exactly (scale = fl32(1 + 1e-6) = sd), B = 0.5: r = D + 0.5 rounded
    half up, so D = +1 -> 2 and D = -1 -> 0; sign quantizer at shift 0; the
    output adds rint(x)."""
    cfg = write(tmp_path, "h.cfg", "[net]\nwidth=3\nheight=3\nchannels=1\n[dualpath]\nfilters=1\n"
                                   "size=1\n")
    g = float(F32(1) + F32(1e-6))
    arrays = {"biases": [0.5], "scales": [g], "rolling_mean": [0], "rolling_variance": [1],
              "weights": [0.25], "shift": [0], "range": [1]}
    weights = write_arrays(tmp_path, cfg, [arrays])
    A, B = dr.fold([0.5], [g], [0], [1], 1.0)
    assert A[0] == 1 and B[0] == 0.5
    x = np.array([[[-2, -0.5, 0], [0.5, 1, 2.5], [3.5, -2.5, np.nan]]], F32)
    want = np.array([[[-2, 0, 0], [2, 3, 4], [6, -2, 0]]], F32)
    for v in variants():
        assert np.array_equal(run_all(cfg, weights, x, kernel=v)[0], want)
    assert np.array_equal(dr.run(cfg, weights, x)[0], want)


def write_arrays(tmp_path, cfg, arrays_list, name="w.weights"):
    layers = wt.layers_of(cfg)
    dw = wt.DarknetWeights(layers=[
        {n: np.asarray(a[n], F32).reshape(s) for n, s in layer.params}
        for layer, a in zip(layers, arrays_list)])
    p = tmp_path / name
    p.write_bytes(wt.write_weights(layers, dw))
    return p


def test_reference_pieces():
    """The reference's own arithmetic on numbers checked by hand."""
    # floor shift of negatives, the rounding term 2^(S-1), S = 0 without one
    assert dr.requantize(np.array([[[3, -3, 0]]]), [3], [0], [1]).tolist() == [[[5, -4, 0]]]
    assert dr.requantize(np.array([[[1, -1, 3]]]), [5], [-3], [2]).tolist() == [[[1, -2, 3]]]
    assert dr.requantize(np.array([[[7, -7]]]), [3], [1], [0]).tolist() == [[[22, -20]]]
    assert dr.requantize(np.array([[[2 ** 24]]]), [2 ** 30], [0], [0]).tolist() == [[[2 ** 24]]]
    # frexp: A = 0.75 = 0.75 * 2^0 -> S = 30; A = 2^29 -> e = 30, S = 0; tiny A -> S = 36
    Mul, Off, S = dr.fixed_point(np.array([0.75, 2.0 ** 29, 1e-9, 0.0], F32),
                                 np.array([0.5, 3.5, -0.25, 2.5], F32))
    assert S.tolist() == [30, 0, 36, 0]
    assert Mul.tolist() == [3 << 28, 1 << 29, int(np.rint(float(F32(1e-9)) * 2.0 ** 36)), 0]
    assert Off.tolist() == [1 << 29, 4, -(1 << 34), 2]          # rint(3.5) = 4, rint(2.5) = 2
    with pytest.raises(dr.DualpathError, match="channel 0.*2\\^30"):
        dr.fixed_point(np.array([2.0 ** 30], F32), np.array([0], F32))
    with pytest.raises(dr.DualpathError, match="channel 1.*2\\^24"):
        dr.fixed_point(np.array([1, 1], F32), np.array([0, -(2.0 ** 24)], F32))
    s = dr.second_source(np.array([[[np.nan, np.inf, -1e30, 2.5, -0.5, 1.5]]], F32), 2)
    assert s.tolist() == [[[0, 2 ** 24, -(2 ** 24), 2, 0, 2]]] * 2


def fusion_agrees(tmp_path, text, **kw):
    """xnor convolutions read and feed integer-stream layers: they must not
    hand over bits; fused and unfused runs agree with the keep_outputs run."""
    rng = np.random.default_rng(11)
    cfg = write(tmp_path, "mix.cfg", text)
    weights = make_weights(tmp_path / "mix.weights", cfg, rng, **kw)
    x = rng.uniform(-2, 2, (3, 6, 9)).astype(F32)
    got = run_all(cfg, weights, x)
    fed = dr.run(cfg, weights, x, given=got)
    for i, layer in enumerate(wt.layers_of(cfg)):
        if layer.type in EXACT or layer.section.get_int("xnor", 0):
            assert np.array_equal(got[i], fed[i]), i
    for v in variants():
        for fuse in (True, False):
            with mdfi.Network(cfg, weights, binary_kernel=v, binary_fuse=fuse) as net:
                assert np.array_equal(net.forward(x), got[-1]), (v, fuse)


def test_fusion_next_to_dualpath(tmp_path):
    fusion_agrees(tmp_path, XNOR_MIX)


def test_info_and_no_weights(tmp_path):
    """Without weights the layer runs (unit BN, range 1); its info is a
    binary conv's."""
    cfg = write(tmp_path, "s.cfg", STEM)
    with mdfi.Network(cfg) as net:
        out = net.forward(np.zeros((3, 5, 7), F32))
        li = net.layers[1]
        assert (li.type, li.filters, li.size, li.stride, li.pad, li.xnor) == \
            ("dualpath", 65, 3, 1, 1, True)
        assert li.batch_normalize and li.activation == "linear"
        # binary multiply-adds, one plane (abits=1); no float ones
        assert (li.flops, li.bops, li.macs) == (0, 65 * 65 * 9 * 5 * 7, 65 * 65 * 9 * 5 * 7)
        assert net.layers[2].bops == 2 * net.layers[2].macs == 2 * 130 * 65 * 5 * 7   # 1.5 bits
        assert li.input_shape == (65, 5, 7) and li.output_shape == (65, 5, 7)
        assert net.layers[7].output_shape == (130, 3, 4)
        assert out.shape == (10, 1, 1)
    n = sum(layer.n_params for layer in wt.layers_of(cfg))
    with_params = wt.layers_of(cfg)[2].params
    assert [p for p, _ in with_params] == ["biases", "scales", "rolling_mean", "rolling_variance",
                                           "weights", "shift", "delta", "range"]
    assert with_params[4][1] == (130, 65, 1, 1) and with_params[5][1] == (65,)
    assert n > 0


def test_inputs_as_the_engine_wires_them(tmp_path):
    layers = wt.layers_of(write(tmp_path, "s.cfg", STEM))
    assert layers[1].inputs == [0, 0] and layers[3].inputs == [2, 1]
    assert layers[7].inputs == [6, 4]
    first = wt.layers_of(write(tmp_path, "b.cfg", BODY))
    assert first[0].inputs == [-1, -1]


# ---- errors ---------------------------------------------------------------------------

HEAD = "[net]\nwidth=6\nheight=6\nchannels=4\n[convolutional]\nfilters=4\nsize=1\n" \
       "activation=linear\n[dualpath]\nfilters=8\nsize=3\npad=1\n"
BAD_CFG = [
    ("abits=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: abits=2; .*1 \(sign\) or 1\.5"),
    ("abits=0.5\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: abits=0\.5"),
    ("abits=1.5\nastep=0.5\n", mdfi.CfgError, r"bad\.cfg:14: layer 1 \[dualpath\]: astep is not"),
    ("xnor=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: xnor is not"),
    ("binary=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: binary is not"),
    ("dilation=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: dilation is not"),
    ("batch_normalize=0\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: batch_normalize=0"),
    ("activation=leaky\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: activation=leaky"),
    ("groups=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: groups is not"),
    ("from=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: from=1 refers to layer 1, "
                                r"which is not an earlier layer"),
    ("from=-5\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: from=-5 .*not an earlier"),
    ("from=7\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[dualpath\]: from=7 .*not an earlier"),
    ("stride=2\n", mdfi.ShapeError, r"bad\.cfg:9: layer 1 \[dualpath\]: from=-1 .*4 x 6 x 6\) "
                                    r"does not fit an output of 8 x 3 x 3"),
    ("filters=6\n", mdfi.ShapeError, r"bad\.cfg:\d+: layer 1 \[dualpath\]: from=-1 .*does not fit"),
]


@pytest.mark.parametrize("extra,exc,pattern", BAD_CFG)
def test_bad_cfg(tmp_path, extra, exc, pattern):
    text = HEAD + extra
    if extra == "filters=6\n":
        text = HEAD.replace("filters=8", "filters=6")
    cfg = write(tmp_path, "bad.cfg", text)
    with pytest.raises(exc, match=pattern):
        mdfi.Network(cfg)
    with pytest.raises(wt.CfgError, match=r"bad\.cfg:\d+: \[dualpath\]"):
        wt.layers_of(cfg)


def test_bad_second_source_shape(tmp_path):
    """from= a layer of another height and width (a maxpool's output)."""
    cfg = write(tmp_path, "bad.cfg", HEAD.replace("[dualpath]", "[maxpool]\nsize=2\nstride=2\n"
                                                  "[dualpath]") + "from=0\n")
    with pytest.raises(mdfi.ShapeError, match=r"bad\.cfg:16: layer 2 \[dualpath\]: from=0 \(layer "
                                              r"0, 4 x 6 x 6\) does not fit an output of 8 x 3 x 3"):
        mdfi.Network(cfg)
    with pytest.raises(wt.CfgError, match=r"bad\.cfg:16: \[dualpath\]: from=0 .*does not fit"):
        wt.layers_of(cfg)


def good_arrays(M=8, C=4, k=3, abits="1"):
    a = {"biases": np.zeros(M), "scales": np.ones(M), "rolling_mean": np.zeros(M),
         "rolling_variance": np.ones(M), "weights": np.ones((M, C, k, k)), "shift": np.zeros(C),
         "range": [1.0]}
    if abits == "1.5":
        a["delta"] = [0.5]
    return a


BAD_PARAMS = [
    # (changes, C message, reference message)
    ({"rolling_variance": (3, -0.5)}, r"layer 1 \[dualpath\]: channel 3 has a negative "
                                      r"rolling_variance", r"channel 3 has a negative"),
    ({"range": (0, 0.0)}, r"layer 1 \[dualpath\]: range = 0 must be a positive", r"range = 0"),
    ({"range": (0, -2.0)}, r"layer 1 \[dualpath\]: range = -2 must be", r"range = -2"),
    ({"delta": (0, -0.25)}, r"layer 1 \[dualpath\]: delta = -0.25 must be >= 0", r"delta = -0.25"),
    ({"scales": (5, 2.0 ** 24), "rolling_variance": (5, 0.0)},
     r"layer 1 \[dualpath\]: channel 5's multiplier \|A\| = .*must be < 2\^30", r"channel 5's "
     r"multiplier"),
    ({"biases": (2, 2.0 ** 24)}, r"layer 1 \[dualpath\]: channel 2's offset \|B\| = .*must be "
                                 r"< 2\^24", r"channel 2's offset"),
    ({"rolling_mean": (6, 3e38), "scales": (6, 3e38), "rolling_variance": (6, 0.0)},
     r"layer 1 \[dualpath\]: channel 6 folds to a non-finite", r"channel 6 folds to a non-finite"),
]


def params_refused(tmp_path, text, a, changes, c_msg, ref_error, ref_msg):
    """HEAD-like cfg text whose layer 1 gets arrays a with changes {name:
    (index, value)}: C refuses them (WeightsError, c_msg), so does the
    reference (ref_error, ref_msg)."""
    cfg = write(tmp_path, "bad.cfg", text)
    for name, (i, v) in changes.items():
        a[name] = np.array(a[name], np.float64)
        a[name].ravel()[i] = v
    conv = {"biases": np.zeros(4), "weights": np.eye(4).reshape(4, 4, 1, 1)}
    weights = write_arrays(tmp_path, cfg, [conv, a])
    with pytest.raises(mdfi.WeightsError, match=c_msg):
        mdfi.Network(cfg, weights)
    with pytest.raises(ref_error, match=ref_msg):
        dr.run(cfg, weights, np.zeros((4, 6, 6), F32))


@pytest.mark.parametrize("changes,c_msg,ref_msg", BAD_PARAMS)
def test_bad_parameters(tmp_path, changes, c_msg, ref_msg):
    params_refused(tmp_path, HEAD + "abits=1.5\n", good_arrays(abits="1.5"), changes, c_msg,
                   dr.DualpathError, ref_msg)


def test_weights_too_short(tmp_path):
    cfg = write(tmp_path, "bad.cfg", HEAD + "abits=1.5\n")
    conv = {"biases": np.zeros(4), "weights": np.eye(4).reshape(4, 4, 1, 1)}
    weights = write_arrays(tmp_path, cfg, [conv, good_arrays(abits="1.5")])
    data = weights.read_bytes()
    n = 4 + 16 + 8 * 4 + 8 * 4 * 9 + 4 + 1 + 1
    assert len(data) == 20 + 4 * n
    short = tmp_path / "short.weights"
    short.write_bytes(data[:-4])          # range missing
    with pytest.raises(mdfi.WeightsError, match=r"too short for .*bad\.cfg: %d bytes, ran out at "
                                                r"layer 1 \[dualpath\] \(needs %d bytes"
                                                % (4 * n - 4, 4 * n)):
        mdfi.Network(cfg, short)
    with pytest.raises(wt.WeightsError):
        wt.read_weights(cfg, short)


# ---- the C driver ------------------------------------------------------------------------

def driver_outputs(cmd, cfg, weights, x, tmp_path, *extra):
    inp, out = tmp_path / "x.f32", tmp_path / "y.f32"
    x.astype("<f4").tofile(inp)
    res = subprocess.run([*cmd, str(cfg), str(weights), str(inp), str(out), *extra],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "ok", res.stdout + res.stderr
    flat = np.fromfile(out, "<f4")
    sizes = [int(np.prod(layer.out_shape)) for layer in wt.layers_of(cfg)]
    outs, at = [], 0
    for layer, n in zip(wt.layers_of(cfg), sizes):
        outs.append(flat[at:at + n].reshape(layer.out_shape))
        at += n
    assert at == flat.size
    return res.stdout.splitlines()[0], outs


def driver_case(tmp_path):
    rng = np.random.default_rng(21)
    cfg = write(tmp_path, "body.cfg", BODY)
    weights = make_weights(tmp_path / "body.weights", cfg, rng)
    return cfg, weights, body_input(rng, (65, 5, 7))


def check_driver(cmd, tmp_path, kernels, threads, case=driver_case):
    """The driver's --quick self-check, then its every-layer outputs for
    case(tmp_path) against the reference on the exact layers."""
    res = subprocess.run([*cmd, "--quick"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "ok", res.stdout + res.stderr
    cfg, weights, x = case(tmp_path)
    want = dr.run(cfg, weights, x)
    for v in kernels:
        for t in threads:
            kernel, got = driver_outputs(cmd, cfg, weights, x, tmp_path,
                                         "--binary-kernel", v, "--threads", t)
            assert kernel == "binary " + v
            for layer, g, w in zip(wt.layers_of(cfg), got, want):
                if layer.type in EXACT:
                    assert np.array_equal(g, w), (v, t, layer.index)


def cross_exe(arch, name):
    """The driver built for arch and its qemu, or a skip (a failure with
    MDFI_REQUIRE_CROSS=1) where the toolchain or qemu is missing."""
    cross, qemu = CROSS[arch]
    if not (shutil.which(cross + "gcc") and shutil.which(qemu)):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {cross}gcc or {qemu} is missing")
        pytest.skip(f"no {cross}gcc or {qemu}")
    return [qemu, str(build(cross=cross, targets=("tests",)) / "tests" / name)]


def test_c_driver_native(tmp_path):
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    exe = build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_dualpath"
    check_driver([str(exe)], tmp_path, variants(), ("1", "3"))


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_c_driver_under_qemu(tmp_path, arch):
    """NEON (and the portable kernels) on aarch64 and armhf: the same integers."""
    check_driver(cross_exe(arch, "test_dualpath"), tmp_path, ("neon", "ref"), ("2",))
