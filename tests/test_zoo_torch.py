"""The PyTorch bridge on the Darknet cfg zoo: a cfg and its generated weights imported into
PyTorch (weights_tools.torch.import_darknet) compute every layer's output MDFI computes, and
export back to the same sections and weights.

This checks the bridge's modules against MDFI, and MDFI against a second implementation
where OpenCV cannot (relu6, [shortcut] of unequal shapes, [reorg3d], [sam], [crop], conv
dilation and share_index, which OpenCV's importer ignores, and YOLOv1's [local] and
[detection], which it does not know); the
others (OpenCV checks MDFI there, tests/test_zoo.py) check the bridge's [region], [reorg],
[yolo] scale_x_y and new_coords, swish, mish and [cost]."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mdfi  # noqa: E402
from test_zoo import resized, weights_for, zoo  # noqa: E402,F401  (zoo: the fixture)
from mdfi.layer_kinds import canonical  # noqa: E402
from weights_tools import parse_cfg  # noqa: E402
from weights_tools.torch import Region, Shortcut, Yolo, export, import_darknet  # noqa: E402

RTOL = 1e-4     # of each layer's largest magnitude: float32 sums in another order
# the modules that keep every key of their section, as written
KEEP_KEYS = ("yolo", "region", "crop", "cost", "reorg", "reorg3d", "sam", "shortcut",
             "contrastive", "Gaussian_yolo", "detection")
# AlexeyAB's efficientnet cfgs write momentum and decay twice in [net]
pytestmark = pytest.mark.filterwarnings("ignore:.*duplicate key .* in \\[net\\]")


def features(model):
    """What a model exercises: its sections and activations, and the options under test."""
    found = set()
    for i, layer in enumerate(model.layers):
        found.add(layer.section)
        found.add(getattr(layer, "activation", "linear"))
        if isinstance(layer, Shortcut):
            j = layer.references(i)[0]
            if model.shapes[j] != model.shapes[i - 1]:
                found.add("unequal shortcut")
        if isinstance(layer, Yolo) and layer.scale_x_y != 1:
            found.add("scale_x_y")
        if isinstance(layer, Yolo) and layer.new_coords:
            found.add("new_coords")
        if isinstance(layer, Region) and layer.softmax:
            found.add("region softmax")
        if getattr(layer, "dilation", 1) > 1:
            found.add("dilation")
        if getattr(layer, "extra", 0) or getattr(layer, "flatten", False):
            found.add("extra" if layer.extra else "flatten")
        if getattr(layer, "share_index", None) is not None:
            found.add("share_index")
    return found


@pytest.mark.parametrize("name, size, wanted", [
    ("ab/efficientnet-lite3.cfg", 64, {"relu6"}),
    ("pj/resnet18.cfg", 64, {"unequal shortcut"}),
    ("pj/resnet50.cfg", 64, {"unequal shortcut"}),
    ("ab/yolov4-sam-mish-csp-reorg-bfm.cfg", 128, {"reorg3d", "sam", "mish"}),
    ("ab/cifar.cfg", 32, {"crop", "cost"}),
    ("pj/yolov2-tiny.cfg", 128, {"region", "region softmax"}),
    ("pj/yolov2.cfg", 128, {"reorg", "region softmax"}),
    ("ab/yolov4-tiny.cfg", 128, {"scale_x_y"}),
    ("ab/yolov7-tiny.cfg", 128, {"new_coords"}),
    ("ab/efficientnet_b0.cfg", 64, {"swish", "scale_channels"}),
    ("ab/yolov4-csp-s-mish.cfg", 128, {"mish", "new_coords"}),
    ("ab/darknet19.cfg", 64, {"cost"}),
    # dilation 2 and 3 with AlexeyAB's padding x dilation; parameters shared by share_index
    ("ab/resnet152_trident.cfg", 64, {"dilation", "share_index"}),
    ("ab/yolov4-tiny_contrastive.cfg", 128, {"local_avgpool", "contrastive"}),
    ("ab/Gaussian_yolov3_BDD.cfg", 128, {"Gaussian_yolo"}),
    ("pj/yolov1.cfg", 128, {"local", "detection", "leaky"}),
    ("pj/t1.test.cfg", 224, {"detection"}),
    ("pj/go.test.cfg", 19, {"reorg", "extra"}),
])
def test_every_layer_equals_mdfi(zoo, tmp_path, name, size, wanted):  # noqa: F811
    cfg = resized(zoo, tmp_path, name, size)
    weights = weights_for(cfg, tmp_path)
    model = import_darknet(cfg, weights)
    assert wanted <= features(model), sorted(features(model))
    x = np.random.default_rng(0).random(model.input_shape, dtype=np.float32)
    n = len(model)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)[None], outputs=list(range(n)))
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        assert len(net.layers) == n
        net.forward(x)
        for i in range(n):
            want = net.layer_output(i)
            got = ours[i][0].numpy()
            assert got.shape == want.shape, "layer %d [%s]" % (i, model[i].section)
            scale = float(np.abs(want).max())
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale,
                                       err_msg="layer %d [%s]" % (i, model[i].section))
    # exported back: the same sections, the same keys where the module keeps them all, and
    # the same bytes of weights
    cfg_text, data = export(model)
    assert data == weights.read_bytes()
    sections, again = parse_cfg(cfg), parse_cfg(cfg_text)
    assert [canonical(s.type) for s in sections[1:]] == [s.type for s in again[1:]]
    for i, (a, b) in enumerate(zip(sections[1:], again[1:])):
        if b.type in KEEP_KEYS:
            assert a.options == b.options, "layer %d [%s]" % (i, b.type)


@pytest.mark.parametrize("keys", ["flatten=1", "flatten=1\nreverse=1", "flatten=1\nstride=2",
                                  "extra=3\nstride=5"])
def test_reorg_go_forms_equal_mdfi(tmp_path, keys):
    """pjreddie's [reorg] flatten= and extra= (the Go cfgs) in the bridge and in MDFI, and
    exported back with the same keys."""
    cfg = tmp_path / "r.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=6\nchannels=3\n\n[convolutional]\nfilters=5\n"
                   "size=3\npad=1\nactivation=linear\n\n[reorg]\n" + keys + "\n")
    weights = weights_for(cfg, tmp_path)
    model = import_darknet(cfg, weights)
    x = np.random.default_rng(1).random((3, 6, 4), dtype=np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)[None])[0].numpy()
    with mdfi.Network(cfg, weights) as net:
        want = net.forward(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    cfg_text, data = export(model)
    assert data == weights.read_bytes()
    assert parse_cfg(cfg_text)[2].options == {"stride": "1", **parse_cfg(cfg)[2].options}
