"""MDFI quantized weights files (.qweights): reading and writing.

Layout (every integer little endian; docs/fixed-point.md is the reference):

    header, 32 bytes
      0  char[8]  magic  b"MDFIQWT\\0"
      8  uint32   version: 1, or 2 when the file has a kind-3 (arrays) record;
                  a file of GEMM records only is written as version 1
     12  uint32   layers in the cfg (without [net])
     16  uint32   number of records
     20  uint32   flags (0)
     24  uint64   total file size in bytes, trailer included
    at most one record per layer, in increasing layer order
      0  uint32   record magic 0x43455251 (b"QREC")
      4  uint32   layer index
      8  uint32   kind: 1 convolutional, 2 connected, 3 named arrays (version 2)
     12  uint32   outputs M (filters, or connected outputs); kind 3: number of arrays
     16  uint32   K, weights per output ((c/groups)*size*size, or inputs); kind 3: 0
     20  uint32   groups; kind 3: 0
     24  int8     in_bits, in_frac, w_bits, w_frac, out_bits, out_frac (kind 3: may be 0)
     30  uint8    mode: 0 one power-of-two weight format (w_frac) for the layer;
                  1 one per output channel (w_frac is 0, the fractions follow);
                  2 a multiplier and a fraction per output channel (w_frac is 0);
                  kind 3: 0
     31  uint8    reserved (0)
     32  uint32   payload bytes that follow (a multiple of 4)
     36  uint32   reserved (0)
    kinds 1, 2: the payload
     40  int32    bias[M], at the accumulator's scale 2^-(in_frac + w_frac)
         int8 or int16 weights[M][K] (w_bits), Darknet's order [filter][c/groups][ky][kx]
         zero bytes up to a multiple of 4
         modes 1 and 2: int8 w_frac[M], zero bytes up to a multiple of 4
         mode 2 only: int32 mult[M], each 1 .. 32767: channel m's weights are
                      weights[m][k] * mult[m] * 2^-w_frac[m]
    kind 3: the payload is M arrays, each
      0  char[32] name: 1 to 31 of A-Z a-z 0-9 _, then NUL bytes; unique in the record
     32  uint32   dtype: 1 int8, 2 int16, 3 int32, 4 float32
     36  uint32   count (elements)
     40           the data, zero bytes up to a multiple of 4
                  and the arrays' sizes add up to the payload exactly
    trailer
      uint32 CRC-32 (the zlib / IEEE 802.3 polynomial) of every byte before it
"""

import dataclasses
import re
import struct
import zlib

import numpy as np

MAGIC = b"MDFIQWT\0"
VERSION_GEMM = 1   # GEMM records only: what every file without arrays is written as
VERSION = 2        # the newest: kind-3 (arrays) records
RECORD_MAGIC = 0x43455251
KIND_CONV, KIND_CONNECTED, KIND_ARRAYS = 1, 2, 3
KIND_NAMES = {KIND_CONV: "convolutional", KIND_CONNECTED: "connected", KIND_ARRAYS: "arrays"}
# kind-3 dtypes: code <-> numpy (little endian)
DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f4")}
DTYPE_CODES = {dt: code for code, dt in DTYPES.items()}
ARRAY_HEAD = struct.Struct("<32sII")
NAME_RE = re.compile(r"[A-Za-z0-9_]{1,31}")
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
class QArrays:
    """A kind-3 record: any layer's parameters as named 1-D arrays (int8,
    int16, int32 or float32), in file order.  Other shapes are written
    flattened.  The formats are optional (0, 0)."""
    layer: int
    arrays: dict   # name -> np.ndarray
    in_fmt: tuple = (0, 0)
    w_fmt: tuple = (0, 0)
    out_fmt: tuple = (0, 0)

    kind = KIND_ARRAYS


@dataclasses.dataclass
class QWeights:
    n_layers: int
    records: dict = dataclasses.field(default_factory=dict)   # layer index -> QRecord / QArrays
    version: int = VERSION_GEMM   # as read; the writer picks it from the records


def _wdtype(bits):
    if bits == 8:
        return np.dtype("<i1")
    if bits == 16:
        return np.dtype("<i2")
    raise QWeightsError("weights must be 8 or 16 bits, not %d" % bits)


def _gemm_payload(index, r):
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
    return (r.kind, w.shape[0], w.shape[1], r.groups, r.mode), payload


def _arrays_payload(index, r):
    if not r.arrays:
        raise QWeightsError("layer %d: an arrays record needs at least one array" % index)
    payload = []
    for name, a in r.arrays.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise QWeightsError("layer %d: array name %r is not 1 to 31 of A-Z a-z 0-9 _"
                                % (index, name))
        a = np.asarray(a)
        code = DTYPE_CODES.get(a.dtype.newbyteorder("<"))
        if code is None:
            raise QWeightsError("layer %d: array %s is %s; int8, int16, int32 or float32 only"
                                % (index, name, a.dtype))
        data = np.ascontiguousarray(a.ravel(), dtype=DTYPES[code]).tobytes()
        payload += [ARRAY_HEAD.pack(name.encode(), code, a.size), data,
                    b"\0" * (-len(data) % 4)]
    return (KIND_ARRAYS, len(r.arrays), 0, 0, 0), b"".join(payload)


def to_bytes(qw):
    """The file's bytes: version 2 if there is an arrays record, else 1 (so that
    GEMM-only files stay what they were before version 2)."""
    body = []
    has_arrays = False
    for index in sorted(qw.records):
        r = qw.records[index]
        if isinstance(r, QArrays):
            has_arrays = True
            (kind, m, k, groups, mode), payload = _arrays_payload(index, r)
        else:
            (kind, m, k, groups, mode), payload = _gemm_payload(index, r)
        body.append(RECORD.pack(RECORD_MAGIC, index, kind, m, k, groups,
                                r.in_fmt[0], r.in_fmt[1], r.w_fmt[0], r.w_fmt[1],
                                r.out_fmt[0], r.out_fmt[1], mode, 0, len(payload), 0))
        body.append(payload)
    body = b"".join(body)
    size = HEADER.size + len(body) + 4
    version = VERSION if has_arrays else VERSION_GEMM   # from the content alone
    data = HEADER.pack(MAGIC, version, qw.n_layers, len(qw.records), 0, size) + body
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


def _parse_gemm(data, off, nbytes, name, head):
    layer, kind, m, k, groups, ib, ifr, wb, wf, ob, of, mode = head
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
    if nbytes < need:
        raise QWeightsError("%s: layer %d's record is %d bytes, needs %d"
                            % (name, layer, nbytes, need))
    bias = np.frombuffer(data, "<i4", m, off).astype(np.int32)
    weights = np.frombuffer(data, wdt, m * k, off + 4 * m).reshape(m, k).copy()
    w_fracs = np.frombuffer(data, np.int8, m, wf_off).copy() if mode else None
    mults = np.frombuffer(data, "<i4", m, mu_off).astype(np.int32) if mode == 2 else None
    if mults is not None and (mults.min() < 1 or mults.max() > MULT_MAX):
        raise QWeightsError("%s: layer %d: a multiplier is outside 1..%d"
                            % (name, layer, MULT_MAX))
    return QRecord(layer, kind, groups, (ib, ifr), (wb, wf), (ob, of), bias, weights, mode,
                   w_fracs, mults)


def _parse_arrays(data, off, nbytes, name, head):
    layer, _kind, m, k, groups, ib, ifr, wb, wf, ob, of, mode = head
    if m < 1 or k or groups or mode:
        raise QWeightsError("%s: layer %d: bad array record (%d arrays, K %d, groups %d, "
                            "mode %d)" % (name, layer, m, k, groups, mode))
    end, pos, arrays = off + nbytes, off, {}
    for i in range(m):
        if pos + ARRAY_HEAD.size > end:
            raise QWeightsError("%s: layer %d: the record says %d arrays but its payload ends "
                                "before array %d" % (name, layer, m, i))
        raw, code, count = ARRAY_HEAD.unpack_from(data, pos)
        key = raw.rstrip(b"\0")
        if not NAME_RE.fullmatch(key.decode("latin-1")):
            raise QWeightsError("%s: layer %d: array %d has a bad name %r" % (name, layer, i, raw))
        key = key.decode()
        if code not in DTYPES:
            raise QWeightsError("%s: layer %d: array %s has unknown dtype %d"
                                % (name, layer, key, code))
        if key in arrays:
            raise QWeightsError("%s: layer %d: two arrays called %s" % (name, layer, key))
        size = count * DTYPES[code].itemsize
        if pos + ARRAY_HEAD.size + size > end:
            raise QWeightsError("%s: layer %d: array %s runs past the record"
                                % (name, layer, key))
        arrays[key] = np.frombuffer(data, DTYPES[code], count, pos + ARRAY_HEAD.size).copy()
        pos += ARRAY_HEAD.size + size + (-size % 4)
    if pos != end:
        raise QWeightsError("%s: layer %d: the arrays take %d bytes but the payload is %d"
                            % (name, layer, pos - off, nbytes))
    return QArrays(layer, arrays, (ib, ifr), (wb, wf), (ob, of))


def from_bytes(data, name="<qweights>"):
    """Parses and checks (magic, version, sizes, CRC) a file's bytes."""
    if len(data) < HEADER.size + 4:
        raise QWeightsError("%s: %d bytes is too short for a quantized weights file"
                            % (name, len(data)))
    magic, version, n_layers, n_rec, flags, size = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise QWeightsError("%s: not an MDFI quantized weights file (bad magic)" % name)
    if version not in (VERSION_GEMM, VERSION):
        raise QWeightsError("%s: version %d is not supported (this reader knows %d and %d)"
                            % (name, version, VERSION_GEMM, VERSION))
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
        (rm, *head, _r, nbytes, _r2) = RECORD.unpack_from(data, off)
        layer, kind = head[0], head[1]
        if rm != RECORD_MAGIC or kind not in KIND_NAMES:
            raise QWeightsError("%s: bad record at byte %d" % (name, off))
        if kind == KIND_ARRAYS and version < VERSION:
            raise QWeightsError("%s: layer %d has an arrays record, which needs version %d"
                                % (name, layer, VERSION))
        if layer >= n_layers:
            raise QWeightsError("%s: a record is for layer %d, but the file is for %d layers"
                                % (name, layer, n_layers))
        off += RECORD.size
        if nbytes % 4 or off + nbytes > len(data) - 4:
            raise QWeightsError("%s: layer %d's record runs past the end" % (name, layer))
        parse = _parse_arrays if kind == KIND_ARRAYS else _parse_gemm
        rec = parse(data, off, nbytes, name, head)
        off += nbytes
        if layer in qw.records:
            raise QWeightsError("%s: two records for layer %d" % (name, layer))
        qw.records[layer] = rec
    if off != len(data) - 4:
        raise QWeightsError("%s: %d unexpected bytes after the last record"
                            % (name, len(data) - 4 - off))
    return qw


def read(path):
    with open(path, "rb") as f:
        return from_bytes(f.read(), str(path))
