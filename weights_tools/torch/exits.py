"""Early exits of a `Darknet` model: MDFI's decision rules and MAC counts,
reproduced in PyTorch/numpy (docs/early-exit.md).

    sim = simulate(model, x, "exit-predictor")   # what MDFI will do, per input
    sim.exit, sim.entropy, sim.macs, sim.probs

The decisions are made in two steps so that threshold searches are cheap:
`outcomes()` runs the network once with every branch and predictor (per
input: each branch's normalized entropy and prediction, each predictor's
value, the main path's prediction), and `decide()` applies a policy to those
arrays. simulate() is the two together. The rules are the C engine's:
normalized entropy in double from the float probabilities (rounded to
float), `entropy < threshold` (both float) to exit, `predicted entropy < entropy_gate` and `P(exit) >
exit_gate` to run a branch; MACs are every layer's macs (flops / 2 for a float
layer) plus, per predictor run, C*H*W adds of the pooling and its products.
"""

import dataclasses
import math

import numpy as np
import torch

from weights_tools.torch.layers import EXIT_PREDICTORS, Darknet

POLICIES = ("none", "all", "branchy", "entropy-predictor", "exit-predictor")
NEEDS = {"entropy-predictor": "entropy", "exit-predictor": "exit"}


def normalized_entropy(p):
    """-sum p_i ln p_i / ln K per row of p (N, K), in double from float32
    probabilities, summed in index order as the C loop does (p_i = 0 adds 0),
    then rounded to float32 as MDFI returns it and compares it."""
    p = np.asarray(p, np.float32).astype(np.float64)
    if p.ndim == 1:
        p = p[None]
    acc = np.zeros(p.shape[0])
    for i in range(p.shape[1]):
        pi = p[:, i]
        safe = np.where(pi > 0, pi, 1.0)
        acc = acc + np.where(pi > 0, pi * np.log(safe), 0.0)
    return (-acc / math.log(p.shape[1])).astype(np.float32)


@dataclasses.dataclass
class Costs:
    """Per-exit MAC counts of a model, as MDFI counts them."""
    main_before: list     # main-path MACs of the layers before each [exit]
    branch: list          # MACs of each branch
    predictor: list       # MACs of one predictor run at each exit (0 without predictors)
    n_predictors: list    # predictors present at each exit
    main_total: float     # every main-path layer (the `none` policy)

    @property
    def n_exits(self):
        return len(self.branch)


def costs(model):
    """The Costs of a Darknet model with exits."""
    macs = model.layer_macs()
    in_branch = set()
    for _, _, first, last in model.exit_spans:
        in_branch.update(range(first, last + 1))
    main = [0 if i in in_branch else m for i, m in enumerate(macs)]
    before, branch, pred, npred = [], [], [], []
    for e, point, first, last in model.exit_spans:
        before.append(sum(main[:e]))
        branch.append(sum(macs[first:last + 1]))
        ex = model.layers[e]
        pred.append(ex.predictor_macs(model.shapes[point]) if ex.predictors else 0)
        npred.append(len(ex.predictors))
    return Costs(before, branch, pred, npred, sum(main))


@dataclasses.dataclass
class Outcomes:
    """Everything the policies decide from, per input (N inputs, E exits)."""
    entropy: np.ndarray      # (E, N) float32: each branch's normalized entropy
    predicted: dict          # predictor name -> (E, N) float32 value (NaN where absent)
    label: np.ndarray        # (E + 1, N) int: each branch's prediction, then the main path's
    main_entropy: np.ndarray  # (N,) float32
    probs: list              # E + 1 arrays (N, K) float32 when kept, else []

    @property
    def n(self):
        return self.label.shape[1]


def outcomes(model, x, batch=500, keep_probs=False):
    """Run `model` (eval mode, no gradients) on x (N, C, H, W array or tensor)
    with every branch and predictor, once."""
    if not isinstance(model, Darknet) or not model.exit_spans:
        raise ValueError("outcomes() needs a Darknet model with exits")
    was_training = model.training
    model.eval()
    spans = model.exit_spans
    want = [p for _, p, _, _ in spans] + [last for _, _, _, last in spans] + [len(model) - 1]
    e_count = len(spans)
    ent, lab, pred = [], [], {p: [] for p in EXIT_PREDICTORS}
    main_ent, probs = [], [[] for _ in range(e_count + 1)]
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            xb = torch.as_tensor(np.asarray(xb, np.float32)) if not torch.is_tensor(xb) else xb
            out = model(xb, outputs=want)
            points, results = out[:e_count], out[e_count:]
            p32 = [r.flatten(1).float().numpy() for r in results]
            ent.append(np.stack([normalized_entropy(p) for p in p32[:-1]]))
            main_ent.append(normalized_entropy(p32[-1]))
            lab.append(np.stack([p.argmax(1) for p in p32]))
            for name in EXIT_PREDICTORS:
                rows = []
                for (e, _, _, _), point in zip(spans, points):
                    ex = model.layers[e]
                    if name in ex.predictors:
                        rows.append(ex.predict(point)[name].float().numpy())
                    else:
                        rows.append(np.full(len(xb), np.nan, np.float32))
                pred[name].append(np.stack(rows))
            if keep_probs:
                for k, p in enumerate(p32):
                    probs[k].append(p)
    model.train(was_training)
    return Outcomes(np.concatenate(ent, 1), {k: np.concatenate(v, 1) for k, v in pred.items()},
                    np.concatenate(lab, 1), np.concatenate(main_ent),
                    [np.concatenate(p) for p in probs] if keep_probs else [])


@dataclasses.dataclass
class Decision:
    exit: np.ndarray      # (N,) exit index, -1 = the main path's end
    macs: np.ndarray      # (N,) float64 MACs spent
    label: np.ndarray     # (N,) the result's class
    entropy: np.ndarray   # (N,) normalized entropy of the result
    probs: np.ndarray = None  # (N, K) the result, when the outcomes kept probabilities

    def accuracy(self, labels):
        return float(np.mean(self.label == np.asarray(labels)))

    def shares(self, n_exits):
        """Fraction of inputs leaving at each exit, then at the main path's end."""
        return [float(np.mean(self.exit == k)) for k in list(range(n_exits)) + [-1]]


def _per_exit(values, n, default):
    if values is None:
        return list(default)
    if np.isscalar(values):
        return [float(values)] * n
    values = list(values)
    if len(values) != n:
        raise ValueError("%d values for %d exits" % (len(values), n))
    return [float(d) if v is None else float(v) for v, d in zip(values, default)]


def decide(out, cost, policy, thresholds=None, entropy_gates=None, exit_gates=None, exits=None):
    """Apply `policy` to Outcomes with the Costs of the model. thresholds and
    gates: one per exit (or a scalar); `exits` (the Exit modules) supplies the
    defaults and says which predictors each exit has."""
    if policy not in POLICIES:
        raise ValueError("unknown policy %r (%s)" % (policy, ", ".join(POLICIES)))
    e_count = cost.n_exits
    dflt = (lambda attr: [getattr(x, attr) for x in exits]) if exits else (lambda attr: [None] * e_count)
    thr = _per_exit(thresholds, e_count, dflt("threshold"))
    eg = _per_exit(entropy_gates, e_count, dflt("entropy_gate"))
    xg = _per_exit(exit_gates, e_count, dflt("exit_gate"))
    n = out.n
    alive = np.ones(n, bool)
    macs = np.zeros(n)
    fired = np.full(n, -1)
    for k in range(e_count):
        macs[alive] += cost.main_before[k] - (cost.main_before[k - 1] if k else 0)
        if policy == "none":
            continue
        if policy == "all":
            macs[alive] += cost.predictor[k] * cost.n_predictors[k] + cost.branch[k]
            continue
        run = alive.copy()
        if policy in NEEDS:
            value = out.predicted[NEEDS[policy]][k]
            if np.isnan(value).any():
                raise ValueError("policy %s: exit %d has no %s predictor" % (policy, k, NEEDS[policy]))
            macs[alive] += cost.predictor[k]
            gate = np.float32(eg[k] if policy == "entropy-predictor" else xg[k])
            run &= (value < gate) if policy == "entropy-predictor" else (value > gate)
        macs[run] += cost.branch[k]
        fire = run & (out.entropy[k] < np.float32(thr[k]))   # float against float, as in C
        fired[fire] = k
        alive &= ~fire
    macs[alive] += cost.main_total - (cost.main_before[-1] if e_count else 0)
    row = np.where(fired < 0, e_count, fired)
    cols = np.arange(n)
    entropy = np.where(fired < 0, out.main_entropy, out.entropy[np.minimum(row, e_count - 1), cols])
    probs = None
    if out.probs:
        probs = np.stack(out.probs)[row, cols]
    return Decision(fired, macs, out.label[row, cols], entropy, probs)


def simulate(model, x, policy=None, thresholds=None, entropy_gates=None, exit_gates=None, batch=500):
    """What MDFI does with `model` under `policy` (default: branchy), per input."""
    out = outcomes(model, x, batch, keep_probs=True)
    return decide(out, costs(model), policy or "branchy", thresholds, entropy_gates, exit_gates,
                  model.exits)
