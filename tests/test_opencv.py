"""An independent check: OpenCV's DNN module reads the same Darknet cfg/weights; on the
same letterboxed input its layer outputs must agree with MDFI's - on the golden photos
and on photos the golden data never saw (scikit-learn's and scikit-image's samples)."""
import numpy as np
import pytest

import mdfi
from conftest import IMAGES

cv2 = pytest.importorskip("cv2")


STARTS = ("conv_", "pool_", "upsample_", "concat_", "identity_", "permute_", "yolo_")


def block_outputs(names):
    """Darknet layer index -> name of the last OpenCV op of that layer (conv, BN, activation)."""
    out, current = {}, None
    for n in names:
        if n.startswith(STARTS):
            current = None if n.startswith(("permute_", "yolo_", "identity_")) else \
                int(n.rsplit("_", 1)[1])
        if current is not None:
            out[current] = n
    return out


def photos():
    """(name, uint8 HxWx3) of real photos shipped by packages."""
    out = []
    try:
        from sklearn.datasets import load_sample_images
        ds = load_sample_images()
        out += [(f"sklearn-{n.rsplit('/', 1)[-1]}", im) for n, im in zip(ds.filenames, ds.images)]
    except ImportError:
        pass
    try:
        from skimage import data
        for n in ("astronaut", "coffee", "chelsea", "rocket"):
            out.append((f"skimage-{n}", getattr(data, n)()))
    except ImportError:
        pass
    return out


@pytest.fixture(scope="module")
def both(tiny_model):
    cvnet = cv2.dnn.readNetFromDarknet(str(tiny_model["cfg"]), str(tiny_model["weights"]))
    cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net = mdfi.Network(tiny_model["cfg"], tiny_model["weights"], keep_outputs=True)
    yield net, cvnet
    net.close()


def compare(net, cvnet, x):
    blocks = block_outputs(list(cvnet.getLayerNames()))
    net.forward(x)
    pairs = sorted(blocks.items())
    cvnet.setInput(x[None])
    outs = cvnet.forward([n for _, n in pairs])
    assert len(pairs) >= 17
    for (i, n), o in zip(pairs, outs):
        ours = net.layer_output(i)
        theirs = np.asarray(o, dtype=np.float32).reshape(ours.shape)
        scale = max(float(np.abs(theirs).max()), 1.0)
        diff = float(np.abs(ours - theirs).max())
        assert diff <= 1e-4 * scale, f"layer {i} vs OpenCV {n}: max diff {diff} (scale {scale})"


@pytest.mark.parametrize("name", IMAGES)
def test_agrees_with_opencv_on_golden_photos(both, golden, name):
    net, cvnet = both
    compare(net, cvnet, np.load(golden / "yolov3-tiny" / f"{name}.input.npy"))


def test_agrees_with_opencv_on_other_photos(both):
    net, cvnet = both
    ph = photos()
    if not ph:
        pytest.skip("neither scikit-learn nor scikit-image is installed")
    for name, pixels in ph:
        x = mdfi.letterbox(mdfi.image.from_pixels(pixels), 416, 416)
        compare(net, cvnet, x)
