"""MDFI quantized weights files (.qweights): reading and writing.

Layout (every integer little endian; docs/fixed-point.md is the reference):

    header, 32 bytes
      0  char[8]  magic  b"MDFIQWT\\0"
      8  uint32   version (1)
     12  uint32   layers in the cfg (without [net])
     16  uint32   number of records
     20  uint32   flags (0)
     24  uint64   total file size in bytes, trailer included
    one record per [convolutional] / [connected] layer, in layer order
      0  uint32   record magic 0x43455251 (b"QREC")
      4  uint32   layer index
      8  uint32   kind: 1 convolutional, 2 connected
     12  uint32   outputs M (filters, or connected outputs)
     16  uint32   K, weights per output ((c/groups)*size*size, or inputs)
     20  uint32   groups
     24  int8     in_bits, in_frac, w_bits, w_frac, out_bits, out_frac
     30  uint8    mode: 0 one power-of-two weight format (w_frac) for the layer;
                  1 one per output channel (w_frac is 0, the fractions follow);
                  2 a multiplier and a fraction per output channel (w_frac is 0)
     31  uint8    reserved (0)
     32  uint32   payload bytes that follow (a multiple of 4)
     36  uint32   reserved (0)
     40  int32    bias[M], at the accumulator's scale 2^-(in_frac + w_frac)
         int8 or int16 weights[M][K] (w_bits), Darknet's order [filter][c/groups][ky][kx]
         zero bytes up to a multiple of 4
         modes 1 and 2: int8 w_frac[M], zero bytes up to a multiple of 4
         mode 2 only: int32 mult[M], each 1 .. 32767: channel m's weights are
                      weights[m][k] * mult[m] * 2^-w_frac[m]
    trailer
      uint32 CRC-32 (the zlib / IEEE 802.3 polynomial) of every byte before it
"""

import dataclasses
import struct
import zlib

import numpy as np

MAGIC = b"MDFIQWT\0"
VERSION = 1
RECORD_MAGIC = 0x43455251
KIND_CONV, KIND_CONNECTED = 1, 2
KIND_NAMES = {KIND_CONV: "convolutional", KIND_CONNECTED: "connected"}
HEADER = struct.Struct("<8sIIIIQ")
RECORD = struct.Struct("<IIIIII6bBBII")
MULT_MAX = 32767   # mode 2 multipliers: a 16-bit signed operand


class QWeightsError(ValueError):
    """A quantized weights file that is corrupt or does not fit its cfg."""


@dataclasses.dataclass
class QRecord:
    layer: int
    kind: int
    groups: int
    in_fmt: tuple   # (bits, frac)
    w_fmt: tuple
    out_fmt: tuple
    bias: np.ndarray      # int32 [M]
    weights: np.ndarray   # int8/int16 [M, K]
    mode: int = 0
    w_fracs: np.ndarray = None   # modes 1, 2: int8 [M]
    mults: np.ndarray = None     # mode 2: int32 [M]

    @property
    def outputs(self):
        return self.weights.shape[0]

    @property
    def k(self):
        return self.weights.shape[1]


@dataclasses.dataclass
class QWeights:
    n_layers: int
    records: dict = dataclasses.field(default_factory=dict)   # layer index -> QRecord
    version: int = VERSION


def _wdtype(bits):
    if bits == 8:
        return np.dtype("<i1")
    if bits == 16:
        return np.dtype("<i2")
    raise QWeightsError("weights must be 8 or 16 bits, not %d" % bits)


def to_bytes(qw):
    """The file's bytes."""
    body = []
    for index in sorted(qw.records):
        r = qw.records[index]
        w = np.ascontiguousarray(r.weights, dtype=_wdtype(r.w_fmt[0]))
        b = np.ascontiguousarray(r.bias, dtype="<i4")
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise QWeightsError("layer %d: bias %s and weights %s do not match"
                                % (index, b.shape, w.shape))
        payload = b.tobytes() + w.tobytes()
        payload += b"\0" * (-len(payload) % 4)
        if r.mode in (1, 2):
            payload += np.ascontiguousarray(r.w_fracs, dtype=np.int8).tobytes()
            payload += b"\0" * (-len(payload) % 4)
        if r.mode == 2:
            mu = np.asarray(r.mults)
            if mu.shape != (w.shape[0],) or mu.min() < 1 or mu.max() > MULT_MAX:
                raise QWeightsError("layer %d: multipliers must be %d values in 1..%d"
                                    % (index, w.shape[0], MULT_MAX))
            payload += np.ascontiguousarray(mu, dtype="<i4").tobytes()
        body.append(RECORD.pack(RECORD_MAGIC, index, r.kind, w.shape[0], w.shape[1], r.groups,
                                r.in_fmt[0], r.in_fmt[1], r.w_fmt[0], r.w_fmt[1],
                                r.out_fmt[0], r.out_fmt[1], r.mode, 0, len(payload), 0))
        body.append(payload)
    body = b"".join(body)
    size = HEADER.size + len(body) + 4
    data = HEADER.pack(MAGIC, qw.version, qw.n_layers, len(qw.records), 0, size) + body
    return data + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


def write(path, qw):
    data = to_bytes(qw)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def is_qweights(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == MAGIC
    except OSError:
        return False


def from_bytes(data, name="<qweights>"):
    """Parses and checks (magic, version, sizes, CRC) a file's bytes."""
    if len(data) < HEADER.size + 4:
        raise QWeightsError("%s: %d bytes is too short for a quantized weights file"
                            % (name, len(data)))
    magic, version, n_layers, n_rec, flags, size = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise QWeightsError("%s: not an MDFI quantized weights file (bad magic)" % name)
    if version != VERSION:
        raise QWeightsError("%s: version %d is not supported (this reader knows %d)"
                            % (name, version, VERSION))
    if size != len(data):
        raise QWeightsError("%s: header says %d bytes, the file has %d (truncated?)"
                            % (name, size, len(data)))
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise QWeightsError("%s: checksum mismatch: the file is corrupt" % name)
    qw = QWeights(n_layers, version=version)
    off = HEADER.size
    for _ in range(n_rec):
        if off + RECORD.size > len(data) - 4:
            raise QWeightsError("%s: record at byte %d runs past the end" % (name, off))
        (rm, layer, kind, m, k, groups, ib, ifr, wb, wf, ob, of, mode, _r, nbytes,
         _r2) = RECORD.unpack_from(data, off)
        if rm != RECORD_MAGIC or kind not in KIND_NAMES:
            raise QWeightsError("%s: bad record at byte %d" % (name, off))
        off += RECORD.size
        wdt = _wdtype(wb)
        need = 4 * m + wdt.itemsize * m * k
        if mode not in (0, 1, 2):
            raise QWeightsError("%s: layer %d: unknown weight mode %d" % (name, layer, mode))
        wf_off = off + need + (-need % 4)
        mu_off = wf_off + m + (-m % 4)
        if mode == 1:
            need = wf_off - off + m
        elif mode == 2:
            need = mu_off - off + 4 * m
        if nbytes < need or off + nbytes > len(data) - 4:
            raise QWeightsError("%s: layer %d's record is %d bytes, needs %d"
                                % (name, layer, nbytes, need))
        bias = np.frombuffer(data, "<i4", m, off).astype(np.int32)
        weights = np.frombuffer(data, wdt, m * k, off + 4 * m).reshape(m, k).copy()
        w_fracs = np.frombuffer(data, np.int8, m, wf_off).copy() if mode else None
        mults = np.frombuffer(data, "<i4", m, mu_off).astype(np.int32) if mode == 2 else None
        if mults is not None and (mults.min() < 1 or mults.max() > MULT_MAX):
            raise QWeightsError("%s: layer %d: a multiplier is outside 1..%d"
                                % (name, layer, MULT_MAX))
        off += nbytes
        if layer in qw.records:
            raise QWeightsError("%s: two records for layer %d" % (name, layer))
        qw.records[layer] = QRecord(layer, kind, groups, (ib, ifr), (wb, wf), (ob, of), bias,
                                    weights, mode, w_fracs, mults)
    if off != len(data) - 4:
        raise QWeightsError("%s: %d unexpected bytes after the last record"
                            % (name, len(data) - 4 - off))
    return qw


def read(path):
    with open(path, "rb") as f:
        return from_bytes(f.read(), str(path))
