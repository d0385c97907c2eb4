"""PNM reading, Darknet letterbox and YOLO decoding + do_nms_sort against the
golden Darknet data, through the C driver tests/c/test_image.c.

MDFI_SANITIZE=1 runs the driver from the ASan/UBSan build instead.
MDFI_REQUIRE_CROSS=1 turns the aarch64 (qemu) checks from skip into failure."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import ROOT, build  # noqa: E402

GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))
PHOTOS = ["dog", "horses", "person", "eagle"]
NOISE = sorted(p.name[len("noise_"):-len(".ppm")] for p in (GOLDEN / "letterbox").glob("noise_*.ppm")) \
    if GOLDEN.is_dir() else []
needs_golden = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"no golden data at {GOLDEN}")


@pytest.fixture(scope="module")
def driver():
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    # Only the driver: the CLI may not link while other parts are in progress.
    return build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_image"


def run(exe, *args, prefix=()):
    return subprocess.run([*prefix, str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def ok(res):
    assert res.returncode == 0, res.stderr
    return res


def write_ppm(path, pixels, header=None):
    """pixels: uint8 HxW (P5) or HxWx3 (P6)."""
    h, w = pixels.shape[:2]
    magic = "P6" if pixels.ndim == 3 else "P5"
    head = header if header is not None else f"{magic}\n{w} {h}\n255\n"
    path.write_bytes(head.encode() + pixels.astype(np.uint8).tobytes())
    return path


def f32(path):
    return np.fromfile(path, dtype="<f4")


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).ravel()
    b = np.ascontiguousarray(b, dtype=np.float32).ravel()
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# ---- reading ------------------------------------------------------------------

def darknet_pixels(rgb):
    """HxWx3 uint8 -> CHW float32 as (float)(byte/255.0)."""
    return (rgb.astype(np.float64) / 255.0).astype(np.float32).transpose(2, 0, 1)


def test_read_p6_values(driver, tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    rgb[0, 0] = (0, 128, 255)
    src = write_ppm(tmp_path / "a.ppm", rgb)
    res = ok(run(driver, "read", src, tmp_path / "a.f32"))
    assert res.stdout.split() == ["11", "7", "3"]
    assert same_bits(f32(tmp_path / "a.f32"), darknet_pixels(rgb))


def test_read_p5_grey_replicated_and_header_variants(driver, tmp_path):
    grey = np.arange(5 * 4, dtype=np.uint8).reshape(5, 4) * 12
    # comments, tabs/CRs between fields, a comment glued to the maxval, trailing bytes
    header = "P5 # grey\n#full line\n 4\t\r5 # size\n255#c\n"
    src = tmp_path / "g.pgm"
    src.write_bytes(header.encode() + grey.tobytes() + b"extra")
    ok(run(driver, "read", src, tmp_path / "g.f32"))
    assert same_bits(f32(tmp_path / "g.f32"), darknet_pixels(np.repeat(grey[:, :, None], 3, 2)))


@needs_golden
def test_read_golden_ppm(driver, tmp_path):
    src = GOLDEN / "images" / "person.ppm"
    ok(run(driver, "read", src, tmp_path / "p.f32"))
    raw = src.read_bytes()
    rgb = np.frombuffer(raw[-640 * 424 * 3:], dtype=np.uint8).reshape(424, 640, 3)
    assert same_bits(f32(tmp_path / "p.f32"), darknet_pixels(rgb))


BAD = {
    "missing": (None, "No such file"),
    "empty": (b"", "empty file"),
    "ascii_p3": (b"P3\n2 2\n255\n0 0 0 0 0 0 0 0 0 0 0 0\n", "P3 is not supported"),
    "maxval16": (b"P6\n2 2\n65535\n" + bytes(24), "maxval 65535"),
    "maxval0": (b"P6\n2 2\n0\n" + bytes(12), "maxval 0"),
    "truncated": (b"P6\n4 4\n255\n" + bytes(47), "truncated pixel data"),
    "huge": (b"P6\n100000 100000\n255\n" + bytes(16), "too large"),
    # fuzz_pnm: the header's size is checked against the file before it is allocated
    "short_for_header": (b"P6\n16384 16384\n255\n" + bytes(3),
                         "needs 805306368 bytes, the file has 3"),
    "overflow": (b"P6\n99999999999999999999 2\n255\n", "too large"),
    "zero": (b"P6\n0 5\n255\n", "empty"),
    "garbage": (b"\x89PNG\r\n\x1a\nnot really", "not a PNM file (P5/P6)"),
    "text": (b"hello world\n", "not a PNM file (P5/P6)"),
    "no_space": (b"P6x2 2 255\n", "not a PNM file (P5/P6)"),
    "junk_field": (b"P6\n2x 2\n255\n" + bytes(12), "junk byte"),
    "header_eof": (b"P6\n2 2", "ends"),
    "comment_eof": (b"P6\n2 2\n255# comment, then no newline", "ends"),
    "no_maxval": (b"P5\n2 2\n\xff\xff\xff\xff", "expected the maxval"),
}


def check_bad_inputs(exe, tmp_path, prefix=()):
    for name, (data, reason) in BAD.items():
        path = tmp_path / f"bad_{name}.ppm"
        if data is not None:
            path.write_bytes(data)
        for cmd in (["read", path, tmp_path / "o.f32"], ["letterbox", path, 416, 416, tmp_path / "o.f32"]):
            res = run(exe, *cmd, prefix=prefix)
            assert res.returncode == 1, (name, res.returncode, res.stderr)  # 1, not a signal
            assert str(path) in res.stderr and reason in res.stderr, (name, res.stderr)
            assert "Sanitizer" not in res.stderr, (name, res.stderr)
    res = run(exe, "read", tmp_path, tmp_path / "o.f32", prefix=prefix)   # a directory
    assert res.returncode == 1 and str(tmp_path) in res.stderr, res.stderr


def test_bad_pnm(driver, tmp_path):
    check_bad_inputs(driver, tmp_path)


def test_sanitized_bad_pnm_letterbox_detect(tmp_path):
    """Always: the error paths, the quirky letterbox and the NMS under ASan/UBSan."""
    san = build(sanitize=True, targets=("tests",)) / "tests" / "test_image"
    check_bad_inputs(san, tmp_path)
    if GOLDEN.is_dir():
        for size in NOISE:
            d = GOLDEN / "letterbox"
            ok(run(san, "letterbox", d / f"noise_{size}.ppm", 416, 416, tmp_path / "o.f32"))
            assert same_bits(f32(tmp_path / "o.f32"), np.load(d / f"noise_{size}.input.npy"))
        check_detections(san, tmp_path, "dog", "detections_thresh025", 0.25)


def test_bad_pnm_missing_says_io(driver, tmp_path):
    res = run(driver, "read", tmp_path / "nope.ppm", tmp_path / "o.f32")
    assert "io:" in res.stderr and "cannot open" in res.stderr


# ---- letterbox ----------------------------------------------------------------

@needs_golden
@pytest.mark.parametrize("name", PHOTOS)
def test_letterbox_photo_exact(driver, tmp_path, name):
    ok(run(driver, "letterbox", GOLDEN / "images" / f"{name}.ppm", 416, 416, tmp_path / "o.f32"))
    assert same_bits(f32(tmp_path / "o.f32"), np.load(GOLDEN / "yolov3-tiny" / f"{name}.input.npy"))


@needs_golden
@pytest.mark.parametrize("size", NOISE)
def test_letterbox_noise_exact(driver, tmp_path, size):
    d = GOLDEN / "letterbox"
    ok(run(driver, "letterbox", d / f"noise_{size}.ppm", 416, 416, tmp_path / "o.f32"))
    assert same_bits(f32(tmp_path / "o.f32"), np.load(d / f"noise_{size}.input.npy"))


def letterbox_ref(img, net_w, net_h):
    """float32 numpy emulation of Darknet's letterbox_image (CHW in and out)."""
    one = np.float32(1)
    _, im_h, im_w = img.shape
    if np.float32(net_w) / np.float32(im_w) < np.float32(net_h) / np.float32(im_h):
        new_w, new_h = net_w, im_h * net_w // im_w
    else:
        new_w, new_h = im_w * net_h // im_h, net_h
    out = np.full((3, net_h, net_w), 0.5, dtype=np.float32)
    if new_w <= 0 or new_h <= 0:
        return out
    part = np.empty((3, im_h, new_w), dtype=np.float32)
    ws = np.float32(im_w - 1) / np.float32(new_w - 1) if new_w > 1 else np.float32(0)
    for c in range(new_w):
        if c == new_w - 1 or im_w == 1:
            part[:, :, c] = img[:, :, im_w - 1]
            continue
        sx = np.float32(c) * ws
        ix = int(sx)
        dx = sx - np.float32(ix)
        part[:, :, c] = (one - dx) * img[:, :, ix] + dx * img[:, :, ix + 1]
    hs = np.float32(im_h - 1) / np.float32(new_h - 1) if new_h > 1 else np.float32(0)
    res = np.empty((3, new_h, new_w), dtype=np.float32)
    for r in range(new_h):
        sy = np.float32(r) * hs
        iy = int(sy)
        dy = sy - np.float32(iy)
        res[:, r] = (one - dy) * part[:, iy]
        if r != new_h - 1 and im_h != 1:
            res[:, r] = res[:, r] + dy * part[:, iy + 1]
    ox, oy = (net_w - new_w) // 2, (net_h - new_h) // 2
    out[:, oy:oy + new_h, ox:ox + new_w] = res
    return out


@pytest.mark.parametrize("im_w,im_h,net_w,net_h", [
    (13, 9, 64, 32), (9, 13, 64, 32), (3, 200, 32, 64), (1, 1, 16, 16), (5, 1, 8, 8),
    (1000, 2, 416, 416),     # resized height 0: all padding
    (300, 1, 416, 416),      # resized height 1 (Darknet divides by zero there)
    (640, 480, 608, 320), (121, 121, 416, 416), (2, 2, 1, 1),
])
def test_letterbox_sizes_vs_emulation(driver, tmp_path, im_w, im_h, net_w, net_h):
    rgb = np.random.default_rng(im_w * 7 + im_h).integers(0, 256, (im_h, im_w, 3), dtype=np.uint8)
    src = write_ppm(tmp_path / "n.ppm", rgb)
    ok(run(driver, "letterbox", src, net_w, net_h, tmp_path / "o.f32"))
    want = letterbox_ref(darknet_pixels(rgb), net_w, net_h)
    assert same_bits(f32(tmp_path / "o.f32"), want)


def test_letterbox_bad_net_size(driver, tmp_path):
    src = write_ppm(tmp_path / "n.ppm", np.zeros((2, 2, 3), np.uint8))
    for w, h in [(0, 416), (416, -1), (70000, 70000)]:
        res = run(driver, "letterbox", src, w, h, tmp_path / "o.f32")
        assert res.returncode == 1 and "network size" in res.stderr, res.stderr


# ---- YOLO decoding + do_nms_sort ------------------------------------------------------

def detect(exe, tmp_path, name, thresh, prefix=()):
    d = GOLDEN / "yolov3-tiny"
    y16, y23 = tmp_path / f"{name}.y16.f32", tmp_path / f"{name}.y23.f32"
    np.load(d / f"{name}.yolo16.npy").astype("<f4").tofile(y16)
    np.load(d / f"{name}.yolo23.npy").astype("<f4").tofile(y23)
    meta = json.loads((d / f"{name}.detections.json").read_text())
    res = ok(run(exe, "detect", y16, y23, meta["width"], meta["height"], thresh, 0.45, prefix=prefix))
    lines = [json.loads(s) for s in res.stdout.splitlines()]
    return lines[0]["num_boxes_before_nms"], lines[1:]


def key(e):
    f = np.float32
    return (e["det_index"], e["class_id"], f(e["prob"]), f(e["objectness"]),
            tuple(f(v) for v in e["box"]), tuple(e["bbox"]))


def check_detections(exe, tmp_path, name, suffix, thresh, prefix=()):
    want = json.loads((GOLDEN / "yolov3-tiny" / f"{name}.{suffix}.json").read_text())
    n, got = detect(exe, tmp_path, name, thresh, prefix)
    assert n == want["num_boxes_before_nms"]
    g, w = [key(e) for e in got], [key(e) for e in want["detections"]]
    # Sets first (class, values), ignoring det_index, then Darknet's exact order.
    assert sorted(x[1:] for x in g) == sorted(x[1:] for x in w)
    assert g == w


@needs_golden
@pytest.mark.parametrize("suffix,thresh", [("detections", 0.5), ("detections_thresh025", 0.25)])
@pytest.mark.parametrize("name", PHOTOS)
def test_detections_exact(driver, tmp_path, name, suffix, thresh):
    check_detections(driver, tmp_path, name, suffix, thresh)


# ---- aarch64 under qemu -------------------------------------------------------------

@pytest.fixture(scope="module")
def arm_driver():
    cross = "aarch64-linux-gnu-"
    if not (shutil.which(cross + "gcc") and shutil.which("qemu-aarch64")):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail("MDFI_REQUIRE_CROSS=1 but aarch64-linux-gnu-gcc or qemu-aarch64 is missing")
        pytest.skip("no aarch64 cross compiler or qemu-aarch64")
    return build(cross=cross, targets=("tests",)) / "tests" / "test_image"


QEMU = ("qemu-aarch64",)


@needs_golden
def test_aarch64_letterbox_exact(arm_driver, tmp_path):
    cases = [(GOLDEN / "images" / f"{n}.ppm", GOLDEN / "yolov3-tiny" / f"{n}.input.npy") for n in PHOTOS]
    cases += [(GOLDEN / "letterbox" / f"noise_{s}.ppm", GOLDEN / "letterbox" / f"noise_{s}.input.npy")
              for s in NOISE]
    for src, npy in cases:
        ok(run(arm_driver, "letterbox", src, 416, 416, tmp_path / "o.f32", prefix=QEMU))
        assert same_bits(f32(tmp_path / "o.f32"), np.load(npy)), src.name


@needs_golden
def test_aarch64_detections_exact(arm_driver, tmp_path):
    for name in PHOTOS:
        check_detections(arm_driver, tmp_path, name, "detections_thresh025", 0.25, prefix=QEMU)


def test_aarch64_bad_pnm(arm_driver, tmp_path):
    check_bad_inputs(arm_driver, tmp_path, prefix=QEMU)


def test_short_pnm_allocates_nothing(tmp_path):
    """Fuzzing finding (tests/fuzz/fuzz_pnm.c): a 22-byte P6 whose header says
    16384x16384 made the reader allocate 768 MiB before finding the file short.
    Under ASan with allocations over 64 MiB failing, it is refused as truncated,
    not as out of memory."""
    san = build(sanitize=True, targets=("tests",)) / "tests" / "test_image"
    path = tmp_path / "short.ppm"
    path.write_bytes(b"P6\n16384 16384\n255\n" + bytes(3))
    env = dict(os.environ, ASAN_OPTIONS="max_allocation_size_mb=64:allocator_may_return_null=1")
    res = subprocess.run([str(san), "read", str(path), str(tmp_path / "o.f32")],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1 and "truncated pixel data" in res.stderr, res.stderr
    assert "out of memory" not in res.stderr and "Sanitizer" not in res.stderr, res.stderr
