"""Fixed-point pipeline: the C layers give exactly the integers of the numpy reference
(weights_tools/fixed_ref.py) for every layer, every kernel path and thread count."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import mdfi
from cbuild import build
from conftest import IMAGES, available_kernels
from fixed_models import quantized, random_darknet, random_qweights
import weights_tools as wt
from weights_tools import qweights as qwf
from weights_tools.fixed_ref import FixedNet, LEAKY_MULT, LEAKY_SHIFT, align, Fmt, rshift_round


def assert_same_as_reference(net, ref_outs, where=""):
    for i, ref in enumerate(ref_outs):
        if ref.fmt is not None:
            q, frac = net.layer_output_int(i)
            assert frac == ref.fmt.frac and q.dtype == ref.q.dtype, (where, i)
            if not np.array_equal(q, ref.q):
                bad = np.argwhere(q != ref.q)
                pytest.fail(f"{where}: layer {i} differs from the reference at {len(bad)} "
                            f"places, first {tuple(bad[0])}: C {q[tuple(bad[0])]} vs "
                            f"ref {ref.q[tuple(bad[0])]}")
        else:
            np.testing.assert_allclose(net.layer_output(i), ref.f, rtol=0, atol=1e-6,
                                       err_msg=f"{where}: head {i}")


@pytest.fixture(scope="module")
def tiny8(tiny_model):
    cfg, qpath, _ = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny8")
    return cfg, qpath


@pytest.mark.parametrize("name", IMAGES)
def test_yolov3_tiny_int8_every_layer_equals_reference(golden, tiny8, name):
    cfg, qpath = tiny8
    x = np.load(golden / "yolov3-tiny" / f"{name}.input.npy")
    ref = FixedNet(cfg, qpath).forward(x)
    with mdfi.Network(cfg, qpath, keep_outputs=True) as net:
        assert net.is_fixed
        net.forward(x)
        assert_same_as_reference(net, ref, f"{name} ({net.kernel})")


def test_kernels_and_threads_give_identical_integers(golden, tiny8):
    cfg, qpath = tiny8
    x = np.load(golden / "yolov3-tiny" / "horses.input.npy")
    ref = FixedNet(cfg, qpath).forward(x)
    for kernel in available_kernels():
        for threads in (1, 3):
            with mdfi.Network(cfg, qpath, kernel=kernel, threads=threads,
                              keep_outputs=True) as net:
                net.forward(x)
                assert_same_as_reference(net, ref, f"kernel {kernel}, {threads} threads")


@pytest.mark.parametrize("variant", ["mixed", "16bit", "per_channel", "mult", "mixed_mult"])
def test_tiny_mixed_16bit_and_per_channel_equal_reference(golden, tiny_model, variant):
    kw = {"mixed": dict(mixed_layers=(0, 2, 13)), "16bit": dict(bits=16),
          "per_channel": dict(per_channel=True), "mult": dict(weight_scale="mult"),
          "mixed_mult": dict(mixed_layers=(0, 4, 13), weight_scale="mult")}[variant]
    cfg, qpath, r = quantized(tiny_model["cfg"], tiny_model["weights"], "tiny-" + variant, **kw)
    x = np.load(golden / "yolov3-tiny" / "person.input.npy")
    ref = FixedNet(cfg, qpath).forward(x)
    with mdfi.Network(cfg, qpath, keep_outputs=True) as net:
        fmts = [net.layer_format(i) for i in range(len(net.layers))]
        net.forward(x)
        assert_same_as_reference(net, ref, variant)
    widths = {f.weights[0] for f in fmts if f.weights}
    assert widths == {"mixed": {8, 16}, "16bit": {16}, "per_channel": {8}, "mult": {8},
                      "mixed_mult": {8, 16}}[variant]
    text = open(cfg).read()
    scales = {f.weight_scale for f in fmts if f.weights}
    assert scales == {"per_channel": {"channel"}, "mult": {"mult"},
                      "mixed_mult": {"mult"}}.get(variant, {"layer"})
    if variant == "per_channel":
        assert "fixed_w=8:ch" in text
    if variant in ("mult", "mixed_mult"):
        assert "fixed_w=8:mul" in text and ("fixed_w=16:mul" in text) == (variant != "mult")
        recs = qwf.read(qpath).records.values()
        mults = np.concatenate([rec.mults for rec in recs])
        assert mults.min() >= 1 and mults.max() < 1 << 15
        # 8-bit layers: 15-bit multipliers, moved by the gain correction (at most 1/1.25);
        # 16-bit ones may reach w_frac 31 first
        assert min(rec.mults.min() for rec in recs if rec.w_fmt[0] == 8) > (1 << 14) / 1.26
        assert len(np.unique(mults)) > 100, "the scales are not powers of two"
        res = subprocess.run([str(build() / "mdfi"), "info", cfg, qpath], capture_output=True,
                             text=True)
        assert res.returncode == 0 and " w 8:mul" in res.stdout, res.stderr


# ----------------------------------------------------------------------------- every layer type

SYNTH_CFG = """[net]
width=13
height=11
channels=3
[convolutional]
fixed_in=8:6
fixed_w=8:7
fixed_out=8:3
filters=12
size=3
stride=1
pad=1
activation=leaky
[maxpool]
fixed_out=8:2
size=3
stride=2
[convolutional]
fixed_in=16:2
fixed_w=16:9
fixed_out=16:7
filters=12
size=3
stride=1
pad=1
groups=3
activation=relu
[convolutional]
fixed_in=8:5
fixed_w=8:ch
fixed_out=8:4
filters=12
size=1
stride=1
activation=linear
[shortcut]
from=-2
fixed_out=8:3
activation=leaky
[route]
layers=-1,2
fixed_out=8:2
[upsample]
stride=2
fixed_out=16:5
[route]
layers=-1
fixed_out=16:9
groups=2
group_id=1
[maxpool]
fixed_out=16:9
size=2
stride=1
[convolutional]
fixed_in=16:9
fixed_w=8:mul
fixed_out=8:1
filters=10
size=3
stride=2
padding=2
activation=leaky
[dropout]
probability=.5
[avgpool]
fixed_out=16:8
[connected]
fixed_in=8:3
fixed_w=8:mul
fixed_out=16:9
output=7
activation=leaky
[softmax]
"""


def synth_net(tmp_path, seed=0, scale=None):
    cfg = tmp_path / "synth.cfg"
    cfg.write_text(SYNTH_CFG)
    spec = {
        0: (1, 12, 27, 1, (8, 6), (8, 7), (8, 3)),
        2: (1, 12, 4 * 9, 3, (16, 2), (16, 9), (16, 7)),
        3: (1, 12, 12, 1, (8, 5), (8, "ch"), (8, 4)),
        9: (1, 10, 12 * 9, 1, (16, 9), (8, "mul"), (8, 1)),     # 16-bit input, 8-bit weights
        12: (2, 7, 10, 1, (8, 3), (8, "mul"), (16, 9)),
    }
    qw = random_qweights(spec, 14, seed, scale)
    qpath = tmp_path / "synth.qweights"
    qwf.write(qpath, qw)
    return cfg, qpath


@pytest.mark.parametrize("seed", [0, 1])
def test_every_fixed_layer_type_equals_reference(tmp_path, seed):
    """Grouped and strided convs, per-channel weights, connected, maxpool (odd sizes,
    size 3 / stride 2, stride 1), shortcut and route across formats, route groups,
    upsample, avgpool, dropout, a softmax head; inputs with NaN, inf and huge values."""
    cfg, qpath = synth_net(tmp_path, seed)
    rng = np.random.default_rng(seed + 10)
    x = rng.normal(0, 1.5, (3, 11, 13)).astype(np.float32)
    x.flat[:4] = [np.nan, np.inf, -np.inf, 1e30]
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    saturated = any(o.fmt is not None and (o.q.max() == o.fmt.qmax or o.q.min() == o.fmt.qmin)
                    for o in ref)
    assert saturated, "the data should reach saturation somewhere"
    for kernel in available_kernels():
        for threads in (1, 2):
            with mdfi.Network(cfg, qpath, kernel=kernel, threads=threads,
                              keep_outputs=True) as net:
                net.forward(x)
                assert_same_as_reference(net, ref, f"seed {seed} {kernel} x{threads}")


def test_paired_weights_take_the_vpmaddubsw_kernel(tmp_path):
    """8-bit layers whose adjacent weights' pairs sum to at most 128 in magnitude
    (quantize --weight-scale mult-pair; here weights in [-64, 64]) run on AVX2's avx2-8p (vpmaddubsw on b + 128, exact for pairs of weights up to
    128 in magnitude), the others on avx2-8; every kernel gives the reference's
    integers, saturation included."""
    cfg, qpath = synth_net(tmp_path, 3, scale=64)
    qw = qwf.read(qpath)
    qw.records[3].weights[0, :2] = (64, -64)   # the largest pair the kernel takes
    qw.records[0].weights[1, :2] = (-64, 65)   # one pair past it: layer 0 stays avx2-8
    qwf.write(qpath, qw)
    x = np.random.default_rng(13).normal(0, 1.5, (3, 11, 13)).astype(np.float32)
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    for kernel in available_kernels():
        with mdfi.Network(cfg, qpath, kernel=kernel, keep_outputs=True) as net:
            if kernel == "avx2":
                kern = {i: net.layer_format(i).kernel for i in (0, 3, 12)}
                assert kern == {0: "avx2-8", 3: "avx2-8p", 12: "avx2-8p"}, kern
            net.forward(x)
            assert_same_as_reference(net, ref, f"paired {kernel}")


POOL_CFG = """[net]
height=23
width=29
channels=3
[convolutional]
fixed_in=8:6
fixed_w=8:7
fixed_out=8:3
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
fixed_out=8:3
[convolutional]
fixed_in=16:5
fixed_w=16:9
fixed_out=16:7
filters=12
groups=2
size=3
stride=1
pad=1
activation=relu
[maxpool]
size=3
stride=3
fixed_out=16:7
[convolutional]
fixed_in=16:7
fixed_w=8:mul
fixed_out=8:2
filters=6
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
fixed_out=8:1
[convolutional]
fixed_in=8:1
fixed_w=8:7
fixed_out=16:9
filters=5
size=1
stride=1
activation=linear
[maxpool]
size=2
stride=2
padding=3
fixed_out=16:9
[connected]
fixed_in=16:9
fixed_w=8:7
fixed_out=16:9
output=4
activation=linear
"""


def test_conv_maxpool_fusion_gives_the_unfused_integers(tmp_path):
    """An integer conv read only by a [maxpool] of its format computes the pool in bands
    (its own output is never stored): int8 and int16, grouped, 2x2/2 on odd sizes, 3x3/3,
    odd padding; a pool that requantizes (layer 5) is not fused.  The pools' integers
    equal the reference's on every kernel and thread count, and the arena shrinks."""
    cfg = tmp_path / "pool.cfg"
    cfg.write_text(POOL_CFG)
    spec = {0: (1, 8, 27, 1, (8, 6), (8, 7), (8, 3)),
            2: (1, 12, 4 * 9, 2, (16, 5), (16, 9), (16, 7)),
            4: (1, 6, 12 * 9, 1, (16, 7), (8, "mul"), (8, 2)),
            6: (1, 5, 6, 1, (8, 1), (8, 7), (16, 9)),
            8: (2, 4, 5 * 2 * 3, 1, (16, 9), (8, 7), (16, 9))}
    qpath = tmp_path / "pool.qweights"
    qwf.write(qpath, random_qweights(spec, 9, seed=3))
    x = np.random.default_rng(4).normal(0, 1.5, (3, 23, 29)).astype(np.float32)
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    pools = [1, 3, 5, 7]
    with mdfi.Network(cfg, qpath, fuse_pool=False) as plain:
        arena = plain.arena_bytes
    for kernel in available_kernels():
        for threads in (1, 2):
            with mdfi.Network(cfg, qpath, kernel=kernel, threads=threads, outputs=pools) as net:
                assert net.arena_bytes < arena
                net.forward(x)
                for i in pools + [8]:
                    q, frac = net.layer_output_int(i)
                    assert frac == ref[i].fmt.frac, (kernel, threads, i)
                    np.testing.assert_array_equal(q, ref[i].q, err_msg=f"{kernel} x{threads} "
                                                                       f"layer {i}")


WIDE_POOL_CFG = """[net]
height=9
width=75
channels=3
[convolutional]
fixed_in=8:6
fixed_w=8:7
fixed_out=8:3
filters=7
size=3
stride=1
pad=1
activation=linear
[maxpool]
size=2
stride=2
fixed_out=8:3
[maxpool]
size=2
stride=1
fixed_out=8:3
[convolutional]
fixed_in=8:3
fixed_w=8:7
fixed_out=16:9
filters=5
size=3
stride=1
pad=1
activation=linear
[maxpool]
size=2
stride=2
fixed_out=16:9
"""


def test_wide_2x2_pools_take_the_vector_rows(tmp_path):
    """2x2/2 pools over rows of 38 and 19 outputs, 37 and 18 of whole windows
    (kernels/pool.c's int8 loop takes 16 a step, its int16 loop 8, then the scalar
    tail; the last, clipped window the generic loop), and an int8 2x2/1 pool over 38
    (37 whole windows), values saturated at both ends of each type: fused and
    unfused, the reference's integers."""
    cfg = tmp_path / "wide.cfg"
    cfg.write_text(WIDE_POOL_CFG)
    spec = {0: (1, 7, 27, 1, (8, 6), (8, 7), (8, 3)),
            3: (1, 5, 7 * 9, 1, (8, 3), (8, 7), (16, 9))}
    qpath = tmp_path / "wide.qweights"
    qw = random_qweights(spec, 5, seed=5, scale=127)
    for i in (0, 3):   # whole channels at the type's ends: saturated pools both ways
        qw.records[i].bias[:2] = (-2 ** 24, 2 ** 24)
    qwf.write(qpath, qw)
    x = np.random.default_rng(6).normal(0, 2, (3, 9, 75)).astype(np.float32)
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    for i, w in ((1, 38), (2, 38), (4, 19)):
        q = ref[i].q
        assert q.shape[2] == w
        assert q.min() == ref[i].fmt.qmin and q.max() == ref[i].fmt.qmax, i
    for kernel in available_kernels():
        for fuse in (True, False):
            with mdfi.Network(cfg, qpath, kernel=kernel, fuse_pool=fuse,
                              outputs=[1, 2, 4]) as net:
                net.forward(x)
                for i in (1, 2, 4):
                    q, frac = net.layer_output_int(i)
                    assert frac == ref[i].fmt.frac
                    np.testing.assert_array_equal(q, ref[i].q, err_msg=f"{kernel} fuse {fuse} "
                                                                       f"layer {i}")


@pytest.mark.parametrize("h,w", [(2, 2), (2, 17), (3, 2), (13, 13), (7, 40)])
def test_2x2_stride1_pool_over_a_whole_plane(tmp_path, h, w):
    """The int8 2x2/1 pool of an unchanged format runs a plane as one long row of
    windows, then fixes the last column and row (layers/maxpool.c): the
    reference's integers on planes down to 2x2, values saturated at both ends."""
    cfg = tmp_path / "p.cfg"
    cfg.write_text(f"""[net]
height={h}
width={w}
channels=2
[convolutional]
fixed_in=8:6
fixed_w=8:7
fixed_out=8:3
filters=3
size=1
stride=1
pad=0
activation=linear
[maxpool]
size=2
stride=1
fixed_out=8:3
""")
    qw = random_qweights({0: (1, 3, 2, 1, (8, 6), (8, 7), (8, 3))}, 2, seed=h * w, scale=127)
    qw.records[0].bias[:2] = (-2 ** 24, 2 ** 24)
    qpath = tmp_path / "p.qweights"
    qwf.write(qpath, qw)
    x = np.random.default_rng(w).normal(0, 2, (2, h, w)).astype(np.float32)
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    assert ref[1].q.shape == (3, h, w)
    with mdfi.Network(cfg, qpath, outputs=[1]) as net:
        net.forward(x)
        q, frac = net.layer_output_int(1)
    assert frac == ref[1].fmt.frac
    np.testing.assert_array_equal(q, ref[1].q)


def test_arithmetic_helpers():
    """The reference's rounding and saturation rules (docs/fixed-point.md)."""
    assert list(rshift_round(np.array([5, 6, 7, -5, -6, -7]), 1)) == [3, 3, 4, -2, -3, -3]
    assert list(rshift_round(np.array([3, -3]), -2)) == [12, -12]
    assert list(align(np.array([300, -300, 7]), 4, Fmt(8, 2))) == [75, -75, 2]
    assert list(align(np.array([1000, -1000]), 0, Fmt(8, 0))) == [127, -128]
    assert LEAKY_MULT / 2 ** LEAKY_SHIFT == pytest.approx(0.1, abs=1e-5)


def test_layer_output_of_integer_layers(tmp_path):
    cfg, qpath = synth_net(tmp_path)
    with mdfi.Network(cfg, qpath, keep_outputs=True) as net:
        net.forward(np.zeros((3, 11, 13), np.float32))
        q, frac = net.layer_output_int(0)
        assert q.dtype == np.int8 and frac == 3 and q.shape == (12, 11, 13)
        np.testing.assert_array_equal(net.layer_output(0), q.astype(np.float32) / 8)
        assert net.layer_format(0).output == (8, 3)
        assert net.layer_format(0).input == (8, 6) and net.layer_format(0).weights == (8, 7)
        assert net.layer_format(13).output is None
        with pytest.raises(mdfi.ArgumentError, match="float output"):
            net.layer_output_int(13)
        net.set_profile(True)
        net.forward(np.zeros((3, 11, 13), np.float32))
        assert all(t >= 0 for t in net.layer_times())


def test_mixed_choice_respects_the_size_budget(tiny_model, size=0.27):
    """--mixed raises layers by measured gain, but the .qweights file stays within
    --mixed-size of the float file (and the MACs within --mixed-budget)."""
    from weights_tools.quantize import gemm_macs
    _, qpath, r = quantized(tiny_model["cfg"], tiny_model["weights"], f"tiny-mixed-{size}",
                            mixed=True, mixed_size=size, mixed_budget=0.5, bias_images=0)
    raised = [p for p in r["plans"] if p.fin is not None and p.fin.bits == 16]
    assert raised, "nothing raised to 16 bits"
    assert os.path.getsize(qpath) <= size * os.path.getsize(tiny_model["weights"])
    layers = wt.layers_of(tiny_model["cfg"])
    macs = {i: gemm_macs(layers[i]) for i in range(len(layers)) if layers[i].type ==
            "convolutional"}
    assert sum(macs[p.index] for p in raised) <= 0.5 * sum(macs.values())


def test_yolo_head_lookup_equals_dequantize_and_logistic(golden, tiny8):
    """The fixed [yolo] head takes the logistic from a table of every input integer; the
    floats must be those of dequantizing and applying Darknet's logistic (in double)."""
    x = np.load(golden / "yolov3-tiny" / "eagle.input.npy")
    with mdfi.Network(*tiny8, keep_outputs=True) as net:
        net.forward(x)
        for head in (16, 23):
            q, frac = net.layer_output_int(head - 1)
            d = q.astype(np.float64) * 2.0 ** -frac
            want = (1 / (1 + np.exp(-d))).astype(np.float32)
            raw = np.isin(np.arange(q.shape[0]) % 85, (2, 3))      # w, h stay raw
            want[raw] = d[raw].astype(np.float32)
            got = net.layer_output(head)
            assert np.abs(got - want).max() <= 6e-8          # at most one float32 ulp (libm)
            assert np.mean(got == want) > 0.999


def test_yolo_head_scale_x_y_on_threads(golden, tiny8, tmp_path):
    """The same head with scale_x_y (x and y scaled about 1/2, in float as AlexeyAB's
    scal_add_cpu), its channels split over 1 and 3 threads: x and y are the plain head's
    values scaled, every other channel the same bits."""
    cfg = tmp_path / "tiny8_sxy.cfg"
    cfg.write_text(pathlib.Path(tiny8[0]).read_text().replace("[yolo]", "[yolo]\nscale_x_y=1.05"))
    x = np.load(golden / "yolov3-tiny" / "eagle.input.npy")
    with mdfi.Network(*tiny8, outputs=[16, 23]) as net:
        net.forward(x)
        plain = [net.layer_output(h).copy() for h in (16, 23)]
    s = np.float32(1.05)
    b = np.float32(-0.5 * (float(s) - 1))   # from the float the cfg parses, in double
    for threads in (1, 3):
        with mdfi.Network(cfg, tiny8[1], threads=threads, outputs=[16, 23]) as net:
            net.forward(x)
            for p, h in zip(plain, (16, 23)):
                xy = np.isin(np.arange(p.shape[0]) % 85, (0, 1))
                want = p.copy()
                want[xy] = want[xy] * s + b
                np.testing.assert_array_equal(net.layer_output(h), want, err_msg=f"x{threads}")


W8A16_CFG = """[net]
width=32
height=32
channels=3
[convolutional]
filters=4
size=1
activation=leaky
[connected]
output=5
activation=linear
"""


def test_act_bits_16_keeps_8bit_input_where_the_accumulator_bound_bites(tmp_path):
    """--act-bits 16: the 1x1 conv (K=3) takes 16-bit input with 8-bit weights; the connected
    layer (K=4096, uniform weights) would lose over 6 dB of weight SQNR to the int32 bound
    with 16-bit input, so it keeps 8-bit input.  C equals the reference on both."""
    cfg, weights, rng = random_darknet(tmp_path, W8A16_CFG, "w", 7)
    calib = []
    for k in range(2):
        calib.append(str(tmp_path / f"c{k}.npy"))
        np.save(calib[-1], rng.uniform(0, 1, (3, 32, 32)).astype(np.float32))
    cfg_q, qpath, r = quantized(cfg, weights, "w8a16", calib=tuple(calib),
                                act_bits=16, weight_scale="mult", bias_images=2)
    conv, fc = r["plans"][0], r["plans"][1]
    assert (conv.fin.bits, conv.w.bits) == (16, 8)
    assert (fc.fin.bits, fc.w.bits) == (8, 8) and "kept at 8-bit input" in " ".join(fc.notes)
    # one value per channel and image: no gain correction, the multipliers stay as chosen
    assert fc.mults.min() >= 1 << 14 and fc.mults.max() < 1 << 15
    x = rng.uniform(0, 1, (3, 32, 32)).astype(np.float32)
    ref = FixedNet(cfg_q, qpath).forward(x)
    with mdfi.Network(cfg_q, qpath, keep_outputs=True) as net:
        net.forward(x)
        assert_same_as_reference(net, ref, "w8a16")
        assert net.layer_format(0).input[0] == 16 and net.layer_format(0).weights[0] == 8


IDENTITY_CFG = """[net]
width={w}
height=1
channels=1
[convolutional]
fixed_in={b}:{f}
fixed_w={b}:0
fixed_out={b}:{f}
filters=1
size=1
activation=linear
"""


@pytest.mark.parametrize("bits,frac", [(8, 6), (8, -3), (16, 9), (16, 14), (16, 31)])
def test_input_quantization_edge_cases(tmp_path, bits, frac):
    """A 1x1 identity conv shows the quantized network input: floor(x * 2^F + 1/2),
    saturated, NaN -> 0, exactly as the reference, at ties, next to ties and at the
    saturation edges (the C code works in float32 and must still be exact)."""
    step = 2.0 ** -frac
    ks = np.arange(-140, 140) if bits == 8 else np.arange(-33000, 33000, 97)
    ties = ((ks + 0.5) * step).astype(np.float32)
    x = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)),
                        np.nextafter(ties, np.float32(-np.inf)), (ks * step).astype(np.float32),
                        np.float32([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, -1e-45, 0, -0.0]),
                        np.random.default_rng(1).normal(0, 2 ** (bits - 2) * step, 4000)
                        .astype(np.float32)])
    cfg = tmp_path / "id.cfg"
    cfg.write_text(IDENTITY_CFG.format(w=x.size, b=bits, f=frac))
    qw = random_qweights({0: (1, 1, 1, 1, (bits, frac), (bits, 0), (bits, frac))}, 1)
    qw.records[0].weights[:] = 1
    qw.records[0].bias[:] = 0
    qwf.write(tmp_path / "id.qweights", qw)
    want = FixedNet(str(cfg), str(tmp_path / "id.qweights")).forward(x.reshape(1, 1, -1))[0].q
    with mdfi.Network(cfg, tmp_path / "id.qweights", keep_outputs=True) as net:
        net.forward(x.reshape(1, 1, -1))
        got, f = net.layer_output_int(0)
    assert f == frac
    bad = np.flatnonzero(got.ravel() != want.ravel())
    assert bad.size == 0, [(float(x[i]), int(got.ravel()[i]), int(want.ravel()[i]))
                           for i in bad[:5]]


EVEN_POOL_CFG = """[net]
height=7
width=20
channels=3
[convolutional]
fixed_in=8:6
fixed_w=8:mul
fixed_out=8:3
filters=6
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
fixed_out=8:3
[convolutional]
fixed_in=8:3
fixed_w=8:7
fixed_out=16:9
filters=5
size=3
stride=1
pad=1
activation=relu
[maxpool]
size=2
stride=2
fixed_out=16:9
"""


def test_pooled_column_pairs_on_an_odd_height(tmp_path):
    """A fused 2x2/2 pool over an even width keeps each column pair's larger int32 sum in
    the GEMM and takes the larger of two rows after (mdfi_qepilogue.pairs): 7 rows (the
    last window clipped to one row) of 20 and of 10 columns, int8 and int16 out, a
    multiplier layer: the reference's integers, fused or not, every kernel, 1 and 2
    threads."""
    cfg = tmp_path / "even.cfg"
    cfg.write_text(EVEN_POOL_CFG)
    spec = {0: (1, 6, 27, 1, (8, 6), (8, "mul"), (8, 3)),
            2: (1, 5, 6 * 9, 1, (8, 3), (8, 7), (16, 9))}
    qpath = tmp_path / "even.qweights"
    qwf.write(qpath, random_qweights(spec, 4, seed=11))
    x = np.random.default_rng(12).normal(0, 1.5, (3, 7, 20)).astype(np.float32)
    ref = FixedNet(str(cfg), str(qpath)).forward(x)
    assert ref[1].q.shape == (6, 4, 10) and ref[3].q.shape == (5, 2, 5)
    for kernel in available_kernels():
        for threads in (1, 2):
            for fuse in (True, False):
                with mdfi.Network(cfg, qpath, kernel=kernel, threads=threads, fuse_pool=fuse,
                                  outputs=[1, 3]) as net:
                    net.forward(x)
                    for i in (1, 3):
                        q, frac = net.layer_output_int(i)
                        assert frac == ref[i].fmt.frac
                        np.testing.assert_array_equal(q, ref[i].q, err_msg=f"{kernel} x{threads} "
                                                                           f"fuse {fuse} layer {i}")
