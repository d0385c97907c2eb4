"""Reporting: per-layer SQNR against the float network, the table, progress lines."""
import math
import os
import sys

import numpy as np

from weights_tools.calibrate import load_input
from weights_tools.fixed_ref import FixedNet


def compare(cfg, weights, qcfg, qweights, images, engine="auto", threads=1, quiet=True):
    """Per-layer SQNR (dB) of the quantized net against the float net over images,
    and the engine used ('c' or 'ref')."""
    import mdfi
    sig = None
    with mdfi.Network(cfg, weights, threads=threads, keep_outputs=True) as fnet:
        qnet, used = None, engine
        if engine in ("auto", "c"):
            try:
                qnet = mdfi.Network(qcfg, qweights, threads=threads, keep_outputs=True)
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
                progress_line("checking %d/%d: %s" % (k + 1, len(images), os.path.basename(path)),
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
