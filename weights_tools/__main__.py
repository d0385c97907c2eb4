"""python -m weights_tools info --cfg CFG [--weights WEIGHTS]
python -m weights_tools quantize C W --calib IMAGES_OR_DIR_OR_NPY [--bits 8] [--mixed] -o OUT
python -m weights_tools from-torch MODEL.pt -o PREFIX [--input-shape C,H,W] [--check]
python -m weights_tools to-torch --cfg CFG [--weights WEIGHTS] -o MODEL.pt [--check]
python -m weights_tools prune --cfg C --weights W --data D (--target-flops F | --target-ms MS) -o OUT

Prints every layer's shapes and parameter count, the weights file size the cfg
needs, and with --weights checks that the file has exactly that size.
from-torch / to-torch convert between PyTorch and Darknet files; they need the
PyTorch extra (pip install '.[torch]'), see weights_tools/torch/__init__.py.
"""

import argparse
import os
import sys

from weights_tools import CfgError, WeightsError, check_size, layers_of, net_shape, parse_cfg, read_header


def _chw(shape):
    return "%dx%dx%d" % shape


def info(cfg_path, weights_path=None):
    sections = parse_cfg(cfg_path)
    layers = layers_of(sections)
    print("%s: input %s (c x h x w), %d layers" % (cfg_path, _chw(net_shape(sections)), len(layers)))
    print("%5s  %-14s %-14s %-14s %12s" % ("layer", "type", "input", "output", "params"))
    total = 0
    for layer in layers:
        total += layer.n_params
        print("%5d  %-14s %-14s %-14s %12d" % (layer.index, layer.type, _chw(layer.in_shape),
                                                _chw(layer.out_shape), layer.n_params))
    print("total parameters %d; a weights file with the usual 20-byte header has %d bytes"
          % (total, 20 + 4 * total))
    if weights_path is None:
        return 0
    header = read_header(weights_path)
    size = os.path.getsize(weights_path)
    print("%s: %d bytes, header version %d.%d.%d, seen %d%s"
          % (weights_path, size, header.major, header.minor, header.revision, header.seen,
             ", transposed connected weights" if header.transpose else ""))
    check_size(layers, size, header)
    print("ok: the weights file matches the cfg exactly")
    return 0


def _need_torch():
    try:
        import weights_tools.torch as wtt
    except ImportError as e:
        raise SystemExit("weights_tools: error: %s" % e)
    return wtt


def _parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise argparse.ArgumentTypeError("expected C,H,W (three positive integers), got %r" % text)
    return shape


def _check_with_mdfi(model, cfg_path, weights_path, seed=0):
    """Runs MDFI and the PyTorch model on one random input; prints the difference."""
    import numpy as np
    import torch

    import mdfi
    x = np.random.default_rng(seed).random(model.input_shape, dtype=np.float32)
    try:
        with mdfi.Network(cfg_path, weights_path) as net:
            got = net.forward(x)
    except mdfi.UnsupportedError as e:
        print("check skipped: MDFI cannot run this network yet (%s)" % e)
        return 0
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(x)[None])[0].numpy()
    diff = float(np.abs(got.reshape(-1) - want.reshape(-1)).max())
    print("check: MDFI vs PyTorch on a random input: max |difference| %.3g" % diff)
    if diff > 1e-4 * max(1.0, float(np.abs(want).max())):
        print("weights_tools: error: MDFI and PyTorch differ by more than 1e-4", file=sys.stderr)
        return 1
    return 0


def from_torch(model_path, out, input_shape=None, check=False):
    wtt = _need_torch()
    import torch
    # A whole pickled module (torch.save(model, path)): unpickling can run code, so
    # only convert files you trust.
    obj = torch.load(model_path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict):
        raise wtt.BridgeError("%s holds a dict (a state_dict?); save the whole model with "
                              "torch.save(model, path)" % model_path)
    if not isinstance(obj, torch.nn.Module):
        raise wtt.BridgeError("%s holds a %s, not an nn.Module" % (model_path, type(obj).__name__))
    net = wtt.to_darknet(obj, input_shape)
    cfg_path, weights_path = wtt.save(net, out)
    size = os.path.getsize(weights_path)
    print("wrote %s (%d layers) and %s (%d bytes)" % (cfg_path, len(net), weights_path, size))
    return _check_with_mdfi(net, cfg_path, weights_path) if check else 0


def to_torch(cfg_path, weights_path, out, check=False):
    wtt = _need_torch()
    import torch
    model = wtt.import_darknet(cfg_path, weights_path)
    torch.save(model, out)
    print("wrote %s: %d layers, input %s (load with torch.load(path, weights_only=False))"
          % (out, len(model), _chw(model.input_shape)))
    return _check_with_mdfi(model, cfg_path, weights_path) if check and weights_path else 0


def _add_torch_commands(sub):
    p = sub.add_parser("from-torch", help="a torch.save()d model -> PREFIX.cfg and PREFIX.weights")
    p.add_argument("model", help="file written by torch.save(model, path): a "
                   "weights_tools.torch.Darknet or an nn.Sequential (unpickled: trusted files only)")
    p.add_argument("-o", "--output", required=True, metavar="PREFIX",
                   help="writes PREFIX.cfg and PREFIX.weights")
    p.add_argument("--input-shape", type=_parse_shape, metavar="C,H,W",
                   help="input shape; needed for an nn.Sequential")
    p.add_argument("--check", action="store_true",
                   help="run MDFI on a random input and compare with PyTorch")
    p = sub.add_parser("to-torch", help="Darknet cfg (+ weights) -> a torch.save()d model")
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", help="without it the model keeps PyTorch's initialisation")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt")
    p.add_argument("--check", action="store_true",
                   help="run MDFI on a random input and compare with PyTorch")


def _run_torch_command(args):
    wtt = _need_torch()
    try:
        if args.cmd == "from-torch":
            return from_torch(args.model, args.output, args.input_shape, args.check)
        return to_torch(args.cfg, args.weights, args.output, args.check)
    except (CfgError, WeightsError, OSError, wtt.BridgeError) as e:
        print("weights_tools: error: %s" % e, file=sys.stderr)
        return 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m weights_tools",
                                 description="Inspect Darknet cfg and weights files; quantize them.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="per-layer shapes and parameter counts; check a weights size")
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights")
    from weights_tools.quantize import add_arguments, run_from_args
    add_arguments(sub.add_parser("quantize", help="calibrate and convert to MDFI fixed point "
                                 "(annotated cfg + .qweights)"))
    _add_torch_commands(sub)
    from weights_tools.prune.cli import add_arguments as add_prune_arguments
    add_prune_arguments(sub.add_parser("prune", help="remove channels (C2S2, L1-norm or network "
                                       "slimming) and write a smaller cfg + weights"))
    args = ap.parse_args(argv)
    if args.cmd == "prune":
        from weights_tools.prune.cli import run_from_args as run_prune
        return run_prune(args, argv)
    if args.cmd == "quantize":
        return run_from_args(args)
    if args.cmd in ("from-torch", "to-torch"):
        return _run_torch_command(args)
    try:
        return info(args.cfg, args.weights)
    except (CfgError, WeightsError, OSError) as e:
        print("weights_tools: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
