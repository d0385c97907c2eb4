"""The fuzz targets of tests/fuzz/ (docs/architecture.md#fuzzing) under ASan/UBSan,
in the built-in mutation loop (tests/fuzz/fuzz_main.c, any compiler), so that the
suite fuzzes every input parser even where clang and libFuzzer are missing:

- the cfg tokenizer, cfg -> network (shapes, routes, plan, a forward on zeros),
  the .weights reader against a fixed cfg, the .qweights reader, PNM and the
  stream frame splitter (concatenated JPEG / PNM);
- each target's committed corpus (seeds and the inputs of fixed findings) runs clean;
- a bounded mutation run of each target (MDFI_FUZZ_TARGET_SECONDS, default 8 s each)
  finds nothing: no sanitizer report, no crash, no failure without a message.
The JPEG target has its own loop in tests/test_jpeg.py."""
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import ROOT, _triple, build  # noqa: E402

TARGETS = ["cfg", "net", "weights", "qweights", "pnm", "stream"]
FUZZ = ROOT / "tests" / "fuzz"
DICT = {"cfg": FUZZ / "cfg.dict", "net": FUZZ / "cfg.dict"}


def san_env(tmp_path):
    # abort_on_error: a UBSan report reaches the loop's handler, which saves the input
    return dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1",
                MDFI_FUZZ_CRASH_DIR=str(tmp_path))


@pytest.fixture(scope="module")
def loops():
    sub = _triple() + "-san"
    out = build(sanitize=True, targets=tuple(f"build/{sub}/fuzz/fuzz_{t}" for t in TARGETS))
    return {t: out / "fuzz" / f"fuzz_{t}" for t in TARGETS}


def check(res, tmp_path):
    crash = list(tmp_path.glob("fuzz-crash-*"))
    detail = (res.stdout[-2000:], res.stderr[-4000:], [p.read_bytes()[:2000] for p in crash])
    assert res.returncode == 0 and not crash, detail
    assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, detail


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_runs_clean(loops, target, tmp_path):
    corpus = FUZZ / "corpus" / target
    assert len(list(corpus.iterdir())) >= 2
    res = subprocess.run([str(loops[target]), "--run", str(corpus)], capture_output=True,
                         text=True, timeout=300, env=san_env(tmp_path))
    check(res, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_mutation_run_finds_nothing(loops, target, tmp_path):
    seconds = float(os.environ.get("MDFI_FUZZ_TARGET_SECONDS", "8"))
    args = [str(loops[target]), "--seconds", str(seconds), "--seed", "20"]
    if target in DICT:
        args += ["--dict", str(DICT[target])]
    res = subprocess.run(args + [str(FUZZ / "corpus" / target)], capture_output=True, text=True,
                         timeout=seconds + 300, env=san_env(tmp_path))
    check(res, tmp_path)
    n = int(res.stdout.split(" ran ")[1].split()[0])
    assert n >= 100, res.stdout
    print(res.stdout)


def test_loop_saves_a_failing_input(tmp_path):
    """The loop itself: an input that aborts is written out for reproduction."""
    src = tmp_path / "fuzz_boom.c"
    src.write_text("#include <stdint.h>\n#include <stddef.h>\n#include <stdlib.h>\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n"
                   "{ if (n == 3 && d[0] == 'B') abort(); return 0; }\n")
    exe = tmp_path / "fuzz_boom"
    subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-o", str(exe), str(src),
                    str(FUZZ / "fuzz_main.c")], check=True, cwd=ROOT)
    seed = tmp_path / "seed"
    seed.write_bytes(b"xyz")
    ok = subprocess.run([str(exe), "--run", str(seed)], capture_output=True, text=True,
                        env=san_env(tmp_path))
    assert ok.returncode == 0 and "ran 1 inputs" in ok.stdout
    seed.write_bytes(b"Bad")
    bad = subprocess.run([str(exe), "--run", str(seed)], capture_output=True, text=True,
                         env=san_env(tmp_path))
    assert bad.returncode != 0 and "fuzz-crash-fuzz_boom" in bad.stderr
    assert (tmp_path / "fuzz-crash-fuzz_boom").read_bytes() == b"Bad"
