#!/usr/bin/env python3
"""Time decoding a large photo and resizing it to the size a request uses: the whole file
against a JPEG decoded at the reduced scale the size needs (``needed_side``).

    python bench/bench_decode.py --megapixels 12 24 48 --side 512
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nst.imageio import decode_image, resize_longest

PHOTO = Path(__file__).resolve().parents[2] / "shared/images/style/the_scream.jpg"


def photo_jpeg(megapixels: float) -> bytes:
    """A real painting enlarged to about ``megapixels`` (4:3), saved as a quality-90 JPEG."""
    width = round(math.sqrt(megapixels * 1e6 * 4 / 3))
    image = Image.open(PHOTO).convert("RGB").resize((width, width * 3 // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def psnr(a: Image.Image, b: Image.Image) -> float:
    error = np.mean((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2)
    return float(10 * np.log10(255**2 / error)) if error else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[12, 24, 48])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("| photo | whole file ms | reduced scale ms | speed-up | decoded at | PSNR dB |")
    print("|---|---|---|---|---|---|")
    for megapixels in args.megapixels:
        data = photo_jpeg(megapixels)
        limit = 10**9

        def whole(data=data, limit=limit):
            return resize_longest(decode_image(data, max_pixels=limit), args.side)

        def reduced(data=data, limit=limit):
            image = decode_image(data, max_pixels=limit, needed_side=args.side)
            return resize_longest(image, args.side)

        full_ms, fast_ms = best_ms(whole, args.repeats), best_ms(reduced, args.repeats)
        size = decode_image(data, max_pixels=limit, needed_side=args.side).size
        print(
            f"| {megapixels:g} MP, {len(data) / 1e6:.1f} MB | {full_ms:.0f} | {fast_ms:.0f} | "
            f"{full_ms / fast_ms:.1f}x | {size[0]}x{size[1]} | {psnr(whole(), reduced()):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
