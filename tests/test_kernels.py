"""The fp32 GEMM kernels and CPU dispatch, through the C driver tests/c/test_sgemm.c:
every ISA the CPU runs against a naive double-precision convolution, bit-identity
across column splits, guard regions, bit-exact Darknet epilogues (leaky in double),
CPU feature / ISA name consistency.  Natively, and for
aarch64 / armhf cross-built and run under qemu (--quick shapes).

MDFI_SANITIZE=1 runs the native driver from the ASan/UBSan build instead.
MDFI_REQUIRE_CROSS=1 turns the qemu checks from skip into failure."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import build, run_driver, variants_ok  # noqa: E402

CROSS = {
    "aarch64": ("aarch64-linux-gnu-", "qemu-aarch64"),
    "armhf": ("arm-linux-gnueabihf-", "qemu-arm"),
}


def build_driver(cross="", sanitize=False):
    """Builds only this driver (and the library): other drivers or the CLI may
    not link while other parts are in progress."""
    triple = subprocess.run([cross + "gcc", "-dumpmachine"], capture_output=True, text=True,
                            check=True).stdout.strip()
    target = f"build/{triple}{'-san' if sanitize else ''}/tests/test_sgemm"
    return build(cross=cross, sanitize=sanitize, targets=(target,)) / "tests" / "test_sgemm"


@pytest.fixture(scope="module")
def native():
    return build_driver(sanitize=os.environ.get("MDFI_SANITIZE") == "1")


def test_native_all_isas(native):
    quick = ["--quick"] if os.environ.get("MDFI_SANITIZE") == "1" else []
    out = run_driver([str(native), *quick], timeout=600)
    isas = variants_ok(out)
    assert "ref" in isas
    if os.uname().machine == "x86_64":
        flags = open("/proc/cpuinfo").read()
        if re.search(r"\bavx2\b", flags) and re.search(r"\bfma\b", flags):
            assert "avx2" in isas, out
        avx512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl")
        if all(re.search(rf"\b{f}\b", flags) for f in avx512):
            assert "avx512" in isas, out


def test_restrict_to_one_isa(native):
    out = run_driver([str(native), "--quick", "ref"], timeout=300)
    assert variants_ok(out) == {"ref"}
    res = subprocess.run([str(native), "--isa", "nope"], capture_output=True, text=True)
    assert res.returncode == 2


def test_bench_mode_runs(native):
    """--bench prints GFLOP/s per ISA and shape (--quick: one run of each)."""
    res = subprocess.run([str(native), "--bench", "--quick"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    rates = re.findall(r"^(\w+)\s+M=\d+\s+K=\d+\s+N=\d+\s+([\d.]+) GFLOP/s$", res.stdout, re.M)
    assert len(rates) >= 4 and all(float(r) > 0 for _, r in rates), res.stdout


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_under_qemu(arch):
    cross, qemu = CROSS[arch]
    if not (shutil.which(cross + "gcc") and shutil.which(qemu)):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {cross}gcc or {qemu} is missing")
        pytest.skip(f"no {cross}gcc or {qemu}")
    exe = build_driver(cross=cross)
    out = run_driver([qemu, str(exe), "--quick"], timeout=300)
    # qemu's CPU models have NEON (and VFPv4 on armhf): the NEON kernels must run.
    assert {"ref", "neon"} <= variants_ok(out), out
