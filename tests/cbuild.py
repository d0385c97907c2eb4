"""Builds the C core with the project's Makefile, once per pytest session and flavour."""
import functools
import os
import pathlib
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
