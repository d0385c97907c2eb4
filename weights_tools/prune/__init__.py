"""Channel pruning that makes Darknet models physically smaller (docs/pruning.md).

    from weights_tools.prune.run import prune                # needs PyTorch
    result = prune(model, task, "c2s2", target_flops=0.33)

graph    which channels can go together (groups) and who reads them
rewrite  a smaller model: channels removed from producers and every reader
gates    C2S2's pruning layer (real + binary forms, straight-through)
costs    per-layer FLOPs or MDFI-measured ms, and the cost of kept fractions
rates    the cost-aware per-layer rates for a target
methods  C2S2, L1-norm, network slimming under one training budget
tasks    the training data: labelled (cross-entropy) or a teacher (distillation)
"""

from weights_tools.prune.errors import PruneError

__all__ = ["PruneError"]   # the rest needs PyTorch: import weights_tools.prune.run etc.
