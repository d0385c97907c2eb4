"""Early exits on the PyTorch side (docs/early-exit.md): the Exit module and the
branch wiring, export/import of [exit], the cfg shape rule, the numpy
reference of the predictors, and the policies' decision rules and MACs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import weights_tools as wt  # noqa: E402
from weights_tools import float_ref  # noqa: E402
from weights_tools.darknet_cfg import CfgError, infer_layers, parse_cfg  # noqa: E402
from weights_tools.torch import (Connected, Conv, Darknet, DarknetBatchNorm, Dropout, Exit,  # noqa: E402
                                 MaxPool, ShapeMismatchError, Softmax, export, import_darknet)
from weights_tools.torch.exits import (Costs, Outcomes, costs, decide,  # noqa: E402
                                       normalized_entropy, outcomes, simulate)

F32 = np.float32


@pytest.fixture(autouse=True)
def _seed(torch_seeded):
    yield


def cbl(c, n, size, stride=1):
    return Conv(c, n, size, stride, pad=True, batch_normalize=True, activation="leaky")


def two_exit_model(hidden=4, predictors=("exit", "entropy")):
    """3x12x10 input; exit 0 after the first pool (from=-1), exit 1 reading layer
    6 (from=-2, past a [dropout]: the main path goes on from layer 6 as well)."""
    m = Darknet((3, 12, 10), [
        cbl(3, 6, 3), MaxPool(2, 2),
        Exit(branch=[cbl(6, 4, 3, 2), Connected(4 * 3 * 3, 5, activation="linear"), Softmax()],
             threshold=0.4, predictors=predictors, pool=3, hidden=hidden, exit_gate=0.3),
        cbl(6, 8, 3),
        Dropout(0.2),
        Exit(from_=-2, branch=[Connected(8 * 6 * 5, 5, activation="linear"), Softmax()],
             threshold=0.7, predictors=("entropy",), pool=2, hidden=0, entropy_gate=0.6),
        Connected(8 * 6 * 5, 16, activation="leaky", batch_normalize=True),
        Connected(16, 5, activation="linear"), Softmax(),
    ])
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, DarknetBatchNorm):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.2, 2.0)
                mod.weight.uniform_(0.5, 1.5)
    return m.eval()


def test_branch_wiring_shapes_and_forward():
    m = two_exit_model()
    assert m.exit_spans == [(2, 1, 3, 5), (8, 6, 9, 10)]
    assert m.shapes[2] == m.shapes[8] == (2, 1, 1) and m.shapes[6] == (8, 6, 5)
    assert m.shapes[7] == (8, 6, 5) and m.shapes[11] == (16, 1, 1)
    x = torch.rand(4, 3, 12, 10)
    b0, b1, main = m(x, exits=True)
    assert b0.shape == b1.shape == main.shape == (4, 5, 1, 1)
    assert torch.equal(m(x), main)  # the main path alone skips the branches
    # by hand: the layer after each branch reads the branch point
    h = m[1](m[0](x))
    torch.testing.assert_close(b0, m[5](m[4](m[3](h))))
    h6 = m[6](h)
    torch.testing.assert_close(b1, m[10](m[9](h6)))
    torch.testing.assert_close(main, m[13](m[12](m[11](h6))))


def test_wiring_errors():
    with pytest.raises(ShapeMismatchError, match="must end with a \\[softmax\\]"):
        Darknet((1, 8, 8), [cbl(1, 2, 3), Exit(branch=[Connected(128, 3, activation="linear")]),
                            Connected(128, 3, activation="linear"), Softmax()])
    with pytest.raises(ShapeMismatchError, match="must go on after the branch"):
        Darknet((1, 8, 8), [cbl(1, 2, 3),
                            Exit(branch=[Connected(128, 3, activation="linear"), Softmax()])])
    with pytest.raises(ValueError, match="threshold"):
        Exit(branch=[Softmax()], threshold=0)
    with pytest.raises(ValueError, match="unknown predictor"):
        Exit(branch=[Softmax()], predictors=("confidence",))


def test_export_import_round_trip(tmp_path):
    m = two_exit_model()
    cfg, weights = export(m)
    sections = parse_cfg(cfg)
    ex = [s for s in sections if s.type == "exit"]
    assert ex[0].options["predictors"] == "exit,entropy" and ex[1].options["from"] == "-2"
    layers = infer_layers(sections)
    assert len(weights) == 20 + 4 * sum(layer.n_params for layer in layers)
    again = import_darknet(cfg, weights)
    assert again.exit_spans == m.exit_spans
    x = torch.rand(6, 3, 12, 10)
    for a, b in zip(m(x, exits=True), again(x, exits=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for e0, e1 in zip(m.exits, again.exits):
        assert (e0.threshold, e0.entropy_gate, e0.exit_gate) == (e1.threshold, e1.entropy_gate,
                                                                  e1.exit_gate)
        assert e0.predictors == e1.predictors
        for name in e0.predictors:
            for p0, p1 in zip(e0.predictor[name].parameters(), e1.predictor[name].parameters()):
                assert torch.equal(p0, p1)
    # export again: the same bytes
    assert export(again) == (cfg, weights)


def test_weights_layout_entropy_first_then_exit():
    m = two_exit_model()
    ex = m.exits[0]
    with torch.no_grad():
        for i, p in enumerate(ex.predictor["entropy"].parameters()):
            p.fill_(1 + i)
        for i, p in enumerate(ex.predictor["exit"].parameters()):
            p.fill_(-1 - i)
    cfg, weights = export(m)
    layers = infer_layers(parse_cfg(cfg))
    w = wt.read_weights(layers, weights)
    arrays = w.layers[2]
    assert [n for n, _ in layers[2].params] == [
        "entropy_b1", "entropy_W1", "entropy_b2", "entropy_W2",
        "exit_b1", "exit_W1", "exit_b2", "exit_W2"]
    assert layers[2].params[1] == ("entropy_W1", (4, 6 * 3 * 3))
    e = ex.predictor["entropy"]
    np.testing.assert_array_equal(arrays["entropy_b1"], e.b1.detach().numpy())
    np.testing.assert_array_equal(arrays["entropy_W1"], e.w1.detach().numpy())
    np.testing.assert_array_equal(arrays["exit_W2"], ex.predictor["exit"].w2.detach().numpy())
    # the floats in file order: the [exit]'s come right after layer 1's (none) and layer 0's
    floats = np.frombuffer(weights[20:], F32)
    n0 = layers[0].n_params
    first = floats[n0:n0 + 4]
    np.testing.assert_array_equal(first, e.b1.detach().numpy())
    assert layers[8].params == [("entropy_b", (1,)), ("entropy_W", (1, 8 * 2 * 2))]


EXIT_CFG = """
[net]
width=9
height=9
channels=2

[convolutional]
filters=4
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[exit]
layers=2
threshold=0.25
predictors=exit
pool=2
hidden=3

[connected]
output=3
activation=linear

[softmax]

[convolutional]
filters=5
size=3
pad=1
activation=leaky

[exit]
from=-3
layers=1
predictors=entropy,exit

[softmax]

[connected]
output=3
activation=linear

[softmax]
"""


def test_infer_layers_exit_cfg():
    layers = infer_layers(parse_cfg(EXIT_CFG.replace("from=-3", "from=-5")))
    shapes = [(layer.type, layer.in_shape, layer.out_shape) for layer in layers]
    assert shapes == [
        ("convolutional", (2, 9, 9), (4, 9, 9)),
        ("maxpool", (4, 9, 9), (4, 5, 5)),
        ("exit", (4, 5, 5), (2, 1, 1)),
        ("connected", (4, 5, 5), (3, 1, 1)),         # reads the branch point
        ("softmax", (3, 1, 1), (3, 1, 1)),
        ("convolutional", (4, 5, 5), (5, 5, 5)),     # reads the branch point (layer 1) again
        ("exit", (4, 5, 5), (2, 1, 1)),              # from=-5: layer 1 is its branch point
        ("softmax", (4, 5, 5), (100, 1, 1)),
        ("connected", (4, 5, 5), (3, 1, 1)),         # layer 1 again
        ("softmax", (3, 1, 1), (3, 1, 1)),
    ]
    assert layers[2].params == [("exit_b1", (3,)), ("exit_W1", (3, 16)), ("exit_b2", (1,)),
                                ("exit_W2", (1, 3))]
    assert layers[2].n_params == 3 + 48 + 1 + 3
    assert [n for n, _ in layers[6].params] == ["entropy_b", "entropy_W", "exit_b", "exit_W"]
    assert layers[6].params[1] == ("entropy_W", (1, 4))
    assert layers[6].n_params == 2 * (1 + 4)


def test_infer_layers_exit_errors():
    with pytest.raises(CfgError, match="inside the branch"):   # from=-3 of layer 6 is layer 3
        infer_layers(parse_cfg(EXIT_CFG))
    cfg = EXIT_CFG.replace("from=-3", "from=-1")
    layers = infer_layers(parse_cfg(cfg))
    assert layers[6].out_shape == (2, 1, 1) and layers[7].in_shape == (5, 5, 5)
    assert layers[8].in_shape == (5, 5, 5)           # after the second branch: layer 5 again
    assert [n for n, _ in layers[6].params] == ["entropy_b", "entropy_W", "exit_b", "exit_W"]
    assert layers[6].params[1] == ("entropy_W", (1, 5))
    bad = {
        "layers=2\nthreshold=0.25": ("threshold=0.25", "missing layers"),
        "threshold=0.25\npredictors=exit": ("threshold=1.5\npredictors=exit", "outside"),
        "predictors=exit\npool=2": ("predictors=exits\npool=2", "unknown predictor"),
        "pool=2\nhidden=3": ("pool=17\nhidden=3", "pool must be"),
        "[softmax]\n\n[convolutional]": ("[dropout]\n\n[convolutional]", "must end with a \\[softmax\\]"),
    }
    for old, (new, msg) in bad.items():
        with pytest.raises(CfgError, match=msg):
            infer_layers(parse_cfg(cfg.replace(old, new, 1)))
    end = cfg[:cfg.rindex("[connected]")]   # the last branch is the network's end
    with pytest.raises(CfgError, match="must go on"):
        infer_layers(parse_cfg(end))


def test_cfg_and_module_agree_on_the_imported_cfg():
    cfg = EXIT_CFG.replace("from=-3", "from=-1")
    m = import_darknet(cfg)
    layers = infer_layers(parse_cfg(cfg))
    assert [tuple(s) for s in m.shapes] == [layer.out_shape for layer in layers]
    assert m.exits[1].predictors == ("entropy", "exit") and m.exits[1].features == 5


@pytest.mark.parametrize("shape,pool", [((3, 7, 5), 3), ((2, 14, 14), 2), ((4, 6, 6), 4),
                                        ((1, 5, 9), 1), ((2, 3, 3), 5)])
def test_numpy_adaptive_pool_equals_pytorch(shape, pool):
    x = torch.rand(shape)
    want = torch.nn.functional.adaptive_avg_pool2d(x[None], pool)[0].numpy()
    np.testing.assert_allclose(float_ref.adaptive_avg_pool(x.numpy(), pool), want, rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("hidden", [0, 5])
def test_numpy_predictor_equals_pytorch(hidden):
    m = two_exit_model(hidden=hidden)
    ex = m.exits[0]
    x = torch.rand(3, 3, 12, 10)
    with torch.no_grad():
        point = m(x, outputs=[1])[0]
        got = ex.predict(point)
    arrays = ex.darknet_arrays()
    for name in ("entropy", "exit"):
        for i in range(3):
            ref = float_ref.exit_predictor(point[i].numpy(), arrays, ex.pool, hidden, name)
            assert abs(ref - float(got[name][i])) < 1e-6


def test_normalized_entropy():
    p = np.array([[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0]], F32)
    h = normalized_entropy(p)
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, [0, 1, 0.5], atol=1e-7)
    q = np.random.default_rng(0).dirichlet(np.ones(10), 50).astype(F32)
    np.testing.assert_array_equal(normalized_entropy(q), [float_ref.normalized_entropy(r) for r in q])


def hand_outcomes():
    """Five inputs, two exits: entropies, predictor values, labels chosen by hand."""
    ent = np.array([[0.1, 0.3, 0.5, 0.2, 0.9],
                    [0.05, 0.2, 0.59, 0.7, 0.9]], F32)
    pe = np.array([[0.2, 0.5, 0.1, 0.21, 0.3], [0.1, 0.1, 0.6, 0.1, 0.9]], F32)
    px = np.array([[0.9, 0.5, 0.8, 0.3, 0.1], [0.9, 0.9, 0.9, 0.2, 0.9]], F32)
    label = np.array([[1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [3, 3, 3, 3, 3]])
    return Outcomes(ent, {"entropy": pe, "exit": px}, label, np.full(5, 0.4, F32), [])


COST = Costs(main_before=[100, 300], branch=[10, 20], predictor=[3, 4], n_predictors=[2, 1],
             main_total=1000)


def test_decide_rules_by_hand():
    out = hand_outcomes()
    thr = [0.3, 0.6]
    d = decide(out, COST, "none")
    assert list(d.exit) == [-1] * 5 and list(d.macs) == [1000] * 5 and list(d.label) == [3] * 5
    d = decide(out, COST, "all", thr, [1, 1], [0, 0])
    assert list(d.exit) == [-1] * 5 and list(d.macs) == [1000 + 2 * 3 + 10 + 4 + 20] * 5
    # branchy: exit 0 when entropy < 0.3 strictly (0.3 stays), exit 1 when < 0.6
    d = decide(out, COST, "branchy", thr)
    assert list(d.exit) == [0, 1, 1, 0, -1]
    assert list(d.macs) == [110, 330, 330, 110, 1030]
    assert list(d.label) == [1, 2, 2, 1, 3]
    np.testing.assert_array_equal(d.entropy, np.array([0.1, 0.2, 0.59, 0.2, 0.4], F32))
    assert d.shares(2) == [0.4, 0.4, 0.2]
    # entropy predictor: run the branch when the prediction < gate strictly
    d = decide(out, COST, "entropy-predictor", thr, [0.21, 0.6], [0.5, 0.5])
    # input 0: 0.2 < 0.21 runs, exits; 1: 0.5 skips, exit 1 0.1 < 0.6 runs, 0.2 < 0.6 exits;
    # 2: 0.1 runs (0.5 no exit), then 0.6 not < 0.6 skips -> main; 3: 0.21 not < 0.21 skips,
    # exit 1 runs, 0.7 no exit -> main; 4: skip, 0.9 skip -> main
    assert list(d.exit) == [0, 1, -1, -1, -1]
    assert list(d.macs) == [100 + 3 + 10, 100 + 3 + 200 + 4 + 20, 100 + 3 + 10 + 200 + 4 + 700,
                            100 + 3 + 200 + 4 + 20 + 700, 100 + 3 + 200 + 4 + 700]
    # exit predictor: run when the prediction > gate strictly
    d = decide(out, COST, "exit-predictor", thr, None, [0.5, 0.3])
    # 0: 0.9 > 0.5 runs, exits; 1: 0.5 not > 0.5 skips; exit 1: 0.9 > 0.3 runs, exits
    assert list(d.exit) == [0, 1, 1, -1, -1]
    assert d.macs[1] == 100 + 3 + 200 + 4 + 20
    # a policy that needs a predictor an exit lacks is refused
    out.predicted["exit"][1] = np.nan
    with pytest.raises(ValueError, match="exit 1 has no exit predictor"):
        decide(out, COST, "exit-predictor", thr, None, [0.5, 0.3])


def test_simulate_follows_the_model_settings():
    m = two_exit_model()
    x = torch.rand(40, 3, 12, 10)
    out = outcomes(m, x, batch=16)
    c = costs(m)
    layer_macs = m.layer_macs()
    assert c.main_total == sum(layer_macs[i] for i in (0, 6, 11, 12))
    assert c.branch == [sum(layer_macs[3:6]), layer_macs[9]]
    assert c.predictor == [6 * 6 * 5 + 6 * 9 * 4 + 4, 8 * 6 * 5 + 8 * 4]
    # thresholds that make the exits fire for some inputs
    thr = [float(np.median(out.entropy[0])), float(np.median(out.entropy[1]))]
    for policy in ("branchy", "entropy-predictor", "exit-predictor"):
        if policy == "exit-predictor":
            continue  # exit 1 has no exit predictor
        sim = simulate(m, x, policy, thr)
        ref = decide(out, c, policy, thr, exits=m.exits)
        np.testing.assert_array_equal(sim.exit, ref.exit)
        np.testing.assert_array_equal(sim.macs, ref.macs)
        # the result: the exit's softmax, or the last layer's
        with torch.no_grad():
            outs = [t.flatten(1).numpy() for t in m(x, exits=True)]
        for i in range(len(x)):
            np.testing.assert_array_equal(sim.probs[i], outs[sim.exit[i]][i])
    one = simulate(m, x[:1], "branchy", [1.0, 1.0])
    assert one.exit[0] == 0 and one.macs[0] == layer_macs[0] + c.branch[0]
    with torch.no_grad():
        first = m(x[:1], exits=True)[0].flatten(1).numpy()
    assert one.entropy[0] == normalized_entropy(first)[0]


def test_mdfi_runs_exits_like_pytorch(tmp_path):
    """MDFI's exits and results equal the PyTorch simulation (once the C side has [exit])."""
    import mdfi
    m = two_exit_model(predictors=("entropy", "exit"))
    cfg, weights = wt.torch.save(m, tmp_path / "ex") if hasattr(wt, "torch") else (None, None)
    from weights_tools.torch import save
    cfg, weights = save(m, tmp_path / "ex")
    try:
        net = mdfi.Network(cfg, weights)
    except mdfi.MdfiError as e:
        pytest.skip("MDFI cannot load [exit] yet: %s" % e)
    with net:
        if not hasattr(net, "exit_policy"):
            pytest.skip("MDFI has no early-exit API yet")
        x = torch.rand(30, 3, 12, 10)
        out = outcomes(m, x)
        thr = [float(np.median(out.entropy[0])), float(np.median(out.entropy[1]))]
        for k in range(2):
            net.set_exit_thresholds(k, threshold=thr[k])
        for policy in ("none", "all", "branchy", "entropy-predictor"):
            net.exit_policy = policy
            sim = simulate(m, x, policy, thr)
            for i in range(len(x)):
                p = np.asarray(net.forward(x[i].numpy())).reshape(-1)
                r = net.last_exit
                assert r.exit == sim.exit[i], (policy, i)
                assert r.macs == pytest.approx(sim.macs[i])
                np.testing.assert_allclose(p, sim.probs[i], atol=1e-5)


BRANCHY_MODELS = ["fmnist_branchy_lenet", "fmnist_branchy_alexnet", "mnist_branchy_lenet"]


def _example_images(dataset, n):
    """The first n test images of the model's dataset, or skip when it is missing."""
    from mdfi import datasets
    try:
        data = datasets.load(dataset, train=False)
    except datasets.DatasetError as e:
        pytest.skip("no %s data here: %s" % (dataset, e))
    return data.x_test[:n]


@pytest.mark.parametrize("name", BRANCHY_MODELS)
def test_committed_branchy_model_in_mdfi_equals_pytorch(name):
    """A committed model: MDFI's exit, MACs and result equal the PyTorch simulation
    for every policy, with the cfg's thresholds and gates, on real test images."""
    import pathlib
    import mdfi
    prefix = pathlib.Path(__file__).resolve().parent.parent / "examples" / "models" / name
    if not prefix.with_suffix(".cfg").exists():
        pytest.skip("%s is not committed" % name)
    cfg, weights = str(prefix.with_suffix(".cfg")), str(prefix.with_suffix(".weights"))
    x = _example_images("mnist" if name.startswith("mnist") else "fashion-mnist", 60)
    model = import_darknet(cfg, weights)
    with mdfi.Network(cfg, weights) as net:
        for policy in ("none", "all", "branchy", "entropy-predictor", "exit-predictor"):
            net.exit_policy = policy
            sim = simulate(model, x, policy)
            got = []
            for i in range(len(x)):
                p = np.asarray(net.forward(x[i])).reshape(-1)
                r = net.last_exit
                got.append(r.exit)
                if r.exit == sim.exit[i]:
                    assert r.macs == sim.macs[i], (policy, i)
                    np.testing.assert_allclose(p, sim.probs[i], atol=1e-5)
            assert np.mean(np.array(got) == sim.exit) >= 0.98, policy   # float rounding at a cut
