#!/usr/bin/env python3
"""The optimiser's own cost per step: nst.lbfgs.LBFGS vs torch.optim.LBFGS(max_iter=1).

    python bench/bench_lbfgs.py --device cpu --sizes 256 512
    python bench/bench_lbfgs.py --device cuda:0 --sizes 256 512 1024

Pixels of a (1, 3, size, size) image, a cheap, badly conditioned quadratic objective (so
the figure is the optimiser, not VGG), ``--history`` pairs (the engine's by default), timed
over ``--steps`` steps once the history is full.
Prints ms per step for each and their iterates' largest difference (rounding only).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from nst.lbfgs import LBFGS
from nst.optimize import LBFGS_HISTORY


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(
    make, size: int, steps: int, history: int, device: torch.device
) -> tuple[float, torch.Tensor]:
    """ms per step after the history has filled, and the final pixels."""
    gen = torch.Generator().manual_seed(0)
    # Curvatures over six decades: far from converged after a few hundred steps.
    scale = (10 ** (6 * torch.rand(1, 3, size, size, generator=gen) - 3)).to(device)
    target = torch.rand(1, 3, size, size, generator=gen).to(device)
    x = torch.full((1, 3, size, size), 0.5, device=device, requires_grad=True)
    opt = make(x)

    def closure() -> torch.Tensor:
        x.grad = None
        loss = (scale * (x - target) ** 2).sum() + (x[..., 1:] - x[..., :-1]).pow(2).sum()
        loss.backward()
        return loss

    for _ in range(history + 5):
        opt.step(closure)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        opt.step(closure)
    sync(device)
    return (time.perf_counter() - start) / steps * 1000, x.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--history", type=int, default=LBFGS_HISTORY)
    args = parser.parse_args(argv)
    device, history = torch.device(args.device), args.history
    print(f"# {device}, torch {torch.__version__}, history {history}, {args.steps} steps timed")
    print(
        "| size | torch.optim.LBFGS ms/step | nst.lbfgs ms/step | speed-up | max diff |\n"
        "|---|---|---|---|---|"
    )
    for size in args.sizes:
        theirs, a = run(
            lambda x: torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=history),
            size,
            args.steps,
            history,
            device,
        )
        ours, b = run(
            lambda x: LBFGS([x], lr=1.0, history_size=history), size, args.steps, history, device
        )
        print(
            f"| {size} | {theirs:.1f} | {ours:.1f} | {theirs / ours:.2f}x | "
            f"{(a - b).abs().max().item():.2e} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
