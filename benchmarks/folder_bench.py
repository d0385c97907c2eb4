"""A folder of photos at 1 and 2 worker processes (not a timed test).

    python benchmarks/folder_bench.py [--images 40] [--repeats 3] [--dask]

Makes a folder of --images photos in a temporary directory (Darknet's four
golden photos and six of scikit-image's, in turn), then, --repeats times and
alternating, runs

    python -m mdfi.detect FOLDER --jobs J --no-out --json --progress   (J = 1, 2)

or with --dask, examples/dask_detect.py FOLDER --workers J.  Printed per run:
the wall time of the whole command (Python's start, the model's load, the
workers' start) and the images/s of the detection itself (the command's last
progress line, or dask_detect's own figure: workers' network loads included,
the cluster's start not), and the CPU time of the command and its workers
over the wall time: how many cores it got (two workers on two free cores:
near 2; on a machine whose other work holds a core: near 1, and then no
ratio can show the scaling).  Then the median of each and the 2-worker / 1-worker
ratios.  The CPU and the load average are printed first and last: on a shared
machine the ratio measures the other work too.
"""
import argparse
import os
import pathlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from mdfi.bench import cpu_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = pathlib.Path(os.environ.get("MDFI_GOLDEN", ROOT.parent / "shared" / "golden"))
SKIMAGE = ("coffee.png", "astronaut.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg",
           "hubble_deep_field.jpg")



def photos():
    import skimage
    data = pathlib.Path(skimage.__file__).parent / "data"
    return ([GOLDEN / "images" / f"{n}.jpg" for n in ("dog", "eagle", "horses", "person")]
            + [data / n for n in SKIMAGE])


def make_folder(n, where):
    src = photos()
    for i in range(n):
        p = src[i % len(src)]
        shutil.copy(p, where / f"img{i:03d}{p.suffix}")


def run_once(folder, jobs, dask, model):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    files = ["--cfg", model["cfg"], "--weights", model["weights"], "--names", model["names"]]
    if dask:
        cmd = [sys.executable, str(ROOT / "examples" / "dask_detect.py"), str(folder),
               "--workers", str(jobs), "--out", os.devnull, *map(str, files)]
    else:
        cmd = [sys.executable, "-m", "mdfi.detect", str(folder), "--jobs", str(jobs),
               "--no-out", "--json", "--progress", *map(str, files)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = float(re.findall(r"([\d.]+) images/s", res.stderr)[-1])   # the last line's
    return wall, rate, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dask", action="store_true", help="time examples/dask_detect.py instead")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from mdfi import models
    model = models.fetch("yolov3-tiny", quiet=True)
    print(f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores for this process; "
          f"load average {os.getloadavg()[0]:.2f}")
    what = "examples/dask_detect.py --workers" if args.dask else "python -m mdfi.detect --jobs"
    got = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        make_folder(args.images, folder)
        for r in range(args.repeats):
            for jobs in (1, 2):
                wall, rate, cpu = run_once(folder, jobs, args.dask, model)
                got[jobs].append((wall, rate))
                print(f"  {what} {jobs}: {args.images} images, {wall:.2f} s wall, "
                      f"{rate:.2f} images/s detecting, {cpu:.2f} s CPU ({cpu / wall:.2f} "
                      f"cores busy)")
    med = {j: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v))
           for j, v in got.items()}
    for j, (w, r) in med.items():
        print(f"median {what} {j}: {w:.2f} s wall, {r:.2f} images/s")
    print(f"2 / 1: {med[1][0] / med[2][0]:.2f}x by wall time, {med[2][1] / med[1][1]:.2f}x by "
          f"images/s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
