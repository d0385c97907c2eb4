"""python -m weights_tools info --cfg CFG [--weights WEIGHTS]

Prints every layer's shapes and parameter count, the weights file size the cfg
needs, and with --weights checks that the file has exactly that size.
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m weights_tools",
                                 description="Inspect Darknet cfg and weights files.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="per-layer shapes and parameter counts; check a weights size")
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights")
    args = ap.parse_args(argv)
    try:
        return info(args.cfg, args.weights)
    except (CfgError, WeightsError, OSError) as e:
        print("weights_tools: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
