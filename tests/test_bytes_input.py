"""8-bit input (mdfi_net_forward_bytes): a network whose first layer is fixed point
takes the image's bytes as they are and quantizes them through a table, so no float
copy of the image is held.  The results must equal the float path's on the floats
(float)(v / 255.0) that images load as, bit for bit; a network that reads its input
as floats refuses bytes in C and converts them in Python."""
import json
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build
from fixed_models import quantized, random_darknet
from mdfi._mdfi_cffi import ffi, lib

SMALL = """[net]
width=23
height=17
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
filters=5
size=1
stride=1
pad=1
activation=linear
"""


@pytest.fixture(scope="module")
def tiny8(tiny_model):
    cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny8")
    return cfg, qpath


def _pixels(shape, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    x.flat[:256] = np.arange(256)   # every byte value at least once
    return x


def _outputs(net, x, layers):
    net.forward(x)
    return [net.layer_output(i) for i in layers]


@pytest.mark.parametrize("threads", [1, 2])
def test_quantized_tiny_bytes_equal_floats(tiny8, threads):
    with mdfi.Network(*tiny8, threads=threads) as net:
        assert net.takes_bytes
        x = _pixels(net.input_shape)
        heads = [i for i, layer in enumerate(net.layers) if layer.type == "yolo"]
        by_bytes = _outputs(net, x, heads)
        by_floats = _outputs(net, (x / 255.0).astype(np.float32), heads)
        for a, b in zip(by_bytes, by_floats):
            assert np.array_equal(a, b)
        assert np.abs(by_bytes[0]).max() > 0


@pytest.mark.parametrize("bits", [8, 16])
def test_small_fixed_network_every_byte_value(tmp_path, bits):
    """Both operand widths of the first layer, every byte value, forward_until + resume."""
    cfg, weights, rng = random_darknet(tmp_path, SMALL, "small%d" % bits)
    calib = [rng.random((3, 17, 23), dtype=np.float32)[None]]
    np.save(tmp_path / "calib.npy", calib[0])
    qcfg, qw, _ = quantized(cfg, weights, "small%d" % bits, bits=bits,
                            calib=(str(tmp_path / "calib.npy"),))
    with mdfi.Network(qcfg, qw, keep_outputs=True) as net:
        assert net.takes_bytes
        x = _pixels(net.input_shape, seed=bits)
        f = (x / 255.0).astype(np.float32)
        assert net.forward_until(x, 0) == 1
        q0, frac0 = net.layer_output_int(0)
        net.resume()
        last_b = net.layer_output(2)
        net.forward(f)
        q1, frac1 = net.layer_output_int(0)
        assert frac0 == frac1 and np.array_equal(q0, q1)
        assert np.array_equal(last_b, net.layer_output(2))
        assert len(np.unique(q0)) > 10


def test_float_network_converts_in_python_refuses_in_c(tmp_path):
    cfg, weights, _ = random_darknet(tmp_path, SMALL, "float")
    with mdfi.Network(cfg, weights) as net:
        assert not net.takes_bytes
        x = _pixels(net.input_shape)
        assert np.array_equal(net.forward(x), net.forward((x / 255.0).astype(np.float32)))
        buf = ffi.from_buffer(x)
        st = lib.mdfi_net_forward_bytes(net._handle(), ffi.cast("unsigned char *", buf),
                                        x.size, -1)
        assert st == lib.MDFI_ERR_UNSUPPORTED
        msg = ffi.string(lib.mdfi_net_last_error(net._handle())).decode()
        assert "layer 0 [convolutional] reads the input as floats" in msg
        st = lib.mdfi_net_forward_bytes(net._handle(), ffi.cast("unsigned char *", buf),
                                        x.size - 1, -1)
        assert st == lib.MDFI_ERR_SHAPE
        with pytest.raises(mdfi.ShapeError):
            net.forward(x[:, :-1])


def _bench(args):
    res = subprocess.run([str(build() / "mdfi"), "bench", *map(str, args), "--runs", "1",
                          "--json"], capture_output=True, text=True, timeout=120)
    return res


def test_bench_bytes_holds_no_float_image(tiny8, tiny_model):
    """416x416x3 floats are 2.08 MB, the bytes 0.52 MB: the peak drops by the difference
    (the first layer's int8 copy lives in scratch it has anyway)."""
    floats = json.loads(_bench(tiny8).stdout)
    res = _bench([*tiny8, "--bytes"])
    assert res.returncode == 0, res.stderr
    as_bytes = json.loads(res.stdout)
    assert as_bytes["arena_bytes"] == floats["arena_bytes"]
    assert floats["peak_rss_kb"] - as_bytes["peak_rss_kb"] >= 1200, (floats, as_bytes)
    res = _bench([tiny_model["cfg"], tiny_model["weights"], "--bytes"])
    assert res.returncode == 1
    assert "layer 0 [convolutional] reads the input as floats" in res.stderr
