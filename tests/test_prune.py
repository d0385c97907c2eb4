"""Channel pruning (weights_tools.prune, docs/pruning.md): the channel groups,
physical removal checked against the masked model and against MDFI, the cost
model checked against the pruned model's own FLOPs, the cost-aware rates'
targets, the gates' straight-through gradient, the three methods and the
command line, and the errors that name the layer."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mdfi  # noqa: E402
from weights_tools.prune import PruneError  # noqa: E402
from weights_tools.prune.costs import CostModel, layer_flops  # noqa: E402
from weights_tools.prune.gates import ChannelGate, Gates, masked  # noqa: E402
from weights_tools.prune.graph import ChannelGraph  # noqa: E402
from weights_tools.prune.methods import Budget, c2s2, fisher_select, l1_norm, slimming  # noqa: E402
from weights_tools.prune.importance import fisher  # noqa: E402
from weights_tools.prune.rates import allocate, allocate_importance  # noqa: E402
from weights_tools.prune.rewrite import check_keep, prune_model  # noqa: E402
from weights_tools.prune.tasks import LabelledTask  # noqa: E402
from bn_models import randomize_bn  # noqa: E402
from weights_tools.torch import (AvgPool, Connected, Conv, Darknet, Exit, MaxPool,  # noqa: E402
                                 Route, Shortcut, Softmax, Upsample, import_darknet, save)


@pytest.fixture(autouse=True)
def _seed(torch_seeded):
    yield


def cbl(c, n, size=3, stride=1, **kw):
    return Conv(c, n, size, stride, pad=True, batch_normalize=True, activation="leaky", **kw)


def wired_model():
    """Every kind of channel wiring: a shortcut tying two convs, a route
    concatenating two groups, upsample, maxpool, a grouped conv, a [connected]
    reading the flattened map, and the final softmax."""
    return randomize_bn(Darknet((3, 16, 16), [
        cbl(3, 8),                      # 0  group A
        cbl(8, 8),                      # 1  group B, tied to A by the shortcut
        Shortcut(-2),                   # 2
        MaxPool(2, 2),                  # 3
        cbl(8, 12),                     # 4  group C
        cbl(12, 6, 1),                  # 5  group D
        Upsample(2),                    # 6
        Route([6, 2]),                  # 7  D (upsampled) + A/B: 14 channels
        cbl(14, 10, 3, 2),              # 8  group E
        cbl(10, 10, 3, groups=5),       # 9  grouped: E and F fixed
        cbl(10, 6, 1),                  # 10 group G
        Connected(6 * 8 * 8, 5, activation="linear"),   # 11 reads G flattened
        Softmax(),                      # 12
    ]))


def random_keep(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {g.id: np.sort(rng.choice(g.n, rng.integers(1, g.n), replace=False))
            for g in graph.prunable()}


def test_groups_follow_the_wiring_rules():
    m = wired_model()
    g = ChannelGraph(m)
    by_producer = {tuple(grp.producers): grp for grp in g.groups}
    assert (0, 1) in by_producer and by_producer[(0, 1)].fixed is None   # merged by the shortcut
    assert by_producer[(8,)].fixed and "grouped convolution" in by_producer[(8,)].fixed
    assert by_producer[(9,)].fixed and "grouped" in by_producer[(9,)].fixed
    assert by_producer[(11,)].fixed and "[softmax]" in by_producer[(11,)].fixed
    assert {tuple(grp.producers) for grp in g.prunable()} == {(0, 1), (4,), (5,), (10,)}
    # the route reads 6 channels of D then 8 of the merged A/B group
    assert g.in_counts(8) == {g.find(g.group_of[5]): 6, g.find(g.group_of[0]): 8}


def test_yolov3_tiny_groups():
    m = import_darknet("tests/data/yolov3-tiny.cfg")
    g = ChannelGraph(m)
    fixed = [grp for grp in g.groups if grp.fixed]
    assert sorted(grp.producers[0] for grp in fixed) == [15, 22]
    assert all("[yolo]" in grp.fixed for grp in fixed)
    assert len(g.prunable()) == 11


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruned_model_equals_masked_model_and_mdfi(seed, tmp_path):
    m = wired_model()
    g = ChannelGraph(m)
    keep = random_keep(g, seed)
    p = prune_model(m, keep, g)
    assert p.shapes[0][0] == p.shapes[1][0] == len(keep[g.find(g.group_of[0])])
    x = torch.rand(2, *m.input_shape)
    gates = masked(g, keep)
    with torch.no_grad():
        want = m(x, outputs=[7, 11])
    gates.detach()
    with torch.no_grad():
        got = p(x, outputs=[7, 11])
        unmasked = m(x, outputs=[11])[0]
    rows = torch.from_numpy(np.flatnonzero(np.isin(np.arange(14), np.concatenate(
        [keep[g.find(g.group_of[5])], 6 + keep[g.find(g.group_of[0])]]))))
    assert torch.allclose(got[0], want[0][:, rows], atol=1e-5)
    assert torch.allclose(got[1], want[1], atol=1e-5)
    assert not torch.allclose(got[1], unmasked, atol=1e-3)   # the mask did change something
    cfg, weights = save(p, tmp_path / "p")
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        out = net.forward(x[0].numpy())
        logits = net.layer_output(11)
    assert np.abs(logits.reshape(-1) - got[1][0].numpy().reshape(-1)).max() <= 1e-4
    with torch.no_grad():
        assert np.abs(out.reshape(-1) - p(x)[0].numpy().reshape(-1)).max() <= 1e-6


def test_cost_model_predicts_the_pruned_flops_exactly():
    m = wired_model()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    for seed in range(4):
        keep = random_keep(g, seed)
        predicted = costs.total({gid: len(idx) / g.group(gid).n for gid, idx in keep.items()})
        assert predicted == pytest.approx(sum(layer_flops(prune_model(m, keep, g))), rel=1e-9)


def vgg(widths=(16, 16, "M", 32, 32, "M", 64, 64), classes=10, shape=(1, 28, 28)):
    layers, c = [], shape[0]
    for w in widths:
        if w == "M":
            layers.append(MaxPool(2, 2))
        else:
            layers.append(cbl(c, w))
            c = w
    return randomize_bn(Darknet(shape, layers + [AvgPool(), Connected(c, classes, activation="linear"),
                                                 Softmax()]))


@pytest.mark.parametrize("target", [0.5, 0.33, 0.2])
@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_rates_hit_a_flops_target_within_5_percent(target, power):
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    counts = allocate(costs, target * costs.total(), max_prune=0.9, power=power)
    keep = {gid: np.arange(k) for gid, k in counts.items()}
    got = sum(layer_flops(prune_model(m, keep, g))) / sum(layer_flops(m))
    assert abs(got - target) <= 0.05 * target
    assert all(k >= np.ceil(g.group(gid).n * 0.1) for gid, k in counts.items())


def test_rates_guard_against_over_pruning_and_impossible_targets():
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    counts = allocate(costs, 0.4 * costs.total(), max_prune=0.5, power=1.0)
    assert all(k >= g.group(gid).n // 2 for gid, k in counts.items())
    with pytest.raises(PruneError, match="cannot be met.*max_prune=0.50"):
        allocate(costs, 0.1 * costs.total(), max_prune=0.5)


def test_cost_aware_rates_prune_costly_channels_harder():
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    per = costs.per_channel()
    counts = allocate(costs, 0.5 * costs.total(), max_prune=0.9, power=1.0)
    frac = {gid: 1 - k / g.group(gid).n for gid, k in counts.items()}
    dear, cheap = max(per, key=per.get), min(per, key=per.get)
    assert frac[dear] > frac[cheap]


class _FixedBatch:
    """A task whose every batch is the same images (so an independent
    computation can see exactly what fisher() saw)."""

    def __init__(self, task, n=12):
        self._task, self._x = task, task.batch()
        self._x = (self._x[0][:n], self._x[1][:n])

    def batch(self):
        return self._x

    def loss(self, model, batch):
        return self._task.loss(model, batch)


def test_fisher_importance_is_half_the_mean_squared_per_image_gradient():
    m = wired_model()
    g = ChannelGraph(m)
    task = _FixedBatch(LabelledTask(*_wired_data(), batch_size=16, seed=1))
    got = fisher(m, task, g, batches=2)
    # independently: one image at a time through C2S2's own gates (their
    # straight-through backward is the gradient of the mask)
    x, y = task.batch()
    want = {grp.id: np.zeros(grp.n) for grp in g.prunable()}
    gates = Gates(g)
    try:
        m.eval()
        for i in range(len(y)):
            for gate in gates.gates.values():
                gate.s.grad = None
            task.loss(m, (x[i:i + 1], y[i:i + 1])).backward()
            for gid, gate in gates.gates.items():
                want[gid] += 0.5 * gate.s.grad.double().numpy() ** 2 / len(y)
    finally:
        gates.detach()
    assert set(got) == set(want)
    for gid in want:
        assert np.allclose(got[gid], want[gid], rtol=1e-4, atol=1e-12), gid
        assert want[gid].max() > 0


def _wired_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3, 16, 16), dtype=np.float32), rng.integers(0, 5, n),
            rng.random((8, 3, 16, 16), dtype=np.float32), rng.integers(0, 5, 8))


def _random_importance(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {grp.id: rng.random(grp.n) for grp in graph.prunable()}


@pytest.mark.parametrize("target", [0.5, 0.33, 0.2])
def test_importance_rates_hit_a_flops_target_within_5_percent(target):
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    counts = allocate_importance(costs, _random_importance(g), target * costs.total(),
                                 max_prune=0.9)
    keep = {gid: np.arange(k) for gid, k in counts.items()}
    got = sum(layer_flops(prune_model(m, keep, g))) / sum(layer_flops(m))
    assert got <= target and abs(got - target) <= 0.05 * target
    assert all(k >= np.ceil(g.group(gid).n * 0.1) for gid, k in counts.items())


def test_importance_rates_cut_where_the_loss_cares_least_per_cost():
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    ids = [grp.id for grp in g.prunable()]
    imp = {gid: np.ones(g.group(gid).n) for gid in ids}
    imp[ids[0]] = np.zeros(g.group(ids[0]).n)          # worthless: cut to the guard first
    imp[ids[-1]] = np.full(g.group(ids[-1]).n, 1e9)      # precious: never cut
    counts = allocate_importance(costs, imp, 0.6 * costs.total(), max_prune=0.75)
    assert counts[ids[0]] == np.ceil(g.group(ids[0]).n * 0.25)
    assert counts[ids[-1]] == g.group(ids[-1]).n
    # with equal importance, the dearer channels go first
    flat = {gid: np.ones(g.group(gid).n) for gid in ids}
    counts = allocate_importance(costs, flat, 0.8 * costs.total(), max_prune=0.9)
    per = costs.per_channel()
    dear, cheap = max(per, key=per.get), min(per, key=per.get)
    assert 1 - counts[dear] / g.group(dear).n > 1 - counts[cheap] / g.group(cheap).n


def test_importance_rates_refuse_impossible_targets_and_missing_layers():
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    imp = _random_importance(g)
    with pytest.raises(PruneError, match="cannot be met.*max_prune=0.50"):
        allocate_importance(costs, imp, 0.1 * costs.total(), max_prune=0.5)
    first = g.prunable()[0].id
    del imp[first]
    with pytest.raises(PruneError, match=r"layer 0 \(\[convolutional\]\)"):
        allocate_importance(costs, imp, 0.5 * costs.total())


def test_keep_errors_name_the_layer():
    m = import_darknet("tests/data/yolov3-tiny.cfg")
    g = ChannelGraph(m)
    with pytest.raises(PruneError, match=r"layer 15 \(\[convolutional\]\) cannot lose channels: "
                       r"layer 16 \(\[yolo\]\) reads it"):
        check_keep(g, {g.group_of[15]: np.arange(100)})
    with pytest.raises(PruneError, match=r"layer 0 \(\[convolutional\]\) would lose all its 16"):
        check_keep(g, {g.group_of[0]: []})


def test_exit_branches_are_refused_naming_the_layer():
    m = Darknet((1, 12, 12), [
        cbl(1, 4), MaxPool(2, 2),
        Exit(branch=[Connected(4 * 6 * 6, 3, activation="linear"), Softmax()]),
        cbl(4, 4), AvgPool(), Connected(4, 3, activation="linear"), Softmax()])
    with pytest.raises(PruneError, match=r"layer 2 \(\[exit\]\).*early-exit"):
        ChannelGraph(m)


def test_gate_is_binary_forward_and_straight_through_backward():
    gate = ChannelGate(4)
    with torch.no_grad():
        gate.s.copy_(torch.tensor([1.0, 0.4, 0.6, -3.0]))
    x = torch.ones(1, 4, 2, 2)
    y = gate(x)
    assert y[0, :, 0, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    y.sum().backward()
    assert gate.s.grad.tolist() == [4.0, 4.0, 4.0, 0.0]   # |s| > 2 clips the gradient
    gate.freeze(np.array([0, 1, 1, 0], np.float32))
    assert gate(x)[0, :, 0, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def tiny_task(n=256, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 1, 28, 28), dtype=np.float32) * 0.2
    for i, c in enumerate(y):            # a learnable class signal: a bright stripe per class
        x[i, 0, 2 * c:2 * c + 3] += 0.8
    return LabelledTask(x[:192], y[:192], x[192:], y[192:], batch_size=32, seed=seed)


@pytest.mark.parametrize("method", ["c2s2", "l1", "slimming", "fisher"])
def test_methods_reach_the_counts_and_stay_exact(method):
    m = vgg()
    g = ChannelGraph(m)
    costs = CostModel(g, layer_flops(m))
    counts = allocate(costs, 0.5 * costs.total(), max_prune=0.75, power=0.5)
    task = tiny_task()
    budget = Budget(select=3, tune=3, final=4)
    n = sum(1 for gid, k in counts.items() if k < g.group(gid).n)
    if method == "c2s2":
        keep, tuned = c2s2(m, task, counts, budget, log=lambda s: None)
    elif method == "l1":
        keep, tuned = l1_norm(m, task, counts, budget, n, log=lambda s: None)
    elif method == "fisher":
        importance = fisher(m, task, g, batches=2)
        keep, tuned = fisher_select(m, task, counts, importance, budget, n, log=lambda s: None)
        for gid, idx in keep.items():        # the most important channels, and only those
            assert importance[gid][idx].min() >= np.delete(importance[gid], idx).max()
    else:
        goal = costs.total({gid: k / g.group(gid).n for gid, k in counts.items()})
        keep, tuned = slimming(m, task, lambda c: costs.total(
            {gid: k / g.group(gid).n for gid, k in c.items()}) <= goal, budget, n,
            log=lambda s: None)
    if method != "slimming":
        assert {gid: len(idx) for gid, idx in keep.items()} == {
            gid: k for gid, k in counts.items() if k < g.group(gid).n}
    p = prune_model(m, keep, g)
    assert sum(layer_flops(p)) <= 0.5 * sum(layer_flops(m)) * 1.0001
    assert tuned.shapes == p.shapes
    x = torch.rand(3, 1, 28, 28)
    gates = masked(g, keep)
    with torch.no_grad():
        want = m(x)
    gates.detach()
    with torch.no_grad():
        assert torch.allclose(p(x), want, atol=1e-6)


def test_c2s2_phase_one_learns_which_channels_matter():
    """Two of eight channels carry the signal (the rest are scaled to nothing);
    phase 1 alone must keep those two."""
    m = vgg(widths=(8,), shape=(1, 28, 28))
    with torch.no_grad():
        m.layers[0].bn.weight[2:] = 1e-3
        m.layers[0].bias[2:] = 0
    task = tiny_task()
    # train the head on the two live channels first
    from weights_tools.prune.methods import train_steps
    train_steps(m, task, 150, [m.layers[2].weight, m.layers[2].bias], 0.05)
    g = ChannelGraph(m)
    keep, _ = c2s2(m, task, {g.group_of[0]: 2}, Budget(select=60, tune=0, final=0, gate_lr=0.05, joint=False,
                                                   lam=0.5), log=lambda s: None)
    assert keep[g.group_of[0]].tolist() == [0, 1]


@pytest.mark.parametrize("joint", [False, True])
def test_c2s2_phase_one_trains_the_weights_only_when_joint(joint):
    m = vgg(widths=(8,), shape=(1, 28, 28))
    g = ChannelGraph(m)
    before = [p.detach().clone() for p in m.parameters()]
    c2s2(m, tiny_task(), {g.group_of[0]: 4}, Budget(select=5, tune=0, final=0, joint=joint),
         log=lambda s: None)
    changed = [not torch.equal(a, b) for a, b in zip(before, m.parameters())]
    assert any(changed) == joint


def digits_files(tmp_path):
    pytest.importorskip("sklearn")
    return "examples/models/digits_float.cfg", "examples/models/digits_float.weights"


def test_command_line_writes_a_smaller_model_mdfi_and_quantize_load(tmp_path, capsys):
    from weights_tools.__main__ import main
    cfg, weights = digits_files(tmp_path)
    out = tmp_path / "pruned"
    rc = main(["prune", "--cfg", cfg, "--weights", weights, "--data", "digits",
               "--target-flops", "0.5", "--select-steps", "2", "--tune-steps", "2",
               "--epochs", "0.1", "--batch-size", "32", "--torch-threads", "1", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rec = json.loads((tmp_path / "pruned.json").read_text())
    s = rec["summary"]
    assert abs(s["flops_after"] / s["flops"] - 0.5) <= 0.025
    assert rec["mdfi_vs_pytorch_max_abs_diff"] <= 1e-4
    assert "channels" in text and "MFLOPs" in text and "ms" in text
    assert (tmp_path / "pruned.weights").stat().st_size < __import__("os").path.getsize(weights)
    # every layer's kept channels in the record match the files MDFI builds
    with mdfi.Network(str(out) + ".cfg", str(out) + ".weights") as net:
        assert [l.output_shape[0] for l in net.layers] == [r["kept"] for r in rec["layers"]]
    # fixed point through weights_tools quantize
    from mdfi.datasets import load
    x = load("digits").x_train[:20]
    np.save(tmp_path / "calib.npy", x)
    assert main(["quantize", str(out) + ".cfg", str(out) + ".weights", "--calib",
                 str(tmp_path / "calib.npy"), "-o", str(tmp_path / "q")]) == 0
    with mdfi.Network(str(tmp_path / "q.cfg"), str(tmp_path / "q.qweights")) as qnet, \
            mdfi.Network(str(out) + ".cfg", str(out) + ".weights") as fnet:
        agree = np.mean([np.argmax(qnet.forward(v)) == np.argmax(fnet.forward(v)) for v in x])
    assert agree >= 0.9


def test_command_line_fisher_rates(tmp_path, capsys):
    from weights_tools.__main__ import main
    cfg, weights = digits_files(tmp_path)
    out = tmp_path / "pruned"
    rc = main(["prune", "--cfg", cfg, "--weights", weights, "--data", "digits", "--rates", "fisher",
               "--method", "l1", "--target-flops", "0.4", "--epochs", "0.1", "--batch-size", "32",
               "--torch-threads", "1", "-o", str(out)])
    assert rc == 0, capsys.readouterr()
    rec = json.loads((tmp_path / "pruned.json").read_text())
    s = rec["summary"]
    assert s["rates"] == "fisher"
    assert 0.38 <= s["flops_after"] / s["flops"] <= 0.4
    assert rec["mdfi_vs_pytorch_max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("args, message", [
    (["--target-flops", "0.02"], "cannot be met"),
    (["--target-flops", "1.5"], "fraction"),
    (["--target-ms", "-1"], "positive"),
])
def test_command_line_refuses_bad_targets(tmp_path, capsys, args, message):
    from weights_tools.__main__ import main
    cfg, weights = digits_files(tmp_path)
    rc = main(["prune", "--cfg", cfg, "--weights", weights, "--data", "digits", "-o",
               str(tmp_path / "p"), "--torch-threads", "1"] + args)
    assert rc == 1
    assert message in capsys.readouterr().err


def test_command_line_names_the_layer_it_cannot_rewrite(tmp_path, capsys):
    from weights_tools.__main__ import main
    cfg = "examples/models/mnist_branchy_lenet.cfg"
    rc = main(["prune", "--cfg", cfg, "--weights", cfg.replace(".cfg", ".weights"), "--data",
               "digits", "--target-flops", "0.5", "-o", str(tmp_path / "p")])
    assert rc == 1
    assert "([exit])" in capsys.readouterr().err


def test_target_ms_is_reached_by_measuring_candidates(monkeypatch):
    """--target-ms: the rates come from the per-layer profile, then candidates
    are measured until one lands within 2 %.  The 'engine' here is a stand-in
    whose whole-forward time is not the sum of its layer times (a fixed cost
    plus a per-layer cost that is not linear in the channels), so the loop
    must correct the profile model's guess."""
    from weights_tools.prune import run

    def fake_measure(model, **kw):  # noqa: ARG001
        per = [f / 1e6 + (0.003 if f else 0.0) for f in layer_flops(model)]
        return per, 0.05 + 1.15 * sum(per)

    def fake_relative(reference, model, **kw):  # noqa: ARG001
        return fake_measure(model)[1] / fake_measure(reference)[1]

    monkeypatch.setattr(run, "measure_ms", fake_measure)
    monkeypatch.setattr(run, "relative_ms", fake_relative)
    m = vgg()
    g = ChannelGraph(m)
    full = fake_measure(m)[1]
    counts, _, _, _ = run.plan_counts(m, g, target_ms=0.5 * full, max_prune=0.9,
                                      log=lambda s: None)
    got = fake_measure(prune_model(m, {k: np.arange(v) for k, v in counts.items()}, g))[1]
    assert abs(got - 0.5 * full) <= 0.05 * 0.5 * full
    with pytest.raises(PruneError, match="fixed cost"):
        run.plan_counts(m, g, target_ms=0.04, log=lambda s: None)


def test_relative_ms_times_two_models_in_turns():
    """A model against itself is about 1 (the two are timed in turns, so a
    slower machine moves both); a model with a quarter of the FLOPs is faster
    than that, on both paths."""
    from weights_tools.prune.costs import relative_ms
    m = vgg(widths=(32, 32, "M", 64, 64))
    g = ChannelGraph(m)
    small = prune_model(m, {grp.id: np.arange(grp.n // 4) for grp in g.prunable()}, g)
    for path in ("float", "int8"):
        same = relative_ms(m, m, repeats=15, path=path)
        assert 0.6 <= same <= 1.6, (path, same)
        assert relative_ms(m, small, repeats=15, path=path) < min(same, 0.8), path


def test_costs_measured_on_the_int8_path(tmp_path, capsys):
    from weights_tools.__main__ import main
    cfg, weights = digits_files(tmp_path)
    rc = main(["prune", "--cfg", cfg, "--weights", weights, "--data", "digits", "--path", "int8",
               "--target-flops", "0.6", "--select-steps", "1", "--tune-steps", "1", "--epochs",
               "0.05", "--batch-size", "32", "--torch-threads", "1", "-o", str(tmp_path / "p")])
    assert rc == 0, capsys.readouterr()
    s = json.loads((tmp_path / "p.json").read_text())["summary"]
    assert s["path"] == "int8" and s["ms"] > 0 and s["ms_after"] > 0
    assert "MDFI int8" in capsys.readouterr().out


MODELS = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "models"


def test_committed_pruned_model_is_the_float_model_less_its_channels():
    """examples/models/fmnist_vgg_c2s2: its record's kept channels applied to
    fmnist_vgg give exactly its architecture, at >= 3x fewer FLOPs; MDFI runs it
    as PyTorch does (<= 1e-4, same predictions) on Fashion-MNIST test images."""
    rec = json.loads((MODELS / "fmnist_vgg_c2s2.json").read_text())
    full = import_darknet(MODELS / "fmnist_vgg.cfg", MODELS / "fmnist_vgg.weights")
    small = import_darknet(MODELS / rec["cfg"], MODELS / rec["weights"])
    g = ChannelGraph(full)
    arch = prune_model(full, {int(k): np.array(v) for k, v in rec["keep"].items()}, g)
    assert arch.shapes == small.shapes
    ratio = sum(layer_flops(full)) / sum(layer_flops(small))
    assert ratio >= 3.0 and ratio == pytest.approx(rec["run"]["flops_ratio"], rel=1e-9)
    from mdfi.datasets import load
    try:
        x = load("fashion-mnist", train=False).x_test[:100]
    except mdfi.MdfiError as e:
        pytest.skip(str(e))
    with torch.no_grad():
        want = small(torch.from_numpy(x)).flatten(1).numpy()
    with mdfi.Network(str(MODELS / rec["cfg"]), str(MODELS / rec["weights"])) as net:
        got = np.stack([net.forward(v).reshape(-1) for v in x])
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


def test_command_line_defaults_are_the_selection_chosen_on_validation():
    """--select-steps / --tune-steps default to the 10 + 10 steps a group that the
    three-seed comparison of docs/pruning.md chose on Fashion-MNIST's validation
    split (its record's settings)."""
    import argparse
    from weights_tools.prune.cli import add_arguments
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--cfg", "c", "--weights", "w", "--data", "d", "--target-flops", "0.5",
                         "-o", "o"])
    from pathlib import Path
    rec = json.loads((Path(__file__).resolve().parents[1] / "docs" / "pruning-fmnist-s10.json")
                     .read_text())
    assert (args.select_steps, args.tune_steps) == (rec["settings"]["select_steps"],
                                                    rec["settings"]["tune_steps"]) == (10, 10)
