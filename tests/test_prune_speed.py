"""benchmarks/prune_speed.py: the engine's speed-up of pruned models beside
their FLOPs ratio, timed in C by the mdfi program (a benchmark; here only its
arithmetic and its errors, on two runs of a few forwards)."""
import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("torch")

from mdfi.bench import native_program, program_ms  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"


def _bench():
    spec = importlib.util.spec_from_file_location("prune_speed",
                                                  ROOT / "benchmarks" / "prune_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def exe():
    path = native_program()
    if path is None:
        pytest.skip("the mdfi program is not built")
    return path


def test_reports_speedup_beside_the_flops_ratio(exe, tmp_path, capsys):
    out = tmp_path / "speed.json"
    models = [str(MODELS / "fmnist_vgg"), str(MODELS / "fmnist_vgg_c2s2")]
    assert _bench().main(["--models", *models, "--rounds", "2", "--runs", "3",
                          "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    first, pruned = rec["models"]
    assert first["flops_ratio"] == 1.0 and first["speedup"] == 1.0
    assert pruned["flops_ratio"] == pytest.approx(first["flops"] / pruned["flops"])
    assert pruned["flops_ratio"] > 2.5                      # the committed 3x model
    assert pruned["speedup"] == pytest.approx(first["c_ms"] / pruned["c_ms"])
    assert pruned["speedup_of_flops_ratio"] == pytest.approx(
        pruned["speedup"] / pruned["flops_ratio"])
    assert pruned["speedup_min"] == pytest.approx(first["c_min_ms"] / pruned["c_min_ms"])
    assert pruned["speedup_min_of_flops_ratio"] == pytest.approx(
        pruned["speedup_min"] / pruned["flops_ratio"])
    for key, stat in (("per_round_c_ms", "c_ms"), ("per_round_c_min_ms", "c_min_ms")):
        per_round = rec[key]["fmnist_vgg_c2s2"]
        assert len(per_round) == 2
        assert pruned[stat] == pytest.approx(sum(per_round) / 2)   # the median of two
    assert all(lo <= m for lo, m in zip(rec["per_round_c_min_ms"]["fmnist_vgg"],
                                        rec["per_round_c_ms"]["fmnist_vgg"]))
    assert "fmnist_vgg_c2s2" in capsys.readouterr().out


def test_program_ms_names_the_file_it_cannot_run(exe, tmp_path):
    bad = tmp_path / "missing.cfg"
    with pytest.raises(RuntimeError, match="missing.cfg"):
        program_ms(exe, bad, tmp_path / "missing.weights", 2)
    m, lo = program_ms(exe, MODELS / "fmnist_vgg.cfg", MODELS / "fmnist_vgg.weights", 3)
    assert 0 < lo <= m
