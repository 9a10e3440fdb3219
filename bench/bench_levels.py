#!/usr/bin/env python3
"""Runs of the engine side by side, final losses at full size: coarse-to-fine vs single
scale at (about) the same wall time, or one start against another.

    python bench/bench_levels.py --size 256 \
        --run steps=60 --run steps=80,levels=2,coarse_share=0.3 --run steps=100,levels=2
    python bench/bench_levels.py --size 256 --run steps=50 --run steps=50,init=matched
    python bench/bench_levels.py --size 256 --target 0.6259 \
        --run steps=100 --run steps=100,levels=2,coarse_share=0.04

Each ``--run`` is a set of StyleParams overrides; prints wall time and final losses. With
``--target``, each run stops once its loss at the full size reaches that value (such as
the plain loop's 100-step loss from ``bench/bench_engine.py``) and the table also gives
the steps it took: at the coarser levels, then at the full size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from bench_engine import coarse_steps, engine_run

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
    parser.add_argument("--target", type=float, help="stop each run at this full-size loss")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    content, style = decode_image(args.content), decode_image(args.style)
    stylizer = Stylizer()
    counted = args.target is not None
    reach = " coarse steps | full-size steps to the target |" if counted else ""
    print(f"| run | seconds | total | style | content |{reach}")
    print("|---|---|---|---|---|" + "---|---|" * counted)
    for run in args.run:
        changes = dict(item.split("=", 1) for item in run.split(","))
        params = StyleParams.from_mapping({"size": args.size, **changes})
        if counted:
            seconds, result, history = engine_run(stylizer, content, style, params, args.target)
            coarse = coarse_steps(Job(content, [style], params))
            reached = history[-1][1] <= args.target
            steps = f" {coarse} | {len(history) if reached else 'not reached'} |"
        else:
            start = time.perf_counter()
            result = stylizer.stylize(Job(content, [style], params))
            seconds, steps = time.perf_counter() - start, ""
        losses = result.losses
        print(
            f"| {run} | {seconds:.1f} | {losses.total:.4f} | {losses.style:.4f} | "
            f"{losses.content:.4f} |{steps}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
