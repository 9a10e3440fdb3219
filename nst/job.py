"""A stylisation job: the images and parameters of one request, and its sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from .imageio import longest_side_size, source_size
from .layers import min_input_side
from .params import StyleParams
from .pyramid import Level, level_plan


@dataclass
class Job:
    """One request: RGB content, one or more RGB styles, parameters, optional init image
    and optional region mask (:mod:`nst.masks`)."""

    content: Image.Image
    styles: Sequence[Image.Image]
    params: StyleParams = field(default_factory=StyleParams)
    init_image: Image.Image | None = None
    mask: Image.Image | None = None

    def output_size(self, size: int | None = None) -> tuple[int, int]:
        """(width, height) of the content resized so its longest side is ``size``
        (``params.size``, the result's size, by default)."""
        return longest_side_size(source_size(self.content), size or self.params.size)

    def min_side(self) -> int:
        """The shortest image side the chosen layers can run on."""
        p = self.params
        return min_input_side(p.content_layers + p.style_layers)

    def levels(self) -> list[Level]:
        """This job's coarse-to-fine levels, coarsest first (:func:`nst.pyramid.level_plan`)."""
        p = self.params
        shorter = min(self.output_size())
        return level_plan(p.size, p.steps, p.levels, p.coarse_share, shorter, self.min_side())

    def style_side(self, style: Image.Image, size: int) -> int:
        """Longest side of ``style`` for an output of longest side ``size``: ``style_scale``
        x ``size``, but large enough that its shorter side reaches :meth:`min_side`."""
        aspect = max(style.size) / min(style.size)
        return max(round(size * self.params.style_scale), math.ceil(self.min_side() * aspect))

    def batch_key(self) -> tuple:
        """Jobs with equal keys can be optimised together in one pass."""
        p = self.params
        return (
            self.output_size(),
            p.content_layers,
            p.style_layers,
            p.pooling,
            # jobs move between sizes together: every level's size must match too
            tuple(self.output_size(level.size) for level in self.levels()),
        )
