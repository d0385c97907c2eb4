"""Darknet's float forward, in numpy, for layers whose C side is still to come.

Each function computes exactly what Darknet's float code computes (the same
float32 products in the same order), so a C layer can be checked against it.
"""
import numpy as np

from weights_tools.binary_ref import activate

F32 = np.float32


def scale_channels(prev, src, scale_wh=False, activation="linear"):
    """[scale_channels] (AlexeyAB's darknet, scale_channels_layer.c): src [C,H,W]
    (the layer named by from=) scaled by prev, the previous layer's output:
    out[c,y,x] = prev[c] * src[c,y,x] (prev C x 1 x 1), or with scale_wh
    out[c,y,x] = prev[0,y,x] * src[c,y,x] (prev 1 x H x W); then the activation."""
    src = np.asarray(src, F32)
    prev = np.asarray(prev, F32)
    c, h, w = src.shape
    if scale_wh:
        if prev.shape != (1, h, w):
            raise ValueError("scale_wh: the previous output is %s, not (1, %d, %d)"
                             % (prev.shape, h, w))
        out = prev * src               # broadcast over channels: float32 products
    else:
        if prev.size != c:
            raise ValueError("the previous output has %d values, not %d channels" % (prev.size, c))
        out = prev.reshape(c, 1, 1) * src
    return activate(out.astype(F32), activation)


def adaptive_avg_pool(x, pool):
    """The [exit] predictors' pooling (docs/early-exit.md), as PyTorch's
    adaptive_avg_pool2d: x [C,H,W] -> [C,pool,pool]; cell i of an axis of
    length n averages [floor(i*n/pool), ceil((i+1)*n/pool)). The sum runs in
    float32 row by row, then one division by the cell's size."""
    x = np.asarray(x, F32)
    c, h, w = x.shape
    out = np.empty((c, pool, pool), F32)
    for i in range(pool):
        y0, y1 = (i * h) // pool, -(-((i + 1) * h) // pool)
        for j in range(pool):
            x0, x1 = (j * w) // pool, -(-((j + 1) * w) // pool)
            acc = np.zeros(c, F32)
            for yy in range(y0, y1):
                for xx in range(x0, x1):
                    acc = (acc + x[:, yy, xx]).astype(F32)
            out[:, i, j] = acc / F32((y1 - y0) * (x1 - x0))
    return out


def _dense(w, b, f):
    """b + W f with a float32 sum over the inputs in order (a [connected] row)."""
    acc = np.asarray(b, F32).copy()
    for k in range(w.shape[1]):
        acc = (acc + w[:, k] * f[k]).astype(F32)
    return acc


def exit_predictor(point, arrays, pool, hidden, name):
    """One [exit] predictor's value in [0, 1] for the branch point [C,H,W].
    arrays: the [exit]'s arrays by name ('entropy_b1', 'entropy_W1', ... or
    'exit_b', 'exit_W' with hidden=0), as weights_tools reads them."""
    f = adaptive_avg_pool(point, pool).reshape(-1)
    a = {k[len(name) + 1:]: np.asarray(v, F32) for k, v in arrays.items() if k.startswith(name + "_")}
    if hidden:
        h = np.maximum(_dense(a["W1"], a["b1"], f), F32(0))
        z = _dense(a["W2"], a["b2"], h)[0]
    else:
        z = _dense(a["W"], a["b"], f)[0]
    return F32(1) / (F32(1) + np.exp(-z, dtype=F32))


def normalized_entropy(p):
    """-sum p_i ln p_i / ln K of a softmax output, in double from the float
    values, in index order; terms with p_i = 0 are 0 (an [exit]'s decision)."""
    p = np.asarray(p, F32).reshape(-1)
    acc = 0.0
    for v in p.astype(np.float64):
        if v > 0:
            acc += v * np.log(v)
    return F32(-acc / np.log(len(p)))
