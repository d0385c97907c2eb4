"""Bit-packed weights for Darknet xnor=1, [dualpath] and [fracconv] layers (numpy only).

An xnor layer uses only the sign of each weight (w > 0 -> +1, else -1) and
each filter's mean |w|, so its weights can be stored as one bit per weight
plus one float per filter.  [dualpath] and [fracconv] layers
(docs/dualpath.md, docs/wsfracbnn.md) use only the signs.  Every other array stays float32 as in the .weights file.

File layout, little endian:

    b"MDFIBW01"                                   magic
    int32 major, minor, revision; uint64 seen     the Darknet header's fields
    uint32 layers                                 the cfg's layer count
    then per cfg layer, in order:
      uint8 kind   0 = float32 arrays exactly as in the .weights file
                   1 = a packed [convolutional] xnor=1 layer:
                       biases[n], then if BN scales[n], rolling_mean[n],
                       rolling_variance[n] (float32), scale[n] (float32 mean |w|),
                       then n rows of ceil(k/8) bytes: bit j (LSB first) of row f
                       is w[f].ravel()[j] > 0   (k = c/groups * size * size)
                   2 = a packed sign-only layer ([dualpath], [fracconv]): its
                       arrays but the weights,
                       float32 in file order, then the weight bits as for 1
    uint32 CRC-32 (zlib) of everything before it

``unpack`` writes an ordinary .weights file back: each xnor weight becomes
+-s_f (the last one of each filter slightly adjusted) so that Darknet's
mean |w| (a float32 sum in order, divided by k) gives back the stored s_f
exactly.  Inference on the unpacked file is then identical to the original,
in Darknet and in MDFI.  A sign-only weight comes back as +1 or -1.

    python -m weights_tools.xnor_pack pack   CFG WEIGHTS OUT.bweights
    python -m weights_tools.xnor_pack unpack CFG IN.bweights OUT.weights
"""

import argparse
import struct
import sys
import zlib

import numpy as np

from weights_tools.darknet_cfg import layers_of
from weights_tools.darknet_weights import (DarknetWeights, WeightsError, read_weights,
                                           seen_size, write_weights)

MAGIC = b"MDFIBW01"
F32 = np.float32


def is_xnor(layer):
    return layer.type == "convolutional" and layer.section.get_int("xnor", 0) != 0


def is_sign_only(layer):
    """Layers whose weights count only by their sign (w > 0 -> +1, else -1)."""
    return layer.type in ("dualpath", "fracconv")


def _scale(w):
    """Darknet's mean |w| per filter (float32 sum in order)."""
    w = np.abs(np.asarray(w, F32).reshape(len(w), -1))
    return (np.cumsum(w, axis=1, dtype=F32)[:, -1] / F32(w.shape[1])).astype(F32)


def _magnitudes(s, k):
    """k float32 magnitudes whose Darknet mean |w| (float32 sum in order, / k)
    is exactly s: k-1 copies of s, and a last one that makes the sum land on
    a float T with T / k == s (searched near s * k).  Falls back to k copies
    of s (mean within an ulp) if no such T is found."""
    s = F32(s)
    mags = np.full(k, s, F32)
    if k == 1 or s == 0 or not np.isfinite(s):
        return mags
    head = np.cumsum(mags[:-1], dtype=F32)[-1]
    t = F32(s * F32(k))
    cands = [t]
    up = down = t
    for _ in range(16):
        up, down = np.nextafter(up, F32(np.inf)), np.nextafter(down, F32(0))
        cands += [up, down]
    for T in cands:
        if T / F32(k) != s:
            continue
        u = F32(np.float64(T) - np.float64(head))
        if u > 0 and F32(head + u) == T:
            mags[-1] = u
            return mags
    return mags


def pack(cfg, weights):
    """(bytes of the packed file, report).  report: one dict per xnor layer with
    index, filters, k, float_bytes (its float32 weights), packed_bytes (bits +
    scales); plus totals under 'total'."""
    layers = layers_of(cfg)
    if not isinstance(weights, DarknetWeights):
        weights = read_weights(layers, weights)
    if weights.transpose:
        raise WeightsError("transposed (major/minor > 1000) weights are not supported")
    out = [MAGIC, struct.pack("<3iQ", weights.major, weights.minor, weights.revision, weights.seen),
           struct.pack("<I", len(layers))]
    report = []
    for layer, arrays in zip(layers, weights.layers):
        names = [n for n, _ in layer.params]
        dual = is_sign_only(layer)
        if not (is_xnor(layer) or dual) or "weights" not in arrays:
            out.append(b"\x00")
            out += [np.asarray(arrays[n], "<f4").tobytes() for n in names]
            continue
        w = np.asarray(arrays["weights"], F32)
        n, k = w.shape[0], w[0].size
        bits = np.packbits((w.reshape(n, k) > 0).astype(np.uint8), axis=1, bitorder="little")
        out.append(b"\x02" if dual else b"\x01")
        out += [np.asarray(arrays[x], "<f4").tobytes() for x in names if x != "weights"]
        if not dual:
            out.append(_scale(w).astype("<f4").tobytes())
        out.append(bits.tobytes())
        report.append({"index": layer.index, "filters": n, "k": k, "float_bytes": 4 * n * k,
                       "packed_bytes": bits.nbytes + (0 if dual else 4 * n)})
    body = b"".join(out)
    total = {"float_bytes": sum(r["float_bytes"] for r in report),
             "packed_bytes": sum(r["packed_bytes"] for r in report)}
    return body + struct.pack("<I", zlib.crc32(body)), {"layers": report, "total": total}


def unpack(cfg, data):
    """A DarknetWeights from packed bytes (or a path)."""
    layers = layers_of(cfg)
    if not isinstance(data, (bytes, bytearray)):
        with open(data, "rb") as f:
            data = f.read()
    if len(data) < 8 + 20 + 4 + 4 or data[:8] != MAGIC:
        raise WeightsError("not an MDFI packed binary weights file")
    if struct.unpack_from("<I", data, len(data) - 4)[0] != zlib.crc32(data[:-4]):
        raise WeightsError("packed weights: CRC mismatch (corrupt file)")
    major, minor, revision, seen = struct.unpack_from("<3iQ", data, 8)
    if seen_size(major, minor) != 8 or major > 1000 or minor > 1000:
        raise WeightsError("packed weights: unsupported header version %d.%d" % (major, minor))
    (count,) = struct.unpack_from("<I", data, 28)
    if count != len(layers):
        raise WeightsError("packed weights for %d layers, the cfg has %d" % (count, len(layers)))
    pos, end = 32, len(data) - 4
    w = DarknetWeights(major, minor, revision, seen)

    def take(nbytes):
        nonlocal pos
        if pos + nbytes > end:
            raise WeightsError("packed weights: too short")
        chunk = data[pos:pos + nbytes]
        pos += nbytes
        return chunk

    for layer in layers:
        kind = take(1)[0]
        arrays = {}
        if kind == 0:
            for name, shape in layer.params:
                arrays[name] = np.frombuffer(take(4 * int(np.prod(shape))), "<f4").astype(F32).reshape(shape)
        elif (kind == 1 and is_xnor(layer)) or (kind == 2 and is_sign_only(layer)):
            shape = dict(layer.params)["weights"]
            n, k = shape[0], int(np.prod(shape[1:]))
            for name, s in layer.params:
                if name != "weights":
                    arrays[name] = np.frombuffer(take(4 * int(np.prod(s))), "<f4").astype(F32).reshape(s)
            scale = np.frombuffer(take(4 * n), "<f4").astype(F32) if kind == 1 else None
            rows = (k + 7) // 8
            bits = np.frombuffer(take(n * rows), np.uint8).reshape(n, rows)
            signs = np.unpackbits(bits, axis=1, count=k, bitorder="little").astype(bool)
            if kind == 2:
                mag = np.ones((n, k), F32)
            else:
                mag = np.stack([_magnitudes(s, k) for s in scale]) if n else np.zeros((0, k), F32)
            arrays["weights"] = np.where(signs, mag, -mag).astype(F32).reshape(shape)
        else:
            raise WeightsError("packed weights: layer %d has record kind %d" % (layer.index, kind))
        w.layers.append(arrays)
    if pos != end:
        raise WeightsError("packed weights: %d bytes left after the last layer" % (end - pos))
    return w


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m weights_tools.xnor_pack",
                                 description="Bit-pack the weights of Darknet xnor=1, [dualpath] and [fracconv] layers.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="Darknet .weights -> packed file; prints the sizes")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("out")
    u = sub.add_parser("unpack", help="packed file -> Darknet .weights")
    u.add_argument("cfg")
    u.add_argument("packed")
    u.add_argument("out")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            data, rep = pack(args.cfg, args.weights)
            with open(args.out, "wb") as f:
                f.write(data)
            print("%5s %8s %7s %12s %12s %7s" % ("layer", "filters", "k", "float B", "packed B", "ratio"))
            for r in rep["layers"]:
                print("%5d %8d %7d %12d %12d %7.1f" % (r["index"], r["filters"], r["k"],
                                                       r["float_bytes"], r["packed_bytes"],
                                                       r["float_bytes"] / r["packed_bytes"]))
            t = rep["total"]
            if t["packed_bytes"]:
                print("binary weights: %d float bytes -> %d packed bytes (1/%.1f); file %d bytes"
                      % (t["float_bytes"], t["packed_bytes"], t["float_bytes"] / t["packed_bytes"],
                         len(data)))
            else:
                print("no xnor=1, [dualpath] or [fracconv] layers; file %d bytes" % len(data))
        else:
            w = unpack(args.cfg, args.packed)
            with open(args.out, "wb") as f:
                f.write(write_weights(args.cfg, w))
    except (WeightsError, ValueError, OSError) as e:
        print("xnor_pack: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
