"""python -m mdfi.evaluate: a classifier's accuracy, cost and speed on a test split.

    python -m mdfi.evaluate CFG WEIGHTS --dataset fashion-mnist|mnist|digits|cifar10
        [--data PATH] [--policy P] [--threshold T] [--entropy-gate G] [--exit-gate G]
        [--threads 1] [--kernel K] [--limit N] [--repeats 1] [--json]
        [--compare CFG2 WEIGHTS2]
    python -m mdfi.evaluate --index examples/models/index.json [--name NAME] [--json]

The first form runs the network on every image of the dataset's test split
(mdfi.datasets; --limit N: the first N) and reports:

  accuracy        share of the images whose argmax is the label;
  ms_per_image    batch 1: each image is one `net.forward(x)` call (the Python
                  wrapper included; the input is a contiguous float32 CHW array
                  in [0, 1] prepared beforehand), timed with time.perf_counter.
                  Each image's time is the median of its --repeats passes; the
                  figure is the mean over the images (an exit model's images
                  take different paths: "faster on average" is the mean);
  macs_per_image  the mean over images of the multiply-accumulates one forward
                  spent, float and binary (a binary one per weight per output,
                  whatever the input's bit planes): the network's
                  `last_exit.macs` where it has one, else the sum of every
                  layer's macs;
  flops_per_image the mean of the float operations (float multiply-adds x 2;
                  binary convolutions count none) and
  bops_per_image  of the binary multiply-adds (one per weight bit per output
                  per bit plane of the input) one forward spent, likewise from
                  `last_exit`; a gated layer ([fracconv] gate=1) counts its
                  first plane plus the second plane of the outputs it gated
                  in that forward (docs/wsfracbnn.md, Operation counts);
  gates           per gated layer: `layer`, `gated` and `outputs` summed over
                  the images (first pass) and `share` = gated / outputs, the
                  measured share of outputs whose second plane ran.

--compare CFG2 WEIGHTS2 runs a second network (as its cfg sets it) over the same
images after the first and adds `compare`: its accuracy, time and operations, and
the paired comparison: `difference` (first minus second), `only_first_right` and
`only_second_right` (the images exactly one of them classifies right), `agree`
(the share given the same class) and `mcnemar_p`, McNemar's exact two-sided
p-value: how often two equally accurate classifiers would split those images at
least this unevenly.  A difference of a few tenths of a point on 10,000 images
is often within chance; the p-value says how far.

For a network with exits (docs/early-exit.md) it runs the chosen policy (--policy,
default: the network's own) and `none` on the same images in the same run, image
by image, alternating which goes first, and adds `exits` (per exit and for the
main path's end: its layer, the share of the images that ended there and their
accuracy), `none` (the baseline's figures) and `speedup_vs_none` = mean time
per image under `none` / mean time per image under the policy.

The second form re-checks the figures a model index claims (examples/models/
index.json) and prints one row per figure; the exit status is 1 when any figure
fails.  Tolerances: `n` exactly; an accuracy or an exit's share within 2/n (two
test images: float sums in another order on another kernel, AVX2, AVX-512 or
NEON, may flip an image or two near a tie); MACs, FLOPs and BOPs per image
within 1e-6 relative, plus, for a network with exits, two images' worth of
the whole network's (two flipped exit decisions) and, for BOPs, two images'
worth of the gated layers' second planes (gates flipped by a float stem
summed in another order); a gated layer's share (`gate_shares`, one per
gated layer in order) within 2/n.  Times and speed-ups depend on the machine
and are printed, never checked.

This module belongs to the runtime (it imports the runtime only), so trainers and
scripts may call `evaluate(net, data, ...)` directly.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from . import datasets, errors
from .network import Network

POLICIES = ("none", "all", "branchy", "entropy-predictor", "exit-predictor")
TIMING = ("batch 1; per image the median of the passes' net.forward times (perf_counter); "
          "mean over images")


# ----------------------------------------------------------------------------- measuring

def _test_split(net, data, limit):
    x, y = data.x_test, data.y_test
    if limit is not None:
        if limit < 1:
            raise errors.ArgumentError(f"limit {limit}: give at least 1 image")
        x, y = x[:limit], y[:limit]
    if len(x) == 0:
        raise errors.ArgumentError(f"{data.name}: the test split is empty")
    if tuple(x.shape[1:]) != tuple(net.input_shape):
        raise errors.ShapeError(f"{data.name} has images of {tuple(x.shape[1:])} (c, h, w); the "
                                f"network takes {tuple(net.input_shape)}")
    return np.ascontiguousarray(x, np.float32), np.asarray(y, np.int64)


OPS = ("macs", "flops", "bops")


def _all_layer_ops(net):
    """{macs, flops, bops} of every layer together (a layer that gives no macs:
    flops / 2; no bops: 0)."""
    layers = net.layers
    return {"macs": sum(getattr(la, "macs", la.flops / 2) for la in layers),
            "flops": sum(la.flops for la in layers),
            "bops": sum(getattr(la, "bops", 0.0) for la in layers)}


def _gated_layers(net):
    return [la.index for la in net.layers if getattr(la, "gate", False)]


def _spent(net, all_ops):
    """(exit index, {macs, flops, bops}) of the last forward: the network's own
    figures where it reports them (net.last_exit), else the main path's end
    and every layer."""
    last = getattr(net, "last_exit", None)
    if last is None:
        return -1, all_ops
    return int(last.exit), {k: float(getattr(last, k, all_ops[k])) for k in OPS}


def _run(net, x, policies, repeats):
    """Runs every image under every policy (None: leave the network as it is),
    `repeats` times.  Returns {policy: {pred, exit, macs, flops, bops, gates,
    ms}}: per image the prediction, the exit that fired, the operations spent
    (first pass), per gated layer its gated and total outputs summed over the
    images (first pass), and the time in milliseconds of every pass
    ([repeats, n])."""
    n, all_ops, gated = len(x), _all_layer_ops(net), _gated_layers(net)
    runs = {p: {"pred": np.zeros(n, np.int64), "exit": np.full(n, -1, np.int64),
                **{k: np.zeros(n) for k in OPS}, "gates": {g: [0, 0] for g in gated},
                "ms": np.zeros((repeats, n))} for p in policies}
    switch = len(policies) > 1
    for p in policies:                 # warm-up, untimed; also checks each policy is allowed
        if p is not None:
            net.exit_policy = p
        net.forward(x[0])
    clock = time.perf_counter
    for rep in range(repeats):
        for i in range(n):
            xi = x[i]
            for p in (policies if i % 2 == 0 else policies[::-1]):
                if switch:
                    net.exit_policy = p
                t0 = clock()
                probs = net.forward(xi)
                ms = (clock() - t0) * 1e3
                r = runs[p]
                r["ms"][rep, i] = ms
                if rep == 0:
                    r["pred"][i] = int(np.argmax(probs))
                    r["exit"][i], ops = _spent(net, all_ops)
                    for k in OPS:
                        r[k][i] = ops[k]
                    for g, count in r["gates"].items():
                        got = net.gates(g)
                        count[0] += got[0]
                        count[1] += got[1]
    return runs


def _summary(run, y):
    out = {"accuracy": float(np.mean(run["pred"] == y)),
           "ms_per_image": float(np.mean(np.median(run["ms"], axis=0)))}
    out.update({k + "_per_image": float(np.mean(run[k])) for k in OPS})
    out["gates"] = [{"layer": g, "gated": c[0], "outputs": c[1],
                     "share": c[0] / c[1] if c[1] else None} for g, c in run["gates"].items()]
    return out


def _exit_table(net, run, y):
    """One entry per exit, then the main path's end ("main", exit -1)."""
    n, rows = len(y), []
    ends = [(e.index, f"exit{e.index}", e.layer) for e in net.exits]
    ends.append((-1, "main", len(net.layers) - 1))
    for k, name, layer in ends:
        here = run["exit"] == k
        count = int(here.sum())
        rows.append({"exit": k, "name": name, "layer": int(layer), "n": count,
                     "share": count / n,
                     "accuracy": float(np.mean(run["pred"][here] == y[here])) if count else None})
    return rows


def evaluate(net, data, policy=None, limit=None, repeats=1):
    """Accuracy, time and MACs of `net` (an mdfi.Network, or anything with its
    forward/layers/input_shape and, for exits, its exit API) on the test split
    of `data` (an mdfi.datasets.Dataset).  policy: for a network with exits
    (default: the network's own policy); `none` is measured beside it.
    limit: the first `limit` test images.  repeats: timed passes over the
    images.  Returns the dict `python -m mdfi.evaluate --json` prints."""
    return _evaluate(net, data, policy, limit, repeats)[0]


def _evaluate(net, data, policy, limit, repeats):
    """(evaluate's dict, the per-image predictions it scored, their labels)."""
    if repeats < 1:
        raise errors.ArgumentError(f"repeats {repeats}: give at least 1")
    x, y = _test_split(net, data, limit)
    exits = list(getattr(net, "exits", None) or [])
    out = {"dataset": data.name, "split": "test", "split_rule": data.split, "n": len(y),
           "limit": limit, "threads": getattr(net, "threads", None),
           "kernel": getattr(net, "kernel", None), "repeats": repeats, "timing": TIMING}
    if not exits:
        if policy not in (None, "none"):
            raise errors.ArgumentError(f"policy {policy!r}: the network has no exits")
        run = _run(net, x, [None], repeats)[None]
        out.update(_summary(run, y), policy=None)
        return out, run["pred"], y
    policy = policy or net.exit_policy
    if policy not in POLICIES:
        raise errors.ArgumentError(f"policy {policy!r}: one of {', '.join(POLICIES)}")
    before = net.exit_policy
    try:
        runs = _run(net, x, [policy] if policy == "none" else [policy, "none"], repeats)
    finally:
        net.exit_policy = before
    main = _summary(runs[policy], y)
    base = _summary(runs["none"], y)
    out.update(main, policy=policy, exits=_exit_table(net, runs[policy], y), none=base,
               speedup_vs_none=base["ms_per_image"] / main["ms_per_image"],
               speedup_rule="mean ms per image under none / under the policy")
    main_macs = getattr(net, "main_macs", None)
    if main_macs is not None:
        out["main_macs"] = float(main_macs)
    return out, runs[policy]["pred"], y


def mcnemar_p(only_first, only_second):
    """The exact two-sided McNemar p-value of a paired comparison: under "the two
    classifiers are equally accurate" each image that exactly one of them gets
    right is the first's with probability 1/2, so the smaller count is a
    Binomial(n, 1/2) tail (n = both counts), doubled (1.0 at most)."""
    n, k = only_first + only_second, min(only_first, only_second)
    if n == 0:
        return 1.0
    tail = 0
    term = 1                                  # C(n, 0); C(n, i+1) = C(n, i) (n-i) / (i+1)
    for i in range(k + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2 ** n)        # exact integers; one rounding


def paired(y, first, second):
    """The paired comparison of two classifiers' predictions on the same images:
    their accuracies, the images only one of them gets right, and McNemar's
    exact p (a difference as large by chance alone, two-sided)."""
    y, a, b = (np.asarray(v) for v in (y, first, second))
    ra, rb = a == y, b == y
    only_a, only_b = int(np.sum(ra & ~rb)), int(np.sum(rb & ~ra))
    return {"n": int(len(y)), "accuracy_first": float(np.mean(ra)),
            "accuracy_second": float(np.mean(rb)), "difference": float(np.mean(ra) - np.mean(rb)),
            "only_first_right": only_a, "only_second_right": only_b,
            "agree": float(np.mean(a == b)), "mcnemar_p": mcnemar_p(only_a, only_b)}


def compare(net, other, data, policy=None, limit=None, repeats=1):
    """evaluate(net, ...) with `other` (a second network, run as it is set) on the
    same images: the dict gets "compare", other's figures with the paired
    comparison of the two (paired())."""
    out, pred, y = _evaluate(net, data, policy, limit, repeats)
    try:
        theirs, pred_b, _ = _evaluate(other, data, None, limit, repeats)
    except errors.ShapeError as exc:          # say which of the two does not fit
        raise errors.ShapeError(f"the network compared with: {exc}") from None
    keep = ("accuracy", "ms_per_image", "macs_per_image", "flops_per_image", "bops_per_image")
    out["compare"] = {**{k: theirs[k] for k in keep}, **paired(y, pred, pred_b)}
    return out


def exit_policies(net):
    """The policies that take exits which `net` can run: branchy, then each
    predictor policy whose predictor every exit has ([] without exits)."""
    exits = list(getattr(net, "exits", None) or [])
    if not exits:
        return []
    have = set.intersection(*(set(e.predictors) for e in exits))
    return ["branchy"] + [p for p in ("entropy-predictor", "exit-predictor")
                          if p.split("-")[0] in have]


def parse_per_exit(text, count, what):
    """'0.3' (every exit) or '0.3,0.2,0.1' (one per exit) -> a list of count floats."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise errors.ArgumentError(f"{what} {text!r}: a number or a comma list of numbers") from None
    if len(values) == 1:
        values *= count
    if len(values) != count:
        raise errors.ArgumentError(f"{what} {text!r}: {len(values)} values for {count} exits")
    return values


def set_thresholds(net, threshold=None, entropy_gate=None, exit_gate=None):
    """Overrides every exit's threshold and gates: each argument is None (keep),
    one value for every exit, or a comma list with one value per exit."""
    given = {k: v for k, v in (("threshold", threshold), ("entropy_gate", entropy_gate),
                               ("exit_gate", exit_gate)) if v is not None}
    if not given:
        return
    exits = list(getattr(net, "exits", None) or [])
    if not exits:
        raise errors.ArgumentError(f"{', '.join(given)}: the network has no exits")
    per_exit = {k: parse_per_exit(v, len(exits), k.replace("_", "-")) for k, v in given.items()}
    for i, e in enumerate(exits):
        net.set_exit_thresholds(e.index, **{k: v[i] for k, v in per_exit.items()})


# ----------------------------------------------------------------------------- the model index

def _within(claim, measured, tol):
    return measured is not None and abs(measured - claim) <= tol + 1e-12


def _checks(claims, result, whole):
    """Rows (figure, claimed, measured, tolerance, ok) for one result.  whole:
    {macs, flops, bops} of the whole network (every layer and predictor) and
    `second`, the second-plane BOPs of its gated layers were every output
    gated."""
    n = result["n"]
    rows = []
    if "n" in claims:
        rows.append(("n", claims["n"], n, 0, claims["n"] == n))
    if "accuracy" in claims:
        rows.append(("accuracy", claims["accuracy"], result["accuracy"], 2 / n,
                     _within(claims["accuracy"], result["accuracy"], 2 / n)))
    for k in OPS:   # two images' worth: exits taken otherwise, gates flipped
        figure = k + "_per_image"
        if figure in claims:
            tol = 1e-6 * abs(claims[figure]) + 2 * (
                (whole[k] if "exits" in result else 0) + (whole["second"] if k == "bops" else 0)) / n
            rows.append((figure, claims[figure], result[figure], tol,
                         _within(claims[figure], result[figure], tol)))
    for i, share in enumerate(claims.get("shares", [])):
        entries = result.get("exits") or []
        got = entries[i]["share"] if i < len(entries) else None
        name = entries[i]["name"] if i < len(entries) else f"end {i}"
        rows.append((f"share {name}", share, got, 2 / n, _within(share, got, 2 / n)))
    for i, share in enumerate(claims.get("gate_shares", [])):
        entries = result.get("gates") or []
        got = entries[i]["share"] if i < len(entries) else None
        name = f"layer {entries[i]['layer']}" if i < len(entries) else f"gate {i}"
        rows.append((f"gated share {name}", share, got, 2 / n, _within(share, got, 2 / n)))
    return rows


def check_index(path, name=None, threads=1, kernel=None, data_paths=None, log=None):
    """Re-checks the claims of every model in the index at `path` (or only
    `name`).  Returns (rows, ok); a row is a dict: model, policy, figure,
    claimed, measured, tolerance, ok (and error where nothing could be
    measured)."""
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise errors.ArgumentError(f"{path}: cannot read the model index ({e})") from None
    models = index.get("models") if isinstance(index, dict) else None
    if not isinstance(models, list):
        raise errors.ArgumentError(f"{path}: no \"models\" list")
    if name is not None:
        models = [m for m in models if m.get("name") == name]
        if not models:
            raise errors.ArgumentError(f"{path}: no model named {name!r}")
    base = os.path.dirname(os.path.abspath(path))
    data_paths = data_paths or {}
    loaded, rows = {}, []
    for m in models:
        claims = m.get("claims", {})
        per_policy = [(claims.get("policy"), claims)]
        per_policy += sorted((p, c) for p, c in claims.get("policies", {}).items())
        try:
            ds = m["dataset"]
            if ds not in loaded:
                loaded[ds] = datasets.load(ds, data_paths.get(ds), train=False)
            with Network(os.path.join(base, m["cfg"]), os.path.join(base, m["weights"]),
                         threads=threads, kernel=kernel) as net:
                whole = _all_layer_ops(net)
                pred = sum(getattr(e, "predictor_macs", 0) for e in (getattr(net, "exits", None)
                                                                      or []))
                whole.update(macs=whole["macs"] + pred, flops=whole["flops"] + 2 * pred,
                             second=sum(net.layers[g].bops for g in _gated_layers(net)))
                for policy, c in per_policy:
                    if log:
                        log(f"{m['name']}: {ds}" + (f", policy {policy}" if policy else ""))
                    result = evaluate(net, loaded[ds], policy=policy)
                    for figure, claimed, got, tol, ok in _checks(c, result, whole):
                        rows.append({"model": m["name"], "policy": result["policy"],
                                     "figure": figure, "claimed": claimed, "measured": got,
                                     "tolerance": tol, "ok": bool(ok)})
        except (errors.MdfiError, KeyError) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            rows.append({"model": m.get("name"), "policy": None, "figure": "(run)",
                         "claimed": None, "measured": None, "tolerance": None, "ok": False,
                         "error": what})
    return rows, all(r["ok"] for r in rows) and bool(rows)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not float(v).is_integer():
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.6g}"
    return f"{int(v)}" if isinstance(v, (int, float)) else str(v)


def print_rows(rows, out=sys.stdout):
    head = ("model", "policy", "figure", "claimed", "measured", "tolerance", "result")
    table = [head] + [(r["model"] or "?", r["policy"] or "-", r["figure"], _fmt(r["claimed"]),
                       _fmt(r["measured"]),
                       "exact" if r["tolerance"] == 0 else "±" + _fmt(r["tolerance"])
                       if r["tolerance"] is not None else "-",
                       "pass" if r["ok"] else "FAIL" + (": " + r["error"] if "error" in r else ""))
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1], file=out)


# ----------------------------------------------------------------------------- the command line

def _macs(v, unit="MACs"):
    return f"{v / 1e6:.3f} M {unit}" if v >= 1e5 else f"{v:.0f} {unit}"


def _print_ops(r):
    print(f"operations per image: {_macs(r['flops_per_image'], 'FLOPs')}, "
          f"{_macs(r['bops_per_image'], 'BOPs')} (binary multiply-adds, gated planes as measured)")
    for g in r["gates"]:
        share = "-" if g["share"] is None else f"{100 * g['share']:.2f} %"
        print(f"  layer {g['layer']:>3}: gated share {share} of {g['outputs']} outputs")


def _print_compare(cfg, c):
    print(f"against {c['cfg']}: accuracy {100 * c['accuracy']:.2f} %, {c['ms_per_image']:.3f} "
          f"ms/image, {_macs(c['macs_per_image'])}/image")
    print(f"  difference {100 * c['difference']:+.2f} points; right only here: "
          f"{c['only_first_right']} images, only there: {c['only_second_right']}; same class on "
          f"{100 * c['agree']:.2f} %; McNemar's exact p = {c['mcnemar_p']:.3g} (two-sided)")


def _print_result(cfg, r):
    if r.get("compare"):
        _print_result(cfg, {k: v for k, v in r.items() if k != "compare"})
        _print_compare(cfg, r["compare"])
        return
    print(f"{cfg} on {r['dataset']} (test split, {r['n']} images): {r['split_rule']}")
    line = (f"accuracy {100 * r['accuracy']:.2f} %, {r['ms_per_image']:.3f} ms/image "
            f"({r['threads']} thread{'s' if r['threads'] != 1 else ''}, kernel {r['kernel']}), "
            f"{_macs(r['macs_per_image'])}/image")
    if r.get("exits") is None:
        print(line)
        _print_ops(r)
        return
    b = r["none"]
    print(f"policy {r['policy']}: {line}")
    print(f"policy none: accuracy {100 * b['accuracy']:.2f} %, {b['ms_per_image']:.3f} ms/image, "
          f"{_macs(b['macs_per_image'])}/image")
    print(f"speed-up against none: {r['speedup_vs_none']:.2f}x (mean time per image)")
    _print_ops(r)
    for e in r["exits"]:
        acc = "-" if e["accuracy"] is None else f"{100 * e['accuracy']:.2f} %"
        print(f"  {e['name']:<6} layer {e['layer']:>3}: {100 * e['share']:6.2f} % of the images "
              f"({e['n']}), accuracy {acc}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mdfi.evaluate", description=__doc__.split("\n")[0],
                                epilog="See the module's doc string for what each figure means.")
    p.add_argument("cfg", nargs="?")
    p.add_argument("weights", nargs="?")
    p.add_argument("--dataset", choices=datasets.NAMES)
    p.add_argument("--data", metavar="PATH",
                   help="fashion-mnist: the directory of the IDX files (default "
                        f"{datasets.FASHION_MNIST_DIR}); cifar10: cifar-10-python.tar.gz")
    p.add_argument("--policy", choices=POLICIES, help="exit policy (default: the network's)")
    p.add_argument("--threshold", metavar="T", help="every exit's threshold, or one per exit: a,b,c")
    p.add_argument("--entropy-gate", metavar="G", help="as --threshold, for the entropy predictor")
    p.add_argument("--exit-gate", metavar="G", help="as --threshold, for the exit predictor")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernel", help="force an MDFI kernel path")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N test images")
    p.add_argument("--repeats", type=int, default=1, metavar="R",
                   help="timed passes; each image keeps its fastest time (default 1)")
    p.add_argument("--index", metavar="INDEX.json", help="re-check every model the index lists")
    p.add_argument("--name", help="with --index: only this model")
    p.add_argument("--compare", nargs=2, metavar=("CFG2", "WEIGHTS2"),
                   help="a second network on the same images: both accuracies, the images "
                        "only one gets right, and McNemar's exact p")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.index:
        if args.cfg or args.dataset:
            p.error("--index takes no CFG/WEIGHTS/--dataset (the index names them)")
        try:
            log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
            rows, ok = check_index(args.index, args.name, args.threads, args.kernel,
                                   log=log)
        except errors.MdfiError as exc:
            print(f"mdfi.evaluate: error: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"index": args.index, "ok": ok, "rows": rows}))
        else:
            print_rows(rows)
            print("all claims hold" if ok else "some claims FAIL")
        return 0 if ok else 1
    if not (args.cfg and args.weights and args.dataset):
        p.error("give CFG WEIGHTS --dataset NAME (or --index INDEX.json)")
    if args.data and args.dataset in ("mnist", "digits"):
        p.error(f"--data: {args.dataset} comes with a Python package; there is no path to give")
    try:
        data = datasets.load(args.dataset, args.data, train=False)
        with Network(args.cfg, args.weights, threads=args.threads, kernel=args.kernel) as net:
            set_thresholds(net, args.threshold, args.entropy_gate, args.exit_gate)
            if args.compare:
                with Network(*args.compare, threads=args.threads, kernel=args.kernel) as other:
                    result = compare(net, other, data, policy=args.policy, limit=args.limit,
                                     repeats=args.repeats)
                result["compare"].update(cfg=args.compare[0], weights=args.compare[1])
            else:
                result = evaluate(net, data, policy=args.policy, limit=args.limit,
                                  repeats=args.repeats)
    except errors.MdfiError as exc:
        print(f"mdfi.evaluate: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        _print_result(args.cfg, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
