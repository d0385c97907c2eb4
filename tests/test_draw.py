"""The annotated picture: boxes drawn where the detections say, shared boxes drawn once."""
import numpy as np
from PIL import Image

from mdfi.draw import annotate
from mdfi.network import Detection


def test_annotate_draws_boxes(tmp_path):
    src = tmp_path / "grey.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(src)
    dets = [Detection(0, 2, "car", 0.52, 0.9, (0.5, 0.5, 0.5, 0.5), (16, 12, 48, 36)),
            Detection(0, 7, "truck", 0.56, 0.9, (0.5, 0.5, 0.5, 0.5), (16, 12, 48, 36))]
    out = tmp_path / "out.png"
    annotate(src, dets, out)
    pix = np.asarray(Image.open(out))
    assert pix.shape == (48, 64, 3)
    assert (pix[36, 30] != 128).any()          # the bottom edge of the box
    assert (pix[24, 32] == 128).all()          # inside the box: untouched
