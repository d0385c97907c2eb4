"""Reporting: per-layer SQNR against the float network, the table, progress lines."""
import dataclasses
import math
import sys

import numpy as np

from weights_tools.calibrate import all_layers_network, input_name, load_input
from weights_tools.fixed_ref import FixedNet


def compare(cfg, weights, qcfg, qweights, images, engine="auto", threads=1, quiet=True):
    """Per-layer SQNR (dB) of the quantized net against the float net over images,
    and the engine used ('c' or 'ref')."""
    import mdfi
    sig = None
    with all_layers_network(cfg, weights, threads=threads, keep_outputs=True) as fnet:
        qnet, used = None, engine
        if engine in ("auto", "c"):
            try:
                qnet = all_layers_network(qcfg, qweights, threads=threads, keep_outputs=True)
                used = "c"
            except mdfi.MdfiError:
                if engine == "c":
                    raise
                used = "ref"
        ref = FixedNet(qcfg, qweights) if used == "ref" else None
        try:
            n = len(fnet.layers)
            sig, noise = np.zeros(n), np.zeros(n)
            for k, path in enumerate(images):
                progress_line("checking %d/%d: %s" % (k + 1, len(images), input_name(path)),
                              quiet)
                x = load_input(path, fnet.input_shape)
                fnet.forward(x)
                if qnet is not None:
                    qnet.forward(x)
                    qouts = [qnet.layer_output(i) for i in range(n)]
                else:
                    qouts = [o.value for o in ref.forward(x)]
                for i in range(n):
                    f = fnet.layer_output(i).astype(np.float64).ravel()
                    d = f - np.asarray(qouts[i], np.float64).ravel()
                    sig[i] += float(np.dot(f, f))
                    noise[i] += float(np.dot(d, d))
        finally:
            if qnet is not None:
                qnet.close()
    db = [math.inf if e == 0 else (10 * math.log10(s / e) if s else -math.inf)
          for s, e in zip(sig, noise)]
    return db, used


EXIT_POLICIES = ("branchy", "entropy-predictor", "exit-predictor")


@dataclasses.dataclass
class ExitAgreement:
    """Where a quantized network with exits ends against the float one, under
    one policy, over the same inputs."""
    policy: str
    same: int          # inputs that end at the same exit (or both on the main path)
    n: int
    float_exits: int   # inputs the float network lets out at an exit
    quant_exits: int   # ... and the quantized one

    def __str__(self):
        return ("policy %s: the same exit on %d/%d inputs (%.1f%%); %d leave early in float, "
                "%d quantized" % (self.policy, self.same, self.n, 100.0 * self.same / self.n,
                                  self.float_exits, self.quant_exits))


def exit_agreement(fnet, qnet, inputs, policies=EXIT_POLICIES):
    """[ExitAgreement] of two open networks with the same exits (float and
    quantized), one per policy of `policies` that every exit's predictors
    allow, over float32 inputs, with the thresholds the networks hold.  Both
    networks are left with the policy "all"."""
    have = [set(e.predictors) for e in fnet.exits]
    out = []
    try:
        for policy in policies:
            need = policy.split("-")[0]
            if policy != "branchy" and not all(need in h for h in have):
                continue
            fnet.exit_policy = qnet.exit_policy = policy
            ends = []
            for x in inputs:
                fnet.forward(x)
                qnet.forward(x)
                ends.append((fnet.last_exit.exit, qnet.last_exit.exit))
            out.append(ExitAgreement(policy, sum(a == b for a, b in ends), len(ends),
                                     sum(a >= 0 for a, _ in ends), sum(b >= 0 for _, b in ends)))
    finally:
        fnet.exit_policy = qnet.exit_policy = "all"
    return out


def compare_exits(cfg, weights, qcfg, qweights, images, threads=1):
    """exit_agreement of the float and the quantized files (C engine) over
    calibration-style inputs (paths or BatchItems); [] without exits."""
    with all_layers_network(cfg, weights, threads=threads) as fnet, \
            all_layers_network(qcfg, qweights, threads=threads) as qnet:
        if not fnet.exits:
            return []
        xs = [load_input(p, fnet.input_shape) for p in images]
        return exit_agreement(fnet, qnet, xs)


def progress_line(msg, quiet):
    if not quiet:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def _fmt_db(v):
    if v is None:
        return "-"
    return "inf" if v == math.inf else "%.1f" % v


def report_table(layers, plans, e2e=None, file=sys.stdout):
    print("%5s %-14s %-7s %-7s %-7s %13s %13s %8s  %s" % (
        "layer", "type", "in", "weights", "out", "w SQNR max/mse", "a SQNR max/mse",
        "net SQNR", "notes"), file=file)
    for layer, p in zip(layers, plans):
        w = "%s/%s" % (_fmt_db(p.w_sqnr["maxabs"][1]), _fmt_db(p.w_sqnr["mse"][1])) \
            if p.w_sqnr else "-"
        if p.w_sqnr and "chosen" in p.w_sqnr:
            w = "%s>%s" % (w, _fmt_db(p.w_sqnr["chosen"][1]))
        a = "%s/%s" % (_fmt_db(p.a_sqnr["maxabs"][1]), _fmt_db(p.a_sqnr["mse"][1])) \
            if p.a_sqnr else "-"
        print("%5d %-14s %-7s %-7s %-7s %13s %13s %8s  %s" % (
            layer.index, layer.type, p.fin or "", p.w_key() if p.w else "", p.out or "float", w, a,
            _fmt_db(e2e[layer.index]) if e2e else "-", "; ".join(p.notes)), file=file)
