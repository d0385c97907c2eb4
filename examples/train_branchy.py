"""Train a BranchyNet-style CNN with early exits and exit predictors, choose its
thresholds on a validation split, export it, run it in MDFI.

    python examples/train_branchy.py --model fmnist_branchy_lenet
    python examples/train_branchy.py --model fmnist_branchy_alexnet
    python examples/train_branchy.py --model mnist_branchy_lenet

The protocol (docs/early-exit.md says what the engine does with the result):

 1. The training images are split: the last --val-fraction of each class (in
    file order) is the validation split; nothing is chosen on the test set.
 2. The network and its branches are trained jointly (BranchyNet): the loss is
    the sum of the cross-entropies of every exit and of the main path (weights
    --exit-weights, then 1 for the main path); Adam with a one-cycle schedule.
 3. The branchy thresholds: on the validation split, per exit, the thresholds
    with the lowest simulated average MACs whose accuracy is at most
    --max-loss points below the main path's.
 4. The network is frozen. On the training split each branch's normalized
    entropy and correctness are computed and two predictors per exit are
    trained on the branch point's pooled features: the entropy predictor
    regresses the normalized entropy (binary cross-entropy on [0, 1] targets),
    the exit predictor classifies "the exit fires at the branchy threshold AND
    its class is right". The second half matters: the predictor decides
    whether a branch is worth running, and a branch whose exit fires on a wrong
    class is worse than useless; so the predictor learns to stop those too,
    which lets its policy use a looser threshold at the same accuracy.
 5. Each predictor policy's thresholds and gates are chosen on the validation
    split the same way (coordinate descent over per-exit grids).
 6. Export (PREFIX.cfg/.weights, the thresholds and gates in the cfg) and a
    JSON record: the command, data split, epochs, times, the choices, the
    simulated test results per policy (PyTorch, float) and, where this MDFI
    runs [exit], the measured ones (accuracy, exit shares, MACs, time per
    image, agreement of MDFI's exits with the simulation).
"""

import argparse
import json
import math
import os
import shlex
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import weights_tools  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.append(os.path.dirname(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from weights_tools.torch import (Connected, Conv, Darknet, Dropout, MaxPool, Softmax,  # noqa: E402
                                 import_darknet, save)
from weights_tools.torch.exits import (POLICIES, costs, decide, normalized_entropy,  # noqa: E402
                                       outcomes, simulate)
from weights_tools.torch.layers import Exit  # noqa: E402
from mdfi import datasets  # noqa: E402


# ----------------------------------------------------------------------------- the networks

def cbl(c, n, size, stride=1):
    return Conv(c, n, size, stride, pad=True, batch_normalize=True, activation="leaky")


def branch_small(c, h, w, classes, width, stride=1):
    """conv 3x3 (BN, leaky) + maxpool 2, then [connected] to the classes, [softmax];
    stride 2: the conv strides instead of the pool (a quarter of its MACs)."""
    conv = [cbl(c, width, 3, stride)] if stride == 2 else [cbl(c, width, 3), MaxPool(2, 2)]
    return conv + [Connected(width * ((h + 1) // 2) * ((w + 1) // 2), classes,
                             activation="linear"), Softmax()]


def lenet(classes, exit_kw, branch_width=16, branch_stride=1):
    """Branchy-LeNet: conv 5x5x32 + pool (branch point, 32x14x14) -> exit 1;
    main: conv 5x5x64 + pool, connected 48, connected classes (a small connected
    layer keeps the weights file under 1 MiB; the MACs are the convolutions')."""
    return Darknet((1, 28, 28), [
        cbl(1, 32, 5), MaxPool(2, 2),
        Exit(branch=branch_small(32, 14, 14, classes, branch_width, branch_stride),
             **exit_kw[0]),
        cbl(32, 64, 5), MaxPool(2, 2),
        Connected(64 * 7 * 7, 48, activation="leaky", batch_normalize=True), Dropout(0.3),
        Connected(48, classes, activation="linear"), Softmax(),
    ])


def alexnet(classes, exit_kw, branch_width=16, branch_stride=1):
    """Branchy-AlexNet scaled to 28x28: conv 5x5x32 + pool -> exit 1; conv 3x3x64 +
    pool -> exit 2; conv 3x3 x64, x64, x64 + pool; connected 64, 64, classes
    (AlexNet's five convolutions and three connected layers, narrowed so that the
    weights file stays under 1 MiB)."""
    return Darknet((1, 28, 28), [
        cbl(1, 32, 5), MaxPool(2, 2),
        Exit(branch=branch_small(32, 14, 14, classes, branch_width, branch_stride),
             **exit_kw[0]),
        cbl(32, 64, 3), MaxPool(2, 2),
        Exit(branch=[cbl(64, 32, 3), Connected(32 * 7 * 7, classes, activation="linear"),
                     Softmax()], **exit_kw[1]),
        cbl(64, 64, 3), cbl(64, 64, 3), cbl(64, 64, 3), MaxPool(2, 2),
        Connected(64 * 4 * 4, 64, activation="leaky", batch_normalize=True), Dropout(0.3),
        Connected(64, 64, activation="leaky", batch_normalize=True), Dropout(0.3),
        Connected(64, classes, activation="linear"), Softmax(),
    ])


MODELS = {  # dataset, builder, exits, epochs, lr, shift augmentation, validation images per class
    "fmnist_branchy_lenet": ("fashion-mnist", lenet, 1, 4, 3e-3, 0, 600),
    "fmnist_branchy_alexnet": ("fashion-mnist", alexnet, 2, 2, 3e-3, 0, 600),
    "mnist_branchy_lenet": ("mnist", lenet, 1, 12, 3e-3, 2, 80),
}


def logit_layers(model):
    """The layer before each [softmax] that ends an exit, then before the last one."""
    return [last - 1 for _, _, _, last in model.exit_spans] + [len(model) - 2]


# ----------------------------------------------------------------------------- training

def augment(x, shift, gen):
    if not shift:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for oy in range(2 * shift + 1):
        for ox in range(2 * shift + 1):
            sel = (dy == oy) & (dx == ox)
            if sel.any():
                out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
    return out


def train_joint(model, x_all, y_all, epochs, lr, shift, weights, batch_size, seed, max_steps, log):
    """BranchyNet: sum over exits (and the main path) of weight * cross-entropy."""
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(x_all), torch.from_numpy(y_all)
    steps_per_epoch = math.ceil(len(x_all) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    params = [p for n, p in model.named_parameters() if ".predictor." not in n]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1))
    wanted = logit_layers(model)
    step, t0 = 0, time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        seen, loss_sum, correct = 0, 0.0, np.zeros(len(wanted))
        for i in range(0, len(order), batch_size):
            if step >= total:
                break
            idx = order[i:i + batch_size]
            x, y = augment(x_all[idx], shift, gen), y_all[idx]
            zs = [z.flatten(1) for z in model(x, outputs=wanted)]
            loss = sum(w * F.cross_entropy(z, y) for w, z in zip(weights, zs))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += [int((z.argmax(1) == y).sum()) for z in zs]
        if seen:
            log("epoch %d/%d: loss %.4f, train accuracy per exit %s (%.0f s)"
                % (epoch + 1, epochs, loss_sum / seen,
                   " ".join("%.2f%%" % (100 * c / seen) for c in correct), time.time() - t0))
        if step >= total:
            break
    model.eval()
    return step


def branch_points(model, x, batch=500):
    """Each exit's pooled predictor features on x: a list of (N, D) tensors."""
    spans = model.exit_spans
    feats = [[] for _ in spans]
    with torch.no_grad():
        for i in range(0, len(x), batch):
            pts = model(torch.from_numpy(x[i:i + batch]), outputs=[p for _, p, _, _ in spans])
            for k, ((e, _, _, _), pt) in enumerate(zip(spans, pts)):
                feats[k].append(model.layers[e].pooled(pt))
    return [torch.cat(f) for f in feats]


def train_predictors(model, x, out, labels, thresholds, epochs, seed, log):
    """Fit the entropy and exit predictors of every exit on the frozen network's
    outcomes `out` over the training images x. Returns per-exit statistics."""
    torch.manual_seed(seed)
    feats = branch_points(model, x)
    stats = []
    for k, ex in enumerate(model.exits):
        f = feats[k]
        target = {"entropy": torch.from_numpy(out.entropy[k].astype(np.float32)),
                  "exit": torch.from_numpy(((out.entropy[k] < thresholds[k])
                                            & (out.label[k] == labels)).astype(np.float32))}
        st = {"exit_label_rate": float(target["exit"].mean())}
        for name, pred in ex.predictor.items():
            pred.train()
            opt = torch.optim.Adam(pred.parameters(), lr=3e-3)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=3e-3, total_steps=epochs * math.ceil(len(f) / 256))
            gen = torch.Generator().manual_seed(seed + k)
            for _ in range(epochs):
                order = torch.randperm(len(f), generator=gen)
                for i in range(0, len(f), 256):
                    idx = order[i:i + 256]
                    loss = F.binary_cross_entropy_with_logits(pred(f[idx]), target[name][idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
            pred.eval()
            with torch.no_grad():
                v = torch.sigmoid(pred(f))
            if name == "entropy":
                st["entropy_mae_train"] = float((v - target[name]).abs().mean())
            else:
                st["exit_accuracy_train"] = float(((v > 0.5).float() == target[name]).float().mean())
        stats.append(st)
        log("exit %d predictors: %s" % (k, ", ".join("%s %.4f" % kv for kv in st.items())))
    return stats


# ----------------------------------------------------------------------------- choosing on validation

def _grid(values, n=48, lo=0.0, hi=1.0):
    """Candidate cut points: quantiles of values, plus the ends."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    q = np.quantile(v, np.linspace(0, 1, n)) if v.size else np.array([])
    return np.unique(np.clip(np.concatenate([q, q + 1e-7, [lo, hi]]), lo, hi))


def choose(out, cost, exits, labels, policy, floor, start, rounds=3):
    """Per-exit thresholds (and the policy's gates) with the lowest average MACs
    whose accuracy on (out, labels) is >= floor: coordinate descent over grids,
    starting from `start` = (thresholds, entropy_gates, exit_gates)."""
    thr, eg, xg = [list(v) for v in start]
    gate = {"entropy-predictor": eg, "exit-predictor": xg}.get(policy)
    gate_name = {"entropy-predictor": "entropy", "exit-predictor": "exit"}.get(policy)

    def score(t, e, x):
        d = decide(out, cost, policy, t, e, x, exits)
        acc = d.accuracy(labels)
        return (float(np.mean(d.macs)) if acc >= floor else math.inf, -acc)

    best = score(thr, eg, xg)
    for _ in range(rounds):
        changed = False
        for k in range(cost.n_exits):
            tcands = [c for c in _grid(out.entropy[k], 64) if c > 0]
            gcands = _grid(out.predicted[gate_name][k], 32) if gate is not None else [None]
            for t in tcands:
                for g in gcands:
                    trial_t = thr[:k] + [t] + thr[k + 1:]
                    if gate is not None:
                        trial_g = gate[:k] + [g] + gate[k + 1:]
                        e_, x_ = (trial_g, xg) if gate is eg else (eg, trial_g)
                    else:
                        e_, x_ = eg, xg
                    s = score(trial_t, e_, x_)
                    if s < best:
                        best, changed = s, True
                        thr[k] = t
                        if gate is not None:
                            gate[k] = g
        if not changed:
            break
    return thr, eg, xg


def summarize(d, labels, n_exits, none_macs):
    return {"accuracy": d.accuracy(labels), "exit_shares": d.shares(n_exits),
            "mean_macs": float(np.mean(d.macs)), "speedup_macs": none_macs / float(np.mean(d.macs))}


# ----------------------------------------------------------------------------- MDFI

def run_mdfi(cfg, weights, x, labels, sim, choice, n_exits, limit=None):
    """Each policy in MDFI (single thread): accuracy, exit shares, MACs, time per
    image and agreement with the PyTorch simulation; or why it was skipped.
    The policies take turns on every image (each with the thresholds and gates
    chosen for it), so a busy machine slows them alike; only forward() is timed."""
    import mdfi
    results = {}
    try:
        net = mdfi.Network(cfg, weights, threads=1)
    except mdfi.MdfiError as e:
        return {"skipped": "MDFI cannot load the network: %s" % e}
    if not hasattr(net, "exit_policy"):
        net.close()
        return {"skipped": "this MDFI has no early-exit API yet (Network.exit_policy)"}
    n = len(x) if limit is None else min(limit, len(x))
    with net:
        runs = []
        for policy in POLICIES:
            try:
                net.exit_policy = policy
            except mdfi.MdfiError as e:
                results[policy] = {"skipped": str(e)}
                continue
            runs.append(policy)
        got = {p: (np.empty(n, int), np.empty(n), np.empty(n, int), []) for p in runs}
        seconds = dict.fromkeys(runs, 0.0)
        for i in range(n):
            for policy in runs:
                net.exit_policy = policy
                if policy in choice:
                    for k, (t, eg, xg) in enumerate(zip(*choice[policy])):
                        net.set_exit_thresholds(k, threshold=t, entropy_gate=eg, exit_gate=xg)
                t0 = time.perf_counter()
                p = net.forward(x[i])
                seconds[policy] += time.perf_counter() - t0
                p = np.asarray(p).reshape(-1)
                r = net.last_exit
                exits, macs, pred, probs = got[policy]
                exits[i], macs[i], pred[i] = r.exit, r.macs, int(np.argmax(p))
                probs.append(p.copy())
        for policy in runs:
            exits, macs, pred, probs = got[policy]
            s = sim[policy]
            results[policy] = {
                "accuracy": float(np.mean(pred == labels[:n])), "n": n,
                "exit_shares": [float(np.mean(exits == k)) for k in list(range(n_exits)) + [-1]],
                "mean_macs": float(np.mean(macs)), "ms_per_image": 1000 * seconds[policy] / n,
                "same_exit_as_pytorch": float(np.mean(exits == s.exit[:n])),
                "same_class_as_pytorch": float(np.mean(pred == s.label[:n])),
                "same_macs_as_pytorch": float(np.mean(np.abs(macs - s.macs[:n]) < 0.5)),
                "max_abs_prob_diff": float(np.max(np.abs(np.stack(probs) - s.probs[:n]))),
            }
    base = results.get("none", {}).get("ms_per_image")
    for r in results.values():
        if base and "ms_per_image" in r:
            r["speedup_time"] = base / r["ms_per_image"]
    return results


def test_data(dataset, test_limit=None):
    data = datasets.load(dataset, train=False)
    x, y = data.x_test, data.y_test
    return (x[:test_limit], y[:test_limit]) if test_limit else (x, y)


def measure(prefix, test_limit=None, log=print):
    """Measure the exported PREFIX.cfg/.weights in MDFI again and update
    PREFIX.json's test_mdfi (e.g. on a quieter machine)."""
    with open(prefix + ".json") as f:
        results = json.load(f)
    x, y = test_data(results["dataset"], test_limit)
    model = import_darknet(prefix + ".cfg", prefix + ".weights")
    choices = {p: (c["thresholds"], c["entropy_gates"], c["exit_gates"])
               for p, c in results["chosen"].items()}
    out_te = outcomes(model, x, keep_probs=True)
    cost, sim = costs(model), {}
    for policy in POLICIES:
        t, e, x_ = choices.get(policy, (None, None, None))
        sim[policy] = decide(out_te, cost, policy, t, e, x_, model.exits)
    results["test_mdfi"] = run_mdfi(prefix + ".cfg", prefix + ".weights", x, y, sim, choices,
                                    cost.n_exits)
    results["test_mdfi_command"] = "python examples/train_branchy.py --measure " + prefix
    with open(prefix + ".json", "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    log("updated %s.json" % prefix)
    return 0


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="fmnist_branchy_lenet")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exit-weights", type=float, nargs="+", help="loss weight of each exit "
                    "(default 1 each; the main path's is 1)")
    ap.add_argument("--branch-width", type=int, default=16, help="filters of exit 1's conv")
    ap.add_argument("--branch-stride", type=int, choices=(1, 2), default=1,
                    help="exit 1's conv: 1 then a 2x2 maxpool, or 2 (no pool, 1/4 the MACs)")
    ap.add_argument("--pool", type=int, default=2, help="predictor pooling (pool x pool per channel)")
    ap.add_argument("--hidden", type=int, default=16, help="predictor hidden units (0: none)")
    ap.add_argument("--predictor-epochs", type=int, default=8)
    ap.add_argument("--max-loss", type=float, default=0.25,
                    help="accuracy points the exits may lose against the main path on validation")
    ap.add_argument("--val-per-class", type=int, help="validation images per class (the last "
                    "ones of the training split; default 600 Fashion-MNIST, 80 MNIST: 10 %%, 20 %%)")
    ap.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke tests)")
    ap.add_argument("--train-limit", type=int, help="use only the first N training images")
    ap.add_argument("--test-limit", type=int, help="measure on the first N test images only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", metavar="PT", help="after the joint training save the model "
                    "here; if it exists, load it instead of training")
    ap.add_argument("-o", "--output", metavar="PREFIX",
                    help="writes PREFIX.cfg, .weights, .json (default examples/models/MODEL)")
    ap.add_argument("--no-mdfi", action="store_true", help="do not run the files in MDFI")
    ap.add_argument("--measure", metavar="PREFIX", help="only measure PREFIX.cfg/.weights in MDFI "
                    "again (thresholds from PREFIX.json) and update PREFIX.json")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    torch.set_num_threads(max(1, args.threads))
    if args.measure:
        return measure(args.measure, args.test_limit, log)
    dataset, build, n_exits, epochs, lr, shift, val_per_class = MODELS[args.model]
    epochs = args.epochs or epochs
    lr = args.lr or lr
    val_per_class = args.val_per_class or val_per_class
    weights = (args.exit_weights or [1.0] * n_exits) + [1.0]
    if len(weights) != n_exits + 1:
        ap.error("--exit-weights: %d values for %d exits" % (len(weights) - 1, n_exits))

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    data = datasets.load(dataset)
    if args.train_limit:
        data.x_train, data.y_train = data.x_train[:args.train_limit], data.y_train[:args.train_limit]
    data = datasets.validation(data, val_per_class)
    x_tr, y_tr, x_va, y_va = data.x_train, data.y_train, data.x_val, data.y_val
    x_te, y_te = data.x_test, data.y_test
    if args.test_limit:
        x_te, y_te = x_te[:args.test_limit], y_te[:args.test_limit]
    split = "%s; the rest of the training split trains (%d)" % (data.split, len(y_tr))
    log("%s: %s" % (args.model, split))
    out = args.output or os.path.join(HERE, "models", args.model)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    exit_kw = [dict(threshold=0.5, predictors=("entropy", "exit"), pool=args.pool, hidden=args.hidden)
               for _ in range(n_exits)]
    model = build(len(data.classes), exit_kw, args.branch_width, args.branch_stride)
    t0 = time.time()
    if args.checkpoint and os.path.exists(args.checkpoint):
        model.load_state_dict(torch.load(args.checkpoint))
        ck = json.load(open(args.checkpoint + ".json"))
        steps, train_seconds = ck["steps"], ck["train_seconds"]
        log("loaded %s (trained in %.0f s)" % (args.checkpoint, train_seconds))
    else:
        steps = train_joint(model, x_tr, y_tr, epochs, lr, shift, weights, args.batch_size,
                            args.seed, args.max_steps, log)
        train_seconds = time.time() - t0
        if args.checkpoint:
            torch.save(model.state_dict(), args.checkpoint)
            with open(args.checkpoint + ".json", "w") as f:
                json.dump({"steps": steps, "train_seconds": train_seconds}, f)
    model.eval()
    cost = costs(model)
    n_none = cost.main_total

    # 3. branchy thresholds on validation
    t1 = time.time()
    out_va = outcomes(model, x_va)
    main_acc_va = float(np.mean(out_va.label[-1] == y_va))
    floor = main_acc_va - args.max_loss / 100 - 1e-12
    start = ([0.5] * n_exits, [0.5] * n_exits, [0.5] * n_exits)
    exits = model.exits
    choices = {"branchy": choose(out_va, cost, exits, y_va, "branchy", floor, start)}
    log("validation: main path %.2f%%; branchy thresholds %s"
        % (100 * main_acc_va, ["%.4f" % t for t in choices["branchy"][0]]))

    # 4. predictors on the frozen network, training split
    for p in model.parameters():
        p.requires_grad_(False)
    for ex in exits:
        for p in ex.predictor.parameters():
            p.requires_grad_(True)
    out_tr = outcomes(model, x_tr)
    pred_stats = train_predictors(model, x_tr, out_tr, y_tr, choices["branchy"][0],
                                  args.predictor_epochs, args.seed, log)
    for p in model.parameters():
        p.requires_grad_(False)

    # 5. predictor policies on validation
    out_va = outcomes(model, x_va)
    bt = choices["branchy"][0]
    for policy in ("entropy-predictor", "exit-predictor"):
        choices[policy] = choose(out_va, cost, exits, y_va, policy, floor,
                                 (bt, [1.0] * n_exits, [0.0] * n_exits))
        log("%s: thresholds %s, entropy gates %s, exit gates %s" % ((policy,) + tuple(
            ["%.4f" % v for v in c] for c in choices[policy])))
    choose_seconds = time.time() - t1
    val_results = {}
    for policy in POLICIES:
        t, e, x_ = choices.get(policy, choices["branchy"])
        d = decide(out_va, cost, policy, t, e, x_, exits)
        val_results[policy] = summarize(d, y_va, n_exits, n_none)

    # the cfg carries one threshold per exit: the best predictor policy's thresholds
    # (validation MACs); the other policies' thresholds are in the JSON record
    best = min(("entropy-predictor", "exit-predictor"), key=lambda p: val_results[p]["mean_macs"])
    for k, ex in enumerate(exits):
        ex.threshold = float(choices[best][0][k])
        ex.entropy_gate = float(choices["entropy-predictor"][1][k])
        ex.exit_gate = float(choices["exit-predictor"][2][k])

    # test: simulated (PyTorch) with the chosen settings of each policy
    out_te = outcomes(model, x_te, keep_probs=True)
    sim, test_results = {}, {}
    for policy in POLICIES:
        t, e, x_ = choices.get(policy, (None, None, None))
        if policy in ("none", "all"):
            t = e = x_ = None
        sim[policy] = decide(out_te, cost, policy, t, e, x_, exits)
        test_results[policy] = summarize(sim[policy], y_te, n_exits, n_none)
        log("test (PyTorch simulation) %-17s accuracy %.2f%%, exits %s, %.0f MACs (%.2fx)"
            % (policy, 100 * test_results[policy]["accuracy"],
               ["%.3f" % s for s in test_results[policy]["exit_shares"]],
               test_results[policy]["mean_macs"], test_results[policy]["speedup_macs"]))

    cfg, wfile = save(model, out)
    again = import_darknet(cfg, wfile)
    check = simulate(again, x_te[:500], best, choices[best][0], choices["entropy-predictor"][1],
                     choices["exit-predictor"][2])
    results = {
        "model": args.model, "dataset": dataset, "variant": "early-exit", "split": split,
        "input_shape": list(data.input_shape), "classes": data.classes,
        "epochs": epochs, "steps": steps, "lr": lr, "batch_size": args.batch_size, "seed": args.seed,
        "exit_loss_weights": weights, "augmentation_shift": shift,
        "predictors": {"pool": args.pool, "hidden": args.hidden, "epochs": args.predictor_epochs,
                       "exit_label": "branch entropy < branchy threshold and branch class right",
                       "train_stats": pred_stats},
        "train_images": int(len(y_tr)), "validation_images": int(len(y_va)),
        "train_seconds": round(train_seconds, 1), "choose_seconds": round(choose_seconds, 1),
        "torch_version": torch.__version__, "threads": args.threads,
        "command": "python examples/train_branchy.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "cfg": os.path.basename(cfg), "weights": os.path.basename(wfile),
        "weights_bytes": os.path.getsize(wfile),
        "macs": {"none": n_none, "main_before_exit": cost.main_before, "branch": cost.branch,
                 "predictor": cost.predictor},
        "max_loss_points": args.max_loss,
        "validation": {"main_accuracy": main_acc_va, "per_policy": val_results},
        "chosen": {p: {"thresholds": [float(v) for v in c[0]],
                       "entropy_gates": [float(v) for v in c[1]],
                       "exit_gates": [float(v) for v in c[2]]} for p, c in choices.items()},
        "cfg_thresholds_from": best,
        "test_pytorch_simulation": test_results,
        "imported_files_same_exit": float(np.mean(check.exit == sim[best].exit[:500])),
    }
    if not args.no_mdfi:
        results["test_mdfi"] = run_mdfi(cfg, wfile, x_te, y_te, sim, choices, n_exits)
        if "skipped" in results["test_mdfi"]:
            log("MDFI: skipped (%s)" % results["test_mdfi"]["skipped"])
    with open(out + ".json", "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    log("wrote %s, %s and %s" % (cfg, wfile, out + ".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
