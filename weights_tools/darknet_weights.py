"""Darknet .weights reading and writing (numpy only).

Layout, as Darknet's load_weights() reads it (all little endian):
    int32 major, int32 minor, int32 revision,
    seen: uint64 if major*10+minor >= 2 and both < 1000, else uint32,
    then for every layer in cfg order its float32 arrays (see Layer.params):
      convolutional  biases[n], [scales, rolling_mean, rolling_variance][n] if BN, weights[n,c/g,k,k]
      connected      biases[out], weights[out,in], then [scales, rolling_mean, rolling_variance][out] if BN
      batchnorm      scales[c], rolling_mean[c], rolling_variance[c]
No padding, no trailer: the file must be consumed exactly.
"""

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from weights_tools.darknet_cfg import layers_of


class WeightsError(ValueError):
    """A .weights file that does not match its cfg."""


def seen_size(major, minor):
    """Bytes of the `seen` counter, with Darknet's rule."""
    return 8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4


@dataclass
class DarknetWeights:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0
    # one dict per cfg layer (empty for layers without weights): name -> float32 array
    layers: list = field(default_factory=list)

    @property
    def transpose(self):
        """Darknet's flag for files whose connected weights are stored [in, out]."""
        return self.major > 1000 or self.minor > 1000

    @property
    def header_size(self):
        return 12 + seen_size(self.major, self.minor)

    @property
    def n_params(self):
        return sum(a.size for arrays in self.layers for a in arrays.values())


def _file_shapes(layer, transpose):
    """(name, shape) of a layer's arrays as stored in the file."""
    for name, shape in layer.params:
        if transpose and layer.type == "connected" and name == "weights":
            shape = shape[::-1]  # Darknet transposes these after reading
        yield name, shape


def expected_size(cfg, header_size=20):
    """File size the cfg needs; 20 is the header Darknet itself writes."""
    return header_size + 4 * sum(layer.n_params for layer in layers_of(cfg))


def _parse_header(data, name):
    if len(data) < 12:
        raise WeightsError("%s: %d bytes is too short for the weights header" % (name, len(data)))
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    ss = seen_size(major, minor)
    if len(data) < 12 + ss:
        raise WeightsError("%s: %d bytes is too short for the weights header (%d bytes)"
                           % (name, len(data), 12 + ss))
    (seen,) = struct.unpack_from("<Q" if ss == 8 else "<I", data, 12)
    return DarknetWeights(major, minor, revision, seen)


def read_header(src):
    """Only the header of a weights file (path or bytes): a DarknetWeights without layers."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _parse_header(bytes(src[:20]), "<weights>")
    with open(src, "rb") as f:
        return _parse_header(f.read(20), os.fspath(src))


def _where(layer):
    sec = layer.section
    return "layer %d [%s] (cfg line %d)" % (layer.index, sec.type, sec.line)


def check_size(cfg, size, header):
    """Raise WeightsError unless a file of `size` bytes with this header fits the cfg
    exactly; the error names the layer where the data runs out."""
    layers = layers_of(cfg)
    need = header.header_size + 4 * sum(layer.n_params for layer in layers)
    offset = header.header_size
    for layer in layers:
        for pname, shape in _file_shapes(layer, header.transpose):
            nbytes = 4 * int(np.prod(shape))
            if offset + nbytes > size:
                raise WeightsError(
                    "weights end inside %s: %s %s needs %d bytes at offset %d but only %d are left "
                    "(file %d bytes, the cfg needs %d)"
                    % (_where(layer), pname, "x".join(map(str, shape)), nbytes, offset,
                       size - offset, size, need))
            offset += nbytes
    if size > offset:
        raise WeightsError("%d bytes left over after the last layer (file %d bytes, the cfg needs %d): "
                           "these weights do not belong to this cfg" % (size - offset, size, offset))


def read_weights(cfg, src):
    """Parse weights (a path or bytes) for cfg (text, path, Sections or Layers)."""
    layers = layers_of(cfg)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, name = bytes(src), "<weights>"
    else:
        with open(src, "rb") as f:
            data, name = f.read(), os.fspath(src)
    w = _parse_header(data, name)
    try:
        check_size(layers, len(data), w)
    except WeightsError as e:
        raise WeightsError("%s: %s" % (name, e)) from None
    offset = w.header_size
    for layer in layers:
        arrays = {}
        for pname, shape in _file_shapes(layer, w.transpose):
            count = int(np.prod(shape))
            # copy: a native, writable array that does not pin the whole file in memory
            arrays[pname] = np.frombuffer(data, "<f4", count, offset).astype(np.float32).reshape(shape)
            offset += 4 * count
        w.layers.append(arrays)
    return w


def write_weights(cfg, weights):
    """Bytes of a .weights file: the exact inverse of read_weights."""
    layers = layers_of(cfg)
    if len(weights.layers) != len(layers):
        raise WeightsError("%d layer entries for a cfg with %d layers" % (len(weights.layers), len(layers)))
    ss = seen_size(weights.major, weights.minor)
    out = [struct.pack("<3i", weights.major, weights.minor, weights.revision),
           struct.pack("<Q" if ss == 8 else "<I", weights.seen)]
    for layer, arrays in zip(layers, weights.layers):
        wanted = list(_file_shapes(layer, weights.transpose))
        if sorted(arrays) != sorted(n for n, _ in wanted):
            raise WeightsError("%s: arrays %s, expected %s"
                               % (_where(layer), sorted(arrays), [n for n, _ in wanted]))
        for pname, shape in wanted:
            a = np.asarray(arrays[pname])
            if a.shape != tuple(shape):
                raise WeightsError("%s: %s has shape %s, expected %s" % (_where(layer), pname, a.shape, shape))
            out.append(a.astype("<f4").tobytes())
    return b"".join(out)
