"""The cost-aware per-layer rates (C2S2's cost-aware mechanism).

A group's share of the pruning grows with what one of its channels costs:
prune fraction p_g = min(max_prune, alpha * (c_g / c_max) ** power), where c_g
is the cost saved by removing one channel of group g (costs.CostModel) and
alpha is found by bisection so that the pruned network costs the target.
`max_prune` is the guard against over-pruning a layer: no group loses more
than that fraction, however cheap its channels make it to cut elsewhere.
Channel counts are rounded to a multiple of `multiple` (never below it), and
the rounding is corrected group by group until the target is met.

allocate_importance is the cost-aware rule that also weighs what the channels
are worth (importance.fisher): channels go one step of `multiple` at a time,
each time from the group whose next least important channels cost the loss
least per unit of cost saved, until the target is met.  A layer whose
remaining channels all matter becomes dear to cut, so the rule stops cutting
it by itself; max_prune stays as the hard guard.
"""

import math

import numpy as np

from weights_tools.prune.graph import PruneError


def _where(graph, grp):
    p = grp.producers[0]
    return "layer %d ([%s])" % (p, graph.model.layers[p].section)


def _counts(groups, p, multiple, max_prune=1.0):
    """Channels kept per group: the nearest multiple of `multiple`, raised to
    the smallest multiple that keeps max_prune's guard (rounding down could
    otherwise cut more than max_prune: yolov3-tiny's layer 0 kept 8 of 16
    channels with max_prune=0.4, multiple=4)."""
    out = {}
    for grp in groups:
        k = grp.n * (1.0 - p[grp.id])
        k = max(min(multiple, grp.n), int(round(k / multiple)) * multiple)
        floor = grp.n * (1.0 - max_prune)
        if k < floor - 1e-9:
            k = int(math.ceil(floor / multiple - 1e-9)) * multiple
        out[grp.id] = min(grp.n, k)
    return out


def allocate(costs, target, max_prune=0.75, power=1.0, multiple=1, groups=None):
    """{gid: channels to keep} such that costs.total() of the kept fractions is
    at most `target` (an absolute cost, in the cost model's units) and as
    close to it as the rounding allows.  Raises PruneError if even pruning
    every group by max_prune stays above the target."""
    graph = costs.graph
    groups = list(groups if groups is not None else graph.prunable())
    if not groups:
        raise PruneError("no layer of this network can lose channels (every conv feeds a fixed "
                         "layout: %s)" % "; ".join(sorted({g.fixed for g in graph.groups if g.fixed})))
    if not 0 < max_prune < 1:
        raise PruneError("max_prune must be between 0 and 1, got %r" % (max_prune,))
    full = costs.total()
    if target >= full:
        return {g.id: g.n for g in groups}
    per = costs.per_channel()
    top = max(per[g.id] for g in groups) or 1.0
    weight = {g.id: (max(per[g.id], 0.0) / top) ** power for g in groups}

    def fractions(alpha):
        return {g.id: min(max_prune, alpha * weight[g.id]) for g in groups}

    def cost_of(counts):
        return costs.total({gid: k / graph.group(gid).n for gid, k in counts.items()})

    floor = cost_of(_counts(groups, fractions(1e9), multiple, max_prune))
    if floor > target:
        raise PruneError("the target %.4g cannot be met: pruning every layer by max_prune=%.2f "
                         "still costs %.4g of %.4g (%.2fx); raise --max-prune or lower the target"
                         % (target, max_prune, floor, full, full / floor))
    lo, hi = 0.0, 1.0
    while cost_of(_counts(groups, fractions(hi), multiple, max_prune)) > target and hi < 1e9:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if costs.total({gid: 1 - f for gid, f in fractions(mid).items()}) > target:
            lo = mid
        else:
            hi = mid
    counts = _counts(groups, fractions(hi), multiple, max_prune)
    # rounding may overshoot either way: trim the cheapest-to-lose channels first
    order = sorted(groups, key=lambda g: -weight[g.id])
    while cost_of(counts) > target:
        for grp in order:
            k = counts[grp.id] - multiple
            if k >= max(multiple, math.ceil(grp.n * (1 - max_prune) - 1e-9)):
                counts[grp.id] = k
                break
        else:
            break
    return counts


def _floors(groups, max_prune, multiple):
    return {g.id: max(min(multiple, g.n), int(math.ceil(g.n * (1 - max_prune) - 1e-9)))
            for g in groups}


def allocate_importance(costs, importance, target, max_prune=0.75, multiple=1, groups=None):
    """{gid: channels to keep} with costs.total() at most `target`, chosen
    greedily by importance lost per cost saved.  importance: {gid: one value
    per channel, in units of the loss} (importance.fisher)."""
    graph = costs.graph
    groups = list(groups if groups is not None else graph.prunable())
    if not groups:
        return allocate(costs, target, max_prune, 1.0, multiple, groups)   # its error
    if not 0 < max_prune < 1:
        raise PruneError("max_prune must be between 0 and 1, got %r" % (max_prune,))
    for g in groups:
        if g.id not in importance or len(importance[g.id]) != g.n:
            raise PruneError("no importance of each of the %d channels of %s"
                             % (g.n, _where(graph, g)))
    ranked = {g.id: np.sort(np.asarray(importance[g.id], np.float64)) for g in groups}
    floors = _floors(groups, max_prune, multiple)
    counts = {g.id: g.n for g in groups}

    def cost_of(c):
        return costs.total({gid: k / graph.group(gid).n for gid, k in c.items()})

    full = cost_of(counts)
    if cost_of(floors) > target:
        raise PruneError("the target %.4g cannot be met: pruning every layer by max_prune=%.2f "
                         "still costs %.4g of %.4g (%.2fx); raise --max-prune or lower the target"
                         % (target, max_prune, cost_of(floors), full, full / cost_of(floors)))
    now = full
    while now > target:
        best = None
        for g in groups:
            k = counts[g.id]
            step = min(multiple, k - floors[g.id])
            if step <= 0:
                continue
            counts[g.id] = k - step
            after = cost_of(counts)
            counts[g.id] = k
            lost = ranked[g.id][g.n - k:g.n - k + step].sum()
            value = lost / max(now - after, 1e-30)
            if best is None or value < best[0]:
                best = (value, g.id, k - step, after)
        if best is None:
            break
        _, gid, counts[gid], now = best
    return counts
