"""python -m weights_tools prune --cfg C --weights W --data D (--target-flops F | --target-ms MS) -o OUT

--data is a dataset name (fashion-mnist, mnist, digits, cifar10: labelled;
the validation images are carved from the training split, the test split is
never read) or image files / directories (unlabelled: the unpruned model is
the teacher; the last --val-images of them are held out for scoring).
Writes OUT.cfg, OUT.weights (channels removed) and OUT.json (per-layer
channels, FLOPs and MDFI milliseconds before and after, the summary and the
command), and checks that MDFI's output of the pruned files equals PyTorch's.
"""

import json
import os
import shlex
import sys

import numpy as np

from weights_tools.prune.errors import PruneError

METHODS = ("c2s2", "l1", "slimming", "fisher")   # run.METHODS (kept here: parsing must not need torch)
RATES = ("cost", "fisher")              # how the per-layer counts are chosen (run.prune)

IMAGE_DATA_SHIFT = 16


def add_arguments(p):
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True, nargs="+", metavar="DATA",
                   help="a dataset name (fashion-mnist, mnist, digits, cifar10) or image "
                   "files/directories (unlabelled: the unpruned model teaches)")
    p.add_argument("--data-path", help="the dataset's directory or tarball (mdfi.datasets.load)")
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--target-flops", type=float, metavar="F",
                   help="keep this fraction of the FLOPs (0.5 = 2x fewer)")
    t.add_argument("--target-ms", type=float, metavar="MS",
                   help="milliseconds per forward in MDFI on this CPU (--threads, --path)")
    p.add_argument("--method", choices=METHODS, default="c2s2")
    # 10 + 10: of 60 + 60, 20 + 20, 10 + 10 and 5 + 5 at one training budget, the
    # best on Fashion-MNIST's validation split (docs/pruning.md)
    p.add_argument("--select-steps", type=int, default=10, help="C2S2 phase-1 steps per layer")
    p.add_argument("--tune-steps", type=int, default=10, help="C2S2 phase-2 steps per layer")
    p.add_argument("--gates-only", action="store_true",
                   help="C2S2's phase 1 trains only the gates (default: the weights with them)")
    p.add_argument("--epochs", type=float, default=1.0,
                   help="final fine-tuning, in epochs of the training data")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-prune", type=float, default=0.75,
                   help="no layer loses more than this fraction of its channels")
    p.add_argument("--cost-power", type=float, default=0.5,
                   help="prune fraction grows as (cost of a channel)^power")
    p.add_argument("--rates", choices=RATES, default="fisher",
                   help="per-layer counts from the cost of a channel alone (--cost-power) or from "
                   "Fisher importance lost per cost saved")
    p.add_argument("--multiple", type=int, default=1, help="keep a multiple of this many channels")
    p.add_argument("--val-per-class", type=int, help="validation images per class (labelled data)")
    p.add_argument("--val-images", type=int, default=4, help="held-out images (unlabelled data)")
    p.add_argument("--teacher-loss", choices=("mse", "yolo"), default="mse",
                   help="unlabelled data: MSE of the head outputs, or the detection-aware "
                   "distillation loss at the [yolo] inputs (tasks.yolo_distillation)")
    p.add_argument("--freeze-bn", action="store_true",
                   help="unlabelled data: keep the teacher's BN statistics while training")
    p.add_argument("--reconstruct", type=int, default=0, metavar="N",
                   help="unlabelled data: refit the readers of each pruned layer to the "
                   "teacher by least squares on N training images (a [yolo] head weighted by "
                   "the teacher's objectness)")
    p.add_argument("--reconstruct-rows", type=int, default=256, metavar="R",
                   help="unlabelled data: positions sampled per image for that refit")
    p.add_argument("--train-limit", type=int, help="use only the first N training images")
    p.add_argument("--threads", type=int, default=1, help="MDFI threads for the measured costs")
    p.add_argument("--path", choices=("float", "int8"), default="float",
                   help="the numeric path whose MDFI times are the costs (int8: as weights_tools "
                   "quantize makes it)")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, metavar="PREFIX")


def labelled_task(name, path, batch_size, val_per_class, train_limit, seed):
    from mdfi import datasets
    from weights_tools.prune.tasks import LabelledTask
    data = datasets.load(name, path)
    counts = np.bincount(data.y_train)
    per = val_per_class or max(1, min(500, int(counts.min()) // 10))
    data = datasets.validation(data, per)
    x, y = data.x_train, data.y_train
    if train_limit:
        x, y = x[:train_limit], y[:train_limit]
    colour = name == "cifar10"
    return LabelledTask(x, y, data.x_val, data.y_val, batch_size or 128,
                        shift=4 if colour else 2, flip=name in ("fashion-mnist", "cifar10"),
                        seed=seed), data.split


def image_task(model, paths, batch_size, val_images, seed, loss="mse", freeze_bn=False,
               reconstruct=0, reconstruct_rows=256):
    from weights_tools.calibrate import find_images, load_input
    from weights_tools.prune.tasks import TeacherTask
    import copy
    try:
        files = find_images(paths)
        x = np.stack([load_input(f, model.input_shape) for f in files])
    except ValueError as e:
        raise PruneError(str(e)) from None
    if len(x) <= val_images:
        raise PruneError("%d images: need more than --val-images=%d" % (len(x), val_images))
    teacher = copy.deepcopy(model).eval()
    return (TeacherTask(teacher, x[:-val_images], x[-val_images:], batch_size or 4,
                        shift=IMAGE_DATA_SHIFT, seed=seed, loss=loss, freeze_bn=freeze_bn,
                        reconstruct=reconstruct, reconstruct_rows=reconstruct_rows),
            "%d images (%d held out for scoring)" % (len(x), val_images))


def _check_mdfi(model, cfg, weights, seed=0):
    import torch

    import mdfi
    x = np.random.default_rng(seed).random(model.input_shape, dtype=np.float32)
    with mdfi.Network(cfg, weights) as net:
        got = net.forward(x)
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(x)[None])[0].numpy()
    return float(np.abs(got.reshape(-1) - want.reshape(-1)).max())


def run_from_args(args, argv=None):
    try:
        import torch

        from weights_tools.prune.methods import Budget
        from weights_tools.prune.run import format_rows, prune
        from weights_tools.torch import import_darknet, save
    except ImportError as e:
        print("weights_tools prune: error: needs PyTorch (pip install '.[torch]'): %s" % e,
              file=sys.stderr)
        return 1
    from mdfi import MdfiError
    from weights_tools import CfgError, WeightsError
    from weights_tools.torch import BridgeError
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    try:
        model = import_darknet(args.cfg, args.weights)
        if len(args.data) == 1 and not os.path.exists(args.data[0]):
            task, data_note = labelled_task(args.data[0], args.data_path, args.batch_size,
                                            args.val_per_class, args.train_limit, args.seed)
        else:
            task, data_note = image_task(model, args.data, args.batch_size, args.val_images,
                                         args.seed, args.teacher_loss, args.freeze_bn,
                                         args.reconstruct, args.reconstruct_rows)
        budget = Budget(args.select_steps, args.tune_steps,
                        round(args.epochs * task.steps_per_epoch), lr=args.lr,
                        joint=not args.gates_only)
        result = prune(model, task, args.method, args.target_flops, args.target_ms, budget,
                       args.max_prune, args.cost_power, args.multiple, args.threads,
                       path=args.path, rates=args.rates)
        cfg, weights = save(result.model, args.output)
        diff = _check_mdfi(result.model, cfg, weights)
    except (PruneError, CfgError, WeightsError, BridgeError, MdfiError, OSError) as e:
        print("weights_tools prune: error: %s" % e, file=sys.stderr)
        return 1
    s = result.summary
    print(format_rows(result.rows))
    print("%s: FLOPs %.2fM -> %.2fM (%.2fx fewer); MDFI %s, %d thread(s): %.3f -> %.3f ms "
          "(%.2fx faster); %s %.4f -> %.4f"
          % (s["method"], s["flops"] / 1e6, s["flops_after"] / 1e6, s["flops_ratio"],
             s["path"], s["threads"], s["ms"], s["ms_after"], s["speedup"], s["score_name"],
             s["score_before"], s["score_after"]))
    print("wrote %s and %s; MDFI vs PyTorch on a random input: max |diff| %.3g" % (cfg, weights, diff))
    record = {"command": "python -m weights_tools prune " + " ".join(
                  shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:])),
              "cfg": args.cfg, "weights": args.weights, "data": data_note,
              "summary": s, "mdfi_vs_pytorch_max_abs_diff": diff, "layers": result.rows,
              "keep": {str(g): idx.tolist() for g, idx in result.keep.items()}}
    with open(os.path.splitext(cfg)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)
    return 0
