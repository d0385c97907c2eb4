"""Shared fixtures: golden data, the real yolov3-tiny model, generated weights."""
import hashlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))
IMAGES = ["dog", "eagle", "horses", "person"]


def _kernel_available(name):
    import mdfi
    cfg = "[net]\nwidth=4\nheight=4\nchannels=1\n[convolutional]\nfilters=1\nsize=1\n"
    path = ROOT / "build" / "kernel_probe.cfg"
    path.parent.mkdir(exist_ok=True)
    path.write_text(cfg)
    try:
        mdfi.Network(path, kernel=name).close()
        return True
    except mdfi.UnsupportedError:
        return False


AVAILABLE_KERNELS = None


def available_kernels():
    global AVAILABLE_KERNELS
    if AVAILABLE_KERNELS is None:
        AVAILABLE_KERNELS = [k for k in ("ref", "avx2", "avx512", "neon") if _kernel_available(k)]
    return AVAILABLE_KERNELS


@pytest.fixture(scope="session")
def golden():
    if not GOLDEN.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"golden data missing at {GOLDEN}")
        pytest.skip(f"golden data missing at {GOLDEN}")
    return GOLDEN


@pytest.fixture(scope="session")
def tiny_model():
    """The official yolov3-tiny files, fetched and sha256-verified by mdfi.models."""
    from mdfi import models
    return models.fetch("yolov3-tiny", quiet=True)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def synthetic_weights(golden, tmp_path_factory):
    """Generates NAME.weights with the golden generator and checks its sha256."""
    cache = tmp_path_factory.mktemp("synthetic")

    def make(name):
        out = cache / f"{name}.weights"
        if not out.exists():
            subprocess.run([sys.executable, str(golden / "synthetic" / "gen_weights.py"),
                            str(golden / "synthetic" / f"{name}.cfg"), "1", str(out)],
                           check=True, capture_output=True)
            want = (golden / "synthetic" / f"{name}.weights.sha256").read_text().split()[0]
            assert _sha256(out) == want, f"generated {name}.weights differ from the golden"
        return out
    return make


def load_npy(path):
    return np.load(path).astype(np.float32)


@pytest.fixture
def torch_seeded():
    """PyTorch seeded at 0 and on one thread for the test (restored after)."""
    import torch
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)
