"""nst.job: the coarse-to-fine plan and pixel resizing."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nst import Job, StyleParams
from nst.job import resize_pixels

PHOTO = Image.new("RGB", (300, 200))


def plan(**params) -> list[tuple[int, int]]:
    return Job(PHOTO, [PHOTO], StyleParams(**params)).level_plan()


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"size": 512, "steps": 300}, [(512, 300)]),  # off by default
        ({"size": 512, "steps": 300, "levels": 2}, [(256, 90), (512, 210)]),
        (
            {"size": 256, "steps": 100, "levels": 3, "coarse_share": 0.5},
            [(64, 25), (128, 25), (256, 50)],
        ),
        (
            {"size": 256, "steps": 101, "levels": 3, "coarse_share": 0.5},
            [(64, 25), (128, 25), (256, 51)],
        ),
        ({"size": 256, "steps": 10, "levels": 2, "coarse_share": 0.0}, [(256, 10)]),
        ({"size": 256, "steps": 1, "levels": 2}, [(256, 1)]),  # the full size always gets a step
        ({"size": 256, "steps": 2, "levels": 3}, [(64, 1), (256, 1)]),  # empty levels dropped
        # 32x21 output: a 16x11 level would be too small for relu5_1 (16 px)
        ({"size": 32, "steps": 5, "levels": 2}, [(32, 5)]),
    ],
)
def test_level_plan(params, expected):
    result = plan(**params)
    assert result == expected
    assert sum(steps for _, steps in result) == params["steps"]


def test_levels_are_part_of_the_batch_key():
    one = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=1))
    two = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=2))
    assert one.batch_key() != two.batch_key()


def test_resize_pixels_keeps_range_and_copies():
    pixels = torch.rand(1, 3, 8, 12)
    up = resize_pixels(pixels, (16, 24))
    assert up.shape == (1, 3, 16, 24) and up.min() >= 0 and up.max() <= 1
    same = resize_pixels(pixels, (8, 12))
    assert torch.equal(same, pixels) and same.data_ptr() != pixels.data_ptr()


def test_matched_start_has_the_styles_colours_and_the_contents_layout(stylizer, images):
    from nst.imageio import image_to_tensor, resize_longest
    from nst.job import prepare

    content, style = images["astronaut.png"], images["starry_night.jpg"]
    params = StyleParams(size=64, init="matched")
    start = prepare(Job(content, [style], params), stylizer.net, stylizer.device).init
    plain = prepare(
        Job(content, [style], params.replace(init="content")), stylizer.net, stylizer.device
    ).init
    target = image_to_tensor(resize_longest(style, 64))  # the style as the job sees it

    def stats(x):
        flat = x.reshape(3, -1).double()
        return flat.mean(1), torch.cov(flat)

    (mean, cov), (style_mean, style_cov) = stats(start), stats(target)
    (plain_mean, plain_cov) = stats(plain)

    def cov_error(c):
        return ((c - style_cov).norm() / style_cov.norm()).item()

    # Clamping to [0, 1] after the colour map trims the tails, so close, not equal.
    torch.testing.assert_close(mean, style_mean, atol=0.02, rtol=0)
    assert cov_error(cov) < 0.15
    assert (plain_mean - style_mean).abs().max() > 0.05 and cov_error(plain_cov) > 0.5
    # Same picture: the recolouring is one affine map of the colours, so it keeps the layout.
    correlation = torch.corrcoef(torch.stack([start.mean(1).flatten(), plain.mean(1).flatten()]))
    assert correlation[0, 1] > 0.8
