#!/usr/bin/env python3
"""Runs of the engine side by side, final losses at full size: coarse-to-fine vs single
scale at (about) the same wall time, or one start against another.

    python bench/bench_levels.py --size 256 \
        --run steps=60 --run steps=80,levels=2,coarse_share=0.3 --run steps=100,levels=2
    python bench/bench_levels.py --size 256 --run steps=50 --run steps=50,init=matched

Each ``--run`` is a set of StyleParams overrides; prints wall time and final losses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from nst import Job, StyleParams, Stylizer, decode_image

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared/images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--run", action="append", required=True, metavar="K=V,...")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--content", default=str(SHARED / "content/astronaut.png"))
    parser.add_argument("--style", default=str(SHARED / "style/starry_night.jpg"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    content, style = decode_image(args.content), decode_image(args.style)
    stylizer = Stylizer()
    print("| run | seconds | total | style | content |\n|---|---|---|---|---|")
    for run in args.run:
        changes = dict(item.split("=", 1) for item in run.split(","))
        params = StyleParams.from_mapping({"size": args.size, **changes})
        start = time.perf_counter()
        result = stylizer.stylize(Job(content, [style], params))
        seconds = time.perf_counter() - start
        losses = result.losses
        print(
            f"| {run} | {seconds:.1f} | {losses.total:.4f} | {losses.style:.4f} | "
            f"{losses.content:.4f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
