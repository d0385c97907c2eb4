"""benchmarks/int8_budget.py, the validation that chose the --int8 recipe's 16-bit
budget, in one short run: two budgets on the two folds of the calibration photos."""
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("int8_budget", ROOT / "benchmarks" /
                                                  "int8_budget.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_16bit_layers_keep_more_float_hits_on_held_out_calibration_photos(tiny_model, tmp_path,
                                                                           capsys):
    pytest.importorskip("skimage")
    budget = _load()
    assert budget.main(["--budgets", "0", "0.3", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {float(b): (int(k), int(n)) for b, k, n in
            re.findall(r"^\| ([0-9.]+) \| (\d+) of (\d+) ", out, re.M)}
    assert set(rows) == {0.0, 0.3}, out
    (k0, n0), (k3, n3) = rows[0.0], rows[0.3]
    assert n0 == n3 > 20, out          # the same float hits, enough to count
    assert k3 > k0, out                # 16-bit input where it matters keeps more of them
    assert re.search(r"smallest budget: 0\.3 \(the recipe has 0\.3\)", out), out
