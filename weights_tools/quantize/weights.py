"""A GEMM layer's integer weights and bias for its input format: one power of two
per layer, one per output channel, or a multiplier and a shift per channel; the
int32 accumulator bound decides how coarse they must be."""
import math

import numpy as np

from weights_tools.fixed_ref import FRAC_MIN, Fmt
from weights_tools.quantize.formats import (INT32_MAX, RangeOverflowError, choose_frac,
                                            mult_scale, quant_error, quantize_weights,
                                            round_half_away)


def _row_bounds(w_q, b_q, in_bits):
    """Per output channel: sum|w_q| * 2^(in_bits-1) + |b_q| (docs/fixed-point.md)."""
    return (np.abs(w_q.astype(np.int64)).sum(axis=1) << (in_bits - 1)) + \
        np.abs(np.asarray(b_q, dtype=np.int64))


def acc_bound(w_q, b_q, in_bits):
    return int(_row_bounds(w_q, b_q, in_bits).max()) if w_q.size else 0


def _set_channel_weights(plan, w, w_q, b_q, fr, mults=None):
    """Stores per-channel weights (fixed_w=B:ch, or B:mul with mults) and their SQNR."""
    scale = 2.0 ** -fr if mults is None else mults * 2.0 ** -fr
    e = float(((w - w_q.astype(np.float64) * scale[:, None]) ** 2).sum())
    energy = float((w ** 2).sum())
    db = math.inf if e == 0 else 10 * math.log10(energy / e) if energy else -math.inf
    plan.w_sqnr = {"maxabs": (None, db), "mse": (None, db)}
    plan.w = Fmt(plan.w.bits, 0)
    plan.w_fracs = fr.astype(np.int8)
    plan.mults = None if mults is None else mults.astype(np.int32)
    plan.w_q = w_q
    plan.bias_q = b_q.astype(np.int32)


def _quantize_gemm_channels(plan, w, b, method):
    """Per-channel power-of-two weight fractions (fixed_w=BITS:ch)."""
    bits = plan.w.bits
    m = w.shape[0]
    fr = np.zeros(m, np.int64)
    w_q = np.zeros(w.shape, Fmt(bits, 0).dtype)
    b_q = np.zeros(m, np.int64)
    lowered = 0
    for r in range(m):
        f, _ = choose_frac(w[r], float(np.abs(w[r]).max()) if w.shape[1] else 0.0, bits, method,
                           "layer %d weights, channel %d" % (plan.index, r), weights=True)
        f0 = f
        while True:
            wr = quantize_weights(w[r], Fmt(bits, f))
            br = round_half_away(b[r] * 2.0 ** (plan.fin.frac + f))
            if abs(br) <= INT32_MAX and \
                    int(_row_bounds(wr[None], [br], plan.fin.bits)[0]) <= INT32_MAX:
                break
            if f <= FRAC_MIN:
                raise RangeOverflowError("layer %d channel %d: the int32 accumulator overflows for "
                                         "any weight format with input %s" % (plan.index, r, plan.fin))
            f -= 1
        lowered += f != f0
        fr[r], w_q[r], b_q[r] = f, wr, br
    if lowered:
        plan.notes.append("%d channels' weight F lowered for the int32 accumulator" % lowered)
    _set_channel_weights(plan, w, w_q, b_q, fr)


def _quantize_gemm_mult(plan, w, b, method, top_code=None):
    """Per-channel multiplier + shift (fixed_w=BITS:mul): channel m's weights
    are w_q * mult[m] * 2^-w_frac[m], so its largest weight maps to the top
    code (max-abs) or to the scale with the least squared error among
    max-abs * 2^(-j/4), j = 0..8 (mse).  top_code: 8-bit weights in
    [-top_code, top_code] instead of [-128, 127] ("mult7": 64)."""
    bits = plan.w.bits
    qmax = top_code if top_code and bits == 8 else (1 << (bits - 1)) - 1
    qmin = -qmax if top_code and bits == 8 else -qmax - 1
    m_out = w.shape[0]
    fr = np.zeros(m_out, np.int64)
    mu = np.ones(m_out, np.int64)
    w_q = np.zeros(w.shape, Fmt(bits, 0).dtype)
    b_q = np.zeros(m_out, np.int64)
    raised = 0

    def quant(row, mult, f):
        return np.clip(round_half_away(row * 2.0 ** f / mult), qmin, qmax)
    for r in range(m_out):
        row = w[r].astype(np.float64)
        top = float(np.abs(row).max()) if row.size else 0.0
        scales = [top / qmax]
        if method == "mse" and top > 0:
            scales += [top / qmax * 2.0 ** (-j / 4) for j in range(1, 9)]
        best = None
        for sc in scales:
            mult, f = mult_scale(sc)
            e = float(((row - quant(row, mult, f) * mult * 2.0 ** -f) ** 2).sum())
            if best is None or e < best[0] - 1e-18:
                best = (e, mult, f)
        _, mult, f = best
        grow = 0
        while True:
            wr = quant(row, mult, f)
            br = round_half_away(b[r] * 2.0 ** (plan.fin.frac + f) / mult)
            if abs(br) <= INT32_MAX and \
                    int(_row_bounds(wr[None].astype(np.int64), [br], plan.fin.bits)[0]) <= INT32_MAX:
                break
            if f <= FRAC_MIN:
                raise RangeOverflowError("layer %d channel %d: the int32 accumulator overflows for "
                                         "any weight scale with input %s" % (plan.index, r, plan.fin))
            f -= 1     # a coarser scale: halves sum|w_q|
            grow = 1
        raised += grow
        fr[r], mu[r], w_q[r], b_q[r] = f, mult, wr, br
    if raised:
        plan.notes.append("%d channels' weight scale raised for the int32 accumulator" % raised)
    _set_channel_weights(plan, w, w_q, b_q, fr, mu)


def _quantize_gemm(plan, w, b, method):
    """Weights and bias for plan.fin and plan.w.bits; lowers the weight F if the
    accumulator or the bias would overflow int32."""
    bits = plan.w.bits
    what = "layer %d weights" % plan.index
    f, options = choose_frac(w, float(np.abs(w).max()) if w.size else 0.0, bits, method, what,
                             weights=True)
    plan.w_sqnr = options
    while True:
        fmt = Fmt(bits, f)
        w_q = quantize_weights(w, fmt)
        scale = 2.0 ** (plan.fin.frac + f)
        b_q = round_half_away(b * scale)
        if np.abs(b_q).max(initial=0) <= INT32_MAX and \
                acc_bound(w_q, b_q, plan.fin.bits) <= INT32_MAX:
            break
        if f <= FRAC_MIN:
            raise RangeOverflowError("layer %d: the int32 accumulator overflows for any weight "
                                     "format with input %s" % (plan.index, plan.fin))
        f -= 1
    if f != options[method][0]:
        plan.notes.append("weights F lowered %d -> %d for the int32 accumulator"
                          % (options[method][0], f))
        energy = float(np.dot(w.ravel(), w.ravel()))
        e = quant_error(w, fmt, weights=True)
        plan.w_sqnr = dict(options, chosen=(f, math.inf if e == 0 else 10 * math.log10(energy / e)))
    plan.w = fmt
    plan.w_q = w_q
    plan.bias_q = b_q.astype(np.int32)


def _quantize_gemm_mult7(plan, w, b, method):
    """As "mult" with 8-bit weights in [-64, 64] (7 bits and a sign): any two of
    them sum to at most 128 in magnitude, so with unsigned 8-bit inputs a pair
    of products fits int16 and AVX2's vpmaddubsw takes them exactly (the
    avx2-8p kernel, docs/fixed-point.md): ONNX Runtime's reduce_range, for the
    same reason.  16-bit weights are as "mult"."""
    _quantize_gemm_mult(plan, w, b, method, top_code=64)


WEIGHT_SCALES = {"layer": _quantize_gemm, "channel": _quantize_gemm_channels,
                 "mult": _quantize_gemm_mult, "mult7": _quantize_gemm_mult7}
