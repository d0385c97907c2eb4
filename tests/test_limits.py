"""The limits on sizes read from files (csrc/base/limits.h, docs/limits.md): the header and
the docs agree, and each check added for them refuses what it should, naming the file."""
import io
import pathlib
import re
import struct

import numpy as np
import pytest

import mdfi
from mdfi.image import decode_pixels

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "csrc" / "base" / "limits.h"
DOC = ROOT / "docs" / "limits.md"

NET = "[net]\nwidth=8\nheight=8\nchannels=3\n\n"
CONV = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n\n"


def c_value(text):
    """A limit's C expression as a number: (1LL << 30), 16u << 20, 4096."""
    expr = re.sub(r"(?<=\d)(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU])\b", "", text.strip())
    if not re.fullmatch(r"[\d\s()<+*-]+", expr):
        raise ValueError(f"not a plain integer expression: {text!r}")
    return eval(expr)   # digits, parentheses and shifts only


def doc_value(text):
    """A value as the table writes it: 65536, 2^30, 16 MiB."""
    text = text.strip()
    if m := re.fullmatch(r"2\^(\d+)", text):
        return 1 << int(m.group(1))
    if m := re.fullmatch(r"(\d+) MiB", text):
        return int(m.group(1)) << 20
    return int(text)


def header_limits():
    found = re.findall(r"^#define (MDFI_LIMIT_[A-Z0-9_]+) (.+?)(?:\s*/\*.*)?$",
                       HEADER.read_text(), re.M)
    return {name: c_value(value) for name, value in found if not name.startswith("MDFI_LIMIT_STR")}


def doc_limits():
    rows = re.findall(r"^\| `(MDFI_LIMIT_[A-Z0-9_]+)` \| ([^|]+) \|", DOC.read_text(), re.M)
    return {name: doc_value(value) for name, value in rows}


def test_header_and_docs_agree():
    header, doc = header_limits(), doc_limits()
    assert len(header) >= 25
    assert header == doc


def test_no_limit_is_defined_twice_in_the_sources():
    """A limit lives in limits.h only: another #define of the same name would shadow it."""
    names = set(header_limits())
    for path in (ROOT / "csrc").rglob("*.[ch]"):
        if path == HEADER:
            continue
        for name in re.findall(r"^\s*#\s*define\s+(MDFI_LIMIT_\w+)", path.read_text(), re.M):
            pytest.fail(f"{path.relative_to(ROOT)} defines {name}"
                        f"{' (also in limits.h)' if name in names else ''}")


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_too_many_sections(tmp_path):
    limit = header_limits()["MDFI_LIMIT_SECTIONS"]
    text = NET + "[dropout]\n" * limit     # [net] + limit layers: one section too many
    cfg = write(tmp_path, "many.cfg", text)
    with pytest.raises(mdfi.CfgError, match=rf"many.cfg:{6 + limit - 1}: more than {limit} "
                                            "sections"):
        mdfi.Network(cfg)


def test_sections_at_the_limit_build(tmp_path):
    limit = header_limits()["MDFI_LIMIT_SECTIONS"]
    cfg = write(tmp_path, "edge.cfg", NET + "[dropout]\n" * (limit - 1))
    with mdfi.Network(cfg) as net:
        assert len(net.layers) == limit - 1


def test_too_many_keys_in_a_section(tmp_path):
    limit = header_limits()["MDFI_LIMIT_KEYS"]
    keys = "".join(f"k{i}=1\n" for i in range(limit + 1))
    cfg = write(tmp_path, "keys.cfg", NET + "[convolutional]\n" + keys)
    with pytest.raises(mdfi.CfgError, match=rf"keys.cfg:{7 + limit}: more than {limit} keys "
                                            r"in \[convolutional\]"):
        mdfi.Network(cfg)


def test_keys_at_the_limit_are_warnings(tmp_path):
    limit = header_limits()["MDFI_LIMIT_KEYS"]
    keys = "".join(f"k{i}=1\n" for i in range(limit - 4))
    cfg = write(tmp_path, "keys.cfg", NET + CONV.replace("[convolutional]\n",
                                                         "[convolutional]\n" + keys))
    with mdfi.Network(cfg) as net:
        assert sum("unknown key" in w for w in net.warnings) == limit - 4


@pytest.mark.parametrize("key, limit", [("filters", "MDFI_LIMIT_FILTERS"),
                                        ("size", "MDFI_LIMIT_KERNEL")])
def test_conv_limits_are_the_headers(tmp_path, key, limit):
    """A convolution at the header's limit builds; one past it is refused."""
    n = header_limits()[limit]
    for value, ok in ((n, True), (n + 1, False)):
        keys = {"filters": 2, "size": 1, "pad": 1, key: value}
        cfg = write(tmp_path, "c.cfg", NET + "[convolutional]\n" +
                    "".join(f"{k}={v}\n" for k, v in keys.items()))
        if ok:
            with mdfi.Network(cfg) as net:
                assert net.layers[0].filters == keys["filters"]
        else:
            with pytest.raises(mdfi.CfgError, match=rf"c.cfg:6: layer 0 \[convolutional\]: "
                                                    rf"bad .*{key}={value}"):
                mdfi.Network(cfg)


def qweights_header(n_layers, n_rec, size):
    return (b"MDFIQWT\0" + struct.pack("<IIII", 1, n_layers, n_rec, 0) +
            struct.pack("<Q", size))


def test_qweights_record_table_must_fit_the_file(tmp_path):
    """A 76-byte file declaring a million records is refused at its header, before the
    record table is allocated (it used to be allocated first, then found short)."""
    cfg = write(tmp_path, "ok.cfg", NET + CONV)
    size = 32 + 40 + 4
    p = tmp_path / "huge.qweights"
    p.write_bytes(qweights_header(1 << 20, 1 << 20, size).ljust(size, b"\0"))
    with pytest.raises(mdfi.WeightsError, match=r"huge.qweights: bad header \(1048576 layers, "
                                                r"1048576 records\)"):
        mdfi.Network(cfg, p)


def jpeg_segments(data):
    """(marker, offset) of each marker segment up to and including SOS."""
    pos, out = 2, []
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        out.append((marker, pos))
        if marker == 0xDA:
            return out
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    raise AssertionError("no SOS")


def with_size(data, w, h):
    sof = next(off for m, off in jpeg_segments(data) if m in (0xC0, 0xC1, 0xC2))
    return data[:sof + 5] + struct.pack(">HH", h, w) + data[sof + 9:]


def flat_jpeg(w, h, **kw):
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (w, h), 128).save(buf, "JPEG", quality=1, **kw)
    return buf.getvalue()


def test_jpeg_header_cannot_claim_more_pixels_than_its_bytes_hold(golden):
    data = (golden / "images" / "dog.jpg").read_bytes()
    sos = jpeg_segments(data)[-1][1]
    cut = with_size(data[:sos + 200], 16000, 16000)    # 256 M pixels in about 1 KB
    with pytest.raises(mdfi.ImageError, match=r"cut.jpg: .*16000x16000 cannot be coded in "
                                              rf"{len(cut)} bytes"):
        decode_pixels(cut, "cut.jpg")


@pytest.mark.parametrize("progressive", [False, True])
def test_most_compressible_real_jpegs_still_decode(progressive):
    """The per-byte bound is far from what an encoder reaches: a flat grey picture at
    quality 1 (about 85 pixels per byte baseline, 255 progressive) decodes."""
    data = flat_jpeg(1600, 1200, progressive=progressive)
    per_byte = 1600 * 1200 / len(data)
    assert per_byte > 50
    px = decode_pixels(data, "flat.jpg")
    assert px.shape == (1200, 1600, 1)
    assert np.abs(px.astype(int) - 128).max() <= 2
