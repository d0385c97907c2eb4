"""How the precision gates of a trained [fracconv] network cluster in the
binary kernel's units (docs/wsfracbnn.md, Speed; issue 16).

    python benchmarks/gate_clusters.py examples/models/fmnist_frac_ws_agc [--images 300]

A gated pass that ran the dense kernel on the second plane and skipped the
units where no gate fires would compute the share of units with at least
one gated output.  For each gated layer, over the first --images test
images (the numpy reference's gate bits g, on MDFI's own layer inputs),
this prints the share of gated outputs and of runs of 8 and 16 output
columns of one filter (columns are the flattened output pixels, as the
kernels tile them) and of 8-filter x 16-column tiles (the AVX-512 kernel's
unit) holding at least one.
"""
import argparse

import numpy as np

import mdfi
from mdfi import datasets
from weights_tools import fracconv_ref
from weights_tools.darknet_cfg import fracconv_options, layers_of
from weights_tools.darknet_weights import read_weights
from weights_tools.dualpath_ref import conv_geometry

UNITS = (("8 columns", 1, 8), ("16 columns", 1, 16), ("8 x 16 tile", 8, 16))


def any_share(g, rows, cols):
    """[units with a gated output, units] of g [M, N] cut into rows x cols
    blocks (the edges padded with closed gates)."""
    m, n = g.shape
    g = np.pad(g, ((0, -m % rows), (0, -n % cols)))
    blocks = g.reshape(g.shape[0] // rows, rows, g.shape[1] // cols, cols).any(axis=(1, 3))
    return np.array([blocks.sum(), blocks.size])


def measure(cfg, weights, images):
    """{layer index: {'outputs': [gated, all], unit name: [with a gate, all]}}."""
    layers = layers_of(cfg)
    arrays = read_weights(layers, weights).layers
    gated = [L for L in layers if L.type == "fracconv" and fracconv_options(L.section)["gate"]]
    counts = {L.index: {} for L in gated}
    with mdfi.Network(cfg, weights, threads=1, keep_outputs=True) as net:
        for img in images:
            net.forward(img)
            for L in gated:
                stride, pad = conv_geometry(L.section)
                g = fracconv_ref.parts(net.layer_output(L.inputs[0]), arrays[L.index],
                                       stride=stride, pad=pad, layer=L.index)["g"]
                g = g.reshape(g.shape[0], -1).astype(bool)
                c = counts[L.index]
                c["outputs"] = c.get("outputs", 0) + np.array([g.sum(), g.size])
                for name, rows, cols in UNITS:
                    c[name] = c.get(name, 0) + any_share(g, rows, cols)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="PREFIX of PREFIX.cfg / PREFIX.weights (a Fashion-MNIST model)")
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args(argv)
    x = datasets.load_fashion_mnist(train=False).x_test[:args.images]
    counts = measure(args.model + ".cfg", args.model + ".weights", x)
    print("layer  gated outputs  " + "  ".join("%-12s" % n for n, _, _ in UNITS))
    for index, c in counts.items():
        print("%5d  %12.1f %%  " % (index, 100 * c["outputs"][0] / c["outputs"][1])
              + "  ".join("%10.1f %%" % (100 * c[n][0] / c[n][1]) for n, _, _ in UNITS))


if __name__ == "__main__":
    main()
