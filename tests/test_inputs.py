"""Python inputs (mdfi.inputs): numpy arrays (RGB, BGR, grey, CHW float), PIL
images and mdfi.Image give what the file path gives; bad arrays raise
ImageError; Detector.from_model prepares a model once per process."""
import json
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import mdfi
from mdfi import inputs, pipeline
from mdfi.image import decode_pixels

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "models" / "digits_float"


@pytest.fixture(scope="module")
def detector(tiny_model):
    """Built from the files, not from_model: the reference the inputs are compared with."""
    with pipeline.Detector(tiny_model["cfg"], tiny_model["weights"], tiny_model["names"]) as d:
        yield d


@pytest.fixture(scope="module")
def dog(golden):
    """(path, the C decoder's pixels of it): the same pixels the path gives."""
    path = golden / "images" / "dog.jpg"
    return path, decode_pixels(path.read_bytes(), str(path))


def _dicts(dets):
    return [d.to_dict() for d in dets]


def test_arrays_and_pil_images_give_the_paths_detections(detector, dog):
    from PIL import Image as PILImage
    path, rgb = dog
    want = _dicts(detector.run(path)[1])
    assert "dog" in {d["label"] for d in want}
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    rgba = PILImage.fromarray(rgb).convert("RGBA")
    cases = {
        "numpy rgb": (rgb, "rgb"),
        "numpy bgr": (bgr, "bgr"),
        "numpy rgb, a strided view": (np.dstack([rgb, rgb])[:, :, :3], "rgb"),
        "PIL RGB": (PILImage.fromarray(rgb), "rgb"),
        "PIL RGBA": (rgba, "rgb"),
        "float CHW": (mdfi.load_image(path).data, "rgb"),
        "mdfi.Image": (mdfi.load_image(path), "rgb"),
        "os.PathLike": (pathlib.Path(path), "rgb"),
    }
    for what, (image, channels) in cases.items():
        got = _dicts(detector.run(image, channels=channels)[1])
        assert got == want, what


def test_pil_opened_file_matches_the_path(detector, golden):
    from PIL import Image as PILImage
    path = golden / "images" / "dog.ppm"
    with PILImage.open(path) as im:
        got = _dicts(detector.run(im)[1])
    assert got and got == _dicts(detector.run(str(path))[1])


def test_channels_decides_the_order(dog):
    _, rgb = dog
    bgr = rgb[:, :, ::-1]
    as_rgb = inputs.to_image(bgr).data
    assert np.array_equal(inputs.to_image(bgr, channels="bgr").data, inputs.to_image(rgb).data)
    assert not np.array_equal(as_rgb, inputs.to_image(rgb).data)
    with pytest.raises(mdfi.ArgumentError, match="channels='hsv'"):
        inputs.to_image(rgb, channels="hsv")


def test_grey_arrays_repeat_the_channel():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    want = np.repeat((grey / np.float32(255.0)).astype(np.float32)[None], 3, axis=0)
    for arr in (grey, grey[:, :, None]):
        assert np.array_equal(inputs.to_image(arr).data, want)


@pytest.mark.parametrize("arr, match", [
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((4, 5, 4), np.uint8), "not 4"),
    (np.zeros((4, 5, 2), np.uint8), "not 2"),
    (np.zeros(20, np.uint8), "1-dimensional"),
    (np.zeros((2, 4, 5, 3), np.uint8), "4-dimensional"),
    (np.zeros((4, 5, 3), np.int16), "int16"),
    (np.zeros((4, 5, 3), np.float32), r"3 x H x W.*\(4, 5, 3\)"),
    (np.zeros((4, 5), np.float64), r"\(4, 5\)"),
])
def test_bad_arrays_raise_image_error(detector, arr, match):
    with pytest.raises(mdfi.ImageError, match=match):
        detector.run(arr)


def test_other_objects_raise_image_error(detector):
    with pytest.raises(mdfi.ImageError, match="builtins.list"):
        detector.run([[1, 2], [3, 4]])


def test_pillow_is_not_imported_for_arrays_and_c_decoded_files(golden):
    code = ("import sys, numpy as np\nfrom mdfi import inputs\n"
            "inputs.to_image(np.zeros((4, 5, 3), np.uint8))\n"
            f"inputs.to_image({str(golden / 'images' / 'dog.jpg')!r})\n"
            "print('PIL' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_classify_takes_arrays_pil_and_paths(tmp_path):
    from PIL import Image as PILImage
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    pgm = tmp_path / "digit.pgm"
    pgm.write_bytes(b"P5 8 8 255\n" + grey.tobytes())
    cfg, weights = f"{DIGITS}.cfg", f"{DIGITS}.weights"
    want = mdfi.classify(pgm, cfg, weights, top=3)
    assert len(want) == 3
    for image in (grey, np.dstack([grey] * 3), PILImage.fromarray(grey)):
        assert mdfi.classify(image, cfg, weights, top=3) == want


def test_detections_convert_to_json(detector, dog):
    dets = detector.run(dog[1])[1]
    assert dets
    back = json.loads(json.dumps([d.to_dict() for d in dets]))
    assert back == [d.to_dict() for d in dets]
    for d, rec in zip(dets, back):
        assert {k: rec[k] for k in d.to_json()} == d.to_json()   # to_json: a subset
        assert (rec["det_index"], rec["objectness"]) == (d.det_index, d.objectness)
        assert tuple(rec["bbox"]) == d.bbox and all(isinstance(v, int) for v in rec["bbox"])


# ---- Detector.from_model --------------------------------------------------------------

@pytest.fixture
def counted(monkeypatch, tiny_model):
    """An empty from_model cache and the list of networks pipeline builds meanwhile."""
    monkeypatch.setattr(pipeline.Detector, "_cache", {})
    built = []
    real = pipeline.Network

    def network(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(pipeline, "Network", network)
    yield built
    for det in pipeline.Detector._cache.values():
        det.close()


def test_from_model_prepares_the_network_once(counted, detector, dog):
    a = mdfi.Detector.from_model("yolov3-tiny")
    assert mdfi.Detector.from_model("yolov3-tiny") is a
    assert len(counted) == 1
    want = _dicts(detector.run(dog[0])[1])
    for _ in range(3):
        assert _dicts(mdfi.detect(dog[1])) == want
    assert len(counted) == 1
    b = mdfi.Detector.from_model("yolov3-tiny", threads=2)
    assert b is not a and len(counted) == 2
    a.close()
    c = mdfi.Detector.from_model("yolov3-tiny")
    assert c is not a and not c.closed and len(counted) == 3


def test_from_model_is_one_object_across_threads(counted):
    got, start = [], threading.Barrier(4)

    def take():
        start.wait()
        got.append(mdfi.Detector.from_model("yolov3-tiny"))
    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(d is got[0] for d in got) and len(counted) == 1


def test_a_shared_detector_gives_each_thread_its_images_detections(detector, golden):
    """run() is one turn: another thread's forward cannot come between this
    thread's forward and its boxes (without the turn this fails most runs)."""
    images = [mdfi.load_image(golden / "images" / f"{n}.ppm")
              for n in ("dog", "eagle", "horses", "person")]
    want = [_dicts(detector.run(im)[1]) for im in images]
    got = [[] for _ in images]

    def run(i):
        for _ in range(3):
            got[i].append(_dicts(detector.run(images[i])[1]))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [[w] * 3 for w in want]


def test_int8_is_looked_up_never_made(tmp_path):
    weights = tmp_path / "yolov3-tiny.weights"
    with pytest.raises(mdfi.ArgumentError, match="python -m mdfi.detect --int8"):
        pipeline.int8_model("yolov3-tiny", weights)
    tag = mdfi.models.INT8_CACHE_TAG
    for suffix in (".cfg", ".qweights"):
        (tmp_path / ("yolov3-tiny." + tag + suffix)).write_text("")
    assert pipeline.int8_model("yolov3-tiny", weights) == (
        str(tmp_path / ("yolov3-tiny." + tag + ".cfg")),
        str(tmp_path / ("yolov3-tiny." + tag + ".qweights")))
