"""Prune the Fashion-MNIST VGG (examples/train_vgg.py) with C2S2, L1-norm and
network slimming at equal FLOPs and equal training budgets; measure every
result on the test split in MDFI, and the single-thread speed-up of each
pruned model against the float model in the same process.

    python examples/prune_vgg.py                                # 3 methods x 2 targets
    python examples/prune_vgg.py --methods c2s2 --targets 0.33 --keep-model

Choices (rates, which channels, fine-tuning) see only the training split and
the validation images carved from it (the last 500 of each class); the test
split is measured once per result.  Writes OUT/NAME.cfg/.weights/.json per
run and the table to --record (docs/pruning-fmnist.json) and its .md twin.
With --keep-model each method's model at the smallest target is copied to
examples/models/fmnist_vgg_METHOD.* (register it with examples/register_model.py);
with --merge, --keep names the runs to copy.  --rates fisher (the default)
chooses the per-layer counts by Fisher importance per cost, --rates cost by
cost alone; --no-joint trains only the gates in C2S2's phase 1.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import weights_tools  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.append(ROOT)

import torch  # noqa: E402

import mdfi  # noqa: E402
from mdfi.evaluate import evaluate  # noqa: E402
from mdfi.bench import cpu_name  # noqa: E402
from weights_tools.prune.methods import Budget  # noqa: E402
from weights_tools.prune.run import format_rows, prune  # noqa: E402
from weights_tools.prune.tasks import LabelledTask  # noqa: E402
from weights_tools.torch import import_darknet, save  # noqa: E402

sys.path.insert(0, HERE)
from train_classifier import predict  # noqa: E402
from train_vgg import load  # noqa: E402



def interleaved_ms(prefixes, x, rounds=15, per_round=20):
    """Median ms per forward of each model, single thread, measured in turns."""
    nets = [mdfi.Network(p + ".cfg", p + ".weights", threads=1) for p in prefixes]
    try:
        times = [[] for _ in nets]
        for net in nets:
            for v in x[:5]:
                net.forward(v)
        for r in range(rounds):
            for k, net in enumerate(nets):
                t = time.perf_counter()
                for j in range(per_round):
                    net.forward(x[(r * per_round + j) % len(x)])
                times[k].append(1000.0 * (time.perf_counter() - t) / per_round)
        return [statistics.median(t) for t in times], nets[0].kernel
    finally:
        for net in nets:
            net.close()


def check_rates(model_prefix, flops_targets, ms_fractions, max_prune, power, log=print,
                task=None):
    """How close the cost-aware rates land to each target (no training: the
    time and FLOPs of an architecture do not depend on its weights).  Each
    --target-ms is a fraction of the float model's measured ms.  With a task,
    the rates are the importance rates (Fisher importance on its batches)."""
    from weights_tools.prune.costs import layer_flops, measure_ms, relative_ms
    from weights_tools.prune.graph import ChannelGraph
    from weights_tools.prune.importance import fisher
    from weights_tools.prune.rewrite import prune_model
    from weights_tools.prune.run import plan_counts
    model = import_darknet(model_prefix + ".cfg", model_prefix + ".weights")
    graph = ChannelGraph(model)
    full_flops, full_ms = sum(layer_flops(model)), measure_ms(model)[1]
    importance = None if task is None else fisher(model, task, graph)
    rows = []
    for kind, targets in (("flops", flops_targets), ("ms", ms_fractions)):
        for frac in targets:
            kw = {"target_flops": frac} if kind == "flops" else {"target_ms": frac * full_ms}
            counts, _, _, whole = plan_counts(model, graph, max_prune=max_prune, power=power,
                                              log=log, importance=importance, **kw)
            pruned = prune_model(model, {g: np.arange(k) for g, k in counts.items()}, graph)
            if kind == "flops":
                got, aim = sum(layer_flops(pruned)) / full_flops, frac
            else:
                # the fraction of the float model's time, timed in turns with it; the
                # aim is the target over plan_counts' own timing of the float model
                got, aim = relative_ms(model, pruned), kw["target_ms"] / whole
            rows.append({"target": kind, "fraction": frac, "aim": aim, "reached": got,
                         "error_pct": 100 * (got - aim) / aim,
                         "kept": [counts[g] for g in sorted(counts)]})
            log("rates for %s %.2f: reached %.3f (%+.1f %%)" % (kind, frac, got,
                                                                rows[-1]["error_pct"]))
    return {"float_ms": full_ms, "rule": "cost" if task is None else "fisher", "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "models", "fmnist_vgg"))
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--methods", nargs="+", default=["c2s2", "l1", "slimming"],
                    help="c2s2, l1, slimming, fisher; c2s2-uniform is C2S2 with one prune rate for "
                    "every layer (--cost-power 0: the cost-aware rates' ablation)")
    ap.add_argument("--targets", nargs="*", type=float, default=[0.5, 0.33],
                    help="FLOPs fractions to prune to (none: only check the rates)")
    ap.add_argument("--select-steps", type=int, default=60)
    ap.add_argument("--tune-steps", type=int, default=60)
    ap.add_argument("--epochs", type=float, default=1.0, help="final fine-tune epochs")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--joint", action=argparse.BooleanOptionalAction, default=True,
                    help="C2S2's phase 1 trains the weights with the gates (--no-joint: the "
                    "gates alone)")
    ap.add_argument("--max-prune", type=float, default=0.75)
    ap.add_argument("--multiple", type=int, default=1,
                    help="keep a multiple of this many channels per layer (8: whole rows of "
                    "the AVX2 kernel's 6- and 4-row tiles more often, whole vectors)")
    ap.add_argument("--cost-power", type=float, default=0.5)
    ap.add_argument("--rates", choices=("cost", "fisher"), default="fisher",
                    help="per-layer counts from the cost of a channel alone (--cost-power) or "
                    "from Fisher importance lost per cost saved (C2S2 and L1-norm)")
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/mdfi-prune-vgg")
    ap.add_argument("--record", default=os.path.join(ROOT, "docs", "pruning-fmnist.json"))
    ap.add_argument("--keep-model", action="store_true")
    ap.add_argument("--merge", nargs="+", metavar="RECORD",
                    help="only merge these records (runs made in parallel) into --record, "
                    "timing every model again in one process")
    ap.add_argument("--keep", nargs="+", metavar="FILES", default=[],
                    help="with --merge: copy these runs (their files' prefix) to examples/models")
    ap.add_argument("--rate-targets", nargs="*", type=float, default=[0.5, 0.33, 0.25],
                    help="FLOPs fractions whose rates are checked (no training)")
    ap.add_argument("--ms-targets", nargs="*", type=float, default=[0.5, 0.33],
                    help="fractions of the float model's MDFI ms whose rates are checked")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.merge:
        return merge(args.merge, args.record, argv, args.keep)
    os.makedirs(args.out, exist_ok=True)
    data = load(args.dataset, args.train_limit)

    def labelled():
        return LabelledTask(data.x_train, data.y_train, data.x_val, data.y_val, 128, shift=2,
                            flip=args.dataset == "fashion-mnist", seed=args.seed)
    torch.manual_seed(args.seed)
    rates = check_rates(args.model, args.rate_targets, args.ms_targets, args.max_prune,
                        args.cost_power, task=labelled() if args.rates == "fisher" else None)
    float_acc = evaluate(mdfi.Network(args.model + ".cfg", args.model + ".weights"), data,
                         limit=args.test_limit)["accuracy"]
    runs, pruned_models = [], {}
    for target in args.targets:
        for method in args.methods:
            torch.manual_seed(args.seed)
            name = "%s_%s_%g" % (os.path.basename(args.model), method, target)
            print("== %s: %s at %.2f of the FLOPs" % (name, method, target), flush=True)
            model = import_darknet(args.model + ".cfg", args.model + ".weights")
            task = labelled()
            budget = Budget(args.select_steps, args.tune_steps,
                            round(args.epochs * task.steps_per_epoch), lr=args.lr,
                            joint=args.joint)
            uniform = method == "c2s2-uniform"
            res = prune(model, task, "c2s2" if uniform else method, target_flops=target,
                        budget=budget, max_prune=args.max_prune,
                        power=0.0 if uniform else args.cost_power,
                        rates="cost" if uniform else args.rates, multiple=args.multiple)
            prefix = os.path.join(args.out, name)
            save(res.model, prefix)
            pruned_models[name] = res.model
            print(format_rows(res.rows), flush=True)
            with mdfi.Network(prefix + ".cfg", prefix + ".weights") as net:
                acc = evaluate(net, data, limit=args.test_limit)["accuracy"]
            s = res.summary
            run = {"name": name, "method": method, "target_flops": target,
                   "flops_ratio": s["flops_ratio"], "flops_fraction": s["flops_after"] / s["flops"],
                   "validation_accuracy": s["score_after"], "test_accuracy": acc,
                   "test_accuracy_loss_points": 100 * (float_acc - acc),
                   "kept": [r["kept"] for r in res.rows if r["type"] == "convolutional"],
                   "train_seconds": s["seconds"], "budget_steps": budget.total(s["groups_pruned"]),
                   "seed": args.seed, "multiple": args.multiple,
                   "rates": "own threshold" if method == "slimming" else s["rates"]}
            if method.startswith("c2s2"):
                run["joint"] = args.joint
            with open(prefix + ".json", "w") as f:
                json.dump({"run": run, "summary": s, "layers": res.rows,
                           "keep": {str(g): v.tolist() for g, v in res.keep.items()}}, f, indent=1)
            runs.append(run)
            print("-> test accuracy %.4f (float %.4f), %.2fx fewer FLOPs" % (acc, float_acc,
                                                                          s["flops_ratio"]), flush=True)
    for run in runs:
        run["files"] = os.path.join(args.out, run["name"])
    kernel = retime(args.model, runs, data.x_test[:200])
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in
                                        [os.path.relpath(__file__, ROOT)] + (argv or sys.argv[1:])),
        "model": os.path.relpath(args.model, ROOT), "dataset": args.dataset, "split": data.split,
        "float_test_accuracy": float_acc, "test_n": len(data.y_test) if not args.test_limit
        else args.test_limit,
        "cpu": cpu_name(), "mdfi_kernel": kernel, "timing": "MDFI float, 1 thread, median ms per "
        "forward over 15 interleaved rounds of 20 test images, all models in one process",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "record")},
        "runs": runs, "rates": rates}
    with open(args.record, "w") as f:
        json.dump(record, f, indent=1)
    write_table(record, os.path.splitext(args.record)[0] + ".md")
    if args.keep_model:
        for run in runs:
            if run["target_flops"] == min(args.targets):
                keep_model(run, record, data, args.model)
    return 0


def keep_model(run, record, data, model):
    """Copies a run's files to examples/models/<model>_<method>.* with a record
    (its PyTorch test accuracy, the run, the kept channels) for the index."""
    src = run["files"]
    dst = os.path.join(HERE, "models", "%s_%s" % (os.path.basename(model), run["method"]))
    for ext in (".cfg", ".weights"):
        shutil.copyfile(src + ext, dst + ext)
    with open(src + ".json") as f:
        keep = json.load(f)["keep"]
    torch_pred = predict(import_darknet(src + ".cfg", src + ".weights"), data.x_test)
    with open(dst + ".json", "w") as f:
        json.dump({"command": record["command"], "from": record["model"],
                   "cfg": os.path.basename(dst) + ".cfg",
                   "weights": os.path.basename(dst) + ".weights",
                   "dataset": record["dataset"], "variant": "pruned", "split": data.split,
                   "pytorch": {"n": len(data.y_test),
                               "accuracy": float(np.mean(torch_pred == data.y_test))},
                   "run": run, "cpu": record["cpu"], "keep": keep}, f, indent=1)
    print("copied %s to %s" % (src, dst))


def retime(model, runs, x):
    """Times the float model and every run's model in one process, in turns."""
    times, kernel = interleaved_ms([model] + [r["files"] for r in runs], x)
    for run, t in zip(runs, times[1:]):
        run["ms"], run["float_ms"] = t, times[0]
        run["speedup"] = times[0] / t
        run["speedup_over_flops_ratio"] = run["speedup"] / run["flops_ratio"]
    return kernel


def merge(paths, out, argv, keep=()):
    records = []
    for p in paths:
        with open(p) as f:
            records.append(json.load(f))
    record = dict(records[0])
    record["commands"] = [r["command"] for r in records]
    record["command"] = "python " + " ".join(shlex.quote(a) for a in
                                             [os.path.relpath(__file__, ROOT)] + (argv or sys.argv[1:]))
    for r in records:   # what varied between the merged runs goes into each run
        st = r["settings"]
        for run in r["runs"]:
            run.setdefault("seed", st.get("seed", 0))
            run.setdefault("rates", "own threshold" if run["method"] == "slimming"
                           else st.get("rates", "cost"))
            if run["method"].startswith("c2s2"):
                run.setdefault("joint", st.get("joint", False))
    record["runs"] = [run for r in records for run in r["runs"]]
    for r in records[1:]:
        if r["float_test_accuracy"] != record["float_test_accuracy"] or r["model"] != record["model"]:
            raise SystemExit("prune_vgg: the records are not of one float model and test split")
    data = load(record["dataset"])
    record["mdfi_kernel"] = retime(os.path.join(ROOT, record["model"]), record["runs"],
                                   data.x_test[:200])
    record["cpu"] = cpu_name()
    with open(out, "w") as f:
        json.dump(record, f, indent=1)
    write_table(record, os.path.splitext(out)[0] + ".md")
    by_files = {os.path.abspath(r["files"]): r for r in record["runs"]}
    for prefix in keep:
        if os.path.abspath(prefix) not in by_files:
            raise SystemExit("prune_vgg: --keep %s is not a merged run's files" % prefix)
        keep_model(by_files[os.path.abspath(prefix)], record, data, record["model"])
    return 0


def write_table(record, path):
    lines = ["| FLOPs target | method | seed | counts | FLOPs ratio | validation | test accuracy | "
             "loss (points) | MDFI 1-thread speed-up | speed-up / FLOPs ratio | conv channels kept |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in record["runs"]:
        method = r["method"] + (" (gates-only phase 1)" if r.get("joint") is False else "")
        lines.append("| %.2f | %s | %s | %s | %.2fx | %.2f %% | %.2f %% | %.2f | %.2fx | %.0f %% | %s |"
                     % (r["target_flops"], method, r.get("seed", 0), r.get("rates", "cost"),
                        r["flops_ratio"], 100 * r["validation_accuracy"], 100 * r["test_accuracy"],
                        r["test_accuracy_loss_points"], r.get("speedup", float("nan")),
                        100 * r.get("speedup_over_flops_ratio", float("nan")),
                        ", ".join(map(str, r["kept"]))))
    with open(path, "w") as f:
        f.write("Float model: %s, test accuracy %.2f %% (n = %d). CPU: %s, MDFI kernel %s.\n\n"
                % (record["model"], 100 * record["float_test_accuracy"], record["test_n"],
                   record["cpu"], record["mdfi_kernel"]))
        f.write("\n".join(lines) + "\n\n")
        f.write("Rates alone (no training; %s rule), target against reached (ms: fractions of "
                "the float model's time, timed in turns with it; the aim is the target over the "
                "rates' own timing of the float model):\n\n| target | fraction | aim | reached | "
                "error |\n| --- | --- | --- | --- | --- |\n" % record["rates"].get("rule", "cost"))
        for r in record["rates"]["rows"]:
            f.write("| %s | %.2f | %.3f | %.3f | %+.1f %% |\n"
                    % (r["target"], r["fraction"], r.get("aim", r["fraction"]), r["reached"],
                       r["error_pct"]))
        for c in record.get("commands", []):
            f.write("\nRun: `%s`\n" % c)
        f.write("\nCommand: `%s`\n" % record["command"])


if __name__ == "__main__":
    sys.exit(main())
