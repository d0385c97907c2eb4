"""python -m mdfi.classify CFG WEIGHTS IMAGE... : top classes like `darknet classify`.

Importing it gives the function mdfi.classify, as for mdfi.detect."""
import argparse
import json
import sys

from . import errors
from .pipeline import classify, classify_result


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
    p.add_argument("--policy", help="early-exit policy: none, all, branchy, "
                   "entropy-predictor or exit-predictor (networks with [exit] layers)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        for path in args.images:
            top, ex = classify_result(path, args.cfg, args.weights, args.names, args.top,
                                      args.threads, args.kernel, args.policy)
            if args.json:
                rec = {"image": path, "top": [{"class_id": i, "label": label, "prob": prob}
                                              for i, label, prob in top]}
                if ex is not None:
                    rec.update(exit=ex.exit, exit_layer=ex.layer, entropy=ex.entropy,
                               macs=ex.macs)
                print(json.dumps(rec))
            else:
                print(f"{path}:")
                for _, label, prob in top:
                    print(f"{prob * 100:5.2f}%: {label}")
                if ex is not None:
                    where = f"exit {ex.exit} (layer {ex.layer})" if ex.exit >= 0 else \
                        "main path end"
                    print(f"{where}: entropy {ex.entropy:.4f}, {ex.macs / 1e6:.3f} M MACs")
    except errors.MdfiError as exc:
        print(f"mdfi.classify: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__] = classify   # see mdfi/detect.py
