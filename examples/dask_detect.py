"""Detect objects in a folder of images on a Dask distributed cluster: MDFI
inside an existing engine's workers, one network per worker process.

    pip install dask distributed        # (the `test` extra installs them)
    python examples/dask_detect.py FOLDER [--workers 2] [--out results.jsonl]
        [--parquet results.parquet] [--scheduler tcp://HOST:8786] [--recursive]
        [--batch 4] [--model yolov3-tiny | --cfg C --weights W --names N]

Without --scheduler it starts a LocalCluster of --workers processes with one
thread each (MDFI's forward is one thread here; more workers, not threads,
fill the cores).  Each worker builds its mdfi.Detector once, on its first task,
through a worker plugin, and keeps it for every later task.  The images go out
in batches of --batch paths; the JSON lines come back and are written in input
order (each flushed as soon as it and all before it are done), in the form
`python -m mdfi.detect --json` prints.  A file that cannot be read becomes a
line {"image": ..., "error": ...} and the exit status is 1.  --parquet also
writes the results as a Parquet table (one row per image, detections as a JSON
string) when pyarrow is installed; MDFI does not depend on it.

Printed on stderr: the images/s of the detection (from the plugin's
registration to the last result: each worker's network load counts, the
cluster's start does not).
"""
import argparse
import json
import logging
import os
import sys
import time

from distributed import Client, LocalCluster, WorkerPlugin, get_worker

import mdfi
from mdfi import models
from mdfi.folder import expand

PLUGIN = "mdfi-detector"


class DetectorPlugin(WorkerPlugin):
    """Holds one worker process's mdfi.Detector, built on first use.  The plugin
    is pickled to every worker; the Detector (C memory) never travels."""

    def __init__(self, cfg, weights, names, thresh=0.5, nms=0.45):
        self.files = (cfg, weights, names)
        self.thresh, self.nms = thresh, nms
        self.detector, self.builds = None, 0

    def setup(self, worker):
        self.detector, self.builds = None, 0

    def get(self):
        if self.detector is None:
            self.detector = mdfi.Detector(*self.files, threads=1)
            self.builds += 1
        return self.detector

    def teardown(self, worker):
        if self.detector is not None:
            self.detector.close()


def detect_batch(paths):
    """Runs on a worker: one record per path, as `python -m mdfi.detect --json`."""
    plugin = get_worker().plugins[PLUGIN]
    det = plugin.get()
    out = []
    for path in paths:
        try:
            img, dets = det.run(path, plugin.thresh, plugin.nms)
        except mdfi.MdfiError as exc:
            out.append({"image": path, "error": str(exc)})
            continue
        out.append({"image": path, "width": img.width, "height": img.height,
                    "decoder": img.decoder, "detections": [d.to_json() for d in dets]})
    return out


def write_parquet(records, path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit("dask_detect: --parquet needs pyarrow (pip install pyarrow)")
    pq.write_table(pa.table({
        "image": [r["image"] for r in records],
        "width": [r.get("width") for r in records],
        "height": [r.get("height") for r in records],
        "error": [r.get("error") for r in records],
        "detections": [json.dumps(r.get("detections", [])) for r in records]}), path)


def networks_built(client):
    """{worker address: how many times its plugin built a Detector} (1 each)."""
    return client.run(lambda dask_worker: dask_worker.plugins[PLUGIN].builds)


def run(client, paths, files, batch, out, thresh=0.5, nms=0.45):
    """Detects paths on the client's workers; writes each record to `out` in
    input order as it is ready; returns the records."""
    client.register_plugin(DetectorPlugin(*files, thresh=thresh, nms=nms), name=PLUGIN)
    batches = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    futures = client.map(detect_batch, batches, pure=False)
    records = []
    for fut in futures:                       # in input order; later ones run meanwhile
        for rec in fut.result():
            out.write(json.dumps(rec) + "\n")
            out.flush()
            records.append(rec)
    return records


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="FOLDER_OR_IMAGE")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster processes")
    p.add_argument("--scheduler", help="use this running cluster instead of a LocalCluster")
    p.add_argument("--out", help="JSON lines file (default: stdout)")
    p.add_argument("--parquet", help="also write a Parquet table (needs pyarrow)")
    p.add_argument("--recursive", action="store_true")
    p.add_argument("--batch", type=int, default=4, help="images per task")
    p.add_argument("--model", default="yolov3-tiny")
    p.add_argument("--cfg")
    p.add_argument("--weights")
    p.add_argument("--names")
    p.add_argument("--thresh", type=float, default=0.5)
    p.add_argument("--nms", type=float, default=0.45)
    args = p.parse_args(argv)
    items, _ = expand(args.inputs, args.recursive)
    paths = [it.path for it in items]
    if args.cfg:
        files = (args.cfg, args.weights, args.names)
    else:   # fetched (and verified) once here, not by every worker
        m = models.fetch(args.model, quiet=True)
        files = (str(m["cfg"]), str(m["weights"]), str(args.names or m["names"]))
    if args.scheduler:
        cluster = None
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        t0 = time.perf_counter()
        records = run(client, paths, files, max(1, args.batch), out, args.thresh, args.nms)
        dt = time.perf_counter() - t0
        built = networks_built(client)
    finally:
        if out is not sys.stdout:
            out.close()
        client.close()
        if cluster is not None:
            cluster.close()
    workers = args.workers if cluster is not None else "the cluster's"
    print(f"dask_detect: {len(records)} images on {workers} workers in {dt:.2f} s: "
          f"{len(records) / dt:.2f} images/s", file=sys.stderr)
    print("dask_detect: networks built per worker: "
          + ", ".join(str(n) for _, n in sorted(built.items())), file=sys.stderr)
    if args.parquet:
        write_parquet(records, args.parquet)
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
