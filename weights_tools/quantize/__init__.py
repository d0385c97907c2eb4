"""Darknet float weights -> MDFI fixed point: formats, quantized weights, annotated cfg.

    python -m weights_tools quantize C W --calib IMAGES_OR_DIR_OR_NPY
                                     [--bits 8] [--mixed] -o OUT

(or --cfg C --weights W) writes OUT.cfg (the cfg with fixed_in/fixed_w/fixed_out
keys) and OUT.qweights.  A network with [exit] layers is calibrated with every
branch running; its branches are quantized like the main path, each [exit]
stays a float head whose predictors are a kind-3 record of float32 arrays,
and the run reports how often the int8 model takes the float model's exits.
The pipeline itself is specified in docs/fixed-point.md; weights_tools/fixed_ref.py
is its bit-exact reference.

How formats are chosen
  * BN is folded into weights and bias (float64) before anything is quantized.
  * Every tensor (network input, each layer output) and every layer's weights
    get a fractional length F from their range: "maxabs" takes the largest F
    that does not clip the largest |value|; "mse" tries maxabs .. maxabs+3
    and keeps the one with the smallest squared error on the calibration
    sample (it may clip rare outliers).  Both are reported; --method picks,
    maxabs by default: mse gains SQNR but clips exactly the strong activations
    of confident detections, and loses more of them.
  * --per-channel: one power-of-two weight fraction per output channel
    (still shifts only: the requantization shift is per channel).
  * maxpool/upsample/dropout keep their input's format (no requantization).
  * Layers read only by float heads ([yolo], [softmax]) output --head-bits
    (16 by default): the head dequantizes them anyway and they are tiny.
  * 16-bit convolutions keep the int32 accumulator safe: their weight F is
    lowered until sum|w_q| * 2^15 + |bias_q| < 2^31 for every output channel.
  * Bias correction (--bias-images): layer by layer, the integer bias moves so
    that each channel's mean pre-activation in the quantized network (the
    bit-exact reference, on calibration images) equals the float network's.
  * --mixed raises to 16 bits (weights and input) the convolutions where
    8 bits cost most: each is raised alone and the noise it removes at the
    heads' inputs is measured (C engine, calibration images); layers are
    taken by noise removed per multiply-accumulate while they fit in
    --mixed-budget of all MACs (speed) and --mixed-size of the float file (size).

The package, one concept a module:

    formats   format maths (fractional lengths, rounding, multipliers)
    graph     what the quantizer asks of the layer graph
    weights   a GEMM layer's integer weights and bias
    plan      the formats of every tensor and layer (make_plan)
    mixed     --mixed: which layers get 16 bits
    correct   gain and bias correction
    write     the annotated cfg and the .qweights records
    report    SQNR against the float network, the table
    options   QuantizeOptions, the options of one run
    run       quantize(), the entry point
    cli       the command line's arguments
    int8      the cached --int8 model of mdfi.detect
"""
from weights_tools.quantize.cli import add_arguments, run_from_args
from weights_tools.quantize.formats import RangeOverflowError
from weights_tools.quantize.graph import gemm_macs, head_inputs
from weights_tools.quantize.int8 import (INT8_CACHE_TAG, INT8_RECIPE, cached_int8,
                                         calibration_photos)
from weights_tools.quantize.options import QuantizeOptions
from weights_tools.quantize.plan import LayerPlan, make_plan
from weights_tools.quantize.report import ExitAgreement, compare, exit_agreement
from weights_tools.quantize.run import quantize

__all__ = ["INT8_CACHE_TAG", "INT8_RECIPE", "ExitAgreement", "LayerPlan", "QuantizeOptions",
           "RangeOverflowError", "add_arguments", "cached_int8", "calibration_photos", "compare",
           "exit_agreement", "gemm_macs", "head_inputs", "make_plan", "quantize", "run_from_args"]
