"""The [fracconv] layer on the PyTorch side (docs/wsfracbnn.md): the thermometer
and the 2-bit planes against the numpy reference, training mode reaching every
learned parameter, evaluation mode equal to MDFI bit for bit (MDFI's inputs
fed to each module), the import round trip, the refusals, and the trainer end
to end."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weights_tools import fracconv_ref  # noqa: E402
from weights_tools.torch import AvgPool, Connected, Darknet, FracConv, MaxPool, Softmax  # noqa: E402
from weights_tools.torch.fracconv import (constrain, fracconv_layers, gated_share,  # noqa: E402
                                          thermometer)


@pytest.fixture(autouse=True)
def _seed(torch_seeded):
    yield


def small_net(norm, gate=True, levels=5):
    return Darknet((1, 9, 7), [
        FracConv(1, 8, 3, input="thermometer", levels=levels, norm=norm),
        FracConv(8, 16, 3, norm=norm, gate=gate),           # channels tiled from 8
        MaxPool(2, 2),
        FracConv(16, 16, 3, norm=norm, gate=gate),
        FracConv(16, 16, 1, norm=norm, gate=False, shortcut=False),
        FracConv(16, 16, 3, norm=norm, gate=gate, from_=-3),  # the max pool's output
        AvgPool(), Connected(16, 3, activation="linear"), Softmax()])


def trained(norm, gate=True, steps=3):
    """A few Adam steps from the data-dependent start, so that every parameter
    (gates, steps, shifts, ranges, gains / BN) has moved off its initial value."""
    model = small_net(norm, gate)
    x, y = torch.rand(16, 1, 9, 7), torch.randint(0, 3, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        model.train()
        z = model(x, outputs=[-2])[0].flatten(1)
        loss = torch.nn.functional.cross_entropy(z, y)
        share = gated_share(model)
        if share is not None:
            loss = loss + share
        opt.zero_grad()
        loss.backward()
        opt.step()
        constrain(model)
    return model.eval()


def test_thermometer_equals_the_reference_on_and_beside_the_thresholds():
    t = fracconv_ref.thermometer_thresholds(7)
    vals = np.concatenate([t, np.nextafter(t, np.float32(2)), np.nextafter(t, np.float32(-1)),
                           np.array([-1, 0, 1, 2, np.nan], np.float32)]).astype(np.float32)
    x = np.resize(vals, (2, 4, 7)).astype(np.float32)
    got = thermometer(torch.from_numpy(x).unsqueeze(0), 7)[0].long().numpy()
    assert np.array_equal(got, fracconv_ref.thermometer(x, 7))


def test_planes_equal_the_reference_on_and_beside_the_thresholds():
    m = FracConv(3, 4, 3).eval()
    with torch.no_grad():
        m.shift.copy_(torch.tensor([0.0, 2.5, -7.0]))
        m.step.fill_(1.75)
    edges = [v for s in (0.0, 2.5, -7.0) for v in (s, s + 1.75, s - 1.75)]
    vals = np.array(edges + [np.nextafter(np.float32(v), np.float32(d)) for v in edges
                             for d in (-100, 100)] + [np.nan, 1e9, -1e9], np.float32)
    x = np.resize(vals, (3, 5, 8)).astype(np.float32)
    s1, q = m.planes(torch.from_numpy(x).unsqueeze(0))
    r1, r0 = fracconv_ref.stream_planes(x, m.shift.detach().numpy(), 1.75)
    assert np.array_equal(s1[0].long().numpy(), r1)
    assert np.array_equal((q - 2 * s1)[0].long().numpy(), r0)


@pytest.mark.parametrize("norm", ["ws", "bn"])
def test_training_mode_reaches_every_learned_parameter(norm):
    model = small_net(norm)
    model.train()
    x = torch.rand(8, 1, 9, 7)
    model(x)                                     # the data-dependent start
    z = model(x, outputs=[-2])[0]
    (z.square().mean() + gated_share(model)).backward()
    for name, p in model.named_parameters():
        if name.startswith("layers.0.") and ("gate" in name or "shift" in name or "step" in name):
            continue
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert 0 < float(gated_share(model).detach()) < 1


@pytest.mark.parametrize("norm,gate", [("ws", True), ("bn", True), ("ws", False)])
def test_mdfi_equals_the_modules_on_the_same_inputs(norm, gate, tmp_path):
    """Export, run in MDFI keeping every layer, and feed each [fracconv] module
    (the trained one and the one imported back from the files) MDFI's inputs
    to it: its output equals MDFI's bit for bit.  The gates fire partly."""
    import mdfi
    from weights_tools.darknet_cfg import layers_of
    from weights_tools.darknet_weights import read_weights
    from weights_tools.torch import import_darknet, save
    model = trained(norm, gate)
    cfg, weights = save(model, tmp_path / "fc")
    again = import_darknet(cfg, weights)
    layers = layers_of(cfg)
    arrays = read_weights(layers, weights).layers
    x = torch.rand(4, 1, 9, 7)
    x[0, 0, 0, :] = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.0, 1.0])   # on the thermometer's t_k
    shares = []
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        for n in range(4):
            net.forward(x[n].numpy())
            outs = [torch.from_numpy(net.layer_output(i).copy()).unsqueeze(0)
                    for i in range(len(net.layers))]
            for i in (0, 1, 3, 4, 5):
                for m in (model, again):
                    with torch.no_grad():
                        z = m.layers[i](outs[i - 1] if i else x[n:n + 1], outs[:i])
                    assert torch.equal(z, outs[i]), (n, i)
            for i in (1, 3, 5):
                lay = layers[i]
                p = fracconv_ref.parts(outs[i - 1][0].numpy(), arrays[i], gate=int(gate),
                                       stride=1, pad=lay.section.get_int("size", 1) // 2)
                shares.append(p["g"].mean())
            with torch.no_grad():
                want = model(x[n:n + 1]).flatten()
            got = torch.from_numpy(net.forward(x[n].numpy()).copy()).flatten()
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    if gate:
        assert 0 < np.mean(shares) < 1


def test_export_folds_ws_into_scales_and_signs(tmp_path):
    """scales = mean |W^| / 3 on the stream (1 for the thermometer layer), the
    weights' signs those of W^, which with a negative gain are the latent
    weights' flipped."""
    model = trained("ws")
    with torch.no_grad():
        model.layers[1].gain[0] = -0.5
    a = model.layers[1].darknet_arrays()
    w_hat = model.layers[1].signed_weight().detach()
    assert np.allclose(a["scales"], w_hat.flatten(1).abs().mean(1).numpy() / 3, rtol=1e-6)
    assert np.array_equal(np.sign(a["weights"][0]), -np.sign(model.layers[1].weight[0].detach().numpy()
                                                             - model.layers[1].weight[0].detach().mean().numpy()))
    a0 = model.layers[0].darknet_arrays()
    w0 = model.layers[0].signed_weight().detach()
    assert np.allclose(a0["scales"], w0.flatten(1).abs().mean(1).numpy(), rtol=1e-6)
    assert sorted(a0) == ["biases", "range", "scales", "weights"]
    assert sorted(a) == ["biases", "gate", "range", "scales", "shift", "step", "weights"]


@pytest.mark.parametrize("norm", ["ws", "bn"])
def test_training_goes_on_from_the_files(norm, tmp_path):
    """adopt_folded: a trained network saved and imported (folded scales and
    biases) is taken back into a fresh trainable one of its norm, which then
    computes the same integers in evaluation mode; its gates are back in units
    of tau, and a training step moves it on from there."""
    from weights_tools.torch import import_darknet, save
    from weights_tools.torch.fracconv import adopt_folded
    model = trained(norm)
    cfg, weights = save(model, tmp_path / "fc")
    folded = import_darknet(cfg, weights)
    fresh = small_net(norm)
    x = torch.rand(64, 1, 9, 7)
    assert adopt_folded(fresh, folded, x) == 1.0
    y = torch.rand(16, 1, 9, 7)
    with torch.no_grad():
        for i in range(len(model.layers) - 2):
            a = model(y, outputs=[i])[0]
            b = fresh(y, outputs=[i])[0]
            if i == 0 or norm == "ws":
                assert torch.equal(a, b), i
            else:   # bn: the scales refolded from statistics on x may differ in the last bit
                assert (a - b).abs().max() <= 1 and (a == b).float().mean() > 0.99, i
    for m, f in zip(fresh.layers, model.layers):
        if isinstance(m, FracConv) and m.gated:
            assert float(m.tau) == pytest.approx(float(f.tau))
            assert torch.allclose(m.gate(), f.gate())
    before = [p.detach().clone() for p in fresh.parameters()]
    fresh.train()
    loss = fresh(y, outputs=[-2])[0].flatten(1).logsumexp(1).mean()
    loss.backward()
    torch.optim.SGD(fresh.parameters(), lr=0.01).step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, fresh.parameters()))


def test_adopting_keeps_a_binary_weight_nearer_0_than_its_filters_mean(tmp_path):
    """A file's W^ has a mean of rounding noise, which WS subtracts again: a
    weight nearer 0 than that mean would change sign (a committed file had one,
    and its adopted stem differed on 3 % of outputs).  adopt_folded keeps every
    binary weight of the file and the same integers."""
    from weights_tools.torch import import_darknet, save
    from weights_tools.torch.fracconv import adopt_folded
    cfg, weights = save(trained("ws"), tmp_path / "fc")
    folded = import_darknet(cfg, weights)
    layer = folded.layers[1]
    with torch.no_grad():
        row = layer.weight[0].view(-1)
        c = 1e-5 * float(row.std())
        i = int(row.abs().argmin())
        others = torch.arange(len(row)) != i
        row[others] += c - row[others].mean()      # the filter's mean: about c > 0
        row[i] = c / 2                             # +1 in the file, nearer 0 than the mean
        assert float(row[i] - row.mean()) < 0      # re-standardized alone, it would be -1
    fresh = small_net("ws")
    x = torch.rand(64, 1, 9, 7)
    assert adopt_folded(fresh, folded, x) == 1.0
    for m, f in zip(fresh.layers, folded.layers):
        if isinstance(m, FracConv):
            assert torch.equal(m.binary_weight(), f.binary_weight())
    y = torch.rand(16, 1, 9, 7)
    with torch.no_grad():
        for k in range(len(folded.layers) - 2):
            assert torch.equal(folded(y, outputs=[k])[0], fresh(y, outputs=[k])[0]), k


def test_a_gated_network_starts_from_its_dense_twin(tmp_path):
    """A dense (gate=0) file adopted into the gated network: the same weights,
    each gated layer's gates set on x so that it passes about the share asked
    of its outputs there (the layers before it already gated), computing the
    dense layer's P = 2 D1 + D0 where the gate fires and 2 D1 elsewhere; no
    share refused."""
    from weights_tools.torch import import_darknet, save
    from weights_tools.torch.fracconv import adopt_folded
    cfg, weights = save(trained("ws", gate=False), tmp_path / "dense")
    dense = import_darknet(cfg, weights)
    with pytest.raises(ValueError, match="dense.*starting share"):
        adopt_folded(small_net("ws"), dense, torch.rand(8, 1, 9, 7))
    x = torch.rand(256, 1, 9, 7)
    gated = small_net("ws")
    adopt_folded(gated, dense, x, gate_share=0.25)
    ins = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: ins.__setitem__(k, i[0]))
             for k, m in enumerate(gated.layers)]
    with torch.no_grad():
        gated(x)
    for h in hooks:
        h.remove()
    for k in (1, 3, 5):
        m, d = gated.layers[k], dense.layers[k]
        assert torch.equal(m.binary_weight(), d.binary_weight()), k
        with torch.no_grad():
            s1, q = m.planes(ins[k])
            w = m.binary_weight()
            d2 = 2 * m._conv(s1, w)
            g = d2 > torch.floor(m.gate()).view(1, -1, 1, 1)
            share = float(g.double().mean())
            assert 0.15 < share <= 0.25, (k, share)
            assert torch.equal(m.products(ins[k]), torch.where(g, m._conv(q, w), d2)), k
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        adopt_folded(small_net("ws"), dense, x, gate_share=1.0)


def test_adopting_refuses_a_file_of_another_norm(tmp_path):
    from weights_tools.torch import import_darknet, save
    from weights_tools.torch.fracconv import adopt_folded
    cfg, weights = save(trained("bn"), tmp_path / "fc")
    with pytest.raises(ValueError, match="not a 'ws' export"):
        adopt_folded(small_net("ws"), import_darknet(cfg, weights), torch.rand(8, 1, 9, 7))
    with pytest.raises(ValueError, match="folded layer"):
        adopt_folded(small_net("ws"), small_net("bn"), torch.rand(8, 1, 9, 7))


@pytest.mark.parametrize("what,bad", [
    ("gate", np.zeros(15, np.float32)),          # one per filter: 16
    ("shift", np.zeros(7, np.float32)),          # one per input channel: 8
    ("weights", np.zeros((16, 8, 3, 1), np.float32)),
])
def test_import_refuses_arrays_that_do_not_fit_the_layer(what, bad):
    from weights_tools.torch import ShapeMismatchError
    m = FracConv(8, 16, 3, norm="fixed")
    arrays = {"biases": np.zeros(16, np.float32), "scales": np.ones(16, np.float32),
              "weights": np.zeros((16, 8, 3, 3), np.float32), "shift": np.zeros(8, np.float32),
              "step": np.ones(1, np.float32), "gate": np.zeros(16, np.float32),
              "range": np.ones(1, np.float32)}
    arrays[what] = bad
    with pytest.raises(ShapeMismatchError, match=what):
        m.load_darknet_arrays(arrays)


def test_import_refuses_a_gate_array_on_an_ungated_layer():
    from weights_tools.torch import ShapeMismatchError
    m = FracConv(8, 16, 3, norm="fixed", gate=False)
    arrays = {"biases": np.zeros(16, np.float32), "scales": np.ones(16, np.float32),
              "weights": np.zeros((16, 8, 3, 3), np.float32), "shift": np.zeros(8, np.float32),
              "step": np.ones(1, np.float32), "gate": np.zeros(16, np.float32),
              "range": np.ones(1, np.float32)}
    with pytest.raises(ShapeMismatchError, match="gate"):
        m.load_darknet_arrays(arrays)


@pytest.mark.parametrize("kwargs,match", [
    (dict(input="thermometer", shortcut=True), "no shortcut"),
    (dict(input="thermometer", levels=0), "levels"),
    (dict(input="image"), "input"),
    (dict(norm="layer"), "norm"),
])
def test_module_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FracConv(1, 4, 3, **kwargs)


def test_a_thermometer_model_refuses_an_image_of_other_channels():
    from weights_tools.torch import ShapeMismatchError
    with pytest.raises(ShapeMismatchError, match="input channels"):
        Darknet((3, 9, 7), [FracConv(1, 8, 3, input="thermometer", levels=4)])


def _train_fracbnn():
    from test_examples import _load
    return _load("train_fracbnn")


def test_train_fracbnn_end_to_end(tmp_path):
    """The trainer on a tiny Fashion-MNIST-shaped set: one epoch of the gated and
    the dense WS variants (the BN one differs only in its modules), the files, MDFI == PyTorch on every test image, the gated shares."""
    from test_evaluate_cli import write_fashion
    data = write_fashion(str(tmp_path / "fm"), n_train=300, n_test=40)
    for variant in ("ws", "ws-dense"):
        out = tmp_path / variant
        assert _train_fracbnn().main(["--variant", variant, "--data", data, "--epochs", "1",
                                      "--bn-recalibrate", "1", "-o", str(out)]) == 0
        rec = json.loads((tmp_path / (variant + ".json")).read_text())
        assert rec["mdfi"]["n"] == 40 and rec["mdfi"]["agree_with_pytorch"] == 1.0
        assert len(rec["pytorch"]["predictions"]) == 40
        text = (tmp_path / (variant + ".cfg")).read_text()
        assert text.count("[fracconv]") == 5 and "input=thermometer" in text
        shares = rec["pytorch_gated_share"]
        if variant == "ws-dense":
            assert shares == {} and "gate=1" not in text
        else:
            assert len(shares) == 4 and all(0 < v < 1 for v in shares.values())
    # --remeasure recomputes MDFI's figures from the files and the stored predictions
    rec = json.loads((tmp_path / "ws.json").read_text())
    rec["mdfi"] = {}
    (tmp_path / "ws.json").write_text(json.dumps(rec))
    assert _train_fracbnn().main(["--variant", "ws", "--data", data, "--remeasure",
                                  "-o", str(tmp_path / "ws")]) == 0
    assert json.loads((tmp_path / "ws.json").read_text())["mdfi"]["agree_with_pytorch"] == 1.0


def test_gate_penalty_floor_and_ceiling():
    """train_fracbnn's gate penalty on the soft shares of a training forward: the
    ceiling alone where the shares pass it, the floor alone where they lie below
    it (each layer its own term), and the floor's gradient lowers every gated
    layer's thresholds (opens the gates) where the ceiling's raises them."""
    t = _train_fracbnn()
    torch.manual_seed(0)
    model = t.build("ws", (1, 28, 28), 10)
    model.train()
    model(torch.rand(8, 1, 28, 28))
    layers = [m for m in fracconv_layers(model) if m.gated_share() is not None]
    shares = [float(m.gated_share().detach()) for m in layers]
    assert len(layers) == 4 and all(0.05 < v < 0.95 for v in shares)
    lo, hi = min(shares), max(shares)
    mean = sum(shares) / 4
    assert float(t.gate_penalty(model, target=1.0, floor=lo / 2).detach()) == 0.0
    assert t.gate_penalty(model, target=0.5, weight=0) is None
    ceiling = t.gate_penalty(model, target=mean / 2, weight=3.0)
    assert abs(float(ceiling.detach()) - 3.0 * (mean - mean / 2)) < 1e-5
    floor = t.gate_penalty(model, target=1.0, floor=hi + 0.1, weight=2.0)
    assert abs(float(floor.detach()) - 2.0 * sum(hi + 0.1 - v for v in shares) / 4) < 1e-5
    for p, sign in ((floor, 1), (ceiling, -1)):   # d p / d threshold: > 0 floor, < 0 ceiling
        grads = torch.autograd.grad(p, [m.gate_raw for m in layers], retain_graph=True)
        assert all(float(g.sum()) * sign > 0 for g in grads)
    # the per-layer ceiling: only the layers above it pay, each its own term,
    # and only their thresholds move (the mean's target alone lets one layer sit high)
    cut = (sorted(shares)[1] + sorted(shares)[2]) / 2
    per_layer = t.gate_penalty(model, target=1.0, ceiling=cut, weight=2.0)
    assert abs(float(per_layer.detach()) - 2.0 * sum(max(0.0, v - cut) for v in shares) / 4) < 1e-5
    grads = torch.autograd.grad(per_layer, [m.gate_raw for m in layers], retain_graph=True)
    for g, v in zip(grads, shares):
        assert (float(g.sum()) < 0) if v > cut else float(g.abs().sum()) == 0.0
    assert float(t.gate_penalty(model, target=1.0, ceiling=hi + 0.01).detach()) == 0.0


@pytest.mark.parametrize("option", ["--gate-floor", "--gate-ceiling"])
@pytest.mark.parametrize("bad", ["-0.1", "1", "x"])
def test_train_fracbnn_refuses_a_gate_share_outside_0_1(option, bad, capsys):
    with pytest.raises(SystemExit):
        _train_fracbnn().main(["--variant", "ws", option, bad, "--epochs", "1"])
    assert option in capsys.readouterr().err
