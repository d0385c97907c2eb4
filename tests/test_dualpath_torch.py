"""The [dualpath] layer on the PyTorch side (docs/dualpath.md): the fixed-point
fold against exact rational arithmetic, the refusals, the straight-through
training mode, and the evaluation mode as the integer definition."""
import os
import re
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weights_tools.torch import AvgPool, Connected, Conv, Darknet, DualPath, MaxPool, Softmax  # noqa: E402
from weights_tools.torch.dualpath import LIMIT, fixed_point, integer_source, requantize  # noqa: E402


@pytest.fixture(autouse=True)
def _seed(torch_seeded):
    yield


def exact_round(a, b, d):
    """round(a * d + b), half up, in exact rationals (a, b float32 values)."""
    v = Fraction(float(a)) * d + Fraction(float(b))
    return int((v + Fraction(1, 2)).__floor__())


def test_requantize_is_round_half_up_of_a_d_plus_b():
    rng = np.random.default_rng(1)
    m = 64
    a = torch.from_numpy((rng.standard_normal(m) * 10.0 ** rng.uniform(-6, 3, m)).astype(np.float32))
    a[0] = 0.0
    a[1] = 0.5         # exact: every half-way case rounds up
    b = torch.from_numpy((rng.standard_normal(m) * 100).astype(np.float32))
    b[1] = 0.0
    d = torch.from_numpy(rng.integers(-5000, 5000, (3, m, 2, 5))).long()
    d[0, 1] = torch.arange(-5, 5).view(2, 5)
    mul, off, s = fixed_point(a, b)
    r = requantize(d, mul, off, s)
    close = 0
    for k in range(d.shape[0]):
        for ch in range(m):
            for dv, rv in zip(d[k, ch].flatten().tolist(), r[k, ch].flatten().tolist()):
                want = exact_round(a[ch], b[ch], dv)
                v = Fraction(float(a[ch])) * dv + Fraction(float(b[ch]))
                frac = v - v.__floor__()
                # the multiplier keeps 30 bits: only values within 2^-29 |a d| of a
                # half-way point may round the other way
                if abs(frac - Fraction(1, 2)) * 2 ** 29 <= abs(Fraction(float(a[ch])) * dv) + 1:
                    close += 1
                    assert abs(rv - want) <= 1
                else:
                    assert rv == want, (ch, dv)
    assert r[0, 1].flatten().tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2]   # (d/2 rounded up)
    assert close < d.numel() // 100


def test_requantize_clamps_to_the_stream_limit():
    a = torch.tensor([2.0 ** 10, -(2.0 ** 10)])
    b = torch.tensor([0.0, 0.0])
    r = requantize(torch.tensor([1 << 20]).view(1, 1, 1, 1).repeat(1, 2, 1, 1), *fixed_point(a, b))
    assert r.flatten().tolist() == [LIMIT, -LIMIT]


@pytest.mark.parametrize("a, b, what", [
    (2.0 ** 30, 0.0, "multiplier"), (float("nan"), 0.0, "not finite"),
    (1.0, float(1 << 24), "offset"), (1.0, float("inf"), "not finite")])
def test_fold_refusals_name_the_channel(a, b, what):
    with pytest.raises(ValueError, match="channel 1: .*%s" % what):
        fixed_point(torch.tensor([1.0, a]), torch.tensor([0.0, b]))


def test_integer_source_rounds_clamps_and_zeroes_nan():
    src = torch.tensor([0.5, 1.5, -2.5, 2.4, float("nan"), 1e30, -1e30, float("inf")])
    assert integer_source(src).tolist() == [0, 2, -2, 2, 0, LIMIT, -LIMIT, LIMIT]


def small_net(abits):
    return Darknet((1, 9, 7), [
        Conv(1, 8, 3, pad=True, batch_normalize=True, activation="linear"),
        DualPath(8, 8, 3, abits=abits),
        MaxPool(2, 2),
        DualPath(8, 16, 3, abits=abits),         # the source's channels repeated
        DualPath(16, 16, 1, abits=abits, from_=-2),
        AvgPool(), Connected(16, 3, activation="linear"), Softmax()])


@pytest.mark.parametrize("abits", [1, 1.5])
def test_training_mode_reaches_every_learned_parameter(abits):
    model = small_net(abits).train()
    loss = model(torch.randn(4, 1, 9, 7), outputs=[-2])[0].square().sum()
    loss.backward()
    for name, p in model.named_parameters():
        if ".bn." in name and "running" in name:
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("abits", [1, 1.5])
def test_evaluation_mode_is_the_integer_definition(abits):
    """Each layer's output recomputed from the definition in plain torch/Fraction
    arithmetic: thresholds, +-1 weights, exact D, round(A D + B) half up, the
    source's channels repeated."""
    model = small_net(abits)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DualPath):
                m.bn.running_mean.uniform_(-3, 3)
                m.bn.running_var.uniform_(0.5, 20)
                m.bn.weight.uniform_(-2, 2)
                m.bias.uniform_(-2, 2)
                m.shift.uniform_(-1.5, 1.5)
                m.range.fill_(3.0)
    model.eval()
    x = torch.randn(2, 1, 9, 7) * 3
    outs = model(x, outputs=list(range(5)))
    for i in (1, 3, 4):
        m = model.layers[i]
        h = outs[i - 1]
        src = outs[m.references(i)[0]]
        lo, hi = m.thresholds()
        q = (h > hi.view(1, -1, 1, 1)).double()
        q = q - (h < lo.view(1, -1, 1, 1)).double() if lo is not None else 2 * q - 1
        d = torch.nn.functional.conv2d(q, torch.where(m.weight > 0, 1.0, -1.0).double().detach(), None,
                                       m.stride, m.padding).round().long()
        sd = torch.sqrt(m.bn.running_var) + 1e-6
        g = m.bn.weight / sd
        a, b = (m.range * g).detach(), (m.range * (m.bias - m.bn.running_mean * g)).detach()
        z = outs[i]
        assert torch.equal(z, z.round()), i
        want = [exact_round(a[ch], b[ch], dv) + float(sv)
                for n in range(2) for ch in range(m.filters)
                for dv, sv in zip(d[n, ch].flatten().tolist(),
                                  torch.round(src[n, ch % src.shape[1]]).flatten().tolist())]
        assert z.flatten().tolist() == want, i   # no value here is within 2^-29 of a half


def randomized(abits):
    model = small_net(abits)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DualPath):
                m.bn.running_mean.uniform_(-3, 3)
                m.bn.running_var.uniform_(0.5, 20)
                m.bn.weight.uniform_(-2, 2)
                m.bias.uniform_(-2, 2)
                m.shift.uniform_(-1.5, 1.5)
                m.range.uniform_(1, 5)
                if m.delta is not None:
                    m.delta.uniform_(0.5, 2)
                m.weight.uniform_(-1, 1)
    return model.eval()


@pytest.mark.parametrize("abits", [1, 1.5])
def test_mdfi_layers_equal_the_modules_on_the_same_inputs(abits, tmp_path):
    """Export, run in MDFI (every layer kept), and feed each [dualpath] module
    MDFI's own inputs to it: its output equals MDFI's bit for bit.  The whole
    network agrees to float rounding (the stem and head are float)."""
    import mdfi
    from weights_tools.torch import import_darknet, save
    model = randomized(abits)
    cfg, weights = save(model, tmp_path / "dp")
    again = import_darknet(cfg, weights)
    x = (torch.rand(3, 1, 9, 7) * 4 - 2)
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        for n in range(3):
            net.forward(x[n].numpy())
            outs = [torch.from_numpy(net.layer_output(i).copy()).unsqueeze(0)
                    for i in range(len(net.layers))]
            for i in (1, 3, 4):
                for m in (model, again):
                    with torch.no_grad():
                        z = m.layers[i](outs[i - 1], outs[:i])
                    assert torch.equal(z, outs[i]), (n, i)
            with torch.no_grad():
                want = model(x[n:n + 1]).flatten()
            got = torch.from_numpy(net.forward(x[n].numpy()).copy()).flatten()
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_packed_dualpath_weights_give_the_same_outputs(tmp_path):
    import mdfi
    from weights_tools import xnor_pack
    from weights_tools.darknet_weights import write_weights
    from weights_tools.torch import save
    cfg, weights = save(randomized(1.5), tmp_path / "dp")
    data, rep = xnor_pack.pack(cfg, weights)
    assert [r["index"] for r in rep["layers"]] == [1, 3, 4]
    assert rep["total"]["packed_bytes"] == 8 * 9 + 16 * 9 + 16 * 2   # 72, 72, 16 bits a filter
    back = tmp_path / "back.weights"
    back.write_bytes(write_weights(cfg, xnor_pack.unpack(cfg, data)))
    x = np.random.default_rng(0).uniform(-2, 2, (1, 9, 7)).astype(np.float32)
    with mdfi.Network(cfg, weights) as a, mdfi.Network(cfg, str(back)) as b:
        assert np.array_equal(a.forward(x), b.forward(x))


def _train_dualpath():
    from test_examples import _load
    return _load("train_dualpath")


def _cifar_args(tmp_path):
    """The arguments of a one-epoch run on a small CIFAR-10 tarball in tmp_path."""
    from test_examples import make_cifar_tarball
    tar = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(tar, sizes=(40, 40, 40, 40, 40), n_test=10)
    return ["--dataset", "cifar10", "--data", str(tar), "--epochs", "1", "--bn-recalibrate", "1"]


def test_train_dualpath_on_a_cifar_tarball(tmp_path, capsys):
    """The trainer end to end on a tiny CIFAR-10-shaped archive (3x32x32, 20
    images a class): one epoch, the files, MDFI == PyTorch on every test image."""
    import json
    from test_examples import make_cifar_tarball
    tar = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(tar, sizes=(40, 40, 40, 40, 40), n_test=10)
    out = tmp_path / "c"
    assert _train_dualpath().main(["--dataset", "cifar10", "--data", str(tar), "--epochs", "1",
                                   "--bn-recalibrate", "1", "-o", str(out)]) == 0
    rec = json.loads((tmp_path / "c.json").read_text())
    assert rec["dataset"] == "cifar10" and rec["history"][0]["epoch"] == 1
    assert rec["mdfi"]["n"] == 10 and rec["mdfi"]["agree_with_pytorch"] == 1.0
    assert "--data" in rec["command"]
    assert "[dualpath]" in (tmp_path / "c.cfg").read_text()


def test_train_dualpath_names_a_missing_tarball(tmp_path, capsys):
    assert _train_dualpath().main(["--dataset", "cifar10", "--data",
                                   str(tmp_path / "none.tar.gz"), "-o", str(tmp_path / "c")]) == 2
    assert "none.tar.gz" in capsys.readouterr().err


def test_distillation_loss():
    """step_loss with a teacher: alpha = 1 and the student as its own teacher
    gives KL(p || p) = 0; alpha = 0 gives plain cross entropy; in between,
    the mix of the two."""
    import torch
    import torch.nn.functional as F
    tr = _train_dualpath()
    torch.manual_seed(0)
    model = tr.build("dual1.5", (1, 12, 12), 10).eval()
    x, y = torch.randn(6, 1, 12, 12), torch.arange(6)
    with torch.no_grad():
        z, ce = tr.step_loss(model, x, y)
        assert torch.allclose(ce, F.cross_entropy(z, y))
        other = tr.build("float", (1, 12, 12), 10).eval()
        _, self_kd = tr.step_loss(model, x, y, teacher=(model, 1.0, 4.0))
        _, none = tr.step_loss(model, x, y, teacher=(other, 0.0, 2.0))
        _, kd = tr.step_loss(model, x, y, teacher=(other, 1.0, 2.0))
        _, mix = tr.step_loss(model, x, y, teacher=(other, 0.25, 2.0))
    assert abs(float(self_kd)) < 1e-6
    assert torch.allclose(none, ce) and float(kd) > 1e-4
    assert torch.allclose(mix, 0.75 * ce + 0.25 * kd)


def test_train_dualpath_init_from_and_teacher(tmp_path):
    """--init-from starts from a trained model's files (with --lr 0 its latent
    weights come out unchanged) and --teacher distils from another; the
    record names both in its command."""
    import json
    import torch
    from weights_tools.torch import import_darknet
    common = _cifar_args(tmp_path)
    tr = _train_dualpath()
    assert tr.main(common + ["--variant", "float", "-o", str(tmp_path / "f")]) == 0
    assert tr.main(common + ["-o", str(tmp_path / "a")]) == 0
    assert tr.main(common + ["--init-from", str(tmp_path / "a"), "--teacher", str(tmp_path / "f"),
                             "--lr", "0", "-o", str(tmp_path / "b")]) == 0
    a = import_darknet(str(tmp_path / "a.cfg"), str(tmp_path / "a.weights")).state_dict()
    b = import_darknet(str(tmp_path / "b.cfg"), str(tmp_path / "b.weights")).state_dict()
    latent = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    assert latent and all(torch.equal(a[k], b[k]) for k in latent)
    rec = json.loads((tmp_path / "b.json").read_text())
    assert "--init-from" in rec["command"] and "--teacher" in rec["command"]
    assert rec["mdfi"]["agree_with_pytorch"] == 1.0


def test_init_from_a_float_network_seeds_the_binary_one(tmp_path, capsys):
    """--init-from a float network of the same shape (adopt_float): the stem is
    the float one's (its BN scale and bias times g), each binary layer's latent
    weights have the float convolution's signs at a fresh layer's mean
    magnitude, lambda = g, the classifier's weights are the float ones / g; with
    --lr 0 they come out of training as they went in."""
    import torch
    from weights_tools.torch import Connected, Conv, DualPath, import_darknet
    common = _cifar_args(tmp_path)
    tr = _train_dualpath()
    assert tr.main(common + ["--variant", "float", "-o", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    assert tr.main(common + ["--init-from", str(tmp_path / "f"), "--lr", "0",
                             "-o", str(tmp_path / "d")]) == 0
    assert "agreement with the file" in capsys.readouterr().out
    f = import_darknet(str(tmp_path / "f.cfg"), str(tmp_path / "f.weights"))
    d = import_darknet(str(tmp_path / "d.cfg"), str(tmp_path / "d.weights"))
    fc = [m for m in f.layers if isinstance(m, Conv)]
    dc = [m for m in d.layers if isinstance(m, (Conv, DualPath))]
    assert len(fc) == len(dc) == 5 and all(isinstance(m, DualPath) for m in dc[1:])
    with torch.no_grad():
        g = 4.0 / float(fc[0].bn.weight.pow(2).mean().sqrt())
        assert torch.equal(dc[0].weight, fc[0].weight)
        assert torch.allclose(dc[0].bn.weight, fc[0].bn.weight * g, rtol=1e-6)
        for a, b in zip(dc[1:], fc[1:]):
            assert torch.equal(a.weight > 0, b.weight > 0)
            assert abs(float(a.weight.abs().mean()) - 0.025) < 1e-6
            assert abs(float(a.range) - g) < 1e-5 * g
        (lf,), (ld,) = ([m for m in n.layers if isinstance(m, Connected)] for n in (f, d))
        assert torch.allclose(ld.weight * g, lf.weight, rtol=1e-5, atol=1e-7)


def test_init_from_and_teacher_refuse_bad_files(tmp_path, capsys):
    """A missing file, a model of another shape and a teacher for other images are
    named on stderr with exit status 2, before any training."""
    common = _cifar_args(tmp_path)
    tr = _train_dualpath()
    assert tr.main(common + ["--variant", "float", "-o", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    assert tr.main(common + ["--init-from", str(tmp_path / "none"), "-o", str(tmp_path / "a")]) == 2
    assert "none.cfg" in capsys.readouterr().err
    assert tr.main(common + ["--variant", "float", "--widths", "32,64", "-o", str(tmp_path / "g")]) == 0
    capsys.readouterr()
    assert tr.main(common + ["--init-from", str(tmp_path / "g"), "-o", str(tmp_path / "a")]) == 2
    assert "is not a dual1.5 network of this shape" in capsys.readouterr().err
    assert tr.main(common + ["--variant", "float", "--init-from", str(tmp_path / "g"),
                             "-o", str(tmp_path / "a")]) == 2
    assert "is not a float network of this shape" in capsys.readouterr().err
    from weights_tools.torch import save
    save(tr.build("float", (1, 32, 32), 10).eval(), tmp_path / "m")   # grey images
    assert tr.main(common + ["--teacher", str(tmp_path / "m"), "-o", str(tmp_path / "a")]) == 2
    assert "does not take this dataset's images" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()


def test_weight_average_follows_its_decay_and_leaves_the_model_alone():
    """WeightAverage from a model at 0 towards a model held at c: after n updates
    the average is c (1 - prod of the n decays), each decay min(D, (1 + k) / (10 + k));
    buffers are copied; the trained model is not touched; a decay outside (0, 1)
    is refused."""
    import torch
    tr = _train_dualpath()
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for q in net.parameters():
            q.zero_()
    avg = tr.WeightAverage(net, 0.5)
    c = torch.tensor(3.0)
    with torch.no_grad():
        for q in net.parameters():
            q.fill_(c)
        net[1].running_mean.fill_(7.0)
    rates = []
    for k in range(12):
        rates.append(avg.rate())
        avg.update(net)
    expected = np.minimum(0.5, (1.0 + np.arange(12)) / (10.0 + np.arange(12)))
    assert np.allclose(rates, expected)
    want = 3.0 * (1.0 - np.prod(expected))
    for a, q in zip(avg.model.parameters(), net.parameters()):
        assert not a.requires_grad and q.requires_grad
        assert torch.allclose(a, torch.full_like(a, want)) and torch.all(q == 3.0)
    assert torch.all(avg.model[1].running_mean == 7.0)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            tr.WeightAverage(net, bad)


def test_train_dualpath_ema_saves_the_average(tmp_path, capsys):
    """--ema: each epoch validates the average (the trained weights' figure beside
    it), the files are the average's (not the last step's), MDFI == PyTorch, the
    record names the decay; a decay outside (0, 1) is refused by argparse."""
    import json
    import torch
    from test_examples import make_cifar_tarball
    from weights_tools.torch import import_darknet
    tar = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(tar, sizes=(40, 40, 40, 40, 40), n_test=10)
    tr = _train_dualpath()
    out = tmp_path / "e"
    assert tr.main(["--dataset", "cifar10", "--data", str(tar), "--epochs", "2", "--ema", "0.9",
                    "--bn-recalibrate", "1", "-o", str(out)]) == 0
    rec = json.loads((tmp_path / "e.json").read_text())
    assert rec["ema"] == 0.9 and "--ema 0.9" in rec["command"]
    assert all("validation_trained" in h for h in rec["history"])
    assert rec["mdfi"]["agree_with_pytorch"] == 1.0
    assert not (tmp_path / "e.pt.tmp").exists()           # written whole, then renamed
    state = torch.load(str(out) + ".pt", weights_only=False)
    assert state["epoch"] == 2 and state["ema_steps"] >= 2
    saved = import_darknet(str(out) + ".cfg", str(out) + ".weights").state_dict()
    latent = [k for k in saved if k.endswith("weight") and saved[k].dim() == 4]
    assert latent
    assert all(torch.allclose(saved[k], state["ema"][k]) for k in latent)
    assert not all(torch.allclose(saved[k], state["model"][k]) for k in latent)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        tr.main(["--dataset", "cifar10", "--data", str(tar), "--ema", "1", "-o", str(out)])
    assert "a decay must lie in (0, 1), got 1" in capsys.readouterr().err


def test_clip_unitwise_bounds_each_filter_and_nothing_else():
    """clip_unitwise: a filter whose gradient norm exceeds clip x its weight norm
    (at least eps) is scaled to exactly that, in its direction; the others, and
    every parameter that is not a 4-d convolution weight, keep their gradients;
    the share of filters clipped is returned."""
    import torch
    tr = _train_dualpath()
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0].fill_(1.0)         # norm sqrt(18)
        net[0].weight[1].fill_(0.5)         # norm sqrt(18) / 2
        net[0].weight[3].fill_(1.0)
    g = torch.zeros(4, 2, 3, 3)
    g[0].fill_(0.01)                        # ratio 0.01: under the limit
    g[1].fill_(1.0)                         # ratio 2: clipped to 0.1 x its norm
    g[2].fill_(1.0)                         # weight 0: the limit is clip x eps
    g[3].fill_(0.15)                        # ratio 0.15: just over the limit
    net[0].weight.grad = g.clone()
    net[0].bias.grad = torch.full((4,), 5.0)
    net[2].weight.grad = torch.full((2, 4), 9.0)
    share = tr.clip_unitwise(net, 0.1, eps=1e-3)
    assert share == pytest.approx(3 / 4)
    out = net[0].weight.grad
    assert torch.equal(out[0], g[0])
    assert out[1].norm().item() == pytest.approx(0.1 * net[0].weight[1].norm().item(), rel=1e-5)
    assert torch.allclose(out[1] / out[1].norm(), g[1] / g[1].norm())
    assert out[2].norm().item() == pytest.approx(0.1 * 1e-3, rel=1e-5)
    assert torch.allclose(out[3], torch.full_like(out[3], 0.1))
    assert torch.all(net[0].bias.grad == 5.0) and torch.all(net[2].weight.grad == 9.0)


def test_train_dualpath_agc(tmp_path, capsys):
    """--agc: each epoch's line and history name the share of filters clipped, the
    record names CLIP; a CLIP that is not a number > 0 is refused by argparse."""
    import json
    args = _cifar_args(tmp_path)
    tr = _train_dualpath()
    out = tmp_path / "c"
    assert tr.main(args + ["--agc", "1e-6", "-o", str(out)]) == 0
    assert "filters clipped 100.0%" in capsys.readouterr().out   # a limit no gradient is under
    rec = json.loads((tmp_path / "c.json").read_text())
    assert rec["agc"] == 1e-6 and "--agc 1e-6" in rec["command"]
    assert rec["history"][0]["clipped_share"] == 1.0
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(SystemExit):
            tr.main(args + ["--agc", bad, "-o", str(out)])
        assert "must be a number > 0, got %s" % bad in capsys.readouterr().err


def test_learning_rate_schedules():
    """cosine: lr at the start, lr/2 half way, 0 at the end, falling throughout;
    constant: lr at every step."""
    tr = _train_dualpath()
    cos = [tr.learning_rate("cosine", 0.1, k, 100) for k in range(101)]
    assert cos[0] == 0.1 and abs(cos[50] - 0.05) < 1e-12 and abs(cos[100]) < 1e-12
    assert all(a > b for a, b in zip(cos, cos[1:]))
    assert all(tr.learning_rate("constant", 0.1, k, 100) == 0.1 for k in range(101))


def test_train_dualpath_widths_and_stem(tmp_path, capsys):
    """--stem and --widths set the network's filters (the record names them); a
    network whose width is not a multiple of the one before (its layers add their
    input) and counts that are not channel counts are refused before any training;
    the xnor variant, which adds nothing, takes any widths."""
    import json
    common = _cifar_args(tmp_path)
    tr = _train_dualpath()
    assert tr.main(common + ["--stem", "8", "--widths", "16,32", "-o", str(tmp_path / "w")]) == 0
    rec = json.loads((tmp_path / "w.json").read_text())
    assert rec["stem"] == 8 and rec["widths"] == [16, 32] and rec["mdfi"]["agree_with_pytorch"] == 1.0
    cfg = (tmp_path / "w.cfg").read_text()
    assert [int(v) for v in re.findall(r"^filters=(\d+)", cfg, re.M)] == [8, 16, 16, 32, 32]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        tr.main(common + ["--variant", "float", "--stem", "6", "--widths", "8", "-o", str(tmp_path / "f")])
    assert "float variant needs each width a multiple of the one before (8 after 6)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tr.main(common + ["--stem", "8", "--widths", "16,24", "-o", str(tmp_path / "f")])
    assert "dual1.5 variant needs each width a multiple of the one before (24 after 16)" in capsys.readouterr().err
    assert tr.main(common + ["--variant", "xnor", "--stem", "6", "--widths", "8,12", "-o", str(tmp_path / "x")]) == 0
    for bad in (("--widths", "16,0"), ("--widths", "a"), ("--stem", "5000")):
        with pytest.raises(SystemExit):
            tr.main(common + list(bad) + ["-o", str(tmp_path / "f")])
        assert "a channel count must lie in 1..4096" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_a_checkpoint_write_that_fails_keeps_the_last_one(tmp_path, monkeypatch):
    """save_checkpoint writes a temporary file and renames it: a write that dies
    half way leaves the previous checkpoint whole."""
    import torch
    tr = _train_dualpath()
    path = str(tmp_path / "run.pt")
    tr.save_checkpoint({"epoch": 1}, path)
    real = torch.save

    def dies(obj, f):
        real(obj, f)
        with open(f, "r+b") as h:          # half written
            h.truncate(5)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        tr.save_checkpoint({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real)
    assert torch.load(path, weights_only=False) == {"epoch": 1}
    tr.save_checkpoint({"epoch": 3}, path)
    assert torch.load(path, weights_only=False) == {"epoch": 3}
    assert not (tmp_path / "run.pt.tmp").exists()


def test_dualpath_benchmark_runs_and_refuses_bad_shapes(tmp_path):
    """benchmarks/dualpath_bench.py end to end on untrained stand-ins of a small
    shape (a prefix with no trained files): four networks, four body layers
    each, the per-layer ratio's range over the rounds; bad shapes are named."""
    import json
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    bench = [sys.executable, str(root / "benchmarks" / "dualpath_bench.py")]
    out = tmp_path / "b.json"
    res = subprocess.run(bench + ["--prefix", "none_", "--stem", "16", "--widths", "32,64",
                                  "--rounds", "2", "--images", "3", "--json", str(out)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    rec = json.loads(out.read_text())
    rows = {r["variant"]: r for r in rec["rows"]}
    assert set(rows) == {"float", "xnor", "dual1", "dual1.5"}
    assert all(r["weights"] == "initialised" and len(r["body_layers_ms"]) == 4 for r in rows.values())
    for v in ("xnor", "dual1", "dual1.5"):
        rng = rows[v]["body_layers_speedup_range"]
        assert len(rng) == 4 and all(0 < lo <= hi for lo, hi in rng)
    assert "--widths 32,64" in rec["command"]
    for bad, said in ((["--widths", "64,96"], "B a multiple of A"), (["--stem", "0"], "1..4096"),
                      (["--stem", "40"], "multiple of the stem's 40"),
                      (["--widths", "x"], "whole number")):
        res = subprocess.run(bench + bad, capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 2 and said in res.stderr, (bad, res.stderr)
