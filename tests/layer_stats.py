"""Compares MDFI layer outputs with the statistics in a golden layers.json."""
import math

import numpy as np


def compare_layer(got, entry, rtol=1e-4):
    """Returns a list of problems (empty when the layer agrees)."""
    problems = []
    flat = got.ravel()
    if flat.size != entry["outputs"]:
        return [f"layer {entry['index']}: {flat.size} outputs, Darknet {entry['outputs']}"]
    scale = max(float(np.abs(flat).max()), 1e-6)
    total = math.fsum(flat.astype(np.float64))
    total_abs = math.fsum(np.abs(flat).astype(np.float64))
    if abs(total - entry["sum"]) > rtol * max(entry["sum_abs"], 1e-6):
        problems.append(f"sum {total} vs {entry['sum']}")
    if abs(total_abs - entry["sum_abs"]) > rtol * max(entry["sum_abs"], 1e-6):
        problems.append(f"sum_abs {total_abs} vs {entry['sum_abs']}")
    for key, val in (("min", flat.min()), ("max", flat.max())):
        if abs(float(val) - entry[key]) > rtol * scale:
            problems.append(f"{key} {val} vs {entry[key]}")
    off = entry["mid8_offset"]
    for key, vals in (("first8", flat[:8]), ("mid8", flat[off:off + 8])):
        diff = np.abs(vals - np.asarray(entry[key], dtype=np.float32)).max()
        if diff > rtol * scale:
            problems.append(f"{key} differs by {diff} (scale {scale})")
    return [f"layer {entry['index']} {entry['type']}: {p}" for p in problems]
