"""Full YOLOv3 and AlexNet on generated weights against Darknet, layer by layer."""
import json

import numpy as np
import pytest

import mdfi
from conftest import load_npy
from layer_stats import compare_layer


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov3", "alexnet"])
def test_every_layer_matches_darknet(golden, synthetic_weights, name):
    syn = golden / "synthetic"
    weights = synthetic_weights(name)
    x = np.load(syn / f"{name}.input.npy")
    ref = json.loads((syn / f"{name}.layers.json").read_text())
    with mdfi.Network(syn / f"{name}.cfg", weights, keep_outputs=True, threads=2) as net:
        out = net.forward(x)
        problems = []
        for entry in ref["layers"]:
            problems += compare_layer(net.layer_output(entry["index"]), entry)
        assert not problems, "\n".join(problems[:20])
        want = load_npy(syn / f"{name}.output.npy").ravel()
        got = out.ravel()
        assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1.0)
        if name == "yolov3":
            for layer in (82, 94, 106):
                w = load_npy(syn / f"yolov3.yolo{layer}.npy")
                g = net.layer_output(layer)
                assert np.abs(g - w).max() <= 1e-4 * max(np.abs(w).max(), 1.0), layer
