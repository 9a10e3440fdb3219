#!/usr/bin/env python3
"""Image quality side by side: each style statistic, with and without averaging, and the
colour modes, at equal wall time on several content/style pairs; every result scored by all
three statistics (a Gram-optimised image measured by the sliced-Wasserstein distance and the
reverse).

    python bench/bench_quality.py gallery --size 256 --seconds 20 --write docs/gallery.md
    python bench/bench_quality.py runs --size 256 \
        --run fast=preset=fast --run balanced=preset=balanced --run best=preset=best

``gallery`` writes the images under docs/images/gallery/ and the page; ``mask`` appends a
three-region mask example to it; ``runs`` prints the wall time and scores of named
parameter sets (no deadline).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

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
    of ``image`` (at the job's size, colours as the style's: no colour mode), targets and
    passes in float32 so that the measure is the same whatever precision the runs used."""
    out: dict[str, float] = {}
    pixels = image_to_tensor(image).to(stylizer.device)
    judge = dataclasses.replace(stylizer.passes, dtype=torch.float32)
    for kind in STYLE_LOSSES:
        params = job.params.replace(style_loss=kind, average=0.0, preserve_color="none")
        ready = prepare(dataclasses.replace(job, params=params), params.size, judge)
        run = BatchRun(judge, [dataclasses.replace(ready, init=pixels)], [0])
        with torch.enable_grad():
            terms = run.losses([0])[0]
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
    out_dir = Path(args.images)
    out_dir.mkdir(parents=True, exist_ok=True)
    page_dir = Path(args.write).resolve().parent if args.write else ROOT / "docs"
    link = Path(os.path.relpath(out_dir.resolve(), page_dir)).as_posix()
    rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in METHODS}
    page = [_gallery_head(args)]
    for content_name, style_name in PAIRS[: args.pairs]:
        content = decode_image(SHARED / "content" / content_name)
        style = decode_image(SHARED / "style" / style_name)
        stem = f"{Path(content_name).stem}-{Path(style_name).stem}"
        _thumb(content, args.size).save(out_dir / f"{stem}-content.jpg", quality=85)
        _thumb(style, args.size).save(out_dir / f"{stem}-style.jpg", quality=85)
        page += [
            f"\n## {Path(content_name).stem} × {Path(style_name).stem}\n",
            f"![content]({link}/{stem}-content.jpg) ![style]({link}/{stem}-style.jpg)\n",
            "| method | image | steps | content | gram | mean_cov | sliced W. | tv |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, changes in METHODS:
            params = StyleParams.from_mapping({"size": args.size, "steps": 10000, **changes})
            image, figures = run_one(stylizer, Job(content, [style], params), args.seconds)
            name = f"{stem}-{label.replace(', ', '-')}.jpg"
            image.save(out_dir / name, quality=85)
            rows[label].append(figures)
            page.append(f"| {label} | ![{label}]({link}/{name}) | " + _cells(figures))
            print(stem, label, figures, flush=True)
    page += ["\n## Summary\n", _summary(rows)]
    text = "\n".join(page) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text)


def mask_example(args: argparse.Namespace, stylizer: Stylizer) -> None:
    """A three-region mask (style 1 | content | style 2) on one content, appended to the
    page given by ``--write``."""
    out_dir = Path(args.images)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = Path(args.write) if args.write else None
    link = Path(os.path.relpath(out_dir.resolve(), (page or ROOT / "docs/x").resolve().parent))
    content = decode_image(SHARED / "content/astronaut.png")
    styles = [decode_image(SHARED / "style" / n) for n in ("starry_night.jpg", "the_scream.jpg")]
    mask = Image.new("RGB", content.size, (255, 255, 255))
    third = content.width // 3
    ImageDraw.Draw(mask).rectangle((third, 0, 2 * third, content.height), fill=(0, 0, 0))
    ImageDraw.Draw(mask).rectangle((2 * third, 0, content.width, content.height), fill=(255, 0, 0))
    params = StyleParams(size=args.size, steps=10000)
    start = time.perf_counter()
    result = stylizer.stylize(Job(content, styles, params, mask=mask), deadline=time.monotonic()
                              + args.seconds)  # fmt: skip
    seconds = time.perf_counter() - start
    _thumb(mask, args.size).save(out_dir / "mask.png")
    result.image.save(out_dir / "mask-result.jpg", quality=85)
    section = (
        "\n## A mask: one style per region\n\n"
        "White takes *The Starry Night* (`style`), red *The Scream* (`style_2`), black keeps "
        f"the photo; {result.steps_run} steps in {seconds:.0f} s at {args.size} px:\n\n"
        f"![mask]({link.as_posix()}/mask.png) ![result]({link.as_posix()}/mask-result.jpg)\n"
    )
    print(section)
    if page:
        page.write_text(page.read_text() + section)


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
        "(default parameters otherwise: L-BFGS over the pyramid parameterisation, matched start, "
        "style weight 5). The numbers "
        "score each result by all three style statistics (lower is closer to the style), "
        "the content loss and the total variation (lower is smoother). Colour modes are "
        "scored against the style's own colours, so their style distances read high. Made "
        "with `make gallery`:\n\n"
        f"    python bench/bench_quality.py gallery --size {args.size} --seconds "
        f"{args.seconds:g} --write docs/gallery.md\n"
        f"    python bench/bench_quality.py mask --size {args.size} --seconds "
        f"{args.seconds:g} --write docs/gallery.md\n\n"
        "Why the defaults are what they are: [benchmarks](benchmarks.md#style-statistics).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("gallery", "mask", "runs"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0, help="gallery: time per image")
    parser.add_argument("--write", help="gallery: write the page here")
    parser.add_argument("--images", default=str(ROOT / "docs/images/gallery"),
                        help="gallery: folder of the images")  # fmt: skip
    parser.add_argument("--cpu", help="gallery: the machine, named on the page")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=K=V,...")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many pairs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stylizer = Stylizer()
    {"gallery": gallery, "mask": mask_example, "runs": runs}[args.mode](args, stylizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
