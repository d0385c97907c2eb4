"""[scale_channels] (squeeze-and-excitation in Darknet cfgs), the layer type added by
following docs/architecture.md's checklist.  No golden Darknet output exists for it:
the C layer is checked against numpy written from Darknet's forward_scale_channels_layer
(out[i] = prev[i / (h*w)] * from[i], or prev[i % (h*w)] * from[i] with scale_wh=1, then
the activation), on the float and the fixed-point path."""
import numpy as np
import pytest

import mdfi
from fixed_models import random_qweights
from weights_tools import qweights as qwf

NET = "[net]\nwidth=6\nheight=5\nchannels=3\n"
COPY = "[maxpool]\nsize=1\nstride=1\n"           # layer 0: the input, 3 x 5 x 6


def leaky(x):
    """Darknet's leaky_activate: x > 0 ? x : .1 * x, the product in double."""
    return np.where(x > 0, x, (.1 * x.astype(np.float64)).astype(np.float32))


def _run(tmp_path, text, x, **kw):
    cfg = tmp_path / "se.cfg"
    cfg.write_text(text)
    with mdfi.Network(cfg, keep_outputs=True, **kw) as net:
        out = net.forward(x)
        return out, [net.layer_output(i) for i in range(len(net.layers))], net.layers


@pytest.mark.parametrize("act", ["linear", "leaky"])
def test_per_channel_factors(tmp_path, act):
    x = np.random.default_rng(1).standard_normal((3, 5, 6)).astype(np.float32)
    out, layers, info = _run(tmp_path, NET + COPY + "[avgpool]\n"
                             f"[scale_channels]\nfrom=-2\nactivation={act}\n", x)
    factors, feats = layers[1].reshape(3), layers[0]
    want = factors[:, None, None] * feats
    want = leaky(want) if act == "leaky" else want
    assert out.shape == (3, 5, 6) and info[2].type == "scale_channels"
    np.testing.assert_array_equal(out, want)
    assert np.abs(out).max() > 0


def test_per_position_factors(tmp_path):
    x = np.random.default_rng(2).standard_normal((3, 5, 6)).astype(np.float32)
    out, layers, _ = _run(tmp_path, NET + COPY + "[route]\nlayers=0\ngroups=3\ngroup_id=1\n"
                          "[scale_channels]\nfrom=-2\nscale_wh=1\n", x)
    np.testing.assert_array_equal(out, layers[1] * layers[0])
    np.testing.assert_array_equal(layers[1][0], x[1])


@pytest.mark.parametrize("extra, pattern", [
    ("[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[scale_channels]\nfrom=-3\n",
     r"se.cfg:\d+: layer 3 \[scale_channels\]: the previous layer gives 2x1x1"),
    ("[scale_channels]\nfrom=-2\nscale_wh=1\n", r"layer 2 \[scale_channels\].*1 x h x w"),
    ("[scale_channels]\nfrom=5\n", r"from=5 refers to layer 5"),
    ("[scale_channels]\nfrom=-2\nscale_wh=2\n", r"scale_wh=2 must be 0 or 1"),
])
def test_bad_cfg_names_the_layer(tmp_path, extra, pattern):
    cfg = tmp_path / "se.cfg"
    cfg.write_text(NET + COPY + "[avgpool]\n" + extra)
    with pytest.raises((mdfi.ShapeError, mdfi.CfgError), match=pattern):
        mdfi.Network(cfg)


def test_fixed_point_bit_exact(tmp_path):
    """conv (int8) -> avgpool (int8) -> scale_channels with leaky, integer-only: the
    product in int64, the integer leaky (x * 3277) >> 15, a round-half-up shift by
    fa + fb - fout, int8 saturation (docs/fixed-point.md)."""
    text = (NET + "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
            "fixed_in=8:5\nfixed_w=8:6\nfixed_out=8:3\n"
            "[avgpool]\nfixed_out=8:4\n"
            "[scale_channels]\nfrom=-2\nactivation=leaky\nfixed_out=8:2\n")
    cfg = tmp_path / "sefx.cfg"
    cfg.write_text(text)
    qw = random_qweights({0: (qwf.KIND_CONV, 4, 3, 1, (8, 5), (8, 6), (8, 3))}, 3, seed=3)
    path = tmp_path / "sefx.qweights"
    qwf.write(path, qw)
    x = np.random.default_rng(4).uniform(-3, 3, (3, 5, 6)).astype(np.float32)
    with mdfi.Network(cfg, path, keep_outputs=True) as net:
        net.forward(x)
        feats, fb = net.layer_output_int(0)
        factors, fa = net.layer_output_int(1)
        got, fo = net.layer_output_int(2)
    assert (fa, fb, fo) == (4, 3, 2)
    t = factors.reshape(4, 1, 1).astype(np.int64) * feats.astype(np.int64)
    t = np.where(t < 0, (t * 3277) >> 15, t)
    s = fa + fb - fo
    want = np.clip((t >> s) + ((t >> (s - 1)) & 1), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 5   # not a degenerate map


def test_fixed_point_refuses_other_activations(tmp_path):
    cfg = tmp_path / "sefx.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
                   "fixed_in=8:5\nfixed_w=8:6\nfixed_out=8:3\n[avgpool]\nfixed_out=8:4\n"
                   "[scale_channels]\nfrom=-2\nactivation=logistic\nfixed_out=8:2\n")
    with pytest.raises(mdfi.UnsupportedError, match=r"layer 2 \[scale_channels\]: activation "
                                                    r"logistic has no integer form"):
        mdfi.Network(cfg)


def test_se_network_equals_pytorch(tmp_path):
    """A whole squeeze-and-excitation network with random weights: the C engine
    against the PyTorch bridge's modules (an independent implementation)."""
    torch = pytest.importorskip("torch")
    from fixed_models import random_darknet
    from weights_tools.torch import import_darknet
    text = (NET.replace("width=6", "width=8").replace("height=5", "height=6") +
            "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
            "[avgpool]\n[convolutional]\nfilters=4\nsize=1\nactivation=logistic\n"
            "[scale_channels]\nfrom=-3\nactivation=leaky\n"
            "[convolutional]\nfilters=1\nsize=1\nactivation=logistic\n"
            "[scale_channels]\nfrom=-2\nscale_wh=1\n")
    cfg, weights, _ = random_darknet(tmp_path, text, "se")
    x = np.random.default_rng(5).uniform(0, 1, (3, 6, 8)).astype(np.float32)
    model = import_darknet(cfg.read_text(), weights.read_bytes()).eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x[None])).numpy()[0]
    with mdfi.Network(cfg, weights) as net:
        got = net.forward(x)
    assert got.shape == (4, 6, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
