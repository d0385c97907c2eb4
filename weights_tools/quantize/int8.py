"""The --int8 model of `python -m mdfi.detect`: quantized once, cached beside the
float model."""
import contextlib
import io
import os
import sys

from mdfi.models import INT8_CACHE_TAG, int8_paths
from weights_tools.calibrate import CalibrationError
from weights_tools.quantize.run import quantize

# --int8: 8-bit weights with per-channel multipliers; the layers where 8-bit
# activations cost most (up to 30 % of the MACs) take 16-bit input, keeping
# 8-bit weights once the file reaches 30 % of the float one.  The budget is
# the one that kept the most float hits on the calibration photos themselves
# (benchmarks/int8_budget.py, 2 folds); 16-bit layers run at half the 8-bit
# rate, so it sets most of the time beyond the all-8-bit model's
# (docs/fixed-point.md).  The weights are paired (adjacent pairs within 128
# in magnitude), which AVX2's faster 8-bit kernel takes: about 9 % less time
# there, the same detections.
INT8_RECIPE = dict(mixed=True, mixed_budget=0.3, weight_scale="mult-pair")


def calibration_photos():
    """(description, [paths]) of the photos --int8 models are calibrated on:
    scikit-image's photos, or scikit-learn's two if scikit-image is missing."""
    from weights_tools.evaluate import sklearn_photos, skimage_photos
    for name, fn in (("the photos scikit-image ships", skimage_photos),
                     ("the photos scikit-learn ships", sklearn_photos)):
        try:
            paths = fn()
        except ImportError:
            continue
        if paths:
            return name, paths
    raise CalibrationError("--int8 calibrates on the photos scikit-image (or scikit-learn) "
                           "ships; install scikit-image")


def cached_int8(cfg, weights, quiet=False):
    """(cfg, qweights) of the 8-bit model (INT8_RECIPE) of a fetched float
    model, made on first use and kept beside it (NAME.int8-v4.cfg / .qweights)."""
    qcfg, qpath = int8_paths(weights)
    base = qcfg[:-len(".cfg")]
    if os.path.exists(qcfg) and os.path.exists(qpath):
        return qcfg, qpath
    what, photos = calibration_photos()
    if not quiet:
        sys.stderr.write("quantizing %s to int8, calibrated on %s (%d images); cached as %s\n"
                         % (os.path.basename(os.fspath(weights)), what, len(photos), qpath))
    tmp = "%s.tmp%d" % (base, os.getpid())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize(cfg, weights, photos, tmp, quiet=True, check_images=False, **INT8_RECIPE)
        # the cfg names its weights file: point it at the final name
        with open(tmp + ".cfg", encoding="utf-8") as f:
            text = f.read().replace(os.path.basename(tmp) + ".qweights",
                                    os.path.basename(qpath))
        with open(tmp + ".cfg", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp + ".qweights", qpath)
        os.replace(tmp + ".cfg", qcfg)
    finally:
        for p in (tmp + ".cfg", tmp + ".qweights"):
            if os.path.exists(p):
                os.remove(p)
    return qcfg, qpath
