#!/usr/bin/env python3
"""Time ``tr(M^½)`` with its gradient, as the ``mean_cov`` style loss needs it each step:
Newton-Schulz iterations against the engine's eigenvalues (``nst.losses.trace_sqrt``), for
C x C covariances; and whether the iteration survives a covariance whose rounding left an
eigenvalue slightly below zero, as a ReLU layer's nearly singular covariance does.

    python bench/bench_sqrtm.py --device cpu --channels 64 128 256 512
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from nst.losses import trace_sqrt


def sqrtm_newton_schulz(matrix: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Square roots of symmetric PSD matrices (B, C, C) by the coupled Newton-Schulz
    iteration (matrix products only), the matrix scaled by its Frobenius norm first. An
    eigenvalue below zero grows about 2.25x per iteration until it overflows."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    norm = matrix.flatten(1).norm(dim=1).view(-1, 1, 1)
    y, z = matrix / norm, eye.expand_as(matrix)
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * norm.sqrt()


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


def covariance(c: int, device: torch.device, below_zero: float = 0.0) -> torch.Tensor:
    """A C x C covariance (1, C, C) with a spread spectrum; ``below_zero``: its smallest
    eigenvalue, relative to the largest, set to ``-below_zero``."""
    x = torch.randn(4 * c, c, device=device) * torch.linspace(0.05, 3, c, device=device)
    matrix = x.T @ x / (4 * c)
    if below_zero:
        values, vectors = torch.linalg.eigh(matrix.double())
        values[0] = -below_zero * values[-1]
        matrix = (vectors @ torch.diag(values) @ vectors.T).float()
    return matrix.unsqueeze(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(
        "| C | Newton-Schulz (20 it.) ms | eigvalsh (float64) ms | relative difference | "
        "Newton-Schulz, one eigenvalue at -1e-4 of the largest (TF32 rounding) |"
    )
    print("|---|---|---|---|---|")
    for c in args.channels:
        matrix = covariance(c, device).requires_grad_()

        def newton_schulz(matrix: torch.Tensor = matrix) -> torch.Tensor:
            value = torch.diagonal(sqrtm_newton_schulz(matrix), dim1=1, dim2=2).sum()
            value.backward()
            return value.detach()

        def eigen(matrix: torch.Tensor = matrix) -> torch.Tensor:
            value = trace_sqrt(matrix).sum()
            value.backward()
            return value.detach()

        ns, ev = seconds(newton_schulz, device, args.repeats), seconds(eigen, device, args.repeats)
        gap = float((newton_schulz() - eigen()).abs() / eigen())
        rounded = covariance(c, device, below_zero=1e-4)
        survived = torch.isfinite(sqrtm_newton_schulz(rounded)).all()
        print(
            f"| {c} | {ns * 1e3:.1f} | {ev * 1e3:.1f} | {gap:.1e} | "
            f"{'finite' if survived else 'overflows'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
