"""Winograd F(4,3) (kernels/winograd.c) against the exact direct path.

Random 3x3 stride-1 convolutions of odd sizes, sizes that are not a multiple of
the 4x4 tile, padding 1 and 0, one channel to hundreds (several blocks of output
channels), every epilogue activation and one the layer applies after it, each on
every kernel this CPU runs and on 1 and 2 threads.  The error is measured relative
to the largest output of the layer; thread counts must agree bit for bit.  Shapes
Winograd does not take run the direct path even when forced."""
import json
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build
from conftest import available_kernels

# max |winograd - direct| / max |direct| over the outputs of one layer.  F(4,3)'s
# transforms (entries up to 8, G's 1/24) lose a few bits against the direct sum;
# measured up to 5.7e-6 on these layers (fp32, ref and AVX2 kernels).
REL_TOL = 2e-5


def _conv_cfg(c, h, w, filters, act="leaky", pad="pad=1", extra="", bn=1):
    return f"""[net]
width={w}
height={h}
channels={c}

[convolutional]
batch_normalize={bn}
filters={filters}
size=3
stride=1
{pad}
{extra}
activation={act}
"""


def _run(cfg, weights, x, **kw):
    with mdfi.Network(cfg, weights, **kw) as net:
        return net.forward(x).copy()


def _bn_safe(tmp_path, name, cfg, c, filters, seed, groups=1, size=3):
    """Weights with BN variances in [0.5, 1.5) (a negative variance would make NaNs)."""
    n = filters
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(-0.1, 0.1, n), rng.uniform(0.5, 1.5, n), rng.uniform(-0.1, 0.1, n),
             rng.uniform(0.5, 1.5, n),
             rng.uniform(-1, 1, n * (c // groups) * size * size) / np.sqrt(c * size * size)]
    p = tmp_path / f"{name}.cfg"
    p.write_text(cfg)
    wp = tmp_path / f"{name}.weights"
    with open(wp, "wb") as f:
        np.array([0, 2, 0], np.int32).tofile(f)
        np.array([0], np.uint64).tofile(f)
        np.concatenate(parts).astype(np.float32).tofile(f)
    return p, wp


SHAPES = [  # c, h, w, filters, pad
    (1, 5, 7, 3, "pad=1"),
    (3, 13, 13, 16, "pad=1"),
    (16, 9, 11, 33, "pad=0"),
    (33, 17, 6, 7, "pad=1"),
    (64, 26, 26, 64, "pad=1"),
    (8, 13, 13, 300, "pad=1"),      # several blocks of output channels
    (130, 7, 9, 24, "padding=0"),
    (5, 3, 3, 4, "pad=0"),          # a single 1x1 output
    (100, 13, 13, 50, "pad=1"),     # on the fly: two chunks of input channels, three blocks
    (128, 26, 26, 16, "pad=1"),     # stored: three batches of 49 tiles (24, 24, 1)
    (384, 26, 26, 8, "pad=1"),      # on the fly: two batches of 49 tiles (32 and 17)
]


@pytest.mark.parametrize("mode", [True, "otf"], ids=["stored", "otf"])
@pytest.mark.parametrize("kernel", available_kernels())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "c{}_{}x{}_f{}_{}".format(*s))
def test_winograd_matches_direct(tmp_path, kernel, shape, mode):
    """Stored U, and U made on the fly (in chunks of 64 input channels, blocks of
    24 output channels: several of each above), against the direct path."""
    c, h, w, filters, pad = shape
    worst = 0.0
    for i, act in enumerate(("linear", "relu", "leaky", "logistic")):
        cfg, wts = _bn_safe(tmp_path, f"l{i}", _conv_cfg(c, h, w, filters, act, pad), c,
                            filters, seed=i)
        x = np.random.default_rng(10 + i).uniform(-1, 1, (c, h, w)).astype(np.float32)
        want = _run(cfg, wts, x, kernel=kernel, winograd=False)
        got = {t: _run(cfg, wts, x, kernel=kernel, winograd=mode, threads=t) for t in (1, 2, 3)}
        np.testing.assert_array_equal(got[1], got[3])
        np.testing.assert_array_equal(got[1], got[2])
        assert got[1].shape == want.shape
        scale = float(np.abs(want).max()) or 1.0
        err = float(np.abs(got[1] - want).max()) / scale
        worst = max(worst, err)
        assert err <= REL_TOL, f"{act}: relative error {err:.3g}"
    print(f"{shape} {kernel}: max error / output scale {worst:.3g}")


@pytest.mark.parametrize("extra,desc", [("", "size 5"), ("stride=2", "stride 2"),
                                        ("dilation=2", "dilation 2"), ("groups=2", "groups 2")])
def test_other_shapes_fall_back_to_direct(tmp_path, extra, desc):
    c, h, w, filters = 8, 15, 15, 8
    size = 5 if desc == "size 5" else 3
    groups = 2 if desc == "groups 2" else 1
    cfg_text = _conv_cfg(c, h, w, filters, "leaky", "pad=1", extra).replace(
        "size=3", f"size={size}")
    if extra == "stride=2":   # one stride key
        cfg_text = cfg_text.replace("stride=1\n", "")
    cfg, wts = _bn_safe(tmp_path, "f", cfg_text, c, filters, seed=3, groups=groups, size=size)
    x = np.random.default_rng(1).uniform(-1, 1, (c, h, w)).astype(np.float32)
    for mode in (True, "otf"):
        np.testing.assert_array_equal(_run(cfg, wts, x, winograd=mode),
                                      _run(cfg, wts, x, winograd=False))


def test_force_option_and_auto(tmp_path, monkeypatch):
    """winograd=True / MDFI_WINOGRAD=1 and "otf" / 2 change the bits of an eligible
    layer, False and 0 give the direct path's; auto takes a 64-channel 26x26 layer
    (stored) and leaves a 3-channel one direct; a bad value is refused."""
    cfg, wts = _bn_safe(tmp_path, "a", _conv_cfg(64, 26, 26, 64), 64, 64, seed=5)
    x = np.random.default_rng(2).uniform(-1, 1, (64, 26, 26)).astype(np.float32)
    direct = _run(cfg, wts, x, winograd=False)
    wino = _run(cfg, wts, x, winograd=True)
    assert not np.array_equal(direct, wino)
    np.testing.assert_array_equal(_run(cfg, wts, x), wino)          # auto takes it
    monkeypatch.setenv("MDFI_WINOGRAD", "0")
    np.testing.assert_array_equal(_run(cfg, wts, x), direct)
    monkeypatch.setenv("MDFI_WINOGRAD", "1")
    np.testing.assert_array_equal(_run(cfg, wts, x), wino)
    monkeypatch.setenv("MDFI_WINOGRAD", "auto")
    np.testing.assert_array_equal(_run(cfg, wts, x, winograd=False), direct)  # argument wins
    otf = _run(cfg, wts, x, winograd="otf")
    assert not np.array_equal(direct, otf)
    np.testing.assert_allclose(otf, wino, rtol=0, atol=REL_TOL * np.abs(direct).max())
    monkeypatch.setenv("MDFI_WINOGRAD", "2")
    np.testing.assert_array_equal(_run(cfg, wts, x), otf)
    monkeypatch.setenv("MDFI_WINOGRAD", "4")
    with pytest.raises(mdfi.ArgumentError, match="MDFI_WINOGRAD"):
        _run(cfg, wts, x)
    monkeypatch.delenv("MDFI_WINOGRAD")
    cfg3, wts3 = _bn_safe(tmp_path, "b", _conv_cfg(3, 26, 26, 16), 3, 16, seed=6)
    x3 = np.random.default_rng(3).uniform(-1, 1, (3, 26, 26)).astype(np.float32)
    np.testing.assert_array_equal(_run(cfg3, wts3, x3), _run(cfg3, wts3, x3, winograd=False))


@pytest.mark.parametrize("c,size,filters,taken", [
    (24, 28, 25, True),     # a pruned VGG layer: 24+ input channels, <= 4 filters each
    (19, 14, 63, True),     # 16+ channels on an output of at most 56x56
    (32, 14, 16, True),     # 32+ channels, 16+ filters
    (32, 28, 8, False),     # fewer than 16 filters
    (16, 60, 32, "otf"),    # 16-23 channels on a larger output: on the fly
    (32, 64, 48, "otf"),    # 32 channels over 64x64 or more: on the fly
    (40, 64, 48, True),     # more channels there: stored
    (24, 14, 128, False),   # more than 4 filters per input channel
    (12, 28, 8, False),     # too few input channels
    (32, 13, 16, False),    # fewer than 32 filters on an output under 14x14
    (64, 12, 64, True),     # 32+ both ways from 12x12 up
    (256, 13, 64, "otf"),   # U of 2.4 MB: made on the fly
    (24, 28, 600, False),   # U of 2.1 MB, fewer than 32 input channels: direct
])
def test_auto_rule(tmp_path, c, size, filters, taken):
    """Auto takes the shapes docs/architecture.md lists (use_winograd), stored or
    on the fly, and leaves the others direct: its output bits are those of
    Winograd's form or of the direct path."""
    cfg, wts = _bn_safe(tmp_path, "r", _conv_cfg(c, size, size, filters), c, filters, seed=9)
    x = np.random.default_rng(4).uniform(-1, 1, (c, size, size)).astype(np.float32)
    direct = _run(cfg, wts, x, winograd=False)
    wino = _run(cfg, wts, x, winograd=taken if taken else True)
    assert not np.array_equal(direct, wino)
    np.testing.assert_array_equal(_run(cfg, wts, x), wino if taken else direct)


@pytest.mark.parametrize("c,size,filters,fast", [
    (256, 13, 64, True),    # on the fly for memory by default: stored
    (16, 60, 32, "otf"),    # on the fly for speed by default: still on the fly
    (64, 12, 64, True),     # stored by default: stored
    (12, 28, 8, False),     # direct by default: direct
])
def test_fast_stores_what_auto_takes(tmp_path, monkeypatch, c, size, filters, fast):
    """winograd="fast" (MDFI_WINOGRAD=3) takes auto's layers, storing U however large."""
    cfg, wts = _bn_safe(tmp_path, "f", _conv_cfg(c, size, size, filters), c, filters, seed=8)
    x = np.random.default_rng(5).uniform(-1, 1, (c, size, size)).astype(np.float32)
    want = _run(cfg, wts, x, winograd=fast)
    np.testing.assert_array_equal(_run(cfg, wts, x, winograd="fast"), want)
    monkeypatch.setenv("MDFI_WINOGRAD", "3")
    np.testing.assert_array_equal(_run(cfg, wts, x), want)


def test_program_reads_mdfi_winograd(tmp_path):
    cfg, wts = _bn_safe(tmp_path, "p", _conv_cfg(32, 16, 16, 32), 32, 32, seed=7)
    exe = build() / "mdfi"
    for value in ("0", "1", "2", "3", "auto"):
        res = subprocess.run([str(exe), "bench", str(cfg), str(wts), "--runs", "1", "--json"],
                             capture_output=True, text=True, timeout=60,
                             env={"MDFI_WINOGRAD": value})
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["runs"] == 1
    res = subprocess.run([str(exe), "bench", str(cfg), str(wts), "--runs", "1"],
                         capture_output=True, text=True, timeout=60, env={"MDFI_WINOGRAD": "x"})
    assert res.returncode != 0 and "MDFI_WINOGRAD" in res.stderr


@pytest.mark.parametrize("kernel", available_kernels())
@pytest.mark.parametrize("shape", [(16, 52, 128), (4, 104, 64), (16, 30, 64), (4, 20, 128)],
                         ids=lambda s: "c{}_{}_f{}".format(*s))
def test_fused_bands_sized_to_the_tiles(tmp_path, kernel, shape):
    """A conv fused with its 2x2/2 maxpool runs its tiles band by band, the band
    chosen so that they fill the GEMM's panels (wino_band: 13 tiles a row, 52
    wide, take bands of 12 pool rows where the default is 4, 26 tiles a row 6;
    an odd default, 30 wide, and one that is the whole image, 20 wide, stay):
    the same bits as the layer unfused (keep_outputs) on every thread count,
    and Winograd's error against the direct path."""
    c, size, filters = shape
    cfg_text = _conv_cfg(c, size, size, filters) + "\n[maxpool]\nsize=2\nstride=2\n"
    cfg, wts = _bn_safe(tmp_path, "fp", cfg_text, c, filters, seed=3)
    x = np.random.default_rng(4).uniform(-1, 1, (c, size, size)).astype(np.float32)
    want = _run(cfg, wts, x, kernel=kernel, winograd=False)
    unfused = _run(cfg, wts, x, kernel=kernel, winograd=True, keep_outputs=True)
    for t in (1, 2, 3):
        np.testing.assert_array_equal(_run(cfg, wts, x, kernel=kernel, winograd=True, threads=t),
                                      unfused)
    err = float(np.abs(unfused - want).max()) / (float(np.abs(want).max()) or 1.0)
    assert err <= REL_TOL
