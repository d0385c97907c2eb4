"""Many images for `python -m mdfi.detect`: folders expanded to image files, a
progress line, and the worker processes (one network each) that detect them.

Results come back in input order whatever the number of workers; a file that
cannot be read or decoded comes back as an error record, not an exception, so
the rest of the run goes on.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from typing import Iterable, Iterator, List, Optional, Tuple

from . import errors

# what the loader reads: JPEG and PNM by the C core, the rest by Pillow
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".pbm", ".bmp", ".gif",
                    ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class Item:
    """One image to detect: its path, and its path relative to the folder it was
    found in ("" when it was named on the command line)."""
    path: str
    relative: str = ""


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _folder_images(root: str, recursive: bool) -> List[str]:
    """Relative paths of the image files in root, sorted (by path components)."""
    found = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(top, root)
        found += [os.path.normpath(os.path.join(rel, f)) for f in files if is_image_name(f)]
        if not recursive:
            break
    return sorted(found, key=lambda p: p.split(os.sep))


def expand(args: Iterable[str], recursive: bool = False) -> Tuple[List[Item], List[str]]:
    """(items, empty folders): files as given (whatever their extension; a missing
    one is reported when it is read), folders replaced by their image files."""
    items, empty = [], []
    for arg in args:
        if os.path.isdir(arg):
            found = _folder_images(arg, recursive)
            if not found:
                empty.append(arg)
            items += [Item(os.path.join(arg, rel), rel) for rel in found]
        else:
            items.append(Item(arg))
    return items, empty


def out_paths(items: List[Item], out_dir: str) -> List[str]:
    """Annotated image paths under out_dir: a folder's files keep their place in
    it, the extension becoming .jpg (the whole name + .jpg where two would meet)."""
    def name(item, whole):
        rel = item.relative or os.path.basename(item.path)
        return rel + ".jpg" if whole else os.path.splitext(rel)[0] + ".jpg"
    short = [name(it, False) for it in items]
    seen = {}
    for s in short:
        seen[s] = seen.get(s, 0) + 1
    return [os.path.join(out_dir, s if seen[s] == 1 else name(it, True))
            for it, s in zip(items, short)]


def progress_text(done: int, total: int, elapsed: float) -> str:
    """`  37/200  18%  4.2 images/s  ETA 0:39`."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate > 0:
        left = round((total - done) / rate)
        eta = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}" if left >= 3600 \
            else f"{left // 60}:{left % 60:02d}"
    else:
        eta = "?"
    pct = 100 * done // total if total else 100
    return f"{done:>{len(str(total))}}/{total} {pct:3d}%  {rate:.1f} images/s  ETA {eta}"


# ---- the workers ---------------------------------------------------------------------
# One Detector per process, made by the pool's initializer; in-process (jobs=1)
# the same functions run in the calling process.

_worker = {}


@dataclasses.dataclass(frozen=True)
class Settings:
    cfg: str
    weights: str
    names: Optional[str]
    threads: int = 1
    kernel: Optional[str] = None
    thresh: float = 0.5
    nms: float = 0.45


def init_worker(settings: Settings, in_pool: bool = True) -> None:
    """Builds this process's Detector.  A pool's workers leave Ctrl-C to the parent,
    which ends them; a model that cannot be loaded is kept as the error every
    task returns (a pool would otherwise start failing workers forever)."""
    from .pipeline import Detector
    if in_pool:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker.clear()
    _worker["settings"] = settings
    try:
        _worker["detector"] = Detector(settings.cfg, settings.weights, settings.names,
                                       settings.threads, settings.kernel)
    except errors.MdfiError as exc:
        _worker["fatal"] = str(exc)


def close_worker() -> None:
    det = _worker.pop("detector", None)
    if det is not None:
        det.close()


def detect_one(task: Tuple[str, Optional[str]]) -> dict:
    """(path, annotated path or None) -> {"record": the --json object, "ms",
    "wrote"}, or {"error": message}, or {"fatal": message} (no model)."""
    from .draw import annotate
    from .image import load
    if "fatal" in _worker:
        return {"fatal": _worker["fatal"]}
    path, out = task
    s = _worker["settings"]
    try:
        img = load(path)
        t0 = time.perf_counter()
        _, dets = _worker["detector"].run(img, s.thresh, s.nms)
        ms = (time.perf_counter() - t0) * 1e3
        if out:
            if os.path.dirname(out):
                os.makedirs(os.path.dirname(out), exist_ok=True)
            annotate(path, dets, out)
    except (errors.MdfiError, OSError, ValueError) as exc:
        return {"error": str(exc) if path in str(exc) else f"{path}: {exc}"}
    record = {"image": path, "width": img.width, "height": img.height, "decoder": img.decoder,
              "detections": [d.to_json() for d in dets]}
    return {"record": record, "ms": ms, "wrote": out}


def run(tasks: List[Tuple[str, Optional[str]]], settings: Settings,
        jobs: int = 1) -> Iterator[dict]:
    """detect_one's results, in the order of tasks, as they are ready.  jobs > 1:
    that many worker processes, each with its own network (threads each)."""
    if jobs <= 1 or len(tasks) <= 1:
        init_worker(settings, in_pool=False)
        try:
            for task in tasks:
                yield detect_one(task)
        finally:
            close_worker()
        return
    pool = multiprocessing.get_context().Pool(min(jobs, len(tasks)), initializer=init_worker,
                                              initargs=(settings,))
    try:
        yield from pool.imap(detect_one, tasks, chunksize=1)
    except BaseException:   # Ctrl-C, a fatal record, or the caller stopping early
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()
