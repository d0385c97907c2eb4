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
