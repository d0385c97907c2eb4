"""Fixed point, accuracy smoke tests and the command lines (the full evaluation is
benchmarks/int8_accuracy.py).  Models are calibrated on scikit-image photos and
evaluated on the golden photos, never on their own calibration images."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mdfi
from cbuild import build
from fixed_models import calibration_photos, quantized
from weights_tools import evaluate as ev
from weights_tools.quantize import INT8_CACHE_TAG


@pytest.fixture(scope="module")
def tiny8(tiny_model):
    cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny8")
    return cfg, qpath


def test_int8_keeps_the_confident_detections(golden, tiny_model, tiny8):
    paths = [str(golden / "images" / f"{n}.ppm") for n in ("person", "eagle")]
    with mdfi.Network(tiny_model["cfg"], tiny_model["weights"]) as f, \
            mdfi.Network(*tiny8) as q:
        r = ev.compare_detectors(f, q, paths)
    assert r["float"] == 5
    assert r["kept"] == 5, (r["ref"], r["test"])
    assert r["map50"] >= 0.9


def test_paired_weights_keep_the_confident_detections(golden, tiny_model):
    """--weight-scale mult-pair: 8-bit weights whose adjacent pairs sum to at most 128
    in magnitude (each channel's largest pair at the bound, one rounding step
    under it at most), which AVX2 runs on avx2-8p; the confident detections stay."""
    from conftest import available_kernels
    from weights_tools import qweights as qwf
    cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny-w8p",
                              weight_scale="mult-pair")
    records = [r for r in qwf.read(qpath).records.values() if r.weights.dtype == np.int8]
    assert len(records) == 13
    wide = 0
    for r in records:
        a = np.abs(r.weights.astype(np.int64))
        a = np.concatenate([a, np.zeros((a.shape[0], a.shape[1] % 2), np.int64)], axis=1)
        pairs = (a[:, 0::2] + a[:, 1::2]).max(axis=1)
        assert pairs.max() <= 128 and (pairs >= 126).mean() > 0.9, r.layer
        wide += int((a.max(axis=1) > 64).sum())
    assert wide > 100   # channels whose largest weight uses more than 7 bits
    paths = [str(golden / "images" / f"{n}.ppm") for n in ("person", "eagle")]
    with mdfi.Network(tiny_model["cfg"], tiny_model["weights"]) as f, \
            mdfi.Network(cfg, qpath) as q:
        if "avx2" in available_kernels() and "avx512" not in available_kernels():
            assert {q.layer_format(i).kernel for i in range(len(q.layers))} >= {"avx2-8p"}
        r = ev.compare_detectors(f, q, paths)
    assert r["float"] == 5
    assert r["kept"] == 5, (r["ref"], r["test"])
    assert r["map50"] >= 0.9


def test_quantized_file_is_small(tiny_model, tiny8):
    ratio = os.path.getsize(tiny8[1]) / os.path.getsize(tiny_model["weights"])
    print(f"quantized yolov3-tiny: {100 * ratio:.1f}% of the float weights")
    assert ratio <= 0.30


def test_quantize_command_line_reports_formats_and_sqnr(golden, tiny_model, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "weights_tools", "quantize", "--cfg", str(tiny_model["cfg"]),
         "--weights", str(tiny_model["weights"]), "--calib", *calibration_photos(2),
         "--bias-images", "1", "--check", str(golden / "images" / "person.ppm"),
         "-o", str(tmp_path / "t8")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "calibrating 1/2" in res.stderr and "calibrating 2/2" in res.stderr   # progress
    lines = res.stdout.splitlines()
    assert "w SQNR max/mse" in lines[1] and "net SQNR" in lines[1]
    rows = [ln.split() for ln in lines[2:26]]
    assert [int(r[0]) for r in rows] == list(range(24))
    assert rows[0][1] == "convolutional" and rows[0][2].startswith("8:")
    assert float(rows[15][7]) > 12     # the end-to-end SQNR of the first head's input
    assert (tmp_path / "t8.cfg").exists() and (tmp_path / "t8.qweights").exists()
    text = (tmp_path / "t8.cfg").read_text()
    assert len(re.findall(r"(?m)^fixed_out=", text)) == 22      # all but the two [yolo]
    assert len(re.findall(r"(?m)^fixed_w=8:", text)) == 13      # the convolutions


def test_mdfi_program_runs_quantized_models(golden, tiny_model, tiny8):
    exe = str(build() / "mdfi")
    res = subprocess.run([exe, "detect", tiny8[0], tiny8[1], str(golden / "images" / "person.ppm"),
                          "--json", "--names", str(tiny_model["names"])], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    labels = sorted(d["label"] for d in json.loads(res.stdout)["detections"])
    assert labels == ["dog", "dog", "horse", "person"]
    res = subprocess.run([exe, "info", *tiny8], capture_output=True, text=True)
    assert res.returncode == 0 and "fixed point" in res.stdout and " out 8:" in res.stdout
    res = subprocess.run([exe, "bench", *tiny8, "--runs", "2", "--json"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and json.loads(res.stdout)["median_ms"] > 0


@pytest.mark.slow
def test_detect_int8_option(golden, tiny_model):
    # a subprocess: importing mdfi.detect here would shadow the mdfi.detect() function
    res = subprocess.run([sys.executable, "-m", "mdfi.detect", "--int8", "--json", "--no-out",
                          str(golden / "images" / "person.ppm")], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert sorted(d["label"] for d in out["detections"]) == ["dog", "dog", "horse", "person"]
    cached = os.path.splitext(str(tiny_model["weights"]))[0] + "." + INT8_CACHE_TAG + ".qweights"
    assert os.path.exists(cached)
    # the recipe: 8-bit weights with multipliers, some layers with 16-bit input
    text = open(cached[:-len(".qweights")] + ".cfg").read()
    assert "fixed_w=8:mul" in text and "fixed_in=16:" in text


@pytest.mark.slow
def test_alexnet_int8_output_sqnr(golden, synthetic_weights, tmp_path):
    """Generated weights: calibrated on the generator's kind of input, checked on another."""
    rng = np.random.default_rng(3)
    calib = []
    for k in range(2):
        p = tmp_path / f"c{k}.npy"
        np.save(p, rng.uniform(0, 1, (3, 227, 227)).astype(np.float32))
        calib.append(str(p))
    check = str(tmp_path / "check.npy")
    np.save(check, np.load(golden / "synthetic" / "alexnet.input.npy"))
    cfg, qpath, r = quantized(golden / "synthetic" / "alexnet.cfg", synthetic_weights("alexnet"),
                              "alexnet8", calib=tuple(calib), check_images=(check,),
                              bias_images=0)
    print("alexnet int8 SQNR per layer:", ["%.1f" % v for v in r["sqnr"]])
    assert r["sqnr"][-2] > 20   # the logits, before the softmax
