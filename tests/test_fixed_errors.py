"""Fixed point, bad input: corrupt quantized files, cfg formats that do not match the
weights, bad calibration sets, ranges that overflow their format."""
import re
import subprocess

import numpy as np
import pytest

import mdfi
import weights_tools as wt
from cbuild import build
from fixed_models import quantized, random_darknet, random_qweights
from test_fixed_exact import synth_net
from weights_tools import qweights as qwf
from weights_tools.calibrate import CalibrationError, find_images
from weights_tools.quantize import RangeOverflowError, quantize


@pytest.fixture(scope="module")
def tiny8(tiny_model):
    cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny8")
    return cfg, qpath


def corrupt(src, dst, offset, xor=0x01):
    data = bytearray(open(src, "rb").read())
    data[offset] ^= xor
    open(dst, "wb").write(bytes(data))
    return dst


def test_corrupt_file_is_a_checksum_error(tiny8, tmp_path):
    cfg, qpath = tiny8
    bad = corrupt(qpath, tmp_path / "bad.qweights", 5_000_000)
    with pytest.raises(mdfi.WeightsError, match="checksum mismatch"):
        mdfi.Network(cfg, bad)
    with pytest.raises(qwf.QWeightsError, match="checksum"):
        qwf.read(bad)
    res = subprocess.run([str(build() / "mdfi"), "info", cfg, str(bad)], capture_output=True,
                         text=True)
    assert res.returncode != 0 and "checksum mismatch" in res.stderr, res.stderr


def test_truncated_and_foreign_files(tiny8, tiny_model, tmp_path):
    cfg, qpath = tiny8
    data = open(qpath, "rb").read()
    short = tmp_path / "short.qweights"
    short.write_bytes(data[:len(data) // 2])
    with pytest.raises(mdfi.WeightsError, match="truncated"):
        mdfi.Network(cfg, short)
    tiny_header = tmp_path / "header.qweights"
    tiny_header.write_bytes(data[:20])
    with pytest.raises(mdfi.WeightsError, match="too short"):
        mdfi.Network(cfg, tiny_header)
    newer = tmp_path / "v3.qweights"
    body = bytearray(data[:-4])
    body[8] = 3
    import struct
    import zlib
    newer.write_bytes(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))
    with pytest.raises(mdfi.WeightsError, match="version 3"):
        mdfi.Network(cfg, newer)
    with pytest.raises(mdfi.WeightsError, match="not a quantized weights file"):
        mdfi.Network(cfg, tiny_model["weights"])
    with pytest.raises(mdfi.WeightsError, match="no fixed-point formats"):
        mdfi.Network(tiny_model["cfg"], qpath)


@pytest.mark.parametrize("key,value,needle", [
    ("fixed_w", "8:1", "do not belong together"),       # another weight fraction
    ("fixed_out", "16:3", "do not belong together"),    # another output width
    ("filters", "16", "record is convolutional"),       # another shape
])
def test_cfg_formats_inconsistent_with_weights(tiny8, tmp_path, key, value, needle):
    cfg, qpath = tiny8
    text = open(cfg).read()
    at = text.index("[convolutional]", text.index("[maxpool]"))   # layer 2
    sec_end = text.index("[", at + 1)
    section = re.sub(r"(?m)^%s=.*$" % key, "%s=%s" % (key, value), text[at:sec_end], count=1)
    assert section != text[at:sec_end]
    bad = tmp_path / "bad.cfg"
    bad.write_text(text[:at] + section + text[sec_end:])
    with pytest.raises(mdfi.WeightsError, match=needle):
        mdfi.Network(bad, qpath)


@pytest.mark.parametrize("edit,needle", [
    (("fixed_out=8:3\nfilters=12", "fixed_out=9:3\nfilters=12"), "BITS:FRAC"),
    (("fixed_out=8:3\nfilters=12", "fixed_out=8:99\nfilters=12"), "FRAC in -16..31"),
    (("[maxpool]\nfixed_out=8:2", "[maxpool]\nfixed_w=8:2\nfixed_out=8:2"), "fixed_w is not allowed"),
    (("[softmax]", "[softmax]\nfixed_out=8:2"), "no fixed-point form"),
    (("fixed_in=16:2\nfixed_w=16:9", "fixed_in=8:2\nfixed_w=16:9"), "wider than fixed_in"),
    (("fixed_in=16:9\nfixed_w=8:mul", "fixed_in=16:9\nfixed_w=8:mult"), "BITS:FRAC"),
    (("[avgpool]\nfixed_out=16:8\n", "[avgpool]\n"), "no fixed_\\* keys but reads layer"),
    (("fixed_in=8:6\nfixed_w=8:7\n", ""), "needs all of fixed_in"),
])
def test_bad_format_keys(tmp_path, edit, needle):
    cfg, qpath = synth_net(tmp_path)
    text = cfg.read_text()
    assert edit[0] in text
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(mdfi.CfgError, match=needle):
        mdfi.Network(cfg)


def test_accumulator_overflow_is_refused(tmp_path):
    cfg, _ = synth_net(tmp_path)
    spec = {0: (1, 12, 27, 1, (8, 6), (8, 7), (8, 3)),
            2: (1, 12, 36, 3, (16, 2), (16, 9), (16, 7)),
            3: (1, 12, 12, 1, (8, 5), (8, "ch"), (8, 4)),
            9: (1, 10, 108, 1, (16, 9), (8, "mul"), (8, 1)),
            12: (2, 7, 10, 1, (8, 3), (8, "mul"), (16, 9))}
    qw = random_qweights(spec, 14, scale=20000)   # 16-bit layers: sum|w| * 2^15 > 2^31
    qwf.write(tmp_path / "big.qweights", qw)
    with pytest.raises(mdfi.WeightsError, match="int32 accumulator can overflow"):
        mdfi.Network(cfg, tmp_path / "big.qweights")


def test_bad_calibration_sets(tiny_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationError, match="no calibration images"):
        find_images([empty])
    with pytest.raises(CalibrationError, match="does not exist"):
        find_images([tmp_path / "missing"])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(CalibrationError, match="unreadable"):
        quantize(tiny_model["cfg"], tiny_model["weights"], [junk], tmp_path / "out", quiet=True,
                 report=False, check_images=False)
    res = subprocess.run(["python", "-m", "weights_tools", "quantize", "--cfg",
                          str(tiny_model["cfg"]), "--weights", str(tiny_model["weights"]),
                          "--calib", str(empty), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "no calibration images" in res.stderr, res.stderr



@pytest.mark.parametrize("flag", ["--mixed-size", "--mixed-budget"])
def test_mixed_budgets_must_be_positive(tiny_model, tmp_path, flag):
    res = subprocess.run(["python", "-m", "weights_tools", "quantize", "--cfg",
                          str(tiny_model["cfg"]), "--weights", str(tiny_model["weights"]),
                          "--calib", str(tmp_path), "--mixed", flag, "0", "-o",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 1 and "must be positive fractions" in res.stderr, res.stderr


TOY_CFG = """[net]
width=8
height=8
channels=3
[convolutional]
filters=4
size=3
pad=1
activation=leaky
[convolutional]
filters=4
size=1
activation=linear
"""


def toy(tmp_path, w1_scale):
    cfg, path, rng = random_darknet(tmp_path, TOY_CFG, "toy", 0, {1: w1_scale})
    img = tmp_path / "calib.npy"
    np.save(img, rng.uniform(0, 1, (3, 8, 8)).astype(np.float32))
    return cfg, path, img


def test_range_overflow_is_reported(tmp_path):
    cfg, weights, img = toy(tmp_path, 1e12)
    with pytest.raises(RangeOverflowError, match="layer 1.*overflows 8-bit"):
        quantize(cfg, weights, [img], tmp_path / "q", quiet=True, report=False,
                 check_images=False, bias_images=0)
    cfg, weights, img = toy(tmp_path, np.inf)
    with pytest.raises(RangeOverflowError, match="not finite|inf/NaN"):
        quantize(cfg, weights, [img], tmp_path / "q", quiet=True, report=False,
                 check_images=False, bias_images=0)
    cfg, weights, img = toy(tmp_path, 1.0)   # and the same network quantizes fine
    r = quantize(cfg, weights, [img], tmp_path / "q", quiet=True, report=False,
                 check_images=[img], bias_images=1)
    assert r["sqnr"][-1] > 20
    with pytest.raises(wt.CfgError, match="already quantized"):
        quantize(r["cfg"], weights, [img], tmp_path / "q2", quiet=True, report=False)


def test_multiplier_out_of_range_is_refused(tmp_path):
    """fixed_w=B:mul: a multiplier outside 1..32767 in the file is an error naming the layer."""
    cfg, qpath = synth_net(tmp_path)
    qw = qwf.read(qpath)
    with pytest.raises(qwf.QWeightsError, match="multipliers must be"):
        qw.records[9].mults[0] = 0
        qwf.to_bytes(qw)
    qw = qwf.read(qpath)
    data = bytearray(open(qpath, "rb").read()[:-4])
    at = data.index(qw.records[9].mults.astype("<i4").tobytes())
    data[at:at + 4] = (40000).to_bytes(4, "little")
    import struct
    import zlib
    bad = tmp_path / "bad.qweights"
    bad.write_bytes(bytes(data) + struct.pack("<I", zlib.crc32(bytes(data))))
    with pytest.raises(qwf.QWeightsError, match="layer 9: a multiplier is outside 1..32767"):
        qwf.read(bad)
    with pytest.raises(mdfi.WeightsError, match="layer 9: output 0's multiplier 40000 is outside"):
        mdfi.Network(cfg, bad)


def test_weight_scale_options_are_checked(tiny_model, tmp_path):
    common = ["python", "-m", "weights_tools", "quantize", "--cfg", str(tiny_model["cfg"]),
              "--weights", str(tiny_model["weights"]), "--calib", str(tmp_path), "-o",
              str(tmp_path / "o")]
    for extra, needle in ((["--per-channel", "--weight-scale", "mult"], "contradicts"),
                          (["--mixed-layers", "0,2", "--mixed-narrow", "4"], "not in --mixed-layers"),
                          (["--act-bits", "16", "--mixed"], "already raises every layer")):
        res = subprocess.run(common + extra, capture_output=True, text=True)
        assert res.returncode == 1 and needle in res.stderr, (extra, res.stderr)
