"""Accuracy against time of each early-exit policy of a model, over its thresholds.

    python examples/exit_curves.py examples/models/fmnist_branchy_lenet \
        --dataset fashion-mnist [--thresholds 0.02,0.05,...] [--limit N] [-o PREFIX]

For every policy (branchy, entropy-predictor, exit-predictor, those the model
has predictors for) and every threshold T of the list, every exit's threshold is
set to T, and `mdfi.evaluate.evaluate` runs the test split with the policy and
`none` side by side.  The gates follow T (--gates natural, the default): the
entropy predictor lets the branch run when it predicts an entropy under T, the
exit predictor when it predicts an exit with probability over 0.5; with --gates
model they stay the model's own (chosen with its thresholds on validation data).
The model's own thresholds and gates are one more point of each curve.  It writes PREFIX.json (every point), PREFIX.md
(a table) and PREFIX.png (accuracy against time, and against MACs, per policy),
and prints the table.

These curves are a report on the test split; nothing is chosen from them (the
model's thresholds and gates were chosen on validation data when it was
trained).  "At equal accuracy": each predictor point is compared with the
cheapest branchy point that is at least as accurate (time relative to `none`,
and MACs); the last column gives the predictor point's change (negative: the
predictor is cheaper).
"""
import argparse
import json
import pathlib
import sys

import numpy as np

import mdfi
from mdfi import datasets
from mdfi.evaluate import evaluate, exit_policies

DEFAULT_THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)


def sweep(net, data, thresholds, limit, repeats, natural=True):
    points = []
    own = [(e.threshold, e.entropy_gate, e.exit_gate) for e in net.exits]
    for policy in exit_policies(net):
        for t in [None, *thresholds]:   # None: the model's own thresholds and gates
            for e, (t0, g0, x0) in zip(net.exits, own):
                if t is None or not natural:
                    net.set_exit_thresholds(e.index, t0 if t is None else t, g0, x0)
                else:
                    net.set_exit_thresholds(e.index, t, t, 0.5)
            r = evaluate(net, data, policy=policy, limit=limit, repeats=repeats)
            points.append({"policy": policy, "threshold": t, "own": t is None,
                           "accuracy": r["accuracy"], "ms_per_image": r["ms_per_image"],
                           "macs_per_image": r["macs_per_image"],
                           "none_accuracy": r["none"]["accuracy"],
                           "none_ms_per_image": r["none"]["ms_per_image"],
                           "speedup_vs_none": r["speedup_vs_none"],
                           "shares": [x["share"] for x in r["exits"]]})
            print(f"{policy:18s} T={'own' if t is None else t!s:6s} acc {r['accuracy']:.4f} "
                  f"{r['ms_per_image']:.4f} ms x{r['speedup_vs_none']:.2f}", file=sys.stderr)
    for e, (t0, g0, x0) in zip(net.exits, own):
        net.set_exit_thresholds(e.index, t0, g0, x0)
    return points


def cost_at_accuracy(curve, acc, key="ms_rel"):
    """The cheapest point of the curve at least as accurate as acc (None if no
    point is)."""
    costs = [p[key] for p in curve if p["accuracy"] >= acc]
    return min(costs) if costs else None


def compare(points):
    """Adds, to each predictor point, the branchy time at equal accuracy.  Times
    are relative to `none` measured beside each point (ms_rel), so points taken
    minutes apart compare."""
    for p in points:
        p["ms_rel"] = p["ms_per_image"] / p["none_ms_per_image"]
    branchy = [p for p in points if p["policy"] == "branchy"]
    for p in points:
        if p["policy"] == "branchy":
            continue
        b = cost_at_accuracy(branchy, p["accuracy"])
        p["branchy_ms_rel_at_equal_accuracy"] = b
        p["time_saved_vs_branchy"] = None if b is None else 1 - p["ms_rel"] / b
        m = cost_at_accuracy(branchy, p["accuracy"], "macs_per_image")
        p["macs_saved_vs_branchy"] = None if m is None else 1 - p["macs_per_image"] / m


def table(points):
    rows = ["| policy | threshold | accuracy | loss vs none (points) | time / none | speed-up | "
            "MACs / image | shares (exits…, main) | change against branchy at equal accuracy |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in points:
        saved = p.get("time_saved_vs_branchy")
        rows.append("| {} | {} | {:.2%} | {:+.2f} | {:.3f} | {:.2f}× | {:,.0f} | {} | {} |".format(
            p["policy"], "model's" if p["own"] else p["threshold"], p["accuracy"],
            100 * (p["none_accuracy"] - p["accuracy"]), p["ms_rel"], p["speedup_vs_none"],
            p["macs_per_image"], " / ".join(f"{s:.1%}" for s in p["shares"]),
            "" if p["policy"] == "branchy" else
            "branchy never as accurate" if saved is None else
            f"{-saved:+.1%} time, {-p['macs_saved_vs_branchy']:+.1%} MACs"))
    return "\n".join(rows)


def plot(points, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "ms_rel", "time per image / time of policy none"),
                           (axes[1], "macs_per_image", "MACs per image")):
        for policy in dict.fromkeys(p["policy"] for p in points):
            pts = sorted((p[key], p["accuracy"]) for p in points if p["policy"] == policy)
            ax.plot([a for a, _ in pts], [100 * b for _, b in pts], "o-", label=policy, ms=4)
        ax.axhline(100 * points[0]["none_accuracy"], color="grey", ls="--", lw=1,
                   label="none (main path)")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="model path without .cfg/.weights")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data")
    ap.add_argument("--thresholds", default=",".join(map(str, DEFAULT_THRESHOLDS)))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--gates", choices=("natural", "model"), default="natural")
    ap.add_argument("-o", "--out", help="output prefix (default: docs/exit-curves-NAME)")
    args = ap.parse_args(argv)
    prefix = pathlib.Path(args.prefix)
    out = pathlib.Path(args.out or f"docs/exit-curves-{prefix.name}")
    data = datasets.load(args.dataset, args.data)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    with mdfi.Network(f"{prefix}.cfg", f"{prefix}.weights", threads=1) as net:
        points = sweep(net, data, thresholds, args.limit, args.repeats,
                       args.gates == "natural")
        kernel = net.kernel
    compare(points)
    md = table(points)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python examples/exit_curves.py " + " ".join(sys.argv[1:] if argv is None else argv)
    (out.with_suffix(".json")).write_text(json.dumps(
        {"model": prefix.name, "dataset": args.dataset, "command": cmd, "kernel": kernel,
         "threads": 1, "points": points}, indent=1) + "\n")
    (out.with_suffix(".md")).write_text(f"`{cmd}` (kernel {kernel}, one thread)\n\n{md}\n")
    plot(points, f"{prefix.name} on {args.dataset} test (one thread, kernel {kernel})",
         out.with_suffix(".png"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
