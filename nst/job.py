"""A stylisation job and its preparation: input tensors, loss targets and the start image.

Targets (content features, blended style Grams) are computed here **once per job**, never
inside the optimisation loop.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from . import color
from .errors import ParamError
from .imageio import image_to_tensor, longest_side_size, resize_longest
from .layers import min_input_side
from .losses import gram_matrix
from .params import StyleParams
from .style_cache import StyleCache, style_key
from .vgg import VGGFeatures

MAX_STYLES = 8


@dataclass
class Job:
    """One request: RGB content, one or more RGB styles, parameters, optional init image."""

    content: Image.Image
    styles: Sequence[Image.Image]
    params: StyleParams = field(default_factory=StyleParams)
    init_image: Image.Image | None = None

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the result: the content resized to ``params.size``."""
        return longest_side_size(self.content.size, self.params.size)

    def batch_key(self) -> tuple:
        """Jobs with equal keys can be optimised together in one pass."""
        p = self.params
        return (
            self.output_size(),
            p.content_layers,
            p.style_layers,
            p.pooling,
            len(self.level_plan()),
        )

    def level_plan(self) -> list[tuple[int, int]]:
        """Coarse-to-fine schedule: ``(size, steps)`` per level, coarsest first.

        A departure from the paper, which optimises at the output size only: each coarser
        level has half the side of the next (a quarter of the cost per step) and together
        they get ``coarse_share`` of the steps, split evenly; the full size gets the rest
        (at least one). Levels too small for the chosen layers are dropped and their steps
        are shared by the levels kept.
        """
        p = self.params
        need = min_input_side(p.content_layers + p.style_layers)
        width, height = self.output_size()
        coarse = [
            k
            for k in range(p.levels - 1, 0, -1)
            if min(width, height) / 2**k >= need and p.steps > 1
        ]
        coarse_steps = min(round(p.steps * p.coarse_share), p.steps - 1) if coarse else 0
        plan = []
        for n, k in enumerate(coarse):
            steps = coarse_steps // len(coarse) + (n < coarse_steps % len(coarse))
            if steps:
                plan.append((round(p.size / 2**k), steps))
        return [*plan, (p.size, p.steps - coarse_steps)]

    def at_level(self, size: int, steps: int) -> Job:
        """This job at one level of its :meth:`level_plan`."""
        return dataclasses.replace(
            self, params=dataclasses.replace(self.params, size=size, steps=steps)
        )

    def validate(self) -> None:
        """Check what :class:`StyleParams` alone cannot: styles and init image."""
        if not 1 <= len(self.styles) <= MAX_STYLES:
            raise ParamError(
                f"give 1 to {MAX_STYLES} style images, got {len(self.styles)}", field="style"
            )
        weights = self.params.style_weights
        if weights and len(weights) != len(self.styles):
            raise ParamError(
                f"style_weights has {len(weights)} values for {len(self.styles)} style images",
                field="style_weights",
            )
        if self.params.init == "image" and self.init_image is None:
            raise ParamError("init='image' needs an init image", field="init_image")


@dataclass
class PreparedJob:
    """Tensors a job needs inside the loop (all on the engine's device)."""

    job: Job
    content_rgb: torch.Tensor  # (1, 3, H, W) original colours, for luminance recombination
    init: torch.Tensor  # (1, 3, H, W) start pixels in [0, 1]
    content_targets: dict[str, torch.Tensor]
    style_targets: dict[str, torch.Tensor]  # blended Gram matrices (1, C, C)
    layer_weights: dict[str, float]  # normalised to sum to 1

    def continued_from(self, pixels: torch.Tensor) -> PreparedJob:
        """This job starting from a coarser level's ``pixels`` (see ``_upsampled_start``)."""
        content = self.content_rgb
        if self.job.params.preserve_color == "luminance":
            content = color.luminance(content)
        hw = tuple(self.init.shape[-2:])
        return dataclasses.replace(self, init=_upsampled_start(pixels, content, hw))

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Optimised pixels -> output RGB (restores content colours in luminance mode)."""
        if self.job.params.preserve_color == "luminance":
            return color.with_luminance(pixels, self.content_rgb)
        return pixels.clamp(0, 1)


def check(job: Job, net: VGGFeatures) -> None:
    """Raise the :class:`ParamError` that any level of the job's run would, at no cost.

    Every constraint that depends on the size is checked at each level of
    :meth:`Job.level_plan`, so nothing can fail once the optimisation has started.
    """
    job.validate()
    p = job.params
    net.check_layers(p.content_layers, "content_layers")
    net.check_layers(p.style_layers, "style_layers")
    width, height = job.output_size()
    need = min_input_side(p.content_layers + p.style_layers)
    if min(width, height) < need:
        raise ParamError(
            f"the output would be {width}x{height}; the chosen layers need at "
            f"least {need} px on the shorter side",
            field="size",
        )
    for size, _ in job.level_plan():
        level = dataclasses.replace(p, size=size)
        wanted = max(round(size * p.style_scale), need)
        for style in job.styles:
            # A sliver-shaped style must be enlarged until its short side reaches ``need``;
            # refuse shapes that would blow up memory that way (at every level's size).
            if _style_side(style, level, need) > 4 * wanted:
                raise ParamError(
                    f"a {style.width}x{style.height} style image is too elongated for size {size}",
                    field="style",
                )


def work_pixels(job: Job) -> int:
    """Pixels one evaluation of the job runs through VGG at the output size: the output plus
    every style image as resized for its Gram targets (the size-dependent cost of a request,
    which a server bounds)."""
    p = job.params
    need = min_input_side(p.content_layers + p.style_layers)
    width, height = job.output_size()
    total = width * height
    for style in job.styles:
        total += math.prod(longest_side_size(style.size, _style_side(style, p, need)))
    return total


Checkpoint = Callable[[int], None]  # called with the pixels of the VGG pass about to run


def prepare(
    job: Job,
    net: VGGFeatures,
    device: torch.device,
    start: torch.Tensor | None = None,
    cache: StyleCache | None = None,
    checkpoint: Checkpoint | None = None,
) -> PreparedJob:
    """Resize and colour-process a job's images and compute its loss targets once.

    ``start``: pixels of a coarser level to begin from (resized to this job's size) instead
    of ``params.init``. ``cache``: reuse the Gram targets of style images seen before.
    ``checkpoint``: called before each VGG pass with its pixel count; it may raise
    (:class:`nst.pace.DeadlineExceeded`) to stop the preparation. The job must have passed
    :func:`check`.
    """
    p = job.params
    width, height = job.output_size()
    content_rgb = image_to_tensor(job.content.resize((width, height), Image.Resampling.LANCZOS))
    content_rgb = content_rgb.to(device)
    content = color.luminance(content_rgb) if p.preserve_color == "luminance" else content_rgb
    checkpoint = checkpoint or (lambda pixels: None)
    with torch.no_grad():
        checkpoint(width * height)
        content_targets = net(net.convention.to_model(content), p.content_layers, p.pooling)
        style_targets = _blend(
            [
                _style_grams(job, k, net, content_rgb, cache, checkpoint)
                for k in range(len(job.styles))
            ],
            p,
        )
    if start is not None:
        init = _upsampled_start(start, content, (height, width))
    elif p.init == "matched":
        init = _matched_start(job, content, content_rgb)
    else:
        first_style = _style_tensor(job, 0, content_rgb) if p.init == "style" else None
        init = _initial_pixels(job, content, first_style, (height, width), device)
    layer_w = p.style_layer_weights or (1.0,) * len(p.style_layers)
    layer_weights = {n: w / sum(layer_w) for n, w in zip(p.style_layers, layer_w)}
    return PreparedJob(job, content_rgb, init, content_targets, style_targets, layer_weights)


def resize_pixels(pixels: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Pixels (1, 3, h, w) resized to ``hw`` (bicubic up, antialiased down), kept in 0..1."""
    if tuple(pixels.shape[-2:]) == hw:
        return pixels.detach().clone()
    return torch.nn.functional.interpolate(
        pixels.detach(), size=hw, mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)


def _style_side(style: Image.Image, p: StyleParams, need: int) -> int:
    """Longest side of a style image: ``style_scale`` x ``size``, but deep enough for VGG."""
    aspect = max(style.size) / min(style.size)
    return max(round(p.size * p.style_scale), math.ceil(need * aspect))


def _upsampled_start(
    start: torch.Tensor, content: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """A coarser level's pixels brought to ``hw``, with the content's finer detail put back.

    Upsampling alone gives a blurred image whose content loss starts far above the coarse
    level's; the band of detail the coarse level could not hold (content minus content seen
    at the coarse size) is added back, so the finer level starts where the coarse one ended.
    """
    if tuple(start.shape[-2:]) == hw:
        return start.detach().clone()
    coarse_content = resize_pixels(content, tuple(start.shape[-2:]))
    detail = content - resize_pixels(coarse_content, hw)
    return (resize_pixels(start, hw) + detail).clamp(0, 1)


def _style_tensor(job: Job, k: int, content_rgb: torch.Tensor) -> torch.Tensor:
    """Style image ``k`` resized (``_style_side``) and colour-processed, on the device."""
    p = job.params
    image = job.styles[k]
    need = min_input_side(p.content_layers + p.style_layers)
    style = image_to_tensor(resize_longest(image, _style_side(image, p, need)))
    style = style.to(content_rgb.device)
    if p.preserve_color == "luminance":
        return color.match_luminance(color.luminance(style), color.luminance(content_rgb)[:, :1])
    if p.preserve_color == "histogram":
        return color.match_color(style, content_rgb)
    return style


def _style_grams(
    job: Job,
    k: int,
    net: VGGFeatures,
    content_rgb: torch.Tensor,
    cache: StyleCache | None,
    checkpoint: Checkpoint,
) -> dict[str, torch.Tensor]:
    """Gram targets of style image ``k``, from ``cache`` when it was seen before."""
    p = job.params
    key = None
    if cache is not None and p.preserve_color == "none":  # content-independent only
        need = min_input_side(p.content_layers + p.style_layers)
        key = style_key(job.styles[k], _style_side(job.styles[k], p, need), p)
        cached = cache.get(key)
        if cached is not None:
            return cached
    style = _style_tensor(job, k, content_rgb)
    checkpoint(style.shape[-1] * style.shape[-2])
    features = net(net.convention.to_model(style), p.style_layers, p.pooling)
    grams = {name: gram_matrix(feat) for name, feat in features.items()}
    if key is not None:
        cache.put(key, grams)
    return grams


def _blend(grams: list[dict[str, torch.Tensor]], p: StyleParams) -> dict[str, torch.Tensor]:
    """Gram targets of several styles, blended by ``style_weights`` (as neural-style does)."""
    blend = p.style_weights or (1.0,) * len(grams)
    total = sum(blend)
    blended: dict[str, torch.Tensor] = {}
    for style_grams, weight in zip(grams, blend):
        for name, gram in style_grams.items():
            g = gram * (weight / total)
            blended[name] = blended[name] + g if name in blended else g
    return blended


def _matched_start(job: Job, content: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """The content recoloured to the colour mean and covariance of the styles' blend.

    A departure from the paper, which starts from the content (or noise): the lowest style
    layer's Gram term is largely the style's colour statistics, so a start that already has
    them saves the steps spent moving colours (docs/benchmarks.md: 1.6-9.4 % lower loss after
    50 steps at 256 px, 0.06-0.5 % lower after 300).
    """
    styles = [_style_tensor(job, k, content_rgb) for k in range(len(job.styles))]
    blend = list(job.params.style_weights or (1.0,) * len(styles))
    return color.match_color_stats(content, *color.blended_colour_stats(styles, blend))


def _initial_pixels(
    job: Job,
    content: torch.Tensor,
    style: torch.Tensor | None,
    hw: tuple[int, int],
    device: torch.device,
) -> torch.Tensor:
    """Start image for ``params.init``; noise is drawn from a generator seeded by ``seed``."""
    p = job.params
    if p.init == "content":
        return content.clone()
    if p.init == "noise":
        generator = torch.Generator(device="cpu").manual_seed(p.seed)
        return torch.rand((1, 3, *hw), generator=generator).to(device)
    if p.init == "style":
        return torch.nn.functional.interpolate(
            style, size=hw, mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 1)
    start = image_to_tensor(job.init_image.resize(hw[::-1], Image.Resampling.LANCZOS))
    start = start.to(device)
    return color.luminance(start) if p.preserve_color == "luminance" else start
