"""The quantize() entry point: calibrate, plan, correct, write, report."""
import dataclasses
import math
import os
import sys

from weights_tools import qweights as qwf
from weights_tools.calibrate import calibrate, find_images, load_input
from weights_tools.darknet_cfg import CfgError, infer_layers, net_shape, parse_cfg
from weights_tools.darknet_weights import read_weights
from weights_tools.fixed_ref import FIXED_KEYS
from weights_tools.quantize.correct import correct_biases
from weights_tools.quantize.graph import GEMM_TYPES
from weights_tools.quantize.mixed import choose_mixed
from weights_tools.quantize.options import QuantizeOptions
from weights_tools.quantize.plan import make_plan
from weights_tools.quantize.report import compare, compare_exits, report_table
from weights_tools.quantize.write import annotated_cfg, build_qweights, output_paths


def quantize(cfg, weights, calib, out, options=None, **kw):
    """Calibrates, chooses formats, writes OUT.cfg and OUT.qweights.
    calib: images, folders or .npy inputs (one, or a batch N x C x H x W).
    options: a QuantizeOptions; keywords set its fields (quantize(..., bits=16)).
    Returns a dict: paths, plans, per-layer SQNR and, for a network with
    [exit] layers, exit_agreement: [ExitAgreement] per policy on the check
    inputs (the C engine; [] when nothing was checked)."""
    o = dataclasses.replace(options or QuantizeOptions(), **kw).checked()
    mixed, mixed_layers, narrow_layers = o.mixed, o.mixed_layers, o.narrow_layers
    with open(cfg, "rb") as f:
        cfg_text = f.read().decode("utf-8", "replace")
    sections = parse_cfg(cfg_text)
    for s in sections[1:]:
        if any(k in s.options for k in FIXED_KEYS):
            raise CfgError("%s is already quantized (it has fixed_* keys)" % cfg)
    for s in sections:
        s.file = os.fspath(cfg)
    layers = infer_layers(sections)
    if o.act_bits not in (None, o.bits, 16):
        raise ValueError("--act-bits must be 16 (with --bits 8) or equal --bits")
    if o.act_bits == 16 and o.bits == 8:   # every layer: 16-bit input, 8-bit weights
        if mixed or mixed_layers is not None:
            raise ValueError("--act-bits 16 already raises every layer; drop --mixed")
        mixed_layers = narrow_layers = [layer.index for layer in layers
                                        if layer.type in GEMM_TYPES]
    raised, narrow = {}, set(narrow_layers or ())
    if narrow and (o.bits != 8 or mixed_layers is None):
        raise ValueError("--mixed-narrow needs 8 bits and --mixed-layers")
    if not narrow <= set(mixed_layers or ()):
        raise ValueError("--mixed-narrow: %s are not in --mixed-layers"
                         % sorted(narrow - set(mixed_layers or ())))
    w = read_weights(layers, weights)
    images = find_images(calib)
    acts = {layer.index: layer.section.get_str("activation", "logistic") for layer in layers
            if layer.type in GEMM_TYPES} if o.bias_images else None
    cal = calibrate(cfg, weights, images, samples=o.samples, threads=o.threads, quiet=o.quiet,
                    activations=acts, mean_images=o.bias_images,
                    pre_samples=bool(o.gain and o.weight_scale.startswith("mult")))
    if mixed_layers is not None and o.bits == 8:
        bad = [i for i in mixed_layers if not 0 <= i < len(layers) or
               layers[i].type not in GEMM_TYPES]
        if bad:
            raise ValueError("--mixed-layers: %s are not convolutional/connected layers" % bad)
        raised = {i: math.nan for i in mixed_layers}
        mixed = True
    elif mixed and o.bits == 8:
        raised, narrow = choose_mixed(cfg, weights, cfg_text, sections, layers, w, cal,
                                      images[:4], o.method, o.head_bits, o.weight_scale,
                                      o.mixed_budget, o.threads, o.quiet, o.mixed_size)
    plans = make_plan(layers, w, cal, o.bits, o.method, o.head_bits,
                      gemm_bits={i: 16 for i in raised}, weight_scale=o.weight_scale,
                      weight_bits={i: 8 for i in narrow})
    for i, g in raised.items():
        if plans[i].fin.bits != 16:
            continue     # kept at 8 bits (make_plan says why)
        plans[i].notes.append("raised to 16 bits%s (%s%s)" % (
            ", weights kept at 8" if i in narrow else "",
            "--act-bits 16" if o.act_bits == 16 else "--mixed",
            "" if math.isnan(g) else "; output noise -%.1f%%" % (100 * g)))
    qcfg, qpath = output_paths(os.fspath(out))
    mode = "%d-bit%s" % (o.bits, " weights, 16-bit activations" if o.act_bits == 16 and o.bits == 8
                         else " mixed 8/16" if mixed else "")
    header = ["# Quantized by `python -m weights_tools quantize` (%s, %s formats, %d calibration "
              "images)." % (mode, o.method, len(images)),
              "# fixed_in / fixed_w / fixed_out = BITS:FRAC (value = integer * 2^-FRAC); see "
              "docs/fixed-point.md.",
              "# Weights: %s" % os.path.basename(qpath), ""]
    text = annotated_cfg(cfg_text, sections, plans, header)
    qw = build_qweights(layers, plans)
    n_corrected = 0
    if o.bias_images:
        shape = net_shape(sections)
        inputs = [load_input(p, shape) for p in images[:o.bias_images]]
        qsec = parse_cfg(text)
        for s in qsec:
            s.file = qcfg
        n_corrected = correct_biases(layers, plans, qsec, qw, cal, inputs, o.quiet,
                                     cal.pre_samples or None)
    os.makedirs(os.path.dirname(os.path.abspath(qcfg)), exist_ok=True)
    with open(qcfg, "w", encoding="utf-8") as f:
        f.write(text)
    size = qwf.write(qpath, qw)
    e2e, used, agreement = None, None, []
    if o.check_images is not False:
        imgs = find_images(o.check_images) if o.check_images else images[:4]
        e2e, used = compare(cfg, weights, qcfg, qpath, imgs, o.engine, o.threads, o.quiet)
        if used == "c" and any(layer.type == "exit" for layer in layers):
            agreement = compare_exits(cfg, weights, qcfg, qpath, imgs, o.threads)
    if o.report:
        out_f = sys.stdout
        print("%s: %s, %s; %d calibration images; bias correction on %d layers"
              % (qcfg, mode, o.method, len(images), n_corrected), file=out_f)
        report_table(layers, plans, e2e, out_f)
        fsize = os.path.getsize(weights)
        print("wrote %s and %s (%d bytes, %.1f%% of the float weights)%s"
              % (qcfg, qpath, size, 100.0 * size / fsize,
                 "; net SQNR from the %s engine" % used if used else ""), file=out_f)
        for a in agreement:
            print("exits against the float network, %s" % a, file=out_f)
    return {"cfg": qcfg, "qweights": qpath, "plans": plans, "sqnr": e2e, "engine": used,
            "images": images, "exit_agreement": agreement}
