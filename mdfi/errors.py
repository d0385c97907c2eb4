"""Exception types shared by every part of mdfi.

Everything mdfi raises on purpose derives from MdfiError, so a caller can catch
one class; the subclasses say which input was at fault.
"""


class MdfiError(Exception):
    """Base class of every error mdfi raises on purpose."""


class ModelFetchError(MdfiError):
    """A model file could not be downloaded or failed its checksum."""


class CfgError(MdfiError):
    """A Darknet .cfg file is malformed or describes an impossible network."""


class WeightsError(MdfiError):
    """A .weights file does not match its cfg (too short, too long, bad header)."""


class ImageError(MdfiError):
    """An image could not be read or decoded."""


class ShapeError(MdfiError):
    """A tensor or image has the wrong shape for the network."""


class UnsupportedError(MdfiError):
    """The network uses a layer type or option mdfi does not implement."""


class MdfiIOError(MdfiError, OSError):
    """A file could not be opened or read."""


class ArgumentError(MdfiError, ValueError):
    """A call was made with a bad argument or in the wrong order."""


class OutOfMemoryError(MdfiError, MemoryError):
    """The C core could not allocate memory."""


class DatasetError(MdfiError, ValueError):
    """A dataset that cannot be loaded: not installed, missing package, malformed
    file.  The message says how to get the data."""
