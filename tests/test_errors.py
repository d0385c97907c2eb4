"""Bad input gives a clear, typed error naming the file, line or layer - never a crash."""
import struct
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build

SMALL = """[net]
width=8
height=8
channels=3

[convolutional]
filters=4
size=3
stride=1
pad=1
batch_normalize=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=2
size=1
activation=linear
"""
# conv0: 4 biases + 3*4 bn + 4*3*3*3 weights; conv2: 2 biases + 2*4 weights
SMALL_FLOATS = 4 + 12 + 108 + 2 + 8


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def weights_file(tmp_path, n_floats, header=(0, 2, 0), seen_bytes=8, name="w.weights"):
    p = tmp_path / name
    with open(p, "wb") as f:
        f.write(struct.pack("<3i", *header))
        f.write(b"\0" * seen_bytes)
        f.write(np.linspace(-1, 1, n_floats, dtype=np.float32).tobytes())
    return p


def test_small_net_runs(tmp_path):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    with mdfi.Network(cfg, weights_file(tmp_path, SMALL_FLOATS)) as net:
        out = net.forward(np.zeros((3, 8, 8), np.float32))
        assert out.shape == (2, 4, 4)


@pytest.mark.parametrize("text, exc, needle", [
    (SMALL + "[bogus]\nx=1\n", mdfi.CfgError, "bad.cfg:22: unknown section [bogus]"),
    (SMALL.replace("filters=4", "filters=4x"), mdfi.CfgError, "bad.cfg:7: [convolutional] filters=4x"),
    (SMALL.replace("size=3", "size=abc"), mdfi.CfgError, "bad.cfg:8:"),
    (SMALL + "[shortcut]\nactivation=linear\n", mdfi.CfgError, "needs the key 'from'"),
    (SMALL + "[route]\nlayers=-9\n", mdfi.CfgError, "bad.cfg:23: layer 3 [route]: layers=-9"),
    (SMALL + "[route]\nlayers=5\n", mdfi.CfgError, "not an earlier layer"),
    (SMALL + "[shortcut]\nfrom=7\n", mdfi.CfgError, "from=7"),
    (SMALL + "[route]\nlayers=-1,0\n", mdfi.ShapeError, "route needs equal sizes"),
    # unequal maps are resampled as Darknet does, with one integer ratio both ways
    (SMALL + "[crop]\ncrop_height=4\ncrop_width=2\nnoadjust=1\n[shortcut]\nfrom=-2\n",
     mdfi.ShapeError, "not an integer ratio of each other"),
    (SMALL + "[yolo]\nmask=0\nanchors=1,2\nnum=1\nclasses=80\n", mdfi.ShapeError, "85 are needed"),
    (SMALL.replace("width=8", "width=100000"), mdfi.CfgError, "sane width"),
    # fuzz_net: the default of inputs= multiplied these before the check (UBSan: int overflow)
    (SMALL.replace("width=8", "width=281000000").replace("height=8", "height=28"),
     mdfi.CfgError, "got 281000000 x 28 x 3"),
    (SMALL.replace("filters=4", "filters=65536").replace("width=8", "width=30000")
     .replace("height=8", "height=30000").replace("channels=3", "channels=1"),
     mdfi.ShapeError, "absurdly large"),
    (SMALL.replace("size=3\nstride=1\npad=1", "size=20\nstride=1\npad=0"), mdfi.ShapeError,
     "is empty"),
    (SMALL.replace("[maxpool]", "maxpool]"), mdfi.CfgError, "bad.cfg:14: expected key=value"),
    ("width=3\n" + SMALL, mdfi.CfgError, "before the first [section]"),
    (SMALL.replace("[net]", "[convolutional]", 1), mdfi.CfgError, "first section must be [net]"),
    (SMALL.replace("activation=leaky", "activation=sparkly"), mdfi.CfgError, "unknown activation 'sparkly'"),
    (SMALL.replace("groups", "x") + "[convolutional]\nfilters=3\ngroups=2\n", mdfi.ShapeError, "groups=2"),
    ("", mdfi.CfgError, "no sections"),
])
def test_bad_cfg(tmp_path, text, exc, needle):
    cfg = write(tmp_path, "bad.cfg", text)
    with pytest.raises(exc) as info:
        mdfi.Network(cfg)
    assert needle in str(info.value)
    assert isinstance(info.value, mdfi.MdfiError)


def test_unknown_key_is_a_warning_with_line(tmp_path):
    cfg = write(tmp_path, "typo.cfg", SMALL.replace("batch_normalize", "bactch_normalize"))
    with mdfi.Network(cfg) as net:
        assert any("typo.cfg:11: unknown key 'bactch_normalize'" in w for w in net.warnings)


def test_training_keys_are_accepted_silently(tmp_path):
    cfg = write(tmp_path, "train.cfg", SMALL.replace("[net]", "[net]\nbatch=64\nmomentum=0.9\n"
                                                      "learning_rate=0.001\nsteps=10,20"))
    with mdfi.Network(cfg) as net:
        assert net.warnings == []


def test_missing_cfg(tmp_path):
    with pytest.raises(mdfi.MdfiIOError, match="nope.cfg: cannot open"):
        mdfi.Network(tmp_path / "nope.cfg")


def test_binary_garbage_cfg(tmp_path):
    p = tmp_path / "garbage.cfg"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(mdfi.CfgError, match="garbage.cfg"):
        mdfi.Network(p)


@pytest.mark.parametrize("n, needle", [
    (SMALL_FLOATS - 1, "ran out at layer 2 [convolutional]"),
    (50, "ran out at layer 0 [convolutional]"),
    (SMALL_FLOATS + 3, "12 bytes left after the last layer"),
])
def test_weights_size_mismatch(tmp_path, n, needle):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    with pytest.raises(mdfi.WeightsError) as info:
        mdfi.Network(cfg, weights_file(tmp_path, n))
    assert needle in str(info.value) and "w.weights" in str(info.value)


def test_weights_old_header_has_32bit_seen(tmp_path):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    with mdfi.Network(cfg, weights_file(tmp_path, SMALL_FLOATS, (0, 1, 0), 4)) as net:
        net.forward(np.zeros((3, 8, 8), np.float32))


@pytest.mark.parametrize("header, seen_bytes", [
    ((0, 1, 0), 4), ((0, 2, 0), 8), ((0, 2, 5), 8), ((1, 0, 0), 8),
    ((1001, 0, 0), 4), ((0, 1001, 0), 4), ((999999, 999999, 999999), 4),
])
def test_weights_seen_size_follows_darknet(tmp_path, header, seen_bytes):
    """Darknet reads `seen` as 8 bytes when major*10 + minor >= 2 and both are
    below 1000, else 4: such a file loads, and the same file with the other
    seen size is refused by the size check with the exact byte count."""
    from weights_tools import read_header, seen_size
    assert seen_size(header[0], header[1]) == seen_bytes
    cfg = write(tmp_path, "ok.cfg", SMALL)
    good = weights_file(tmp_path, SMALL_FLOATS, header, seen_bytes)
    assert read_header(str(good)).transpose == (header[0] > 1000 or header[1] > 1000)
    with mdfi.Network(cfg, good) as net:
        net.forward(np.zeros((3, 8, 8), np.float32))
    other = 12 - seen_bytes
    bad = weights_file(tmp_path, SMALL_FLOATS, header, other, name="bad.weights")
    size = 4 * SMALL_FLOATS   # bytes of parameters after the header
    if other > seen_bytes:   # read as Darknet reads it, 4 bytes are left over
        needle = "bad.weights: too long for .*ok.cfg: 4 bytes left after the last layer"
    else:                    # the longer seen eats 4 bytes of the last conv's weights
        needle = ("bad.weights: too short for .*ok.cfg: %d bytes, ran out at layer 2 "
                  r"\[convolutional\] \(needs %d bytes up to it\)" % (size - 4, size))
    with pytest.raises(mdfi.WeightsError, match=needle):
        mdfi.Network(cfg, bad)


@pytest.mark.parametrize("content, needle", [
    (b"", "too short for a Darknet weights header"),
    (b"\xff" * 40, "bad header version"),
    (struct.pack("<3i", 0, 2, 0) + b"\0\0", "truncated header"),
])
def test_weights_bad_header(tmp_path, content, needle):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    (tmp_path / "bad.weights").write_bytes(content)
    with pytest.raises(mdfi.WeightsError, match=needle):
        mdfi.Network(cfg, tmp_path / "bad.weights")


def test_missing_weights(tmp_path):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    with pytest.raises(mdfi.MdfiIOError, match="missing.weights"):
        mdfi.Network(cfg, tmp_path / "missing.weights")


def test_forward_shape_and_dtype(tmp_path):
    with mdfi.Network(write(tmp_path, "ok.cfg", SMALL)) as net:
        with pytest.raises(mdfi.ShapeError):
            net.forward(np.zeros((3, 8, 9), np.float32))
        with pytest.raises(mdfi.ShapeError):
            net.forward(np.zeros((3, 8, 8), np.float64))
        with pytest.raises(mdfi.ArgumentError):
            net.detect((10, 10))   # no forward yet / no yolo layer
        with pytest.raises(mdfi.ArgumentError):
            net.layer_output(99)


def test_bad_kernel_and_threads(tmp_path):
    cfg = write(tmp_path, "ok.cfg", SMALL)
    with pytest.raises(mdfi.ArgumentError, match="unknown kernel 'sse9'"):
        mdfi.Network(cfg, kernel="sse9")
    with pytest.raises(mdfi.ArgumentError, match="threads must be"):
        mdfi.Network(cfg, threads=0)


def test_images(tmp_path):
    with pytest.raises(mdfi.MdfiIOError, match="nothere.ppm"):
        mdfi.load_image(tmp_path / "nothere.ppm")
    bad = tmp_path / "trunc.ppm"
    bad.write_bytes(b"P6\n4 4\n255\n" + b"\0" * 10)
    with pytest.raises(mdfi.ImageError, match="trunc.ppm"):
        mdfi.load_image(bad)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(mdfi.ImageError, match="junk.jpg"):
        mdfi.load_image(junk)


def run_mdfi(*args, exe=None):
    exe = exe or build() / "mdfi"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120)


def program_cases(tmp_path):
    """(args, expected text in stderr) for the mdfi program."""
    ok = write(tmp_path, "ok.cfg", SMALL)
    bad = write(tmp_path, "bad.cfg", SMALL + "[bogus]\n")
    w = weights_file(tmp_path, SMALL_FLOATS)
    short = weights_file(tmp_path, 20, name="short.weights")
    img = tmp_path / "img.ppm"
    img.write_bytes(b"P6\n8 8\n255\n" + bytes(range(192)))
    txt = write(tmp_path, "notimage.txt", "hello")
    return [
        (["info", bad], "bad.cfg:22: unknown section [bogus]"),
        (["info", tmp_path / "none.cfg"], "none.cfg: cannot open"),
        (["detect", ok, short, img], "ran out at layer"),
        (["detect", ok, w, tmp_path / "none.ppm"], "none.ppm"),
        (["detect", ok, w, txt], "notimage.txt"),
        (["detect", ok, w, img], "no [yolo] layer"),
        (["detect", ok, w], "usage"),
        (["bench", ok, "--runs", "x"], "--runs needs a number"),
        (["frobnicate"], "unknown command"),
        (["info", ok, "--kernel", "sse9"], "unknown kernel"),
    ]


def test_program_errors(tmp_path):
    for args, needle in program_cases(tmp_path):
        res = run_mdfi(*args)
        assert res.returncode > 0, (args, res.returncode, res.stderr)
        assert needle in res.stderr, (args, res.stderr)


def test_program_info_and_classify(tmp_path):
    ok = write(tmp_path, "ok.cfg", SMALL + "[avgpool]\n[softmax]\n")
    img = tmp_path / "img.ppm"
    img.write_bytes(b"P6\n8 8\n255\n" + bytes(range(192)))
    res = run_mdfi("info", ok)
    assert res.returncode == 0, res.stderr
    assert "conv" in res.stdout and "BFLOPs" in res.stdout and "total: 5 layers" in res.stdout
    res = run_mdfi("classify", ok, weights_file(tmp_path, SMALL_FLOATS), img, "--top", "2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("%: class_") == 2
