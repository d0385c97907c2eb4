"""The dense twin of a gated [fracconv] network (docs/wsfracbnn.md), numpy only.

A [fracconv] layer with input=stream and gate=1 (the default) computes the
second bit's convolution only where its precision gate fires; the same layer
with gate=0 computes it everywhere: the network "with 2-bit activations
everywhere" that the gated one is measured against.  The twin has

* the cfg text unchanged but for every gated [fracconv] section: its gate=1
  line becomes gate=0, or a gate=0 line is added under the section header
  where the key was left to its default (comments, order and every other
  line stay as written);
* the .weights file unchanged but for the gate array (M floats between step
  and range) of those layers, which a gate=0 layer does not have
  (the layout table in docs/wsfracbnn.md).

    python -m weights_tools.fracconv_dense CFG WEIGHTS OUT_PREFIX
        writes OUT_PREFIX.cfg and OUT_PREFIX.weights
"""

import argparse
import os
import sys

from weights_tools.darknet_cfg import _read_source, fracconv_options, layers_of, parse_cfg
from weights_tools.darknet_weights import DarknetWeights, read_weights, write_weights


def gated_layers(cfg):
    """Indices of the [fracconv] layers of cfg (text or path) whose gate is on."""
    return [layer.index for layer in layers_of(cfg) if layer.type == "fracconv"
            and fracconv_options(layer.section)["gate"]]


def dense_cfg_text(cfg):
    """cfg (text or path) with every gated [fracconv] set to gate=0, as text."""
    text, _ = _read_source(cfg)
    lines = text.split("\n")
    sections = parse_cfg(text)
    gated = set(gated_layers(sections))
    layers = layers_of(sections)
    edits = {}                      # line number (1-based) -> replacement lines
    for layer in layers:
        if layer.index not in gated:
            continue
        sec = layer.section
        if "gate" in sec.key_lines:
            edits[sec.key_lines["gate"]] = ["gate=0"]
        else:
            edits[sec.line] = [lines[sec.line - 1], "gate=0"]
    out = []
    for no, line in enumerate(lines, start=1):
        out.extend(edits.get(no, [line]))
    return "\n".join(out)


def dense_twin(cfg, weights=None):
    """(cfg text, .weights bytes or None): the gate=0 twin of cfg and weights."""
    text = dense_cfg_text(cfg)
    if weights is None:
        return text, None
    gated = set(gated_layers(cfg))
    w = read_weights(cfg, weights)
    layers = [{n: a for n, a in arrays.items() if not (i in gated and n == "gate")}
              for i, arrays in enumerate(w.layers)]
    dense = DarknetWeights(w.major, w.minor, w.revision, w.seen, layers)
    return text, write_weights(text, dense)


def write_dense_twin(cfg, weights, prefix):
    """Writes prefix.cfg and prefix.weights; returns their paths."""
    text, data = dense_twin(cfg, weights)
    cfg_out, weights_out = os.fspath(prefix) + ".cfg", os.fspath(prefix) + ".weights"
    with open(cfg_out, "w") as f:
        f.write(text)
    with open(weights_out, "wb") as f:
        f.write(data)
    return cfg_out, weights_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cfg")
    ap.add_argument("weights")
    ap.add_argument("prefix", help="writes PREFIX.cfg and PREFIX.weights")
    args = ap.parse_args(argv)
    n = len(gated_layers(args.cfg))
    cfg_out, weights_out = write_dense_twin(args.cfg, args.weights, args.prefix)
    print("%s, %s: %d gated [fracconv] layer%s set to gate=0"
          % (cfg_out, weights_out, n, "" if n == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
