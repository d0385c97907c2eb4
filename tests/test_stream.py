"""mdfi detect on a stream of frames (csrc/io/stream.c, csrc/cli/cmd_stream.c):
concatenated JPEG (MJPEG) or PNM through stdin, a FIFO or --stream, with the network
loaded once. Every frame's detections must equal a per-file run on the same image;
memory must not grow with the stream's length; a bad frame is reported by index and
the others kept."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from cbuild import build

HERE = pathlib.Path(__file__).resolve().parent
MINI_CFG = HERE / "fuzz" / "corpus" / "net" / "mini-yolo.cfg"
PHOTOS = ["dog", "eagle", "horses", "person"]


@pytest.fixture(scope="module")
def exe():
    return build(targets=("all",)) / "mdfi"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A 32x32 two-head YOLO with seeded random weights: fast enough for 300 frames."""
    from weights_tools.darknet_cfg import layers_of
    d = tmp_path_factory.mktemp("mini")
    cfg = d / "mini.cfg"
    shutil.copy(MINI_CFG, cfg)
    rng = np.random.default_rng(19)
    arrays = [np.array([0, 2, 0], "<i4").tobytes(), np.zeros(1, "<u8").tobytes()]
    for layer in layers_of(cfg.read_text()):
        for name, shape in layer.params:   # Darknet's file order
            a = (rng.uniform(0.5, 1.5, shape) if name == "rolling_variance"
                 else rng.normal(0, 0.4, shape))
            arrays.append(a.astype("<f4").tobytes())
    w = d / "mini.weights"
    w.write_bytes(b"".join(arrays))
    return {"cfg": cfg, "weights": w}


def images(golden, ext):
    return [golden / "images" / f"{p}.{ext}" for p in PHOTOS]


def run(exe, model, image, *args, stdin=None, thresh="0.3"):
    return subprocess.run([str(exe), "detect", str(model["cfg"]), str(model["weights"]), str(image),
                           "--json", "--thresh", thresh, "--names", str(HERE / "data" / "coco.names"),
                           *args], input=stdin, capture_output=True, timeout=300)


def per_file(exe, model, paths, thresh="0.3"):
    out = []
    for p in paths:
        res = run(exe, model, p, thresh=thresh)
        assert res.returncode == 0, res.stderr
        out.append(json.loads(res.stdout))
    return out


def frames(stdout):
    return [json.loads(line) for line in stdout.decode().splitlines()]


def assert_frame_equals(frame, ref):
    assert (frame["width"], frame["height"]) == (ref["width"], ref["height"])
    assert frame["detections"] == ref["detections"]
    assert frame["decode_ms"] >= 0 and frame["forward_ms"] >= 0


@pytest.fixture(scope="module")
def mjpeg(golden, exe, mini):
    """The four golden JPEGs, their per-file results, and a 300-frame MJPEG file."""
    paths = images(golden, "jpg")
    blobs = [p.read_bytes() for p in paths]
    refs = per_file(exe, mini, paths)
    assert any(r["detections"] for r in refs), refs   # the comparison must mean something
    return {"blobs": blobs, "refs": refs, "stream": b"".join(blobs[i % 4] for i in range(300))}


def peak_rss_kb(cmd, stdin_path):
    """Peak RSS of the command alone: /usr/bin/time -v, else getrusage in a fresh process."""
    if shutil.which("time") and os.path.exists("/usr/bin/time"):
        with open(stdin_path, "rb") as f:
            res = subprocess.run(["/usr/bin/time", "-v", *cmd], stdin=f, capture_output=True,
                                 timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        line = [ln for ln in res.stderr.decode().splitlines() if "Maximum resident" in ln][0]
        return int(line.split(":")[1]), res.stdout
    code = ("import resource, subprocess, sys\n"
            "with open(sys.argv[1], 'rb') as f:\n"
            "    r = subprocess.run(sys.argv[2:], stdin=f, stdout=subprocess.PIPE)\n"
            "assert r.returncode == 0\n"
            "sys.stdout.buffer.write(r.stdout)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code, str(stdin_path), *cmd],
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return int(res.stderr.decode().split()[-1]), res.stdout


def test_300_frame_mjpeg_through_stdin_equals_per_file_runs(exe, mini, mjpeg):
    res = run(exe, mini, "-", stdin=mjpeg["stream"])
    assert res.returncode == 0, res.stderr
    out = frames(res.stdout)
    assert [f["frame"] for f in out] == list(range(300))
    for f in out:
        assert_frame_equals(f, mjpeg["refs"][f["frame"] % 4])
    assert b"error" not in res.stderr


def test_memory_is_flat_over_the_stream(exe, mini, mjpeg, tmp_path):
    rss = {}
    for n in (30, 300):
        path = tmp_path / f"s{n}.mjpeg"
        path.write_bytes(b"".join(mjpeg["blobs"][i % 4] for i in range(n)))
        cmd = [str(exe), "detect", str(mini["cfg"]), str(mini["weights"]), "-", "--json"]
        rss[n], stdout = peak_rss_kb(cmd, path)
        assert len(stdout.splitlines()) == n
    print(f"peak RSS: 30 frames {rss[30]} KB, 300 frames {rss[300]} KB")
    assert rss[300] <= rss[30] + 2048, rss


def test_bad_frames_are_reported_by_index_and_the_others_kept(exe, mini, mjpeg):
    b = mjpeg["blobs"]
    sof = b[2].index(b"\xff\xc0")
    bad_sof = b[2][:sof + 4] + b"\x0c" + b[2][sof + 5:]   # 12-bit samples: refused by the decoder
    stream = b[0] + b[1][:len(b[1]) // 2] + b[2] + bad_sof + b[3] + b[0]
    res = run(exe, mini, "-", stdin=stream)
    assert res.returncode == 1, res.stderr
    err = res.stderr.decode()
    assert "frame 1: JPEG: truncated" in err and "frame 3" in err and "12-bit" in err, err
    out = frames(res.stdout)
    assert [f["frame"] for f in out] == [0, 2, 4, 5]
    for f, ref in zip(out, [0, 2, 3, 0]):
        assert_frame_equals(f, mjpeg["refs"][ref])


def test_truncated_last_frame_and_eof_in_a_header(exe, mini, mjpeg, golden):
    b = mjpeg["blobs"]
    res = run(exe, mini, "-", stdin=b[0] + b[1][:1000])
    assert res.returncode == 1 and len(frames(res.stdout)) == 1
    assert "<stdin>: frame 1: truncated: the stream ends in the JPEG data" in res.stderr.decode()
    ppm = (golden / "images" / "dog.ppm").read_bytes()
    res = run(exe, mini, "-", stdin=ppm + b"P6\n768 5")
    assert res.returncode == 1 and len(frames(res.stdout)) == 1
    err = res.stderr.decode()
    assert "frame 1: truncated: the stream ends in the PNM header" in err, err


def test_pnm_stream_equals_per_file_runs(exe, mini, golden):
    paths = images(golden, "ppm")
    refs = per_file(exe, mini, paths)
    stream = b"".join(p.read_bytes() for p in paths + paths[:2])
    res = run(exe, mini, "-", stdin=stream)
    assert res.returncode == 0, res.stderr
    out = frames(res.stdout)
    assert [f["frame"] for f in out] == list(range(6))
    for f in out:
        assert_frame_equals(f, refs[f["frame"] % 4])


def test_every_and_max_frames(exe, mini, mjpeg):
    stream = b"".join(mjpeg["blobs"][i % 4] for i in range(10))
    for args, want in ((["--every", "3"], [0, 3, 6, 9]), (["--max-frames", "2"], [0, 1]),
                       (["--every", "2", "--max-frames", "3"], [0, 2, 4])):
        res = run(exe, mini, "-", *args, stdin=stream)
        assert res.returncode == 0, res.stderr
        out = frames(res.stdout)
        assert [f["frame"] for f in out] == want, args
        for f in out:
            assert_frame_equals(f, mjpeg["refs"][f["frame"] % 4])


def test_fifo_and_stream_file(exe, mini, mjpeg, tmp_path):
    stream = b"".join(mjpeg["blobs"][i % 4] for i in range(8))
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            for i in range(8):   # frame by frame, as a camera writes them
                f.write(mjpeg["blobs"][i % 4])
                f.flush()
    t = threading.Thread(target=feed)
    t.start()
    res = run(exe, mini, fifo)
    t.join()
    assert res.returncode == 0, res.stderr
    assert [f["frame"] for f in frames(res.stdout)] == list(range(8))
    # a recorded MJPEG file is a stream with --stream (a plain file is one image otherwise)
    rec = tmp_path / "rec.mjpeg"
    rec.write_bytes(stream)
    res = run(exe, mini, rec, "--stream")
    assert res.returncode == 0 and len(frames(res.stdout)) == 8, res.stderr


def test_not_a_stream_of_frames(exe, mini):
    res = run(exe, mini, "-", stdin=b"\x00" * 1000)
    assert res.returncode == 0 and res.stdout == b""
    assert "1000 bytes that start no JPEG or PNM frame skipped at the end" in res.stderr.decode()


def test_text_output_is_darknets(exe, mini, mjpeg):
    res = subprocess.run([str(exe), "detect", str(mini["cfg"]), str(mini["weights"]), "-",
                          "--thresh", "0.3", "--names", str(HERE / "data" / "coco.names")],
                         input=mjpeg["blobs"][0] * 2, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    heads = [ln for ln in lines if ln.startswith("<stdin>: frame ")]
    assert len(heads) == 2 and "Predicted in" in heads[0]
    n = len(mjpeg["refs"][0]["detections"])
    assert len(lines) == 2 + 2 * n and all(ln.endswith("%") for ln in lines[1:1 + n])


def test_yolov3_tiny_stream_equals_per_file_runs(exe, tiny_model, golden):
    paths = [golden / "images" / f"{p}.jpg" for p in ("dog", "person", "dog")]
    refs = per_file(exe, tiny_model, paths[:2], thresh="0.5")
    res = run(exe, tiny_model, "-", stdin=b"".join(p.read_bytes() for p in paths), thresh="0.5")
    assert res.returncode == 0, res.stderr
    out = frames(res.stdout)
    assert len(out) == 3
    for f, ref in zip(out, [refs[0], refs[1], refs[0]]):
        assert_frame_equals(f, ref)
    assert any(d["label"] == "dog" for d in out[0]["detections"])


def test_exif_thumbnails_are_stepped_over(exe, mini, mjpeg):
    """An APP1 segment holding its own FFD8...FFD9 (an EXIF thumbnail) is skipped by its
    length; after a corrupt marker behind it, the reader goes on from there, so the
    thumbnail never becomes a frame of its own."""
    thumb = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xdb\x00\x03x\xff\xd9"
    app1 = b"Exif\x00\x00" + thumb
    eagle = mjpeg["blobs"][1]
    with_thumb = eagle[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + eagle[2:]
    res = run(exe, mini, "-", stdin=with_thumb + mjpeg["blobs"][0])
    assert res.returncode == 0, res.stderr
    out = frames(res.stdout)
    assert [f["frame"] for f in out] == [0, 1]
    assert_frame_equals(out[0], mjpeg["refs"][1])
    at = 4 + len(app1) + 2   # the marker after the APP1 segment
    broken = with_thumb[:at] + b"\x00" + with_thumb[at + 1:]
    res = run(exe, mini, "-", stdin=broken + mjpeg["blobs"][0])
    assert res.returncode == 1 and f"frame 0: JPEG: expected a marker at byte {at}" in \
        res.stderr.decode(), res.stderr
    out = frames(res.stdout)
    assert [f["frame"] for f in out] == [1]
    assert_frame_equals(out[0], mjpeg["refs"][0])


def _ppm(path, pixels):
    h, w = pixels.shape[:2]
    grey = pixels.ndim == 2
    path.write_bytes(b"P%d\n%d %d\n255\n" % (5 if grey else 6, w, h) + pixels.tobytes())
    return path


MINI_FIXED = """[net]
width=32
height=32
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=18
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14,23,27,37,58
classes=1
num=3
"""


def test_fixed_point_stream_takes_frames_as_bytes(exe, tmp_path):
    """A quantized network takes network-size frames as their bytes (no float image,
    cmd_stream.c), other sizes through the letterbox: the same detections as per-file
    runs, which letterbox every image into floats."""
    from fixed_models import quantized, random_darknet
    cfg, weights, rng = random_darknet(tmp_path, MINI_FIXED, "mini")
    np.save(tmp_path / "calib.npy", rng.random((2, 3, 32, 32), dtype=np.float32))
    qcfg, qw, _ = quantized(cfg, weights, "mini8", calib=(str(tmp_path / "calib.npy"),))
    model = {"cfg": qcfg, "weights": qw}
    shapes = [(32, 32, 3), (32, 32), (40, 48, 3), (32, 32, 3), (31, 32, 3)]
    paths = [_ppm(tmp_path / ("f%d.ppm" % i), rng.integers(0, 256, s, dtype=np.uint8))
             for i, s in enumerate(shapes)]
    (tmp_path / "all.ppm").write_bytes(b"".join(p.read_bytes() for p in paths))
    refs = per_file(exe, model, paths, thresh="0.05")
    res = run(exe, model, tmp_path / "all.ppm", "--stream", thresh="0.05")
    assert res.returncode == 0, res.stderr
    got = frames(res.stdout)
    assert len(got) == len(paths)
    for frame, ref in zip(got, refs):
        assert_frame_equals(frame, ref)
    assert sum(len(r["detections"]) for r in refs[:2] + refs[3:4]) > 0
