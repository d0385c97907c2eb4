"""Darknet's xnor convolution ([convolutional] xnor=1) as a trainable module.

Forward is exactly Darknet's CPU semantics:
  - the layer's input is binarised: x > 0 -> +1, anything else (zeros too) -> -1;
  - each filter f is replaced by +s_f where w > 0 and -s_f elsewhere (w == 0
    gives -s_f), with s_f = mean |w| over the filter's c*size*size weights;
  - the binarised input is convolved with zero padding, so a padded tap adds 0;
  - then BN (or not), the bias and the activation, as for a float conv.
The stored (latent) weights stay real-valued; that is also what Darknet keeps
in its .weights file, so export writes them unchanged.

Backward uses straight-through estimators: the input sign passes the gradient
where |x| <= 1 (the "hard tanh" estimator) and the weight sign passes it
unchanged where |w| <= 1; s_f = mean |w| is differentiated normally.
"""

import torch

from weights_tools.torch.layers import Conv


class _SignSTE(torch.autograd.Function):
    """+1 where x > 0, -1 elsewhere; gradient passed where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return torch.where(x > 0, one, -one)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize_input(x):
    """Darknet's input binarisation (x > 0 -> +1, else -1) with a straight-through gradient."""
    return _SignSTE.apply(x)


def binarize_weights(w):
    """w > 0 -> +mean|w|, else -mean|w|, per filter (dim 0)."""
    scale = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return _SignSTE.apply(w) * scale


class XnorConv(Conv):
    """[convolutional] with xnor=1. Same arguments as Conv. Darknet's own xnor
    nets keep the first layer a float Conv: the image is not worth binarising."""

    xnor = True

    def conv_input(self, x):
        return binarize_input(x)

    def conv_weight(self):
        return binarize_weights(self.weight)
