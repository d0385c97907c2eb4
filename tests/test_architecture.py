"""The C core's floors: includes only look down (docs/architecture.md).

    include/ (the public header)
    base/                   errors, memory, threads, cfg tokenizer
    kernels/ io/ detect/    numerics, file formats, post-processing (siblings
                            that never include each other)
    layers/                 one file per layer type, the registry
    net/                    build, passes, plan, forward, detect glue
    cli/                    the mdfi program
"""
import pathlib
import re

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"
FLOOR = {"include": 0, "base": 1, "kernels": 2, "io": 2, "detect": 2, "layers": 3, "net": 4,
         "cli": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def _sources():
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".c", ".h"))


def _edges():
    """(file, its top folder, included top folder) for every quoted include."""
    for path in _sources():
        here = path.relative_to(CSRC).parts[0]
        for inc in INCLUDE.findall(path.read_text()):
            top = "include" if inc == "mdfi.h" else inc.split("/")[0]
            yield path.relative_to(CSRC), here, top, inc


def test_every_folder_has_a_floor():
    folders = {p.relative_to(CSRC).parts[0] for p in _sources()}
    assert folders <= set(FLOOR), folders - set(FLOOR)


def _violations(edges):
    bad = []
    for path, here, top, inc in edges:
        if top not in FLOOR:
            bad.append(f"{path}: #include \"{inc}\" (include paths start with a floor's folder)")
        elif top != here and FLOOR[top] >= FLOOR[here]:
            bad.append(f"{path} (floor {FLOOR[here]}) includes {inc} (floor {FLOOR[top]})")
    return bad


def test_includes_only_look_down():
    bad = _violations(_edges())
    assert not bad, "\n".join(bad)


def test_the_check_catches_wrong_includes():
    made_up = [("kernels/x.c", "kernels", "layers", "layers/layer.h"),   # up
               ("io/x.c", "io", "detect", "detect/detect.h"),            # sideways
               ("layers/x.c", "layers", "cpu.h", "cpu.h"),               # no floor
               ("net/x.c", "net", "layers", "layers/layer.h")]           # down: fine
    assert len(_violations(made_up)) == 3


def test_getenv_only_in_the_program():
    """Only the mdfi program (and the Python layer) read the environment."""
    hits = [f"{p.relative_to(CSRC)}:{i + 1}" for p in _sources()
            for i, line in enumerate(p.read_text().splitlines())
            if "getenv" in line and p.relative_to(CSRC).parts[0] != "cli"]
    assert not hits, hits


def test_no_ops_pointer_comparisons_outside_the_registry():
    """Layer kinds are asked of the registry row (its flags), never by
    comparing tables of functions in other files."""
    pat = re.compile(r"(->|\.)(ops|type)\s*[!=]=\s*&|[!=]=\s*&mdfi_\w+_(ops|type)\b")
    hits = [f"{p.relative_to(CSRC)}:{i + 1}: {line.strip()}" for p in _sources()
            if p.name != "registry.c"
            for i, line in enumerate(p.read_text().splitlines()) if pat.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("folder", ["layers"])
def test_layers_never_hold_the_layer_array(folder):
    """After the passes no layer reads its neighbours: no l + 1, l[1], no
    pointer to the network's layers kept in a layer's state."""
    pat = re.compile(r"\bl\s*\+\s*1\b|\bl\[\s*-?1\s*\]|mdfi_layer\s*\*\s*net\b")
    hits = [f"{p.relative_to(CSRC)}:{i + 1}: {line.strip()}"
            for p in sorted((CSRC / folder).glob("*.[ch]"))
            for i, line in enumerate(p.read_text().splitlines()) if pat.search(line)]
    assert not hits, "\n".join(hits)
