#!/usr/bin/env python3
"""Image quality side by side: each style statistic, with and without averaging, and the
colour modes, at equal wall time on several content/style pairs; every result scored by all
three statistics (a Gram-optimised image measured by the sliced-Wasserstein distance and the
reverse).

    python bench/bench_quality.py gallery --size 256 --seconds 20 --write docs/gallery.md
    python bench/bench_quality.py runs --size 256 \
        --run fast=preset=fast --run balanced=preset=balanced --run best=preset=best

``gallery`` writes the images under docs/images/gallery/ and the page; ``runs`` prints the
wall time and scores of named parameter sets (no deadline).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from nst import Job, StyleParams, Stylizer, decode_image
from nst.imageio import image_to_tensor
from nst.optimize import BatchRun
from nst.params import STYLE_LOSSES
from nst.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/images"
PAIRS = (
    ("astronaut.png", "starry_night.jpg"),
    ("chelsea.png", "the_scream.jpg"),
    ("coffee.png", "woman-with-hat-matisse.jpg"),
    ("rocket.jpg", "shipwreck.jpg"),
)
# (label, parameters) of each row of the gallery
METHODS = (
    ("gram", {}),
    ("gram, averaged", {"average": 0.9}),
    ("mean_cov", {"style_loss": "mean_cov"}),
    ("mean_cov, averaged", {"style_loss": "mean_cov", "average": 0.9}),
    ("sliced_wasserstein", {"style_loss": "sliced_wasserstein"}),
    ("sliced_wasserstein, averaged", {"style_loss": "sliced_wasserstein", "average": 0.9}),
    ("gram, original_colors", {"preserve_color": "original_colors"}),
    ("gram, luminance", {"preserve_color": "luminance"}),
)
SCORES = ("content", *STYLE_LOSSES, "tv")


def scores(stylizer: Stylizer, job: Job, image: Image.Image) -> dict[str, float]:
    """Content loss, the distance to the style under each statistic, and total variation
    of ``image`` (at the job's size, colours as the style's: no colour mode)."""
    out: dict[str, float] = {}
    pixels = image_to_tensor(image).to(stylizer.device)
    for kind in STYLE_LOSSES:
        params = job.params.replace(style_loss=kind, average=0.0, preserve_color="none")
        ready = prepare(dataclasses.replace(job, params=params), params.size, stylizer.net,
                        stylizer.device)  # fmt: skip
        run = BatchRun(stylizer.network, [dataclasses.replace(ready, init=pixels)], [0])
        with torch.enable_grad():
            terms = run.losses([0], dtype=torch.float32)[0]
        out[kind], out["content"], out["tv"] = terms.style, terms.content, terms.tv
    return out


def run_one(
    stylizer: Stylizer, job: Job, seconds: float | None
) -> tuple[Image.Image, dict[str, float]]:
    start = time.perf_counter()
    deadline = None if seconds is None else time.monotonic() + seconds
    result = stylizer.stylize(job, deadline=deadline)
    elapsed = time.perf_counter() - start
    figures = scores(stylizer, job, result.image)
    return result.image, {**figures, "seconds": elapsed, "steps": result.steps_run}


def gallery(args: argparse.Namespace, stylizer: Stylizer) -> None:
    out_dir = ROOT / "docs/images/gallery"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in METHODS}
    page = [_gallery_head(args)]
    for content_name, style_name in PAIRS:
        content = decode_image(SHARED / "content" / content_name)
        style = decode_image(SHARED / "style" / style_name)
        stem = f"{Path(content_name).stem}-{Path(style_name).stem}"
        _thumb(content, args.size).save(out_dir / f"{stem}-content.jpg", quality=85)
        _thumb(style, args.size).save(out_dir / f"{stem}-style.jpg", quality=85)
        page += [
            f"\n## {Path(content_name).stem} × {Path(style_name).stem}\n",
            f"![content](images/gallery/{stem}-content.jpg) "
            f"![style](images/gallery/{stem}-style.jpg)\n",
            "| method | image | steps | content | gram | mean_cov | sliced W. | tv |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, changes in METHODS:
            params = StyleParams.from_mapping({"size": args.size, "steps": 10000, **changes})
            image, figures = run_one(stylizer, Job(content, [style], params), args.seconds)
            name = f"{stem}-{label.replace(', ', '-')}.jpg"
            image.save(out_dir / name, quality=85)
            rows[label].append(figures)
            page.append(f"| {label} | ![{label}](images/gallery/{name}) | " + _cells(figures))
            print(stem, label, figures, flush=True)
    page += ["\n## Summary\n", _summary(rows)]
    text = "\n".join(page) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text)


def runs(args: argparse.Namespace, stylizer: Stylizer) -> None:
    print("| run | pair | seconds | steps | content | gram | mean_cov | sliced W. | tv |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in args.run:
        label, _, rest = spec.partition("=")
        changes = dict(item.split("=", 1) for item in rest.split(",") if item)
        for content_name, style_name in PAIRS[: args.pairs]:
            content = decode_image(SHARED / "content" / content_name)
            style = decode_image(SHARED / "style" / style_name)
            params = StyleParams.from_mapping({"size": args.size, **changes})
            _, figures = run_one(stylizer, Job(content, [style], params), None)
            pair = f"{Path(content_name).stem}×{Path(style_name).stem}"
            print(f"| {label} | {pair} | {figures['seconds']:.1f} | " + _cells(figures),
                  flush=True)  # fmt: skip


def _cells(figures: dict[str, float]) -> str:
    return f"{figures['steps']:.0f} | " + " | ".join(f"{figures[k]:.4f}" for k in SCORES) + " |"


def _summary(rows: dict[str, list[dict[str, float]]]) -> str:
    """Geometric mean over pairs of each score relative to the Gram row (lower is closer)."""
    base = rows[METHODS[0][0]]
    lines = [
        "Each score relative to plain `gram` on the same pair, geometric mean over the pairs "
        "(below 1: closer to the content or style than the paper's loss at the same time).\n",
        "| method | content | gram | mean_cov | sliced W. | tv |",
        "|---|---|---|---|---|---|",
    ]
    for label, figures in rows.items():
        ratios = []
        for key in SCORES:
            logs = [torch.tensor(f[key] / b[key]).log() for f, b in zip(figures, base)]
            ratios.append(float(torch.stack(logs).mean().exp()))
        lines.append(f"| {label} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    return "\n".join(lines)


def _thumb(image: Image.Image, size: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((size, size))
    return image


def _gallery_head(args: argparse.Namespace) -> str:
    cpu = args.cpu or "this CPU"
    return (
        "# Gallery: style statistics, averaging and colour modes\n\n"
        f"Every image had the same wall time, {args.seconds:g} s on {cpu}, at {args.size} px "
        "(default parameters otherwise: L-BFGS, matched start, style weight 5). The numbers "
        "score each result by all three style statistics (lower is closer to the style), "
        "the content loss and the total variation (lower is smoother). Colour modes are "
        "scored against the style's own colours, so their style distances read high. Made "
        "with:\n\n"
        f"    python bench/bench_quality.py gallery --size {args.size} --seconds "
        f"{args.seconds:g} --write docs/gallery.md\n\n"
        "Why the defaults are what they are: [benchmarks](benchmarks.md#style-statistics).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("gallery", "runs"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0, help="gallery: time per image")
    parser.add_argument("--write", help="gallery: write the page here")
    parser.add_argument("--cpu", help="gallery: the machine, named on the page")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=K=V,...")
    parser.add_argument("--pairs", type=int, default=2, help="runs: how many pairs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stylizer = Stylizer()
    (gallery if args.mode == "gallery" else runs)(args, stylizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
