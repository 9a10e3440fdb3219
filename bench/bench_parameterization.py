#!/usr/bin/env python3
"""The pyramid parameterisation against the pixels, on several pairs and style statistics:
steps the pyramid needs to reach the loss the pixels have after ``--steps`` steps.

    python bench/bench_parameterization.py --size 256 --steps 70

Both runs of a row use the defaults otherwise (L-BFGS, colour-matched start, bfloat16 passes
where native) and the same images; a row is one content, one style, one style statistic.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from nst import Job, StyleParams, Stylizer, decode_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/images"
ROWS = [  # (content, style, style statistic)
    ("astronaut.png", "starry_night.jpg", "gram"),
    ("chelsea.png", "the_scream.jpg", "gram"),
    ("coffee.png", "woman-with-hat-matisse.jpg", "gram"),
    ("rocket.jpg", "shipwreck.jpg", "gram"),
    ("astronaut.png", "starry_night.jpg", "mean_cov"),
    ("astronaut.png", "starry_night.jpg", "sliced_wasserstein"),
]


def losses_per_step(stylizer: Stylizer, job: Job) -> tuple[list[float], float]:
    """Loss of the image each step started from, and the run's seconds."""
    losses: list[float] = []
    start = time.perf_counter()
    stylizer.stylize(job, callback=lambda p: losses.append(p.losses.total) and False)
    return losses, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--images", type=Path, default=SHARED)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stylizer = Stylizer()
    print(
        f"# {args.size} px, {args.steps} steps, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print(
        "| content | style | statistic | pixels: loss after the steps | pyramid: steps to it "
        "| pyramid: loss after the steps | s pixels / pyramid |\n|---|---|---|---|---|---|---|"
    )
    for content, style, statistic in ROWS:
        c = decode_image(args.images / "content" / content)
        s = decode_image(args.images / "style" / style)
        runs = {}
        for parameterization in ("pixels", "pyramid"):
            params = StyleParams(
                size=args.size,
                steps=args.steps,
                style_loss=statistic,
                parameterization=parameterization,
            )
            runs[parameterization] = losses_per_step(stylizer, Job(c, [s], params))
        (pixels, t_pixels), (pyramid, t_pyramid) = runs["pixels"], runs["pyramid"]
        reach = next((k + 1 for k, v in enumerate(pyramid) if v <= pixels[-1]), None)
        print(
            f"| {content} | {style} | {statistic} | {pixels[-1]:.4f} | {reach or 'not reached'} "
            f"| {pyramid[-1]:.4f} | {t_pixels:.1f} / {t_pyramid:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
