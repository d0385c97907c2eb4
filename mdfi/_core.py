"""The compiled C core and the mapping of its status codes to exceptions."""
from . import errors

try:
    from ._mdfi_cffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "mdfi's C extension is not built; install the package with "
        "`pip install .` from the source tree") from exc

_BY_STATUS = {
    lib.MDFI_ERR_IO: errors.MdfiIOError,
    lib.MDFI_ERR_CFG: errors.CfgError,
    lib.MDFI_ERR_WEIGHTS: errors.WeightsError,
    lib.MDFI_ERR_SHAPE: errors.ShapeError,
    lib.MDFI_ERR_NOMEM: errors.OutOfMemoryError,
    lib.MDFI_ERR_ARG: errors.ArgumentError,
    lib.MDFI_ERR_IMAGE: errors.ImageError,
    lib.MDFI_ERR_UNSUPPORTED: errors.UnsupportedError,
}


def raise_for(status, message):
    """Raises the exception class for a C status (no-op for MDFI_OK)."""
    if status != lib.MDFI_OK:
        cls = _BY_STATUS.get(status, errors.MdfiError)
        raise cls(message or ffi.string(lib.mdfi_status_name(status)).decode())


def check_errbuf(status, errbuf):
    if status != lib.MDFI_OK:
        raise_for(status, ffi.string(errbuf.msg).decode("utf-8", "replace"))
