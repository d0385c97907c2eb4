"""What pyproject.toml cannot say: the version comes from the C header, the C core
is built by the Makefile, and the cffi extension links it."""
import pathlib
import re
import runpy

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent
VERSION = re.search(r'#\s*define\s+MDFI_VERSION\s+"([^"]+)"',
                    (ROOT / "csrc" / "include" / "mdfi.h").read_text(encoding="utf-8")).group(1)


class BuildWithMake(build_ext):
    def run(self):
        runpy.run_path(str(ROOT / "mdfi" / "_build_ffi.py"))["build_static_library"]()
        super().run()


setup(
    version=VERSION,
    cffi_modules=["mdfi/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithMake},
)
