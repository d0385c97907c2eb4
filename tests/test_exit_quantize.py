"""`python -m weights_tools quantize` on networks with [exit] layers
(docs/early-exit.md, docs/fixed-point.md): the branch layers are quantized
like any other, the [exit] stays a float head whose predictors go into a
kind-3 .qweights record; the C engine equals the numpy reference on every
integer, and the int8 model takes the float model's exit decisions."""
import struct

import numpy as np
import pytest

import mdfi
import weights_tools as wt
from weights_tools import qweights as qwf
from weights_tools.__main__ import main as tools_main
from weights_tools.fixed_ref import FixedNet, exit_arrays
from weights_tools.quantize.report import exit_agreement

# Two exits: one with two hidden-layer predictors after layer 1, one with a
# logistic exit predictor (hidden=0) after layer 5 whose branch ends in an
# avgpool; the main path goes on from each branch point.
CFG = """[net]
width=12
height=12
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[exit]
layers=2
threshold=0.5
predictors=entropy,exit
pool=2
hidden=4

[connected]
output=4
activation=linear

[softmax]

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[exit]
from=-1
layers=3
predictors=exit
pool=1

[convolutional]
filters=4
size=1
stride=1
activation=linear

[avgpool]

[softmax]

[maxpool]
size=2
stride=2

[connected]
output=4
activation=linear

[softmax]
"""
EXITS = (2, 6)            # the [exit] layers
BRANCH_SOFTMAX = (4, 9)   # their branches' classifiers
GEMM = (0, 3, 5, 7, 11)


def _float_model(tmp_path):
    layers = wt.infer_layers(wt.parse_cfg(CFG))
    rng = np.random.default_rng(0)
    w = wt.DarknetWeights()
    for layer in layers:
        arrays = {}
        for name, shape in layer.params:
            a = rng.normal(0, 0.5, shape)
            if name == "rolling_variance":
                a = rng.uniform(0.5, 1.5, shape)
            elif name == "scales":
                a = rng.uniform(0.5, 1.5, shape)
            arrays[name] = a.astype(np.float32)
        w.layers.append(arrays)
    cfg = tmp_path / "exits.cfg"
    cfg.write_text(CFG)
    weights = tmp_path / "exits.weights"
    weights.write_bytes(wt.write_weights(layers, w))
    return cfg, weights, layers, w


def _inputs(n, seed):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The float model and its int8 model, made by the command line."""
    tmp = tmp_path_factory.mktemp("exit-quantize")
    cfg, weights, layers, w = _float_model(tmp)
    calib = tmp / "calib.npy"
    np.save(calib, _inputs(48, seed=1))
    rc = tools_main(["quantize", str(cfg), str(weights), "--calib", str(calib), "-o",
                     str(tmp / "exits.q8"), "--check", "--quiet"])
    assert rc == 0
    return cfg, weights, tmp / "exits.q8.cfg", tmp / "exits.q8.qweights", layers, w


def test_cfg_and_records(quantized):
    _, _, qcfg, qpath, layers, w = quantized
    secs = wt.parse_cfg(qcfg)[1:]
    for layer, sec in zip(layers, secs):
        keys = {k for k in sec.options if k.startswith("fixed_")}
        if layer.type in ("convolutional", "connected"):
            assert keys == {"fixed_in", "fixed_w", "fixed_out"}, layer.index
        elif layer.type in ("maxpool", "avgpool"):
            assert keys == {"fixed_out"}, layer.index
        else:   # [exit] and [softmax]: float heads
            assert not keys, (layer.index, keys)
    qw = qwf.read(qpath)
    assert qw.version == 2
    assert sorted(qw.records) == sorted(GEMM + EXITS)
    for e in EXITS:
        rec = qw.records[e]
        assert isinstance(rec, qwf.QArrays)
        assert list(rec.arrays) == [n for n, _ in exit_arrays(layers[e])]
        for (name, _), (fname, _) in zip(exit_arrays(layers[e]), layers[e].params):
            assert rec.arrays[name].dtype == np.float32
            np.testing.assert_array_equal(rec.arrays[name], w.layers[e][fname].ravel())
    assert list(qw.records[2].arrays) == ["entropy_b1", "entropy_w1", "entropy_b2", "entropy_w2",
                                          "exit_b1", "exit_w1", "exit_b2", "exit_w2"]
    assert list(qw.records[6].arrays) == ["exit_b", "exit_w"]


def test_c_engine_equals_the_reference(quantized):
    """Policy "all": every integer layer (branches too) equals fixed_ref bit for
    bit; the predictors and the heads agree to float rounding."""
    _, _, qcfg, qpath, layers, _ = quantized
    ref = FixedNet(str(qcfg), str(qpath))
    with mdfi.Network(qcfg, qpath, keep_outputs=True, exit_policy="all") as net:
        assert net.is_fixed
        for x in _inputs(6, seed=2):
            net.forward(x)
            outs = ref.forward(x)
            for i, layer in enumerate(layers):
                if outs[i].fmt is not None:
                    q, frac = net.layer_output_int(i)
                    assert frac == outs[i].fmt.frac, i
                    np.testing.assert_array_equal(q, outs[i].q, err_msg="layer %d" % i)
                else:
                    np.testing.assert_allclose(net.layer_output(i).ravel(),
                                               outs[i].f.ravel(), atol=1e-5, err_msg=str(i))


def test_predictors_close_to_float(quantized):
    cfg, weights, qcfg, qpath, _, _ = quantized
    with mdfi.Network(cfg, weights, exit_policy="all", keep_outputs=True) as fnet, \
            mdfi.Network(qcfg, qpath, exit_policy="all", keep_outputs=True) as qnet:
        diffs = []
        for x in _inputs(32, seed=3):
            fnet.forward(x)
            qnet.forward(x)
            for e in EXITS:
                f, q = fnet.layer_output(e).ravel(), qnet.layer_output(e).ravel()
                assert ((f < 0) == (q < 0)).all()    # the same predictors ran
                diffs.append(np.abs(f - q)[f >= 0].max())
        assert max(diffs) < 0.05, max(diffs)


def _median_thresholds(net, xs):
    """Thresholds and gates at the float network's medians over xs, so that
    about half the inputs exit (or run the branch) at each exit."""
    net.exit_policy = "all"
    h = {e: [] for e in EXITS}
    pred = {e: [] for e in EXITS}
    for x in xs:
        net.forward(x)
        for e, s in zip(EXITS, BRANCH_SOFTMAX):
            p = net.layer_output(s).astype(np.float64).ravel()
            h[e].append(-(p * np.log(np.maximum(p, 1e-300))).sum() / np.log(p.size))
            pred[e].append(net.layer_output(e).ravel())
    out = []
    for e in EXITS:
        v = np.array(pred[e])
        out.append({"threshold": float(np.median(h[e])),
                    "entropy_gate": float(np.median(v[:, 0])) if (v[:, 0] >= 0).all() else None,
                    "exit_gate": float(np.median(v[:, 1]))})
    return out


def test_exit_decisions_agree(quantized):
    """With thresholds that let about half the inputs out, the int8 model ends
    where the float one does on >= 90 % of random inputs, under every policy."""
    cfg, weights, qcfg, qpath, _, _ = quantized
    xs = _inputs(200, seed=4)
    with mdfi.Network(cfg, weights) as fnet, mdfi.Network(qcfg, qpath) as qnet:
        for k, t in enumerate(_median_thresholds(fnet, xs)):
            fnet.set_exit_thresholds(k, **t)
            qnet.set_exit_thresholds(k, **t)
        got = {a.policy: a for a in exit_agreement(fnet, qnet, xs)}
    assert set(got) == {"branchy", "exit-predictor"}   # exit 1 has no entropy predictor
    for a in got.values():
        assert a.same >= 0.9 * a.n, str(a)
        assert 0.2 * a.n < a.float_exits < 0.95 * a.n, str(a)


def test_the_run_reports_agreement(quantized, tmp_path):
    from weights_tools.quantize import quantize
    cfg, weights, *_ = quantized
    calib, check = tmp_path / "calib.npy", tmp_path / "check.npy"
    np.save(calib, _inputs(16, seed=5))
    np.save(check, _inputs(20, seed=6))
    r = quantize(cfg, weights, [calib], tmp_path / "q", check_images=[check], quiet=True,
                 report=False, weight_scale="mult", mixed=True, bias_images=4)
    assert [a.policy for a in r["exit_agreement"]] == ["branchy", "exit-predictor"]
    assert all(a.n == 20 for a in r["exit_agreement"])
    assert len(r["images"]) == 16
    with mdfi.Network(r["cfg"], r["qweights"]) as net:
        assert net.is_fixed and len(net.exits) == 2


def _without(qpath, tmp_path, layer, array=None):
    qw = qwf.read(qpath)
    if array is None:
        del qw.records[layer]
    else:
        del qw.records[layer].arrays[array]
    out = tmp_path / "bad.qweights"
    qwf.write(out, qw)
    return out


def test_missing_predictor_record(quantized, tmp_path):
    _, _, qcfg, qpath, _, _ = quantized
    bad = _without(qpath, tmp_path, 2)
    with pytest.raises(mdfi.WeightsError, match="layer 2.*entropy_b1"):
        mdfi.Network(qcfg, bad)
    with pytest.raises(wt.CfgError, match="layer 2 \\[exit\\]: .*no arrays record.*entropy_b1"):
        FixedNet(str(qcfg), str(bad))
    bad = _without(qpath, tmp_path, 6, "exit_w")
    with pytest.raises(mdfi.WeightsError, match="layer 6.*exit_w"):
        mdfi.Network(qcfg, bad)
    with pytest.raises(wt.CfgError, match="layer 6 \\[exit\\]: its arrays record lacks exit_w"):
        FixedNet(str(qcfg), str(bad))


def test_bad_calibration_batches(quantized, tmp_path):
    from weights_tools.calibrate import CalibrationError
    from weights_tools.quantize import quantize
    cfg, weights, *_ = quantized
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 1, 12, 12), np.float32))
    with pytest.raises(CalibrationError, match="wrong.npy: inputs of shape \\(1, 12, 12\\) are "
                                               "not the network's \\(3, 12, 12\\)"):
        quantize(cfg, weights, [wrong], tmp_path / "q", quiet=True, report=False)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 3, 12, 12), np.float32))
    with pytest.raises(CalibrationError, match="empty.npy: an empty batch"):
        quantize(cfg, weights, [empty], tmp_path / "q", quiet=True, report=False)


def test_command_line_files(quantized, tmp_path, capsys):
    cfg, weights, *_ = quantized
    calib = tmp_path / "c.npy"
    np.save(calib, _inputs(2, seed=7))
    assert tools_main(["quantize", str(cfg), "--calib", str(calib), "-o", str(tmp_path / "q")]) == 1
    assert "expected CFG WEIGHTS, got 1 file" in capsys.readouterr().err
    assert tools_main(["quantize", str(cfg), str(weights), "--cfg", str(cfg), "--calib",
                       str(calib), "-o", str(tmp_path / "q")]) == 1
    assert "not both" in capsys.readouterr().err
    assert tools_main(["quantize", "--cfg", str(cfg), "--weights", str(weights), "--calib",
                       str(calib), "-o", str(tmp_path / "q"), "--quiet", "--bias-images", "0"]) == 0
    out = capsys.readouterr().out
    assert "exits against the float network, policy branchy: the same exit on" in out


def test_wiring_of_the_cfg_reader():
    layers = wt.infer_layers(wt.parse_cfg(CFG))
    assert [layer.inputs for layer in layers] == [
        [-1], [0], [1], [1], [3], [1], [5], [5], [7], [8], [5], [10], [11]]
    assert [layer.exit for layer in layers] == [
        None, None, None, 2, 2, None, None, 6, 6, 6, None, None, None]


def test_header_of_the_weights_file(quantized):
    """The float file the tests quantize is a Darknet file (predictors at the
    [exit]'s place): its size is the cfg's."""
    _, weights, _, _, layers, _ = quantized
    data = weights.read_bytes()
    assert struct.unpack("<iii", data[:12]) == (0, 2, 0)
    assert len(data) == 20 + 4 * sum(layer.n_params for layer in layers)


def test_calibrate_on_a_dataset_training_split(tmp_path, capsys):
    """--calib-dataset: a plain classifier (no exits) calibrated on 100 training
    images of mdfi.datasets' digits keeps its float predictions on the test split."""
    pytest.importorskip("sklearn")
    from mdfi import datasets
    from weights_tools.calibrate import dataset_inputs
    models = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "models"
    items = dataset_inputs("digits", 100)
    data = datasets.load("digits")
    assert len(items) == 100 and items[0].array.shape == (100, 1, 8, 8)
    train = {x.tobytes() for x in data.x_train}
    assert all(x.tobytes() in train for x in items[0].array)    # never the test split
    out = tmp_path / "digits.q8"
    assert tools_main(["quantize", str(models / "digits_float.cfg"),
                       str(models / "digits_float.weights"), "--calib-dataset", "digits",
                       "--calib-count", "100", "--check", "--quiet", "-o", str(out)]) == 0
    assert "100 calibration images" in capsys.readouterr().out
    with mdfi.Network(models / "digits_float.cfg", models / "digits_float.weights") as f, \
            mdfi.Network(str(out) + ".cfg", str(out) + ".qweights") as q:
        same = np.mean([np.argmax(f.forward(x)) == np.argmax(q.forward(x)) for x in data.x_test])
    assert same >= 0.97, same
    assert tools_main(["quantize", str(models / "digits_float.cfg"),
                       str(models / "digits_float.weights"), "-o", str(out)]) == 1
    assert "give --calib or --calib-dataset" in capsys.readouterr().err
