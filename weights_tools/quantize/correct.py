"""Gain and bias correction against the float network, layer by layer."""
import numpy as np

from weights_tools import qweights as qwf
from weights_tools.calibrate import gain_positions
from weights_tools.fixed_ref import FRAC_MIN, FixedNet
from weights_tools.fixed_ref import Output as FixedOutput
from weights_tools.quantize.formats import INT32_MAX, round_half_away
from weights_tools.quantize.report import progress_line
from weights_tools.quantize.weights import acc_bound


GAIN_LIMITS = (0.8, 1.25)   # a per-channel gain outside this is noise, not shrinkage
GAIN_MIN_SAMPLES = 256      # values per channel a slope is measured on (a connected layer
                            # has one per image: its gains are left alone)


def _correct_gain(p, i, acc, float_pre):
    """fixed_w=B:mul layers: per output channel, the slope of the quantized
    pre-activation against the float one (least squares over the calibration
    inputs) is divided out of the multiplier, so quantization does not shrink
    the channel's signal.  Updates p.mults and p.w_fracs (a multiplier that
    outgrows 15 bits is halved with its fraction)."""
    s = p.acc_scale()
    fs, qs = [], []
    for a, f in zip(acc, float_pre):
        a = a.reshape(a.shape[0], -1)
        fs.append(f[i].astype(np.float64))
        qs.append(a[:, gain_positions(a.shape[1], i)] * 2.0 ** -s[:, None])
    f = np.concatenate(fs, axis=1)
    q = np.concatenate(qs, axis=1)
    if f.shape[1] < GAIN_MIN_SAMPLES:
        return
    fc = f - f.mean(axis=1, keepdims=True)
    qc = q - q.mean(axis=1, keepdims=True)
    num = (fc * qc).sum(axis=1)
    den = (fc * fc).sum(axis=1)
    gain = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    gain = np.where((gain >= GAIN_LIMITS[0]) & (gain <= GAIN_LIMITS[1]), gain, 1.0)
    mult = np.maximum(round_half_away(p.mults / gain).astype(np.int64), 1)
    frac = p.w_fracs.astype(np.int64)
    big = (mult > qwf.MULT_MAX) & (frac > FRAC_MIN)
    mult[big] = round_half_away(mult[big] / 2.0)
    frac[big] -= 1
    mult = np.minimum(mult, qwf.MULT_MAX)   # only at the smallest fraction
    p.mults = mult.astype(np.int32)
    p.w_fracs = frac.astype(np.int8)


def correct_biases(layers, plans, sections_q, qw, calib, inputs, quiet=True, float_pre=None):
    """Empirical bias correction, layer by layer in network order.

    The quantized network (bit-exact reference) runs on the calibration
    inputs; at each [convolutional]/[connected] layer with a leaky or linear
    activation the mean pre-activation of every output channel is compared
    with the float network's (calib.pre_means) and the integer bias moves by
    the difference, so quantization errors do not add up to a drift of the
    channel means.  With float_pre (calib.pre_samples) and per-channel
    multipliers, each channel's gain is corrected first (_correct_gain).
    Later layers see the corrected outputs.  Returns the number of layers
    corrected."""
    net = FixedNet(sections_q, qw)
    outs = [[] for _ in inputs]
    done = 0
    for i, spec in enumerate(net.specs):
        p = plans[i]
        acc = [None] * len(inputs)
        gain = float_pre is not None and p.mults is not None and i in float_pre[0]
        if (i in calib.pre_means or gain) and p.fin is not None:
            for k, x in enumerate(inputs):
                ins = [FixedOutput(f=x) if j < 0 else outs[k][j] for j in spec["inputs"]]
                acc[k] = net.accumulate(i, ins)
        if gain:
            _correct_gain(p, i, acc, float_pre)
            spec["mults"], spec["w_fracs"] = p.mults.astype(np.int64), p.w_fracs.astype(np.int64)
            qw.records[i].mults, qw.records[i].w_fracs = p.mults, p.w_fracs
        if i in calib.pre_means and p.fin is not None:
            s = p.acc_scale()
            qmean = sum(a.reshape(a.shape[0], -1).mean(axis=1) for a in acc)
            qmean = qmean / len(inputs) * 2.0 ** -s
            dq = round_half_away((calib.pre_means[i] - qmean) * 2.0 ** s).astype(np.int64)
            new = p.bias_q.astype(np.int64) + dq
            if np.abs(new).max() <= INT32_MAX and \
                    acc_bound(p.w_q, new, p.fin.bits) <= INT32_MAX:
                p.bias_q = new.astype(np.int32)
                spec["bias"] = p.bias_q
                qw.records[i].bias = p.bias_q
                acc = [a + dq[:, None, None] if a is not None else None for a in acc]
                done += 1
        for k, x in enumerate(inputs):
            ins = [FixedOutput(f=x) if j < 0 else outs[k][j] for j in spec["inputs"]]
            outs[k].append(net.run_layer(i, ins, acc[k]))
        if not quiet and p.fin is not None:
            progress_line("bias correction: layer %d" % i, quiet)
    return done
