"""`python -m mdfi.detect` on folders (mdfi/folder.py): expansion and order,
worker processes giving the single-process results, unreadable files skipped
with exit status 1, results written as they come, Ctrl-C exiting with 130; and
the one-file output as before."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mdfi import folder, pipeline

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(*args, cwd, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mdfi.detect", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _model_args(m):
    return ["--cfg", m["cfg"], "--weights", m["weights"], "--names", m["names"]]


@pytest.fixture(scope="module")
def photos(golden, tmp_path_factory):
    """A folder: two photos, one in a sub-folder, a broken .jpg, a text file."""
    d = tmp_path_factory.mktemp("photos")
    shutil.copy(golden / "images" / "eagle.ppm", d / "b_eagle.ppm")
    shutil.copy(golden / "images" / "dog.jpg", d / "a_dog.jpg")
    (d / "sub").mkdir()
    shutil.copy(golden / "images" / "horses.jpg", d / "sub" / "horses.JPG")
    (d / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "notes.txt").write_text("not an image")
    return d


# ---- expansion, names, progress (no model) --------------------------------------------

def test_expand_keeps_argument_order_and_sorts_folders(photos):
    items, empty = folder.expand([str(photos / "notes.txt"), str(photos)])
    assert [os.path.relpath(i.path, photos) for i in items] == [
        "notes.txt", "a_dog.jpg", "b_eagle.ppm", "c_broken.jpg"]
    assert not empty
    items, _ = folder.expand([str(photos)], recursive=True)
    assert [i.relative for i in items] == ["a_dog.jpg", "b_eagle.ppm", "c_broken.jpg",
                                           os.path.join("sub", "horses.JPG")]
    _, empty = folder.expand([str(photos / "sub"), str(photos)], recursive=False)
    assert empty == []
    (photos / "empty").mkdir(exist_ok=True)
    assert folder.expand([str(photos / "empty")]) == ([], [str(photos / "empty")])


def test_out_paths_mirror_the_folder_and_avoid_collisions():
    items = [folder.Item("in/a.png", "a.png"), folder.Item("in/a.jpg", "a.jpg"),
             folder.Item("in/s/b.ppm", os.path.join("s", "b.ppm")), folder.Item("x/c.jpeg")]
    assert folder.out_paths(items, "D") == [
        os.path.join("D", "a.png.jpg"), os.path.join("D", "a.jpg.jpg"),
        os.path.join("D", "s", "b.jpg"), os.path.join("D", "c.jpg")]


def test_progress_text():
    assert folder.progress_text(37, 200, 10.0) == " 37/200  18%  3.7 images/s  ETA 0:44"
    assert folder.progress_text(0, 5, 0.0) == "0/5   0%  0.0 images/s  ETA ?"
    assert folder.progress_text(1, 7201, 1.0).endswith("ETA 2:00:00")


# ---- the command line -----------------------------------------------------------------

def _expected(tiny_model, paths):
    """The --json records of each file, from a Detector in this process."""
    with pipeline.Detector(tiny_model["cfg"], tiny_model["weights"], tiny_model["names"]) as d:
        out = []
        for p in paths:
            img, dets = d.run(str(p))
            out.append({"image": str(p), "width": img.width, "height": img.height,
                        "decoder": img.decoder, "detections": [x.to_json() for x in dets]})
    return out


def test_folder_with_two_jobs_gives_the_single_file_results(photos, tiny_model, tmp_path):
    good = [photos / "a_dog.jpg", photos / "b_eagle.ppm", photos / "sub" / "horses.JPG"]
    want = _expected(tiny_model, good)
    runs = {}
    for jobs in (2, 1):
        out = tmp_path / f"j{jobs}"
        out.mkdir()
        res = _cli(photos, "-r", "--jobs", jobs, "--json", "--json-out", out / "r.jsonl",
                   "--out-dir", out / "annotated", "--progress", *_model_args(tiny_model),
                   cwd=tmp_path)
        assert res.returncode == 1, res.stderr        # the broken file was skipped
        assert f"mdfi.detect: error: {photos / 'c_broken.jpg'}" in res.stderr
        assert "1 of 4 images skipped" in res.stderr
        # (text mode reads the progress line's \r as a newline)
        assert re.search(r"\n\033\[K4/4 100%  [\d.]+ images/s  ETA 0:00\n", res.stderr)
        lines = [json.loads(s) for s in res.stdout.splitlines()]
        assert lines == want
        assert (out / "r.jsonl").read_text() == res.stdout
        for name in ("a_dog.jpg", "b_eagle.jpg", os.path.join("sub", "horses.jpg")):
            assert (out / "annotated" / name).stat().st_size > 0
        runs[jobs] = res.stdout
    assert runs[1] == runs[2]


def test_one_file_prints_as_before(golden, tiny_model, tmp_path):
    dog = golden / "images" / "dog.ppm"
    res = _cli(dog, *_model_args(tiny_model), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{dog}: Predicted in ") and lines[0].endswith(" milliseconds.")
    want = _expected(tiny_model, [dog])[0]["detections"]
    assert lines[1:] == [f"{d['label']}: {d['prob'] * 100:.0f}%" for d in want]
    assert "wrote predictions.jpg" in res.stderr and (tmp_path / "predictions.jpg").exists()
    assert "\r" not in res.stderr                      # no progress line off a terminal


def test_missing_file_and_missing_model(tiny_model, tmp_path):
    res = _cli(tmp_path / "nope.jpg", "--no-out", *_model_args(tiny_model), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(
        f"mdfi.detect: error: {tmp_path / 'nope.jpg'}: cannot open")
    # a model the workers cannot load ends the run (and does not hang the pool)
    res = _cli(tmp_path / "nope.jpg", tmp_path / "nope2.jpg", "--jobs", "2", "--no-out",
               "--cfg", tmp_path / "missing.cfg", "--weights", tiny_model["weights"],
               cwd=tmp_path, timeout=60)
    assert res.returncode == 1 and "missing.cfg" in res.stderr, res.stderr


def test_ctrl_c_keeps_what_was_written(golden, tiny_model, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(40):
        os.link(golden / "images" / "dog.ppm", d / f"{i:02d}.ppm")
    out = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "mdfi.detect", str(d), "--jobs", "2",
                             "--no-out", "--json-out", str(out),
                             *map(str, _model_args(tiny_model))],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)                 # as a terminal's Ctrl-C: the group
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    lines = out.read_text().splitlines()
    assert 2 <= len(lines) < 40, stderr
    want = _expected(tiny_model, [d / "00.ppm"])[0]["detections"]
    for i, line in enumerate(lines):
        rec = json.loads(line)
        assert rec["image"] == str(d / f"{i:02d}.ppm") and rec["detections"] == want
    said = re.search(r"interrupted after (\d+) of 40 images", stderr)
    assert said and int(said.group(1)) in (len(lines) - 1, len(lines)), stderr
    assert "Traceback" not in stderr
