#!/usr/bin/env python3
"""Time ``tr(M^½)`` with its gradient, as the ``mean_cov`` style loss needs it each step:
Newton-Schulz iterations against eigenvalues (``eigvalsh``), for C x C covariances.

    python bench/bench_sqrtm.py --device cpu --channels 64 128 256 512
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from nst.losses import sqrtm_newton_schulz


def seconds(fn, device: torch.device, repeats: int) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print("| C | Newton-Schulz (20 it.) ms | eigvalsh ms | relative difference |")
    print("|---|---|---|---|")
    for c in args.channels:
        x = torch.randn(4 * c, c, device=device) * torch.linspace(0.05, 3, c, device=device)
        matrix = (x.T @ x / (4 * c)).unsqueeze(0).requires_grad_()

        def newton_schulz(matrix: torch.Tensor = matrix) -> torch.Tensor:
            value = torch.diagonal(sqrtm_newton_schulz(matrix), dim1=1, dim2=2).sum()
            value.backward()
            return value.detach()

        def eigen(matrix: torch.Tensor = matrix) -> torch.Tensor:
            value = torch.linalg.eigvalsh(matrix).clamp_min(0).sqrt().sum()
            value.backward()
            return value.detach()

        ns, ev = seconds(newton_schulz, device, args.repeats), seconds(eigen, device, args.repeats)
        gap = float((newton_schulz() - eigen()).abs() / eigen())
        print(f"| {c} | {ns * 1e3:.1f} | {ev * 1e3:.1f} | {gap:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
