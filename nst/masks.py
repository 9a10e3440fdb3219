"""Spatial control (Gatys et al. 2017): a mask image says which style each region takes.

Each mask pixel's colour names a region: black keeps the content unstylised, and the colours
of :data:`PALETTE` after it take style 1, 2, ... of the request in order. A greyscale mask
with grey levels between black and white is read by level instead: from dark to light, the
levels take style 1, 2, ... (black, where present, stays unstylised). Drawn edges may be
anti-aliased or compressed: only colours that cover a visible share of the mask are regions,
and every pixel joins the nearest of those. The regions are then feathered into soft weights
that sum to one at each pixel, so styles meet along a smooth border, not a seam.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image

from .errors import ParamError
from .imageio import longest_side_size

# (name, RGB); index 0 leaves the content unstylised, index k takes style k.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (0, 0, 0)),
    ("white", (255, 255, 255)),
    ("red", (255, 0, 0)),
    ("green", (0, 255, 0)),
    ("blue", (0, 0, 255)),
    ("yellow", (255, 255, 0)),
    ("cyan", (0, 255, 255)),
    ("magenta", (255, 0, 255)),
    ("orange", (255, 128, 0)),
)
MIN_SHARE = 0.002  # a palette colour must cover this share of the mask to be a region
MATCH_DISTANCE = 64.0  # RGB distance within which a pixel counts towards a colour's share
FEATHER = 0.015  # blur of the region borders, as a share of the image's longest side
ASPECT_TOLERANCE = 0.02  # relative difference allowed between mask and content shapes
REGION_SIDE = 512  # the regions are read from the mask at most this size a side
GREY_SPREAD = 32  # a pixel whose channels differ by at most this is grey
GREY_MIN_SHARE = 0.01  # a grey level must cover this share of the mask's flat pixels
GREY_TOLERANCE = 24  # grey values this close to a level belong to it
FLAT_STEP = 8  # a pixel is flat (not an edge) when its neighbours differ by at most this

Region = tuple[str, tuple[int, int, int]]  # a region's name in messages, its marking colour


def palette_text() -> str:
    """The palette in words, for help texts: ``black: unstylised, white: style 1, ...``."""
    return (
        ", ".join(
            f"{name}: {'unstylised' if k == 0 else f'style {k}'}"
            for k, (name, _) in enumerate(PALETTE)
        )
        + "; or grey levels, dark to light: style 1, 2, ..."
    )


def check_mask(mask: Image.Image, content_size: tuple[int, int], styles: int) -> None:
    """Raise :class:`ParamError` (field ``mask``) unless ``mask`` fits the content's shape
    and its regions name styles the request has."""
    expected = longest_side_size(content_size, max(mask.size))
    slack = max(1, math.ceil(ASPECT_TOLERANCE * max(mask.size)))
    if any(abs(a - b) > slack for a, b in zip(expected, mask.size)):
        raise ParamError(
            f"the mask is {mask.width}x{mask.height} but the content is "
            f"{content_size[0]}x{content_size[1]}: the mask needs the content's shape",
            field="mask",
        )
    key = mask_key(mask)
    if not key:
        raise ParamError(
            "no region found in the mask: paint it in "
            + ", ".join(name for name, _ in PALETTE[: styles + 1])
            + ", or in grey levels",
            field="mask",
        )
    last = max(key)
    if last > styles:
        raise ParamError(
            f"the mask has a {key[last][0]} region for style {last}, but the request has "
            f"{styles} style image{'s' if styles > 1 else ''}",
            field="mask",
        )
    if list(key) == [0]:
        raise ParamError("the mask is all black: no region takes a style", field="mask")
    unused = [k for k in range(1, styles + 1) if k not in key]
    if unused:
        raise ParamError(
            f"the mask has no region for style {unused[0]} (paint it in "
            f"{PALETTE[unused[0]][0]}, or send fewer style images): every style sent needs a "
            "region",
            field="mask",
        )


def region_weights(
    mask: Image.Image, size: tuple[int, int], device: torch.device | str = "cpu"
) -> dict[int, torch.Tensor]:
    """Soft weights (1, 1, H, W) of each region at ``size`` (width, height), by palette
    index; they sum to one at every pixel. The regions are :func:`mask_key`'s at every
    size, so a small level never loses or gains one."""
    from torchvision.transforms.functional import gaussian_blur  # only masks pay its import

    pixels = _pixels(mask, size)
    key = mask_key(mask)
    used = sorted(key)
    palette = torch.tensor([key[i][1] for i in used], dtype=torch.float32)
    nearest = torch.cdist(pixels.reshape(-1, 3), palette).argmin(1).reshape(size[1], size[0])
    hard = torch.stack([(nearest == k).float() for k in range(len(used))]).unsqueeze(1)
    sigma = max(0.5, FEATHER * max(size))
    kernel = 2 * math.ceil(2.5 * sigma) + 1
    soft = gaussian_blur(hard, [kernel, kernel], [sigma, sigma])
    soft = soft / soft.sum(0, keepdim=True).clamp_min(1e-6)
    return {index: soft[k : k + 1].to(device) for k, index in enumerate(used)}


def mask_key(mask: Image.Image) -> dict[int, Region]:
    """Region index -> its name and marking colour, read at up to :data:`REGION_SIDE` px a
    side (the gate checks them; every level's weights use the same ones). A greyscale mask
    with levels between black and white is read by grey level, any other by palette."""
    pixels = _pixels(mask, (min(mask.width, REGION_SIDE), min(mask.height, REGION_SIDE)))
    levels = grey_levels(pixels)
    if any(GREY_TOLERANCE < v < 255 - GREY_TOLERANCE for v in levels):
        first = 0 if levels[0] <= GREY_TOLERANCE else 1  # black stays unstylised
        return {first + k: (_grey_name(v), (v, v, v)) for k, v in enumerate(levels)}
    return {i: PALETTE[i] for i in used_colours(pixels)}


def grey_levels(pixels: torch.Tensor) -> list[int]:
    """Grey levels (0..255, dark to light) that cover at least :data:`GREY_MIN_SHARE` of the
    flat pixels of ``pixels`` (H, W, 3); none when the mask is not greyscale. Edge pixels
    (anti-aliasing, blur) are left out, so a ramp between two levels is not a level."""
    spread = pixels.amax(-1) - pixels.amin(-1)
    if float((spread > GREY_SPREAD).float().mean()) > MIN_SHARE:
        return []
    grey = pixels.mean(-1)
    values = grey[_flat(grey)].round().long()
    histogram = torch.bincount(values, minlength=256).float()
    needed = max(1.0, GREY_MIN_SHARE * grey.numel())
    levels: list[int] = []
    while True:
        peak = int(histogram.argmax())
        window = slice(max(0, peak - GREY_TOLERANCE), peak + GREY_TOLERANCE + 1)
        if float(histogram[window].sum()) < needed:
            return sorted(levels)
        levels.append(peak)
        histogram[window] = 0


def _flat(grey: torch.Tensor) -> torch.Tensor:
    """Pixels of ``grey`` (H, W) whose four neighbours differ from them by at most
    :data:`FLAT_STEP`."""
    padded = torch.nn.functional.pad(grey[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    centre = padded[1:-1, 1:-1]
    neighbours = (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])
    step = torch.stack([(n - centre).abs() for n in neighbours]).amax(0)
    return step <= FLAT_STEP


def _grey_name(value: int) -> str:
    if value <= GREY_TOLERANCE:
        return "black"
    return "white" if value >= 255 - GREY_TOLERANCE else f"grey {value}"


def used_colours(pixels: torch.Tensor) -> list[int]:
    """Palette indices covering at least :data:`MIN_SHARE` of ``pixels`` (H, W, 3)."""
    palette = torch.tensor([rgb for _, rgb in PALETTE], dtype=torch.float32)
    distance = torch.cdist(pixels.reshape(-1, 3), palette)
    best, index = distance.min(1)
    counts = torch.bincount(index[best <= MATCH_DISTANCE], minlength=len(PALETTE))
    return [i for i, n in enumerate(counts.tolist()) if n >= MIN_SHARE * index.numel()]


def layer_mask(weights: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """Region weights (1, 1, H, W) brought to a layer's feature size by area averaging."""
    if tuple(weights.shape[-2:]) == tuple(hw):
        return weights
    return torch.nn.functional.interpolate(weights, size=tuple(hw), mode="area")


def _pixels(mask: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """The mask's RGB values (H, W, 3) at ``size``, as floats 0..255 (nearest resampling,
    so no new colours appear)."""
    image = mask.convert("RGB").resize(size, Image.Resampling.NEAREST)
    return (
        torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        .reshape(size[1], size[0], 3)
        .float()
    )
