"""Coarse-to-fine, the plan: which sizes a job runs at, and moving pixels between them.

A departure from the paper, which optimises at the output size only: a job may first run
some of its steps at 1/2, 1/4 ... of the size (a quarter of the cost per step each time),
each level starting from the last one's pixels (``docs/engine.md``). Everything here takes
plain values; :mod:`nst.coarse_to_fine` runs the levels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the plan takes plain values: a job is planned without torch
    import torch


class Level(NamedTuple):
    """One level of a plan: the longest side and the steps run at it."""

    size: int
    steps: int


def level_plan(
    size: int,
    steps: int,
    levels: int,
    coarse_share: float,
    shorter_side: int,
    min_side: int,
) -> list[Level]:
    """Levels of a job of longest side ``size`` and ``steps`` steps, coarsest first; the last
    is the output size.

    Each coarser level has half the side of the next; together they get ``coarse_share`` of
    the steps, split evenly; the full size gets the rest (at least one). Levels whose
    shorter side (``shorter_side`` at the output size) falls below ``min_side`` (what the
    chosen layers need) are dropped and their steps are shared by the levels kept.
    """
    coarse = [k for k in range(levels - 1, 0, -1) if shorter_side / 2**k >= min_side and steps > 1]
    coarse_steps = min(round(steps * coarse_share), steps - 1) if coarse else 0
    plan = []
    for n, k in enumerate(coarse):
        level_steps = coarse_steps // len(coarse) + (n < coarse_steps % len(coarse))
        if level_steps:
            plan.append(Level(round(size / 2**k), level_steps))
    return [*plan, Level(size, steps - coarse_steps)]


def resize_pixels(pixels: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Pixels (1, 3, h, w) resized to ``hw`` (bicubic up, antialiased down), kept in 0..1."""
    from torch.nn import functional

    if tuple(pixels.shape[-2:]) == hw:
        return pixels.detach().clone()
    return functional.interpolate(
        pixels.detach(), size=hw, mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)


def upsampled_start(
    start: torch.Tensor, content: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """A coarser level's pixels brought to ``hw``, with the content's finer detail put back.

    Upsampling alone gives a blurred image whose content loss starts far above the coarse
    level's; the band of detail the coarse level could not hold (content minus content seen
    at the coarse size) is added back, so the finer level starts where the coarse one ended.
    """
    if tuple(start.shape[-2:]) == hw:
        return start.detach().clone()
    coarse_hw = (start.shape[-2], start.shape[-1])
    detail = content - resize_pixels(resize_pixels(content, coarse_hw), hw)
    return (resize_pixels(start, hw) + detail).clamp(0, 1)
