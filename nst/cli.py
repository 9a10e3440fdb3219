"""Command line: ``python -m nst CONTENT STYLE [STYLE...] -o OUT.png [--param value ...]``.

Every ``--option`` for a parameter is generated from :class:`nst.params.StyleParams`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from .allocator import reuse_freed_memory
from .errors import NSTError, WeightsError
from .fetch_weights import FetchError, advice, ensure_weights
from .imageio import decode_image, encode_image
from .job import Job
from .masks import palette_text
from .params import COMPILE_MODES, PRECISIONS, StyleParams, describe
from .progress import Progress
from .stylizer import Stylizer
from .version import add_version
from .weights import WEIGHTS_ENV


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one option per :class:`StyleParams` field."""
    parser = argparse.ArgumentParser(
        prog="nst", description="Neural style transfer (Gatys et al.) on VGG19."
    )
    add_version(parser)
    parser.add_argument("content", type=Path, help="content image")
    parser.add_argument("styles", type=Path, nargs="+", help="one or more style images")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output image path")
    parser.add_argument(
        "--weights",
        help=f"weights file (default: ${WEIGHTS_ENV}, else the torch hub cache, where the "
        "official weights are fetched on first use; docs/engine.md)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)"
    )
    parser.add_argument("--init-image", type=Path, help="start image (implies --init image)")
    parser.add_argument(
        "--mask",
        type=Path,
        metavar="FILE",
        help=f"region mask of the content's shape, by colour ({palette_text()})",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="dtype of the VGG passes (default: auto, bf16 where native)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the step (pays off on GPUs for long runs)",
    )
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=COMPILE_MODES,
        help="with --compile: default, or reduce-overhead to replay each step as CUDA graphs "
        "(GPUs; default: default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    params = parser.add_argument_group("style parameters")
    for f in dataclasses.fields(StyleParams):
        params.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            metavar="VALUE",
            help=describe(f).replace("%", "%%"),
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    raw = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(StyleParams)
        if getattr(args, f.name) is not None
    }
    if args.init_image is not None:
        raw.setdefault("init", "image")
    if "format" not in raw and args.output.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        raw["format"] = "webp" if args.output.suffix.lower() == ".webp" else "jpeg"
    try:
        params = StyleParams.from_mapping(raw)
        job = Job(
            content=decode_image(args.content, field="content"),
            styles=[decode_image(s, field="style") for s in args.styles],
            params=params,
            init_image=decode_image(args.init_image, field="init_image")
            if args.init_image
            else None,
            mask=decode_image(args.mask, field="mask", manage_colours=False) if args.mask else None,
        )
        weights = ensure_weights(args.weights)
        reuse_freed_memory()
        stylizer = Stylizer(
            str(weights),
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            compile_mode=args.compile_mode,
        )
        stylizer.check(job)
    except (NSTError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FetchError as exc:
        print(f"error: {advice(exc)}", file=sys.stderr)
        return 2
    with tqdm(total=params.steps, disable=args.quiet, unit="step") as bar:

        def report(progress: Progress) -> None:
            bar.update(1)
            bar.set_postfix(
                content=f"{progress.losses.content:.3g}", style=f"{progress.losses.style:.3g}"
            )

        result = stylizer.stylize(job, callback=report)
    args.output.write_bytes(encode_image(result.image, params.format, params.quality))
    print(
        f"wrote {args.output} ({result.image.width}x{result.image.height}, "
        f"{result.steps_run} steps, {result.seconds:.1f} s, content loss "
        f"{result.losses.content:.3g}, style loss {result.losses.style:.3g})"
    )
    return 0


def run() -> NoReturn:
    """The ``nst`` command: :func:`main`, then an exit that skips the interpreter's teardown
    of torch's modules (half a second or more of every run, docs/benchmarks.md); what the
    run wrote is closed by then, and its streams are flushed here."""
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
