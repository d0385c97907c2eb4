"""Several Networks on several Python threads, closed networks, and leaks.

The scaling check needs two free cores; the machine running the suite may be
shared, so the wall-clock ratio is asserted only when the load average leaves
room for it (it is skipped with the reason otherwise).  What always runs: each
thread's results equal one thread's, and the GIL probe, which does not depend on
free cores: while one thread is inside a long forward, another Python thread
keeps running (it could not if the C call held the GIL).
"""
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import mdfi

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import build, run_driver  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
DATA = ROOT / "tests" / "data"

# a float, a binary (xnor) and a fixed-point (int8) network, all 1x28x28
NETS = [(MODELS / "mnist_float.cfg", MODELS / "mnist_float.weights"),
        (MODELS / "mnist_xnor.cfg", MODELS / "mnist_xnor.weights"),
        (MODELS / "mnist_branchy_lenet_int8.cfg", MODELS / "mnist_branchy_lenet_int8.qweights")]


def _run_threads(targets):
    errors = []

    def guard(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(e)

    threads = [threading.Thread(target=guard, args=(fn,)) for fn in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


def test_networks_on_threads_give_one_threads_results():
    """Six threads, each with its own Network (two of each kind), run 25 forwards
    at once; every output equals what one thread alone computes."""
    xs = np.random.default_rng(7).random((6, 1, 28, 28), dtype=np.float32)
    want = []
    for cfg, weights in NETS:
        with mdfi.Network(cfg, weights) as net:
            want.append([net.forward(x) for x in xs])
    nets = [mdfi.Network(*NETS[k % 3], threads=1) for k in range(6)]
    got = {}

    def work(k):
        def run():
            for rep in range(25):
                i = (k + rep) % len(xs)
                got[(k, rep)] = (i, nets[k].forward(xs[i]))
        return run

    try:
        errors = _run_threads([work(k) for k in range(6)])
    finally:
        for net in nets:
            net.close()
    assert not errors, errors
    assert len(got) == 150
    for (k, _), (i, out) in got.items():
        np.testing.assert_array_equal(out, want[k % 3][i])


def test_forward_releases_the_gil():
    """While a thread runs a long forward (yolov3-tiny's cfg, no weights: about
    0.1 s), the main thread keeps ticking: the longest gap between its ticks is
    a small part of the forward.  A forward holding the GIL would leave one gap
    as long as the forward itself, however busy the machine."""
    net = mdfi.Network(DATA / "yolov3-tiny.cfg", threads=1)
    x = np.zeros(net.input_shape, np.float32)
    net.forward(x)
    spans, ticks, done = [], [], threading.Event()

    def work():
        try:
            for _ in range(3):
                t0 = time.perf_counter()
                net.forward(x)
                spans.append((t0, time.perf_counter()))
        finally:
            done.set()

    th = threading.Thread(target=work)
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.0005)
    th.join()
    net.close()
    shares = []
    for t0, t1 in spans:
        inside = [t0] + [t for t in ticks if t0 < t < t1] + [t1]
        shares.append(max(b - a for a, b in zip(inside, inside[1:])) / (t1 - t0))
    assert sorted(shares)[1] < 0.5, f"longest tick gap / forward time: {shares}"


def _busy_cores():
    return os.getloadavg()[0]


def test_two_networks_on_two_threads_scale():
    """Two networks (threads=1) on two Python threads against one after the
    other: at least 1.5x on two free cores (benchmarks/threads_bench.py measures
    the figure; 1.5 leaves room for noise).  Skipped when the machine has fewer
    than two cores for this process or its load average says they are busy."""
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip(f"{cores} core usable: the scaling needs two")
    if _busy_cores() > cores - 1.5:
        pytest.skip(f"load average {_busy_cores():.1f} on {cores} cores: fewer than two "
                    "free, so a wall-clock ratio would measure the other work")
    cfg, weights = MODELS / "fmnist_vgg.cfg", MODELS / "fmnist_vgg.weights"
    nets = [mdfi.Network(cfg, weights, threads=1) for _ in range(2)]
    x = np.random.default_rng(0).random(nets[0].input_shape, dtype=np.float32)
    want = nets[0].forward(x)
    nets[1].forward(x)
    n = 150

    def loop(net):
        return lambda: [net.forward(x) for _ in range(n)]

    ratios = []
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            for net in nets:
                loop(net)()
            seq = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert not _run_threads([loop(net) for net in nets])
            ratios.append(seq / (time.perf_counter() - t0))
        for net in nets:
            np.testing.assert_array_equal(net.forward(x), want)
    finally:
        for net in nets:
            net.close()
    assert max(ratios) >= 1.5, f"sequential / parallel wall time: {ratios}"


# -- lifetimes -------------------------------------------------------------------

@pytest.mark.parametrize("use", [
    lambda net, x: net.forward(x),
    lambda net, x: net.forward_until(x, 0),
    lambda net, x: net.resume(),
    lambda net, x: net.layer_output(0),
    lambda net, x: net.layer_output_int(0),
    lambda net, x: net.layer_format(0),
    lambda net, x: net.arena_bytes,
    lambda net, x: net.weight_bytes,
    lambda net, x: net.exits,
    lambda net, x: net.last_exit,
    lambda net, x: net.exit_policy,
    lambda net, x: net.main_macs,
    lambda net, x: net.layer_times(),
    lambda net, x: net.set_profile(True),
    lambda net, x: net.detect((28, 28)),
], ids=["forward", "forward_until", "resume", "layer_output", "layer_output_int",
        "layer_format", "arena_bytes", "weight_bytes", "exits", "last_exit", "exit_policy",
        "main_macs", "layer_times", "set_profile", "detect"])
def test_a_closed_network_raises(use):
    net = mdfi.Network(*NETS[0])
    x = np.zeros(net.input_shape, np.float32)
    net.forward(x)
    net.close()
    net.close()     # a second close is harmless
    with pytest.raises(mdfi.MdfiError, match="closed"):
        use(net, x)


def test_closing_waits_for_a_running_forward():
    """close() from another thread during a forward waits for it (the network's
    lock), then later calls raise: no use of freed memory."""
    net = mdfi.Network(DATA / "yolov3-tiny.cfg", threads=1)
    x = np.zeros(net.input_shape, np.float32)
    out, started = [], threading.Event()

    def work():
        started.set()
        out.append(net.forward(x))

    th = threading.Thread(target=work)
    th.start()
    started.wait()
    time.sleep(0.01)
    net.close()
    th.join()
    assert len(out) == 1 or out == []
    with pytest.raises(mdfi.MdfiError, match="closed"):
        net.forward(x)


# -- leaks -----------------------------------------------------------------------

def _rss():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_forwards_and_load_close_cycles_do_not_grow_rss():
    """2,000 forwards on one network, then 200 load / forward / close cycles of
    each kind (float, xnor, int8), after warm-ups: RSS grows by less than 1 MiB
    each time.  A network that leaked its weights (about 0.45 MB for the float
    one) per cycle would add 90 MB; 100 bytes per forward would add 200 KB of
    the 1 MiB.  benchmarks/threads_bench.py runs 10,000 and 1,000."""
    x = np.random.default_rng(3).random((1, 28, 28), dtype=np.float32)
    with mdfi.Network(*NETS[0]) as net:
        for _ in range(300):
            net.forward(x)
            net.layer_output(-1)
        before = _rss()
        for _ in range(2000):
            net.forward(x)
            net.layer_output(-1)
        grown = _rss() - before
    assert grown < 2**20, f"RSS grew {grown} bytes over 2,000 forwards"
    for cfg, weights in NETS:
        for _ in range(20):
            with mdfi.Network(cfg, weights) as net:
                net.forward(x)
        before = _rss()
        for _ in range(200):
            with mdfi.Network(cfg, weights) as net:
                net.forward(x)
        grown = _rss() - before
        assert grown < 2**20, f"{cfg.name}: RSS grew {grown} bytes over 200 load/close cycles"


def test_pool_driver():
    """base/threads.c through tests/c/test_pool.c: every task of every run exactly once,
    spinning and sleeping workers, a stalled thread's share taken by the others."""
    triple = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True,
                            check=True).stdout.strip()
    exe = build(targets=(f"build/{triple}/tests/test_pool",)) / "tests" / "test_pool"
    out = run_driver([str(exe)], timeout=120)
    assert all(f"pool-{n} ok" in out for n in (2, 3, 4, 8)), out


def test_pool_under_thread_sanitizer(tmp_path):
    """The same driver built with -fsanitize=thread: the lock-free task hand-out and the
    spin-then-sleep waits have no data race ThreadSanitizer can see."""
    cc = shutil.which("gcc")
    exe = tmp_path / "test_pool_tsan"
    res = subprocess.run([cc, "-std=c99", "-O1", "-g", "-fsanitize=thread", "-DMDFI_THREADS=1",
                          "-D_POSIX_C_SOURCE=200809L", "-Icsrc/include", "-Icsrc",
                          "tests/c/test_pool.c", "csrc/base/threads.c", "csrc/base/error.c",
                          "-pthread", "-o", str(exe)], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0 or subprocess.run([str(exe), "--quick"], capture_output=True,
                                             env=dict(os.environ, TSAN_OPTIONS="report_bugs=0")
                                             ).returncode != 0:
        pytest.skip("no working -fsanitize=thread here: " + res.stderr[-300:])
    out = run_driver([str(exe)], timeout=300)
    assert "ThreadSanitizer" not in out, out
