"""nst.gate: what a job needs beyond its parameters, checked once before any work."""

from __future__ import annotations

import pytest
from PIL import Image

from nst import Job, ParamError, StyleParams
from nst.gate import check_style_count

PHOTO = Image.new("RGB", (60, 40), (90, 120, 150))


@pytest.mark.parametrize(
    "job, field",
    [
        (Job(PHOTO, [PHOTO], StyleParams(init="image")), "init_image"),
        (Job(PHOTO, [PHOTO], StyleParams(), init_image=PHOTO), "init"),  # would be unused
        (Job(PHOTO, [PHOTO], StyleParams(style_weights=(1.0, 2.0))), "style_weights"),
        (Job(PHOTO, [], StyleParams()), "style"),
        (Job(PHOTO, [PHOTO] * 9, StyleParams()), "style"),
        (Job(PHOTO, [PHOTO], StyleParams(size=20)), "size"),  # relu5_1 needs 16 px
        (Job(PHOTO, [Image.new("RGB", (400, 4))], StyleParams(size=64)), "style"),
    ],
)
def test_the_gate_names_the_field(stylizer, job, field):
    with pytest.raises(ParamError) as err:
        stylizer.check(job)
    assert err.value.field == field and err.value.message


def test_a_good_job_passes_and_the_styles_limit_is_one_rule(stylizer):
    stylizer.check(Job(PHOTO, [PHOTO, PHOTO], StyleParams(size=64, style_weights=(1.0, 3.0))))
    with pytest.raises(ParamError, match="give 1 to 2 style images, got 3") as err:
        check_style_count(3, max_styles=2)
    assert err.value.code == "limit_exceeded"
