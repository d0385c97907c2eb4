"""Prune yolov3-tiny without labels: the float model teaches, shipped photos are the data.

    python examples/prune_yolo.py                                  # the recorded run
    python examples/prune_yolo.py --targets 0.66 --method c2s2 --select-steps 2 --tune-steps 2 \\
        --final-steps 2 --train-inputs 16 --val-inputs 4 --out /tmp/py --record /tmp/py/r.json

Data.  The photos that scikit-image and scikit-learn ship (weights_tools.evaluate's
lists) except the held-back ones, turned into --train-inputs + --val-inputs
inputs by random scaled crops, flips and colour jitter, letterboxed.  No
labels: the unpruned model is the teacher (weights_tools.prune.tasks.TeacherTask,
loss "yolo": objectness everywhere, box and class scores where the teacher
sees an object; batch normalization keeps the teacher's statistics).  The
validation inputs (other crops of the same photos) are what the pruner scores
on; nothing is chosen on the held-back photos.

Held back (never pruned on): Darknet's four golden photos (dog, eagle, horses,
person) and scikit-image's coffee.png, motorcycle_left.png and
motorcycle_right.png (a stereo pair: both or neither).

Resolution.  --res (default 416) is the size the pruner trains at.  A smaller
one is cheaper (256: (13/8)^2 = 2.6x fewer FLOPs; every layer's FLOPs scale
alike, so FLOPs fractions are the same): the network is fully
convolutional, so the pruned, fine-tuned weights are loaded into the pruned
cfg with width=height=416, and the script checks that this 416 model has
exactly the channels of `prune_model(float 416 model, keep)` and that MDFI's
416 output equals PyTorch's.  But it does not pay: in a pilot on validation
views of the training photos, models pruned at 256 matched the teacher far
worse at 416 than at 256 (docs/pruning-yolov3-tiny.md), so the recorded run
trains at 416.

Steps.  --rates: how many channels each layer keeps, from the FLOPs a
channel costs alone ("cost", --cost-power) or from the teacher's Fisher
importance lost per FLOP saved ("fisher": the loss's rise when a channel
goes, estimated without labels from the teacher's output sensitivity,
TeacherTask.sensitivity, over --fisher-batches batches).  --method: which
channels, C2S2's gates (--select-steps of phase 1 per layer, then
--tune-steps of phase 2) or one shot by that Fisher importance ("fisher") or
by L1 norm.  After each layer's channels are chosen, the layers that read
them are refitted to the teacher by least squares (--reconstruct inputs,
--reconstruct-rows positions of each; weights_tools/prune/reconstruct.py; a
head's rows weighted by the teacher's objectness); --final-steps of
fine-tuning of the physically pruned model.  Adam, lr --lr, batches of
--batch-size.

Measured on the held-back photos, per --targets value: the float model's
detections (thresh 0.5) that the pruned model keeps (same class, IoU >= 0.5,
weights_tools.evaluate.compare_detectors), the FLOPs ratio and MDFI's
single-thread float time of both models (same process, interleaved, median).
Writes --record (JSON) and, next to it, the same name with .md.  The pruned
weights go to --out (not committed).
"""

import argparse
import copy
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import weights_tools  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.append(ROOT)

import mdfi  # noqa: E402
from mdfi import models  # noqa: E402
from mdfi.image import letterbox, load  # noqa: E402
from weights_tools import evaluate  # noqa: E402

sys.path.insert(0, HERE)
from mdfi.bench import cpu_name  # noqa: E402

HELD_BACK_SHIPPED = ("coffee.png", "motorcycle_left.png", "motorcycle_right.png")
GOLDEN_DEFAULT = os.path.join(os.path.dirname(ROOT), "shared", "golden")
RECORD = os.path.join(ROOT, "docs", "pruning-yolov3-tiny.json")


# ----------------------------------------------------------------------------- photos and data

def held_back_photos(golden):
    """Darknet's golden photos (if `golden` is a folder) and HELD_BACK_SHIPPED."""
    out = []
    if golden and os.path.isdir(os.path.join(golden, "images")):
        out += [os.path.join(golden, "images", n + ".ppm") for n in evaluate.GOLDEN_PHOTOS]
    shipped = evaluate.skimage_photos() + evaluate.sklearn_photos()
    return out + [p for p in shipped if os.path.basename(p) in HELD_BACK_SHIPPED]


def training_photos():
    """The shipped photos the pruner may see: all but HELD_BACK_SHIPPED."""
    shipped = evaluate.skimage_photos() + evaluate.sklearn_photos()
    return [p for p in shipped if os.path.basename(p) not in HELD_BACK_SHIPPED]


def augment(img, rng, min_area=0.2):
    """One random view of img (float32 [3, h, w] in [0, 1]): a crop of
    min_area..1 of the photo's area (aspect 3:4..4:3, a quarter of the views
    whole photos), flipped left-right half the time, with brightness, contrast
    and saturation jitter."""
    _, h, w = img.shape
    if rng.random() < 0.25:
        x = img
    else:
        area = rng.uniform(min_area, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(min(w, max(16, round(np.sqrt(area * aspect)))))
        ch = int(min(h, max(16, round(np.sqrt(area / aspect)))))
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        x = img[:, y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        x = x[:, :, ::-1]
    x = x * rng.uniform(0.75, 1.25)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.75, 1.25) + mean
    gray = x.mean(0, keepdims=True)
    x = gray + (x - gray) * rng.uniform(0.6, 1.4)
    return np.ascontiguousarray(np.clip(x, 0.0, 1.0), dtype=np.float32)


def build_inputs(photos, n, res, seed):
    """n letterboxed res x res views of the photos, round-robin over the photos."""
    rng = np.random.default_rng(seed)
    images = [load(p).data for p in photos]
    out = np.empty((n, 3, res, res), np.float32)
    for i in range(n):
        out[i] = letterbox(augment(images[i % len(images)], rng), res, res)
    return out


# ----------------------------------------------------------------------------- models

def cfg_at(cfg_text, res):
    """The cfg text with [net] width = height = res."""
    text = re.sub(r"(?m)^(\s*width\s*=\s*)\d+", lambda m: m.group(1) + str(res), cfg_text, count=1)
    return re.sub(r"(?m)^(\s*height\s*=\s*)\d+", lambda m: m.group(1) + str(res), text, count=1)


def check_at_416(float416, pruned_small, keep, prefix):
    """Writes PREFIX.cfg/.weights: the pruned model at 416x416.  Returns the
    checks: the channels equal prune_model(float416, keep)'s, and MDFI's
    output equals PyTorch's."""
    import torch

    from weights_tools.prune.graph import ChannelGraph
    from weights_tools.prune.rewrite import prune_model
    from weights_tools.torch import export, import_darknet
    cfg_text, weights = export(pruned_small)
    cfg416 = cfg_at(cfg_text, 416)
    with open(prefix + ".cfg", "w") as f:
        f.write(cfg416)
    with open(prefix + ".weights", "wb") as f:
        f.write(weights)
    model = import_darknet(cfg416, prefix + ".weights").eval()
    same = prune_model(float416, keep, ChannelGraph(float416))
    channels_match = [s for s in model.shapes] == [s for s in same.shapes]
    x = np.random.default_rng(1).random((3, 416, 416), dtype=np.float32)
    heads = [i - 1 for i, layer in enumerate(model.layers) if layer.section == "yolo"]
    with torch.no_grad():
        want = [t[0].numpy() for t in model(torch.from_numpy(x)[None], outputs=heads)]
    with mdfi.Network(prefix + ".cfg", prefix + ".weights", keep_outputs=True) as net:
        net.forward(x)
        diff = max(float(np.abs(net.layer_output(h).reshape(-1) - w.reshape(-1)).max())
                   for h, w in zip(heads, want))
    return {"channels_equal_prune_model_of_416": channels_match,
            "mdfi_vs_pytorch_max_abs_diff_at_yolo_inputs": diff,
            "shapes": [list(s) for s in model.shapes]}


def interleaved_ms(paths, repeats=21, threads=1):
    """{path prefix: median ms} of MDFI float forwards, the networks taking
    turns on one input, `repeats` rounds after a warm-up."""
    nets = [mdfi.Network(p + ".cfg", p + ".weights", threads=threads) for p in paths]
    try:
        x = np.random.default_rng(0).random(nets[0].input_shape, dtype=np.float32)
        for net in nets:
            for _ in range(2):
                net.forward(x)
        times = [[] for _ in nets]
        for _ in range(repeats):
            for net, t in zip(nets, times):
                t0 = time.perf_counter()
                net.forward(x)
                t.append(1000.0 * (time.perf_counter() - t0))
        return [statistics.median(t) for t in times]
    finally:
        for net in nets:
            net.close()


def mirrored(paths, folder):
    """Left-right mirror images of `paths`, written as PNGs into folder."""
    from PIL import Image
    out = []
    for p in paths:
        px = np.clip(np.round(load(p).data.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        q = os.path.join(folder, "mirror_" + os.path.splitext(os.path.basename(p))[0] + ".png")
        Image.fromarray(np.ascontiguousarray(px[:, ::-1])).save(q)
        out.append(q)
    return out


def compare(float_prefix, pruned_prefix, paths, thresh, where=False):
    """compare_detectors' counts; where=True adds, per float detection, the
    best probability the pruned model gives that class at IoU >= 0.5."""
    with mdfi.Network(float_prefix + ".cfg", float_prefix + ".weights") as f, \
            mdfi.Network(pruned_prefix + ".cfg", pruned_prefix + ".weights") as p:
        r = evaluate.compare_detectors(f, p, paths, thresh=thresh)
    out = {k: r[k] for k in ("images", "float", "kept", "kept_pct", "map50")}
    if where:
        out["float_vs_pruned_prob"] = [
            [os.path.basename(path), d.class_id, round(float(d.prob), 4),
             round(evaluate.best_match_prob(d, test), 4)]
            for path, ref, test in zip(paths, r["ref"], r["test"]) for d in ref]
    return out


def measure(float_prefix, prefix, held, held_views):
    """FLOPs, MDFI times and detections kept of the pruned model at `prefix`."""
    from weights_tools.torch import import_darknet
    flops = sum(float(v) for v in _flops(import_darknet(float_prefix + ".cfg")))
    flops_after = sum(float(v) for v in _flops(import_darknet(prefix + ".cfg")))
    ms, ms_after = interleaved_ms([float_prefix, prefix])
    return {"flops": flops, "flops_after": flops_after,
            "flops_ratio": flops / flops_after, "flops_kept": flops_after / flops,
            "ms": ms, "ms_after": ms_after, "speedup": ms / ms_after,
            "ms_note": "MDFI float, 1 thread, 416x416, median of 21 interleaved forwards",
            "detections": compare(float_prefix, prefix, held, 0.5, where=True),
            "detections_with_mirrors": compare(float_prefix, prefix, held_views, 0.5),
            "detections_with_mirrors_thresh_0.25": compare(float_prefix, prefix, held_views, 0.25)}


def pruned_prefix(out, target):
    return os.path.join(out, "yolov3-tiny-pruned-%02d" % round(100 * target))


def report_line(e):
    d, v = e["detections"], e["detections_with_mirrors"]
    return ("target %.2f: FLOPs %.3fG -> %.3fG (%.2fx fewer); MDFI 1 thread %.1f -> %.1f ms "
            "(%.2fx); held-back photos: %d/%d float detections kept (%.1f %%), mAP50 %.3f; "
            "with mirrors %d/%d (%.1f %%)"
            % (e["target_flops"], e["flops"] / 1e9, e["flops_after"] / 1e9, e["flops_ratio"],
               e["ms"], e["ms_after"], e["speedup"], d["kept"], d["float"], d["kept_pct"],
               d["map50"], v["kept"], v["float"], v["kept_pct"]))


def reevaluate(args, argv, held, held_views, float_prefix):
    """--evaluate-only: the measurements again for the models a run left in --out."""
    with open(args.record) as f:
        record = json.load(f)
    for e in record["results"]:
        e.update(measure(float_prefix, pruned_prefix(args.out, e["target_flops"]), held,
                         held_views))
        print(report_line(e), flush=True)
    record["evaluated_with"] = "python examples/prune_yolo.py " + " ".join(
        shlex.quote(a) for a in argv)
    return record


# ----------------------------------------------------------------------------- main

def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.8, 0.66],
                    help="fractions of the FLOPs to keep")
    ap.add_argument("--res", type=int, default=416, help="training resolution (multiple of 32)")
    ap.add_argument("--train-inputs", type=int, default=384)
    ap.add_argument("--val-inputs", type=int, default=16)
    ap.add_argument("--method", choices=("c2s2", "fisher", "l1"), default="fisher",
                    help="which channels go: C2S2's gates, or one shot by the teacher's Fisher "
                    "importance or by L1 norm (then the least-squares refit, layer by layer)")
    ap.add_argument("--rates", choices=("cost", "fisher"), default="fisher",
                    help="channels per layer from the cost of a channel (--cost-power) or from "
                    "the teacher's Fisher importance lost per FLOP saved")
    ap.add_argument("--fisher-batches", type=int, default=16,
                    help="training batches the Fisher importance is averaged over")
    ap.add_argument("--select-steps", type=int,
                    help="C2S2 phase 1 steps per layer (default 6 for c2s2, 0 otherwise)")
    ap.add_argument("--tune-steps", type=int, default=0, help="C2S2 phase 2 steps per layer")
    ap.add_argument("--final-steps", type=int, default=300, help="fine-tuning steps at the end")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--loss", choices=("yolo", "mse"), default="yolo")
    ap.add_argument("--train-bn", action="store_true",
                    help="batch statistics while training (default: the teacher's, frozen)")
    ap.add_argument("--max-prune", type=float, default=0.6)
    ap.add_argument("--cost-power", type=float, default=0.5)
    ap.add_argument("--multiple", type=int, default=4)
    ap.add_argument("--reconstruct", type=int, default=96,
                    help="least-squares refit of a pruned layer's readers to the teacher on "
                    "this many training inputs (0: off)")
    ap.add_argument("--reconstruct-rows", type=int, default=256,
                    help="positions sampled per input for the refit")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--golden", default=GOLDEN_DEFAULT, help="Darknet's golden data folder")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "prune_yolo"),
                    help="folder for the pruned models (not committed)")
    ap.add_argument("--record", default=RECORD)
    ap.add_argument("--evaluate-only", action="store_true",
                    help="no training: measure again the models a run left in --out "
                    "and update --record")
    args = ap.parse_args(argv)
    if args.select_steps is None:
        args.select_steps = 6 if args.method == "c2s2" else 0
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    import torch

    from weights_tools.torch import import_darknet, save
    torch.set_num_threads(args.torch_threads)
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    files = models.fetch("yolov3-tiny", quiet=True)
    cfg_text = open(files["cfg"]).read()
    held = held_back_photos(args.golden)
    train_photos = training_photos()
    assert not {os.path.basename(p) for p in held} & {os.path.basename(p) for p in train_photos}
    print("training photos (%d): %s" % (len(train_photos),
                                        " ".join(os.path.basename(p) for p in train_photos)))
    print("held-back photos (%d): %s" % (len(held), " ".join(os.path.basename(p) for p in held)))
    float_prefix = os.path.join(args.out, "yolov3-tiny")
    float416 = import_darknet(files["cfg"], files["weights"]).eval()
    save(float416, float_prefix)
    with tempfile.TemporaryDirectory(prefix="held_back_mirrors_") as mirror_dir:
        held_views = held + mirrored(held, mirror_dir)
        if args.evaluate_only:
            record = reevaluate(args, argv, held, held_views, float_prefix)
        else:
            record = run(args, argv, cfg_text, files, float416, float_prefix, train_photos, held,
                         held_views)
    record["seconds" if not args.evaluate_only else "evaluate_seconds"] = time.time() - t_start
    os.makedirs(os.path.dirname(os.path.abspath(args.record)), exist_ok=True)
    with open(args.record, "w") as f:
        json.dump(record, f, indent=1)
    write_markdown(os.path.splitext(args.record)[0] + ".md", record)
    print("wrote %s (%.0f s in all)" % (args.record, time.time() - t_start))
    return 0


def run(args, argv, cfg_text, files, float416, float_prefix, train_photos, held, held_views):
    """Prunes at every target; returns the record."""
    import torch

    from weights_tools.prune.methods import Budget
    from weights_tools.prune.run import format_rows, prune
    from weights_tools.prune.tasks import TeacherTask
    from weights_tools.torch import import_darknet
    t0 = time.time()
    x = build_inputs(train_photos, args.train_inputs + args.val_inputs, args.res, args.seed)
    print("%d inputs %dx%d (%d for validation) in %.0f s" % (len(x), args.res, args.res,
                                                            args.val_inputs, time.time() - t0))
    record = {"model": "yolov3-tiny (official cfg/weights, mdfi.models, sha256-verified)",
              "command": "python examples/prune_yolo.py " + " ".join(shlex.quote(a) for a in argv),
              "cpu": cpu_name(), "torch_threads": args.torch_threads,
              "training_photos": [os.path.basename(p) for p in train_photos],
              "held_back_photos": [os.path.basename(p) for p in held],
              "data": {"train_inputs": args.train_inputs, "val_inputs": args.val_inputs,
                       "resolution": args.res, "augment": "scaled crops (0.2..1 of the area, "
                       "aspect 3:4..4:3; a quarter whole), left-right flips, brightness/contrast/"
                       "saturation x0.75..1.25/0.75..1.25/0.6..1.4; in training also random "
                       "shifts of +-%d px and flips" % (args.res // 32)},
              "method": args.method, "rates": args.rates, "fisher_batches": args.fisher_batches,
              "loss": args.loss,
              "freeze_bn": not args.train_bn, "reconstruct_rows": args.reconstruct_rows,
              "max_prune": args.max_prune, "cost_power": args.cost_power,
              "multiple": args.multiple, "reconstruct_inputs": args.reconstruct, "lr": args.lr,
              "batch_size": args.batch_size,
              "detections": "float detections at thresh 0.5 kept by the pruned model "
                            "(same class, IoU >= 0.5; weights_tools.evaluate.compare_detectors)",
              "results": []}
    for target in args.targets:
        t0 = time.time()
        torch.manual_seed(args.seed)
        student = import_darknet(cfg_at(cfg_text, args.res), files["weights"]).eval()
        teacher = copy.deepcopy(student).eval()
        n_val = args.val_inputs
        task = TeacherTask(teacher, x[:-n_val], x[-n_val:], args.batch_size,
                           shift=args.res // 32, flip=True, seed=args.seed, loss=args.loss,
                           freeze_bn=not args.train_bn, reconstruct=args.reconstruct,
                           reconstruct_rows=args.reconstruct_rows)
        budget = Budget(args.select_steps, args.tune_steps, args.final_steps, lr=args.lr,
                        joint=False)   # the committed record's C2S2 (gates alone in phase 1)
        print("\n=== target %.2f of the FLOPs: %s (%s rates) at %dx%d ==="
              % (target, args.method, args.rates, args.res, args.res))
        result = prune(student, task, args.method, target_flops=target, budget=budget,
                       max_prune=args.max_prune, power=args.cost_power, multiple=args.multiple,
                       threads=1, rates=args.rates, fisher_batches=args.fisher_batches)
        seconds = time.time() - t0
        print(format_rows(result.rows))
        prefix = pruned_prefix(args.out, target)
        checks = check_at_416(float416, result.model, result.keep, prefix)
        print("at 416x416: channels equal prune_model(float, keep): %s; MDFI vs PyTorch max "
              "|diff| %.3g" % (checks["channels_equal_prune_model_of_416"],
                               checks["mdfi_vs_pytorch_max_abs_diff_at_yolo_inputs"]))
        s = result.summary
        entry = {"target_flops": target}
        entry.update(measure(float_prefix, prefix, held, held_views))
        entry.update({
            "validation": {"score_name": s["score_name"], "before": s["score_before"],
                           "after": s["score_after"]},
            "groups_pruned": s["groups_pruned"],
            "training_steps": {"select_per_layer": args.select_steps,
                               "tune_per_layer": args.tune_steps,
                               "final": args.final_steps,
                               "total": budget.total(s["groups_pruned"])},
            "training_seconds": seconds,
            "checks_at_416": {k: v for k, v in checks.items() if k != "shapes"},
            "channels": {str(r["layer"]): [r["channels"], r["kept"]] for r in result.rows
                         if r["type"] == "convolutional"},
            "keep": {str(g): idx.tolist() for g, idx in result.keep.items()}})
        record["results"].append(entry)
        print(report_line(entry) + "; trained %.0f s" % seconds, flush=True)
    return record


def _flops(model):
    from weights_tools.prune.costs import layer_flops
    return layer_flops(model)


TABLE_BEGIN, TABLE_END = "<!-- table: examples/prune_yolo.py -->", "<!-- /table -->"


def write_markdown(path, record):
    """The table between the TABLE_BEGIN/TABLE_END markers of `path` (the rest,
    written by hand, stays); a new file if there is none."""
    table = TABLE_BEGIN + "\n" + markdown_table(record) + TABLE_END
    text = None
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if text and TABLE_BEGIN in text and TABLE_END in text:
        head, rest = text.split(TABLE_BEGIN, 1)
        text = head + table + rest.split(TABLE_END, 1)[1]
    else:
        text = "# Pruning yolov3-tiny without labels\n\n" + table + "\n"
    with open(path, "w") as f:
        f.write(text)


def markdown_table(record):
    lines = ["Command: `%s`" % record["command"]]
    if record.get("evaluated_with"):
        lines.append("(measured again with `%s`)" % record["evaluated_with"])
    lines += ["", "CPU: %s; training with %d PyTorch thread(s); times are MDFI float, one "
              "thread, 416x416, median of 21 interleaved runs." % (record["cpu"],
                                                                   record["torch_threads"]), "",
              "| target | FLOPs (G) | fewer | ms | faster | kept, held-back photos | mAP50 "
              "| pruned / float prob. | kept, + mirrors | kept @0.25, + mirrors | train s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in record["results"]:
        d, v, q = r["detections"], r["detections_with_mirrors"], \
            r["detections_with_mirrors_thresh_0.25"]
        ratio = [b / a for _, _, a, b in d.get("float_vs_pruned_prob", [])]
        lines.append("| %.2f | %.3f -> %.3f | %.2fx | %.1f -> %.1f | %.2fx | %d/%d (%.0f %%) | %.3f "
                     "| %s | %d/%d (%.0f %%) | %d/%d (%.0f %%) | %.0f |"
                     % (r["target_flops"], r["flops"] / 1e9, r["flops_after"] / 1e9,
                        r["flops_ratio"], r["ms"], r["ms_after"], r["speedup"], d["kept"],
                        d["float"], d["kept_pct"], d["map50"],
                        "%.2f" % statistics.median(ratio) if ratio else "-", v["kept"],
                        v["float"], v["kept_pct"], q["kept"], q["float"], q["kept_pct"],
                        r["training_seconds"]))
    lines += ["", "kept: float detections (thresh 0.5) that the pruned model reports at "
              "thresh 0.5 with the same class and IoU >= 0.5; mAP50: the float detections as "
              "ground truth, the pruned model's at thresh 0.005 ranked; pruned / float prob.: "
              "the median over the held-back float detections of the pruned model's best "
              "probability for the same class at IoU >= 0.5 over the float one."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
