"""The mdfi program: sanitizer build, cross builds for the Raspberry Pi under qemu, size."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from cbuild import build
from test_errors import program_cases

CROSS = {
    "aarch64": ("aarch64-linux-gnu-", "qemu-aarch64"),
    "armhf": ("arm-linux-gnueabihf-", "qemu-arm"),
}


def detect_json(cmd, model, image, timeout=600, env=None):
    res = subprocess.run([*cmd, "detect", str(model["cfg"]), str(model["weights"]), str(image),
                          "--json", "--names", str(model["names"])], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), res.stderr


def same_detections(a, b, prob_tol):
    key = lambda d: (d["class_id"], d["bbox"])  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b):
        assert x["class_id"] == y["class_id"] and x["label"] == y["label"]
        assert abs(x["prob"] - y["prob"]) <= prob_tol, (x, y)
        assert all(abs(p - q) <= 1 for p, q in zip(x["bbox"], y["bbox"])), (x, y)


SAN_ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


def assert_clean(stderr):
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr \
        and "LeakSanitizer" not in stderr, stderr


@pytest.mark.slow
def test_sanitizer_build_detect_and_bad_inputs(golden, tiny_model, tmp_path):
    san = build(sanitize=True)
    native = build()
    image = golden / "images" / "dog.ppm"
    a, err = detect_json([str(san / "mdfi")], tiny_model, image, env=SAN_ENV)
    assert_clean(err)
    b, _ = detect_json([str(native / "mdfi")], tiny_model, image)
    same_detections(a["detections"], b["detections"], 1e-4)
    for args, needle in program_cases(tmp_path):
        res = subprocess.run([str(san / "mdfi"), *map(str, args)], capture_output=True, text=True,
                             timeout=120, env=SAN_ENV)
        assert res.returncode > 0 and needle in res.stderr, (args, res.stderr)
        assert_clean(res.stderr)
    # the self-checking drivers (test_image is driven case by case by test_image.py)
    for driver in sorted((san / "tests").glob("test_*")):
        if driver.name == "test_image":
            continue
        res = subprocess.run([str(driver), "--quick"], capture_output=True, text=True,
                             timeout=600, env=SAN_ENV)
        assert res.returncode == 0, (driver.name, res.stdout[-3000:], res.stderr[-3000:])
        assert_clean(res.stderr)
    # every fixed-point layer type (multipliers, 16-bit input with 8-bit weights, ...) under
    # the sanitizers, with the same integers as the native build
    from test_fixed_exact import synth_net
    cfg, qpath = synth_net(tmp_path)
    np.random.default_rng(5).normal(0, 1.5, (3, 11, 13)).astype("<f4").tofile(tmp_path / "x.f32")
    outs = []
    for exe in (san / "tests" / "test_fixed", build(targets=("all", "tests")) / "tests" /
                "test_fixed"):
        res = subprocess.run([str(exe), str(cfg), str(qpath), str(tmp_path / "x.f32")],
                             capture_output=True, text=True, timeout=300, env=SAN_ENV)
        assert res.returncode == 0 and res.stdout.endswith("ok\n"), res.stderr
        assert_clean(res.stderr)
        outs.append(res.stdout.splitlines()[1:])
    assert outs[0] == outs[1] and len(outs[0]) >= 10


def tools_for(arch):
    prefix, qemu = CROSS[arch]
    missing = [t for t in (prefix + "gcc", qemu) if not shutil.which(t)]
    if missing:
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"cross tools missing: {missing}")
        pytest.skip(f"cross tools missing: {missing}")
    return prefix, qemu


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_build_runs_yolov3_tiny_under_qemu(arch, golden, tiny_model):
    prefix, qemu = tools_for(arch)
    out = build(cross=prefix, targets=("all",))
    exe = out / "mdfi"
    assert exe.exists()
    image = golden / "images" / "dog.ppm"
    a, _ = detect_json([qemu, str(exe)], tiny_model, image, timeout=900)
    b, _ = detect_json([str(build() / "mdfi")], tiny_model, image)
    same_detections(a["detections"], b["detections"], 1e-4)


def test_stripped_program_size():
    exe = build() / "mdfi"
    stripped = exe.with_name("mdfi.stripped")
    subprocess.run(["strip", "-o", str(stripped), str(exe)], check=True)
    size = stripped.stat().st_size
    print(f"stripped mdfi: {size} bytes")
    assert size <= 280 * 1024
