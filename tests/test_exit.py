"""Early exits in the C engine (docs/early-exit.md), checked against
independent computations: the main path and the branch against the same
layers built as plain networks without [exit] (same weights), the
predictors against numpy, the decisions against the rules written out in
Python, the MACs against the layers' own counts."""
import dataclasses
import struct

import numpy as np
import pytest

import mdfi

NET = "[net]\nwidth=8\nheight=8\nchannels=2\n"
CONV0 = "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
POOL1 = "[maxpool]\nsize=2\nstride=2\n"
EXIT2 = ("[exit]\nfrom=-1\nlayers=2\nthreshold=0.5\npredictors=entropy,exit\npool=2\n"
         "hidden=3\n")
BR3 = "[connected]\noutput=5\nactivation=linear\n"
SOFT = "[softmax]\n"
CONV5 = "[convolutional]\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
FC6 = "[connected]\noutput=5\nactivation=linear\n"

D, H = 4 * 2 * 2, 3


def _params(seed=0):
    r = np.random.default_rng(seed)
    f = lambda *s: r.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    return {
        "conv0": [f(4), f(4, 2, 3, 3)],
        "br3": [f(5), f(5, 64)],
        "conv5": [f(6), f(6, 4, 3, 3)],
        "fc6": [f(5), f(5, 6 * 16)],
        "entropy": [f(H), f(H, D), f(1), f(1, H)],
        "exit": [f(H), f(H, D), f(1), f(1, H)],
    }


def _write(tmp_path, name, text, arrays):
    (tmp_path / f"{name}.cfg").write_text(text)
    blob = struct.pack("<iiiQ", 0, 2, 0, 0) + b"".join(a.tobytes() for a in arrays)
    (tmp_path / f"{name}.weights").write_bytes(blob)
    return tmp_path / f"{name}.cfg", tmp_path / f"{name}.weights"


@pytest.fixture
def model(tmp_path):
    p = _params()
    flat = lambda *names: [a for n in names for a in p[n]]  # noqa: E731
    exit_net = _write(tmp_path, "exit", NET + CONV0 + POOL1 + EXIT2 + BR3 + SOFT + CONV5 + FC6 +
                      SOFT, flat("conv0", "entropy", "exit", "br3", "conv5", "fc6"))
    main = _write(tmp_path, "main", NET + CONV0 + POOL1 + CONV5 + FC6 + SOFT,
                  flat("conv0", "conv5", "fc6"))
    branch = _write(tmp_path, "branch", NET + CONV0 + POOL1 + BR3 + SOFT, flat("conv0", "br3"))
    return exit_net, main, branch, p


def _inputs(n=8, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, 2, 8, 8)).astype(np.float32)


def _entropy(p):
    p = p.astype(np.float64).ravel()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(p.size))


def _predict(feat, w):
    b1, w1, b2, w2 = w
    h = np.maximum(w1 @ feat + b1, 0)
    return float(1 / (1 + np.exp(-(w2 @ h + b2)[0])))


def _pooled(x, p):
    from weights_tools.fixed_ref import adaptive_pool
    return adaptive_pool(x, p)


def test_wiring_and_info(model):
    exit_cfg, _, _, _ = model
    with mdfi.Network(*exit_cfg) as net:
        assert net.exit_policy == "branchy"
        (e,) = net.exits
        assert (e.layer, e.from_layer, e.first, e.last) == (2, 1, 3, 4)
        assert e.predictors == ("entropy", "exit")
        assert e.threshold == 0.5 and e.exit_gate == 0.5 and e.entropy_gate == 0.5
        assert net.layers[3].input_shape == (4, 4, 4)      # reads the branch point
        assert net.layers[5].input_shape == (4, 4, 4)      # so does the main path after it
        macs = [li.macs for li in net.layers]
        assert macs == [li.flops / 2 for li in net.layers]   # a float network
        assert e.branch_macs == macs[3] + macs[4]
        assert net.main_macs == macs[0] + macs[1] + sum(macs[5:])
        assert e.path_macs == macs[0] + macs[1] + e.branch_macs
        assert e.predictor_macs == 4 * 4 * 4 + D * H + H


def test_outputs_equal_plain_networks(model):
    exit_cfg, main_cfg, branch_cfg, p = model
    xs = _inputs()
    with mdfi.Network(*exit_cfg) as net, mdfi.Network(*main_cfg) as main, \
            mdfi.Network(*branch_cfg, keep_outputs=True) as branch:
        net.exit_policy = "none"
        for x in xs:
            np.testing.assert_array_equal(net.forward(x), main.forward(x))
            assert net.last_exit.exit == -1
            assert net.last_exit.macs == net.main_macs
        net.exit_policy = "all"   # every branch and predictor runs, no exit is taken
        for x in xs:
            out = net.forward(x)
            np.testing.assert_array_equal(out, main.forward(x))
            want = branch.forward(x)
            np.testing.assert_array_equal(net.layer_output(4), want)
            feat = _pooled(branch.layer_output(1).astype(np.float64), 2)
            got = net.layer_output(2).ravel()
            assert got[0] == pytest.approx(_predict(feat, p["entropy"]), abs=1e-5)
            assert got[1] == pytest.approx(_predict(feat, p["exit"]), abs=1e-5)
            e = net.exits[0]
            assert net.last_exit.macs == net.main_macs + e.branch_macs + 2 * e.predictor_macs


def _expected(policy, h, pred, thr, gates):
    """The decision rules of docs/early-exit.md: (branch runs, exit fires)."""
    runs = {"none": False, "all": True, "branchy": True,
            "entropy-predictor": pred[0] < gates[0], "exit-predictor": pred[1] > gates[1]}[policy]
    return runs, runs and policy != "all" and h < thr


@pytest.mark.parametrize("policy", ["branchy", "entropy-predictor", "exit-predictor"])
def test_decisions_follow_the_rules(model, policy):
    exit_cfg, main_cfg, branch_cfg, _ = model
    xs = _inputs(16, seed=2)
    with mdfi.Network(*exit_cfg) as net, mdfi.Network(*branch_cfg) as branch:
        net.exit_policy = "all"
        probe = []
        for x in xs:
            net.forward(x)
            probe.append((_entropy(net.layer_output(4)), net.layer_output(2).ravel().copy()))
        hs = sorted(h for h, _ in probe)
        thr = (hs[7] + hs[8]) / 2     # half the inputs would exit
        gates = (float(np.median([v[0] for _, v in probe])),
                 float(np.median([v[1] for _, v in probe])))
        net.set_exit_thresholds(0, threshold=thr, entropy_gate=gates[0], exit_gate=gates[1])
        net.exit_policy = policy
        fired = 0
        e = net.exits[0]
        for x, (h, pred) in zip(xs, probe):
            out = net.forward(x)
            runs, fires = _expected(policy, h, pred, thr, gates)
            r = net.last_exit
            assert r.exit == (0 if fires else -1)
            fired += fires
            want_macs = (e.path_macs if fires else net.main_macs + runs * e.branch_macs)
            want_macs += (policy != "branchy") * e.predictor_macs
            assert r.macs == want_macs
            if fires:
                np.testing.assert_array_equal(out, branch.forward(x))
                assert r.layer == 4 and r.entropy == pytest.approx(h, abs=1e-6)
            else:
                assert r.layer == len(net.layers) - 1
        assert 0 < fired < len(xs) or policy != "branchy"


def test_skipped_branch_is_not_readable(model):
    exit_cfg, *_ = model
    with mdfi.Network(*exit_cfg) as net:
        net.exit_policy = "none"
        net.forward(_inputs(1)[0])
        with pytest.raises(mdfi.ArgumentError, match="did not run"):
            net.layer_output(4)


def test_thread_counts_agree(model):
    exit_cfg, *_ = model
    xs = _inputs(6, seed=3)
    runs = []
    for threads in (1, 2, 3):
        with mdfi.Network(*exit_cfg, threads=threads) as net:
            net.set_exit_thresholds(0, threshold=0.9)
            runs.append([(net.forward(x).tobytes(), net.last_exit) for x in xs])
    assert runs[0] == runs[1] == runs[2]


def test_policy_errors(model, tmp_path):
    exit_cfg, main_cfg, _, _ = model
    with mdfi.Network(*main_cfg) as net:
        assert net.exit_policy == "none" and net.exits == []
        with pytest.raises(mdfi.UnsupportedError, match="no \\[exit\\] layers"):
            net.exit_policy = "branchy"
    text = exit_cfg[0].read_text().replace("predictors=entropy,exit", "predictors=exit")
    cfg, _ = _write(tmp_path, "one", text, [])
    with mdfi.Network(cfg) as net:
        with pytest.raises(mdfi.UnsupportedError, match="layer 2 .*one.cfg:\\d+.*no entropy"):
            net.exit_policy = "entropy-predictor"
        net.exit_policy = "exit-predictor"
        with pytest.raises(mdfi.ArgumentError, match="unknown exit policy"):
            net.exit_policy = "fastest"
        with pytest.raises(mdfi.ArgumentError, match="threshold=1.5 is out of range"):
            net.set_exit_thresholds(0, threshold=1.5)


BAD = [
    ("from=-1", "from=7", "from=7 refers to layer"),
    ("layers=2", "layers=0", "layers=0 must be"),
    ("threshold=0.5", "threshold=1.5", "threshold=1.5 is out of range"),
    ("threshold=0.5", "threshold=0", "threshold=0 is out of range"),
    ("hidden=3", "hidden=3\nexit_gate=-0.1", "exit_gate=-0.1 is out of range"),
    ("predictors=entropy,exit", "predictors=entropy,depth", "predictors=entropy,depth"),
    ("pool=2", "pool=5", "pool=5 must be"),
    ("layers=2", "layers=1", "must end with \\[softmax\\], not \\[connected\\]"),
    ("layers=2", "layers=5", "layers=5, but 5 layers follow"),
]


@pytest.mark.parametrize("old,new,msg", BAD)
def test_bad_exit_sections(model, tmp_path, old, new, msg):
    text = model[0][0].read_text()
    assert old in text
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text.replace(old, new, 1))
    with pytest.raises(mdfi.CfgError, match=f"bad.cfg:\\d+: .*{msg}"):
        mdfi.Network(cfg)


def test_main_path_cannot_read_a_branch(tmp_path):
    text = NET + CONV0 + POOL1 + EXIT2 + BR3 + SOFT + "[route]\nlayers=-2\n" + FC6 + SOFT
    cfg = tmp_path / "reads.cfg"
    cfg.write_text(text)
    with pytest.raises(mdfi.CfgError, match="layer 5 \\[route\\] reads layer 3, which belongs "
                                            "to the exit at layer 2"):
        mdfi.Network(cfg)


def test_missing_predictor_parameters(model, tmp_path):
    exit_cfg, *_ = model
    short = tmp_path / "short.weights"
    short.write_bytes(exit_cfg[1].read_bytes()[:20 + 4 * (4 + 72)])
    with pytest.raises(mdfi.WeightsError, match="ran out at layer 2 \\[exit\\]"):
        mdfi.Network(exit_cfg[0], short)


@pytest.mark.slow
def test_program_runs_every_policy_under_sanitizers(model):
    """The mdfi program (sanitizer build) on an exit model: info lists the exit and
    the paths' MACs; bench runs each policy; a policy the model lacks is refused."""
    import subprocess

    from cbuild import build
    from test_program_builds import SAN_ENV, assert_clean

    exe = build(sanitize=True, targets=("all",)) / "mdfi"
    cfg, weights = map(str, model[0])
    res = subprocess.run([str(exe), "info", cfg, weights], capture_output=True, text=True,
                         env=SAN_ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    assert_clean(res.stderr)
    assert "exit 0: layer 2, from 1, branch 3..4" in res.stdout
    assert "exits (policy branchy)" in res.stdout
    for policy in ("none", "all", "branchy", "entropy-predictor", "exit-predictor"):
        res = subprocess.run([str(exe), "bench", cfg, weights, "--runs", "3", "--policy", policy],
                             capture_output=True, text=True, env=SAN_ENV, timeout=120)
        assert res.returncode == 0, (policy, res.stderr)
        assert_clean(res.stderr)
    res = subprocess.run([str(exe), "bench", cfg, weights, "--policy", "fastest"],
                         capture_output=True, text=True, env=SAN_ENV, timeout=120)
    assert res.returncode == 1 and "unknown exit policy 'fastest'" in res.stderr
    assert_clean(res.stderr)


FX = {0: "fixed_in=8:5\nfixed_w=8:6\nfixed_out=8:3\n", "pool": "fixed_out=8:3\n",
      3: "fixed_in=8:3\nfixed_w=8:7\nfixed_out=8:2\n", 5: "fixed_in=8:3\nfixed_w=8:6\nfixed_out=8:2\n",
      6: "fixed_in=8:2\nfixed_w=8:7\nfixed_out=8:1\n"}


def test_fixed_point_exit(tmp_path):
    """An integer network with an exit: the main path and the branch equal the same
    integer layers built without [exit]; the predictors read the branch point's
    integers (dequantized, pooled) and agree with numpy."""
    from fixed_models import random_qweights
    from weights_tools import qweights as qwf

    conv = lambda n, fx: CONV0.replace("filters=4", f"filters={n}") + fx  # noqa: E731
    exit_text = (NET + conv(4, FX[0]) + POOL1 + FX["pool"] + EXIT2 + BR3 + FX[3] + SOFT +
                 conv(6, FX[5]) + FC6 + FX[6] + SOFT)
    main_text = NET + conv(4, FX[0]) + POOL1 + FX["pool"] + conv(6, FX[5]) + FC6 + FX[6] + SOFT
    branch_text = NET + conv(4, FX[0]) + POOL1 + FX["pool"] + BR3 + FX[3] + SOFT
    C, M = qwf.KIND_CONV, qwf.KIND_CONNECTED
    spec = {0: (C, 4, 18, 1, (8, 5), (8, 6), (8, 3)), 3: (M, 5, 64, 1, (8, 3), (8, 7), (8, 2)),
            5: (C, 6, 36, 1, (8, 3), (8, 6), (8, 2)), 6: (M, 5, 96, 1, (8, 2), (8, 7), (8, 1))}
    qw = random_qweights(spec, 8, seed=4, scale=40)
    p = _params(7)
    qw.records[2] = qwf.QArrays(2, {f"{k}_{n}": a.ravel() for k in ("entropy", "exit")
                                    for n, a in zip(("b1", "w1", "b2", "w2"), p[k])})
    paths = {}
    for name, text, keep in (("exit", exit_text, None), ("main", main_text, (0, 1, 5, 6, 7)),
                             ("branch", branch_text, (0, 1, 3, 4))):
        (tmp_path / f"{name}.cfg").write_text(text)
        q = qw if keep is None else qwf.QWeights(len(keep), {
            j: dataclasses.replace(qw.records[i], layer=j) for j, i in enumerate(keep)
            if i in qw.records})
        qwf.write(tmp_path / f"{name}.qweights", q)
        paths[name] = (tmp_path / f"{name}.cfg", tmp_path / f"{name}.qweights")
    xs = _inputs(6, seed=5)
    with mdfi.Network(*paths["exit"], exit_policy="all") as net, \
            mdfi.Network(*paths["main"]) as main, \
            mdfi.Network(*paths["branch"], keep_outputs=True) as branch:
        assert net.is_fixed and net.layer_format(2).input == (8, 3)
        for x in xs:
            np.testing.assert_array_equal(net.forward(x), main.forward(x))
            np.testing.assert_array_equal(net.layer_output(4), branch.forward(x))
            q, frac = branch.layer_output_int(1)
            feat = _pooled(q.astype(np.float64) * 2.0 ** -frac, 2)
            got = net.layer_output(2).ravel()
            assert got[0] == pytest.approx(_predict(feat, p["entropy"]), abs=1e-5)
            assert got[1] == pytest.approx(_predict(feat, p["exit"]), abs=1e-5)
        net.exit_policy = "branchy"
        net.set_exit_thresholds(0, threshold=1.0)    # every input leaves at the branch
        for x in xs:
            np.testing.assert_array_equal(net.forward(x), branch.forward(x))
            assert net.last_exit.exit == 0


def test_classify_reports_the_exit(tmp_path):
    """python -m mdfi.classify and `mdfi classify` on a grey exit model print the exit
    taken; both agree with Network on the same input."""
    import json
    import subprocess
    import sys

    from cbuild import build

    p = _params(9)
    conv0 = [p["conv0"][0], p["conv0"][1][:, :1]]
    cfg, weights = _write(tmp_path, "grey", (NET + CONV0 + POOL1 + EXIT2 + BR3 + SOFT + CONV5 +
                                            FC6 + SOFT).replace("channels=2", "channels=1"),
                          conv0 + p["entropy"] + p["exit"] + p["br3"] + p["conv5"] + p["fc6"])
    pix = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    img = tmp_path / "grey.pgm"
    img.write_bytes(b"P5\n8 8\n255\n" + pix.tobytes())
    x = (pix.astype(np.float32) / 255)[None]
    for thr, want in ((1.0, 0), (1e-6, -1)):
        text = cfg.read_text().replace("threshold=0.5", f"threshold={thr}")
        cfg.write_text(text.replace("threshold=1.0", f"threshold={thr}"))
        with mdfi.Network(cfg, weights) as net:
            probs = net.forward(x)
            assert net.last_exit.exit == want
        res = subprocess.run([sys.executable, "-m", "mdfi.classify", str(cfg), str(weights),
                              str(img), "--json", "--top", "1"], capture_output=True, text=True)
        rec = json.loads(res.stdout)
        assert rec["exit"] == want and rec["top"][0]["class_id"] == int(np.argmax(probs))
        assert rec["top"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-6)
        exe = build(targets=("all",)) / "mdfi"
        res = subprocess.run([str(exe), "classify", str(cfg), str(weights), str(img), "--json",
                              "--top", "1"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["exit"] == want
        res = subprocess.run([sys.executable, "-m", "mdfi.classify", str(cfg), str(weights),
                              str(img), "--policy", "none"], capture_output=True, text=True)
        assert "main path end" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("policy", ["none", "branchy", "all"])
def test_stop_and_resume_across_a_branch(model, policy):
    """forward_until stops anywhere (before, inside, after the branch); resume ends
    exactly where a whole forward ends, with the same result and MACs."""
    exit_cfg, *_ = model
    xs = _inputs(4, seed=6)
    with mdfi.Network(*exit_cfg, exit_policy=policy) as net:
        net.set_exit_thresholds(0, threshold=0.9)
        for x in xs:
            want = net.forward(x)
            r = net.last_exit
            for stop in range(len(net.layers) - 1):
                net.forward_until(x, stop)
                net.resume()
                assert net.last_exit == r, stop
                np.testing.assert_array_equal(net.layer_output(r.layer), want)


def test_random_exit_sections_load_or_fail_cleanly(model, tmp_path):
    """Random values for every [exit] key (and random branch lengths): the cfg loads
    (and runs under every policy it allows) or fails with an MdfiError naming the cfg;
    never a crash."""
    text = model[0][0].read_text()
    head, tail = text.split("[exit]\n", 1)
    rest = tail.split("[connected]", 1)[1]
    rng = np.random.default_rng(11)
    values = ["-9", "-3", "-2", "-1", "0", "1", "2", "3", "4", "5", "7", "17", "4097",
              "99999999999", "0.5", "1.0", "1.01", "-0.5", "nan", "inf", "x", ""]
    keys = ["from", "layers", "threshold", "pool", "hidden", "entropy_gate", "exit_gate"]
    x = _inputs(1)[0]
    loaded = 0
    base = {"from": "-1", "layers": "2", "threshold": "0.5", "pool": "2", "hidden": "3",
            "predictors": "entropy,exit"}
    for trial in range(150):
        sec = dict(base)
        for k in rng.choice(keys, size=int(rng.integers(1, 4)), replace=False):
            sec[k] = str(rng.choice(values))
        if rng.random() < 0.3:
            sec["predictors"] = str(rng.choice(["", "entropy", "exit", "exit,entropy",
                                                "entropy,entropy", ",,"]))
        if rng.random() < 0.1:
            del sec["layers"]
        lines = [f"{k}={v}" for k, v in sec.items()]
        cfg = tmp_path / f"r{trial}.cfg"
        cfg.write_text(head + "[exit]\n" + "\n".join(lines) + "\n[connected]" + rest)
        try:
            net = mdfi.Network(cfg)
        except mdfi.MdfiError as e:
            assert f"r{trial}.cfg" in str(e), str(e)
            continue
        with net:
            loaded += 1
            for policy in ("none", "all", "branchy", "entropy-predictor", "exit-predictor"):
                try:
                    net.exit_policy = policy
                except mdfi.UnsupportedError:
                    continue
                out = net.forward(x)
                assert np.all(np.isfinite(out))
    assert loaded > 5


def test_exit_policies_lists_what_every_exit_can_run(model, tmp_path):
    from mdfi.evaluate import exit_policies

    exit_cfg, main_cfg, _, _ = model
    with mdfi.Network(*exit_cfg) as net:
        assert exit_policies(net) == ["branchy", "entropy-predictor", "exit-predictor"]
        for p in exit_policies(net):
            net.exit_policy = p     # each is accepted
    cfg, _ = _write(tmp_path, "one", exit_cfg[0].read_text().replace(
        "predictors=entropy,exit", "predictors=exit"), [])
    with mdfi.Network(cfg) as net:
        assert exit_policies(net) == ["branchy", "exit-predictor"]
    with mdfi.Network(*main_cfg) as net:
        assert exit_policies(net) == []
