"""python -m mdfi.detect IMAGE_OR_FOLDER... : YOLO detection like `darknet detect`.

A command-line module: it may import weights_tools (--int8); the runtime may not.
Importing it gives the function mdfi.detect, not this module (docs/architecture.md,
"Python packages"): the command line is run with `python -m` only.

Exit status: 0; 1 when the model could not be loaded or an image was skipped
(each reported on stderr; the others are still detected); 2 for bad arguments;
130 when interrupted (what was printed or written so far is complete)."""
import argparse
import contextlib
import json
import os
import sys
import time

from . import errors, folder
from .pipeline import default_out_path, resolve_model

EXIT_SKIPPED = 1
EXIT_INTERRUPTED = 130


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m mdfi.detect",
        description="Detect objects in images with a Darknet YOLO model. Without --cfg/"
                    "--weights the model is fetched (sha256-verified) into the cache. A folder "
                    "stands for its image files (" + " ".join(folder.IMAGE_EXTENSIONS) +
                    "), in sorted order.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--model", default="yolov3-tiny", help="known model name (default %(default)s)")
    p.add_argument("--cfg", help="Darknet .cfg (with --weights, instead of --model)")
    p.add_argument("--weights", help="Darknet .weights")
    p.add_argument("--names", help="class names file (default: the model's)")
    p.add_argument("--thresh", type=float, default=0.5)
    p.add_argument("--nms", type=float, default=0.45)
    p.add_argument("--threads", type=int, default=1, help="threads per network")
    p.add_argument("--kernel", help="force a kernel path: ref, avx2, avx512, neon")
    p.add_argument("--out", help="annotated image path (default predictions.jpg; with "
                   "several images predictions_<name>.jpg)")
    p.add_argument("--out-dir", metavar="D", help="write annotated images into D instead: "
                   "<name>.jpg, a folder's files keeping their place in it")
    p.add_argument("--no-out", action="store_true", help="do not write annotated images")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--json-out", metavar="FILE", help="also write the JSON lines to FILE, "
                   "each flushed as its image is done")
    p.add_argument("--recursive", "-r", action="store_true", help="look into sub-folders")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="worker processes, each with its own network (default 1: this process)")
    p.add_argument("--progress", action="store_true",
                   help="show the progress line on stderr even when it is not a terminal")
    p.add_argument("--int8", action="store_true",
                   help="run the model in 8-bit fixed point (docs/fixed-point.md); made on first "
                        "use by calibrating on the photos scikit-image ships, cached beside the "
                        "model")
    return p


def _annotated_paths(args, items):
    if args.no_out:
        return [None] * len(items)
    if args.out_dir:
        return folder.out_paths(items, args.out_dir)
    several = len(items) > 1
    return [args.out or default_out_path(it.path, several) for it in items]


def _print_result(res, args, json_out):
    rec = res["record"]
    line = json.dumps(rec)
    if json_out is not None:
        json_out.write(line + "\n")
        json_out.flush()
    if args.json:
        print(line, flush=True)
    else:
        print(f"{rec['image']}: Predicted in {res['ms']:.1f} milliseconds.")
        for d in rec["detections"]:
            print(f"{d['label']}: {d['prob'] * 100:.0f}%")
        sys.stdout.flush()
        if res["wrote"]:
            print(f"wrote {res['wrote']}", file=sys.stderr)


def _run(tasks, settings, args, json_out, show, tally):
    """Detects the tasks, printing each result in input order as it comes, the
    skipped files on stderr, and the progress line when `show`; counts into tally."""
    t0 = time.perf_counter()
    with contextlib.closing(folder.run(tasks, settings, args.jobs)) as results:
        for res in results:
            if "fatal" in res:
                raise errors.MdfiError(res["fatal"])
            if show:
                sys.stderr.write("\r\033[K")
            if "error" in res:
                tally["skipped"] += 1
                print(f"mdfi.detect: error: {res['error']}", file=sys.stderr)
            else:
                _print_result(res, args, json_out)
            tally["done"] += 1
            if show:
                sys.stderr.write(folder.progress_text(tally["done"], len(tasks),
                                                      time.perf_counter() - t0))
                sys.stderr.flush()
    if show:
        sys.stderr.write("\n")


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs takes 1 or more")
    items, empty = folder.expand(args.images, args.recursive)
    for d in empty:
        print(f"mdfi.detect: warning: no image files in {d}"
              + ("" if args.recursive else " (--recursive looks into sub-folders)"),
              file=sys.stderr)
    if not items:
        print("mdfi.detect: error: no images to detect", file=sys.stderr)
        return 1
    if len(items) > 1 and args.out:
        p.error("--out takes one image; several images are written as predictions_<name>.jpg "
                "(or into --out-dir)")
    if args.out and args.out_dir:
        p.error("--out names one file, --out-dir a folder: give one")
    show = args.progress or sys.stderr.isatty()
    json_out = None
    tally = {"done": 0, "skipped": 0}
    try:
        cfg, weights, names = resolve_model(args.model, args.cfg, args.weights, args.names)
        if args.int8:
            if args.cfg:
                p.error("--int8 quantizes a --model; for your own files run `python -m "
                        "weights_tools quantize` and pass its .cfg/.qweights as --cfg/--weights")
            from weights_tools.quantize import cached_int8
            cfg, weights = cached_int8(cfg, weights)
        settings = folder.Settings(os.fspath(cfg), os.fspath(weights),
                                   os.fspath(names) if names else None, args.threads,
                                   args.kernel, args.thresh, args.nms)
        tasks = list(zip((it.path for it in items), _annotated_paths(args, items)))
        if args.json_out:
            json_out = open(args.json_out, "w", encoding="utf-8")
        _run(tasks, settings, args, json_out, show, tally)
    except KeyboardInterrupt:
        print(f"\nmdfi.detect: interrupted after {tally['done']} of {len(items)} images",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (errors.MdfiError, ValueError, OSError) as exc:
        if show and tally["done"]:
            sys.stderr.write("\n")
        print(f"mdfi.detect: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if json_out is not None:
            json_out.close()
    if tally["skipped"]:
        if len(items) > 1:
            print(f"mdfi.detect: {tally['skipped']} of {len(items)} images skipped",
                  file=sys.stderr)
        return EXIT_SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    # `import mdfi.detect` binds mdfi.detect to what sys.modules holds once this
    # body has run: the function, so mdfi.detect(...) keeps working
    from .pipeline import detect as _detect
    sys.modules[__name__] = _detect
