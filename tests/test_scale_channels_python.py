"""[scale_channels] (squeeze-and-excitation): cfg shapes, the numpy reference of
Darknet's float forward, and the PyTorch module against it."""
import numpy as np
import pytest

import weights_tools as wt
from weights_tools import float_ref

SE_CFG = """[net]
width=8
height=6
channels=3
[convolutional]
filters=4
size=3
pad=1
activation=leaky
[avgpool]
[convolutional]
filters=4
size=1
activation=logistic
[scale_channels]
from=-3
activation={act}
[convolutional]
filters=1
size=1
activation=logistic
[scale_channels]
from=-2
scale_wh=1
"""


def _layers(text):
    return wt.infer_layers(wt.parse_cfg(text))


def test_cfg_shapes():
    layers = _layers(SE_CFG.format(act="linear"))
    assert [layer.type for layer in layers][3] == "scale_channels"
    assert layers[3].out_shape == (4, 6, 8) and layers[3].params == []
    assert layers[5].out_shape == (4, 6, 8)


@pytest.mark.parametrize("bad, why", [
    ("[maxpool]\nsize=1\nstride=1\n[scale_channels]\nfrom=-2\n", "must be 4x1x1"),  # 4x6x8
    ("[convolutional]\nfilters=3\nsize=1\n[scale_channels]\nfrom=-2\n", "must be 4x1x1"),
    ("[scale_channels]\nfrom=-1\nscale_wh=1\n", "must be 1x6x8"),
    ("[scale_channels]\n", "missing from="),
    ("[scale_channels]\nfrom=5\n", "not an earlier layer"),
])
def test_cfg_refuses_shapes_that_do_not_fit(bad, why):
    text = "[net]\nwidth=8\nheight=6\nchannels=3\n[convolutional]\nfilters=4\nsize=1\n" + bad
    with pytest.raises(wt.CfgError, match=why):
        _layers(text)


def test_reference_is_darknets_loop():
    """Darknet: out[i] = input[i / (h*w)] * from[i] (scale_wh: input[i % (h*w)])."""
    rng = np.random.default_rng(1)
    src = rng.normal(size=(3, 4, 5)).astype(np.float32)
    s = rng.normal(size=(3, 1, 1)).astype(np.float32)
    m = rng.normal(size=(1, 4, 5)).astype(np.float32)
    flat, wh = src.ravel(), 20
    want = np.array([s.ravel()[i // wh] * flat[i] for i in range(flat.size)], np.float32)
    assert np.array_equal(float_ref.scale_channels(s, src).ravel(), want)
    want = np.array([m.ravel()[i % wh] * flat[i] for i in range(flat.size)], np.float32)
    assert np.array_equal(float_ref.scale_channels(m, src, scale_wh=True).ravel(), want)
    prod = float_ref.scale_channels(s, src)
    leaky = np.where(prod > 0, prod, (prod.astype(np.float64) * 0.1).astype(np.float32))
    assert np.array_equal(float_ref.scale_channels(s, src, activation="leaky"), leaky)
    with pytest.raises(ValueError):
        float_ref.scale_channels(m[:, :3], src, scale_wh=True)


@pytest.mark.parametrize("act", ["linear", "logistic", "leaky"])
def test_torch_module_equals_the_reference(act):
    torch = pytest.importorskip("torch")
    from weights_tools.torch import ScaleChannels, import_darknet
    cfg = SE_CFG.format(act=act)
    model = import_darknet(cfg)
    assert isinstance(model[3], ScaleChannels) and isinstance(model[5], ScaleChannels)
    x = torch.from_numpy(np.random.default_rng(2).uniform(0, 1, (2, 3, 6, 8)).astype(np.float32))
    with torch.no_grad():
        outs = [o.numpy() for o in model(x, outputs=[0, 2, 3, 4, 5])]
    for n in range(2):
        ref3 = float_ref.scale_channels(outs[1][n], outs[0][n], activation=act)
        np.testing.assert_allclose(outs[2][n], ref3, rtol=1e-6, atol=1e-7)
        ref5 = float_ref.scale_channels(outs[3][n], outs[2][n], scale_wh=True)
        assert np.array_equal(outs[4][n], ref5)


def test_torch_export_and_import_round_trip():
    torch = pytest.importorskip("torch")
    from weights_tools.torch import Darknet, Dropout, ScaleChannels, export, import_darknet
    from weights_tools.torch.layers import ShapeMismatchError
    model = import_darknet(SE_CFG.format(act="logistic"))
    cfg_text, weights = export(model)
    assert "[scale_channels]\nfrom=-3\nactivation=logistic" in cfg_text
    assert "[scale_channels]\nfrom=-2\nscale_wh=1" in cfg_text
    again = import_darknet(cfg_text, weights)
    x = torch.rand(1, 3, 6, 8)
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))
    with pytest.raises(ShapeMismatchError, match="must be"):
        Darknet((4, 6, 8), [Dropout(0.1), ScaleChannels(-1)])   # previous 4x6x8, not 4x1x1
