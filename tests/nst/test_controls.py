"""The engine's controls beyond the paper, end to end on real weights and images: region
masks, the style statistics in batches, Polyak averaging and original colours."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from nst import Job, StyleParams
from nst.color import rgb_to_yiq
from nst.imageio import image_to_tensor
from nst.losses import gram_matrix, masked_gram_matrix, relative_sq_error
from nst.optimize import BatchRun
from nst.prepare import prepare

KINDS = ("gram", "mean_cov", "sliced_wasserstein")


def split_mask(size, left, right) -> Image.Image:
    image = Image.new("RGB", size, left)
    ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0], size[1]), fill=right)
    return image


@pytest.fixture(scope="module")
def two_region_result(stylizer, images):
    content = images["astronaut.png"]
    styles = [images["starry_night.jpg"], images["the_scream.jpg"]]
    mask = split_mask(content.size, (255, 255, 255), (255, 0, 0))
    params = StyleParams(size=96, steps=40, style_weight=20.0)
    result = stylizer.stylize(Job(content, styles, params, mask=mask))
    return result, styles


def region_gram_distance(stylizer, image, style, columns) -> float:
    """Gram distance (relu1_1..relu3_1) between the image's columns ``columns`` and a style."""
    layers = ("relu1_1", "relu2_1", "relu3_1")
    net = stylizer.net
    x = net.convention.to_model(image_to_tensor(image))
    s = net.convention.to_model(image_to_tensor(style.resize((96, 96))))
    mask = torch.zeros(1, 1, *x.shape[-2:])
    mask[..., columns] = 1
    total = 0.0
    with torch.no_grad():
        fx, fs = net(x, layers), net(s, layers)
        for name in layers:
            m = torch.nn.functional.interpolate(mask, size=fx[name].shape[-2:], mode="area")
            total += float(relative_sq_error(masked_gram_matrix(fx[name], m),
                                             gram_matrix(fs[name])))  # fmt: skip
    return total


def test_each_region_takes_its_own_style(stylizer, two_region_result):
    result, (starry, scream) = two_region_result
    width = result.image.width
    left, right = slice(0, width // 2 - 8), slice(width // 2 + 8, width)
    assert region_gram_distance(stylizer, result.image, starry, left) < region_gram_distance(
        stylizer, result.image, scream, left
    )
    assert region_gram_distance(stylizer, result.image, scream, right) < region_gram_distance(
        stylizer, result.image, starry, right
    )


def test_regions_meet_without_a_seam(two_region_result):
    result, _ = two_region_result
    x = image_to_tensor(result.image)[0]
    steps = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((0, 1))  # mean jump between columns
    middle = result.image.width // 2
    border = steps[middle - 3 : middle + 2].max()
    assert float(border) < 2.5 * float(steps.median()), (float(border), float(steps.median()))


def test_a_black_region_keeps_the_content(stylizer, images):
    content = images["chelsea.png"]
    mask = split_mask(content.size, (0, 0, 0), (255, 255, 255))
    params = StyleParams(size=96, steps=10, style_weight=20.0)
    result = stylizer.stylize(Job(content, [images["starry_night.jpg"]], params, mask=mask))
    out = image_to_tensor(result.image)[0]
    original = image_to_tensor(content.resize(result.image.size, Image.Resampling.LANCZOS))[0]
    width = out.shape[-1]
    kept = (out[..., : width // 2 - 6] - original[..., : width // 2 - 6]).abs().max()
    changed = (out[..., width // 2 + 6 :] - original[..., width // 2 + 6 :]).abs().mean()
    assert float(kept) < 0.02 and float(changed) > 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_batches_mixing_masks_and_statistics_match_jobs_run_alone(stylizer, images, kind):
    content, starry = images["coffee.png"], images["starry_night.jpg"]
    mask = split_mask(content.size, (0, 0, 0), (255, 255, 255))
    masked = Job(content, [starry], StyleParams(size=64, steps=4, style_loss=kind), mask=mask)
    plain = Job(content, [images["the_scream.jpg"]], StyleParams(size=64, steps=4, seed=3))
    together = stylizer.stylize_batch([masked, plain])
    alone = [stylizer.stylize(masked), stylizer.stylize(plain)]
    for a, b in zip(together, alone):
        assert a.image.tobytes() == b.image.tobytes()
        assert a.losses == b.losses


@pytest.mark.parametrize("kind", KINDS)
def test_every_statistic_lowers_its_loss_with_a_wide_style(stylizer, images, kind):
    wide_style = images["shipwreck.jpg"].resize((300, 90))  # pixel counts differ from the output
    job = Job(images["rocket.jpg"], [wide_style], StyleParams(size=80, steps=8, style_loss=kind))
    result = stylizer.stylize(job)
    assert result.steps_run == 8 and result.stopped is None
    assert result.losses.style < result.initial_losses.style


def test_sliced_wasserstein_runs_are_fixed_by_the_seed(stylizer, images):
    def run(seed: int) -> bytes:
        params = StyleParams(size=64, steps=5, style_loss="sliced_wasserstein", seed=seed)
        job = Job(images["astronaut.png"], [images["starry_night.jpg"]], params)
        return stylizer.stylize(job).image.tobytes()

    first = run(1)
    assert run(1) == first and run(2) != first


def test_averaging_returns_the_bias_corrected_moving_average(stylizer, images):
    params = StyleParams(size=64, steps=4, average=0.7)
    job = Job(images["chelsea.png"], [images["the_scream.jpg"]], params)
    iterates = []
    ready = prepare(job, 64, stylizer.passes)
    run = BatchRun(stylizer.passes, [ready], [4], lambda p: iterates.append(
        run.pixels[0].detach().clone()))  # fmt: skip
    from nst.pace import Deadline, Pace

    with torch.enable_grad():
        run.optimise(Deadline(None, Pace()))
    weights = [0.3 * 0.7 ** (len(iterates) - 1 - i) for i in range(len(iterates))]
    expected = sum(w * x for w, x in zip(weights, iterates)) / sum(weights)
    assert torch.allclose(run.output(0), expected, atol=1e-6)
    assert not torch.allclose(run.output(0), iterates[-1])
    run.end_level()
    assert torch.allclose(run.pixels[0], expected, atol=1e-6)


def test_original_colors_keep_the_contents_chroma_and_the_styles_strength(stylizer, images):
    content, style = images["coffee.png"], images["the_scream.jpg"]

    def run(mode: str):
        params = StyleParams(size=64, steps=10, preserve_color=mode)
        return image_to_tensor(stylizer.stylize(Job(content, [style], params)).image)

    kept, plain = run("original_colors"), run("none")
    original = image_to_tensor(content.resize((64, 43), Image.Resampling.LANCZOS))
    chroma = lambda x: rgb_to_yiq(x)[:, 1:]  # noqa: E731
    luma = lambda x: rgb_to_yiq(x)[:, :1]  # noqa: E731
    assert (chroma(kept) - chroma(original)).abs().mean() < 0.02
    assert (chroma(plain) - chroma(original)).abs().mean() > 0.03
    assert (luma(kept) - luma(plain)).abs().mean() < 0.01  # the stylised luminance
