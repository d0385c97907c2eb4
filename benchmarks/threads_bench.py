"""Threads and lifetimes through mdfi.Network (not a timed test).

    python benchmarks/threads_bench.py [--cfg CFG] [--weights W] [--forwards N]
                                       [--repeats R] [--leak-forwards N] [--cycles N]

1. Scaling: two Networks (threads=1 each), N forwards each, run one after the
   other on one Python thread, then at once on two Python threads.  Printed per
   repeat: both wall times, their ratio (sequential / parallel; 2.0 is perfect
   on two free cores), and the parallel run's CPU use, i.e. the threads' summed
   CPU time over the wall time (about 2.0 when both threads ran at once: the
   GIL was released around the C forward; about 1.0 when something serialized
   them); the sequential run's CPU use says how much of one core a thread got.
   On a shared machine the wall ratio measures the other work too: two threads
   can use no more than the cores left free, which the two CPU-use figures show.
   CPU time par/seq: the threads' CPU time in the parallel run over the
   sequential run's (1.0: running at once adds no work, such as lock spinning
   or cache fights; with the GIL released, the ratio on two free cores is then
   about 2 / that figure).
2. Leaks: RSS (/proc/self/statm) after a warm-up, after --leak-forwards forwards
   on one network, and after --cycles load / forward / close cycles.
The CPU model and the free cores (os.sched_getaffinity, load average) are
printed first, since the ratio means little without them.
"""
import argparse
import os
import pathlib
import sys
import threading
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import mdfi  # noqa: E402
from mdfi.bench import cpu_name  # noqa: E402

MODELS = ROOT / "examples" / "models"



def rss_bytes():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_forwards(net, x, n, cpu, key):
    t0 = time.thread_time()
    for _ in range(n):
        net.forward(x)
    cpu[key] = time.thread_time() - t0


def scaling(cfg, weights, n, repeats):
    nets = [mdfi.Network(cfg, weights, threads=1) for _ in range(2)]
    x = np.random.default_rng(0).random(nets[0].input_shape, dtype=np.float32)
    for net in nets:     # warm-up; and one thread's result to compare with
        want = net.forward(x)
    rows = []
    for _ in range(repeats):
        cpu = {}
        t0 = time.perf_counter()
        for k, net in enumerate(nets):
            run_forwards(net, x, n, cpu, k)
        seq = time.perf_counter() - t0
        seq_use, seq_cpu = sum(cpu.values()) / seq, sum(cpu.values())
        cpu = {}
        threads = [threading.Thread(target=run_forwards, args=(net, x, n, cpu, k))
                   for k, net in enumerate(nets)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        par = time.perf_counter() - t0
        rows.append((seq, par, seq / par, sum(cpu.values()) / par, sum(cpu.values()) / seq_cpu))
        print(f"  sequential {seq:7.3f} s (CPU use {seq_use:4.2f})  parallel {par:7.3f} s "
              f"(CPU use {rows[-1][3]:4.2f})  ratio {seq / par:4.2f}  "
              f"CPU time par/seq {rows[-1][4]:4.2f}", flush=True)
    for net in nets:
        np.testing.assert_array_equal(net.forward(x), want)
        net.close()
    return rows


def leaks(cfg, weights, forwards, cycles):
    x = None
    with mdfi.Network(cfg, weights) as net:
        x = np.random.default_rng(1).random(net.input_shape, dtype=np.float32)
        for _ in range(200):
            net.forward(x)
        base = rss_bytes()
        t0 = time.perf_counter()
        for _ in range(forwards):
            net.forward(x)
        after_fw = rss_bytes()
        print(f"  {forwards} forwards ({time.perf_counter() - t0:.1f} s): RSS "
              f"{base / 2**20:.2f} -> {after_fw / 2**20:.2f} MiB "
              f"({(after_fw - base) / 1024:+.0f} KiB)")
    for _ in range(20):
        with mdfi.Network(cfg, weights) as net:
            net.forward(x)
    base = rss_bytes()
    t0 = time.perf_counter()
    for _ in range(cycles):
        with mdfi.Network(cfg, weights) as net:
            net.forward(x)
    after = rss_bytes()
    print(f"  {cycles} load/forward/close cycles ({time.perf_counter() - t0:.1f} s): RSS "
          f"{base / 2**20:.2f} -> {after / 2**20:.2f} MiB ({(after - base) / 1024:+.0f} KiB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", default=str(MODELS / "fmnist_vgg.cfg"))
    ap.add_argument("--weights", default=str(MODELS / "fmnist_vgg.weights"))
    ap.add_argument("--forwards", type=int, default=200, help="forwards per network and run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--leak-cfg", default=str(MODELS / "mnist_float.cfg"))
    ap.add_argument("--leak-weights", default=str(MODELS / "mnist_float.weights"))
    ap.add_argument("--leak-forwards", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=1000)
    args = ap.parse_args()
    free = len(os.sched_getaffinity(0))
    print(f"CPU: {cpu_name()}; {free} cores usable; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"scaling: 2 networks x {args.forwards} forwards of {pathlib.Path(args.cfg).name}, "
          f"threads=1 each")
    rows = scaling(args.cfg, args.weights, args.forwards, args.repeats)
    ratios = sorted(r[2] for r in rows)
    for name, col in (("ratio", 2), ("parallel CPU use", 3), ("CPU time par/seq", 4)):
        v = sorted(r[col] for r in rows)
        print(f"{name}: median {v[len(v) // 2]:.2f} (min {v[0]:.2f}, max {v[-1]:.2f})")
    print(f"leaks: {pathlib.Path(args.leak_cfg).name}")
    leaks(args.leak_cfg, args.leak_weights, args.leak_forwards, args.cycles)


if __name__ == "__main__":
    main()
