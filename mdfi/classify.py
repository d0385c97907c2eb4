"""python -m mdfi.classify CFG WEIGHTS IMAGE... : top classes like `darknet classify`.

Importing it gives the function mdfi.classify, as for mdfi.detect."""
import argparse
import json
import sys

from . import errors
from .pipeline import classify


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mdfi.classify",
                                description="Classify images with a Darknet classifier.")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--names", help="class names file")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernel")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        for path in args.images:
            top = classify(path, args.cfg, args.weights, args.names, args.top, args.threads,
                           args.kernel)
            if args.json:
                print(json.dumps({"image": path, "top": [
                    {"class_id": i, "label": label, "prob": prob} for i, label, prob in top]}))
            else:
                print(f"{path}:")
                for _, label, prob in top:
                    print(f"{prob * 100:5.2f}%: {label}")
    except errors.MdfiError as exc:
        print(f"mdfi.classify: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__] = classify   # see mdfi/detect.py
