"""Builds the C core with the project's Makefile, once per pytest session and
flavour, and runs its self-checking C drivers."""
import functools
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _triple(cross=""):
    out = subprocess.run([cross + "gcc", "-dumpmachine"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@functools.lru_cache(maxsize=None)
def build(cross="", sanitize=False, targets=("all", "tests")):
    """Runs make and returns the build directory (a pathlib.Path)."""
    args = ["make", "-s", f"-j{os.cpu_count() or 2}"]
    if cross:
        args.append(f"CROSS={cross}")
    if sanitize:
        args.append("SANITIZE=1")
    args += list(targets)
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return ROOT / "build" / (_triple(cross) + ("-san" if sanitize else ""))


SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def run_driver(cmd, timeout):
    """Runs a tests/c driver; asserts it exited 0, printed no FAIL line and a
    summary with some passed and none failed.  Returns its stdout."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert res.returncode == 0 and not failures, "\n".join(failures[:20]) or out[-4000:]
    m = SUMMARY.search(res.stdout)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", out[-2000:]
    return res.stdout


def variants_ok(stdout):
    """The kernel variants a driver reports as "NAME ok"."""
    return {m.group(1) for m in re.finditer(r"^([\w-]+)\s+ok$", stdout, re.M)}
