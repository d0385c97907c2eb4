"""The [fracconv] layer (docs/wsfracbnn.md, issue 16): csrc/layers/fracconv.c
against the independent numpy reference weights_tools/fracconv_ref.py, bit
for bit.

* Random networks: a float stem or a thermometer first layer, [fracconv]
  layers on the stream with gate=1 and gate=0, shortcut=0, 1x1 and 3x3
  kernels, stride 2, 65 and 130 channels (across the 64-bit words), odd image
  sizes, from=-1 and from= an earlier layer, channel tiling, maxpools and
  routes between, float heads.  Every [fracconv], [maxpool] and [route]
  output of MDFI equals the reference fed MDFI's own inputs, for every binary
  kernel variant this CPU runs and 1 and 3 threads (all runs bit-identical);
  networks whose body starts at the input are equal end to end.
* Gates that fire nowhere, everywhere and in between, and on 2 D1 == G
  exactly; gate=1 firing everywhere equals gate=0.
* Inputs exactly on shift, shift +- step and the thermometer thresholds;
  hand-computed levels; NaN inputs.
* Bad cfgs and parameters: typed errors naming file:line / layer / channel,
  the same refusals in the Python cfg reader and the reference; a weights
  file one float short.
* The C driver tests/c/test_fracconv.c (natively, MDFI_SANITIZE=1: under
  ASan/UBSan) and, for aarch64 / armhf, under qemu.
"""
import os

import numpy as np
import pytest

import mdfi
import test_dualpath as td
import weights_tools as wt
from cbuild import build, run_driver, variants_ok
from test_dualpath import CROSS, body_input, check_against_reference, grid, run_all, variants, \
    write, write_arrays
from weights_tools import fracconv_ref as fr
from weights_tools.darknet_cfg import fracconv_options

F32 = np.float32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("MDFI_BINARY_KERNEL", "MDFI_BINARY_FUSE", "MDFI_KERNEL"):
        monkeypatch.delenv(k, raising=False)


# ---- networks and parameters -------------------------------------------------------------

def fracconv_arrays(rng, layer, *, big=False, gates="mixed"):
    """Random [fracconv] parameters: negative and zero scales, zero weights,
    thresholds on the integer / half-integer grid and off it; gates: "mixed"
    (channels that fire nowhere, everywhere, and thresholds among the values
    of 2 D1, integer and not), "none" or "all".  big: a range that makes r
    hit its clamp."""
    M = layer.out_shape[0]
    names = [n for n, _ in layer.params]
    wshape = layer.params[names.index("weights")][1]
    a = {"biases": rng.uniform(-4, 4, M)}
    a["scales"] = rng.uniform(0.01, 0.15, M) * np.where(rng.random(M) < 0.3, -1, 1)
    a["scales"][rng.random(M) < 0.05] = 0.0                          # A = 0: S = 0
    if big:
        a["scales"] *= 30
    w = rng.uniform(-1, 1, wshape)
    w[rng.random(w.shape) < 0.05] = 0.0                               # w == 0 -> -1
    a["weights"] = w
    if "shift" in names:
        C = wshape[1]
        shift = grid(rng, C, -2, 2)
        off = rng.random(C) < 0.3
        shift[off] = rng.uniform(-2, 2, off.sum())
        a["shift"] = shift
        a["step"] = np.array([rng.choice([0.0, 0.5, 1.0, 1.5])])
    if "gate" in names:
        reach = 2 * np.sqrt(np.prod(wshape[1:]))
        g = np.round(rng.uniform(-reach, reach, M) * 2) / 2
        if gates == "mixed":
            pick = rng.random(M)
            g[pick < 0.15] = 1e30                                    # nowhere (clamped)
            g[(pick >= 0.15) & (pick < 0.3)] = -1e30                  # everywhere
        else:
            g[:] = 1e30 if gates == "none" else -1e30
        a["gate"] = g
    a["range"] = np.array([rng.uniform(5e4, 2e5) if big else rng.uniform(0.3, 3)])
    return a


def make_weights(path, cfg, rng, big=(), gates="mixed"):
    """Random weights for every layer of cfg (test_dualpath's, [fracconv] here)."""
    arrays = lambda rng, layer, big: fracconv_arrays(rng, layer, big=big, gates=gates)  # noqa: E731
    return td.make_weights(path, cfg, rng, big, special={"fracconv": arrays})


def image_input(rng, shape, T):
    """[0, 1] pixels with values exactly on and next to the thermometer
    thresholds, 0, 1, and a few out of range or NaN."""
    x = rng.uniform(0, 1, shape).astype(F32)
    t = fr.thermometer_thresholds(T)
    sp = np.concatenate([t, np.nextafter(t, F32(2)), np.nextafter(t, F32(-1)),
                         np.array([0, 1, -0.5, 1.5, np.nan], F32)]).astype(F32)
    mask = rng.random(shape) < 0.3
    x[mask] = rng.choice(sp, mask.sum())
    return x


def cfg_text(net, *sections):
    """A cfg: [net] width, height, channels, then (type, {key: value}) sections."""
    out = ["[net]\nwidth=%d\nheight=%d\nchannels=%d\n" % net]
    for kind, keys in sections:
        out.append("[%s]\n" % kind + "".join("%s=%s\n" % kv for kv in keys.items()))
    return "\n".join(out)


def fc(filters, size, **keys):
    """A [fracconv] section; pad=1 for 3x3 unless given."""
    return ("fracconv", dict(filters=filters, size=size, **({"pad": 1} if size == 3 else {}),
                             **keys))


POOL = ("maxpool", {"size": 2, "stride": 2})
HEAD10 = [("avgpool", {}), ("connected", {"output": 10, "activation": "linear"})]
STEM = cfg_text((7, 5, 3), ("convolutional", {"filters": 65, "size": 3, "pad": 1,
                                              "batch_normalize": 1, "activation": "linear"}),
                fc(65, 3), fc(130, 1, gate=0), fc(130, 3, **{"from": 1}), POOL, fc(130, 3),
                ("route", {"layers": 3}), fc(130, 3, stride=2, **{"from": 4}),
                ("route", {"layers": "5,7"}), fc(65, 1, shortcut=0), *HEAD10, ("softmax", {}))
THERMO = cfg_text((11, 9, 3), fc(65, 3, input="thermometer", levels=8), fc(65, 3),
                  fc(130, 3, stride=2, shortcut=0, gate=0), POOL, fc(130, 1, gate=1), *HEAD10)
# the stream is the network input (65 channels): exact end to end
BODY = cfg_text((7, 5, 65), fc(65, 3), fc(130, 3, gate=0), fc(130, 1, **{"from": 0}),
                ("maxpool", {"size": 2, "stride": 2, "padding": 1}), fc(130, 3),
                ("route", {"layers": "4,3"}), fc(65, 3, stride=2, shortcut=0))
# a thermometer layer whose image is the network input: exact end to end,
# with a range that makes r and z hit their clamps
CLAMPS = cfg_text((6, 5, 2), fc(130, 3, input="thermometer", levels=33), fc(130, 3),
                  fc(130, 1, gate=0))
# thermometer layers of few bits a pixel run as 1x1 convolutions over their
# windows packed end to end (kernels/bwindow.h): 4 bits x 25 taps (a tap on a
# word boundary; every output on the border), 16 bits x 9 taps at stride 2
WIN5 = cfg_text((5, 4, 1), fc(33, 5, input="thermometer", levels=4, pad=1, stride=2), fc(33, 3),
                fc(33, 1, gate=0))
WIN3 = cfg_text((21, 17, 2), fc(40, 3, input="thermometer", levels=8, stride=2),
                fc(40, 3, gate=1), fc(40, 1, gate=0))
XNOR = {"batch_normalize": 1, "activation": "leaky", "xnor": 1}
XNOR_MIX = cfg_text((9, 6, 3), ("convolutional", {"filters": 16, "size": 3, "pad": 1,
                                                   "batch_normalize": 1, "activation": "linear"}),
                    ("convolutional", dict(filters=16, size=3, pad=1, **XNOR)),
                    fc(32, 3, shortcut=1, **{"from": -1}),
                    ("convolutional", dict(filters=32, size=3, pad=1, **XNOR)), POOL,
                    ("convolutional", dict(XNOR, filters=32, size=1, activation="linear")),
                    fc(32, 1, gate=0))


def gate_counts(cfg, weights, x, outs):
    """{layer: (gated outputs, outputs)} of every gate=1 layer: the reference's
    g summed, fed the layer's input from outs (MDFI's outputs) or x."""
    layers = wt.layers_of(cfg)
    dw = wt.read_weights(layers, weights)
    counts = {}
    for layer, arrays in zip(layers, dw.layers):
        if layer.type != "fracconv":
            continue
        o = fracconv_options(layer.section)
        if o["input"] != "stream" or not o["gate"]:
            continue
        size = layer.section.get_int("size", 1)
        pad = size // 2 if layer.section.get_int("pad", 0) else 0
        src = x if layer.inputs[0] < 0 else outs[layer.inputs[0]]
        g = fr.parts(src, arrays, stride=layer.section.get_int("stride", 1), pad=pad)["g"]
        counts[layer.index] = (int(g.sum()), int(g.size))
    return counts


def gate_shares(cfg, weights, x, outs):
    """The share of gated outputs of every gate=1 layer (reference, fed)."""
    return [g / n for g, n in gate_counts(cfg, weights, x, outs).values()]


NETS = {
    # name: (cfg text, input maker, layers with a big range, exact end to end)
    "stem": (STEM, lambda rng: rng.uniform(-2, 2, (3, 5, 7)).astype(F32), (), False),
    "thermo": (THERMO, lambda rng: image_input(rng, (3, 9, 11), 8), (), True),
    "body": (BODY, lambda rng: body_input(rng, (65, 5, 7)), (), True),
    "clamps": (CLAMPS, lambda rng: image_input(rng, (2, 5, 6), 33), (0, 1), True),
    "win5": (WIN5, lambda rng: image_input(rng, (1, 4, 5), 4), (), True),
    "win3": (WIN3, lambda rng: image_input(rng, (2, 17, 21), 8), (), True),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_layer_equals_the_reference(tmp_path, name):
    cfg, weights, x, first = td.net_runs(tmp_path, NETS, name, make_weights, 7)
    layers = wt.layers_of(cfg)
    outs = [first[layer.index] for layer in layers if layer.type == "fracconv"]
    for z in outs:   # integers within the clamp, and the run is not trivial
        assert np.all(z == np.rint(z)) and np.abs(z).max() <= 2 ** 24
        assert len(np.unique(z)) > 5
    if name == "clamps":
        assert any((np.abs(z) == 2 ** 24).any() for z in outs)
    shares = gate_shares(cfg, weights, x, first)
    if shares:   # the mixed gates fire in part of the outputs
        assert all(0 < s < 1 for s in shares), shares


@pytest.mark.parametrize("gates", ["none", "all"])
def test_gates_nowhere_and_everywhere(tmp_path, gates):
    """A gate that never fires leaves P = 2 D1; one that always fires gives
    the dense result, equal to the same weights with gate=0."""
    rng = np.random.default_rng(5)
    cfg = write(tmp_path, "b.cfg", BODY)
    weights = make_weights(tmp_path / "b.weights", cfg, rng, gates=gates)
    x = body_input(rng, (65, 5, 7))
    got = run_all(cfg, weights, x)
    check_against_reference(cfg, weights, x, got, exact_end_to_end=True)
    assert set(gate_shares(cfg, weights, x, got)) == {0.0 if gates == "none" else 1.0}
    if gates == "all":   # the same arrays without the gate: gate=0 everywhere
        dense_cfg = write(tmp_path, "d.cfg", "\n\n".join(
            sec + "\ngate=0" if sec.startswith("[fracconv]") and "gate=" not in sec else sec
            for sec in BODY.split("\n\n")))
        dw = wt.read_weights(cfg, weights)
        arrays = [{n: a[n] for n, _ in d.params}
                  for a, d in zip(dw.layers, wt.layers_of(dense_cfg))]
        w2 = write_arrays(tmp_path, dense_cfg, arrays, "d.weights")
        for v in variants():
            assert all(np.array_equal(a, b) for a, b in
                       zip(run_all(dense_cfg, w2, x, kernel=v), got)), v


def test_dense_twin(tmp_path):
    """weights_tools.fracconv_dense: every gated [fracconv] gets gate=0 (its
    gate=1 line rewritten, or a line added where the key was left to its
    default), the text is otherwise unchanged, the gate arrays are dropped
    and the other arrays kept; with gates that fire everywhere the twin's
    outputs are the gated network's."""
    from weights_tools import fracconv_dense
    text = BODY.replace("[fracconv]\nfilters=130\nsize=1", "# a comment\n[fracconv]\ngate=1\n"
                        "filters=130\nsize=1", 1)
    rng = np.random.default_rng(8)
    cfg = write(tmp_path, "g.cfg", text)
    weights = make_weights(tmp_path / "g.weights", cfg, rng, gates="all")
    gated = fracconv_dense.gated_layers(cfg)
    assert gated == [0, 2, 4, 6]
    prefix = tmp_path / "twin"
    dcfg, dweights = fracconv_dense.write_dense_twin(cfg, weights, prefix)
    dense = open(dcfg).read()
    assert fracconv_dense.gated_layers(dcfg) == []
    assert "# a comment\n[fracconv]\ngate=0\nfilters=130" in dense
    assert dense.count("gate=0") == text.count("[fracconv]")
    assert [ln for ln in dense.split("\n") if ln[:5] != "gate="] == \
        [ln for ln in text.split("\n") if ln[:5] != "gate="]
    g, d = wt.read_weights(cfg, weights), wt.read_weights(dcfg, dweights)
    for i, (a, b) in enumerate(zip(g.layers, d.layers)):
        assert sorted(a) == sorted(list(b) + (["gate"] if i in gated else []))
        assert all(np.array_equal(a[n], b[n]) for n in b)
    x = body_input(rng, (65, 5, 7))
    for got, want in zip(run_all(dcfg, dweights, x), run_all(cfg, weights, x)):
        assert np.array_equal(got, want)
    assert fracconv_dense.main([str(cfg), str(weights), str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli.weights").read_bytes() == open(dweights, "rb").read()


def test_gate_on_the_threshold(tmp_path):
    """gate_m = 2 D1 at pixel 0 exactly (strict compare: not gated) or half a
    step below it (floor: gated); one 3x3 layer on the stream."""
    text = "[net]\nwidth=5\nheight=4\nchannels=70\n[fracconv]\nfilters=12\nsize=3\npad=1\n" \
           "shortcut=0\n"
    cfg = write(tmp_path, "g.cfg", text)
    rng = np.random.default_rng(9)
    layer = wt.layers_of(cfg)[0]
    a = fracconv_arrays(rng, layer)
    x = body_input(rng, (70, 4, 5), specials=False)
    d1 = fr.parts(x, dict(a, gate=np.zeros(12)), gate=0)["D1"]
    a["gate"] = (2 * d1[:, 0, 0]).astype(np.float64) - np.where(np.arange(12) % 2, 0.5, 0)
    p = fr.parts(x, a)
    assert p["g"][:, 0, 0].tolist() == [m % 2 for m in range(12)]
    weights = write_arrays(tmp_path, cfg, [a])
    want = fr.run(cfg, weights, x)[0]
    for v in variants():
        for threads in (1, 3):
            assert np.array_equal(run_all(cfg, weights, x, kernel=v, threads=threads)[0], want)


def one_by_one(tmp_path, extra, C=2, W=9):
    """A 1 x 1 layer, weight +1 on its own channel, scale 1, range 1, bias 0,
    shortcut=0: A = 1 exactly, so z = P."""
    cfg = write(tmp_path, "h.cfg", "[net]\nwidth=%d\nheight=1\nchannels=%d\n[fracconv]\n"
                                   "filters=%d\nsize=1\nshortcut=0\n%s" % (W, C, C, extra))
    layer = wt.layers_of(cfg)[0]
    M, Cp = layer.params[2][1][:2]
    w = -np.ones((M, Cp))
    for m in range(M):
        w[m, m * (Cp // M):(m + 1) * (Cp // M)] = 1
    a = {"biases": np.zeros(M), "scales": np.ones(M), "weights": w, "range": [1.0]}
    return cfg, a


def test_stream_levels_by_hand(tmp_path):
    """shift 0.5, step 0.5 (hi 1, lo 0) and shift -1, step 0.5: the level
    2 s1 + s0 from the strict compares, NaN -> -3.  With weight +1 on its own
    channel and -1 on the other the outputs are q_c - q_other."""
    cfg, a = one_by_one(tmp_path, "gate=0\n")
    a["weights"] = np.eye(2)  # w == 0 -> -1: filter m reads +q_m - q_other
    a.update(shift=[0.5, -1.0], step=[0.5])
    x = np.array([[[0, 0.25, 0.5, 0.50000006, 1, 1.0000001, 2, -7, np.nan]],
                  [[-1.5, -1.4999999, -1, -0.5, -0.4999999, 0, -2, -1.25, np.nan]]], F32)
    s1, s0 = fr.stream_planes(x, a["shift"], 0.5)
    q = 2 * s1 + s0
    assert q.tolist() == [[[-3, -1, -1, 1, 1, 3, 3, -3, -3]], [[-3, -1, -1, 1, 3, 3, -3, -1, -3]]]
    weights = write_arrays(tmp_path, cfg, [a])
    want = np.stack([q[0] - q[1], q[1] - q[0]]).astype(F32)
    for v in variants():
        assert np.array_equal(run_all(cfg, weights, x, kernel=v)[0], want), v
    assert np.array_equal(fr.run(cfg, weights, x)[0], want)
    # gate=1 that always fires: the same
    cfg2, a2 = one_by_one(tmp_path, "")
    a2.update(weights=np.eye(2), shift=[0.5, -1.0], step=[0.5], gate=[-1e30, -1e30])
    w2 = write_arrays(tmp_path, cfg2, [a2], "g.weights")
    assert np.array_equal(run_all(cfg2, w2, x)[0], want)


def test_thermometer_by_hand(tmp_path):
    """T = 4: t = 1/8, 3/8, 5/8, 7/8; the filter of +1 weights counts the bits
    set: D1 = 2 n - T, on and beside the thresholds, below 0, above 1, NaN."""
    cfg, a = one_by_one(tmp_path, "input=thermometer\nlevels=4\n", C=1, W=11)
    x = np.array([[[0, 0.125, 0.12500001, 0.375, 0.5, 0.62499994, 0.875, 1, np.nan, -1, 2]]],
                 F32)
    assert fr.thermometer_thresholds(4).tolist() == [0.125, 0.375, 0.625, 0.875]
    want = np.array([[[-4, -4, -2, -2, 0, 0, 2, 4, -4, -4, 4]]], F32)
    weights = write_arrays(tmp_path, cfg, [a])
    for v in variants():
        for threads in (1, 3):
            assert np.array_equal(run_all(cfg, weights, x, kernel=v, threads=threads)[0], want)
    assert np.array_equal(fr.run(cfg, weights, x)[0], want)


def test_reference_pieces():
    """The reference's own arithmetic on numbers checked by hand."""
    assert fr.thermometer_thresholds(3).tolist() == [F32(1 / 6), 0.5, F32(5 / 6)]
    assert fr.gate_thresholds([2.5, -0.5, 3.0, 1e30]).tolist() == [2, -1, 3, float(F32(1e30))]
    with pytest.raises(fr.FracconvError, match="channel 1's gate = nan"):
        fr.gate_thresholds([0, np.nan])
    A, B = fr.fold([0.5, -3], [1.5, 0.25], 3)
    assert A.tolist() == [1.5, -9] and B.tolist() == [4.5, 0.75]
    bits = fr.thermometer(np.array([[[0.3, 0.9]], [[np.nan, 0.5]]], F32), 2)   # t = 1/4, 3/4
    assert bits[:, 0].tolist() == [[1, 1], [-1, 1], [-1, 1], [-1, -1]]
    s1, s0 = fr.stream_planes(np.array([[[5, 1, 0.5, -1, -5]]], F32), [0], 2)   # hi 2, lo -2
    assert (2 * s1 + s0).tolist() == [[[3, 1, 1, -1, -3]]]
    with pytest.raises(fr.FracconvError, match="channel 0's offset"):
        fr.dr.fixed_point(np.array([1], F32), np.array([2.0 ** 24], F32), error=fr.FracconvError)


def test_fusion_next_to_fracconv(tmp_path):
    td.fusion_agrees(tmp_path, XNOR_MIX, special={"fracconv": fracconv_arrays})


def test_info_no_weights_and_inputs(tmp_path):
    """Without weights the layer runs (scales and range 1); its info is a
    binary conv's; the array order and the inputs as the engine wires them."""
    cfg = write(tmp_path, "s.cfg", STEM)
    with mdfi.Network(cfg) as net:
        out = net.forward(np.zeros((3, 5, 7), F32))
        li = net.layers[1]
        assert (li.type, li.filters, li.size, li.stride, li.pad, li.xnor) == \
            ("fracconv", 65, 3, 1, 1, True)
        assert li.activation == "linear"
        # gate=1: the first plane's binary multiply-adds (the second is measured)
        assert (li.flops, li.bops, li.macs, li.gate) == (0, 65 * 65 * 9 * 5 * 7,
                                                         65 * 65 * 9 * 5 * 7, True)
        assert net.layers[2].bops == 2 * net.layers[2].macs and not net.layers[2].gate  # gate=0
        assert net.layers[7].output_shape == (130, 3, 4)
        assert out.shape == (10, 1, 1)
    layers = wt.layers_of(cfg)
    assert [p for p, _ in layers[1].params] == ["biases", "scales", "weights", "shift", "step",
                                                "gate", "range"]
    assert [p for p, _ in layers[2].params] == ["biases", "scales", "weights", "shift", "step",
                                                "range"]
    assert layers[1].inputs == [0, 0] and layers[3].inputs == [2, 1]
    assert layers[7].inputs == [6, 4] and layers[9].inputs == [8]
    th = wt.layers_of(write(tmp_path, "t.cfg", THERMO))
    assert [p for p, _ in th[0].params] == ["biases", "scales", "weights", "range"]
    assert th[0].params[2][1] == (65, 24, 3, 3) and th[0].inputs == [-1]
    with mdfi.Network(write(tmp_path, "t.cfg", THERMO)) as net:
        assert net.forward(np.zeros((3, 9, 11), F32)).shape == (10, 1, 1)


# ---- errors ---------------------------------------------------------------------------

HEAD = "[net]\nwidth=6\nheight=6\nchannels=4\n[convolutional]\nfilters=4\nsize=1\n" \
       "activation=linear\n[fracconv]\nfilters=8\nsize=3\npad=1\n"
BAD_CFG = [
    ("abits=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: abits is not a key"),
    ("xnor=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: xnor is not"),
    ("binary=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: binary is not"),
    ("groups=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: groups is not"),
    ("dilation=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: dilation is not"),
    ("batch_normalize=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: batch_normalize "
                                           r"is not"),
    ("activation=leaky\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: activation=leaky"),
    ("input=bits\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: input=bits; it is stream "
                                    r"or thermometer"),
    ("levels=4\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: levels is a key of "
                                  r"input=thermometer only"),
    ("input=thermometer\n", mdfi.CfgError, r"bad\.cfg:\d+: layer 1 \[fracconv\]: "
                                           r"input=thermometer needs levels=T"),
    ("input=thermometer\nlevels=0\n", mdfi.CfgError, r"bad\.cfg:14: layer 1 \[fracconv\]: "
                                                     r"input=thermometer needs levels"),
    ("input=thermometer\nlevels=257\n", mdfi.CfgError, r"bad\.cfg:14: .*needs levels"),
    ("input=thermometer\nlevels=4\ngate=1\n", mdfi.CfgError, r"bad\.cfg:15: layer 1 \[fracconv\]: "
                                                             r"gate is a key of input=stream only"),
    ("input=thermometer\nlevels=4\nshortcut=1\n", mdfi.CfgError, r"bad\.cfg:15: layer 1 "
                                                                 r"\[fracconv\]: shortcut=1 with "
                                                                 r"input=thermometer"),
    ("gate=2\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: gate=2; it is 0 or 1"),
    ("shortcut=-1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: shortcut=-1; it is 0"),
    ("shortcut=0\nfrom=0\n", mdfi.CfgError, r"bad\.cfg:14: layer 1 \[fracconv\]: from= with "
                                            r"shortcut=0"),
    ("from=1\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: from=1 refers to layer 1, "
                                r"which is not an earlier layer"),
    ("from=-5\n", mdfi.CfgError, r"bad\.cfg:13: layer 1 \[fracconv\]: from=-5 .*not an earlier"),
    ("stride=2\n", mdfi.ShapeError, r"bad\.cfg:9: layer 1 \[fracconv\]: from=-1 .*4 x 6 x 6\) "
                                    r"does not fit an output of 8 x 3 x 3"),
    ("stride=0\n", mdfi.CfgError, r"bad\.cfg:9: layer 1 \[fracconv\]: bad filters=8 size=3 "
                                  r"stride=0"),
]


@pytest.mark.parametrize("extra,exc,pattern", BAD_CFG)
def test_bad_cfg(tmp_path, extra, exc, pattern):
    cfg = write(tmp_path, "bad.cfg", HEAD + extra)
    with pytest.raises(exc, match=pattern):
        mdfi.Network(cfg)
    with pytest.raises(wt.CfgError, match=r"bad\.cfg:\d+: \[fracconv\]"):
        wt.layers_of(cfg)


def test_too_many_taps(tmp_path):
    """C' k^2 <= 2^22 keeps |P| < 2^24: 2^22 / 9 + 1 thermometer bit channels
    of 3x3 taps are refused, in C and in the cfg reader."""
    text = ("[net]\nwidth=4\nheight=4\nchannels=1821\n[fracconv]\nfilters=1\nsize=3\npad=1\n"
            "input=thermometer\nlevels=256\n")
    cfg = write(tmp_path, "big.cfg", text)
    with pytest.raises(mdfi.ShapeError, match=r"big\.cfg:5: layer 0 \[fracconv\]: 466176 channels "
                                              r"x 3x3 taps is too large \(at most 2\^22\)"):
        mdfi.Network(cfg)
    with pytest.raises(wt.CfgError, match=r"too large \(at most 2\^22\)"):
        wt.layers_of(cfg)


def good_arrays(M=8, C=4, k=3, gate=True):
    a = {"biases": np.zeros(M), "scales": np.ones(M), "weights": np.ones((M, C, k, k)),
         "shift": np.zeros(C), "step": [0.5], "range": [1.0]}
    if gate:
        a["gate"] = np.zeros(M)
    return a


BAD_PARAMS = [
    # (changes, C message, reference message)
    ({"range": (0, 0.0)}, r"layer 1 \[fracconv\]: range = 0 must be a positive", r"range = 0"),
    ({"range": (0, -2.0)}, r"layer 1 \[fracconv\]: range = -2 must be", r"range = -2"),
    ({"range": (0, np.inf)}, r"layer 1 \[fracconv\]: range = inf must be", r"range = inf"),
    ({"step": (0, -0.25)}, r"layer 1 \[fracconv\]: step = -0\.25 must be >= 0", r"step = -0\.25"),
    ({"step": (0, np.nan)}, r"layer 1 \[fracconv\]: step = nan must be >= 0", r"step = nan"),
    ({"gate": (3, np.inf)}, r"layer 1 \[fracconv\]: channel 3's gate = inf is not a finite",
     r"channel 3's gate = inf"),
    ({"gate": (0, np.nan)}, r"layer 1 \[fracconv\]: channel 0's gate = nan", r"channel 0's gate"),
    ({"scales": (5, 2.0 ** 30)}, r"layer 1 \[fracconv\]: channel 5's multiplier \|A\| = .*must be "
                                 r"< 2\^30", r"channel 5's multiplier"),
    ({"biases": (2, 2.0 ** 24)}, r"layer 1 \[fracconv\]: channel 2's offset \|B\| = .*must be "
                                 r"< 2\^24", r"channel 2's offset"),
    ({"scales": (6, 3e38), "range": (0, 10.0)},
     r"layer 1 \[fracconv\]: channel 6 folds to a non-finite", r"channel 6 folds to a non-finite"),
]


@pytest.mark.parametrize("changes,c_msg,ref_msg", BAD_PARAMS)
def test_bad_parameters(tmp_path, changes, c_msg, ref_msg):
    td.params_refused(tmp_path, HEAD, good_arrays(), changes, c_msg, fr.FracconvError, ref_msg)


def test_weights_too_short(tmp_path):
    cfg = write(tmp_path, "bad.cfg", HEAD)
    conv = {"biases": np.zeros(4), "weights": np.eye(4).reshape(4, 4, 1, 1)}
    weights = write_arrays(tmp_path, cfg, [conv, good_arrays()])
    data = weights.read_bytes()
    n = 4 + 16 + 8 + 8 + 8 * 4 * 9 + 4 + 1 + 8 + 1
    assert len(data) == 20 + 4 * n
    short = tmp_path / "short.weights"
    short.write_bytes(data[:-4])          # range missing
    with pytest.raises(mdfi.WeightsError, match=r"too short for .*bad\.cfg: %d bytes, ran out at "
                                                r"layer 1 \[fracconv\] \(needs %d bytes"
                                                % (4 * n - 4, 4 * n)):
        mdfi.Network(cfg, short)
    with pytest.raises(wt.WeightsError):
        wt.read_weights(cfg, short)


# ---- the C driver ------------------------------------------------------------------------

def driver_case(tmp_path):
    rng = np.random.default_rng(23)
    cfg = write(tmp_path, "body.cfg", BODY)
    weights = make_weights(tmp_path / "body.weights", cfg, rng)
    return cfg, weights, body_input(rng, (65, 5, 7))


def test_c_driver_native(tmp_path):
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    exe = build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_fracconv"
    td.check_driver([str(exe)], tmp_path, variants(), ("1", "3"), driver_case)


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_c_driver_under_qemu(tmp_path, arch):
    """NEON (and the portable kernels) on aarch64 and armhf: the same integers."""
    td.check_driver(td.cross_exe(arch, "test_fracconv"), tmp_path, ("neon", "ref"), ("2",),
                    driver_case)


def test_gated_kernel_driver_native():
    """tests/c/test_dpath.c: every form of the gated pass (portable, POPCNT,
    AVX2, AVX-512 VPOPCNTDQ) against the definition, every channel count mod 64 (with
    MDFI_SANITIZE=1 under ASan/UBSan)."""
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    exe = build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_dpath"
    forms = variants_ok(run_driver([str(exe)], timeout=300))
    want = {"portable"} | ({"popcnt"} if "popcnt" in variants() else set()) \
        | ({"avx2"} if "avx2" in variants() else set())
    if "avx512vpopcnt" in variants():   # the binary kernel needs what this form needs
        want.add("avx512vp")
    assert want <= forms, forms


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_gated_kernel_driver_under_qemu(arch):
    assert "portable" in variants_ok(run_driver([*td.cross_exe(arch, "test_dpath"), "--quick"],
                                                timeout=300))


def test_benchmark_runs(tmp_path):
    """benchmarks/fracconv_bench.py end to end on a few images: the gated
    and the dense network, the measured share, the ratio, the JSON."""
    import json
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parent.parent
    out = tmp_path / "b.json"
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run([sys.executable, str(root / "benchmarks" / "fracconv_bench.py"),
                          "--rounds", "1", "--images", "3", "--calib", "6", "--shares", "30",
                          "--no-dualpath", "--json", str(out)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads(out.read_text())
    # the kernel path the core took, as a network opened here takes it
    with mdfi.Network(str(root / "examples" / "models" / "fmnist_frac_ws_40c.cfg"),
                      str(root / "examples" / "models" / "fmnist_frac_ws_40c.weights")) as net:
        assert record["kernel"] == net.kernel
    rows = {r["network"]: r for r in record["rows"]}
    assert set(rows) == {"gate1@30%", "gate0", "xnor abits=1", "xnor abits=2"}
    g = rows["gate1@30%"]
    assert 0 < g["gated_share"] <= 0.3 and g["ratio_to_dense"] > 0 and g["dense"] == "gate0"
    assert len(g["layers_ms"]) == len(g["layers"]) == 10
    for r in rows.values():
        # the body: the layers between the stem and the average pool
        assert r["layers"][7].startswith("avgpool")
        assert r["body_ms"] == pytest.approx(sum(r["layers_ms"][1:7]))
    assert [r["layers"][3] for r in rows.values()] == ["fracconv 64x14x14"] * 2 + [
        "convolutional 64x14x14"] * 2


def test_gate_clusters_counts_units():
    """benchmarks/gate_clusters.py: a unit counts once however many of its
    outputs are gated, edges padded with closed gates; and the script runs on
    a committed model."""
    import importlib.util
    import pathlib
    root = pathlib.Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gate_clusters",
                                                  root / "benchmarks" / "gate_clusters.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    g = np.zeros((9, 20), bool)
    g[0, 0] = g[0, 7] = True       # one 8-column run, the first 16-column run
    g[1, 17] = True                # the padded last run of row 1
    g[8, 3] = True                 # the padded ninth filter
    assert gc.any_share(g, 1, 8).tolist() == [3, 27]
    assert gc.any_share(g, 1, 16).tolist() == [3, 18]
    assert gc.any_share(g, 8, 16).tolist() == [3, 4]
    model = root / "examples" / "models" / "fmnist_frac_ws_agc"
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    counts = gc.measure(str(model) + ".cfg", str(model) + ".weights", x)
    assert sorted(counts) == [2, 3, 5, 6]
    for c in counts.values():
        gated, n = c["outputs"]
        assert n > 0 and 0 <= gated <= n
        # a unit has a gated output at least as often as an output is gated
        assert all(c[u][0] / c[u][1] >= gated / n for u in ("8 columns", "16 columns",
                                                             "8 x 16 tile"))


def test_packed_weights_give_the_same_outputs(tmp_path):
    """weights_tools.xnor_pack stores a [fracconv] layer's weights as their signs:
    one bit each, and the unpacked file runs to the same bits."""
    from weights_tools import xnor_pack
    from weights_tools.darknet_weights import write_weights
    cfg, weights, x, first = td.net_runs(tmp_path, NETS, "thermo", make_weights, 3)
    data, rep = xnor_pack.pack(cfg, weights)
    layers = [layer for layer in wt.layers_of(cfg) if layer.type == "fracconv"]
    assert [r["index"] for r in rep["layers"]] == [layer.index for layer in layers]
    for r in rep["layers"]:
        assert r["packed_bytes"] == r["filters"] * ((r["k"] + 7) // 8)
    back = tmp_path / "back.weights"
    back.write_bytes(write_weights(cfg, xnor_pack.unpack(cfg, data)))
    with mdfi.Network(cfg, str(back), keep_outputs=True) as net:
        net.forward(x)
        for layer in layers:
            assert np.array_equal(net.layer_output(layer.index), first[layer.index])
