"""The version is written once, as MDFI_VERSION in csrc/include/mdfi.h; the package
metadata (setup.py reads the header) and mdfi.__version__ (the built core) agree."""
import importlib.metadata
import pathlib
import re

import mdfi

HEADER = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "include" / "mdfi.h"


def test_metadata_module_and_header_agree():
    header = re.search(r'#\s*define\s+MDFI_VERSION\s+"([^"]+)"', HEADER.read_text()).group(1)
    assert importlib.metadata.version("mdfi") == header
    assert mdfi.__version__ == header


def test_the_version_is_written_nowhere_else():
    root = HEADER.parent.parent.parent
    for path in ("setup.py", "pyproject.toml", "mdfi/__init__.py"):
        text = (root / path).read_text()
        assert not re.search(r"""version\s*=\s*["']\d""", text), path
