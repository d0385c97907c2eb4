"""`python -m weights_tools quantize`: its arguments and their run."""
import sys

from weights_tools import qweights as qwf
from weights_tools.calibrate import CalibrationError, dataset_inputs
from weights_tools.darknet_cfg import CfgError
from weights_tools.quantize.formats import RangeOverflowError
from weights_tools.quantize.run import quantize
from weights_tools.quantize.weights import WEIGHT_SCALES


def add_arguments(p):
    p.add_argument("files", nargs="*", metavar="CFG WEIGHTS",
                   help="the Darknet .cfg and float .weights (or --cfg and --weights)")
    p.add_argument("--cfg", help="Darknet .cfg")
    p.add_argument("--weights", help="Darknet float .weights")
    p.add_argument("--calib-dataset", metavar="NAME",
                   help="calibrate on the training split of an mdfi.datasets dataset "
                        "(fashion-mnist, mnist, digits, cifar10), beside or instead of --calib")
    p.add_argument("--calib-count", type=int, default=500,
                   help="with --calib-dataset: this many training images, spread over the "
                        "split (500)")
    p.add_argument("--dataset-path", metavar="PATH",
                   help="with --calib-dataset: the IDX directory (fashion-mnist) or the "
                        "tarball (cifar10)")
    p.add_argument("--calib", nargs="+", metavar="IMAGES_OR_DIR",
                   help="calibration images or folders of images; .npy: letterboxed inputs, "
                        "one (C x H x W) or a batch (N x C x H x W float32, e.g. training "
                        "images of a classifier)")
    p.add_argument("--bits", type=int, default=8, choices=(8, 16),
                   help="width of weights and activations (default 8)")
    p.add_argument("--act-bits", type=int, choices=(8, 16),
                   help="16 with --bits 8: 16-bit activations and 8-bit weights in every layer "
                        "(the file stays 8-bit)")
    p.add_argument("--mixed", action="store_true",
                   help="raise the convolutions where 8 bits cost most to 16 bits")
    p.add_argument("--mixed-budget", type=float, default=0.5,
                   help="with --mixed: at most this fraction of all MACs at 16 bits (0.5)")
    p.add_argument("--mixed-size", type=float, default=0.30,
                   help="with --mixed: the .qweights file at most this fraction of the float "
                        ".weights file (0.30)")
    p.add_argument("--mixed-layers", metavar="I,J,...",
                   type=lambda s: [int(v) for v in s.split(",") if v.strip()],
                   help="raise exactly these layers to 16 bits (instead of measuring)")
    p.add_argument("--mixed-narrow", metavar="I,J,...",
                   type=lambda s: [int(v) for v in s.split(",") if v.strip()],
                   help="of --mixed-layers, these keep 8-bit weights (16-bit input)")
    p.add_argument("--method", choices=("mse", "maxabs"), default="maxabs",
                   help="fractional length choice (default maxabs; both are reported)")
    p.add_argument("--weight-scale", choices=tuple(WEIGHT_SCALES), default=None,
                   help="weight scales: one power of two per layer (layer, the default), one "
                        "per output channel (channel: fixed_w=B:ch), a multiplier and a "
                        "shift per output channel (mult: fixed_w=B:mul), or the same with "
                        "8-bit weights whose adjacent pairs sum to at most 128 in magnitude "
                        "(mult-pair: AVX2's faster 8-bit kernel takes "
                        "them)")
    p.add_argument("--per-channel", action="store_true",
                   help="the same as --weight-scale channel")
    p.add_argument("--bias-images", type=int, default=8,
                   help="calibration images for the bias correction (0: none; default 8)")
    p.add_argument("--head-bits", type=int, choices=(8, 16), default=16,
                   help="output width of layers read only by [yolo]/[softmax] (16)")
    p.add_argument("--check", nargs="*", metavar="IMAGE",
                   help="images for the end-to-end SQNR column (default: the first 4 "
                        "calibration images; --check with nothing: skip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("-o", "--out", required=True,
                   help="output prefix: writes OUT.cfg and OUT.qweights")


def _files(args):
    """(cfg, weights) from the positional files or --cfg / --weights."""
    if args.files and (args.cfg or args.weights):
        raise ValueError("give the cfg and weights either as CFG WEIGHTS or with --cfg and "
                         "--weights, not both")
    if args.files:
        if len(args.files) != 2:
            raise ValueError("expected CFG WEIGHTS, got %d file(s): %s"
                             % (len(args.files), " ".join(args.files)))
        return args.files
    if not args.cfg or not args.weights:
        raise ValueError("the cfg and the float weights are needed: CFG WEIGHTS, or --cfg and "
                         "--weights")
    return args.cfg, args.weights


def run_from_args(args):
    from mdfi import errors
    check = args.check
    if check is not None and len(check) == 0:
        check = False
    try:
        cfg, weights = _files(args)
        calib = list(args.calib or [])
        if args.calib_dataset:
            calib += dataset_inputs(args.calib_dataset, args.calib_count, args.dataset_path)
        if not calib:
            raise ValueError("no calibration inputs: give --calib or --calib-dataset")
        quantize(cfg, weights, calib, args.out, bits=args.bits, mixed=args.mixed,
                 method=args.method, head_bits=args.head_bits, mixed_budget=args.mixed_budget,
                 mixed_size=args.mixed_size,
                 check_images=check, threads=args.threads, quiet=args.quiet,
                 per_channel=args.per_channel, weight_scale=args.weight_scale,
                 bias_images=args.bias_images,
                 mixed_layers=args.mixed_layers, narrow_layers=args.mixed_narrow,
                 act_bits=args.act_bits)
    except (CfgError, CalibrationError, RangeOverflowError, qwf.QWeightsError, ValueError,
            OSError, errors.MdfiError) as e:
        print("weights_tools quantize: error: %s" % e, file=sys.stderr)
        return 1
    return 0
