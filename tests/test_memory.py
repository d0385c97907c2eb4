"""Peak memory: weights streamed into packed form, conv -> maxpool fused by row bands.

The conv whose output only a [maxpool] reads computes that output band by band and
pools each band at once (net/passes.c, layers/gemm_layer.c), so the plan never holds
it; keep_outputs turns fusion off.  Fused and unfused must agree bit for bit, for
any thread count."""
import json
import os
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build
from conftest import available_kernels

# yolov3-tiny fp32 at 416x416, 1 thread.  Measured: packed parameters 35,399,800
# bytes with the AVX-512 kernel and 35,579,768 with the AVX2 one (its panels of
# MR rows pad more filters), against 35,434,956 bytes of file; arena 4,153,344
# bytes (13,844,480 before fusion); mdfi bench peak RSS ~42.8 MiB (~54 MiB
# before streaming the weights and fusing).  Packed = the file's floats (BN
# folded away) plus under 0.5 % of panel padding, on every kernel.
TINY_WEIGHT_PADDING = 1.005
TINY_ARENA_BYTES = 4_200_000
TINY_PEAK_RSS_KB = 45 * 1024
# Winograd by default (docs/architecture.md): the stored transformed weights of
# layers 4 and 6 less their direct ones (36/9 - 1 times 32*64*9 + 64*128*9 floats
# = 1,105,920 bytes), and the taps of layers 8, 10, 12, 14 and 21 packed for the
# on-the-fly transform in blocks of 24 output channels and chunks of 128 input
# channels, whose padding (rows past M in the last block, panels of MR rows per
# block) measured 476,928 bytes more than the direct path's panels (AVX2).
TINY_WINOGRAD_EXTRA = 1_105_920 + 600_000
# ... and its workspace: a batch's input transform for 128 input channels and,
# packed for the GEMM, for all of them (up to 2 MB: 36 x 384 x 32 floats on layer
# 21), and a chunk's 36 U planes: 47,684 KB measured against 43,672 KB direct (AVX2).
TINY_PEAK_RSS_WINOGRAD_KB = 48 * 1024


def _bench(tiny_model, winograd):
    exe = build() / "mdfi"
    res = subprocess.run([str(exe), "bench", str(tiny_model["cfg"]), str(tiny_model["weights"]),
                          "--runs", "1", "--threads", "1", "--json"],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MDFI_WINOGRAD=winograd))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_tiny_program_peak_rss(tiny_model):
    """The direct path's packing (MDFI_WINOGRAD=0): the file's floats plus padding."""
    r = _bench(tiny_model, "0")
    assert r["weight_bytes"] <= tiny_model["weights"].stat().st_size * TINY_WEIGHT_PADDING
    assert r["arena_bytes"] <= TINY_ARENA_BYTES
    assert 0 < r["peak_rss_kb"] <= TINY_PEAK_RSS_KB, r


def test_tiny_program_peak_rss_winograd(tiny_model):
    """By default Winograd takes layers 4 and 6 with stored transformed weights
    (4x the direct ones) and the larger 3x3 layers on the fly (their taps, as
    many as the direct path's): 1.6 MB more weights in all (TINY_WINOGRAD_EXTRA),
    the same arena, and under 5 MB more peak RSS; forced everywhere with stored
    weights (MDFI_WINOGRAD=1) it needs 4x the 3x3 layers' weights."""
    direct, auto = _bench(tiny_model, "0"), _bench(tiny_model, "auto")
    assert 0 < auto["weight_bytes"] - direct["weight_bytes"] <= TINY_WINOGRAD_EXTRA
    assert auto["arena_bytes"] == direct["arena_bytes"]
    assert 0 < auto["peak_rss_kb"] <= TINY_PEAK_RSS_WINOGRAD_KB, auto
    assert auto["peak_rss_kb"] - direct["peak_rss_kb"] <= 5 * 1024, (auto, direct)
    stored = _bench(tiny_model, "1")
    assert stored["weight_bytes"] > 3.5 * direct["weight_bytes"]


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_tiny_fused_is_bit_identical(tiny_model):
    x = _image((3, 416, 416))
    cfg, weights = tiny_model["cfg"], tiny_model["weights"]
    with mdfi.Network(cfg, weights, keep_outputs=True) as ref:
        ref.forward(x)
        want = {i: ref.layer_output(i).copy() for i in (16, 23)}
        assert ref.layer_output(0).shape == (16, 416, 416)
        ref_arena = ref.arena_bytes
    for threads in (1, 2, 3):
        with mdfi.Network(cfg, weights, threads=threads) as net:
            net.forward(x)
            assert net.arena_bytes < ref_arena
            for i in (16, 23):
                np.testing.assert_array_equal(net.layer_output(i), want[i])
            assert _fused_pools(net, x) == {1: True, 3: True, 5: True, 7: True, 9: False,
                                            11: False}
            with pytest.raises(mdfi.MdfiError, match="keep_outputs"):
                net.layer_output(0)


def _conv(filters, size=3, stride=1, act="leaky", bn=1, groups=1):
    return (f"[convolutional]\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
            f"groups={groups}\nbatch_normalize={bn}\nactivation={act}\n\n")


def _pool(size=2, stride=2, padding=None):
    return f"[maxpool]\nsize={size}\nstride={stride}\n" + \
        (f"padding={padding}\n" if padding is not None else "") + "\n"


# Edge cases of the band split: odd sizes, pools with stride > size and with
# padding, groups, an activation left to a pass (logistic), a maxpool as the last
# layer.  Not fused: a stride-1 pool (overlapping windows) and a conv that a route
# also reads.  Value: which maxpools run fused (the conv before them does their work).
NETS = {
    "odd": (_conv(13) + _pool() + _conv(21, act="logistic", bn=0) + _pool(3, 3) +
            _conv(5, size=1, act="linear"), {1: True, 3: True}),
    "stride1_last": (_conv(30, groups=3) + _pool(2, 1) + _conv(7, stride=2) + _pool(2, 3, 3),
                     {1: False, 3: True}),
    "route": (_conv(8) + _pool() + "[route]\nlayers=-2\n\n" + _conv(4, size=1), {1: False}),
    "wide": (_conv(16) + _pool() + _conv(40) + _pool(), {1: True, 3: True}),
}


def _fused_pools(net, x):
    """Which maxpools ran fused: a fused maxpool's own forward never runs."""
    net.set_profile(True)
    net.forward(x)
    t = net.layer_times()
    return {i: t[i] == 0.0 for i, lay in enumerate(net.layers) if lay.type == "maxpool"}


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("hw", [(37, 29), (64, 64)])
def test_fusion_matches_unfused(tmp_path, name, hw):
    h, w = hw
    cfg = tmp_path / f"{name}.cfg"
    text, fused = NETS[name]
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels=3\n\n" + text)
    with mdfi.Network(cfg) as probe:   # count the floats the cfg wants
        n = sum(_params(probe, i) for i in range(len(probe.layers)))
    wts = tmp_path / f"{name}.weights"
    rng = np.random.default_rng(1)
    # all positive keeps BN variances valid; signs come from the input
    vals = (np.abs(rng.standard_normal(n)) * 0.5 + 0.05).astype(np.float32)
    wts.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + b"\0" * 8 + vals.tobytes())
    x = _image((3, h, w), 2) * 2 - 1
    for kernel in available_kernels():
        with mdfi.Network(cfg, wts, kernel=kernel, keep_outputs=True) as ref:
            want = ref.forward(x).copy()
            assert ref.layer_output(0).shape == ref.layers[0].output_shape
        for threads in (1, 2, 4):
            with mdfi.Network(cfg, wts, kernel=kernel, threads=threads) as net:
                np.testing.assert_array_equal(net.forward(x), want)
                assert _fused_pools(net, x) == fused
                np.testing.assert_array_equal(net.layer_output(-1), want)
    with mdfi.Network(cfg, wts, keep_outputs=True) as ref:
        assert not any(_fused_pools(ref, x).values())


def _params(net, i):
    lay = net.layers[i]
    if lay.type != "convolutional":
        return 0
    k = lay.input_shape[0] // lay.groups * lay.size * lay.size
    return lay.filters * (4 if lay.batch_normalize else 1) + lay.filters * k
