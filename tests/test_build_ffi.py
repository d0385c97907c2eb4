"""The cffi declarations are generated from csrc/include/mdfi.h (mdfi/_build_ffi.py)."""
import pathlib
import runpy

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
header_cdef = runpy.run_path(str(ROOT / "mdfi" / "_build_ffi.py"))["header_cdef"]

MADE_UP = r'''/* a header as the C core may grow it */
#ifndef X_H
#define X_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
#define X_VERSION "1.2.3"   /* a string: a constant of the library */
#define X_MAX_LAYERS 4096
#define X_FLAG (0x10u)
#define X_NEG -1
#define X_SQUARE(v) ((v) * (v))
#define X_LONG \
    7
typedef enum { X_A = 0, X_B = 2 } x_kind;   // a C99 comment
typedef struct {
    int threads;          /* 0: one */
    const char *kernel;
    x_kind kind;
} x_options;
int x_run(const x_options *opt, size_t n);
#ifdef __cplusplus
}
#endif
#endif
'''


def test_a_grown_header_becomes_a_cdef():
    text = header_cdef(MADE_UP)
    assert "extern" not in text and "/*" not in text and "//" not in text
    assert "X_SQUARE" not in text and "X_LONG" not in text.replace("#define X_LONG 7", "")
    ffi = FFI()
    ffi.cdef(text)
    assert ffi.sizeof("x_options") > 0
    consts = ffi.dlopen(None)   # constants only: nothing of x_run is looked up
    assert consts.X_MAX_LAYERS == 4096 and consts.X_FLAG == 16 and consts.X_NEG == -1
    assert consts.X_B == 2
    assert "static const char *const X_VERSION;" in text


def test_the_real_header_is_a_cdef():
    FFI().cdef(header_cdef((ROOT / "csrc" / "include" / "mdfi.h").read_text()))


def test_the_built_extension_declares_every_function_of_the_header():
    import re
    from mdfi._core import lib
    names = re.findall(r"\b(mdfi_\w+)\s*\(", (ROOT / "csrc" / "include" / "mdfi.h").read_text())
    assert names and all(hasattr(lib, n) for n in names), [n for n in names if not hasattr(lib, n)]
