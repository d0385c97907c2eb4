"""prune(): cost table -> per-group channel counts -> a method -> a smaller model."""

import dataclasses
import time

import numpy as np

from weights_tools.prune import methods
from weights_tools.prune.costs import CostModel, layer_flops, measure_ms, relative_ms
from weights_tools.prune.graph import ChannelGraph, PruneError
from weights_tools.prune.importance import fisher
from weights_tools.prune.rates import allocate, allocate_importance
from weights_tools.prune.rewrite import prune_model

from weights_tools.prune.cli import METHODS, RATES  # one list each, torch-free


@dataclasses.dataclass
class Result:
    model: object            # the pruned Darknet model (channels removed)
    keep: dict               # {group id: kept channel indices} of the original model
    rows: list               # per-layer report rows (dicts)
    summary: dict


def _first_k(counts):
    return {g: np.arange(k) for g, k in counts.items()}


def plan_counts(model, graph, target_flops=None, target_ms=None, max_prune=0.75, power=1.0,
                multiple=1, threads=1, kernel=None, log=print, path="float", calib=None,
                importance=None):
    """(counts {gid: channels to keep}, cost model, per-layer ms, whole ms).
    target_flops: a fraction of the model's FLOPs; target_ms: milliseconds per
    forward on this CPU (MDFI, `threads`, `path` float or int8), reached by measuring candidate
    architectures: the rates come from the per-layer profile, the result is
    timed in turns with the unpruned model (costs.relative_ms) and the target
    corrected until it lands within 2 %.
    importance: {gid: per-channel importance} (importance.fisher) to allocate
    by importance lost per cost saved (rates.allocate_importance) instead of
    by cost alone (rates.allocate, `power`)."""
    if (target_flops is None) == (target_ms is None):
        raise PruneError("give one target: target_flops (a fraction) or target_ms")
    def measure(m):
        return measure_ms(m, threads=threads, kernel=kernel, path=path, calib=calib)

    def rates(costs, target):
        if importance is not None:
            return allocate_importance(costs, importance, target, max_prune, multiple)
        return allocate(costs, target, max_prune, power, multiple)

    per_ms, whole = measure(model)
    if target_flops is not None:
        if not 0 < target_flops <= 1:
            raise PruneError("target_flops is a fraction of the network's FLOPs in (0, 1], "
                             "got %r" % (target_flops,))
        costs = CostModel(graph, layer_flops(model))
        return rates(costs, target_flops * costs.total()), costs, per_ms, whole
    if target_ms <= 0:
        raise PruneError("target_ms must be positive, got %r" % (target_ms,))
    costs = CostModel(graph, per_ms)
    overhead = max(0.0, whole - sum(per_ms))
    goal = target_ms - overhead
    best = None
    for attempt in range(6):
        if goal <= 0:
            raise PruneError("the target %.3f ms is below MDFI's fixed cost of a forward "
                             "(%.3f ms outside the layers)" % (target_ms, overhead))
        counts = rates(costs, goal)
        # timed in turns with the unpruned model, scaled by its time measured above
        got = whole * relative_ms(model, prune_model(model, _first_k(counts), graph),
                                  threads=threads, kernel=kernel, path=path, calib=calib)
        log("  target %.3f ms: rates for %.3f ms in the profile model measure %.3f ms"
            % (target_ms, goal + overhead, got))
        if best is None or abs(got - target_ms) < abs(best[1] - target_ms):
            best = (counts, got)
        if abs(got - target_ms) <= 0.02 * target_ms:
            break
        goal *= target_ms / got
    return best[0], costs, per_ms, whole


def report_rows(model, pruned, graph, keep, per_ms, per_ms_after):
    flops, flops_after = layer_flops(model), layer_flops(pruned)
    rows = []
    for i, layer in enumerate(model.layers):
        gid = graph.group_of.get(i)
        n = model.shapes[i][0]
        rows.append({"layer": i, "type": layer.section, "channels": n,
                     "kept": pruned.shapes[i][0],
                     "group": None if gid is None else graph.find(gid),
                     "flops": flops[i], "flops_after": flops_after[i],
                     "ms": per_ms[i], "ms_after": per_ms_after[i]})
    return rows


def prune(model, task, method="c2s2", target_flops=None, target_ms=None, budget=None,
          max_prune=0.75, power=1.0, multiple=1, threads=1, kernel=None, log=print, path="float",
          rates="fisher", fisher_batches=16):
    """Prunes a copy of `model` (a weights_tools.torch.Darknet with trained
    weights) on `task`; returns a Result.  The model given is trained in place
    (masked) and should be discarded.  rates: "cost" (rates.allocate, by the
    cost of a channel alone, `power`) or "fisher" (rates.allocate_importance:
    Fisher importance lost per cost saved, over `fisher_batches` batches).
    method "fisher" keeps the channels of largest Fisher importance."""
    if method not in METHODS:
        raise PruneError("unknown method %r (choose from %s)" % (method, ", ".join(METHODS)))
    budget = budget or methods.Budget()
    if rates not in RATES:
        raise PruneError("unknown rates %r (choose from %s)" % (rates, ", ".join(RATES)))
    graph = ChannelGraph(model)
    t0 = time.time()
    calib = task.x[:8].numpy()
    importance = (fisher(model, task, graph, batches=fisher_batches)
                  if rates == "fisher" or method == "fisher" else None)
    counts, costs, per_ms, whole = plan_counts(model, graph, target_flops, target_ms, max_prune,
                                                power, multiple, threads, kernel, log, path, calib,
                                                importance if rates == "fisher" else None)
    n_groups = sum(1 for g in graph.prunable() if counts.get(g.id, g.n) < g.n)
    score_before = task.score(model)
    log("%s: %d groups pruned; %s before: %.4f" % (method, n_groups, task.score_name, score_before))
    if method == "c2s2":
        per = costs.per_channel()
        top = max(per.values()) or 1.0
        keep, pruned = methods.c2s2(model, task, counts, budget,
                            {g: max(v, 0.0) / top for g, v in per.items()}, log=log)
    elif method == "l1":
        keep, pruned = methods.l1_norm(model, task, counts, budget, n_groups, log=log)
    elif method == "fisher":
        keep, pruned = methods.fisher_select(model, task, counts, importance, budget, n_groups,
                                             log=log)
    else:
        goal = costs.total({g: k / graph.group(g).n for g, k in counts.items()})

        def meets(c):
            return costs.total({g: k / graph.group(g).n for g, k in c.items()}) <= goal * 1.0001
        keep, pruned = methods.slimming(model, task, meets, budget, n_groups, log=log)
    per_after, whole_after = measure_ms(pruned, threads=threads, kernel=kernel, path=path,
                                        calib=calib)
    score = task.score(pruned)
    rows = report_rows(model, pruned, graph, keep, per_ms, per_after)
    f0, f1 = sum(r["flops"] for r in rows), sum(r["flops_after"] for r in rows)
    summary = {"method": method, "target_flops": target_flops, "target_ms": target_ms,
               "flops": f0, "flops_after": f1, "flops_ratio": f0 / f1,
               "ms": whole, "ms_after": whole_after, "speedup": whole / whole_after,
               "threads": threads, "path": path, "rates": rates, "score_name": task.score_name, "score_before": score_before,
               "score_after": score, "groups_pruned": n_groups, "seconds": time.time() - t0,
               "budget": dataclasses.asdict(budget) if dataclasses.is_dataclass(budget)
               else vars(budget)}
    return Result(pruned, keep, rows, summary)


def format_rows(rows):
    lines = ["%5s  %-13s %9s %12s %12s %9s %9s" % ("layer", "type", "channels", "MFLOPs",
                                                   "after", "ms", "after")]
    for r in rows:
        lines.append("%5d  %-13s %4d->%-4d %12.3f %12.3f %9.4f %9.4f"
                     % (r["layer"], r["type"], r["channels"], r["kept"], r["flops"] / 1e6,
                        r["flops_after"] / 1e6, r["ms"], r["ms_after"]))
    return "\n".join(lines)
