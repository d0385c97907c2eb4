"""Pruning yolov3-tiny (examples/prune_yolo.py, docs/pruning-yolov3-tiny.md):
which of its channels can go and why, a pruned yolov3-tiny that MDFI runs
exactly as the masked unpruned model, the teacher's detection-aware loss,
the data split of the example, and the committed record's own arithmetic.
No training here."""
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mdfi  # noqa: E402
from bn_models import randomize_bn  # noqa: E402
from weights_tools.prune.costs import layer_flops  # noqa: E402
from weights_tools.prune.gates import masked  # noqa: E402
from weights_tools.prune.graph import ChannelGraph  # noqa: E402
from weights_tools.prune.rewrite import prune_model  # noqa: E402
from weights_tools.prune.tasks import TeacherTask, yolo_distillation  # noqa: E402
from weights_tools.torch import DarknetBatchNorm, import_darknet, save  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_CFG = ROOT / "tests" / "data" / "yolov3-tiny.cfg"      # the official cfg, 416x416
RECORD = ROOT / "docs" / "pruning-yolov3-tiny.json"
CONVS = [0, 2, 4, 6, 8, 10, 12, 13, 14, 15, 18, 21, 22]
YOLO_INPUTS = [15, 22]


def _example():
    key = "mdfi_examples_prune_yolo"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "examples" / "prune_yolo.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_at(res, weights=None):
    return import_darknet(_example().cfg_at(TINY_CFG.read_text(), res), weights).eval()


def _randomized_bn(model):
    """BN statistics and biases set, the scales kept (as this file always did)."""
    return randomize_bn(model, scales=False, bias_range=(-0.1, 0.3))


def test_yolov3_tiny_channel_groups_and_why_two_are_fixed():
    m = import_darknet(TINY_CFG)
    g = ChannelGraph(m)
    # every conv makes its own group: yolov3-tiny has no shortcut to merge two
    assert sorted(g.group_of) == CONVS
    assert all(len(grp.producers) == 1 for grp in g.groups)
    prunable = sorted(grp.producers[0] for grp in g.prunable())
    assert prunable == [c for c in CONVS if c not in YOLO_INPUTS]
    for i, yolo in zip(YOLO_INPUTS, (16, 23)):
        grp = g.group(g.group_of[i])
        # the channel layout of a [yolo] input is its meaning: 3 anchors x (5 + 80)
        assert grp.fixed == "layer %d ([yolo]) reads it" % yolo and grp.n == 255
    # the second head's route (layer 20) concatenates layer 19 (= 18 upsampled)
    # and layer 8: layer 21 reads both groups, so pruning either rewrites it
    assert g.in_counts(21) == {g.group_of[18]: 128, g.group_of[8]: 256}
    # layer 13's channels are read by layer 14 and, through route 17, by layer 18
    assert g.in_counts(14) == {g.group_of[13]: 256} == g.in_counts(18)


def test_random_keep_pruned_model_in_mdfi_equals_masked_unpruned_model(tiny_model, tmp_path):
    m = tiny_at(416, tiny_model["weights"])
    g = ChannelGraph(m)
    rng = np.random.default_rng(0)
    keep = {grp.id: np.sort(rng.choice(grp.n, rng.integers(grp.n // 4, grp.n), replace=False))
            for grp in g.prunable()}
    p = prune_model(m, keep, g)
    x = torch.from_numpy(np.random.default_rng(1).random((1, 3, 416, 416), dtype=np.float32))
    gates = masked(g, keep)
    with torch.no_grad():
        want = [t[0].numpy() for t in m(x, outputs=YOLO_INPUTS)]
    gates.detach()
    with torch.no_grad():
        unmasked = [t[0].numpy() for t in m(x, outputs=YOLO_INPUTS)]
        pytorch = [t[0].numpy() for t in p(x, outputs=YOLO_INPUTS)]
    cfg, weights = save(p, tmp_path / "pruned")
    assert os.path.getsize(weights) < 0.8 * os.path.getsize(tiny_model["weights"])
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        net.forward(x[0].numpy())
        got = [net.layer_output(i).reshape(w.shape) for i, w in zip(YOLO_INPUTS, want)]
    for a, b, c, u in zip(got, want, pytorch, unmasked):
        assert np.abs(a - b).max() <= 1e-4
        assert np.abs(c - b).max() <= 1e-4
        assert np.abs(u - b).max() > 1e-2       # the mask did change the output


def test_yolo_distillation_is_zero_only_at_the_teacher():
    t = torch.randn(2, 3 * 85, 4, 4) * 4
    assert float(yolo_distillation(t, t, 3, 80)) == pytest.approx(0.0, abs=1e-5)
    for channel in (0, 3, 4, 5 + 7):                  # x, h, objectness, a class score
        s = t.clone()
        s[:, channel] += 1.0
        assert float(yolo_distillation(s, t, 3, 80)) > 1e-4
    # a class score where the teacher sees no object costs (almost) nothing
    t[:, 4] = -30.0
    s = t.clone()
    s[:, 5:85] += 3.0
    assert float(yolo_distillation(s, t, 3, 80)) < 1e-9


def test_teacher_task_freezes_batch_norm_statistics():
    m = tiny_at(64)
    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    for freeze in (True, False):
        student = tiny_at(64)
        student.load_state_dict(m.state_dict())
        task = TeacherTask(m, x, x[:1], batch_size=2, shift=2, loss="yolo", freeze_bn=freeze)
        before = [b.running_mean.clone() for b in student.modules() if isinstance(b, DarknetBatchNorm)]
        student.train()
        task.loss(student, task.batch()).backward()
        after = [b.running_mean for b in student.modules() if isinstance(b, DarknetBatchNorm)]
        assert all(torch.equal(a, b) for a, b in zip(before, after)) == freeze
        assert any(b.weight.grad is not None for b in student.modules()
                   if isinstance(b, DarknetBatchNorm))
    assert task.score(m) == 0.0


def test_teacher_task_refuses_a_refit_without_rows():
    from weights_tools.prune import PruneError
    m = tiny_at(64)
    x = np.zeros((4, 3, 64, 64), np.float32)
    with pytest.raises(PruneError, match="reconstruct_rows=0"):
        TeacherTask(m, x, x[:1], batch_size=2, reconstruct=2, reconstruct_rows=0)
    TeacherTask(m, x, x[:1], batch_size=2, reconstruct=0, reconstruct_rows=0)   # no refit


def test_teacher_task_refuses_the_yolo_loss_without_yolo_heads():
    from weights_tools.prune import PruneError
    from weights_tools.torch import AvgPool, Connected, Conv, Darknet, Softmax
    net = Darknet((1, 8, 8), [Conv(1, 4, 3, pad=True, activation="leaky"), AvgPool(),
                              Connected(4, 3, activation="linear"), Softmax()])
    with pytest.raises(PruneError, match="yolo"):
        TeacherTask(net, np.zeros((4, 1, 8, 8), np.float32), np.zeros((1, 1, 8, 8), np.float32),
                    loss="yolo")


def test_example_never_prunes_on_the_held_back_photos():
    ex = _example()
    train = {os.path.basename(p) for p in ex.training_photos()}
    held = {os.path.basename(p) for p in ex.held_back_photos(None)}
    assert held == set(ex.HELD_BACK_SHIPPED) and not train & held
    assert len(train) >= 10
    x = ex.build_inputs(ex.training_photos()[:2], 5, 64, seed=0)
    assert x.shape == (5, 3, 64, 64) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert np.array_equal(x, ex.build_inputs(ex.training_photos()[:2], 5, 64, seed=0))


def test_committed_record_is_consistent():
    if not RECORD.exists():
        pytest.fail("%s is missing: run examples/prune_yolo.py" % RECORD)
    rec = json.loads(RECORD.read_text())
    assert rec["command"].startswith("python examples/prune_yolo.py")
    assert not set(rec["training_photos"]) & set(rec["held_back_photos"])
    m = import_darknet(TINY_CFG)
    g = ChannelGraph(m)
    full = sum(layer_flops(m))
    assert rec["results"]
    for r in rec["results"]:
        assert r["flops"] == pytest.approx(full, rel=1e-9)
        assert r["flops_ratio"] == pytest.approx(r["flops"] / r["flops_after"], rel=1e-9)
        assert r["speedup"] == pytest.approx(r["ms"] / r["ms_after"], rel=1e-9)
        keep = {int(k): np.array(v) for k, v in r["keep"].items()}
        p = prune_model(m, keep, g)
        # the recorded channels and FLOPs are those of the recorded keep
        assert sum(layer_flops(p)) == pytest.approx(r["flops_after"], rel=1e-9)
        for layer, (before, after) in r["channels"].items():
            assert m.shapes[int(layer)][0] == before and p.shapes[int(layer)][0] == after
        # the cost-aware rates reach the target within 5 %
        assert abs(r["flops_after"] / r["flops"] - r["target_flops"]) <= 0.05 * r["target_flops"]
        for d in (r["detections"], r["detections_with_mirrors"],
                  r["detections_with_mirrors_thresh_0.25"]):
            assert 0 <= d["kept"] <= d["float"]
            assert d["kept_pct"] == pytest.approx(100.0 * d["kept"] / d["float"])
        steps = r["training_steps"]
        assert steps["total"] == (r["groups_pruned"] * (steps["select_per_layer"]
                                                        + steps["tune_per_layer"]) + steps["final"])
        checks = r["checks_at_416"]
        assert checks["channels_equal_prune_model_of_416"]
        assert checks["mdfi_vs_pytorch_max_abs_diff_at_yolo_inputs"] <= 1e-4


def test_least_squares_reconstruction_fits_the_teacher_and_stays_exact(tmp_path):
    import copy

    from weights_tools.prune.reconstruct import readers, reconstruct
    m = _randomized_bn(tiny_at(64))
    teacher = copy.deepcopy(m)
    g = ChannelGraph(m)
    x = [torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    gid = g.group_of[13]
    assert readers(g, gid) == [14, 18]          # 18 through the route at 17
    # nothing removed: the teacher's own weights are the least-squares answer
    w14 = m.layers[14].weight.detach().clone()
    errors = reconstruct(m, teacher, g, gid, x)
    assert all(before < 1e-10 for before, _ in errors.values())
    assert torch.allclose(m.layers[14].weight, w14, atol=1e-4)
    # half of layer 13's channels removed: both readers move towards the teacher
    keep = {gid: np.arange(0, 256, 2)}
    gates = masked(g, keep)
    errors = reconstruct(m, teacher, g, gid, x)
    assert set(errors) == {14, 18}
    assert all(after < 0.5 * before for before, after in errors.values())
    with torch.no_grad():
        want = [t.numpy() for t in m(x[0], outputs=YOLO_INPUTS)]
    gates.detach()
    # the refit (weights, BN rolling means, biases) survives physical removal
    p = prune_model(m, keep, g)
    with torch.no_grad():
        got = [t.numpy() for t in p(x[0], outputs=YOLO_INPUTS)]
    for a, b in zip(got, want):
        assert np.abs(a - b).max() <= 1e-4


SMALL_DETECTOR = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=10,14,23,27,37,58
classes=2
num=3
"""


@pytest.mark.parametrize("method", ["c2s2", "fisher"])
def test_command_line_prunes_a_detector_on_unlabelled_images(tmp_path, capsys, method):
    """The teacher-mode options end to end on a small two-class detector:
    a .npy of unlabelled inputs, the yolo loss, frozen BN and the least-squares
    refit (C2S2 after each layer's choice, Fisher after its one-shot choice);
    the result loads in MDFI and matches PyTorch."""
    from weights_tools.__main__ import main
    cfg, weights = save(_randomized_bn(import_darknet(SMALL_DETECTOR)), tmp_path / "det")
    np.save(tmp_path / "inputs.npy",
            np.random.default_rng(0).random((10, 3, 64, 64), dtype=np.float32))
    out = tmp_path / "pruned"
    rc = main(["prune", "--cfg", cfg, "--weights", weights, "--data", str(tmp_path / "inputs.npy"),
               "--target-flops", "0.7", "--select-steps", "1", "--tune-steps", "1",
               "--epochs", "1", "--val-images", "2", "--teacher-loss", "yolo", "--freeze-bn",
               "--reconstruct", "4", "--reconstruct-rows", "64", "--torch-threads", "1",
               "--method", method, "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "least squares to the teacher" in text
    rec = json.loads((tmp_path / "pruned.json").read_text())
    assert rec["summary"]["score_name"] == "minus validation yolo distillation loss to the teacher"
    assert 0.5 < rec["summary"]["flops_after"] / rec["summary"]["flops"] <= 0.7
    assert rec["mdfi_vs_pytorch_max_abs_diff"] <= 1e-4


def test_yolo_curvature_is_the_distillation_loss_to_second_order():
    from weights_tools.prune.tasks import yolo_curvature
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 3 * 9, 5, 6, generator=g, dtype=torch.float64) * 2
    h = yolo_curvature(t, 3, 4)
    for scale in (1e-3, 1e-4):
        d = torch.randn(t.shape, generator=g, dtype=torch.float64) * scale
        rise = float(yolo_distillation(t + d, t, 3, 4))
        # the loss averages over the 2 images; the curvature is per image
        assert rise == pytest.approx(float(0.5 * (h * d * d).sum() / 2), rel=0.02)


def _linear_teacher():
    from weights_tools.torch import Conv, Darknet
    net = Darknet((2, 6, 6), [Conv(2, 5, 3, pad=True, activation="linear"),
                              Conv(5, 3, 1, activation="linear")])
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.normal_()
            layer.bias.normal_()
    return net.eval()


def test_teacher_fisher_estimates_the_loss_a_channel_removal_costs():
    """The student starts equal to its teacher, so the loss's gradient is zero;
    TeacherTask.sensitivity still gives each channel the rise of the loss its
    removal causes (exact for a linear network: the MSE of its contribution)."""
    from weights_tools.prune.importance import fisher
    net = _linear_teacher()
    x = np.random.default_rng(0).standard_normal((64, 2, 6, 6)).astype(np.float32)
    task = TeacherTask(net, x, x[:4], batch_size=4, shift=0, flip=False, loss="mse")
    with torch.no_grad():
        assert float(task.loss(net, task.batch())) == 0.0
    g = ChannelGraph(net)
    gid = g.group_of[0]
    got = fisher(net, task, g, batches=400)[gid]
    exact = []
    with torch.no_grad():
        full = net(torch.from_numpy(x), outputs=[1])[0]
        for c in range(5):
            gates = masked(g, {gid: np.delete(np.arange(5), c)})
            exact.append(float(((net(torch.from_numpy(x), outputs=[1])[0] - full) ** 2).mean()))
            gates.detach()
    assert np.all(got > 0)
    np.testing.assert_allclose(got, exact, rtol=0.3)
    assert list(np.argsort(got)) == list(np.argsort(exact))


def test_weighted_least_squares_is_least_squares_on_the_weighted_rows():
    from weights_tools.prune.reconstruct import _solve, _solve_weighted
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    t = torch.randn(200, 4, generator=g, dtype=torch.float64)
    w0 = torch.randn(4, 6, generator=g, dtype=torch.float64)
    w, c = _solve(x, t, w0, 1e-3)
    ones = torch.ones(200, 4, dtype=torch.float64)
    wu, cu = _solve_weighted(x, t, ones * 3.0, w0, 1e-3)       # uniform: the same problem
    assert torch.allclose(w, wu, atol=1e-10) and torch.allclose(c, cu, atol=1e-10)
    # zero weight on the second half of the rows for channels 0 and 2 only
    rows = ones.clone()
    rows[100:, 0] = rows[100:, 2] = 0.0
    ww, cw = _solve_weighted(x, t, rows, w0, 1e-3)
    wh, ch = _solve(x[:100], t[:100], w0, 1e-3)
    for j in (0, 2):
        assert torch.allclose(ww[j], wh[j], atol=1e-10) and torch.allclose(cw[j], ch[j])
    for j in (1, 3):
        assert torch.allclose(ww[j], w[j], atol=1e-10)


def test_head_reconstruction_weights_rows_by_the_teachers_objectness():
    m = tiny_at(64)
    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    task = TeacherTask(m, x, x[:1], batch_size=2, loss="yolo")
    assert task.head_weight(14, torch.zeros(1, 512, 2, 2)) is None
    a = torch.randn(2, 255, 2, 2)
    w = task.head_weight(15, a).reshape(2, 3, 85, 2, 2)
    obj = torch.sigmoid(a.reshape(2, 3, 85, 2, 2)[:, :, 4])
    for k in range(85):
        assert torch.equal(w[:, :, k], obj)
    assert TeacherTask(m, x, x[:1], batch_size=2, loss="mse").head_weight(15, a) is None


def test_example_defaults_are_the_recorded_recipe():
    ex = _example()
    args = ex.parse([])
    assert (args.method, args.rates, args.select_steps) == ("fisher", "fisher", 0)
    assert ex.parse(["--method", "c2s2"]).select_steps == 6      # C2S2 needs its phase 1
    assert ex.parse(["--method", "c2s2", "--select-steps", "2"]).select_steps == 2
    rec = json.loads(RECORD.read_text())
    if rec.get("method") == "fisher":      # the record is what the defaults reproduce
        assert rec["command"] == "python examples/prune_yolo.py --torch-threads 1"
        assert rec["reconstruct_inputs"] == args.reconstruct and rec["lr"] == args.lr
        assert rec["max_prune"] == args.max_prune
