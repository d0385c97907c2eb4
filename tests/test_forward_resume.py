"""Forward that stops and resumes (mdfi_net_forward_until / mdfi_net_resume), marked
outputs, and the build options that replaced environment reads in the library."""
import numpy as np
import pytest

import mdfi
from fixed_models import random_darknet

CFG = ("[net]\nwidth=16\nheight=12\nchannels=3\n"
       "[convolutional]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"  # 0
       "[maxpool]\nsize=2\nstride=2\n"                                                     # 1
       "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"                     # 2
       "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"                           # 3
       "[route]\nlayers=-1,-2\n"                                                           # 4
       "[convolutional]\nfilters=5\nsize=1\nactivation=logistic\n")                        # 5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg, weights, _ = random_darknet(tmp_path_factory.mktemp("resume"), CFG, "resume")
    x = np.random.default_rng(7).random((3, 12, 16), dtype=np.float32)
    with mdfi.Network(cfg, weights, keep_outputs=True) as net:
        full = net.forward(x)
        every = [net.layer_output(i) for i in range(len(net.layers))]
    return cfg, weights, x, full, every


@pytest.mark.parametrize("last", range(6))
def test_stop_then_resume_equals_one_run(model, last):
    cfg, weights, x, full, every = model
    with mdfi.Network(cfg, weights) as net:
        done = net.forward_until(x, last)
        # a conv fused with its maxpool completes with the pool
        assert done == last + 1 + (last == 0)
        if last != 0:
            np.testing.assert_array_equal(net.layer_output(last), every[last])
        if done < len(net.layers):
            with pytest.raises(mdfi.ArgumentError, match="has not run yet"):
                net.layer_output(5)
        assert net.resume() == 6
        np.testing.assert_array_equal(net.layer_output(5), full)


def test_fused_conv_is_readable_when_marked(model):
    cfg, weights, x, _, every = model
    with mdfi.Network(cfg, weights) as net:
        net.forward_until(x, 0)
        with pytest.raises(mdfi.ArgumentError, match="computed with the maxpool"):
            net.layer_output(0)
    with mdfi.Network(cfg, weights, outputs=[0, 2]) as net:
        assert net.forward_until(x, 0) == 1
        np.testing.assert_array_equal(net.layer_output(0), every[0])
        net.resume()
        # marked outputs stay readable after the whole run; unmarked ones are reused
        np.testing.assert_array_equal(net.layer_output(2), every[2])
        np.testing.assert_array_equal(net.layer_output(0), every[0])
        with pytest.raises(mdfi.ArgumentError, match="reused"):
            net.layer_output(3)


def test_resume_in_steps(model):
    cfg, weights, x, full, every = model
    with mdfi.Network(cfg, weights) as net:
        net.forward_until(x, 2)
        assert net.resume(3) == 4
        np.testing.assert_array_equal(net.layer_output(3), every[3])
        with pytest.raises(mdfi.ArgumentError, match="layers 0..3 have run already"):
            net.resume(2)
        net.resume()
        np.testing.assert_array_equal(net.layer_output(5), full)


def test_resume_needs_a_run(model):
    cfg, weights, x, _, _ = model
    with mdfi.Network(cfg, weights) as net:
        with pytest.raises(mdfi.ArgumentError, match="no forward has run yet"):
            net.resume()
        with pytest.raises(mdfi.ArgumentError, match="layers 0..5"):
            net.forward_until(x, 6)
        with pytest.raises(mdfi.ArgumentError, match=r"no layer 9 \(the network has 6\)"):
            mdfi.Network(cfg, weights, outputs=[9])


def test_options_are_fields_not_environment(model, monkeypatch):
    """fuse_pool off stores the conv's output (a bigger arena) and changes nothing
    else; bad option values are ArgumentErrors naming the value."""
    cfg, weights, x, full, _ = model
    with mdfi.Network(cfg, weights) as fused, mdfi.Network(cfg, weights, fuse_pool=False) as plain:
        np.testing.assert_array_equal(fused.forward(x), full)
        np.testing.assert_array_equal(plain.forward(x), full)
        assert plain.arena_bytes > fused.arena_bytes
    with pytest.raises(mdfi.ArgumentError, match="binary_fuse=maybe"):
        mdfi.Network(cfg, weights, binary_fuse="maybe")
    with pytest.raises(mdfi.ArgumentError, match="binary_kernel=sse9"):
        mdfi.Network(cfg, weights, binary_kernel="sse9")
    monkeypatch.setenv("MDFI_KERNEL", "sse9")
    with pytest.raises(mdfi.ArgumentError, match="unknown kernel 'sse9'"):
        mdfi.Network(cfg, weights)
    # an explicit argument wins over the environment
    with mdfi.Network(cfg, weights, kernel="ref") as net:
        assert net.kernel == "ref"


def test_one_network_shared_by_threads_gives_each_its_own_result():
    """Two Python threads calling forward on one Network at once (the C core
    releases the GIL) take turns: each gets the output of its own input, as one
    thread alone gets it; no crash."""
    import pathlib
    import threading

    models = pathlib.Path(__file__).resolve().parent.parent / "examples" / "models"
    xs = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    with mdfi.Network(models / "mnist_float.cfg", models / "mnist_float.weights") as net:
        want = [net.forward(x) for x in xs]
        got, errors = {}, []

        def work(t):
            try:
                for rep in range(20):
                    i = (t + rep) % len(xs)
                    got[(t, rep)] = (i, net.forward(xs[i]))
            except Exception as e:   # noqa: BLE001 - reported by the assertion below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        assert len(got) == 60
        for i, out in got.values():
            np.testing.assert_array_equal(out, want[i])
