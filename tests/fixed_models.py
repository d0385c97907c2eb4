"""Quantized models shared by the tests/test_fixed_*.py files (made once per session)."""
import atexit
import contextlib
import functools
import io
import pathlib
import shutil
import tempfile

import numpy as np

import weights_tools as wt
from weights_tools import qweights as qwf
from weights_tools.evaluate import skimage_photos, sklearn_photos
from weights_tools.fixed_ref import Fmt

_TMP = pathlib.Path(tempfile.mkdtemp(prefix="mdfi-fixed-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


def calibration_photos(n=2):
    """A few photos that are never evaluated on in the tests (not the golden ones)."""
    photos = skimage_photos() or sklearn_photos()
    names = ("astronaut", "chelsea", "coffee", "motorcycle_left")
    chosen = [p for n_ in names for p in photos if pathlib.Path(p).stem == n_]
    return (chosen or photos)[:n]


@functools.lru_cache(maxsize=None)
def quantized(cfg, weights, name, **kw):
    """(cfg, qweights, result) of weights_tools.quantize with the given options."""
    from weights_tools.quantize import quantize
    kw = dict(kw)
    calib = kw.pop("calib", None) or calibration_photos()
    kw.setdefault("bias_images", 2)
    kw.setdefault("check_images", False)
    with contextlib.redirect_stdout(io.StringIO()):
        r = quantize(str(cfg), str(weights), calib, str(_TMP / name), quiet=True, **kw)
    return r["cfg"], r["qweights"], r


def random_qweights(layers_spec, n_layers, seed=0, scale=None):
    """A QWeights with random integers for {layer: (kind, M, K, groups, in, w, out)}."""
    rng = np.random.default_rng(seed)
    qw = qwf.QWeights(n_layers)
    for i, (kind, m, k, groups, fin, fw, fout) in layers_spec.items():
        fw_ = Fmt(*fw) if fw[1] not in ("ch", "mul") else Fmt(fw[0], 0)
        lim = scale or (100 if fw_.bits == 8 else 300)
        w = rng.integers(-lim, lim + 1, (m, k)).astype(fw_.dtype)
        b = rng.integers(-2000, 2001, m).astype(np.int32)
        mode, fr, mu = 0, None, None
        if fw[1] == "ch":
            mode, fr = 1, rng.integers(3, 9, m).astype(np.int8)
        elif fw[1] == "mul":   # multipliers of any size, shifts up to 37
            mode, fr = 2, rng.integers(14, 26, m).astype(np.int8)
            mu = rng.integers(1, qwf.MULT_MAX + 1, m).astype(np.int32)
            mu[:2] = (1, qwf.MULT_MAX)
        qw.records[i] = qwf.QRecord(i, kind, groups, fin, (fw_.bits, fw_.frac), fout, b, w,
                                    mode, fr, mu)
    return qw


def random_darknet(tmp_path, cfg_text, name, seed=0, scale=None):
    """A float model with uniform(-1, 1) parameters: (cfg, weights path, the rng
    after drawing them).  scale: {layer: factor} for that layer's weights."""
    cfg = tmp_path / (name + ".cfg")
    cfg.write_text(cfg_text)
    layers = wt.infer_layers(wt.parse_cfg(cfg))
    rng = np.random.default_rng(seed)
    w = wt.DarknetWeights()
    for layer in layers:
        w.layers.append({n: rng.uniform(-1, 1, s).astype(np.float32) for n, s in layer.params})
    for i, factor in (scale or {}).items():
        w.layers[i]["weights"] *= np.float32(factor)
    path = tmp_path / (name + ".weights")
    path.write_bytes(wt.write_weights(layers, w))
    return cfg, path, rng
