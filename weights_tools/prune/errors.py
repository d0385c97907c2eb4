"""PruneError, importable without PyTorch (the command line parses before it needs torch)."""


class PruneError(ValueError):
    """A model, target or option the pruner cannot work with; the message names the layer."""
