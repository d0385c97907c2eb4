"""The one parameter source (csrc/io/params.h) and kind-3 (named arrays) records
of .qweights files: the C driver tests/c/test_params.c (plain and under the
sanitizers), the Python writer and reader, and the C reader on files the Python
writer made.  A version-1 file written before kind 3 existed is kept in
tests/data and must still be read, and rewritten byte for byte."""
import hashlib
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cbuild import _triple, build, run_driver  # noqa: E402
from weights_tools import qweights as qwf  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parent / "data"
ROOT_FUZZ = pathlib.Path(__file__).resolve().parent / "fuzz"
V1 = DATA / "v1-small.qweights"


def driver(sanitize=False):
    """Builds only this driver (and the library): the CLI may not link while
    other parts are in progress."""
    sub = _triple() + ("-san" if sanitize else "")
    out = build(sanitize=sanitize, targets=(f"build/{sub}/tests/test_params",))
    return out / "tests" / "test_params"


@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "sanitized"])
def test_c_driver(sanitize, tmp_path):
    out = run_driver([str(driver(sanitize)), str(tmp_path)], timeout=300)
    assert int(out.split()[-4]) >= 70, out


def dump(path, sanitize=False):
    res = subprocess.run([str(driver(sanitize)), "dump", str(path)], capture_output=True,
                         text=True, timeout=60)
    return res.returncode, res.stdout.splitlines(), res.stderr


def test_v1_file_still_read_and_rewritten_byte_identical():
    data = V1.read_bytes()
    assert hashlib.sha256(data).hexdigest() == (DATA / "v1-small.qweights.sha256").read_text().split()[0]
    qw = qwf.from_bytes(data)
    assert qw.version == 1 and sorted(qw.records) == [0, 2, 3]
    assert [r.mode for r in qw.records.values()] == [0, 1, 2]
    assert qwf.to_bytes(qw) == data
    rc, lines, err = dump(V1)
    assert rc == 0, err
    assert lines == ["record 0 1 4 9 1", "record 2 1 6 6 2", "record 3 2 3 5 1"]


def arrays_file():
    rng = np.random.default_rng(5)
    qw = qwf.from_bytes(V1.read_bytes())
    qw.n_layers = 7
    qw.records[5] = qwf.QArrays(5, {
        "thresh": np.array([0.5, -1.25, 3.0e-8, np.float32(np.pi)], np.float32),
        "gate": rng.integers(-128, 128, 7).astype(np.int8),
        "exit_idx": np.array([[1, -2], [300, -32768]], np.int16),   # written flat
        "acc": np.array([-2**31, 2**31 - 1, 0], np.int32),
        "none": np.zeros(0, np.int8),
    }, in_fmt=(8, 3), out_fmt=(16, 9))
    qw.records[6] = qwf.QArrays(6, {"mask": np.ones(5, np.int8)})
    return qw


def test_arrays_round_trip_and_version(tmp_path):
    qw = arrays_file()
    data = qwf.to_bytes(qw)
    assert struct.unpack_from("<I", data, 8) == (2,)
    back = qwf.from_bytes(data)
    assert back.version == 2 and sorted(back.records) == [0, 2, 3, 5, 6]
    r = back.records[5]
    assert isinstance(r, qwf.QArrays) and r.kind == qwf.KIND_ARRAYS
    assert list(r.arrays) == ["thresh", "gate", "exit_idx", "acc", "none"]
    assert (r.in_fmt, r.w_fmt, r.out_fmt) == ((8, 3), (0, 0), (16, 9))
    for name, a in qw.records[5].arrays.items():
        assert r.arrays[name].dtype == a.dtype and np.array_equal(r.arrays[name], a.ravel())
    assert np.array_equal(back.records[0].weights, qw.records[0].weights)
    assert qwf.to_bytes(back) == data
    # without the arrays records it is the version-1 file again
    for layer in (5, 6):
        del back.records[layer]
    back.n_layers = 5
    assert qwf.to_bytes(back) == V1.read_bytes()


def test_c_reads_python_v2(tmp_path):
    qw = arrays_file()
    path = tmp_path / "arrays.qweights"
    qwf.write(path, qw)
    rc, lines, err = dump(path)
    assert rc == 0, err
    assert lines[:3] == ["record 0 1 4 9 1", "record 2 1 6 6 2", "record 3 2 3 5 1"]
    assert lines[3] == "record 5 3 5 0 0" and lines[9] == "record 6 3 1 0 0"
    arrays = {}
    for line in lines[4:9] + lines[10:]:
        word, layer, name, dtype, count, *values = line.split()
        assert word == "array"
        arrays[(int(layer), name)] = (dtype, int(count), values)
    for layer in (5, 6):
        for name, a in qw.records[layer].arrays.items():
            dtype, count, values = arrays[(layer, name)]
            assert (dtype, count) == (str(a.dtype), a.size)
            assert np.array_equal(np.array(values, dtype=float).astype(a.dtype), a.ravel())


def recrc(data):
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


# one arrays record for layer 0: its first array head is at byte 72
ONE = qwf.QWeights(1, {0: qwf.QArrays(0, {"ab": np.arange(3, dtype=np.int8),
                                          "ac": np.arange(2, dtype=np.float32)})})


@pytest.mark.parametrize("patch,py_msg,c_msg", [
    (lambda d: d.__setitem__(slice(104, 108), struct.pack("<I", 7)),
     "unknown dtype 7", 'layer 0: array "ab" has unknown dtype 7'),
    (lambda d: d.__setitem__(72 + 40 + 4 + 1, ord("b")),
     "two arrays called ab", 'layer 0: two arrays called "ab"'),
    (lambda d: d.__setitem__(73, ord("-")), "bad name", "layer 0: array 0 has a bad name"),
    (lambda d: d.__setitem__(8, 1), "needs version 2", "needs file version 2"),
    (lambda d: d.__setitem__(36, 4), "is for layer 4", "is for layer 4, but the file is for 1"),
])
def test_bad_arrays_records(tmp_path, patch, py_msg, c_msg):
    data = bytearray(qwf.to_bytes(ONE))
    patch(data)
    data = recrc(data)
    with pytest.raises(qwf.QWeightsError, match=py_msg):
        qwf.from_bytes(data)
    path = tmp_path / "bad.qweights"
    path.write_bytes(data)
    for sanitize in (False, True):
        rc, _, err = dump(path, sanitize)
        assert rc == 1 and str(path) in err and c_msg in err, err


@pytest.mark.parametrize("arrays,msg", [
    ({}, "at least one array"),
    ({"x-y": np.zeros(1, np.int8)}, "not 1 to 31"),
    ({"a" * 32: np.zeros(1, np.int8)}, "not 1 to 31"),
    ({"w": np.zeros(1, np.float64)}, "int8, int16, int32 or float32 only"),
    ({"w": np.zeros(1, np.uint8)}, "int8, int16, int32 or float32 only"),
])
def test_writer_refuses(arrays, msg):
    with pytest.raises(qwf.QWeightsError, match=msg):
        qwf.to_bytes(qwf.QWeights(1, {0: qwf.QArrays(0, arrays)}))


@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "sanitized"])
def test_record_sizes_that_overflow_are_refused(sanitize, tmp_path):
    """Fuzzing finding (tests/fuzz/fuzz_qweights.c): a record whose outputs and k
    are 2^32 - 1 overflowed the payload size computed to check it (UBSan: signed
    overflow in gemm_ok); it is a bad record, named."""
    data = bytearray(V1.read_bytes())
    struct.pack_into("<II", data, 32 + 12, 0xFFFFFFFF, 0xFFFFFFFF)
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(bytes(data[:-4])))
    path = tmp_path / "overflow.qweights"
    path.write_bytes(bytes(data))
    committed = ROOT_FUZZ / "corpus" / "qweights" / "regress-outputs-k-overflow.qweights"
    assert committed.read_bytes() == bytes(data)
    rc, _, err = dump(path, sanitize)
    assert rc == 1 and "bad record 0 (layer 0) at byte 32" in err, err
    assert "runtime error" not in err and "Sanitizer" not in err, err
