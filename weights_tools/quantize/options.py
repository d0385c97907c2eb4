"""The options of one quantize() run: the command line's flags, as one value."""
import dataclasses

from weights_tools.quantize.weights import WEIGHT_SCALES


@dataclasses.dataclass(frozen=True)
class QuantizeOptions:
    bits: int = 8                 # width of weights and activations: 8 or 16
    act_bits: int = None          # 16 with bits 8: 16-bit input, 8-bit weights in every layer
    mixed: bool = False           # raise the layers where 8 bits cost most to 16 (measured)
    mixed_budget: float = 0.5     # ... while they take at most this fraction of all MACs
    mixed_size: float = 0.30      # ... and .qweights stays within this fraction of .weights
    mixed_layers: list = None     # raise exactly these layers instead of measuring
    narrow_layers: list = None    # of mixed_layers, those that keep 8-bit weights
    method: str = "maxabs"        # fractional lengths: "maxabs" or "mse"
    weight_scale: str = None      # "layer" (default), "channel", "mult", "mult-pair"
    per_channel: bool = False     # the same as weight_scale="channel"
    head_bits: int = 16           # output width of layers read only by float heads
    gain: bool = True             # "mult"/"mult-pair": correct each channel's gain
    bias_images: int = 8          # calibration images for the bias correction (0: none)
    samples: int = 200_000        # calibration values kept per tensor
    check_images: object = None   # images for the SQNR column (None: 4 calibration images,
                                  # False: no check)
    threads: int = 1
    engine: str = "auto"          # the SQNR check's quantized engine: "auto", "c", "ref"
    quiet: bool = False           # no progress lines
    report: bool = True           # print the table

    def checked(self):
        """These options with weight_scale decided; ValueError where they contradict."""
        weight_scale = self.weight_scale
        if weight_scale is None:
            weight_scale = "channel" if self.per_channel else "layer"
        elif self.per_channel and weight_scale != "channel":
            raise ValueError("--per-channel contradicts --weight-scale %s" % weight_scale)
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError("--weight-scale must be one of %s, not %r"
                             % (", ".join(WEIGHT_SCALES), weight_scale))
        if self.bits not in (8, 16):
            raise ValueError("--bits must be 8 or 16, not %d" % self.bits)
        if self.method not in ("mse", "maxabs"):
            raise ValueError("--method must be mse or maxabs")
        if not self.mixed_budget > 0 or not self.mixed_size > 0:
            raise ValueError("--mixed-budget and --mixed-size must be positive fractions, got "
                             "%r and %r" % (self.mixed_budget, self.mixed_size))
        return dataclasses.replace(self, weight_scale=weight_scale)
