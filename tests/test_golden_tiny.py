"""yolov3-tiny (official weights) against Darknet's own outputs on the golden photos."""
import json
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build
from conftest import IMAGES, available_kernels, load_npy


@pytest.fixture(scope="module")
def nets(tiny_model):
    opened = {}

    def get(kernel, threads=1):
        key = (kernel, threads)
        if key not in opened:
            opened[key] = mdfi.Network(tiny_model["cfg"], tiny_model["weights"], threads=threads,
                                       kernel=kernel)
        return opened[key]
    yield get
    for n in opened.values():
        n.close()


def golden_detections(golden, name, suffix=""):
    return json.loads((golden / "yolov3-tiny" / f"{name}.detections{suffix}.json").read_text())


def assert_same_detections(got, want):
    """Sets equal: same classes, prob within 0.001, pixel boxes within 1 px."""
    assert len(got) == len(want), f"{len(got)} detections, Darknet has {len(want)}:\n{got}\n{want}"
    unmatched = list(want)
    for g in got:
        match = [w for w in unmatched if w["class_id"] == g["class_id"]
                 and abs(w["prob"] - g["prob"]) <= 1e-3
                 and all(abs(a - b) <= 1 for a, b in zip(w["bbox"], g["bbox"]))]
        assert match, f"no Darknet detection matches {g}; Darknet: {unmatched}"
        unmatched.remove(match[0])


@pytest.mark.parametrize("name", IMAGES)
def test_letterbox_is_darknets(golden, name):
    img = mdfi.load_image(golden / "images" / f"{name}.ppm")
    got = mdfi.letterbox(img, 416, 416)
    want = np.load(golden / "yolov3-tiny" / f"{name}.input.npy")
    assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("kernel", available_kernels())
@pytest.mark.parametrize("name", IMAGES)
def test_yolo_outputs_and_detections(golden, nets, name, kernel):
    net = nets(kernel)
    x = np.load(golden / "yolov3-tiny" / f"{name}.input.npy")
    net.forward(x)
    for layer in (16, 23):
        want = load_npy(golden / "yolov3-tiny" / f"{name}.yolo{layer}.npy")
        got = net.layer_output(layer)
        diff = np.abs(got - want).max()
        assert diff <= 1e-4, f"{name} layer {layer} ({kernel}): max abs diff {diff}"
    for suffix, thresh in (("", 0.5), ("_thresh025", 0.25)):
        ref = golden_detections(golden, name, suffix)
        dets = net.detect((ref["width"], ref["height"]), thresh=thresh)
        assert_same_detections([d.to_json() for d in dets], ref["detections"])


def test_threads_give_identical_outputs(golden, nets):
    x = np.load(golden / "yolov3-tiny" / "dog.input.npy")
    a = nets(None, 1).forward(x).copy()
    b = nets(None, 2).forward(x)
    assert np.array_equal(a, b)
    a16 = nets(None, 1).layer_output(16)
    b16 = nets(None, 2).layer_output(16)
    assert np.array_equal(a16, b16)


@pytest.mark.parametrize("name", IMAGES)
def test_python_detect_from_ppm(golden, tiny_model, name):
    dets = mdfi.detect(golden / "images" / f"{name}.ppm", cfg=tiny_model["cfg"],
                       weights=tiny_model["weights"], names=tiny_model["names"])
    ref = golden_detections(golden, name)
    assert_same_detections([d.to_json() for d in dets], ref["detections"])
    labels = {d["class_id"]: d["label"] for d in ref["detections"]}
    assert all(labels[d.class_id] == d.label for d in dets)


def test_detect_stays_callable_after_importing_the_command_modules(golden, tiny_model):
    """`mdfi.detect` is a function and the module of `python -m mdfi.detect`;
    importing the module must not break the function (nor for classify)."""
    import importlib
    for name in ("detect", "classify"):
        importlib.import_module("mdfi." + name)
        assert callable(getattr(mdfi, name))
    dets = mdfi.detect(golden / "images" / "dog.ppm", cfg=tiny_model["cfg"],
                       weights=tiny_model["weights"], names=tiny_model["names"])
    ref = golden_detections(golden, "dog")
    assert_same_detections([d.to_json() for d in dets], ref["detections"])


@pytest.mark.parametrize("name", IMAGES)
def test_mdfi_program_detect_json(golden, tiny_model, name):
    exe = build() / "mdfi"
    res = subprocess.run([str(exe), "detect", str(tiny_model["cfg"]), str(tiny_model["weights"]),
                          str(golden / "images" / f"{name}.ppm"), "--json", "--names",
                          str(tiny_model["names"])], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    ref = golden_detections(golden, name)
    assert (out["width"], out["height"]) == (ref["width"], ref["height"])
    assert_same_detections(out["detections"], ref["detections"])
