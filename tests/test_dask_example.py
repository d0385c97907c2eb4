"""examples/dask_detect.py on a LocalCluster of 2 workers: the results, in input
order, equal a Detector's in this process; each worker builds one network."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("dask", reason="dask is not installed (pip install 'dask[distributed]', "
                                   "or the test extra)")
pytest.importorskip("distributed", reason="dask's distributed is not installed (pip install "
                                          "'dask[distributed]', or the test extra)")

from mdfi import pipeline  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_dask_example_equals_one_process(golden, tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("dog", "eagle", "horses", "person"):
        shutil.copy(golden / "images" / f"{name}.jpg", photos / f"{name}.jpg")
    for name in ("dog", "person"):
        shutil.copy(golden / "images" / f"{name}.ppm", photos / f"{name}_p.ppm")
    (photos / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    paths = sorted(str(p) for p in photos.iterdir())
    out = tmp_path / "results.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "dask_detect.py"), str(photos),
                          "--workers", "2", "--batch", "1", "--out", str(out),
                          "--cfg", str(tiny_model["cfg"]), "--weights", str(tiny_model["weights"]),
                          "--names", str(tiny_model["names"])],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr            # the broken file
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in got] == paths
    assert "zz_broken.jpg" in got[-1]["error"]
    with pipeline.Detector(tiny_model["cfg"], tiny_model["weights"], tiny_model["names"]) as d:
        for rec in got[:-1]:
            img, dets = d.run(rec["image"])
            assert rec == {"image": rec["image"], "width": img.width, "height": img.height,
                           "decoder": img.decoder, "detections": [x.to_json() for x in dets]}
    assert sum(bool(r["detections"]) for r in got[:-1]) >= 5
    # 7 one-image tasks on 2 workers: a worker ran several, and built its network once
    built = re.search(r"networks built per worker: (.*)", res.stderr)
    counts = [int(n) for n in built.group(1).split(", ")]
    assert len(counts) == 2 and all(n <= 1 for n in counts) and sum(counts) >= 1, res.stderr
