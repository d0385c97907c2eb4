"""MDFI's JPEG decoder (csrc/io/jpeg*.c) against Darknet's pixels.

- The golden photos decode to exactly the bytes of the golden .ppm files, which are
  stb_image 2.19's output (what Darknet sees), and give the golden detections.
- JPEGs this file makes with Pillow and OpenCV (libjpeg encoders) over every
  subsampling mode, grey, RGB, progressive, restart intervals and EXIF decode to
  exactly the bytes of stb_image 2.26 (the `stbpy` package, whose JPEG numerics are
  those of 2.19) when that package is installed.  Always, they are compared with
  Pillow's libjpeg decoder at the agreement documented in docs/jpeg.md: at most 3
  levels apart (except the last two columns of 4:2:2, where stb_image's edge rule
  differs) and at least 75 % of the samples identical.
- Bad files fail with exit status 1 and a message naming the problem, also under
  ASan/UBSan, and a mutation fuzz run of the decoder stays clean.

`python tests/test_jpeg.py --write-seeds` regenerates tests/c/test_jpeg_seeds.h."""
import io
import json
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import ROOT, _triple, build  # noqa: E402

GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))
PHOTOS = ["dog", "eagle", "horses", "person"]
needs_golden = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"no golden data at {GOLDEN}")


def _driver(sanitize=False):
    sub = _triple() + ("-san" if sanitize else "")
    # Only this driver: other parts of the tree may be mid-change.
    out = build(sanitize=sanitize, targets=(f"build/{sub}/tests/test_jpeg",))
    return out / "tests" / "test_jpeg"


@pytest.fixture(scope="module")
def driver():
    return _driver()


def run(exe, *args, timeout=300, env=None):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def read_pnm(path):
    raw = pathlib.Path(path).read_bytes()
    magic, w, h, _ = raw.split(maxsplit=3)
    c = 3 if magic == b"P6" else 1
    w, h = int(w), int(h)
    return np.frombuffer(raw[len(raw) - w * h * c:], np.uint8).reshape(h, w, c)


def decode(data):
    """MDFI's 8-bit pixels (HxWxC) through the Python layer."""
    from mdfi.image import decode_pixels
    return decode_pixels(data, "test.jpg")


# ---- the golden photos -------------------------------------------------------------

@needs_golden
@pytest.mark.parametrize("name", PHOTOS)
def test_golden_jpeg_bytes_equal_stb_image(driver, tmp_path, name):
    res = run(driver, "decode", GOLDEN / "images" / f"{name}.jpg", tmp_path / "o.ppm")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[3] == "mdfi-jpeg"
    got, want = read_pnm(tmp_path / "o.ppm"), read_pnm(GOLDEN / "images" / f"{name}.ppm")
    assert got.shape == want.shape and np.array_equal(got, want)


@needs_golden
def test_python_loads_golden_jpeg_as_darknet(golden):
    import mdfi
    for name in PHOTOS:
        jpg = mdfi.load_image(golden / "images" / f"{name}.jpg")
        ppm = mdfi.load_image(golden / "images" / f"{name}.ppm")
        assert jpg.decoder == "mdfi-jpeg" and ppm.decoder == "mdfi-pnm"
        assert np.array_equal(jpg.data, ppm.data)
        raw = (golden / "images" / f"{name}.jpg").read_bytes()
        assert np.array_equal(decode(raw), read_pnm(golden / "images" / f"{name}.ppm"))


def _same_detections(got, want):
    from test_golden_tiny import assert_same_detections
    assert_same_detections(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("name", PHOTOS)
def test_mdfi_program_detects_on_golden_jpeg(golden, tiny_model, name):
    exe = build(targets=("all",)) / "mdfi"
    res = run(exe, "detect", tiny_model["cfg"], tiny_model["weights"],
              golden / "images" / f"{name}.jpg", "--json", "--names", tiny_model["names"])
    assert res.returncode == 0, res.stderr
    want = json.loads((golden / "yolov3-tiny" / f"{name}.detections.json").read_text())
    _same_detections(json.loads(res.stdout)["detections"], want["detections"])


@pytest.mark.slow
def test_python_detect_on_golden_jpegs(golden, tiny_model, tmp_path):
    images = [golden / "images" / f"{n}.jpg" for n in PHOTOS]
    res = subprocess.run([sys.executable, "-m", "mdfi.detect", *map(str, images), "--cfg",
                          str(tiny_model["cfg"]), "--weights", str(tiny_model["weights"]),
                          "--names", str(tiny_model["names"]), "--json", "--no-out"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(s) for s in res.stdout.splitlines()]
    assert len(lines) == len(PHOTOS)
    for name, line in zip(PHOTOS, lines):
        assert line["decoder"] == "mdfi-jpeg"
        want = json.loads((golden / "yolov3-tiny" / f"{name}.detections.json").read_text())
        assert (line["width"], line["height"]) == (want["width"], want["height"])
        _same_detections(line["detections"], want["detections"])


# ---- JPEGs made here ------------------------------------------------------------------

SIZES = [(1, 1), (17, 9), (101, 77), (250, 131)]


def sources():
    """(label, HxWx3 uint8) pairs: photo crops and noise at every size."""
    from sklearn.datasets import load_sample_images
    photo = load_sample_images().images[0]   # china.jpg, 427x640
    rng = np.random.default_rng(7)
    out = []
    for w, h in SIZES:
        y0, x0 = (photo.shape[0] - h) // 3, (photo.shape[1] - w) // 2
        out.append((f"photo {w}x{h}", np.ascontiguousarray(photo[y0:y0 + h, x0:x0 + w])))
        out.append((f"noise {w}x{h}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def pillow(rgb, mode="RGB", **kw):
    """Pillow's encoder; None where it cannot write the combination."""
    from PIL import Image
    buf = io.BytesIO()
    try:
        Image.fromarray(rgb).convert(mode).save(buf, "JPEG", **kw)
    except OSError:   # libjpeg "suspension" on some tiny progressive noise images
        return None
    return buf.getvalue()


def opencv(rgb, factor, progressive=False):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        pytest.skip("this OpenCV cannot set JPEG sampling factors")
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor,
                            cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return enc.tobytes()


def exif_bytes():
    from PIL import Image
    exif = Image.Exif()
    exif[0x010F] = "MDFI test camera"    # Make
    exif[0x0112] = 6                     # Orientation (not applied, as by Darknet)
    return exif.tobytes()


# mode -> function(rgb) -> JPEG bytes, and whether the columns at the right edge use
# stb_image's 2:1 horizontal filter (4:2:2), whose edge rule differs from libjpeg's.
MODES = {
    "4:4:4": (lambda a: pillow(a, quality=90, subsampling=0), False),
    "4:2:2": (lambda a: pillow(a, quality=90, subsampling=1), True),
    "4:2:0": (lambda a: pillow(a, quality=90, subsampling=2), False),
    "4:2:0 q100": (lambda a: pillow(a, quality=100, subsampling=2), False),
    "4:2:0 q30": (lambda a: pillow(a, quality=30, subsampling=2), False),
    "4:4:4 progressive": (lambda a: pillow(a, quality=90, subsampling=0, progressive=True), False),
    "4:2:2 progressive": (lambda a: pillow(a, quality=90, subsampling=1, progressive=True), True),
    "4:2:0 progressive": (lambda a: pillow(a, quality=90, subsampling=2, progressive=True), False),
    "4:4:0": (lambda a: opencv(a, 0x121111), False),
    "4:4:0 progressive": (lambda a: opencv(a, 0x121111, True), False),
    "4:1:1": (lambda a: opencv(a, 0x411111), False),
    "4:2:0 opencv progressive": (lambda a: opencv(a, 0x221111, True), False),
    "grey": (lambda a: pillow(a, "L", quality=90), False),
    "grey progressive": (lambda a: pillow(a, "L", quality=90, progressive=True), False),
    "restart every 3 MCUs": (lambda a: pillow(a, quality=90, restart_marker_blocks=3), False),
    "restart every row, progressive": (lambda a: pillow(a, quality=90, restart_marker_rows=1,
                                                        progressive=True), False),
    "restart every MCU, 4:2:2": (lambda a: pillow(a, quality=90, subsampling=1,
                                                  restart_marker_blocks=1), True),
    "EXIF": (lambda a: pillow(a, quality=90, exif=exif_bytes()), False),
    "RGB (Adobe, no transform)": (lambda a: pillow(a, quality=90, keep_rgb=True, subsampling=0),
                                  False),
}


def stb_oracle():
    try:
        import stb.image
    except ImportError:
        return None
    return stb.image


def stb_decode(stb, data):
    arr = np.asarray(stb.load_from_memory(np.frombuffer(data, np.uint8)))
    return arr   # stbpy labels the shape (w, h, c); the bytes are row-major h, w, c


def pillow_decode(data):
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im)
    return a[:, :, None] if a.ndim == 2 else a


@pytest.mark.parametrize("mode", sorted(MODES))
def test_made_jpegs(mode):
    make, h2_edge = MODES[mode]
    stb = stb_oracle()
    checked = 0
    for label, rgb in sources():
        data = make(rgb)
        if data is None:
            continue
        got = decode(data)
        h, w = rgb.shape[:2]
        c = 1 if mode.startswith("grey") else 3
        assert got.shape == (h, w, c), label
        if stb is not None:   # the oracle: exactly its bytes
            want = stb_decode(stb, data).reshape(h, w, c)
            diff = np.abs(got.astype(int) - want)
            assert np.array_equal(got, want), \
                f"{mode} {label}: {np.count_nonzero(diff)} samples differ from stb_image, " \
                f"max {diff.max()}"
        ref = pillow_decode(data)   # another decoder: close, not equal
        diff = np.abs(got.astype(int) - ref)
        if h2_edge:
            diff = diff[:, :-2]
        assert diff.size == 0 or diff.max() <= 3, f"{mode} {label}: max diff {diff.max()}"
        same = np.mean(got == ref)
        assert same >= 0.75, f"{mode} {label}: only {same:.3f} identical to Pillow's"
        checked += 1
    assert checked >= len(SIZES)


def test_stb_oracle_available_or_reported():
    """Not a check of MDFI: says whether the exact comparison above ran."""
    if stb_oracle() is None:
        pytest.skip("stbpy not installed: made JPEGs were compared with Pillow only "
                    "(tests/c/test_jpeg --quick still checks 8 of them against stb hashes)")


# ---- refusals and corrupt files -----------------------------------------------------------

def base_jpeg(**kw):
    rng = np.random.default_rng(3)
    rgb = (rng.integers(0, 64, (17, 33, 3)) + np.arange(33)[None, :, None] * 5).astype(np.uint8)
    return pillow(rgb, quality=75, **kw)


def segments(data):
    """[(marker, offset of its 0xFF, segment length)] up to and including SOS."""
    out, i = [], 2
    while i + 4 <= len(data):
        assert data[i] == 0xFF
        m, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((m, i, n))
        if m == 0xDA:
            break
        i += 2 + n
    return out


def find(data, marker, nth=0):
    return [s for s in segments(data) if s[0] == marker][nth]


def patch(data, offset, new):
    return data[:offset] + bytes(new) + data[offset + len(new):]


def sof_patch(field_offset, new):
    def f(d):
        return patch(d, find(d, 0xC0)[1] + 4 + field_offset, new)
    return f


def bad_cases():
    d = base_jpeg()
    rst = base_jpeg(restart_marker_blocks=1)
    sof = find(d, 0xC0)[1]
    dht = find(d, 0xC4)[1]
    dqt = find(d, 0xDB)[1]
    sos_m, sos, sos_n = find(d, 0xDA)
    scan = sos + 2 + sos_n
    first_rst = rst.index(b"\xff\xd0")
    cases = {
        "empty": (b"", "empty"),
        "not_jpeg": (b"GIF89a\x01\x00\x01\x00", "not a PNM file (P5/P6) or a JPEG file"),
        "only_soi": (b"\xff\xd8\xff", "truncated"),
        "truncated_header": (d[:sof + 9], "truncated"),
        "truncated_scan": (d[:scan + (len(d) - scan) // 2], "truncated: the file ends in the scan"),
        "no_eoi": (d[:-2], "ends before the EOI marker"),
        "segment_past_end": (patch(d, dqt + 2, b"\xff\xf0"), "truncated: marker FFDB"),
        "bad_dqt": (patch(d, dqt + 4, b"\x20"), "corrupt DQT"),
        "zero_width": (sof_patch(3, b"\x00\x00")(d), "zero width"),
        "zero_height": (sof_patch(1, b"\x00\x00")(d), "DNL"),
        "absurd_size": (sof_patch(1, b"\xff\xff\xff\xff")(d), "too large"),
        "12_bit": (sof_patch(0, b"\x0c")(d), "12-bit samples are not supported"),
        "zero_components": (sof_patch(5, b"\x00")(d), "zero components"),
        "two_components": (sof_patch(5, b"\x02")(d), "2 components are not supported"),
        "bad_sampling": (sof_patch(7, b"\x05")(d), "sampling factors"),
        "sampling_not_dividing": (sof_patch(10, b"\x32")(d), "do not divide"),
        "bad_sof_length": (patch(d, sof + 2, b"\x00\x0c"), "corrupt SOF"),
        "arithmetic": (patch(d, sof + 1, b"\xc9"), "arithmetic-coded JPEG"),
        "lossless": (patch(d, sof + 1, b"\xc3"), "lossless JPEG"),
        "hierarchical": (patch(d, sof + 1, b"\xc5"), "hierarchical JPEG"),
        "dht_overfull": (patch(d, dht + 5, b"\x03\x00\x03"), "more codes of length 1 than fit"),
        "dht_too_many": (patch(d, dht + 5, b"\xff\xff"), "corrupt DHT"),
        "undefined_table": (patch(d, sos + 6, b"\x33"), "not defined"),
        "scan_component": (patch(d, sos + 5, b"\x09"), "not in the frame"),
        "sos_before_sof": (d[:2] + d[sos:], "before the frame header"),
        "second_sof": (d[:sof] + d[sof:sof + 2 + find(d, 0xC0)[2]] + d[sof:],
                       "second frame header"),
        "bad_huffman_data": (d[:scan] + b"\xfe" * 40 + d[scan + 40:], "corrupt scan data"),
        "missing_restart": (rst[:first_rst] + rst[first_rst + 2:], "restart marker"),
        "cmyk": (pillow(np.zeros((8, 8, 3), np.uint8), "CMYK"), "CMYK"),
    }
    assert sos_m == 0xDA and all(v[0] is not None for v in cases.values())
    return cases


def check_bad(exe, tmp_path, env=None):
    for name, (data, needle) in bad_cases().items():
        path = tmp_path / f"bad_{name}.jpg"
        path.write_bytes(data)
        res = run(exe, "decode", path, tmp_path / "o.ppm", env=env)
        assert res.returncode == 1, (name, res.returncode, res.stderr)   # 1, never a signal
        assert str(path) in res.stderr and needle in res.stderr, (name, res.stderr)
        assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, \
            (name, res.stderr)


def test_bad_jpegs_fail_with_a_reason(driver, tmp_path):
    check_bad(driver, tmp_path)


def test_python_errors_and_pillow_fallback(tmp_path):
    import mdfi
    from PIL import Image
    cmyk = tmp_path / "cmyk.jpg"
    cmyk.write_bytes(bad_cases()["cmyk"][0])
    with pytest.raises(mdfi.ImageError, match="cmyk.jpg.*CMYK"):
        mdfi.load_image(cmyk)
    png = tmp_path / "x.png"
    Image.fromarray(np.full((4, 5, 3), 200, np.uint8)).save(png)
    img = mdfi.load_image(png)
    assert img.decoder == "pillow" and img.data.shape == (3, 4, 5)
    jpg = tmp_path / "x.jpg"
    jpg.write_bytes(base_jpeg())
    assert mdfi.load_image(jpg).decoder == "mdfi-jpeg"


SAN_ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


@pytest.mark.slow
def test_sanitized_bad_jpegs_and_fuzz(tmp_path):
    """ASan/UBSan: the refusals, then a bounded mutation fuzz run over small made JPEGs and
    golden dog.jpg (the self-test seeds of test_jpeg --quick are fuzzed in
    test_program_builds)."""
    san = _driver(sanitize=True)
    check_bad(san, tmp_path, env=SAN_ENV)
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (21, 35, 3), dtype=np.uint8)
    seeds = []
    for i, (mode, (make, _)) in enumerate(sorted(MODES.items())):
        try:
            data = make(rgb)
        except pytest.skip.Exception:   # an OpenCV without sampling factors
            data = None
        if data:
            seeds.append(tmp_path / f"seed{i}.jpg")
            seeds[-1].write_bytes(data)
    if GOLDEN.is_dir():   # real camera headers: EXIF, XMP, ICC, Photoshop segments
        seeds.append(GOLDEN / "images" / "dog.jpg")
    seconds = float(os.environ.get("MDFI_FUZZ_SECONDS", "30"))
    res = run(san, "fuzz", "--seconds", seconds, *seeds, timeout=seconds + 120, env=SAN_ENV)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
    print(res.stdout)


def test_driver_self_test(driver):
    res = run(driver, "--quick")
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0 failed" in res.stdout


CROSS = {"aarch64": ("aarch64-linux-gnu-", "qemu-aarch64"),   # NEON IDCT and colour
         "armhf": ("arm-linux-gnueabihf-", "qemu-arm")}          # plain C


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_builds_decode_exactly_under_qemu(arch, tmp_path):
    import shutil
    prefix, qemu = CROSS[arch]
    if not (shutil.which(prefix + "gcc") and shutil.which(qemu)):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {prefix}gcc or {qemu} is missing")
        pytest.skip(f"no {prefix}gcc or {qemu}")
    sub = _triple(prefix)
    exe = build(cross=prefix, targets=(f"build/{sub}/tests/test_jpeg",)) / "tests" / "test_jpeg"
    res = subprocess.run([qemu, str(exe), "--quick"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and " 0 failed" in res.stdout, res.stdout + res.stderr
    if GOLDEN.is_dir():
        for name in PHOTOS:
            res = subprocess.run([qemu, str(exe), "decode", str(GOLDEN / "images" / f"{name}.jpg"),
                                  str(tmp_path / "o.ppm")], capture_output=True, text=True,
                                 timeout=300)
            assert res.returncode == 0, res.stderr
            assert np.array_equal(read_pnm(tmp_path / "o.ppm"),
                                  read_pnm(GOLDEN / "images" / f"{name}.ppm")), name


# ---- the self-test seeds -------------------------------------------------------------------

def write_seeds():
    """tests/c/test_jpeg_seeds.h: small JPEGs and the FNV-1a of stb_image's pixels."""
    import cv2
    from PIL import Image
    from sklearn.datasets import load_sample_images
    stb = stb_oracle()
    if stb is None:
        raise SystemExit("needs the stbpy package (stb_image) for the expected pixels")
    src = np.ascontiguousarray(load_sample_images().images[1][100:141, 200:257])   # 57x41
    im = Image.fromarray(src)

    def pil(img, **kw):
        buf = io.BytesIO()
        img.save(buf, "JPEG", **kw)
        return buf.getvalue()

    def cv(factor, progressive):
        return cv2.imencode(".jpg", src[:, :, ::-1].copy(),
                            [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor,
                             cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()
    seeds = {
        "b420": pil(im, quality=80), "b422": pil(im, quality=80, subsampling=1),
        "p444rst": pil(im, quality=80, progressive=True, subsampling=0, restart_marker_blocks=2),
        "grey": pil(im.convert("L"), quality=80), "cv440": cv(0x121111, False),
        "cv411": cv(0x411111, True), "rgb": pil(im, quality=80, keep_rgb=True),
        "rst": pil(im, quality=80, restart_marker_blocks=1),
    }

    def fnv(b):
        h = 2166136261
        for x in b:
            h = ((h ^ x) * 16777619) & 0xFFFFFFFF
        return h
    lines = ["/* Built-in seeds for test_jpeg --quick: small JPEGs made with Pillow / OpenCV",
             " * (libjpeg) from a crop of scikit-learn's flower.jpg, covering 4:2:0, 4:2:2,",
             " * 4:4:0, 4:1:1, grey, RGB, progressive and restart intervals.  w, h, c and the",
             " * FNV-1a hash of the pixels are those of stb_image 2.26 (the stbpy package),",
             " * whose JPEG numerics are those of the 2.19 Darknet uses.  Regenerate with",
             " * python tests/test_jpeg.py --write-seeds. */",
             "typedef struct {", "    const char *name;", "    const unsigned char *data;",
             "    size_t size;", "    int w, h, c;", "    uint32_t fnv;", "} builtin_jpeg;", ""]
    entries = []
    for name, raw in seeds.items():
        px = stb_decode(stb, raw)
        h, w = src.shape[:2]
        c = px.size // (w * h)
        lines.append(f"static const unsigned char seed_{name}[{len(raw)}] = {{")
        for i in range(0, len(raw), 16):
            lines.append("    " + ", ".join(f"0x{x:02x}" for x in raw[i:i + 16]) + ",")
        lines.append("};")
        entries.append(f'    {{"{name}", seed_{name}, sizeof seed_{name}, {w}, {h}, {c}, '
                       f'0x{fnv(px.tobytes()):08x}u}},')
    lines += ["static const builtin_jpeg builtin[] = {", *entries, "};"]
    (ROOT / "tests" / "c" / "test_jpeg_seeds.h").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-seeds"]:
        write_seeds()
    else:
        raise SystemExit("usage: python tests/test_jpeg.py --write-seeds")
