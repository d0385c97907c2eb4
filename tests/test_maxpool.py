"""[maxpool] in float against a scalar reference of Darknet's loop (m = v > m ?
v : m from -FLT_MAX, taps in row order, outside taps skipped), bit for bit:
the 2x2 / stride 2 run of inside windows (kernels/pool.c, four outputs a
step with SSE2) and the edges around it, on NaN, +-0, +-inf and odd sizes."""
import itertools

import numpy as np
import pytest

import mdfi

F32 = np.float32
LOWEST = -np.finfo(F32).max


def reference(x, size, stride, padding):
    C, H, W = x.shape
    oh, ow = (H + padding - size) // stride + 1, (W + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.empty((C, oh, ow), F32)
    for c, oy, ox in itertools.product(range(C), range(oh), range(ow)):
        m = LOWEST
        for y in range(off + oy * stride, off + oy * stride + size):
            for xx in range(off + ox * stride, off + ox * stride + size):
                if 0 <= y < H and 0 <= xx < W:
                    v = x[c, y, xx]
                    m = v if v > m else m
        out[c, oy, ox] = m
    return out


def special(shape, rng):
    """Integers, halves, +-0, +-inf and NaN, so ties and NaN positions matter."""
    pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, np.inf, -np.inf, np.nan, 7.0, -7.0], F32)
    return pool[rng.integers(0, len(pool), shape)]


@pytest.mark.parametrize("size,stride", [(2, 2), (2, 1), (3, 2)])
def test_maxpool_bits(tmp_path, size, stride):
    rng = np.random.default_rng(size * 10 + stride)
    for h, w in [(1, 1), (2, 3), (5, 9), (8, 8), (7, 17), (14, 14), (3, 33)]:
        for padding in range(0, 4):
            if h + padding < size or w + padding < size:
                continue
            cfg = tmp_path / "p.cfg"
            cfg.write_text("[net]\nheight=%d\nwidth=%d\nchannels=3\n\n"
                           "[maxpool]\nsize=%d\nstride=%d\npadding=%d\n" % (h, w, size, stride, padding))
            x = special((3, h, w), rng)
            with mdfi.Network(str(cfg), threads=1) as net:
                got = np.asarray(net.forward(x), F32)
            want = reference(x, size, stride, padding)
            assert got.shape == want.shape
            assert np.array_equal(got.view(np.uint32), want.ravel().view(np.uint32).reshape(got.shape)), \
                (h, w, padding)


@pytest.mark.parametrize("c", [1, 2, 3, 5, 8])
def test_avgpool_is_darknets_sum_in_order(tmp_path, c):
    """[avgpool] in float: each channel's sum is float32 and in order, as
    Darknet's loop (the layer sums two channels at a time; an odd last one
    alone), bit for bit on values whose sum depends on the order."""
    rng = np.random.default_rng(c)
    for h, w in [(1, 1), (3, 5), (7, 7)]:
        cfg = tmp_path / "a.cfg"
        cfg.write_text("[net]\nheight=%d\nwidth=%d\nchannels=%d\n\n[avgpool]\n" % (h, w, c))
        x = (rng.standard_normal((c, h, w)) * 10.0 ** rng.integers(-3, 8, (c, h, w))).astype(F32)
        want = np.empty(c, F32)
        for k in range(c):
            s = F32(0)
            for v in x[k].ravel():
                s = F32(s + v)
            want[k] = F32(s / F32(h * w))
        with mdfi.Network(str(cfg), threads=1) as net:
            got = np.asarray(net.forward(x), F32).ravel()
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (c, h, w)
