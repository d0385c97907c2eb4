"""The aarch64 and armhf builds, run under qemu, give the same integers as x86-64 for
every layer of quantized networks (tests/c/test_fixed.c prints a CRC-32 per layer).
Skipped when the cross tools are missing, unless MDFI_REQUIRE_CROSS=1."""
import subprocess

import numpy as np
import pytest

from cbuild import build
from fixed_models import quantized
from test_fixed_exact import synth_net
from test_program_builds import CROSS, tools_for


def crcs(cmd, *args, timeout=900):
    res = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("kernel ") and lines[-1] == "ok", res.stdout
    return lines[0].split()[1], lines[1:-1]


@pytest.fixture(scope="module")
def models(golden, tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross")
    x = np.load(golden / "yolov3-tiny" / "dog.input.npy").astype("<f4")
    x.tofile(tmp / "dog.f32")
    out = []
    for name, kw in (("tiny8", {}), ("tiny-mixed", dict(mixed_layers=(0, 2, 13)))):
        cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], name, **kw)
        out.append((name, cfg, qpath, tmp / "dog.f32"))
    cfg, qpath = synth_net(tmp)
    rng = np.random.default_rng(5)
    rng.normal(0, 1.5, (3, 11, 13)).astype("<f4").tofile(tmp / "synth.f32")
    out.append(("synth", cfg, qpath, tmp / "synth.f32"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_builds_give_identical_integers(arch, models):
    prefix, qemu = tools_for(arch)
    native = build(targets=("all", "tests")) / "tests" / "test_fixed"
    cross = build(cross=prefix, targets=("tests",)) / "tests" / "test_fixed"
    for name, cfg, qpath, inp in models:
        _, want = crcs([str(native)], cfg, qpath, inp)
        assert len(want) >= 5
        for kernel in ("auto", "ref") if name == "synth" else ("auto",):
            used, got = crcs([qemu, str(cross)], cfg, qpath, inp, "--kernel", kernel)
            assert got == want, f"{arch} ({used}) differs from x86-64 on {name}"
            print(f"{arch} {name} kernel {used}: {len(got)} integer layers identical to x86-64")
