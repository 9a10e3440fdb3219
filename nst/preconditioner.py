"""The image parameterisation the optimiser works in, applied as a preconditioner.

Optimising the coefficients ``z`` of an image ``x = P z`` instead of its pixels, with
L-BFGS whose initial inverse Hessian is ``h·I``, is the same as optimising the pixels with
an initial inverse Hessian ``h·P Pᵀ`` (and the gradient ``P Pᵀ g`` for Adam). So a
parameterisation needs no second copy of the image: only ``P Pᵀ`` applied to a gradient.

``pyramid``: ``x`` is the sum of a full-size image and of images of 1/2, 1/4 ... of the size
upsampled to it (bilinear, one doubling after another), as a Laplacian pyramid. Its coarse
levels move whole areas at once, where a pixel's own gradient only moves that pixel; in
"Differentiable Image Parameterizations" (Mordvintsev et al. 2018) such bases make image
optimisation better conditioned. Measured here: the same loss in about 3/4 of the steps
(docs/benchmarks.md, "Image parameterisation").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

from .params import PARAMETERIZATIONS

# Weight of level l (1/2**l of the size) relative to the pixels, per level: gain**l.
# Chosen on 256 px runs of four pairs (bench/bench_engine.py): 1.0 and 2.0 do worse.
PYRAMID_GAIN = 1.4
MIN_LEVEL_SIDE = 2  # the coarsest level keeps at least this many pixels on its shorter side


def pyramid_levels(height: int, width: int) -> int:
    """Levels of the pyramid of an image ``height`` x ``width``, the full size included."""
    levels, side = 1, min(height, width)
    while side // 2**levels >= MIN_LEVEL_SIDE:
        levels += 1
    return levels


def upsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``B image``: bilinear upsampling to ``size``."""
    return functional.interpolate(image, size=size, mode="bilinear", align_corners=False)


def upsample_adjoint(grad: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``Bᵀ grad`` where ``B`` upsamples images of ``size`` to ``grad``'s size
    (:func:`upsample`): the backward of that upsampling, without a graph."""
    return torch.ops.aten.upsample_bilinear2d_backward(
        grad, list(grad.shape[-2:]), [*grad.shape[:-2], *size], False
    )


def pyramid_precondition(grad: torch.Tensor, gain: float = PYRAMID_GAIN) -> torch.Tensor:
    """``P Pᵀ grad`` for the pyramid parameterisation of images shaped like ``grad``
    (N, C, H, W): ``grad + Σ_l w_l U_l U_lᵀ grad``, symmetric and positive definite.

    ``U_l`` upsamples from level ``l`` (about 1/2**l of the size) by ``l`` bilinear
    doublings, so both products run level by level, each on a quarter of the last one's
    pixels (less than three full-size passes in all); ``w_l = (gain / 4)**l``, the ``4**l``
    undoing the number of pixels each coarse pixel spreads over.
    """
    height, width = grad.shape[-2:]
    sizes: list[tuple[int, int]] = [(height, width)]
    for _ in range(1, pyramid_levels(*sizes[0])):
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    coarse = [grad]  # U_lᵀ grad for each level, by one adjoint halving after another
    for size in sizes[1:]:
        coarse.append(upsample_adjoint(coarse[-1], size))
    weight = gain / 4
    total = coarse[-1] * weight ** (len(sizes) - 1)  # Horner: from the coarsest level up
    for level in range(len(sizes) - 2, -1, -1):
        total = upsample(total, sizes[level]).add_(coarse[level], alpha=weight**level)
    return total


def preconditioner(
    parameterization: str,
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ``P Pᵀ`` of a parameterisation (None for the pixels themselves)."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {parameterization!r}")
    return pyramid_precondition if parameterization == "pyramid" else None
