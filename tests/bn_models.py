"""Shared by the pruning tests: a Darknet model's BN statistics, scales and
biases set to seeded non-trivial values, as a trained model has them."""
import torch


def randomize_bn(model, seed=1, scales=True, bias_range=(-0.1, 0.1)):
    """In place; returns the model in eval mode.  scales=False keeps the BN
    scales (gamma); bias_range bounds the layer biases."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = bias_range
    with torch.no_grad():
        for layer in model.layers:
            if getattr(layer, "bn", None) is not None:
                n = layer.bn.num_features
                layer.bn.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                layer.bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if scales:
                    layer.bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
                layer.bias.copy_(torch.rand(n, generator=g) * (hi - lo) + lo)
    return model.eval()
