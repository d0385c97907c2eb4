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


def _pair_sums(row):
    """|row[2i]| + |row[2i+1]| of each pair of adjacent values (an odd last one alone)."""
    a = np.abs(np.asarray(row, np.float64))
    if a.size % 2:
        a = np.append(a, 0.0)
    return a[0::2] + a[1::2]


def _fit_pairs(q, pair_max):
    """q (a row of integer codes) with every adjacent pair's |q0| + |q1| <= pair_max:
    where rounding took a pair past it, its larger member moves toward zero."""
    q = q.astype(np.int64).copy()
    n = q.size - q.size % 2
    a, b = q[0:n:2], q[1:n:2]
    over = np.abs(a) + np.abs(b) - pair_max
    fix = over > 0
    if fix.any():
        big_a = np.abs(a) >= np.abs(b)
        da = np.where(fix & big_a, over, 0)
        db = np.where(fix & ~big_a, over, 0)
        q[0:n:2] = a - np.sign(a) * da
        q[1:n:2] = b - np.sign(b) * db
    return q


def _quantize_gemm_mult(plan, w, b, method, pair_max=None):
    """Per-channel multiplier + shift (fixed_w=BITS:mul): channel m's weights
    are w_q * mult[m] * 2^-w_frac[m], so its largest weight maps to the top
    code (max-abs) or to the scale with the least squared error among
    max-abs * 2^(-j/4), j = 0..8 (mse).  pair_max ("mult-pair": 128): 8-bit
    weights whose adjacent pairs have |w0| + |w1| <= pair_max; the largest
    pair maps to it (one rounding step under it), so a channel keeps more
    than 7 bits where its large weights have small neighbours."""
    bits = plan.w.bits
    qmax = (1 << (bits - 1)) - 1
    qmin = -qmax - 1
    pair_max = pair_max if bits == 8 else None
    m_out = w.shape[0]
    fr = np.zeros(m_out, np.int64)
    mu = np.ones(m_out, np.int64)
    w_q = np.zeros(w.shape, Fmt(bits, 0).dtype)
    b_q = np.zeros(m_out, np.int64)
    raised = 0

    def quant(row, mult, f):
        q = np.clip(round_half_away(row * 2.0 ** f / mult), qmin, qmax)
        return _fit_pairs(q, pair_max) if pair_max else q
    for r in range(m_out):
        row = w[r].astype(np.float64)
        top = float(np.abs(row).max()) if row.size else 0.0
        scales = [top / qmax]
        if pair_max and row.size:
            scales = [max(top / qmax, float(_pair_sums(row).max()) / (pair_max - 1))]
        elif method == "mse" and top > 0:
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


def _quantize_gemm_mult_pair(plan, w, b, method):
    """As "mult" with 8-bit weights whose adjacent pairs (k = 2i, 2i + 1 of a
    row) sum to at most 128 in magnitude, so that with unsigned 8-bit inputs a
    pair of products fits int16 and AVX2's vpmaddubsw takes them exactly (the
    avx2-8p kernel, docs/fixed-point.md).  ONNX Runtime's reduce_range keeps
    every weight within 7 bits for the same reason; bounding pairs instead
    keeps more resolution.  16-bit weights are as "mult"."""
    _quantize_gemm_mult(plan, w, b, method, pair_max=128)


WEIGHT_SCALES = {"layer": _quantize_gemm, "channel": _quantize_gemm_channels,
                 "mult": _quantize_gemm_mult, "mult-pair": _quantize_gemm_mult_pair}
