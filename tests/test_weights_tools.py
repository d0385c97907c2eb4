"""Tests of weights_tools: Darknet cfg parsing, shape inference and weights IO,
checked against the golden data copied into tests/data."""

import hashlib
import json
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import weights_tools as wt

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
NETS = ["yolov3-tiny", "yolov3", "alexnet", "xnor-small", "xnor-cifar"]


def _cfg(name):
    return DATA / ("%s.cfg" % name)


# ----------------------------------------------------------------------------- cfg syntax

def test_parse_basics():
    text = ("# comment\n[net]\nwidth = 8\n height=4\n\tchannels=3 \n; other comment\n\n"
            "[convolutional]\nfilters=2\n[route]\nlayers = -1, 0\n")
    secs = wt.parse_cfg(text)
    assert [s.type for s in secs] == ["net", "convolutional", "route"]
    assert secs[0].options == {"width": "8", "height": "4", "channels": "3"}
    assert list(secs[0].options) == ["width", "height", "channels"]  # file order
    assert [s.line for s in secs] == [2, 8, 10]
    assert secs[0].key_lines == {"width": 3, "height": 4, "channels": 5}
    assert secs[2].options["layers"] == "-1,0"  # all whitespace goes, as in Darknet
    assert secs[2].get_ints("layers") == [-1, 0]


def test_parse_path_and_bytes_agree():
    path = _cfg("yolov3-tiny")
    from_path = wt.parse_cfg(path)
    assert from_path == wt.parse_cfg(str(path)) == wt.parse_cfg(path.read_bytes())
    assert from_path == wt.parse_cfg(path.read_text())
    assert from_path[0].file == str(path)


@pytest.mark.parametrize("name", NETS)
def test_write_cfg_round_trip(name):
    secs = wt.parse_cfg(_cfg(name))
    text = wt.write_cfg(secs)
    again = wt.parse_cfg(text)
    assert again == secs
    assert [list(s.options) for s in again] == [list(s.options) for s in secs]
    assert wt.write_cfg(again) == text


def test_duplicate_key_keeps_first():
    with pytest.warns(UserWarning, match="duplicate key filters"):
        secs = wt.parse_cfg("[net]\nwidth=1\n[conv]\nfilters=4\nfilters=8\n")
    assert secs[1].options["filters"] == "4"


def test_a_number_before_a_comment_is_the_number():
    """AlexeyAB's cfgs write `filters=40 #32`: Darknet's atoi reads 40, and so do we (as MDFI);
    other values keep their '#' and fail where they are read."""
    secs = wt.parse_cfg("[net]\nwidth=8 # 16\nheight=8\nchannels=3\n[conv]\nfilters=40\t#32\n"
                        "scale=-1.5e-2#x\nactivation=leaky#relu\nlayers=-1,2#3\n")
    assert secs[0].options["width"] == "8"
    assert secs[1].options == {"filters": "40", "scale": "-1.5e-2", "activation": "leaky#relu",
                               "layers": "-1,2#3"}
    with pytest.raises(wt.CfgError, match=r"layers=-1,2#3 is not a list of integers"):
        secs[1].get_ints("layers")


def test_new_layer_shapes():
    text = NET + ("[convolutional]\nfilters=8\n[reorg]\nstride=2\n[reorg3d]\nstride=2\n"
                  "reverse=1\n[crop]\ncrop_height=6\ncrop_width=4\n[convolutional]\n"
                  "filters=8\n[sam]\nfrom=-2\n")
    layers = wt.infer_layers(wt.parse_cfg(text))
    assert [(l.type, l.out_shape) for l in layers] == [
        ("convolutional", (8, 16, 16)), ("reorg", (32, 8, 8)), ("reorg3d", (8, 16, 16)),
        ("crop", (8, 6, 4)), ("convolutional", (8, 6, 4)), ("sam", (8, 6, 4))]
    assert layers[5].inputs == [4, 3]


@pytest.mark.parametrize("text, line, what", [
    ("width=3\n[net]\n", 1, "before the first"),
    ("[net]\nwidth3\n", 2, "expected key=value"),
    ("[net]\n\nwidth=\n", 3, "expected key=value"),
    ("[net]\n=3\n", 2, "expected key=value"),
    ("[net]\n[convolutional\n", 2, "bad section header"),
    ("[net]\n[]\n", 2, "bad section header"),
])
def test_malformed_lines(tmp_path, text, line, what):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(wt.CfgError, match=what) as exc:
        wt.parse_cfg(path)
    assert str(exc.value).startswith("%s:%d: " % (path, line))
    assert exc.value.line == line and isinstance(exc.value, ValueError)


NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"


@pytest.mark.parametrize("body, line, what", [
    ("[convolutional]\nfilters=abc\n", 6, "filters=abc is not an integer"),
    ("[convolutional]\nfilters=4\nsize=0\n", 7, "size must be positive"),
    ("[convolutional]\nfilters=4\ngroups=2\n", 7, "groups=2 must divide"),
    ("[convolutional]\nsize=32\n", 5, "does not fit"),
    ("[maxpool]\nsize=2\n[route]\nlayers=-1,1\n", 8, "refers to layer 1"),
    ("[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n", 9, "refers to layer -1"),
    ("[convolutional]\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=0,1\n", 10, "differ in height/width"),
    ("[shortcut]\nactivation=linear\n", 5, "missing from="),
    ("[convolutional]\nfilters=10\n[yolo]\nclasses=80\nmask=0,1,2\n", 7, "expects 255 input channels"),
    ("[deconvolutional]\n", 5, r"layer type \[deconvolutional\] is not supported"),
    ("[local]\nsize=2\npad=1\n", 5, r"size=2 stride=1 pad=1 do not fit the 3x16x16 input \(pad > 0 "
                                    r"needs size = 2 pad \+ 1\)"),
    ("[convolutional]\nfilters=30\n[detection]\nside=4\nnum=2\ncoords=4\nclasses=20\n", 7,
     r"side=4 num=2 classes=20 coords=4 \(4 only\) do not fit its 7680 inputs"),
    ("[reorg]\nflatten=1\nextra=2\n", 7, r"extra=2 must be >= 0 and without flatten="),
    ("[crop]\ncrop_height=17\n", 5, r"crop 1x17 does not fit the 16x16 input"),
    ("[reorg]\nstride=3\n", 6, r"stride=3 does not divide the input 3x16x16"),
    ("[convolutional]\nfilters=4\n[reorg3d]\nstride=2\nreverse=1\n", 7,
     r"1 channels are not a multiple of stride\^2 = 4"),
    ("[convolutional]\n[maxpool]\nsize=2\nstride=2\n[sam]\nfrom=-2\n", 10,
     r"layer 0 is 1x16x16 and the previous layer 1x8x8; they must be equal"),
])
def test_impossible_networks(tmp_path, body, line, what):
    path = tmp_path / "net.cfg"
    path.write_text(NET + body)
    with pytest.raises(wt.CfgError, match=what) as exc:
        wt.infer_layers(wt.parse_cfg(path))
    assert str(exc.value).startswith("%s:%d: " % (path, line))


def test_net_section_required():
    with pytest.raises(wt.CfgError, match=r"first section must be \[net\]"):
        wt.infer_layers(wt.parse_cfg("[convolutional]\nfilters=1\n"))
    with pytest.raises(wt.CfgError, match="needs width, height and channels"):
        wt.infer_layers(wt.parse_cfg("[net]\nwidth=3\n"))


# ----------------------------------------------------------------------------- shapes and counts

@pytest.mark.parametrize("name", NETS)
def test_shapes_match_darknet(name):
    """Every layer's output shape equals the one Darknet reported in layers.json."""
    golden = json.loads((DATA / ("%s.layers.json" % name)).read_text())["layers"]
    layers = wt.infer_layers(wt.parse_cfg(_cfg(name)))
    assert len(layers) == len(golden)
    for ours, ref in zip(layers, golden):
        assert ours.type == ref["type"], ours.index
        assert list(ours.out_shape) == ref["shape"], (ours.index, ours.type)
        config = ref.get("config", {})
        if "in_chw" in config:
            assert list(ours.in_shape) == config["in_chw"], ours.index
        if ours.type == "connected":
            assert math.prod(ours.in_shape) == config["inputs"], ours.index


def _gen_summary(cfg):
    """Per-layer parameter counts and totals printed by gen_weights.py --summary."""
    out = subprocess.run([sys.executable, str(DATA / "gen_weights.py"), "--summary", str(cfg)],
                         capture_output=True, text=True, check=True).stdout
    per_layer = [int(m.group(2)) for m in re.finditer(r"^\s*(\d+) \[\w+\].*?params\s+(\d+)", out, re.M)]
    total, size = map(int, re.search(r"total parameters (\d+), file size (\d+) bytes", out).groups())
    return per_layer, total, size


@pytest.mark.parametrize("name, params, size", [
    ("yolov3", 62001757, 248007048),
    ("alexnet", 62378344, 249513396),
    ("yolov3-tiny", 8858734, 35434956),
])
def test_parameter_counts(name, params, size):
    layers = wt.infer_layers(wt.parse_cfg(_cfg(name)))
    assert sum(layer.n_params for layer in layers) == params
    assert wt.expected_size(_cfg(name)) == size
    per_layer, total, gen_size = _gen_summary(_cfg(name))
    assert [layer.n_params for layer in layers] == per_layer
    assert (total, gen_size) == (params, size)


def test_conv_and_connected_param_order():
    layers = wt.infer_layers(wt.parse_cfg(_cfg("xnor-cifar")))
    assert layers[0].params == [("biases", (32,)), ("scales", (32,)), ("rolling_mean", (32,)),
                                ("rolling_variance", (32,)), ("weights", (32, 3, 3, 3))]
    assert layers[9].params == [("biases", (128,)), ("weights", (128, 2048)), ("scales", (128,)),
                                ("rolling_mean", (128,)), ("rolling_variance", (128,))]
    assert layers[10].params == [("biases", (10,)), ("weights", (10, 128))]


MISC = NET + """
[convolutional]
filters=8
size=3
stride=2
pad=1
groups=1
activation=leaky
[batchnorm]
[maxpool]
size=3
stride=1
[upsample]
stride=2
[shortcut]
from=-3
[route]
layers=-1,-2
[convolutional]
filters=4
size=1
groups=4
[avgpool]
[dropout]
[connected]
output=5
batch_normalize=1
[softmax]
[upsample]
stride=-1
[cost]
"""


def test_other_layer_types():
    layers = wt.infer_layers(wt.parse_cfg(MISC))
    got = [(l.type, l.out_shape, l.n_params) for l in layers]
    assert got == [
        ("convolutional", (8, 8, 8), 8 + 8 * 3 * 9),
        ("batchnorm", (8, 8, 8), 24),
        ("maxpool", (8, 8, 8), 0),  # padding defaults to size-1, so stride 1 keeps the size
        ("upsample", (8, 16, 16), 0),
        ("shortcut", (8, 16, 16), 0),
        ("route", (16, 16, 16), 0),
        ("convolutional", (4, 16, 16), 4 + 4 * 4),  # grouped: 16/4 inputs per filter
        ("avgpool", (4, 1, 1), 0),
        ("dropout", (4, 1, 1), 0),
        ("connected", (5, 1, 1), 5 + 20 + 15),
        ("softmax", (5, 1, 1), 0),
        ("upsample", (5, 1, 1), 0),
        ("cost", (5, 1, 1), 0),
    ]
    # and a full round trip through the weights format
    rng = np.random.default_rng(0)
    w = wt.DarknetWeights(layers=[{n: rng.standard_normal(s).astype(np.float32) for n, s in l.params}
                                  for l in layers])
    blob = wt.write_weights(layers, w)
    assert len(blob) == wt.expected_size(layers)
    back = wt.read_weights(layers, blob)
    assert wt.write_weights(layers, back) == blob
    assert np.array_equal(back.layers[9]["weights"], w.layers[9]["weights"])


def test_dontload_options():
    text = NET + "[convolutional]\nfilters=2\nbatch_normalize=1\ndontloadscales=1\n" \
                 "[convolutional]\nfilters=2\ndontload=1\n"
    layers = wt.infer_layers(wt.parse_cfg(text))
    assert [n for n, _ in layers[0].params] == ["biases", "weights"]
    assert layers[1].params == []


# ----------------------------------------------------------------------------- weights

@pytest.mark.parametrize("name, params", [("xnor-small", 93746), ("xnor-cifar", 552298)])
def test_read_golden_weights_and_round_trip(name, params):
    path = DATA / ("%s.weights" % name)
    blob = path.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == (DATA / ("%s.weights.sha256" % name)).read_text().split()[0]
    w = wt.read_weights(_cfg(name), path)
    assert (w.major, w.minor, w.revision, w.seen, w.transpose) == (0, 2, 0, 0, False)
    assert w.header_size == 20 and w.n_params == params
    assert len(blob) == 20 + 4 * params  # consumed exactly
    assert wt.write_weights(_cfg(name), w) == blob  # byte-identical
    assert wt.read_weights(_cfg(name), blob).layers[0]["biases"].tolist() == w.layers[0]["biases"].tolist()


def test_golden_arrays_are_in_the_right_order():
    """The generator draws each array from its own range, so reading the arrays
    in the wrong order (e.g. connected BN before the weights) shows up here."""
    layers = wt.infer_layers(wt.parse_cfg(_cfg("xnor-cifar")))
    w = wt.read_weights(layers, DATA / "xnor-cifar.weights")
    ranges = {"biases": (-0.1, 0.1), "scales": (0.5, 1.5), "rolling_mean": (-0.1, 0.1),
              "rolling_variance": (0.5, 1.5)}
    for layer, arrays in zip(layers, w.layers):
        for name, a in arrays.items():
            assert a.dtype == np.float32
            if name == "weights":
                fan_in = math.prod(a.shape[1:])
                bound = (0.5 if layer.section.get_int("batch_normalize", 0) else 1.0) * math.sqrt(6 / fan_in)
                lo, hi = -bound, bound
            else:
                lo, hi = ranges[name]
            assert lo - 1e-6 <= a.min() and a.max() <= hi + 1e-6, (layer.index, name)
            assert a.max() - a.min() > 0.8 * (hi - lo), (layer.index, name)  # really spans the range


def test_truncated_weights():
    blob = (DATA / "xnor-small.weights").read_bytes()
    with pytest.raises(wt.WeightsError, match=r"inside layer 7 \[connected\].*only 30716 are left") as exc:
        wt.read_weights(_cfg("xnor-small"), blob[:-4])
    assert "the cfg needs 375004" in str(exc.value)
    with pytest.raises(wt.WeightsError, match=r"inside layer 0 \[convolutional\] \(cfg line 12\): biases"):
        wt.read_weights(_cfg("xnor-small"), blob[:30])
    with pytest.raises(wt.WeightsError, match="too short for the weights header"):
        wt.read_weights(_cfg("xnor-small"), blob[:10])


def test_overlong_weights(tmp_path):
    path = tmp_path / "long.weights"
    path.write_bytes((DATA / "xnor-small.weights").read_bytes() + b"\0" * 12)
    with pytest.raises(wt.WeightsError, match="12 bytes left over") as exc:
        wt.read_weights(_cfg("xnor-small"), path)
    assert str(exc.value).startswith(str(path))


def test_old_header_and_transpose_flag():
    layers = wt.infer_layers(wt.parse_cfg(_cfg("xnor-small")))
    w = wt.read_weights(layers, DATA / "xnor-small.weights")
    # version 0.1: `seen` is 32 bits, so the header is 16 bytes
    old = wt.DarknetWeights(0, 1, 5, 1234, w.layers)
    blob = wt.write_weights(layers, old)
    assert len(blob) == 16 + 4 * w.n_params
    back = wt.read_weights(layers, blob)
    assert (back.major, back.minor, back.revision, back.seen, back.header_size) == (0, 1, 5, 1234, 16)
    # major > 1000: connected weights are stored [in, out]
    arrays = [dict(a) for a in w.layers]
    arrays[7]["weights"] = arrays[7]["weights"].T
    flipped = wt.DarknetWeights(1001, 0, 0, 0, arrays)
    assert flipped.transpose and flipped.header_size == 16
    back = wt.read_weights(layers, wt.write_weights(layers, flipped))
    assert back.layers[7]["weights"].shape == (768, 10)


def test_write_rejects_wrong_arrays():
    layers = wt.infer_layers(wt.parse_cfg(_cfg("xnor-small")))
    w = wt.read_weights(layers, DATA / "xnor-small.weights")
    w.layers[7]["weights"] = w.layers[7]["weights"].T
    with pytest.raises(wt.WeightsError, match=r"layer 7 \[connected\].*weights has shape \(768, 10\)"):
        wt.write_weights(layers, w)
    del w.layers[7]["weights"]
    with pytest.raises(wt.WeightsError, match="expected"):
        wt.write_weights(layers, w)
    with pytest.raises(wt.WeightsError, match="layer entries"):
        wt.write_weights(layers, wt.DarknetWeights())


# ----------------------------------------------------------------------------- command line

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "weights_tools", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_info():
    r = _cli("info", "--cfg", str(_cfg("xnor-cifar")), "--weights", str(DATA / "xnor-cifar.weights"))
    assert r.returncode == 0, r.stderr
    assert "total parameters 552298" in r.stdout and "2209212 bytes" in r.stdout
    assert re.search(r"^\s+9\s+connected\s+128x4x4\s+128x1x1\s+262656$", r.stdout, re.M)
    assert "ok: the weights file matches" in r.stdout
    r = _cli("info", "--cfg", str(_cfg("yolov3-tiny")))
    assert r.returncode == 0 and "35434956 bytes" in r.stdout


def test_cli_errors(tmp_path):
    r = _cli("info", "--cfg", str(_cfg("xnor-small")), "--weights", str(DATA / "xnor-cifar.weights"))
    assert r.returncode == 1 and "bytes left over" in r.stderr and r.stderr.count("\n") == 1
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=oops\nheight=2\nchannels=1\n")
    r = _cli("info", "--cfg", str(bad))
    assert r.returncode == 1 and ("%s:2:" % bad) in r.stderr
    r = _cli("--help")
    assert r.returncode == 0 and "info" in r.stdout
