"""python -m mdfi.detect IMAGE... : YOLO detection like `darknet detect`.

A command-line module: it may import weights_tools (--int8); the runtime may not.
Importing it gives the function mdfi.detect, not this module (docs/architecture.md,
"Python packages"): the command line is run with `python -m` only."""
import argparse
import json
import sys
import time

from . import errors
from .draw import annotate
from .image import load
from .pipeline import Detector, default_out_path, resolve_model


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m mdfi.detect",
        description="Detect objects in images with a Darknet YOLO model. Without --cfg/"
                    "--weights the model is fetched (sha256-verified) into the cache.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", default="yolov3-tiny", help="known model name (default %(default)s)")
    p.add_argument("--cfg", help="Darknet .cfg (with --weights, instead of --model)")
    p.add_argument("--weights", help="Darknet .weights")
    p.add_argument("--names", help="class names file (default: the model's)")
    p.add_argument("--thresh", type=float, default=0.5)
    p.add_argument("--nms", type=float, default=0.45)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernel", help="force a kernel path: ref, avx2, avx512, neon")
    p.add_argument("--out", help="annotated image path (default predictions.jpg; with "
                   "several images predictions_<name>.jpg)")
    p.add_argument("--no-out", action="store_true", help="do not write annotated images")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--int8", action="store_true",
                   help="run the model in 8-bit fixed point (docs/fixed-point.md); made on first "
                        "use by calibrating on the photos scikit-image ships, cached beside the "
                        "model")
    args = p.parse_args(argv)
    if len(args.images) > 1 and args.out:
        p.error("--out takes one image; several images are written as predictions_<name>.jpg")
    try:
        cfg, weights, names = resolve_model(args.model, args.cfg, args.weights, args.names)
        if args.int8:
            if args.cfg:
                p.error("--int8 quantizes a --model; for your own files run `python -m "
                        "weights_tools quantize` and pass its .cfg/.qweights as --cfg/--weights")
            from weights_tools.quantize import cached_int8
            cfg, weights = cached_int8(cfg, weights)
        with Detector(cfg, weights, names, args.threads, args.kernel) as det:
            for path in args.images:
                img = load(path)
                t0 = time.perf_counter()
                _, dets = det.run(img, args.thresh, args.nms)
                ms = (time.perf_counter() - t0) * 1e3
                if args.json:
                    print(json.dumps({"image": path, "width": img.width, "height": img.height,
                                      "decoder": img.decoder,
                                      "detections": [d.to_json() for d in dets]}))
                else:
                    print(f"{path}: Predicted in {ms:.1f} milliseconds.")
                    for d in dets:
                        print(f"{d.label}: {d.prob * 100:.0f}%")
                if not args.no_out:
                    out = args.out or default_out_path(path, len(args.images) > 1)
                    annotate(path, dets, out)
                    if not args.json:
                        print(f"wrote {out}", file=sys.stderr)
    except (errors.MdfiError, ValueError) as exc:
        print(f"mdfi.detect: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    # `import mdfi.detect` binds mdfi.detect to what sys.modules holds once this
    # body has run: the function, so mdfi.detect(...) keeps working
    from .pipeline import detect as _detect
    sys.modules[__name__] = _detect
