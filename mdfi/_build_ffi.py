"""cffi (API mode) build of the C core's public API, declared by csrc/include/mdfi.h
itself (read and stripped here, never copied by hand).

The C sources are compiled by the project's Makefile into a static library
(so per-file ISA flags stay in one place); this module links it.
`python mdfi/_build_ffi.py --sanitize` builds an ASan+UBSan extension into
build/python-san/ instead.
"""
import os
import pathlib
import re
import subprocess

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEADER = ROOT / "csrc" / "include" / "mdfi.h"

COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
INT_DEFINE = re.compile(r"#\s*define\s+(\w+)\s+(\(?-?(0x[0-9a-fA-F]+|\d+)[uUlL]*\)?)\s*$")
STR_DEFINE = re.compile(r'#\s*define\s+(\w+)\s+"[^"]*"\s*$')


def header_cdef(text):
    """The header as cffi's cdef takes it: comments, includes, guards and the
    C++ `extern "C"` block dropped; `#define NAME integer` kept as it is and
    `#define NAME "text"` declared as a string constant (lib.NAME)."""
    out, skip = [], 0
    for line in COMMENT.sub(" ", text.replace("\\\n", " ")).splitlines():
        s = line.strip()
        if skip:    # inside #ifdef __cplusplus ... #endif
            skip += s.startswith("#if") - s.startswith("#endif")
            continue
        if s.startswith("#"):
            if s.replace(" ", "") in ("#ifdef__cplusplus", "#if__cplusplus",
                                      "#ifdefined(__cplusplus)"):
                skip = 1
            elif INT_DEFINE.match(s):
                m = INT_DEFINE.match(s)
                out.append("#define %s %d" % (m.group(1), int(m.group(2).strip("()uUlL"), 0)))
            elif STR_DEFINE.match(s):
                out.append("static const char *const %s;" % STR_DEFINE.match(s).group(1))
            continue
        if s:
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


# the sanitizer build (ASan+UBSan): its own build folder, the Makefile's
# SANITIZE=1 flags for the library, the same at the extension's compile and link;
# load it with the sanitizer runtime preloaded (tests/test_sanitize_python.py)
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer", "-g"]


def build_dir(sanitize=False):
    return ROOT / "build" / ("python-san" if sanitize else "python")


def build_static_library(sanitize=False):
    """Runs make for the static library the extension links."""
    jobs = str(os.cpu_count() or 2)
    build = build_dir(sanitize)
    subprocess.run(["make", "-s", "-j" + jobs, f"BUILD={build}", "lib"]
                   + (["SANITIZE=1"] if sanitize else []), cwd=ROOT, check=True)
    return build / "libmdfi.a"


def make_builder(sanitize=False):
    builder = FFI()
    builder.cdef(header_cdef(HEADER.read_text(encoding="utf-8")))
    flags = SANITIZE_FLAGS if sanitize else []
    builder.set_source(
        "mdfi._mdfi_cffi",
        '#include "mdfi.h"',
        include_dirs=[str(ROOT / "csrc" / "include")],
        extra_objects=[str(build_dir(sanitize) / "libmdfi.a")],
        depends=[str(build_dir(sanitize) / "libmdfi.a")],   # relink when the library changes
        libraries=["m", "pthread"],
        extra_compile_args=flags,
        extra_link_args=flags,
    )
    return builder


ffibuilder = make_builder()


def build_extension(sanitize=False):
    """Builds the library and the extension into build/python[-san]/mdfi/;
    returns the extension's path."""
    build_static_library(sanitize)
    return pathlib.Path(make_builder(sanitize).compile(tmpdir=str(build_dir(sanitize)),
                                                       verbose=False))


if __name__ == "__main__":
    import sys
    print(build_extension(sanitize="--sanitize" in sys.argv[1:]))
