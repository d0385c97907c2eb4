"""JPEG decode time: MDFI's C decoder vs Pillow (libjpeg-turbo), same run.

    python benchmarks/jpeg_bench.py [--runs 20] [--quality 90]

The test image is scikit-learn's china.jpg (640x427) upscaled to 1920x1080
with Pillow's bicubic filter and saved by Pillow as baseline 4:2:0 (the main
case), progressive 4:2:0 and baseline 4:4:4.  Each decoder turns the file's
bytes, already in memory, into 8-bit RGB pixels: MDFI through the C API
(mdfi_image_decode_pixels, via cffi), Pillow through Image.open + load().
The runs alternate between the two decoders; the median of --runs (>= 10) of
each is reported, and MDFI / Pillow.  Target: <= 2x.
"""
import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image


def make_jpegs(quality):
    from sklearn.datasets import load_sample_images
    big = Image.fromarray(load_sample_images().images[0]).resize((1920, 1080), Image.BICUBIC)
    out = {}
    for label, kw in (("baseline 4:2:0", {}), ("progressive 4:2:0", {"progressive": True}),
                      ("baseline 4:4:4", {"subsampling": 0})):
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=quality, **kw)
        out[label] = buf.getvalue()
    return out


def median_ms(fns, runs):
    """Median milliseconds of each function; the runs alternate between them so that
    a busy machine slows both alike."""
    for fn in fns:   # warm up
        fn()
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--quality", type=int, default=90)
    args = p.parse_args()
    runs = max(10, args.runs)

    from mdfi._core import ffi, lib
    from mdfi.image import decode_pixels

    def mdfi_decode(data):
        px = ffi.new("unsigned char **")
        w, h, c = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
        err = ffi.new("mdfi_errbuf *")
        if lib.mdfi_image_decode_pixels(data, len(data), b"bench.jpg", px, w, h, c, err):
            raise RuntimeError(ffi.string(err.msg).decode())
        lib.mdfi_pixels_free(px[0])

    def pillow_decode(data):
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    import PIL
    print(f"1920x1080, quality {args.quality}, median of {runs} runs; Pillow {PIL.__version__}")
    print(f"{'file':<20} {'bytes':>9} {'MDFI ms':>9} {'Pillow ms':>10} {'ratio':>7}")
    for label, data in make_jpegs(args.quality).items():
        ours = decode_pixels(data)
        with Image.open(io.BytesIO(data)) as im:
            theirs = np.asarray(im)
        diff = np.abs(ours.astype(int) - theirs)   # different decoders: close, not equal
        assert ours.shape == theirs.shape and diff.max() <= 4, (label, diff.max())
        a, b = median_ms([lambda: mdfi_decode(data), lambda: pillow_decode(data)], runs)
        print(f"{label:<20} {len(data):>9} {a:>9.2f} {b:>10.2f} {a / b:>6.2f}x")


if __name__ == "__main__":
    main()
