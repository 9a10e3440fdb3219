"""A stylisation job and its preparation: input tensors, loss targets and the start image.

Targets (content features, blended style Grams) are computed here **once per job**, never
inside the optimisation loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from . import color
from .errors import ParamError
from .imageio import image_to_tensor, resize_longest
from .layers import min_input_side
from .losses import gram_matrix
from .params import StyleParams
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
        width, height = self.content.size
        scale = self.params.size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def batch_key(self) -> tuple:
        """Jobs with equal keys can be optimised together in one pass."""
        p = self.params
        return (self.output_size(), p.content_layers, p.style_layers, p.pooling)

    def validate(self) -> None:
        """Check what :class:`StyleParams` alone cannot: styles and init image."""
        if not 1 <= len(self.styles) <= MAX_STYLES:
            raise ParamError(f"give 1 to {MAX_STYLES} style images, got {len(self.styles)}",
                             field="style")
        weights = self.params.style_weights
        if weights and len(weights) != len(self.styles):
            raise ParamError(f"style_weights has {len(weights)} values for "
                             f"{len(self.styles)} style images", field="style_weights")
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

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """Optimised pixels -> output RGB (restores content colours in luminance mode)."""
        if self.job.params.preserve_color == "luminance":
            return color.with_luminance(pixels, self.content_rgb)
        return pixels.clamp(0, 1)


def check(job: Job, net: VGGFeatures) -> None:
    """Raise the :class:`ParamError` that :func:`prepare` would, without any compute."""
    job.validate()
    p = job.params
    net.check_layers(p.content_layers, "content_layers")
    net.check_layers(p.style_layers, "style_layers")
    width, height = job.output_size()
    need = min_input_side(p.content_layers + p.style_layers)
    if min(width, height) < need:
        raise ParamError(f"the output would be {width}x{height}; the chosen layers need at "
                         f"least {need} px on the shorter side", field="size")
    wanted = max(round(p.size * p.style_scale), need)
    for style in job.styles:
        # A sliver-shaped style must be enlarged until its short side reaches ``need``;
        # refuse shapes that would blow up memory that way.
        if _style_side(style, p, need) > 4 * wanted:
            raise ParamError(f"a {style.width}x{style.height} style image is too elongated "
                             f"for size {p.size}", field="style")


def prepare(job: Job, net: VGGFeatures, device: torch.device) -> PreparedJob:
    """Resize and colour-process a job's images and compute its loss targets once."""
    check(job, net)
    p = job.params
    width, height = job.output_size()
    need = min_input_side(p.content_layers + p.style_layers)
    content_rgb = image_to_tensor(job.content.resize((width, height), Image.Resampling.LANCZOS))
    content_rgb = content_rgb.to(device)
    styles = [image_to_tensor(resize_longest(s, _style_side(s, p, need))).to(device)
              for s in job.styles]
    content = content_rgb
    if p.preserve_color == "luminance":
        content = color.luminance(content_rgb)
        styles = [color.match_luminance(color.luminance(s), content[:, :1]) for s in styles]
    elif p.preserve_color == "histogram":
        styles = [color.match_color(s, content_rgb) for s in styles]
    with torch.no_grad():
        content_targets = net(net.convention.to_model(content), p.content_layers, p.pooling)
        style_targets = _blended_grams(net, styles, p)
    init = _initial_pixels(job, content, styles[0], (height, width), device)
    layer_w = p.style_layer_weights or (1.0,) * len(p.style_layers)
    layer_weights = {n: w / sum(layer_w) for n, w in zip(p.style_layers, layer_w)}
    return PreparedJob(job, content_rgb, init, content_targets, style_targets, layer_weights)


def _style_side(style: Image.Image, p: StyleParams, need: int) -> int:
    """Longest side of a style image: ``style_scale`` x ``size``, but deep enough for VGG."""
    aspect = max(style.size) / min(style.size)
    return max(round(p.size * p.style_scale), math.ceil(need * aspect))


def _blended_grams(net: VGGFeatures, styles: list[torch.Tensor],
                   p: StyleParams) -> dict[str, torch.Tensor]:
    """Gram targets of several styles, blended by ``style_weights`` (as neural-style does)."""
    blend = p.style_weights or (1.0,) * len(styles)
    total = sum(blend)
    grams: dict[str, torch.Tensor] = {}
    for style, weight in zip(styles, blend):
        features = net(net.convention.to_model(style), p.style_layers, p.pooling)
        for name, feat in features.items():
            g = gram_matrix(feat) * (weight / total)
            grams[name] = grams[name] + g if name in grams else g
    return grams


def _initial_pixels(job: Job, content: torch.Tensor, style: torch.Tensor,
                    hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Start image for ``params.init``; noise is drawn from a generator seeded by ``seed``."""
    p = job.params
    if p.init == "content":
        return content.clone()
    if p.init == "noise":
        generator = torch.Generator(device="cpu").manual_seed(p.seed)
        return torch.rand((1, 3, *hw), generator=generator).to(device)
    if p.init == "style":
        return torch.nn.functional.interpolate(style, size=hw, mode="bilinear",
                                               align_corners=False, antialias=True).clamp(0, 1)
    start = image_to_tensor(job.init_image.resize(hw[::-1], Image.Resampling.LANCZOS))
    start = start.to(device)
    return color.luminance(start) if p.preserve_color == "luminance" else start
