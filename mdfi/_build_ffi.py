"""cffi (API mode) build of the C core's public API, declared by csrc/include/mdfi.h
itself (read and stripped here, never copied by hand).

The C sources are compiled by the project's Makefile into a static library
(so per-file ISA flags stay in one place); this module links it.
"""
import os
import pathlib
import re
import subprocess

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "python"

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


def build_static_library():
    """Runs make for the static library the extension links."""
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-s", "-j" + jobs, f"BUILD={BUILD}", "lib"], cwd=ROOT, check=True)
    return BUILD / "libmdfi.a"


ffibuilder = FFI()
ffibuilder.cdef(header_cdef(HEADER.read_text(encoding="utf-8")))
ffibuilder.set_source(
    "mdfi._mdfi_cffi",
    '#include "mdfi.h"',
    include_dirs=[str(ROOT / "csrc" / "include")],
    extra_objects=[str(BUILD / "libmdfi.a")],
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    build_static_library()
    ffibuilder.compile(tmpdir=str(BUILD), verbose=False)
