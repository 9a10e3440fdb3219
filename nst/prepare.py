"""A job's preparation at one size: input tensors, loss targets and the start image.

Targets (content features, style statistics per region) are computed here **once per job and
level**, never inside the optimisation loop. The job must have passed the gate
(:meth:`nst.stylizer.Stylizer.check`); nothing is checked again here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from . import color
from .imageio import image_to_tensor, resize_longest
from .job import Job
from .masks import region_weights
from .objective import JobTargets, PassConfig, StyleRegion, target_features
from .pyramid import upsampled_start
from .style_cache import StyleCache, style_key
from .style_stats import Statistics, blend, style_statistics

# Colour modes whose style targets do not depend on the content (so they can be cached).
CONTENT_FREE_COLOURS = ("none", "original_colors")

BeforePass = Callable[[int], None]  # called with the pixels of each VGG pass about to run


@dataclass
class PreparedJob:
    """Tensors a job needs inside the loop at one size (all on the engine's device)."""

    job: Job
    content_rgb: torch.Tensor  # (1, 3, H, W) original colours, for luminance recombination
    init: torch.Tensor  # (1, 3, H, W) start pixels in [0, 1]
    content_targets: dict[str, torch.Tensor]
    style: tuple[StyleRegion, ...]  # one region (all styles blended) unless there is a mask
    layer_weights: dict[str, float]  # normalised to sum to 1
    keep: torch.Tensor | None = None  # (1, 1, H, W) weights of the mask's unstylised region

    def continued_from(self, pixels: torch.Tensor | None) -> PreparedJob:
        """This job starting from a coarser level's ``pixels`` (if any) instead of its own
        start image (:func:`nst.pyramid.upsampled_start`)."""
        if pixels is None:
            return self
        hw = (self.init.shape[-2], self.init.shape[-1])
        return dataclasses.replace(self, init=upsampled_start(pixels, self.working_content(), hw))

    def working_content(self) -> torch.Tensor:
        """The content as the optimisation sees it (:func:`working_content`)."""
        return working_content(self.content_rgb, self.job.params.preserve_color)

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Optimised pixels -> output RGB: the content's colours put back where the colour
        mode asks, and the content itself in a mask's unstylised region."""
        if self.job.params.preserve_color in ("luminance", "original_colors"):
            pixels = color.with_luminance(pixels, self.content_rgb)
        pixels = pixels.clamp(0, 1)
        if self.keep is not None:
            pixels = self.keep * self.content_rgb + (1 - self.keep) * pixels
        return pixels

    def targets(self) -> JobTargets:
        """The loss targets and weights as tensors for :func:`nst.objective.batch_losses`."""
        p = self.job.params
        device = self.init.device
        layer_weights = {
            name: torch.tensor(w, device=device) for name, w in self.layer_weights.items()
        }
        weights = torch.tensor([p.content_weight, p.style_weight, p.tv_weight], device=device)
        return JobTargets(
            self.content_targets, self.style, layer_weights, weights, p.style_loss, None
        )


def prepare(
    job: Job,
    size: int,
    passes: PassConfig,
    start: torch.Tensor | None = None,
    cache: StyleCache | None = None,
    before_pass: BeforePass | None = None,
) -> PreparedJob:
    """Resize and colour-process a job's images for longest side ``size`` and compute its
    loss targets once, with the network and precision of ``passes``.

    ``start``: pixels of a coarser level to begin from instead of ``params.init``.
    ``cache``: reuse the style statistics of style images seen before. ``before_pass``:
    called before each VGG pass with its pixel count; it may raise
    (:class:`nst.pace.DeadlineExceeded`) to stop the preparation.
    """
    p, device = job.params, passes.device
    width, height = job.output_size(size)
    content_rgb = image_to_tensor(job.content.resize((width, height), Image.Resampling.LANCZOS))
    content_rgb = content_rgb.to(device)
    content = working_content(content_rgb, p.preserve_color)
    styles = StyleTensors(job, size, content_rgb)
    before_pass = before_pass or (lambda pixels: None)
    with torch.no_grad():
        before_pass(width * height)
        content_targets = target_features(passes, content, p.content_layers, p.pooling)
        stats = [
            _style_stats(styles, k, passes, cache, before_pass) for k in range(len(job.styles))
        ]
    regions = region_weights(job.mask, (width, height), device) if job.mask else None
    if start is not None:
        init = upsampled_start(start, content, (height, width))
    elif p.init == "matched":
        init = _matched_start(job, styles, content, regions)
    else:
        init = _initial_pixels(job, styles, content, (height, width))
    layer_w = p.style_layer_weights or (1.0,) * len(p.style_layers)
    layer_weights = {n: w / sum(layer_w) for n, w in zip(p.style_layers, layer_w)}
    if regions is None:
        blended = blend(p.style_loss, stats, p.style_weights or (1.0,) * len(stats))
        style: tuple[StyleRegion, ...] = (StyleRegion(blended, None),)
        keep = None
    else:  # region k (palette index k) takes style k; index 0 stays unstylised
        style = tuple(StyleRegion(stats[k - 1], w) for k, w in regions.items() if k > 0)
        keep = regions.get(0)
    return PreparedJob(job, content_rgb, init, content_targets, style, layer_weights, keep)


def working_content(content_rgb: torch.Tensor, preserve_color: str) -> torch.Tensor:
    """The content as the optimisation sees it: its luminance in ``luminance`` mode."""
    return color.luminance(content_rgb) if preserve_color == "luminance" else content_rgb


class StyleTensors:
    """A job's style images resized (:meth:`nst.job.Job.style_side`) and colour-processed
    for one level, on the content's device; each built at most once, when first needed."""

    def __init__(self, job: Job, size: int, content_rgb: torch.Tensor):
        self.job, self.size, self.content_rgb = job, size, content_rgb
        self._built: dict[int, torch.Tensor] = {}

    def side(self, k: int) -> int:
        """Longest side of style image ``k`` at this level."""
        return self.job.style_side(self.job.styles[k], self.size)

    def __len__(self) -> int:
        return len(self.job.styles)

    def __getitem__(self, k: int) -> torch.Tensor:
        if k not in self._built:
            self._built[k] = self._build(k)
        return self._built[k]

    def _build(self, k: int) -> torch.Tensor:
        p, content_rgb = self.job.params, self.content_rgb
        image = resize_longest(self.job.styles[k], self.side(k))
        style = image_to_tensor(image).to(content_rgb.device)
        if p.preserve_color == "luminance":
            return color.match_luminance(
                color.luminance(style), color.luminance(content_rgb)[:, :1]
            )
        if p.preserve_color == "histogram":
            return color.match_color(style, content_rgb)
        return style


def _style_stats(
    styles: StyleTensors,
    k: int,
    passes: PassConfig,
    cache: StyleCache | None,
    before_pass: BeforePass,
) -> Statistics:
    """Style statistics of style image ``k``, from ``cache`` when it was seen before."""
    job = styles.job
    p = job.params
    key = None
    if cache is not None and p.preserve_color in CONTENT_FREE_COLOURS:
        key = style_key(job.styles[k], styles.side(k), p)
        cached = cache.get(key)
        if cached is not None:
            return cached
    style = styles[k]
    before_pass(style.shape[-1] * style.shape[-2])
    features = target_features(passes, style, p.style_layers, p.pooling)
    stats = style_statistics(p.style_loss, features)
    if cache is not None and key is not None:
        cache.put(key, stats)
    return stats


def _matched_start(
    job: Job,
    styles: StyleTensors,
    content: torch.Tensor,
    regions: dict[int, torch.Tensor] | None,
) -> torch.Tensor:
    """The content recoloured to the colour mean and covariance of the styles' blend (with
    a mask: of each region's style, region by region).

    A departure from the paper, which starts from the content (or noise): the lowest style
    layer's Gram term is largely the style's colour statistics, so a start that already has
    them saves the steps spent moving colours (docs/benchmarks.md).
    """
    if regions is None:
        tensors = [styles[k] for k in range(len(styles))]
        blend_weights = list(job.params.style_weights or (1.0,) * len(tensors))
        return color.match_color_stats(content, *color.blended_colour_stats(tensors, blend_weights))
    start = torch.zeros_like(content)
    for k, weights in regions.items():
        recoloured = content if k == 0 else color.match_color(content, styles[k - 1])
        start = start + weights * recoloured
    return start


def _initial_pixels(
    job: Job, styles: StyleTensors, content: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """Start image for ``params.init``; noise is drawn from a generator seeded by ``seed``."""
    p = job.params
    if p.init == "content":
        return content.clone()
    if p.init == "noise":
        generator = torch.Generator(device="cpu").manual_seed(p.seed)
        return torch.rand((1, 3, *hw), generator=generator).to(content.device)
    if p.init == "style":
        return torch.nn.functional.interpolate(
            styles[0], size=hw, mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 1)
    assert job.init_image is not None  # the gate requires one for init='image'
    start = image_to_tensor(job.init_image.resize(hw[::-1], Image.Resampling.LANCZOS))
    start = start.to(content.device)
    return working_content(start, p.preserve_color)
