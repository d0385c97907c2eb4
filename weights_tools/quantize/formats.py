"""Format maths: fractional lengths, rounding, multipliers (docs/fixed-point.md)."""
import math

import numpy as np

from weights_tools.fixed_ref import FRAC_MAX, FRAC_MIN, Fmt, dequantize, quantize_float

INT32_MAX = (1 << 31) - 1


class RangeOverflowError(ValueError):
    """A range that no format of the chosen width can hold."""


def round_half_away(x):
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_weights(w, fmt):
    q = round_half_away(np.asarray(w, dtype=np.float64) * 2.0 ** fmt.frac)
    return np.clip(q, fmt.qmin, fmt.qmax).astype(fmt.dtype)


def frac_maxabs(max_abs, bits, what="range"):
    """Largest F (within FRAC_MIN..FRAC_MAX) with round(max_abs * 2^F) <= 2^(bits-1) - 1."""
    qmax = (1 << (bits - 1)) - 1
    if not math.isfinite(max_abs):
        raise RangeOverflowError("%s is not finite (inf/NaN in the float network?)" % what)
    if max_abs <= 0:
        return min(FRAC_MAX, bits - 1)
    f = math.floor(math.log2((qmax + 0.5) / max_abs)) + 1
    while f > FRAC_MIN and math.floor(max_abs * 2.0 ** f + 0.5) > qmax:
        f -= 1
    if math.floor(max_abs * 2.0 ** f + 0.5) > qmax:
        raise RangeOverflowError("%s: max |value| %.4g overflows %d-bit fixed point even with "
                                 "fractional length %d (the smallest allowed)"
                                 % (what, max_abs, bits, FRAC_MIN))
    return min(f, FRAC_MAX)


def quant_error(x, fmt, weights=False):
    """Sum of squared errors of quantizing x into fmt."""
    x = np.asarray(x, dtype=np.float64)
    if weights:
        back = quantize_weights(x, fmt).astype(np.float64) * fmt.step
    else:
        back = dequantize(quantize_float(x, fmt), fmt.frac).astype(np.float64)
    d = x - back
    return float(np.dot(d.ravel(), d.ravel()))


def choose_frac(x, max_abs, bits, method, what, weights=False):
    """(chosen F, {method: (F, SQNR dB)}) for data x (a sample) of known max |x|."""
    f0 = frac_maxabs(max_abs, bits, what)
    x = np.asarray(x, dtype=np.float64).ravel()
    energy = float(np.dot(x, x))

    def sq(f):
        e = quant_error(x, Fmt(bits, f), weights)
        return math.inf if e == 0 else (10 * math.log10(energy / e) if energy else -math.inf)
    options = {"maxabs": (f0, sq(f0))}
    best = (f0, options["maxabs"][1])
    for f in range(f0 + 1, min(FRAC_MAX, f0 + 3) + 1):
        s = sq(f)
        if s > best[1] + 1e-9:
            best = (f, s)
    options["mse"] = best
    return options[method][0], options


MULT_BITS = 15   # multipliers are 2^14 .. 2^15-1: a 16-bit signed operand in hardware


def mult_scale(scale):
    """(mult, frac) with mult * 2^-frac ~ scale, mult in [2^14, 2^15) and
    frac <= FRAC_MAX (smaller multipliers below that); (1, FRAC_MAX) for 0."""
    if not scale > 0:
        return 1, FRAC_MAX
    e = math.floor(math.log2(scale))
    f = MULT_BITS - 1 - e
    m = int(round_half_away(scale * 2.0 ** f))
    if m >= 1 << MULT_BITS:
        m, f = m >> 1, f - 1
    if f > FRAC_MAX:
        f = FRAC_MAX
        m = max(1, int(round_half_away(scale * 2.0 ** f)))
    if f < FRAC_MIN:
        raise RangeOverflowError("weight scale %.4g needs a fractional length below %d"
                                 % (scale, FRAC_MIN))
    return m, f
