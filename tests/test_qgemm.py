"""The integer GEMM kernels of the fixed-point path, through the C driver
tests/c/test_qgemm.c: every variant the CPU runs against a naive convolution and
requantization written from qgemm.h, results exactly equal (integers), column
splits identical, guard regions untouched.  Natively, and for aarch64 / armhf
cross-built and run under qemu (--quick shapes; aarch64 with -cpu max, which
has the dot product instructions).

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

# arch: (cross prefix, qemu command, variants that must run there)
CROSS = {
    "aarch64": ("aarch64-linux-gnu-", ["qemu-aarch64", "-cpu", "max"],
                {"ref8", "ref16", "neon-8", "neon-16", "neondot-8"}),
    "armhf": ("arm-linux-gnueabihf-", ["qemu-arm"], {"ref8", "ref16", "neon-8", "neon-16"}),
}


@pytest.fixture(scope="module")
def native():
    sanitize = os.environ.get("MDFI_SANITIZE") == "1"
    # Only the drivers: the CLI may not link while other parts are in progress.
    return build(sanitize=sanitize, targets=("tests",)) / "tests" / "test_qgemm"


def cpu_flags():
    try:
        return set(re.search(r"^flags\s*:(.*)$", open("/proc/cpuinfo").read(), re.M).group(1).split())
    except (OSError, AttributeError):
        return set()


def test_native_all_variants(native):
    quick = ["--quick"] if os.environ.get("MDFI_SANITIZE") == "1" else []
    out = run_driver([str(native), *quick], timeout=900)
    ok = variants_ok(out)
    assert {"ref8", "ref16"} <= ok, out
    # the channel-grouped form (mdfi_qgemm_conv_cg) ran against the plain one for every
    # variant but the reference and AVX2's paired-weight one
    cg = {m.group(1): int(m.group(2)) for m in re.finditer(r"^([\w-]+) cg cases (\d+)$", out,
                                                          re.M)}
    for name in ok:
        assert (cg.get(name, 0) > 0) == (not name.startswith("ref") and name != "avx2-8p"), \
            (name, cg.get(name), out)
    if os.uname().machine == "x86_64":
        flags = cpu_flags()
        if {"avx2", "fma"} <= flags:
            assert {"avx2-8", "avx2-16"} <= ok, out
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            assert {"avx512-8", "avx512-16"} <= ok, out
            if "avx512_vnni" in flags:
                assert {"avx512vnni-8", "avx512vnni-16"} <= ok, out
                assert "best avx512vnni-8 / avx512vnni-16" in out, out


def test_variant_filter(native):
    out = run_driver([str(native), "--quick", "ref8"], timeout=300)
    assert variants_ok(out) == {"ref8"}
    out = run_driver([str(native), "--quick", "--variant", "ref"], timeout=300)
    assert variants_ok(out) == {"ref8", "ref16"}
    res = subprocess.run([str(native), "--variant", "nope"], capture_output=True, text=True)
    assert res.returncode == 2


def test_bench_mode_runs(native):
    """--bench prints GOP/s and MACs/cycle per 8-bit variant and shape, and fp32."""
    res = subprocess.run([str(native), "--bench", "--quick"], capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr
    assert re.search(r"^cycles: [\d.]+ GHz, ", res.stdout, re.M), res.stdout
    rates = re.findall(r"^([\w-]+)\s+M=\d+\s+K=\d+\s+N=\d+\s+([\d.]+) GOP/s\s+([\d.]+) MACs/cycle",
                       res.stdout, re.M)
    names = {n for n, _, _ in rates}
    assert "ref8" in names and len(rates) >= 8, res.stdout
    assert all(float(g) > 0 and float(c) > 0 for _, g, c in rates), res.stdout


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_under_qemu(arch):
    cross, qemu, expect = CROSS[arch]
    if not (shutil.which(cross + "gcc") and shutil.which(qemu[0])):
        if os.environ.get("MDFI_REQUIRE_CROSS") == "1":
            pytest.fail(f"MDFI_REQUIRE_CROSS=1 but {cross}gcc or {qemu[0]} is missing")
        pytest.skip(f"no {cross}gcc or {qemu[0]}")
    exe = build(cross=cross, targets=("tests",)) / "tests" / "test_qgemm"
    out = run_driver([*qemu, str(exe), "--quick"], timeout=600)
    assert expect <= variants_ok(out), out
