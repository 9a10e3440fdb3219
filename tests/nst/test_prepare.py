"""nst.prepare: start images and targets of a job at one size."""

from __future__ import annotations

import torch

from nst import Job, StyleParams
from nst.imageio import image_to_tensor, resize_longest
from nst.optimize import BatchRun
from nst.prepare import prepare


def test_matched_start_has_the_styles_colours_and_the_contents_layout(stylizer, images):
    content, style = images["astronaut.png"], images["starry_night.jpg"]
    params = StyleParams(size=64, init="matched")
    start = prepare(Job(content, [style], params), 64, stylizer.passes).init
    plain = prepare(Job(content, [style], params.replace(init="content")), 64, stylizer.passes).init
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


def test_targets_come_from_a_pass_in_the_runs_precision(weights_path, images):
    """A job started from its content has no content loss, in float32 and in bfloat16: the
    targets come from a pass like the steps' own and are kept in float32 (float32 targets
    against bfloat16 features would leave rounding's share). Kept at 48 px: bfloat16 is
    emulated on CPUs without it."""
    from nst import Stylizer

    params = StyleParams(size=48, init="content")
    job = Job(images["astronaut.png"], [images["starry_night.jpg"]], params)
    for precision in ("fp32", "bf16"):
        engine = Stylizer(str(weights_path), precision=precision)
        ready = prepare(job, 48, engine.passes)
        assert {t.dtype for t in ready.content_targets.values()} == {torch.float32}
        assert BatchRun(engine.passes, [ready], [0]).losses([0])[0].content == 0.0
