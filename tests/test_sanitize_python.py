"""The Python path under AddressSanitizer and UndefinedBehaviorSanitizer.

The cffi extension is built with ASan+UBSan (mdfi/_build_ffi.py --sanitize, into
build/python-san/: the C core with the Makefile's SANITIZE=1 flags and the
extension compiled and linked with -fsanitize=address,undefined), put in a
package folder of links to mdfi/'s modules, and a subset of the Python tests runs
in a child Python with the ASan runtime preloaded (LD_PRELOAD: the interpreter is
not built with it).  ASAN_OPTIONS=detect_leaks=0: CPython keeps objects until
exit by design, so a leak report would be about the interpreter.  UBSan stops at
the first finding (-fno-sanitize-recover), ASan always does; either fails this
test with the report.  A heap read past a malloc'd block put in
mdfi_net_input_shape for a check made this test fail with ASan's report, so the
preload and the relink (the extension depends on libmdfi.a) work.

The subset (about a minute under the sanitizers on two cores): a float network
forwarded, stopped and resumed (test_forward_resume), one network shared by
threads and networks on threads, closed networks (test_threads, without the RSS
and timing tests, which ASan's quarantine and slowdown make meaningless), binary
networks against numpy (test_binary's numpy tests), fixed-point networks and
their bad files and options (test_fixed_errors), bad inputs through the
Python API (test_errors, without the static `mdfi` program, which the preload
cannot reach), Winograd's edge tiles, padding and channel blocks against the
direct path (test_winograd), the fixed-point conv -> maxpool bands against
the numpy reference (test_fixed_exact's fusion, wide-pool and paired-weight
tests), 8-bit input to fixed- and floating-point networks (test_bytes_input's
small networks), and the [fracconv] networks against numpy (thermometer layers
over densely packed windows among them).  Skipped, with the reason, where gcc has no ASan runtime.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

SUBSET = ["tests/test_forward_resume.py", "tests/test_threads.py", "tests/test_binary.py",
          "tests/test_fixed_errors.py", "tests/test_errors.py", "tests/test_winograd.py",
          "tests/test_fixed_exact.py::test_conv_maxpool_fusion_gives_the_unfused_integers",
          "tests/test_fixed_exact.py::test_wide_2x2_pools_take_the_vector_rows",
          "tests/test_fixed_exact.py::test_paired_weights_take_the_vpmaddubsw_kernel",
          "tests/test_bytes_input.py::test_small_fixed_network_every_byte_value",
          "tests/test_bytes_input.py::test_float_network_converts_in_python_refuses_in_c",
          "tests/test_fracconv.py::test_every_layer_equals_the_reference"]
DESELECT = ("not rss and not scale and not c_driver and not cli and not program "
            "and not qemu and not bench")


def _asan_runtime():
    try:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.path.exists(path) \
        else None


def _toolchain_sanitizes(tmp):
    """Whether gcc compiles and links a program with -fsanitize=address,undefined."""
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    try:
        res = subprocess.run(["gcc", "-fsanitize=address,undefined", str(src), "-o",
                              str(tmp / "probe")], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def _report(out):
    """The first sanitizer report in the output, else its tail."""
    starts = [i for i in (out.find("ERROR: AddressSanitizer"), out.find("runtime error:"))
              if i >= 0]
    return out[max(min(starts) - 300, 0):min(starts) + 6000] if starts else out[-6000:]


def _sanitized_package(tmp):
    """A folder holding an `mdfi` package: links to mdfi/'s files, and the
    sanitized extension as _mdfi_cffi.abi3.so."""
    import runpy
    build = runpy.run_path(str(ROOT / "mdfi" / "_build_ffi.py"))["build_extension"]
    ext = build(sanitize=True)
    pkg = tmp / "mdfi"
    pkg.mkdir()
    for f in (ROOT / "mdfi").iterdir():
        if not f.name.startswith("_mdfi_cffi") and f.name != "__pycache__":
            (pkg / f.name).symlink_to(f)
    (pkg / "_mdfi_cffi.abi3.so").symlink_to(ext)
    return tmp


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD: Linux only")
def test_python_subset_under_asan_and_ubsan(tmp_path):
    runtime = _asan_runtime()
    if runtime is None:
        pytest.skip("gcc has no ASan runtime (gcc -print-file-name=libasan.so)")
    if not _toolchain_sanitizes(tmp_path):
        pytest.skip("gcc cannot link -fsanitize=address,undefined here")
    path = _sanitized_package(tmp_path)   # a failing MDFI build fails the test
    env = dict(os.environ, LD_PRELOAD=runtime, PYTHONPATH=str(path),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=86",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87",
               PYTHONDONTWRITEBYTECODE="1")
    check = ("import sys, mdfi._core; f = sys.modules['mdfi._mdfi_cffi'].__file__; print(f); "
             "sys.exit(0 if f.startswith(sys.argv[1]) else 3)")
    # run from the package folder: the current folder comes first on sys.path,
    # and from the source tree it would be the unsanitized mdfi/
    res = subprocess.run([sys.executable, "-c", check, str(path)], env=env, cwd=path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"the sanitized extension did not load:\n{res.stdout}{res.stderr}"
    # --capture=sys: the sanitizers write to file descriptor 2, which pytest's
    # default capture would swallow when they end the process
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "--capture=sys",
                          f"--rootdir={ROOT}", "-k", DESELECT, *(str(ROOT / t) for t in SUBSET)],
                         env=env, cwd=path,
                         capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out, _report(out)
    assert res.returncode == 0, out[-6000:]
    assert " passed" in res.stdout, out[-3000:]
