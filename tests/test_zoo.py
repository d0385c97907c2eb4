"""The Darknet cfg zoo: every cfg of pjreddie's and AlexeyAB's cfg/ folders
(tests/data/darknet-cfgs.tar.gz, see its PROVENANCE) builds in MDFI, or is refused with
the reason listed in REFUSED; a selection runs on generated weights and is compared with
OpenCV's DNN module (which reads Darknet files itself), or, where OpenCV lacks the layer,
with a numpy reference of Darknet's code.  docs/cfg-zoo.md lists the results."""
import importlib.util
import json
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import mdfi

ROOT = pathlib.Path(__file__).resolve().parent
ARCHIVE = ROOT / "data" / "darknet-cfgs.tar.gz"
GEN = ROOT / "data" / "gen_weights.py"

# The cfgs MDFI refuses, with the text its error must contain.
RECURRENT = "recurrent layers are not supported"
REFUSED = {
    "pj/gru.cfg": RECURRENT,
    "pj/rnn.cfg": RECURRENT,
    "pj/rnn.train.cfg": RECURRENT,
    "ab/crnn.train.cfg": RECURRENT,
    "ab/gru.cfg": RECURRENT,
    "ab/lstm.train.cfg": RECURRENT,
    "ab/rnn.cfg": RECURRENT,
    "ab/rnn.train.cfg": RECURRENT,
    "ab/yolov3-tiny_occlusion_track.cfg": RECURRENT,
    # YOLO9000's word tree
    "pj/yolo9000.cfg": "tree= (YOLO9000's hierarchical softmax) is not supported",
    "ab/yolo9000.cfg": "tree= (YOLO9000's hierarchical softmax) is not supported",
    "pj/darknet9000.cfg": "[softmax]: tree= (a hierarchical softmax) is not supported",
    # broken in AlexeyAB's tree: anchors past num (Darknet reads past its biases)
    "ab/cspx-p7-mish.cfg": "mask 16 is not an anchor index (0..15)",
    "ab/cspx-p7-mish_hp.cfg": "31 anchor values for num=16 (need 32)",
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(out, filter="data")
    return out


def cfg_names(root):
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.cfg"))


def test_every_cfg_builds_or_is_refused_for_its_reason(zoo):
    names = cfg_names(zoo)
    assert len(names) == 132
    built, wrong = [], []
    for name in names:
        try:
            mdfi.Network(zoo / name).close()
        except mdfi.MdfiError as exc:
            if REFUSED.get(name) not in str(exc):
                wrong.append(f"{name}: {exc}")
            continue
        if name in REFUSED:
            wrong.append(f"{name} builds now: take it off REFUSED")
        built.append(name)
    assert not wrong, "\n".join(wrong)
    distinct = {(zoo / n).read_bytes() for n in built}
    refused = {(zoo / n).read_bytes() for n in REFUSED if REFUSED[n] != RECURRENT}
    print(f"{len(built)} of {len(names)} cfg files build; distinct non-recurrent cfgs: "
          f"{len(distinct)} build, {len(refused)} refused")


def test_the_docs_list_every_cfg_as_the_test_does(zoo):
    doc = (ROOT.parent / "docs" / "cfg-zoo.md").read_text()
    for name in cfg_names(zoo):
        status = "refused" if name in REFUSED else "builds"
        assert f"| `{name}` | {status} |" in doc, name


def test_recurrent_cfgs_are_refused_as_unsupported(zoo):
    with pytest.raises(mdfi.UnsupportedError, match=r"gru.cfg:14: recurrent layers are not "
                                                     r"supported: section \[gru\]"):
        mdfi.Network(zoo / "ab" / "gru.cfg")


def resized(zoo, tmp_path, name, size):
    """The cfg with [net] width and height set to size (fully convolutional networks)."""
    lines = (zoo / name).read_text().splitlines()
    seen = set()
    for i, line in enumerate(lines):
        key = line.split("=")[0].strip()
        if key in ("width", "height") and key not in seen:
            lines[i] = f"{key}={size}"
            seen.add(key)
    out = tmp_path / pathlib.Path(name).name
    out.write_text("\n".join(lines) + "\n")
    return out


def weights_for(cfg, tmp_path):
    out = tmp_path / (cfg.stem + ".weights")
    subprocess.run([sys.executable, str(GEN), str(cfg), "1", str(out)], check=True,
                   capture_output=True)
    return out


def both(cfg, weights):
    cv2 = pytest.importorskip("cv2")
    net = mdfi.Network(cfg, weights, keep_outputs=True)
    cvnet = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    c, h, w = net.layers[0].input_shape
    x = np.random.default_rng(0).random((c, h, w), dtype=np.float32)
    net.forward(x)
    cvnet.setInput(x[None])
    return net, cvnet, x


def yolo_rows(net, i, anchors):
    """MDFI's [yolo] layer i as OpenCV's rows: cell-major then anchor; x, y made absolute."""
    y = net.layer_output(i)
    c, h, w = y.shape
    k = c // anchors
    m = y.reshape(anchors, k, h, w).transpose(2, 3, 0, 1).reshape(-1, k).copy()
    m[:, 0] = (m[:, 0] + np.repeat(np.tile(np.arange(w), h), anchors)) / w
    m[:, 1] = (m[:, 1] + np.repeat(np.repeat(np.arange(h), w), anchors)) / h
    return m


@pytest.mark.parametrize("name, size", [
    ("ab/yolov4-tiny.cfg", 416),          # route groups, scale_x_y, greedynms
    ("ab/yolov7-tiny.cfg", 416),          # new_coords, diounms
    ("ab/yolov3-tiny-prn.cfg", 416),      # [shortcut] of unequal channel counts
    ("ab/yolov4-csp-s-mish.cfg", 256),    # mish, new_coords
])
def test_detectors_equal_opencv(zoo, tmp_path, name, size):
    cfg = resized(zoo, tmp_path, name, size)
    net, cvnet, _ = both(cfg, weights_for(cfg, tmp_path))
    with net:
        outs = cvnet.forward(cvnet.getUnconnectedOutLayersNames())
        heads = [i for i, layer in enumerate(net.layers) if layer.type == "yolo"]
        assert len(heads) == len(outs)
        for i, o in zip(heads, outs):
            m = yolo_rows(net, i, net.layer_output(i).shape[0] // o.shape[1])
            # x, y (scale_x_y applied) and objectness; OpenCV zeroes weak class scores
            np.testing.assert_allclose(m[:, [0, 1, 4]], o[:, [0, 1, 4]], rtol=1e-4, atol=1e-6)
        # the decoded boxes (w, h by the head's formula), before NMS
        rows = np.concatenate(outs)
        live = np.flatnonzero(rows[:, 4] > 0.25)
        dets = net.detect((size, size), thresh=0.25, nms=0)
        boxes = {d.det_index: d.box for d in dets}
        assert boxes and set(boxes) <= set(range(len(live)))
        got = np.array([boxes[k] for k in sorted(boxes)])
        np.testing.assert_allclose(got, rows[live[sorted(boxes)], :4], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, size", [
    ("pj/yolov2.cfg", 320),               # [reorg], [region] with softmax
    ("pj/yolov2-tiny.cfg", 416),
    ("ab/tiny-yolo.cfg", 416),
])
def test_yolov2_equals_opencv(zoo, tmp_path, name, size):
    """[region]: x, y, objectness and the boxes (w, h over the grid, every cell and anchor,
    anchor-major) against OpenCV; the class softmax against numpy (OpenCV zeroes scores
    under its own threshold, and a softmax over 80 classes stays under it)."""
    cfg = resized(zoo, tmp_path, name, size)
    net, cvnet, _ = both(cfg, weights_for(cfg, tmp_path))
    with net:
        rows = cvnet.forward()
        last = len(net.layers) - 1
        assert net.layers[last].type == "region"
        y = net.layer_output(last)
        anchors = y.shape[0] // rows.shape[1]
        m = yolo_rows(net, last, anchors)
        np.testing.assert_allclose(m[:, [0, 1, 4]], rows[:, [0, 1, 4]], rtol=1e-4, atol=1e-6)
        raw = net.layer_output(last - 1)
        c, h, w = raw.shape
        logits = raw.reshape(anchors, c // anchors, h, w)[:, 5:].astype(np.float64)
        soft = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft /= soft.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(y.reshape(anchors, c // anchors, h, w)[:, 5:], soft,
                                   rtol=1e-5, atol=1e-7)
        dets = net.detect((size, size), thresh=1e-3, nms=0)
        plane = h * w
        assert len({d.det_index for d in dets}) > 100
        for d in dets[::7]:
            n, i = divmod(d.det_index, plane)      # MDFI lists boxes anchor-major, as Darknet
            np.testing.assert_allclose(d.box, rows[i * anchors + n, :4], rtol=1e-4, atol=1e-6)


def reorg_ref(x, w, h, c, stride, forward):
    """Darknet's reorg_cpu (both trees' body), on the flat array x."""
    k, j, i = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    in_index = i + w * (j + h * k)
    in_c = c // (stride * stride)
    c2, offset = k % in_c, k // in_c
    w2, h2 = i * stride + offset % stride, j * stride + offset // stride
    out_index = w2 + w * stride * (h2 + h * stride * c2)
    out = np.empty_like(x)
    if forward:
        out[out_index] = x[in_index]
    else:
        out[in_index] = x[out_index]
    return out


@pytest.mark.parametrize("section, reverse", [("reorg", 0), ("reorg", 1), ("reorg3d", 0),
                                              ("reorg3d", 1)])
def test_reorg_equals_darknets_code(tmp_path, section, reverse):
    """[reorg] calls reorg_cpu with the input's shape, [reorg3d] with the output's."""
    cfg = tmp_path / "r.cfg"
    cfg.write_text("[net]\nwidth=12\nheight=8\nchannels=3\n\n[convolutional]\nfilters=16\n"
                   "size=3\npad=1\nactivation=linear\n\n"
                   f"[{section}]\nstride=2\nreverse={reverse}\n")
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        x = np.random.default_rng(0).random((3, 8, 12), dtype=np.float32)
        out = net.forward(x)
        src = net.layer_output(0)
        shape = src.shape if section == "reorg" else out.shape
        c, h, w = shape
        ref = reorg_ref(src.reshape(-1), w, h, c, 2, reverse)
        assert out.shape == ((4, 16, 24) if reverse else (64, 4, 6))
        np.testing.assert_array_equal(out.reshape(-1), ref)


def reorg_flat_ref(x, c, h, w, reverse, extra):
    """pjreddie's forward_reorg_layer for flatten=1 (blas.c's flatten with forward =
    !reverse) and for extra=N (the input copied, the N outputs left as calloc made them)."""
    if extra:
        return np.concatenate([x, np.zeros(extra, np.float32)])
    size, out = h * w, np.empty_like(x)
    for ch in range(c):
        for i in range(size):
            i1, i2 = ch * size + i, i * c + ch
            if not reverse:
                out[i2] = x[i1]
            else:
                out[i1] = x[i2]
    return out


@pytest.mark.parametrize("keys, shape", [
    ("flatten=1\n", (5, 6, 4)),
    ("flatten=1\nreverse=1\n", (5, 6, 4)),
    ("flatten=1\nstride=2\n", (20, 3, 2)),           # Darknet's shape, the HWC data
    ("flatten=1\nstride=2\nreverse=1\n", None),      # 5 channels: stride^2 does not divide
    ("extra=1\n", (121, 1, 1)),
    ("extra=7\nstride=5\n", (127, 1, 1)),            # extra ignores the stride, as Darknet
])
def test_reorg_flatten_and_extra_equal_darknets_code(tmp_path, keys, shape):
    cfg = tmp_path / "f.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=6\nchannels=3\n\n[convolutional]\nfilters=5\n"
                   "size=3\npad=1\nactivation=linear\n\n[reorg]\n" + keys)
    if shape is None:
        with pytest.raises(mdfi.ShapeError, match=r"f\.cfg:12: layer 1 \[reorg\]: stride=2 "
                                                  r"does not divide the input 5x6x4"):
            mdfi.Network(cfg)
        return
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        out = net.forward(np.random.default_rng(1).random((3, 6, 4), dtype=np.float32))
        assert out.shape == shape
        extra = int(keys.split("extra=")[1].split()[0]) if "extra" in keys else 0
        ref = reorg_flat_ref(net.layer_output(0).reshape(-1), 5, 6, 4, "reverse" in keys, extra)
        np.testing.assert_array_equal(out.reshape(-1), ref)


@pytest.mark.parametrize("keys, match", [
    ("flatten=1\nextra=1\n", r"extra=1 must be >= 0, sane and without flatten= \(Darknet reads "
                            r"past its input\)"),
    ("extra=-3\n", r"extra=-3 must be >= 0"),
    ("extra=2147483647\n", r"extra=2147483647 must be >= 0, sane"),
])
def test_bad_reorg_keys_name_the_line(tmp_path, keys, match):
    cfg = tmp_path / "g.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=6\nchannels=3\n\n[reorg]\n" + keys)
    with pytest.raises(mdfi.CfgError, match=r"g\.cfg:6: layer 0 \[reorg\]: " + match):
        mdfi.Network(cfg)


@pytest.mark.parametrize("keys", ["flatten=1\nstride=10000002\n", "stride=65\n",
                                  "extra=7\nstride=2147483647\n", "reverse=1\nstride=-46341\n"])
def test_reorg_refuses_a_huge_stride_before_squaring_it(tmp_path, keys):
    """stride^2 was computed before the stride was checked: 10000002 overflowed int
    (the fuzzer's regress-reorg-stride-squared.cfg).  Every stride past the kernel
    limit is refused with the layer's line, extra= or not."""
    cfg = tmp_path / "h.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=6\nchannels=3\n\n[reorg]\n" + keys)
    with pytest.raises(mdfi.ShapeError, match=r"h\.cfg:6: layer 0 \[reorg\]: stride=-?\d+ does "
                                              r"not divide the input 3x6x4"):
        mdfi.Network(cfg)


def test_go_engine_passes_with_a_zero_logit(zoo, tmp_path):
    """go.test.cfg: the board's 361 logits and the pass move's 0 (extra=1) in one softmax.
    OpenCV reads the file but its [reorg] ignores extra=: no reference there."""
    cfg = zoo / "pj" / "go.test.cfg"
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        out = net.forward(np.random.default_rng(2).random((1, 19, 19), dtype=np.float32))
        logits = np.concatenate([net.layer_output(13).reshape(-1), [0.0]]).astype(np.float64)
        ref = np.exp(logits - logits.max())
        np.testing.assert_allclose(out.reshape(-1), ref / ref.sum(), rtol=1e-5, atol=1e-9)
        assert out.shape == (362, 1, 1)


def test_sam_multiplies_elementwise(tmp_path):
    cfg = tmp_path / "sam.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=linear\n\n"
                   "[convolutional]\nfilters=4\nsize=1\nactivation=logistic\n\n"
                   "[sam]\nfrom=-2\nactivation=leaky\n")
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        out = net.forward(np.random.default_rng(0).random((3, 8, 8), dtype=np.float32))
        prod = net.layer_output(1) * net.layer_output(0)
        ref = np.where(prod > 0, prod, (0.1 * prod.astype(np.float64)).astype(np.float32))
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name, size", [
    ("ab/cifar.cfg", 32),                 # [crop] (the centre, x 2 - 1)
    ("ab/darknet19.cfg", 224),            # [cost]
    ("ab/efficientnet_b0.cfg", 224),      # swish, [scale_channels]
    ("ab/csdarknet53-omega.cfg", 256),    # mish
])
def test_classifiers_equal_opencv(zoo, tmp_path, name, size):
    cfg = resized(zoo, tmp_path, name, size)
    net, cvnet, _ = both(cfg, weights_for(cfg, tmp_path))
    with net:
        out = net.layer_output(len(net.layers) - 1).reshape(-1)
        ref = cvnet.forward().reshape(-1)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_inline_comments_read_as_darknet_reads_them(zoo, tmp_path):
    """efficientnet-lite3 writes filters=40\t#32: the same network as with the comments cut
    (OpenCV cannot check it: it has no relu6)."""
    cfg = resized(zoo, tmp_path, "ab/efficientnet-lite3.cfg", 96)
    clean = tmp_path / "clean.cfg"
    lines = cfg.read_text().splitlines()
    assert sum("#" in ln.split("=", 1)[-1] for ln in lines if "=" in ln and
               not ln.startswith("#")) > 40
    clean.write_text("\n".join(ln.split("#")[0].rstrip() if "=" in ln and not ln.startswith("#")
                               else ln for ln in lines) + "\n")
    weights = weights_for(clean, tmp_path)
    x = np.random.default_rng(0).random((3, 96, 96), dtype=np.float32)
    with mdfi.Network(cfg, weights) as a, mdfi.Network(clean, weights) as b:
        assert [layer.filters for layer in a.layers] == [layer.filters for layer in b.layers]
        np.testing.assert_array_equal(a.forward(x), b.forward(x))


def numpy_activation(x, name):
    """AlexeyAB's activations.h in float32."""
    f = np.float32
    if name == "relu6":
        return np.minimum(np.maximum(x, f(0)), f(6))
    if name == "swish":
        with np.errstate(over="ignore"):     # e^-x = inf: 1/inf = 0, as in C
            return x * (f(1) / (f(1) + np.exp(-x)))
    if name == "mish":
        sp = np.where(x > 20, x, np.where(x < -20, np.exp(x), np.log(np.exp(x) + f(1))))
        return x * (f(2) / (f(1) + np.exp(f(-2) * sp)) - f(1))
    raise ValueError(name)


def exact_activation(x, name):
    """The activations' definitions in float64."""
    x = x.astype(np.float64)
    if name == "relu6":
        return np.clip(x, 0, 6)
    if name == "swish":
        return x / (1 + np.exp(-x))
    return x * np.tanh(np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))))


@pytest.mark.parametrize("kernel", ["ref", None])
@pytest.mark.parametrize("act", ["relu6", "swish", "mish"])
def test_alexeyab_activations(tmp_path, act, kernel):
    """The scalar loop (kernel=ref, or a CPU without AVX2) is AlexeyAB's float formulas
    (numpy); the x86 kernels' vector swish and mish (kernels/x86/act_avx2.c) are within
    4 ulps of the definition, closer than AlexeyAB's mish (its tanh of a small softplus
    cancels)."""
    text = ("[net]\nwidth=16\nheight=16\nchannels=3\n\n[convolutional]\nfilters=16\nsize=3\n"
            "pad=1\nactivation=ACT\n")
    lin, nonlin = tmp_path / "lin.cfg", tmp_path / "act.cfg"
    lin.write_text(text.replace("ACT", "linear"))
    nonlin.write_text(text.replace("ACT", act))
    weights = weights_for(lin, tmp_path)
    x = (np.random.default_rng(0).random((3, 16, 16), dtype=np.float32) - 0.5) * 60
    with mdfi.Network(lin, weights, kernel=kernel) as a, \
            mdfi.Network(nonlin, weights, kernel=kernel) as b:
        pre = a.forward(x)
        assert pre.min() < -20 and pre.max() > 20    # both softplus branches and the middle
        got = b.forward(x)
        scalar = b.kernel not in ("avx2", "avx512")
    if scalar:
        # numpy's float32 exp/log and libm's expf/logf may differ by an ulp; mish's
        # 2/(1+e^-2s) - 1 cancels near 0, which turns that into ~1e-6 absolute
        np.testing.assert_allclose(got, numpy_activation(pre, act), rtol=2e-6,
                                   atol=2e-6 if act == "mish" else 1e-7)
    else:
        np.testing.assert_allclose(got, exact_activation(pre, act), rtol=4.8e-7, atol=1e-30)


def sections(cfg):
    """The cfg's layer sections as dicts (comments dropped), [net] left out."""
    out = []
    for line in cfg.read_text().splitlines():
        line = "".join(line.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            out.append({})
        else:
            key, _, value = line.partition("=")
            out[-1].setdefault(key, value)
    return out[1:]


def shortcut_ref(prev, add, alpha=1.0, beta=1.0):
    """pjreddie's shortcut_cpu: out starts as prev; add sampled over the smaller shape."""
    c2, h2, w2 = prev.shape
    c1, h1, w1 = add.shape
    stride, sample = max(w1 // w2, 1), max(w2 // w1, 1)
    out = prev.copy()
    mc, mh, mw = min(c1, c2), min(h1, h2), min(w1, w2)
    src = add[:mc, :mh * stride:stride, :mw * stride:stride]
    dst = out[:mc, :mh * sample:sample, :mw * sample:sample]
    out[:mc, :mh * sample:sample, :mw * sample:sample] = \
        np.float32(alpha) * dst + np.float32(beta) * src
    return out


@pytest.mark.parametrize("name", ["pj/resnet18.cfg", "pj/resnet50.cfg"])
def test_unequal_shortcuts_equal_darknets_code(zoo, tmp_path, name):
    """OpenCV refuses these (its sum needs equal shapes): every [shortcut] of unequal shapes
    against a numpy transcription of pjreddie's shortcut_cpu on MDFI's own inputs."""
    cfg = resized(zoo, tmp_path, name, 128)
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        x = np.random.default_rng(0).random(net.layers[0].input_shape, dtype=np.float32)
        net.forward(x)
        layers = sections(cfg)
        checked = 0
        for i, layer in enumerate(net.layers):
            if layer.type != "shortcut":
                continue
            frm = int(layers[i]["from"])
            j = frm if frm >= 0 else i + frm
            prev, add = net.layer_output(i - 1), net.layer_output(j)
            if prev.shape == add.shape:
                continue
            act = layer.activation
            ref = shortcut_ref(prev, add)
            if act == "relu":
                ref = np.maximum(ref, 0)
            elif act == "leaky":
                # pjreddie's leaky: .1 * x in double, then float
                ref = np.where(ref > 0, ref, (0.1 * ref.astype(np.float64)).astype(np.float32))
            else:
                assert act == "linear"
            np.testing.assert_array_equal(net.layer_output(i), ref)
            checked += 1
        assert checked >= 1


def diou_nms_ref(dets, classes, thresh, beta):
    """AlexeyAB's diounms_sort over the boxes MDFI decoded (nms=0): for each class a
    stable sort by probability, then each kept box suppresses the later ones whose
    IoU - (d^2 / c^2)^beta (float32; the power in double) is above thresh.  Returns the
    (box, class, prob) left, sorted."""
    index = sorted({d.det_index for d in dets})
    row = {k: r for r, k in enumerate(index)}
    box = np.zeros((len(index), 4), np.float32)
    prob = np.zeros((len(index), classes), np.float32)
    for d in dets:
        box[row[d.det_index]] = d.box
        prob[row[d.det_index], d.class_id] = d.prob
    half = np.float32(0.5)
    x, y, w, h = box.T
    lo_x, hi_x, lo_y, hi_y = x - w * half, x + w * half, y - h * half, y + h * half
    order = np.arange(len(index))
    for k in range(classes):
        order = order[np.argsort(-prob[order, k], kind="stable")]
        for i, a in enumerate(order):
            if prob[a, k] == 0:
                continue
            b = order[i + 1:]
            iw = np.minimum(hi_x[a], hi_x[b]) - np.maximum(lo_x[a], lo_x[b])
            ih = np.minimum(hi_y[a], hi_y[b]) - np.maximum(lo_y[a], lo_y[b])
            inter = np.where((iw < 0) | (ih < 0), np.float32(0), iw * ih)
            with np.errstate(invalid="ignore", divide="ignore"):
                measure = inter / ((w[a] * h[a] + w[b] * h[b]) - inter)
                cw = np.maximum(hi_x[a], hi_x[b]) - np.minimum(lo_x[a], lo_x[b])
                ch = np.maximum(hi_y[a], hi_y[b]) - np.minimum(lo_y[a], lo_y[b])
                c = cw * cw + ch * ch
                dd = (x[a] - x[b]) * (x[a] - x[b]) + (y[a] - y[b]) * (y[a] - y[b])
                if beta is not None:    # None: do_nms_sort's plain IoU
                    term = np.power((dd / c).astype(np.float64), np.float64(beta))
                    measure = np.where(c == 0, measure, measure - term.astype(np.float32))
            prob[b[measure > thresh], k] = 0
    return sorted((tuple(box[r].tolist()), k, float(prob[r, k]))
                  for r in range(len(index)) for k in range(classes) if prob[r, k] > 0)


@pytest.mark.parametrize("name, beta", [("ab/yolov4-tiny.cfg", 0.6),    # greedynms
                                        ("ab/yolov7-tiny.cfg", 0.6)])   # diounms, beta_nms 0.6
def test_alexeyab_nms_equals_a_reference(zoo, tmp_path, name, beta):
    cfg = zoo / name
    text = cfg.read_text()
    assert ("nms_kind=greedynms" in text) or ("nms_kind=diounms" in text and "beta_nms=0.6" in text)
    with mdfi.Network(cfg, weights_for(cfg, tmp_path)) as net:
        x = np.random.default_rng(1).random(net.layers[0].input_shape, dtype=np.float32)
        net.forward(x)
        raw = net.detect((416, 416), thresh=0.3, nms=0)
        kept = net.detect((416, 416), thresh=0.3, nms=0.45)
    assert len(raw) > 500 and len(kept) < 0.8 * len(raw)
    got = sorted((tuple(d.box), d.class_id, d.prob) for d in kept)
    ref = diou_nms_ref(raw, 80, np.float32(0.45), np.float32(beta))
    plain = diou_nms_ref(raw, 80, np.float32(0.45), None)
    assert got == ref
    assert got != plain        # the DIoU term changed what survives


# ----------------------------------------------------------------------------- AlexeyAB's conv keys

def read_floats(weights):
    """A generated .weights file's floats (header 0.2.0: 20 bytes)."""
    return np.frombuffer(weights.read_bytes()[20:], dtype="<f4")


def im2col_ext(im, size, pad, stride_y, stride_x, dilation):
    """AlexeyAB's im2col_cpu_ext: [c][ky][kx] rows of [oy][ox] columns, zeros off the image."""
    c, h, w = im.shape
    oh = (h + 2 * pad - (dilation * (size - 1) + 1)) // stride_y + 1
    ow = (w + 2 * pad - (dilation * (size - 1) + 1)) // stride_x + 1
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), np.float32)
    padded[:, pad:pad + h, pad:pad + w] = im
    cols = np.empty((c, size, size, oh, ow), np.float32)
    for ky in range(size):
        for kx in range(size):
            y0, x0 = ky * dilation, kx * dilation
            cols[:, ky, kx] = padded[:, y0:y0 + stride_y * (oh - 1) + 1:stride_y,
                                     x0:x0 + stride_x * (ow - 1) + 1:stride_x]
    return cols.reshape(c * size * size, oh * ow), oh, ow


CONVS = [  # (size, pad key, stride_x, stride_y, dilation)
    (3, "pad=1", 1, 1, 2), (3, "pad=1", 1, 1, 3), (5, "pad=1", 2, 2, 3),
    (3, "pad=1", 2, 1, 1), (3, "pad=1", 1, 3, 2), (1, "pad=0", 2, 3, 4),
    (3, "pad=1", 3, 2, 2),
]


@pytest.mark.parametrize("size, pad, sx, sy, dil", CONVS)
def test_dilated_and_strided_convs_equal_darknets_code(tmp_path, size, pad, sx, sy, dil):
    """resnet152_trident's dilation (AlexeyAB pads by padding x dilation and keeps the
    undilated output size) and the separate stride_x / stride_y, against a transcription of
    AlexeyAB's im2col_cpu_ext and GEMM on the weights in the file (OpenCV's importer
    ignores these keys).  Both conv paths: the AVX2 kernel's and the reference's."""
    cfg = tmp_path / "d.cfg"
    cfg.write_text("[net]\nwidth=23\nheight=17\nchannels=3\n\n"
                   f"[convolutional]\nfilters=7\nsize={size}\n{pad}\nstride_x={sx}\n"
                   f"stride_y={sy}\ndilation={dil}\nactivation=linear\n")
    weights = weights_for(cfg, tmp_path)
    floats = read_floats(weights)
    bias, w = floats[:7], floats[7:].reshape(7, -1)
    x = np.random.default_rng(2).random((3, 17, 23), dtype=np.float32)
    d = 1 if size == 1 else dil                      # Darknet: a 1x1 kernel is not dilated
    padding = size // 2 if pad == "pad=1" else 0
    cols, oh, ow = im2col_ext(x, size, padding * d, sy, sx, d)
    assert (oh, ow) == ((17 + 2 * padding - size) // sy + 1, (23 + 2 * padding - size) // sx + 1)
    ref = (w.astype(np.float64) @ cols).reshape(7, oh, ow) + bias[:, None, None]
    for kernel in (None, "ref"):
        with mdfi.Network(cfg, weights, kernel=kernel) as net:
            out = net.forward(x)
            assert net.layers[0].flops == 2 * 7 * 3 * size * size * oh * ow
        assert out.shape == (7, oh, ow)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_share_index_reads_the_sources_parameters(tmp_path):
    """share_index (absolute, relative, and a chain through a sharer) gives the output of
    the same cfg in which each sharer has its own copy of the source's parameters."""
    head = "[net]\nwidth=16\nheight=12\nchannels=3\n\n"
    conv = "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\npad=1\nactivation=leaky\n"
    body = [conv, conv, conv + "SHARE=1\ndilation=2\n", "[route]\nlayers=0\n",
            conv + "SHARE=-3\n", conv + "SHARE=4\nstride_x=2\n"]
    shared, own = tmp_path / "shared.cfg", tmp_path / "own.cfg"
    shared.write_text(head + "\n".join(b.replace("SHARE", "share_index") for b in body))
    own.write_text(head + "\n".join(b.replace("SHARE", "#share_index") for b in body))
    weights = weights_for(shared, tmp_path)
    floats = read_floats(weights)
    per = 8 * 4 + 8 * 8 * 9
    first = 8 * 4 + 8 * 3 * 9
    assert len(floats) == first + per          # layers 2, 4 and 5 have none of their own
    layer1 = floats[first:]
    copied = tmp_path / "own.weights"
    copied.write_bytes(weights.read_bytes() + np.tile(layer1, 3).astype("<f4").tobytes())
    x = np.random.default_rng(3).random((3, 12, 16), dtype=np.float32)
    with mdfi.Network(shared, weights, keep_outputs=True) as a, \
            mdfi.Network(own, copied, keep_outputs=True) as b:
        a.forward(x)
        b.forward(x)
        for i in (2, 4, 5):
            np.testing.assert_array_equal(a.layer_output(i), b.layer_output(i))


@pytest.mark.parametrize("keys, error, match", [
    ("size=3\npad=1\ndilation=0\n", mdfi.CfgError, r"d\.cfg:6: layer 0 .*dilation=0"),
    ("size=3\npad=1\ndilation=65\n", mdfi.CfgError, r"d\.cfg:6: layer 0 .*dilation=65 \(1\.\.64"),
    ("size=3\nstride_y=99\n", mdfi.CfgError, r"d\.cfg:6: layer 0 .*stride=1,99"),
    ("size=2\npadding=1\ndilation=2\n", mdfi.UnsupportedError,
     r"d\.cfg:6: layer 0 \[convolutional\]: dilation=2, stride_y=1: Darknet's output size and"),
    ("size=1\nstride_y=2\n", mdfi.UnsupportedError, r"d\.cfg:6: layer 0 .*stride_y=2: Darknet"),
    ("size=3\nshare_index=0\n", mdfi.CfgError, r"d\.cfg:9: layer 0 \[convolutional\]: share_index"
                                               r"=0 refers to layer 0, which is not an earlier"),
    ("size=3\npad=1\nxnor=1\ndilation=2\n", mdfi.UnsupportedError,
     r"layer 0 \[convolutional\]: dilation, .* not supported on the binary \(xnor=1\) path"),
])
def test_bad_conv_keys_name_the_layer(tmp_path, keys, error, match):
    cfg = tmp_path / "d.cfg"
    cfg.write_text("[net]\nwidth=9\nheight=9\nchannels=2\n\n[convolutional]\nfilters=2\n"
                   + keys)
    with pytest.raises(error, match=match):
        mdfi.Network(cfg)


@pytest.mark.parametrize("route, size, filters, weights", [(8, 64, 1, 2 ** 31),
                                                           (4, 64, 3, 3 * 2 ** 30)])
def test_a_convolution_of_2_to_the_31_weights_is_refused(tmp_path, route, size, filters, weights):
    """K = input channels x size^2 is the GEMM's int: 8 routed copies of 65536
    channels into a 64x64 kernel made 2^31 and overflowed it (UBSan, found by
    reading the parse after the fuzzer's [reorg] finding).  2^31 weights or more
    are refused, naming the layer, before anything is allocated."""
    cfg = tmp_path / "k.cfg"
    cfg.write_text("[net]\nwidth=1\nheight=1\nchannels=3\n\n[convolutional]\nfilters=65536\n"
                   "size=1\nactivation=linear\n\n[route]\nlayers=" + ",".join(["-1"] * route)
                   + "\n\n[convolutional]\nfilters=%d\nsize=%d\npad=1\nactivation=linear\n"
                   % (filters, size))
    with pytest.raises(mdfi.ShapeError, match=r"k\.cfg:14: layer 2 \[convolutional\]: "
                                              r"%d weights" % weights):
        mdfi.Network(cfg)


@pytest.mark.parametrize("text, match", [
    ("[convolutional]\nfilters=2\nsize=3\n\n[convolutional]\nfilters=2\nsize=1\nshare_index=-1\n",
     r"b\.cfg:13: layer 1 \[convolutional\]: share_index=-1: layer 0 is not a convolution of "
     r"this shape"),
    # a window wholly outside the image: Darknet divides by zero
    ("[local_avgpool]\nsize=2\npadding=3\n",
     r"b\.cfg:8: layer 0 \[local_avgpool\]: padding=3 leaves windows of size=2 outside the image"),
    # padding's default size - 1 overflowed (UBSan, the fuzz loop; [maxpool] had it too)
    ("[maxpool]\nsize=-2147483648\n",
     r"b\.cfg:6: layer 0 \[maxpool\]: bad size=-2147483648 stride=1,1 padding=0"),
    ("[local_avgpool]\nsize=-2147483648\n",
     r"b\.cfg:6: layer 0 \[local_avgpool\]: bad size=-2147483648"),
])
def test_bad_sections_name_the_line(tmp_path, text, match):
    cfg = tmp_path / "b.cfg"
    cfg.write_text("[net]\nwidth=9\nheight=9\nchannels=2\n\n" + text)
    with pytest.raises(mdfi.CfgError, match=match):
        mdfi.Network(cfg)


def local_avgpool_ref(x, size, sx, sy, padding):
    """AlexeyAB's forward_local_avgpool_layer: a float32 sum over the window's pixels
    inside the image, in window order, over their count."""
    c, h, w = x.shape
    oh, ow = (h + padding - size) // sy + 1, (w + padding - size) // sx + 1
    off = -(padding // 2)
    out = np.empty((c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            total, count = np.zeros(c, np.float32), 0
            for y in range(off + i * sy, off + i * sy + size):
                for x0 in range(off + j * sx, off + j * sx + size):
                    if 0 <= y < h and 0 <= x0 < w:
                        total += x[:, y, x0]
                        count += 1
            out[:, i, j] = total / np.float32(count)
    return out


@pytest.mark.parametrize("keys, geometry", [
    ("size=4\nstride=4\n", (4, 4, 4, 3)),                    # yolov4-tiny_contrastive's
    ("size=3\nstride=1\n", (3, 1, 1, 2)),                    # every window at the edges
    ("size=3\nstride_x=2\nstride_y=1\npadding=1\n", (3, 2, 1, 1)),
    ("size=2\nstride=3\npadding=0\n", (2, 3, 3, 0)),
])
def test_local_avgpool_equals_darknets_code(tmp_path, keys, geometry):
    cfg = tmp_path / "p.cfg"
    cfg.write_text("[net]\nwidth=13\nheight=11\nchannels=3\n\n[convolutional]\nfilters=5\n"
                   "size=3\npad=1\nactivation=linear\n\n[local_avgpool]\n" + keys)
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        out = net.forward(np.random.default_rng(4).random((3, 11, 13), dtype=np.float32))
        ref = local_avgpool_ref(net.layer_output(0), *geometry)
        np.testing.assert_array_equal(out, ref)
        size = geometry[0]
        assert net.layers[1].flops == size * size * ref.size


def test_contrastive_outputs_zeros_as_darknet_at_inference(zoo, tmp_path):
    """yolov4-tiny_contrastive: [local_avgpool] inside, [contrastive] last (its forward
    returns at once in AlexeyAB's darknet: zeros); the [yolo] head is unaffected."""
    cfg = resized(zoo, tmp_path, "ab/yolov4-tiny_contrastive.cfg", 128)
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        assert [layer.type for layer in net.layers[-3:]] == ["yolo", "route", "contrastive"]
        out = net.forward(np.random.default_rng(5).random((3, 128, 128), dtype=np.float32))
        assert out.shape == net.layer_output(len(net.layers) - 2).shape
        assert not out.any() and net.layer_output(len(net.layers) - 3).any()


def gaussian_yolo_ref(raw, classes, scale_x_y):
    """AlexeyAB's forward_gaussian_yolo_layer on one [Gaussian_yolo]'s input: per anchor
    x, sigma x, y, sigma y, w, sigma w, h, sigma h, objectness, classes; the logistic
    (float32) on all but w and h, then scale_x_y on x, y and their sigmas."""
    c, h, w = raw.shape
    v = raw.reshape(c // (classes + 9), classes + 9, h, w).copy()
    keep = v[:, [4, 6]].copy()
    v = (np.float32(1) / (np.float32(1) + np.exp(-v))).astype(np.float32)
    v[:, [4, 6]] = keep
    s = np.float32(scale_x_y)
    v[:, :4] = v[:, :4] * s + np.float32(-0.5 * (scale_x_y - 1))
    return v.reshape(c, h, w)


def gaussian_detections_ref(out, classes, mask, anchors, net_w, net_h, thresh):
    """get_gaussian_yolo_detections (letterbox correction: none, image = network size):
    [(box, [(class, prob)])] for the cells, then anchors, whose objectness > thresh; a class
    probability is objectness * score * (1 - the mean of the four sigmas)."""
    f32, f64 = np.float32, np.float64
    c, h, w = out.shape
    v = out.reshape(len(mask), classes + 9, h * w)
    dets = []
    for i in range(h * w):
        row, col = divmod(i, w)
        for n, m in enumerate(mask):
            e = v[n, :, i]
            obj = e[8]
            if not obj > thresh:
                continue
            box = ((f32(col) + e[0]) / f32(w), (f32(row) + e[2]) / f32(h),
                   f32(np.exp(f64(e[4])) * f64(anchors[2 * m]) / net_w),
                   f32(np.exp(f64(e[6])) * f64(anchors[2 * m + 1]) / net_h))
            uc = f32(f64(((e[1] + e[3]) + e[5]) + e[7]) / 4.0)
            probs = [(j, f32(f64(obj * e[9 + j]) * (1.0 - f64(uc)))) for j in range(classes)]
            dets.append((box, [(j, p) for j, p in probs if p > thresh]))
    return dets


def test_gaussian_yolo_equals_darknets_code(zoo, tmp_path):
    """Gaussian_yolov3_BDD: each [Gaussian_yolo] output against a transcription of AlexeyAB's
    forward, and every detection (before NMS) against one of get_gaussian_yolo_detections:
    the boxes, and the class probabilities lowered by the sigmas, bit for bit; the heads'
    outputs the same on 3 threads."""
    size = 128
    cfg = resized(zoo, tmp_path, "ab/Gaussian_yolov3_BDD.cfg", size)
    text = pathlib.Path(cfg).read_text()   # scale_x_y as yolov4's (the cfg's is 1.0)
    assert text.count("scale_x_y=1.0\n") == 3
    pathlib.Path(cfg).write_text(text.replace("scale_x_y=1.0\n", "scale_x_y=1.05\n"))
    layers = sections(cfg)
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True) as net:
        net.forward(np.random.default_rng(6).random((3, size, size), dtype=np.float32))
        heads = [i for i, layer in enumerate(net.layers) if layer.type == "Gaussian_yolo"]
        assert len(heads) == 3
        ref = []
        for i in heads:
            sec = layers[i]
            classes = int(sec["classes"])
            mask = [int(m) for m in sec["mask"].split(",")]
            anchors = [float(a) for a in sec["anchors"].split(",")]
            out = net.layer_output(i)
            np.testing.assert_allclose(
                out, gaussian_yolo_ref(net.layer_output(i - 1), classes,
                                       float(sec.get("scale_x_y", 1))), rtol=1e-6, atol=1e-7)
            ref += gaussian_detections_ref(out, classes, mask, anchors, size, size, 0.1)
        dets = net.detect((size, size), thresh=0.1, nms=0)
        outs = {i: net.layer_output(i).copy() for i in heads}
    # the heads split their columns over threads: the same bits
    with mdfi.Network(cfg, weights_for(cfg, tmp_path), keep_outputs=True, threads=3) as net3:
        net3.forward(np.random.default_rng(6).random((3, size, size), dtype=np.float32))
        for i in heads:
            np.testing.assert_array_equal(net3.layer_output(i), outs[i])
    assert len(ref) > 50 and len(dets) > 50
    got = {(d.det_index, d.class_id): d for d in dets}
    want = {(k, j): (box, p) for k, (box, probs) in enumerate(ref) for j, p in probs}
    assert set(got) == set(want)
    for key, (box, p) in want.items():
        assert np.float32(got[key].prob) == p, key
        np.testing.assert_allclose(got[key].box, box, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- YOLOv1

def local_ref(x, floats, filters, size, stride, pad, act):
    """pjreddie's forward_local_layer on the layer's floats as load_weights reads them (a
    bias per output value, then the filters of each location in turn): im2col_cpu padded
    by pad pixels, the GEMM of location j's own filters with column j, the activation."""
    c, h, w = x.shape
    oh, ow = (h - (1 if pad else size)) // stride + 1, (w - (1 if pad else size)) // stride + 1
    cols, ch, cw = im2col_ext(x, size, pad, stride, stride, 1)
    assert (ch, cw) == (oh, ow)
    n = filters * oh * ow
    bias = floats[:n].reshape(filters, oh * ow)
    wl = floats[n:n + n * c * size * size].reshape(oh * ow, filters, c * size * size)
    out = np.empty((filters, oh * ow), np.float32)
    for j in range(oh * ow):   # gemm_nn: c += a*b in k order, float32 (accumulate is in order)
        terms = np.concatenate([bias[:, j:j + 1], wl[j] * cols[None, :, j]], axis=1)
        out[:, j] = np.add.accumulate(terms, axis=1, dtype=np.float32)[:, -1]
    out = out.reshape(filters, oh, ow)
    if act == "leaky":      # pjreddie's, in double
        return np.where(out > 0, out, 0.1 * out.astype(np.float64)).astype(np.float32)
    if act == "logistic":
        return (1 / (1 + np.exp(-out.astype(np.float64)))).astype(np.float32)
    return out


@pytest.mark.parametrize("size, stride, pad, act", [
    (3, 1, 1, "leaky"),       # yolov1's
    (3, 2, 1, "linear"),
    (2, 2, 0, "logistic"),    # Darknet's default activation
    (5, 3, 2, "leaky"),
    (1, 1, 0, "linear"),
])
def test_local_equals_darknets_code(tmp_path, size, stride, pad, act):
    cfg = tmp_path / "l.cfg"
    cfg.write_text("[net]\nwidth=9\nheight=11\nchannels=3\n\n"
                   f"[local]\nfilters=4\nsize={size}\nstride={stride}\npad={pad}\n"
                   + ("" if act == "logistic" else f"activation={act}\n"))
    weights = weights_for(cfg, tmp_path)
    x = np.random.default_rng(4).random((3, 11, 9), dtype=np.float32) - 0.5
    ref = local_ref(x, read_floats(weights), 4, size, stride, pad, act)
    with mdfi.Network(cfg, weights) as net:
        out = net.forward(x)
        assert net.layers[0].flops == 2 * ref.size * 3 * size * size
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)     # the same float32 sums in the same order


@pytest.mark.parametrize("keys, match", [
    ("size=2\npad=1\n", r"filters=4 size=2 stride=1 pad=1 do not fit its 3x11x9 input \(pad > 0 "
                        r"needs size = 2 pad \+ 1"),
    ("size=10\n", r"filters=4 size=10 stride=1 pad=0 do not fit"),
    ("size=3\nstride=0\n", r"filters=4 size=3 stride=0 pad=0 do not fit"),
    ("size=3\nfilters=0\n", r"filters=0 size=3"),
    ("size=9\npad=4\nfilters=9000000\n", r"filters=9000000 size=9 stride=1 pad=4 do not fit"),
    ("size=3\nactivation=nope\n", r"unknown activation 'nope'"),
])
def test_bad_local_keys_name_the_line(tmp_path, keys, match):
    cfg = tmp_path / "l.cfg"
    if "filters" not in keys:
        keys += "filters=4\n"
    cfg.write_text("[net]\nwidth=9\nheight=11\nchannels=3\n\n[local]\n" + keys)
    line = "l.cfg:8" if "activation" in keys else r"l\.cfg:6: layer 0 \[local\]"
    with pytest.raises(mdfi.CfgError, match=line + ": " + match):
        mdfi.Network(cfg)


@pytest.mark.parametrize("keys, match", [
    ("num=2\ncoords=4\nside=6\n", r"side=6 num=2 classes=20 coords=4 \(4 only\) do not fit "
                                   r"its 1470 inputs"),
    ("num=2\ncoords=5\n", r"side=7 num=2 classes=20 coords=5"),
    ("num=0\ncoords=4\n", r"side=7 num=0"),
    ("num=2\n", r"side=7 num=2 classes=20 coords=1 \(4 only\)"),   # Darknet's default coords
])
def test_bad_detection_keys_name_the_line(tmp_path, keys, match):
    cfg = tmp_path / "d.cfg"
    cfg.write_text("[net]\nwidth=7\nheight=7\nchannels=30\n\n[detection]\nclasses=20\n"
                   + keys)
    with pytest.raises(mdfi.CfgError, match=r"d\.cfg:6: layer 0 \[detection\]: " + match):
        mdfi.Network(cfg)


def softmax64(x, axis):
    e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_detection_softmax_is_per_cell(tmp_path):
    """forward_detection_layer with softmax=1: each cell's classes (stored together, first)
    through Darknet's softmax; the confidences and boxes as they came."""
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[net]\nwidth=3\nheight=3\nchannels=13\n\n"
                   "[detection]\nclasses=3\nnum=2\ncoords=4\nside=3\nsoftmax=1\n")
    x = np.random.default_rng(5).normal(size=(13, 3, 3)).astype(np.float32)
    with mdfi.Network(cfg) as net:
        out = net.forward(x).reshape(-1)
    flat = x.reshape(-1)
    np.testing.assert_allclose(out[:27], softmax64(flat[:27].reshape(9, 3), 1).reshape(-1),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(out[27:], flat[27:])


def detection_ref(out, side, num, classes, sqrt, thresh):
    """pjreddie's get_detection_detections with w = h = 1 (relative boxes): every cell's
    boxes in cell then box order, the probabilities over thresh (float32 products)."""
    p = out.reshape(-1)
    dets = []
    for i in range(side * side):
        row, col = divmod(i, side)
        for n in range(num):
            scale = p[side * side * classes + i * num + n]
            b = p[side * side * (classes + num) + (i * num + n) * 4:][:4]
            x = (b[0] + np.float32(col)) / np.float32(side)
            y = (b[1] + np.float32(row)) / np.float32(side)
            w, h = (np.float32(np.float64(b[2]) ** 2), np.float32(np.float64(b[3]) ** 2)) \
                if sqrt else (b[2], b[3])
            for j in range(classes):
                prob = scale * p[i * classes + j]
                if prob > thresh:
                    dets.append((i * num + n, j, float(prob), (float(x), float(y), float(w),
                                                               float(h))))
    return dets


def trace_offsets(cfg):
    """Where each layer's floats start in a generated .weights file (gen_weights' trace)."""
    spec = importlib.util.spec_from_file_location("gen_weights", GEN)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    counts = [L.n_params() for L in gen.trace(str(cfg))[1]]
    return np.concatenate([[0], np.cumsum(counts)]).astype(int)


@pytest.mark.parametrize("name, size", [
    ("pj/yolov1.cfg", 128),        # [local] at 2x2 (at 448 its 116 M weights take 462 MB)
    ("pj/yolov1-tiny.cfg", 448),
    ("pj/t1.test.cfg", 224),
])
def test_yolov1_equals_darknets_code(zoo, tmp_path, name, size):
    """[local] against forward_local_layer on its input and the file's floats; [detection]
    passes the [connected] output on (softmax=0); the boxes (nms=0: every one over the
    threshold) against get_detection_detections, then do_nms_sort against a transcription.
    A square image: MDFI's letterbox correction is the identity, as Darknet's yolo test."""
    cfg = resized(zoo, tmp_path, name, size)
    weights = weights_for(cfg, tmp_path)
    floats, offsets = read_floats(weights), trace_offsets(cfg)
    x = np.random.default_rng(6).random((3, size, size), dtype=np.float32)
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        out = net.forward(x)
        types = [layer.type for layer in net.layers]
        last = len(types) - 1
        assert types[last] == "detection"
        for i in [i for i, t in enumerate(types) if t == "local"]:
            src = net.layer_output(i - 1)
            ref = local_ref(src, floats[offsets[i]:offsets[i + 1]], 256, 3, 1, 1, "leaky")
            np.testing.assert_array_equal(net.layer_output(i), ref)
        np.testing.assert_array_equal(out.reshape(-1), net.layer_output(last - 1).reshape(-1))
        num = 3 if name == "pj/yolov1.cfg" else 2
        raw = net.detect((size, size), thresh=0.02, nms=0)
        ref = detection_ref(out, 7, num, 20, True, np.float32(0.02))
        assert len(ref) > 20
        assert [(d.det_index, d.class_id, d.prob, d.box) for d in raw] == ref
        kept = net.detect((size, size), thresh=0.02, nms=0.4)
    got = sorted((tuple(d.box), d.class_id, d.prob) for d in kept)
    assert got == diou_nms_ref(raw, 20, np.float32(0.4), None)
    assert len(kept) < len(raw) or name != "pj/t1.test.cfg"   # (the others: tiny boxes)


def test_yolov1_detects_from_the_command_line(zoo, tmp_path):
    """python -m mdfi.detect and mdfi detect on a [detection] network: the same C decoding."""
    cfg = zoo / "pj" / "t1.test.cfg"
    weights = weights_for(cfg, tmp_path)
    image = tmp_path / "i.ppm"
    pixels = np.random.default_rng(7).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    image.write_bytes(b"P6\n224 224\n255\n" + pixels.tobytes())
    run = subprocess.run([sys.executable, "-m", "mdfi.detect", "--cfg", str(cfg), "--weights",
                          str(weights), "--thresh", "0.02", "--no-out", "--json", str(image)],
                         capture_output=True, text=True, check=True)
    py = json.loads(run.stdout)["detections"]
    from cbuild import build
    run = subprocess.run([str(build(targets=("all",)) / "mdfi"), "detect", str(cfg), str(weights), str(image), "--thresh",
                          "0.02", "--json"], capture_output=True, text=True, check=True)
    c = json.loads(run.stdout)["detections"]
    assert len(py) == len(c) > 10
    for a, b in zip(py, c):
        assert (a["class_id"], a["bbox"]) == (b["class_id"], b["bbox"])
        np.testing.assert_allclose(a["box"] + [a["prob"]], b["box"] + [b["prob"]], rtol=1e-6)


def test_yolov1_boxes_are_letterbox_corrected(zoo, tmp_path):
    """An image of another aspect: MDFI letterboxes it, so it maps [detection]'s boxes back
    as correct_yolo_boxes maps every head's (Darknet's detector leaves YOLOv1's as they are,
    docs/cfg-reference.md)."""
    cfg = zoo / "pj" / "t1.test.cfg"
    with mdfi.Network(cfg, weights_for(cfg, tmp_path)) as net:
        out = net.forward(np.random.default_rng(8).random((3, 224, 224), dtype=np.float32))
        square = {(d.det_index, d.class_id): d.box for d in net.detect((224, 224), thresh=0.02,
                                                                        nms=0)}
        wide = net.detect((320, 224), thresh=0.02, nms=0)
    assert len(wide) == len(square) > 10 and out.shape == (30, 7, 7)
    new_h = 224 * 224 // 320                   # letterbox_image: 224 x 156 inside 224 x 224
    for d in wide:
        x, y, w, h = square[(d.det_index, d.class_id)]
        ref = (x, (y - (224 - new_h) / 2 / 224) / (new_h / 224), w, h * 224 / new_h)
        np.testing.assert_allclose(d.box, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride, error, match", [
    (0, mdfi.UnsupportedError, r"layer 1 \[upsample\]: stride=0 is not supported \(1\.\.64\)"),
    (65, mdfi.UnsupportedError, r"layer 1 \[upsample\]: stride=65 is not supported \(1\.\.64\)"),
    (64, mdfi.ShapeError, r"layer 1 \[upsample\]: output 1 x 268435456 x 4096 is absurdly large"),
])
def test_upsample_refuses_bad_strides_and_huge_outputs(tmp_path, stride, error, match):
    """A 65536 x 1 map upsampled by 64 is 2^22 x 64 (taken); again, 2^28 x 4096 is
    refused.  A side past 2^25 (times 64 past int) saturates first and is refused
    the same way (such a map takes tens of thousands of layers to build)."""
    cfg = tmp_path / "u.cfg"
    cfg.write_text("[net]\nwidth=1\nheight=65536\nchannels=1\n\n[upsample]\nstride=64\n\n"
                   "[upsample]\nstride=%d\n" % stride)
    with pytest.raises(error, match=r"u\.cfg:\d+: " + match):
        mdfi.Network(cfg)
