"""Region masks: which colours make regions, what is refused, and soft borders."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from nst.errors import ParamError
from nst.masks import PALETTE, check_mask, layer_mask, mask_key, region_weights, used_colours

WHITE, RED, BLACK = PALETTE[1][1], PALETTE[2][1], PALETTE[0][1]


def halves(size=(120, 80), left=WHITE, right=RED, blur=0.0) -> Image.Image:
    image = Image.new("RGB", size, left)
    ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0], size[1]), fill=right)
    return image.filter(ImageFilter.GaussianBlur(blur)) if blur else image


def test_two_colours_make_two_regions_even_with_antialiased_edges():
    soft_drawn = halves(blur=2.0)  # edge pixels are in-between colours
    assert used_colours(torch.tensor(list(soft_drawn.getdata()), dtype=torch.float32)) == [1, 2]
    weights = region_weights(soft_drawn, (60, 40))
    assert sorted(weights) == [1, 2]
    total = weights[1] + weights[2]
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_regions_meet_along_a_soft_border():
    w = region_weights(halves(), (120, 80))[1][0, 0]
    assert float(w[:, :40].min()) > 0.99 and float(w[:, 80:].max()) < 0.01  # far from it
    border = w[40, 55:65]
    assert ((border > 0.05) & (border < 0.95)).sum() >= 4  # a ramp, not a step
    assert torch.all(border[1:] <= border[:-1] + 1e-6)  # falling monotonically


def test_layer_masks_are_area_averages():
    w = region_weights(halves(), (64, 32))[1]
    small = layer_mask(w, (8, 16))
    assert small.shape == (1, 1, 8, 16)
    assert torch.allclose(small.mean(), w.mean(), atol=1e-6)


@pytest.mark.parametrize(
    ("mask", "styles", "words"),
    [
        (halves(size=(80, 80)), 2, "shape"),  # content is 120x80
        (halves(right=PALETTE[4][1]), 2, "blue region for style 4"),
        (Image.new("RGB", (120, 80), BLACK), 1, "all black"),
        (Image.new("RGB", (120, 80), (120, 70, 200)), 2, "no region"),
        (halves(), 3, "no region for style 3"),  # white and red: styles 1 and 2 only
    ],
)
def test_bad_masks_are_refused_naming_the_mask(mask, styles, words):
    with pytest.raises(ParamError) as caught:
        check_mask(mask, (120, 80), styles)
    assert caught.value.field == "mask" and words in str(caught.value)


def test_masks_of_the_contents_shape_at_another_resolution_pass():
    check_mask(halves(size=(60, 40)), (1200, 800), 2)
    check_mask(halves(size=(61, 40)), (1200, 800), 2)  # a pixel of rounding
    check_mask(Image.new("L", (30, 20), 255), (1200, 800), 1)  # greyscale white: style 1


def test_every_size_has_the_regions_the_gate_checked():
    thin = Image.new("RGB", (400, 400), WHITE)
    ImageDraw.Draw(thin).rectangle((0, 0, 2, 399), fill=RED)  # under 1 % of the mask
    assert sorted(mask_key(thin)) == [1, 2]
    for side in (8, 32, 400):
        weights = region_weights(thin, (side, side))
        assert sorted(weights) == [1, 2]
        total = weights[1] + weights[2]
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def thirds(levels, size=(120, 80), mode="L") -> Image.Image:
    image = Image.new(mode, size, levels[0])
    draw = ImageDraw.Draw(image)
    for k, level in enumerate(levels[1:], start=1):
        draw.rectangle((k * size[0] // len(levels), 0, size[0], size[1]), fill=level)
    return image


def jpeg(image: Image.Image) -> Image.Image:
    buffer = __import__("io").BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return Image.open(buffer).convert("RGB")


@pytest.mark.parametrize(
    ("mask", "regions"),
    [
        (thirds((0, 128, 255)), [0, 1, 2]),  # black stays unstylised, then dark to light
        (thirds((60, 200)), [1, 2]),  # no black: every level takes a style
        (jpeg(thirds((0, 110, 220))), [0, 1, 2]),  # compressed
        (thirds((0, 128, 255)).filter(ImageFilter.GaussianBlur(3)), [0, 1, 2]),  # soft edges
        (halves(left=BLACK, right=WHITE, blur=3.0), [0, 1]),  # a ramp is not a level
    ],
)
def test_grey_levels_make_regions_dark_to_light(mask, regions):
    assert sorted(mask_key(mask)) == regions
    weights = region_weights(mask, (60, 40))
    assert sorted(weights) == regions
    band = 60 // len(regions)  # each level is a vertical band of the mask
    for k, region in enumerate(regions):
        assert float(weights[region][0, 0, 20, k * band + band // 2]) > 0.9


def test_grey_levels_beyond_the_styles_are_refused_by_name():
    with pytest.raises(ParamError) as caught:
        check_mask(thirds((0, 100, 180, 255)), (120, 80), 2)
    assert "white region for style 3" in str(caught.value)
    with pytest.raises(ParamError) as caught:
        check_mask(thirds((0, 100, 180)), (120, 80), 1)
    assert "grey 180 region for style 2" in str(caught.value)
