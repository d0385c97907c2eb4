"""benchmarks/peers.py in pieces and in one short run (no timing assertions): the
golden pre-NMS hit counting, MDFI fp32 keeping every hit, the peers that are
installed (the others must be skipped with a reason), the ONNX models it makes,
ncnn through pnnx (slow: the conversion) and the fresh-process peak RSS."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("peers_bench", ROOT / "benchmarks" / "peers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


peers = _load()


def _installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


HAVE_ONNX = _installed("torch", "onnx", "onnxruntime")


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model):
    return peers.Models(tmp_path_factory.mktemp("peers"), log=lambda *a: None)


def test_darknet_has_17_pre_nms_hits(golden):
    want = peers.golden_heads(golden)
    assert peers.agreement(want, want) == {"golden": 17, "kept": 17, "extra": 0,
                                           "max_abs_diff": 0.0}
    # the boxes behind them are those get_network_boxes keeps at 0.5
    # (num_boxes_before_nms: objectness > 0.5, 18; one has no class above 0.5)
    boxes = 0
    for name, heads in want.items():
        for h in heads:
            boxes += int((h.reshape(3, 85, *h.shape[-2:])[:, 4] > peers.THRESH).sum())
    ref = sum(json.loads((golden / "yolov3-tiny" / f"{n}.detections.json").read_text())
              ["num_boxes_before_nms"] for n in peers.GOLDEN_PHOTOS)
    assert boxes == ref


def test_agreement_counts_lost_and_extra_hits(golden):
    want = peers.golden_heads(golden)
    got = {k: tuple(a.copy() for a in v) for k, v in want.items()}
    head = got["person"][1].reshape(3, 85, 26, 26)
    a, c, y, x = np.argwhere(peers.hits(want["person"][1]))[0]
    lost = int(peers.hits(want["person"][1])[a, :, y, x].sum())
    head[a, 4, y, x] = 0.0                       # objectness gone: its hits are lost
    free = np.argwhere(~peers.hits(want["eagle"][0]).any(axis=1))[0]
    e = got["eagle"][0].reshape(3, 85, 13, 13)
    e[free[0], 5:, free[1], free[2]] = 0.0
    e[free[0], 4, free[1], free[2]] = 0.9
    e[free[0], 5 + 7, free[1], free[2]] = 0.9    # one new class above 0.5: one extra hit
    r = peers.agreement(got, want)
    assert (r["golden"], r["kept"], r["extra"]) == (17, 17 - lost, 1)
    assert r["max_abs_diff"] > 0.5


def _golden_agreement(name, golden, work):
    """(label, agreement) of one engine on the golden photos, one thread."""
    label, eng = peers.open_engine(name, work, 1)
    try:
        got = {n: eng.heads(x) for n, x in peers.golden_inputs(golden).items()}
    finally:
        eng.close()
    return label, peers.agreement(got, peers.golden_heads(golden))


def test_mdfi_fp32_keeps_every_golden_hit(golden, work):
    label, r = _golden_agreement("mdfi-fp32", golden, work)
    assert (r["kept"], r["extra"]) == (17, 0) and r["max_abs_diff"] <= 1e-4, r
    assert label == "MDFI fp32"


def test_short_run_with_the_installed_peers(golden, work, tmp_path, monkeypatch):
    """One round, one thread; a peer reported missing is skipped with its reason."""
    engines = ["mdfi-fp32"] + (["ort-fp32"] if HAVE_ONNX else [])
    if HAVE_ONNX and _installed("openvino"):
        engines.append("ov-fp32")
    real_need = peers._need

    def need(module):
        if module == "ncnn":
            raise peers.Skip("ncnn is not installed (pretended by the test)")
        return real_need(module)
    monkeypatch.setattr(peers, "_need", need)
    out = tmp_path / "r.json"
    assert peers.main(["--rounds", "1", "--threads", "1", "--gap", "0", "--no-rss", "--work",
                       str(work.work), "--engines", *engines, "ncnn-fp32", "--json",
                       str(out)]) == 0
    r = json.loads(out.read_text())
    assert "not installed" in r["skipped"]["ncnn-fp32"]
    assert set(r["engines"]) == set(engines) - {"ncnn-fp32"}
    assert r["cpu"]["name"] and isinstance(r["cpu"]["flags"], list)
    for key, e in r["engines"].items():
        assert e["median_ms"]["1"] > 0 and e["min_ms"]["1"] <= e["median_ms"]["1"]
        assert e["golden"]["golden"] == 17 and 0 <= e["golden"]["kept"] <= 17
    assert r["engines"]["mdfi-fp32"]["golden"]["kept"] == 17
    if "ort-fp32" in r["engines"]:
        ratio = r["ratios"]["mdfi-fp32"]["1"]
        assert ratio["median"] > 0 and ratio["peer"] in r["engines"]
        # the exported model reproduces Darknet (the bridge plus the export rewrites)
        assert r["engines"]["ort-fp32"]["golden"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_ONNX and _installed("ncnn") and peers.pnnx_executable()),
                    reason="needs torch, onnx, onnxruntime, ncnn and pnnx")
def test_ncnn_from_the_onnx_model(golden, work):
    label, r = _golden_agreement("ncnn-fp32", golden, work)
    assert label == "ncnn fp32 (pnnx)" and work.notes["ncnn_tool"] == "pnnx"
    assert r["kept"] >= 16 and r["max_abs_diff"] < 0.1, r   # Winograd rounding, not an error


@pytest.mark.skipif(not HAVE_ONNX, reason="needs torch, onnx and onnxruntime")
def test_int8_onnx_keeps_the_first_conv_and_the_heads_float(golden, work, tmp_path):
    import onnx
    import onnxruntime as ort
    fp32 = work.onnx_fp32()
    x = peers.golden_inputs(golden)["dog"]
    q = tmp_path / "q.onnx"
    peers.quantize_onnx(fp32, q, [x])
    g = onnx.load(str(q)).graph
    conv_inputs = {n.name: list(n.input) for n in g.node if n.op_type == "Conv"}
    quantized = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    assert not any(i in quantized for i in conv_inputs["/net/layers.0/Conv"])
    assert all(i in quantized for i in conv_inputs["/net/layers.2/Conv"][:2])
    assert not any("/layers.16/" in n.name or "/layers.23/" in n.name
                   for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    y16, y23 = sess.run(["yolo16", "yolo23"], {"images": x[None]})
    assert y16.shape == (1, 255, 13, 13) and y23.shape == (1, 255, 26, 26)


def test_peak_rss_in_a_fresh_process(work):
    r = peers.rss_child("mdfi-fp32", work.work, 1)
    assert "error" not in r, r
    # the float parameters alone are 35 MB
    assert r["peak_kb"] - r["base_kb"] > 30_000
