"""The output files: the annotated cfg and the .qweights records."""
from weights_tools import qweights as qwf
from weights_tools.fixed_ref import HEAD_TYPES, IDENTITY_TYPES


def annotated_cfg(cfg_text, sections, plans, header):
    """The cfg text with fixed_* keys right after each section header."""
    lines = cfg_text.split("\n")
    inserts = {}
    for sec, p in zip(sections[1:], plans):
        add = []
        if p.fin is not None:
            add.append("fixed_in=%s" % p.fin)
            add.append("fixed_w=%s" % p.w_key())
        if p.out is not None and p.type not in HEAD_TYPES + IDENTITY_TYPES:
            add.append("fixed_out=%s" % p.out)
        if add:
            inserts[sec.line] = add
    out = list(header)
    for no, line in enumerate(lines, start=1):
        out.append(line)
        if no in inserts:
            out.extend(inserts[no])
    return "\n".join(out)


def build_qweights(layers, plans):
    qw = qwf.QWeights(len(layers))
    for layer, p in zip(layers, plans):
        if p.arrays:        # an [exit]'s predictors: a kind-3 record of float32 arrays
            qw.records[layer.index] = qwf.QArrays(layer.index, dict(p.arrays))
        if p.fin is None:
            continue
        kind = qwf.KIND_CONV if layer.type == "convolutional" else qwf.KIND_CONNECTED
        groups = layer.section.get_int("groups", 1) if kind == qwf.KIND_CONV else 1
        qw.records[layer.index] = qwf.QRecord(
            layer.index, kind, groups, (p.fin.bits, p.fin.frac), (p.w.bits, p.w.frac),
            (p.out.bits, p.out.frac), p.bias_q, p.w_q,
            0 if p.w_fracs is None else 2 if p.mults is not None else 1, p.w_fracs, p.mults)
    return qw


def output_paths(out):
    base = out[:-4] if out.endswith(".cfg") else out
    return base + ".cfg", base + ".qweights"
