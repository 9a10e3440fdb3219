#!/usr/bin/env python3
"""L-BFGS over whole runs: torch's pairs against nst.lbfgs's, and the history size.

    python bench/bench_lbfgs_runs.py --size 256 --steps 300

Each run is the engine on astronaut x starry_night (default parameters) for ``--steps``
steps with one L-BFGS variant, ``optimizer,precision[,history]``: ``torch`` is
``torch.optim.LBFGS`` (pairs from the step it meant to take), ``nst`` is
:mod:`nst.lbfgs` (pairs from the pixels' real displacement through the clamp). Printed: the
loss every ``--every`` steps, the largest climb above the best loss seen before it, and the
final loss measured in float32.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
from bench_engine import SHARED, torch_lbfgs

from nst import Job, StyleParams, Stylizer, decode_image, optimize
from nst.precision import bf16_supported

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def history_size(pairs: int | None):
    """The engine's L-BFGS history set to ``pairs`` for the duration."""
    original = optimize.LBFGS_HISTORY
    optimize.LBFGS_HISTORY = pairs or original
    try:
        yield
    finally:
        optimize.LBFGS_HISTORY = original


def default_runs() -> list[str]:
    precisions = ["fp32", "bf16"] if bf16_supported(torch.device("cpu")) else ["fp32"]
    last = precisions[-1]
    return [f"{opt},{p}" for p in precisions for opt in ("torch", "nst")] + [
        f"nst,{last},50",
        f"nst,{last},100",
    ]


def run(spec: str, job: Job, every: int) -> str:
    """One run as a table row."""
    optimizer, precision, *pairs = spec.split(",")
    losses: list[float] = []
    with (
        torch_lbfgs() if optimizer == "torch" else contextlib.nullcontext(),
        history_size(int(pairs[0]) if pairs else None),
    ):
        start = time.perf_counter()
        result = Stylizer(precision=precision).stylize(
            job, callback=lambda p: losses.append(p.losses.total)
        )
        seconds = time.perf_counter() - start
    climb = max(
        [0.0] + [(v - min(losses[:i])) / min(losses[:i]) for i, v in enumerate(losses) if i]
    )
    marks = " | ".join(f"{losses[k - 1]:.4f}" for k in range(every, len(losses) + 1, every))
    return (
        f"| {spec} | {optimize.LBFGS_HISTORY if not pairs else pairs[0]} | {marks} | "
        f"{climb:+.1%} | {result.losses.total:.4f} | {seconds:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--run",
        action="append",
        metavar="OPT,PRECISION[,HISTORY]",
        help="torch|nst, fp32|bf16, pairs (default: a standard set)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    job = Job(
        decode_image(SHARED / "content/astronaut.png"),
        [decode_image(SHARED / "style/starry_night.jpg")],
        StyleParams(size=args.size, steps=args.steps),
    )
    marks = range(args.every, args.steps + 1, args.every)
    print(
        f"# {args.size} px, {args.steps} steps, {args.threads} threads, torch {torch.__version__}"
    )
    print(
        "| L-BFGS, precision | pairs | "
        + " | ".join(f"loss @{k}" for k in marks)
        + " | largest climb | final (fp32) | s |"
    )
    print("|---|---|" + "---|" * len(marks) + "---|---|---|")
    for spec in args.run or default_runs():
        print(run(spec, job, args.every), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
