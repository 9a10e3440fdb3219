"""nst.pyramid: the coarse-to-fine plan (as a job sees it) and pixel resizing."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nst import Job, StyleParams
from nst.pyramid import Level, resize_pixels

PHOTO = Image.new("RGB", (300, 200))


def plan(**params) -> list[Level]:
    return Job(PHOTO, [PHOTO], StyleParams(**params)).levels()


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
    assert sum(level.steps for level in result) == params["steps"]


def test_levels_are_part_of_the_batch_key():
    one = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=1))
    two = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=2))
    assert one.batch_key() != two.batch_key()


def test_jobs_share_a_group_only_when_every_level_has_the_same_size():
    one = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=3, steps=2, coarse_share=0.5))
    two = Job(PHOTO, [PHOTO], StyleParams(size=256, levels=2, steps=2, coarse_share=0.5))
    sizes = [[level.size for level in job.levels()] for job in (one, two)]
    assert sizes == [[64, 256], [128, 256]]  # as many levels, not the same sizes
    assert one.batch_key() != two.batch_key()


def test_resize_pixels_keeps_range_and_copies():
    pixels = torch.rand(1, 3, 8, 12)
    up = resize_pixels(pixels, (16, 24))
    assert up.shape == (1, 3, 16, 24) and up.min() >= 0 and up.max() <= 1
    same = resize_pixels(pixels, (8, 12))
    assert torch.equal(same, pixels) and same.data_ptr() != pixels.data_ptr()
