"""The vector logistic, swish and mish (kernels/x86/act_avx2.c, kernels/arm/act_neon.c) and the
element-wise loops (kernels/eltwise.c: the [shortcut] sum, leaky, relu) through
the C driver tests/c/test_act.c: within 4 ulps of their definitions on a fine grid of
[-120, 120] and at the branch points and extremes, every tail length, nothing written
past the end, NaN kept.  Natively (AVX2 where the CPU has it) and, for aarch64 / armhf
(NEON), cross-built and run under qemu.  MDFI_REQUIRE_CROSS=1 turns the qemu checks
from skip into failure."""
import os
import re
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import build, run_driver  # noqa: E402
from test_kernels import CROSS  # noqa: E402


def driver(cross=""):
    triple = subprocess.run([cross + "gcc", "-dumpmachine"], capture_output=True, text=True,
                            check=True).stdout.strip()
    return build(cross=cross, targets=(f"build/{triple}/tests/test_act",)) / "tests" / "test_act"


def test_native():
    out = run_driver([str(driver())], timeout=300)
    assert "eltwise ok" in out, out
    m = re.search(r"^(avx2|avx512)-swish ok", out, re.M)
    isa = m.group(1) if m else None
    for act in ("logistic", "swish", "mish"):
        if isa:   # the AVX-512 path runs the AVX2 form
            assert f"{isa}-{act} ok" in out, out
        else:
            assert f"-{act} skipped" in out, out


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_neon_under_qemu(arch):
    cross, qemu = CROSS[arch]
    if not (shutil.which(cross + "gcc") and shutil.which(qemu)):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {cross}gcc or {qemu} is missing")
        pytest.skip(f"no {cross}gcc or {qemu}")
    out = run_driver([qemu, str(driver(cross)), "--quick"], timeout=300)
    assert all(f"neon-{act} ok" in out for act in ("logistic", "swish", "mish")), out
    assert "eltwise ok" in out, out
