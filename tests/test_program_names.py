"""Class names in `mdfi detect` (csrc/cli/names.c): --names, a Darknet .data file,
names= in the cfg's [net], <stem>.names or coco.names beside the cfg, else class_N with
one warning; and Darknet's `detector test DATA CFG WEIGHTS IMAGE -thresh T` form."""
import shutil
import subprocess

import pytest

from cbuild import build


@pytest.fixture(scope="module")
def exe():
    return build(targets=("all",)) / "mdfi"


@pytest.fixture
def model(tmp_path, tiny_model):
    """yolov3-tiny's cfg alone in a folder (the weights stay where they are)."""
    d = tmp_path / "model"
    d.mkdir()
    shutil.copy(tiny_model["cfg"], d / "yolov3-tiny.cfg")
    return {"dir": d, "cfg": d / "yolov3-tiny.cfg", "weights": tiny_model["weights"],
            "names": tiny_model["names"]}


def detect(exe, model, image, *args, cwd=None):
    return subprocess.run([str(exe), "detect", str(model["cfg"]), str(model["weights"]), str(image),
                           *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_coco_names_beside_the_cfg(exe, model, golden):
    dog = golden / "images" / "dog.jpg"
    bare = detect(exe, model, dog)
    assert bare.returncode == 0, bare.stderr
    assert "class_16: 57%" in bare.stdout
    warnings = [ln for ln in bare.stderr.splitlines() if "no class names" in ln]
    assert len(warnings) == 1 and "--names" in warnings[0] and "--data" in warnings[0]
    shutil.copy(model["names"], model["dir"] / "coco.names")
    res = detect(exe, model, dog)
    assert res.returncode == 0 and "dog: 57%" in res.stdout and "class_" not in res.stdout
    assert "no class names" not in res.stderr
    assert len(res.stdout.splitlines()) == len(bare.stdout.splitlines())   # labels only change


def test_stem_names_come_before_coco_names(exe, model, golden):
    (model["dir"] / "coco.names").write_text("\n".join(f"coco{i}" for i in range(80)) + "\n")
    (model["dir"] / "yolov3-tiny.names").write_text(
        "\n".join(f"stem{i}" for i in range(80)) + "\n")
    res = detect(exe, model, golden / "images" / "dog.jpg")
    assert "stem16: 57%" in res.stdout and "coco" not in res.stdout


def test_names_in_the_cfg_net_section(exe, model, golden, tmp_path):
    (model["dir"] / "labels.txt").write_text("\n".join(f"net{i}" for i in range(80)) + "\n")
    text = model["cfg"].read_text().replace("[net]", "[net]\nnames=labels.txt", 1)
    model["cfg"].write_text(text)
    # relative to the cfg when it is not in the current directory
    res = detect(exe, model, golden / "images" / "dog.jpg", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "net16: 57%" in res.stdout
    assert "unknown key 'names'" not in res.stderr


def test_data_file_and_darknet_detector_test(exe, model, golden, tmp_path):
    data_dir = tmp_path / "cfgdir"
    data_dir.mkdir()
    shutil.copy(model["names"], data_dir / "coco.names")
    data = data_dir / "coco.data"
    # Darknet's own coco.data, whitespace and all; names relative to the .data file
    data.write_text("classes= 80\ntrain  = /home/pjreddie/data/coco/trainvalno5k.txt\n"
                    "# a comment\nnames = coco.names\nbackup = /home/pjreddie/backup/\n")
    image = golden / "images" / "dog.jpg"
    a = detect(exe, model, image, "--data", data, "--thresh", "0.3", cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    assert "dog: " in a.stdout and "class_" not in a.stdout
    b = subprocess.run([str(exe), "detector", "test", str(data), str(model["cfg"]),
                        str(model["weights"]), str(image), "-thresh", "0.3"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert b.returncode == 0, b.stderr
    # byte-identical but for the timing
    strip = lambda s: [ln for ln in s.splitlines() if "milliseconds" not in ln]  # noqa: E731
    assert strip(a.stdout) == strip(b.stdout) and len(strip(a.stdout)) > 3
    a = detect(exe, model, image, "--data", data, "--thresh", "0.3", "--json", cwd=tmp_path)
    b = subprocess.run([str(exe), "detector", "test", str(data), str(model["cfg"]),
                        str(model["weights"]), str(image), "-thresh", "0.3", "--json"],
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert a.returncode == 0 and a.stdout.encode() == b.stdout and b'"dog"' in b.stdout
    # --names wins over --data; a .data whose names file is missing is an error naming it
    res = detect(exe, model, image, "--data", data, "--names", tmp_path / "none.names")
    assert res.returncode == 1 and "none.names" in res.stderr
    data.write_text("classes=80\nnames=missing.names\n")
    res = detect(exe, model, image, "--data", data)
    assert res.returncode == 1 and "missing.names" in res.stderr and "coco.data" in res.stderr
    # classes= larger than the names file: warned
    (data_dir / "few.names").write_text("a\nb\n")
    data.write_text("classes=80\nnames=few.names\n")
    res = detect(exe, model, image, "--data", data)
    assert res.returncode == 0 and "classes=80" in res.stderr and "2 names" in res.stderr


def test_detector_usage(exe):
    res = subprocess.run([str(exe), "detector", "train", "a", "b"], capture_output=True, text=True)
    assert res.returncode == 2 and "detector test DATA CFG WEIGHTS IMAGE" in res.stderr
